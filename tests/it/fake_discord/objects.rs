//! Discord objects as the fake serves them: one guild with a maintainers' and a contributors'
//! role, three members, and builders for the events a test injects.

use serde_json::{Value, json};

pub const BOT_ID: u64 = 900;
pub const APP_ID: u64 = 901;
pub const GUILD_ID: u64 = 1000;
pub const CHANNEL_ID: u64 = 1100;
pub const ROLE_MAINTAINERS: u64 = 1200;
pub const ROLE_CONTRIBUTORS: u64 = 1201;
const TS: &str = "2026-01-01T00:00:00.000000+00:00";

/// A guild member the tests act as.
#[derive(Debug, Clone, Copy)]
pub struct Person {
    pub id: u64,
    pub name: &'static str,
    pub role: u64,
}

pub const ALICE: Person = Person {
    id: 2001,
    name: "alice",
    role: ROLE_MAINTAINERS,
};
pub const BOB: Person = Person {
    id: 2002,
    name: "bob",
    role: ROLE_MAINTAINERS,
};
pub const CAROL: Person = Person {
    id: 2003,
    name: "carol",
    role: ROLE_CONTRIBUTORS,
};

pub fn user(id: u64, name: &str, bot: bool) -> Value {
    json!({
        "id": id.to_string(), "username": name, "discriminator": "0", "global_name": null,
        "avatar": null, "bot": bot
    })
}

pub fn bot_user() -> Value {
    user(BOT_ID, "catalog-bot", true)
}

pub fn guild_roles() -> Vec<Value> {
    [
        (GUILD_ID, "@everyone", 0),
        (ROLE_MAINTAINERS, "Core Maintainers", 2),
        (ROLE_CONTRIBUTORS, "Contributors", 1),
    ]
    .iter()
    .map(|(id, name, pos)| {
        json!({
            "id": id.to_string(), "name": name, "color": 0, "hoist": false, "icon": null,
            "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
            "unicode_emoji": null, "position": pos, "permissions": "0", "managed": false,
            "mentionable": false, "flags": 0
        })
    })
    .collect()
}

/// A member as Discord embeds it in events (`user` included).
pub fn member(p: Person) -> Value {
    json!({
        "user": user(p.id, p.name, false), "nick": null, "avatar": null,
        "roles": [p.role.to_string()], "joined_at": TS, "deaf": false, "mute": false,
        "flags": 0, "pending": false, "permissions": "2248473465835073"
    })
}

pub fn guild() -> Value {
    json!({
        "id": GUILD_ID.to_string(), "name": "Openverse", "icon": null, "icon_hash": null,
        "splash": null, "discovery_splash": null, "owner_id": ALICE.id.to_string(),
        "afk_channel_id": null, "afk_timeout": 300, "verification_level": 0,
        "default_message_notifications": 0, "explicit_content_filter": 0,
        "roles": guild_roles(), "emojis": [], "features": [], "mfa_level": 0,
        "application_id": null, "system_channel_id": null, "system_channel_flags": 0,
        "rules_channel_id": null, "vanity_url_code": null, "description": null, "banner": null,
        "premium_tier": 0, "preferred_locale": "en-US", "public_updates_channel_id": null,
        "nsfw_level": 0, "stickers": [], "premium_progress_bar_enabled": false,
        "joined_at": TS, "large": false, "unavailable": false, "member_count": 4,
        "voice_states": [], "members": [member(ALICE), member(BOB), member(CAROL)],
        "channels": [{
            "id": CHANNEL_ID.to_string(), "type": 0, "guild_id": GUILD_ID.to_string(),
            "name": "catalog-deploys", "position": 0, "permission_overwrites": [],
            "nsfw": false, "topic": null, "last_message_id": null, "parent_id": null,
            "rate_limit_per_user": 0, "flags": 0
        }],
        "threads": [], "presences": [], "stage_instances": [], "guild_scheduled_events": []
    })
}

