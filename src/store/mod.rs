//! The store: the single source of truth for audit events, deploys, locks, seen DAGs and message
//! claims (and what the registry's token dance taught a previous process), over SQLite (embedded
//! default) or Postgres (teams, replicas).
//!
//! One code path: runtime queries through sqlx's `Any` driver with `$n` placeholders, which both
//! SQLite and Postgres accept. Columns are integers and text only, because `Any` cannot decode
//! SQLite's BOOLEAN or date types.

mod audit;
mod claims;
mod dag_sync;
mod deploys;
mod embedded;
mod locks;
mod registry_auth;
mod seen;
mod step_runs;
mod waits;

/// The store persists deploy states; the type and its transitions live in the deploy's state
/// machine (pure, on the ground floor), re-exported here for the store's callers.
pub use crate::deploy::state::DeployState;
pub use audit::{AuditEvent, Broken, NewAuditEvent, VerifyReport};
pub use dag_sync::SyncedCommit;
pub use deploys::{Approval, Deploy, NewDeploy, Owner, StepRecord};
pub use locks::{Lock, NewLock};
pub use seen::{MigrationRequest, SeenDag};
pub use step_runs::StepRun;
pub use waits::{NewWait, PausedDag, Wait};

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

/// How long a writer waits for SQLite's write lock before giving up. Appends from several
/// processes queue on that lock, so it must outlast a burst of them.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store.url must start with sqlite:// or postgres:// (got `{0}`)")]
    UnsupportedUrl(String),
    #[error("cannot create the directory for the SQLite store {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the store ({backend}): {source}")]
    Open {
        backend: &'static str,
        source: sqlx::Error,
    },
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("cannot append to the audit log: {0}")]
    Append(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// A caller asked for a move the deploy state machine does not have.
    #[error("deploy #{id} cannot move from {from} to {to}: the deploy workflow has no such step")]
    IllegalTransition {
        id: i64,
        from: DeployState,
        to: DeployState,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One applied or pending store migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    audit_writer: tokio::sync::mpsc::Sender<audit::AppendRequest>,
}

impl Store {
    /// Opens (and for SQLite, creates) the database. Does not migrate: call [`Store::migrate`].
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let (url, sync) = match backend {
            Backend::Sqlite => {
                let (rest, sync) = sqlite_synchronous(url)?;
                (prepare_sqlite(&rest)?, sync)
            }
            Backend::Postgres => (url.to_string(), Synchronous::Full),
        };
        let open_err = |source| StoreError::Open {
            backend: backend.name(),
            source,
        };
        let options = AnyConnectOptions::from_str(&url).map_err(open_err)?;
        let pool_options = AnyPoolOptions::new()
            .max_connections(match backend {
                // SQLite has one writer at a time; a few connections serve concurrent readers.
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(30));
        let pool_options = if backend == Backend::Sqlite {
            pool_options.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers proceed during a write; FULL (the default) makes each
                    // commit durable; the busy timeout makes concurrent writers (other processes) queue.
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "PRAGMA busy_timeout = {}; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
                        SQLITE_BUSY_TIMEOUT.as_millis(),
                        sync.pragma()
                    )))
                    .await?;
                    Ok(())
                })
            })
        } else {
            pool_options
        };
        let pool = pool_options.connect_with(options).await.map_err(open_err)?;
        let (audit_writer, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(audit::run_writer(pool.clone(), backend, rx));
        let store = Store {
            pool,
            backend,
            audit_writer,
        };
        if backend == Backend::Sqlite {
            store.enable_wal().await?;
        }
        Ok(store)
    }

    /// Switching to WAL needs an exclusive lock that the busy timeout does not cover, so a second
    /// process opening a fresh file at the same moment can see "database is locked": retry briefly.
    async fn enable_wal(&self) -> Result<()> {
        let mut attempt = 0;
        loop {
            match sqlx::query("PRAGMA journal_mode = WAL")
                .fetch_optional(&self.pool)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "retrying PRAGMA journal_mode = WAL");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &embedded::SQLITE,
            Backend::Postgres => &embedded::POSTGRES,
        }
    }

    /// Applies pending migrations; returns the versions it applied.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        let before: Vec<i64> = self
            .migration_status()
            .await?
            .into_iter()
            .filter(|m| !m.applied)
            .map(|m| m.version)
            .collect();
        self.migrator().run(&self.pool).await?;
        Ok(before)
    }

    /// Every known migration and whether it is applied.
    pub async fn migration_status(&self) -> Result<Vec<MigrationInfo>> {
        // Before the first migration there is no ledger table: nothing is applied.
        let applied: Vec<i64> = sqlx::query_scalar::<_, i64>(
            "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default();
        Ok(self
            .migrator()
            .iter()
            .map(|m| MigrationInfo {
                version: m.version,
                description: m.description.to_string(),
                applied: applied.contains(&m.version),
            })
            .collect())
    }

    /// True when the database answers and every migration is applied.
    pub async fn is_current(&self) -> Result<bool> {
        Ok(self.migration_status().await?.iter().all(|m| m.applied))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes sure the SQLite file's directory exists and that the file is created on first use.
/// SQLite's commit durability, from the URL's `synchronous=` parameter (ours, not sqlx's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is on disk before it returns (the default).
    Full,
    /// WAL commits survive a crash of the process but may be lost on power failure.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Splits our `synchronous=full|normal` parameter off a SQLite URL.
fn sqlite_synchronous(url: &str) -> Result<(String, Synchronous)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Synchronous::Full));
    };
    let mut sync = Synchronous::Full;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("synchronous", v)) => {
                sync = match v.to_ascii_lowercase().as_str() {
                    "full" => Synchronous::Full,
                    "normal" => Synchronous::Normal,
                    other => {
                        return Err(StoreError::UnsupportedUrl(format!(
                            "{} (synchronous must be full or normal, got `{other}`)",
                            redact_url(url)
                        )));
                    }
                }
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, sync))
}

