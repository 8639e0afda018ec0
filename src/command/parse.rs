//! The parser: message text → [`Command`], or a [`ParseError`] (see `error.rs`) whose `Display` is
//! the one sentence the user sees.
//!
//! The grammar itself is the table in `forms.rs`: this file finds the message's form there, checks
//! its options and hands the words to the form's `build`, which checks them with the typed readers
//! of [`Args`].
//!
//! It is total: any string, however long or strange, yields a value and never a panic, because
//! it is fed raw chat messages.

use super::error::{ParseError, code};
use super::forms::{self, ArgKind, Form, Opt};
use super::help::normalize_topic;
use super::{Command, Resolution, Version};
use crate::suggest;

/// The longest message, in characters, that is parsed at all.
pub const MAX_INPUT_CHARS: usize = 2000;

const MAX_DAG_ID_CHARS: usize = 250;
const MAX_MIGRATION_CHARS: usize = 200;
pub(super) const MAX_DAYS: u32 = 365;
pub(super) const MAX_AUDIT_EVENTS: u32 = 500;
/// Echoed user input is cut here so that an error never repeats a whole pasted essay.
pub(super) const MAX_ECHO_CHARS: usize = 60;

/// What the parser needs to know about the deployment it runs in.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext<'a> {
    /// The command prefix, `!` by default. An empty prefix disables prefix addressing, so that a
    /// misconfiguration cannot make the bot answer every message in a channel.
    pub prefix: &'a str,
    /// The bot's own user id: a message starting with its mention is addressed to it.
    pub bot_user_id: Option<u64>,
    /// The configured deploy targets, matched case-sensitively.
    pub targets: &'a [String],
    /// Per target, the tag templates a version may also be typed as (its `release_tag` and
    /// `image_tag`); a target not listed takes bare versions only.
    pub version_tags: &'a [(String, Vec<String>)],
}

/// Control characters other than tab and line breaks, and the invisible ones that can make a
/// message read differently from what it does (zero-width, bidi overrides, BOM).
pub(super) fn is_forbidden(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        || matches!(
            c,
            '\u{AD}'
                | '\u{61C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}
/// Parses one chat message.
///
/// `Ok(None)`: the message is not addressed to the bot (neither the prefix directly followed by a
/// word nor the bot's mention), and front ends ignore it. A bare mention asks for help.
pub fn parse(text: &str, ctx: &ParseContext) -> Result<Option<Command>, ParseError> {
    let Some(rest) = addressed(text, ctx) else {
        return Ok(None);
    };
    check_characters(text)?;
    let mut words = rest.split_whitespace();
    let Some(word) = words.next() else {
        return Ok(Some(Command::Help { topic: None }));
    };
    let tokens = Tokens::split(words);
    Parser { ctx, tokens }.command(word).map(Some)
}

/// The checks on a whole message before any word of it is read: its length, and no control or
/// invisible character anywhere in it.
pub fn check_characters(text: &str) -> Result<(), ParseError> {
    let chars = text.chars().count();
    if chars > MAX_INPUT_CHARS {
        return Err(ParseError::TooLong { chars });
    }
    match text.chars().enumerate().find(|&(_, c)| is_forbidden(c)) {
        Some((index, character)) => Err(ParseError::ForbiddenCharacter {
            character,
            position: index + 1,
        }),
        None => Ok(()),
    }
}

/// The text after the prefix or the mention, if the message is addressed to the bot.
fn addressed<'t>(text: &'t str, ctx: &ParseContext) -> Option<&'t str> {
    let text = text.trim_start();
    if let Some(rest) = ctx.bot_user_id.and_then(|id| strip_mention(text, id)) {
        let rest = rest.trim_start();
        return Some(match rest.strip_prefix(ctx.prefix) {
            Some(after) if !ctx.prefix.is_empty() => after,
            _ => rest,
        });
    }
    if ctx.prefix.is_empty() {
        return None;
    }
    // `!!!` or `! nice` is chat, not a command: the prefix must touch a word.
    let rest = text.strip_prefix(ctx.prefix)?;
    rest.chars()
        .next()
        .is_some_and(char::is_alphabetic)
        .then_some(rest)
}

/// `<@ID>` or `<@!ID>` at the start of `text` with ID == `id`: the text after it.
fn strip_mention(text: &str, id: u64) -> Option<&str> {
    let rest = text.strip_prefix("<@")?;
    let rest = rest.strip_prefix('!').unwrap_or(rest);
    let (digits, after) = rest.split_once('>')?;
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().ok() == Some(id);
    ok.then_some(after)
}

/// An option token: `--name`, `--name=value`, or `--name value` for options that take a value.
struct RawOption<'t> {
    /// As typed, up to any `=`, for messages.
    typed: &'t str,
    /// The whole token, for messages about values.
    token: &'t str,
    name: String,
    value: Option<&'t str>,
}

/// The words after the command word, split into positionals and options.
struct Tokens<'t> {
    positionals: Vec<&'t str>,
    options: Vec<RawOption<'t>>,
}

