//! The Discord front end end to end: the real serenity client against the fake Discord of
//! `tests/fake_discord/`, a real SQLite store, the sandbox world and the infra steps run by a
//! real `just`. Each test waits on recorded REST calls and gateway events, never on the clock.

use crate::fake_discord;
use crate::support;

use std::sync::Arc;

use catalog_chatops::Engine;
use catalog_chatops::chat::discord::{self, RunError};
use catalog_chatops::config::Config;
use catalog_chatops::sandbox::SandboxHandle;
use fake_discord::*;
use secrecy::SecretString;
use serde_json::{Value, json};
use serenity::all::ShardManager;

struct Harness {
    fake: FakeDiscord,
    store: support::TestStore,
    config: Config,
    _sandbox: SandboxHandle,
    _workdir: tempfile::TempDir,
    bot: tokio::task::JoinHandle<Result<(), RunError>>,
    shards: Arc<ShardManager>,
}

impl Harness {
    /// Stops the bot (its gateway session ends) and starts a new one on the same store, as a
    /// restarted process would.
    async fn restart(&mut self) {
        self.shards.shutdown_all().await;
        self.bot.abort();
        let registered = registrations(&self.fake.calls());
        let (bot, shards) = start_bot(&self.fake, self.config.clone(), &self.store).await;
        self.fake
            .wait_for("the new process to register its commands", |calls| {
                (registrations(calls) > registered).then_some(())
            })
            .await;
        self.bot = bot;
        self.shards = shards;
    }
}

fn registrations(calls: &[Call]) -> usize {
    let path = format!("/applications/{APP_ID}/guilds/{GUILD_ID}/commands");
    calls
        .iter()
        .filter(|c| c.method == "PUT" && c.path == path)
        .count()
}

type BotTask = tokio::task::JoinHandle<Result<(), RunError>>;

async fn start_bot(
    fake: &FakeDiscord,
    config: Config,
    store: &support::TestStore,
) -> (BotTask, Arc<ShardManager>) {
    let engine = Engine::new(config, store.store.clone()).expect("engine");
    let token = SecretString::from(TOKEN.to_string());
    let bot = discord::connect(engine, Some(&token), Some(&fake.api_url))
        .await
        .expect("connect to the fake");
    let shards = bot.shard_manager();
    (tokio::spawn(bot.run()), shards)
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.bot.abort();
    }
}

async fn harness(extra_plan_lines: usize) -> Harness {
    let fake = FakeDiscord::start().await;
    let store = support::sqlite().await;
    let mut config = support::config_with_store(&store.url);
    let (sb, dir) = support::chat_sandbox(&mut config, extra_plan_lines).await;
    config.discord.guild_id = Some(GUILD_ID);
    config
        .discord
        .roles
        .insert("Core Maintainers".into(), "core-maintainer".into());
    let (bot, shards) = start_bot(&fake, config.clone(), &store).await;
    fake.wait_for("the slash commands to be registered", |calls| {
        (registrations(calls) > 0).then_some(())
    })
    .await;
    Harness {
        fake,
        store,
        config,
        _sandbox: sb,
        _workdir: dir,
        bot,
        shards,
    }
}

/// Posts to `channel` whose content contains `needle`.
fn posted<'a>(calls: &'a [Call], channel: u64, needle: &str) -> Vec<&'a Call> {
    let path = format!("/channels/{channel}/messages");
    calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == path)
        .filter(|c| c.content().is_some_and(|t| t.contains(needle)))
        .collect()
}

fn edits_of(calls: &[Call], channel: u64, message: u64) -> Vec<Call> {
    let path = format!("/channels/{channel}/messages/{message}");
    calls
        .iter()
        .filter(|c| c.method == "PATCH" && c.path == path)
        .cloned()
        .collect()
}

struct Deploy {
    thread: u64,
    card: u64,
}

