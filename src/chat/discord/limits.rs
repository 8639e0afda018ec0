//! Discord's hard limits on what one message may carry, and the pure functions that keep every
//! outgoing message inside them: a message that breaks a limit is rejected by Discord, and a
//! rejected progress message would be a silent gap in a deploy's story.

/// Characters (Unicode scalar values, as Discord counts them) in one message's content.
pub const MAX_CONTENT: usize = 2000;
/// Buttons in one action row.
pub const MAX_BUTTONS_PER_ROW: usize = 5;
/// Action rows in one message.
pub const MAX_ROWS: usize = 5;
/// Characters in a thread (channel) name.
pub const MAX_THREAD_NAME: usize = 100;

/// Splits `text` into messages of at most `max` characters, preferring line breaks, so that
/// nothing is lost and no part is rejected.
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

/// Groups items into rows of at most [`MAX_BUTTONS_PER_ROW`], at most [`MAX_ROWS`] rows.
pub fn rows<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    items
        .chunks(MAX_BUTTONS_PER_ROW)
        .take(MAX_ROWS)
        .map(<[T]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_everything_within_the_limit() {
        let text = "é".repeat(4500);
        let parts = split(&text, MAX_CONTENT);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_CONTENT));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn split_prefers_line_breaks() {
        let line = "x".repeat(900);
        let text = format!("{line}\n{line}\n{line}");
        let parts = split(&text, MAX_CONTENT);
        assert_eq!(parts, vec![format!("{line}\n{line}"), line.clone()]);
        assert_eq!(split("", 10), vec![String::new()]);
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(
            truncate(&"y".repeat(5000), MAX_CONTENT).chars().count(),
            MAX_CONTENT
        );
    }

    #[test]
    fn rows_hold_five_buttons() {
        let r = rows(&(0..12).collect::<Vec<_>>());
        assert_eq!(r.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 5, 2]);
        assert_eq!(rows(&(0..40).collect::<Vec<_>>()).len(), MAX_ROWS);
    }
}