fn prepare_sqlite(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path != ":memory:"
        && let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: parent.display().to_string(),
            source,
        })?;
    }
    let query = match query {
        Some(q) if q.contains("mode=") => q.to_string(),
        Some(q) => format!("{q}&mode=rwc"),
        None => "mode=rwc".to_string(),
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// Hides a password in a database URL before it is shown anywhere.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Milliseconds since the Unix epoch, the store's only time representation.
pub use crate::timefmt::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_hidden() {
        assert_eq!(
            redact_url("postgres://bot:hunter2@db/catalog"),
            "postgres://bot:***@db/catalog"
        );
        assert_eq!(redact_url("postgres://root@db/x"), "postgres://root@db/x");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn sqlite_durability_is_chosen_in_the_url() {
        let (url, sync) =
            sqlite_synchronous("sqlite://x.db?synchronous=normal&mode=rwc").expect("ok");
        assert_eq!(
            (url.as_str(), sync),
            ("sqlite://x.db?mode=rwc", Synchronous::Normal)
        );
        let (url, sync) = sqlite_synchronous("sqlite://x.db").expect("ok");
        assert_eq!((url.as_str(), sync), ("sqlite://x.db", Synchronous::Full));
        let err = sqlite_synchronous("sqlite://x.db?synchronous=off").expect_err("refused");
        assert!(
            err.to_string()
                .contains("synchronous must be full or normal"),
            "{err}"
        );
    }

    #[test]
    fn sqlite_urls_create_on_first_use() {
        assert_eq!(
            prepare_sqlite("sqlite://:memory:").ok().as_deref(),
            Some("sqlite://:memory:?mode=rwc")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/a/b/x.db", dir.path().display());
        let prepared = prepare_sqlite(&url).expect("prepared");
        assert!(prepared.ends_with("x.db?mode=rwc"));
        assert!(dir.path().join("a/b").is_dir());
    }
}
