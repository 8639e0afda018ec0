//! The Slack front end end to end: the real client (Web API over reqwest, Socket Mode over
//! tokio-tungstenite) against the fake Slack of `tests/fake_slack/`, a real store, the sandbox
//! world and the infra steps run by a real `just`. Each test waits on recorded Web API calls and
//! Socket Mode events, never on the clock.

use crate::fake_discord;
use crate::fake_slack;
use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use catalog_chatops::Engine;
use catalog_chatops::chat::Conversation;
use catalog_chatops::chat::slack::{self, RunError};
use catalog_chatops::config::Config;
use catalog_chatops::sandbox::{self, SandboxHandle, SimDag, World};
use catalog_chatops::watch::Announcer;
use fake_slack::*;
use secrecy::SecretString;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

type BotTask = tokio::task::JoinHandle<Result<(), RunError>>;

struct Harness {
    fake: FakeSlack,
    store: support::TestStore,
    config: Config,
    sandbox: SandboxHandle,
    workdir: tempfile::TempDir,
    bot: BotTask,
    stop: CancellationToken,
    engine: Engine,
    announce: Option<Arc<dyn Conversation>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
        self.bot.abort();
    }
}

/// A fresh envelope id.
fn env_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("e-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

fn tokens() -> (SecretString, SecretString) {
    (
        SecretString::from(APP_TOKEN.to_string()),
        SecretString::from(BOT_TOKEN.to_string()),
    )
}

async fn start_bot(
    config: Config,
    store: &support::TestStore,
) -> (
    BotTask,
    CancellationToken,
    Engine,
    Option<Arc<dyn Conversation>>,
) {
    let engine = Engine::new(config, store.store.clone()).expect("engine");
    let (app, bot) = tokens();
    let bot = slack::connect(engine.clone(), Some(&app), Some(&bot))
        .await
        .expect("connect to the fake");
    let announce = bot.announcements();
    let stop = CancellationToken::new();
    (tokio::spawn(bot.run(stop.clone())), stop, engine, announce)
}

fn hellos(log: &[SocketLog]) -> usize {
    log.iter()
        .filter(|e| matches!(e, SocketLog::Hello(_)))
        .count()
}

impl Harness {
    /// Stops the bot (its socket closes) and starts a new one on the same store, as a restarted
    /// process would.
    async fn restart(&mut self) {
        self.stop.cancel();
        let _ = (&mut self.bot).await;
        let before = hellos(&self.fake.socket_log());
        let (bot, stop, engine, announce) = start_bot(self.config.clone(), &self.store).await;
        self.fake
            .wait_socket("the new process to connect", |log| {
                (hellos(log) > before).then_some(())
            })
            .await;
        self.bot = bot;
        self.stop = stop;
        self.engine = engine;
        self.announce = announce;
    }

    /// `p` types `text` in the commands' channel; returns the message's ts.
    fn type_message(&self, p: Person, text: &str) -> String {
        self.type_message_in(p, text).0
    }

    /// As [`Harness::type_message`], also returning the envelope's id.
    fn type_message_in(&self, p: Person, text: &str) -> (String, String) {
        let ts = self.fake.user_ts();
        let id = env_id();
        self.fake
            .deliver(message_envelope(&id, p, CHANNEL, &ts, text, None));
        (ts, id)
    }

    /// `p` clicks `action_id` on the message `ts` (as the fake holds it).
    fn click(&self, p: Person, name: &str, ts: &str, action_id: &str) -> String {
        let id = env_id();
        let message = self.fake.message(ts);
        let channel = message["channel"].as_str().unwrap_or(CHANNEL).to_string();
        self.fake
            .deliver(click_envelope(&id, p, name, &channel, &message, action_id));
        id
    }

    /// The infra recipes the sandbox justfile has run so far in this harness's workdir.
    fn steps_log(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("state/steps.log")).unwrap_or_default()
    }

    async fn state(&self, id: i64) -> String {
        self.store
            .store
            .get_deploy(id)
            .await
            .unwrap()
            .map(|d| d.state.as_str().to_string())
            .unwrap_or_default()
    }
}

/// The config the tests run: the shipped one, the sandbox's fakes, the fake Slack.
async fn config_for(
    fake: &FakeSlack,
    store_url: &str,
    extra_plan_lines: usize,
) -> (Config, SandboxHandle, tempfile::TempDir) {
    let mut config = support::config_with_store(store_url);
    let (sb, dir) = support::chat_sandbox(&mut config, extra_plan_lines).await;
    config.slack.api_url = fake.api_url.clone();
    config.slack.channel_id = Some(ANNOUNCE.to_string());
    config
        .slack
        .roles
        .insert(GROUP_HANDLE.into(), "core-maintainer".into());
    (config, sb, dir)
}

