//! The `catalog-chatops` binary: the CLI of interface.md. Everything it does is a thin call into
//! the library; errors become one clear sentence and an exit code here, at the edge.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use catalog_chatops::chat::{console, discord, exec, slack};
use catalog_chatops::config::{self, Config, ConfigError};
use catalog_chatops::integrations::infra::detached;
use catalog_chatops::policy::Actor;
use catalog_chatops::sandbox::{self, Ports};
use catalog_chatops::store::{Store, redact_url};
use catalog_chatops::watch::{Announcer, DagSyncAnnouncer, announcer, dag_sync, waits};
use catalog_chatops::{Engine, timefmt};
use tokio_util::sync::CancellationToken;

mod ops;

/// Exit code when the bot cannot start: bad config or unreachable store. Distinct from the
/// outcome codes 0–2 of `exec`.
const EXIT_SETUP: u8 = 3;

#[derive(Parser)]
#[command(
    name = "catalog-chatops",
    version,
    about = "Deploy and operate the Openverse Catalog from chat, safely."
)]
struct Cli {
    /// The config file [default: config/catalog-chatops.toml; config/sandbox.toml for `sandbox`].
    #[arg(long, global = true, env = "CATALOG_CHATOPS_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Chat {
    Discord,
    Slack,
}

/// Which infra process the sandbox simulates (`sandbox --flow`).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SandboxFlow {
    /// The Terraform era: Terraform-shaped plan and apply; needs only `just`.
    Terraform,
    /// Today's process: monorepo releases, a real Ansible playbook's dry run and apply (needs
    /// ansible-playbook: `bash scripts/ansible-venv.sh`).
    Ansible,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Connect to the chat (Discord by default, token in env DISCORD_TOKEN; or Slack, tokens in
    /// env SLACK_APP_TOKEN and SLACK_BOT_TOKEN) and serve it with the watchers and the HTTP
    /// server until interrupted.
    Run {
        /// Which chat to serve.
        #[arg(long, value_enum, env = "CATALOG_CHATOPS_CHAT", default_value_t = Chat::Discord)]
        chat: Chat,
    },
    /// An interactive chat in the terminal, same commands and output as Discord.
    Console {
        /// Act as this user (default: the OS user).
        #[arg(long)]
        user: Option<String>,
        /// Claim this role (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Handle one chat message, print what the bot posts, exit with the outcome's code.
    Exec {
        #[arg(long)]
        user: Option<String>,
        #[arg(long = "role")]
        roles: Vec<String>,
        /// One JSON object per line; the last is the result.
        #[arg(long)]
        json: bool,
        /// Claim this message id in the store first; when another process (a replica, a
        /// redelivery) already claimed it, do nothing and exit 0.
        #[arg(long)]
        claim: Option<String>,
        /// The message, e.g. '!deploy check catalog v1.5.3'.
        text: String,
    },
    /// The HTTP server (health, metrics, pages) and the watchers' leader election, without
    /// Discord; stops gracefully on SIGTERM/SIGINT.
    Serve,
    /// Exit 0 when the local server answers /healthz (for container HEALTHCHECKs).
    Healthcheck,
    /// Start a simulated Openverse world (GitHub, registry, Airflow, infra) on loopback and a
    /// console bound to it.
    Sandbox {
        #[arg(long)]
        user: Option<String>,
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Serve the simulated world (on the ports config/sandbox.toml names) without a console,
        /// until interrupted; talk to it with `exec --config config/sandbox.toml …`.
        #[arg(long)]
        serve: bool,
        /// The infra process to simulate: `terraform` (config/sandbox.toml, the default) or
        /// `ansible` (config/sandbox-ansible.toml: today's monorepo releases and a real
        /// playbook; needs ansible-playbook).
        #[arg(long, value_enum)]
        flow: Option<SandboxFlow>,
    },
    /// Run the new-DAG announcer: poll Airflow every `[watch] poll_interval` and print each new
    /// paused DAG once (`--once`: poll once and exit, for cron and scripts).
    Watch {
        #[arg(long)]
        once: bool,
        /// One JSON object per line (announcements carry `enable_command` and `button_id`).
        #[arg(long)]
        json: bool,
    },
    /// Apply the store's migrations and exit.
    Migrate,
    /// Read the audit log.
    Audit {
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// Validate the config and say what is wrong, precisely.
    CheckConfig,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// The newest events, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        target: Option<String>,
    },
    /// Walk the hash chain; exit 1 naming the first broken event.
    Verify,
    /// Every event as JSON lines, oldest first.
    Export,
}

fn main() -> ExitCode {
    // A deploy step's supervisor (issue 16): started by this binary for itself, detached, with
    // no config, runtime or logging of its own; not a subcommand anyone types.
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(std::ffi::OsStr::new(detached::SUPERVISOR_ARG)) {
        let Some(dir) = args.next() else {
            return ExitCode::from(2);
        };
        return ExitCode::from(detached::supervise(std::path::Path::new(&dir)) as u8);
    }
    let cli = Cli::parse();
    // Every bot process runs its deploy steps detached, with itself as their supervisor.
    if let Ok(exe) = std::env::current_exe() {
        detached::enable(exe);
    }
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    runtime.block_on(run(cli))
}

fn init_tracing(format: LogFormat) {
    // Quiet by default: exec and console print the bot's words on stdout; logs go to stderr.
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // tungstenite's trace level prints every websocket message whole: the chat events, and with
    // them whatever people typed, a pasted token included. Nothing below debug from it, even
    // under RUST_LOG=trace (secrets never reach the logs).
    for quiet in ["tungstenite=debug", "tokio_tungstenite=debug"] {
        if let Ok(d) = quiet.parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> ExitCode {
    let config_path = cli.config.clone().unwrap_or_else(|| {
        PathBuf::from(match cli.command {
            Cmd::Sandbox {
                flow: Some(SandboxFlow::Ansible),
                ..
            } => "config/sandbox-ansible.toml",
            Cmd::Sandbox { .. } => "config/sandbox.toml",
            _ => "config/catalog-chatops.toml",
        })
    });
    let mut config = match config::load(&config_path) {
        Ok(c) => c,
        Err(e) => return config_failure(&config_path, &e),
    };
    match cli.command {
        Cmd::Run { chat: Chat::Slack } => {
            // Say what is missing before touching the store or the network.
            let s = &config.secrets;
            if let Err(e) =
                slack::check_tokens(s.slack_app_token.as_ref(), s.slack_bot_token.as_ref())
            {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_SETUP);
            }
            let Some(store) = open_store(&config, true).await else {
                return ExitCode::from(EXIT_SETUP);
            };
            ops::run_slack(config, store).await
        }
        Cmd::Run {
            chat: Chat::Discord,
        } => {
            // Say what is missing before touching the store or the network.
            if config.secrets.discord_token.is_none() {
                eprintln!("error: {}", discord::RunError::MissingToken);
                return ExitCode::from(EXIT_SETUP);
            }
            if config.discord.guild_id.is_none() {
                eprintln!("error: {}", discord::RunError::MissingGuild);
                return ExitCode::from(EXIT_SETUP);
            }
            let Some(store) = open_store(&config, true).await else {
                return ExitCode::from(EXIT_SETUP);
            };
            ops::run(config, store).await
        }
        Cmd::Serve => {
            let Some(store) = open_store(&config, true).await else {
                return ExitCode::from(EXIT_SETUP);
            };
            ops::serve(config, store).await
        }
        Cmd::Healthcheck => ops::healthcheck(&config).await,
        Cmd::CheckConfig => {
            println!(
                "{} is valid: targets {}; store {}.",
                config_path.display(),
                config.target_names().join(", "),
                redact_url(&config.store.url)
            );
            ExitCode::SUCCESS
        }
        Cmd::Migrate => {
            let Some(store) = open_store(&config, false).await else {
                return ExitCode::from(EXIT_SETUP);
            };
            match store.migrate().await {
                Ok(applied) if applied.is_empty() => {
                    println!(
                        "The store is up to date ({}).",
                        redact_url(&config.store.url)
                    );
                    ExitCode::SUCCESS
                }
                Ok(applied) => {
                    let list: Vec<String> = applied.iter().map(i64::to_string).collect();
                    println!(
                        "Applied migrations {} to {}.",
                        list.join(", "),
                        redact_url(&config.store.url)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_SETUP)
                }
            }
        }
        Cmd::Audit { action } => {
            let Some(store) = open_store(&config, true).await else {
                return ExitCode::from(EXIT_SETUP);
            };
            audit(&store, action).await
        }
        Cmd::Exec {
            user,
            roles,
            json,
            claim,
            text,
        } => {
            let Some(store) = open_store(&config, true).await else {
                return ExitCode::from(EXIT_SETUP);
            };
            if let Some(key) = claim {
                match store.claim(&key, &ops::claimant()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        ops::already_claimed(&key, json);
                        store.close().await;
                        return ExitCode::SUCCESS;
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(EXIT_SETUP);
                    }
                }
            }
            let actor = local_actor(user, roles);
            let shutdown = tokio_util::sync::CancellationToken::new();
            catalog_chatops::shutdown::on_signals(shutdown.clone());
            let engine = match Engine::new(config, store.clone()) {
                Ok(e) => e.with_shutdown(shutdown),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_SETUP);
                }
            };
            // Deploys whose process died are carried on first (their steps kept running).
            reattach(&engine, &exec::StdoutConversation { json }).await;
            let code = exec::run(&engine, &actor, &text, json).await;
            store.close().await;
            ExitCode::from(code as u8)
        }
        Cmd::Watch { once, json } => {
            let Some(store) = open_store(&config, true).await else {
                return ExitCode::from(EXIT_SETUP);
            };
            let engine = match Engine::new(config, store.clone()) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_SETUP);
                }
            };
            let conv = exec::StdoutConversation { json };
            let announcer = Announcer::new(engine.ctx().clone());
            let code = if once {
                let sync = DagSyncAnnouncer::new(engine.ctx().clone());
                match sync.poll_once(&conv).await {
                    Ok(r) if r.disabled => {}
                    Ok(r) => eprintln!(
                        "dag-sync: the host has {}{}; {} DAG commit(s) recorded, {} announced.",
                        r.deployed.as_deref().map_or("?", |s| &s[..s.len().min(7)]),
                        if r.seeded {
                            " (first poll: recorded)"
                        } else {
                            ""
                        },
                        r.recorded.len(),
                        r.announced.len()
                    ),
                    Err(e) => eprintln!("error: the dag-sync poll failed: {e}"),
                }
                match announcer.poll_once(&conv).await {
                    Ok(r) => {
                        eprintln!(
                            "Polled {} DAGs: {}{} new, {} announced.",
                            r.dags,
                            if r.seeded {
                                "seeded the seen set; "
                            } else {
                                ""
                            },
                            r.new.len(),
                            r.announced.len()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: the poll failed: {e}");
                        ExitCode::FAILURE
                    }
                }
            } else {
                let cancel = CancellationToken::new();
                let stop = cancel.clone();
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    stop.cancel();
                });
                let sync = DagSyncAnnouncer::new(engine.ctx().clone());
                tokio::join!(
                    announcer.run(&conv, cancel.clone()),
                    sync.run(&conv, cancel)
                );
                ExitCode::SUCCESS
            };
            store.close().await;
            code
        }
        Cmd::Sandbox {
            user,
            roles,
            serve,
            flow,
        } => {
            let wanted = match flow {
                Some(SandboxFlow::Ansible) => Some(config::Flow::Ansible),
                Some(SandboxFlow::Terraform) => Some(config::Flow::Terraform),
                None => None,
            };
            if let Some(wanted) = wanted
                && let Some((name, t)) = config.targets.iter().find(|(_, t)| t.flow != wanted)
            {
                eprintln!(
                    "error: --flow {} but target {name} in {} uses flow = \"{}\"; drop --config \
                     to use the sandbox's own config for that flow",
                    wanted.as_str(),
                    config_path.display(),
                    t.flow.as_str()
                );
                return ExitCode::from(EXIT_SETUP);
            }
            // The console keeps the infra stand-in's state in a temp dir; `--serve` uses the
            // configured workdir, because the `exec` processes that run the steps need it.
            let infra = match tempfile::tempdir() {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: cannot create a temp dir: {e}");
                    return ExitCode::from(EXIT_SETUP);
                }
            };
            let infra_dir = (!serve).then(|| infra.path());
            let world = match sandbox::session::start(&mut config, Ports::SANDBOX, infra_dir).await
            {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_SETUP);
                }
            };
            let urls = format!(
                "GitHub {} · registry {} · Airflow {}",
                world.github_url, world.registry_url, world.airflow_url
            );
            if serve {
                println!("Sandbox serving: {urls}. Press Ctrl-C to stop.");
                let _ = tokio::signal::ctrl_c().await;
                world.shutdown().await;
                return ExitCode::SUCCESS;
            }
            let Some(store) = open_store(&config, true).await else {
                return ExitCode::from(EXIT_SETUP);
            };
            let actor = local_actor(user, roles);
            let banner = format!(
                "catalog-chatops sandbox · {urls} · store {}\n\
                 Two DAG runs are active for the first minutes, so `!deploy check catalog {}` \
                 is blocked until they finish. Switch user with `:as NAME [ROLE...]`.",
                redact_url(&config.store.url),
                if config
                    .targets
                    .values()
                    .any(|t| t.flow == config::Flow::Ansible)
                {
                    "latest"
                } else {
                    "v1.5.3"
                }
            );
            let code = console_session(config, &store, actor, &banner).await;
            world.shutdown().await;
            code
        }
        Cmd::Console { user, roles } => {
            let Some(store) = open_store(&config, true).await else {
                return ExitCode::from(EXIT_SETUP);
            };
            let actor = local_actor(user, roles);
            let banner = format!(
                "catalog-chatops console · config {} · store {}",
                config_path.display(),
                redact_url(&config.store.url)
            );
            console_session(config, &store, actor, &banner).await
        }
    }
}

