//! The front ends' side of the engine: a [`Conversation`] is where the bot's words go. Discord,
//! the console and `exec` each implement it; handlers only ever see this trait.

pub mod console;
pub mod discord;
pub mod exec;

use std::sync::Mutex;

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
    async fn deploy_card(&self, card: &crate::deploy::card::DeployCard) {
        let _ = card;
    }

    /// Announces a new paused DAG. Front ends with buttons show an Enable button whose id is
    /// `announcement.button_id` (`dag:enable:<dag_id>`); the default posts the text, which names
    /// the `!dag enable` command.
    async fn announce(&self, announcement: &crate::watch::Announcement) {
        self.post(&announcement.text).await;
    }

    /// Announces a DAG-folder commit that reached the Airflow host ("Deployed: …"). Front ends
    /// with buttons show one Enable button per new DAG (`enable[i].button_id`); the default
    /// posts the text, which names each `!dag enable` command.
    async fn announce_deployed(&self, announcement: &crate::watch::DeployedAnnouncement) {
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