async fn harness(extra_plan_lines: usize) -> Harness {
    let fake = FakeSlack::start().await;
    let store = support::sqlite().await;
    let (config, sandbox, workdir) = config_for(&fake, &store.url, extra_plan_lines).await;
    let (bot, stop, engine, announce) = start_bot(config.clone(), &store).await;
    fake.wait_socket("the first connection", |log| {
        (hellos(log) > 0).then_some(())
    })
    .await;
    Harness {
        fake,
        store,
        config,
        sandbox,
        workdir,
        bot,
        stop,
        engine,
        announce,
    }
}

/// Messages posted in `channel` whose text contains `needle`.
fn posted(calls: &[Call], channel: &str, needle: &str) -> Vec<Call> {
    of(calls, "chat.postMessage")
        .into_iter()
        .filter(|c| c.channel() == Some(channel))
        .filter(|c| c.text().is_some_and(|t| t.contains(needle)))
        .collect()
}

/// Updates of the message `ts`.
fn updates_of(calls: &[Call], ts: &str) -> Vec<Call> {
    of(calls, "chat.update")
        .into_iter()
        .filter(|c| c.params["ts"] == ts)
        .collect()
}

/// Ephemeral messages to `user`.
impl Harness {
    /// Waits for the first answer only `p` sees.
    async fn private_answer(&self, what: &str, p: Person) -> Call {
        self.fake
            .wait_for(what, |calls| ephemerals_to(calls, p.id).into_iter().next())
            .await
    }
}

fn ephemerals_to(calls: &[Call], user: &str) -> Vec<Call> {
    of(calls, "chat.postEphemeral")
        .into_iter()
        .filter(|c| c.params["user"] == user)
        .collect()
}

struct Deploy {
    /// The command message the thread hangs off.
    thread_ts: String,
    card_ts: String,
    /// The envelope that carried the command.
    envelope: String,
}

/// Alice types `!deploy catalog v1.5.3`; waits until the deploy awaits approval.
async fn deploy_until_approval(h: &Harness) -> Deploy {
    let (ts, envelope) = h.type_message_in(ALICE, "!deploy catalog v1.5.3");
    let card = h
        .fake
        .wait_for("the status card in the command's thread", |calls| {
            of(calls, "chat.postMessage")
                .into_iter()
                .find(|c| c.thread_ts() == Some(ts.as_str()) && !c.blocks().is_empty())
        })
        .await;
    let card_ts = card.ts().expect("card ts").to_string();
    h.fake
        .wait_for("the plan-ready reply in the thread", |calls| {
            posted(calls, CHANNEL, "Plan ready")
                .into_iter()
                .find(|c| c.thread_ts() == Some(ts.as_str()))
        })
        .await;
    Deploy {
        thread_ts: ts,
        card_ts,
        envelope,
    }
}

/// `p` clicks Approve; waits until the card, updated in place, shows the deploy succeeded.
async fn approves_until_succeeded(h: &Harness, p: Person, d: &Deploy) {
    h.click(p, p.name, &d.card_ts, "deploy:approve:1");
    h.fake
        .wait_for("the card to show success", |calls| {
            updates_of(calls, &d.card_ts)
                .last()
                .filter(|c| c.section().is_some_and(|t| t.contains("🚀 succeeded")))
                .map(|_| ())
        })
        .await;
}

