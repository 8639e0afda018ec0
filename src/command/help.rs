//! The help text, rendered from the table of forms (`forms.rs`): one line per form, and one per
//! option that has a line of its own (`--force`).
//!
//! Usages are stored without the prefix so that a deployment with another prefix (or a front end
//! with another way in, such as a slash command) renders its own.

use super::forms::{self, HelpLine};

/// The compact command list: one line per form.
pub fn help_overview(prefix: &str) -> String {
    forms::help_lines()
        .iter()
        .map(|l| format!("`{prefix}{}` — {}", l.usage, l.summary))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The forms of one command word with their permissions, or `None` for an unknown word.
///
/// `topic` may carry the prefix and any case (`!Deploy`), as users type it.
pub fn help_for(topic: &str, prefix: &str) -> Option<String> {
    let topic = normalize_topic(topic, prefix);
    let lines: Vec<String> = forms::help_lines()
        .iter()
        .filter(|l| l.word == topic)
        .map(|l: &HelpLine| {
            format!(
                "`{prefix}{}` — {} · permission `{}`",
                l.usage, l.summary, l.permission
            )
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// What may follow a command word, its forms' usages after the word joined by ` | `
/// (`status | apply <name>` for `migrations`), or `(nothing)`: for front ends that take the rest
/// of a command as one free-text field (Discord's slash commands).
pub fn usage_after_word(word: &str) -> String {
    let tails: Vec<String> = forms::help_lines()
        .iter()
        .filter(|l| l.word == word)
        .filter_map(|l| {
            let tail = l.usage.strip_prefix(word)?.trim();
            (!tail.is_empty()).then(|| tail.to_owned())
        })
        .collect();
    if tails.is_empty() {
        "(nothing)".to_owned()
    } else {
        tails.join(" | ")
    }
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

    #[test]
    fn every_word_has_lines_and_every_line_a_known_word() {
        let words = forms::command_words();
        let lines = forms::help_lines();
        for word in &words {
            assert!(lines.iter().any(|l| l.word == *word), "{word}");
        }
        for l in &lines {
            assert!(words.contains(&l.word), "{}", l.usage);
            assert!(l.usage.starts_with(l.word), "{}", l.usage);
        }
    }

    #[test]
    fn overview_has_one_line_per_form() {
        let text = help_overview("!");
        assert_eq!(text.lines().count(), 19);
        assert!(text.lines().any(|l| l
            == "`!deploy <target> <version>` — full workflow: preflight, bump, plan, wait for approval"));
        assert!(help_overview("?").starts_with("`?help [command]`"));
    }

    #[test]
    fn help_for_lists_the_forms_of_a_word() {
        let text = help_for("deploy", "!").unwrap();
        assert_eq!(text.lines().count(), 10);
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

    #[test]
    fn what_follows_a_word_for_free_text_front_ends() {
        assert_eq!(usage_after_word("migrations"), "status | apply <name>");
        assert_eq!(usage_after_word("dags"), "new [--days N]");
        assert_eq!(usage_after_word("help"), "[command]");
        assert_eq!(usage_after_word("locks"), "(nothing)");
    }
}
