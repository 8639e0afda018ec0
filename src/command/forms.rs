//! The table of command forms: what each command is — its words, its arguments, its options, the
//! permission it needs and what `!help` says about it — in one row per form.
//!
//! Everything else reads this table: the parser (which words exist, which subcommands, which
//! options take a value, the usage line of an error), `!help`, the Discord slash commands, and
//! the config check (a target cannot be named like a subcommand). A new command is one row here
//! (with its `build`, which turns checked words into the [`Command`]), its [`Command`] variant
//! with its arm in [`Command::parts`], and its handler.

use super::parse::Args;
use super::{Command, ParseError};
use crate::policy::Permission;

/// What a positional argument is: it decides how the word is checked and how it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A configured deploy target (exact, case-sensitive).
    Target,
    /// A release version (`v1.2.3`, `2023.07.03.17.52.00`, `latest`).
    Version,
    /// A deploy id, `7` or `#7`.
    Id,
    /// `succeeded` or `failed`.
    Resolution,
    /// An Airflow DAG id.
    DagId,
    /// A catalog DB migration's name.
    MigrationName,
    /// A command word to explain.
    HelpTopic,
    /// How many audit events to show.
    AuditLimit,
}

impl ArgKind {
    /// How the argument is named in usage lines and "missing" errors.
    pub const fn placeholder(self) -> &'static str {
        match self {
            ArgKind::Target => "<target>",
            ArgKind::Version => "<version>",
            ArgKind::Id => "<id>",
            ArgKind::Resolution => "succeeded|failed",
            ArgKind::DagId => "<dag_id>",
            ArgKind::MigrationName => "<name>",
            ArgKind::HelpTopic => "command",
            ArgKind::AuditLimit => "<n>",
        }
    }

    /// A valid value, for the examples in error sentences (and the table's own tests).
    pub const fn sample(self) -> &'static str {
        match self {
            ArgKind::Target => "catalog",
            ArgKind::Version => "v1.2.3",
            ArgKind::Id => "7",
            ArgKind::Resolution => "succeeded",
            ArgKind::DagId => "flickr_workflow",
            ArgKind::MigrationName => "0042_add_index",
            ArgKind::HelpTopic => "deploy",
            ArgKind::AuditLimit => "20",
        }
    }
}

/// A positional argument of a form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    pub kind: ArgKind,
    pub optional: bool,
}

const fn required(kind: ArgKind) -> Arg {
    Arg {
        kind,
        optional: false,
    }
}

const fn optional(kind: ArgKind) -> Arg {
    Arg {
        kind,
        optional: true,
    }
}

impl Arg {
    /// `<target>`, or `[<id>]` when it may be left out.
    pub fn usage(&self) -> String {
        if self.optional {
            format!("[{}]", self.kind.placeholder())
        } else {
            self.kind.placeholder().to_owned()
        }
    }
}

/// An option's value: how usage lines name it and a valid example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptValue {
    pub placeholder: &'static str,
    pub example: &'static str,
}

/// An option (`--force`, `--days N`), given anywhere after the command word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    /// As typed, with the dashes: `--force`.
    pub long: &'static str,
    /// `None` for a flag.
    pub value: Option<OptValue>,
    /// The permission a command with this option needs instead of its form's.
    pub permission: Option<Permission>,
    /// What it does when it deserves its own `!help` line; otherwise it is shown in brackets on
    /// its form's line.
    pub help: Option<&'static str>,
    /// The option it only makes sense with (`--within` needs `--when-idle`): shown in brackets
    /// on that option's help line, and refused without it.
    pub requires: Option<&'static Opt>,
}

impl Opt {
    /// The name the user types after `--`, lowercase.
    pub fn name(&self) -> &'static str {
        self.long.trim_start_matches('-')
    }

    /// `--days N`, or `--force`.
    pub fn usage(&self) -> String {
        match self.value {
            Some(v) => format!("{} {}", self.long, v.placeholder),
            None => self.long.to_owned(),
        }
    }
}

/// One command form: the words that select it and everything else that describes it.
#[derive(Debug)]
pub struct Form {
    /// The stable name, the command words joined by `.` (`deploy.check`, `dag-sync.status`): used
    /// in the audit log and metrics.
    pub name: &'static str,
    pub args: &'static [Arg],
    pub options: &'static [Opt],
    pub permission: Permission,
    /// What it does, for `!help`.
    pub summary: &'static str,
    /// The command from the words after the command words, in the order of `args`; the option
    /// structure is already checked, their values are not.
    pub(super) build: fn(&mut Args<'_, '_>) -> Result<Command, ParseError>,
}