impl<'t> Tokens<'t> {
    fn split(words: impl Iterator<Item = &'t str>) -> Tokens<'t> {
        let mut words = words.peekable();
        let mut tokens = Tokens {
            positionals: Vec::new(),
            options: Vec::new(),
        };
        while let Some(token) = words.next() {
            let Some(body) = token.strip_prefix("--") else {
                tokens.positionals.push(token);
                continue;
            };
            let (name, mut value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let name = name.to_ascii_lowercase();
            // Only an option that takes a value (`--days 7`) may take the next token; after a
            // flag, a positional stays a positional.
            if value.is_none() && forms::takes_value(&name) {
                value = words.next_if(|next| !next.starts_with("--"));
            }
            let typed = token.split_once('=').map_or(token, |(typed, _)| typed);
            tokens.options.push(RawOption {
                typed,
                token,
                name,
                value,
            });
        }
        tokens
    }
}

struct Parser<'c, 't> {
    ctx: &'c ParseContext<'c>,
    tokens: Tokens<'t>,
}

impl<'c, 't> Parser<'c, 't> {
    fn prefix(&self) -> String {
        self.ctx.prefix.to_owned()
    }

    fn command(self, word: &str) -> Result<Command, ParseError> {
        let lower = word.to_ascii_lowercase();
        let (form, used) = self.form(word, &lower)?;
        let options = self.options(form)?;
        let mut args = Args {
            ctx: self.ctx,
            form,
            rest: self.tokens.positionals.get(used..).unwrap_or_default(),
            next: 0,
            options,
            target: None,
        };
        let command = (form.build)(&mut args)?;
        args.finish()?;
        Ok(command)
    }

    /// The form the words select, and how many positionals its subcommand used. A subcommand wins
    /// over a target of the same name.
    fn form(&self, word: &str, lower: &str) -> Result<(&'static Form, usize), ParseError> {
        let mut bare = None;
        let mut subs: Vec<&'static Form> = Vec::new();
        for form in forms::forms_of(lower) {
            match form.subcommand() {
                None => bare = Some(form),
                Some(_) => subs.push(form),
            }
        }
        if subs.is_empty() {
            return bare
                .map(|form| (form, 0))
                .ok_or_else(|| ParseError::UnknownCommand {
                    prefix: self.prefix(),
                    word: word.to_owned(),
                    suggestion: suggest::did_you_mean(lower, forms::command_words()),
                });
        }
        let command = subs[0].command_word();
        let names: Vec<&'static str> = subs.iter().filter_map(|f| f.subcommand()).collect();
        let Some(&first) = self.tokens.positionals.first() else {
            return Err(match (bare, subs.as_slice()) {
                (Some(form), _) => match form.args.first() {
                    // Neither a subcommand nor the form's own first argument: that is missing.
                    Some(arg) if !arg.optional => ParseError::MissingArgument {
                        prefix: self.prefix(),
                        usage: form.usage(),
                        argument: arg.kind.placeholder(),
                    },
                    _ => return Ok((form, 0)),
                },
                (None, [only]) => ParseError::MissingArgument {
                    prefix: self.prefix(),
                    usage: only.usage(),
                    argument: only.subcommand().unwrap_or_default(),
                },
                (None, _) => ParseError::MissingSubcommand {
                    prefix: self.prefix(),
                    command,
                    expected: names,
                },
            });
        };
        let typed = first.to_ascii_lowercase();
        if let Some(form) = subs.iter().find(|f| f.subcommand() == Some(typed.as_str())) {
            return Ok((form, 1));
        }
        let unknown_subcommand = |suggestion| ParseError::UnknownSubcommand {
            prefix: self.prefix(),
            command,
            word: first.to_owned(),
            expected: names.clone(),
            suggestion,
        };
        let Some(form) = bare else {
            return Err(unknown_subcommand(suggest::did_you_mean(
                first,
                names.iter().copied(),
            )));
        };
        if form.args.first().map(|a| a.kind) != Some(ArgKind::Target)
            || self.ctx.targets.iter().any(|t| t == first)
        {
            return Ok((form, 0));
        }
        // Neither a subcommand nor a target: suggest whichever of the two is nearer.
        let sub = suggest::closest(first, names.iter().copied());
        let target = suggest::closest(first, self.ctx.targets.iter().map(String::as_str));
        match (sub, target) {
            (Some(s), t) if t.is_none_or(|t| s.distance < t.distance) => {
                Err(unknown_subcommand(Some(s.candidate)))
            }
            _ => Err(unknown_target(self.ctx, first)),
        }
    }

    /// The options given, checked against the form's: known, with a value exactly when they take
    /// one, at most once each.
    fn options(
        &self,
        form: &'static Form,
    ) -> Result<Vec<(&'static Opt, Option<&'t str>)>, ParseError> {
        let mut given: Vec<(&'static Opt, Option<&'t str>)> = Vec::new();
        for raw in &self.tokens.options {
            let Some(option) = form.options.iter().find(|o| o.name() == raw.name) else {
                return Err(if form.options.is_empty() {
                    ParseError::NoOptions {
                        prefix: self.prefix(),
                        command: form.typed_words(),
                        option: raw.typed.to_owned(),
                    }
                } else {
                    ParseError::UnknownOption {
                        prefix: self.prefix(),
                        command: form.typed_words(),
                        option: raw.typed.to_owned(),
                        accepted: form.options.iter().map(|o| o.long).collect(),
                    }
                });
            };
            match (option.value, raw.value) {
                (None, Some(_)) => {
                    return Err(ParseError::OptionTakesNoValue {
                        option: option.long,
                        token: raw.token.to_owned(),
                    });
                }
                (Some(_), None) => {
                    return Err(ParseError::MissingOptionValue {
                        prefix: self.prefix(),
                        option: option.long,
                        example: form.option_example(option),
                    });
                }
                _ => {}
            }
            if given.iter().any(|(o, _)| o.long == option.long) {
                return Err(ParseError::DuplicateOption {
                    option: option.long,
                });
            }
            given.push((option, raw.value));
        }
        for (option, _) in &given {
            if let Some(needs) = option.requires
                && !given.iter().any(|(o, _)| o.long == needs.long)
            {
                return Err(ParseError::OptionNeeds {
                    prefix: self.prefix(),
                    option: option.long,
                    needs: needs.long,
                    example: format!(
                        "{} {} {}",
                        form.example(),
                        needs.usage(),
                        option.value.map_or(option.long.to_owned(), |v| format!(
                            "{} {}",
                            option.long, v.example
                        ))
                    ),
                });
            }
        }
        Ok(given)
    }
}

fn unknown_target(ctx: &ParseContext, typed: &str) -> ParseError {
    let targets = ctx.targets;
    ParseError::UnknownTarget {
        target: typed.to_owned(),
        known: targets.to_vec(),
        suggestion: suggest::did_you_mean(typed, targets.iter().map(String::as_str))
            .map(str::to_owned),
    }
}

/// What a form's `build` reads: the positionals after the command words, left to right, each
/// checked by the reader of its kind, and the options given.
pub(crate) struct Args<'c, 't> {
    ctx: &'c ParseContext<'c>,
    form: &'static Form,
    rest: &'c [&'t str],
    /// The index of the next positional (and of its declaration in `form.args`).
    next: usize,
    options: Vec<(&'static Opt, Option<&'t str>)>,
    /// The target read so far: a version after it may be typed as that target's tag.
    target: Option<String>,
}

impl<'t> Args<'_, 't> {
    fn prefix(&self) -> String {
        self.ctx.prefix.to_owned()
    }

