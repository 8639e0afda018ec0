//! The plan fingerprint: what an approver approves.
//!
//! Terraform's human output (from `terraform plan`, and from an interactive `terraform apply`
//! before it asks `Enter a value:`) is reduced to the set of resource addresses with their actions
//! plus the `Plan: x to add, y to change, z to destroy` line. Everything else — colours,
//! timestamps, refresh and read progress, attribute diffs, hidden-attribute counts, notes — is
//! noise that differs between two runs of the same change, so it is left out. The fingerprint is
//! the hex SHA-256 of that normalised text; apply answers `yes` only when the plan it printed has
//! the approved fingerprint.
//!
//! Parsing is total: any text yields a [`Plan`] (garbage yields an empty, unrecognised one), so a
//! surprising output can fail the deploy with a sentence instead of a panic.

use std::collections::BTreeSet;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::integrations::infra::{PROMPT, strip_ansi};

/// The most resources [`Plan::human_summary`] names before it says "and N more".
const HUMAN_SUMMARY_RESOURCES: usize = 5;

/// What Terraform will do to one resource instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Create,
    Update,
    /// Destroy and re-create, in either order (`-/+` or `+/-`), tainted or requested.
    Replace,
    Destroy,
    /// A data source read during apply.
    Read,
    /// Imported into the state (Terraform 1.5+ `import` blocks without other changes).
    Import,
    /// Removed from the state without being destroyed (Terraform 1.7+ `removed` blocks).
    Forget,
}

impl Action {
    /// The word used in the normalised text and in summaries; part of the fingerprint, so it
    /// must never change.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Destroy => "destroy",
            Action::Read => "read",
            Action::Import => "import",
            Action::Forget => "forget",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The endings of Terraform's `  # <address> …` resource headers. Longer phrases sharing a tail
/// with shorter ones come first (`is tainted, so must be replaced` before `must be replaced`).
/// `will be replaced` is a prefix match: Terraform adds `, as requested` or
/// ` due to changes in replace_triggered_by`.
const HEADERS: [(&str, Action, bool); 10] = [
    (" will be created", Action::Create, false),
    (" will be destroyed", Action::Destroy, false),
    (" will be updated in-place", Action::Update, false),
    (" is tainted, so must be replaced", Action::Replace, false),
    (" must be replaced", Action::Replace, false),
    (" will be replaced", Action::Replace, true),
    (" will be read during apply", Action::Read, false),
    (" will be imported", Action::Import, false),
    (
        " will no longer be managed by Terraform",
        Action::Forget,
        false,
    ),
    (" will be forgotten", Action::Forget, false),
];

/// One resource instance and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceChange {
    /// As Terraform prints it, e.g. `module.catalog_airflow.aws_instance.airflow` or
    /// `aws_s3_bucket.b["my bucket"]` or `aws_instance.a (deposed object 1a2b3c4d)`.
    pub address: String,
    pub action: Action,
}

/// The `Plan:` line's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanSummary {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
    /// `N to import` (Terraform 1.5+); 0 when absent.
    pub import: u64,
    /// `N to forget` (Terraform 1.7+); 0 when absent.
    pub forget: u64,
}

impl PlanSummary {
    fn is_empty(&self) -> bool {
        *self == PlanSummary::default()
    }
}

impl fmt::Display for PlanSummary {
    /// Terraform's own wording; the optional counts appear only when non-zero so that the common
    /// line reads exactly as Terraform prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plan: ")?;
        if self.import > 0 {
            write!(f, "{} to import, ", self.import)?;
        }
        write!(
            f,
            "{} to add, {} to change, {} to destroy",
            self.add, self.change, self.destroy
        )?;
        if self.forget > 0 {
            write!(f, ", {} to forget", self.forget)?;
        }
        Ok(())
    }
}

/// A parsed Terraform plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Sorted and without duplicates: the fingerprint is over a set.
    pub resources: Vec<ResourceChange>,
    /// The last `Plan:` line, if one was printed and understood.
    pub summary: Option<PlanSummary>,
    /// Terraform said "No changes." and nothing contradicts it.
    pub no_changes: bool,
}

