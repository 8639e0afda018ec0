//! The fingerprint against real Terraform output (read from `../shared/fixtures/real-terraform`
//! at test time), against the forms that corpus lacks (`tests/fixtures/terraform/`, written in
//! Terraform's format), and properties over both.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use proptest::prelude::*;

use super::*;
use crate::integrations::infra::strip_ansi;

const PLAN: &str = include_str!("../../../tests/fixtures/terraform-plan-image-bump.txt");
const APPLY: &str = include_str!("../../../tests/fixtures/terraform-apply-prompt.txt");

/// What Terraform prints between a plan and the prompt of an interactive apply.
const QUESTION: &str = "\nDo you want to perform these actions?\n  Terraform will perform the \
                        actions described above.\n  Only 'yes' will be accepted to approve.\n\n  ";

fn real_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real-terraform")
}

fn own_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform")
}

/// One row of a `cases.tsv` and its files.
#[derive(Debug, Clone)]
struct Case {
    id: String,
    kind: String,
    partner: String,
    summary: String,
    plan: String,
    apply: String,
    partner_apply: String,
}

/// Every case of `dir/cases.tsv` with its files; panics when the corpus is missing (CI has it:
/// a missing corpus must fail, not pass by checking nothing).
fn cases(dir: &Path) -> Vec<Case> {
    let index = dir.join("cases.tsv");
    let tsv = std::fs::read_to_string(&index).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): the Terraform corpus is required",
            index.display()
        )
    });
    let read = |id: &str, what: &str| {
        let path = dir.join(format!("{id}.{what}.txt"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 4, "{}: {l:?}", index.display());
            Case {
                id: cols[0].into(),
                kind: cols[1].into(),
                partner: cols[2].into(),
                summary: cols[3].into(),
                plan: read(cols[0], "plan"),
                apply: read(cols[0], "apply"),
                partner_apply: read(cols[2], "apply"),
            }
        })
        .collect()
}

static REAL: LazyLock<Vec<Case>> = LazyLock::new(|| cases(&real_dir()));
static OWN: LazyLock<Vec<Case>> = LazyLock::new(|| cases(&own_dir()));

/// The cases small enough to mutate a few hundred times (all but the 255-resource ones).
static SMALL: LazyLock<Vec<Case>> = LazyLock::new(|| {
    REAL.iter()
        .chain(OWN.iter())
        .filter(|c| c.plan.len() < 40_000)
        .cloned()
        .collect()
});

fn own(id: &str) -> &'static Case {
    OWN.iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no own case {id}"))
}

fn real(id: &str) -> &'static Case {
    REAL.iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no real case {id}"))
}

fn before_prompt_of(apply: &str) -> Plan {
    Plan::parse_before_prompt(apply).expect("an apply output ends with Terraform's prompt")
}

/// The three checks of the issue, for one corpus: the summary is Terraform's own, the identical
/// apply has the plan's fingerprint, the drift partner's apply does not. Returns the plans'
/// fingerprints.
fn check_corpus(cases: &[Case]) -> Vec<String> {
    assert!(!cases.is_empty());
    let mut fingerprints = Vec::new();
    for c in cases {
        let plan = Plan::parse(&c.plan);
        assert!(plan.is_recognised(), "{}: not recognised", c.id);
        assert!(plan.is_consistent(), "{}: counts disagree: {plan:?}", c.id);
        assert!(!plan.no_changes, "{}", c.id);
        match c.kind.as_str() {
            "changes" => assert_eq!(
                plan.summary.map(|s| s.to_string()).as_deref(),
                Some(c.summary.as_str()),
                "{}: the summary is Terraform's own",
                c.id
            ),
            "outputs" => {
                assert_eq!(c.summary, "Changes to Outputs:");
                assert_eq!(plan.summary, None, "{}", c.id);
                assert!(!plan.outputs.is_empty(), "{}", c.id);
                assert_eq!(
                    plan.counts(),
                    format!("changes {} outputs", plan.outputs.len()),
                    "{}",
                    c.id
                );
            }
            other => panic!("{}: unknown kind {other}", c.id),
        }
        let apply = before_prompt_of(&c.apply);
        assert_eq!(
            apply.fingerprint(),
            plan.fingerprint(),
            "{}: the identical apply must be answered yes:\nplan:\n{}\napply:\n{}",
            c.id,
            plan.normalized(),
            apply.normalized()
        );
        let drift = before_prompt_of(&c.partner_apply);
        assert_ne!(
            drift.fingerprint(),
            plan.fingerprint(),
            "{}: its drift partner {} must be answered no",
            c.id,
            c.partner
        );
        fingerprints.push(plan.fingerprint());
    }
    fingerprints
}

