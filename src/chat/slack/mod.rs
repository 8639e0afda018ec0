//! The Slack front end: `catalog-chatops run --chat slack`, over Socket Mode (no public URL).
//! Typed commands, slash commands and buttons all become command text for the one [`Engine`];
//! deploys get a thread whose status card (Block Kit) is updated in place. Every Slack type and
//! call stays inside this module.
//!
//! The client is our own, small and over crates the project already builds (reqwest for the Web
//! API, tokio-tungstenite for the socket): see the README's "Slack" section for why not
//! slack-morphism.

mod api;
mod blocks;
mod commands;
mod conversation;
mod handler;
mod roles;
mod socket;

pub use api::ApiError;
pub use conversation::SlackThread;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::Engine;
use api::{Api, Token};
use conversation::{Origin, SlackConversation};

/// Why the bot could not start or stopped; `Display` is the sentence for the operator. None of
/// them ever carries a token.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "{0} not set: the Slack front end needs both SLACK_APP_TOKEN (the app-level token, xapp-…, from Basic Information → App-Level Tokens with scope connections:write) and SLACK_BOT_TOKEN (the Bot User OAuth Token, xoxb-…, from OAuth & Permissions)"
    )]
    MissingTokens(&'static str),
    #[error("{var} does not look like {what} (it should start with {prefix}); {hint}")]
    WrongToken {
        var: &'static str,
        what: &'static str,
        prefix: &'static str,
        hint: &'static str,
    },
    #[error("Slack rejected {var} ({code}): {hint}")]
    TokenRejected {
        var: &'static str,
        code: String,
        hint: &'static str,
    },
    #[error(
        "{var} lacks the scope {scope}: add it in the app's settings ({where_}) and install the app again"
    )]
    MissingScope {
        var: &'static str,
        scope: String,
        where_: &'static str,
    },
    #[error("cannot talk to Slack: {0}")]
    Slack(#[from] ApiError),
}

fn hint(token: Token) -> &'static str {
    match token {
        Token::App => {
            "create an app-level token with scope connections:write under Basic Information → App-Level Tokens and export it as SLACK_APP_TOKEN"
        }
        Token::Bot => {
            "copy the Bot User OAuth Token from OAuth & Permissions (install or reinstall the app to the workspace first) and export it as SLACK_BOT_TOKEN"
        }
    }
}

/// A token refused when the bot starts, as the sentence that says what to do.
fn rejected(token: Token, e: ApiError) -> RunError {
    match e {
        ApiError::Refused {
            error,
            needed: Some(scope),
            ..
        } if error == "missing_scope" => RunError::MissingScope {
            var: token.var(),
            scope,
            where_: match token {
                Token::App => "Basic Information → App-Level Tokens",
                Token::Bot => "OAuth & Permissions → Bot Token Scopes",
            },
        },
        e if e.is_auth() => RunError::TokenRejected {
            var: token.var(),
            code: e.code().unwrap_or("refused").to_string(),
            hint: hint(token),
        },
        e => RunError::Slack(e),
    }
}

/// Checks that both tokens are there and of the right kind, before anything is connected.
pub fn check_tokens(
    app: Option<&SecretString>,
    bot: Option<&SecretString>,
) -> Result<(), RunError> {
    match (app, bot) {
        (None, None) => {
            return Err(RunError::MissingTokens(
                "SLACK_APP_TOKEN and SLACK_BOT_TOKEN are",
            ));
        }
        (None, Some(_)) => return Err(RunError::MissingTokens("SLACK_APP_TOKEN is")),
        (Some(_), None) => return Err(RunError::MissingTokens("SLACK_BOT_TOKEN is")),
        (Some(_), Some(_)) => {}
    }
    let kinds = [
        (app, Token::App, "an app-level token", "xapp-"),
        (bot, Token::Bot, "a bot token", "xoxb-"),
    ];
    for (token, kind, what, prefix) in kinds {
        if let Some(t) = token
            && !t.expose_secret().starts_with(prefix)
        {
            return Err(RunError::WrongToken {
                var: kind.var(),
                what,
                prefix,
                hint: hint(kind),
            });
        }
    }
    Ok(())
}

/// A connected (not yet started) bot: both tokens checked with Slack, the first Socket Mode URL
/// in hand.
pub struct Bot {
    api: Arc<Api>,
    handler: handler::Handler,
    first_url: String,
    connected: Arc<AtomicBool>,
    announce: Option<Arc<dyn crate::chat::Conversation>>,
}