impl Plan {
    /// Parses Terraform's human output. Never panics; unrecognised text yields an empty plan for
    /// which [`Plan::is_recognised`] is false.
    pub fn parse(text: &str) -> Plan {
        let mut resources = BTreeSet::new();
        let mut summary = None;
        let mut said_no_changes = false;
        for raw in text.lines() {
            let clean = strip_ansi(raw);
            let line = skip_line_prefix(&clean);
            if let Some(change) = resource_header(line) {
                resources.insert(change);
            } else if let Some(s) = summary_line(line) {
                // Apply may print the plan again; the last line is what is about to happen.
                summary = Some(s);
            } else if line.starts_with("No changes.") {
                said_no_changes = true;
            }
        }
        let no_changes =
            said_no_changes && resources.is_empty() && summary.is_none_or(|s| s.is_empty());
        Plan {
            resources: resources.into_iter().collect(),
            summary,
            no_changes,
        }
    }

    /// Parses the plan that an interactive `terraform apply` printed before its prompt; `None`
    /// when the text holds no prompt.
    pub fn parse_before_prompt(text: &str) -> Option<Plan> {
        before_prompt(text).map(Plan::parse)
    }

    /// True when the text looked like a plan: it had a `Plan:` line or said "No changes.".
    /// A deploy must not proceed on an unrecognised plan.
    pub fn is_recognised(&self) -> bool {
        self.summary.is_some() || self.no_changes
    }

    /// True when the `Plan:` counts agree with the resource headers (a replace counts as one add
    /// and one destroy; reads are not counted). A mismatch means the output was cut or misread.
    pub fn is_consistent(&self) -> bool {
        let Some(s) = self.summary else {
            return self.no_changes;
        };
        let count = |a: Action| self.resources.iter().filter(|r| r.action == a).count() as u64;
        let replace = count(Action::Replace);
        s.add == count(Action::Create) + replace
            && s.change == count(Action::Update)
            && s.destroy == count(Action::Destroy) + replace
            && s.forget == count(Action::Forget)
            // An import may also be shown under another header (import + update), so the count
            // of pure import headers is only a lower bound.
            && s.import >= count(Action::Import)
    }

    /// The normalised text the fingerprint is computed over: one `address action` line per
    /// resource, sorted, then the summary line (or `No changes.`, or `Plan: unknown`).
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        for r in &self.resources {
            out.push_str(&r.address);
            out.push(' ');
            out.push_str(r.action.as_str());
            out.push('\n');
        }
        match (self.summary, self.no_changes) {
            (Some(s), _) => out.push_str(&format!("{s}.\n")),
            (None, true) => out.push_str("No changes.\n"),
            (None, false) => out.push_str("Plan: unknown\n"),
        }
        out
    }

    /// Hex SHA-256 of [`Plan::normalized`].
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.normalized().as_bytes()))
    }

    /// One line for people, e.g. `Plan: 1 to add, 1 to change, 1 to destroy
    /// (module.catalog_airflow.aws_instance.airflow: replace; … : update)`.
    pub fn human_summary(&self) -> String {
        let head = match (self.summary, self.no_changes) {
            (_, true) => return "No changes.".to_string(),
            (Some(s), false) => s.to_string(),
            (None, false) => "Plan: no summary line".to_string(),
        };
        if self.resources.is_empty() {
            return head;
        }
        let mut parts: Vec<String> = self
            .resources
            .iter()
            .take(HUMAN_SUMMARY_RESOURCES)
            .map(|r| format!("{}: {}", r.address, r.action))
            .collect();
        if self.resources.len() > HUMAN_SUMMARY_RESOURCES {
            parts.push(format!(
                "… and {} more",
                self.resources.len() - HUMAN_SUMMARY_RESOURCES
            ));
        }
        format!("{head} ({})", parts.join("; "))
    }
}

