//! All integration tests in one binary: each former test file is a module here, so filters keep
//! working (`cargo test discord`, `cargo test deploy_flow::`) and the crate links once, not once
//! per file. Shared harnesses sit beside them: `support` (stores, tools, child processes),
//! `sandbox_support` (clients on a sandbox world), the fake Discord and Slack servers.
#![recursion_limit = "256"]

mod fake_discord;
mod fake_slack;
mod harness;
mod sandbox_support;
mod support;

mod airflow_ops;
mod airflow_real;
mod ansible_flow;
mod card;
mod cli;
mod dag_sync_announcer;
mod deploy_flow;
mod deploy_gate;
mod discord;
mod engine;
mod faults;
mod fuzz_corpus;
mod infra_git;
mod injection;
mod integrations_airflow;
mod integrations_github;
mod integrations_registry;
mod migrations_catalog;
mod ops;
mod pause_and_wait;
mod permissions;
mod registry_real;
mod replicas;
mod runbook_script;
mod secrets;
mod seen_dags;
mod slack;
mod steps;
mod store;
mod watch_cli;
