//! The engine: one chat message from one actor → parse → rate limit → authorize → handler, with
//! every attempt written to the audit log before any reply is shown.
//!
//! Front ends (Discord, console, exec) call [`Engine::handle`]; nothing here knows which one. The
//! engine stands above the handlers it dispatches to: they get a [`Ctx`] from
//! [`crate::context`], never anything from here.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tracing::Instrument;

use crate::command::{self, Command, ParseContext};
use crate::config::Config;
use crate::context::{Caches, Ctx};
use crate::conversation::Conversation;
use crate::handlers;
use crate::integrations::{HttpPolicy, Integrations, UpstreamError};
use crate::policy::{Actor, Policy};
use crate::redact::Redactor;
use crate::reply::{Outcome, Reply};
use crate::store::{NewAuditEvent, Store};

/// The shared command engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    ctx: Ctx,
    policy: Arc<Policy>,
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    bot_user_id: Option<u64>,
}

impl Engine {
    /// Builds the engine; fails only when an upstream client cannot be built from the
    /// (already validated) configuration.
    pub fn new(config: Config, store: Store) -> Result<Engine, UpstreamError> {
        Engine::with_http_policy(config, store, HttpPolicy::default())
    }

    /// Like [`Engine::new`] with explicit timeouts and retries for the upstream services.
    pub fn with_http_policy(
        config: Config,
        store: Store,
        http: HttpPolicy,
    ) -> Result<Engine, UpstreamError> {
        let redactor = Redactor::new(config.secrets.values());
        let per_minute =
            NonZeroU32::new(config.limits.commands_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.limits.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        let integrations = Arc::new(
            Integrations::from_config(&config, http)?.remembering(Arc::new(store.clone())),
        );
        let caches = Arc::new(Caches::new(config.watch.status_cache));
        Ok(Engine {
            policy: Arc::new(Policy::new(config.permissions.clone())),
            limiter: Arc::new(RateLimiter::keyed(quota)),
            ctx: Ctx {
                config: Arc::new(config),
                store,
                redactor: Arc::new(redactor),
                integrations,
                caches,
                shutdown: tokio_util::sync::CancellationToken::new(),
            },
            bot_user_id: None,
        })
    }

    /// Lets a chat front end accept `@bot command` as well as the prefix.
    pub fn with_bot_user_id(mut self, id: u64) -> Engine {
        self.bot_user_id = Some(id);
        self
    }

    /// Ties the workflow to the process's shutdown token (see [`crate::shutdown`]).
    pub fn with_shutdown(mut self, token: tokio_util::sync::CancellationToken) -> Engine {
        self.ctx.shutdown = token;
        self
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Handles one message. `None` when the text is not addressed to the bot (no prefix, no
    /// mention): such messages are ignored and not audited.
    pub async fn handle(
        &self,
        actor: &Actor,
        text: &str,
        conv: &dyn Conversation,
    ) -> Option<Reply> {
        let targets = self.ctx.config.target_names();
        let version_tags: Vec<(String, Vec<String>)> = self
            .ctx
            .config
            .targets
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    vec![t.release_tag.clone(), t.image_tag.clone()],
                )
            })
            .collect();
        let parse_ctx = ParseContext {
            prefix: &self.ctx.config.chat.prefix,
            bot_user_id: self.bot_user_id,
            targets: &targets,
            version_tags: &version_tags,
        };
        let parsed = match command::parse(text, &parse_ctx) {
            Ok(None) => return None,
            Ok(Some(cmd)) => Ok(cmd),
            Err(e) => Err(e),
        };
        let name = parsed.as_ref().map(Command::name).unwrap_or("invalid");
        let span = tracing::info_span!(
            "command",
            command = name,
            user = %actor.name,
            target = parsed.as_ref().ok().and_then(Command::target).unwrap_or(""),
            deploy_id = tracing::field::Empty,
        );
        let reply = self
            .decide_and_run(actor, text, parsed, conv)
            .instrument(span.clone())
            .await;
        if let Some(id) = reply.deploy_id {
            span.record("deploy_id", id);
        }
        crate::metrics::command_handled(name, reply.outcome.as_str());
        Some(reply)
    }

    /// Refuses `text` as invalid for `error`, audited like any invalid command (for front ends
    /// that know the text was meant for the bot although [`command::parse`] does not see a
    /// command in it).
    pub async fn refuse_invalid(
        &self,
        actor: &Actor,
        text: &str,
        error: command::ParseError,
        conv: &dyn Conversation,
    ) -> Reply {
        let reply = self.decide_and_run(actor, text, Err(error), conv).await;
        crate::metrics::command_handled("invalid", reply.outcome.as_str());
        reply
    }

