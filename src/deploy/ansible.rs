//! The Ansible flow's plan: a playbook's dry run (`ansible-playbook … --check --diff`, default
//! callback) read into what it would change, and the fingerprint an approval binds to.
//!
//! What counts is what the playbook would do: every task that reports `changed` on a host, with
//! the diff printed for that host, in order, and each host's `changed`/`failed`/`unreachable`
//! counts from the `PLAY RECAP`. Noise never counts: `ok:` and `skipping:` lines (and a diff
//! printed before one), blank lines, colours, log timestamps, timings (the `profile_tasks`
//! callback's `Tuesday 01 December 2026  08:13:21 +0000 (0:00:00.017)  0:00:00.017 ***` line),
//! warnings, the length of the `****` rules, task durations in verbose results (`=> {…}` after a
//! result is dropped) and the `ok=`/`skipped=` counts. Any other line printed for a changed task
//! is kept (fail closed): two dry runs that would do different things never share a fingerprint.
//!
//! The recap decides: a host with `failed` or `unreachable` above zero fails the run, named by
//! the task where it happened; a run without a readable recap is not a plan. The recap's
//! `changed` count of every host must equal the changed tasks the bot read for it, or the output
//! is not trusted.
//!
//! Parsing is total: any text yields a [`DryRun`]; [`DryRun::problem`] says why it cannot be
//! approved or trusted.

use sha2::{Digest, Sha256};

use super::fingerprint::text::clean;

/// How many diff lines the human summary (the card, the plan message) shows; the whole output is
/// attached to the plan message and kept in the journal.
const SUMMARY_DIFF_LINES: usize = 24;

/// One host's line of the `PLAY RECAP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecap {
    pub host: String,
    pub ok: u64,
    pub changed: u64,
    pub unreachable: u64,
    pub failed: u64,
}

/// A task that reported `changed` on one host, with the diff printed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChange {
    pub play: String,
    pub task: String,
    pub host: String,
    /// `changed: [host] => (item=…)` lines of a loop, in order (empty without a loop).
    pub items: Vec<String>,
    /// The lines printed for this host's result before it (the `--diff` output), cleaned.
    pub diff: Vec<String>,
}

/// A task that failed (or a host that was unreachable) and was not ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub task: String,
    pub host: String,
    pub unreachable: bool,
    /// Ansible's `msg`, when the result carried one.
    pub message: Option<String>,
}

/// A playbook run read from its output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DryRun {
    pub changes: Vec<TaskChange>,
    pub failures: Vec<TaskFailure>,
    pub recap: Vec<HostRecap>,
}

/// Where a result line belongs.
enum Line<'a> {
    Changed {
        host: &'a str,
        item: Option<&'a str>,
    },
    /// `ok:`, `skipping:`, `included:`: the lines before it were not a change.
    Quiet,
    Failed(TaskFailure),
}

impl DryRun {
    pub fn parse(output: &str) -> DryRun {
        let mut run = DryRun::default();
        let mut play = String::new();
        let mut task: Option<String> = None;
        let mut in_recap = false;
        // Lines printed since the last result of the current task: the next result's diff.
        let mut pending: Vec<String> = Vec::new();
        for raw in output.lines() {
            // Ansible starts its own lines at the first column; an indented line is content
            // (a diff's context line), so nothing below trims the start.
            let line = clean(raw);
            let t = line.as_str();
            if header(t, "PLAY RECAP").is_some() {
                in_recap = true;
                task = None;
                continue;
            }
            if let Some(name) = header(t, "PLAY") {
                play = name.to_string();
                in_recap = false;
                task = None;
                pending.clear();
                continue;
            }
            if let Some(name) = header(t, "TASK").or_else(|| header(t, "RUNNING HANDLER")) {
                task = Some(name.to_string());
                pending.clear();
                continue;
            }
            if in_recap {
                if let Some(h) = recap_line(t) {
                    run.recap.push(h);
                }
                continue;
            }
            let Some(task_name) = &task else {
                continue;
            };
            if t == "...ignoring" {
                run.failures.pop();
                continue;
            }
            match result_line(t, task_name) {
                Some(Line::Changed { host, item }) => {
                    let diff = std::mem::take(&mut pending);
                    // A loop prints one line per item: they are one changed task.
                    let same = run.changes.iter_mut().rev().find(|c| {
                        c.play == play && c.task == *task_name && c.host == host && item.is_some()
                    });
                    match (same, item) {
                        (Some(c), Some(item)) => {
                            c.items.push(item.to_string());
                            c.diff.extend(diff);
                        }
                        _ => run.changes.push(TaskChange {
                            play: play.clone(),
                            task: task_name.clone(),
                            host: host.to_string(),
                            items: item.map(str::to_string).into_iter().collect(),
                            diff,
                        }),
                    }
                }
                Some(Line::Quiet) => pending.clear(),
                Some(Line::Failed(f)) => {
                    pending.clear();
                    run.failures.push(f);
                }
                None if is_noise(t) => {}
                None => pending.push(line.clone()),
            }
        }
        run
    }

