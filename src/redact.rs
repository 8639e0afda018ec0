//! Secrets never leave: configured secret values and well-known token shapes (GitHub, Slack,
//! AWS, bearer headers) are replaced before anything is posted, logged or stored.

/// What replaces a secret.
pub const MASK: &str = "[redacted]";

/// GitHub token prefixes (classic PATs, OAuth, user-to-server, server-to-server, refresh, and
/// fine-grained PATs).
const GITHUB_PREFIXES: [&str; 6] = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"];
/// Slack token prefixes: bot, user, app-level, refresh and the older workspace/legacy kinds.
const SLACK_PREFIXES: [&str; 7] = [
    "xoxb-", "xoxp-", "xapp-", "xoxe-", "xoxa-", "xoxr-", "xoxs-",
];
/// AWS access key id prefixes (long-term and temporary).
const AWS_PREFIXES: [&str; 2] = ["AKIA", "ASIA"];

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Redactor {
        secrets.retain(|s| s.len() >= 4);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        redact_token_shapes(&out)
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Masks GitHub and Slack tokens, AWS access key ids and `Bearer <token>` values by shape.
fn redact_token_shapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let at_boundary = out.chars().last().is_none_or(|c| !is_token_char(c));
        if at_boundary && let Some(len) = token_len(rest) {
            out.push_str(MASK);
            rest = &rest[len..];
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The byte length of a secret-shaped token at the start of `s`, if there is one.
fn token_len(s: &str) -> Option<usize> {
    let run = |from: usize| {
        from + s[from..]
            .char_indices()
            .find(|&(_, c)| !is_token_char(c))
            .map_or(s.len() - from, |(i, _)| i)
    };
    for p in GITHUB_PREFIXES {
        if s.starts_with(p) {
            let end = run(p.len());
            if end - p.len() >= 20 {
                return Some(end);
            }
        }
    }
    for p in SLACK_PREFIXES {
        if s.starts_with(p) {
            // Slack tokens are dash-separated runs (`xoxb-123-456-AbC…`).
            let len = s
                .char_indices()
                .find(|&(_, c)| !(is_token_char(c) || c == '-'))
                .map_or(s.len(), |(i, _)| i);
            if len - p.len() >= 10 {
                return Some(len);
            }
        }
    }
    for p in AWS_PREFIXES {
        if s.starts_with(p) {
            let end = run(p.len());
            let body = &s[p.len()..end];
            if body.len() == 16
                && body
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                return Some(end);
            }
        }
    }
    if let Some(after) = s.strip_prefix("Bearer ") {
        let len = after
            .char_indices()
            .find(|&(_, c)| c.is_whitespace() || c == '"' || c == '\'')
            .map_or(after.len(), |(i, _)| i);
        if len >= 8 {
            return Some("Bearer ".len() + len);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_secrets_are_masked() {
        let r = Redactor::new(vec!["hunter2-very-secret".into(), "abc".into()]);
        assert_eq!(
            r.redact("password is hunter2-very-secret, ok"),
            "password is [redacted], ok"
        );
        // Values shorter than 4 characters are not treated as secrets (they would mask words).
        assert_eq!(r.redact("abc"), "abc");
    }

    #[test]
    fn token_shapes_are_masked() {
        let r = Redactor::default();
        let gh = format!("token ghp_{} end", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
        assert_eq!(r.redact(&gh), "token [redacted] end");
        assert_eq!(r.redact("key=AKIAABCDEFGHIJKLMNOP!"), "key=[redacted]!");
        assert_eq!(
            r.redact("Authorization: Bearer eyJhbGciOi.J9.xyz rest"),
            "Authorization: [redacted] rest"
        );
        assert_eq!(
            r.redact("SLACK_BOT_TOKEN=xoxb-1234567890-0987654321-AbCdEfGhIjKl ok"),
            "SLACK_BOT_TOKEN=[redacted] ok"
        );
        assert_eq!(
            r.redact("app xapp-1-A0123-4567-89abcdef."),
            "app [redacted]."
        );
        // Not a token: too short, or inside a longer word.
        assert_eq!(r.redact("xoxb-1"), "xoxb-1");
        assert_eq!(r.redact("ghp_short"), "ghp_short");
        assert_eq!(r.redact("XAKIAABCDEFGHIJKLMNOP"), "XAKIAABCDEFGHIJKLMNOP");
    }

    #[test]
    fn unicode_text_survives() {
        let r = Redactor::new(vec!["sëcret-välue".into()]);
        assert_eq!(r.redact("→ sëcret-välue ✅"), "→ [redacted] ✅");
    }
}
