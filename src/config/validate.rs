//! Checking the merged config document and turning it into a typed [`Config`].
//!
//! The walk never stops at the first problem: `check-config` must list everything that is wrong
//! in one go, so every check records a sentence (dotted key, what is wrong, what would be right)
//! and carries on with a placeholder value. The placeholders never escape, because any problem
//! makes the whole result an error.

use std::collections::BTreeMap;
use std::time::Duration;

use figment::value::{Dict, Num, Value};

use super::load::Origins;
use super::{
    AirflowApi, AirflowConfig, CatalogDbConfig, ChatConfig, CommitSource, Config, DagSyncConfig,
    DeployConfig, DiscordConfig, Flow, GithubConfig, InfraPrConfig, LimitsConfig, LocalConfig,
    MigrationsConfig, RegistryConfig, Secrets, ServerConfig, SlackConfig, StoreConfig,
    TargetConfig, WatchConfig,
};
use crate::command;
use crate::policy::Permission;
use crate::suggest::did_you_mean;

const SECTIONS: [&str; 17] = [
    "watch",
    "dag_sync",
    "catalog_db",
    "migrations",
    "store",
    "deploy",
    "server",
    "chat",
    "discord",
    "slack",
    "github",
    "registry",
    "airflow",
    "permissions",
    "limits",
    "local",
    "targets",
];

const TARGET_KEYS: [&str; 21] = [
    "verify",
    "changes_path",
    "flow",
    "infra_pr",
    "verify_timeout",
    "pause_during_deploy",
    "repo",
    "release_tag",
    "image",
    "image_tag",
    "environment",
    "approvals",
    "block_on_running_dags",
    "ignore_dags",
    "workdir",
    "bump",
    "plan",
    "apply",
    "step_timeout",
    "env_passthrough",
    "env",
];

/// A step that runs longer than this is surely stuck; the cap also keeps deadline arithmetic
/// (`Instant + timeout`) far from overflow.
const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

const ARGV_PROBLEM: &str = "must be a non-empty list of strings";

/// The defaults as a document table, so an env override of one permission can start from them.
pub(super) fn default_permissions_dict() -> Dict {
    Permission::default_grants()
        .into_iter()
        .map(|(name, roles)| {
            let roles: Vec<Value> = roles.into_iter().map(Value::from).collect();
            (name, Value::from(roles))
        })
        .collect()
}

/// Checks `doc` completely; `problems` may already hold problems found while merging the env.
pub(super) fn validate(
    doc: &Dict,
    origins: &Origins,
    problems: Vec<String>,
    secrets: Secrets,
) -> Result<Config, Vec<String>> {
    let mut c = Checker { problems, origins };
    c.top_level_keys(doc);

    let store = c.section(doc, "store", &["url"]);
    let url = c.store_url(store);

    let deploy_t = c.section(
        doc,
        "deploy",
        &["lease", "shutdown_grace", "journal_dir", "when_idle_poll"],
    );
    let lease = c.duration(
        "deploy.lease",
        deploy_t.and_then(|t| t.get("lease")),
        Duration::from_secs(30),
    );
    let shutdown_grace = c.duration(
        "deploy.shutdown_grace",
        deploy_t.and_then(|t| t.get("shutdown_grace")),
        Duration::from_secs(30),
    );
    let journal_dir = c.journal_dir(deploy_t.and_then(|t| t.get("journal_dir")));
    let when_idle_poll = c.duration(
        "deploy.when_idle_poll",
        deploy_t.and_then(|t| t.get("when_idle_poll")),
        Duration::from_secs(30),
    );

    let server_t = c.section(doc, "server", &["bind", "public_url"]);
    let server = c.server(server_t, &secrets);

    let chat = c.section(doc, "chat", &["prefix"]);
    let prefix = c.prefix(chat);

    let discord_t = c.section(
        doc,
        "discord",
        &["guild_id", "announce_channel_id", "roles", "api_url"],
    );
    let discord = c.discord(discord_t);

    let slack_t = c.section(doc, "slack", &["channel_id", "api_url", "roles"]);
    let slack = c.slack(slack_t);

    let github = c.section(doc, "github", &["api_url"]);
    let api_url = c.http_url(github, "github", "api_url", "https://api.github.com");

    let registry = c.section(doc, "registry", &["url"]);
    let registry_url = c.http_url(registry, "registry", "url", "https://ghcr.io");

    let airflow_t = c.section(doc, "airflow", &["url", "api", "username"]);
    let airflow = AirflowConfig {
        url: c.http_url(airflow_t, "airflow", "url", "https://airflow.openverse.org"),
        api: c.airflow_api(airflow_t),
        username: c.airflow_username(airflow_t),
    };

    let permissions = c.permissions(doc);

    let limits_t = c.section(doc, "limits", &["commands_per_minute", "burst"]);
    let limits = LimitsConfig {
        commands_per_minute: c.int_in(limits_t, "limits", "commands_per_minute", 30, 1, 10_000),
        burst: c.int_in(limits_t, "limits", "burst", 10, 1, 10_000),
    };

    let local_t = c.section(doc, "local", &["allowed_roles"]);
    let allowed_roles = local_t
        .and_then(|t| t.get("allowed_roles"))
        .map(|v| c.role_list("local.allowed_roles", v));

    let targets = c.targets(doc, &registry_url);

    let watch_t = c.section(doc, "watch", &["poll_interval", "announce", "status_cache"]);
    let watch = WatchConfig {
        poll_interval: c.duration(
            "watch.poll_interval",
            watch_t.and_then(|t| t.get("poll_interval")),
            Duration::from_secs(60),
        ),
        announce: c.boolean(watch_t, "watch.announce", "announce", true),
        status_cache: c.duration(
            "watch.status_cache",
            watch_t.and_then(|t| t.get("status_cache")),
            Duration::from_secs(10),
        ),
    };
    let dag_sync = c.dag_sync(doc);
    let catalog_db = c.catalog_db(doc);
    let migrations_t = c.section(doc, "migrations", &["dags"]);
    let migrations = MigrationsConfig {
        dags: c.ignore_dags("migrations.dags", migrations_t.and_then(|t| t.get("dags"))),
    };

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(Config {
        store: StoreConfig { url },
        deploy: DeployConfig {
            lease,
            shutdown_grace,
            journal_dir,
            when_idle_poll,
        },
        server,
        chat: ChatConfig { prefix },
        discord,
        slack,
        github: GithubConfig { api_url },
        registry: RegistryConfig { url: registry_url },
        airflow,
        permissions,
        limits,
        local: LocalConfig { allowed_roles },
        targets,
        watch,
        dag_sync,
        catalog_db,
        migrations,
        secrets,
    })
}

struct Checker<'a> {
    problems: Vec<String>,
    origins: &'a Origins,
}

