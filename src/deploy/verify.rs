//! The verify step: after apply, Airflow must report every component healthy before the deploy
//! counts as succeeded, and the target's `verify` command, when it has one, must show the
//! deployed image running.

use std::time::Duration;

use crate::config::TargetConfig;
use crate::deploy::runner::failure_reason;
use crate::deploy::step::Step;
use crate::integrations::airflow::AirflowClient;
use crate::reply::Reply;
use crate::store::{Deploy, Owner};

use super::workflow::Workflow;

/// How often verify asks Airflow for its health.
const VERIFY_POLL: Duration = Duration::from_secs(5);

/// Polls Airflow's health until it is healthy (`Ok` says so, with the version when Airflow tells
/// it) or `deadline` passes (`Err` says what was last seen).
pub async fn airflow_healthy(
    airflow: &AirflowClient,
    deadline: Duration,
) -> Result<String, String> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let last = match airflow.health().await {
            Ok(h) => {
                let bad: Vec<&str> = [
                    ("metadatabase", Some(&h.metadatabase)),
                    ("scheduler", Some(&h.scheduler)),
                    ("triggerer", h.triggerer.as_ref()),
                    ("dag_processor", h.dag_processor.as_ref()),
                ]
                .into_iter()
                .filter_map(|(name, c)| {
                    let c = c?;
                    (c.status.as_deref().is_some_and(|s| s != "healthy")).then_some(name)
                })
                .collect();
                if bad.is_empty() {
                    let version = airflow
                        .version()
                        .await
                        .map(|v| format!("Airflow {} healthy", v.version))
                        .unwrap_or_else(|_| "Airflow healthy".to_string());
                    return Ok(version);
                }
                format!("unhealthy: {}", bad.join(", "))
            }
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() + VERIFY_POLL > until {
            return Err(format!(
                "Airflow was not healthy within {} (last: {last})",
                humantime::format_duration(deadline)
            ));
        }
        tokio::time::sleep(VERIFY_POLL).await;
    }
}

impl Workflow<'_> {
    /// Verify, after health: the target's `verify` argv must succeed and print the deployed
    /// image tag. Returns what the card and the success message say was checked; `Err` is the
    /// reply of a deploy failed here.
    pub(super) async fn verify_image(
        &self,
        d: &Deploy,
        target: &TargetConfig,
        owner: &Owner,
        health: String,
    ) -> Result<String, Reply> {
        let Some(argv) = &target.verify else {
            return Ok(format!(
                "{health}; only health was checked (no `verify` command is configured to confirm \
                 the running image)"
            ));
        };
        let tag = target.image_tag.replace("{version}", &d.version);
        let outcome = match self
            .runner()
            .run(d, Step::Verify, argv, target, None, None)
            .await
        {
            Err(e) => return Err(self.step_error(d, e, owner).await),
            Ok(o) => o,
        };
        if !outcome.success() {
            let reason = format!(
                "the verify command did not succeed, so the running image is not confirmed: {}",
                failure_reason(&outcome)
            );
            return Err(self.fail(d, &reason, owner).await);
        }
        if !outcome.output.contains(&tag) {
            let tail: Vec<&str> = outcome.output_tail.lines().collect();
            let tail = tail[tail.len().saturating_sub(5)..].join("\n");
            let reason = format!(
                "the verify command's output does not contain the deployed image tag `{tag}`, so \
                 the new image is not what runs; it printed:\n```\n{tail}\n```"
            );
            return Err(self.fail(d, &reason, owner).await);
        }
        Ok(format!("{health}; the running image is `{tag}` (verify)"))
    }
}