/// The part of `text` before the last `Enter a value:` prompt, or `None` without a prompt.
///
/// The last one, because the step runner hands over everything printed so far when a prompt
/// appears, so the prompt being answered is always the last; any earlier one (an input variable)
/// came before the plan was printed.
pub fn before_prompt(text: &str) -> Option<&str> {
    text.rfind(PROMPT).map(|at| &text[..at])
}

/// Skips what a log collector or CI prepends (timestamps like `2024-05-01T12:00:00.123Z`,
/// `[12:00:00]`, `2024/05/01 12:00:00`) and the indentation. Letters other than the `T`/`Z` of
/// ISO timestamps stop it, so the interesting lines (`# …`, `Plan: …`, `No changes.`) are intact.
fn skip_line_prefix(line: &str) -> &str {
    line.trim_start_matches(|c: char| {
        c.is_ascii_digit() || c.is_whitespace() || "-:.,+/[]TZ".contains(c)
    })
    .trim_end()
}

/// `# <address> <phrase>` → the change it announces.
fn resource_header(line: &str) -> Option<ResourceChange> {
    let rest = line.strip_prefix("# ")?;
    for (phrase, action, prefix_match) in HEADERS {
        let address = if prefix_match {
            rest.find(phrase).map(|at| &rest[..at])
        } else {
            rest.strip_suffix(phrase)
        };
        // `# (28 unchanged attributes hidden)` and similar comments are not resources.
        if let Some(address) = address.map(str::trim)
            && !address.is_empty()
            && !address.starts_with('(')
        {
            return Some(ResourceChange {
                address: address.to_string(),
                action,
            });
        }
    }
    None
}

