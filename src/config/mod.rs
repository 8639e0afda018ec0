//! Typed configuration: a TOML file plus `CATALOG_CHATOPS__SECTION__KEY` env overrides,
//! validated as a whole so that `check-config` can report every problem at once.
//!
//! Secrets never live in the file: they are read from the environment only (see [`Secrets`]).

mod load;
mod validate;

pub use load::{ConfigError, ConfigProblems, load, load_from_str};

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub deploy: DeployConfig,
    pub server: ServerConfig,
    pub chat: ChatConfig,
    pub discord: DiscordConfig,
    pub slack: SlackConfig,
    pub github: GithubConfig,
    pub registry: RegistryConfig,
    pub airflow: AirflowConfig,
    /// action name (e.g. `deploy.start`) → roles allowed; `*` means everyone.
    pub permissions: BTreeMap<String, Vec<String>>,
    pub limits: LimitsConfig,
    pub local: LocalConfig,
    /// target name → target; ordered so listings are stable.
    pub targets: BTreeMap<String, TargetConfig>,
    pub watch: WatchConfig,
    /// `None` when `[dag_sync]` is absent: `!dag-sync status` says it is not configured.
    pub dag_sync: Option<DagSyncConfig>,
    /// `None` when `[catalog_db]` is absent: `!migrations` covers only the bot's own store.
    pub catalog_db: Option<CatalogDbConfig>,
    pub migrations: MigrationsConfig,
    pub secrets: Secrets,
}

/// The new-DAG announcer.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Time between two polls of Airflow's DAG list.
    pub poll_interval: Duration,
    /// Post announcements; off still keeps the seen set current (for `!dags new`).
    pub announce: bool,
    /// How long a status answer (`!airflow status`, `!dag-sync status`) may be reused.
    pub status_cache: Duration,
}

/// Where the deployed DAG commit is read from: the checkout dag-sync moves is the monorepo root
/// on the Airflow host, so a bot elsewhere reads it through a command (`ssh host git …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitSource {
    /// A git checkout on this machine (any folder inside it): HEAD and its last reflog time.
    Path(String),
    /// A file whose first word is the commit (and whose second, or mtime, the sync time).
    File(String),
    /// A command (argv, no shell) that prints the commit, optionally followed by the sync time
    /// (`HEAD@{<unix>}` as `git log --walk-reflogs -1 --date=unix --format='%H %gd'` prints it,
    /// unix seconds, or RFC 3339).
    Command(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct DagSyncConfig {
    pub commit_source: CommitSource,
    /// `owner/name` on GitHub.
    pub repo: String,
    pub branch: String,
    /// The folder dag-sync deploys, relative to the repository root (`catalog/dags`).
    pub dag_folder: String,
    /// How often cron runs dag-sync; it moves one commit per run.
    pub interval: Duration,
    /// How long after the checkout moved the dag-sync announcer waits for Airflow to parse what
    /// arrived before it posts "Deployed: …" with the new DAGs' Enable actions.
    pub announce_after: Duration,
}

#[derive(Debug, Clone)]
pub struct CatalogDbConfig {
    /// `postgres://…`; secrets belong in env `CATALOG_DB_PASSWORD`, never here.
    pub url: String,
    /// Folder of `*.sql` files, applied in name order.
    pub migrations_dir: String,
    /// The ledger table the bot keeps in the catalog database.
    pub ledger_table: String,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct MigrationsConfig {
    /// DAGs that change the catalog schema (their last runs show in `!migrations status`).
    pub dags: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path` or `postgres://…`.
    pub url: String,
}

/// Workflow-wide settings.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// How long a deploy's owner may go without renewing its lease before another process
    /// declares the deploy interrupted (owners on the same host are checked by pid at once).
    pub lease: Duration,
    /// On SIGTERM/SIGINT a running step may finish within this long; then the bot leaves it
    /// running under its supervisor and exits, and the next process to start re-attaches.
    pub shutdown_grace: Duration,
    /// Where detached steps keep their files (one directory per deploy: each step's output,
    /// answers and exit status). Relative paths are taken from the working directory, like the
    /// SQLite store's; every process on the host must use the same one to re-attach.
    pub journal_dir: std::path::PathBuf,
    /// How often a long-running process checks the DAG runs a `--when-idle` deploy waits for
    /// (and settles DAGs that ended deploys left paused).
    pub when_idle_poll: Duration,
}

/// The HTTP server (health, metrics, pages).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen, e.g. `127.0.0.1:8080`.
    pub bind: std::net::SocketAddr,
    /// How chat links reach the pages (e.g. `https://chatops.example.org`), no trailing slash.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ChatConfig {
    pub prefix: String,
}

