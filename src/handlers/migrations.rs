//! `!migrations status` and `!migrations apply <name>`.
//!
//! Status covers (a) the bot's own store migrations, (b) the catalog database when
//! `[catalog_db]` is configured — the `*.sql` files of the migrations folder against a ledger
//! table the bot keeps in that database — and (c) the last runs of the DAGs configured as
//! migration DAGs (`[migrations] dags`).
//!
//! Applying needs two people within the existing grammar: the first `!migrations apply X`
//! files a request; the same command from a *different* maintainer approves and runs it — in one
//! transaction with `lock_timeout` and `statement_timeout` set, recorded in the ledger. A failed
//! run rolls back completely and consumes the request, so it must be asked for again.
//!
//! The catalog is not the bot's database, so the bot creates nothing there unasked: the ledger
//! table itself is the first pending migration (`0000_create_<ledger_table>`), shown with its
//! SQL and approved by two maintainers like any other; no other file runs before it. A file's
//! header may ask to run outside a transaction (`CREATE INDEX CONCURRENTLY`) or for longer
//! timeouts ([`file`]).

mod file;

pub use file::{Header, parse_header, split_statements};

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, Row};

use crate::config::CatalogDbConfig;
use crate::context::Ctx;
use crate::policy::Actor;
use crate::reply::{Outcome, Reply};
use crate::store::{self, now_ms};
use crate::timefmt;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Runs shown per migration DAG.
const DAG_RUNS: usize = 3;

/// One file of the migrations folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    /// The file name without `.sql`.
    pub name: String,
    pub sql: String,
    /// sha256 of the file, hex; a ledger row with another checksum means the file changed.
    pub checksum: String,
    /// Its directives, or why they are unusable (the file then cannot be applied).
    pub header: Result<Header, String>,
}

impl MigrationFile {
    fn new(name: String, sql: String) -> MigrationFile {
        use sha2::Digest;
        MigrationFile {
            checksum: hex::encode(sha2::Sha256::digest(sql.as_bytes())),
            header: parse_header(&sql),
            name,
            sql,
        }
    }

    /// ` (no transaction, statement_timeout 6h)`, or nothing for a plain file.
    fn header_note(&self) -> String {
        let Ok(h) = &self.header else {
            return String::new();
        };
        let mut parts = Vec::new();
        if h.no_transaction {
            parts.push("no transaction".to_string());
        }
        if let Some(d) = h.statement_timeout {
            parts.push(format!(
                "statement_timeout {}",
                humantime::format_duration(d)
            ));
        }
        if let Some(d) = h.lock_timeout {
            parts.push(format!("lock_timeout {}", humantime::format_duration(d)));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    }
}

/// The migration that creates the ledger table: listed first and approved like any other.
pub fn ledger_migration(cfg: &CatalogDbConfig) -> MigrationFile {
    MigrationFile::new(
        format!("0000_create_{}", cfg.ledger_table.replace('.', "_")),
        ledger_ddl(&cfg.ledger_table),
    )
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub name: String,
    pub checksum: String,
    pub applied_ms: i64,
    pub applied_by: String,
    pub requested_by: String,
}

/// The `*.sql` files of `dir`, by name.
pub async fn read_files(dir: &str) -> Result<Vec<MigrationFile>, String> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| format!("cannot read the migrations folder {dir}: {e}"))?;
    let mut out = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| format!("cannot read the migrations folder {dir}: {e}"))?
    {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".sql"))
        else {
            continue;
        };
        let sql = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        out.push(MigrationFile::new(name.to_string(), sql));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn connect(cfg: &CatalogDbConfig) -> Result<PgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(&cfg.url)).await {
        Err(_) => Err(format!(
            "the catalog database did not answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!("cannot connect to the catalog database: {e}")),
        Ok(Ok(c)) => Ok(c),
    }
}

/// A plain `CREATE TABLE`: if someone created it meanwhile, the run fails rather than
/// pretending to have made it.
fn ledger_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE {table} (name TEXT PRIMARY KEY, checksum TEXT NOT NULL, \
         applied_ms BIGINT NOT NULL, applied_by TEXT NOT NULL, requested_by TEXT NOT NULL, \
         duration_ms BIGINT NOT NULL)"
    )
}