    /// Why this output cannot be approved or trusted, as a sentence; `None` when it is a plan.
    pub fn problem(&self) -> Option<String> {
        if let Some(f) = self.failures.first() {
            return Some(f.sentence());
        }
        if self.recap.is_empty() {
            return Some(
                "the playbook printed no `PLAY RECAP` the bot can read (is it ansible-playbook \
                 with the default output callback?): nothing to approve"
                    .to_string(),
            );
        }
        if let Some(h) = self
            .recap
            .iter()
            .find(|h| h.failed > 0 || h.unreachable > 0)
        {
            return Some(format!(
                "the playbook's recap reports {} failed and {} unreachable on {}, but the bot \
                 found no failed task in its output",
                h.failed, h.unreachable, h.host
            ));
        }
        for h in &self.recap {
            let read = self.changed_tasks_on(&h.host);
            if read as u64 != h.changed {
                return Some(format!(
                    "the playbook's recap reports changed={} on {} but the bot read {read} \
                     changed task(s) for it: the output is not in the form the bot understands, \
                     so it cannot be approved",
                    h.changed, h.host
                ));
            }
        }
        None
    }

    /// True when the run is readable and would change nothing.
    pub fn no_changes(&self) -> bool {
        self.problem().is_none() && self.changes.is_empty()
    }

    fn changed_tasks_on(&self, host: &str) -> usize {
        self.changes.iter().filter(|c| c.host == host).count()
    }

    /// Hosts with at least one changed task, in recap order (then output order).
    pub fn changed_hosts(&self) -> Vec<&str> {
        let mut hosts: Vec<&str> = Vec::new();
        for h in self
            .recap
            .iter()
            .map(|h| h.host.as_str())
            .chain(self.changes.iter().map(|c| c.host.as_str()))
        {
            if !hosts.contains(&h) && self.changed_tasks_on(h) > 0 {
                hosts.push(h);
            }
        }
        hosts
    }

    /// The text the fingerprint is computed over: per changed task (in order, hosts of one task
    /// sorted, since forks finish in any order) its play, name, host, loop items and diff; then
    /// each host's `changed`, `failed` and `unreachable` counts.
    pub fn normalized(&self) -> String {
        let mut changes: Vec<&TaskChange> = self.changes.iter().collect();
        // Stable: tasks keep their order, the hosts of one task are sorted.
        changes.sort_by(|a, b| {
            let pos = |c: &TaskChange| {
                self.changes
                    .iter()
                    .position(|o| o.play == c.play && o.task == c.task)
            };
            pos(a).cmp(&pos(b)).then_with(|| a.host.cmp(&b.host))
        });
        let mut out = String::new();
        for c in changes {
            out.push_str(&format!(
                "play: {}\ntask: {}\nhost: {}\n",
                c.play, c.task, c.host
            ));
            for i in &c.items {
                out.push_str(&format!("item: {i}\n"));
            }
            for d in &c.diff {
                out.push_str(&format!("| {d}\n"));
            }
            out.push('\n');
        }
        let mut recap: Vec<&HostRecap> = self.recap.iter().collect();
        recap.sort_by(|a, b| a.host.cmp(&b.host));
        for h in recap {
            out.push_str(&format!(
                "recap: {} changed={} unreachable={} failed={}\n",
                h.host, h.changed, h.unreachable, h.failed
            ));
        }
        out
    }