/// `[discord]`: where the bot lives on Discord and which guild roles count as which bot roles.
/// Everything is optional here so that `console`/`exec` hosts need no Discord settings; `run`
/// says precisely what is missing.
#[derive(Debug, Clone, Default)]
pub struct DiscordConfig {
    /// The guild (server) whose slash commands the bot registers and whose members it serves.
    pub guild_id: Option<u64>,
    /// The channel for the bot's own announcements (new paused DAGs).
    pub announce_channel_id: Option<u64>,
    /// Guild role name or id → bot role (`"Core Maintainers" = "core-maintainer"`). Only mapped
    /// roles count: a guild role nobody mapped grants nothing.
    pub roles: BTreeMap<String, String>,
    /// Where Discord's REST API is (`https://discord.com` when unset). Set only for a test double
    /// or a relay that speaks Discord's API: serenity then sends every REST call there, takes the
    /// gateway URL from that host's `GET /gateway`, and runs without its client-side rate limiter
    /// (serenity 0.12.5 builds rate-limited requests without the proxy).
    pub api_url: Option<String>,
}

/// `[slack]`: where `run --chat slack` announces and which Slack user groups or users count as
/// which bot roles. Optional like `[discord]`: hosts without Slack need none of it.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// The channel for the bot's own announcements (new paused DAGs); commands work in any
    /// channel the bot is in. Without it announcements go to the log.
    pub channel_id: Option<String>,
    /// Slack's Web API, `https://slack.com/api` unless a test double or a relay is set.
    pub api_url: String,
    /// User group handle (`openverse-maintainers`), user group id (`S…`) or user id (`U…`/`W…`)
    /// → bot role. Only mapped groups and users count.
    pub roles: BTreeMap<String, String>,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            channel_id: None,
            api_url: SlackConfig::API_URL.to_string(),
            roles: BTreeMap::new(),
        }
    }
}

impl SlackConfig {
    pub const API_URL: &'static str = "https://slack.com/api";
}

#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub api_url: String,
}

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub url: String,
}

/// Which Airflow REST API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AirflowApi {
    /// Airflow 2: `/api/v1`, basic auth.
    V1,
    /// Airflow 3: `/api/v2`, JWT from `POST /auth/token`.
    V2,
    /// Ask the server (`/api/v2/version`, then `/api/v1/version`).
    Auto,
}

#[derive(Debug, Clone)]
pub struct AirflowConfig {
    pub url: String,
    pub api: AirflowApi,
    pub username: String,
}

/// Per-user command rate limit (governor quota).
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub commands_per_minute: u32,
    pub burst: u32,
}

/// What `exec`/`console` users may claim with `--role`.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// `None` means any role may be claimed.
    pub allowed_roles: Option<Vec<String>>,
}

