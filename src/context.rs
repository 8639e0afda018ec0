//! What the work gets: the context the engine hands to every handler, and that the deploy
//! workflow and the watchers run with. It stands below all of them (it knows the store, the
//! upstream clients and the configuration, nothing that uses it), so the engine dispatches to
//! the handlers without anything importing the engine back.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::coalesce::Coalescer;
use crate::config::Config;
use crate::integrations::Integrations;
use crate::redact::Redactor;
use crate::store::Store;

/// The configuration, the store, the redactor, the upstream clients, the shutdown token and the
/// status caches. Cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<Config>,
    pub store: Store,
    pub redactor: Arc<Redactor>,
    /// GitHub, registry and Airflow clients, built once and shared.
    pub integrations: Arc<Integrations>,
    /// Cancelled when the process is shutting down: running steps get `[deploy] shutdown_grace`
    /// to finish, no new step starts.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Coalescing caches for status answers (`[watch] status_cache`).
    pub caches: Arc<Caches>,
}

/// One [`Coalescer`] per kind of status answer, made on first use and found by the answer's
/// types, so that this context need not know the handlers whose answers it caches.
pub struct Caches {
    ttl: Duration,
    by_type: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl Caches {
    pub fn new(ttl: Duration) -> Caches {
        Caches {
            ttl,
            by_type: Mutex::default(),
        }
    }

    /// The cache of answers `Result<V, E>`; every caller naming the same types shares it (and
    /// its keys tell their questions apart).
    pub fn of<V, E>(&self) -> Coalescer<V, E>
    where
        V: Clone + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
    {
        // A poisoned map only means another caller panicked between two plain inserts.
        let mut map = self.by_type.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = map
            .entry(TypeId::of::<Coalescer<V, E>>())
            .or_insert_with(|| Box::new(Coalescer::<V, E>::new(self.ttl)));
        // The entry under a type's id always holds that type, so the downcast cannot fail; if it
        // ever did, an unshared cache only costs an extra upstream request.
        slot.downcast_ref::<Coalescer<V, E>>()
            .cloned()
            .unwrap_or_else(|| Coalescer::new(self.ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn callers_naming_the_same_answer_types_share_one_cache() {
        let caches = Caches::new(Duration::from_secs(60));
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok::<u32, String>(7)
        };
        let (first, _) = caches.of::<u32, String>().get("k", fetch).await;
        let (second, _) = caches.of::<u32, String>().get("k", fetch).await;
        assert_eq!((first, second), (Ok(7), Ok(7)));
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "the second answer was cached"
        );
        // Other answer types have a cache of their own.
        let (other, _) = caches
            .of::<u64, String>()
            .get("k", || async { Ok::<u64, String>(8) })
            .await;
        assert_eq!(other, Ok(8));
    }
}