/// Every envelope delivered was acknowledged, and before the bot called the Web API about it.
fn assert_all_acked(h: &Harness) {
    let log = h.fake.socket_log();
    for e in &log {
        if let SocketLog::Delivered { envelope, .. } = e {
            assert!(
                log.iter()
                    .any(|a| matches!(a, SocketLog::Acked { envelope: x, .. } if x == envelope)),
                "envelope {envelope} was never acknowledged: {log:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_gets_a_thread_with_one_card_and_a_second_maintainer_approves_by_button() {
    if !support::require_tool("just", "the Slack deploy tests") {
        return;
    }
    let h = harness(0).await;
    let d = deploy_until_approval(&h).await;

    // The envelope was acknowledged before the bot did anything about it (Slack's 3 s hold
    // whatever the command costs: this one ran a preflight and a plan).
    let calls = h.fake.calls();
    let acked = h.fake.acked_at(&d.envelope).expect("acknowledged");
    let first_work = calls
        .iter()
        .find(|c| c.params["user"] == ALICE.id || c.channel() == Some(CHANNEL))
        .expect("work for the command");
    assert!(
        acked < first_work.seq,
        "acknowledged after {} was called",
        first_work.method
    );

    // The preflight answer went to the channel; the card and the steps to the thread.
    let preflight = posted(&calls, CHANNEL, "Preflight for catalog v1.5.3");
    assert_eq!(preflight.len(), 1);
    assert_eq!(preflight[0].thread_ts(), None, "in the channel");
    let card = of(&calls, "chat.postMessage")
        .into_iter()
        .find(|c| c.ts() == Some(d.card_ts.as_str()))
        .expect("the card");
    assert_eq!(card.thread_ts(), Some(d.thread_ts.as_str()));
    // One card, updated in place through the steps.
    let updates = updates_of(&calls, &d.card_ts);
    assert!(
        updates
            .iter()
            .any(|c| c.section().is_some_and(|t| t.contains("⏳ plan"))),
        "the card showed the plan running: {:#?}",
        updates.iter().map(Call::section).collect::<Vec<_>>()
    );
    let last = updates.last().expect("updates");
    assert!(
        last.section()
            .is_some_and(|t| t.starts_with("*deploy catalog v1.5.3 · #1*")
                && t.contains("state: awaiting_approval")),
        "{:?}",
        last.section()
    );
    assert_eq!(last.buttons(), ["deploy:approve:1", "deploy:cancel:1"]);
    let cards = of(&calls, "chat.postMessage")
        .into_iter()
        .filter(|c| !c.blocks().is_empty())
        .count();
    assert_eq!(cards, 1, "one card");
    let stored = h.store.store.get_deploy(1).await.unwrap().unwrap();
    let conv: Value = serde_json::from_str(stored.conversation.as_deref().unwrap()).unwrap();
    assert_eq!(conv["platform"], "slack");
    assert_eq!(conv["channel"], CHANNEL);
    assert_eq!(conv["thread_ts"], d.thread_ts);
    assert_eq!(conv["card_ts"], d.card_ts);
    assert_eq!(stored.requested_by_id, format!("slack:{}", ALICE.id));

    // The requester's own Approve is refused to her alone.
    h.click(ALICE, "alice", &d.card_ts, "deploy:approve:1");
    let refusal = h.private_answer("the private refusal", ALICE).await;
    assert!(
        refusal
            .text()
            .is_some_and(|t| t.contains("approving your own deploy is not allowed")),
        "{:?}",
        refusal.params
    );
    assert_eq!(refusal.channel(), Some(CHANNEL));
    assert_eq!(refusal.thread_ts(), Some(d.thread_ts.as_str()));
    assert_eq!(h.state(1).await, "awaiting_approval");

    // Bob's click applies; the card ends as succeeded, its buttons gone.
    approves_until_succeeded(&h, BOB, &d).await;
    let calls = h.fake.calls();
    let last = updates_of(&calls, &d.card_ts)
        .last()
        .cloned()
        .expect("update");
    assert!(
        last.buttons().is_empty(),
        "buttons removed: {:?}",
        last.params
    );
    assert_eq!(h.state(1).await, "succeeded");
    let approvers: Vec<String> = h
        .store
        .store
        .approvals(1)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.approver_id)
        .collect();
    assert_eq!(approvers, [format!("slack:{}", BOB.id)]);
    // Only the refusal was private; every step message is in the thread.
    assert_eq!(of(&calls, "chat.postEphemeral").len(), 1);
    assert!(
        posted(&calls, CHANNEL, "apply")
            .iter()
            .all(|c| c.thread_ts() == Some(d.thread_ts.as_str()))
    );
    assert!(h.steps_log().contains("apply end"), "{}", h.steps_log());
    // Every envelope acknowledged; the audit names people by their Slack ids' names.
    assert_all_acked(&h);
    let events = h.store.store.list_audit(100, None).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.source == "slack" && e.actor == "bob")
    );
}

