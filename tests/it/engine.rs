//! The engine end to end on a real store: every command × a set of roles against the policy
//! table, the audit trail of every attempt (written before the reply), rate limits.

use crate::support;

use std::sync::Arc;

use catalog_chatops::chat::{Conversation, Transcript};
use catalog_chatops::config::Config;
use catalog_chatops::policy::{Actor, Permission};
use catalog_chatops::store::Store;
use catalog_chatops::{Engine, Outcome};
use support::{all_backends, config_with_store};

/// One text per command form of interface.md, with the permission it needs.
const COMMANDS: &[(&str, &str)] = &[
    ("!help", "read"),
    ("!help deploy", "read"),
    ("!deploy catalog v1.2.3", "deploy.start"),
    ("!deploy catalog v1.2.3 --force", "deploy.force"),
    ("!deploy check catalog v1.2.3", "deploy.check"),
    ("!deploy approve 7", "deploy.approve"),
    ("!deploy cancel 7", "deploy.cancel"),
    ("!deploy status", "read"),
    ("!deploy status 7", "read"),
    ("!deploy history", "read"),
    ("!deploy history catalog", "read"),
    ("!deploy resolve 7 succeeded", "deploy.approve"),
    ("!deploy rollback catalog", "deploy.start"),
    ("!locks", "read"),
    ("!dag-sync status", "read"),
    ("!airflow status", "read"),
    ("!dags new", "read"),
    ("!dag enable flickr_workflow", "dag.enable"),
    ("!migrations status", "read"),
    ("!migrations apply 0001_add_index.sql", "migrations.apply"),
    ("!audit", "read"),
    ("!audit 5", "read"),
];

const ROLE_SETS: &[&[&str]] = &[
    &[],
    &["contributor"],
    &["core-maintainer"],
    &["contributor", "core-maintainer"],
    &["triage"],
];

fn actor(name: &str, roles: &[&str]) -> Actor {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    Actor::local(name, &roles, "tester")
}

fn engine(store: &Store, url: &str, tweak: impl FnOnce(&mut Config)) -> Engine {
    let mut config = config_with_store(url);
    // Table tests send many commands as one user: the limit is tested on its own below.
    config.limits.commands_per_minute = 100_000;
    config.limits.burst = 100_000;
    // Tests never run `git` on a path of the shipped config: the deployed-commit source is a
    // file that does not exist.
    if let Some(sync) = config.dag_sync.as_mut() {
        sync.commit_source =
            catalog_chatops::config::CommitSource::File("/nonexistent/DEPLOYED_COMMIT".into());
    }
    tweak(&mut config);
    // Upstreams are a closed port: one attempt each, so refused checks answer at once.
    let http = catalog_chatops::integrations::HttpPolicy {
        attempts: 1,
        ..Default::default()
    };
    Engine::with_http_policy(config, store.clone(), http).expect("engine")
}

#[tokio::test]
async fn every_command_times_every_role_set_matches_the_policy_table() {
    for t in all_backends().await {
        let engine = engine(&t.store, &t.url, |_| {});
        let mut attempts = 0;
        for (text, permission) in COMMANDS {
            for roles in ROLE_SETS {
                let who = actor("alice", roles);
                let needed =
                    Permission::from_name(permission).expect("a permission of interface.md");
                let expected_allowed = engine.policy().allows(&who, needed);
                // The table itself, spelled out, so a wrong config default cannot hide here.
                let by_table = *permission == "read"
                    || *permission == "deploy.check"
                    || roles.contains(&"core-maintainer");
                assert_eq!(expected_allowed, by_table, "{text} {roles:?}");

                let conv = Transcript::new();
                let reply = engine.handle(&who, text, &conv).await.expect("addressed");
                attempts += 1;
                if expected_allowed {
                    assert_ne!(
                        reply.outcome,
                        Outcome::Denied,
                        "{text} as {roles:?}: {}",
                        reply.message
                    );
                } else {
                    assert_eq!(
                        reply.outcome,
                        Outcome::Denied,
                        "{text} as {roles:?}: {}",
                        reply.message
                    );
                    assert!(
                        reply.message.contains(&format!("`{permission}`")),
                        "denial names the permission: {}",
                        reply.message
                    );
                    assert!(
                        reply.message.contains("`core-maintainer`"),
                        "{}",
                        reply.message
                    );
                }
                assert_eq!(conv.messages().last(), Some(&reply.message));
            }
        }
        assert_eq!(
            t.store.count_audit("command").await.expect("count"),
            attempts,
            "{}: one audited attempt per command",
            t.backend
        );
        assert_eq!(
            t.store.verify_audit().await.expect("verify").first_broken,
            None
        );
    }
}