impl Checker<'_> {
    /// Records `key: message`, pointing at the env var when the value came from one.
    fn report(&mut self, key: &str, message: impl std::fmt::Display) {
        let mut line = format!("{key}: {message}");
        if let Some(var) = self.origin_var(key) {
            line.push_str(&format!(" (from env {var})"));
        }
        self.problems.push(line);
    }

    /// The env var that set `key` or a table containing it.
    fn origin_var(&self, key: &str) -> Option<&str> {
        let mut k = key;
        loop {
            if let Some(o) = self.origins.get(k) {
                return Some(&o.var);
            }
            k = &k[..k.rfind(['.', '['])?];
        }
    }

    /// The value as text: a TOML string, or the raw text of an env var that TOML read as a
    /// number or boolean (a username `2024` or an env value `1` is still text).
    fn text(&self, key: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(_, s) => Some(s.clone()),
            Value::Num(..) | Value::Bool(..) => self.origins.get(key).map(|o| o.raw.clone()),
            _ => None,
        }
    }

    // ---- structure -------------------------------------------------------------------------

    fn top_level_keys(&mut self, doc: &Dict) {
        for (key, value) in doc {
            if SECTIONS.contains(&key.as_str()) {
                continue;
            }
            let lower = key.to_ascii_lowercase();
            match lower.as_str() {
                // Whole sections that people reach for when they have a secret to put somewhere.
                "secrets" => match value {
                    Value::Dict(_, t) => {
                        for k in t.keys() {
                            let dotted = format!("{key}.{k}");
                            if lower == "secrets" || is_secret_name(k) {
                                let var = secret_var(&lower, k);
                                self.secret_in_file(&dotted, var);
                            } else {
                                self.unknown(&dotted, k, &[]);
                            }
                        }
                    }
                    _ => self.secret_in_file(key, secret_var(key, key)),
                },
                k if is_secret_name(k) => self.secret_in_file(key, secret_var("", k)),
                _ => self.unknown(key, key, &SECTIONS),
            }
        }
    }

    /// The table `name` of `doc` (None when absent or not a table), with its keys checked.
    fn section<'d>(&mut self, doc: &'d Dict, name: &str, known: &[&str]) -> Option<&'d Dict> {
        let table = self.table(name, doc.get(name)?)?;
        self.keys(table, name, known);
        Some(table)
    }

    fn table<'d>(&mut self, key: &str, v: &'d Value) -> Option<&'d Dict> {
        match v {
            Value::Dict(_, t) => Some(t),
            other => {
                self.report(key, format!("must be a table, got {}", show(other)));
                None
            }
        }
    }

    /// Flags secret-looking and unknown keys of the table at `prefix`.
    fn keys(&mut self, table: &Dict, prefix: &str, known: &[&str]) {
        for k in table.keys() {
            if known.contains(&k.as_str()) {
                continue;
            }
            let dotted = format!("{prefix}.{k}");
            let section = prefix.split('.').next().unwrap_or(prefix);
            if is_secret_name(k) || (section == "registry" && k.eq_ignore_ascii_case("username")) {
                self.secret_in_file(&dotted, secret_var(section, k));
            } else {
                self.unknown(&dotted, k, known);
            }
        }
    }

    fn secret_in_file(&mut self, key: &str, var: Option<&str>) {
        let msg = match var {
            Some(var) => {
                format!("secrets are not read from the config file; set the env var {var} instead")
            }
            None => format!(
                "secrets are not read from the config file; the bot reads {} from the environment",
                Secrets::ENV_VARS.join(", ")
            ),
        };
        self.report(key, msg);
    }

    /// `unknown key chat.prefx (did you mean chat.prefix?)`; `dotted` ends with `key`.
    fn unknown(&mut self, dotted: &str, key: &str, known: &[&str]) {
        let parent = &dotted[..dotted.len() - key.len()];
        let line = match did_you_mean(key, known.iter().copied()) {
            Some(s) => format!("unknown key {dotted} (did you mean {parent}{s}?)"),
            None if known.is_empty() => format!("unknown key {dotted}"),
            None => format!("unknown key {dotted}; known: {}", known.join(", ")),
        };
        self.problems.push(line);
    }

    // ---- sections --------------------------------------------------------------------------

    /// `[server]`: a socket address to bind, an optional public URL for links; beyond loopback
    /// the pages need `SERVER_TOKEN`, so a missing or short token is a problem (fail closed).
    fn server(&mut self, t: Option<&Dict>, secrets: &Secrets) -> ServerConfig {
        let default_bind = std::net::SocketAddr::from(([127, 0, 0, 1], 8080));
        let bind = match t.and_then(|t| t.get("bind")) {
            None => default_bind,
            Some(v) => match v {
                Value::String(_, s) => match s.trim().parse::<std::net::SocketAddr>() {
                    Ok(a) => a,
                    Err(_) => {
                        self.report(
                            "server.bind",
                            format!(
                                "must be an IP address and port such as \"127.0.0.1:8080\" or \"0.0.0.0:8080\", got {}",
                                show(v)
                            ),
                        );
                        default_bind
                    }
                },
                other => {
                    self.report(
                        "server.bind",
                        format!(
                            "must be a string such as \"127.0.0.1:8080\", got {}",
                            show(other)
                        ),
                    );
                    default_bind
                }
            },
        };
        let public_url = match t.and_then(|t| t.get("public_url")) {
            None => None,
            Some(Value::String(_, s)) if s.trim().is_empty() => None,
            Some(_) => {
                let url = self.http_url(t, "server", "public_url", "");
                Some(url.trim_end_matches('/').to_string())
            }
        };
        if !bind.ip().is_loopback() {
            use secrecy::ExposeSecret;
            match &secrets.server_token {
                None => self.report(
                    "server.bind",
                    format!(
                        "{bind} listens beyond loopback, so the pages need a token: set the env var \
                         SERVER_TOKEN (at least 16 characters), or bind 127.0.0.1"
                    ),
                ),
                Some(tok) if tok.expose_secret().len() < 16 => self.report(
                    "server.bind",
                    "SERVER_TOKEN is shorter than 16 characters; use a long random value",
                ),
                Some(_) => {}
            }
        }
        ServerConfig { bind, public_url }
    }

    fn store_url(&mut self, store: Option<&Dict>) -> String {
        const DEFAULT: &str = "sqlite://data/catalog-chatops.db";
        let Some(v) = store.and_then(|t| t.get("url")) else {
            return DEFAULT.into();
        };
        let key = "store.url";
        let Some(url) = self.text(key, v) else {
            self.report(
                key,
                format!("must start with sqlite:// or postgres://, got {}", show(v)),
            );
            return DEFAULT.into();
        };
        let (is_sqlite, rest) = if let Some(rest) = url.strip_prefix("sqlite:") {
            // `sqlite::memory:` is what tests and throwaway runs use; sqlx accepts it too.
            (true, rest.strip_prefix("//").unwrap_or(rest))
        } else if let Some(rest) = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
        {
            (false, rest)
        } else {
            self.report(
                key,
                format!("must start with sqlite:// or postgres://, got {url:?}"),
            );
            return url;
        };
        if rest.is_empty() {
            let example = if is_sqlite {
                "sqlite://data/catalog-chatops.db"
            } else {
                "postgres://chatops@db.internal/chatops"
            };
            self.report(key, format!("must name a database, such as {example:?}"));
        } else if !is_sqlite && url_has_password(rest) {
            // Deliberately not echoing the URL: it holds the password.
            self.report(
                key,
                "must not contain a password; set PGPASSWORD in the environment instead",
            );
        }
        url
    }

    fn prefix(&mut self, chat: Option<&Dict>) -> String {
        let Some(v) = chat.and_then(|t| t.get("prefix")) else {
            return "!".into();
        };
        let key = "chat.prefix";
        let text = self.text(key, v);
        let ok = text.as_deref().is_some_and(|p| {
            (1..=3).contains(&p.chars().count())
                && p.chars()
                    .all(|c| !c.is_alphanumeric() && !c.is_whitespace())
        });
        if !ok {
            self.report(
                key,
                format!(
                    "must be 1 to 3 characters that are neither letters, digits nor whitespace, \
                     such as \"!\", got {}",
                    show(v)
                ),
            );
        }
        text.unwrap_or_default()
    }

    /// An http(s) URL, trailing slashes dropped so callers can append paths.
    fn http_url(&mut self, t: Option<&Dict>, section: &str, name: &str, default: &str) -> String {
        let Some(v) = t.and_then(|t| t.get(name)) else {
            return default.into();
        };
        let key = format!("{section}.{name}");
        let url = self.text(&key, v);
        let authority = url.as_deref().and_then(|u| {
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"))?;
            let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            (!authority.is_empty() && !u.chars().any(char::is_whitespace)).then_some(authority)
        });
        match authority {
            None => self.report(
                &key,
                format!(
                    "must be an http:// or https:// URL such as {default:?}, got {}",
                    show(v)
                ),
            ),
            Some(a) if a.contains('@') => {
                let var = match section {
                    "github" => "GITHUB_TOKEN",
                    "registry" => "REGISTRY_USERNAME and REGISTRY_PASSWORD",
                    "discord" => "DISCORD_TOKEN",
                    "slack" => "SLACK_BOT_TOKEN",
                    _ => "AIRFLOW_PASSWORD",
                };
                self.report(
                    &key,
                    format!("must not contain credentials; set the env var {var} instead"),
                );
            }
            Some(_) => {}
        }
        url.map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_default()
    }

    fn airflow_api(&mut self, t: Option<&Dict>) -> AirflowApi {
        let Some(v) = t.and_then(|t| t.get("api")) else {
            return AirflowApi::Auto;
        };
        match self.text("airflow.api", v).as_deref() {
            Some("v1") => AirflowApi::V1,
            Some("v2") => AirflowApi::V2,
            Some("auto") => AirflowApi::Auto,
            _ => {
                self.report(
                    "airflow.api",
                    format!("must be one of \"v1\", \"v2\", \"auto\", got {}", show(v)),
                );
                AirflowApi::Auto
            }
        }
    }

    fn airflow_username(&mut self, t: Option<&Dict>) -> String {
        let Some(v) = t.and_then(|t| t.get("username")) else {
            return "chatops".into();
        };
        match self.text("airflow.username", v) {
            Some(u) if !u.trim().is_empty() => u,
            _ => {
                self.report(
                    "airflow.username",
                    format!("must be a non-empty string, got {}", show(v)),
                );
                String::new()
            }
        }
    }

    fn int_in(
        &mut self,
        t: Option<&Dict>,
        section: &str,
        name: &str,
        default: u32,
        lo: u32,
        hi: u32,
    ) -> u32 {
        let Some(v) = t.and_then(|t| t.get(name)) else {
            return default;
        };
        self.int_value(&format!("{section}.{name}"), v, lo, hi)
    }

    fn int_value(&mut self, key: &str, v: &Value, lo: u32, hi: u32) -> u32 {
        match as_int(v).and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (lo..=hi).contains(&n) => n,
            _ => {
                self.report(
                    key,
                    format!("must be an integer from {lo} to {hi}, got {}", show(v)),
                );
                lo
            }
        }
    }

    /// Permission names are dotted; an unquoted `deploy.start = [...]` makes TOML nest tables,
    /// so nested tables are flattened back into dotted names before checking.
    fn permissions(&mut self, doc: &Dict) -> BTreeMap<String, Vec<String>> {
        let Some(v) = doc.get("permissions") else {
            return Permission::default_grants();
        };
        let Some(table) = self.table("permissions", v) else {
            return BTreeMap::new();
        };
        let mut flat = Vec::new();
        flatten(String::new(), table, &mut flat);
        let mut out = BTreeMap::new();
        for (name, value) in flat {
            let key = format!("permissions.{name}");
            if Permission::from_name(&name).is_none() {
                let known = Permission::ALL.map(Permission::name);
                let hint = did_you_mean(&name, known)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                self.report(
                    &key,
                    format!("unknown permission{hint}; known: {}", known.join(", ")),
                );
                continue;
            }
            let roles = self.role_list(&key, value);
            out.insert(name, roles);
        }
        out
    }

    /// A list of role names; `*` (everyone) is one of them.
    fn role_list(&mut self, key: &str, v: &Value) -> Vec<String> {
        self.string_list(
            key,
            v,
            "a list of role names such as [\"core-maintainer\"] or [\"*\"]",
            "a non-empty role name",
            |s| Item::valid(!s.trim().is_empty()),
        )
    }

    /// A list of strings at `key`, each judged by `check`; what is not kept is reported at
    /// `key[i]` (an invalid item as "must be {item}, got …"). `list` says what the whole must be.
    fn string_list(
        &mut self,
        key: &str,
        v: &Value,
        list: &str,
        item: &str,
        check: impl Fn(&str) -> Item,
    ) -> Vec<String> {
        let Value::Array(_, items) = v else {
            self.report(key, format!("must be {list}, got {}", show(v)));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, value) in items.iter().enumerate() {
            let verdict = match value {
                Value::String(_, s) => check(s),
                _ => Item::Invalid,
            };
            match (verdict, value) {
                (Item::Keep, Value::String(_, s)) => out.push(s.clone()),
                (Item::Refused(why), _) => self.report(&format!("{key}[{i}]"), why),
                _ => self.report(
                    &format!("{key}[{i}]"),
                    format!("must be {item}, got {}", show(value)),
                ),
            }
        }
        out
    }

    // ---- discord ---------------------------------------------------------------------------

    fn discord(&mut self, t: Option<&Dict>) -> DiscordConfig {
        let Some(t) = t else {
            return DiscordConfig::default();
        };
        let guild_id = t
            .get("guild_id")
            .and_then(|v| self.snowflake("discord.guild_id", v));
        let announce_channel_id = t
            .get("announce_channel_id")
            .and_then(|v| self.snowflake("discord.announce_channel_id", v));
        let mut roles = BTreeMap::new();
        if let Some(v) = t.get("roles") {
            const EXAMPLE: &str = "such as { \"Core Maintainers\" = \"core-maintainer\" }";
            match v {
                Value::Dict(_, m) => {
                    for (guild_role, bot_role) in m {
                        let key = format!("discord.roles.{guild_role}");
                        match bot_role {
                            Value::String(_, r) if !r.trim().is_empty() && r != "*" => {
                                roles.insert(guild_role.clone(), r.clone());
                            }
                            other => self.report(
                                &key,
                                format!(
                                    "must be the bot role this guild role grants, such as \"core-maintainer\" (not \"*\"), got {}",
                                    show(other)
                                ),
                            ),
                        }
                    }
                }
                other => self.report(
                    "discord.roles",
                    format!(
                        "must be a table of guild role name or id → bot role, {EXAMPLE}, got {}",
                        show(other)
                    ),
                ),
            }
        }
        let api_url = t
            .contains_key("api_url")
            .then(|| self.http_url(Some(t), "discord", "api_url", "https://discord.com"));
        DiscordConfig {
            guild_id,
            announce_channel_id,
            roles,
            api_url,
        }
    }

    /// A Discord id: a positive integer (TOML number or digit string, since env values and
    /// copied ids often arrive as text).
    fn snowflake(&mut self, key: &str, v: &Value) -> Option<u64> {
        let n = match v {
            Value::String(_, s) => s.trim().parse::<u64>().ok(),
            other => as_int(other).and_then(|n| u64::try_from(n).ok()),
        };
        match n {
            Some(n) if n > 0 => Some(n),
            _ => {
                self.report(
                    key,
                    format!(
                        "must be a Discord id (Developer Mode → right-click → Copy ID), such as 123456789012345678, got {}",
                        show(v)
                    ),
                );
                None
            }
        }
    }

    // ---- slack -----------------------------------------------------------------------------

    fn slack(&mut self, t: Option<&Dict>) -> SlackConfig {
        let Some(t) = t else {
            return SlackConfig::default();
        };
        let channel_id = t.get("channel_id").and_then(|v| {
            let id = self.text("slack.channel_id", v).map(|s| s.trim().to_string());
            match id {
                Some(id) if is_slack_id(&id, &['C', 'G', 'D']) => Some(id),
                _ => {
                    self.report(
                        "slack.channel_id",
                        format!(
                            "must be a Slack channel id (open the channel → its name → About: Channel ID at the bottom), such as \"C0123456789\", got {}",
                            show(v)
                        ),
                    );
                    None
                }
            }
        });
        let mut roles = BTreeMap::new();
        if let Some(v) = t.get("roles") {
            match v {
                Value::Dict(_, m) => {
                    for (who, bot_role) in m {
                        let key = format!("slack.roles.{who}");
                        // `@openverse-maintainers` is how people see a handle; the API has no @.
                        let who = who.trim().trim_start_matches('@');
                        if !is_slack_id(who, &['U', 'W', 'S']) && !is_group_handle(who) {
                            self.report(
                                &key,
                                "must be a user group handle (such as \"openverse-maintainers\"), a user group id (S…) or a user id (U…)",
                            );
                            continue;
                        }
                        match bot_role {
                            Value::String(_, r) if !r.trim().is_empty() && r != "*" => {
                                roles.insert(who.to_string(), r.clone());
                            }
                            other => self.report(
                                &key,
                                format!(
                                    "must be the bot role this user group or user gets, such as \"core-maintainer\" (not \"*\"), got {}",
                                    show(other)
                                ),
                            ),
                        }
                    }
                }
                other => self.report(
                    "slack.roles",
                    format!(
                        "must be a table of user group handle or user id → bot role, such as {{ \"openverse-maintainers\" = \"core-maintainer\" }}, got {}",
                        show(other)
                    ),
                ),
            }
        }
        let api_url = self.http_url(Some(t), "slack", "api_url", SlackConfig::API_URL);
        SlackConfig {
            channel_id,
            api_url,
            roles,
        }
    }

    // ---- targets ---------------------------------------------------------------------------

    fn targets(&mut self, doc: &Dict, registry_url: &str) -> BTreeMap<String, TargetConfig> {
        const NEED_ONE: &str = "at least one target is required, such as [targets.catalog]";
        let mut out = BTreeMap::new();
        let Some(v) = doc.get("targets") else {
            self.report("targets", NEED_ONE);
            return out;
        };
        let Some(table) = self.table("targets", v) else {
            return out;
        };
        if table.is_empty() {
            self.report("targets", NEED_ONE);
        }
        for (name, v) in table {
            let key = format!("targets.{name}");
            if let Some(command) = command::reserved_target_name(name) {
                self.report(
                    &key,
                    format!("{name:?} is a !{command} subcommand, so it cannot name a target"),
                );
            } else if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                self.report(
                    &key,
                    "a target name must use only a-z, 0-9, \"-\" and \"_\", such as \"catalog\"",
                );
            }
            let Value::Dict(_, t) = v else {
                self.report(
                    &key,
                    format!("must be a table of target settings, got {}", show(v)),
                );
                continue;
            };
            let target = self.target(&key, t, registry_url);
            out.insert(name.clone(), target);
        }
        out
    }

    fn target(&mut self, key: &str, t: &Dict, registry_url: &str) -> TargetConfig {
        self.keys(t, key, &TARGET_KEYS);
        let k = |name: &str| format!("{key}.{name}");
        let ignore_dags = self.ignore_dags(&k("ignore_dags"), t.get("ignore_dags"));
        let target = TargetConfig {
            repo: self.repo(&k("repo"), t.get("repo")),
            release_tag: self.tag_template(
                &k("release_tag"),
                t.get("release_tag"),
                "\"{version}\" or \"catalog-{version}\"",
                true,
            ),
            image: self.image(&k("image"), t.get("image"), registry_url),
            image_tag: self.tag_template(
                &k("image_tag"),
                t.get("image_tag"),
                "\"{version}\" or \"rel-{version}\"",
                false,
            ),
            environment: self.environment(&k("environment"), t.get("environment")),
            approvals: match t.get("approvals") {
                Some(v) => self.int_value(&k("approvals"), v, 1, 5),
                None => 1,
            },
            block_on_running_dags: match t.get("block_on_running_dags") {
                Some(Value::Bool(_, b)) => *b,
                Some(v) => {
                    self.report(
                        &k("block_on_running_dags"),
                        format!("must be true or false, got {}", show(v)),
                    );
                    true
                }
                None => true,
            },
            pause_during_deploy: self.pause_during_deploy(
                &k("pause_during_deploy"),
                t.get("pause_during_deploy"),
                &ignore_dags,
            ),
            ignore_dags,
            workdir: self.workdir(&k("workdir"), t.get("workdir")),
            bump: self.argv(
                &k("bump"),
                t.get("bump"),
                r#"["just", "bump", "prod", "catalog-airflow", "{version}"]"#,
            ),
            plan: self.argv(
                &k("plan"),
                t.get("plan"),
                r#"["just", "plan", "prod", "catalog-airflow"]"#,
            ),
            apply: self.argv(
                &k("apply"),
                t.get("apply"),
                r#"["just", "apply", "prod", "catalog-airflow"]"#,
            ),
            verify: t.get("verify").map(|v| {
                self.argv(
                    &k("verify"),
                    Some(v),
                    r#"["ssh", "airflow-host", "docker", "inspect", "--format", "{{.Config.Image}}", "airflow-scheduler"]"#,
                )
            }),
            flow: self.flow(&k("flow"), t.get("flow")),
            step_timeout: self.step_timeout(&k("step_timeout"), t.get("step_timeout")),
            verify_timeout: self.duration(
                &k("verify_timeout"),
                t.get("verify_timeout"),
                Duration::from_secs(10 * 60),
            ),
            env_passthrough: self.env_passthrough(&k("env_passthrough"), t.get("env_passthrough")),
            env: self.step_env(&k("env"), t.get("env")),
            changes_path: self.changes_path(&k("changes_path"), t.get("changes_path")),
            infra_pr: self.infra_pr(&k("infra_pr"), t.get("infra_pr")),
        };
        // The Ansible flow runs `plan` again after approval and then `apply`: were they the same
        // command, the "apply" would be one more dry run and the deploy would claim success.
        if target.flow == Flow::Ansible && !target.plan.is_empty() && target.plan == target.apply {
            self.report(
                &k("apply"),
                "is the same command as plan; with flow = \"ansible\" plan is the dry run \
                 (`--check --diff`) and apply must really apply (e.g. `-e airflow_apply=true`)",
            );
        }
        target
    }

    fn flow(&mut self, key: &str, v: Option<&Value>) -> Flow {
        let Some(v) = v else {
            return Flow::Terraform;
        };
        match self.text(key, v).as_deref().and_then(Flow::parse) {
            Some(f) => f,
            None => {
                self.report(
                    key,
                    format!(
                        "must be \"terraform\" (a Terraform plan, apply answers its prompt) or \
                         \"ansible\" (a playbook's dry run as the plan), got {}",
                        show(v)
                    ),
                );
                Flow::Terraform
            }
        }
    }

    /// A folder of the release repository, as GitHub's commit list takes it in `path`: no
    /// leading or trailing `/`, no `..`; `""` means the whole repository.
    fn changes_path(&mut self, key: &str, v: Option<&Value>) -> String {
        const DEFAULT: &str = "catalog";
        let Some(v) = v else {
            return DEFAULT.to_string();
        };
        let Some(text) = self.text(key, v) else {
            self.report(
                key,
                format!(
                    "must be a folder of the release repository such as \"catalog\" (or \"\" for \
                     every commit), got {}",
                    show(v)
                ),
            );
            return DEFAULT.to_string();
        };
        let folder = text.trim().trim_matches('/').to_string();
        let bad_part = folder
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
        if !folder.is_empty()
            && (bad_part
                || !folder
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')))
        {
            self.report(
                key,
                format!(
                    "must be a folder of the release repository such as \"catalog\" (letters, \
                     digits, \".\", \"_\", \"-\" and \"/\" between names), got {text:?}"
                ),
            );
        }
        folder
    }

    /// `infra_pr = { repo = "owner/name", base = "main", remote = "origin" }`.
    fn infra_pr(&mut self, key: &str, v: Option<&Value>) -> Option<InfraPrConfig> {
        const EXAMPLE: &str = "{ repo = \"WordPress/openverse-infrastructure\", base = \"main\" }";
        let v = v?;
        let Value::Dict(_, t) = v else {
            self.report(
                key,
                format!("must be a table such as {EXAMPLE}, got {}", show(v)),
            );
            return None;
        };
        self.keys(t, key, &["repo", "base", "remote"]);
        let repo = match t.get("repo") {
            None => {
                self.report(
                    &format!("{key}.repo"),
                    format!(
                        "is required: the GitHub repository the pull request is opened in, such \
                         as {EXAMPLE}"
                    ),
                );
                String::new()
            }
            some => self.repo(&format!("{key}.repo"), some),
        };
        let base = self.git_branch(t, &format!("{key}.base"), "base", Some("main"));
        let remote = self.git_branch(
            t,
            &format!("{key}.remote"),
            "remote",
            Some(InfraPrConfig::DEFAULT_REMOTE),
        );
        Some(InfraPrConfig { repo, base, remote })
    }

    /// A branch or remote name that git accepts and that cannot be read as an option.
    fn git_branch(&mut self, t: &Dict, key: &str, name: &str, default: Option<&str>) -> String {
        let text = self.plain_text(t, key, name, default);
        let ok = !text.starts_with(['-', '/', '.'])
            && !text.ends_with(['/', '.'])
            && !text.contains("..")
            && !text.ends_with(".lock")
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
        if !text.is_empty() && !ok {
            self.report(
                key,
                format!(
                    "must be a git {} name such as \"{}\" (letters, digits, \".\", \"_\", \"-\" \
                     and \"/\"; not starting with \"-\"), got {text:?}",
                    if name == "remote" { "remote" } else { "branch" },
                    default.unwrap_or("main")
                ),
            );
        }
        text
    }

    fn boolean(&mut self, t: Option<&Dict>, key: &str, name: &str, default: bool) -> bool {
        let Some(v) = t.and_then(|t| t.get(name)) else {
            return default;
        };
        match v {
            Value::Bool(_, b) => *b,
            _ => match self.text(key, v).as_deref() {
                Some("true") => true,
                Some("false") => false,
                _ => {
                    self.report(key, format!("must be true or false, got {}", show(v)));
                    default
                }
            },
        }
    }

    /// A non-empty string that is not a secret; `default` when absent.
    fn plain_text(&mut self, t: &Dict, key: &str, name: &str, default: Option<&str>) -> String {
        let Some(v) = t.get(name) else {
            if let Some(d) = default {
                return d.to_string();
            }
            self.report(key, "is required");
            return String::new();
        };
        match self.text(key, v) {
            Some(s) if !s.trim().is_empty() => s,
            _ => {
                self.report(key, format!("must be a non-empty string, got {}", show(v)));
                String::new()
            }
        }
    }

    /// `[dag_sync]`: where the deployed commit comes from, and the repository it follows.
    fn dag_sync(&mut self, doc: &Dict) -> Option<DagSyncConfig> {
        let t = self.section(
            doc,
            "dag_sync",
            &[
                "commit_source",
                "repo",
                "branch",
                "dag_folder",
                "interval",
                "announce_after",
            ],
        )?;
        let source_key = "dag_sync.commit_source";
        let commit_source = match t.get("commit_source") {
            None => {
                self.report(
                    source_key,
                    "is required: one of { command = [\"ssh\", \"airflow-host\", \"git\", \"-C\", \
                     \"openverse\", \"log\", \"--walk-reflogs\", \"-1\", \"--date=unix\", \
                     \"--format=%H%x20%gd\"] }, { path = \"/srv/openverse\" } or \
                     { file = \"/srv/DEPLOYED_COMMIT\" }",
                );
                CommitSource::File(String::new())
            }
            Some(v) => match self.table(source_key, v) {
                None => CommitSource::File(String::new()),
                Some(st) => {
                    self.keys(st, source_key, &["path", "file", "command"]);
                    let given: Vec<&str> = ["path", "file", "command"]
                        .into_iter()
                        .filter(|k| st.contains_key(*k))
                        .collect();
                    if given.len() != 1 {
                        self.report(
                            source_key,
                            format!(
                                "must have exactly one of path, file or command, got {}",
                                if given.is_empty() {
                                    "none".to_string()
                                } else {
                                    given.join(" and ")
                                }
                            ),
                        );
                    }
                    match given.first().copied() {
                        Some("path") => CommitSource::Path(self.plain_text(
                            st,
                            "dag_sync.commit_source.path",
                            "path",
                            None,
                        )),
                        Some("command") => CommitSource::Command(self.argv(
                            "dag_sync.commit_source.command",
                            st.get("command"),
                            r#"["cat", "/opt/airflow/DEPLOYED_COMMIT"]"#,
                        )),
                        _ => CommitSource::File(self.plain_text(
                            st,
                            "dag_sync.commit_source.file",
                            "file",
                            Some(""),
                        )),
                    }
                }
            },
        };
        Some(DagSyncConfig {
            commit_source,
            repo: self.repo("dag_sync.repo", t.get("repo")),
            branch: self.plain_text(t, "dag_sync.branch", "branch", Some("main")),
            dag_folder: self
                .plain_text(t, "dag_sync.dag_folder", "dag_folder", Some("catalog/dags"))
                .trim_matches('/')
                .to_string(),
            interval: self.duration(
                "dag_sync.interval",
                t.get("interval"),
                Duration::from_secs(5 * 60),
            ),
            announce_after: self.duration(
                "dag_sync.announce_after",
                t.get("announce_after"),
                Duration::from_secs(2 * 60),
            ),
        })
    }

    /// `[catalog_db]`: a Postgres URL without a password, the migrations folder and the ledger.
    fn catalog_db(&mut self, doc: &Dict) -> Option<CatalogDbConfig> {
        let t = self.section(
            doc,
            "catalog_db",
            &[
                "url",
                "migrations_dir",
                "ledger_table",
                "lock_timeout",
                "statement_timeout",
            ],
        )?;
        let url = self.plain_text(t, "catalog_db.url", "url", None);
        if !url.is_empty() {
            match url
                .strip_prefix("postgres://")
                .or_else(|| url.strip_prefix("postgresql://"))
            {
                None => self.report(
                    "catalog_db.url",
                    "must start with postgres:// (the catalog database is Postgres)",
                ),
                Some(rest) if url_has_password(rest) => self.report(
                    "catalog_db.url",
                    "must not contain a password; set PGPASSWORD in the environment instead",
                ),
                Some(_) => {}
            }
        }
        let ledger_table = self.plain_text(
            t,
            "catalog_db.ledger_table",
            "ledger_table",
            Some("chatops_migrations"),
        );
        if !ledger_table.is_empty()
            && !ledger_table
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        {
            self.report(
                "catalog_db.ledger_table",
                format!(
                    "must be a plain SQL name (lowercase letters, digits, _ and an optional \
                     schema.), got {ledger_table:?}"
                ),
            );
        }
        Some(CatalogDbConfig {
            url,
            migrations_dir: self.plain_text(
                t,
                "catalog_db.migrations_dir",
                "migrations_dir",
                Some("catalog-migrations"),
            ),
            ledger_table,
            lock_timeout: self.duration(
                "catalog_db.lock_timeout",
                t.get("lock_timeout"),
                Duration::from_secs(5),
            ),
            statement_timeout: self.duration(
                "catalog_db.statement_timeout",
                t.get("statement_timeout"),
                Duration::from_secs(5 * 60),
            ),
        })
    }

    fn required(&mut self, key: &str, example: &str) {
        self.report(key, format!("is required, such as {example}"));
    }

    fn repo(&mut self, key: &str, v: Option<&Value>) -> String {
        let Some(v) = v else {
            self.required(key, "\"WordPress/openverse-catalog\"");
            return String::new();
        };
        let text = self.text(key, v);
        let ok = text
            .as_deref()
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(owner, name)| {
                !owner.is_empty()
                    && !name.is_empty()
                    && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            });
        if !ok {
            self.report(
                key,
                format!(
                    "must be a GitHub repository as \"owner/name\", such as \
                     \"WordPress/openverse-catalog\", got {}",
                    show(v)
                ),
            );
        }
        text.unwrap_or_default()
    }

    /// `release_tag`/`image_tag`: `{version}` exactly once (a tag without it would map every
    /// version to the same release), otherwise only characters that are safe in a git tag or
    /// image tag and in a URL path.
    fn tag_template(&mut self, key: &str, v: Option<&Value>, examples: &str, git: bool) -> String {
        let Some(v) = v else {
            return "{version}".into();
        };
        let Some(text) = self.text(key, v) else {
            self.report(
                key,
                format!("must be a string such as {examples}, got {}", show(v)),
            );
            return String::new();
        };
        if self.placeholders(key, &text) {
            return text;
        }
        if text.matches("{version}").count() != 1 {
            self.report(
                key,
                format!("must contain {{version}} exactly once, such as {examples}, got {text:?}"),
            );
            return text;
        }
        let rest = text.replace("{version}", "");
        let safe = |c: char| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') || (git && c == '/')
        };
        if !rest.chars().all(safe) {
            let allowed = if git {
                "letters, digits, \".\", \"_\", \"-\" and \"/\""
            } else {
                "letters, digits, \".\", \"_\" and \"-\""
            };
            self.report(
                key,
                format!("may contain only {allowed} besides {{version}}, got {text:?}"),
            );
        } else if !git && text.starts_with(['.', '-']) {
            self.report(
                key,
                format!("an image tag cannot start with \".\" or \"-\", got {text:?}"),
            );
        }
        text
    }

    /// Reports every `{name}` other than `{version}`; true if there was one.
    fn placeholders(&mut self, key: &str, text: &str) -> bool {
        let mut found = false;
        for name in placeholder_names(text) {
            if name != "version" {
                self.report(
                    key,
                    format!("unknown placeholder {{{name}}}; only {{version}} is substituted"),
                );
                found = true;
            }
        }
        found
    }

    fn image(&mut self, key: &str, v: Option<&Value>, registry_url: &str) -> String {
        let Some(v) = v else {
            self.required(key, "\"wordpress/openverse-catalog\"");
            return String::new();
        };
        let text = self.text(key, v);
        let ok = text.as_deref().is_some_and(|i| {
            !i.is_empty()
                && i.split('/').all(|seg| !seg.is_empty())
                && i.chars().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, '.' | '_' | '/' | '-')
                })
        });
        let host = registry_url
            .split_once("://")
            .map_or(registry_url, |(_, rest)| rest);
        if !ok {
            self.report(
                key,
                format!(
                    "must be a lowercase image repository such as \"wordpress/openverse-catalog\" \
                     (a-z, 0-9, \".\", \"_\", \"-\", \"/\"), got {}",
                    show(v)
                ),
            );
        } else if let Some((first, rest)) = text.as_deref().and_then(|i| i.split_once('/'))
            && !host.is_empty()
            && first == host
        {
            self.report(
                key,
                format!(
                    "must not include the registry host; it comes from registry.url, \
                     so write {rest:?}"
                ),
            );
        }
        text.unwrap_or_default()
    }

    fn environment(&mut self, key: &str, v: Option<&Value>) -> String {
        let Some(v) = v else {
            return "prod".into();
        };
        let text = self.text(key, v);
        let ok = text.as_deref().is_some_and(|e| {
            !e.is_empty()
                && e.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        });
        if !ok {
            self.report(
                key,
                format!(
                    "must be a name of letters, digits, \"-\" or \"_\", such as \"prod\", got {}",
                    show(v)
                ),
            );
        }
        text.unwrap_or_default()
    }

    /// `pause_during_deploy`: DAG ids like `ignore_dags`. A DAG in both lists is refused: an
    /// ignored DAG's runs never block and it is never paused, so the pause could not happen.
    fn pause_during_deploy(
        &mut self,
        key: &str,
        v: Option<&Value>,
        ignored: &[String],
    ) -> Vec<String> {
        let ids = self.ignore_dags(key, v);
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                self.report(&format!("{key}[{i}]"), format!("lists {id} twice"));
            }
            if ignored.contains(id) {
                self.report(
                    &format!("{key}[{i}]"),
                    format!(
                        "{id} is also in ignore_dags: an ignored DAG never blocks and is never \
                         paused; keep it in one list (pause_during_deploy for a data refresh \
                         that may wait on its sensor during a deploy)"
                    ),
                );
            }
        }
        ids
    }

    fn ignore_dags(&mut self, key: &str, v: Option<&Value>) -> Vec<String> {
        let Some(v) = v else {
            return Vec::new();
        };
        self.string_list(
            key,
            v,
            "a list of DAG ids such as [\"image_data_refresh\"]",
            "a DAG id (letters, digits, \"_\", \".\", \"-\")",
            |s| {
                Item::valid(
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')),
                )
            },
        )
    }

    /// `[deploy] journal_dir`: a path, `data/journal` when unset.
    fn journal_dir(&mut self, v: Option<&Value>) -> std::path::PathBuf {
        let key = "deploy.journal_dir";
        let Some(v) = v else {
            return std::path::PathBuf::from("data/journal");
        };
        match self.text(key, v) {
            Some(w) if !w.trim().is_empty() => std::path::PathBuf::from(w),
            _ => {
                self.report(
                    key,
                    format!(
                        "must be a directory path such as \"/var/lib/catalog-chatops/journal\", got {}",
                        show(v)
                    ),
                );
                std::path::PathBuf::new()
            }
        }
    }

    fn workdir(&mut self, key: &str, v: Option<&Value>) -> String {
        let Some(v) = v else {
            self.required(key, "\"/srv/openverse-infrastructure\"");
            return String::new();
        };
        match self.text(key, v) {
            Some(w) if !w.trim().is_empty() => w,
            _ => {
                self.report(
                    key,
                    format!(
                        "must be a directory path such as \"/srv/openverse-infrastructure\", got {}",
                        show(v)
                    ),
                );
                String::new()
            }
        }
    }

    /// A step's argv: run without a shell, so the program itself must be fixed and `{version}`
    /// (already validated when substituted) may appear only in its arguments.
    fn argv(&mut self, key: &str, v: Option<&Value>, example: &str) -> Vec<String> {
        let Some(v) = v else {
            self.report(
                key,
                format!("is required: {ARGV_PROBLEM} such as {example}"),
            );
            return Vec::new();
        };
        let items = match v {
            Value::Array(_, items) if !items.is_empty() => items,
            _ => {
                self.report(key, ARGV_PROBLEM);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            let Value::String(_, s) = item else {
                self.report(&item_key, format!("must be a string, got {}", show(item)));
                continue;
            };
            if i == 0 && s.trim().is_empty() {
                self.report(&item_key, "must name the program to run, such as \"just\"");
            } else if i == 0 && s.contains("{version}") {
                self.report(
                    &item_key,
                    "the program must be fixed; {version} may appear only in later arguments",
                );
            } else {
                self.placeholders(&item_key, s);
            }
            out.push(s.clone());
        }
        out
    }

    fn step_timeout(&mut self, key: &str, v: Option<&Value>) -> Duration {
        self.duration(key, v, Duration::from_secs(30 * 60))
    }

    /// A positive duration of at most a day, written as humantime (`"30m"`, `"90s"`).
    fn duration(&mut self, key: &str, v: Option<&Value>, default: Duration) -> Duration {
        let Some(v) = v else {
            return default;
        };
        let parsed = match v {
            Value::String(_, s) => humantime::parse_duration(s.trim()).ok(),
            _ => None,
        };
        match parsed {
            None => self.report(
                key,
                format!(
                    "must be a duration such as \"30m\" or \"90s\", got {}",
                    show(v)
                ),
            ),
            Some(d) if d.is_zero() => {
                self.report(key, format!("must be longer than zero, got {}", show(v)))
            }
            Some(d) if d > MAX_STEP_TIMEOUT => {
                self.report(key, format!("must be at most \"24h\", got {}", show(v)))
            }
            Some(d) => return d,
        }
        default
    }

    fn env_passthrough(&mut self, key: &str, v: Option<&Value>) -> Vec<String> {
        let Some(v) = v else {
            return Vec::new();
        };
        self.string_list(
            key,
            v,
            "a list of env var names or patterns such as [\"AWS_*\", \"TF_*\"]",
            "an env var name or a pattern such as \"AWS_*\"",
            |s| {
                if Secrets::ENV_VARS.contains(&s) {
                    Item::Refused(format!(
                        "{s} is one of the bot's own secrets, which steps never receive"
                    ))
                } else {
                    Item::valid(
                        !s.is_empty()
                            && s.chars()
                                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '*')),
                    )
                }
            },
        )
    }

    /// Fixed env for the steps. Keys keep their case; values must be text, and secret-looking
    /// names are refused because secrets never live in the file (pass them through instead).
    fn step_env(&mut self, key: &str, v: Option<&Value>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(v) = v else {
            return out;
        };
        let Some(table) = self.table(key, v) else {
            return out;
        };
        for (name, value) in table {
            let item_key = format!("{key}.{name}");
            let valid_name = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                self.report(
                    &item_key,
                    "must be an env var name of letters, digits and \"_\", such as \"TF_VAR_environment\"",
                );
            } else if Secrets::ENV_VARS.contains(&name.as_str()) {
                self.report(
                    &item_key,
                    "is one of the bot's own secrets, which steps never receive",
                );
                continue;
            } else if looks_like_secret_env(name) {
                self.report(
                    &item_key,
                    format!(
                        "looks like a secret, which must not be in the config file; \
                         list {name} in env_passthrough to pass it from the bot's environment"
                    ),
                );
                continue;
            }
            match self.text(&item_key, value) {
                Some(s) => {
                    out.insert(name.clone(), s);
                }
                None => self.report(
                    &item_key,
                    format!("must be a string (quote numbers), got {}", show(value)),
                ),
            }
        }
        out
    }
}