    /// The next positional, which the form declares to be of `kind`.
    fn optional(&mut self, kind: ArgKind) -> Option<&'t str> {
        debug_assert_eq!(
            self.form.args.get(self.next).map(|a| a.kind),
            Some(kind),
            "{} reads its arguments in another order than its row declares",
            self.form.name
        );
        let word = self.rest.get(self.next).copied();
        self.next += 1;
        word
    }

    fn required(&mut self, kind: ArgKind) -> Result<&'t str, ParseError> {
        self.optional(kind)
            .ok_or_else(|| ParseError::MissingArgument {
                prefix: self.prefix(),
                usage: self.form.usage(),
                argument: kind.placeholder(),
            })
    }

    /// Every positional has been read: one more is an error.
    fn finish(&self) -> Result<(), ParseError> {
        match self.rest.get(self.next) {
            None => Ok(()),
            Some(extra) => Err(ParseError::UnexpectedArgument {
                prefix: self.prefix(),
                usage: self.form.usage(),
                argument: (*extra).to_owned(),
            }),
        }
    }

    /// Whether the flag was given.
    pub(crate) fn flag(&self, option: &Opt) -> bool {
        self.value_of(option).is_some()
    }

    fn value_of(&self, option: &Opt) -> Option<Option<&'t str>> {
        self.options
            .iter()
            .find(|(o, _)| o.long == option.long)
            .map(|(_, v)| *v)
    }

    pub(crate) fn target(&mut self) -> Result<String, ParseError> {
        let typed = self.required(ArgKind::Target)?;
        let target = self.check_target(typed)?;
        self.target = Some(target.clone());
        Ok(target)
    }

    pub(crate) fn optional_target(&mut self) -> Result<Option<String>, ParseError> {
        self.optional(ArgKind::Target)
            .map(|t| self.check_target(t))
            .transpose()
    }

    fn check_target(&self, typed: &str) -> Result<String, ParseError> {
        if self.ctx.targets.iter().any(|t| t == typed) {
            Ok(typed.to_owned())
        } else {
            Err(unknown_target(self.ctx, typed))
        }
    }

    pub(crate) fn version(&mut self) -> Result<Version, ParseError> {
        let typed = self.required(ArgKind::Version)?;
        let templates: Vec<&str> = self
            .ctx
            .version_tags
            .iter()
            .filter(|(t, _)| Some(t) == self.target.as_ref())
            .flat_map(|(_, templates)| templates.iter().map(String::as_str))
            .collect();
        Version::parse_tagged(typed, &templates)
            .map_err(|message| ParseError::InvalidVersion { message })
    }

    pub(crate) fn id(&mut self) -> Result<i64, ParseError> {
        let typed = self.required(ArgKind::Id)?;
        self.parse_id(typed)
    }

    pub(crate) fn optional_id(&mut self) -> Result<Option<i64>, ParseError> {
        self.optional(ArgKind::Id)
            .map(|typed| self.parse_id(typed))
            .transpose()
    }

    /// A positive deploy id, `7` or `#7`.
    fn parse_id(&self, typed: &str) -> Result<i64, ParseError> {
        let digits = typed.strip_prefix('#').unwrap_or(typed);
        // `i64::from_str` would also take `+7`; only plain digits are an id.
        let id = digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse::<i64>().ok())
            .flatten()
            .filter(|id| *id > 0);
        id.ok_or_else(|| ParseError::InvalidId {
            prefix: self.prefix(),
            value: typed.to_owned(),
            example: self.form.example(),
        })
    }

    pub(crate) fn resolution(&mut self) -> Result<Resolution, ParseError> {
        let typed = self.required(ArgKind::Resolution)?;
        match typed.to_ascii_lowercase().as_str() {
            "succeeded" => Ok(Resolution::Succeeded),
            "failed" => Ok(Resolution::Failed),
            _ => Err(ParseError::InvalidResolution {
                prefix: self.prefix(),
                value: typed.to_owned(),
            }),
        }
    }

    pub(crate) fn dag_id(&mut self) -> Result<String, ParseError> {
        dag_id(self.required(ArgKind::DagId)?)
    }

    pub(crate) fn migration_name(&mut self) -> Result<String, ParseError> {
        migration_name(self.required(ArgKind::MigrationName)?)
    }

    /// `help <topic>`: a command word, with or without the prefix, in any case.
    pub(crate) fn help_topic(&mut self) -> Result<Option<String>, ParseError> {
        let Some(typed) = self.optional(ArgKind::HelpTopic) else {
            return Ok(None);
        };
        let topic = normalize_topic(typed, self.ctx.prefix);
        let words = forms::command_words();
        if words.contains(&topic.as_str()) {
            return Ok(Some(topic));
        }
        Err(ParseError::UnknownHelpTopic {
            prefix: self.prefix(),
            suggestion: suggest::did_you_mean(&topic, words),
            topic,
        })
    }

    pub(crate) fn audit_limit(&mut self) -> Result<Option<u32>, ParseError> {
        self.optional(ArgKind::AuditLimit)
            .map(|n| {
                bounded(n, MAX_AUDIT_EVENTS).ok_or_else(|| ParseError::InvalidAuditLimit {
                    prefix: self.prefix(),
                    value: n.to_owned(),
                })
            })
            .transpose()
    }

    /// `--within <duration>`: how long a `--when-idle` deploy may wait.
    pub(crate) fn within(&self, option: &Opt) -> Result<Option<super::Within>, ParseError> {
        self.value_of(option)
            .flatten()
            .map(|w| {
                super::Within::parse(w).ok_or_else(|| ParseError::InvalidWithin {
                    prefix: self.prefix(),
                    value: w.to_owned(),
                })
            })
            .transpose()
    }

    /// `--days N`: a whole number of days in `1..=365`.
    pub(crate) fn days(&self, option: &Opt) -> Result<Option<u32>, ParseError> {
        self.value_of(option)
            .flatten()
            .map(|d| {
                bounded(d, MAX_DAYS).ok_or_else(|| ParseError::InvalidDays {
                    prefix: self.prefix(),
                    value: d.to_owned(),
                })
            })
            .transpose()
    }
}

/// A whole number in `1..=max`, digits only.
fn bounded(typed: &str, max: u32) -> Option<u32> {
    if typed.is_empty() || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    typed.parse::<u32>().ok().filter(|n| (1..=max).contains(n))
}

