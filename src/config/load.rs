//! Reading the configuration: the TOML text and the `CATALOG_CHATOPS__SECTION__KEY` env overrides
//! are merged into one untyped document, which [`super::validate`] then checks as a whole.
//!
//! We parse into figment's untyped `Value` tree and merge the env ourselves instead of letting
//! figment/serde extract a `Config`, because serde stops at the first error while `check-config`
//! must report every problem at once, and because permission names such as `deploy.start` contain
//! dots that figment's key paths would split.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};

use super::validate;
use super::{Config, Secrets};

/// Env vars starting with this (case-insensitively) override config keys; `__` separates levels.
pub(super) const ENV_PREFIX: &str = "CATALOG_CHATOPS__";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML; the message carries the line and column.
    #[error("{0}")]
    Syntax(String),
    #[error("the configuration has {n} problem(s):\n{0}", n = .0.0.len())]
    Invalid(ConfigProblems),
}

/// Every problem found, each naming the dotted key, what is wrong and what would be right.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigProblems(pub Vec<String>);

impl ConfigProblems {
    /// Whether some problem contains `needle` (convenient for tests and `check-config`).
    pub fn mentions(&self, needle: &str) -> bool {
        self.0.iter().any(|p| p.contains(needle))
    }
}

impl fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// Where an env override came from, so problems can point at the variable rather than the file,
/// and so string keys can use the variable's raw text (`USERNAME=2024` is a name, not a number).
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub var: String,
    pub raw: String,
}

/// Dotted key (as problems spell it) → the env var that set it.
pub(super) type Origins = BTreeMap<String, Origin>;

/// Reads `path`, applies the `CATALOG_CHATOPS__…` variables of the process env, validates.
///
/// Secrets come from [`Secrets::from_env`] only.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Non-UTF-8 names cannot be ours; a non-UTF-8 value is kept lossily and then fails validation
    // with a message naming the variable, which beats silently ignoring it.
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            has_prefix(&k).then(|| (k, v.to_string_lossy().into_owned()))
        })
        .collect();
    load_from_str(&text, &env).map_err(|e| match e {
        ConfigError::Syntax(msg) => ConfigError::Syntax(format!("{}: {msg}", path.display())),
        other => other,
    })
}

/// Like [`load`], from TOML text and an explicit env list (entries without the prefix are ignored).
pub fn load_from_str(toml: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let mut doc: Dict = Toml::from_str(toml)
        .map_err(|e| ConfigError::Syntax(format!("invalid TOML: {}", e.to_string().trim_end())))?;
    let mut problems = Vec::new();
    let origins = apply_env(&mut doc, env, &mut problems);
    validate::validate(&doc, &origins, problems, Secrets::from_env())
        .map_err(|p| ConfigError::Invalid(ConfigProblems(p)))
}

fn has_prefix(name: &str) -> bool {
    name.get(..ENV_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
}

/// Merges the overrides into `doc` and returns where each came from.
fn apply_env(doc: &mut Dict, env: &[(String, String)], problems: &mut Vec<String>) -> Origins {
    let mut overrides: Vec<(Vec<String>, &str, &str)> = Vec::new();
    for (name, raw) in env {
        if !has_prefix(name) {
            continue;
        }
        let rest = &name[ENV_PREFIX.len()..];
        let segments: Vec<&str> = rest.split("__").collect();
        if segments.iter().any(|s| s.is_empty()) {
            problems.push(format!(
                "env {name}: must name a key like CATALOG_CHATOPS__SECTION__KEY, \
                 with no empty parts between the double underscores"
            ));
            continue;
        }
        overrides.push((env_key_path(&segments), name, raw));
    }
    // A whole table and a key inside it may both be set; the more specific variable wins, and
    // ordering by name keeps the result independent of the process env's order.
    overrides.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then(a.1.cmp(b.1)));

    let mut origins = Origins::new();
    for (path, var, raw) in overrides {
        // Without a [permissions] section the defaults apply; overriding one permission should
        // change that one, not silently revoke all the others. (Setting the whole table via
        // CATALOG_CHATOPS__PERMISSIONS replaces the defaults, like a [permissions] section.)
        if path.len() > 1 && path[0] == "permissions" && !doc.contains_key("permissions") {
            doc.insert(
                "permissions".into(),
                Value::from(validate::default_permissions_dict()),
            );
        }
        set_path(doc, &path, parse_env_value(raw));
        origins.insert(
            path.join("."),
            Origin {
                var: var.to_string(),
                raw: raw.to_string(),
            },
        );
    }
    origins
}

