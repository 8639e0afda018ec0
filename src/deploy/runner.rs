//! One infrastructure step for the workflow: the argv runner ([`infra::run_step`]) with the
//! step's output posted to the conversation in batches, the shutdown grace around it, and its end
//! journaled (exit, redacted output tail, prompt answers) and measured. While a deploy's step
//! runs, a [`Heartbeat`] renews the deploy's lease so other processes see a live owner.
//!
//! The runner moves no deploy state: a step that cannot run, or that a shutdown stops, comes
//! back as a [`StepError`] and the workflow decides the transition.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::TargetConfig;
use crate::context::Ctx;
use crate::conversation::Conversation;
use crate::deploy::step::Step;
use crate::integrations::infra::detached::{self, FollowEvent, Followed, Ident};
use crate::integrations::infra::{
    self, PromptAnswer, PromptHandler, StepEvent, StepOutcome, StepSpec,
};
use crate::store::{Deploy, Owner, StepRun, Store, now_ms};
use crate::version::Version;

/// At most this many output lines are posted per batch; the whole output is stored.
const LINES_PER_POST: usize = 15;
/// Output is posted at most this often, so a chatty step does not flood the conversation.
const POST_INTERVAL: Duration = Duration::from_secs(2);
/// How many of a failed step's last lines the failure message quotes.
const FAILURE_LINES: usize = 10;

/// Renews a deploy's lease while a step runs; stops when dropped.
pub(super) struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts renewing `owner`'s lease on deploy `id`, three times per `lease`.
pub(super) fn heartbeat(store: &Store, lease: Duration, id: i64, owner: &Owner) -> Heartbeat {
    let store = store.clone();
    let owner = owner.clone();
    let every = (lease / 3).max(Duration::from_millis(200));
    Heartbeat(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match store.heartbeat(id, &owner).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(deploy_id = id, "lost the lease of the deploy");
                    return;
                }
                Err(e) => tracing::warn!(deploy_id = id, error = %e, "heartbeat failed"),
            }
        }
    }))
}

/// Why a step produced no [`StepOutcome`].
pub(super) enum StepError {
    /// It could not run (the stored version or the template does not render, the program
    /// cannot be started): the deploy fails at it.
    Failed(String),
    /// The bot is shutting down: the step did not start, or it was killed when the grace ran
    /// out. What it did is unknown, so the deploy is interrupted, not failed. (Attached steps
    /// only: the library without a supervisor.)
    ShutDown(String),
    /// The bot is shutting down and leaves the step to the next process: it did not start yet,
    /// or it runs on under its supervisor after the grace ran out. The deploy keeps its state
    /// and its lease, which ends with this process.
    LeftRunning(String),
    /// The step's supervisor and the step are gone and nothing recorded how the step ended:
    /// its outcome is truly unknown, so the deploy is interrupted.
    Lost(String),
}

/// Runs the steps of one command's deploy, speaking in its conversation.
pub(super) struct Runner<'a> {
    pub ctx: &'a Ctx,
    pub conv: &'a dyn Conversation,
}

