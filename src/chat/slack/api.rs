//! Slack's Web API, the few methods the bot calls, over the project's reqwest client. Every call
//! carries its token in the `Authorization` header (marked sensitive, so no debug output shows
//! it); no URL, log line or error ever contains a token. A 429 is waited out for its
//! `Retry-After` and tried again, a bounded number of times; any other failure is an error that
//! says which method failed and why.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// Tries per call when Slack keeps answering 429.
const MAX_ATTEMPTS: u32 = 5;
/// A `Retry-After` above this is not waited out (a call stuck for minutes helps nobody).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// One call, upload included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Which of the two tokens a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// `xapp-…`: only `apps.connections.open`.
    App,
    /// `xoxb-…`: everything else.
    Bot,
}

impl Token {
    pub fn var(self) -> &'static str {
        match self {
            Token::App => "SLACK_APP_TOKEN",
            Token::Bot => "SLACK_BOT_TOKEN",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `{"ok": false, "error": …}`: Slack's own answer; `needed` names a missing scope.
    #[error("Slack refused {method}: {error}{}", .needed.as_ref().map(|n| format!(" (needs scope {n})")).unwrap_or_default())]
    Refused {
        method: String,
        error: String,
        needed: Option<String>,
    },
    #[error("Slack kept answering {method} with 429 Too Many Requests")]
    RateLimited { method: String },
    #[error("Slack answered {method} with HTTP {status}")]
    Status { method: String, status: u16 },
    #[error("cannot reach Slack for {method}: {reason}")]
    Transport { method: String, reason: String },
    #[error("Slack answered {method} with something that is not its JSON: {reason}")]
    Garbage { method: String, reason: String },
}

impl ApiError {
    /// Slack's error code, for a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Refused { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The token itself is wrong (revoked, of the wrong kind, or for another app): trying again
    /// cannot help.
    pub fn is_auth(&self) -> bool {
        matches!(
            self.code(),
            Some(
                "invalid_auth"
                    | "not_authed"
                    | "account_inactive"
                    | "token_revoked"
                    | "token_expired"
                    | "not_allowed_token_type"
                    | "missing_scope"
            )
        )
    }
}

/// What the bot token says about the bot (`auth.test`).
#[derive(Debug, Clone)]
pub struct Me {
    pub user_id: String,
    pub name: String,
    pub team_id: String,
}

/// A body in the encoding the method accepts: Slack takes JSON only for its write methods.
enum Body {
    Json(Value),
    Form(Vec<(&'static str, String)>),
}

pub struct Api {
    http: reqwest::Client,
    base: String,
    app: SecretString,
    bot: SecretString,
}

impl Api {
    /// `base` is the Web API root (`https://slack.com/api`, or a test double's).
    pub fn new(base: &str, app: SecretString, bot: SecretString) -> Result<Api, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .user_agent(concat!("catalog-chatops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Transport {
                method: "client".into(),
                reason: e.to_string(),
            })?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            app,
            bot,
        })
    }

    fn bearer(&self, token: Token) -> HeaderValue {
        let secret = match token {
            Token::App => &self.app,
            Token::Bot => &self.bot,
        };
        let mut v = HeaderValue::from_str(&format!("Bearer {}", secret.expose_secret()))
            // A token with a byte a header cannot carry cannot be a Slack token; sending no
            // credentials makes Slack answer `not_authed`, which names the variable.
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        v.set_sensitive(true);
        v
    }

