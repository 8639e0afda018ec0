//! [`SlackConversation`]: the engine's [`Conversation`] for one Slack message, slash command or
//! button click. It owns where the bot's words go (the channel, the thread the command came
//! from, or the deploy's thread), keeps every message inside Slack's limits, answers refusals to
//! the person alone (`chat.postEphemeral`), and keeps a deploy's thread and status card in the
//! store so that any later process (a restart, a replica) updates the same card.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::api::Api;
use super::blocks::{self, MAX_TEXT, mrkdwn};
use crate::chat::Conversation;
use crate::chat::held::HeldBack;
use crate::chat::text::{split, truncate};
use crate::conversation::{Button, DeployCard};
use crate::redact::Redactor;
use crate::store::Store;

/// Where a deploy's conversation lives on Slack, as kept in `deploys.conversation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackThread {
    pub platform: PlatformTag,
    pub channel: String,
    /// The thread's parent message.
    pub thread_ts: String,
    /// The status card, a message in that thread.
    pub card_ts: String,
}

/// Always `"slack"`: lets another front end tell the reference is not its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformTag {
    Slack,
}

impl SlackThread {
    pub fn parse(text: &str) -> Option<SlackThread> {
        serde_json::from_str(text).ok()
    }
}

/// What started this conversation; decides where messages go before a deploy thread exists.
pub enum Origin {
    /// A typed message at `ts`; `thread_ts` when it was typed in a thread. Replies go where it
    /// was; a deploy's thread is that thread, or hangs off the message.
    Message {
        user: String,
        ts: String,
        thread_ts: Option<String>,
    },
    /// A slash command (it leaves no message): answers go to the channel, and a deploy's thread
    /// hangs off the first of them.
    Command { user: String },
    /// A button click on a message (in `thread_ts` when the message is in a thread).
    Click {
        user: String,
        thread_ts: Option<String>,
    },
    /// The bot speaking on its own in a channel (announcements).
    Channel,
}

impl Origin {
    fn user(&self) -> Option<&str> {
        match self {
            Origin::Message { user, .. }
            | Origin::Command { user }
            | Origin::Click { user, .. } => Some(user),
            Origin::Channel => None,
        }
    }
}

pub struct SlackConversation {
    api: Arc<Api>,
    store: Store,
    redactor: Arc<Redactor>,
    channel: String,
    origin: Origin,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The deploy thread this conversation has moved into, once there is one.
    deploy: Option<SlackThread>,
    /// The message a new deploy thread hangs off.
    anchor: Option<String>,
    /// Messages held back until the outcome is known.
    held: HeldBack,
}

impl SlackConversation {
    pub fn new(
        api: Arc<Api>,
        store: Store,
        redactor: Arc<Redactor>,
        channel: String,
        origin: Origin,
    ) -> SlackConversation {
        let anchor = match &origin {
            Origin::Message { ts, thread_ts, .. } => {
                Some(thread_ts.clone().unwrap_or_else(|| ts.clone()))
            }
            Origin::Click { thread_ts, .. } => thread_ts.clone(),
            Origin::Command { .. } | Origin::Channel => None,
        };
        SlackConversation {
            api,
            store,
            redactor,
            channel,
            origin,
            state: Mutex::new(State {
                anchor,
                ..State::default()
            }),
        }
    }

    /// After the engine answered: sends what was held back, to the person alone when the
    /// command was refused (nothing changed, so nobody else needs to see it), else to everyone.
    pub async fn finish(&self, refused: bool) {
        let held = self.state.lock().await.held.release();
        for text in held {
            if refused {
                self.ephemeral(&text).await;
            } else {
                self.send(&text).await;
            }
        }
    }

    /// Everything from now on is public, starting with what was held.
    async fn release(&self) {
        let held = self.state.lock().await.held.release();
        for text in held {
            self.send(&text).await;
        }
    }