/// Key names are case-insensitive and become lowercase, with two exceptions that keep the
/// TOML shape reachable: permission names are dotted (`PERMISSIONS__DEPLOY__START` →
/// `permissions."deploy.start"`), and the keys of a target's `env` table are env var names whose
/// case matters (`TARGETS__CATALOG__ENV__TF_VAR_x` keeps `TF_VAR_x`).
fn env_key_path(segments: &[&str]) -> Vec<String> {
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    match lower.as_slice() {
        [first, rest @ ..] if first == "permissions" && !rest.is_empty() => {
            vec![first.clone(), rest.join(".")]
        }
        [t, name, env, ..] if t == "targets" && env == "env" && segments.len() > 3 => {
            vec![
                t.clone(),
                name.clone(),
                env.clone(),
                segments[3..].join("__"),
            ]
        }
        _ => lower,
    }
}

/// Env values parse like TOML values (`2`, `true`, `["a", "b"]`, `"quoted"`); anything that is
/// not a TOML value (`30m`, `/srv/infra`, `!`) is taken as a plain string.
fn parse_env_value(raw: &str) -> Value {
    let parsed: Option<Value> = Toml::from_str::<Dict>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut d| d.remove("v"));
    match parsed {
        // TOML dates come back as a private marker table; as config values they are just text.
        Some(Value::Dict(_, d)) if d.keys().any(|k| k.starts_with("$__toml_private")) => {
            Value::from(raw.to_string())
        }
        Some(v) => v,
        None => Value::from(raw.to_string()),
    }
}

/// Sets `path` in `doc`, creating tables on the way; an override replaces a non-table in its way
/// and merges into an existing table, as figment's `merge` would.
fn set_path(doc: &mut Dict, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut table = doc;
    for key in parents {
        let slot = table
            .entry(key.clone())
            .or_insert_with(|| Value::from(Dict::new()));
        if !matches!(slot, Value::Dict(..)) {
            *slot = Value::from(Dict::new());
        }
        table = match slot {
            Value::Dict(_, d) => d,
            // Unreachable: the slot was made a table just above.
            _ => return,
        };
    }
    match (table.get_mut(last), value) {
        (Some(Value::Dict(_, old)), Value::Dict(_, new)) => merge(old, new),
        (_, value) => {
            table.insert(last.clone(), value);
        }
    }
}

fn merge(into: &mut Dict, from: Dict) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Dict(_, old)), Value::Dict(_, new)) => merge(old, new),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = include_str!("../../config/catalog-chatops.toml");
    const SANDBOX: &str = include_str!("../../config/sandbox.toml");
    const SANDBOX_ANSIBLE: &str = include_str!("../../config/sandbox-ansible.toml");
    const SEED_ERA: &str = include_str!("../../config/examples/openverse-catalog-2022.toml");

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn problems(toml: &str, env: &[(String, String)]) -> Vec<String> {
        match load_from_str(toml, env) {
            Err(ConfigError::Invalid(p)) => p.0,
            Err(other) => panic!("expected problems, got {other}"),
            Ok(_) => panic!("expected problems, got a valid config"),
        }
    }

    const MINIMAL: &str = r#"
