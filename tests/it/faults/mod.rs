//! Fault injection against the integrations, the store and the processes (issue 8, "Proof under
//! stress"; the table is docs/RELIABILITY.md). Every case ends with the same three checks: the
//! outcome the user sees, no apply on the step side that was not approved, and `audit verify`
//! passing with every journaled transition and every command attempt on record.

mod kills;
mod store_down;
mod upstream;
