//! Background pollers, run by the leader only (replicas would post twice). The new-DAG announcer
//! ([`announcer`]) watches Airflow's DAG list and tells the ops channel about each new paused DAG
//! once; the dag-sync announcer ([`dag_sync`]) posts "Deployed: …" once per commit that reached
//! the Airflow host and touched the DAG folder; the waits watcher ([`waits`]) starts `--when-idle`
//! deploys when their DAG runs are over and unpauses what ended deploys left paused. Front ends
//! run them in the background (`run`, `serve`, `console`, `sandbox`) or once (`watch --once`,
//! for cron and tests).

pub mod announcer;
pub mod dag_sync;
pub mod poll;
pub mod waits;

pub use announcer::{Announcer, PollReport};
pub use dag_sync::{DagSyncAnnouncer, SyncPollReport};