[targets.catalog]
repo = "WordPress/openverse-catalog"
image = "wordpress/openverse-catalog"
workdir = "/srv/infra"
bump = ["just", "bump", "prod", "catalog-airflow", "{version}"]
plan = ["just", "plan", "prod", "catalog-airflow"]
apply = ["just", "apply", "prod", "catalog-airflow"]
"#;

    #[test]
    fn shipped_real_config_is_todays_openverse() {
        let c = load_from_str(REAL, &[]).unwrap();
        assert_eq!(c.store.url, "sqlite://data/catalog-chatops.db");
        assert_eq!(c.chat.prefix, "!");
        // Production runs Airflow 2.9.3.
        assert_eq!(c.airflow.api, crate::config::AirflowApi::V1);
        assert_eq!(c.permissions["deploy.start"], vec!["core-maintainer"]);
        assert_eq!(c.permissions.len(), 8);
        let t = &c.targets["catalog"];
        assert_eq!(t.repo, "WordPress/openverse");
        assert_eq!(t.image, "wordpress/openverse-catalog");
        assert_eq!(t.release_tag, "catalog-{version}");
        assert_eq!(t.image_tag, "rel-{version}");
        assert_eq!(t.environment, "production");
        assert_eq!(t.flow, crate::config::Flow::Ansible);
        // The runbook's commands.
        assert_eq!(t.bump, ["just", "bump", "production", "airflow"]);
        assert_eq!(
            t.plan,
            [
                "just",
                "ansible/playbook",
                "production",
                "airflow.yml",
                "-t",
                "airflow",
                "--check",
                "--diff"
            ]
        );
        assert_eq!(
            t.apply,
            [
                "just",
                "ansible/playbook",
                "production",
                "airflow.yml",
                "-t",
                "airflow",
                "--diff",
                "-e",
                "airflow_apply=true"
            ]
        );
        assert_eq!(t.step_timeout, std::time::Duration::from_secs(30 * 60));
        assert_eq!(t.env_passthrough, ["AWS_*", "ANSIBLE_*", "SSH_AUTH_SOCK"]);
        assert_eq!(c.limits.commands_per_minute, 30);
        assert_eq!(c.limits.burst, 10);
        assert!(c.local.allowed_roles.is_none());
    }

    #[test]
    fn the_seed_era_example_is_the_terraform_flow() {
        let c = load_from_str(SEED_ERA, &[]).unwrap();
        let t = &c.targets["catalog"];
        assert_eq!(t.repo, "WordPress/openverse-catalog");
        assert_eq!(t.release_tag, "{version}");
        assert_eq!(t.image_tag, "{version}");
        assert_eq!(t.environment, "prod");
        assert_eq!(t.flow, crate::config::Flow::Terraform);
        assert_eq!(t.bump, ["just", "bump", "prod", "catalog-airflow"]);
        assert_eq!(t.plan, ["just", "plan", "prod", "catalog-airflow"]);
        assert_eq!(t.apply, ["just", "apply", "prod", "catalog-airflow"]);
        assert_eq!(t.env_passthrough, ["AWS_*", "TF_*"]);
    }

    #[test]
    fn the_ansible_sandbox_config_is_valid() {
        let c = load_from_str(SANDBOX_ANSIBLE, &[]).unwrap();
        assert_eq!(c.store.url, "sqlite://data/sandbox-ansible.db");
        assert_eq!(c.airflow.api, crate::config::AirflowApi::V1);
        let t = &c.targets["catalog"];
        assert_eq!(t.flow, crate::config::Flow::Ansible);
        assert_eq!(t.repo, "WordPress/openverse");
        assert_eq!(t.workdir, "data/sandbox-ansible-infra");
    }

    #[test]
    fn flow_is_checked() {
        let bad = format!("{MINIMAL}flow = \"pulumi\"\n");
        assert_eq!(
            problems(&bad, &[]),
            [
                "targets.catalog.flow: must be \"terraform\" (a Terraform plan, apply answers its \
              prompt) or \"ansible\" (a playbook's dry run as the plan), got \"pulumi\""
            ]
        );
        let same = r#"
[targets.catalog]
repo = "WordPress/openverse"
image = "wordpress/openverse-catalog"
workdir = "/srv/infra"
flow = "ansible"
bump = ["just", "bump", "production", "airflow"]
plan = ["just", "ansible/playbook", "production", "airflow.yml", "--check"]
apply = ["just", "ansible/playbook", "production", "airflow.yml", "--check"]
"#;
        let p = problems(same, &[]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("targets.catalog.apply: is the same command as plan"),
            "{p:?}"
        );
        let c = load_from_str(MINIMAL, &[]).unwrap();
        assert_eq!(c.targets["catalog"].flow, crate::config::Flow::Terraform);
    }

    #[test]
    fn shipped_sandbox_config_is_valid() {
        let c = load_from_str(SANDBOX, &[]).unwrap();
        assert_eq!(c.store.url, "sqlite://data/sandbox.db");
        assert_eq!(c.github.api_url, "http://127.0.0.1:18081");
        assert_eq!(c.registry.url, "http://127.0.0.1:18082");
        assert_eq!(c.airflow.url, "http://127.0.0.1:18083");
        assert_eq!(c.airflow.api, crate::config::AirflowApi::V2);
        let t = &c.targets["catalog"];
        assert_eq!(t.workdir, "data/sandbox-infra");
        assert_eq!(
            t.bump,
            ["just", "--justfile", "infra.justfile", "bump", "{version}"]
        );
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = load_from_str(MINIMAL, &[]).unwrap();
        assert_eq!(c.store.url, "sqlite://data/catalog-chatops.db");
        assert_eq!(c.github.api_url, "https://api.github.com");
        assert_eq!(c.registry.url, "https://ghcr.io");
        assert_eq!(c.airflow.url, "https://airflow.openverse.org");
        assert_eq!(c.airflow.username, "chatops");
        assert_eq!(c.permissions["read"], vec!["*"]);
        assert_eq!(c.permissions["migrations.apply"], vec!["core-maintainer"]);
        let t = &c.targets["catalog"];
        assert_eq!(t.image_tag, "{version}");
        assert_eq!(t.environment, "prod");
        assert_eq!(t.approvals, 1);
        assert!(t.block_on_running_dags);
        assert!(t.ignore_dags.is_empty() && t.env_passthrough.is_empty() && t.env.is_empty());
    }

    #[test]
    fn env_overrides_reach_nested_keys_with_toml_types() {
        let e = env(&[
            ("CATALOG_CHATOPS__TARGETS__CATALOG__WORKDIR", "/opt/infra"),
            ("CATALOG_CHATOPS__TARGETS__CATALOG__APPROVALS", "2"),
            (
                "catalog_chatops__targets__catalog__ignore_dags",
                r#"["image_data_refresh", "audio_data_refresh"]"#,
            ),
            ("CATALOG_CHATOPS__Airflow__URL", "http://airflow.local:8080"),
            ("CATALOG_CHATOPS__AIRFLOW__USERNAME", "2024"),
            ("CATALOG_CHATOPS__TARGETS__CATALOG__ENV__TF_VAR_x", "1"),
            ("CATALOG_CHATOPS__CHAT__PREFIX", "?"),
            ("CATALOG_CHATOPS_CONFIG", "ignored.toml"),
            ("UNRELATED", "x"),
        ]);
        let c = load_from_str(MINIMAL, &e).unwrap();
        let t = &c.targets["catalog"];
        assert_eq!(t.workdir, "/opt/infra");
        assert_eq!(t.approvals, 2);
        assert_eq!(t.ignore_dags, ["image_data_refresh", "audio_data_refresh"]);
        assert_eq!(t.env["TF_VAR_x"], "1");
        assert_eq!(c.airflow.url, "http://airflow.local:8080");
        assert_eq!(c.airflow.username, "2024");
        assert_eq!(c.chat.prefix, "?");
    }

    #[test]
    fn env_can_add_a_whole_target_and_override_one_permission() {
        let e = env(&[
            (
                "CATALOG_CHATOPS__TARGETS__STAGING__REPO",
                "WordPress/openverse",
            ),
            (
                "CATALOG_CHATOPS__TARGETS__STAGING__IMAGE",
                "wordpress/openverse-catalog",
            ),
            ("CATALOG_CHATOPS__TARGETS__STAGING__WORKDIR", "."),
            (
                "CATALOG_CHATOPS__TARGETS__STAGING__BUMP",
                r#"["just", "bump", "{version}"]"#,
            ),
            (
                "CATALOG_CHATOPS__TARGETS__STAGING__PLAN",
                r#"["just", "plan"]"#,
            ),
            (
                "CATALOG_CHATOPS__TARGETS__STAGING__APPLY",
                r#"["just", "apply"]"#,
            ),
            ("CATALOG_CHATOPS__PERMISSIONS__DAG__ENABLE", r#"["ops"]"#),
        ]);
        let c = load_from_str(MINIMAL, &e).unwrap();
        assert_eq!(c.target_names(), ["catalog", "staging"]);
        assert_eq!(c.permissions["dag.enable"], vec!["ops"]);
        // The other defaults survive an override of one permission.
        assert_eq!(c.permissions["deploy.start"], vec!["core-maintainer"]);

        let e = env(&[("CATALOG_CHATOPS__PERMISSIONS", r#"{ read = ["*"] }"#)]);
        let c = load_from_str(MINIMAL, &e).unwrap();
        assert_eq!(c.permissions.keys().collect::<Vec<_>>(), ["read"]);
    }

    #[test]
    fn env_problems_name_the_variable() {
        let e = env(&[("CATALOG_CHATOPS__TARGETS__CATALOG__APPROVALS", "two")]);
        let p = problems(MINIMAL, &e);
        assert_eq!(
            p,
            [
                "targets.catalog.approvals: must be an integer from 1 to 5, got \"two\" \
                 (from env CATALOG_CHATOPS__TARGETS__CATALOG__APPROVALS)"
            ]
        );
        let p = problems(MINIMAL, &env(&[("CATALOG_CHATOPS__CHAT____X", "1")]));
        assert!(
            p[0].starts_with("env CATALOG_CHATOPS__CHAT____X: "),
            "{p:?}"
        );
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        match load_from_str("[chat]\nprefix = \n", &[]) {
            Err(ConfigError::Syntax(m)) => assert!(m.contains("line 2"), "{m}"),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn load_reads_a_file_and_reports_unreadable_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let c = load(&path).unwrap();
        assert_eq!(c.target_names(), ["catalog"]);

        let missing = dir.path().join("missing.toml");
        let err = load(&missing).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read config file {}: ", missing.display())),
            "{err}"
        );

        std::fs::write(&path, "[chat\n").unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax(_)));
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn problems_display_one_per_line() {
        let p = ConfigProblems(vec!["a: x".into(), "b: y".into()]);
        assert_eq!(p.to_string(), "a: x\nb: y");
        assert!(p.mentions("b: y"));
        let e = ConfigError::Invalid(p);
        assert_eq!(
            e.to_string(),
            "the configuration has 2 problem(s):\na: x\nb: y"
        );
    }
}