impl Form {
    /// The command words: `["deploy", "check"]`.
    pub fn words(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.name.split('.')
    }

    /// The first word (`deploy`).
    pub fn command_word(&self) -> &'static str {
        self.words().next().unwrap_or(self.name)
    }

    /// The subcommand after the command word (`check`), if the form has one.
    pub fn subcommand(&self) -> Option<&'static str> {
        self.words().nth(1)
    }

    /// `deploy check`, as typed.
    pub fn typed_words(&self) -> String {
        self.words().collect::<Vec<_>>().join(" ")
    }

    /// The full usage line, every option in brackets: `deploy <target> <version> [--force]`.
    pub fn usage(&self) -> String {
        // An option that needs another sits inside that one's brackets:
        // `[--when-idle [--within <duration>]]`.
        let options = self
            .options
            .iter()
            .filter(|o| o.requires.is_none())
            .map(|o| match self.dependents(o) {
                d if d.is_empty() => format!("[{}]", o.usage()),
                d => format!("[{} {d}]", o.usage()),
            });
        self.line(options)
    }

    /// `[--within <duration>]`: the options that only work with `option`, in brackets.
    fn dependents(&self, option: &Opt) -> String {
        self.options
            .iter()
            .filter(|o| o.requires.is_some_and(|r| r.long == option.long))
            .map(|o| format!("[{}]", o.usage()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The usage line of `!help`: options with a line of their own are left out.
    pub fn help_usage(&self) -> String {
        let options = self
            .options
            .iter()
            .filter(|o| o.help.is_none() && o.requires.is_none())
            .map(|o| format!("[{}]", o.usage()));
        self.line(options)
    }

    fn line(&self, options: impl Iterator<Item = String>) -> String {
        let args = self.args.iter().map(Arg::usage);
        std::iter::once(self.typed_words())
            .chain(args)
            .chain(options)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The form with a valid value for every argument (`deploy resolve 7 succeeded`).
    pub fn example(&self) -> String {
        std::iter::once(self.typed_words())
            .chain(self.args.iter().map(|a| a.kind.sample().to_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The form with `option` given a valid value (`dags new --days 7`).
    pub fn option_example(&self, option: &Opt) -> String {
        // An option that needs another is shown with it (`--when-idle --within 6h`).
        let base = match option.requires {
            Some(needed) => format!("{} {}", self.example(), needed.long),
            None => self.example(),
        };
        match option.value {
            Some(v) => format!("{base} {} {}", option.long, v.example),
            None => format!("{base} {}", option.long),
        }
    }
}

/// One line of `!help`: a form, or an option of it that has a line of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpLine {
    /// The form's command word, which `!help <word>` selects.
    pub word: &'static str,
    /// Without the prefix: `deploy <target> <version> --force`.
    pub usage: String,
    pub summary: &'static str,
    pub permission: Permission,
}

// ---- the table --------------------------------------------------------------------------------

pub const FORCE: Opt = Opt {
    long: "--force",
    value: None,
    permission: Some(Permission::DeployForce),
    help: Some("proceed despite active DAG runs (named in the audit)"),
    requires: None,
};

pub const WHEN_IDLE: Opt = Opt {
    long: "--when-idle",
    value: None,
    permission: None,
    help: Some(
        "when only DAG runs block, take the lock and wait (default up to 6h); a running bot \
         starts the deploy as soon as the runs are over",
    ),
    requires: None,
};

pub const WITHIN: Opt = Opt {
    long: "--within",
    value: Some(OptValue {
        placeholder: "<duration>",
        example: "6h",
    }),
    permission: None,
    help: None,
    requires: Some(&WHEN_IDLE),
};

pub const CONFIRM: Opt = Opt {
    long: "--confirm",
    value: None,
    permission: None,
    help: None,
    requires: None,
};

pub const DAYS: Opt = Opt {
    long: "--days",
    value: Some(OptValue {
        placeholder: "N",
        example: "7",
    }),
    permission: None,
    help: None,
    requires: None,
};

pub static HELP: Form = Form {
    name: "help",
    args: &[optional(ArgKind::HelpTopic)],
    options: &[],
    permission: Permission::Read,
    summary: "this list, or the forms of one command",
    build: |a| {
        Ok(Command::Help {
            topic: a.help_topic()?,
        })
    },
};

pub static DEPLOY: Form = Form {
    name: "deploy",
    args: &[required(ArgKind::Target), required(ArgKind::Version)],
    options: &[FORCE, WHEN_IDLE, WITHIN],
    permission: Permission::DeployStart,
    summary: "full workflow: preflight, bump, plan, wait for approval",
    build: |a| {
        Ok(Command::Deploy {
            target: a.target()?,
            version: a.version()?,
            force: a.flag(&FORCE),
            when_idle: a.flag(&WHEN_IDLE),
            within: a.within(&WITHIN)?,
        })
    },
};

pub static DEPLOY_CHECK: Form = Form {
    name: "deploy.check",
    args: &[required(ArgKind::Target), required(ArgKind::Version)],
    options: &[],
    permission: Permission::DeployCheck,
    summary: "preflight only, changes nothing",
    build: |a| {
        Ok(Command::DeployCheck {
            target: a.target()?,
            version: a.version()?,
        })
    },
};

pub static DEPLOY_APPROVE: Form = Form {
    name: "deploy.approve",
    args: &[required(ArgKind::Id)],
    options: &[],
    permission: Permission::DeployApprove,
    summary: "approve the plan of a deploy waiting for approval",
    build: |a| Ok(Command::DeployApprove { id: a.id()? }),
};

pub static DEPLOY_CANCEL: Form = Form {
    name: "deploy.cancel",
    args: &[required(ArgKind::Id)],
    options: &[],
    permission: Permission::DeployCancel,
    summary: "cancel a deploy before apply (the requester may always cancel their own)",
    build: |a| Ok(Command::DeployCancel { id: a.id()? }),
};

pub static DEPLOY_STATUS: Form = Form {
    name: "deploy.status",
    args: &[optional(ArgKind::Id)],
    options: &[],
    permission: Permission::Read,
    summary: "one deploy, or the active ones",
    build: |a| {
        Ok(Command::DeployStatus {
            id: a.optional_id()?,
        })
    },
};

pub static DEPLOY_HISTORY: Form = Form {
    name: "deploy.history",
    args: &[optional(ArgKind::Target)],
    options: &[],
    permission: Permission::Read,
    summary: "recent deploys",
    build: |a| {
        Ok(Command::DeployHistory {
            target: a.optional_target()?,
        })
    },
};

pub static DEPLOY_RESOLVE: Form = Form {
    name: "deploy.resolve",
    args: &[required(ArgKind::Id), required(ArgKind::Resolution)],
    options: &[],
    permission: Permission::DeployApprove,
    summary: "settle an interrupted deploy",
    build: |a| {
        Ok(Command::DeployResolve {
            id: a.id()?,
            resolution: a.resolution()?,
        })
    },
};

pub static DEPLOY_ROLLBACK: Form = Form {
    name: "deploy.rollback",
    args: &[required(ArgKind::Target)],
    options: &[],
    permission: Permission::DeployStart,
    summary: "deploy the previous successfully deployed version",
    build: |a| {
        Ok(Command::DeployRollback {
            target: a.target()?,
        })
    },
};

pub static LOCKS: Form = Form {
    name: "locks",
    args: &[],
    options: &[],
    permission: Permission::Read,
    summary: "who holds which deploy lock",
    build: |_| Ok(Command::Locks),
};

pub static DAG_SYNC_STATUS: Form = Form {
    name: "dag-sync.status",
    args: &[],
    options: &[],
    permission: Permission::Read,
    summary: "the state of the DAG code sync from git",
    build: |_| Ok(Command::DagSyncStatus),
};

pub static AIRFLOW_STATUS: Form = Form {
    name: "airflow.status",
    args: &[],
    options: &[],
    permission: Permission::Read,
    summary: "the health of Airflow",
    build: |_| Ok(Command::AirflowStatus),
};

pub static DAGS_NEW: Form = Form {
    name: "dags.new",
    args: &[],
    options: &[DAYS],
    permission: Permission::Read,
    summary: "DAGs seen recently that are still paused",
    build: |a| {
        Ok(Command::DagsNew {
            days: a.days(&DAYS)?,
        })
    },
};

pub static DAG_ENABLE: Form = Form {
    name: "dag.enable",
    args: &[required(ArgKind::DagId)],
    options: &[CONFIRM],
    permission: Permission::DagEnable,
    summary: "unpause a DAG (`--confirm` when it warns of a catchup backfill)",
    build: |a| {
        Ok(Command::DagEnable {
            dag_id: a.dag_id()?,
            confirm: a.flag(&CONFIRM),
        })
    },
};

pub static MIGRATIONS_STATUS: Form = Form {
    name: "migrations.status",
    args: &[],
    options: &[],
    permission: Permission::Read,
    summary: "pending catalog DB migrations",
    build: |_| Ok(Command::MigrationsStatus),
};

pub static MIGRATIONS_APPLY: Form = Form {
    name: "migrations.apply",
    args: &[required(ArgKind::MigrationName)],
    options: &[],
    permission: Permission::MigrationsApply,
    summary: "run a pending catalog DB migration after a second person approves: the first \
              request files it, the same command from another maintainer approves and runs it",
    build: |a| {
        Ok(Command::MigrationsApply {
            name: a.migration_name()?,
        })
    },
};

pub static AUDIT: Form = Form {
    name: "audit",
    args: &[optional(ArgKind::AuditLimit)],
    options: &[],
    permission: Permission::Read,
    summary: "the last n audit events",
    build: |a| {
        Ok(Command::Audit {
            limit: a.audit_limit()?,
        })
    },
};

/// Every form, in the order of interface.md: `!help` lists them so, and among equally likely
/// typos the earlier command word is suggested.
pub static FORMS: [&Form; 17] = [
    &HELP,
    &DEPLOY,
    &DEPLOY_CHECK,
    &DEPLOY_APPROVE,
    &DEPLOY_CANCEL,
    &DEPLOY_STATUS,
    &DEPLOY_HISTORY,
    &DEPLOY_RESOLVE,
    &DEPLOY_ROLLBACK,
    &LOCKS,
    &DAG_SYNC_STATUS,
    &AIRFLOW_STATUS,
    &DAGS_NEW,
    &DAG_ENABLE,
    &MIGRATIONS_STATUS,
    &MIGRATIONS_APPLY,
    &AUDIT,
];

// ---- what the table answers -------------------------------------------------------------------

/// Every command word, once each, in table order.
pub fn command_words() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = Vec::new();
    for form in FORMS {
        let word = form.command_word();
        if !words.contains(&word) {
            words.push(word);
        }
    }
    words
}

/// The forms of one command word (`deploy`: the full workflow and its subcommands).
pub fn forms_of(word: &str) -> impl Iterator<Item = &'static Form> + use<'_> {
    FORMS.into_iter().filter(move |f| f.command_word() == word)
}

/// The subcommands of a command word, in table order (`status`, `apply` for `migrations`).
pub fn subcommands(word: &str) -> Vec<&'static str> {
    forms_of(word).filter_map(Form::subcommand).collect()
}

/// The command word whose subcommand `name` is, when a target named `name` could not be
/// addressed: after `deploy`, a subcommand wins over a target of the same name.
pub fn reserved_target_name(name: &str) -> Option<&'static str> {
    FORMS.into_iter().find_map(|form| {
        let takes_target = form.subcommand().is_none()
            && form.args.first().map(|a| a.kind) == Some(ArgKind::Target);
        (takes_target && subcommands(form.command_word()).contains(&name))
            .then(|| form.command_word())
    })
}

/// Every option that takes a value, by name: the word after such an option is its value.
pub fn takes_value(name: &str) -> bool {
    FORMS
        .iter()
        .flat_map(|f| f.options)
        .any(|o| o.value.is_some() && o.name() == name)
}

/// The lines of `!help`, in table order; an option with a line of its own follows its form.
pub fn help_lines() -> Vec<HelpLine> {
    let mut lines = Vec::new();
    for form in FORMS {
        lines.push(HelpLine {
            word: form.command_word(),
            usage: form.help_usage(),
            summary: form.summary,
            permission: form.permission,
        });
        for option in form.options {
            if let Some(summary) = option.help {
                let args = form.args.iter().map(Arg::usage);
                // Options that only work with this one follow it in brackets.
                let dependents = Some(form.dependents(option)).filter(|d| !d.is_empty());
                let usage = std::iter::once(form.typed_words())
                    .chain(args)
                    .chain(std::iter::once(option.usage()))
                    .chain(dependents)
                    .collect::<Vec<_>>()
                    .join(" ");
                lines.push(HelpLine {
                    word: form.command_word(),
                    usage,
                    summary,
                    permission: option.permission.unwrap_or(form.permission),
                });
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{ParseContext, parse};

    #[test]
    fn names_are_unique_and_words_are_lowercase() {
        let mut names: Vec<&str> = FORMS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FORMS.len());
        for form in FORMS {
            assert!(form.words().count() <= 2, "{}", form.name);
            for word in form.words() {
                assert!(
                    !word.is_empty()
                        && word
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_'),
                    "{}",
                    form.name
                );
            }
            // A form that takes an optional argument takes no required one after it.
            let first_optional = form.args.iter().position(|a| a.optional);
            if let Some(i) = first_optional {
                assert!(form.args[i..].iter().all(|a| a.optional), "{}", form.name);
            }
        }
    }

    /// Each row's `build` reads the arguments its row declares: the row's own example, built from
    /// the declared kinds, parses to a command of that form, which renders back to the example.
    #[test]
    fn every_form_parses_from_its_own_declaration() {
        let targets = vec!["catalog".to_owned()];
        let ctx = ParseContext {
            prefix: "!",
            bot_user_id: None,
            targets: &targets,
            version_tags: &[],
        };
        for form in FORMS {
            let text = format!("!{}", form.example());
            let command = parse(&text, &ctx)
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .unwrap_or_else(|| panic!("{text}: not addressed"));
            assert_eq!(command.name(), form.name, "{text}");
            assert_eq!(command.to_string(), text);
            for option in form.options {
                let text = format!("!{}", form.option_example(option));
                let command = parse(&text, &ctx)
                    .unwrap_or_else(|e| panic!("{text}: {e}"))
                    .unwrap_or_else(|| panic!("{text}: not addressed"));
                assert_eq!(command.to_string(), text);
                assert_eq!(
                    command.permission(),
                    option.permission.unwrap_or(form.permission),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn the_table_answers_words_subcommands_and_reserved_names() {
        assert_eq!(
            command_words(),
            [
                "help",
                "deploy",
                "locks",
                "dag-sync",
                "airflow",
                "dags",
                "dag",
                "migrations",
                "audit"
            ]
        );
        assert_eq!(
            subcommands("deploy"),
            [
                "check", "approve", "cancel", "status", "history", "resolve", "rollback"
            ]
        );
        assert_eq!(subcommands("migrations"), ["status", "apply"]);
        assert_eq!(subcommands("locks"), Vec::<&str>::new());
        assert_eq!(reserved_target_name("status"), Some("deploy"));
        assert_eq!(reserved_target_name("rollback"), Some("deploy"));
        // `apply` is a subcommand of `migrations`, which takes no target.
        assert_eq!(reserved_target_name("apply"), None);
        assert_eq!(reserved_target_name("catalog"), None);
        assert!(takes_value("days"));
        assert!(!takes_value("force"));
        assert!(!takes_value("nonsense"));
    }

    #[test]
    fn usage_lines_show_arguments_and_options() {
        assert_eq!(
            DEPLOY.usage(),
            "deploy <target> <version> [--force] [--when-idle [--within <duration>]]"
        );
        assert_eq!(DEPLOY.help_usage(), "deploy <target> <version>");
        assert_eq!(DEPLOY_STATUS.usage(), "deploy status [<id>]");
        assert_eq!(
            DEPLOY_RESOLVE.usage(),
            "deploy resolve <id> succeeded|failed"
        );
        assert_eq!(DEPLOY_RESOLVE.example(), "deploy resolve 7 succeeded");
        assert_eq!(DAGS_NEW.usage(), "dags new [--days N]");
        assert_eq!(DAGS_NEW.option_example(&DAYS), "dags new --days 7");
        assert_eq!(DAG_ENABLE.help_usage(), "dag enable <dag_id> [--confirm]");
        assert_eq!(HELP.usage(), "help [command]");
        assert_eq!(AUDIT.usage(), "audit [<n>]");
        let force = help_lines()
            .into_iter()
            .find(|l| l.permission == Permission::DeployForce)
            .expect("a line for --force");
        assert_eq!(force.usage, "deploy <target> <version> --force");
    }

    #[test]
    fn every_permission_is_needed_by_some_form() {
        let needed: Vec<Permission> = help_lines().iter().map(|l| l.permission).collect();
        for p in Permission::ALL {
            assert!(needed.contains(&p), "no command needs {p}");
        }
    }
}
