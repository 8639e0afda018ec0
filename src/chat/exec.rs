//! `exec`: handle one message, print what the bot posts (plain or JSON lines), exit with the
//! outcome's code (interface.md, "exec --json").

use std::io::Write;

use crate::conversation::{Announcement, Conversation};
use crate::engine::Engine;
use crate::policy::Actor;
use crate::reply::Reply;

/// Prints each message as soon as it is posted, so a long command streams its progress.
pub struct StdoutConversation {
    pub json: bool,
}

#[async_trait::async_trait]
impl Conversation for StdoutConversation {
    async fn post(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let line = if self.json {
            serde_json::json!({ "type": "message", "text": text }).to_string()
        } else {
            text.to_string()
        };
        // A closed stdout (`| head`) must not abort the command half-way: its effects are
        // already journaled, only the printing is lost.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// JSON output carries the Enable action's command and button id beside the text.
    async fn announce(&self, a: &Announcement) {
        if !self.json {
            return self.post(&a.text).await;
        }
        let line = serde_json::json!({
            "type": "announcement",
            "dag_id": a.dag_id,
            "text": a.text,
            "enable_command": a.enable_command,
            "button_id": a.button_id,
        });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// JSON output carries the commit and each new DAG's Enable action beside the text.
    async fn announce_deployed(&self, a: &crate::conversation::DeployedAnnouncement) {
        if !self.json {
            return self.post(&a.text).await;
        }
        let line = serde_json::json!({
            "type": "deployed",
            "sha": a.sha,
            "subject": a.subject,
            "text": a.text,
            "enable": a.enable.iter().map(|e| serde_json::json!({
                "dag_id": e.dag_id,
                "enable_command": e.command,
                "button_id": e.button_id,
            })).collect::<Vec<_>>(),
        });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Runs one message through the engine and returns the process exit code.
pub async fn run(engine: &Engine, actor: &Actor, text: &str, json: bool) -> i32 {
    let conv = StdoutConversation { json };
    let reply = handle_addressed(engine, actor, text, &conv).await;
    if json {
        let mut result = serde_json::json!({
            "type": "result",
            "outcome": reply.outcome.as_str(),
            "message": reply.message,
        });
        if let Some(id) = reply.deploy_id {
            result["deploy_id"] = serde_json::json!(id);
        }
        println!("{result}");
    }
    reply.outcome.exit_code()
}

/// On a terminal everything typed is meant for the bot, so `help` works like `!help`.
pub async fn handle_addressed(
    engine: &Engine,
    actor: &Actor,
    text: &str,
    conv: &dyn Conversation,
) -> Reply {
    if let Some(reply) = engine.handle(actor, text, conv).await {
        return reply;
    }
    let prefix = &engine.ctx().config.chat.prefix;
    let prefixed = format!("{prefix}{}", text.trim_start());
    if let Some(reply) = engine.handle(actor, &prefixed, conv).await {
        return reply;
    }
    // Still not addressed, e.g. `！deploy` (a fullwidth `！`) or a bidi override in front:
    // refused like any other invalid command, audited, with the most specific sentence.
    let error = crate::command::check_characters(text)
        .err()
        .unwrap_or_else(|| crate::command::ParseError::NotACommand {
            prefix: prefix.clone(),
            text: text.to_string(),
        });
    engine.refuse_invalid(actor, text, error, conv).await
}
