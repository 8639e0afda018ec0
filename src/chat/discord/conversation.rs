//! [`DiscordConversation`]: the engine's [`Conversation`] for one Discord message, slash command
//! or button click. It owns where the bot's words go (the channel, the interaction's follow-ups,
//! or the deploy's thread), keeps every message inside Discord's limits, and keeps a deploy's
//! thread and status card in the store so that any later process edits the same card.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serenity::all::{
    ButtonStyle, ChannelId, ChannelType, CommandInteraction, ComponentInteraction, MessageId,
};
use serenity::builder::{
    CreateActionRow, CreateAttachment, CreateButton, CreateInteractionResponseFollowup,
    CreateMessage, CreateThread, EditInteractionResponse, EditMessage,
};
use serenity::http::Http;
use tokio::sync::Mutex;

use super::limits::{self, MAX_CONTENT, MAX_THREAD_NAME};
use crate::chat::held::HeldBack;
use crate::conversation::{Announcement, Button, Conversation, DeployCard};
use crate::redact::Redactor;
use crate::store::Store;

/// Where a deploy's conversation lives on Discord, as kept in `deploys.conversation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRef {
    pub platform: PlatformTag,
    /// Ids as strings: JSON numbers lose precision above 2^53 in many readers.
    #[serde(with = "id_string")]
    pub thread_id: u64,
    #[serde(with = "id_string")]
    pub card_message_id: u64,
}

/// Always `"discord"`: lets another front end tell the reference is not its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformTag {
    Discord,
}

mod id_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl ThreadRef {
    pub fn parse(text: &str) -> Option<ThreadRef> {
        serde_json::from_str(text).ok()
    }
}

/// What started this conversation; decides where messages go before a deploy thread exists.
pub enum Origin {
    /// A typed command: replies go to its channel, a deploy's thread hangs off the message.
    Message { id: MessageId },
    /// A slash command, already deferred: the first message replaces "thinking…", the rest are
    /// follow-ups; a deploy's thread hangs off that first message.
    Command(Box<CommandInteraction>),
    /// A button click, acknowledged without a message. What it says is held back until the
    /// engine decides: a refusal goes to the clicker alone (ephemeral), anything that changed
    /// state goes to everyone.
    Component(Box<ComponentInteraction>),
    /// The bot speaking on its own in a channel (announcements of new DAGs).
    Channel,
}

pub struct DiscordConversation {
    http: Arc<Http>,
    store: Store,
    redactor: Arc<Redactor>,
    channel_id: ChannelId,
    origin: Origin,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The deploy thread this conversation has moved into, once there is one.
    thread: Option<ThreadRef>,
    /// The message a new thread starts from (the command, or a slash command's first reply).
    anchor: Option<MessageId>,
    /// A slash command's deferred reply has been replaced by a first message.
    responded: bool,
    /// Button clicks: messages held back until the outcome is known (see [`Origin::Component`]).
    held: HeldBack,
}

impl DiscordConversation {
    pub fn new(
        http: Arc<Http>,
        store: Store,
        redactor: Arc<Redactor>,
        channel_id: ChannelId,
        origin: Origin,
    ) -> DiscordConversation {
        let anchor = match &origin {
            Origin::Message { id } => Some(*id),
            _ => None,
        };
        DiscordConversation {
            http,
            store,
            redactor,
            channel_id,
            origin,
            state: Mutex::new(State {
                anchor,
                ..State::default()
            }),
        }
    }

    /// Button clicks: sends what was held back, to the clicker alone when the command was
    /// refused (nothing changed, so nobody else needs to see it), else to the channel.
    pub async fn finish_click(&self, refused: bool) {
        let held = self.state.lock().await.held.release();
        for text in held {
            if refused {
                self.ephemeral(&text).await;
            } else {
                self.send(&text, None).await;
            }
        }
    }

    /// An answer only the clicker sees.
    pub async fn ephemeral(&self, text: &str) {
        let Origin::Component(i) = &self.origin else {
            self.send(text, None).await;
            return;
        };
        for part in limits::split(text, MAX_CONTENT) {
            let b = CreateInteractionResponseFollowup::new()
                .content(part)
                .ephemeral(true);
            if let Err(e) = i.create_followup(&*self.http, b).await {
                tracing::warn!(error = %e, "cannot answer a click");
            }
        }
    }

