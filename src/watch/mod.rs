//! Background pollers. The new-DAG announcer ([`announcer`]) watches Airflow's DAG list and tells
//! the ops channel about each new paused DAG once; front ends run it in the background (`run`,
//! `console`, `sandbox`) or once (`watch --once`, for cron and tests).

pub mod announcer;

pub use announcer::{Announcer, PollReport};
