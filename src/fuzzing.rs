//! The properties the fuzz targets check, kept in the library so that the libFuzzer targets in
//! `fuzz/` (nightly) and the corpus replay in `tests/fuzz_corpus.rs` (stable, part of
//! `cargo test`) check exactly the same thing.
//!
//! Each function takes the raw bytes libFuzzer produces and panics, with a message saying which
//! property broke, when the code under test misbehaves. Bytes are decoded the way production
//! decodes them: chat text arrives as a string and step output is decoded lossily, so invalid
//! UTF-8 becomes U+FFFD in both.

use crate::command::{self, Command, ParseContext, ParseError};
use crate::deploy::fingerprint::Plan;
use crate::integrations::infra::PROMPT;

/// The bot's user id in the mention forms the grammar target tries.
const BOT: u64 = 123_456_789_012_345_678;

/// The longest error sentence, in characters. An error repeats at most one token of the user's
/// input, cut to 60 characters, plus fixed wording and the configured targets; a longer sentence
/// means some input is echoed whole.
const MAX_ERROR_CHARS: usize = 300;

/// The grammar property: any message, under several prefixes and with or without a mention, is
/// either not addressed to the bot, a command whose canonical text parses back to itself, or an
/// error whose sentence is one short, printable line. Parsing is deterministic.
pub fn grammar(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let targets: Vec<String> = ["catalog", "ingestion-server", "api"]
        .map(str::to_owned)
        .to_vec();
    // `!` is the default; `~>` and `¡` are other valid configured prefixes (one multi-byte, to
    // exercise char boundaries); an empty prefix leaves only the mention.
    let contexts = [
        ("!", Some(BOT)),
        ("~>", None),
        ("¡", Some(BOT)),
        ("", Some(BOT)),
    ];
    for (prefix, bot_user_id) in contexts {
        let ctx = ParseContext {
            prefix,
            bot_user_id,
            targets: &targets,
        };
        check_message(&text, &ctx);
        // The same text addressed to the bot both ways, so that most inputs reach the grammar
        // proper and not only the addressing check.
        if !prefix.is_empty() {
            check_message(&format!("{prefix}{text}"), &ctx);
        }
        if bot_user_id.is_some() {
            check_message(&format!("<@{BOT}> {text}"), &ctx);
        }
    }
}

fn check_message(text: &str, ctx: &ParseContext) {
    let result = command::parse(text, ctx);
    assert_eq!(
        result,
        command::parse(text, ctx),
        "parsing is not deterministic for {text:?}"
    );
    match result {
        Ok(None) => {}
        Ok(Some(command)) => check_command(&command, text, ctx),
        Err(error) => check_error(&error, text),
    }
}

/// A parsed command renders to text that parses back to it, by prefix and by mention.
fn check_command(command: &Command, text: &str, ctx: &ParseContext) {
    if !ctx.prefix.is_empty() {
        let rendered = command.to_text(ctx.prefix);
        assert_eq!(
            command::parse(&rendered, ctx),
            Ok(Some(command.clone())),
            "{text:?} parsed to {command:?}, rendered as {rendered:?}, which parses differently \
             (prefix {:?})",
            ctx.prefix
        );
    }
    if ctx.bot_user_id.is_some() {
        let mentioned = format!("<@{BOT}> {}", command.to_text(""));
        assert_eq!(
            command::parse(&mentioned, ctx),
            Ok(Some(command.clone())),
            "{text:?} parsed to {command:?}, but the mention form {mentioned:?} parses differently"
        );
    }
    if let Command::Help { topic: Some(topic) } = command {
        assert!(
            command::command_words().contains(&topic.as_str())
                && command::help_for(topic, ctx.prefix).is_some(),
            "{text:?} asked for help on {topic:?}, for which there is no help"
        );
    }
}

/// The sentence the user sees for an invalid command: present, one printable line, bounded, and
/// a finished sentence.
fn check_error(error: &ParseError, text: &str) {
    let sentence = error.to_string();
    let chars = sentence.chars().count();
    assert!(
        chars > 0 && chars <= MAX_ERROR_CHARS,
        "the error for {text:?} is {chars} characters long: {sentence:?}"
    );
    assert!(
        !sentence.chars().any(char::is_control),
        "the error for {text:?} carries a control character or a line break: {sentence:?}"
    );
    assert!(
        sentence.ends_with(['.', '?']),
        "the error for {text:?} is not a finished sentence: {sentence:?}"
    );
}

/// What Terraform prints between a plan and the prompt of an interactive apply.
const APPLY_QUESTION: &str = "\nDo you want to perform these actions?\n  Terraform will perform the \
                              actions described above.\n  Only 'yes' will be accepted to approve.\n\n  ";

/// Lines the fingerprint must ignore: refresh and read progress, attribute diffs, hidden-attribute
/// counts, notes and drift reports.
const NOISE: [&str; 6] = [
    "aws_instance.fuzz: Refreshing state... [id=i-0123456789abcdef0]",
    "data.aws_ami.fuzz: Reading...",
    "      ~ ami = \"ami-1\" -> \"ami-2\" # forces replacement",
    "        # (28 unchanged attributes hidden)",
    "Note: Objects have changed outside of Terraform",
    "  # aws_instance.fuzz has changed",
];

