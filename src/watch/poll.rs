//! The loop every announcer runs: poll every `[watch] poll_interval` until cancelled, and ride
//! out an outage of what it polls. The first failure of an outage is logged as a warning, later
//! ones at debug, and the wait doubles up to ten intervals; nothing is posted about the outage.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// What one successful poll tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Poll again after the interval.
    Again,
    /// Nothing to watch (e.g. not configured): the loop ends.
    Stop,
}

/// Runs `poll` every `interval` until `cancel` or until it answers [`Next::Stop`], backing off
/// while it fails. `name` labels the log lines (`DAG announcer`, `dag-sync announcer`).
pub async fn every<F, Fut, E>(
    name: &str,
    interval: Duration,
    cancel: &CancellationToken,
    mut poll: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Next, E>>,
    E: Display,
{
    let mut wait = interval;
    let mut failing = false;
    loop {
        let polled = tokio::select! {
            _ = cancel.cancelled() => return,
            r = poll() => r,
        };
        match polled {
            Ok(Next::Stop) => return,
            Ok(Next::Again) => {
                if failing {
                    tracing::info!("{name}: answers again");
                }
                failing = false;
                wait = interval;
            }
            Err(e) => {
                if failing {
                    tracing::debug!(error = %e, "{name}: poll failed again");
                } else {
                    tracing::warn!(error = %e, "{name}: poll failed; retrying with backoff");
                }
                failing = true;
                wait = backoff(wait, interval);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The next wait after a failure: doubled, between one and ten intervals.
fn backoff(wait: Duration, interval: Duration) -> Duration {
    (wait * 2).min(interval * 10).max(interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn the_wait_doubles_up_to_ten_intervals() {
        let i = Duration::from_secs(30);
        let mut w = i;
        let mut seen = Vec::new();
        for _ in 0..6 {
            w = backoff(w, i);
            seen.push(w.as_secs());
        }
        assert_eq!(seen, [60, 120, 240, 300, 300, 300]);
    }

    #[tokio::test]
    async fn polls_until_stop_and_keeps_going_through_failures() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        every(
            "test",
            Duration::from_millis(1),
            &CancellationToken::new(),
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        0 | 1 => Err("down"),
                        2 => Ok(Next::Again),
                        _ => Ok(Next::Stop),
                    }
                }
            },
        )
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn cancel_ends_the_loop() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        every("test", Duration::from_secs(3600), &cancel, || async {
            Ok::<_, &str>(Next::Again)
        })
        .await;
    }
}