/// The interactive console (`console`, `sandbox`) until the person quits, with the announcers
/// and the reattach sweep running beside it; closes the store afterwards.
async fn console_session(config: Config, store: &Store, actor: Actor, banner: &str) -> ExitCode {
    let engine = match Engine::new(config, store.clone()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    let watcher = spawn_announcer(&engine);
    spawn_reattach(&engine);
    let result = console::run(&engine, actor, banner).await;
    watcher.cancel();
    store.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The new-DAG announcer in the background of a console: announcements print like messages.
fn spawn_announcer(engine: &Engine) -> CancellationToken {
    let cancel = CancellationToken::new();
    let conv: std::sync::Arc<dyn catalog_chatops::chat::Conversation> =
        std::sync::Arc::new(exec::StdoutConversation { json: false });
    announcer::spawn(engine.ctx().clone(), conv.clone(), cancel.clone());
    dag_sync::spawn(engine.ctx().clone(), conv.clone(), cancel.clone());
    waits::spawn(engine.ctx().clone(), conv, cancel.clone());
    cancel
}

/// Carries on the deploys whose process died (their detached steps outlived it), speaking in
/// `conv`; see `deploy::recovery::reattach`.
async fn reattach(engine: &Engine, conv: &dyn catalog_chatops::chat::Conversation) {
    if let Err(e) = catalog_chatops::deploy::recovery::reattach(engine.ctx(), conv).await {
        tracing::error!(error = %e, "cannot look for deploys to carry on");
    }
}

/// [`reattach`] in the background of a console, its messages printed like the console's.
fn spawn_reattach(engine: &Engine) {
    let engine = engine.clone();
    tokio::spawn(async move {
        reattach(&engine, &exec::StdoutConversation { json: false }).await;
    });
}

fn config_failure(path: &std::path::Path, e: &ConfigError) -> ExitCode {
    match e {
        ConfigError::Invalid(problems) => {
            eprintln!("{} has {} problem(s):", path.display(), problems.0.len());
            for p in &problems.0 {
                eprintln!("  - {p}");
            }
        }
        other => eprintln!("error: {other}"),
    }
    ExitCode::from(EXIT_SETUP)
}

/// Opens the store and, unless told not to, applies pending migrations (they run at start).
async fn open_store(config: &Config, migrate: bool) -> Option<Store> {
    let store = match Store::open(&config.store.url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    if migrate && let Err(e) = store.migrate().await {
        eprintln!("error: {e}");
        return None;
    }
    Some(store)
}

fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

fn local_actor(user: Option<String>, roles: Vec<String>) -> Actor {
    let os = os_user();
    Actor::local(user.as_deref().unwrap_or(&os), &roles, &os)
}

async fn audit(store: &Store, action: AuditCmd) -> ExitCode {
    match action {
        AuditCmd::List { limit, target } => {
            match store.list_audit(limit, target.as_deref()).await {
                Ok(events) => {
                    let mut out = std::io::stdout().lock();
                    for ev in &events {
                        let reason = ev
                            .detail
                            .get("reason")
                            .and_then(|r| r.as_str())
                            .map(|r| format!(" · reason: {r}"))
                            .unwrap_or_default();
                        let who = match &ev.os_user {
                            Some(os) if *os != ev.actor => format!("{} (os user {os})", ev.actor),
                            _ => ev.actor.clone(),
                        };
                        let _ = writeln!(
                            out,
                            "#{} {} {} {} [{}] roles=[{}] decision={} outcome={} {}{}",
                            ev.seq,
                            timefmt::rfc3339(ev.ts_ms),
                            ev.source,
                            who,
                            ev.kind,
                            ev.roles.join(","),
                            ev.decision.as_deref().unwrap_or("-"),
                            ev.outcome.as_deref().unwrap_or("-"),
                            ev.command.as_deref().or(ev.raw.as_deref()).unwrap_or(""),
                            reason
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        AuditCmd::Verify => match store.verify_audit().await {
            Ok(report) => match report.first_broken {
                None => {
                    println!(
                        "Audit log intact: {} event(s), hash chain verified.",
                        report.events
                    );
                    ExitCode::SUCCESS
                }
                Some(b) => {
                    println!(
                        "Audit log BROKEN at event #{}: {}. {} event(s) before it are intact.",
                        b.seq, b.reason, report.events
                    );
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        AuditCmd::Export => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let result = store
                .for_each_audit(|ev| {
                    serde_json::to_writer(&mut out, ev).map_err(std::io::Error::other)?;
                    out.write_all(b"\n")
                })
                .await;
            let _ = out.flush();
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
