//! Clients for the outside world the bot acts on: GitHub (releases), the container registry
//! (image manifests and tags), Airflow (DAG runs, DAGs, health), the infrastructure steps
//! (`infra`, the argv runner) and the infrastructure checkout (`git`).
//!
//! Every call goes through one [`HttpPolicy`] (timeout, bounded retries with backoff honouring
//! `Retry-After`) and fails with an [`UpstreamError`]: one sentence naming the service and the cause,
//! never a secret. An answer that cannot be had is an answer of its own: the caller blocks on it.

pub mod airflow;
pub mod checkout;
pub mod git;
pub mod github;
mod http;
pub mod infra;
pub mod registry;

pub use http::{HttpPolicy, Service, UpstreamError};

use std::sync::Arc;

use crate::auth_memory::AuthMemory;
use crate::config::Config;

/// The three clients, built from the configuration and its secrets.
#[derive(Debug, Clone)]
pub struct Integrations {
    pub github: github::GithubClient,
    pub registry: registry::RegistryClient,
    pub airflow: airflow::AirflowClient,
}

impl Integrations {
    pub fn from_config(config: &Config, policy: HttpPolicy) -> Result<Integrations, UpstreamError> {
        Ok(Integrations {
            github: github::GithubClient::from_config(config, policy.clone())?,
            registry: registry::RegistryClient::from_config(config, policy.clone())?,
            airflow: airflow::AirflowClient::from_config(config, policy)?,
        })
    }

    /// Lets the clients keep what they learn about the upstreams' auth in `memory` (the store)
    /// for the next process (today the registry's token realm and anonymous tokens).
    pub fn remembering(mut self, memory: Arc<dyn AuthMemory>) -> Integrations {
        self.registry = self.registry.remembering(memory);
        self
    }
}
