//! The deploy room: the state machine ([`state`], [`step`]), the workflow that drives it
//! ([`workflow`]) with its parts — preflight, the step runner's streaming and journaling
//! ([`runner`]), approval rules ([`approval`]), verification ([`verify`]), cancel and resolve
//! ([`settle`]), the bump's check in git ([`bump_check`]), what a release ships ([`changes`]),
//! the infra pull request ([`infra_pr`]) — and what reads it back: recovery of dead owners, the
//! status card.
//!
//! [`state`] and [`step`] are pure and import nothing from the crate: they stand on the ground
//! floor, so the store below can persist them.

pub mod ansible;
mod ansible_steps;
pub mod approval;
pub mod bump_check;
pub mod card;
pub mod changes;
pub mod dag_runs;
pub mod fingerprint;
pub mod infra_pr;
mod journal;
pub mod pauses;
mod planned;
pub mod preflight;
pub mod recovery;
mod rollback;
mod runner;
mod settle;
pub mod state;
pub mod step;
mod verify;
pub mod waiting;
pub mod workflow;

pub use state::{DeployState, Event};
pub use step::Step;
