//! The plan fingerprint: what an approver approves.
//!
//! Terraform's human output (from `terraform plan`, and from an interactive `terraform apply`
//! before it asks `Enter a value:`) is reduced to every planned operation it prints, and only
//! those:
//!
//! - each resource change inside the "will perform the following actions" block: its header
//!   (`# <address> will be created`, `… will be updated in-place`, `… must be replaced` and the
//!   other replace forms, `… will be destroyed`, `… will be read during apply`, `… will be
//!   imported`, `… will no longer be managed by Terraform`, `# <old> has moved to <new>`), its
//!   notes (`# (moved from …)`, `# (imported from …)`, …) and the attribute lines that change
//!   (marked `+`, `-`, `~`, `-/+`, `+/-`, `<=`);
//! - action invocations (Terraform 1.14): after a change (`# Actions to be invoked after this
//!   change in order:`), and standalone (`# action.… will be invoked`), with their config;
//! - `Changes to Outputs:`;
//! - every count on the `Plan:` line (`to import`, `to add`, `to change`, `to destroy`,
//!   `to forget`, `Actions: N to invoke`), or "No changes.".
//!
//! Noise is left out: colours, log timestamps, CRLF and trailing blanks, refresh and read
//! progress, `# (N unchanged attributes hidden)`, unchanged context attributes, attributes
//! Terraform will recompute (`~ arn = … -> (known after apply)`), the "Objects have changed
//! outside of Terraform" report, deferred changes, the legend, trailers (`Saved the plan to`,
//! the `-out` note, warnings after the plan), the question and the prompt. Anything inside the
//! actions block that the bot does not recognise is kept (fail closed). The fingerprint is the hex
//! SHA-256 of that normalised text; apply answers `yes` only when the plan it printed has the
//! approved fingerprint.
//!
//! Parsing is total: any text yields a [`Plan`] (garbage yields an unrecognised one), so a
//! surprising output fails the deploy with a sentence instead of a panic.

mod applied;
mod body;
mod headers;
pub(crate) mod text;

use std::collections::BTreeSet;
use std::fmt;

use sha2::{Digest, Sha256};

pub use applied::{Applied, ApplyCheck};

use body::Line;
use headers::{Header, Note};

// The step runner owns Terraform's prompt text (and the colour stripping `text` uses).
use crate::integrations::infra::PROMPT;

/// The most changes [`Plan::human_summary`] names before it says "and N more".
const HUMAN_SUMMARY_ITEMS: usize = 8;

/// What Terraform will do to one resource instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Create,
    Update,
    /// Destroy and re-create, in either order (`-/+` or `+/-`), tainted or requested.
    Replace,
    /// Replace, but the old object is forgotten instead of destroyed (`lifecycle.destroy =
    /// false`).
    ReplaceKeepingOld,
    Destroy,
    /// A data source read during apply.
    Read,
    /// Imported into the state with no other change (Terraform 1.5+ `import` blocks).
    Import,
    /// Removed from the state without being destroyed (Terraform 1.7+ `removed` blocks).
    Forget,
    /// Only moved to another address (`moved` blocks): nothing else changes.
    Move,
}

impl Action {
    /// The word used in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::ReplaceKeepingOld => "replace (the old object is kept)",
            Action::Destroy => "destroy",
            Action::Read => "read",
            Action::Import => "import",
            Action::Forget => "forget",
            Action::Move => "move",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One resource instance and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceChange {
    /// As Terraform prints it, e.g. `module.catalog_airflow.aws_instance.airflow` or
    /// `aws_s3_bucket.b["my bucket"]` or `aws_instance.a (deposed object 1a2b3c4d)`.
    pub address: String,
    pub action: Action,
    /// The address it had before (`has moved to`, or `# (moved from …)` under a change).
    pub moved_from: Option<String>,
    /// It is imported as part of the change (`will be imported`, `# (imported from …)`).
    pub importing: bool,
}

/// One action Terraform will invoke (Terraform 1.14).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionInvocation {
    /// E.g. `action.aws_lambda_invoke.notify`.
    pub address: String,
    /// `after aws_instance.web`, `before aws_instance.web`, `called from …`; `None` for an
    /// invocation asked for on the command line.
    pub when: Option<String>,
}

