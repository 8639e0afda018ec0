//! Reading one line of Terraform's output the same way whatever wrapped it: colours removed, a
//! log collector's timestamp removed, line endings and trailing blanks removed; and recognising
//! the lines that are never part of a plan (progress, hidden-attribute counts, rules, the
//! question before the prompt).

use crate::integrations::infra::{PROMPT, strip_ansi};

/// One line as Terraform printed it: colours, trailing blanks (including the `\r` of CRLF) and
/// leading log timestamps removed. The indentation stays: it is how Terraform nests a diff.
pub fn clean(raw: &str) -> String {
    let plain = strip_ansi(raw);
    let mut rest = plain.trim_end();
    // A line may pass through more than one collector, each adding its own.
    loop {
        let next = strip_timestamp(rest);
        if next.len() == rest.len() {
            break;
        }
        rest = next;
    }
    rest.to_string()
}

/// `line` without the timestamp a log collector or CI put before it, and the one blank after it:
/// `2024-05-01T12:00:00.123Z ` (GitHub Actions, RFC 3339 with any fraction and offset),
/// `2024-05-01 12:00:00 `, `2024/05/01 12:00:00 `, `[12:00:00] `, `[12:00:00.123] `.
///
/// Only these exact shapes at the very start of the line: Terraform's own lines never start with
/// a digit or `[` followed by a time, and a diff's meaning must not be cut away with a prefix.
pub fn strip_timestamp(line: &str) -> &str {
    let b = line.as_bytes();
    let digits = |from: usize, n: usize| {
        b.len() >= from + n && b[from..from + n].iter().all(u8::is_ascii_digit)
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    // hh:mm:ss[.fraction] starting at `i`; returns the index after it.
    let time = |i: usize| -> Option<usize> {
        if !(digits(i, 2)
            && at(i + 2, b':')
            && digits(i + 3, 2)
            && at(i + 5, b':')
            && digits(i + 6, 2))
        {
            return None;
        }
        let mut end = i + 8;
        if at(end, b'.') || at(end, b',') {
            let start = end + 1;
            end = start;
            while b.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            if end == start {
                return None;
            }
        }
        Some(end)
    };
    let sep = |i: usize| at(i, b' ') || at(i, b'\t');
    // [hh:mm:ss(.fff)]
    if at(0, b'[')
        && let Some(end) = time(1)
        && at(end, b']')
    {
        if sep(end + 1) {
            return &line[end + 2..];
        }
        if end + 1 == b.len() {
            return "";
        }
    }
    // yyyy-mm-dd or yyyy/mm/dd, then `T` or a blank, then the time, then an optional offset.
    if digits(0, 4)
        && (at(4, b'-') || at(4, b'/'))
        && digits(5, 2)
        && b.get(7) == b.get(4)
        && digits(8, 2)
        && (at(10, b'T') || at(10, b' '))
        && let Some(mut end) = time(11)
    {
        if at(end, b'Z') {
            end += 1;
        } else if (at(end, b'+') || at(end, b'-')) && digits(end + 1, 2) {
            end += 3;
            if at(end, b':') && digits(end + 1, 2) {
                end += 3;
            } else if digits(end, 2) {
                end += 2;
            }
        }
        if sep(end) {
            return &line[end + 1..];
        }
        if end == b.len() {
            // The timestamp of an empty line.
            return "";
        }
    }
    line
}

/// A line Terraform prints while it refreshes or reads, before the plan:
/// `module.x.aws_instance.a: Refreshing state... [id=i-1]`, `data.aws_ami.u: Reading...`,
/// `data.aws_ami.u: Read complete after 1s [id=ami-1]`, `data.x: Still reading... [10s elapsed]`,
/// `aws_instance.a: Preparing import... [id=i-1]`. Recognised only at the start of the line
/// (no diff line starts there with an address and a colon) and only in these shapes.
pub fn is_progress(clean: &str) -> bool {
    let Some((address, what)) = clean.split_once(": ") else {
        return false;
    };
    const WHAT: [&str; 6] = [
        "Refreshing state...",
        "Reading...",
        "Read complete after ",
        "Still reading...",
        "Preparing import...",
        "Refreshing...",
    ];
    !address.is_empty()
        && !address.starts_with(char::is_whitespace)
        && looks_like_address(address)
        && WHAT.iter().any(|w| what.starts_with(w))
}

/// A resource address as Terraform prints it: `module.a["k"].aws_x.b[0]`; dots and brackets,
/// no blanks outside quoted keys.
fn looks_like_address(s: &str) -> bool {
    let mut quoted = false;
    let mut has_dot = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => has_dot = true,
            c if !quoted && c.is_whitespace() => return false,
            _ => {}
        }
    }
    has_dot && !quoted
}