pub fn ready_event(gateway_url: &str) -> Value {
    json!({
        "v": 10, "user": bot_user(), "guilds": [{"id": GUILD_ID.to_string(), "unavailable": true}],
        "session_id": "fake-session-1", "resume_gateway_url": gateway_url, "shard": [0, 1],
        "application": {"id": APP_ID.to_string(), "flags": 0}, "private_channels": []
    })
}

/// A message as the REST API returns it; `body` is what the bot sent (content, components).
pub fn message(id: u64, channel: u64, author: Value, body: &Value) -> Value {
    json!({
        "id": id.to_string(), "channel_id": channel.to_string(), "author": author,
        "content": body.get("content").cloned().unwrap_or(json!("")),
        "timestamp": TS, "edited_timestamp": null, "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": false,
        "type": 0, "flags": 0,
        "components": body.get("components").cloned().unwrap_or(json!([]))
    })
}

pub fn thread(id: u64, parent: u64, name: &str) -> Value {
    json!({
        "id": id.to_string(), "type": 11, "guild_id": GUILD_ID.to_string(), "name": name,
        "parent_id": parent.to_string(), "owner_id": BOT_ID.to_string(), "last_message_id": null,
        "rate_limit_per_user": 0, "message_count": 0, "member_count": 1, "flags": 0,
        "position": 0, "permission_overwrites": [], "nsfw": false,
        "thread_metadata": {
            "archived": false, "auto_archive_duration": 1440, "archive_timestamp": TS,
            "locked": false
        }
    })
}

/// MESSAGE_CREATE for `text` typed by `p` in the deploy channel (or a DM when `guild` is false).
pub fn message_create(id: u64, p: Person, text: &str, guild: bool) -> Value {
    let mut m = message(
        id,
        CHANNEL_ID,
        user(p.id, p.name, false),
        &json!({"content": text}),
    );
    if guild {
        m["guild_id"] = json!(GUILD_ID.to_string());
        let mut mem = member(p);
        mem.as_object_mut().map(|o| o.remove("user"));
        m["member"] = mem;
    }
    m
}

/// INTERACTION_CREATE for a click by `p` on button `custom_id` of `message`.
pub fn button_click(id: u64, p: Person, custom_id: &str, message: Value) -> Value {
    let channel = message["channel_id"].clone();
    json!({
        "id": id.to_string(), "application_id": APP_ID.to_string(), "type": 3,
        "data": {"custom_id": custom_id, "component_type": 2},
        "guild_id": GUILD_ID.to_string(), "channel_id": channel,
        "member": member(p), "token": format!("click-token-{id}"), "version": 1,
        "message": message, "locale": "en-US", "guild_locale": "en-US",
        "app_permissions": "2248473465835073", "entitlements": [],
        "authorizing_integration_owners": {"0": GUILD_ID.to_string()}, "context": 0,
        "attachment_size_limit": 10_485_760
    })
}

/// INTERACTION_CREATE for `/name` with `options` (name → JSON value, as strings or numbers).
pub fn slash_command(id: u64, p: Person, name: &str, options: &[(&str, Value)]) -> Value {
    let opts: Vec<Value> = options
        .iter()
        .map(|(n, v)| {
            let kind = match v {
                Value::Bool(_) => 5,
                Value::Number(_) => 4,
                _ => 3,
            };
            json!({"name": n, "type": kind, "value": v})
        })
        .collect();
    json!({
        "id": id.to_string(), "application_id": APP_ID.to_string(), "type": 2,
        "data": {"id": "7001", "name": name, "type": 1, "options": opts},
        "guild_id": GUILD_ID.to_string(), "channel_id": CHANNEL_ID.to_string(),
        "member": member(p), "token": format!("slash-token-{id}"), "version": 1,
        "locale": "en-US", "guild_locale": "en-US", "app_permissions": "2248473465835073",
        "entitlements": [], "authorizing_integration_owners": {"0": GUILD_ID.to_string()},
        "context": 0, "attachment_size_limit": 10_485_760
    })
}