/// The `Plan:` line's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanSummary {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
    /// `N to import` (Terraform 1.5+); 0 when absent.
    pub import: u64,
    /// `N to forget` (OpenTofu; Terraform does not count forgotten objects); 0 when absent.
    pub forget: u64,
    /// `Actions: N to invoke` (Terraform 1.14); 0 when absent.
    pub invoke: u64,
}

impl PlanSummary {
    fn is_empty(&self) -> bool {
        *self == PlanSummary::default()
    }

    /// Terraform's counts in its words, without `Plan: ` and the final full stop:
    /// `[I to import, ]A to add, C to change, D to destroy[, F to forget][. Actions: N to invoke]`.
    /// The optional counts appear when non-zero, where Terraform prints them.
    pub fn counts(&self) -> String {
        let mut s = String::new();
        if self.import > 0 {
            s.push_str(&format!("{} to import, ", self.import));
        }
        s.push_str(&format!(
            "{} to add, {} to change, {} to destroy",
            self.add, self.change, self.destroy
        ));
        if self.forget > 0 {
            s.push_str(&format!(", {} to forget", self.forget));
        }
        if self.invoke > 0 {
            s.push_str(&format!(". Actions: {} to invoke", self.invoke));
        }
        s
    }
}

impl fmt::Display for PlanSummary {
    /// The line as Terraform prints it, e.g. `Plan: 0 to add, 1 to change, 0 to destroy.
    /// Actions: 1 to invoke.`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plan: {}.", self.counts())
    }
}

/// A parsed Terraform plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Sorted and without duplicates.
    pub resources: Vec<ResourceChange>,
    /// Action invocations, after a change or standalone; sorted, without duplicates.
    pub invocations: Vec<ActionInvocation>,
    /// The outputs under `Changes to Outputs:`, sorted.
    pub outputs: Vec<String>,
    /// The last `Plan:` line, if one was printed and understood.
    pub summary: Option<PlanSummary>,
    /// Terraform said "No changes." and nothing contradicts it.
    pub no_changes: bool,
    /// A `Plan:` line the bot could not read was printed, or the output ends inside a
    /// multi-line value: the plan is not recognised.
    unread_summary: bool,
    /// Only output changes and no `Plan:` line (Terraform prints none for such a plan).
    outputs_only: bool,
    /// The normalised text the fingerprint is computed over.
    normalized: String,
}

impl Plan {
    /// Parses Terraform's human output. Never panics; unrecognised text yields a plan for which
    /// [`Plan::is_recognised`] is false.
    pub fn parse(text: &str) -> Plan {
        let mut p = Parser::default();
        for raw in text.lines() {
            p.line(raw);
        }
        p.finish()
    }

    /// Parses the plan that an interactive `terraform apply` printed before its prompt; `None`
    /// when the text holds no prompt.
    pub fn parse_before_prompt(text: &str) -> Option<Plan> {
        before_prompt(text).map(Plan::parse)
    }

    /// True when the text looked like a plan: a `Plan:` line the bot understands, changes to
    /// outputs only, or "No changes.". A deploy must not proceed on an unrecognised plan.
    pub fn is_recognised(&self) -> bool {
        !self.unread_summary && (self.summary.is_some() || self.no_changes || self.outputs_only)
    }

    /// True when the `Plan:` counts agree with the headers (a replace counts as one add and one
    /// destroy; reads and moves are not counted; every import and every action invocation is).
    /// A mismatch means the output was cut or misread.
    pub fn is_consistent(&self) -> bool {
        let Some(s) = self.summary else {
            return self.no_changes || self.outputs_only;
        };
        let count = |a: Action| self.resources.iter().filter(|r| r.action == a).count() as u64;
        let replace = count(Action::Replace);
        let importing = self.resources.iter().filter(|r| r.importing).count() as u64;
        s.add == count(Action::Create) + replace + count(Action::ReplaceKeepingOld)
            && s.change == count(Action::Update)
            && s.destroy == count(Action::Destroy) + replace
            && s.import == importing
            // Terraform does not print the forget count; OpenTofu does.
            && (s.forget == 0 || s.forget >= count(Action::Forget))
            && s.invoke == self.invocations.len() as u64
    }

