//! The chat grammar: text → [`Command`], pure and without I/O.
//!
//! Every front end (Discord, console, exec) hands the raw message text to [`parse()`] with a
//! [`ParseContext`] describing the prefix, the bot's own mention and the configured targets.
//! Invalid input yields a [`ParseError`] whose `Display` is the sentence the user sees.
//!
//! What each command is — words, arguments, options, permission, help — is one row of the table
//! in [`forms`]; the parser, `!help`, the Discord slash commands and the config check read it.

mod display;
mod error;
pub mod forms;
mod help;
mod parse;

/// Versions have their own module (the step runner and preflight use them too); the grammar
/// re-exports the type its commands carry.
pub use crate::version::Version;
pub use error::ParseError;
/// How the bot quotes what someone typed; version errors quote it the same way.
pub(crate) use error::code;
pub use forms::{Form, HelpLine, command_words, reserved_target_name, subcommands};
pub use help::{help_for, help_overview, usage_after_word};
pub use parse::{MAX_INPUT_CHARS, ParseContext, check_characters, parse};

use crate::policy::Permission;

/// How an interrupted deploy was settled by a maintainer after checking reality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    Succeeded,
    Failed,
}

/// How long a `--when-idle` deploy may wait for the DAG runs: whole seconds within
/// [`Within::MIN`]..=[`Within::MAX`], shown in the largest unit that divides it (`90m`, `6h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Within {
    secs: u64,
}

impl Within {
    /// The contract's default: six hours.
    pub const DEFAULT: Within = Within { secs: 6 * 3600 };
    pub const MIN: Within = Within { secs: 60 };
    /// A week: data refreshes run for days, but a lock held longer is forgotten, not waiting.
    pub const MAX: Within = Within {
        secs: 7 * 24 * 3600,
    };

    /// `6h`, `90m`, `1h30m`, `2d`: a humantime duration within the bounds.
    pub fn parse(typed: &str) -> Option<Within> {
        let d = humantime::parse_duration(typed).ok()?;
        (d.subsec_nanos() == 0 && (Self::MIN.secs..=Self::MAX.secs).contains(&d.as_secs()))
            .then_some(Within { secs: d.as_secs() })
    }

    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.secs)
    }
}

impl std::fmt::Display for Within {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // One token, so the rendered command parses back to itself.
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
            if self.secs.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.secs / size);
            }
        }
        write!(f, "{}s", self.secs)
    }
}

/// One chat command, fully parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    /// `!help [command]`: the command list, or one command's usage.
    Help { topic: Option<String> },
    /// `!deploy <target> <version> [--force] [--when-idle [--within <duration>]]`: the full
    /// deploy workflow; `--when-idle` waits with the lock while only DAG runs block.
    Deploy {
        target: String,
        version: Version,
        force: bool,
        when_idle: bool,
        /// How long `--when-idle` may wait (default [`Within::DEFAULT`]).
        within: Option<Within>,
    },
    /// `!deploy check <target> <version>`: preflight only, changes nothing.
    DeployCheck { target: String, version: Version },
    /// `!deploy approve <id>`: approve the plan of a waiting deploy.
    DeployApprove { id: i64 },
    /// `!deploy cancel <id>`: cancel a deploy before apply.
    DeployCancel { id: i64 },
    /// `!deploy status [<id>]`: one deploy, or the active ones.
    DeployStatus { id: Option<i64> },
    /// `!deploy history [<target>]`: recent deploys.
    DeployHistory { target: Option<String> },
    /// `!deploy resolve <id> succeeded|failed`: settle an interrupted deploy.
    DeployResolve { id: i64, resolution: Resolution },
    /// `!deploy rollback <target>`: deploy the previous successfully deployed version.
    DeployRollback { target: String },
    /// `!locks`: who holds which deploy lock.
    Locks,
    /// `!dag-sync status`.
    DagSyncStatus,
    /// `!airflow status`.
    AirflowStatus,
    /// `!dags new [--days N]`: DAGs first seen recently that are still paused.
    DagsNew { days: Option<u32> },
    /// `!dag enable <dag_id> [--confirm]`.
    DagEnable { dag_id: String, confirm: bool },
    /// `!migrations status`.
    MigrationsStatus,
    /// `!migrations apply <name>`.
    MigrationsApply { name: String },
    /// `!audit [<n>]`: the last n audit events.
    Audit { limit: Option<u32> },
}