    async fn decide_and_run(
        &self,
        actor: &Actor,
        text: &str,
        parsed: Result<Command, command::ParseError>,
        conv: &dyn Conversation,
    ) -> Reply {
        let raw = audit_quote(&self.ctx.redactor.redact(text));
        let attempt = |decision: &str, cmd: Option<&Command>| NewAuditEvent {
            kind: "command".into(),
            source: actor.source.name().into(),
            actor: actor.name.clone(),
            os_user: actor.source.os_user().map(str::to_string),
            roles: actor.roles.clone(),
            raw: Some(raw.clone()),
            command: cmd.map(|c| self.ctx.redactor.redact(&c.to_string())),
            decision: Some(decision.into()),
            target: cmd.and_then(Command::target).map(str::to_string),
            ..NewAuditEvent::default()
        };

        // The limit applies to every addressed message, valid or not, so that nobody can flood
        // the audit log or the upstream services.
        // Keyed by identity, so a rename does not reset the budget.
        if let Err(not_until) = self.limiter.check_key(&actor.id) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let reply = Reply::new(
                Outcome::RateLimited,
                format!("Slow down: you can send another command in {secs} s."),
            );
            let mut ev = attempt("rate_limited", parsed.as_ref().ok());
            ev.detail = serde_json::json!({ "retry_after_s": secs });
            return self.finish(ev, reply, conv).await;
        }

        let cmd = match parsed {
            Ok(cmd) => cmd,
            Err(e) => {
                let reply = Reply::new(Outcome::Invalid, e.to_string());
                let mut ev = attempt("invalid", None);
                ev.detail = serde_json::json!({ "reason": reply.message });
                return self.finish(ev, reply, conv).await;
            }
        };

        if let Err(sentence) = self.check_local_roles(actor) {
            let reply = Reply::new(Outcome::Denied, sentence);
            let mut ev = attempt("denied", Some(&cmd));
            ev.detail = serde_json::json!({ "reason": reply.message });
            return self.finish(ev, reply, conv).await;
        }

        let permission = cmd.permission();
        if let Err(denial) = self.policy.authorize(actor, permission)
            && !self.requester_may_cancel(actor, &cmd).await
        {
            let reply = Reply::new(Outcome::Denied, denial.to_string());
            let mut ev = attempt("denied", Some(&cmd));
            ev.detail = serde_json::json!({
                "reason": reply.message,
                "permission": permission.name(),
                "granted_to": denial.granted_to,
            });
            return self.finish(ev, reply, conv).await;
        }

