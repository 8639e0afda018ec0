//! Slack objects as the fake serves them and the envelopes a test injects, shaped as Slack
//! documents them (Socket Mode envelopes: `events_api`, `slash_commands`, `interactive` with a
//! `block_actions` payload).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

/// Each click gets its own `action_ts`, as on Slack.
static NEXT_ACTION: AtomicU64 = AtomicU64::new(1);

pub const APP_TOKEN: &str = "xapp-1-A0FAKEAPP-1234567890-fakeapplevelsecret0123456789";
pub const BOT_TOKEN: &str = "xoxb-1234567890-0987654321-FakeBotSecretAbCdEf";
pub const TEAM_ID: &str = "T0OPENVERSE";
pub const APP_ID: &str = "A0FAKEAPP";
pub const BOT_USER: &str = "U0BOT";
pub const BOT_ID: &str = "B0BOT";
/// Where commands are typed.
pub const CHANNEL: &str = "C0DEPLOYS";
/// `[slack] channel_id`: announcements.
pub const ANNOUNCE: &str = "C0ALERTS";
pub const GROUP_ID: &str = "S0MAINT";
pub const GROUP_HANDLE: &str = "openverse-maintainers";

#[derive(Debug, Clone, Copy)]
pub struct Person {
    pub id: &'static str,
    pub name: &'static str,
    /// Member of the maintainers' user group.
    pub maintainer: bool,
}

pub const ALICE: Person = Person {
    id: "U0ALICE",
    name: "alice",
    maintainer: true,
};
pub const BOB: Person = Person {
    id: "U0BOB",
    name: "bob",
    maintainer: true,
};
pub const CAROL: Person = Person {
    id: "U0CAROL",
    name: "carol",
    maintainer: false,
};
pub const PEOPLE: [Person; 3] = [ALICE, BOB, CAROL];

/// A `users.info` user.
pub fn user(id: &str, name: &str) -> Value {
    json!({
        "id": id, "team_id": TEAM_ID, "name": name, "deleted": false, "real_name": name,
        "tz": "Europe/Amsterdam", "is_bot": false, "is_admin": false, "is_owner": false,
        "updated": 1_700_000_000,
        "profile": { "real_name": name, "display_name": name, "team": TEAM_ID }
    })
}

pub fn usergroup() -> Value {
    json!({
        "id": GROUP_ID, "team_id": TEAM_ID, "is_usergroup": true, "is_subteam": true,
        "name": "Openverse maintainers", "description": "Core maintainers",
        "handle": GROUP_HANDLE, "is_external": false, "date_create": 1_600_000_000,
        "date_update": 1_600_000_000, "date_delete": 0, "auto_type": null,
        "auto_provision": false, "enterprise_subteam_id": "", "created_by": ALICE.id,
        "updated_by": ALICE.id, "deleted_by": null,
        "prefs": { "channels": [], "groups": [] }, "user_count": 2
    })
}

/// An `events_api` envelope carrying a `message` event typed by `p` (in `thread_ts` if set).
/// `text` is as Slack delivers it: mentions as `<@U…>`, `&`, `<`, `>` typed by people escaped.
pub fn message_envelope(
    envelope_id: &str,
    p: Person,
    channel: &str,
    ts: &str,
    text: &str,
    thread_ts: Option<&str>,
) -> Value {
    event_envelope(envelope_id, "message", p, channel, ts, text, thread_ts)
}

/// The same message seen as an `app_mention` (Slack sends both when a message mentions the bot).
pub fn mention_envelope(
    envelope_id: &str,
    p: Person,
    channel: &str,
    ts: &str,
    text: &str,
) -> Value {
    event_envelope(envelope_id, "app_mention", p, channel, ts, text, None)
}