#[tokio::test]
async fn denial_sentence_names_permission_grants_and_roles() {
    let t = support::sqlite().await;
    let engine = engine(&t.store, &t.url, |_| {});
    let reply = engine
        .handle(
            &actor("alice", &["contributor"]),
            "!deploy catalog v1.2.3",
            &Transcript::new(),
        )
        .await
        .expect("addressed");
    assert_eq!(reply.outcome, Outcome::Denied);
    assert_eq!(
        reply.message,
        "You need the `deploy.start` permission, granted to `core-maintainer`; your roles are `contributor`."
    );
    let ev = &t.store.list_audit(1, None).await.expect("list")[0];
    assert_eq!(ev.decision.as_deref(), Some("denied"));
    assert_eq!(ev.outcome.as_deref(), Some("denied"));
    assert_eq!(ev.actor, "alice");
    assert_eq!(ev.os_user.as_deref(), Some("tester"));
    assert_eq!(ev.roles, vec!["contributor".to_string()]);
    assert_eq!(ev.raw.as_deref(), Some("!deploy catalog v1.2.3"));
    assert_eq!(ev.target.as_deref(), Some("catalog"));
    assert_eq!(ev.detail["permission"], "deploy.start");
}

/// A conversation that checks, at the moment anything is shown, that the audit log already
/// holds the attempt and its result.
struct AuditFirst {
    store: Store,
    shown_with_events: std::sync::Mutex<Vec<(String, i64)>>,
}

#[async_trait::async_trait]
impl Conversation for AuditFirst {
    async fn post(&self, text: &str) {
        let n = self.store.count_audit("command").await.expect("count")
            + self.store.count_audit("result").await.expect("count");
        self.shown_with_events
            .lock()
            .expect("lock")
            .push((text.to_string(), n));
    }
}

#[tokio::test]
async fn every_attempt_is_audited_before_its_reply_is_shown() {
    let t = support::sqlite().await;
    let engine = engine(&t.store, &t.url, |_| {});
    let conv = Arc::new(AuditFirst {
        store: t.store.clone(),
        shown_with_events: Default::default(),
    });
    let cases = [
        // Effects (even refused ones) are audited before and after: attempt + result.
        (
            "!deploy catalog v1.2.3",
            &["core-maintainer"][..],
            Outcome::Blocked,
            2,
        ),
        // Read-only: one event, before the reply.
        ("!locks", &["contributor"][..], Outcome::Ok, 1),
        (
            "!deploy catalog v1.2.3",
            &["contributor"][..],
            Outcome::Denied,
            1,
        ),
        ("!deplyo catalog v1.2.3", &[][..], Outcome::Invalid, 1),
    ];
    let mut total = 0;
    for (text, roles, outcome, events) in cases {
        let reply = engine
            .handle(&actor("bob", roles), text, conv.as_ref())
            .await
            .expect("addressed");
        assert_eq!(reply.outcome, outcome, "{text}");
        total += events;
        let shown = conv
            .shown_with_events
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("shown");
        assert_eq!(
            shown.1, total,
            "{text}: events on record when the reply was shown"
        );
    }
    let events = t.store.list_audit(10, None).await.expect("list");
    let invalid = &events[0];
    assert_eq!(invalid.decision.as_deref(), Some("invalid"));
    assert!(
        invalid.detail["reason"]
            .as_str()
            .unwrap_or("")
            .contains("`!deploy`")
    );
    // The allowed command left an attempt and a result.
    assert_eq!(events.len(), 5);
    assert_eq!(events[1].decision.as_deref(), Some("denied"));
    assert_eq!(events[2].kind, "command");
    assert_eq!(events[2].decision.as_deref(), Some("allowed"));
    assert_eq!(events[2].outcome.as_deref(), Some("ok"));
    assert_eq!(events[3].kind, "result");
    assert_eq!(events[3].outcome.as_deref(), Some("blocked"));
    assert_eq!(events[4].kind, "command");
    assert_eq!(events[4].decision.as_deref(), Some("allowed"));
    assert_eq!(
        events[4].outcome, None,
        "the attempt is recorded before its outcome is known"
    );
}

#[tokio::test]
async fn messages_not_addressed_to_the_bot_are_ignored_and_not_audited() {
    let t = support::sqlite().await;
    let engine = engine(&t.store, &t.url, |_| {});
    let conv = Transcript::new();
    assert!(
        engine
            .handle(&actor("bob", &[]), "deploy catalog please", &conv)
            .await
            .is_none()
    );
    assert!(conv.messages().is_empty());
    assert_eq!(t.store.count_audit("command").await.expect("count"), 0);
}

