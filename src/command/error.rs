//! Why a message addressed to the bot is not a command: [`ParseError`], whose `Display` is the one
//! sentence the user sees. Every sentence the grammar can say is here, so that its wording is
//! reviewed in one place.

use std::fmt;

use super::forms::command_words;
use super::parse::{MAX_AUDIT_EVENTS, MAX_DAYS, MAX_ECHO_CHARS, MAX_INPUT_CHARS, is_forbidden};

/// Why a message addressed to the bot is not a valid command.
///
/// Variants that show a command carry the prefix so that the sentence uses the configured one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The message is longer than [`MAX_INPUT_CHARS`].
    TooLong { chars: usize },
    /// A control or invisible (format, bidi, zero-width) character; `position` counts characters
    /// from 1.
    ForbiddenCharacter { character: char, position: usize },
    /// The command word is not one of the table's ([`command_words`]).
    UnknownCommand {
        prefix: String,
        word: String,
        suggestion: Option<&'static str>,
    },
    /// The word after a command is not one of its subcommands.
    UnknownSubcommand {
        prefix: String,
        command: &'static str,
        word: String,
        expected: Vec<&'static str>,
        suggestion: Option<&'static str>,
    },
    /// A command with several subcommands was given none.
    MissingSubcommand {
        prefix: String,
        command: &'static str,
        expected: Vec<&'static str>,
    },
    /// `help <topic>` names no command.
    UnknownHelpTopic {
        prefix: String,
        topic: String,
        suggestion: Option<&'static str>,
    },
    /// The target is not configured.
    UnknownTarget {
        target: String,
        known: Vec<String>,
        suggestion: Option<String>,
    },
    /// The version did not validate; `message` is [`Version::parse`](super::Version::parse)'s sentence.
    InvalidVersion { message: String },
    /// A required argument is missing; `usage` is the form without the prefix.
    MissingArgument {
        prefix: String,
        usage: String,
        argument: &'static str,
    },
    /// More arguments than the form takes.
    UnexpectedArgument {
        prefix: String,
        usage: String,
        argument: String,
    },
    /// An option the command does not accept; `accepted` lists the ones it does, with their
    /// dashes (never empty). `command` is the form's words (`dags new`).
    UnknownOption {
        prefix: String,
        command: String,
        option: String,
        accepted: Vec<&'static str>,
    },
    /// An option on a command that takes none.
    NoOptions {
        prefix: String,
        command: String,
        option: String,
    },
    /// A flag was given a value (`--force=yes`).
    OptionTakesNoValue { option: &'static str, token: String },
    /// An option that takes a value (`--days`) without one; `example` is the form with a valid
    /// value, without the prefix.
    MissingOptionValue {
        prefix: String,
        option: &'static str,
        example: String,
    },
    /// The same option twice.
    DuplicateOption { option: &'static str },
    /// Not a positive deploy id; `example` is the form used with a valid id, without the prefix.
    InvalidId {
        prefix: String,
        value: String,
        example: String,
    },
    /// Neither `succeeded` nor `failed`.
    InvalidResolution { prefix: String, value: String },
    /// `--days` outside 1..=365.
    InvalidDays { prefix: String, value: String },
    /// `--within` that is not a duration from a minute to a week.
    InvalidWithin { prefix: String, value: String },
    /// An option given without the one it works with (`--within` without `--when-idle`).
    OptionNeeds {
        prefix: String,
        option: &'static str,
        needs: &'static str,
        example: String,
    },
    /// `audit <n>` outside 1..=500.
    InvalidAuditLimit { prefix: String, value: String },
    /// A DAG id outside `[A-Za-z0-9_.-]{1,250}`; `reason` completes the sentence.
    InvalidDagId { value: String, reason: String },
    /// A migration name that is malformed or could traverse paths; `reason` completes the sentence.
    InvalidMigrationName { value: String, reason: String },
    /// Text typed where everything is meant for the bot (a terminal) that is still not addressed
    /// to it even with the prefix put in front, e.g. `！deploy` with a fullwidth `！`. [`parse`]
    /// never returns it (in a chat channel such text is simply not for the bot).
    NotACommand { prefix: String, text: String },
}

impl std::error::Error for ParseError {}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLong { chars } => write!(
                f,
                "That message is {chars} characters long; commands are at most {MAX_INPUT_CHARS}."
            ),
            ParseError::ForbiddenCharacter {
                character,
                position,
            } => write!(
                f,
                "Character {position} of the message is U+{:04X}, a control or invisible \
                 character; retype the command without it.",
                u32::from(*character)
            ),
            ParseError::UnknownCommand {
                prefix,
                word,
                suggestion: Some(s),
            } => write!(
                f,
                "Unknown command {}. Did you mean `{prefix}{s}`? Try `{prefix}help`.",
                code(&format!("{prefix}{word}"))
            ),
            ParseError::UnknownCommand {
                prefix,
                word,
                suggestion: None,
            } => {
                let words: Vec<String> = command_words()
                    .iter()
                    .map(|w| format!("{prefix}{w}"))
                    .collect();
                write!(
                    f,
                    "Unknown command {}. The commands are {}; try `{prefix}help`.",
                    code(&format!("{prefix}{word}")),
                    listing(&words, "and")
                )
            }
            ParseError::UnknownSubcommand {
                prefix,
                command,
                word,
                expected,
                suggestion,
            } => {
                write!(
                    f,
                    "Unknown subcommand {} for `{prefix}{command}`",
                    code(word)
                )?;
                match suggestion {
                    Some(s) => write!(f, ". Did you mean `{s}`?"),
                    None => write!(f, "; it takes {}.", listing(expected, "or")),
                }
            }
            ParseError::MissingSubcommand {
                prefix,
                command,
                expected,
            } => write!(
                f,
                "`{prefix}{command}` needs a subcommand: {} (see `{prefix}help {command}`).",
                listing(expected, "or")
            ),
            ParseError::UnknownHelpTopic {
                prefix,
                topic,
                suggestion,
            } => {
                write!(
                    f,
                    "There is no command {}",
                    code(&format!("{prefix}{topic}"))
                )?;
                match suggestion {
                    Some(s) => write!(f, ". Did you mean `{prefix}help {s}`?"),
                    None => write!(f, "; `{prefix}help` lists them all."),
                }
            }
            ParseError::UnknownTarget {
                target,
                known,
                suggestion,
            } => {
                write!(f, "Unknown target {}. ", code(target))?;
                if known.is_empty() {
                    write!(f, "No targets are configured.")?;
                } else {
                    write!(f, "Known targets: {}.", listing(known, "and"))?;
                }
                match suggestion {
                    Some(s) => write!(f, " Did you mean `{s}`?"),
                    None => Ok(()),
                }
            }
            ParseError::InvalidVersion { message } => f.write_str(message),
            ParseError::MissingArgument {
                prefix,
                usage,
                argument,
            } => write!(f, "Usage: {prefix}{usage} — missing `{argument}`."),
            ParseError::UnexpectedArgument {
                prefix,
                usage,
                argument,
            } => write!(f, "Usage: {prefix}{usage} — unexpected {}.", code(argument)),
            ParseError::UnknownOption {
                prefix,
                command,
                option,
                accepted,
            } => {
                write!(
                    f,
                    "Unknown option {} for `{prefix}{command}`; it accepts {}.",
                    code(option),
                    listing(accepted, "and")
                )
            }
            ParseError::NoOptions {
                prefix,
                command,
                option,
            } => write!(
                f,
                "`{prefix}{command}` takes no options, but got {}.",
                code(option)
            ),
            ParseError::OptionTakesNoValue { option, token } => {
                write!(
                    f,
                    "Option `{option}` takes no value, but got {}.",
                    code(token)
                )
            }
            ParseError::MissingOptionValue {
                prefix,
                option,
                example,
            } => write!(
                f,
                "Option `{option}` needs a value, e.g. `{prefix}{example}`."
            ),
            ParseError::DuplicateOption { option } => {
                write!(f, "Option `{option}` is given more than once.")
            }
            ParseError::InvalidId {
                prefix,
                value,
                example,
            } => write!(
                f,
                "{} is not a deploy id: use the number shown by `{prefix}deploy status`, \
                 e.g. `{prefix}{example}`.",
                code(value)
            ),
            ParseError::InvalidResolution { prefix, value } => write!(
                f,
                "{} is not a resolution: use `succeeded` or `failed`, \
                 e.g. `{prefix}deploy resolve 7 succeeded`.",
                code(value)
            ),
            ParseError::InvalidDays { prefix, value } => write!(
                f,
                "{} is not a number of days: use a whole number from 1 to {MAX_DAYS}, \
                 e.g. `{prefix}dags new --days 7`.",
                code(value)
            ),
            ParseError::InvalidWithin { prefix, value } => write!(
                f,
                "{} is not a waiting time: use a duration from 1m to 7d such as 30m, 6h or 2d, \
                 e.g. `{prefix}deploy catalog v1.2.3 --when-idle --within 6h`.",
                code(value)
            ),
            ParseError::OptionNeeds {
                prefix,
                option,
                needs,
                example,
            } => write!(
                f,
                "Option `{option}` only works together with `{needs}`, e.g. `{prefix}{example}`."
            ),
            ParseError::InvalidAuditLimit { prefix, value } => write!(
                f,
                "{} is not a number of audit events: use a whole number from 1 to \
                 {MAX_AUDIT_EVENTS}, e.g. `{prefix}audit 20`.",
                code(value)
            ),
            ParseError::InvalidDagId { value, reason } => {
                write!(f, "{} is not a DAG id: {reason}.", code(value))
            }
            ParseError::InvalidMigrationName { value, reason } => {
                write!(f, "{} is not a migration name: {reason}.", code(value))
            }
            ParseError::NotACommand { prefix, text } if text.trim().is_empty() => {
                write!(f, "An empty message is not a command; try `{prefix}help`.")
            }
            ParseError::NotACommand { prefix, text } => write!(
                f,
                "{} is not a command: a command is `{prefix}` and a command word, \
                 e.g. `{prefix}help`.",
                code(text.trim())
            ),
        }
    }
}