impl Runner<'_> {
    /// Runs `step` of deploy `d` from `template`, streaming its output in batches and journaling
    /// its end; `prompt` answers the step's prompts. In a process that runs steps detached
    /// ([`detached::enabled`]), the step runs under its own supervisor and outlives this process;
    /// `attach` is a run of this step that a process which died since started: it is followed
    /// to its end instead of starting the step again.
    pub async fn run(
        &self,
        d: &Deploy,
        step: Step,
        template: &[String],
        target: &TargetConfig,
        prompt: Option<PromptHandler>,
        attach: Option<StepRun>,
    ) -> Result<StepOutcome, StepError> {
        let version = Version::parse(&d.version)
            .map_err(|e| StepError::Failed(format!("stored version is not valid: {e}")))?;
        let spec = StepSpec::for_target(
            step.as_str(),
            template,
            target,
            &version,
            (*self.ctx.redactor).clone(),
        )
        .map_err(|e| StepError::Failed(e.to_string()))?;
        if attach.is_none() && self.ctx.shutdown.is_cancelled() {
            // A step that has not started is not started during a shutdown. The next process
            // runs a bump or a plan that never started (they change nothing outside the infra
            // repo's working copy); an apply it would not start without a run on record, so
            // that one is interrupted for a maintainer.
            return Err(if detached::enabled() && step != Step::Apply {
                StepError::LeftRunning(format!(
                    "the bot shut down before {step} started; the next process to start runs it"
                ))
            } else {
                // Attached, nobody would carry it on: the deploy is recorded interrupted (lock
                // kept) for a maintainer to pick up.
                StepError::ShutDown(format!("the bot shut down before {step} started"))
            });
        }
        if detached::enabled() || attach.is_some() {
            return self.run_detached(d, step, spec, prompt, attach).await;
        }
        self.conv
            .post(&format!(
                "▶️ Deploy #{}: running {step}: `{}`",
                d.id,
                spec.argv.join(" ")
            ))
            .await;
        let started = now_ms();
        let argv = spec.argv.clone();
        let outbox = Arc::new(Outbox::default());
        let run = {
            let outbox = outbox.clone();
            async move {
                let sink = outbox.clone();
                let result = infra::run_step(
                    &spec,
                    move |ev| {
                        let line = match ev {
                            StepEvent::Line { text, .. } => text.to_string(),
                            // The prompt's own text arrives as a line too; say only the answer.
                            StepEvent::Prompt { answer, .. } => format!(
                                "(the bot answered: {})",
                                answer.map_or("nothing", PromptAnswer::as_str)
                            ),
                            StepEvent::Started { pid } => {
                                tracing::info!(%step, pid, "step started");
                                return;
                            }
                        };
                        sink.push(line, 0);
                    },
                    prompt,
                )
                .await;
                outbox.close();
                result
            }
        };
        let post_batches = outbox.post_until_closed(self.conv, step, |_| async {});
        let grace = self.ctx.config.deploy.shutdown_grace;
        let guarded = async {
            let r = crate::shutdown::within_grace(run, &self.ctx.shutdown, grace).await;
            // When the grace ran out the step's future was dropped (killing its process group)
            // before it could say it was done.
            outbox.close();
            r
        };
        let (result, ()) = tokio::join!(guarded, post_batches);
        let Some(result) = result else {
            let reason = format!(
                "the bot shut down while {step} ran; it was killed after the {} grace period",
                humantime::format_duration(grace)
            );
            let detail = serde_json::json!({ "argv": argv, "interrupted": true });
            self.journal(d, step, "interrupted", None, "", started, &detail)
                .await;
            crate::metrics::step_finished(
                step.as_str(),
                false,
                Duration::from_millis((now_ms() - started).max(0) as u64),
            );
            return Err(StepError::ShutDown(reason));
        };
        let outcome = result.map_err(|e| StepError::Failed(e.to_string()))?;
        crate::metrics::step_finished(step.as_str(), outcome.success(), outcome.duration);
        let detail = serde_json::json!({
            "argv": argv,
            "timed_out": outcome.timed_out,
            "signal": outcome.signal,
            "answers": outcome.answers.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "duration_ms": outcome.duration.as_millis() as u64,
            "output_bytes": outcome.full_output_len,
        });
        let state = if outcome.success() {
            "succeeded"
        } else {
            "failed"
        };
        self.journal(
            d,
            step,
            state,
            outcome.exit_code.map(i64::from),
            &outcome.output_tail,
            started,
            &detail,
        )
        .await;
        Ok(outcome)
    }

    /// The detached run of `step`: started here (recorded in `step_runs` before its supervisor
    /// exists), or the `attach`ed run of a process that died. Its output is posted from where the
    /// last process stopped posting; the end is journaled as an attached step's is.
    async fn run_detached(
        &self,
        d: &Deploy,
        step: Step,
        spec: StepSpec,
        prompt: Option<PromptHandler>,
        attach: Option<StepRun>,
    ) -> Result<StepOutcome, StepError> {
        let store = &self.ctx.store;
        let failed = |e: crate::store::StoreError| StepError::Failed(e.to_string());
        let argv = spec.argv.clone();
        let (run, supervisor) = match attach {
            Some(run) => {
                let supervisor = run.supervisor_pid.map(|pid| Ident {
                    pid,
                    start: run.supervisor_start.unwrap_or(0),
                });
                self.conv
                    .post(&format!(
                        "↪️ Deploy #{}: {step} kept running while no bot was there; following it \
                         again{}.",
                        d.id,
                        supervisor
                            .map(|s| format!(" (supervisor pid {})", s.pid))
                            .unwrap_or_default()
                    ))
                    .await;
                (run, supervisor)
            }
            None => {
                let dir = self
                    .ctx
                    .config
                    .deploy
                    .journal_dir
                    .join(format!("deploy-{}", d.id))
                    .join(format!("{step}-{}", now_ms()));
                let dir = std::path::absolute(&dir).unwrap_or(dir);
                let host = Owner::current().host;
                let id = store
                    .start_step_run(d.id, step, &host, &dir.display().to_string())
                    .await
                    .map_err(failed)?;
                self.conv
                    .post(&format!(
                        "▶️ Deploy #{}: running {step}: `{}`",
                        d.id,
                        spec.argv.join(" ")
                    ))
                    .await;
                let ident = match detached::launch(&spec, &dir, prompt.is_some()).await {
                    Ok(i) => i,
                    Err(e) => {
                        let _ = store.finish_step_run(id, "failed", None).await;
                        return Err(StepError::Failed(e.to_string()));
                    }
                };
                store
                    .set_step_supervisor(id, ident.pid, ident.start)
                    .await
                    .map_err(failed)?;
                let run = store
                    .latest_step_run(d.id, step)
                    .await
                    .map_err(failed)?
                    .ok_or_else(|| {
                        StepError::Failed("the step run vanished from the store".into())
                    })?;
                (run, Some(ident))
            }
        };
        let started = run.started_ms;
        let posted_before = run.output_offset.max(0) as u64;
        let outbox = Arc::new(Outbox::default());
        let dir = std::path::PathBuf::from(&run.dir);
        let follow = {
            let outbox = outbox.clone();
            let spec = spec.clone();
            async move {
                let sink = outbox.clone();
                let result = detached::follow(
                    &spec,
                    &dir,
                    supervisor,
                    move |ev| {
                        let (line, end) = match ev {
                            // Posted already by the process that followed it before.
                            FollowEvent::Line { end, .. } if end <= posted_before => return,
                            FollowEvent::Line { text, end } => (text.to_string(), end),
                            // Answered, and said so, by the process that followed it before.
                            FollowEvent::Prompt { at, .. } if at <= posted_before => return,
                            FollowEvent::Prompt { answer, at, .. } => (
                                format!(
                                    "(the bot answered: {})",
                                    answer.map_or("nothing", PromptAnswer::as_str)
                                ),
                                at,
                            ),
                        };
                        sink.push(line, end);
                    },
                    prompt,
                )
                .await;
                outbox.close();
                result
            }
        };
        // How far the output was posted is recorded, so a process that follows the step later
        // posts only the rest.
        let run_id = run.id;
        let post_batches = outbox.post_until_closed(self.conv, step, |end| async move {
            if let Err(e) = store.step_run_posted(run_id, end as i64).await {
                tracing::warn!(error = %e, "cannot record how far the step's output was posted");
            }
        });
        let grace = self.ctx.config.deploy.shutdown_grace;
        let guarded = async {
            let r = crate::shutdown::within_grace(follow, &self.ctx.shutdown, grace).await;
            // When the grace ran out the follower was dropped (the step runs on).
            outbox.close();
            r
        };
        let (result, ()) = tokio::join!(guarded, post_batches);
        let Some(result) = result else {
            let reason = format!(
                "the bot shut down while {step} ran; after the {} grace period it left {step} \
                 running (the next process to start follows it to its end)",
                humantime::format_duration(grace)
            );
            return Err(StepError::LeftRunning(reason));
        };
        match result.map_err(|e| StepError::Failed(e.to_string()))? {
            Followed::Ended(outcome) => {
                crate::metrics::step_finished(step.as_str(), outcome.success(), outcome.duration);
                let state = if outcome.success() {
                    "succeeded"
                } else {
                    "failed"
                };
                let detail = serde_json::json!({
                    "argv": argv,
                    "detached": true,
                    "run": run.dir,
                    "timed_out": outcome.timed_out,
                    "signal": outcome.signal,
                    "answers": outcome.answers.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                    "duration_ms": outcome.duration.as_millis() as u64,
                    "output_bytes": outcome.full_output_len,
                });
                let code = outcome.exit_code.map(i64::from);
                if let Err(e) = store.finish_step_run(run.id, state, code).await {
                    tracing::error!(error = %e, "cannot record the step run's end");
                }
                self.journal(d, step, state, code, &outcome.output_tail, started, &detail)
                    .await;
                Ok(outcome)
            }
            Followed::Lost(reason) => {
                let detail = serde_json::json!({ "argv": argv, "detached": true, "run": run.dir, "lost": true });
                if let Err(e) = store.finish_step_run(run.id, "lost", None).await {
                    tracing::error!(error = %e, "cannot record the step run's end");
                }
                self.journal(d, step, "lost", None, "", started, &detail)
                    .await;
                Err(StepError::Lost(reason))
            }
        }
    }

    /// Records a step's end in the journal. A journal that cannot be written does not stop the
    /// deploy: the transition that follows is written (or fails) on its own.
    #[allow(clippy::too_many_arguments)] // one journal row's columns
    async fn journal(
        &self,
        d: &Deploy,
        step: Step,
        state: &str,
        exit_code: Option<i64>,
        tail: &str,
        started: i64,
        detail: &serde_json::Value,
    ) {
        if let Err(e) = self
            .ctx
            .store
            .record_step_output(d.id, step, state, exit_code, tail, started, detail)
            .await
        {
            tracing::error!(error = %e, "cannot journal step output");
        }
    }
}

