//! What Terraform says it did, compared with what was approved: after the `yes`, an apply ends
//! with `Apply complete! Resources: [I imported, ]A added, C changed, D destroyed[, F forgotten].`
//! (`Destroy complete! Resources: D destroyed.` for a destroy). The counts must be the approved
//! plan's; anything else is shown loudly, never passed over.

use std::fmt;

use super::{Action, PROMPT, Plan, headers, text};

/// The counts of Terraform's `Apply complete!` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Printed only when non-zero (Terraform 1.5+).
    pub imported: Option<u64>,
    pub added: u64,
    pub changed: u64,
    pub destroyed: u64,
    /// Printed by OpenTofu (and some Terraform versions) only when non-zero.
    pub forgotten: Option<u64>,
    /// ` Actions: N invoked.` after the counts (Terraform 1.14), when actions ran.
    pub invoked: Option<u64>,
}

impl Applied {
    /// The last `Apply complete!` or `Destroy complete!` line of `output`, if one was printed and
    /// understood.
    pub fn find(output: &str) -> Option<Applied> {
        output.lines().rev().find_map(|raw| {
            let line = text::clean(raw);
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("Apply complete! Resources: ") {
                Applied::counts(rest, false)
            } else if let Some(rest) = t.strip_prefix("Destroy complete! Resources: ") {
                Applied::counts(rest, true)
            } else {
                None
            }
        })
    }

    /// `1 imported, 2 added, 0 changed, 1 destroyed, 1 forgotten.[ Actions: 1 invoked.]`
    /// (`destroy`: only `destroyed` and `forgotten` may appear).
    fn counts(rest: &str, destroy: bool) -> Option<Applied> {
        let (list, tail) = rest.split_once('.')?;
        let mut a = Applied::default();
        let tail = tail.trim();
        if !tail.is_empty() {
            let actions = tail.strip_prefix("Actions: ")?.strip_suffix('.')?;
            let (n, "invoked") = headers::count(actions, "")? else {
                return None;
            };
            a.invoked = Some(n);
        }
        let mut seen = Vec::new();
        for item in list.split(',') {
            let (n, verb) = headers::count(item, "")?;
            if seen.contains(&verb) {
                return None;
            }
            seen.push(verb);
            match verb {
                "imported" if !destroy => a.imported = Some(n),
                "added" if !destroy => a.added = n,
                "changed" if !destroy => a.changed = n,
                "destroyed" => a.destroyed = n,
                "forgotten" => a.forgotten = Some(n),
                _ => return None,
            }
        }
        let needed: &[&str] = if destroy {
            &["destroyed"]
        } else {
            &["added", "changed", "destroyed"]
        };
        needed.iter().all(|v| seen.contains(v)).then_some(a)
    }

    /// What an apply of `plan` must report.
    pub fn expected(plan: &Plan) -> Applied {
        let s = plan.summary.unwrap_or_default();
        // Terraform does not count forgotten objects on its `Plan:` line (OpenTofu does): the
        // headers say how many there are.
        let forget_headers = plan
            .resources
            .iter()
            .filter(|r| matches!(r.action, Action::Forget | Action::ReplaceKeepingOld))
            .count() as u64;
        Applied {
            imported: Some(s.import),
            added: s.add,
            changed: s.change,
            destroyed: s.destroy,
            forgotten: Some(s.forget.max(forget_headers)),
            invoked: Some(s.invoke),
        }
    }

    /// True when `self` (reported) agrees with `expected`; a count Terraform did not print is
    /// taken as 0 for imports (printed whenever non-zero) and not compared for forgotten objects
    /// and invoked actions (older versions never print them).
    fn agrees_with(&self, expected: &Applied) -> bool {
        self.added == expected.added
            && self.changed == expected.changed
            && self.destroyed == expected.destroyed
            && self.imported.unwrap_or(0) == expected.imported.unwrap_or(0)
            && self.forgotten.is_none_or(|f| Some(f) == expected.forgotten)
            && self.invoked.is_none_or(|n| Some(n) == expected.invoked)
    }
}

impl fmt::Display for Applied {
    /// Terraform's wording, the optional counts only when present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.imported.filter(|i| *i > 0) {
            write!(f, "{i} imported, ")?;
        }
        write!(
            f,
            "{} added, {} changed, {} destroyed",
            self.added, self.changed, self.destroyed
        )?;
        if let Some(n) = self.forgotten.filter(|n| *n > 0) {
            write!(f, ", {n} forgotten")?;
        }
        if let Some(n) = self.invoked.filter(|n| *n > 0) {
            write!(f, "; actions: {n} invoked")?;
        }
        Ok(())
    }
}