        let mut ev = attempt("allowed", Some(&cmd));
        ev.detail = serde_json::json!({ "permission": permission.name() });
        if cmd.is_read_only() {
            // Nothing to protect before it runs and nothing is shown until its reply: one event,
            // written before that reply, records the attempt and its outcome.
            let reply = handlers::dispatch(&self.ctx, actor, &cmd, conv).await;
            if let Some(id) = reply.deploy_id {
                ev.deploy_id = Some(id);
            }
            return self.finish(ev, reply, conv).await;
        }
        // Durable before visible: an attempt with effects is on record before the handler may
        // act or post.
        if let Err(e) = self.append(ev.clone()).await {
            return self.audit_unavailable(e, conv).await;
        }
        let reply = handlers::dispatch(&self.ctx, actor, &cmd, conv).await;
        let result = NewAuditEvent {
            kind: "result".into(),
            outcome: Some(reply.outcome.as_str().into()),
            deploy_id: reply.deploy_id,
            detail: serde_json::json!({ "message": self.ctx.redactor.redact(&reply.message) }),
            decision: None,
            raw: None,
            ..ev
        };
        self.finish(result, reply, conv).await
    }

    /// Writes the closing audit event, then shows the reply; if the log cannot be written, the
    /// reply is withheld and the user told why (fail closed: nothing unaudited is shown).
    async fn finish(&self, mut ev: NewAuditEvent, reply: Reply, conv: &dyn Conversation) -> Reply {
        ev.outcome = Some(reply.outcome.as_str().into());
        // A `result` event closes a command whose handler has already acted.
        let acted = ev.kind == "result";
        if let Err(e) = self.append(ev).await {
            if acted {
                return self.outcome_unrecorded(e, &reply, conv).await;
            }
            return self.audit_unavailable(e, conv).await;
        }
        conv.post(&self.ctx.redactor.redact(&reply.message)).await;
        Reply {
            message: self.ctx.redactor.redact(&reply.message),
            ..reply
        }
    }

    /// Appends an event after masking secrets in every text it carries: replies may quote what
    /// the user typed, and the log is permanent.
    async fn append(&self, mut ev: NewAuditEvent) -> Result<(), crate::store::StoreError> {
        let r = &self.ctx.redactor;
        for field in [&mut ev.raw, &mut ev.command] {
            if let Some(text) = field.as_mut() {
                *text = r.redact(text);
            }
        }
        ev.detail = redact_json(r, ev.detail);
        self.ctx.store.append_audit(&ev).await.map(|_| ())
    }

    async fn audit_unavailable(
        &self,
        e: crate::store::StoreError,
        conv: &dyn Conversation,
    ) -> Reply {
        tracing::error!(error = %e, "cannot write the audit log");
        let reply = Reply::new(
            Outcome::Blocked,
            format!(
                "The audit log cannot be written ({}); nothing was done.",
                self.ctx.redactor.redact(&e.to_string())
            ),
        );
        conv.post(&reply.message).await;
        reply
    }

    /// The handler ran but its result cannot be logged: the reply stays withheld (nothing
    /// unaudited is shown), and the user is told the command did run, where to look, and which
    /// deploy it concerned — never that nothing was done.
    async fn outcome_unrecorded(
        &self,
        e: crate::store::StoreError,
        reply: &Reply,
        conv: &dyn Conversation,
    ) -> Reply {
        tracing::error!(error = %e, outcome = reply.outcome.as_str(), "cannot record a command's result");
        let prefix = &self.ctx.config.chat.prefix;
        let status = match reply.deploy_id {
            Some(id) => format!("`{prefix}deploy status {id}`"),
            None => format!("`{prefix}deploy status`"),
        };
        let message = format!(
            "The audit log cannot be written ({}); the command ran, but its outcome could not be \
             recorded, so it is not shown. Once the store is back, check {status} and `{prefix}locks`.",
            self.ctx.redactor.redact(&e.to_string())
        );
        conv.post(&message).await;
        Reply {
            outcome: Outcome::Failed,
            message,
            deploy_id: reply.deploy_id,
        }
    }

    /// `[local] allowed_roles` narrows which roles a shell user may claim with `--role`.
    fn check_local_roles(&self, actor: &Actor) -> Result<(), String> {
        let crate::policy::Source::Local { .. } = actor.source else {
            return Ok(());
        };
        let Some(allowed) = &self.ctx.config.local.allowed_roles else {
            return Ok(());
        };
        let refused: Vec<&String> = actor
            .roles
            .iter()
            .filter(|r| !allowed.contains(r))
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        let list = |v: &[&String]| {
            v.iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let allowed_refs: Vec<&String> = allowed.iter().collect();
        Err(format!(
            "Local users may not claim {}: `[local] allowed_roles` permits {}.",
            list(&refused),
            if allowed_refs.is_empty() {
                "no roles".to_string()
            } else {
                list(&allowed_refs)
            }
        ))
    }

    /// interface.md: "the requester may always cancel their own" deploy.
    async fn requester_may_cancel(&self, actor: &Actor, cmd: &Command) -> bool {
        let Command::DeployCancel { id } = cmd else {
            return false;
        };
        matches!(
            self.ctx.store.get_deploy(*id).await,
            // Identity only: this grants a right, and a name can be taken over by someone else.
            Ok(Some(d)) if d.requested_by_id == actor.id
        )
    }
}

/// The longest message, in characters, the audit log keeps whole: every message that could be
/// parsed at all.
const MAX_AUDIT_RAW_CHARS: usize = command::MAX_INPUT_CHARS;
/// How much of a longer message the audit log quotes.
const AUDIT_RAW_PREFIX_CHARS: usize = 200;

/// The message as the audit log keeps it: whole up to [`MAX_AUDIT_RAW_CHARS`]; beyond that (a
/// pasted log, 100 kB of junk) a prefix, the full length and the sha256 of the whole text, so the
/// row stays small and the original can still be matched. `text` is already redacted.
fn audit_quote(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= MAX_AUDIT_RAW_CHARS {
        return text.to_string();
    }
    use sha2::Digest;
    let prefix: String = text.chars().take(AUDIT_RAW_PREFIX_CHARS).collect();
    format!(
        "{prefix}… [cut: {chars} characters in all, sha256 {}]",
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    )
}

/// Masks secrets in every string of a JSON value.
fn redact_json(r: &Redactor, v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(r.redact(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(|x| redact_json(r, x)).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, x)| (k, redact_json(r, x))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_keeps_a_parsable_message_whole_and_cuts_a_longer_one() {
        let whole = "é".repeat(MAX_AUDIT_RAW_CHARS);
        assert_eq!(audit_quote(&whole), whole);

        let long = format!("!deploy catalog {}", "ü".repeat(100 * 1024));
        let quoted = audit_quote(&long);
        let chars = long.chars().count();
        assert!(quoted.starts_with("!deploy catalog üü"), "{quoted}");
        assert_eq!(
            quoted.chars().take_while(|c| *c != '…').count(),
            AUDIT_RAW_PREFIX_CHARS
        );
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(long.as_bytes()));
        assert!(
            quoted.ends_with(&format!(
                "… [cut: {chars} characters in all, sha256 {digest}]"
            )),
            "{quoted}"
        );
        assert!(quoted.len() < 1024, "{} bytes", quoted.len());
    }
}