/// Why a step that ran did not succeed, with its last lines, for the failure message.
pub(super) fn failure_reason(o: &StepOutcome) -> String {
    let lines: Vec<&str> = o.output_tail.lines().collect();
    let tail = lines[lines.len().saturating_sub(FAILURE_LINES)..].join("\n");
    if tail.trim().is_empty() {
        o.describe()
    } else {
        format!("{}; last lines:\n```\n{tail}\n```", o.describe())
    }
}

/// A step's output on its way to the conversation: the step's callback adds lines (with how far
/// into the output they reach), and [`Outbox::post_until_closed`] posts them in batches at most
/// every [`POST_INTERVAL`], so a chatty step costs one message per interval, not one per line.
#[derive(Default)]
struct Outbox {
    /// Lines not posted yet, and the output offset the last of them reaches.
    pending: Mutex<(Vec<String>, u64)>,
    closed: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Outbox {
    fn push(&self, line: String, end: u64) {
        if let Ok(mut p) = self.pending.lock() {
            p.0.push(line);
            p.1 = p.1.max(end);
        }
    }

    /// The step is over (or its future was dropped): what is left is posted, then posting stops.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // A stored permit if nobody waits yet, so the wake-up is never lost.
        self.wake.notify_one();
    }

    /// Posts batches until [`Outbox::close`]; after each batch, `posted(end)` with the output
    /// offset it reached.
    async fn post_until_closed<F, Fut>(&self, conv: &dyn Conversation, step: Step, mut posted: F)
    where
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        loop {
            let finished = self.closed.load(Ordering::SeqCst);
            let (lines, end) = self
                .pending
                .lock()
                .map(|mut p| (std::mem::take(&mut p.0), p.1))
                .unwrap_or_default();
            if !lines.is_empty() {
                conv.post(&batch_text(step, &lines)).await;
                posted(end).await;
            }
            if finished {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(POST_INTERVAL) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

/// One post of a step's output: its last [`LINES_PER_POST`] lines, each tagged with the step.
fn batch_text(step: Step, lines: &[String]) -> String {
    let skipped = lines.len().saturating_sub(LINES_PER_POST);
    let mut out = String::new();
    if skipped > 0 {
        out.push_str(&format!(
            "[{step}] … {skipped} line(s) not shown (kept in the journal)\n"
        ));
    }
    for l in &lines[skipped..] {
        out.push_str(&format!("[{step}] {l}\n"));
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_shows_its_last_lines_and_counts_the_rest() {
        let lines: Vec<String> = (1..=17).map(|i| format!("line {i}")).collect();
        let text = batch_text(Step::Plan, &lines);
        let shown: Vec<&str> = text.lines().collect();
        assert_eq!(
            shown[0],
            "[plan] … 2 line(s) not shown (kept in the journal)"
        );
        assert_eq!(shown[1], "[plan] line 3");
        assert_eq!(shown.last().copied(), Some("[plan] line 17"));
        assert_eq!(shown.len(), LINES_PER_POST + 1);
        assert_eq!(batch_text(Step::Bump, &["ok".into()]), "[bump] ok");
    }

    /// What the step printed before it ended is posted, in one batch, with how far it reached;
    /// a close with nothing pending posts nothing and still ends the poster.
    #[tokio::test]
    async fn the_outbox_posts_what_is_left_when_the_step_ends_and_records_how_far() {
        let conv = crate::conversation::Transcript::new();
        let outbox = Outbox::default();
        outbox.push("Plan: 1 to add".into(), 40);
        outbox.push("done".into(), 12);
        outbox.close();
        let reached = Mutex::new(Vec::new());
        outbox
            .post_until_closed(&conv, Step::Plan, |end| {
                reached.lock().expect("lock").push(end);
                async {}
            })
            .await;
        assert_eq!(conv.messages(), ["[plan] Plan: 1 to add\n[plan] done"]);
        assert_eq!(*reached.lock().expect("lock"), [40]);

        let empty = Outbox::default();
        empty.close();
        empty
            .post_until_closed(&conv, Step::Apply, |_| async {})
            .await;
        assert_eq!(conv.messages().len(), 1);
    }
}