/// The verdict on an apply that was answered `yes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyCheck {
    /// Terraform reported exactly the approved counts.
    AsApproved(Applied),
    /// Terraform reported other counts than the approved plan's.
    Mismatch {
        reported: Applied,
        approved: Applied,
    },
    /// No `Apply complete!` line: what was applied cannot be compared.
    NotReported,
}

impl ApplyCheck {
    /// Compares what the apply step printed after the prompt (`output` is the head of its
    /// output, `tail` the end of it) with `approved`, the plan that was answered `yes`.
    pub fn new(approved: &Plan, output: &str, tail: &str) -> ApplyCheck {
        // Only what came after the answered prompt: the plan before it is Terraform's text too
        // and could quote anything.
        let after_prompt = |s: &str| -> String { s.rfind(PROMPT).map_or(s, |at| &s[at..]).into() };
        let reported =
            Applied::find(&after_prompt(tail)).or_else(|| Applied::find(&after_prompt(output)));
        let expected = Applied::expected(approved);
        match reported {
            None => ApplyCheck::NotReported,
            Some(r) if r.agrees_with(&expected) => ApplyCheck::AsApproved(r),
            Some(r) => ApplyCheck::Mismatch {
                reported: r,
                approved: expected,
            },
        }
    }

    /// A stable word for the journal and the audit log: `as_approved`, `mismatch`,
    /// `not_reported`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyCheck::AsApproved(_) => "as_approved",
            ApplyCheck::Mismatch { .. } => "mismatch",
            ApplyCheck::NotReported => "not_reported",
        }
    }

    /// True unless Terraform reported the approved counts.
    pub fn needs_attention(&self) -> bool {
        !matches!(self, ApplyCheck::AsApproved(_))
    }

    /// One sentence for people.
    pub fn sentence(&self) -> String {
        match self {
            ApplyCheck::AsApproved(a) => format!("Terraform reported {a}, as approved."),
            ApplyCheck::Mismatch { reported, approved } => format!(
                "MISMATCH: Terraform reported {reported}, but the approved plan was {}; check \
                 what was applied.",
                approved.as_plan()
            ),
            ApplyCheck::NotReported => "Terraform printed no `Apply complete!` line, so what it \
                                        applied could not be compared with the approved plan."
                .to_string(),
        }
    }

    /// The counts as JSON for the audit detail: `{"reported": "...", "approved": "..."}`.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            ApplyCheck::AsApproved(a) => serde_json::json!({ "reported": a.to_string() }),
            ApplyCheck::Mismatch { reported, approved } => serde_json::json!({
                "reported": reported.to_string(),
                "approved": approved.as_plan(),
            }),
            ApplyCheck::NotReported => serde_json::json!({}),
        }
    }
}

