//! The HTTP server: `/healthz`, `/readyz`, `/metrics` and read-only pages about deploys, locks and
//! the audit log (axum, server-rendered HTML, no JavaScript).
//!
//! Entry points for the front ends: [`AppState::new`], [`router`] and [`serve`]. `serve` (the CLI
//! subcommand) and `run` both start it; `run` flips [`Readiness::set_chat`] once Discord is
//! connected, `serve` has no chat and sets it at start.

mod auth;
mod chart;
mod html;
mod pages;

pub use crate::links::{sign_path, verify_signature};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::redact::Redactor;
use crate::store::Store;

/// What `/readyz` needs beyond the store: flags the front end sets.
#[derive(Debug, Default)]
pub struct Readiness {
    chat: AtomicBool,
    stopping: AtomicBool,
}

impl Readiness {
    /// The chat front end is connected (or there is none, as in `serve`).
    pub fn set_chat(&self, connected: bool) {
        self.chat.store(connected, Ordering::SeqCst);
    }

    /// The process is shutting down: not ready, so a load balancer stops sending work.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn chat(&self) -> bool {
        self.chat.load(Ordering::SeqCst)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// Everything the handlers read; shared behind an `Arc`.
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub redactor: Arc<Redactor>,
    pub readiness: Arc<Readiness>,
    /// Required beyond loopback (config validation guarantees it is set there).
    token: Option<SecretString>,
    /// Loopback: no auth, as anyone on the host already holds the store.
    open: bool,
}

impl AppState {
    pub fn new(config: Arc<Config>, store: Store, readiness: Arc<Readiness>) -> AppState {
        let redactor = Arc::new(Redactor::new(config.secrets.values()));
        AppState {
            store,
            redactor,
            readiness,
            token: config.secrets.server_token.clone(),
            open: config.server.bind.ip().is_loopback(),
            config,
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/", get(pages::deploys))
        .route("/deploys/{id}", get(pages::deploy))
        .route("/locks", get(pages::locks))
        .route("/audit", get(pages::audit))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(protected)
        .with_state(state)
}

/// Serves until `cancel` fires, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let readiness = state.readiness.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            cancel.cancelled().await;
            readiness.set_stopping();
        })
        .await
}

/// Binds `addr`, saying which address is taken when it fails.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    let store = match s.store.is_current().await {
        Ok(true) => Ok(()),
        Ok(false) => Err("migrations pending".to_string()),
        Err(e) => Err(format!(
            "store unreachable: {}",
            s.redactor.redact(&e.to_string())
        )),
    };
    let mut problems = Vec::new();
    if let Err(e) = store {
        problems.push(e);
    }
    if !s.readiness.chat() {
        problems.push("chat not connected".into());
    }
    if s.readiness.stopping() {
        problems.push("shutting down".into());
    }
    crate::metrics::set_ready(problems.is_empty());
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
            .into_response()
    }
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}
