//! The long-running and operator subcommands of the binary: `run` (Discord or Slack, the HTTP
//! server and the leader-elected watchers), `serve` (the same without a chat), `healthcheck`, and
//! the helpers of `exec --claim`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use catalog_chatops::Engine;
use catalog_chatops::chat::{Conversation, discord, slack};
use catalog_chatops::config::Config;
use catalog_chatops::leader::Leadership;
use catalog_chatops::server::{self, AppState, Readiness};
use catalog_chatops::store::Store;
use catalog_chatops::watch::{announcer, dag_sync, waits};

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

/// Announcements of a process without a chat front end (`serve`): they go to the log, where an
/// operator's log pipeline picks them up.
struct LogAnnouncements;

#[async_trait::async_trait]
impl Conversation for LogAnnouncements {
    async fn post(&self, text: &str) {
        tracing::info!(announcement = %text, "announcement");
    }
}

/// `serve`: the HTTP server and the leader-elected watchers, without a chat.
pub async fn serve(config: Config, store: Store) -> ExitCode {
    let shutdown = CancellationToken::new();
    let engine = match Engine::new(config, store.clone()) {
        Ok(e) => e.with_shutdown(shutdown.clone()),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    services(engine, store, None, shutdown).await
}

/// The chat front end a `run` process serves.
enum Front {
    Discord(discord::Bot),
    /// Boxed: it carries its handler and roles cache, several times a Discord client's size.
    Slack(Box<slack::Bot>),
}

impl Front {
    /// True while the chat connection is up (`/readyz` follows it).
    fn connected(&self) -> Arc<std::sync::atomic::AtomicBool> {
        match self {
            Front::Discord(b) => b.connected(),
            Front::Slack(b) => b.connected(),
        }
    }

    fn announcements(&self) -> Option<Arc<dyn Conversation>> {
        match self {
            Front::Discord(b) => b.announcements(),
            Front::Slack(b) => b.announcements(),
        }
    }

    /// Serves until the connection ends for good or `stop` is cancelled.
    async fn serve(self, stop: CancellationToken) -> Result<(), String> {
        match self {
            Front::Discord(bot) => {
                let shards = bot.shard_manager();
                tokio::select! {
                    r = bot.run() => r.map_err(|e| e.to_string()),
                    _ = stop.cancelled() => {
                        shards.shutdown_all().await;
                        Ok(())
                    }
                }
            }
            Front::Slack(bot) => bot.run(stop).await.map_err(|e| e.to_string()),
        }
    }
}

/// `run --chat slack`: Slack over Socket Mode, the HTTP server and the leader-elected watchers.
pub async fn run_slack(config: Config, store: Store) -> ExitCode {
    let shutdown = CancellationToken::new();
    let app = config.secrets.slack_app_token.clone();
    let bot = config.secrets.slack_bot_token.clone();
    let engine = match Engine::new(config, store.clone()) {
        Ok(e) => e.with_shutdown(shutdown.clone()),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let bot = match slack::connect(engine.clone(), app.as_ref(), bot.as_ref()).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            store.close().await;
            return ExitCode::from(3);
        }
    };
    services(engine, store, Some(Front::Slack(Box::new(bot))), shutdown).await
}

/// `run`: Discord, the HTTP server and the leader-elected watchers.
pub async fn run(config: Config, store: Store) -> ExitCode {
    let shutdown = CancellationToken::new();
    let token = config.secrets.discord_token.clone();
    let api_url = config.discord.api_url.clone();
    let engine = match Engine::new(config, store.clone()) {
        Ok(e) => e.with_shutdown(shutdown.clone()),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let bot = match discord::connect(engine.clone(), token.as_ref(), api_url.as_deref()).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            store.close().await;
            return ExitCode::from(3);
        }
    };
    services(engine, store, Some(Front::Discord(bot)), shutdown).await
}

/// Runs the server, the watchers (on the leader only) and the chat front end, if any, until
/// SIGTERM/SIGINT; then stops taking commands, lets a running step finish within the grace
/// period (the workflow watches the same token), closes the store and exits.
async fn services(
    engine: Engine,
    store: Store,
    bot: Option<Front>,
    shutdown: CancellationToken,
) -> ExitCode {
    catalog_chatops::shutdown::on_signals(shutdown.clone());
    let config = engine.ctx().config.clone();
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
    let announce: Arc<dyn Conversation> = match &bot {
        // Without a chat front end there is nothing to wait for.
        None => {
            readiness.set_chat(true);
            Arc::new(LogAnnouncements)
        }
        Some(b) => {
            // /readyz follows the chat connection.
            let connected = b.connected();
            let r = readiness.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    r.set_chat(connected.load(std::sync::atomic::Ordering::SeqCst));
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
            b.announcements()
                .unwrap_or_else(|| Arc::new(LogAnnouncements))
        }
    };
    let state = Arc::new(AppState::new(config.clone(), store.clone(), readiness));
    // Deploys whose process died are carried on by whichever process starts next (their steps
    // kept running under their supervisors), and looked for again every `poll`, so a deploy
    // whose `exec` died while this process runs is carried on too.
    let reattacher = {
        let ctx = engine.ctx().clone();
        let conv = announce.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Err(e) =
                    catalog_chatops::deploy::recovery::reattach(&ctx, conv.as_ref()).await
                {
                    tracing::error!(error = %e, "cannot look for deploys to carry on");
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.cancelled() => {}
                }
            }
        })
    };
    let ctx = engine.ctx().clone();
    let leader = tokio::spawn(Leadership::acquire_loop(
        store.clone(),
        WATCHERS_KEY,
        poll,
        // Only the leader polls Airflow and announces: replicas would announce twice.
        move |lead: CancellationToken| {
            let task = announcer::spawn(ctx.clone(), announce.clone(), lead.clone());
            let sync = dag_sync::spawn(ctx.clone(), announce.clone(), lead.clone());
            // --when-idle deploys start here, and recovery unpauses what crashed deploys paused.
            let waits = waits::spawn(ctx.clone(), announce.clone(), lead.clone());
            async move {
                lead.cancelled().await;
                let _ = task.await;
                let _ = sync.await;
                let _ = waits.await;
            }
        },
        shutdown.clone(),
    ));
    tracing::info!(addr = %local, "serving /healthz, /readyz, /metrics and the pages");
    let mode = if bot.is_some() { "run" } else { "serve" };
    eprintln!("catalog-chatops {mode}: listening on http://{local}");
    let server = server::serve(listener, state, shutdown.clone());
    let result = match bot {
        None => server.await.map_err(|e| e.to_string()),
        Some(bot) => {
            let chat = bot.serve(shutdown.clone());
            let (s, c) = tokio::join!(server, async {
                let r = chat.await;
                // The chat connection ended for good (or on a signal): stop everything else too.
                shutdown.cancel();
                r
            });
            s.map_err(|e| e.to_string()).and(c)
        }
    };
    shutdown.cancel();
    let _ = leader.await;
    // A deploy being carried on gets the shutdown grace like any running step.
    let _ = reattacher.await;
    store.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
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