/// User input as an inline code span: shortened, with backticks replaced so that it cannot
/// close the span and format the rest of the sentence, and invisible characters (a bidi override
/// would reverse the rest of the reply) shown as U+FFFD.
pub(crate) fn code(s: &str) -> String {
    let mut shown: String = s
        .chars()
        .take(MAX_ECHO_CHARS)
        .map(|c| match c {
            '`' => '\'',
            c if is_forbidden(c) => '\u{FFFD}',
            c => c,
        })
        .collect();
    if s.chars().count() > MAX_ECHO_CHARS {
        shown.push('…');
    }
    format!("`{shown}`")
}

/// `` `a`, `b` and `c` ``.
fn listing<S: AsRef<str>>(items: &[S], conjunction: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{}`", s.as_ref())).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} {conjunction} {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::check_characters;

    #[test]
    fn errors_are_std_errors() {
        fn takes_error(_: &dyn std::error::Error) {}
        takes_error(&ParseError::DuplicateOption { option: "--force" });
    }

    #[test]
    fn echoed_input_never_carries_invisible_characters() {
        // A bidi override quoted back would reverse the rest of the reply.
        assert_eq!(code("a\u{202E}b\u{200B}`"), "`a\u{FFFD}b\u{FFFD}'`");
        let e = ParseError::NotACommand {
            prefix: "!".into(),
            text: "\u{FF01}deploy catalog v1.2.3".into(),
        };
        assert_eq!(
            e.to_string(),
            "`\u{FF01}deploy catalog v1.2.3` is not a command: a command is `!` and a command \
             word, e.g. `!help`."
        );
        let empty = ParseError::NotACommand {
            prefix: "!".into(),
            text: "  ".into(),
        };
        assert_eq!(
            empty.to_string(),
            "An empty message is not a command; try `!help`."
        );
        assert_eq!(check_characters("!deploy catalog v1.2.3"), Ok(()));
        assert_eq!(
            check_characters("!x\0"),
            Err(ParseError::ForbiddenCharacter {
                character: '\0',
                position: 3
            })
        );
    }
}