    async fn call(&self, method: &str, token: Token, body: Body) -> Result<Value, ApiError> {
        let url = format!("{}/{method}", self.base);
        let transport = |e: reqwest::Error| ApiError::Transport {
            method: method.to_string(),
            // Without the URL: the text stays short, and a URL never carries a token here.
            reason: e.without_url().to_string(),
        };
        for _attempt in 1..=MAX_ATTEMPTS {
            let req = self
                .http
                .post(&url)
                .header(AUTHORIZATION, self.bearer(token));
            let req = match &body {
                Body::Json(v) => req
                    .header(CONTENT_TYPE, "application/json; charset=utf-8")
                    .body(v.to_string()),
                Body::Form(pairs) => req.form(pairs),
            };
            let resp = req.send().await.map_err(transport)?;
            let status = resp.status();
            if status.as_u16() == 429 {
                let wait = retry_after(resp.headers().get(RETRY_AFTER));
                if wait > MAX_RETRY_AFTER {
                    break;
                }
                tracing::warn!(
                    method,
                    wait_s = wait.as_secs_f64(),
                    "Slack rate limit; waiting"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if !status.is_success() {
                return Err(ApiError::Status {
                    method: method.to_string(),
                    status: status.as_u16(),
                });
            }
            let text = resp.text().await.map_err(transport)?;
            let v: Value = serde_json::from_str(&text).map_err(|e| ApiError::Garbage {
                method: method.to_string(),
                reason: e.to_string(),
            })?;
            return match v.get("ok").and_then(Value::as_bool) {
                Some(true) => Ok(v),
                Some(false) => Err(ApiError::Refused {
                    method: method.to_string(),
                    error: str_of(&v, "error").unwrap_or("unknown_error").to_string(),
                    needed: str_of(&v, "needed").map(str::to_string),
                }),
                None => Err(ApiError::Garbage {
                    method: method.to_string(),
                    reason: "no \"ok\" field".into(),
                }),
            };
        }
        Err(ApiError::RateLimited {
            method: method.to_string(),
        })
    }

    fn field(method: &str, v: &Value, key: &str) -> Result<String, ApiError> {
        str_of(v, key)
            .map(str::to_string)
            .ok_or_else(|| ApiError::Garbage {
                method: method.to_string(),
                reason: format!("no \"{key}\""),
            })
    }

    /// `auth.test`: checks the bot token and says who the bot is.
    pub async fn auth_test(&self) -> Result<Me, ApiError> {
        let v = self
            .call("auth.test", Token::Bot, Body::Form(Vec::new()))
            .await?;
        Ok(Me {
            user_id: Self::field("auth.test", &v, "user_id")?,
            name: str_of(&v, "user").unwrap_or("bot").to_string(),
            team_id: str_of(&v, "team_id").unwrap_or_default().to_string(),
        })
    }

    /// `apps.connections.open`: a single-use Socket Mode URL.
    pub async fn open_connection(&self) -> Result<String, ApiError> {
        let v = self
            .call("apps.connections.open", Token::App, Body::Form(Vec::new()))
            .await?;
        Self::field("apps.connections.open", &v, "url")
    }

    /// `chat.postMessage`; returns the new message's `ts`.
    pub async fn post_message(
        &self,
        channel: &str,
        text: &str,
        blocks: Option<&Value>,
        thread_ts: Option<&str>,
    ) -> Result<String, ApiError> {
        let mut body = json!({ "channel": channel, "text": text, "unfurl_links": false });
        if let Some(b) = blocks {
            body["blocks"] = b.clone();
        }
        if let Some(t) = thread_ts {
            body["thread_ts"] = json!(t);
        }
        let v = self
            .call("chat.postMessage", Token::Bot, Body::Json(body))
            .await?;
        Self::field("chat.postMessage", &v, "ts")
    }

    /// `chat.update`: replaces a message's text and blocks (`[]` removes the buttons).
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &Value,
    ) -> Result<(), ApiError> {
        let body = json!({ "channel": channel, "ts": ts, "text": text, "blocks": blocks });
        self.call("chat.update", Token::Bot, Body::Json(body))
            .await
            .map(|_| ())
    }

    /// `chat.postEphemeral`: a message only `user` sees.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut body = json!({ "channel": channel, "user": user, "text": text });
        if let Some(t) = thread_ts {
            body["thread_ts"] = json!(t);
        }
        self.call("chat.postEphemeral", Token::Bot, Body::Json(body))
            .await
            .map(|_| ())
    }