    /// An answer only the person behind this conversation sees.
    pub async fn ephemeral(&self, text: &str) {
        let Some(user) = self.origin.user() else {
            return self.send(text).await;
        };
        let (channel, thread) = self.destination().await;
        for part in split(&mrkdwn(text), MAX_TEXT) {
            if let Err(e) = self
                .api
                .post_ephemeral(&channel, user, &part, thread.as_deref())
                .await
            {
                // Not lost: a refusal says nothing secret, so it may go to the channel.
                tracing::warn!(error = %e, "cannot answer privately; answering in the channel");
                if let Err(e) = self
                    .api
                    .post_message(&channel, &part, None, thread.as_deref())
                    .await
                {
                    tracing::warn!(error = %e, "cannot post to Slack");
                }
            }
        }
    }

    /// Where messages go now: (channel, thread).
    async fn destination(&self) -> (String, Option<String>) {
        let st = self.state.lock().await;
        if let Some(t) = &st.deploy {
            return (t.channel.clone(), Some(t.thread_ts.clone()));
        }
        let thread = match &self.origin {
            Origin::Message { thread_ts, .. } | Origin::Click { thread_ts, .. } => {
                thread_ts.clone()
            }
            Origin::Command { .. } | Origin::Channel => None,
        };
        (self.channel.clone(), thread)
    }