impl Command {
    /// The command's form in the table, with the values it carries in the form's order: what
    /// renders it, names it, and tells which permission it needs. The one place that knows which
    /// variant belongs to which row.
    pub(crate) fn parts(&self) -> Parts<'_> {
        use Value::{Number, Text};
        use forms::*;
        match self {
            Command::Help { topic } => Parts::of(&HELP).optional(topic.as_deref().map(Text)),
            Command::Deploy {
                target,
                version,
                force,
                when_idle,
                within,
            } => Parts::of(&DEPLOY)
                .arg(Text(target))
                .arg(Value::Version(version))
                .flag(&FORCE, *force)
                .flag(&WHEN_IDLE, *when_idle)
                .value(&WITHIN, within.map(Value::Within)),
            Command::DeployCheck { target, version } => Parts::of(&DEPLOY_CHECK)
                .arg(Text(target))
                .arg(Value::Version(version)),
            Command::DeployApprove { id } => Parts::of(&DEPLOY_APPROVE).arg(Number(*id)),
            Command::DeployCancel { id } => Parts::of(&DEPLOY_CANCEL).arg(Number(*id)),
            Command::DeployStatus { id } => Parts::of(&DEPLOY_STATUS).optional(id.map(Number)),
            Command::DeployHistory { target } => {
                Parts::of(&DEPLOY_HISTORY).optional(target.as_deref().map(Text))
            }
            Command::DeployResolve { id, resolution } => Parts::of(&DEPLOY_RESOLVE)
                .arg(Number(*id))
                .arg(Value::Resolution(*resolution)),
            Command::DeployRollback { target } => Parts::of(&DEPLOY_ROLLBACK).arg(Text(target)),
            Command::Locks => Parts::of(&LOCKS),
            Command::DagSyncStatus => Parts::of(&DAG_SYNC_STATUS),
            Command::AirflowStatus => Parts::of(&AIRFLOW_STATUS),
            Command::DagsNew { days } => {
                Parts::of(&DAGS_NEW).value(&DAYS, days.map(|d| Number(d.into())))
            }
            Command::DagEnable { dag_id, confirm } => Parts::of(&DAG_ENABLE)
                .arg(Text(dag_id))
                .flag(&CONFIRM, *confirm),
            Command::MigrationsStatus => Parts::of(&MIGRATIONS_STATUS),
            Command::MigrationsApply { name } => Parts::of(&MIGRATIONS_APPLY).arg(Text(name)),
            Command::Audit { limit } => Parts::of(&AUDIT).optional(limit.map(|n| Number(n.into()))),
        }
    }

    /// The permission (interface.md) this command needs: its form's, or that of an option given
    /// that needs another (`--force`).
    pub fn permission(&self) -> Permission {
        let parts = self.parts();
        parts
            .options
            .iter()
            .find_map(|(option, _)| option.permission)
            .unwrap_or(parts.form.permission)
    }

    /// Changes nothing anywhere (reads the store or upstream services only). Such a command is
    /// audited once, after it ran and before its single reply is shown; a command with effects
    /// is audited before it starts and again with its result.
    pub fn is_read_only(&self) -> bool {
        self.permission().changes_nothing()
    }

    /// A short stable name for metrics and the audit log (`deploy.check`, `locks`, …).
    pub fn name(&self) -> &'static str {
        self.parts().form.name
    }

    /// The deploy target this command concerns, if any (for the audit log and spans).
    pub fn target(&self) -> Option<&str> {
        let parts = self.parts();
        parts
            .form
            .args
            .iter()
            .zip(parts.args)
            .find_map(|(arg, value)| match (arg.kind, value) {
                (forms::ArgKind::Target, Value::Text(target)) => Some(target),
                _ => None,
            })
    }
}

/// A value a command carries, as it is typed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'c> {
    Text(&'c str),
    Number(i64),
    Version(&'c Version),
    Resolution(Resolution),
    Within(Within),
}

impl std::fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::Number(n) => write!(f, "{n}"),
            Value::Version(v) => write!(f, "{v}"),
            Value::Resolution(r) => write!(f, "{r}"),
            Value::Within(w) => write!(f, "{w}"),
        }
    }
}

/// A command taken apart along its form: the positionals in the row's order (optional ones
/// left out at the end), then the options given.
#[derive(Debug)]
pub(crate) struct Parts<'c> {
    pub form: &'static Form,
    pub args: Vec<Value<'c>>,
    pub options: Vec<(&'static forms::Opt, Option<Value<'c>>)>,
}

impl<'c> Parts<'c> {
    fn of(form: &'static Form) -> Parts<'c> {
        Parts {
            form,
            args: Vec::new(),
            options: Vec::new(),
        }
    }

    fn arg(mut self, value: Value<'c>) -> Parts<'c> {
        self.args.push(value);
        self
    }

    fn optional(self, value: Option<Value<'c>>) -> Parts<'c> {
        match value {
            Some(v) => self.arg(v),
            None => self,
        }
    }

    /// `option` given with `value` (or not given, for `None`).
    fn value(mut self, option: &'static forms::Opt, value: Option<Value<'c>>) -> Parts<'c> {
        if let Some(value) = value {
            self.options.push((option, Some(value)));
        }
        self
    }

    /// The flag `option`, if `given`.
    fn flag(mut self, option: &'static forms::Opt, given: bool) -> Parts<'c> {
        if given {
            self.options.push((option, None));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Within;

    #[test]
    fn a_waiting_time_is_one_token_in_its_largest_whole_unit() {
        for (typed, shown) in [
            ("6h", "6h"),
            ("1h30m", "90m"),
            ("2days", "2d"),
            ("61s", "61s"),
        ] {
            let w = Within::parse(typed).expect(typed);
            assert_eq!(w.to_string(), shown);
            assert_eq!(Within::parse(shown), Some(w));
        }
        for bad in ["59s", "8d", "1.5s", "soon", ""] {
            assert_eq!(Within::parse(bad), None, "{bad}");
        }
        assert_eq!(Within::DEFAULT.as_duration().as_secs(), 6 * 3600);
    }
}
