//! Graceful shutdown: SIGTERM or SIGINT cancels one `CancellationToken`; front ends stop taking
//! commands when it fires, a running deploy step gets `[deploy] shutdown_grace` to finish, and
//! after that it is killed and its deploy recorded `interrupted` (never a silent loss).
//!
//! `exec` and `serve` use it here; `run` reuses [`on_signals`] and hands the same token to the
//! engine with [`crate::Engine::with_shutdown`].

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT. A second signal is not special-cased: the
/// grace period already bounds how long the process lingers.
pub fn on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    // Without the SIGTERM handler the default action (exit) stays in place; SIGINT
                    // below still works.
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => tracing::warn!("SIGTERM received: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::warn!("SIGINT received: shutting down"),
            _ = token.cancelled() => return,
        }
        token.cancel();
    });
}

/// Runs `work` to its end unless `token` is cancelled and `work` then takes longer than `grace`;
/// in that case `work` is dropped (for a step: its process group is killed) and `None` returned.
pub async fn within_grace<F: Future>(
    work: F,
    token: &CancellationToken,
    grace: Duration,
) -> Option<F::Output> {
    tokio::pin!(work);
    tokio::select! {
        out = &mut work => return Some(out),
        _ = token.cancelled() => {}
    }
    tracing::warn!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: waiting for the running step"
    );
    tokio::time::timeout(grace, work).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_finishing_within_the_grace_completes() {
        let token = CancellationToken::new();
        token.cancel();
        let out = within_grace(
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                7
            },
            &token,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(out, Some(7));
    }

    #[tokio::test]
    async fn work_outlasting_the_grace_is_dropped() {
        let token = CancellationToken::new();
        let t2 = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            t2.cancel();
        });
        let out = within_grace(
            tokio::time::sleep(Duration::from_secs(30)),
            &token,
            Duration::from_millis(50),
        )
        .await;
        assert_eq!(out, None);
    }
}