    /// The normalised text the fingerprint is computed over: one paragraph per change and one
    /// for the outputs (sorted, without duplicates), then the `Plan:` lines in order (or `No
    /// changes.`, or `Plan: unknown`).
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// Hex SHA-256 of [`Plan::normalized`].
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.normalized.as_bytes()))
    }

    /// The counts for a one-line reply: Terraform's (`1 to add, 0 to change, 0 to destroy.
    /// Actions: 1 to invoke`), `changes N outputs` for an outputs-only plan (with `; changes N
    /// outputs` after the counts when a plan has both), or `no changes`.
    pub fn counts(&self) -> String {
        let outputs = match self.outputs.len() {
            0 => None,
            1 => Some("changes 1 output".to_string()),
            n => Some(format!("changes {n} outputs")),
        };
        match (self.summary, outputs) {
            _ if self.no_changes => "no changes".to_string(),
            (Some(s), Some(o)) => format!("{}; {o}", s.counts()),
            (Some(s), None) => s.counts(),
            (None, Some(o)) => o,
            (None, None) => "no summary line".to_string(),
        }
    }

    /// One line for people: `Plan: ` and the counts, then the changes by name (action
    /// invocations and moves first), e.g. `Plan: 1 to add, 1 to change, 1 to destroy
    /// (module.catalog_airflow.aws_instance.airflow: replace; … : update)`.
    pub fn human_summary(&self) -> String {
        if self.no_changes {
            return "No changes.".to_string();
        }
        let head = format!("Plan: {}", self.counts());
        let mut items: Vec<String> = self
            .invocations
            .iter()
            .map(|i| match &i.when {
                Some(w) => format!("{}: invoke {w}", i.address),
                None => format!("{}: invoke", i.address),
            })
            .collect();
        let moved = |r: &&ResourceChange| r.moved_from.is_some();
        for r in self.resources.iter().filter(moved) {
            items.push(describe(r));
        }
        for r in self.resources.iter().filter(|r| !moved(r)) {
            items.push(describe(r));
        }
        if self.outputs_only {
            items.extend(self.outputs.iter().map(|o| format!("output {o}")));
        }
        if items.is_empty() {
            return head;
        }
        let more = items.len().saturating_sub(HUMAN_SUMMARY_ITEMS);
        items.truncate(HUMAN_SUMMARY_ITEMS);
        if more > 0 {
            items.push(format!("… and {more} more"));
        }
        format!("{head} ({})", items.join("; "))
    }
}

/// `address: action`, with the move or import that comes with it.
fn describe(r: &ResourceChange) -> String {
    let mut s = match (&r.moved_from, r.action) {
        (Some(from), Action::Move) => format!("{}: moved from {from}", r.address),
        (Some(from), a) => format!("{}: {a} (moved from {from})", r.address),
        (None, a) => format!("{}: {a}", r.address),
    };
    if r.importing && r.action != Action::Import {
        s.push_str(", imported");
    }
    s
}

/// The part of `text` before the last `Enter a value:` prompt, or `None` without a prompt.
///
/// The last one, because the step runner hands over everything printed so far when a prompt
/// appears, so the prompt being answered is always the last; any earlier one (an input variable)
/// came before the plan was printed.
pub fn before_prompt(text: &str) -> Option<&str> {
    text.rfind(PROMPT).map(|at| &text[..at])
}

/// Where in Terraform's output a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Section {
    /// Before, between and after the blocks: progress, legend, notes, trailers. Ignored, except
    /// a change header, which is never ignored.
    #[default]
    Outside,
    /// A report that is not the plan: "Objects have changed outside of Terraform", deferred
    /// changes. Ignored up to the next rule or block.
    Report,
    /// "Terraform will perform the following actions:" up to the `Plan:` line.
    Actions,
    /// "Terraform will invoke the following action(s):" (standalone invocations).
    Invocations,
    /// "Changes to Outputs:": indented lines.
    Outputs,
}

/// What a paragraph of the normalised text is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Resource,
    Invocation,
    Outputs,
    /// Lines of an actions block before any header.
    Unattributed,
}

/// One header and its lines, while they are read.
#[derive(Debug)]
struct Block {
    kind: Kind,
    lines: Vec<String>,
    resource: Option<ResourceChange>,
    /// Inside a heredoc: every line up to this delimiter is the value.
    heredoc: Option<String>,
    /// After `# Actions to be invoked …`: `after <address>` / `before <address>`; every line
    /// from there on is kept (an action's config is printed without change symbols).
    invoking: Option<String>,
}

