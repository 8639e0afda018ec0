//! What a command comes to: an [`Outcome`] (the contract of `exec --json`) and the final message.

use serde::Serialize;

/// The outcomes of interface.md, plus `rate_limited` (an extension: the per-user limit refused it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    AwaitingApproval,
    /// `--when-idle`: the deploy holds the lock and waits for DAG runs; a running bot starts it.
    Waiting,
    Denied,
    Blocked,
    Failed,
    Invalid,
    RateLimited,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::AwaitingApproval,
        Outcome::Waiting,
        Outcome::Denied,
        Outcome::Blocked,
        Outcome::Failed,
        Outcome::Invalid,
        Outcome::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::AwaitingApproval => "awaiting_approval",
            Outcome::Waiting => "waiting",
            Outcome::Denied => "denied",
            Outcome::Blocked => "blocked",
            Outcome::Failed => "failed",
            Outcome::Invalid => "invalid",
            Outcome::RateLimited => "rate_limited",
        }
    }

    /// The process exit code `exec` uses for this outcome.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Ok | Outcome::AwaitingApproval | Outcome::Waiting => 0,
            Outcome::Denied | Outcome::Blocked | Outcome::Failed | Outcome::RateLimited => 1,
            Outcome::Invalid => 2,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The end of one command: its outcome and the message that closes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    pub outcome: Outcome,
    pub message: String,
    pub deploy_id: Option<i64>,
}

impl Reply {
    pub fn new(outcome: Outcome, message: impl Into<String>) -> Reply {
        Reply {
            outcome,
            message: message.into(),
            deploy_id: None,
        }
    }

    pub fn ok(message: impl Into<String>) -> Reply {
        Reply::new(Outcome::Ok, message)
    }

    pub fn with_deploy(mut self, id: i64) -> Reply {
        self.deploy_id = Some(id);
        self
    }
}
