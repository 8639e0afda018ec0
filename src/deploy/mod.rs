//! The deploy workflow: state machine, preflight, steps, plan fingerprint, locks.

pub mod card;
pub mod dag_runs;
pub mod fingerprint;
pub mod preflight;
pub mod recovery;
pub mod workflow;
