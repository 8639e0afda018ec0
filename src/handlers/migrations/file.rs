//! What a catalog migration file says besides its SQL: header directives, and — for a file that
//! runs outside a transaction — its statements one by one.
//!
//! Directives are comment lines at the top of the file, before the first statement:
//!
//! ```sql
//! -- chatops: no-transaction
//! -- chatops: statement_timeout=6h
//! CREATE INDEX CONCURRENTLY image_provider_idx ON image (provider);
//! ```
//!
//! - `no-transaction`: run each statement on its own (autocommit). `CREATE INDEX CONCURRENTLY`
//!   refuses to run inside a transaction block — and Postgres runs a multi-statement query as one
//!   implicit transaction, so the statements must also be sent separately.
//! - `statement_timeout=<duration>` / `lock_timeout=<duration>` (`90s`, `30m`, `6h`, up to 7 days):
//!   override `[catalog_db]`'s defaults for this file; building an index on the `image` table
//!   takes far longer than the default 5 minutes.
//!
//! An unknown directive makes the file unusable until fixed: a typo must not silently run a
//! long `ALTER` under the short default, or a `CONCURRENTLY` inside a transaction.

use std::time::Duration;

/// The longest timeout a file may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// A file's directives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub no_transaction: bool,
    pub statement_timeout: Option<Duration>,
    pub lock_timeout: Option<Duration>,
}

/// Reads the directives of the leading comment block.
pub fn parse_header(sql: &str) -> Result<Header, String> {
    let mut h = Header::default();
    for line in sql.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            break; // the first statement ends the header
        };
        let Some(rest) = comment.trim().strip_prefix("chatops:") else {
            continue; // an ordinary comment
        };
        for directive in rest.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let (key, value) = match directive.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (directive, None),
            };
            match (key, value) {
                ("no-transaction", None) => h.no_transaction = true,
                ("statement_timeout", Some(v)) => {
                    h.statement_timeout = Some(timeout(key, v)?);
                }
                ("lock_timeout", Some(v)) => h.lock_timeout = Some(timeout(key, v)?),
                _ => {
                    return Err(format!(
                        "its header has `-- chatops: {directive}`, which is not a directive \
                         (known: no-transaction, statement_timeout=<duration>, \
                         lock_timeout=<duration>)"
                    ));
                }
            }
        }
    }
    Ok(h)
}

fn timeout(key: &str, value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(d) if d >= Duration::from_secs(1) && d <= MAX_TIMEOUT => Ok(d),
        _ => Err(format!(
            "its header sets {key}={value}, which is not a duration from 1s to 7d (e.g. \
             {key}=6h)"
        )),
    }
}

/// Splits SQL into statements at top-level `;`, respecting quotes (`'…'`, `E'…'`, `"…"`),
/// dollar quotes (`$$…$$`, `$tag$…$tag$`) and comments (`-- …`, nested `/* … */`). Statements
/// that are empty or only comments are dropped.
pub fn split_statements(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut has_code = false;
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while i < b.len() && depth > 0 {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'\'' => {
                has_code = true;
                // E'…' (escape string): a backslash escapes the next byte.
                let escapes = i > 0
                    && matches!(b[i - 1], b'E' | b'e')
                    && (i < 2 || !(b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b'_'));
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                    } else if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                        } else {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                i += 1;
                continue;
            }
            b'"' => {
                has_code = true;
                i += 1;
                while i < b.len() {
                    if b[i] == b'"' {
                        if b.get(i + 1) == Some(&b'"') {
                            i += 2;
                        } else {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                i += 1;
                continue;
            }
            b'$' => {
                has_code = true;
                // `$tag$` where tag is empty or an identifier not starting with a digit; `$1`
                // (a parameter) is not a quote. Not inside an identifier (`a$b`).
                let after_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let tag_ok = !after_ident
                    && j < b.len()
                    && b[j] == b'$'
                    && !b.get(i + 1).is_some_and(u8::is_ascii_digit);
                if tag_ok {
                    let tag = &sql[i..=j];
                    match sql[j + 1..].find(tag) {
                        Some(end) => i = j + 1 + end + tag.len(),
                        None => i = b.len(),
                    }
                } else {
                    i += 1;
                }
                continue;
            }
            b';' => {
                if has_code {
                    out.push(sql[start..i].trim().to_string());
                }
                start = i + 1;
                has_code = false;
            }
            c if !c.is_ascii_whitespace() => has_code = true,
            _ => {}
        }
        i += 1;
    }
    if has_code {
        out.push(sql[start..].trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("CREATE TABLE a (x int);"),
            Ok(Header::default())
        );
        let h = parse_header(
            "-- Index the provider column of the big table.\n\
             -- chatops: no-transaction\n\
             -- chatops: statement_timeout=6h, lock_timeout=10s\n\n\
             CREATE INDEX CONCURRENTLY i ON image (provider);\n\
             -- chatops: statement_timeout=1s\n",
        )
        .unwrap();
        assert_eq!(
            h,
            Header {
                no_transaction: true,
                statement_timeout: Some(Duration::from_secs(6 * 3600)),
                lock_timeout: Some(Duration::from_secs(10)),
            },
            "a directive after the first statement is an ordinary comment"
        );
        assert_eq!(
            parse_header("-- chatops: no-transactoin\nSELECT 1;").unwrap_err(),
            "its header has `-- chatops: no-transactoin`, which is not a directive (known: \
             no-transaction, statement_timeout=<duration>, lock_timeout=<duration>)"
        );
        assert_eq!(
            parse_header("-- chatops: statement_timeout=forever\n").unwrap_err(),
            "its header sets statement_timeout=forever, which is not a duration from 1s to 7d \
             (e.g. statement_timeout=6h)"
        );
        assert!(parse_header("-- chatops: statement_timeout=30d\n").is_err());
    }

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let sql = "-- leading; comment\n\
                   CREATE INDEX CONCURRENTLY a ON t (x);\n\
                   INSERT INTO t VALUES ('it''s; fine', E'back\\'; slash', \"odd;name\");\n\
                   /* block; /* nested; */ still; */\n\
                   CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n\
                   DO $$ BEGIN PERFORM 1; END $$;\n\
                   PREPARE p AS SELECT $1::int;\n\
                   ;;\n\
                   -- trailing comment only\n";
        let s = split_statements(sql);
        assert_eq!(s.len(), 5, "{s:#?}");
        assert_eq!(
            s[0],
            "-- leading; comment\nCREATE INDEX CONCURRENTLY a ON t (x)"
        );
        assert!(s[1].ends_with("\"odd;name\")"), "{}", s[1]);
        assert!(
            s[2].starts_with("/* block;") && s[2].contains("CREATE FUNCTION f()"),
            "{}",
            s[2]
        );
        assert!(s[2].ends_with("LANGUAGE sql"), "{}", s[2]);
        assert_eq!(s[3], "DO $$ BEGIN PERFORM 1; END $$");
        assert_eq!(s[4], "PREPARE p AS SELECT $1::int");
    }
}
