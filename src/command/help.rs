//! The help text: one entry per command form of interface.md, and the top-level command words the
//! parser suggests from.
//!
//! Usages are stored without the prefix so that a deployment with another prefix renders its own.

/// One command form as shown by `!help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHelp {
    /// The form without the prefix, e.g. `deploy <target> <version>`.
    pub usage: &'static str,
    /// What it does, in a few words.
    pub summary: &'static str,
    /// The permission (interface.md) it needs.
    pub permission: &'static str,
}

impl CommandHelp {
    /// The command word this form belongs to (`deploy` for `deploy approve <id>`).
    pub fn word(&self) -> &'static str {
        self.usage.split(' ').next().unwrap_or(self.usage)
    }
}

/// Every top-level command word, in the order of interface.md (suggestions prefer earlier ones).
pub const COMMAND_WORDS: [&str; 9] = [
    "help",
    "deploy",
    "locks",
    "dag-sync",
    "airflow",
    "dags",
    "dag",
    "migrations",
    "audit",
];

const fn form(usage: &'static str, summary: &'static str, permission: &'static str) -> CommandHelp {
    CommandHelp {
        usage,
        summary,
        permission,
    }
}

/// Every command form, one per row of the interface table (rows with two forms are split).
pub static COMMANDS: &[CommandHelp] = &[
    form(
        "help [command]",
        "this list, or the forms of one command",
        "read",
    ),
    form(
        "deploy <target> <version>",
        "full workflow: preflight, bump, plan, wait for approval",
        "deploy.start",
    ),
    form(
        "deploy check <target> <version>",
        "preflight only, changes nothing",
        "deploy.check",
    ),
    form(
        "deploy approve <id>",
        "approve the plan of a deploy waiting for approval",
        "deploy.approve",
    ),
    form(
        "deploy cancel <id>",
        "cancel a deploy before apply (the requester may always cancel their own)",
        "deploy.cancel",
    ),
    form(
        "deploy status [<id>]",
        "one deploy, or the active ones",
        "read",
    ),
    form("deploy history [<target>]", "recent deploys", "read"),
    form("locks", "who holds which deploy lock", "read"),
    form(
        "deploy <target> <version> --force",
        "proceed despite active DAG runs (named in the audit)",
        "deploy.force",
    ),
    form(
        "deploy resolve <id> succeeded|failed",
        "settle an interrupted deploy",
        "deploy.approve",
    ),
    form(
        "deploy rollback <target>",
        "deploy the previous successfully deployed version",
        "deploy.start",
    ),
    form(
        "dag-sync status",
        "the state of the DAG code sync from git",
        "read",
    ),
    form("airflow status", "the health of Airflow", "read"),
    form(
        "dags new [--days N]",
        "DAGs seen recently that are still paused",
        "read",
    ),
    form(
        "dag enable <dag_id> [--confirm]",
        "unpause a DAG (`--confirm` when it warns of a catchup backfill)",
        "dag.enable",
    ),
    form("migrations status", "pending catalog DB migrations", "read"),
    form(
        "migrations apply <name>",
        "run a pending catalog DB migration after a second person approves: the first request \
         files it, the same command from another maintainer approves and runs it",
        "migrations.apply",
    ),
    form("audit [<n>]", "the last n audit events", "read"),
];

/// The compact command list: one line per form.
pub fn help_overview(prefix: &str) -> String {
    COMMANDS
        .iter()
        .map(|c| format!("`{prefix}{}` — {}", c.usage, c.summary))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The forms of one command word with their permissions, or `None` for an unknown word.
///
/// `topic` may carry the prefix and any case (`!Deploy`), as users type it.
pub fn help_for(topic: &str, prefix: &str) -> Option<String> {
    let topic = normalize_topic(topic, prefix);
    let lines: Vec<String> = COMMANDS
        .iter()
        .filter(|c| c.word() == topic)
        .map(|c| {
            format!(
                "`{prefix}{}` — {} · permission `{}`",
                c.usage, c.summary, c.permission
            )
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// `!Deploy` → `deploy`: the prefix is optional and command words are case-insensitive.
pub(crate) fn normalize_topic(topic: &str, prefix: &str) -> String {
    let topic = topic.trim();
    let topic = match topic.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() => rest,
        _ => topic,
    };
    topic.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::PERMISSIONS;

    #[test]
    fn every_word_has_forms_and_every_form_a_known_word_and_permission() {
        for word in COMMAND_WORDS {
            assert!(COMMANDS.iter().any(|c| c.word() == word), "{word}");
        }
        for c in COMMANDS {
            assert!(COMMAND_WORDS.contains(&c.word()), "{}", c.usage);
            assert!(PERMISSIONS.contains(&c.permission), "{}", c.permission);
        }
    }

    #[test]
    fn overview_has_one_line_per_form() {
        let text = help_overview("!");
        assert_eq!(text.lines().count(), COMMANDS.len());
        assert!(text.lines().any(|l| l
            == "`!deploy <target> <version>` — full workflow: preflight, bump, plan, wait for approval"));
        assert!(help_overview("?").starts_with("`?help [command]`"));
    }

    #[test]
    fn help_for_lists_the_forms_of_a_word() {
        let text = help_for("deploy", "!").unwrap();
        assert_eq!(text.lines().count(), 9);
        assert!(text.contains("`!deploy approve <id>` — approve the plan of a deploy waiting for approval · permission `deploy.approve`"));
        assert!(text.contains("· permission `deploy.force`"));
        assert!(!text.contains("dag-sync"));
        assert_eq!(help_for("!DAG-SYNC", "!"), help_for("dag-sync", "!"));
        assert_eq!(
            help_for("dag", "!").unwrap(),
            "`!dag enable <dag_id> [--confirm]` — unpause a DAG (`--confirm` when it warns of a catchup backfill) · permission `dag.enable`"
        );
        assert_eq!(help_for("deplyo", "!"), None);
        assert_eq!(help_for("", "!"), None);
    }
}