impl Applied {
    /// The same counts in the `Plan:` line's words (`1 to add, …`).
    fn as_plan(&self) -> String {
        let mut s = String::new();
        if let Some(i) = self.imported.filter(|i| *i > 0) {
            s.push_str(&format!("{i} to import, "));
        }
        s.push_str(&format!(
            "{} to add, {} to change, {} to destroy",
            self.added, self.changed, self.destroyed
        ));
        if let Some(n) = self.forgotten.filter(|n| *n > 0) {
            s.push_str(&format!(", {n} to forget"));
        }
        if let Some(n) = self.invoked.filter(|n| *n > 0) {
            s.push_str(&format!("; actions: {n} to invoke"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "  # a.b will be created\n  # a.c will be destroyed\n\
                        Plan: 1 to add, 0 to change, 1 to destroy.\n";

    fn after(result: &str) -> String {
        format!("{PLAN}\n  Enter a value: yes\n\na.b: Creating...\n\n{result}\n")
    }

    #[test]
    fn apply_complete_lines_are_read_in_every_form() {
        let a = |t: &str| Applied::find(t);
        assert_eq!(
            a("Apply complete! Resources: 1 added, 2 changed, 3 destroyed."),
            Some(Applied {
                added: 1,
                changed: 2,
                destroyed: 3,
                ..Applied::default()
            })
        );
        assert_eq!(
            a(
                "\u{1b}[0m\u{1b}[1m\u{1b}[32mApply complete! Resources: 2 imported, 0 added, 1 changed, 0 destroyed.\u{1b}[0m\r"
            ),
            Some(Applied {
                imported: Some(2),
                changed: 1,
                ..Applied::default()
            })
        );
        assert_eq!(
            a("Apply complete! Resources: 0 added, 0 changed, 0 destroyed, 1 forgotten."),
            Some(Applied {
                forgotten: Some(1),
                ..Applied::default()
            })
        );
        assert_eq!(
            a("Apply complete! Resources: 0 added, 1 changed, 0 destroyed. Actions: 1 invoked."),
            Some(Applied {
                changed: 1,
                invoked: Some(1),
                ..Applied::default()
            })
        );
        assert_eq!(
            a("Destroy complete! Resources: 4 destroyed."),
            Some(Applied {
                destroyed: 4,
                ..Applied::default()
            })
        );
        for bad in [
            "Apply complete! Resources: 1 added, 2 changed.",
            "Apply complete! Resources: 1 added, 2 changed, 3 destroyed",
            "Apply complete! Resources: 1 added, 1 added, 2 changed, 3 destroyed.",
            "Apply complete! Resources: 1 teleported, 1 added, 2 changed, 3 destroyed.",
            "Destroy complete! Resources: 1 added, 3 destroyed.",
            "Apply complete! Resources: 0 added, 1 changed, 0 destroyed. Actions: 1 teleported.",
            "Apply complete! Resources: 0 added, 1 changed, 0 destroyed. Actions: 1 invoked",
            "Apply cancelled.",
        ] {
            assert_eq!(a(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_approved_counts_pass_and_others_are_a_mismatch() {
        let plan = Plan::parse(PLAN);
        let ok = ApplyCheck::new(
            &plan,
            &after("Apply complete! Resources: 1 added, 0 changed, 1 destroyed."),
            "",
        );
        assert_eq!(ok.kind(), "as_approved");
        assert!(!ok.needs_attention());
        assert_eq!(
            ok.sentence(),
            "Terraform reported 1 added, 0 changed, 1 destroyed, as approved."
        );

        let bad = ApplyCheck::new(
            &plan,
            &after("Apply complete! Resources: 2 added, 0 changed, 1 destroyed."),
            "",
        );
        assert_eq!(bad.kind(), "mismatch");
        assert!(bad.needs_attention());
        assert_eq!(
            bad.sentence(),
            "MISMATCH: Terraform reported 2 added, 0 changed, 1 destroyed, but the approved plan \
             was 1 to add, 0 to change, 1 to destroy; check what was applied."
        );
        let imported = ApplyCheck::new(
            &plan,
            &after("Apply complete! Resources: 1 imported, 1 added, 0 changed, 1 destroyed."),
            "",
        );
        assert_eq!(imported.kind(), "mismatch", "an unplanned import");

        let none = ApplyCheck::new(&plan, &after("Apply cancelled."), "");
        assert_eq!(none.kind(), "not_reported");
        assert!(none.needs_attention());
    }

    #[test]
    fn only_what_follows_the_prompt_counts() {
        // The plan itself quotes an `Apply complete!` line (a heredoc, say); the apply printed
        // none after the prompt.
        let plan_text = "  # a.b will be created\n  + x = <<-EOT\n        Apply complete! Resources: 1 added, 0 changed, 0 destroyed.\n    EOT\n\
             Plan: 1 to add, 0 to change, 0 to destroy.\n";
        let plan = Plan::parse(plan_text);
        let output = format!("{plan_text}\n  Enter a value: yes\n\nError: boom\n");
        assert_eq!(
            ApplyCheck::new(&plan, &output, &output).kind(),
            "not_reported"
        );
        // The tail is read first: the head may have been cut before the end.
        let tail =
            "  Enter a value: yes\nApply complete! Resources: 1 added, 0 changed, 0 destroyed.\n";
        assert_eq!(ApplyCheck::new(&plan, &output, tail).kind(), "as_approved");
    }

    #[test]
    fn forgotten_and_imported_objects_are_compared_when_printed() {
        let plan = Plan::parse(
            " # a.k will no longer be managed by Terraform, but will not be destroyed\n \
             # (destroy = false is set in the configuration)\n . resource \"x\" \"k\" {\n    }\n\n\
             Plan: 0 to add, 0 to change, 0 to destroy.\n",
        );
        let check =
            |r: &str| ApplyCheck::new(&plan, &format!("Enter a value: yes\n{r}\n"), "").kind();
        assert_eq!(
            check("Apply complete! Resources: 0 added, 0 changed, 0 destroyed."),
            "as_approved"
        );
        assert_eq!(
            check("Apply complete! Resources: 0 added, 0 changed, 0 destroyed, 1 forgotten."),
            "as_approved"
        );
        assert_eq!(
            check("Apply complete! Resources: 0 added, 0 changed, 0 destroyed, 2 forgotten."),
            "mismatch"
        );
    }
}
