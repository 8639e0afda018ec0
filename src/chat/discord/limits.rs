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

pub use crate::chat::text::{split, truncate};

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
    fn rows_hold_five_buttons() {
        let r = rows(&(0..12).collect::<Vec<_>>());
        assert_eq!(r.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 5, 2]);
        assert_eq!(rows(&(0..40).collect::<Vec<_>>()).len(), MAX_ROWS);
    }
}
