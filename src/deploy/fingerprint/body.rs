//! The lines under a header: which are the change (fingerprinted), which are context Terraform
//! shows around it (left out), and which the bot does not recognise (fingerprinted: fail closed).
//!
//! Terraform's diff grammar marks every changed value with a symbol (`+`, `-`, `~`, `-/+`, `+/-`,
//! `<=`, and `.` for forget); an unmarked line is an unchanged attribute, element or block shown
//! for orientation (`id = "…"`, `tags = {`, `}`), which Terraform chooses to show or hide
//! (`# (N unchanged attributes hidden)`) independently of the change.

/// How one body line (without its indentation) counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    /// A changed value: part of the fingerprint.
    Change,
    /// `~ attribute = <old> -> (known after apply)`: Terraform will recompute the attribute and
    /// does not know its value yet. Which computed attributes a provider lists so is not a
    /// decision of the plan (a replacement lists all of them), so the line is left out; a line
    /// that says more (`# forces replacement`) is a [`Line::Change`].
    Recomputed,
    /// Unchanged context: left out.
    Context,
    /// Anything else: part of the fingerprint.
    Unrecognised,
}

/// The symbols Terraform (and OpenTofu) put before a changed value.
const MARKERS: [&str; 8] = ["-/+", "+/-", "+/.", "<=", "+", "-", "~", "."];

/// Classifies `t`, a body line without its indentation.
pub(super) fn classify(t: &str) -> Line {
    if let Some(rest) = marked(t) {
        if t.starts_with('~') && rest.ends_with(" -> (known after apply)") {
            return Line::Recomputed;
        }
        return Line::Change;
    }
    if is_context(t) {
        Line::Context
    } else {
        Line::Unrecognised
    }
}

/// The rest of a line that starts with a change symbol followed by a blank (or nothing).
fn marked(t: &str) -> Option<&str> {
    MARKERS.iter().find_map(|&m| {
        let rest = t.strip_prefix(m)?;
        if rest.is_empty() {
            Some(rest)
        } else {
            rest.strip_prefix(' ')
        }
    })
}

/// The heredoc delimiter a line opens (`… = <<-EOT` → `EOT`), if it ends with one.
pub(super) fn heredoc_opened(t: &str) -> Option<&str> {
    let at = t.rfind("<<")?;
    let id = t[at + 2..].trim_start_matches('-');
    let ok = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    ok.then_some(id)
}

/// An unmarked line in the shape of Terraform's unchanged context.
fn is_context(t: &str) -> bool {
    let t = t.strip_suffix(',').unwrap_or(t);
    // Closers, also of a value that goes away or becomes unknown (the opening line, which is
    // marked, already says so).
    let closer = t
        .strip_suffix(" -> null")
        .or_else(|| t.strip_suffix(" -> (known after apply)"))
        .unwrap_or(t);
    if !closer.is_empty() && closer.chars().all(|c| matches!(c, '}' | ']' | ')' | ',')) {
        return true;
    }
    if t.contains(" -> ") || t.starts_with('#') {
        // A change or a note in an unmarked line: not context.
        return false;
    }
    // `name = value` (`tags = {` too), with a bare or quoted name.
    if let Some((name, _)) = split_assignment(t) {
        return is_word_or_label(name);
    }
    // Block openers: `ingress {`, `resource "aws_instance" "a" {`, `jsonencode(`, `{`, `[`.
    if let Some(head) = t
        .strip_suffix('{')
        .or_else(|| t.strip_suffix('['))
        .or_else(|| t.strip_suffix('('))
    {
        let head = head.trim_end();
        return head.is_empty() || head.split(' ').all(is_word_or_label);
    }
    // A list or set element.
    is_literal(t)
}

/// `name = value` where `name` may be padded for alignment and quoted (with ` = ` inside quotes).
fn split_assignment(t: &str) -> Option<(&str, &str)> {
    let name_end = if t.starts_with('"') {
        closing_quote(t)? + 1
    } else {
        t.find(' ')?
    };
    let rest = t[name_end..].trim_start();
    let value = rest.strip_prefix('=')?;
    Some((&t[..name_end], value))
}

/// The index of the quote closing the string that opens `t`.
fn closing_quote(t: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in t.char_indices().skip(1) {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn is_word_or_label(w: &str) -> bool {
    if w.len() >= 2 && w.starts_with('"') && closing_quote(w) == Some(w.len() - 1) {
        return true;
    }
    !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A literal value: a string, a number, a boolean, `null`, or one of Terraform's placeholders.
fn is_literal(t: &str) -> bool {
    matches!(
        t,
        "true" | "false" | "null" | "(known after apply)" | "(sensitive value)" | "(sensitive)"
    ) || (t.len() >= 2 && t.starts_with('"') && closing_quote(t) == Some(t.len() - 1))
        || (!t.is_empty()
            && t.trim_start_matches('-').parse::<f64>().is_ok()
            && t.bytes()
                .all(|b| b.is_ascii_digit() || b"-.eE+".contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_marked_lines() {
        for t in [
            "+ resource \"aws_instance\" \"a\" {",
            "-/+ resource \"aws_instance\" \"a\" {",
            "+/- resource \"aws_instance\" \"a\" {",
            "<= data \"aws_ami\" \"u\" {",
            "~ user_data = \"3f1c\" -> \"9a8b\" # forces replacement",
            "~ id = \"i-0f\" -> (known after apply) # forces replacement",
            "- \"10.0.1.23\",",
            "+ id = (known after apply)",
            "~ records = [",
            "+",
            ". resource \"aws_s3_bucket\" \"logs\" {",
        ] {
            assert_eq!(classify(t), Line::Change, "{t}");
        }
        assert_eq!(
            classify("~ arn = \"arn:aws:ec2:us-east-1:1:instance/i-0f\" -> (known after apply)"),
            Line::Recomputed
        );
    }

    #[test]
    fn unchanged_context_is_recognised() {
        for t in [
            "tags = {",
            "\"Name\" = \"catalog-airflow-prod\"",
            "}",
            "},",
            "] -> (known after apply)",
            "] -> null",
            "})",
            "id      = \"Z0123456789ABCDEFGHIJ_airflow.openverse.org_A\"",
            "name    = \"airflow.openverse.org\"",
            "resource \"tfcoremock_simple_resource\" \"second\" {",
            "ingress {",
            "\"bots\",",
            "42,",
            "(known after apply),",
            "\"a = b\" = 1",
            "{",
        ] {
            assert_eq!(classify(t), Line::Context, "{t}");
        }
    }

    #[test]
    fn anything_else_is_unrecognised() {
        for t in [
            "] -> \"b\"",
            "id = \"a\" -> \"b\"",
            "# Warning: this will destroy the imported resource",
            "│ Warning: Argument is deprecated",
            "Plan to do something",
            "free text here",
        ] {
            assert_eq!(classify(t), Line::Unrecognised, "{t}");
        }
    }

    #[test]
    fn heredocs_are_found() {
        assert_eq!(heredoc_opened("+ user_data = <<-EOT"), Some("EOT"));
        assert_eq!(heredoc_opened("~ policy = <<EOF"), Some("EOF"));
        assert_eq!(heredoc_opened("+ x = \"a << b\""), None);
        assert_eq!(heredoc_opened("+ x = <<-"), None);
    }
}