/// Why `s` is not made of `[A-Za-z0-9_.-]` within `max` characters, if it is not.
fn charset_problem(s: &str, max: usize) -> Option<String> {
    let chars = s.chars().count();
    if chars > max {
        return Some(format!("it is {chars} characters long, at most {max}"));
    }
    s.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .map(|c| {
            format!(
                "{} is not allowed; use letters, digits, `_`, `.` and `-`",
                code(&c.to_string())
            )
        })
}

fn dag_id(typed: &str) -> Result<String, ParseError> {
    // An id of only dots would be a `.` or `..` segment in Airflow API URLs.
    let reason = charset_problem(typed, MAX_DAG_ID_CHARS).or_else(|| {
        typed
            .bytes()
            .all(|b| b == b'.')
            .then(|| "it is only dots".to_owned())
    });
    match reason {
        None => Ok(typed.to_owned()),
        Some(reason) => Err(ParseError::InvalidDagId {
            value: typed.to_owned(),
            reason,
        }),
    }
}

fn migration_name(typed: &str) -> Result<String, ParseError> {
    // The name may become a path or an argv element: no traversal, and nothing an option
    // parser could take for a flag.
    let reason = charset_problem(typed, MAX_MIGRATION_CHARS).or_else(|| {
        if typed.starts_with('.') {
            Some("it must not start with `.`".to_owned())
        } else if typed.contains("..") {
            Some("it must not contain `..`".to_owned())
        } else if typed.starts_with('-') {
            Some("it must not start with `-`".to_owned())
        } else {
            None
        }
    });
    match reason {
        None => Ok(typed.to_owned()),
        Some(reason) => Err(ParseError::InvalidMigrationName {
            value: typed.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BOT: u64 = 123;

    fn targets() -> Vec<String> {
        vec!["catalog".to_owned()]
    }

    fn run(text: &str) -> Result<Option<Command>, ParseError> {
        let targets = targets();
        let ctx = ParseContext {
            prefix: "!",
            bot_user_id: Some(BOT),
            targets: &targets,
            version_tags: &[],
        };
        parse(text, &ctx)
    }

    fn ok(text: &str) -> Command {
        match run(text) {
            Ok(Some(command)) => command,
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    fn err(text: &str) -> String {
        match run(text) {
            Err(e) => e.to_string(),
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    fn deploy(version: &str, force: bool) -> Command {
        Command::Deploy {
            target: "catalog".into(),
            version: Version::Semver(version.into()),
            force,
            when_idle: false,
            within: None,
        }
    }

    #[test]
    fn every_form_parses() {
        let cases = [
            ("!help", Command::Help { topic: None }),
            (
                "!help deploy",
                Command::Help {
                    topic: Some("deploy".into()),
                },
            ),
            (
                "!help !DAG-SYNC",
                Command::Help {
                    topic: Some("dag-sync".into()),
                },
            ),
            ("!deploy catalog v1.2.3", deploy("v1.2.3", false)),
            ("!deploy catalog 0.4.1 --force", deploy("0.4.1", true)),
            (
                "!deploy catalog latest",
                Command::Deploy {
                    target: "catalog".into(),
                    version: Version::Latest,
                    force: false,
                    when_idle: false,
                    within: None,
                },
            ),
            (
                "!deploy catalog v1.2.3 --when-idle --within 90m",
                Command::Deploy {
                    target: "catalog".into(),
                    version: Version::Semver("v1.2.3".into()),
                    force: false,
                    when_idle: true,
                    within: super::super::Within::parse("1h30m"),
                },
            ),
            (
                "!deploy check catalog 2023.07.03.17.52.00",
                Command::DeployCheck {
                    target: "catalog".into(),
                    version: Version::Timestamp("2023.07.03.17.52.00".into()),
                },
            ),
            ("!deploy approve 7", Command::DeployApprove { id: 7 }),
            ("!deploy cancel #7", Command::DeployCancel { id: 7 }),
            ("!deploy status", Command::DeployStatus { id: None }),
            ("!deploy status #12", Command::DeployStatus { id: Some(12) }),
            ("!deploy history", Command::DeployHistory { target: None }),
            (
                "!deploy history catalog",
                Command::DeployHistory {
                    target: Some("catalog".into()),
                },
            ),
            (
                "!deploy resolve 7 succeeded",
                Command::DeployResolve {
                    id: 7,
                    resolution: Resolution::Succeeded,
                },
            ),
            (
                "!deploy resolve #8 FAILED",
                Command::DeployResolve {
                    id: 8,
                    resolution: Resolution::Failed,
                },
            ),
            (
                "!deploy rollback catalog",
                Command::DeployRollback {
                    target: "catalog".into(),
                },
            ),
            ("!locks", Command::Locks),
            ("!dag-sync status", Command::DagSyncStatus),
            ("!airflow status", Command::AirflowStatus),
            ("!dags new", Command::DagsNew { days: None }),
            ("!dags new --days 7", Command::DagsNew { days: Some(7) }),
            ("!dags new --days=365", Command::DagsNew { days: Some(365) }),
            (
                "!dag enable flickr_workflow",
                Command::DagEnable {
                    dag_id: "flickr_workflow".into(),
                    confirm: false,
                },
            ),
            (
                "!dag enable flickr_workflow --confirm",
                Command::DagEnable {
                    dag_id: "flickr_workflow".into(),
                    confirm: true,
                },
            ),
            ("!migrations status", Command::MigrationsStatus),
            (
                "!migrations apply 0042_add-index.v2",
                Command::MigrationsApply {
                    name: "0042_add-index.v2".into(),
                },
            ),
            ("!audit", Command::Audit { limit: None }),
            ("!audit 20", Command::Audit { limit: Some(20) }),
            ("!audit 500", Command::Audit { limit: Some(500) }),
        ];
        for (text, expected) in cases {
            assert_eq!(run(text), Ok(Some(expected)), "{text}");
        }
    }

    #[test]
    fn command_words_are_case_insensitive_but_targets_are_not() {
        assert_eq!(ok("!DePlOy catalog v1.2.3"), deploy("v1.2.3", false));
        assert_eq!(ok("!DEPLOY STATUS"), Command::DeployStatus { id: None });
        assert!(err("!deploy CATALOG v1.2.3").starts_with("Unknown target `CATALOG`."));
    }

    #[test]
    fn not_addressed_is_none() {
        for text in [
            "",
            "   ",
            "deploy catalog v1.2.3",
            "hello !deploy",
            "!",
            "!!!",
            "! deploy catalog v1.2.3",
            "!1",
            "<@999> deploy catalog v1.2.3",
            "<@12> locks",
            "<@1234> locks",
            "<@abc> locks",
            "<@123 locks",
            "<@&123> locks",
            "@123 locks",
        ] {
            assert_eq!(run(text), Ok(None), "{text:?}");
        }
        let targets = targets();
        let no_prefix = ParseContext {
            prefix: "",
            bot_user_id: None,
            targets: &targets,
            version_tags: &[],
        };
        assert_eq!(parse("locks", &no_prefix), Ok(None));
        assert_eq!(parse("<@123> locks", &no_prefix), Ok(None));
    }

    #[test]
    fn a_mention_addresses_the_bot_with_or_without_the_prefix() {
        for text in [
            "<@123> deploy catalog v1.2.3",
            "<@!123> deploy catalog v1.2.3",
            "<@123> !deploy catalog v1.2.3",
            "  <@123>deploy catalog v1.2.3",
            "<@123>\n!deploy\tcatalog  v1.2.3",
        ] {
            assert_eq!(run(text), Ok(Some(deploy("v1.2.3", false))), "{text:?}");
        }
        assert_eq!(run("<@123>"), Ok(Some(Command::Help { topic: None })));
        assert_eq!(run("<@123> !"), Ok(Some(Command::Help { topic: None })));
        let targets = targets();
        let mention_only = ParseContext {
            prefix: "",
            bot_user_id: Some(BOT),
            targets: &targets,
            version_tags: &[],
        };
        assert_eq!(
            parse("<@123> locks", &mention_only),
            Ok(Some(Command::Locks))
        );
    }

    #[test]
    fn other_prefixes() {
        let targets = targets();
        let ctx = ParseContext {
            prefix: "cc ",
            bot_user_id: None,
            targets: &targets,
            version_tags: &[],
        };
        assert_eq!(parse("cc locks", &ctx), Ok(Some(Command::Locks)));
        assert_eq!(parse("!locks", &ctx), Ok(None));
        let ctx = ParseContext {
            prefix: "é",
            bot_user_id: None,
            targets: &targets,
            version_tags: &[],
        };
        assert_eq!(parse("élocks", &ctx), Ok(Some(Command::Locks)));
        assert_eq!(
            parse("édeplyo", &ctx).map_err(|e| e.to_string()),
            Err("Unknown command `édeplyo`. Did you mean `édeploy`? Try `éhelp`.".to_owned())
        );
    }

    #[test]
    fn whitespace_and_option_position_do_not_matter() {
        for text in [
            "  !deploy   catalog\tv1.2.3 --force  ",
            "!deploy --force catalog v1.2.3",
            "!deploy catalog --force v1.2.3",
            "!deploy\ncatalog\r\nv1.2.3\n--FORCE",
            "!deploy\u{a0}catalog\u{3000}v1.2.3 --force",
        ] {
            assert_eq!(run(text), Ok(Some(deploy("v1.2.3", true))), "{text:?}");
        }
        assert_eq!(ok("!dags --days 3 new"), Command::DagsNew { days: Some(3) });
        assert_eq!(
            ok("!dag --confirm enable x.y-z"),
            Command::DagEnable {
                dag_id: "x.y-z".into(),
                confirm: true
            }
        );
    }

    #[test]
    fn unknown_command_suggests_the_nearest_word() {
        assert_eq!(
            err("!deplyo catalog v1.2.3"),
            "Unknown command `!deplyo`. Did you mean `!deploy`? Try `!help`."
        );
        assert_eq!(
            err("!lock"),
            "Unknown command `!lock`. Did you mean `!locks`? Try `!help`."
        );
        assert_eq!(
            err("!frobnicate"),
            "Unknown command `!frobnicate`. The commands are `!help`, `!deploy`, `!locks`, \
             `!dag-sync`, `!airflow`, `!dags`, `!dag`, `!migrations` and `!audit`; try `!help`."
        );
        assert_eq!(
            err("<@123> thanks!"),
            "Unknown command `!thanks!`. The commands are `!help`, `!deploy`, `!locks`, \
             `!dag-sync`, `!airflow`, `!dags`, `!dag`, `!migrations` and `!audit`; try `!help`."
        );
    }

    #[test]
    fn unknown_subcommand_suggests_the_nearest() {
        assert_eq!(
            err("!deploy stauts 3"),
            "Unknown subcommand `stauts` for `!deploy`. Did you mean `status`?"
        );
        assert_eq!(
            err("!dag-sync stats"),
            "Unknown subcommand `stats` for `!dag-sync`. Did you mean `status`?"
        );
        assert_eq!(
            err("!migrations run 0042"),
            "Unknown subcommand `run` for `!migrations`; it takes `status` or `apply`."
        );
        assert_eq!(
            err("!dags old"),
            "Unknown subcommand `old` for `!dags`; it takes `new`."
        );
        assert_eq!(
            err("!migrations"),
            "`!migrations` needs a subcommand: `status` or `apply` (see `!help migrations`)."
        );
        assert_eq!(
            err("!airflow"),
            "Usage: !airflow status — missing `status`."
        );
    }

    #[test]
    fn unknown_target_lists_the_known_ones() {
        assert_eq!(
            err("!deploy catalgo v1.2.3"),
            "Unknown target `catalgo`. Known targets: `catalog`. Did you mean `catalog`?"
        );
        assert_eq!(
            err("!deploy api v1.2.3"),
            "Unknown target `api`. Known targets: `catalog`."
        );
        assert_eq!(
            err("!deploy Catalog v1.2.3"),
            "Unknown target `Catalog`. Known targets: `catalog`. Did you mean `catalog`?"
        );
        assert_eq!(
            err("!deploy history api"),
            "Unknown target `api`. Known targets: `catalog`."
        );
        assert_eq!(
            err("!deploy check api v1.2.3"),
            "Unknown target `api`. Known targets: `catalog`."
        );
        assert_eq!(
            err("!deploy rollback api"),
            "Unknown target `api`. Known targets: `catalog`."
        );
        let targets = vec![
            "catalog".to_owned(),
            "ingestion".to_owned(),
            "api".to_owned(),
        ];
        let ctx = ParseContext {
            prefix: "!",
            bot_user_id: None,
            targets: &targets,
            version_tags: &[],
        };
        assert_eq!(
            parse("!deploy ingestoin v1.2.3", &ctx).map_err(|e| e.to_string()),
            Err(
                "Unknown target `ingestoin`. Known targets: `catalog`, `ingestion` and `api`. \
                 Did you mean `ingestion`?"
                    .to_owned()
            )
        );
        let ctx = ParseContext {
            prefix: "!",
            bot_user_id: None,
            targets: &[],
            version_tags: &[],
        };
        assert_eq!(
            parse("!deploy catalog v1.2.3", &ctx).map_err(|e| e.to_string()),
            Err("Unknown target `catalog`. No targets are configured.".to_owned())
        );
    }

    #[test]
    fn a_subcommand_wins_over_a_target_of_the_same_name() {
        let targets = vec!["status".to_owned(), "catalog".to_owned()];
        let ctx = ParseContext {
            prefix: "!",
            bot_user_id: None,
            targets: &targets,
            version_tags: &[],
        };
        assert_eq!(
            parse("!deploy status", &ctx),
            Ok(Some(Command::DeployStatus { id: None }))
        );
        assert_eq!(
            parse("!deploy status v1.2.3", &ctx).map_err(|e| e.to_string()),
            Err(
                "`v1.2.3` is not a deploy id: use the number shown by `!deploy status`, \
                 e.g. `!deploy status 7`."
                    .to_owned()
            )
        );
    }

    #[test]
    fn bad_versions_get_the_version_sentence() {
        assert_eq!(
            err("!deploy catalog v1.2"),
            "`v1.2` is not a release version: use `v1.2.3` (semver, `v` optional), \
             `2023.07.03.17.52.00` (monorepo release) or `latest`."
        );
        assert_eq!(
            err("!deploy check catalog 2023.02.30.25.00.00"),
            "`2023.02.30.25.00.00` is not a monorepo release version: the hour is 25, \
             expected 00 to 23 (as in `2023.07.03.17.52.00`)."
        );
        assert!(
            err("!deploy catalog v1.2.3;reboot")
                .starts_with("`v1.2.3;reboot` is not a release version")
        );
        assert!(err("!deploy catalog $(id)").starts_with("`$(id)` is not a release version"));
    }

    #[test]
    fn missing_and_extra_arguments_show_the_usage() {
        assert_eq!(
            err("!deploy catalog"),
            "Usage: !deploy <target> <version> [--force] [--when-idle [--within <duration>]] — \
             missing `<version>`."
        );
        assert_eq!(
            err("!deploy"),
            "Usage: !deploy <target> <version> [--force] [--when-idle [--within <duration>]] — \
             missing `<target>`."
        );
        assert_eq!(
            err("!deploy catalog v1.2.3 now"),
            "Usage: !deploy <target> <version> [--force] [--when-idle [--within <duration>]] — \
             unexpected `now`."
        );
        assert_eq!(
            err("!deploy check catalog"),
            "Usage: !deploy check <target> <version> — missing `<version>`."
        );
        assert_eq!(
            err("!deploy approve"),
            "Usage: !deploy approve <id> — missing `<id>`."
        );
        assert_eq!(
            err("!deploy cancel"),
            "Usage: !deploy cancel <id> — missing `<id>`."
        );
        assert_eq!(
            err("!deploy status 1 2"),
            "Usage: !deploy status [<id>] — unexpected `2`."
        );
        assert_eq!(
            err("!deploy resolve 7"),
            "Usage: !deploy resolve <id> succeeded|failed — missing `succeeded|failed`."
        );
        assert_eq!(
            err("!deploy rollback"),
            "Usage: !deploy rollback <target> — missing `<target>`."
        );
        assert_eq!(err("!locks all"), "Usage: !locks — unexpected `all`.");
        assert_eq!(
            err("!dag-sync status now"),
            "Usage: !dag-sync status — unexpected `now`."
        );
        assert_eq!(
            err("!dags new 7"),
            "Usage: !dags new [--days N] — unexpected `7`."
        );
        assert_eq!(
            err("!dag enable"),
            "Usage: !dag enable <dag_id> [--confirm] — missing `<dag_id>`."
        );
        assert_eq!(
            err("!migrations apply"),
            "Usage: !migrations apply <name> — missing `<name>`."
        );
        assert_eq!(err("!audit 1 2"), "Usage: !audit [<n>] — unexpected `2`.");
        assert_eq!(
            err("!help deploy status"),
            "Usage: !help [command] — unexpected `status`."
        );
    }

    #[test]
    fn option_errors() {
        assert_eq!(
            err("!deploy catalog v1.2.3 --forse"),
            "Unknown option `--forse` for `!deploy`; it accepts `--force`, `--when-idle` and \
             `--within`."
        );
        assert_eq!(
            err("!deploy catalog v1.2.3 --within 2h"),
            "Option `--within` only works together with `--when-idle`, e.g. `!deploy catalog \
             v1.2.3 --when-idle --within 6h`."
        );
        for bad in ["soon", "30s", "8d", "0m", "-1h"] {
            assert_eq!(
                err(&format!(
                    "!deploy catalog v1.2.3 --when-idle --within {bad}"
                )),
                format!(
                    "`{bad}` is not a waiting time: use a duration from 1m to 7d such as 30m, 6h \
                     or 2d, e.g. `!deploy catalog v1.2.3 --when-idle --within 6h`."
                ),
                "{bad}"
            );
        }
        assert_eq!(
            err("!dags new --day=3"),
            "Unknown option `--day` for `!dags new`; it accepts `--days`."
        );
        assert_eq!(
            err("!deploy status --force"),
            "`!deploy status` takes no options, but got `--force`."
        );
        assert_eq!(
            err("!locks --all"),
            "`!locks` takes no options, but got `--all`."
        );
        assert_eq!(
            err("!help --verbose"),
            "`!help` takes no options, but got `--verbose`."
        );
        assert_eq!(err("!locks --"), "`!locks` takes no options, but got `--`.");
        assert_eq!(
            err("!deploy catalog v1.2.3 --force=yes"),
            "Option `--force` takes no value, but got `--force=yes`."
        );
        assert_eq!(
            err("!deploy catalog v1.2.3 --force --force"),
            "Option `--force` is given more than once."
        );
        assert_eq!(
            err("!dags new --days 3 --days 4"),
            "Option `--days` is given more than once."
        );
        assert_eq!(
            err("!dags new --days"),
            "Option `--days` needs a value, e.g. `!dags new --days 7`."
        );
        assert_eq!(
            err("!dags new --days --days 3"),
            "Option `--days` needs a value, e.g. `!dags new --days 7`."
        );
        assert_eq!(
            err("!dags new --days 0"),
            "`0` is not a number of days: use a whole number from 1 to 365, e.g. `!dags new --days 7`."
        );
        for days in ["366", "+3", "-3", "abc", "3.5", "99999999999", "", "٣"] {
            assert!(
                err(&format!("!dags new --days={days}")).contains("is not a number of days"),
                "{days:?}"
            );
        }
    }

    #[test]
    fn id_errors() {
        assert_eq!(
            err("!deploy approve abc"),
            "`abc` is not a deploy id: use the number shown by `!deploy status`, e.g. `!deploy approve 7`."
        );
        assert_eq!(
            err("!deploy cancel 0"),
            "`0` is not a deploy id: use the number shown by `!deploy status`, e.g. `!deploy cancel 7`."
        );
        for id in [
            "-1",
            "+7",
            "##7",
            "#",
            "7#",
            "9223372036854775808",
            "7.0",
            "٧",
        ] {
            assert!(
                err(&format!("!deploy approve {id}")).contains("is not a deploy id"),
                "{id}"
            );
        }
        assert_eq!(
            ok("!deploy approve 9223372036854775807"),
            Command::DeployApprove { id: i64::MAX }
        );
        assert_eq!(ok("!deploy approve 007"), Command::DeployApprove { id: 7 });
        assert_eq!(
            err("!deploy resolve x failed"),
            "`x` is not a deploy id: use the number shown by `!deploy status`, \
             e.g. `!deploy resolve 7 succeeded`."
        );
    }

    #[test]
    fn resolution_audit_help_errors() {
        assert_eq!(
            err("!deploy resolve 7 done"),
            "`done` is not a resolution: use `succeeded` or `failed`, e.g. `!deploy resolve 7 succeeded`."
        );
        assert_eq!(
            err("!audit 501"),
            "`501` is not a number of audit events: use a whole number from 1 to 500, e.g. `!audit 20`."
        );
        assert!(err("!audit 0").contains("is not a number of audit events"));
        assert!(err("!audit all").contains("is not a number of audit events"));
        assert_eq!(
            err("!help deplyo"),
            "There is no command `!deplyo`. Did you mean `!help deploy`?"
        );
        assert_eq!(
            err("!help !xyzzy"),
            "There is no command `!xyzzy`; `!help` lists them all."
        );
    }

    #[test]
    fn dag_ids_and_migration_names_are_restricted() {
        let long_dag = "d".repeat(250);
        assert_eq!(ok(&format!("!dag enable {long_dag}")).name(), "dag.enable");
        assert_eq!(
            err(&format!("!dag enable {long_dag}x")),
            format!(
                "`{}…` is not a DAG id: it is 251 characters long, at most 250.",
                "d".repeat(60)
            )
        );
        assert_eq!(
            err("!dag enable flickr/workflow"),
            "`flickr/workflow` is not a DAG id: `/` is not allowed; use letters, digits, `_`, `.` and `-`."
        );
        assert_eq!(
            err("!dag enable .."),
            "`..` is not a DAG id: it is only dots."
        );
        assert!(err("!dag enable dåg").contains("`å` is not allowed"));
        assert_eq!(
            err("!migrations apply ../../etc/passwd"),
            "`../../etc/passwd` is not a migration name: `/` is not allowed; use letters, digits, `_`, `.` and `-`."
        );
        assert_eq!(
            err("!migrations apply ..x"),
            "`..x` is not a migration name: it must not start with `.`."
        );
        assert_eq!(
            err("!migrations apply a..b"),
            "`a..b` is not a migration name: it must not contain `..`."
        );
        assert_eq!(
            err("!migrations apply -rf"),
            "`-rf` is not a migration name: it must not start with `-`."
        );
        assert!(
            err(&format!("!migrations apply {}", "m".repeat(201)))
                .contains("201 characters long, at most 200")
        );
        assert_eq!(
            ok(&format!("!migrations apply {}", "m".repeat(200))).name(),
            "migrations.apply"
        );
    }

    #[test]
    fn over_long_input_is_refused() {
        let text = format!("!deploy catalog v1.2.3 {}", "x".repeat(MAX_INPUT_CHARS));
        assert_eq!(
            err(&text),
            "That message is 2023 characters long; commands are at most 2000."
        );
        // Characters, not bytes, are counted.
        let text = format!("!audit {}", "é".repeat(MAX_INPUT_CHARS - 7));
        assert_eq!(text.chars().count(), MAX_INPUT_CHARS);
        assert!(err(&text).contains("is not a number of audit events"));
        assert_eq!(run(&"x".repeat(10_000)), Ok(None));
    }

    #[test]
    fn control_and_invisible_characters_are_refused() {
        assert_eq!(
            err("!deploy catalog\0 v1.2.3"),
            "Character 16 of the message is U+0000, a control or invisible character; retype the command without it."
        );
        assert_eq!(
            err("!deploy catalog \u{202E}3.2.1v"),
            "Character 17 of the message is U+202E, a control or invisible character; retype the command without it."
        );
        for c in [
            '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{200B}', '\u{200F}', '\u{2060}', '\u{2066}',
            '\u{FEFF}', '\u{61C}',
        ] {
            assert!(
                err(&format!("!locks{c}")).contains(&format!("U+{:04X}", u32::from(c))),
                "{c:?}"
            );
        }
        assert_eq!(ok("!locks\t\r\n"), Command::Locks);
        assert_eq!(run("\u{202E}!locks"), Ok(None));
    }

    #[test]
    fn echoed_input_cannot_break_the_code_span() {
        assert_eq!(
            err("!deploy approve a`b"),
            "`a'b` is not a deploy id: use the number shown by `!deploy status`, e.g. `!deploy approve 7`."
        );
    }

    // ---- properties ----

    const TARGETS: [&str; 3] = ["catalog", "ingestion-server", "api"];

    fn prop_targets() -> Vec<String> {
        TARGETS.iter().map(|t| (*t).to_owned()).collect()
    }

    fn version_strategy() -> impl Strategy<Value = Version> {
        prop_oneof![
            Just(Version::Latest),
            "v?(0|[1-9][0-9]{0,5})\\.(0|[1-9][0-9]{0,5})\\.(0|[1-9][0-9]{0,5})(-[0-9A-Za-z.-]{1,40})?"
                .prop_map(Version::Semver),
            (1000u32..=9999, 1u32..=12, 1u32..=31, 0u32..24, 0u32..60, 0u32..60).prop_map(
                |(y, mo, d, h, mi, s)| Version::Timestamp(format!("{y:04}.{mo:02}.{d:02}.{h:02}.{mi:02}.{s:02}"))
            ),
        ]
    }

    fn command_strategy() -> impl Strategy<Value = Command> {
        let target = prop::sample::select(TARGETS.to_vec()).prop_map(str::to_owned);
        let id = 1i64..=i64::MAX;
        let resolution = prop_oneof![Just(Resolution::Succeeded), Just(Resolution::Failed)];
        prop_oneof![
            prop::option::of(prop::sample::select(forms::command_words()).prop_map(str::to_owned))
                .prop_map(|topic| Command::Help { topic }),
            (
                target.clone(),
                version_strategy(),
                any::<bool>(),
                any::<bool>(),
                prop::option::of(60u64..=7 * 86_400)
            )
                .prop_map(|(target, version, force, when_idle, within)| {
                    Command::Deploy {
                        target,
                        version,
                        force,
                        when_idle,
                        // `--within` only comes with `--when-idle`.
                        within: within
                            .filter(|_| when_idle)
                            .and_then(|s| super::super::Within::parse(&format!("{s}s"))),
                    }
                }),
            (target.clone(), version_strategy())
                .prop_map(|(target, version)| Command::DeployCheck { target, version }),
            id.clone().prop_map(|id| Command::DeployApprove { id }),
            id.clone().prop_map(|id| Command::DeployCancel { id }),
            prop::option::of(id.clone()).prop_map(|id| Command::DeployStatus { id }),
            prop::option::of(target.clone()).prop_map(|target| Command::DeployHistory { target }),
            (id, resolution).prop_map(|(id, resolution)| Command::DeployResolve { id, resolution }),
            target.prop_map(|target| Command::DeployRollback { target }),
            Just(Command::Locks),
            Just(Command::DagSyncStatus),
            Just(Command::AirflowStatus),
            prop::option::of(1u32..=MAX_DAYS).prop_map(|days| Command::DagsNew { days }),
            ("[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}", any::<bool>())
                .prop_map(|(dag_id, confirm)| Command::DagEnable { dag_id, confirm }),
            Just(Command::MigrationsStatus),
            "[A-Za-z0-9_]([A-Za-z0-9_-]|\\.[A-Za-z0-9_-]){0,99}"
                .prop_map(|name| Command::MigrationsApply { name }),
            prop::option::of(1u32..=MAX_AUDIT_EVENTS).prop_map(|limit| Command::Audit { limit }),
        ]
    }

    fn token_strategy() -> impl Strategy<Value = String> {
        let vocabulary: Vec<&str> = forms::command_words()
            .iter()
            .chain(forms::subcommands("deploy").iter())
            .chain(TARGETS.iter())
            .chain(&[
                "new",
                "enable",
                "apply",
                "succeeded",
                "failed",
                "v1.2.3",
                "latest",
                "2023.07.03.17.52.00",
                "--force",
                "--confirm",
                "--days",
                "--days=7",
                "--",
                "--=",
                "-",
                "#",
                "#7",
                "7",
                "0",
                "-1",
                "<@123>",
                "<@!123>",
                "!",
                "!!",
                "é",
                "ß",
                "日本",
                "🦀",
                "\u{202E}",
                "\u{0}",
                "\u{200B}",
                "`",
                "..",
                "../x",
                "\u{301}",
            ])
            .copied()
            .collect();
        prop_oneof![
            3 => prop::sample::select(vocabulary).prop_map(str::to_owned),
            1 => any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn parse_never_panics_on_any_string(text in any::<String>()) {
            let targets = prop_targets();
            for prefix in ["!", "", "é", "cc "] {
                let ctx = ParseContext { prefix, bot_user_id: Some(BOT), targets: &targets, version_tags: &[] };
                let _ = parse(&text, &ctx);
                let _ = parse(&format!("!{text}"), &ctx);
                if let Err(e) = parse(&format!("<@123> {text}"), &ctx) {
                    let _ = e.to_string();
                }
            }
        }

        #[test]
        fn parse_never_panics_on_near_commands(
            lead in prop::sample::select(vec!["!", "<@123> ", "<@!123> !", "  !", "<@123>"]),
            tokens in prop::collection::vec(token_strategy(), 0..8),
            separators in prop::collection::vec(prop::sample::select(vec![" ", "  ", "\t", "\n", "\u{a0}", ""]), 8),
        ) {
            let mut text = lead.to_owned();
            for (token, sep) in tokens.iter().zip(&separators) {
                text.push_str(token);
                text.push_str(sep);
            }
            let targets = prop_targets();
            let ctx = ParseContext { prefix: "!", bot_user_id: Some(BOT), targets: &targets, version_tags: &[] };
            match parse(&text, &ctx) {
                Ok(Some(command)) => {
                    // Whatever parses renders back to itself.
                    prop_assert_eq!(parse(&command.to_string(), &ctx), Ok(Some(command)));
                }
                Ok(None) => {}
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn rendering_then_parsing_is_identity(command in command_strategy()) {
            let targets = prop_targets();
            let ctx = ParseContext { prefix: "!", bot_user_id: Some(BOT), targets: &targets, version_tags: &[] };
            prop_assert_eq!(parse(&command.to_string(), &ctx), Ok(Some(command.clone())));
            let mention = format!("<@{BOT}> {}", command.to_text(""));
            prop_assert_eq!(parse(&mention, &ctx), Ok(Some(command.clone())));
            let other = ParseContext { prefix: "cc ", ..ctx };
            prop_assert_eq!(parse(&command.to_text("cc "), &other), Ok(Some(command)));
        }
    }
}