/// `Plan: [N to import, ]A to add, C to change, D to destroy[, F to forget][.| (…)]`.
fn summary_line(line: &str) -> Option<PlanSummary> {
    let rest = line.strip_prefix("Plan: ")?;
    let end = rest.find(['.', '(']).unwrap_or(rest.len());
    let mut s = PlanSummary::default();
    let (mut add, mut change, mut destroy) = (false, false, false);
    for item in rest[..end].split(',') {
        let mut words = item.split_whitespace();
        let (Some(n), Some("to"), Some(verb), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return None;
        };
        let n: u64 = n.parse().ok()?;
        match verb {
            "add" => (s.add, add) = (n, true),
            "change" => (s.change, change) = (n, true),
            "destroy" => (s.destroy, destroy) = (n, true),
            "import" => s.import = n,
            "forget" => s.forget = n,
            // An unknown count would be left out of the fingerprint; refuse the line instead.
            _ => return None,
        }
    }
    (add && change && destroy).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = include_str!("../../tests/fixtures/terraform-plan-image-bump.txt");
    const APPLY: &str = include_str!("../../tests/fixtures/terraform-apply-prompt.txt");

    fn rc(address: &str, action: Action) -> ResourceChange {
        ResourceChange {
            address: address.into(),
            action,
        }
    }

    #[test]
    fn the_image_bump_fixture_parses() {
        let plan = Plan::parse(PLAN);
        assert_eq!(
            plan.resources,
            [
                rc(
                    "module.catalog_airflow.aws_instance.airflow",
                    Action::Replace
                ),
                rc(
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
        assert_eq!(
            plan.normalized(),
            "module.catalog_airflow.aws_instance.airflow replace\n\
             module.catalog_airflow.aws_route53_record.airflow update\n\
             Plan: 1 to add, 1 to change, 1 to destroy.\n"
        );
        assert_eq!(plan.fingerprint().len(), 64);
    }

    #[test]
    fn plan_and_apply_fixtures_have_equal_fingerprints() {
        let apply = Plan::parse_before_prompt(APPLY).expect("the apply fixture ends in a prompt");
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
        let many: String = (0..7)
            .map(|i| format!("  # aws_s3_bucket.b{i} will be created\n"))
            .collect::<String>()
            + "Plan: 7 to add, 0 to change, 0 to destroy.\n";
        let line = Plan::parse(&many).human_summary();
        assert!(
            line.ends_with("aws_s3_bucket.b4: create; … and 2 more)"),
            "{line}"
        );
        assert_eq!(
            Plan::parse("No changes. Your infrastructure matches the configuration.")
                .human_summary(),
            "No changes."
        );
    }

    #[test]
    fn every_header_phrase_is_understood() {
        let text = "\
  # aws_instance.a will be created
  # aws_instance.b will be destroyed
  # aws_instance.c will be updated in-place
  # aws_instance.d must be replaced
  # aws_instance.e is tainted, so must be replaced
  # aws_instance.f will be replaced, as requested
  # aws_instance.g will be replaced due to changes in replace_triggered_by
  # data.aws_ami.h will be read during apply
  # aws_instance.i will be imported
  # aws_instance.j will no longer be managed by Terraform
  # aws_s3_bucket.k[\"my bucket\"] will be created
  # aws_instance.l (deposed object 1a2b3c4d) will be destroyed
    # (config refers to values not yet known)
        # (28 unchanged attributes hidden)
  # aws_instance.m has changed
";
        let got: Vec<(String, Action)> = Plan::parse(text)
            .resources
            .into_iter()
            .map(|r| (r.address, r.action))
            .collect();
        let want = [
            ("aws_instance.a", Action::Create),
            ("aws_instance.b", Action::Destroy),
            ("aws_instance.c", Action::Update),
            ("aws_instance.d", Action::Replace),
            ("aws_instance.e", Action::Replace),
            ("aws_instance.f", Action::Replace),
            ("aws_instance.g", Action::Replace),
            ("aws_instance.i", Action::Import),
            ("aws_instance.j", Action::Forget),
            ("aws_instance.l (deposed object 1a2b3c4d)", Action::Destroy),
            ("aws_s3_bucket.k[\"my bucket\"]", Action::Create),
            ("data.aws_ami.h", Action::Read),
        ];
        assert_eq!(
            got,
            want.map(|(a, x)| (a.to_string(), x)).to_vec(),
            "sorted by address, comments and drift notes ignored"
        );
    }

    #[test]
    fn summary_lines() {
        let s = |l: &str| summary_line(l);
        assert_eq!(
            s("Plan: 2 to import, 1 to add, 0 to change, 0 to destroy."),
            Some(PlanSummary {
                import: 2,
                add: 1,
                ..Default::default()
            })
        );
        assert_eq!(
            s("Plan: 0 to add, 0 to change, 0 to destroy, 3 to forget."),
            Some(PlanSummary {
                forget: 3,
                ..Default::default()
            })
        );
        assert_eq!(
            s("Plan: 1 to add, 1 to change, 1 to destroy (a: replace; b: update)")
                .map(|p| p.to_string()),
            Some("Plan: 1 to add, 1 to change, 1 to destroy".to_string())
        );
        for bad in [
            "Plan: 1 to add, 1 to change.",
            "Plan: x to add, 1 to change, 1 to destroy.",
            "Plan: 1 to add, 1 to change, 1 to destroy, 1 to teleport.",
            "Plan: -1 to add, 1 to change, 1 to destroy.",
            "Plan: 99999999999999999999999 to add, 0 to change, 0 to destroy.",
            "Plan:",
        ] {
            assert_eq!(s(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_different_resource_action_or_count_changes_the_fingerprint() {
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
            PLAN.replace(
                "Plan: 1 to add, 1 to change, 1 to destroy.",
                "Plan: 1 to add, 1 to change, 2 to destroy.",
            ),
            PLAN.replace(
                "Plan: 1 to add",
                "  # aws_db_instance.catalog will be destroyed\n\nPlan: 1 to add",
            ),
            PLAN.replace("Plan: 1 to add, 1 to change, 1 to destroy.", ""),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v.as_str(), PLAN, "variant {i} must differ from the fixture");
            assert_ne!(Plan::parse(v).fingerprint(), base, "variant {i}");
        }
    }

    #[test]
    fn colours_timestamps_noise_and_order_do_not_matter() {
        let base = Plan::parse(PLAN).fingerprint();
        let coloured = PLAN
            .replace(
                "  # module.catalog_airflow.aws_instance.airflow must be replaced",
                concat!(
                    "\u{1b}[0m  \u{1b}[1m# module.catalog_airflow.aws_instance.airflow\u{1b}[0m ",
                    "must be \u{1b}[1m\u{1b}[31mreplaced\u{1b}[0m",
                ),
            )
            .replace(
                "Plan: 1 to add",
                "\u{1b}[0m\u{1b}[1mPlan:\u{1b}[0m 1 to add",
            );
        let timestamped: String = PLAN
            .lines()
            .map(|l| format!("2024-05-01T12:00:00.123Z {l}\r\n"))
            .collect();
        let (first, second) = PLAN
            .split_once("  # module.catalog_airflow.aws_route53_record.airflow")
            .expect("fixture has two resources");
        let (plan_body, tail) = second.split_once("Plan:").expect("summary line");
        let reordered = format!(
            "  # module.catalog_airflow.aws_route53_record.airflow{plan_body}{first}Plan:{tail}"
        );
        let duplicated = format!("{PLAN}\n{PLAN}");
        for (name, text) in [
            ("coloured", coloured),
            ("timestamped", timestamped),
            ("reordered", reordered),
            ("duplicated", duplicated),
        ] {
            assert_eq!(Plan::parse(&text).fingerprint(), base, "{name}");
        }
    }

    #[test]
    fn no_changes() {
        for text in [
            concat!(
                "aws_instance.a: Refreshing state... [id=i-1]\n\n",
                "No changes. Your infrastructure matches the configuration.\n\n",
                "Terraform has compared your real infrastructure against your configuration and\n",
                "found no differences, so no changes are needed.\n",
            ),
            concat!(
                "\u{1b}[0m\u{1b}[1m\u{1b}[32mNo changes.\u{1b}[0m\u{1b}[1m ",
                "Infrastructure is up-to-date.\u{1b}[0m",
            ),
        ] {
            let plan = Plan::parse(text);
            assert!(plan.no_changes && plan.is_recognised() && plan.is_consistent());
            assert!(plan.resources.is_empty() && plan.summary.is_none());
            assert_eq!(plan.normalized(), "No changes.\n");
        }
        // "No changes." beside resources is contradictory: not taken as no changes.
        let mixed = format!("No changes.\n{PLAN}");
        assert!(!Plan::parse(&mixed).no_changes);
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
            assert_eq!(plan.normalized(), "Plan: unknown\n");
        }
        assert_eq!(before_prompt("no prompt here"), None);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in "\\PC*") {
                let plan = Plan::parse(&s);
                let _ = plan.fingerprint();
                let _ = plan.human_summary();
                let _ = Plan::parse_before_prompt(&s);
            }

            #[test]
            fn parse_never_panics_on_plan_shaped_text(
                lines in proptest::collection::vec(
                    prop_oneof![
                        Just("  # a.b will be created".to_string()),
                        Just("  # must be replaced".to_string()),
                        Just("Plan: 1 to add, 0 to change, 0 to destroy.".to_string()),
                        Just("No changes.".to_string()),
                        Just("\u{1b}[1m".to_string()),
                        Just("Enter a value:".to_string()),
                        "[#:. \u{1b}\\[a-z0-9→]{0,40}",
                    ],
                    0..20,
                )
            ) {
                let text = lines.join("\n");
                let plan = Plan::parse(&text);
                prop_assert_eq!(plan.fingerprint().len(), 64);
            }

            #[test]
            fn fingerprint_ignores_resource_order(mut n in proptest::collection::vec(0u8..50, 1..10)) {
                let render = |n: &[u8]| {
                    n.iter().map(|i| format!("  # aws_instance.r{i} will be created\n")).collect::<String>()
                };
                let a = Plan::parse(&render(&n)).fingerprint();
                n.reverse();
                prop_assert_eq!(a, Plan::parse(&render(&n)).fingerprint());
            }
        }
    }
}