#[test]
fn every_real_terraform_case_summarises_as_terraform_did_and_binds_only_its_own_apply() {
    let fingerprints = check_corpus(&REAL);
    assert_eq!(REAL.len(), 16, "the real corpus has 16 cases");
    assert_eq!(
        fingerprints.iter().collect::<HashSet<_>>().len(),
        fingerprints.len(),
        "two real plans share a fingerprint"
    );
}

#[test]
fn every_own_case_in_terraforms_documented_forms_binds_only_its_own_apply() {
    let fingerprints = check_corpus(&OWN);
    assert_eq!(
        fingerprints.iter().collect::<HashSet<_>>().len(),
        fingerprints.len(),
        "two of the own plans share a fingerprint"
    );
}

#[test]
fn no_two_plans_of_either_corpus_share_a_fingerprint() {
    let mut seen: Vec<(String, &str)> = Vec::new();
    for c in REAL.iter().chain(OWN.iter()) {
        let fp = Plan::parse(&c.plan).fingerprint();
        if let Some((_, other)) = seen.iter().find(|(f, _)| *f == fp) {
            panic!("{} and {other} share a fingerprint", c.id);
        }
        seen.push((fp, &c.id));
    }
}

#[test]
fn an_action_invocation_added_at_apply_is_not_the_approved_plan() {
    let approved = Plan::parse(&own("tf14-update").plan);
    let at_apply = before_prompt_of(&own("tf14-update-action").apply);
    assert_ne!(approved.fingerprint(), at_apply.fingerprint());
    assert_eq!(
        at_apply.invocations,
        [ActionInvocation {
            address: "action.local_command.notify_deploys".into(),
            when: Some("after module.catalog_airflow.aws_instance.airflow".into()),
        }]
    );
    assert_eq!(
        at_apply.counts(),
        "0 to add, 1 to change, 0 to destroy. Actions: 1 to invoke"
    );
}

#[test]
fn a_moved_only_plan_and_an_invoke_only_plan_differ() {
    let moved = Plan::parse(&real("tf-moved").plan);
    let invoke = Plan::parse(&own("tf14-invoke").plan);
    assert_ne!(moved.fingerprint(), invoke.fingerprint());
    assert_eq!(
        moved.human_summary(),
        "Plan: 0 to add, 0 to change, 0 to destroy (tfcoremock_simple_resource.second: moved \
         from tfcoremock_simple_resource.first)"
    );
    assert_eq!(
        invoke.human_summary(),
        "Plan: 0 to add, 0 to change, 0 to destroy. Actions: 1 to invoke \
         (action.local_command.notify_deploys: invoke)"
    );
    // The same action with another config is another plan.
    let other = Plan::parse(&own("tf14-invoke-config").plan);
    assert_ne!(invoke.fingerprint(), other.fingerprint());
}

