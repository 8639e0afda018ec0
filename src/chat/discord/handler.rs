//! The serenity event handler: gateway events in, [`Engine::handle`] out. Every message and
//! interaction is claimed in the store before any work starts, so a redelivered event or a second
//! replica does nothing twice.

use std::sync::Arc;

use serenity::all::{
    ChannelId, Context, CreateInteractionResponse, CreateInteractionResponseMessage, EventHandler,
    GuildId, Interaction, Message, Ready, ResumedEvent, RoleId, User,
};
use serenity::http::Http;

use super::commands;
use super::conversation::{DiscordConversation, Origin};
use super::roles;
use crate::Engine;
use crate::policy::Actor;
use crate::reply::Outcome;

pub struct Handler {
    engine: Engine,
    bot_user_id: u64,
    /// Who claims events in the store (host and pid): tells replicas apart in `command_claims`.
    replica: String,
    /// Set while the gateway session is up; `/readyz` reports it.
    pub connected: Arc<std::sync::atomic::AtomicBool>,
}

impl Handler {
    pub fn new(engine: Engine, bot_user_id: u64) -> Handler {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".into());
        Handler {
            engine,
            bot_user_id,
            replica: format!("discord@{host}:{}", std::process::id()),
            connected: Arc::default(),
        }
    }

    fn guild(&self) -> Option<GuildId> {
        self.engine.ctx().config.discord.guild_id.map(GuildId::new)
    }

    /// True when this process may handle the event `key`; false when it was handled already or
    /// the claim cannot be recorded (fail closed: no unclaimed work).
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

    /// Typed text worth claiming: starts with the prefix or mentions the bot first. The engine
    /// decides for real; this only spares the store a write for ordinary chatter.
    fn addressed(&self, text: &str) -> bool {
        let t = text.trim_start();
        t.starts_with(&self.engine.ctx().config.chat.prefix)
            || t.starts_with(&format!("<@{}>", self.bot_user_id))
            || t.starts_with(&format!("<@!{}>", self.bot_user_id))
    }

    /// The actor behind an event: roles only from the configured guild (a DM or another guild
    /// grants nothing beyond `*`).
    async fn actor(
        &self,
        ctx: &Context,
        user: &User,
        guild_id: Option<GuildId>,
        role_ids: &[RoleId],
    ) -> Actor {
        let roles = match (guild_id, self.guild()) {
            (Some(g), Some(configured)) if g == configured => {
                let named = role_names(ctx, g, role_ids).await;
                roles::bot_roles(&self.engine.ctx().config.discord.roles, &named)
            }
            _ => Vec::new(),
        };
        Actor::chat("discord", &user.id.to_string(), &user.name, &roles)
    }

    fn conversation(
        &self,
        http: &Arc<Http>,
        channel: ChannelId,
        origin: Origin,
    ) -> DiscordConversation {
        let c = self.engine.ctx();
        DiscordConversation::new(
            http.clone(),
            c.store.clone(),
            c.redactor.clone(),
            channel,
            origin,
        )
    }
}

/// The member's roles as (id, name); names from the cache (GUILD_CREATE), else from the API.
async fn role_names(ctx: &Context, guild: GuildId, ids: &[RoleId]) -> Vec<(u64, String)> {
    let cached: Option<Vec<(u64, String)>> = ctx.cache.guild(guild).map(|g| {
        ids.iter()
            .map(|id| {
                let name = g.roles.get(id).map(|r| r.name.clone()).unwrap_or_default();
                (id.get(), name)
            })
            .collect()
    });
    if let Some(c) = cached {
        return c;
    }
    let all = guild.roles(&ctx.http).await.unwrap_or_default();
    ids.iter()
        .map(|id| {
            let name = all.get(id).map(|r| r.name.clone()).unwrap_or_default();
            (id.get(), name)
        })
        .collect()
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        self.connected
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(user = %ready.user.name, guilds = ready.guilds.len(), "connected to Discord");
        let Some(guild) = self.guild() else {
            return;
        };
        match guild.set_commands(&ctx.http, commands::definitions()).await {
            Ok(c) => tracing::info!(
                guild = guild.get(),
                commands = c.len(),
                "slash commands registered"
            ),
            Err(e) => {
                tracing::error!(guild = guild.get(), error = %e, "cannot register slash commands")
            }
        }
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        self.connected
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::info!("gateway session resumed");
    }

    async fn message(&self, ctx: Context, msg: Message) {
        if msg.author.bot || !self.addressed(&msg.content) {
            return;
        }
        if !self.claim(&format!("discord:msg:{}", msg.id)).await {
            return;
        }
        let role_ids = msg
            .member
            .as_ref()
            .map(|m| m.roles.clone())
            .unwrap_or_default();
        let actor = self.actor(&ctx, &msg.author, msg.guild_id, &role_ids).await;
        let conv = self.conversation(&ctx.http, msg.channel_id, Origin::Message { id: msg.id });
        self.engine.handle(&actor, &msg.content, &conv).await;
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let prefix = self.engine.ctx().config.chat.prefix.clone();
        match interaction {
            Interaction::Command(c) => {
                if !self.claim(&format!("discord:interaction:{}", c.id)).await {
                    return;
                }
                // Discord wants an answer within 3 s; the work (a whole preflight and plan)
                // continues as follow-ups.
                let defer =
                    CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new());
                if let Err(e) = c.create_response(&ctx.http, defer).await {
                    tracing::warn!(error = %e, "cannot acknowledge a slash command");
                }
                let text = commands::slash_text(&prefix, &c.data.name, &c.data.options);
                let role_ids = c
                    .member
                    .as_ref()
                    .map(|m| m.roles.clone())
                    .unwrap_or_default();
                let actor = self.actor(&ctx, &c.user, c.guild_id, &role_ids).await;
                let channel = c.channel_id;
                let conv = self.conversation(&ctx.http, channel, Origin::Command(Box::new(c)));
                self.engine.handle(&actor, &text, &conv).await;
            }
            Interaction::Component(c) => {
                if !self.claim(&format!("discord:interaction:{}", c.id)).await {
                    return;
                }
                // Acknowledge without a message: the answer is public or ephemeral depending on
                // what the engine decides, so it comes as a follow-up.
                if let Err(e) = c
                    .create_response(&ctx.http, CreateInteractionResponse::Acknowledge)
                    .await
                {
                    tracing::warn!(error = %e, "cannot acknowledge a click");
                }
                let role_ids = c
                    .member
                    .as_ref()
                    .map(|m| m.roles.clone())
                    .unwrap_or_default();
                let actor = self.actor(&ctx, &c.user, c.guild_id, &role_ids).await;
                let text = crate::chat::buttons::command_text(&prefix, &c.data.custom_id);
                let channel = c.channel_id;
                let conv = self.conversation(&ctx.http, channel, Origin::Component(Box::new(c)));
                let Some(text) = text else {
                    conv.ephemeral("This button is not one the bot knows; nothing was done.")
                        .await;
                    return;
                };
                let refused = match self.engine.handle(&actor, &text, &conv).await {
                    Some(r) => matches!(
                        r.outcome,
                        Outcome::Denied | Outcome::Invalid | Outcome::RateLimited
                    ),
                    None => true,
                };
                conv.finish_click(refused).await;
            }
            _ => {}
        }
    }
}
