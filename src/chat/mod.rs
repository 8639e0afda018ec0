//! The front ends: adapters of the conversation port ([`crate::conversation`]) to Discord, Slack,
//! the terminal console and the one-shot `exec`. Nothing below the front ends imports this module.

pub mod buttons;
pub mod console;
pub mod discord;
pub mod exec;
pub mod held;
pub mod slack;
pub mod text;

/// The port the adapters implement, re-exported for them (and for tests that drive the engine).
pub use crate::conversation::{Conversation, Transcript};