#[tokio::test]
async fn rate_limit_answers_with_the_wait_and_is_audited() {
    let t = support::sqlite().await;
    let engine = engine(&t.store, &t.url, |c| {
        c.limits.commands_per_minute = 2;
        c.limits.burst = 2;
    });
    let bob = actor("bob", &[]);
    for _ in 0..2 {
        let r = engine
            .handle(&bob, "!locks", &Transcript::new())
            .await
            .expect("addressed");
        assert_eq!(r.outcome, Outcome::Ok);
    }
    let r = engine
        .handle(&bob, "!locks", &Transcript::new())
        .await
        .expect("addressed");
    assert_eq!(r.outcome, Outcome::RateLimited);
    assert!(
        r.message
            .starts_with("Slow down: you can send another command in "),
        "{}",
        r.message
    );
    assert!(r.message.ends_with(" s."), "{}", r.message);
    // Per user: somebody else is not held back.
    let r = engine
        .handle(&actor("carol", &[]), "!locks", &Transcript::new())
        .await
        .expect("addressed");
    assert_eq!(r.outcome, Outcome::Ok);
    // Newest first: carol's read (one event), then bob's refused attempt.
    let ev = &t.store.list_audit(2, None).await.expect("list")[1];
    assert_eq!(ev.decision.as_deref(), Some("rate_limited"));
    assert_eq!(ev.outcome.as_deref(), Some("rate_limited"));
    assert_eq!(ev.actor, "bob");
}

#[tokio::test]
async fn local_users_may_only_claim_allowed_roles() {
    let t = support::sqlite().await;
    let engine = engine(&t.store, &t.url, |c| {
        c.local.allowed_roles = Some(vec!["contributor".into()]);
    });
    let r = engine
        .handle(
            &actor("eve", &["core-maintainer"]),
            "!locks",
            &Transcript::new(),
        )
        .await
        .expect("addressed");
    assert_eq!(r.outcome, Outcome::Denied);
    assert_eq!(
        r.message,
        "Local users may not claim `core-maintainer`: `[local] allowed_roles` permits `contributor`."
    );
    let r = engine
        .handle(
            &actor("eve", &["contributor"]),
            "!locks",
            &Transcript::new(),
        )
        .await
        .expect("addressed");
    assert_eq!(r.outcome, Outcome::Ok);
}

#[tokio::test]
async fn read_commands_tell_the_stored_truth() {
    let t = support::sqlite().await;
    let engine = engine(&t.store, &t.url, |_| {});
    let bob = actor("bob", &[]);
    let say = |text: &'static str| {
        let engine = engine.clone();
        let bob = bob.clone();
        async move {
            engine
                .handle(&bob, text, &Transcript::new())
                .await
                .expect("addressed")
        }
    };
    assert_eq!(
        say("!deploy history").await.message,
        "No deploys yet. Start one with `!deploy catalog <version>`, or check a version first with `!deploy check catalog <version>`."
    );
    assert_eq!(
        say("!locks").await.message,
        "No locks are held: a deploy may start."
    );
    assert_eq!(
        say("!deploy status").await.message,
        "No deploy is in progress. No deploy has been made yet."
    );
    assert_eq!(
        say("!deploy status 9").await.message,
        "There is no deploy #9. `!deploy history` lists the recent ones."
    );

    let d = t
        .store
        .create_deploy(&catalog_chatops::store::NewDeploy {
            target: "catalog",
            environment: "prod",
            version: "v1.5.3",
            requested_by: "alice",
            requested_by_id: "local:alice",
            force: false,
        })
        .await
        .expect("deploy");
    t.store
        .try_acquire_lock(&catalog_chatops::store::NewLock {
            key: "catalog/prod",
            holder: "alice",
            deploy_id: Some(d.id),
            reason: "deploy catalog v1.5.3",
        })
        .await
        .expect("lock")
        .expect("free");
    let locks = say("!locks").await.message;
    assert!(
        locks.starts_with("1 lock(s) held:\n🔒 catalog/prod — held by alice for deploy #1 since "),
        "{locks}"
    );
    let status = say("!deploy status").await.message;
    assert!(
        status.contains("#1 catalog v1.5.3 (prod) · requested · by alice"),
        "{status}"
    );
    let history = say("!deploy history catalog").await;
    assert!(
        history
            .message
            .starts_with("Last 1 deploy(s) of `catalog` (newest first):"),
        "{}",
        history.message
    );
    let audit = say("!audit 3").await.message;
    assert!(
        audit.starts_with("Last 3 audit events (newest first):"),
        "{audit}"
    );
    let help = say("!help").await.message;
    assert!(help.contains("!deploy check"), "{help}");
}
