//! Slack's limits and formats, as pure functions: the engine's text (Discord-flavoured markdown)
//! into Slack mrkdwn, the deploy card and announcements as Block Kit, and every limit that would
//! make Slack reject or cut a message (a rejected progress message is a silent gap in a
//! deploy's story).

use serde_json::{Value, json};

use crate::chat::text::truncate;
use crate::conversation::{Button, DeployCard};

/// Characters in one message's `text`. Slack cuts a message beyond 40,000 characters and asks
/// for at most 4,000 for readability; longer text is split there, and long output goes to a
/// file.
pub const MAX_TEXT: usize = 4000;
/// Characters in a section block's text.
pub const MAX_SECTION: usize = 3000;
/// Blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Elements in one actions block.
pub const MAX_ACTIONS: usize = 25;
/// Characters in a button's label.
pub const MAX_BUTTON_TEXT: usize = 75;
/// Characters in an `action_id`.
pub const MAX_ACTION_ID: usize = 255;

/// Escapes the three characters Slack treats as control characters in text, so that what the bot
/// echoes (a user's input, a DAG id) can never become a mention (`<!channel>`) or a link.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Undoes Slack's escaping of incoming text (`&lt;` → `<`), which the grammar must see as typed.
pub fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The engine's text as Slack mrkdwn: escaped, and `**bold**` as Slack's `*bold*` (code spans
/// and blocks are written the same way on both).
pub fn mrkdwn(text: &str) -> String {
    escape(text).replace("**", "*")
}

/// The card as Block Kit: its text in one section and its buttons in one actions block; no
/// buttons, no actions block (which is how an update removes them).
pub fn card_blocks(card: &DeployCard) -> Value {
    let mut blocks = vec![section(&card.text())];
    if !card.buttons.is_empty() {
        blocks.push(actions(&card.buttons));
    }
    limited(blocks)
}

/// At most [`MAX_BLOCKS`]: Slack refuses a message with more.
fn limited(mut blocks: Vec<Value>) -> Value {
    blocks.truncate(MAX_BLOCKS);
    Value::Array(blocks)
}

/// The notification text that goes with the card's blocks (what a push notification shows).
pub fn card_fallback(card: &DeployCard) -> String {
    truncate(&escape(&card.title), MAX_TEXT)
}

/// An announcement with its buttons (the Enable button of a new paused DAG).
pub fn announcement_blocks(text: &str, buttons: &[Button]) -> Value {
    // Slack refuses an actions block without elements.
    if buttons.is_empty() {
        return limited(vec![section(text)]);
    }
    limited(vec![section(text), actions(buttons)])
}

fn section(text: &str) -> Value {
    json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": truncate(&mrkdwn(text), MAX_SECTION) },
    })
}

fn actions(buttons: &[Button]) -> Value {
    let elements: Vec<Value> = buttons
        .iter()
        .take(MAX_ACTIONS)
        .map(|b| {
            let mut e = json!({
                "type": "button",
                "text": { "type": "plain_text", "text": truncate(&b.label, MAX_BUTTON_TEXT) },
                // Our ids are short and self-describing (`deploy:approve:7`); the id is what
                // the click sends back, and the store gives it its meaning.
                "action_id": truncate(&b.id, MAX_ACTION_ID),
                "value": truncate(&b.id, MAX_ACTION_ID),
            });
            // Slack knows two styles; anything else is the default look.
            match b.style {
                "success" | "primary" => e["style"] = json!("primary"),
                "danger" => e["style"] = json!("danger"),
                _ => {}
            }
            e
        })
        .collect();
    json!({ "type": "actions", "elements": elements })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DeployState;

    fn card(lines: usize, buttons: bool) -> DeployCard {
        DeployCard {
            deploy_id: 7,
            title: "deploy catalog v1.5.3 · #7".into(),
            lines: (0..lines).map(|i| format!("line {i} <b> & more")).collect(),
            buttons: if buttons {
                vec![
                    Button {
                        id: "deploy:approve:7".into(),
                        label: "Approve".into(),
                        style: "success",
                    },
                    Button {
                        id: "deploy:cancel:7".into(),
                        label: "Cancel".into(),
                        style: "danger",
                    },
                ]
            } else {
                Vec::new()
            },
            state: DeployState::AwaitingApproval,
        }
    }

    #[test]
    fn text_is_escaped_and_bold_is_slack_bold() {
        assert_eq!(
            mrkdwn("**deploy** <!channel> & `a<b`"),
            "*deploy* &lt;!channel&gt; &amp; `a&lt;b`"
        );
        assert_eq!(
            unescape("!dag enable a&amp;b &lt;x&gt;"),
            "!dag enable a&b <x>"
        );
        assert_eq!(unescape(&escape("<@U1> & co")), "<@U1> & co");
    }

    #[test]
    fn the_card_is_a_section_and_its_buttons() {
        let b = card_blocks(&card(2, true));
        assert_eq!(b[0]["type"], "section");
        assert!(
            b[0]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*deploy catalog v1.5.3 · #7*\nline 0 &lt;b&gt; &amp; more")
        );
        let ids: Vec<&str> = b[1]["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["deploy:approve:7", "deploy:cancel:7"]);
        assert_eq!(b[1]["elements"][0]["style"], "primary");
        assert_eq!(b[1]["elements"][1]["style"], "danger");
        assert_eq!(card_blocks(&card(2, false)).as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_huge_card_stays_within_slacks_limits() {
        let b = card_blocks(&card(2000, true));
        let blocks = b.as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS);
        let text = blocks[0]["text"]["text"].as_str().unwrap();
        assert_eq!(text.chars().count(), MAX_SECTION);
        assert!(text.ends_with('…'));
        let long = Button {
            id: "x".repeat(400),
            label: "y".repeat(100),
            style: "secondary",
        };
        let a = announcement_blocks("t", &vec![long; 40]);
        let elements = a[1]["elements"].as_array().unwrap();
        assert_eq!(elements.len(), MAX_ACTIONS);
        assert_eq!(
            elements[0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            MAX_BUTTON_TEXT
        );
        assert!(elements[0]["action_id"].as_str().unwrap().chars().count() <= MAX_ACTION_ID);
        assert!(elements[0].get("style").is_none());
    }
}
