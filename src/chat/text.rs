//! Text shaping every chat front end needs: splitting a long text into messages that fit a
//! platform's limit without losing anything, and cutting one-message things (a card, a name) to
//! size. Each adapter passes its own platform's limits.

/// Splits `text` into parts of at most `max` characters (Unicode scalar values), preferring line
/// breaks, so that nothing is lost and no part is rejected.
pub fn split(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        // The byte index just after `max` characters.
        let hard = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let cut = match rest[..hard].rfind('\n') {
            Some(i) if i > 0 => i,
            _ => hard,
        };
        parts.push(rest[..cut].to_string());
        rest = rest[cut..].strip_prefix('\n').unwrap_or(&rest[cut..]);
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

/// `text` cut to `max` characters, ending in `…` when it was cut (for one-message things: a
/// status card, a thread name, an ephemeral answer).
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{keep}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_everything_within_the_limit() {
        let text = "é".repeat(4500);
        let parts = split(&text, 2000);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= 2000));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn split_prefers_line_breaks() {
        let line = "x".repeat(900);
        let text = format!("{line}\n{line}\n{line}");
        let parts = split(&text, 2000);
        assert_eq!(parts, vec![format!("{line}\n{line}"), line.clone()]);
        assert_eq!(split("", 10), vec![String::new()]);
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate(&"y".repeat(5000), 2000).chars().count(), 2000);
    }
}
