//! The verify step: after apply, Airflow must report every component healthy before the deploy
//! counts as succeeded.

use std::time::Duration;

use crate::integrations::airflow::AirflowClient;

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
