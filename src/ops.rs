//! The operator subcommands of the binary: `serve` (HTTP server plus the watchers' leader
//! election, no Discord), `healthcheck`, and the helpers of `exec --claim`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use catalog_chatops::config::Config;
use catalog_chatops::leader::Leadership;
use catalog_chatops::server::{self, AppState, Readiness};
use catalog_chatops::store::Store;

/// The advisory-lock name the watchers' leader holds.
pub const WATCHERS_KEY: &str = "catalog-chatops/watchers";

/// Who claims a message: host and pid, as in the audit's owner fields.
pub fn claimant() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into());
    format!("{host}:{}", std::process::id())
}

pub fn already_claimed(key: &str, json: bool) {
    let message = format!("Message `{key}` was already handled by another process; skipped.");
    if json {
        println!(
            "{}",
            serde_json::json!({ "type": "result", "outcome": "ok", "claimed": false, "message": message })
        );
    } else {
        println!("{message}");
    }
}

/// Runs the server and the leader election until SIGTERM/SIGINT, then stops both, closes the
/// store and exits 0.
pub async fn serve(config: Config, store: Store) -> ExitCode {
    let shutdown = CancellationToken::new();
    catalog_chatops::shutdown::on_signals(shutdown.clone());
    let bind = config.server.bind;
    let listener = match server::bind(bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let local = listener.local_addr().unwrap_or(bind);
    let poll = (config.deploy.lease / 3).max(Duration::from_millis(200));
    let readiness = Arc::new(Readiness::default());
    // `serve` has no chat front end: it is as connected as it will ever be.
    readiness.set_chat(true);
    let state = Arc::new(AppState::new(Arc::new(config), store.clone(), readiness));
    let leader = tokio::spawn(Leadership::acquire_loop(
        store.clone(),
        WATCHERS_KEY,
        poll,
        // The watchers (src/watch) start here when they are wired in; until then leading is
        // visible in /metrics (catalog_chatops_leader) and the log.
        |lead: CancellationToken| async move { lead.cancelled().await },
        shutdown.clone(),
    ));
    tracing::info!(addr = %local, "serving /healthz, /readyz, /metrics and the pages");
    eprintln!("catalog-chatops serve: listening on http://{local}");
    let result = server::serve(listener, state, shutdown.clone()).await;
    shutdown.cancel();
    let _ = leader.await;
    store.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// GET /healthz on the configured port over loopback (a wildcard bind answers there too).
pub async fn healthcheck(config: &Config) -> ExitCode {
    let mut addr = config.server.bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(Ok(buf)) if buf.starts_with(b"HTTP/1.1 200") => {
            println!("healthy: http://{addr}/healthz");
            ExitCode::SUCCESS
        }
        Ok(Ok(buf)) => {
            let first = String::from_utf8_lossy(&buf);
            eprintln!(
                "unhealthy: {}",
                first.lines().next().unwrap_or("empty answer")
            );
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("unhealthy: http://{addr}/healthz: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("unhealthy: http://{addr}/healthz did not answer within 3 s");
            ExitCode::FAILURE
        }
    }
}
