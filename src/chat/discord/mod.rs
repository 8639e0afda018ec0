//! The Discord front end (serenity): `catalog-chatops run`. Typed commands, slash commands and
//! buttons all become command text for the one [`Engine`]; deploys get a thread whose first
//! message is a status card edited in place. Every serenity type stays inside this module.

mod commands;
mod conversation;
mod handler;
mod limits;
mod roles;

pub use conversation::ThreadRef;

use secrecy::{ExposeSecret, SecretString};
use serenity::Client;
use serenity::all::{GatewayIntents, ShardManager};
use serenity::gateway::GatewayError;
use serenity::http::HttpBuilder;
use std::sync::Arc;

use crate::Engine;

/// Why the bot could not start or stopped; `Display` is the sentence for the operator. None of
/// them ever carries the token.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "DISCORD_TOKEN is not set: copy the bot token from the Developer Portal (your application → Bot → Reset Token) and export DISCORD_TOKEN"
    )]
    MissingToken,
    #[error(
        "[discord] guild_id is not set: the bot serves one guild and registers its slash commands there (Discord Developer Mode → right-click the server → Copy Server ID)"
    )]
    MissingGuild,
    #[error(
        "Discord rejected DISCORD_TOKEN ({0}): copy the token again from the Developer Portal (Bot → Reset Token); it is the bot token, not the client secret"
    )]
    TokenRejected(&'static str),
    #[error(
        "Discord refused the gateway intents (close code 4014 \"Disallowed intent(s)\"): enable Bot → Privileged Gateway Intents → MESSAGE CONTENT INTENT in the Developer Portal"
    )]
    IntentNotEnabled,
    #[error("cannot talk to Discord: {0}")]
    Discord(#[from] serenity::Error),
}

/// The gateway events the bot needs: guilds (roles for names), guild and DM messages with their
/// content (the typed commands). Members' roles arrive with each message and interaction, so the
/// privileged GUILD_MEMBERS intent is not requested.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
}

/// A connected (not yet started) bot.
pub struct Bot {
    client: Client,
    connected: Arc<std::sync::atomic::AtomicBool>,
    announce: Option<Arc<dyn crate::conversation::Conversation>>,
}

/// Checks the token and the configuration and builds the client. `api_base` points serenity's
/// REST calls (and so the gateway URL it is given) somewhere other than discord.com: tests use a
/// fake Discord on loopback.
pub async fn connect(
    engine: Engine,
    token: Option<&SecretString>,
    api_base: Option<&str>,
) -> Result<Bot, RunError> {
    let token = token.ok_or(RunError::MissingToken)?;
    if engine.ctx().config.discord.guild_id.is_none() {
        return Err(RunError::MissingGuild);
    }
    let mut http = HttpBuilder::new(token.expose_secret());
    if let Some(base) = api_base {
        // serenity 0.12.5's ratelimiter builds its requests without the proxy
        // (`http/ratelimiting.rs`: `req.build(.., None)`), so a proxied client must go without
        // it; only tests set a base. Against discord.com the ratelimiter stays on.
        http = http.proxy(base).ratelimiter_disabled(true);
    }
    let http = http.build();
    let me = match http.get_current_user().await {
        Ok(me) => me,
        Err(serenity::Error::Http(e)) if e.status_code().map(|s| s.as_u16()) == Some(401) => {
            return Err(RunError::TokenRejected("401 Unauthorized"));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(bot = %me.name, id = me.id.get(), "token accepted");
    let engine = engine.with_bot_user_id(me.id.get());
    let handler = handler::Handler::new(engine.clone(), me.id.get());
    let connected = handler.connected.clone();
    let client = serenity::all::ClientBuilder::new_with_http(http, intents())
        .event_handler(handler)
        .await?;
    let c = engine.ctx();
    let announce = c.config.discord.announce_channel_id.map(|channel| {
        Arc::new(conversation::DiscordConversation::new(
            client.http.clone(),
            c.store.clone(),
            c.redactor.clone(),
            serenity::all::ChannelId::new(channel),
            conversation::Origin::Channel,
        )) as Arc<dyn crate::conversation::Conversation>
    });
    Ok(Bot {
        client,
        connected,
        announce,
    })
}

impl Bot {
    /// Lets a caller (a test, a signal handler) shut the gateway connections down.
    pub fn shard_manager(&self) -> Arc<ShardManager> {
        self.client.shard_manager.clone()
    }

    /// True while the gateway session is up (for `/readyz`).
    pub fn connected(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.connected.clone()
    }

    /// The ops channel (`[discord] announce_channel_id`) where new paused DAGs are announced.
    pub fn announcements(&self) -> Option<Arc<dyn crate::conversation::Conversation>> {
        self.announce.clone()
    }

    /// Runs until the gateway connection ends for good.
    pub async fn run(mut self) -> Result<(), RunError> {
        match self.client.start().await {
            Ok(()) => Ok(()),
            Err(serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents)) => {
                Err(RunError::IntentNotEnabled)
            }
            Err(serenity::Error::Gateway(GatewayError::InvalidAuthentication)) => Err(
                RunError::TokenRejected("gateway close code 4004 \"Authentication failed\""),
            ),
            Err(e) => Err(e.into()),
        }
    }
}