    /// Hex SHA-256 of [`DryRun::normalized`].
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.normalized().as_bytes()))
    }

    /// `1 changed task on 2 hosts` (distinct tasks, hosts with a change), or `no changes`.
    pub fn counts(&self) -> String {
        if self.changes.is_empty() {
            return "no changes".to_string();
        }
        let mut tasks: Vec<(&str, &str)> = Vec::new();
        for c in &self.changes {
            if !tasks.contains(&(c.play.as_str(), c.task.as_str())) {
                tasks.push((c.play.as_str(), c.task.as_str()));
            }
        }
        let tasks = tasks.len();
        let hosts = self.changed_hosts().len();
        format!(
            "{tasks} changed task{} on {hosts} host{}",
            if tasks == 1 { "" } else { "s" },
            if hosts == 1 { "" } else { "s" }
        )
    }

    /// For people (the card, the plan message): the counts, the changed tasks per host, and
    /// the diffs' changed lines (at most [`SUMMARY_DIFF_LINES`]).
    pub fn human_summary(&self) -> String {
        if self.changes.is_empty() {
            return "No changes.".to_string();
        }
        let mut out = format!("Dry run: {}", self.counts());
        for host in self.changed_hosts() {
            let tasks: Vec<String> = self
                .changes
                .iter()
                .filter(|c| c.host == host)
                .map(|c| format!("`{}`", c.task))
                .collect();
            out.push_str(&format!("\n• {host}: {}", tasks.join(", ")));
        }
        let mut shown = 0;
        let mut hidden = 0;
        let mut diff = String::new();
        for c in &self.changes {
            let lines: Vec<&String> = c
                .diff
                .iter()
                .filter(|l| {
                    (l.starts_with('+') || l.starts_with('-'))
                        && !l.starts_with("+++")
                        && !l.starts_with("---")
                })
                .collect();
            if lines.is_empty() {
                continue;
            }
            if shown + lines.len() > SUMMARY_DIFF_LINES {
                hidden += lines.len();
                continue;
            }
            diff.push_str(&format!("# {} · {}\n", c.host, c.task));
            for l in lines {
                diff.push_str(l);
                diff.push('\n');
                shown += 1;
            }
        }
        if !diff.is_empty() {
            out.push_str(&format!("\n```diff\n{diff}```"));
        }
        if hidden > 0 {
            out.push_str(&format!(
                "\n… {hidden} more diff line(s) in the attached output"
            ));
        }
        out
    }

    /// The recap in one line: `localhost changed=2 failed=0 unreachable=0`.
    pub fn recap_line(&self) -> String {
        self.recap
            .iter()
            .map(|h| {
                format!(
                    "{} changed={} failed={} unreachable={}",
                    h.host, h.changed, h.failed, h.unreachable
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl TaskFailure {
    /// `the playbook failed at task `X` on localhost: <msg>`.
    pub fn sentence(&self) -> String {
        let what = if self.unreachable {
            format!("{} was unreachable at task `{}`", self.host, self.task)
        } else {
            format!(
                "the playbook failed at task `{}` on {}",
                self.task, self.host
            )
        };
        match &self.message {
            Some(m) => format!("{what}: {m}"),
            None => what,
        }
    }
}

/// `KIND [name] ****` → `name` (`PLAY RECAP ***` → empty name).
fn header<'a>(t: &'a str, kind: &str) -> Option<&'a str> {
    let rest = t.strip_prefix(kind)?.trim_end_matches('*').trim_end();
    if rest.is_empty() {
        return (kind == "PLAY RECAP").then_some("");
    }
    let inner = rest.strip_prefix(" [")?.strip_suffix(']')?;
    Some(inner)
}

/// A result line of the default callback, or `None`.
fn result_line<'a>(t: &'a str, task: &str) -> Option<Line<'a>> {
    for quiet in ["ok: [", "skipping: [", "included: "] {
        if t.starts_with(quiet) {
            return Some(Line::Quiet);
        }
    }
    if let Some(rest) = t.strip_prefix("changed: [") {
        let (host, after) = rest.split_once(']')?;
        // `=> (item=…)` names a loop item; any `=> {…}` after it is a verbose result, whose
        // timings (`delta`, `start`, `end`) are noise.
        let item = after
            .strip_prefix(" => (item=")
            .map(|i| i.split(") => ").next().unwrap_or(i))
            .map(|i| i.strip_suffix(')').unwrap_or(i));
        return Some(Line::Changed { host, item });
    }
    let (rest, unreachable) = if let Some(r) = t.strip_prefix("fatal: [") {
        (r, r.contains("]: UNREACHABLE!"))
    } else if let Some(r) = t.strip_prefix("failed: [") {
        (r, false)
    } else {
        return None;
    };
    let (host, after) = rest.split_once(']')?;
    let message = after.split_once("=> ").and_then(|(_, json)| {
        serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_string))
    });
    Some(Line::Failed(TaskFailure {
        task: task.to_string(),
        host: host.to_string(),
        unreachable,
        message,
    }))
}

/// `host : ok=2 changed=1 unreachable=0 failed=0 skipped=2 rescued=0 ignored=0`.
fn recap_line(t: &str) -> Option<HostRecap> {
    let (host, counts) = t.split_once(" : ")?;
    let mut h = HostRecap {
        host: host.trim().to_string(),
        ok: 0,
        changed: 0,
        unreachable: 0,
        failed: 0,
    };
    let mut seen = 0;
    for item in counts.split_whitespace() {
        let (name, n) = item.split_once('=')?;
        let n: u64 = n.parse().ok()?;
        match name {
            "ok" => h.ok = n,
            "changed" => h.changed = n,
            "unreachable" => h.unreachable = n,
            "failed" => h.failed = n,
            _ => {}
        }
        seen += 1;
    }
    (seen >= 4 && !h.host.is_empty()).then_some(h)
}

/// Lines that are never part of what a task would change.
fn is_noise(t: &str) -> bool {
    t.trim().is_empty()
        || t.starts_with("[WARNING]")
        || t.starts_with("[DEPRECATION WARNING]")
        || is_timing(t)
}

/// The `profile_tasks`/`timer` callbacks' line after a task header:
/// `Tuesday 01 December 2026  08:13:21 +0000 (0:00:00.017)       0:00:00.017 ****`.
fn is_timing(t: &str) -> bool {
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    if !DAYS.iter().any(|d| t.starts_with(d)) {
        return false;
    }
    let body = t.trim_end_matches('*').trim_end();
    let Some((before, total)) = body.rsplit_once(char::is_whitespace) else {
        return false;
    };
    let Some(open) = before.rfind('(') else {
        return false;
    };
    let elapsed = before[open + 1..].trim_end().strip_suffix(')');
    elapsed.is_some_and(is_duration) && is_duration(total)
}

/// `0:00:00.017`: hours, minutes, seconds with a fraction.
fn is_duration(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 3
        && parts[2].contains('.')
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

#[cfg(test)]
mod tests;
