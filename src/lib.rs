//! catalog-chatops: deploy and operate the Openverse Catalog from chat, safely.
//!
//! Data flows one way: a front end ([`chat`]) → [`command`] (parse) → [`policy`] (authorize) →
//! [`engine`] → [`handlers`] → [`deploy`], [`integrations`], the [`store`]; replies flow back
//! through the [`conversation::Conversation`] the front end handed in.
//!
//! Each layer imports only the layers below it (`docs/ARCHITECTURE.md`; the unit test
//! `layers::layers_import_only_downward` checks it):
//!
//! - ground floor, pure types and ports: [`config`], [`command`], [`policy`], [`conversation`],
//!   [`version`], [`timefmt`], [`redact`], [`reply`], [`backfill`], [`links`], [`coalesce`],
//!   [`metrics`], [`shutdown`], and the deploy's state machine ([`deploy::state`],
//!   [`deploy::step`]);
//! - storage and the outside world: [`store`], [`leader`], [`integrations`];
//! - the work: [`context`] (what it gets), [`deploy`], [`handlers`], [`watch`], [`engine`];
//! - the front ends: [`chat`], [`server`], [`sandbox`] (and the binary's `main.rs`).

pub mod auth_memory;
pub mod backfill;
pub mod chat;
pub mod coalesce;
pub mod command;
pub mod config;
pub mod context;
pub mod conversation;
pub mod deploy;
pub mod engine;
pub mod handlers;
pub mod integrations;
#[cfg(test)]
mod layers;
pub mod leader;
pub mod links;
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
pub mod version;
pub mod watch;

pub use engine::Engine;
pub use reply::{Outcome, Reply};
