//! The chat grammar: text → [`Command`], pure and without I/O.
//!
//! Every front end (Discord, console, exec) hands the raw message text to [`parse()`] with a
//! [`ParseContext`] describing the prefix, the bot's own mention and the configured targets.
//! Invalid input yields a [`ParseError`] whose `Display` is the sentence the user sees.

mod display;
mod help;
mod parse;

/// Versions have their own module (the step runner and preflight use them too); the grammar
/// re-exports the type its commands carry.
pub use crate::version::Version;
pub use help::COMMAND_WORDS;
pub use help::{COMMANDS, CommandHelp, help_for, help_overview};
pub use parse::DEPLOY_SUBCOMMANDS;
/// How the bot quotes what someone typed; version errors quote it the same way.
pub(crate) use parse::code;
pub use parse::{MAX_INPUT_CHARS, ParseContext, ParseError, check_characters, parse};

/// How an interrupted deploy was settled by a maintainer after checking reality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    Succeeded,
    Failed,
}

/// One chat command, fully parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    /// `!help [command]`: the command list, or one command's usage.
    Help { topic: Option<String> },
    /// `!deploy <target> <version> [--force]`: the full deploy workflow.
    Deploy {
        target: String,
        version: Version,
        force: bool,
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
    /// The permission (interface.md) this command needs.
    pub fn permission(&self) -> &'static str {
        match self {
            Command::Help { .. }
            | Command::DeployStatus { .. }
            | Command::DeployHistory { .. }
            | Command::Locks
            | Command::DagSyncStatus
            | Command::AirflowStatus
            | Command::DagsNew { .. }
            | Command::MigrationsStatus
            | Command::Audit { .. } => "read",
            Command::Deploy { force: true, .. } => "deploy.force",
            Command::Deploy { force: false, .. } | Command::DeployRollback { .. } => "deploy.start",
            Command::DeployCheck { .. } => "deploy.check",
            Command::DeployApprove { .. } | Command::DeployResolve { .. } => "deploy.approve",
            Command::DeployCancel { .. } => "deploy.cancel",
            Command::DagEnable { .. } => "dag.enable",
            Command::MigrationsApply { .. } => "migrations.apply",
        }
    }

    /// Changes nothing anywhere (reads the store or upstream services only). Such a command is
    /// audited once, after it ran and before its single reply is shown; a command with effects
    /// is audited before it starts and again with its result.
    pub fn is_read_only(&self) -> bool {
        matches!(self.permission(), "read" | "deploy.check")
    }

    /// A short stable name for metrics and the audit log (`deploy.check`, `locks`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Help { .. } => "help",
            Command::Deploy { .. } => "deploy",
            Command::DeployCheck { .. } => "deploy.check",
            Command::DeployApprove { .. } => "deploy.approve",
            Command::DeployCancel { .. } => "deploy.cancel",
            Command::DeployStatus { .. } => "deploy.status",
            Command::DeployHistory { .. } => "deploy.history",
            Command::DeployResolve { .. } => "deploy.resolve",
            Command::DeployRollback { .. } => "deploy.rollback",
            Command::Locks => "locks",
            Command::DagSyncStatus => "dag-sync.status",
            Command::AirflowStatus => "airflow.status",
            Command::DagsNew { .. } => "dags.new",
            Command::DagEnable { .. } => "dag.enable",
            Command::MigrationsStatus => "migrations.status",
            Command::MigrationsApply { .. } => "migrations.apply",
            Command::Audit { .. } => "audit",
        }
    }

    /// The deploy target this command concerns, if any (for the audit log and spans).
    pub fn target(&self) -> Option<&str> {
        match self {
            Command::Deploy { target, .. }
            | Command::DeployCheck { target, .. }
            | Command::DeployRollback { target } => Some(target),
            Command::DeployHistory { target } => target.as_deref(),
            _ => None,
        }
    }
}

/// Every permission name a command can need, in the order of interface.md.
pub const PERMISSIONS: [&str; 8] = [
    "read",
    "deploy.check",
    "deploy.start",
    "deploy.approve",
    "deploy.cancel",
    "deploy.force",
    "dag.enable",
    "migrations.apply",
];
