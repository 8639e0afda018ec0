//! Fault injection against the integrations, the store and the processes (issue 8, "Proof under
//! stress"; the table is docs/RELIABILITY.md). Every case ends with the same three checks: the
//! outcome the user sees, no apply on the step side that was not approved, and `audit verify`
//! passing with every journaled transition and every command attempt on record.

#![recursion_limit = "256"]

// A test target's root resolves modules beside it, so the cases' own folder is named.
#[path = "faults/harness.rs"]
mod harness;
#[path = "faults/kills.rs"]
mod kills;
#[path = "faults/outlive.rs"]
mod outlive;
mod fake_discord;
#[path = "faults/store_down.rs"]
mod store_down;
mod support;
#[path = "faults/upstream.rs"]
mod upstream;