/// The fingerprint property: parsing any output never panics and is deterministic, the
/// fingerprint is the hex SHA-256 of the normalised text, and what the module calls noise —
/// colours, timestamps and log prefixes, line endings, trailing blanks, noise lines, repetition,
/// the apply prompt, the order of lines that carry no conflicting summary — does not change it,
/// while one more resource or a different `Plan:` count does.
pub fn fingerprint(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let plan = Plan::parse(&text);
    assert_eq!(plan, Plan::parse(&text), "parsing is not deterministic");
    let fp = plan.fingerprint();
    assert!(
        fp.len() == 64 && fp.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{fp:?} is not a hex SHA-256"
    );
    assert!(
        plan.resources.windows(2).all(|w| w[0] < w[1]),
        "resources are not a sorted set: {:?}",
        plan.resources
    );
    assert!(
        plan.resources.iter().all(|r| !r.address.is_empty()
            && r.address.trim() == r.address
            && !r.address.contains('\n')),
        "a resource address is empty, padded or spans lines: {:?}",
        plan.resources
    );
    if plan.no_changes {
        assert!(plan.resources.is_empty() && plan.is_recognised() && plan.is_consistent());
    }
    // Exercised for panics; their wording is covered by the module's unit tests.
    let _ = plan.human_summary();
    let _ = Plan::parse_before_prompt(&text);

    let same = |variant: &str, what: &str| {
        let other = Plan::parse(variant);
        assert_eq!(
            other.fingerprint(),
            fp,
            "{what} changed the fingerprint of {text:?}: {plan:?} became {other:?}"
        );
    };
    let lines: Vec<&str> = text.lines().collect();
    same(&recoloured(&lines), "colours, log prefixes and CRLF");
    same(
        &lines
            .iter()
            .flat_map(|l| [*l, NOISE[l.len() % NOISE.len()]])
            .collect::<Vec<_>>()
            .join("\n"),
        "noise lines",
    );
    same(&format!("{text}\n{text}"), "printing the plan twice");
    let prompted = format!("{text}{APPLY_QUESTION}{PROMPT} ");
    let before = Plan::parse_before_prompt(&prompted).expect("the text ends in a prompt");
    assert_eq!(
        before.fingerprint(),
        fp,
        "the apply prompt changed the fingerprint of {text:?}"
    );
    // Only the last `Plan:` line counts, so lines may be reordered when they agree on it.
    let mut summaries = lines.iter().filter_map(|l| Plan::parse(l).summary);
    let first = summaries.next();
    if summaries.all(|s| Some(s) == first) {
        let reversed: Vec<&str> = lines.iter().rev().copied().collect();
        same(&reversed.join("\n"), "reordering the lines");
    }

    // A resource that was not there changes the fingerprint.
    let mut n = plan.resources.len();
    let fresh = loop {
        let address = format!("aws_instance.fuzz_{n}");
        if plan.resources.iter().all(|r| r.address != address) {
            break address;
        }
        n += 1;
    };
    let grown = format!("{text}\n  # {fresh} will be created\n");
    assert_ne!(
        Plan::parse(&grown).fingerprint(),
        fp,
        "a new resource left the fingerprint of {text:?} unchanged"
    );
    // So does a different count on the last `Plan:` line.
    let mut summary = plan.summary.unwrap_or_default();
    summary.add = if summary.add == u64::MAX {
        0
    } else {
        summary.add + 1
    };
    let recounted = format!("{text}\n{summary}.\n");
    assert_ne!(
        Plan::parse(&recounted).fingerprint(),
        fp,
        "a different `Plan:` count left the fingerprint of {text:?} unchanged"
    );
}

/// The same lines as a coloured, timestamped, CRLF log: each line gets an SGR reset, a CI
/// timestamp and trailing blanks; a line without escapes of its own also gets its words coloured
/// (inside an unfinished escape sequence an inserted one would not be one).
fn recoloured(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str("\u{1b}[0m2024-05-01T12:00:00.123Z ");
        if line.contains('\u{1b}') {
            out.push_str(line);
        } else {
            out.push_str("\u{1b}[1m");
            out.push_str(&line.replace(' ', "\u{1b}[0m \u{1b}[32m"));
            out.push_str("\u{1b}[0m");
        }
        out.push_str(" \t\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_commands_and_errors_hold() {
        for text in [
            "!deploy catalog v1.2.3 --force",
            "!deploy approve 7",
            "!help deploy",
            "!dags new --days 7",
            "!deploy catalg v1.2.3",
            "!nope",
            "",
        ] {
            grammar(text.as_bytes());
        }
    }

    #[test]
    #[should_panic(expected = "not a finished sentence")]
    fn an_unfinished_error_sentence_is_caught() {
        check_error(
            &ParseError::InvalidVersion {
                message: "no full stop".into(),
            },
            "x",
        );
    }

    #[test]
    #[should_panic(expected = "characters long")]
    fn an_error_echoing_a_whole_essay_is_caught() {
        check_error(
            &ParseError::InvalidVersion {
                message: format!("{}.", "x".repeat(MAX_ERROR_CHARS)),
            },
            "x",
        );
    }

    #[test]
    fn real_plans_hold() {
        fingerprint(include_bytes!(
            "../tests/fixtures/terraform-plan-image-bump.txt"
        ));
        fingerprint(include_bytes!(
            "../tests/fixtures/terraform-apply-prompt.txt"
        ));
        fingerprint(b"\x1b[1m# a.b will be created\x1b[");
        fingerprint(b"No changes.\r");
    }

    #[test]
    fn recolouring_really_colours() {
        let text = recoloured(&["  # a.b will be created"]);
        assert!(text.matches('\u{1b}').count() >= 4, "{text:?}");
        assert_eq!(
            Plan::parse(&text).resources,
            Plan::parse("  # a.b will be created").resources
        );
    }
}
