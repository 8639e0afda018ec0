//! Envelopes in, [`Engine::handle`] out. Every message, slash command and click is claimed in the
//! store before any work starts (by what it is, not by its envelope), so an envelope Slack
//! delivers again, a message that arrives both as `message` and `app_mention`, or a second
//! replica does nothing twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use super::api::{Api, Me};
use super::commands;
use super::conversation::{Origin, SlackConversation};
use super::roles::Roles;
use super::socket::Envelope;
use crate::Engine;
use crate::policy::Actor;
use crate::reply::Outcome;

/// How long a user's name (from `users.info`) is reused.
const NAME_TTL: Duration = Duration::from_secs(600);

pub struct Handler {
    engine: Engine,
    api: Arc<Api>,
    me: Me,
    roles: Roles,
    names: Mutex<HashMap<String, (Instant, String)>>,
    /// Who claims events in the store (host and pid): tells replicas apart in `command_claims`.
    replica: String,
}

fn text_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl Handler {
    pub fn new(engine: Engine, api: Arc<Api>, me: Me) -> Handler {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".into());
        let roles = Roles::new(engine.ctx().config.slack.roles.clone(), api.clone());
        Handler {
            engine,
            api,
            me,
            roles,
            names: Mutex::new(HashMap::new()),
            replica: format!("slack@{host}:{}", std::process::id()),
        }
    }

    pub async fn handle(&self, env: Envelope) {
        match env.kind.as_str() {
            "events_api" => self.event(&env.payload["event"]).await,
            "slash_commands" => self.slash(&env.payload, &env.id).await,
            "interactive" => self.interactive(&env.payload, &env.id).await,
            other => tracing::debug!(kind = other, "ignored an envelope"),
        }
    }

    /// True when this process may handle `key`; false when it was handled already or the claim
    /// cannot be recorded (fail closed: no unclaimed work).
    async fn claim(&self, key: &str) -> bool {
        match self.engine.ctx().store.claim(key, &self.replica).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::debug!(key, "already handled");
                false
            }
            Err(e) => {
                tracing::error!(key, error = %e, "cannot claim the event; not handling it");
                false
            }
        }
    }

    /// The person behind an event: their Slack user id is who they are (a renamed person is the
    /// same person); `name` is only what messages and the audit log call them.
    async fn actor(&self, user: &str, name: Option<&str>) -> Actor {
        let name = match name {
            Some(n) => n.to_string(),
            None => self.name_of(user).await,
        };
        let roles = self.roles.of(user).await;
        Actor::chat("slack", user, &name, &roles)
    }

    async fn name_of(&self, user: &str) -> String {
        if let Some((at, name)) = self.names.lock().await.get(user)
            && at.elapsed() < NAME_TTL
        {
            return name.clone();
        }
        match self.api.user_name(user).await {
            Ok(name) => {
                self.names
                    .lock()
                    .await
                    .insert(user.to_string(), (Instant::now(), name.clone()));
                name
            }
            Err(e) => {
                tracing::warn!(user, error = %e, "cannot read the user's name; using their id");
                user.to_string()
            }
        }
    }

    fn conversation(&self, channel: &str, origin: Origin) -> SlackConversation {
        let c = self.engine.ctx();
        SlackConversation::new(
            self.api.clone(),
            c.store.clone(),
            c.redactor.clone(),
            channel.to_string(),
            origin,
        )
    }

    /// Runs `text` and sends what was held back: privately when the command was refused.
    async fn run(&self, actor: &Actor, text: &str, conv: &SlackConversation) {
        let refused = match self.engine.handle(actor, text, conv).await {
            Some(r) => matches!(
                r.outcome,
                Outcome::Denied | Outcome::Invalid | Outcome::RateLimited
            ),
            None => false,
        };
        conv.finish(refused).await;
    }

    /// A typed message (`message` or `app_mention`; both arrive for a mention, one runs).
    async fn event(&self, ev: &Value) {
        if !matches!(text_of(ev, "type"), Some("message" | "app_mention")) {
            return;
        }
        // Edits, joins, bot posts (ours included) and other subtypes are not commands.
        if text_of(ev, "subtype").is_some() || text_of(ev, "bot_id").is_some() {
            return;
        }
        let (Some(user), Some(channel), Some(ts)) = (
            text_of(ev, "user"),
            text_of(ev, "channel"),
            text_of(ev, "ts"),
        ) else {
            return;
        };
        if user == self.me.user_id {
            return;
        }
        let prefix = &self.engine.ctx().config.chat.prefix;
        let Some(text) =
            commands::message_text(prefix, &self.me.user_id, text_of(ev, "text").unwrap_or(""))
        else {
            return;
        };
        if !self.claim(&format!("slack:msg:{channel}:{ts}")).await {
            return;
        }
        let actor = self.actor(user, None).await;
        let origin = Origin::Message {
            user: user.to_string(),
            ts: ts.to_string(),
            thread_ts: text_of(ev, "thread_ts").map(str::to_string),
        };
        let conv = self.conversation(channel, origin);
        self.run(&actor, &text, &conv).await;
    }

    /// `/chatops <command>` or `/deploy …`: answered in the channel.
    async fn slash(&self, p: &Value, envelope_id: &str) {
        let (Some(user), Some(channel), Some(command)) = (
            text_of(p, "user_id"),
            text_of(p, "channel_id"),
            text_of(p, "command"),
        ) else {
            return;
        };
        let id = text_of(p, "trigger_id").unwrap_or(envelope_id);
        if !self.claim(&format!("slack:cmd:{id}")).await {
            return;
        }
        let prefix = &self.engine.ctx().config.chat.prefix;
        let text = commands::slash_text(prefix, command, text_of(p, "text").unwrap_or(""));
        let actor = self.actor(user, text_of(p, "user_name")).await;
        let conv = self.conversation(
            channel,
            Origin::Command {
                user: user.to_string(),
            },
        );
        self.run(&actor, &text, &conv).await;
    }

    /// A button (`block_actions`): the command text its id stands for, as the person who
    /// clicked; the meaning is in the id and the store, so it works after a restart.
    async fn interactive(&self, p: &Value, envelope_id: &str) {
        if text_of(p, "type") != Some("block_actions") {
            return;
        }
        let who = &p["user"];
        let Some(user) = text_of(who, "id") else {
            return;
        };
        let Some(channel) =
            text_of(&p["channel"], "id").or_else(|| text_of(&p["container"], "channel_id"))
        else {
            return;
        };
        let action = &p["actions"][0];
        let Some(action_id) = text_of(action, "action_id") else {
            return;
        };
        let click = text_of(action, "action_ts")
            .or_else(|| text_of(p, "trigger_id"))
            .unwrap_or(envelope_id);
        if !self.claim(&format!("slack:click:{user}:{click}")).await {
            return;
        }
        let name = text_of(who, "username").or_else(|| text_of(who, "name"));
        let actor = self.actor(user, name).await;
        let thread_ts = text_of(&p["message"], "thread_ts")
            .or_else(|| text_of(&p["container"], "thread_ts"))
            .map(str::to_string);
        let conv = self.conversation(
            channel,
            Origin::Click {
                user: user.to_string(),
                thread_ts,
            },
        );
        let prefix = &self.engine.ctx().config.chat.prefix;
        match crate::chat::buttons::command_text(prefix, action_id) {
            Some(text) => self.run(&actor, &text, &conv).await,
            None => {
                conv.ephemeral("This button is not one the bot knows; nothing was done.")
                    .await
            }
        }
    }
}