impl Block {
    fn new(kind: Kind, first: Option<String>) -> Block {
        Block {
            kind,
            lines: first.into_iter().collect(),
            resource: None,
            heredoc: None,
            invoking: None,
        }
    }
}

#[derive(Default)]
struct Parser {
    section: Section,
    block: Option<Block>,
    paragraphs: BTreeSet<String>,
    resources: BTreeSet<ResourceChange>,
    invocations: BTreeSet<ActionInvocation>,
    outputs: BTreeSet<String>,
    /// Every `Plan:` line in order: the last one is what is about to happen.
    summaries: Vec<String>,
    summary: Option<PlanSummary>,
    unread_summary: bool,
    said_no_changes: bool,
    blocks_of_changes: usize,
}

impl Parser {
    fn line(&mut self, raw: &str) {
        let clean = text::clean(raw);
        let t = clean.trim_start();
        // Noise wherever it is (Terraform never prints these inside a value).
        if t.is_empty() || text::is_progress(&clean) || text::is_hidden_count(t) {
            return;
        }
        if let Some(block) = &mut self.block
            && let Some(delimiter) = &block.heredoc
        {
            // The heredoc's lines are the value, whatever they look like.
            if t == delimiter.as_str() {
                block.heredoc = None;
            }
            block.lines.push(clean.clone());
            return;
        }
        if t.starts_with("Plan:") {
            self.end_section();
            match headers::summary_line(t) {
                Some(s) => {
                    self.summaries.push(s.to_string());
                    // Apply may print the plan again; the last line is what is about to happen.
                    self.summary = Some(s);
                }
                None => {
                    self.summaries.push(format!("unread {t}"));
                    self.unread_summary = true;
                }
            }
            return;
        }
        if t.starts_with("No changes.") {
            self.end_section();
            self.said_no_changes = true;
            return;
        }
        if text::is_rule(t) || text::is_question(t) {
            self.end_section();
            return;
        }
        if t.ends_with("will perform the following actions:")
            || t.ends_with("planned the following actions, but then encountered a problem:")
        {
            self.start(Section::Actions);
            return;
        }
        if t.ends_with("will invoke the following action(s):") {
            self.start(Section::Invocations);
            return;
        }
        if t == "Changes to Outputs:" {
            self.start(Section::Outputs);
            self.block = Some(Block::new(Kind::Outputs, None));
            return;
        }
        if t.starts_with("Note: Objects have changed outside of")
            || t.starts_with("Note: This is a partial plan")
        {
            self.start(Section::Report);
            return;
        }
        match self.section {
            Section::Outputs if !clean.starts_with(char::is_whitespace) => {
                // An unindented line ends the outputs ("You can apply this plan to save …").
                self.end_section();
                self.outside(&clean, t);
            }
            Section::Outputs => self.output_line(&clean, t),
            Section::Actions | Section::Invocations => self.block_line(&clean, t),
            Section::Outside | Section::Report => self.outside(&clean, t),
        }
    }

    /// Outside a block only a change header matters, and it always does: a change announced
    /// anywhere is part of the plan (fail closed).
    fn outside(&mut self, clean: &str, t: &str) {
        match headers::header(t) {
            Some(Header::Resource(_)) => {
                self.start(Section::Actions);
                self.block_line(clean, t);
            }
            Some(Header::Invocation(_)) => {
                self.start(Section::Invocations);
                self.block_line(clean, t);
            }
            None => {}
        }
    }