    /// Sends `text` (split to fit) where this conversation's messages currently go.
    async fn send(&self, text: &str) {
        let (channel, thread) = self.destination().await;
        for part in split(&mrkdwn(text), MAX_TEXT) {
            match self
                .api
                .post_message(&channel, &part, None, thread.as_deref())
                .await
            {
                Ok(ts) => {
                    // A slash command's first answer is where its deploy thread will hang.
                    if let (Origin::Command { .. }, None) = (&self.origin, &thread) {
                        let mut st = self.state.lock().await;
                        if st.anchor.is_none() {
                            st.anchor = Some(ts);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot post to Slack"),
            }
        }
    }

    /// The deploy's thread: this conversation's, the one in the store, or a new one with the
    /// card in it. The flag says the card was just posted (nothing to update).
    async fn thread_for(&self, card: &DeployCard) -> Option<(SlackThread, bool)> {
        if let Some(t) = self.state.lock().await.deploy.clone() {
            return Some((t, false));
        }
        let stored = match self.store.get_deploy(card.deploy_id).await {
            Ok(d) => d.and_then(|d| d.conversation),
            Err(e) => {
                tracing::warn!(deploy_id = card.deploy_id, error = %e, "cannot read the deploy's thread");
                None
            }
        };
        if let Some(t) = stored.as_deref().and_then(SlackThread::parse) {
            self.state.lock().await.deploy = Some(t.clone());
            return Some((t, false));
        }
        let anchor = self.state.lock().await.anchor.clone();
        let ts = match self
            .api
            .post_message(
                &self.channel,
                &blocks::card_fallback(card),
                Some(&blocks::card_blocks(card)),
                anchor.as_deref(),
            )
            .await
        {
            Ok(ts) => ts,
            Err(e) => {
                tracing::warn!(deploy_id = card.deploy_id, error = %e, "cannot post the status card");
                return None;
            }
        };
        let t = SlackThread {
            platform: PlatformTag::Slack,
            channel: self.channel.clone(),
            // Without a message to hang off (an announcement), the card starts the thread.
            thread_ts: anchor.unwrap_or_else(|| ts.clone()),
            card_ts: ts,
        };
        if stored.is_some() {
            // Another front end (Discord, a terminal) holds this deploy's conversation: this
            // card is ours alone, and theirs stays where it is.
            tracing::info!(
                deploy_id = card.deploy_id,
                "the deploy's conversation lives on another front end; this card is not kept"
            );
        } else if let Ok(text) = serde_json::to_string(&t)
            && let Err(e) = self
                .store
                .set_deploy_conversation(card.deploy_id, &text)
                .await
        {
            tracing::warn!(deploy_id = card.deploy_id, error = %e, "cannot keep the thread");
        }
        self.state.lock().await.deploy = Some(t.clone());
        Some((t, true))
    }
}

#[async_trait::async_trait]
impl Conversation for SlackConversation {
    async fn post(&self, text: &str) {
        if self.origin.user().is_some() {
            let held = {
                let mut st = self.state.lock().await;
                if st.held.hold_first(text) {
                    return;
                }
                // A second message: the command is under way, so it was not refused.
                st.held.release()
            };
            for h in held {
                self.send(&h).await;
            }
        }
        self.send(text).await;
    }

    async fn post_long(&self, summary: &str, file_name: &str, content: &str) {
        let content = self.redactor.redact(content);
        let whole = format!("{summary}\n{content}");
        if mrkdwn(&whole).chars().count() <= MAX_TEXT {
            return self.post(&whole).await;
        }
        // Long output only comes from a step that ran: the command was not refused.
        self.release().await;
        let (channel, thread) = self.destination().await;
        let comment = truncate(&mrkdwn(summary), MAX_TEXT);
        if let Err(e) = self
            .api
            .upload(&channel, thread.as_deref(), file_name, &content, &comment)
            .await
        {
            // Nothing is lost: the whole text follows the summary in messages.
            tracing::warn!(error = %e, "cannot upload {file_name}; posting it as messages");
            self.send(&format!("{summary}\n(The attachment failed: {e}.)"))
                .await;
            self.send(&content).await;
        }
    }

    async fn deploy_card(&self, card: &DeployCard) {
        // A transition happened: whatever was said so far is news for everyone.
        self.release().await;
        let Some((t, created)) = self.thread_for(card).await else {
            return;
        };
        if created {
            return;
        }
        if let Err(e) = self
            .api
            .update(
                &t.channel,
                &t.card_ts,
                &blocks::card_fallback(card),
                &blocks::card_blocks(card),
            )
            .await
        {
            tracing::warn!(deploy_id = card.deploy_id, error = %e, "cannot update the status card");
        }
    }

    /// A new paused DAG: the text plus an Enable button (`dag:enable:<id>`), which the handler
    /// turns into `!dag enable <id> --confirm` as the person who clicks.
    async fn announce(&self, a: &crate::conversation::Announcement) {
        let button = Button {
            id: a.button_id.clone(),
            label: "Enable".to_string(),
            style: "success",
        };
        let text = self.redactor.redact(&a.text);
        let blocks = blocks::announcement_blocks(&text, std::slice::from_ref(&button));
        let fallback = truncate(&mrkdwn(&text), MAX_TEXT);
        if let Err(e) = self
            .api
            .post_message(&self.channel, &fallback, Some(&blocks), None)
            .await
        {
            tracing::warn!(dag_id = %a.dag_id, error = %e, "cannot post the announcement");
        }
    }

    /// A deployed DAG commit ("Deployed: …"): the text plus one Enable button per new DAG it
    /// brought (the same `dag:enable:<id>` buttons as the new-DAG announcements).
    async fn announce_deployed(&self, a: &crate::conversation::DeployedAnnouncement) {
        let buttons: Vec<Button> = a
            .enable
            .iter()
            .map(|e| Button {
                id: e.button_id.clone(),
                label: format!("Enable {}", e.dag_id),
                style: "success",
            })
            .collect();
        let text = self.redactor.redact(&a.text);
        let blocks = blocks::announcement_blocks(&text, &buttons);
        let fallback = truncate(&mrkdwn(&text), MAX_TEXT);
        if let Err(e) = self
            .api
            .post_message(&self.channel, &fallback, Some(&blocks), None)
            .await
        {
            tracing::warn!(sha = %a.sha, error = %e, "cannot post the dag-sync announcement");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_refs_round_trip_and_other_platforms_do_not_parse() {
        let t = SlackThread {
            platform: PlatformTag::Slack,
            channel: "C0DEPLOYS".into(),
            thread_ts: "1700000000.000100".into(),
            card_ts: "1700000000.000200".into(),
        };
        let text = serde_json::to_string(&t).expect("json");
        assert_eq!(
            text,
            r#"{"platform":"slack","channel":"C0DEPLOYS","thread_ts":"1700000000.000100","card_ts":"1700000000.000200"}"#
        );
        assert_eq!(SlackThread::parse(&text), Some(t));
        assert_eq!(
            SlackThread::parse(r#"{"platform":"discord","thread_id":"1","card_message_id":"2"}"#),
            None
        );
        assert_eq!(SlackThread::parse("console"), None);
    }
}
