//! What Slack hands the bot, as the command text a typed message carries: a message addressed
//! with the prefix or the bot's mention, and slash commands (`/chatops <command>`, `/deploy …`
//! as the short form). One grammar, one policy and one engine then decide everything.

use super::blocks::unescape;

/// The command text of a typed message, or `None` when it is not addressed to the bot: it
/// starts with the prefix, or with the bot's mention (`<@U0BOT> deploy …`, with or without the
/// prefix after it; a bare mention asks for help).
pub fn message_text(prefix: &str, bot_user_id: &str, text: &str) -> Option<String> {
    let text = unescape(text);
    let t = text.trim_start();
    let mention = format!("<@{bot_user_id}>");
    if let Some(rest) = t.strip_prefix(&mention) {
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix(prefix) {
            Some(after) if !prefix.is_empty() => after,
            _ => rest,
        };
        return Some(if rest.trim().is_empty() {
            format!("{prefix}help")
        } else {
            format!("{prefix}{rest}")
        });
    }
    (!prefix.is_empty() && t.starts_with(prefix)).then(|| t.to_string())
}

/// The command text of a slash command: `/deploy …` is `!deploy …`; any other command of the
/// app (`/chatops` in the manifest) carries a whole command, `/chatops locks`; empty, it asks for
/// help.
pub fn slash_text(prefix: &str, command: &str, text: &str) -> String {
    let text = unescape(text);
    let text = text.trim();
    let text = text.strip_prefix(prefix).unwrap_or(text);
    if command.trim_start_matches('/') == "deploy" {
        return format!("{prefix}deploy {text}").trim_end().to_string();
    }
    if text.is_empty() {
        return format!("{prefix}help");
    }
    format!("{prefix}{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_with_the_prefix_or_the_mention_are_commands() {
        let m = |t: &str| message_text("!", "U0BOT", t);
        assert_eq!(
            m("!deploy catalog v1.5.3").as_deref(),
            Some("!deploy catalog v1.5.3")
        );
        assert_eq!(m("<@U0BOT> locks").as_deref(), Some("!locks"));
        assert_eq!(m("<@U0BOT> !locks").as_deref(), Some("!locks"));
        assert_eq!(m("<@U0BOT>").as_deref(), Some("!help"));
        assert_eq!(
            m("hello <@U0BOT>"),
            None,
            "a mention later in the text is chatter"
        );
        assert_eq!(m("<@U0OTHER> locks"), None);
        assert_eq!(m("nice deploy!"), None);
        // Slack escapes what people type; the grammar sees it as typed.
        assert_eq!(m("!dag enable a&amp;b").as_deref(), Some("!dag enable a&b"));
    }

    #[test]
    fn slash_commands_become_command_text() {
        assert_eq!(slash_text("!", "/chatops", "locks"), "!locks");
        assert_eq!(slash_text("!", "/chatops", "  "), "!help");
        assert_eq!(slash_text("!", "/chatops", "!locks"), "!locks");
        assert_eq!(
            slash_text("!", "/deploy", "catalog v1.5.3"),
            "!deploy catalog v1.5.3"
        );
        assert_eq!(slash_text("!", "/deploy", "approve 7"), "!deploy approve 7");
        assert_eq!(slash_text("!", "/deploy", ""), "!deploy");
        assert_eq!(slash_text("?", "/ops", "dags new"), "?dags new");
    }
}