#[test]
fn the_summary_names_moves_imports_forgets_and_counts_every_number() {
    assert_eq!(
        Plan::parse(&real("tf-moved-update").plan).human_summary(),
        "Plan: 0 to add, 1 to change, 0 to destroy (tfcoremock_simple_resource.moved: update \
         (moved from tfcoremock_simple_resource.base))"
    );
    assert_eq!(
        Plan::parse(&own("tf15-import-update").plan).human_summary(),
        "Plan: 1 to import, 0 to add, 1 to change, 0 to destroy (aws_s3_bucket.logs: update, \
         imported)"
    );
    assert_eq!(
        Plan::parse(&own("tf15-import").plan).human_summary(),
        "Plan: 1 to import, 0 to add, 0 to change, 0 to destroy (aws_s3_bucket.logs: import)"
    );
    assert_eq!(
        Plan::parse(&own("tf17-forget").plan).human_summary(),
        "Plan: 0 to add, 0 to change, 0 to destroy (aws_s3_bucket.legacy_uploads: forget)"
    );
    let tofu = Plan::parse(
        "  # aws_s3_bucket.l will be removed from the OpenTofu state but will not be destroyed\n\
         Plan: 0 to add, 0 to change, 0 to destroy, 1 to forget.\n",
    );
    assert_eq!(
        tofu.counts(),
        "0 to add, 0 to change, 0 to destroy, 1 to forget"
    );
    assert!(tofu.is_consistent());
}

#[test]
fn an_outputs_only_plan_is_a_plan_and_no_changes_stays_no_changes() {
    let outputs = Plan::parse(&real("tf-outputs-only").plan);
    assert!(outputs.is_recognised() && !outputs.no_changes);
    assert_eq!(outputs.counts(), "changes 5 outputs");
    assert!(
        outputs
            .human_summary()
            .starts_with("Plan: changes 5 outputs (output list_empty_default; "),
        "{}",
        outputs.human_summary()
    );
    let drift = Plan::parse(&own("tf-outputs-drift").plan);
    assert_eq!(drift.counts(), "changes 2 outputs");
    assert_eq!(drift.outputs, ["catalog_image_tag", "logs_bucket_tags"]);

    let none = Plan::parse(
        "aws_instance.a: Refreshing state... [id=i-1]\n\n\
         No changes. Your infrastructure matches the configuration.\n",
    );
    assert!(none.no_changes && none.is_recognised());
    assert_eq!(none.human_summary(), "No changes.");
    assert_eq!(none.normalized(), "No changes.\n");
}

#[test]
fn the_image_bump_fixture_parses() {
    let plan = Plan::parse(PLAN);
    let got: Vec<(&str, Action)> = plan
        .resources
        .iter()
        .map(|r| (r.address.as_str(), r.action))
        .collect();
    assert_eq!(
        got,
        [
            (
                "module.catalog_airflow.aws_instance.airflow",
                Action::Replace
            ),
            (
                "module.catalog_airflow.aws_route53_record.airflow",
                Action::Update
            ),
        ]
    );
    assert_eq!(
        plan.summary,
        Some(PlanSummary {
            add: 1,
            change: 1,
            destroy: 1,
            ..PlanSummary::default()
        })
    );
    assert!(!plan.no_changes && plan.is_recognised() && plan.is_consistent());
    // The header and the changed values, never the context or what Terraform will recompute.
    let normalized = plan.normalized();
    for kept in [
        "  # module.catalog_airflow.aws_instance.airflow must be replaced",
        "-/+ resource \"aws_instance\" \"airflow\" {",
        "      ~ user_data                    = \"3f1c2a9e0b7d4c8e5a6f1b2c3d4e5f6a7b8c9d0e\" -> \
         \"9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b\" # forces replacement",
        "          - \"10.0.1.23\",",
        "Plan: 1 to add, 1 to change, 1 to destroy.",
    ] {
        assert!(
            normalized.contains(kept.trim_start()),
            "{kept:?} missing from\n{normalized}"
        );
    }
    for left_out in [
        "arn",
        "catalog-airflow-prod",
        "unchanged",
        "Refreshing",
        "-out",
    ] {
        assert!(
            !normalized.contains(left_out),
            "{left_out:?} in\n{normalized}"
        );
    }
    assert_eq!(plan.fingerprint().len(), 64);
}