// ---- helpers -------------------------------------------------------------------------------

/// How a value is shown after "got": strings quoted, numbers and booleans bare, others by kind.
fn show(v: &Value) -> String {
    match v {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => match (as_int(v), n.to_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => f.to_string(),
            (None, None) => "a number".into(),
        },
        Value::Empty(..) => "nothing".into(),
        Value::Dict(..) => "a table".into(),
        Value::Array(_, items) if items.is_empty() => "an empty list".into(),
        Value::Array(..) => "a list".into(),
    }
}

fn as_int(v: &Value) -> Option<i128> {
    match v {
        Value::Num(_, n) => match *n {
            Num::U8(x) => Some(x.into()),
            Num::U16(x) => Some(x.into()),
            Num::U32(x) => Some(x.into()),
            Num::U64(x) => Some(x.into()),
            Num::U128(x) => i128::try_from(x).ok(),
            Num::USize(x) => i128::try_from(x).ok(),
            Num::I8(x) => Some(x.into()),
            Num::I16(x) => Some(x.into()),
            Num::I32(x) => Some(x.into()),
            Num::I64(x) => Some(x.into()),
            Num::I128(x) => Some(x),
            Num::ISize(x) => i128::try_from(x).ok(),
            Num::F32(_) | Num::F64(_) => None,
        },
        _ => None,
    }
}