    fn block_line(&mut self, clean: &str, t: &str) {
        if let Some(h) = headers::header(t) {
            self.flush();
            let kind = match &h {
                Header::Resource(_) => Kind::Resource,
                Header::Invocation(_) => Kind::Invocation,
            };
            let mut block = Block::new(kind, Some(t.to_string()));
            match h {
                Header::Resource(r) => block.resource = Some(r),
                Header::Invocation(i) => {
                    self.invocations.insert(i);
                }
            }
            self.block = Some(block);
            return;
        }
        let block = self
            .block
            .get_or_insert_with(|| Block::new(Kind::Unattributed, None));
        if t.starts_with('#') {
            let address = block.resource.as_ref().map(|r| r.address.clone());
            match headers::note(t) {
                Note::MovedFrom(from) => {
                    if let Some(r) = &mut block.resource {
                        r.moved_from = Some(from);
                    }
                }
                Note::Imported => {
                    if let Some(r) = &mut block.resource {
                        r.importing = true;
                    }
                }
                Note::ActionsInvoked(when) => {
                    block.invoking = Some(format!(
                        "{when} {}",
                        address.as_deref().unwrap_or("a change")
                    ));
                }
                Note::Other => {
                    if let Some(when) = &block.invoking
                        && let Some(action) = headers::invoked_action(t)
                    {
                        self.invocations.insert(ActionInvocation {
                            address: action.to_string(),
                            when: Some(when.clone()),
                        });
                    }
                }
            }
            block.lines.push(clean.to_string());
            return;
        }
        let keep = block.kind == Kind::Invocation
            || block.invoking.is_some()
            || match body::classify(t) {
                Line::Change | Line::Unrecognised => true,
                Line::Context | Line::Recomputed => false,
            };
        if keep {
            block.lines.push(clean.to_string());
        }
        block.heredoc = body::heredoc_opened(t).map(str::to_string);
    }

    fn output_line(&mut self, clean: &str, t: &str) {
        let block = self
            .block
            .get_or_insert_with(|| Block::new(Kind::Outputs, None));
        // `  + name = value`: an output (deeper lines are its value).
        if let Some(rest) = clean.strip_prefix("  ")
            && let Some((symbol, rest)) = rest.split_once(' ')
            && matches!(symbol, "+" | "-" | "~")
            && let Some((name, _)) = rest.split_once(" = ")
        {
            self.outputs.insert(name.trim().to_string());
        }
        let keep = !matches!(body::classify(t), Line::Context);
        if keep {
            block.lines.push(clean.to_string());
        }
        block.heredoc = body::heredoc_opened(t).map(str::to_string);
    }

    fn start(&mut self, section: Section) {
        self.end_section();
        self.section = section;
    }

    fn end_section(&mut self) {
        self.flush();
        self.section = Section::Outside;
    }

    /// Files the block being read as one paragraph of the normalised text.
    fn flush(&mut self) {
        let Some(block) = self.block.take() else {
            return;
        };
        if block.lines.is_empty() {
            return;
        }
        let label = match block.kind {
            Kind::Resource => "resource",
            Kind::Invocation => "invocation",
            Kind::Outputs => "outputs",
            Kind::Unattributed => "unattributed",
        };
        if block.kind != Kind::Outputs {
            self.blocks_of_changes += 1;
        }
        if let Some(r) = block.resource {
            self.resources.insert(r);
        }
        self.paragraphs
            .insert(format!("{label}\n{}\n", block.lines.join("\n")));
    }

    fn finish(mut self) -> Plan {
        // Output that ends inside a multi-line value was cut: nothing to approve.
        let cut = self.block.as_ref().is_some_and(|b| b.heredoc.is_some());
        if cut {
            self.summaries
                .push("cut inside a multi-line value".to_string());
            self.unread_summary = true;
        }
        self.end_section();
        let only_outputs = !self.outputs.is_empty() && self.blocks_of_changes == 0;
        let no_changes = self.said_no_changes
            && self.paragraphs.is_empty()
            && !self.unread_summary
            && self.summary.is_none_or(|s| s.is_empty());
        let outputs_only = only_outputs && self.summary.is_none() && !self.said_no_changes;
        let mut normalized: String = self.paragraphs.iter().map(String::as_str).collect();
        for s in &self.summaries {
            normalized.push_str(s);
            normalized.push('\n');
        }
        if self.summaries.is_empty() {
            normalized.push_str(match (no_changes, outputs_only) {
                (true, _) => "No changes.\n",
                (false, true) => "Plan: outputs only\n",
                (false, false) => "Plan: unknown\n",
            });
        }
        Plan {
            resources: self.resources.into_iter().collect(),
            invocations: self.invocations.into_iter().collect(),
            outputs: self.outputs.into_iter().collect(),
            summary: self.summary,
            no_changes,
            unread_summary: self.unread_summary,
            outputs_only,
            normalized,
        }
    }
}

#[cfg(test)]
mod tests;