/// Regression (as on Discord): the two-person rule goes by Slack user id, so a requester who
/// renamed herself is still herself: refused, nothing recorded, nothing applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_requester_cannot_approve_her_own_deploy() {
    if !support::require_tool("just", "the Slack deploy tests") {
        return;
    }
    let h = harness(0).await;
    let d = deploy_until_approval(&h).await;
    h.fake.rename(ALICE, "alice2");
    h.click(ALICE, "alice2", &d.card_ts, "deploy:approve:1");
    let refusal = h.private_answer("the private refusal", ALICE).await;
    assert!(
        refusal
            .text()
            .is_some_and(|t| t.contains("approving your own deploy is not allowed")),
        "{:?}",
        refusal.params
    );
    let stored = h.store.store.get_deploy(1).await.unwrap().unwrap();
    assert_eq!(stored.state.as_str(), "awaiting_approval");
    assert_eq!(stored.requested_by, "alice");
    assert_eq!(stored.requested_by_id, format!("slack:{}", ALICE.id));
    assert!(h.store.store.approvals(1).await.unwrap().is_empty());
    let log = h.steps_log();
    assert!(log.contains("plan end"), "the plan ran: {log}");
    assert!(!log.contains("apply"), "nothing applied: {log}");
    let events = h.store.store.list_audit(100, None).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.actor == "alice2" && e.outcome.as_deref() == Some("denied")),
        "the refusal is audited under her new name"
    );

    approves_until_succeeded(&h, BOB, &d).await;
    assert!(h.steps_log().contains("apply start"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contributor_is_refused_privately_and_nothing_happens() {
    let h = harness(0).await;
    h.type_message(CAROL, "!deploy catalog v1.5.3");
    let refusal = h.private_answer("the private refusal", CAROL).await;
    assert_eq!(
        refusal.text(),
        Some(
            "You need the `deploy.start` permission, granted to `core-maintainer`; you have no roles."
        )
    );
    assert_eq!(refusal.channel(), Some(CHANNEL));
    assert_eq!(refusal.thread_ts(), None);
    let calls = h.fake.calls();
    assert!(of(&calls, "chat.postMessage").is_empty(), "nothing public");
    assert!(h.store.store.get_deploy(1).await.unwrap().is_none());
    // Her roles were looked up in the maintainers' group, by id.
    assert_eq!(
        of(&calls, "usergroups.users.list")[0].params["usergroup"],
        GROUP_ID
    );
    assert_all_acked(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_envelope_and_a_mention_seen_twice_make_one_deploy() {
    if !support::require_tool("just", "the Slack deploy tests") {
        return;
    }
    let h = harness(0).await;
    let ts = h.fake.user_ts();
    let text = format!("<@{BOT_USER}> deploy catalog v1.5.3");
    let first = message_envelope(&env_id(), ALICE, CHANNEL, &ts, &text, None);
    // Slack sends a mention twice (`message` and `app_mention`) and redelivers an envelope it
    // thinks was lost.
    h.fake.deliver(first.clone());
    h.fake
        .deliver(mention_envelope(&env_id(), ALICE, CHANNEL, &ts, &text));
    h.fake.deliver(redelivered(&first, &env_id(), 1));
    h.fake
        .wait_for("the plan-ready reply", |calls| {
            posted(calls, CHANNEL, "Plan ready").into_iter().next()
        })
        .await;
    // A later command is answered, so all three deliveries were seen before it.
    h.type_message(CAROL, "!locks");
    h.fake
        .wait_for("the locks reply", |calls| {
            posted(calls, CHANNEL, "lock(s) held").into_iter().next()
        })
        .await;
    let calls = h.fake.calls();
    assert_eq!(posted(&calls, CHANNEL, "Preflight for catalog").len(), 1);
    let cards = of(&calls, "chat.postMessage")
        .into_iter()
        .filter(|c| !c.blocks().is_empty())
        .count();
    assert_eq!(cards, 1);
    assert!(h.store.store.get_deploy(1).await.unwrap().is_some());
    assert!(
        h.store.store.get_deploy(2).await.unwrap().is_none(),
        "one deploy"
    );
    let attempts = h
        .store
        .store
        .list_audit(100, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.kind == "command"
                && e.raw
                    .as_deref()
                    .is_some_and(|r| r.contains("deploy catalog"))
        })
        .count();
    assert_eq!(attempts, 1, "one audited attempt");
    assert_all_acked(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_reconnects_after_a_disconnect_and_after_a_dropped_socket() {
    let h = harness(0).await;
    // Slack asks for a refresh: the bot opens a new connection before closing the old one.
    h.fake.refresh();
    h.fake
        .wait_socket("the old connection to be closed by the bot", |log| {
            log.contains(&SocketLog::ClosedByBot(1)).then_some(())
        })
        .await;
    let log = h.fake.socket_log();
    let pos = |e: &SocketLog| log.iter().position(|x| x == e).expect("in the log");
    assert!(
        pos(&SocketLog::AskedToRefresh(1)) < pos(&SocketLog::Opened(2))
            && pos(&SocketLog::Hello(2)) < pos(&SocketLog::ClosedByBot(1)),
        "make before break: {log:?}"
    );
    h.type_message(CAROL, "!locks");
    let reply = h
        .fake
        .wait_for("the locks reply on the new connection", |calls| {
            posted(calls, CHANNEL, "No locks").into_iter().next()
        })
        .await;
    assert_eq!(reply.text(), Some("No locks are held: a deploy may start."));
    assert!(
        h.fake
            .socket_log()
            .iter()
            .any(|e| matches!(e, SocketLog::Delivered { conn: 2, .. }))
    );

    // The socket drops without a word: the bot connects again and keeps serving.
    h.fake.drop_socket();
    h.fake
        .wait_socket("a third connection", |log| {
            log.contains(&SocketLog::Hello(3)).then_some(())
        })
        .await;
    h.type_message(CAROL, "!locks");
    h.fake
        .wait_for("the second locks reply", |calls| {
            (posted(calls, CHANNEL, "No locks").len() == 2).then_some(())
        })
        .await;
    assert_eq!(h.fake.calls_of("apps.connections.open").len(), 3);
    assert_all_acked(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approve_button_works_after_a_restart_and_updates_the_same_card() {
    if !support::require_tool("just", "the Slack deploy tests") {
        return;
    }
    let mut h = harness(0).await;
    let d = deploy_until_approval(&h).await;
    h.restart().await;
    approves_until_succeeded(&h, BOB, &d).await;
    let calls = h.fake.calls();
    let cards = of(&calls, "chat.postMessage")
        .into_iter()
        .filter(|c| !c.blocks().is_empty())
        .count();
    assert_eq!(cards, 1, "the same card, no new one");
    let last = updates_of(&calls, &d.card_ts)
        .last()
        .cloned()
        .expect("update");
    assert!(last.buttons().is_empty());
    assert_eq!(h.state(1).await, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_plan_is_uploaded_as_a_file_and_no_message_breaks_a_limit() {
    if !support::require_tool("just", "the Slack deploy tests") {
        return;
    }
    let h = harness(80).await;
    let d = deploy_until_approval(&h).await;
    let calls = h.fake.calls();
    let get = of(&calls, "files.getUploadURLExternal");
    assert_eq!(get.len(), 1, "one file");
    assert_eq!(get[0].params["filename"], "deploy-1-plan.txt");
    let upload = calls
        .iter()
        .find(|c| c.method == "upload")
        .expect("the bytes were sent");
    assert_eq!(upload.token, "none", "the pre-signed URL gets no token");
    assert_eq!(
        get[0].params["length"],
        upload.body.len().to_string(),
        "the announced length"
    );
    assert!(
        upload.body.chars().count() > 6000,
        "the whole plan: {}",
        upload.body.len()
    );
    assert!(
        upload.body.contains("tag_080")
            && upload
                .body
                .contains("Plan: 1 to add, 1 to change, 1 to destroy.")
    );
    let complete = of(&calls, "files.completeUploadExternal");
    assert_eq!(complete.len(), 1);
    let c = &complete[0];
    assert_eq!(c.params["channel_id"], CHANNEL);
    assert_eq!(c.params["thread_ts"], d.thread_ts, "in the deploy's thread");
    assert!(
        c.params["initial_comment"]
            .as_str()
            .is_some_and(|t| t.starts_with("📋 Deploy #1 plan:")),
        "{:?}",
        c.params
    );
    assert_eq!(c.params["files"][0]["id"], get[0].response["file_id"]);
    // Nothing Slack would cut or refuse (the fake refuses what Slack refuses, so every call
    // also answered ok).
    for call in &calls {
        assert!(call.ok(), "{} failed: {}", call.method, call.response);
        if let Some(t) = call.text() {
            assert!(
                t.chars().count() <= 4000,
                "{} carries {} characters",
                call.method,
                t.chars().count()
            );
        }
        assert!(call.blocks().len() <= 50);
        for b in call.blocks() {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= 3000);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_answer_in_the_channel_and_429s_are_waited_out() {
    if !support::require_tool("just", "the Slack deploy tests") {
        return;
    }
    let h = harness(0).await;
    // Slack says "slow down" once: the answer still arrives, after Retry-After.
    h.fake.rate_limit("chat.postMessage", 1, 1);
    h.fake
        .deliver(slash_envelope(&env_id(), CAROL, "/chatops", "locks"));
    let reply = h
        .fake
        .wait_for("the slash answer", |calls| {
            posted(calls, CHANNEL, "No locks").into_iter().next()
        })
        .await;
    assert_eq!(reply.thread_ts(), None, "in the channel");
    let tries: Vec<u16> = h
        .fake
        .calls()
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .map(|c| c.status)
        .collect();
    assert_eq!(tries, [429, 200]);

    // `/deploy` is the short form; the deploy's thread hangs off its first answer.
    h.fake.deliver(slash_envelope(
        &env_id(),
        ALICE,
        "/deploy",
        "catalog v1.5.3",
    ));
    let first = h
        .fake
        .wait_for("the preflight answer", |calls| {
            posted(calls, CHANNEL, "Preflight for catalog v1.5.3")
                .into_iter()
                .next()
        })
        .await;
    let anchor = first.ts().expect("ts").to_string();
    h.fake
        .wait_for("the plan-ready reply in its thread", |calls| {
            posted(calls, CHANNEL, "Plan ready")
                .into_iter()
                .find(|c| c.thread_ts() == Some(anchor.as_str()))
        })
        .await;
    let card = of(&h.fake.calls(), "chat.postMessage")
        .into_iter()
        .find(|c| !c.blocks().is_empty())
        .expect("card");
    assert_eq!(card.thread_ts(), Some(anchor.as_str()));
    assert_all_acked(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_paused_dag_is_announced_with_an_enable_button_that_works() {
    let h = harness(0).await;
    let announce = h.announce.clone().expect("[slack] channel_id is set");
    let announcer = Announcer::new(h.engine.ctx().clone());
    announcer.poll_once(&*announce).await.expect("seed");
    h.sandbox.world.lock().airflow.dags.push(SimDag {
        dag_id: "wikimedia_reingestion".into(),
        is_paused: true,
        schedule: None,
        catchup: false,
        start_date: None,
        tags: vec!["provider".into()],
        fileloc: "/opt/airflow/catalog/dags/wikimedia_reingestion.py".into(),
    });
    let report = announcer.poll_once(&*announce).await.expect("poll");
    assert_eq!(report.announced.len(), 1);
    let calls = h.fake.calls();
    let posts = of(&calls, "chat.postMessage");
    assert_eq!(posts.len(), 1);
    let a = &posts[0];
    assert_eq!(a.channel(), Some(ANNOUNCE));
    assert!(
        a.section()
            .is_some_and(|t| t.contains("wikimedia_reingestion"))
    );
    assert_eq!(a.buttons(), ["dag:enable:wikimedia_reingestion"]);

    // A contributor's click is refused privately; a maintainer's enables the DAG.
    let ts = a.ts().expect("ts").to_string();
    h.click(CAROL, "carol", &ts, "dag:enable:wikimedia_reingestion");
    h.fake
        .wait_for("Carol's private refusal", |calls| {
            ephemerals_to(calls, CAROL.id).into_iter().next()
        })
        .await;
    let paused = |h: &Harness| {
        h.sandbox
            .world
            .lock()
            .airflow
            .dags
            .iter()
            .find(|d| d.dag_id == "wikimedia_reingestion")
            .map(|d| d.is_paused)
    };
    assert_eq!(paused(&h), Some(true));
    h.click(BOB, "bob", &ts, "dag:enable:wikimedia_reingestion");
    h.fake
        .wait_for("the enable answer", |calls| {
            posted(calls, ANNOUNCE, "wikimedia_reingestion")
                .into_iter()
                .find(|c| c.blocks().is_empty())
        })
        .await;
    assert_eq!(paused(&h), Some(false), "enabled in Airflow");

    // A button the bot never issued does nothing and says so, privately.
    h.click(BOB, "bob", &ts, "deploy:apply:1");
    let answer = h
        .private_answer("the answer to an unknown button", BOB)
        .await;
    assert_eq!(
        answer.text(),
        Some("This button is not one the bot knows; nothing was done.")
    );
}

#[tokio::test]
async fn wrong_tokens_are_refused_with_a_sentence_that_never_shows_them() {
    let fake = FakeSlack::start().await;
    let store = support::sqlite().await;
    let mut config = support::config_with_store(&store.url);
    config.slack.api_url = fake.api_url.clone();
    let engine = Engine::new(config, store.store.clone()).expect("engine");
    let (app, bot) = tokens();

    let missing = slack::connect(engine.clone(), Some(&app), None).await;
    assert!(matches!(missing, Err(RunError::MissingTokens(_))));

    let wrong_bot = SecretString::from("xoxb-not-the-right-token-at-all".to_string());
    let Err(e) = slack::connect(engine.clone(), Some(&app), Some(&wrong_bot)).await else {
        panic!("a wrong bot token was accepted")
    };
    let sentence = e.to_string();
    assert!(
        sentence.starts_with("Slack rejected SLACK_BOT_TOKEN (invalid_auth)"),
        "{sentence}"
    );
    assert!(!sentence.contains("not-the-right-token"), "{sentence}");

    // The bot token given as the app token: the right kind of prefix, refused by Slack.
    let wrong_app = SecretString::from("xapp-1-A0OTHER-1-someoneelsestoken".to_string());
    let Err(e) = slack::connect(engine.clone(), Some(&wrong_app), Some(&bot)).await else {
        panic!("a wrong app token was accepted")
    };
    let sentence = e.to_string();
    assert!(
        sentence.starts_with("Slack rejected SLACK_APP_TOKEN (invalid_auth)"),
        "{sentence}"
    );
    assert!(!sentence.contains("someoneelses"), "{sentence}");
    assert!(slack::connect(engine, Some(&app), Some(&bot)).await.is_ok());
}

/// The binary's `run` with the sandbox config, the store at `store_url`, an HTTP server on a
/// free port, and no chat token or chat choice inherited from the environment.
fn run_command(store_url: &str, dir: &std::path::Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalog-chatops"));
    c.arg("--config")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sandbox.toml"))
        .arg("run")
        .env("CATALOG_CHATOPS__STORE__URL", store_url)
        .env("CATALOG_CHATOPS__SERVER__BIND", "127.0.0.1:0")
        .env_remove("SLACK_APP_TOKEN")
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("DISCORD_TOKEN")
        .env_remove("CATALOG_CHATOPS_CONFIG")
        .env_remove("CATALOG_CHATOPS_CHAT")
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .kill_on_drop(true);
    c
}

#[tokio::test]
async fn run_chat_slack_without_tokens_names_both_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/bot.db", dir.path().display());
    let out = run_command(&url, dir.path())
        .args(["--chat", "slack"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: SLACK_APP_TOKEN and SLACK_BOT_TOKEN are not set"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("bot.db").exists(),
        "nothing touched before the tokens are there"
    );
    let out = run_command(&url, dir.path())
        .args(["--chat", "slack"])
        .env("SLACK_APP_TOKEN", APP_TOKEN)
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SLACK_BOT_TOKEN is not set"), "{stderr}");
    assert!(!stderr.contains(APP_TOKEN), "{stderr}");
}

/// The whole process (`run` with `CATALOG_CHATOPS_CHAT=slack`, the env form of `--chat slack`)
/// against the fake Slack: `/readyz` follows the Socket Mode connection, and the tokens never
/// reach the logs (trace level) nor any message, even when someone pastes one into chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_is_ready_when_connected_and_tokens_never_reach_logs_or_messages() {
    use tokio::io::AsyncBufReadExt;
    let fake = FakeSlack::start().await;
    let world = sandbox::start(World::openverse_idle())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/bot.db", dir.path().display());
    let mut child = run_command(&url, dir.path())
        .env("CATALOG_CHATOPS_CHAT", "slack")
        .env("SLACK_APP_TOKEN", APP_TOKEN)
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("CATALOG_CHATOPS__SLACK__API_URL", &fake.api_url)
        .env("CATALOG_CHATOPS__SLACK__CHANNEL_ID", ANNOUNCE)
        .env("CATALOG_CHATOPS__GITHUB__API_URL", &world.github_url)
        .env("CATALOG_CHATOPS__REGISTRY__URL", &world.registry_url)
        .env("CATALOG_CHATOPS__AIRFLOW__URL", &world.airflow_url)
        .env("CATALOG_CHATOPS__AIRFLOW__API", "v2")
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let (listening_tx, listening_rx) = tokio::sync::oneshot::channel::<String>();
    let sink = log.clone();
    let reader = tokio::spawn(async move {
        let mut listening = Some(listening_tx);
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("catalog-chatops run: listening on ")
                && let Some(tx) = listening.take()
            {
                let _ = tx.send(url.to_string());
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let server = tokio::time::timeout(WAIT, listening_rx)
        .await
        .expect("the server listens")
        .expect("the process runs");
    fake.wait_socket("the process to connect", |log| {
        (hellos(log) > 0).then_some(())
    })
    .await;
    // /readyz follows the connection (the process samples it every 250 ms).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = reqwest::get(format!("{server}/readyz"))
            .await
            .expect("readyz");
        if r.status() == 200 {
            break;
        }
        let why = r.text().await.unwrap_or_default();
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready while connected: {why}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A command whose answer quotes what was typed, with a token in it.
    let ts = fake.user_ts();
    fake.deliver(message_envelope(
        "e-tok-1",
        CAROL,
        CHANNEL,
        &ts,
        &format!("!deploy check catalog {BOT_TOKEN}"),
        None,
    ));
    fake.wait_for("the answer", |calls| {
        of(calls, "chat.postMessage")
            .into_iter()
            .next()
            .or_else(|| of(calls, "chat.postEphemeral").into_iter().next())
    })
    .await;
    child.kill().await.expect("kill");
    let _ = child.wait().await;
    let _ = reader.await;
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains("Slack bot token accepted"),
        "trace logging ran: {}",
        &log[..log.len().min(2000)]
    );
    for token in [APP_TOKEN, BOT_TOKEN] {
        assert!(!log.contains(token), "a token is in the log");
        // Nor any long part of one.
        assert!(
            !log.contains(&token[10..30]),
            "part of a token is in the log"
        );
        for c in fake.calls() {
            assert!(
                !c.params.to_string().contains(token),
                "{} carried a token",
                c.method
            );
            assert!(!c.body.contains(token));
        }
    }
}

/// A Discord and a Slack process on one Postgres store: a deploy requested on Slack holds the
/// lock Discord sees, a maintainer on Discord approves it (a different person: the ids differ),
/// and Discord does not take the deploy's Slack thread over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discord_and_a_slack_process_share_one_postgres_store() {
    if !support::require_tool("just", "the Slack deploy tests") {
        return;
    }
    let Some(pg) = support::postgres().await else {
        return;
    };
    let fake = FakeSlack::start().await;
    let (config, sandbox, workdir) = config_for(&fake, &pg.url, 0).await;
    let (slack_bot, slack_stop, _engine, announce) = start_bot(config.clone(), &pg).await;
    fake.wait_socket("Slack connected", |log| (hellos(log) > 0).then_some(()))
        .await;
    let h = Harness {
        fake,
        store: pg,
        config: config.clone(),
        sandbox,
        workdir,
        bot: slack_bot,
        stop: slack_stop,
        engine: _engine,
        announce,
    };
    let d = deploy_until_approval(&h).await;

    // The Discord process: its own connection to the same database.
    let discord_fake = fake_discord::FakeDiscord::start().await;
    let mut dconfig = config.clone();
    dconfig.discord.guild_id = Some(fake_discord::GUILD_ID);
    dconfig
        .discord
        .roles
        .insert("Core Maintainers".into(), "core-maintainer".into());
    let store2 = catalog_chatops::store::Store::open(&h.store.url)
        .await
        .expect("second connection");
    let engine = Engine::new(dconfig, store2.clone()).expect("engine");
    let token = SecretString::from(fake_discord::TOKEN.to_string());
    let dbot =
        catalog_chatops::chat::discord::connect(engine, Some(&token), Some(&discord_fake.api_url))
            .await
            .expect("discord");
    let shards = dbot.shard_manager();
    let dtask = tokio::spawn(dbot.run());
    discord_fake
        .wait_gateway("Discord identified", |log| {
            log.contains(&fake_discord::GatewayLog::Identified)
        })
        .await;
    let channel_posts = |calls: &[fake_discord::Call], needle: &str| -> Option<String> {
        let path = format!("/channels/{}/messages", fake_discord::CHANNEL_ID);
        calls
            .iter()
            .filter(|c| c.method == "POST" && c.path == path)
            .filter_map(|c| c.content())
            .find(|t| t.contains(needle))
            .map(str::to_string)
    };
    discord_fake.dispatch(
        "MESSAGE_CREATE",
        fake_discord::message_create(5001, fake_discord::CAROL, "!locks", true),
    );
    let locks = discord_fake
        .wait_for("the locks answer on Discord", |calls| {
            channel_posts(calls, "catalog")
        })
        .await;
    assert!(
        locks.contains("#1"),
        "Discord sees the Slack deploy's lock: {locks}"
    );

    discord_fake.dispatch(
        "MESSAGE_CREATE",
        fake_discord::message_create(5002, fake_discord::BOB, "!deploy approve 1", true),
    );
    let mut state = String::new();
    for _ in 0..600 {
        state = h.state(1).await;
        if state == "succeeded" || state == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(state, "succeeded");
    let stored = h.store.store.get_deploy(1).await.unwrap().unwrap();
    assert_eq!(stored.requested_by_id, format!("slack:{}", ALICE.id));
    let approvers: Vec<String> = h
        .store
        .store
        .approvals(1)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.approver_id)
        .collect();
    assert_eq!(approvers, [format!("discord:{}", fake_discord::BOB.id)]);
    let conv: Value = serde_json::from_str(stored.conversation.as_deref().unwrap()).unwrap();
    assert_eq!(
        conv["platform"], "slack",
        "the Slack thread stays the deploy's"
    );
    assert_eq!(conv["card_ts"], d.card_ts);

    // Back on Slack, the status shows the outcome recorded by the other process.
    h.type_message(CAROL, "!deploy status 1");
    h.fake
        .wait_for("the status on Slack", |calls| {
            posted(calls, CHANNEL, "succeeded")
                .into_iter()
                .find(|c| c.text().is_some_and(|t| t.contains("#1")))
        })
        .await;
    shards.shutdown_all().await;
    dtask.abort();
    store2.close().await;
}