fn flatten<'d>(prefix: String, table: &'d Dict, out: &mut Vec<(String, &'d Value)>) {
    for (k, v) in table {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Dict(_, inner) if !inner.is_empty() => flatten(name, inner, out),
            _ => out.push((name, v)),
        }
    }
}

/// Names inside `{…}` that look like placeholders (identifier characters only), so JSON such as
/// `{"a": 1}` in an argument is left alone.
fn placeholder_names(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            break;
        };
        let name = &after[..close];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.push(name);
            rest = &after[close + 1..];
        } else {
            rest = after;
        }
    }
    names
}

/// A Slack object id: one of `kinds` (C channel, G private channel, D DM, U/W user, S user
/// group) then upper-case letters and digits.
fn is_slack_id(s: &str, kinds: &[char]) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| kinds.contains(&c))
        && s.len() >= 3
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A Slack user group handle: lower-case letters, digits, `-`, `_` and `.` (what Slack allows).
fn is_group_handle(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn is_secret_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "token" | "password" | "passwd" | "secret" | "api_key" | "apikey" | "credentials"
    ) || ["_token", "_password", "_secret", "_api_key"]
        .iter()
        .any(|s| k.ends_with(s))
}

fn looks_like_secret_env(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "TOKEN",
        "PASSWORD",
        "SECRET",
        "SECRET_ACCESS_KEY",
        "API_KEY",
    ]
    .iter()
    .any(|s| n == *s || n.ends_with(&format!("_{s}")))
}