/// How a target's `plan` and `apply` speak (interface.md, "Step flows").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flow {
    /// `plan` prints a Terraform plan; `apply` re-plans and asks `Enter a value:`, answered `yes`
    /// only for the approved fingerprint.
    #[default]
    Terraform,
    /// `plan` is an Ansible playbook's dry run (`--check --diff`); after approval it runs again
    /// and `apply` (non-interactive) runs only when that dry run has the approved fingerprint.
    Ansible,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Terraform => "terraform",
            Flow::Ansible => "ansible",
        }
    }

    pub fn parse(s: &str) -> Option<Flow> {
        [Flow::Terraform, Flow::Ansible]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub repo: String,
    pub release_tag: String,
    pub image: String,
    pub image_tag: String,
    pub environment: String,
    pub approvals: u32,
    pub block_on_running_dags: bool,
    pub ignore_dags: Vec<String>,
    /// DAGs (the data refreshes) whose running run does not block while it only waits on
    /// sensors; the deploy pauses them for its apply (interface.md, "pause_during_deploy").
    pub pause_during_deploy: Vec<String>,
    pub workdir: String,
    pub bump: Vec<String>,
    pub plan: Vec<String>,
    pub apply: Vec<String>,
    /// After verify's health check, this argv (e.g. `docker inspect` over ssh) must succeed and
    /// print the deployed image tag; `None`: only health is checked, and the card says so.
    pub verify: Option<Vec<String>>,
    /// What `plan` and `apply` print and how the approved plan is enforced.
    pub flow: Flow,
    pub step_timeout: Duration,
    /// How long after apply Airflow has to report itself healthy.
    pub verify_timeout: Duration,
    pub env_passthrough: Vec<String>,
    /// Extra environment for the steps (fixed values, not secrets of the bot).
    pub env: BTreeMap<String, String>,
    /// The folder of `repo` whose commits the plan card lists as what ships (`catalog` in the
    /// monorepo); empty lists every commit between the two releases.
    pub changes_path: String,
    /// After a successful deploy, the bump goes to the infra repository as a pull request.
    pub infra_pr: Option<InfraPrConfig>,
}

/// `[targets.X] infra_pr`: where the bump of a successful deploy is proposed, as the runbook's
/// last step does by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraPrConfig {
    /// `owner/name` on GitHub that the pull request is opened in.
    pub repo: String,
    /// The branch the pull request targets.
    pub base: String,
    /// The git remote of the workdir's checkout that the branch is pushed to.
    pub remote: String,
}

impl InfraPrConfig {
    pub const DEFAULT_REMOTE: &'static str = "origin";
}

/// Secrets come from the environment only and never from the file.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub discord_token: Option<SecretString>,
    /// Slack's app-level token (`xapp-…`, scope `connections:write`): opens Socket Mode.
    pub slack_app_token: Option<SecretString>,
    /// Slack's bot token (`xoxb-…`): every Web API call.
    pub slack_bot_token: Option<SecretString>,
    pub github_token: Option<SecretString>,
    pub registry_username: Option<String>,
    pub registry_password: Option<SecretString>,
    pub airflow_password: Option<SecretString>,
    /// Bearer token for the pages when the server listens beyond loopback (`SERVER_TOKEN`).
    pub server_token: Option<SecretString>,
}

impl Secrets {
    /// Names of the env vars that hold the bot's own secrets; steps never inherit them.
    pub const ENV_VARS: [&'static str; 8] = [
        "DISCORD_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_BOT_TOKEN",
        "GITHUB_TOKEN",
        "REGISTRY_USERNAME",
        "REGISTRY_PASSWORD",
        "AIRFLOW_PASSWORD",
        "SERVER_TOKEN",
    ];

    pub fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            discord_token: get("DISCORD_TOKEN").map(SecretString::from),
            slack_app_token: get("SLACK_APP_TOKEN").map(SecretString::from),
            slack_bot_token: get("SLACK_BOT_TOKEN").map(SecretString::from),
            github_token: get("GITHUB_TOKEN").map(SecretString::from),
            registry_username: get("REGISTRY_USERNAME"),
            registry_password: get("REGISTRY_PASSWORD").map(SecretString::from),
            airflow_password: get("AIRFLOW_PASSWORD").map(SecretString::from),
            server_token: get("SERVER_TOKEN").map(SecretString::from),
        }
    }

    /// The secret values themselves, for redaction of anything posted, logged or stored.
    pub fn values(&self) -> Vec<String> {
        use secrecy::ExposeSecret;
        [
            &self.discord_token,
            &self.slack_app_token,
            &self.slack_bot_token,
            &self.github_token,
            &self.registry_password,
            &self.airflow_password,
            &self.server_token,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose_secret().to_string())
        .filter(|s| s.len() >= 4)
        .collect()
    }
}

impl Config {
    /// Target names in configuration order (sorted), for messages that list them.
    pub fn target_names(&self) -> Vec<String> {
        self.targets.keys().cloned().collect()
    }
}
