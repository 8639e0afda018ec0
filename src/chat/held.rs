//! What a chat front end holds back while a command's outcome is unknown. A refusal is the
//! engine's one and only message and goes to the person alone (nothing changed, so nobody else
//! needs to see it); once the command is under way (a second message, a card, long output),
//! everything is public, starting with what was held.

#[derive(Debug, Default)]
pub struct HeldBack {
    held: Vec<String>,
    released: bool,
}

impl HeldBack {
    /// Holds `text` unless everything is public already; true when it was held.
    pub fn hold(&mut self, text: &str) -> bool {
        if self.released {
            return false;
        }
        self.held.push(text.to_string());
        true
    }

    /// Holds `text` only when it is the first message and nothing is public yet; true when held.
    /// (A second message means the command is under way, so it was not refused.)
    pub fn hold_first(&mut self, text: &str) -> bool {
        self.held.is_empty() && self.hold(text)
    }

    /// Everything is public from now on: what was held, to be sent (empty the second time).
    pub fn release(&mut self) -> Vec<String> {
        self.released = true;
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_until_released_then_public() {
        let mut h = HeldBack::default();
        assert!(h.hold_first("refused?"));
        assert!(!h.hold_first("a second message"));
        assert!(h.hold("more"));
        assert_eq!(h.release(), ["refused?", "more"]);
        assert!(!h.hold("now public"));
        assert!(!h.hold_first("now public"));
        assert!(h.release().is_empty());
    }
}