/// The env var that holds the secret someone tried to put at `section.key`, when we can tell.
fn secret_var(section: &str, key: &str) -> Option<&'static str> {
    let s = section.to_ascii_lowercase();
    let k = key.to_ascii_lowercase();
    let about = |word: &str| s == word || k.contains(word);
    if about("discord") {
        Some("DISCORD_TOKEN")
    } else if about("slack") && k.contains("app") {
        Some("SLACK_APP_TOKEN")
    } else if about("slack") {
        Some("SLACK_BOT_TOKEN")
    } else if about("server") {
        Some("SERVER_TOKEN")
    } else if about("github") {
        Some("GITHUB_TOKEN")
    } else if about("airflow") {
        Some("AIRFLOW_PASSWORD")
    } else if about("registry") && k.contains("user") {
        Some("REGISTRY_USERNAME")
    } else if about("registry") {
        Some("REGISTRY_PASSWORD")
    } else {
        None
    }
}

/// Postgres URL after the scheme: `user:password@host/db` has a password.
fn url_has_password(rest: &str) -> bool {
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let in_query = rest
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|p| p.starts_with("password=")));
    in_userinfo || in_query
}

/// What [`Checker::string_list`] does with one item of a list.
enum Item {
    Keep,
    /// Not what the list holds: "must be {item}, got …".
    Invalid,
    /// Of the right form but refused, for the reason given.
    Refused(String),
}