#[test]
fn plan_and_apply_fixtures_have_equal_fingerprints() {
    // The two print other attribute noise (context attributes, recomputed `arn`, hidden counts)
    // around the same change.
    let apply = before_prompt_of(APPLY);
    assert_eq!(Plan::parse(PLAN).fingerprint(), apply.fingerprint());
    assert_eq!(Plan::parse(APPLY), apply);
}

#[test]
fn human_summary_names_the_resources() {
    assert_eq!(
        Plan::parse(PLAN).human_summary(),
        "Plan: 1 to add, 1 to change, 1 to destroy \
         (module.catalog_airflow.aws_instance.airflow: replace; \
         module.catalog_airflow.aws_route53_record.airflow: update)"
    );
    let many: String = (0..11)
        .map(|i| format!("  # aws_s3_bucket.b{i:02} will be created\n"))
        .collect::<String>()
        + "Plan: 11 to add, 0 to change, 0 to destroy.\n";
    let line = Plan::parse(&many).human_summary();
    assert!(
        line.ends_with("aws_s3_bucket.b07: create; … and 3 more)"),
        "{line}"
    );
}

#[test]
fn a_different_resource_action_value_or_count_changes_the_fingerprint() {
    let base = Plan::parse(PLAN).fingerprint();
    let variants = [
        PLAN.replace(
            "aws_route53_record.airflow will be updated in-place",
            "aws_route53_record.airflow_v2 will be updated in-place",
        ),
        PLAN.replace(
            "aws_route53_record.airflow will be updated in-place",
            "aws_route53_record.airflow must be replaced",
        ),
        PLAN.replace("-> \"9a8b7c6d", "-> \"0a8b7c6d"),
        PLAN.replace("- \"10.0.1.23\",", "- \"10.0.1.24\","),
        PLAN.replace(
            "Plan: 1 to add, 1 to change, 1 to destroy.",
            "Plan: 1 to add, 1 to change, 2 to destroy.",
        ),
        PLAN.replace(
            "Plan: 1 to add, 1 to change, 1 to destroy.",
            "Plan: 1 to add, 1 to change, 1 to destroy. Actions: 1 to invoke.",
        ),
        PLAN.replace(
            "Plan: 1 to add",
            "  # aws_db_instance.catalog will be destroyed\n\nPlan: 1 to add",
        ),
        PLAN.replace("Plan: 1 to add, 1 to change, 1 to destroy.", ""),
        // An unknown form inside the block is kept (fail closed).
        PLAN.replace("    }\n\nPlan:", "    }\n  ? something new\n\nPlan:"),
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_ne!(v.as_str(), PLAN, "variant {i} must differ from the fixture");
        assert_ne!(Plan::parse(v).fingerprint(), base, "variant {i}");
    }
}

#[test]
fn an_unreadable_plan_line_makes_the_plan_unrecognised() {
    let teleport = PLAN.replace("1 to destroy.", "1 to destroy, 1 to teleport.");
    let plan = Plan::parse(&teleport);
    assert!(!plan.is_recognised());
    assert_ne!(plan.fingerprint(), Plan::parse(PLAN).fingerprint());
}