/// Checks the tokens with Slack (`auth.test` for the bot token, `apps.connections.open` for the
/// app token) and builds the bot. The Web API root is `[slack] api_url` (a test double's in
/// tests).
pub async fn connect(
    engine: Engine,
    app: Option<&SecretString>,
    bot: Option<&SecretString>,
) -> Result<Bot, RunError> {
    check_tokens(app, bot)?;
    let (Some(app), Some(bot)) = (app, bot) else {
        // check_tokens refused a missing one above.
        return Err(RunError::MissingTokens(
            "SLACK_APP_TOKEN and SLACK_BOT_TOKEN are",
        ));
    };
    let c = engine.ctx().clone();
    let api = Arc::new(Api::new(&c.config.slack.api_url, app.clone(), bot.clone())?);
    let me = api.auth_test().await.map_err(|e| rejected(Token::Bot, e))?;
    tracing::info!(bot = %me.name, user_id = %me.user_id, team = %me.team_id, "Slack bot token accepted");
    let first_url = api
        .open_connection()
        .await
        .map_err(|e| rejected(Token::App, e))?;
    let announce = match &c.config.slack.channel_id {
        Some(channel) => Some(Arc::new(SlackConversation::new(
            api.clone(),
            c.store.clone(),
            c.redactor.clone(),
            channel.clone(),
            Origin::Channel,
        )) as Arc<dyn crate::chat::Conversation>),
        None => {
            tracing::warn!("[slack] channel_id is not set: announcements go to the log");
            None
        }
    };
    Ok(Bot {
        handler: handler::Handler::new(engine, api.clone(), me),
        api,
        first_url,
        connected: Arc::default(),
        announce,
    })
}

impl Bot {
    /// True while a Socket Mode connection is up (for `/readyz`).
    pub fn connected(&self) -> Arc<AtomicBool> {
        self.connected.clone()
    }

    /// The announcements channel (`[slack] channel_id`).
    pub fn announcements(&self) -> Option<Arc<dyn crate::chat::Conversation>> {
        self.announce.clone()
    }

    /// Serves Socket Mode until `shutdown` (Ok) or until Slack refuses the app token (Err).
    /// Commands still running at shutdown carry on in their own tasks; the engine's shutdown
    /// token governs their steps.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let handler = Arc::new(self.handler);
        let deliver: Arc<dyn Fn(socket::Envelope) + Send + Sync> = Arc::new(move |env| {
            let h = handler.clone();
            tokio::spawn(async move { h.handle(env).await });
        });
        socket::run(
            self.api,
            Some(self.first_url),
            deliver,
            self.connected,
            shutdown,
        )
        .await
        .map_err(|socket::Stopped(e)| rejected(Token::App, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_string())
    }

    #[test]
    fn missing_or_swapped_tokens_are_named_and_never_shown() {
        let e = check_tokens(None, None).unwrap_err().to_string();
        assert!(
            e.starts_with("SLACK_APP_TOKEN and SLACK_BOT_TOKEN are not set"),
            "{e}"
        );
        let e = check_tokens(Some(&s("xapp-1-A1-2-abc")), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("SLACK_BOT_TOKEN is not set"), "{e}");
        let swapped = check_tokens(Some(&s("xoxb-secret-1")), Some(&s("xapp-secret-2")))
            .unwrap_err()
            .to_string();
        assert!(
            swapped.starts_with(
                "SLACK_APP_TOKEN does not look like an app-level token (it should start with xapp-)"
            ),
            "{swapped}"
        );
        assert!(!swapped.contains("secret"), "{swapped}");
        assert!(check_tokens(Some(&s("xapp-1")), Some(&s("xoxb-2"))).is_ok());
    }

    #[test]
    fn refusals_become_sentences_about_the_right_token() {
        let refused = |error: &str, needed: Option<&str>| ApiError::Refused {
            method: "apps.connections.open".into(),
            error: error.into(),
            needed: needed.map(str::to_string),
        };
        let e = rejected(Token::App, refused("invalid_auth", None)).to_string();
        assert!(
            e.starts_with(
                "Slack rejected SLACK_APP_TOKEN (invalid_auth): create an app-level token"
            ),
            "{e}"
        );
        let e = rejected(
            Token::App,
            refused("missing_scope", Some("connections:write")),
        )
        .to_string();
        assert_eq!(
            e,
            "SLACK_APP_TOKEN lacks the scope connections:write: add it in the app's settings (Basic Information → App-Level Tokens) and install the app again"
        );
        assert!(matches!(
            rejected(Token::Bot, refused("ratelimited", None)),
            RunError::Slack(_)
        ));
    }
}