/// The ledger's rows; `None` when the table does not exist yet (its own migration is pending).
/// Only reads: status never writes to the catalog database.
pub async fn read_ledger(cfg: &CatalogDbConfig) -> Result<Option<Vec<LedgerRow>>, String> {
    let mut conn = connect(cfg).await?;
    let table = &cfg.ledger_table;
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(table)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("cannot read the ledger {table}: {e}"))?;
    if exists.is_none() {
        let _ = conn.close().await;
        return Ok(None);
    }
    // The table name is validated config (a plain SQL name), never chat input.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT name, checksum, applied_ms, applied_by, requested_by FROM {table} ORDER BY name"
    )))
    .fetch_all(&mut conn)
    .await
    .map_err(|e| format!("cannot read the ledger {table}: {e}"))?;
    let _ = conn.close().await;
    rows.into_iter()
        .map(|r| {
            Ok(LedgerRow {
                name: r.try_get("name")?,
                checksum: r.try_get("checksum")?,
                applied_ms: r.try_get("applied_ms")?,
                applied_by: r.try_get("applied_by")?,
                requested_by: r.try_get("requested_by")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map(Some)
        .map_err(|e| format!("the ledger {table} has an unexpected shape: {e}"))
}

/// `!migrations status`.
pub async fn status(ctx: &Ctx) -> store::Result<Reply> {
    let now = now_ms();
    let mut out = Vec::new();
    let own = ctx.store.migration_status().await?;
    let applied = own.iter().filter(|m| m.applied).count();
    let pending: Vec<String> = own
        .iter()
        .filter(|m| !m.applied)
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    out.push(format!(
        "Bot store ({}): {applied} migration{} applied, {}.",
        ctx.store.backend().name(),
        if applied == 1 { "" } else { "s" },
        if pending.is_empty() {
            "none pending".to_string()
        } else {
            format!("pending: {}", pending.join(", "))
        }
    ));

    match &ctx.config.catalog_db {
        None => out.push("Catalog database: not configured ([catalog_db]).".to_string()),
        Some(cfg) => match catalog_lines(ctx, cfg, now).await {
            Ok(lines) => out.extend(lines),
            Err(e) => out.push(format!(
                "Catalog database: cannot be read — {}",
                ctx.redactor.redact(&e)
            )),
        },
    }

    for dag in &ctx.config.migrations.dags {
        match ctx.integrations.airflow.dag_runs(dag, DAG_RUNS).await {
            Ok(runs) if runs.is_empty() => out.push(format!("DAG `{dag}`: no runs yet.")),
            Ok(runs) => {
                let list: Vec<String> = runs
                    .iter()
                    .map(|r| {
                        let when = r
                            .end_date
                            .as_deref()
                            .or(r.start_date.as_deref())
                            .and_then(crate::timefmt::parse_rfc3339_ms)
                            .map(|ms| format!(" {}", timefmt::ago(ms, now)))
                            .unwrap_or_default();
                        format!("{}{when}", r.state)
                    })
                    .collect();
                out.push(format!("DAG `{dag}`: last runs {}", list.join(", ")));
            }
            Err(e) => out.push(format!(
                "DAG `{dag}`: runs unknown — {}",
                ctx.redactor.redact(&e.to_string())
            )),
        }
    }
    Ok(Reply::ok(out.join("\n")))
}

async fn catalog_lines(ctx: &Ctx, cfg: &CatalogDbConfig, now: i64) -> Result<Vec<String>, String> {
    let files = read_files(&cfg.migrations_dir).await?;
    let ledger = read_ledger(cfg).await?;
    let bootstrap = ledger_migration(cfg);
    let requested = |name: String| async move {
        match ctx.store.migration_request(&name).await {
            Ok(Some(r)) => format!(
                " · requested by {} {}, waiting for a second maintainer",
                r.requested_by,
                timefmt::ago(r.requested_ms, now)
            ),
            _ => String::new(),
        }
    };
    let Some(ledger) = ledger else {
        let mut out = vec![
            format!(
                "Catalog database ({} files in {}; the ledger table {} does not exist yet):",
                files.len(),
                cfg.migrations_dir,
                cfg.ledger_table
            ),
            format!(
                "  ⏳ {} pending{} — creates the ledger the bot records migrations in, and \
                 nothing else: `{}`. Nothing else runs before it.",
                bootstrap.name,
                requested(bootstrap.name.clone()).await,
                bootstrap.sql
            ),
        ];
        for f in &files {
            out.push(file_line(f, "pending (after the ledger)"));
        }
        return Ok(out);
    };
    let mut out = vec![format!(
        "Catalog database ({} files in {}, ledger {}):",
        files.len(),
        cfg.migrations_dir,
        cfg.ledger_table
    )];
    match ledger.iter().find(|l| l.name == bootstrap.name) {
        Some(l) => out.push(format!(
            "  ✅ {} applied {} by {} (requested by {})",
            l.name,
            timefmt::utc(l.applied_ms),
            l.applied_by,
            l.requested_by
        )),
        None => out.push(format!("  ✅ the ledger table {} exists", cfg.ledger_table)),
    }
    for f in &files {
        match ledger.iter().find(|l| l.name == f.name) {
            Some(l) => {
                let changed = if l.checksum != f.checksum {
                    " ⚠️ the file changed since it was applied"
                } else {
                    ""
                };
                out.push(format!(
                    "  ✅ {} applied {} by {} (requested by {}){changed}",
                    f.name,
                    timefmt::utc(l.applied_ms),
                    l.applied_by,
                    l.requested_by
                ));
            }
            None => {
                let req = requested(f.name.clone()).await;
                out.push(file_line(f, &format!("pending{req}")));
            }
        }
    }
    for l in ledger
        .iter()
        .filter(|l| l.name != bootstrap.name && !files.iter().any(|f| f.name == l.name))
    {
        out.push(format!(
            "  ❓ {} is in the ledger but its file is gone",
            l.name
        ));
    }
    Ok(out)
}

/// `⏳ 0002_index pending (no transaction, statement_timeout 6h)`, or why it cannot run.
fn file_line(f: &MigrationFile, what: &str) -> String {
    match &f.header {
        Ok(_) => format!("  ⏳ {} {what}{}", f.name, f.header_note()),
        Err(e) => format!("  ⚠️ {} cannot be applied: {e}", f.name),
    }
}

/// `!migrations apply <name>`: files the request, or — from a second maintainer — runs it.
pub async fn apply(ctx: &Ctx, actor: &Actor, name: &str) -> store::Result<Reply> {
    let prefix = &ctx.config.chat.prefix;
    let Some(cfg) = &ctx.config.catalog_db else {
        return Ok(Reply::new(
            Outcome::Blocked,
            "The catalog database is not configured ([catalog_db]); nothing was done.",
        ));
    };
    let name = name.strip_suffix(".sql").unwrap_or(name);
    let files = match read_files(&cfg.migrations_dir).await {
        Ok(f) => f,
        Err(e) => {
            return Ok(Reply::new(
                Outcome::Blocked,
                format!("{e}; nothing was done."),
            ));
        }
    };
    let ledger = match read_ledger(cfg).await {
        Ok(l) => l,
        Err(e) => {
            return Ok(Reply::new(
                Outcome::Blocked,
                format!("{}; nothing was done.", ctx.redactor.redact(&e)),
            ));
        }
    };
    let bootstrap = ledger_migration(cfg);
    if files.iter().any(|f| f.name == bootstrap.name) {
        return Ok(Reply::new(
            Outcome::Blocked,
            format!(
                "{} has a file named `{}`, the name of the ledger's own migration; rename it. \
                 Nothing was done.",
                cfg.migrations_dir, bootstrap.name
            ),
        ));
    }
    let applied = |n: &str| {
        ledger
            .as_ref()
            .and_then(|rows| rows.iter().find(|l| l.name == n))
    };
    if name == bootstrap.name {
        if ledger.is_some() {
            let when = applied(name)
                .map(|l| {
                    format!(
                        " (applied {} by {})",
                        timefmt::utc(l.applied_ms),
                        l.applied_by
                    )
                })
                .unwrap_or_default();
            return Ok(Reply::ok(format!(
                "The ledger table {} already exists{when}; nothing was done.",
                cfg.ledger_table
            )));
        }
        let what = format!(
            "It creates the ledger table in the catalog database, and nothing else: `{}`.",
            bootstrap.sql
        );
        return two_person(ctx, actor, cfg, &bootstrap, &what).await;
    }
    let pending: Vec<&MigrationFile> = files
        .iter()
        .filter(|f| applied(&f.name).is_none())
        .collect();
    let Some(file) = files.iter().find(|f| f.name == name) else {
        let mut names: Vec<&str> = pending.iter().map(|f| f.name.as_str()).collect();
        if ledger.is_none() {
            names.insert(0, bootstrap.name.as_str());
        }
        let list = if names.is_empty() {
            "none is pending".to_string()
        } else {
            format!("pending: {}", names.join(", "))
        };
        return Ok(Reply::new(
            Outcome::Invalid,
            format!(
                "There is no migration `{name}` in {} ({list}); nothing was done.",
                cfg.migrations_dir
            ),
        ));
    };
    if let Some(l) = applied(name) {
        return Ok(Reply::ok(format!(
            "`{name}` was already applied {} by {}; nothing was done.",
            timefmt::utc(l.applied_ms),
            l.applied_by
        )));
    }
    if ledger.is_none() {
        return Ok(Reply::new(
            Outcome::Blocked,
            format!(
                "The ledger table {} does not exist yet, and nothing runs in the catalog \
                 database before it: apply `{}` first (`{prefix}migrations apply {}`, two \
                 maintainers). Nothing was done.",
                cfg.ledger_table, bootstrap.name, bootstrap.name
            ),
        ));
    }
    if let Err(e) = &file.header {
        return Ok(Reply::new(
            Outcome::Blocked,
            format!("`{name}` cannot be applied: {e}. Nothing was done."),
        ));
    }
    let what = match file.header_note() {
        n if n.is_empty() => String::new(),
        n => format!("It runs{n}."),
    };
    two_person(ctx, actor, cfg, file, &what).await
}

/// The two-person rule: the first ask files a request, a second maintainer's runs it.
async fn two_person(
    ctx: &Ctx,
    actor: &Actor,
    cfg: &CatalogDbConfig,
    file: &MigrationFile,
    what: &str,
) -> store::Result<Reply> {
    let prefix = &ctx.config.chat.prefix;
    let name = file.name.as_str();
    let what = if what.is_empty() {
        String::new()
    } else {
        format!(" {what}")
    };
    match ctx.store.migration_request(name).await? {
        None => {
            if !ctx
                .store
                .request_migration(name, &actor.id, &actor.name)
                .await?
            {
                return Ok(Reply::new(
                    Outcome::Blocked,
                    format!(
                        "Someone requested `{name}` at the same moment; try `{prefix}migrations status`."
                    ),
                ));
            }
            Ok(Reply::new(
                Outcome::AwaitingApproval,
                format!(
                    "Requested migration `{name}`.{what} It runs when a second maintainer (not \
                     {}) sends `{prefix}migrations apply {name}` too.",
                    actor.name
                ),
            ))
        }
        // The same person under any name is not a second maintainer; a name match also refuses,
        // for requests filed before identities were recorded (their id is `local:<name>`).
        Some(r) if r.requested_by_id == actor.id || r.requested_by == actor.name => Ok(Reply::new(
            Outcome::AwaitingApproval,
            format!(
                "You requested `{name}` {}; it needs a second maintainer, not you. Still waiting.",
                timefmt::ago(r.requested_ms, now_ms())
            ),
        )),
        Some(r) => {
            if !ctx.store.take_migration_request(name).await? {
                return Ok(Reply::new(
                    Outcome::Blocked,
                    format!("Another approver is already running `{name}`; nothing was done."),
                ));
            }
            Ok(
                match run_migration(cfg, file, &actor.name, &r.requested_by).await {
                    Ok(took) => Reply::ok(format!(
                        "Applied `{name}` in {} (requested by {}, approved by {}); recorded in \
                         {}.",
                        timefmt::duration(took.as_millis() as i64),
                        r.requested_by,
                        actor.name,
                        cfg.ledger_table
                    )),
                    Err(e) => Reply::new(
                        Outcome::Failed,
                        format!(
                            "`{name}` failed{}: {}. The request is used up; ask again with \
                             `{prefix}migrations apply {name}` once fixed.",
                            if e.rolled_back {
                                " and was rolled back"
                            } else {
                                ""
                            },
                            ctx.redactor.redact(&e.text)
                        ),
                    ),
                },
            )
        }
    }
}

/// Why a run failed, and whether everything it did was undone.
#[derive(Debug)]
struct RunError {
    text: String,
    rolled_back: bool,
}

impl RunError {
    fn rolled_back(text: impl Into<String>) -> RunError {
        RunError {
            text: text.into(),
            rolled_back: true,
        }
    }
}

/// Runs one file (or the ledger's creation) and records it in the ledger.
async fn run_migration(
    cfg: &CatalogDbConfig,
    file: &MigrationFile,
    approved_by: &str,
    requested_by: &str,
) -> Result<Duration, RunError> {
    let header = file.header.clone().map_err(RunError::rolled_back)?;
    let lock = header.lock_timeout.unwrap_or(cfg.lock_timeout);
    let statement = header.statement_timeout.unwrap_or(cfg.statement_timeout);
    if header.no_transaction {
        run_outside_transaction(cfg, file, lock, statement, approved_by, requested_by).await
    } else {
        run_in_transaction(cfg, file, lock, statement, approved_by, requested_by)
            .await
            .map_err(RunError::rolled_back)
    }
}

/// `SET` or `SET LOCAL` of both timeouts. SET takes no bind parameters; the values are integer
/// milliseconds from the validated config or a parsed header.
fn timeouts_sql(local: bool, lock: Duration, statement: Duration) -> String {
    let set = if local { "SET LOCAL" } else { "SET" };
    format!(
        "{set} lock_timeout = '{}ms'; {set} statement_timeout = '{}ms'",
        lock.as_millis(),
        statement.as_millis()
    )
}

fn ledger_insert(table: &str) -> String {
    format!(
        "INSERT INTO {table} (name, checksum, applied_ms, applied_by, requested_by, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)"
    )
}

/// `CREATE INDEX CONCURRENTLY` inside a transaction: say how to run it.
fn hint(error: &str) -> String {
    if error.contains("cannot run inside a transaction block") {
        format!(
            "{error} — put `-- chatops: no-transaction` at the top of the file to run it \
             statement by statement"
        )
    } else {
        error.to_string()
    }
}

/// One transaction: the timeouts, the file, the ledger row.
async fn run_in_transaction(
    cfg: &CatalogDbConfig,
    file: &MigrationFile,
    lock: Duration,
    statement: Duration,
    approved_by: &str,
    requested_by: &str,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut conn = connect(cfg).await?;
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(timeouts_sql(true, lock, statement)))
        .execute(&mut *tx)
        .await
        .map_err(|e| format!("cannot set the timeouts: {e}"))?;
    // The file's SQL is exactly what two maintainers agreed to run.
    sqlx::raw_sql(sqlx::AssertSqlSafe(file.sql.clone()))
        .execute(&mut *tx)
        .await
        .map_err(|e| hint(&e.to_string()))?;
    let took = started.elapsed();
    sqlx::query(sqlx::AssertSqlSafe(ledger_insert(&cfg.ledger_table)))
        .bind(&file.name)
        .bind(&file.checksum)
        .bind(now_ms())
        .bind(approved_by)
        .bind(requested_by)
        .bind(i64::try_from(took.as_millis()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(|e| format!("cannot record it in the ledger: {e}"))?;
    tx.commit().await.map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(took)
}

/// Statement by statement, each committing on its own (`-- chatops: no-transaction`): what ran
/// before a failing statement stays, and the error says so.
async fn run_outside_transaction(
    cfg: &CatalogDbConfig,
    file: &MigrationFile,
    lock: Duration,
    statement: Duration,
    approved_by: &str,
    requested_by: &str,
) -> Result<Duration, RunError> {
    let started = Instant::now();
    let mut conn = connect(cfg).await.map_err(RunError::rolled_back)?;
    // Session-wide: the connection is this run's alone and closed after it.
    sqlx::raw_sql(sqlx::AssertSqlSafe(timeouts_sql(false, lock, statement)))
        .execute(&mut conn)
        .await
        .map_err(|e| RunError::rolled_back(format!("cannot set the timeouts: {e}")))?;
    let statements = split_statements(&file.sql);
    let n = statements.len();
    for (i, stmt) in statements.into_iter().enumerate() {
        let concurrently = stmt.to_ascii_uppercase().contains("CONCURRENTLY");
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
            .execute(&mut conn)
            .await
        {
            let _ = conn.close().await;
            let kept = match i {
                0 => "nothing before it ran".to_string(),
                1 => "the statement before it stays applied".to_string(),
                i => format!("the {i} statements before it stay applied"),
            };
            let invalid_index = if concurrently {
                "; a failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind: drop it \
                 with DROP INDEX CONCURRENTLY before asking again"
            } else {
                ""
            };
            return Err(RunError {
                text: format!(
                    "statement {} of {n} failed: {e} (the file runs without a transaction: \
                     {kept}{invalid_index})",
                    i + 1
                ),
                rolled_back: false,
            });
        }
    }
    let took = started.elapsed();
    let recorded = sqlx::query(sqlx::AssertSqlSafe(ledger_insert(&cfg.ledger_table)))
        .bind(&file.name)
        .bind(&file.checksum)
        .bind(now_ms())
        .bind(approved_by)
        .bind(requested_by)
        .bind(i64::try_from(took.as_millis()).unwrap_or(i64::MAX))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    recorded.map_err(|e| RunError {
        text: format!(
            "every statement ran, but recording it in the ledger failed: {e} — insert the row \
             by hand or it will be listed as pending"
        ),
        rolled_back: false,
    })?;
    Ok(took)
}