fn event_envelope(
    envelope_id: &str,
    kind: &str,
    p: Person,
    channel: &str,
    ts: &str,
    text: &str,
    thread_ts: Option<&str>,
) -> Value {
    let mut event = json!({
        "type": kind, "channel": channel, "user": p.id, "text": text, "ts": ts,
        "event_ts": ts, "team": TEAM_ID, "client_msg_id": format!("cm-{envelope_id}"),
        "blocks": [{ "type": "rich_text", "block_id": "b1", "elements": [
            { "type": "rich_text_section", "elements": [{ "type": "text", "text": text }] }
        ]}]
    });
    if kind == "message" {
        event["channel_type"] = json!("channel");
    }
    if let Some(t) = thread_ts {
        event["thread_ts"] = json!(t);
    }
    json!({
        "envelope_id": envelope_id,
        "type": "events_api",
        "accepts_response_payload": false,
        "retry_attempt": 0,
        "retry_reason": "",
        "payload": {
            "token": "verification-token-unused",
            "team_id": TEAM_ID,
            "context_team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": format!("Ev{}", envelope_id.replace('-', "")),
            "event_time": 1_700_000_000,
            "authorizations": [{
                "enterprise_id": null, "team_id": TEAM_ID, "user_id": BOT_USER,
                "is_bot": true, "is_enterprise_install": false
            }],
            "is_ext_shared_channel": false,
            "event_context": format!("4-ctx-{envelope_id}")
        }
    })
}

/// `envelope` as Slack redelivers it: a new envelope id, `retry_attempt` and `retry_reason` set.
pub fn redelivered(envelope: &Value, envelope_id: &str, attempt: u64) -> Value {
    let mut e = envelope.clone();
    e["envelope_id"] = json!(envelope_id);
    e["retry_attempt"] = json!(attempt);
    e["retry_reason"] = json!("timeout");
    e
}

/// A `slash_commands` envelope: `p` typed `command text` in `channel`.
pub fn slash_envelope(envelope_id: &str, p: Person, command: &str, text: &str) -> Value {
    json!({
        "envelope_id": envelope_id,
        "type": "slash_commands",
        "accepts_response_payload": true,
        "payload": {
            "token": "verification-token-unused",
            "team_id": TEAM_ID, "team_domain": "openverse",
            "channel_id": CHANNEL, "channel_name": "deploys",
            "user_id": p.id, "user_name": p.name,
            "command": command, "text": text,
            "api_app_id": APP_ID, "is_enterprise_install": "false",
            "response_url": format!("https://hooks.slack.com/commands/{TEAM_ID}/1/{envelope_id}"),
            "trigger_id": format!("trigger-{envelope_id}")
        }
    })
}

/// An `interactive` envelope: `p` (under `name`) clicked the button `action_id` on `message`
/// (as the fake holds it) in `channel`.
pub fn click_envelope(
    envelope_id: &str,
    p: Person,
    name: &str,
    channel: &str,
    message: &Value,
    action_id: &str,
) -> Value {
    let ts = message["ts"].as_str().unwrap_or_default();
    let mut container = json!({
        "type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false
    });
    if let Some(t) = message.get("thread_ts") {
        container["thread_ts"] = t.clone();
    }
    json!({
        "envelope_id": envelope_id,
        "type": "interactive",
        "accepts_response_payload": false,
        "payload": {
            "type": "block_actions",
            "user": { "id": p.id, "username": name, "name": name, "team_id": TEAM_ID },
            "api_app_id": APP_ID,
            "token": "verification-token-unused",
            "container": container,
            "trigger_id": format!("trigger-{envelope_id}"),
            "team": { "id": TEAM_ID, "domain": "openverse" },
            "enterprise": null,
            "is_enterprise_install": false,
            "channel": { "id": channel, "name": "deploys" },
            "message": message,
            "state": { "values": {} },
            "response_url": format!("https://hooks.slack.com/actions/{TEAM_ID}/1/{envelope_id}"),
            "actions": [{
                "action_id": action_id, "block_id": "actions-1",
                "text": { "type": "plain_text", "text": "Approve", "emoji": true },
                "value": action_id, "type": "button",
                "action_ts": format!("1700000999.{:06}", NEXT_ACTION.fetch_add(1, Ordering::SeqCst))
            }]
        }
    })
}
