//! Helpers shared by the integration tests that run against the sandbox's fake services:
//! a quick retry policy, a started sandbox and clients pointed at it.
#![allow(dead_code)]

use std::time::Duration;

use catalog_chatops::config::AirflowApi;
use catalog_chatops::integrations::HttpPolicy;
use catalog_chatops::integrations::airflow::AirflowClient;
use catalog_chatops::integrations::github::GithubClient;
use catalog_chatops::integrations::registry::RegistryClient;
use catalog_chatops::sandbox::{self, SandboxHandle, World};
use secrecy::SecretString;

/// Small numbers so that retries and timeouts take milliseconds.
pub fn policy() -> HttpPolicy {
    HttpPolicy {
        timeout: Duration::from_millis(500),
        attempts: 3,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_wait: Duration::from_secs(5),
    }
}

pub async fn sandbox(world: World) -> SandboxHandle {
    sandbox::start(world).await.expect("start the sandbox")
}

pub fn github(h: &SandboxHandle, token: Option<&str>) -> GithubClient {
    GithubClient::new(
        &h.github_url,
        token.map(|t| SecretString::from(t.to_string())),
        policy(),
    )
    .expect("github client")
}

pub fn registry(h: &SandboxHandle, creds: Option<(&str, &str)>) -> RegistryClient {
    RegistryClient::new(
        &h.registry_url,
        creds.map(|(u, _)| u.to_string()),
        creds.map(|(_, p)| SecretString::from(p.to_string())),
        policy(),
    )
    .expect("registry client")
}

/// A client logging in as the sandbox's `chatops` user with `password`.
pub fn airflow(h: &SandboxHandle, api: AirflowApi, password: &str) -> AirflowClient {
    AirflowClient::new(
        &h.airflow_url,
        api,
        "chatops",
        Some(SecretString::from(password.to_string())),
        policy(),
    )
    .expect("airflow client")
}

/// The sandbox user's password.
pub const PASSWORD: &str = "sandbox";
