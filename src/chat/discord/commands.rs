//! Slash commands and buttons, translated into the same command text a typed message carries, so
//! that one grammar, one policy and one engine decide everything (a click is authorised exactly
//! like the typed command).

use serenity::all::{CommandDataOption, CommandDataOptionValue, CommandOptionType};
use serenity::builder::{CreateCommand, CreateCommandOption};

use crate::command;

/// The guild's slash commands: `/deploy` with named options, and one per other command word of
/// the grammar's table with one free-text `args` option that follows the command word exactly as
/// typed after `!`.
pub fn definitions() -> Vec<CreateCommand> {
    let mut action = CreateCommandOption::new(
        CommandOptionType::String,
        "action",
        "what to do (default: start the full workflow)",
    );
    // `start` is the full workflow (no subcommand); the others are `!deploy`'s subcommands.
    for a in std::iter::once("start").chain(command::subcommands("deploy")) {
        action = action.add_string_choice(a, a);
    }
    let text = |name: &str, what: &str| {
        CreateCommandOption::new(
            CommandOptionType::String,
            name.to_string(),
            what.to_string(),
        )
    };
    let deploy = CreateCommand::new("deploy")
        .description("Deploy a target: preflight, bump, plan, approval, apply")
        .add_option(action)
        .add_option(text("target", "the target, e.g. catalog"))
        .add_option(text("version", "the version, e.g. v1.5.3"))
        .add_option(
            CreateCommandOption::new(CommandOptionType::Integer, "id", "the deploy id")
                .min_int_value(1),
        )
        .add_option(
            text("resolution", "for resolve: what really happened")
                .add_string_choice("succeeded", "succeeded")
                .add_string_choice("failed", "failed"),
        )
        .add_option(CreateCommandOption::new(
            CommandOptionType::Boolean,
            "force",
            "deploy despite running DAGs (needs deploy.force)",
        ))
        .add_option(CreateCommandOption::new(
            CommandOptionType::Boolean,
            "when_idle",
            "when only DAG runs block: hold the lock and start when they are over",
        ))
        .add_option(text(
            "within",
            "with when_idle: how long to wait, e.g. 6h (the default)",
        ));
    let mut all = vec![deploy];
    for name in command::command_words() {
        if name == "deploy" {
            continue;
        }
        let usage = command::usage_after_word(name);
        all.push(
            CreateCommand::new(name)
                .description(discord_text(&format!("/{name} {usage}")))
                .add_option(text("args", &discord_text(&usage))),
        );
    }
    all
}

/// Discord refuses descriptions over 100 characters: cut longer ones with `…`.
fn discord_text(s: &str) -> String {
    if s.chars().count() <= 100 {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(99).collect();
        cut.push('…');
        cut
    }
}

/// An option value as text, or `None` when it is absent or of a type we never declare.
fn value(options: &[CommandDataOption], name: &str) -> Option<String> {
    let o = options.iter().find(|o| o.name == name)?;
    match &o.value {
        CommandDataOptionValue::String(s) => Some(s.trim().to_string()),
        CommandDataOptionValue::Integer(i) => Some(i.to_string()),
        CommandDataOptionValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The command text a slash command stands for, e.g. `!deploy catalog v1.5.3 --force`. Missing
/// options are simply left out: the grammar then says precisely what is missing.
pub fn slash_text(prefix: &str, name: &str, options: &[CommandDataOption]) -> String {
    let get = |n: &str| value(options, n).filter(|s| !s.is_empty());
    let mut words: Vec<String> = vec![name.to_string()];
    if name == "deploy" {
        let action = get("action").unwrap_or_else(|| "start".into());
        if action != "start" {
            words.push(action);
        }
        for key in ["target", "version", "id", "resolution"] {
            if let Some(v) = get(key) {
                words.push(v);
            }
        }
        if get("force").as_deref() == Some("true") {
            words.push("--force".into());
        }
        if get("when_idle").as_deref() == Some("true") {
            words.push("--when-idle".into());
        }
        // Passed on even without when_idle: the grammar then says it needs it.
        if let Some(w) = get("within") {
            words.push("--within".into());
            words.push(w);
        }
    } else if let Some(args) = get("args") {
        words.push(args);
    }
    format!("{prefix}{}", words.join(" "))
}

/// The slash command options as serenity would hand them to us (for tests of the translation).
#[cfg(test)]
fn opt(name: &str, value: CommandDataOptionValue) -> CommandDataOption {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "type": match value {
            CommandDataOptionValue::Integer(_) => 4,
            CommandDataOptionValue::Boolean(_) => 5,
            _ => 3,
        },
        "value": match value {
            CommandDataOptionValue::String(s) => serde_json::json!(s),
            CommandDataOptionValue::Integer(i) => serde_json::json!(i),
            CommandDataOptionValue::Boolean(b) => serde_json::json!(b),
            _ => serde_json::Value::Null,
        },
    }))
    .expect("option json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommandDataOptionValue as V;

    #[test]
    fn slash_commands_become_command_text() {
        let s = |v: &str| V::String(v.into());
        assert_eq!(
            slash_text(
                "!",
                "deploy",
                &[opt("target", s("catalog")), opt("version", s("v1.5.3"))]
            ),
            "!deploy catalog v1.5.3"
        );
        assert_eq!(
            slash_text(
                "!",
                "deploy",
                &[
                    opt("target", s("catalog")),
                    opt("version", s("v1.5.3")),
                    opt("force", V::Boolean(true))
                ]
            ),
            "!deploy catalog v1.5.3 --force"
        );
        assert_eq!(
            slash_text(
                "!",
                "deploy",
                &[
                    opt("action", s("resolve")),
                    opt("id", V::Integer(4)),
                    opt("resolution", s("failed"))
                ]
            ),
            "!deploy resolve 4 failed"
        );
        assert_eq!(slash_text("?", "locks", &[]), "?locks");
        assert_eq!(
            slash_text("!", "dags", &[opt("args", s("new --days 3"))]),
            "!dags new --days 3"
        );
    }

    #[test]
    fn definitions_respect_discord_limits() {
        let defs = serde_json::to_value(definitions()).expect("serialise");
        for d in defs.as_array().expect("list") {
            let desc = d["description"].as_str().unwrap_or("");
            assert!(!desc.is_empty() && desc.chars().count() <= 100, "{desc}");
            for o in d["options"].as_array().into_iter().flatten() {
                let desc = o["description"].as_str().unwrap_or("");
                assert!(!desc.is_empty() && desc.chars().count() <= 100, "{desc}");
            }
        }
    }

    #[test]
    fn every_command_word_and_deploy_subcommand_has_a_slash_command() {
        let defs = serde_json::to_value(definitions()).expect("serialise");
        let names: Vec<&str> = defs
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|d| d["name"].as_str())
            .collect();
        let mut words = command::command_words();
        words.sort_unstable();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, words);
        let deploy = &defs[0];
        assert_eq!(deploy["name"], "deploy");
        let actions: Vec<&str> = deploy["options"][0]["choices"]
            .as_array()
            .expect("choices")
            .iter()
            .filter_map(|c| c["value"].as_str())
            .collect();
        assert_eq!(actions[0], "start");
        assert_eq!(actions[1..], command::subcommands("deploy"));
        let migrations = defs
            .as_array()
            .expect("list")
            .iter()
            .find(|d| d["name"] == "migrations")
            .expect("migrations");
        assert_eq!(
            migrations["description"],
            "/migrations status | apply <name>"
        );
    }
}
