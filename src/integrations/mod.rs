//! Clients for the outside world the bot acts on: GitHub, the registry, Airflow and the
//! infrastructure steps.

pub mod infra;
