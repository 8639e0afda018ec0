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
    use sha2::Digest;
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
        out.push(MigrationFile {
            name: name.to_string(),
            checksum: hex::encode(sha2::Sha256::digest(sql.as_bytes())),
            sql,
        });
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

fn ledger_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (\
           name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_ms BIGINT NOT NULL, \
           applied_by TEXT NOT NULL, requested_by TEXT NOT NULL, duration_ms BIGINT NOT NULL)"
    )
}

/// The ledger's rows; none when the table does not exist yet (nothing applied through the bot).
/// Read in a read-only transaction: status never writes.
pub async fn read_ledger(cfg: &CatalogDbConfig) -> Result<Vec<LedgerRow>, String> {
    let mut conn = connect(cfg).await?;
    let table = &cfg.ledger_table;
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(table)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("cannot read the ledger {table}: {e}"))?;
    if exists.is_none() {
        return Ok(Vec::new());
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
    let mut out = vec![format!(
        "Catalog database ({} files in {}, ledger {}):",
        files.len(),
        cfg.migrations_dir,
        cfg.ledger_table
    )];
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
                let req = match ctx.store.migration_request(&f.name).await {
                    Ok(Some(r)) => format!(
                        " · requested by {} {}, waiting for a second maintainer",
                        r.requested_by,
                        timefmt::ago(r.requested_ms, now)
                    ),
                    _ => String::new(),
                };
                out.push(format!("  ⏳ {} pending{req}", f.name));
            }
        }
    }
    for l in ledger
        .iter()
        .filter(|l| !files.iter().any(|f| f.name == l.name))
    {
        out.push(format!(
            "  ❓ {} is in the ledger but its file is gone",
            l.name
        ));
    }
    Ok(out)
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
    let pending: Vec<&MigrationFile> = files
        .iter()
        .filter(|f| !ledger.iter().any(|l| l.name == f.name))
        .collect();
    let Some(file) = files.iter().find(|f| f.name == name) else {
        let list = if pending.is_empty() {
            "none is pending".to_string()
        } else {
            format!(
                "pending: {}",
                pending
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Ok(Reply::new(
            Outcome::Invalid,
            format!(
                "There is no migration `{name}` in {} ({list}); nothing was done.",
                cfg.migrations_dir
            ),
        ));
    };
    if let Some(l) = ledger.iter().find(|l| l.name == name) {
        return Ok(Reply::ok(format!(
            "`{name}` was already applied {} by {}; nothing was done.",
            timefmt::utc(l.applied_ms),
            l.applied_by
        )));
    }
    let request = ctx.store.migration_request(name).await?;
    match request {
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
                    "Requested migration `{name}`. It runs when a second maintainer (not {}) \
                     sends `{prefix}migrations apply {name}` too.",
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
                            "`{name}` failed and was rolled back: {}. The request is used up; \
                             ask again with `{prefix}migrations apply {name}` once fixed.",
                            ctx.redactor.redact(&e)
                        ),
                    ),
                },
            )
        }
    }
}

/// One transaction: timeouts, the ledger table, the file, the ledger row.
async fn run_migration(
    cfg: &CatalogDbConfig,
    file: &MigrationFile,
    approved_by: &str,
    requested_by: &str,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut conn = connect(cfg).await?;
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    let ms = |d: Duration| d.as_millis();
    // SET LOCAL takes no bind parameters; the values are integers from the validated config.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms'",
        ms(cfg.lock_timeout),
        ms(cfg.statement_timeout)
    )))
    .execute(&mut *tx)
    .await
    .map_err(|e| format!("cannot set the timeouts: {e}"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(ledger_ddl(&cfg.ledger_table)))
        .execute(&mut *tx)
        .await
        .map_err(|e| format!("cannot create the ledger {}: {e}", cfg.ledger_table))?;
    // The file's SQL is exactly what two maintainers agreed to run.
    sqlx::raw_sql(sqlx::AssertSqlSafe(file.sql.clone()))
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (name, checksum, applied_ms, applied_by, requested_by, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        cfg.ledger_table
    )))
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