/// Types `!deploy catalog v1.5.3` as `who` and waits until the deploy awaits approval.
async fn deploy_until_approval(h: &Harness, msg_id: u64) -> Deploy {
    h.fake.dispatch(
        "MESSAGE_CREATE",
        message_create(msg_id, ALICE, "!deploy catalog v1.5.3", true),
    );
    let thread_call = h
        .fake
        .wait_for("the deploy thread", |calls| {
            calls
                .iter()
                .find(|c| {
                    c.method == "POST"
                        && c.path == format!("/channels/{CHANNEL_ID}/messages/{msg_id}/threads")
                })
                .cloned()
        })
        .await;
    assert_eq!(thread_call.body["name"], "deploy catalog v1.5.3 · #1");
    // The thread is where the bot posts next: the first channel other than the command's.
    let thread = h
        .fake
        .wait_for("the status card", |calls| {
            calls.iter().find_map(|c| {
                let rest = c.path.strip_prefix("/channels/")?;
                let (ch, tail) = rest.split_once('/')?;
                let ch: u64 = ch.parse().ok()?;
                (c.method == "POST" && tail == "messages" && ch != CHANNEL_ID).then_some(ch)
            })
        })
        .await;
    h.fake
        .wait_for("the plan-ready reply in the thread", |calls| {
            posted(calls, thread, "Plan ready").first().map(|_| ())
        })
        .await;
    let card = h.fake.first_message_in(thread).expect("the card");
    Deploy { thread, card }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_gets_a_thread_with_one_card_edited_through_to_success() {
    if !support::require_tool("just", "the Discord deploy tests") {
        return;
    }
    let h = harness(0).await;
    let d = deploy_until_approval(&h, 3001).await;

    // One card, edited in place: every edit goes to the same message, through the steps.
    let calls = h.fake.calls();
    let edits = edits_of(&calls, d.thread, d.card);
    let texts: Vec<&str> = edits.iter().filter_map(Call::content).collect();
    assert!(
        texts.iter().any(|t| t.contains("⏳ plan")),
        "the card showed the plan running: {texts:#?}"
    );
    let last = edits.last().expect("edits");
    assert!(
        last.content()
            .is_some_and(|t| t.contains("state: awaiting_approval"))
    );
    let buttons: Vec<&str> = last.body["components"][0]["components"]
        .as_array()
        .expect("buttons")
        .iter()
        .filter_map(|b| b["custom_id"].as_str())
        .collect();
    assert_eq!(buttons, vec!["deploy:approve:1", "deploy:cancel:1"]);
    let threads = calls
        .iter()
        .filter(|c| c.path.ends_with("/threads"))
        .count();
    assert_eq!(threads, 1, "one thread");
    let stored = h.store.store.get_deploy(1).await.unwrap().unwrap();
    let conv: Value = serde_json::from_str(stored.conversation.as_deref().unwrap()).unwrap();
    assert_eq!(conv["thread_id"], d.thread.to_string());
    assert_eq!(conv["card_message_id"], d.card.to_string());

    // The requester's own Approve is refused to them alone.
    let card_msg = h.fake.message(d.card);
    let refusal = click_and_wait_for_followup(&h, 4001, ALICE, "deploy:approve:1", &card_msg).await;
    assert_eq!(
        refusal.body["flags"],
        json!(64),
        "ephemeral: {:?}",
        refusal.body
    );
    let calls = h.fake.calls();
    let ack = calls
        .iter()
        .find(|c| c.path == "/interactions/4001/click-token-4001/callback")
        .expect("acknowledged");
    assert_eq!(ack.body["type"], json!(6));
    assert_eq!(
        h.store
            .store
            .get_deploy(1)
            .await
            .unwrap()
            .unwrap()
            .state
            .as_str(),
        "awaiting_approval"
    );

    // A second maintainer's click applies; the card ends as succeeded without buttons.
    bob_approves_until_succeeded(&h, 4002, &d, card_msg).await;
    let last = edits_of(&h.fake.calls(), d.thread, d.card)
        .last()
        .cloned()
        .expect("edit");
    assert_eq!(last.body["components"], json!([]), "buttons removed");
    assert_eq!(
        h.store
            .store
            .get_deploy(1)
            .await
            .unwrap()
            .unwrap()
            .state
            .as_str(),
        "succeeded"
    );
    // Only the refusal was ephemeral.
    let ephemeral = h
        .fake
        .calls()
        .iter()
        .filter(|c| c.body.get("flags") == Some(&json!(64)))
        .count();
    assert_eq!(ephemeral, 1);
}

/// Alice after changing her Discord username: the same user id, another name.
const ALICE_RENAMED: Person = Person {
    name: "alice2",
    ..ALICE
};

/// `p` clicks `custom_id` on `card_msg` (interaction `id`); returns the bot's follow-up message
/// to that click (an ephemeral refusal, for instance).
async fn click_and_wait_for_followup(
    h: &Harness,
    id: u64,
    p: Person,
    custom_id: &str,
    card_msg: &Value,
) -> Call {
    h.fake.dispatch(
        "INTERACTION_CREATE",
        button_click(id, p, custom_id, card_msg.clone()),
    );
    let path = format!("/webhooks/{APP_ID}/click-token-{id}");
    h.fake
        .wait_for("the follow-up to the click", |calls| {
            calls
                .iter()
                .find(|c| c.method == "POST" && c.path == path)
                .cloned()
        })
        .await
}

/// Bob clicks Approve on the card (interaction `id`); waits until the same card, edited in place,
/// shows the deploy succeeded.
async fn bob_approves_until_succeeded(h: &Harness, id: u64, d: &Deploy, card_msg: Value) {
    h.fake.dispatch(
        "INTERACTION_CREATE",
        button_click(id, BOB, "deploy:approve:1", card_msg),
    );
    h.fake
        .wait_for("the card to show success", |calls| {
            edits_of(calls, d.thread, d.card)
                .last()
                .filter(|c| c.content().is_some_and(|t| t.contains("🚀 succeeded")))
                .map(|_| ())
        })
        .await;
}

/// The infra recipes the sandbox justfile has run so far in this harness's workdir.
fn steps_log(h: &Harness) -> String {
    std::fs::read_to_string(h._workdir.path().join("state/steps.log")).unwrap_or_default()
}

/// Regression: the two-person rule went by username, so a requester who renamed herself could
/// approve her own deploy. She is now the same person under any name: refused, nothing recorded,
/// nothing applied; and another maintainer's approval still applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_requester_cannot_approve_her_own_deploy() {
    if !support::require_tool("just", "the Discord deploy tests") {
        return;
    }
    let h = harness(0).await;
    let d = deploy_until_approval(&h, 3801).await;
    let card_msg = h.fake.message(d.card);
    let refusal =
        click_and_wait_for_followup(&h, 4801, ALICE_RENAMED, "deploy:approve:1", &card_msg).await;
    assert_eq!(refusal.body["flags"], json!(64), "{:?}", refusal.body);
    assert!(
        refusal
            .content()
            .is_some_and(|t| t.contains("approving your own deploy is not allowed")),
        "{:?}",
        refusal.body
    );
    let stored = h.store.store.get_deploy(1).await.unwrap().unwrap();
    assert_eq!(stored.state.as_str(), "awaiting_approval");
    assert_eq!(stored.requested_by, "alice");
    assert_eq!(stored.requested_by_id, format!("discord:{}", ALICE.id));
    assert!(h.store.store.approvals(1).await.unwrap().is_empty());
    let log = steps_log(&h);
    assert!(log.contains("plan end"), "the plan ran: {log}");
    assert!(!log.contains("apply"), "nothing applied: {log}");

    bob_approves_until_succeeded(&h, 4802, &d, card_msg).await;
    let approvers: Vec<(String, String)> = h
        .store
        .store
        .approvals(1)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.approver_id, a.approver))
        .collect();
    assert_eq!(
        approvers,
        [(format!("discord:{}", BOB.id), "bob".to_string())]
    );
    assert!(steps_log(&h).contains("apply start"), "{}", steps_log(&h));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approve_button_works_after_a_restart_and_edits_the_same_card() {
    if !support::require_tool("just", "the Discord deploy tests") {
        return;
    }
    let mut h = harness(0).await;
    let d = deploy_until_approval(&h, 3601).await;
    let card_msg = h.fake.message(d.card);
    h.restart().await;
    bob_approves_until_succeeded(&h, 4601, &d, card_msg).await;
    let calls = h.fake.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.path.ends_with("/threads"))
            .count(),
        1
    );
    let last = edits_of(&calls, d.thread, d.card)
        .last()
        .cloned()
        .expect("edit");
    assert_eq!(last.body["components"], json!([]));
}