    /// Sends `text` (split to fit) and, with the last part, `file`, where this conversation's
    /// messages currently go.
    async fn send(&self, text: &str, file: Option<CreateAttachment>) {
        let parts = limits::split(text, MAX_CONTENT);
        let last = parts.len() - 1;
        let mut file = file;
        for (i, part) in parts.into_iter().enumerate() {
            let attach = if i == last { file.take() } else { None };
            if let Err(e) = self.send_one(part, attach).await {
                tracing::warn!(error = %e, "cannot post to Discord");
            }
        }
    }

    async fn send_one(
        &self,
        content: String,
        file: Option<CreateAttachment>,
    ) -> serenity::Result<()> {
        let mut st = self.state.lock().await;
        if let Some(t) = st.thread {
            let mut m = CreateMessage::new().content(content);
            if let Some(f) = file {
                m = m.add_file(f);
            }
            ChannelId::new(t.thread_id)
                .send_message(&*self.http, m)
                .await?;
            return Ok(());
        }
        match &self.origin {
            Origin::Command(i) if !st.responded => {
                let mut b = EditInteractionResponse::new().content(content);
                if let Some(f) = file {
                    b = b.new_attachment(f);
                }
                let msg = i.edit_response(&*self.http, b).await?;
                st.responded = true;
                st.anchor = Some(msg.id);
            }
            Origin::Command(i) => {
                let mut b = CreateInteractionResponseFollowup::new().content(content);
                if let Some(f) = file {
                    b = b.add_file(f);
                }
                i.create_followup(&*self.http, b).await?;
            }
            Origin::Message { .. } | Origin::Component(_) | Origin::Channel => {
                let mut m = CreateMessage::new().content(content);
                if let Some(f) = file {
                    m = m.add_file(f);
                }
                self.channel_id.send_message(&*self.http, m).await?;
            }
        }
        Ok(())
    }

    /// The deploy's thread: this conversation's, the one in the store, or a new one with the
    /// card as its first message. `None` means the card was just created (nothing to edit).
    async fn thread_for(&self, card: &DeployCard) -> Option<(ThreadRef, bool)> {
        if let Some(t) = self.state.lock().await.thread {
            return Some((t, false));
        }
        let stored = match self.store.get_deploy(card.deploy_id).await {
            Ok(d) => d.and_then(|d| d.conversation),
            Err(_) => None,
        };
        if let Some(t) = stored.as_deref().and_then(ThreadRef::parse) {
            self.state.lock().await.thread = Some(t);
            return Some((t, false));
        }
        let t = self.create_thread(card).await?;
        let text = serde_json::to_string(&t).ok()?;
        if stored.is_some() {
            // Another front end (Slack, a terminal) holds this deploy's conversation, on the
            // same store: this thread is ours alone, and theirs stays where it is.
            tracing::info!(
                deploy_id = card.deploy_id,
                "the deploy's conversation lives on another front end; this thread is not kept"
            );
        } else if let Err(e) = self
            .store
            .set_deploy_conversation(card.deploy_id, &text)
            .await
        {
            tracing::warn!(deploy_id = card.deploy_id, error = %e, "cannot keep the thread");
        }
        self.state.lock().await.thread = Some(t);
        Some((t, true))
    }

    async fn create_thread(&self, card: &DeployCard) -> Option<ThreadRef> {
        let name = limits::truncate(&card.title, MAX_THREAD_NAME);
        let anchor = self.state.lock().await.anchor;
        let made = match anchor {
            Some(m) => {
                self.channel_id
                    .create_thread_from_message(&*self.http, m, CreateThread::new(name))
                    .await
            }
            None => {
                self.channel_id
                    .create_thread(
                        &*self.http,
                        CreateThread::new(name).kind(ChannelType::PublicThread),
                    )
                    .await
            }
        };
        // Where threads cannot exist (a DM), the card lives in the channel itself.
        let thread_id = match made {
            Ok(t) => t.id,
            Err(e) => {
                tracing::warn!(deploy_id = card.deploy_id, error = %e, "cannot create a thread; the card goes to the channel");
                self.channel_id
            }
        };
        let msg = thread_id
            .send_message(
                &*self.http,
                CreateMessage::new()
                    .content(card_text(card))
                    .components(button_rows(&card.buttons)),
            )
            .await;
        match msg {
            Ok(m) => Some(ThreadRef {
                platform: PlatformTag::Discord,
                thread_id: thread_id.get(),
                card_message_id: m.id.get(),
            }),
            Err(e) => {
                tracing::warn!(deploy_id = card.deploy_id, error = %e, "cannot post the status card");
                None
            }
        }
    }
}