    /// Uploads `content` as `file_name` into `channel` (a thread when `thread_ts` is set) with
    /// `comment` as its message: `files.getUploadURLExternal`, the bytes to the URL it gives,
    /// then `files.completeUploadExternal` (Slack's current upload API; `files.upload` is
    /// retired).
    pub async fn upload(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        file_name: &str,
        content: &str,
        comment: &str,
    ) -> Result<(), ApiError> {
        const GET: &str = "files.getUploadURLExternal";
        let v = self
            .call(
                GET,
                Token::Bot,
                Body::Form(vec![
                    ("filename", file_name.to_string()),
                    ("length", content.len().to_string()),
                ]),
            )
            .await?;
        let upload_url = Self::field(GET, &v, "upload_url")?;
        let file_id = Self::field(GET, &v, "file_id")?;
        // The URL is pre-signed: the token is not sent there.
        let resp = self
            .http
            .post(&upload_url)
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(content.to_string())
            .send()
            .await
            .map_err(|e| ApiError::Transport {
                method: "the file upload".into(),
                reason: e.without_url().to_string(),
            })?;
        if !resp.status().is_success() {
            return Err(ApiError::Status {
                method: "the file upload".into(),
                status: resp.status().as_u16(),
            });
        }
        let mut body = json!({
            "files": [{ "id": file_id, "title": file_name }],
            "channel_id": channel,
            "initial_comment": comment,
        });
        if let Some(t) = thread_ts {
            body["thread_ts"] = json!(t);
        }
        self.call("files.completeUploadExternal", Token::Bot, Body::Json(body))
            .await
            .map(|_| ())
    }

    /// `users.info`: the user's name (their handle), for messages and the audit log.
    pub async fn user_name(&self, user: &str) -> Result<String, ApiError> {
        let v = self
            .call(
                "users.info",
                Token::Bot,
                Body::Form(vec![("user", user.to_string())]),
            )
            .await?;
        let u = &v["user"];
        Ok(str_of(u, "name")
            .filter(|s| !s.is_empty())
            .unwrap_or(user)
            .to_string())
    }

    /// `usergroups.list`: (id, handle) of the workspace's enabled user groups.
    pub async fn user_groups(&self) -> Result<Vec<(String, String)>, ApiError> {
        let v = self
            .call("usergroups.list", Token::Bot, Body::Form(Vec::new()))
            .await?;
        let groups = v["usergroups"]
            .as_array()
            .ok_or_else(|| ApiError::Garbage {
                method: "usergroups.list".into(),
                reason: "no \"usergroups\" list".into(),
            })?;
        Ok(groups
            .iter()
            .filter_map(|g| {
                Some((
                    str_of(g, "id")?.to_string(),
                    str_of(g, "handle")?.to_string(),
                ))
            })
            .collect())
    }

    /// `usergroups.users.list`: the user ids in group `id`.
    pub async fn group_members(&self, id: &str) -> Result<Vec<String>, ApiError> {
        const METHOD: &str = "usergroups.users.list";
        let v = self
            .call(
                METHOD,
                Token::Bot,
                Body::Form(vec![("usergroup", id.to_string())]),
            )
            .await?;
        let users = v["users"].as_array().ok_or_else(|| ApiError::Garbage {
            method: METHOD.into(),
            reason: "no \"users\" list".into(),
        })?;
        Ok(users
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect())
    }
}

fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// `Retry-After` in seconds (what Slack sends); a missing or unreadable one means a second.
fn retry_after(h: Option<&HeaderValue>) -> Duration {
    h.and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("3"))),
            Duration::from_secs(3)
        );
        assert_eq!(retry_after(None), Duration::from_secs(1));
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("soon"))),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn refusals_say_the_method_and_the_missing_scope() {
        let e = ApiError::Refused {
            method: "usergroups.list".into(),
            error: "missing_scope".into(),
            needed: Some("usergroups:read".into()),
        };
        assert_eq!(
            e.to_string(),
            "Slack refused usergroups.list: missing_scope (needs scope usergroups:read)"
        );
        assert!(e.is_auth());
        let e = ApiError::Refused {
            method: "chat.postMessage".into(),
            error: "channel_not_found".into(),
            needed: None,
        };
        assert!(!e.is_auth());
    }
}
