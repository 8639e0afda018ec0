//! The conversation port: where the bot's words go. Every front end (Discord, the console,
//! `exec`; the sandbox's console too) implements [`Conversation`]; the engine, the handlers, the
//! deploy workflow and the watchers only ever see this trait and the plain data it carries (a
//! deploy's status card, a new-DAG announcement), never a chat platform's types.

use std::sync::Mutex;

use serde::Serialize;

use crate::backfill::Backfill;
use crate::deploy::state::DeployState;

/// Where the bot posts what it has to say about one command (a channel, a thread, a terminal).
#[async_trait::async_trait]
pub trait Conversation: Send + Sync {
    /// Posts one message. Text is already redacted and within the platform's limits is the
    /// adapter's business (it splits or attaches).
    async fn post(&self, text: &str);

    /// Posts a long text (a plan, a step's output): a summary, plus the whole text where the
    /// platform can attach it as a file. Where it cannot (a terminal), the text follows the
    /// summary.
    async fn post_long(&self, summary: &str, file_name: &str, content: &str) {
        let _ = file_name;
        self.post(&format!("{summary}\n{content}")).await;
    }

    /// Shows the deploy's status card, creating it (and, on Discord, the deploy's thread) the
    /// first time and editing it in place afterwards. Terminals print progress as messages
    /// already, so the default shows nothing.
    async fn deploy_card(&self, card: &DeployCard) {
        let _ = card;
    }

    /// Announces a new paused DAG. Front ends with buttons show an Enable button whose id is
    /// `announcement.button_id` (`dag:enable:<dag_id>`); the default posts the text, which names
    /// the `!dag enable` command.
    async fn announce(&self, announcement: &Announcement) {
        self.post(&announcement.text).await;
    }

    /// Announces a DAG-folder commit that reached the Airflow host ("Deployed: …"). Front ends
    /// with buttons show one Enable button per new DAG (`enable[i].button_id`); the default
    /// posts the text, which names each `!dag enable` command.
    async fn announce_deployed(&self, announcement: &DeployedAnnouncement) {
        self.post(&announcement.text).await;
    }
}

/// A conversation that keeps what was posted; for tests, benchmarks and `exec`'s JSON output.
#[derive(Debug, Default)]
pub struct Transcript {
    messages: Mutex<Vec<String>>,
}

impl Transcript {
    pub fn new() -> Transcript {
        Transcript::default()
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

#[async_trait::async_trait]
impl Conversation for Transcript {
    async fn post(&self, text: &str) {
        match self.messages.lock() {
            Ok(mut m) => m.push(text.to_string()),
            Err(poisoned) => poisoned.into_inner().push(text.to_string()),
        }
    }
}

/// A button on the card; `id` is stable and self-describing (`deploy:approve:7`) so a click is
/// resolved from the store, even after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Button {
    pub id: String,
    pub label: String,
    /// `primary`, `danger`, …: a hint for the platform's styling.
    pub style: &'static str,
}

/// A deploy's status card, built from the store alone (`deploy::card::build`) so any process can
/// redraw it; Discord edits it in place as the workflow moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployCard {
    pub deploy_id: i64,
    /// `deploy catalog v1.2.3 · #42`: also the thread name.
    pub title: String,
    pub lines: Vec<String>,
    /// Empty once the deploy left the waiting state.
    pub buttons: Vec<Button>,
    pub state: DeployState,
}

impl DeployCard {
    pub fn text(&self) -> String {
        let mut s = format!("**{}**", self.title);
        for l in &self.lines {
            s.push('\n');
            s.push_str(l);
        }
        s
    }
}

/// One new paused DAG, with what the Enable action needs (built by the new-DAG announcer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub dag_id: String,
    pub schedule: Option<String>,
    /// How many runs enabling would start, when the DAG catches up.
    pub backfill: Option<Backfill>,
    pub text: String,
    /// The chat command that enables it (`!dag enable <id>`, with `--confirm` for a backfill).
    pub enable_command: String,
    /// The id of the Enable button on chat front ends with buttons.
    pub button_id: String,
}

/// "Enable" for one DAG a deployed commit brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnableAction {
    pub dag_id: String,
    /// `!dag enable <id>`, with `--confirm` when enabling starts a catchup backfill.
    pub command: String,
    /// The button id on front ends with buttons (`dag:enable:<id>`).
    pub button_id: String,
}

/// One "Deployed: <subject> (<sha>)" message of the dag-sync announcer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedAnnouncement {
    pub sha: String,
    pub subject: String,
    pub text: String,
    /// One per new paused DAG the commit brought, in id order.
    pub enable: Vec<EnableAction>,
}