impl Item {
    fn valid(ok: bool) -> Item {
        if ok { Item::Keep } else { Item::Invalid }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, load_from_str};

    const TARGET: &str = r#"
[targets.catalog]
repo = "WordPress/openverse-catalog"
image = "wordpress/openverse-catalog"
workdir = "/srv/infra"
bump = ["just", "bump", "prod", "catalog-airflow", "{version}"]
plan = ["just", "plan", "prod", "catalog-airflow"]
apply = ["just", "apply", "prod", "catalog-airflow"]
"#;

    /// A valid target with `line` replacing (or adding) one of its keys.
    fn with(line: &str) -> String {
        let key = line.split('=').next().unwrap_or_default().trim();
        let mut out: Vec<&str> = TARGET
            .lines()
            .filter(|l| l.split('=').next().unwrap_or_default().trim() != key)
            .collect();
        out.push(line);
        out.join("\n")
    }

    fn problems(toml: &str) -> Vec<String> {
        match load_from_str(toml, &[]) {
            Err(ConfigError::Invalid(p)) => p.0,
            Err(other) => panic!("expected problems, got {other}"),
            Ok(_) => panic!("expected problems, got a valid config"),
        }
    }

    fn only(toml: &str) -> String {
        let p = problems(toml);
        assert_eq!(p.len(), 1, "{p:#?}");
        p[0].clone()
    }

    #[test]
    fn infra_pr_and_changes_path_are_checked() {
        let c = load_from_str(TARGET, &[]).expect("valid");
        let t = &c.targets["catalog"];
        assert_eq!(
            (t.changes_path.as_str(), t.infra_pr.as_ref()),
            ("catalog", None)
        );

        let c = load_from_str(
            &format!(
                "{}\nchanges_path = \"/catalog/dags/\"\n\
                 infra_pr = {{ repo = \"WordPress/openverse-infrastructure\", base = \"main\" }}",
                TARGET.trim_end()
            ),
            &[],
        )
        .expect("valid");
        let t = &c.targets["catalog"];
        assert_eq!(t.changes_path, "catalog/dags");
        assert_eq!(
            t.infra_pr,
            Some(InfraPrConfig {
                repo: "WordPress/openverse-infrastructure".into(),
                base: "main".into(),
                remote: "origin".into(),
            })
        );
        let all = load_from_str(&with("changes_path = \"\""), &[]).expect("valid");
        assert_eq!(all.targets["catalog"].changes_path, "");

        assert_eq!(
            only(&with("infra_pr = \"WordPress/openverse-infrastructure\"")),
            "targets.catalog.infra_pr: must be a table such as { repo = \
             \"WordPress/openverse-infrastructure\", base = \"main\" }, got \
             \"WordPress/openverse-infrastructure\""
        );
        assert_eq!(
            only(&with("infra_pr = { base = \"main\" }")),
            "targets.catalog.infra_pr.repo: is required: the GitHub repository the pull request \
             is opened in, such as { repo = \"WordPress/openverse-infrastructure\", base = \
             \"main\" }"
        );
        let p = problems(&with(
            "infra_pr = { repo = \"nope\", base = \"-f\", remote = \"a..b\", branch = \"x\" }",
        ));
        let text = p.join("\n");
        for needle in [
            "unknown key targets.catalog.infra_pr.branch; known: repo, base, remote",
            "targets.catalog.infra_pr.repo: must be a GitHub repository as \"owner/name\"",
            "targets.catalog.infra_pr.base: must be a git branch name such as \"main\"",
            "targets.catalog.infra_pr.remote: must be a git remote name such as \"origin\"",
        ] {
            assert!(text.contains(needle), "{needle}:\n{text}");
        }
        assert_eq!(
            only(&with("changes_path = \"../secrets\"")),
            "targets.catalog.changes_path: must be a folder of the release repository such as \
             \"catalog\" (letters, digits, \".\", \"_\", \"-\" and \"/\" between names), got \
             \"../secrets\""
        );
        assert!(only(&with("changes_path = 3")).starts_with(
            "targets.catalog.changes_path: must be a folder of the release repository"
        ));
    }