/// The card as one message: it is edited in place, so it cannot be split.
fn card_text(card: &DeployCard) -> String {
    limits::truncate(&card.text(), MAX_CONTENT)
}

/// Buttons in rows of five; an empty list clears the card's buttons when it is edited.
fn button_rows(buttons: &[Button]) -> Vec<CreateActionRow> {
    limits::rows(buttons)
        .into_iter()
        .map(|row| {
            CreateActionRow::Buttons(
                row.into_iter()
                    .map(|b| {
                        let style = match b.style {
                            "success" => ButtonStyle::Success,
                            "danger" => ButtonStyle::Danger,
                            "secondary" => ButtonStyle::Secondary,
                            _ => ButtonStyle::Primary,
                        };
                        CreateButton::new(b.id)
                            .label(limits::truncate(&b.label, 80))
                            .style(style)
                    })
                    .collect(),
            )
        })
        .collect()
}

#[async_trait::async_trait]
impl Conversation for DiscordConversation {
    /// A new paused DAG: the text plus an Enable button (`dag:enable:<id>`), which the handler
    /// turns into `!dag enable <id> --confirm` as the clicking member.
    async fn announce(&self, a: &Announcement) {
        let button = Button {
            id: a.button_id.clone(),
            label: "Enable".to_string(),
            style: "success",
        };
        let text = limits::truncate(&self.redactor.redact(&a.text), MAX_CONTENT);
        let m = CreateMessage::new()
            .content(text)
            .components(button_rows(std::slice::from_ref(&button)));
        if let Err(e) = self.channel_id.send_message(&*self.http, m).await {
            tracing::warn!(dag_id = %a.dag_id, error = %e, "cannot post the announcement");
        }
    }

    /// A deployed DAG commit: the text plus one Enable button per new DAG it brought (the same
    /// `dag:enable:<id>` buttons as the new-DAG announcements).
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
        let text = limits::truncate(&self.redactor.redact(&a.text), MAX_CONTENT);
        let mut m = CreateMessage::new().content(text);
        if !buttons.is_empty() {
            m = m.components(button_rows(&buttons));
        }
        if let Err(e) = self.channel_id.send_message(&*self.http, m).await {
            tracing::warn!(sha = %a.sha, error = %e, "cannot post the dag-sync announcement");
        }
    }

    async fn post(&self, text: &str) {
        if let Origin::Component(_) = &self.origin {
            let mut st = self.state.lock().await;
            if st.held.hold(text) {
                return;
            }
        }
        self.send(text, None).await;
    }

    async fn post_long(&self, summary: &str, file_name: &str, content: &str) {
        let content = self.redactor.redact(content);
        let whole = format!("{summary}\n{content}");
        if whole.chars().count() <= MAX_CONTENT {
            return self.post(&whole).await;
        }
        // Long output only comes from a step that ran, so the click changed something: what it
        // held back so far is public too.
        if let Origin::Component(_) = &self.origin {
            self.finish_click(false).await;
        }
        let file = CreateAttachment::bytes(content.into_bytes(), file_name.to_string());
        self.send(summary, Some(file)).await;
    }

    async fn deploy_card(&self, card: &DeployCard) {
        // A transition happened: whatever this click said so far is news for everyone.
        if let Origin::Component(_) = &self.origin {
            self.finish_click(false).await;
        }
        let Some((t, created)) = self.thread_for(card).await else {
            return;
        };
        if created {
            return;
        }
        let edit = EditMessage::new()
            .content(card_text(card))
            .components(button_rows(&card.buttons));
        if let Err(e) = ChannelId::new(t.thread_id)
            .edit_message(&*self.http, MessageId::new(t.card_message_id), edit)
            .await
        {
            tracing::warn!(deploy_id = card.deploy_id, error = %e, "cannot edit the status card");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_refs_round_trip_with_exact_ids() {
        let t = ThreadRef {
            platform: PlatformTag::Discord,
            thread_id: 1_234_567_890_123_456_789,
            card_message_id: 42,
        };
        let text = serde_json::to_string(&t).expect("json");
        assert_eq!(
            text,
            r#"{"platform":"discord","thread_id":"1234567890123456789","card_message_id":"42"}"#
        );
        assert_eq!(ThreadRef::parse(&text), Some(t));
        assert_eq!(ThreadRef::parse("console"), None);
    }
}
