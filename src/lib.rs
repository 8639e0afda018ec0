//! catalog-chatops: deploy and operate the Openverse Catalog from chat, safely.
//!
//! Data flows one way: a front end (`chat`) → [`command`] (parse) → [`policy`] (authorize) →
//! [`engine`] → [`handlers`] → the [`store`]; replies flow back through [`chat::Conversation`].

pub mod chat;
pub mod coalesce;
pub mod command;
pub mod config;
pub mod deploy;
pub mod engine;
/// The fuzz targets' properties, shared with the stable corpus replay (`tests/fuzz_corpus.rs`).
#[doc(hidden)]
pub mod fuzzing;
pub mod handlers;
pub mod integrations;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod redact;
pub mod reply;
pub mod sandbox;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod suggest;
pub mod timefmt;
pub mod watch;

pub use engine::Engine;
pub use reply::{Outcome, Reply};
