//! Coalescing and short caching of upstream status queries.
//!
//! Many people asking `!airflow status` at once must not hammer Airflow: callers of the same key
//! queue behind one in-flight fetch and take its answer, and a successful answer is reused for a
//! short time (the reply then says how old it is). Errors are shared only with callers who were
//! already waiting — a later question tries again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

struct Entry<V, E> {
    done: Instant,
    value: Result<V, E>,
}

type Slot<V, E> = Arc<Mutex<Option<Entry<V, E>>>>;

/// One cache per kind of answer; cheap to clone.
pub struct Coalescer<V, E> {
    ttl: Duration,
    slots: Arc<std::sync::Mutex<HashMap<String, Slot<V, E>>>>,
}

impl<V, E> Clone for Coalescer<V, E> {
    fn clone(&self) -> Self {
        Coalescer {
            ttl: self.ttl,
            slots: self.slots.clone(),
        }
    }
}

impl<V: Clone, E: Clone> Coalescer<V, E> {
    pub fn new(ttl: Duration) -> Self {
        Coalescer {
            ttl,
            slots: Arc::default(),
        }
    }

    /// The answer for `key` and its age: fetched now (age zero), shared with a concurrent caller,
    /// or reused from the last `ttl`.
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> (Result<V, E>, Duration)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let asked = Instant::now();
        let slot = {
            // A poisoned map only means another caller panicked between two plain inserts.
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slots.entry(key.to_string()).or_default().clone()
        };
        // Holding the slot's lock across the fetch is the coalescing: everyone else asking for
        // the same key waits here and then finds the fresh entry.
        let mut entry = slot.lock().await;
        if let Some(e) = entry.as_ref() {
            let fresh_for_me = e.done >= asked;
            let young = e.done.elapsed() <= self.ttl;
            if fresh_for_me || (young && e.value.is_ok()) {
                let age = if fresh_for_me {
                    Duration::ZERO
                } else {
                    e.done.elapsed()
                };
                return (e.value.clone(), age);
            }
        }
        let value = fetch().await;
        *entry = Some(Entry {
            done: Instant::now(),
            value: value.clone(),
        });
        (value, Duration::ZERO)
    }
}

/// ` (as of 12 s ago)` for answers older than a second, nothing for fresh ones.
pub fn as_of(age: Duration) -> String {
    match age.as_secs() {
        0 => String::new(),
        s => format!(" (as of {s} s ago)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let c: Coalescer<u32, String> = Coalescer::new(Duration::from_secs(5));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let c = c.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                c.get("k", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(7)
                })
                .await
                .0
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn errors_are_not_cached_for_later_callers() {
        let c: Coalescer<u32, String> = Coalescer::new(Duration::from_secs(5));
        let (v, _) = c.get("k", || async { Err("down".to_string()) }).await;
        assert!(v.is_err());
        let (v, _) = c.get("k", || async { Ok(1) }).await;
        assert_eq!(v, Ok(1));
        let (v, _) = c.get("k", || async { Ok(2) }).await;
        assert_eq!(v, Ok(1), "a young answer is reused");
    }

    #[test]
    fn ages_are_worded() {
        assert_eq!(as_of(Duration::from_millis(300)), "");
        assert_eq!(as_of(Duration::from_secs(12)), " (as of 12 s ago)");
    }
}