#[test]
fn garbage_is_unrecognised_not_a_panic() {
    for text in [
        "",
        "\n\n\n",
        "Error: Invalid provider configuration",
        "#",
        "# ",
        "#  will be created",
        "# (",
        "Plan: ",
        "Plan: 1 to",
        "\u{1b}",
        "\u{1b}[",
        "\u{1b}]8;;",
        "\u{0}\u{ffff}→✅",
    ] {
        let plan = Plan::parse(text);
        assert!(!plan.is_recognised(), "{text:?}");
        assert!(plan.resources.is_empty(), "{text:?}");
    }
    assert_eq!(Plan::parse("").normalized(), "Plan: unknown\n");
    assert_eq!(before_prompt("no prompt here"), None);
    // "No changes." beside resources, or beside a `Plan:` line the bot cannot read, is
    // contradictory: not taken as no changes.
    assert!(!Plan::parse(&format!("No changes.\n{PLAN}")).no_changes);
    let unread = Plan::parse("No changes.\nPlan: x to add, 0 to change, 0 to destroy.\n");
    assert!(!unread.no_changes && !unread.is_recognised());
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// The indexes of the lines that state an operation, by the definition and independently
/// of the parser: from the first block to Terraform's question, headers and notes (`# …` but not
/// `# (N unchanged … hidden)`), the `Plan:` line, and lines with a change symbol whose value is
/// known (`~ x = a -> (known after apply)` only says Terraform will recompute `x`).
fn operation_lines(lines: &[&str]) -> Vec<usize> {
    let plain: Vec<String> = lines.iter().map(|l| strip_ansi(l)).collect();
    let start = plain.iter().position(|l| {
        l.contains("will perform the following actions:")
            || l.trim() == "Changes to Outputs:"
            || l.contains("will invoke the following action(s):")
    });
    let Some(start) = start else {
        return Vec::new();
    };
    let end = plain
        .iter()
        .position(|l| l.starts_with("Do you want to perform"))
        .unwrap_or(plain.len());
    (start..end)
        .filter(|&i| {
            let t = plain[i].trim();
            let hidden = t.starts_with("# (") && t.ends_with(" hidden)");
            let marked = ["+ ", "- ", "~ ", "-/+ ", "+/- ", "<= ", ". "]
                .iter()
                .any(|m| t.starts_with(m));
            let recomputed = t.starts_with("~ ") && t.ends_with("-> (known after apply)");
            (t.starts_with("# ") && !hidden) || t.starts_with("Plan: ") || (marked && !recomputed)
        })
        .collect()
}

/// `text` with line `i` replaced by `with` (or removed).
fn edit(lines: &[&str], i: usize, with: Option<String>) -> String {
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match with {
        Some(w) => out[i] = w,
        None => {
            out.remove(i);
        }
    }
    out.join("\n")
}

#[test]
fn every_operation_line_of_every_small_case_counts() {
    // Exhaustively: removing any one operation line changes the fingerprint.
    let mut checked = 0;
    for c in SMALL.iter() {
        let text = before_prompt(&c.apply).expect("a prompt");
        let lines: Vec<&str> = text.lines().collect();
        let base = Plan::parse(text).fingerprint();
        for i in operation_lines(&lines) {
            let without = edit(&lines, i, None);
            assert_ne!(
                Plan::parse(&without).fingerprint(),
                base,
                "{}: removing line {} {:?} left the fingerprint alone",
                c.id,
                i + 1,
                lines[i]
            );
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} operation lines were checked");
    println!(
        "removing each of {checked} operation lines of {} cases changed the fingerprint",
        SMALL.len()
    );
}

/// Noise lines Terraform (or a log collector) may print anywhere.
const NOISE_LINES: [&str; 7] = [
    "aws_instance.noise: Refreshing state... [id=i-0123456789abcdef0]",
    "module.catalog_airflow.data.aws_ami.ubuntu: Reading...",
    "module.catalog_airflow.data.aws_ami.ubuntu: Read complete after 2s [id=ami-0a1b2c3d]",
    "data.aws_iam_policy_document.x: Still reading... [10s elapsed]",
    "        # (28 unchanged attributes hidden)",
    "            # (2 unchanged elements hidden)",
    "",
];

/// A drift report as Terraform prints it before the plan, ending with its rule.
const DRIFT_REPORT: &str = "\nNote: Objects have changed outside of Terraform\n\n\
Terraform detected the following changes made outside of Terraform since the\n\
last \"terraform apply\" which may have affected this plan:\n\n\
  # aws_instance.noise has changed\n\
  ~ resource \"aws_instance\" \"noise\" {\n\
        id  = \"i-0123456789abcdef0\"\n\
      ~ ami = \"ami-1\" -> \"ami-2\"\n\
        # (3 unchanged attributes hidden)\n\
    }\n\n\n\
Unless you have made equivalent changes to your configuration, or ignored the\n\
relevant attributes using ignore_changes, the following plan may include\n\
actions to undo or respond to these changes.\n\n\
─────────────────────────────────────────────────────────────────────────────\n";

/// What `terraform plan` prints after a plan.
const TRAILERS: [&str; 2] = [
    "\n─────────────────────────────────────────────────────────────────────────────\n\n\
     Saved the plan to: tfplan\n\n\
     To perform exactly these actions, run the following command to apply:\n    \
     terraform apply \"tfplan\"\n",
    "\n─────────────────────────────────────────────────────────────────────────────\n\n\
     Note: You didn't use the -out option to save this plan, so Terraform can't\n\
     guarantee to take exactly these actions if you run \"terraform apply\" now.\n",
];

/// `lines` with every kind of noise the flags select.
fn noisy(lines: &[&str], flags: u8, at: &[(usize, usize)]) -> String {
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    // Noise lines at the chosen places (from the end, so earlier places stay valid).
    if flags & 1 != 0 {
        let mut places: Vec<(usize, usize)> = at
            .iter()
            .map(|&(p, n)| (p % (out.len() + 1), n % NOISE_LINES.len()))
            .collect();
        places.sort_unstable();
        for (p, n) in places.into_iter().rev() {
            out.insert(p, NOISE_LINES[n].to_string());
        }
    }
    let mut text = String::new();
    if flags & 2 != 0 {
        text.push_str(DRIFT_REPORT);
    }
    for line in &out {
        let mut l = line.clone();
        if flags & 4 != 0 && !l.contains('\u{1b}') {
            // Colour every word, and the line.
            l = format!(
                "\u{1b}[0m\u{1b}[1m{}\u{1b}[0m",
                l.replace(' ', " \u{1b}[32m")
            );
        }
        if flags & 8 != 0 {
            l = format!("2024-05-01T12:00:00.1234567Z {l}");
        }
        if flags & 16 != 0 {
            l.push_str(" \t");
        }
        text.push_str(&l);
        text.push_str(if flags & 32 != 0 { "\r\n" } else { "\n" });
    }
    if flags & 64 != 0 {
        text.push_str(TRAILERS[usize::from(flags >> 7)]);
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn changing_adding_or_removing_any_operation_line_changes_the_fingerprint(
        case in 0usize..1000,
        pick in any::<prop::sample::Index>(),
        how in 0u8..3,
        at in any::<prop::sample::Index>(),
        replacement in "[a-z0-9\"=]",
    ) {
        let c = &SMALL[case % SMALL.len()];
        let text = before_prompt(&c.apply).expect("a prompt");
        let lines: Vec<&str> = text.lines().collect();
        let ops = operation_lines(&lines);
        prop_assume!(!ops.is_empty());
        let i = ops[pick.index(ops.len())];
        let line = lines[i];
        let base = Plan::parse(text).fingerprint();
        let changed = match how {
            // Change one character of the line's text (past its indentation and symbol).
            0 => {
                // On the line without its colours (which by themselves change nothing).
                let plain = strip_ansi(line);
                let start = plain.len() - plain.trim_start().len();
                let chars: Vec<(usize, char)> = plain[start..]
                    .char_indices()
                    .filter(|(_, ch)| !ch.is_whitespace())
                    .map(|(p, ch)| (p + start, ch))
                    .collect();
                let (p, old) = chars[at.index(chars.len())];
                let new = if replacement.starts_with(old) { 'Q' } else {
                    replacement.chars().next().unwrap_or('Q')
                };
                let mut l = plain.clone();
                l.replace_range(p..p + old.len_utf8(), &new.to_string());
                edit(&lines, i, Some(l))
            }
            // Add an operation line after it: a changed attribute, or a new resource.
            1 => {
                let indent = &line[..line.len() - line.trim_start().len()];
                let added = if i.is_multiple_of(2) {
                    format!("{indent}+ added_by_property = \"{replacement}\"")
                } else {
                    format!("  # aws_instance.added_by_property will be created\n  + resource \"aws_instance\" \"added_by_property\" {{\n      + ami = \"{replacement}\"\n    }}")
                };
                // A `Plan:` line ends the block: what is added goes before it.
                if strip_ansi(line).starts_with("Plan:") {
                    edit(&lines, i, Some(format!("{added}\n{line}")))
                } else {
                    edit(&lines, i, Some(format!("{line}\n{added}")))
                }
            }
            // Remove it.
            _ => edit(&lines, i, None),
        };
        prop_assert_ne!(
            Plan::parse(&changed).fingerprint(),
            base,
            "{}: line {} {:?} (how {})",
            &c.id, i + 1, line, how
        );
    }

    #[test]
    fn noise_of_every_kind_leaves_the_fingerprint_alone(
        case in 0usize..1000,
        flags in any::<u8>(),
        at in proptest::collection::vec((any::<usize>(), any::<usize>()), 0..12),
        prompted in any::<bool>(),
    ) {
        let c = &SMALL[case % SMALL.len()];
        let text = before_prompt(&c.apply).expect("a prompt");
        let base = Plan::parse(text);
        let lines: Vec<&str> = text.lines().collect();
        let mut variant = noisy(&lines, flags, &at);
        let parsed = if prompted {
            variant.push_str(QUESTION);
            variant.push_str(PROMPT);
            variant.push(' ');
            Plan::parse_before_prompt(&variant).expect("a prompt")
        } else {
            Plan::parse(&variant)
        };
        prop_assert_eq!(
            parsed.fingerprint(),
            base.fingerprint(),
            "{} with noise flags {:#010b}:\n{}\n---- became ----\n{}",
            &c.id, flags, base.normalized(), parsed.normalized()
        );
        prop_assert_eq!(parsed.summary, base.summary);
    }

    #[test]
    fn resource_blocks_may_come_in_any_order(mut n in proptest::collection::vec(0u8..50, 1..10)) {
        let render = |n: &[u8]| {
            n.iter()
                .map(|i| format!("  # aws_instance.r{i} will be created\n  + resource \"aws_instance\" \"r{i}\" {{\n      + ami = \"ami-{i}\"\n    }}\n"))
                .collect::<String>()
        };
        let a = Plan::parse(&render(&n)).fingerprint();
        n.reverse();
        prop_assert_eq!(a, Plan::parse(&render(&n)).fingerprint());
    }

    #[test]
    fn parse_never_panics(s in "\\PC*") {
        let plan = Plan::parse(&s);
        prop_assert_eq!(plan.fingerprint().len(), 64);
        let _ = plan.human_summary();
        let _ = Plan::parse_before_prompt(&s);
    }

    #[test]
    fn parse_never_panics_on_plan_shaped_text(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("  # a.b will be created".to_string()),
                Just("  # must be replaced".to_string()),
                Just("    # Actions to be invoked after this change in order:".to_string()),
                Just("  # action.x.y will be invoked".to_string()),
                Just("Changes to Outputs:".to_string()),
                Just("  + x = <<-EOT".to_string()),
                Just("Plan: 1 to add, 0 to change, 0 to destroy. Actions: 1 to invoke.".to_string()),
                Just("No changes.".to_string()),
                Just("\u{1b}[1m".to_string()),
                Just("Enter a value:".to_string()),
                "[#:. \u{1b}\\[a-z0-9→~+<=-]{0,40}",
            ],
            0..20,
        )
    ) {
        let text = lines.join("\n");
        let plan = Plan::parse(&text);
        prop_assert_eq!(plan.fingerprint().len(), 64);
        let _ = plan.human_summary();
    }
}
