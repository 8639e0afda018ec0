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
use crate::integrations::infra::{
    self, PromptAnswer, PromptHandler, StepEvent, StepOutcome, StepSpec,
};
use crate::store::{Deploy, Owner, Store, now_ms};
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
    /// out. What it did is unknown, so the deploy is interrupted, not failed.
    ShutDown(String),
}

/// Runs the steps of one command's deploy, speaking in its conversation.
pub(super) struct Runner<'a> {
    pub ctx: &'a Ctx,
    pub conv: &'a dyn Conversation,
}

impl Runner<'_> {
    /// Runs `step` of deploy `d` from `template`, streaming its output in batches and journaling
    /// its end; `prompt` answers the step's prompts.
    pub async fn run(
        &self,
        d: &Deploy,
        step: Step,
        template: &[String],
        target: &TargetConfig,
        prompt: Option<PromptHandler>,
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
        if self.ctx.shutdown.is_cancelled() {
            // A step that has not started is not started during a shutdown: the deploy is
            // recorded interrupted (lock kept) for a maintainer to pick up.
            return Err(StepError::ShutDown(format!(
                "the bot shut down before {step} started"
            )));
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
        let pending: Arc<Mutex<Vec<String>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(tokio::sync::Notify::new());
        let run = {
            let pending = pending.clone();
            let done = done.clone();
            let wake = wake.clone();
            async move {
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
                        if let Ok(mut p) = pending.lock() {
                            p.push(line);
                        }
                    },
                    prompt,
                )
                .await;
                done.store(true, Ordering::SeqCst);
                wake.notify_one();
                result
            }
        };
        let post_batches = async {
            loop {
                let finished = done.load(Ordering::SeqCst);
                let lines: Vec<String> = pending
                    .lock()
                    .map(|mut p| std::mem::take(&mut *p))
                    .unwrap_or_default();
                if !lines.is_empty() {
                    self.conv.post(&batch_text(step, &lines)).await;
                }
                if finished {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POST_INTERVAL) => {}
                    _ = wake.notified() => {}
                }
            }
        };
        let grace = self.ctx.config.deploy.shutdown_grace;
        let guarded = async {
            let r = crate::shutdown::within_grace(run, &self.ctx.shutdown, grace).await;
            // When the grace ran out the step's future was dropped (killing its process group)
            // before it could say it was done.
            done.store(true, Ordering::SeqCst);
            wake.notify_one();
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
}
