//! The canonical text of a [`Command`] (`!deploy catalog v1.2.3 --force`), used in replies, thread
//! titles and the audit log.
//!
//! It is the inverse of [`parse()`](super::parse()): parsing the rendered text with the same prefix
//! yields the same command, which the property tests check.

use std::fmt;

use super::{Command, Resolution};

impl Command {
    /// The command as the user would type it with `prefix`.
    pub fn to_text(&self, prefix: &str) -> String {
        let mut text = String::from(prefix);
        // Writing into a String cannot fail.
        let _ = self.write_words(&mut text);
        text
    }

    /// The form's words, its positionals in order, then the options given.
    fn write_words(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let parts = self.parts();
        f.write_str(&parts.form.typed_words())?;
        for value in &parts.args {
            write!(f, " {value}")?;
        }
        for (option, value) in &parts.options {
            write!(f, " {}", option.long)?;
            if let Some(value) = value {
                write!(f, " {value}")?;
            }
        }
        Ok(())
    }
}

/// With the default prefix `!`; use [`Command::to_text`] for another one.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("!")?;
        self.write_words(f)
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resolution::Succeeded => "succeeded",
            Resolution::Failed => "failed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Version;

    fn semver(s: &str) -> Version {
        Version::Semver(s.to_owned())
    }

    #[test]
    fn renders_every_form() {
        let cases = [
            (Command::Help { topic: None }, "!help"),
            (
                Command::Help {
                    topic: Some("deploy".into()),
                },
                "!help deploy",
            ),
            (
                Command::Deploy {
                    target: "catalog".into(),
                    version: semver("v1.2.3"),
                    force: true,
                    when_idle: false,
                    within: None,
                },
                "!deploy catalog v1.2.3 --force",
            ),
            (
                Command::Deploy {
                    target: "catalog".into(),
                    version: semver("v1.2.3"),
                    force: false,
                    when_idle: true,
                    within: crate::command::Within::parse("2h"),
                },
                "!deploy catalog v1.2.3 --when-idle --within 2h",
            ),
            (
                Command::Deploy {
                    target: "catalog".into(),
                    version: Version::Latest,
                    force: false,
                    when_idle: false,
                    within: None,
                },
                "!deploy catalog latest",
            ),
            (
                Command::DeployCheck {
                    target: "catalog".into(),
                    version: Version::Timestamp("2023.07.03.17.52.00".into()),
                },
                "!deploy check catalog 2023.07.03.17.52.00",
            ),
            (Command::DeployApprove { id: 7 }, "!deploy approve 7"),
            (Command::DeployCancel { id: 7 }, "!deploy cancel 7"),
            (Command::DeployStatus { id: None }, "!deploy status"),
            (Command::DeployStatus { id: Some(3) }, "!deploy status 3"),
            (Command::DeployHistory { target: None }, "!deploy history"),
            (
                Command::DeployHistory {
                    target: Some("catalog".into()),
                },
                "!deploy history catalog",
            ),
            (
                Command::DeployResolve {
                    id: 7,
                    resolution: Resolution::Succeeded,
                },
                "!deploy resolve 7 succeeded",
            ),
            (
                Command::DeployResolve {
                    id: 8,
                    resolution: Resolution::Failed,
                },
                "!deploy resolve 8 failed",
            ),
            (
                Command::DeployRollback {
                    target: "catalog".into(),
                },
                "!deploy rollback catalog",
            ),
            (Command::Locks, "!locks"),
            (Command::DagSyncStatus, "!dag-sync status"),
            (Command::AirflowStatus, "!airflow status"),
            (Command::DagsNew { days: None }, "!dags new"),
            (Command::DagsNew { days: Some(7) }, "!dags new --days 7"),
            (
                Command::DagEnable {
                    dag_id: "flickr_workflow".into(),
                    confirm: true,
                },
                "!dag enable flickr_workflow --confirm",
            ),
            (
                Command::DagEnable {
                    dag_id: "flickr_workflow".into(),
                    confirm: false,
                },
                "!dag enable flickr_workflow",
            ),
            (Command::MigrationsStatus, "!migrations status"),
            (
                Command::MigrationsApply {
                    name: "0042_add_index".into(),
                },
                "!migrations apply 0042_add_index",
            ),
            (Command::Audit { limit: None }, "!audit"),
            (Command::Audit { limit: Some(20) }, "!audit 20"),
        ];
        for (command, text) in cases {
            assert_eq!(command.to_string(), text);
        }
    }

    #[test]
    fn to_text_uses_the_given_prefix() {
        assert_eq!(Command::Locks.to_text("?"), "?locks");
        assert_eq!(
            Command::DeployApprove { id: 7 }.to_text(""),
            "deploy approve 7"
        );
    }
}
