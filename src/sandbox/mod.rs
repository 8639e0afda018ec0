//! A simulated Openverse world on loopback: a GitHub with the catalog's releases, a registry that
//! demands ghcr.io's bearer-token dance, and an Airflow speaking `/api/v2` (and `/api/v1` on
//! request) with the real DAG ids. One implementation serves `catalog-chatops sandbox` and the
//! tests; tests change the [`World`] while the servers run and inject faults per service.

mod airflow;
mod faults;
mod github;
mod registry;
mod seed;
pub mod session;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use airflow::{AirflowWorld, SimDag, SimImportError, SimRun, SimTask};
pub use faults::{Faults, Forced};
pub use github::{GithubWorld, RateLimit, SimCommit, SimPull, SimRelease, SimTag};
pub use registry::{
    DOCKER_LIST, OCI_INDEX, OCI_MANIFEST, OciImage, RegistryWorld, SimBlob, SimRepo, oci_image,
    sha256_digest,
};
pub use seed::{CATALOG_REPO, DEPLOYED_COMMIT_INDEX, IMAGE, MONOREPO, monorepo_commits, sim_sha};

use crate::config::{AirflowApi, Config};
use crate::integrations::Service;

/// Everything the fake services know; tests lock it and change it.
#[derive(Debug, Clone)]
pub struct WorldState {
    pub github: GithubWorld,
    pub registry: RegistryWorld,
    pub airflow: AirflowWorld,
}

impl WorldState {
    pub fn faults_mut(&mut self, service: Service) -> &mut Faults {
        match service {
            Service::Github => &mut self.github.faults,
            Service::Registry => &mut self.registry.faults,
            Service::Airflow => &mut self.airflow.faults,
        }
    }

    pub fn faults(&self, service: Service) -> &Faults {
        match service {
            Service::Github => &self.github.faults,
            Service::Registry => &self.registry.faults,
            Service::Airflow => &self.airflow.faults,
        }
    }
}

/// A shared handle on the world. The lock is never held across an `.await`.
#[derive(Debug, Clone)]
pub struct World {
    inner: Arc<Mutex<WorldState>>,
}

impl World {
    pub fn new(state: WorldState) -> World {
        World {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    /// The Openverse catalog as it was: releases in both tag schemes, images on the registry,
    /// the real DAGs, and two runs active that finish a few minutes after this call.
    pub fn openverse() -> World {
        World::new(seed::openverse(true))
    }

    /// Like [`World::openverse`] but with no run active: a deploy check passes at once.
    pub fn openverse_idle() -> World {
        World::new(seed::openverse(false))
    }

    /// An Airflow with `dags` DAGs and `running` running runs (plus the usual GitHub and
    /// registry), for benchmarks.
    pub fn big(dags: usize, running: usize) -> World {
        World::new(seed::big(dags, running))
    }

    /// [`World::big`] with `finished` runs besides the `running` ones (for the scale benchmark:
    /// the running-runs query must filter a long history).
    pub fn big_with_history(dags: usize, finished: usize, running: usize) -> World {
        World::new(seed::big_with_history(dags, finished, running))
    }

    pub fn lock(&self) -> MutexGuard<'_, WorldState> {
        // Handlers only mutate plain data under the lock; a panic cannot leave it half-updated
        // in a way later readers would misread, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the faults of one service.
    pub fn faults<R>(&self, service: Service, f: impl FnOnce(&mut Faults) -> R) -> R {
        f(self.lock().faults_mut(service))
    }

    /// Requests `service` saw for `"METHOD /path"`.
    pub fn count(&self, service: Service, key: &str) -> u64 {
        self.lock().faults(service).count(key)
    }

    /// Requests `service` saw whose key starts with `prefix`.
    pub fn count_prefix(&self, service: Service, prefix: &str) -> u64 {
        self.lock().faults(service).count_prefix(prefix)
    }
}

/// What every handler of one fake service gets.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub world: World,
    pub service: Service,
    /// This server's own base URL (the registry's token realm lives here).
    pub base: String,
    /// Cancelled at shutdown; hanging requests wait for it.
    pub shutdown: CancellationToken,
}

/// Ports to bind on 127.0.0.1; 0 picks a free one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub github: u16,
    pub registry: u16,
    pub airflow: u16,
}