/// `p` asks for a deploy in message `id` (in the guild or by DM); returns the bot's denial.
async fn denied_deploy(h: &Harness, id: u64, p: Person, guild: bool) -> Call {
    h.fake.dispatch(
        "MESSAGE_CREATE",
        message_create(id, p, "!deploy catalog v1.5.3", guild),
    );
    h.fake
        .wait_for("the denial", |calls| {
            posted(calls, CHANNEL_ID, "permission")
                .first()
                .map(|c| (*c).clone())
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_carries_no_roles() {
    let h = harness(0).await;
    let reply = denied_deploy(&h, 3701, ALICE, false).await;
    assert!(
        reply
            .content()
            .is_some_and(|t| t.ends_with("you have no roles.")),
        "{reply:?}"
    );
    assert!(h.store.store.get_deploy(1).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contributor_is_refused_and_nothing_happens() {
    let h = harness(0).await;
    let reply = denied_deploy(&h, 3101, CAROL, true).await;
    assert_eq!(
        reply.content(),
        Some(
            "You need the `deploy.start` permission, granted to `core-maintainer`; you have no roles."
        )
    );
    let calls = h.fake.calls();
    let messages: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.contains("/messages"))
        .collect();
    assert_eq!(messages.len(), 1, "only the denial: {messages:#?}");
    assert!(!calls.iter().any(|c| c.path.ends_with("/threads")));
    assert!(
        h.store.store.get_deploy(1).await.unwrap().is_none(),
        "no deploy row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_plan_is_summarised_and_attached_and_no_message_is_too_long() {
    if !support::require_tool("just", "the Discord deploy tests") {
        return;
    }
    let h = harness(80).await;
    let d = deploy_until_approval(&h, 3201).await;
    let calls = h.fake.calls();
    let with_file: Vec<&Call> = calls.iter().filter(|c| !c.files.is_empty()).collect();
    assert_eq!(with_file.len(), 1, "one attachment");
    let c = with_file[0];
    assert_eq!(c.path, format!("/channels/{}/messages", d.thread));
    assert!(
        c.content()
            .is_some_and(|t| t.starts_with("📋 Deploy #1 plan:"))
    );
    let (name, content) = &c.files[0];
    assert_eq!(name, "deploy-1-plan.txt");
    assert!(
        content.chars().count() > 6000,
        "the whole plan: {}",
        content.len()
    );
    assert!(
        content.contains("tag_080")
            && content.contains("Plan: 1 to add, 1 to change, 1 to destroy.")
    );
    for call in &calls {
        for text in [call.body.get("content"), call.body.get("name")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            assert!(
                text.chars().count() <= 2000,
                "{} {} carries {} characters",
                call.method,
                call.path,
                text.chars().count()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_twice_makes_one_deploy() {
    if !support::require_tool("just", "the Discord deploy tests") {
        return;
    }
    let h = harness(0).await;
    let event = message_create(3301, ALICE, "!deploy catalog v1.5.3", true);
    h.fake.dispatch("MESSAGE_CREATE", event.clone());
    h.fake.dispatch("MESSAGE_CREATE", event);
    h.fake
        .wait_for("the plan-ready reply", |calls| {
            calls
                .iter()
                .any(|c| c.content().is_some_and(|t| t.contains("Plan ready")))
                .then_some(())
        })
        .await;
    // A later message is answered, so both deliveries were seen before it.
    h.fake.dispatch(
        "MESSAGE_CREATE",
        message_create(3302, CAROL, "!locks", true),
    );
    h.fake
        .wait_for("the locks reply", |calls| {
            posted(calls, CHANNEL_ID, "catalog").first().map(|_| ())
        })
        .await;
    let calls = h.fake.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.path.ends_with("/threads"))
            .count(),
        1
    );
    assert_eq!(posted(&calls, CHANNEL_ID, "Preflight for catalog").len(), 1);
    assert!(h.store.store.get_deploy(1).await.unwrap().is_some());
    assert!(
        h.store.store.get_deploy(2).await.unwrap().is_none(),
        "one deploy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_keeps_serving_after_the_gateway_drops() {
    let h = harness(0).await;
    h.fake
        .wait_gateway("the first session", |log| {
            log.contains(&GatewayLog::Identified)
        })
        .await;
    h.fake.drop_connection();
    h.fake
        .wait_gateway("a resumed or new session", |log| {
            log.contains(&GatewayLog::Resumed)
                || log.iter().filter(|e| **e == GatewayLog::Identified).count() > 1
        })
        .await;
    h.fake.dispatch(
        "MESSAGE_CREATE",
        message_create(3401, CAROL, "!locks", true),
    );
    let reply = h
        .fake
        .wait_for("the locks reply after the drop", |calls| {
            posted(calls, CHANNEL_ID, "No locks")
                .first()
                .map(|c| (*c).clone())
        })
        .await;
    assert_eq!(
        reply.content(),
        Some("No locks are held: a deploy may start.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_is_deferred_and_answered() {
    let h = harness(0).await;
    h.fake.dispatch(
        "INTERACTION_CREATE",
        slash_command(3501, CAROL, "locks", &[]),
    );
    let answer = h
        .fake
        .wait_for("the slash answer", |calls| {
            calls
                .iter()
                .find(|c| {
                    c.method == "PATCH"
                        && c.path
                            == format!("/webhooks/{APP_ID}/slash-token-3501/messages/@original")
                })
                .cloned()
        })
        .await;
    assert_eq!(
        answer.content(),
        Some("No locks are held: a deploy may start.")
    );
    let calls = h.fake.calls();
    let defer = calls
        .iter()
        .find(|c| c.path == "/interactions/3501/slash-token-3501/callback")
        .expect("deferred");
    assert_eq!(defer.body["type"], json!(5));
    let position = |p: &str| calls.iter().position(|c| c.path.starts_with(p));
    assert!(
        position("/interactions/3501") < position(&format!("/webhooks/{APP_ID}/slash-token-3501"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_deploy_threads_off_its_first_answer() {
    if !support::require_tool("just", "the Discord deploy tests") {
        return;
    }
    let h = harness(0).await;
    h.fake.dispatch(
        "INTERACTION_CREATE",
        slash_command(
            3801,
            ALICE,
            "deploy",
            &[("target", json!("catalog")), ("version", json!("v1.5.3"))],
        ),
    );
    let original = format!("/webhooks/{APP_ID}/slash-token-3801/messages/@original");
    let thread_call = h
        .fake
        .wait_for("the deploy thread", |calls| {
            calls
                .iter()
                .find(|c| c.method == "POST" && c.path.ends_with("/threads"))
                .cloned()
        })
        .await;
    assert_eq!(thread_call.body["name"], "deploy catalog v1.5.3 · #1");
    let calls = h.fake.calls();
    let answer = calls
        .iter()
        .find(|c| c.path == original)
        .expect("the first answer replaced the deferred one");
    assert!(
        answer
            .content()
            .is_some_and(|t| t.starts_with("Preflight for catalog v1.5.3"))
    );
    // The thread hangs off that first answer (the fake numbered it).
    let anchor = thread_call
        .path
        .split('/')
        .nth(4)
        .and_then(|s| s.parse::<u64>().ok())
        .expect("a thread from a message");
    assert_eq!(h.fake.message(anchor)["content"], answer.body["content"]);
    h.fake
        .wait_for("the deploy to await approval", |calls| {
            calls
                .iter()
                .any(|c| c.content().is_some_and(|t| t.contains("Plan ready")))
                .then_some(())
        })
        .await;
}

#[tokio::test]
async fn operators_are_told_about_a_bad_token_or_a_missing_intent() {
    let fake = FakeDiscord::start().await;
    let store = support::sqlite().await;
    let mut config = support::config_with_store(&store.url);
    config.discord.guild_id = Some(GUILD_ID);
    let engine = Engine::new(config, store.store.clone()).expect("engine");

    let missing = discord::connect(engine.clone(), None, Some(&fake.api_url)).await;
    assert!(matches!(missing, Err(RunError::MissingToken)));

    let wrong = SecretString::from("not-the-token".to_string());
    let rejected = discord::connect(engine.clone(), Some(&wrong), Some(&fake.api_url)).await;
    let Err(e) = rejected else {
        panic!("a wrong token was accepted")
    };
    let sentence = e.to_string();
    assert!(
        sentence.starts_with("Discord rejected DISCORD_TOKEN (401 Unauthorized)"),
        "{sentence}"
    );
    assert!(
        !sentence.contains("not-the-token"),
        "the token is never shown"
    );

    fake.refuse_identify(4014);
    let token = SecretString::from(TOKEN.to_string());
    let bot = discord::connect(engine, Some(&token), Some(&fake.api_url))
        .await
        .expect("connect");
    let result = tokio::time::timeout(WAIT, bot.run())
        .await
        .expect("run ends");
    let Err(e) = result else {
        panic!("a disallowed intent was not reported")
    };
    assert!(matches!(e, RunError::IntentNotEnabled), "{e}");
    assert!(e.to_string().contains("MESSAGE CONTENT INTENT"));
}

#[test]
fn fake_objects_deserialise_as_serenity_models() {
    use serenity::all::{GuildChannel, Interaction, Message, Ready, User};
    serde_json::from_value::<User>(bot_user()).expect("user");
    serde_json::from_value::<serenity::all::Guild>(guild()).expect("guild");
    serde_json::from_value::<Ready>(ready_event("ws://127.0.0.1:1")).expect("ready");
    let m = message_create(1, ALICE, "!help", true);
    serde_json::from_value::<Message>(m.clone()).expect("message");
    serde_json::from_value::<GuildChannel>(thread(5, CHANNEL_ID, "t")).expect("thread");
    let click = button_click(2, BOB, "deploy:approve:1", m);
    assert!(matches!(
        serde_json::from_value::<Interaction>(click).expect("click"),
        Interaction::Component(_)
    ));
    let slash = slash_command(3, BOB, "deploy", &[("target", json!("catalog"))]);
    assert!(matches!(
        serde_json::from_value::<Interaction>(slash).expect("slash"),
        Interaction::Command(_)
    ));
}