/// `# (28 unchanged attributes hidden)`, `# (1 unchanged element hidden)`,
/// `# (2 unchanged blocks hidden)`: how much Terraform left out, which says nothing about the
/// change (`t` is the line without its indentation).
pub fn is_hidden_count(t: &str) -> bool {
    let Some(inner) = t
        .strip_prefix("# (")
        .and_then(|r| r.strip_suffix(" hidden)"))
    else {
        return false;
    };
    let mut words = inner.split(' ');
    matches!(
        (words.next(), words.next(), words.next(), words.next()),
        (Some(n), Some("unchanged"), Some(_), None)
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    )
}

/// The horizontal rule Terraform prints between parts of its output (`─` repeated).
pub fn is_rule(t: &str) -> bool {
    t.chars().count() >= 3 && t.chars().all(|c| c == '─')
}

/// The question an interactive apply asks before its prompt, and the prompt itself.
pub fn is_question(t: &str) -> bool {
    t.starts_with("Do you want to perform these actions")
        || t.starts_with("Do you really want to destroy all resources")
        || t == "Terraform will perform the actions described above."
        || t == "OpenTofu will perform the actions described above."
        || t == "Terraform will destroy all your managed infrastructure, as shown above."
        || t == "There is no undo. Only 'yes' will be accepted to confirm."
        || t == "Only 'yes' will be accepted to approve."
        || t.starts_with(PROMPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_timestamps_are_cut_but_nothing_else() {
        for (line, want) in [
            (
                "2024-05-01T12:00:00.1234567Z   # a.b will be created",
                "  # a.b will be created",
            ),
            ("2024-05-01T12:00:00Z Plan: 1 to add", "Plan: 1 to add"),
            ("2024-05-01T12:00:00+02:00 x", "x"),
            ("2024-05-01 12:00:00,123 -/+ resource", "-/+ resource"),
            ("2024/05/01 12:00:00 ~ id = 1", "~ id = 1"),
            ("[12:00:00] + a = 1", "+ a = 1"),
            ("[12:00:00.5]\t- a = 1", "- a = 1"),
            // Not timestamps: left alone.
            ("-/+ resource \"a\" \"b\" {", "-/+ resource \"a\" \"b\" {"),
            ("2024-05-01 is a date", "2024-05-01 is a date"),
            ("[12:00] x", "[12:00] x"),
            ("12:00:00 x", "12:00:00 x"),
            ("2024-05-01T12:00:00.123Z", ""),
            ("[12:00:00]", ""),
            (
                "      + id = 2024-05-01T12:00:00Z",
                "      + id = 2024-05-01T12:00:00Z",
            ),
        ] {
            assert_eq!(strip_timestamp(line), want, "{line:?}");
        }
        assert_eq!(
            clean(
                "\u{1b}[0m2024-05-01T12:00:00.123Z \u{1b}[1m  # a.b\u{1b}[0m will be created \t\r"
            ),
            "  # a.b will be created"
        );
    }

    #[test]
    fn progress_lines_are_recognised_only_in_their_shapes() {
        for line in [
            "module.catalog_airflow.aws_instance.airflow: Refreshing state... [id=i-0fedcba9876543210]",
            "module.catalog_airflow.data.aws_ami.ubuntu: Reading...",
            "module.catalog_airflow.data.aws_ami.ubuntu: Read complete after 1s [id=ami-0a1b2c3d4e5f67890]",
            "linode_instance.servers[\"Bot-us-west-1\"]: Refreshing state... [id=96297148]",
            "data.x.y: Still reading... [10s elapsed]",
            "aws_instance.a: Preparing import... [id=i-1]",
        ] {
            assert!(is_progress(line), "{line}");
        }
        for line in [
            "  aws_instance.a: Refreshing state...",
            "Note: Objects have changed outside of Terraform",
            "Plan: 1 to add, 0 to change, 0 to destroy.",
            "~ id = \"x\" -> \"y\"",
            "x: Reading...",
            "a b.c: Reading...",
        ] {
            assert!(!is_progress(line), "{line}");
        }
    }

    #[test]
    fn hidden_counts_rules_and_questions() {
        for t in [
            "# (28 unchanged attributes hidden)",
            "# (1 unchanged attribute hidden)",
            "# (2 unchanged elements hidden)",
            "# (3 unchanged blocks hidden)",
        ] {
            assert!(is_hidden_count(t), "{t}");
        }
        for t in [
            "# (moved from a.b)",
            "# (x unchanged attributes hidden)",
            "# (config refers to values not yet known)",
            "# (2 unchanged attributes hidden) and more",
        ] {
            assert!(!is_hidden_count(t), "{t}");
        }
        assert!(is_rule("─────────────"));
        assert!(!is_rule("---") && !is_rule("─"));
        assert!(is_question(
            "Do you want to perform these actions in workspace \"infra\"?"
        ));
        assert!(is_question("Enter a value: yes"));
        assert!(!is_question(
            "Terraform will perform the following actions:"
        ));
    }
}