impl Ports {
    pub const RANDOM: Ports = Ports {
        github: 0,
        registry: 0,
        airflow: 0,
    };
    /// The ports `config/sandbox.toml` points at.
    pub const SANDBOX: Ports = Ports {
        github: 18081,
        registry: 18082,
        airflow: 18083,
    };
}

/// The running fakes. [`SandboxHandle::shutdown`] stops them cleanly; dropping the handle stops
/// them too, without waiting.
#[derive(Debug)]
pub struct SandboxHandle {
    pub github_url: String,
    pub registry_url: String,
    pub airflow_url: String,
    pub world: World,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl SandboxHandle {
    /// Points a configuration at the fakes (Airflow as `/api/v2`).
    pub fn configure(&self, config: &mut Config) {
        config.github.api_url = self.github_url.clone();
        config.registry.url = self.registry_url.clone();
        config.airflow.url = self.airflow_url.clone();
        let v1_only = {
            let w = self.world.lock();
            w.airflow.serve_v1 && !w.airflow.serve_v2
        };
        config.airflow.api = if v1_only {
            AirflowApi::V1
        } else {
            AirflowApi::V2
        };
    }

    /// Stops the servers and waits until they are gone: no new connections, hanging requests
    /// released, open connections closed once their request is answered.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            // A server task only ends by finishing or by this abort; neither needs reporting.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
        }
    }

    fn stop(&mut self) {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the three fakes on random loopback ports.
pub async fn start(world: World) -> std::io::Result<SandboxHandle> {
    start_on(world, Ports::RANDOM).await
}

/// Starts the three fakes on the given loopback ports.
pub async fn start_on(world: World, ports: Ports) -> std::io::Result<SandboxHandle> {
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut urls = Vec::new();
    for (service, port) in [
        (Service::Github, ports.github),
        (Service::Registry, ports.registry),
        (Service::Airflow, ports.airflow),
    ] {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let ctx = Ctx {
            world: world.clone(),
            service,
            base: base.clone(),
            shutdown: shutdown.clone(),
        };
        let routes: Router<Ctx> = match service {
            Service::Github => github::routes(),
            Service::Registry => registry::routes(),
            Service::Airflow => airflow::routes(),
        };
        let app = routes
            .layer(axum::middleware::from_fn_with_state(
                ctx.clone(),
                faults::layer,
            ))
            .with_state(ctx);
        let stop = shutdown.clone().cancelled_owned();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(%service, error = %e, "sandbox server stopped");
            }
        }));
        urls.push(base);
    }
    let [github_url, registry_url, airflow_url]: [String; 3] = urls
        .try_into()
        .map_err(|_| std::io::Error::other("three servers expected"))?;
    Ok(SandboxHandle {
        github_url,
        registry_url,
        airflow_url,
        world,
        shutdown,
        tasks,
    })
}

/// Milliseconds since the Unix epoch, the sandbox's clock.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A JSON answer with a status.
pub(crate) fn json(status: u16, value: serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(value)).into_response()
}

/// A random token; `RandomState` is randomly seeded per instance.
pub(crate) fn random_token(prefix: &str) -> String {
    use std::hash::{BuildHasher, RandomState};
    let a = RandomState::new().hash_one(1u8);
    let b = RandomState::new().hash_one(2u8);
    format!("{prefix}{a:016x}{b:016x}")
}

/// Decodes `Authorization: Basic …` into user and password.
pub(crate) fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(bytes).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The token of `Authorization: Bearer …`.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
}

/// `?a=1&b=2&b=3` as pairs (repeated keys kept, values decoded).
pub(crate) type QueryPairs = axum::extract::Query<Vec<(String, String)>>;

pub(crate) fn query_value<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}
