//! The properties the fuzz targets check. They live in the fuzz crate, not in the bot's library;
//! the libFuzzer targets (`fuzz_targets/`, nightly) call them from here, and the corpus replay
//! `tests/it/fuzz_corpus.rs` (stable, part of `cargo test`) includes this file as a module, so both
//! check exactly the same thing. It only uses the library's public API (`catalog_chatops::…`).
//!
//! Each function takes the raw bytes libFuzzer produces and panics, with a message saying which
//! property broke, when the code under test misbehaves. Bytes are decoded the way production
//! decodes them: chat text arrives as a string and step output is decoded lossily, so invalid
//! UTF-8 becomes U+FFFD in both.

use catalog_chatops::command::{self, Command, ParseContext, ParseError};
use catalog_chatops::deploy::fingerprint::Plan;
use catalog_chatops::integrations::infra::PROMPT;

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
    // The monorepo's tags, so that versions typed as tags are fuzzed too.
    let version_tags = [(
        "catalog".to_string(),
        vec!["catalog-{version}".to_string(), "rel-{version}".to_string()],
    )];
    for (prefix, bot_user_id) in contexts {
        let ctx = ParseContext {
            prefix,
            bot_user_id,
            targets: &targets,
            version_tags: &version_tags,
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

/// Lines the fingerprint must ignore wherever they are: refresh and read progress (with their
/// timings), hidden-attribute counts, blank lines.
const NOISE: [&str; 6] = [
    "aws_instance.fuzz: Refreshing state... [id=i-0123456789abcdef0]",
    "data.aws_ami.fuzz: Reading...",
    "data.aws_ami.fuzz: Read complete after 3s [id=ami-0a1b2c3d]",
    "data.aws_iam_policy_document.fuzz: Still reading... [10s elapsed]",
    "        # (28 unchanged attributes hidden)",
    "",
];

/// A drift report ("Objects have changed outside of Terraform"), ending with its rule.
const DRIFT_REPORT: &str = "Note: Objects have changed outside of Terraform\n\n\
    Terraform detected the following changes made outside of Terraform since the\n\
    last \"terraform apply\" which may have affected this plan:\n\n  \
    # aws_instance.fuzz has changed\n  \
    ~ resource \"aws_instance\" \"fuzz\" {\n      \
    ~ ami = \"ami-1\" -> \"ami-2\"\n    }\n\n\
    ─────────────────────────────────────────────────────────────────────────────\n";

/// The fingerprint property: parsing any output never panics and is deterministic, the
/// fingerprint is a hex SHA-256, and what the module calls noise — colours, log timestamps,
/// CRLF, trailing blanks, progress lines and their timings, hidden-attribute counts, a drift
/// report before the plan, the apply question and prompt — does not change it, while one more
/// resource or one more `Plan:` count does.
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
        plan.resources.windows(2).all(|w| w[0] < w[1])
            && plan.invocations.windows(2).all(|w| w[0] < w[1]),
        "resources or invocations are not a sorted set: {plan:?}"
    );
    assert!(
        plan.resources.iter().all(|r| !r.address.is_empty()
            && r.address.trim() == r.address
            && !r.address.contains('\n')),
        "a resource address is empty, padded or spans lines: {:?}",
        plan.resources
    );
    if plan.no_changes {
        assert!(
            plan.resources.is_empty() && plan.is_recognised() && plan.is_consistent(),
            "\"No changes.\" with changes: {plan:?}"
        );
    }
    // Exercised for panics; their wording is covered by the module's unit tests.
    let _ = plan.human_summary();
    let _ = plan.counts();
    let _ = Plan::parse_before_prompt(&text);

    let same = |variant: &str, what: &str| {
        let other = Plan::parse(variant);
        assert_eq!(
            other.fingerprint(),
            fp,
            "{what} changed the fingerprint of {text:?}:\n{}\nbecame\n{}",
            plan.normalized(),
            other.normalized()
        );
    };
    let lines: Vec<&str> = text.lines().collect();
    same(
        &recoloured(&lines),
        "colours, log prefixes, trailing blanks and CRLF",
    );
    same(
        &lines
            .iter()
            .flat_map(|l| [*l, NOISE[l.len() % NOISE.len()]])
            .collect::<Vec<_>>()
            .join("\n"),
        "noise lines",
    );
    same(
        &format!("{DRIFT_REPORT}{text}"),
        "a drift report before the plan",
    );
    // Inside a multi-line value (`<<EOT`) everything is the value, the question included.
    if !text.contains("<<") {
        let prompted = format!("{text}{APPLY_QUESTION}{PROMPT} ");
        let before = Plan::parse_before_prompt(&prompted).expect("the text ends in a prompt");
        assert_eq!(
            before.fingerprint(),
            fp,
            "the apply prompt changed the fingerprint of {text:?}"
        );
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
    // So does one more `Plan:` line, with other counts.
    let mut summary = plan.summary.unwrap_or_default();
    summary.add = summary.add.wrapping_add(1);
    summary.invoke = summary.invoke.wrapping_add(1);
    let recounted = format!("{text}\n{summary}\n");
    assert_ne!(
        Plan::parse(&recounted).fingerprint(),
        fp,
        "another `Plan:` count left the fingerprint of {text:?} unchanged"
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
            "../../tests/fixtures/terraform-plan-image-bump.txt"
        ));
        fingerprint(include_bytes!(
            "../../tests/fixtures/terraform-apply-prompt.txt"
        ));
        fingerprint(include_bytes!(
            "../../tests/fixtures/terraform/tf14-update-action.apply.txt"
        ));
        fingerprint(include_bytes!(
            "../../tests/fixtures/terraform/tf-outputs-drift.plan.txt"
        ));
        fingerprint(b"\x1b[1m# a.b will be created\x1b[");
        fingerprint(b"No changes.\r");
        fingerprint(b"  + x = <<-EOT\n  Plan: 1 to add, 0 to change, 0 to destroy.\n");
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