    /// Every list of names (roles, DAG ids, env var patterns) says what the whole must be when
    /// it is not a list, and what each bad item must be, at that item's index; good items stay.
    #[test]
    fn lists_of_names_are_checked_as_a_whole_and_item_by_item() {
        let toml = format!(
            "[local]\nallowed_roles = [\"core-maintainer\", \" \"]\n[migrations]\ndags = \"x\"\n{}",
            with("env_passthrough = [\"AWS_*\", 3, \"NO SPACES\", \"DISCORD_TOKEN\"]")
        );
        let p = problems(&toml);
        let want = [
            "local.allowed_roles[1]: must be a non-empty role name, got \" \"",
            "migrations.dags: must be a list of DAG ids such as [\"image_data_refresh\"], got \"x\"",
            "targets.catalog.env_passthrough[1]: must be an env var name or a pattern such as \"AWS_*\", got 3",
            "targets.catalog.env_passthrough[2]: must be an env var name or a pattern such as \"AWS_*\", got \"NO SPACES\"",
            "targets.catalog.env_passthrough[3]: DISCORD_TOKEN is one of the bot's own secrets, which steps never receive",
        ];
        for w in want {
            assert!(p.iter().any(|e| e == w), "missing {w:?} in {p:#?}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");
        let ok = load_from_str(
            &format!(
                "[local]\nallowed_roles = [\"*\"]\n{}",
                with("env_passthrough = [\"AWS_*\", \"TF_VAR_x\"]")
            ),
            &[],
        )
        .expect("valid");
        assert_eq!(ok.targets["catalog"].env_passthrough, ["AWS_*", "TF_VAR_x"]);
    }

    #[test]
    fn airflow_operation_sections_are_checked() {
        let p = problems(&format!(
            "[watch]\npoll_interval = \"often\"\nannounce = \"yes\"\n\
             [dag_sync]\ncommit_source = {{ path = \"/a\", file = \"/b\" }}\nrepo = \"nope\"\n\
             [catalog_db]\nurl = \"postgres://bot:pw@db/catalog\"\nledger_table = \"x; DROP\"\n\
             [migrations]\ndags = [\"../x\"]\n{TARGET}"
        ));
        let text = p.join("\n");
        for needle in [
            "watch.poll_interval: must be a duration",
            "watch.announce: must be true or false",
            "dag_sync.commit_source: must have exactly one of path, file or command, got path and file",
            "dag_sync.repo: must be a GitHub repository",
            "catalog_db.url: must not contain a password",
            "catalog_db.ledger_table: must be a plain SQL name",
            "migrations.dags[0]: must be a DAG id",
        ] {
            assert!(text.contains(needle), "{needle}:\n{text}");
        }
        let ok = load_from_str(
            &format!(
                "[dag_sync]\ncommit_source = {{ command = [\"cat\", \"/srv/COMMIT\"] }}\n\
                 repo = \"WordPress/openverse\"\n{TARGET}"
            ),
            &[],
        )
        .expect("valid");
        let sync = ok.dag_sync.expect("dag_sync");
        assert_eq!(
            sync.commit_source,
            crate::config::CommitSource::Command(vec!["cat".into(), "/srv/COMMIT".into()])
        );
        assert_eq!(
            (sync.branch.as_str(), sync.dag_folder.as_str()),
            ("main", "catalog/dags")
        );
        assert!(ok.catalog_db.is_none());
        assert!(ok.watch.announce);
    }

    #[test]
    fn argv_must_be_a_non_empty_list_of_strings() {
        for bad in ["bump = []", "bump = \"just bump\""] {
            assert_eq!(
                only(&with(bad)),
                "targets.catalog.bump: must be a non-empty list of strings"
            );
        }
        assert_eq!(
            only(&with("plan = [\"just\", 3]")),
            "targets.catalog.plan[1]: must be a string, got 3"
        );
        assert!(
            only(&with("apply = [\"{version}\"]"))
                .starts_with("targets.catalog.apply[0]: the program must be fixed")
        );
        assert_eq!(
            only(&with(
                r#"bump = ["just", "bump", "prod", "catalog", "{tag}"]"#
            )),
            "targets.catalog.bump[4]: unknown placeholder {tag}; only {version} is substituted"
        );
        // JSON in an argument is not a placeholder.
        load_from_str(&with(r#"plan = ["x", "{\"a\": 1}"]"#), &[]).unwrap();
        let missing: String = TARGET
            .lines()
            .filter(|l| !l.starts_with("apply"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(only(&missing).starts_with(
            "targets.catalog.apply: is required: must be a non-empty list of strings"
        ));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let toml = r#"
[store]
url = "mysql://db"

[chat]
prefx = "!"

[airflow]
api = "v3"

[permissions]
"deploy.strat" = ["core-maintainer"]

[targets.catalog]
repo = "openverse-catalog"
image = "WordPress/Openverse"
workdir = "/srv/infra"
approvals = "two"
bump = []
plan = ["just", "plan"]
apply = ["just", "apply"]
step_timeout = "soon"
release_tag = "latest"
"#;
        let p = problems(toml);
        let expected = [
            "store.url: must start with sqlite:// or postgres://, got \"mysql://db\"",
            "unknown key chat.prefx (did you mean chat.prefix?)",
            "airflow.api: must be one of \"v1\", \"v2\", \"auto\", got \"v3\"",
            "permissions.deploy.strat: unknown permission (did you mean deploy.start?); known: \
             read, deploy.check, deploy.start, deploy.approve, deploy.cancel, deploy.force, \
             dag.enable, migrations.apply",
            "targets.catalog.repo: must be a GitHub repository as \"owner/name\", such as \
             \"WordPress/openverse-catalog\", got \"openverse-catalog\"",
            "targets.catalog.release_tag: must contain {version} exactly once, such as \
             \"{version}\" or \"catalog-{version}\", got \"latest\"",
            "targets.catalog.image: must be a lowercase image repository such as \
             \"wordpress/openverse-catalog\" (a-z, 0-9, \".\", \"_\", \"-\", \"/\"), got \
             \"WordPress/Openverse\"",
            "targets.catalog.approvals: must be an integer from 1 to 5, got \"two\"",
            "targets.catalog.bump: must be a non-empty list of strings",
            "targets.catalog.step_timeout: must be a duration such as \"30m\" or \"90s\", got \"soon\"",
        ];
        assert!(p.len() >= 3);
        for e in expected {
            assert!(p.iter().any(|x| x == e), "missing {e:?} in {p:#?}");
        }
        assert_eq!(p.len(), expected.len(), "{p:#?}");
    }

    #[test]
    fn pause_during_deploy_is_checked() {
        let ok = load_from_str(
            &with(r#"pause_during_deploy = ["image_data_refresh", "audio_data_refresh"]"#),
            &[],
        )
        .expect("valid");
        assert_eq!(
            ok.targets["catalog"].pause_during_deploy,
            ["image_data_refresh", "audio_data_refresh"]
        );
        assert_eq!(
            only(&with(r#"pause_durring_deploy = ["image_data_refresh"]"#)),
            "unknown key targets.catalog.pause_durring_deploy (did you mean \
             targets.catalog.pause_during_deploy?)"
        );
        assert_eq!(
            only(&with(r#"pause_during_deploy = "image_data_refresh""#)),
            "targets.catalog.pause_during_deploy: must be a list of DAG ids such as \
             [\"image_data_refresh\"], got \"image_data_refresh\""
        );
        assert_eq!(
            only(&with(
                r#"pause_during_deploy = ["image_data_refresh", "image_data_refresh"]"#
            )),
            "targets.catalog.pause_during_deploy[1]: lists image_data_refresh twice"
        );
        let both = format!(
            "{}\nignore_dags = [\"image_data_refresh\"]",
            with(r#"pause_during_deploy = ["audio_data_refresh", "image_data_refresh"]"#)
        );
        assert_eq!(
            only(&both),
            "targets.catalog.pause_during_deploy[1]: image_data_refresh is also in ignore_dags: \
             an ignored DAG never blocks and is never paused; keep it in one list \
             (pause_during_deploy for a data refresh that may wait on its sensor during a deploy)"
        );
    }

    #[test]
    fn unknown_keys_get_a_suggestion_or_the_known_list() {
        assert_eq!(
            only(&format!("[chat]\nprefx = \"!\"\n{TARGET}")),
            "unknown key chat.prefx (did you mean chat.prefix?)"
        );
        assert_eq!(
            only(&format!("[permision]\n{TARGET}")),
            "unknown key permision (did you mean permissions?)"
        );
        assert_eq!(
            only(&with("aprovals = 2")),
            "unknown key targets.catalog.aprovals (did you mean targets.catalog.approvals?)"
        );
        assert_eq!(
            only(&format!("[chat]\ncolour = \"red\"\n{TARGET}")),
            "unknown key chat.colour; known: prefix"
        );
    }

    #[test]
    fn secrets_in_the_file_are_refused_naming_the_env_var() {
        let toml = format!(
            "[discord]\ntoken = \"x\"\n[github]\ntoken = \"x\"\n[airflow]\npassword = \"x\"\n\
             [registry]\npassword = \"x\"\n[secrets]\ngithub_token = \"x\"\n{TARGET}"
        );
        let p = problems(&toml);
        for (key, var) in [
            ("discord.token", "DISCORD_TOKEN"),
            ("github.token", "GITHUB_TOKEN"),
            ("airflow.password", "AIRFLOW_PASSWORD"),
            ("registry.password", "REGISTRY_PASSWORD"),
            ("secrets.github_token", "GITHUB_TOKEN"),
        ] {
            let e = format!(
                "{key}: secrets are not read from the config file; set the env var {var} instead"
            );
            assert!(p.contains(&e), "missing {e:?} in {p:#?}");
        }
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(
            only(&with("token = \"x\"")).starts_with("targets.catalog.token: secrets are not read")
        );
        assert!(
            only(&with("env = { AWS_SECRET_ACCESS_KEY = \"x\" }"))
                .contains("list AWS_SECRET_ACCESS_KEY in env_passthrough")
        );
        assert!(
            only(&with("env_passthrough = [\"GITHUB_TOKEN\"]"))
                .contains("GITHUB_TOKEN is one of the bot's own secrets")
        );
        assert_eq!(
            only(&format!(
                "[store]\nurl = \"postgres://u:hunter2@db/x\"\n{TARGET}"
            )),
            "store.url: must not contain a password; set PGPASSWORD in the environment instead"
        );
    }

    #[test]
    fn discord_section() {
        let ok = load_from_str(
            &format!(
            "[discord]\nguild_id = 123456789012345678\nannounce_channel_id = \"42\"\n\
             [discord.roles]\n\"Core Maintainers\" = \"core-maintainer\"\n\"99\" = \"core-maintainer\"\n{TARGET}"
            ),
            &[],
        )
        .expect("valid");
        assert_eq!(ok.discord.guild_id, Some(123456789012345678));
        assert_eq!(ok.discord.announce_channel_id, Some(42));
        assert_eq!(ok.discord.roles["Core Maintainers"], "core-maintainer");
        assert_eq!(ok.discord.api_url, None, "Discord itself unless set");
        let relay = load_from_str(
            &format!("[discord]\napi_url = \"http://127.0.0.1:9000/\"\n{TARGET}"),
            &[],
        )
        .expect("valid");
        assert_eq!(
            relay.discord.api_url.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            only(&format!("[discord]\napi_url = \"discord.com\"\n{TARGET}")),
            "discord.api_url: must be an http:// or https:// URL such as \"https://discord.com\", got \"discord.com\""
        );
        assert_eq!(
            only(&format!("[discord]\nguild_id = \"my server\"\n{TARGET}")),
            "discord.guild_id: must be a Discord id (Developer Mode → right-click → Copy ID), such as 123456789012345678, got \"my server\""
        );
        assert_eq!(
            only(&format!("[discord]\nroles = [\"core\"]\n{TARGET}")),
            "discord.roles: must be a table of guild role name or id → bot role, such as { \"Core Maintainers\" = \"core-maintainer\" }, got a list"
        );
        assert_eq!(
            only(&format!("[discord.roles]\nMods = \"*\"\n{TARGET}")),
            "discord.roles.Mods: must be the bot role this guild role grants, such as \"core-maintainer\" (not \"*\"), got \"*\""
        );
        // One suggestion routine serves the grammar and the config: `guild` is three letters
        // short of `guild_id`, which it allows for a name of eight.
        assert_eq!(
            only(&format!("[discord]\nguild = 1\n{TARGET}")),
            "unknown key discord.guild (did you mean discord.guild_id?)"
        );
        assert_eq!(
            only(&format!("[discord]\nchannel = 1\n{TARGET}")),
            "unknown key discord.channel; known: guild_id, announce_channel_id, roles, api_url"
        );
    }

    #[test]
    fn slack_section() {
        let ok = load_from_str(
            &format!(
                "[slack]\nchannel_id = \"C0123456789\"\n\
                 [slack.roles]\n\"openverse-maintainers\" = \"core-maintainer\"\n\
                 \"@triage\" = \"triage\"\nU0ALICE1 = \"core-maintainer\"\n{TARGET}"
            ),
            &[],
        )
        .expect("valid");
        assert_eq!(ok.slack.channel_id.as_deref(), Some("C0123456789"));
        assert_eq!(
            ok.slack.api_url, "https://slack.com/api",
            "Slack itself unless set"
        );
        assert_eq!(ok.slack.roles["openverse-maintainers"], "core-maintainer");
        assert_eq!(ok.slack.roles["triage"], "triage", "the @ is dropped");
        assert_eq!(ok.slack.roles["U0ALICE1"], "core-maintainer");
        let none = load_from_str(TARGET, &[]).expect("valid");
        assert_eq!(none.slack.channel_id, None);
        assert!(none.slack.roles.is_empty());
        let env = load_from_str(
            TARGET,
            &[(
                "CATALOG_CHATOPS__SLACK__API_URL".into(),
                "http://127.0.0.1:9000/api/".into(),
            )],
        )
        .expect("valid");
        assert_eq!(env.slack.api_url, "http://127.0.0.1:9000/api");
        assert_eq!(
            only(&format!("[slack]\nchannel_id = \"#deploys\"\n{TARGET}")),
            "slack.channel_id: must be a Slack channel id (open the channel → its name → About: Channel ID at the bottom), such as \"C0123456789\", got \"#deploys\""
        );
        assert_eq!(
            only(&format!(
                "[slack.roles]\n\"Core Maintainers\" = \"core-maintainer\"\n{TARGET}"
            )),
            "slack.roles.Core Maintainers: must be a user group handle (such as \"openverse-maintainers\"), a user group id (S…) or a user id (U…)"
        );
        assert_eq!(
            only(&format!("[slack.roles]\nmods = \"*\"\n{TARGET}")),
            "slack.roles.mods: must be the bot role this user group or user gets, such as \"core-maintainer\" (not \"*\"), got \"*\""
        );
        assert_eq!(
            only(&format!("[slack]\nbot_token = \"xoxb-1\"\n{TARGET}")),
            "slack.bot_token: secrets are not read from the config file; set the env var SLACK_BOT_TOKEN instead"
        );
        assert_eq!(
            only(&format!("[slack]\napp_token = \"xapp-1\"\n{TARGET}")),
            "slack.app_token: secrets are not read from the config file; set the env var SLACK_APP_TOKEN instead"
        );
        assert_eq!(
            only(&format!("[slack]\nchannel = \"C1\"\n{TARGET}")),
            "unknown key slack.channel (did you mean slack.channel_id?)"
        );
    }

    #[test]
    fn server_bind_public_url_and_the_token_beyond_loopback() {
        let c = load_from_str(TARGET, &[]).unwrap();
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.public_url, None);
        assert_eq!(c.deploy.shutdown_grace, Duration::from_secs(30));
        let doc = format!(
            "[server]\nbind = \"127.0.0.1:9100\"\npublic_url = \"https://ops.example.org/\"\n\
             [deploy]\nshutdown_grace = \"2m\"\n{TARGET}"
        );
        let c = load_from_str(&doc, &[]).unwrap();
        assert_eq!(c.server.bind.port(), 9100);
        assert_eq!(
            c.server.public_url.as_deref(),
            Some("https://ops.example.org")
        );
        assert_eq!(c.deploy.shutdown_grace, Duration::from_secs(120));
        assert!(
            only(&format!("[server]\nbind = \"localhost\"\n{TARGET}"))
                .starts_with("server.bind: must be an IP address and port")
        );
        // The tests never set SERVER_TOKEN: a wildcard bind is refused without it.
        if std::env::var_os("SERVER_TOKEN").is_none() {
            assert!(
                only(&format!("[server]\nbind = \"0.0.0.0:8080\"\n{TARGET}"))
                    .contains("listens beyond loopback, so the pages need a token")
            );
        }
        assert!(only(&format!("[server]\ntoken = \"abc\"\n{TARGET}")).contains("SERVER_TOKEN"));
    }

    #[test]
    fn durations() {
        let timeout = |s: &str| load_from_str(&with(&format!("step_timeout = {s}")), &[]);
        assert_eq!(
            timeout("\"90s\"").unwrap().targets["catalog"].step_timeout,
            Duration::from_secs(90)
        );
        assert_eq!(
            timeout("\"1h 30m\"").unwrap().targets["catalog"].step_timeout,
            Duration::from_secs(5400)
        );
        assert_eq!(
            only(&with("step_timeout = \"soon\"")),
            "targets.catalog.step_timeout: must be a duration such as \"30m\" or \"90s\", got \"soon\""
        );
        assert_eq!(
            only(&with("step_timeout = 30")),
            "targets.catalog.step_timeout: must be a duration such as \"30m\" or \"90s\", got 30"
        );
        assert!(only(&with("step_timeout = \"0s\"")).contains("must be longer than zero"));
        assert!(only(&with("step_timeout = \"2days\"")).contains("must be at most \"24h\""));
    }

    #[test]
    fn permissions_replace_the_defaults_when_present() {
        let toml = format!("[permissions]\n\"deploy.start\" = [\"ops\"]\nread = [\"*\"]\n{TARGET}");
        let c = load_from_str(&toml, &[]).unwrap();
        assert_eq!(c.permissions.len(), 2);
        assert_eq!(c.permissions["deploy.start"], ["ops"]);
        assert!(!c.permissions.contains_key("deploy.approve"));
        // Unquoted dotted keys nest in TOML; they mean the same permission.
        let toml = format!("[permissions]\ndeploy.approve = [\"ops\", \"core\"]\n{TARGET}");
        let c = load_from_str(&toml, &[]).unwrap();
        assert_eq!(c.permissions.keys().collect::<Vec<_>>(), ["deploy.approve"]);
        assert_eq!(
            only(&format!("[permissions]\nread = \"*\"\n{TARGET}")),
            "permissions.read: must be a list of role names such as [\"core-maintainer\"] or [\"*\"], got \"*\""
        );
        assert_eq!(
            only(&format!("[permissions]\nread = [\"\"]\n{TARGET}")),
            "permissions.read[0]: must be a non-empty role name, got \"\""
        );
    }

    #[test]
    fn scalar_sections() {
        let c = load_from_str(
            &format!(
                "[airflow]\nurl = \"http://localhost:8080/\"\napi = \"v1\"\n\
                 [local]\nallowed_roles = [\"core-maintainer\"]\n[store]\nurl = \"sqlite::memory:\"\n{TARGET}"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(c.airflow.url, "http://localhost:8080");
        assert_eq!(c.airflow.api, AirflowApi::V1);
        assert_eq!(
            c.local.allowed_roles,
            Some(vec!["core-maintainer".to_string()])
        );
        let p = problems(&format!(
            "[chat]\nprefix = \"bot\"\n[github]\napi_url = \"ftp://x\"\n[limits]\nburst = 0\n\
             [local]\nallowed_roles = \"x\"\n[airflow]\nusername = \"\"\n{TARGET}"
        ));
        for e in [
            "chat.prefix: must be 1 to 3 characters that are neither letters, digits nor whitespace, such as \"!\", got \"bot\"",
            "github.api_url: must be an http:// or https:// URL such as \"https://api.github.com\", got \"ftp://x\"",
            "limits.burst: must be an integer from 1 to 10000, got 0",
            "local.allowed_roles: must be a list of role names such as [\"core-maintainer\"] or [\"*\"], got \"x\"",
            "airflow.username: must be a non-empty string, got \"\"",
        ] {
            assert!(p.iter().any(|x| x == e), "missing {e:?} in {p:#?}");
        }
        assert_eq!(p.len(), 5, "{p:#?}");
    }

    #[test]
    fn targets_are_required_and_well_named() {
        assert_eq!(
            only(""),
            "targets: at least one target is required, such as [targets.catalog]"
        );
        assert_eq!(
            only("[targets]\n"),
            "targets: at least one target is required, such as [targets.catalog]"
        );
        assert!(only(&TARGET.replace("targets.catalog", "targets.check")).contains("subcommand"));
        let p = problems("[targets.catalog]\n");
        assert_eq!(p.len(), 6, "{p:#?}");
        assert!(
            p.contains(
                &"targets.catalog.repo: is required, such as \"WordPress/openverse-catalog\""
                    .to_string()
            )
        );
    }

    #[test]
    fn tag_templates() {
        let c = load_from_str(
            &with("release_tag = \"catalog-{version}\"\nimage_tag = \"rel-{version}\""),
            &[],
        )
        .unwrap();
        assert_eq!(c.targets["catalog"].release_tag, "catalog-{version}");
        assert_eq!(c.targets["catalog"].image_tag, "rel-{version}");
        assert!(only(&with("image_tag = \"{version}{version}\"")).contains("exactly once"));
        assert_eq!(
            only(&with("image_tag = \"rel/{version}\"")),
            "targets.catalog.image_tag: may contain only letters, digits, \".\", \"_\" and \"-\" besides {version}, got \"rel/{version}\""
        );
        assert_eq!(
            only(&with("release_tag = \"{tag}\"")),
            "targets.catalog.release_tag: unknown placeholder {tag}; only {version} is substituted"
        );
        assert!(
            only(&with("image = \"ghcr.io/wordpress/openverse-catalog\""))
                .contains("must not include the registry host")
        );
    }
}
