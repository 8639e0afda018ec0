//! `!migrations status` and `!migrations apply` against the real Postgres as the catalog
//! database (a fresh database per test): the ledger's own creation as the first pending
//! migration (nothing is created before two maintainers approve it), files against the ledger,
//! the two-person rule within the existing grammar, one transaction that rolls back whole, the
//! timeouts set, and files that run outside a transaction (`CREATE INDEX CONCURRENTLY`) with
//! their own timeouts.

use crate::support;

use catalog_chatops::chat::Transcript;
use catalog_chatops::config::CatalogDbConfig;
use catalog_chatops::policy::Actor;
use catalog_chatops::{Engine, Outcome};
use sqlx::Connection;

fn maintainer(name: &str) -> Actor {
    Actor::local(name, &["core-maintainer".to_string()], "tester")
}

#[tokio::test]
async fn status_and_two_person_apply_against_real_postgres() {
    let Some(catalog_url) = support::postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, sql: &str| std::fs::write(dir.path().join(name), sql).expect("write");
    write(
        "0001_create_image.sql",
        "CREATE TABLE image (id BIGSERIAL PRIMARY KEY, url TEXT NOT NULL);",
    );
    write(
        "0002_add_license.sql",
        "ALTER TABLE image ADD COLUMN license TEXT;\nCREATE INDEX image_license ON image (license);",
    );
    // Fails halfway: its first statement must be rolled back with it.
    write(
        "0003_broken.sql",
        "ALTER TABLE image ADD COLUMN provider TEXT;\nALTER TABLE no_such_table ADD COLUMN x INT;",
    );
    write(
        "0004_show_timeouts.sql",
        "CREATE TABLE seen_timeouts AS SELECT current_setting('lock_timeout') AS lock_t, \
         current_setting('statement_timeout') AS stmt_t;",
    );
    std::fs::write(dir.path().join("README.md"), "not a migration").expect("write");

    let (t, engine) = engine_on(&catalog_url, dir.path()).await;

    let status = say(&engine, "alice", "!migrations status").await;
    assert_eq!(status.outcome, Outcome::Ok, "{}", status.message);
    assert!(
        status.message.contains(&format!(
            "Bot store (sqlite): {} migrations applied, none pending.",
            crate::support::store_migrations()
        )),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("Catalog database (4 files in"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("⏳ 0001_create_image pending"),
        "{}",
        status.message
    );

    // Nothing exists in the catalog database yet: the ledger is the first pending migration.
    assert!(
        status.message.contains(
            "the ledger table chatops_migrations does not exist yet):\n  ⏳ \
             0000_create_chatops_migrations pending — creates the ledger the bot records \
             migrations in, and nothing else: `CREATE TABLE chatops_migrations (name TEXT"
        ),
        "{}",
        status.message
    );
    assert_eq!(tables(&catalog_url).await, Vec::<String>::new());

    // Unknown name: the pending ones are listed, nothing changes.
    let unknown = say(&engine, "alice", "!migrations apply 0009_nope").await;
    assert_eq!(unknown.outcome, Outcome::Invalid);
    assert!(
        unknown.message.contains(
            "pending: 0000_create_chatops_migrations, 0001_create_image, 0002_add_license"
        ),
        "{}",
        unknown.message
    );

    // No file runs before the ledger exists, and nothing is filed.
    let early = say(&engine, "alice", "!migrations apply 0001_create_image").await;
    assert_eq!(early.outcome, Outcome::Blocked, "{}", early.message);
    assert!(
        early.message.contains(
            "The ledger table chatops_migrations does not exist yet, and nothing runs in the \
             catalog database before it: apply `0000_create_chatops_migrations` first"
        ),
        "{}",
        early.message
    );

    // The ledger's own creation: requested, still pending, then approved by a second person.
    let req = say(
        &engine,
        "alice",
        "!migrations apply 0000_create_chatops_migrations",
    )
    .await;
    assert_eq!(req.outcome, Outcome::AwaitingApproval, "{}", req.message);
    assert!(
        req.message
            .contains("It creates the ledger table in the catalog database, and nothing else"),
        "{}",
        req.message
    );
    let status = say(&engine, "carol", "!migrations status").await;
    assert!(
        status
            .message
            .contains("⏳ 0000_create_chatops_migrations pending · requested by alice"),
        "{}",
        status.message
    );
    assert_eq!(
        tables(&catalog_url).await,
        Vec::<String>::new(),
        "still nothing"
    );
    let made = say(
        &engine,
        "bob",
        "!migrations apply 0000_create_chatops_migrations",
    )
    .await;
    assert_eq!(made.outcome, Outcome::Ok, "{}", made.message);
    assert_eq!(tables(&catalog_url).await, ["chatops_migrations"]);
    let status = say(&engine, "carol", "!migrations status").await;
    assert!(
        status
            .message
            .contains("✅ 0000_create_chatops_migrations applied "),
        "{}",
        status.message
    );

    // Alice requests; Alice again is still waiting; Bob approves and it runs.
    let req = say(&engine, "alice", "!migrations apply 0001_create_image").await;
    assert_eq!(req.outcome, Outcome::AwaitingApproval, "{}", req.message);
    assert!(
        req.message.contains("second maintainer (not alice)"),
        "{}",
        req.message
    );
    let again = say(&engine, "alice", "!migrations apply 0001_create_image.sql").await;
    assert_eq!(again.outcome, Outcome::AwaitingApproval);
    assert!(again.message.contains("needs a second maintainer, not you"));
    let status = say(&engine, "carol", "!migrations status").await;
    assert!(
        status
            .message
            .contains("⏳ 0001_create_image pending · requested by alice"),
        "{}",
        status.message
    );
    let run = say(&engine, "bob", "!migrations apply 0001_create_image").await;
    assert_eq!(run.outcome, Outcome::Ok, "{}", run.message);
    assert!(
        run.message.contains("requested by alice, approved by bob"),
        "{}",
        run.message
    );
    let done = say(&engine, "carol", "!migrations apply 0001_create_image").await;
    assert!(done.message.contains("already applied"), "{}", done.message);

    // A failing file rolls back whole and uses the request up.
    say(&engine, "alice", "!migrations apply 0003_broken").await;
    let failed = say(&engine, "bob", "!migrations apply 0003_broken").await;
    assert_eq!(failed.outcome, Outcome::Failed, "{}", failed.message);
    assert!(failed.message.contains("rolled back"), "{}", failed.message);

    // The timeouts are set inside the transaction.
    say(&engine, "bob", "!migrations apply 0004_show_timeouts").await;
    let ok = say(&engine, "alice", "!migrations apply 0004_show_timeouts").await;
    assert_eq!(ok.outcome, Outcome::Ok, "{}", ok.message);

    let mut conn = sqlx::PgConnection::connect(&catalog_url)
        .await
        .expect("connect");
    let provider: Option<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_name = 'image' AND column_name = 'provider'",
    )
    .fetch_optional(&mut conn)
    .await
    .expect("columns");
    assert_eq!(provider, None, "the failed migration left nothing behind");
    let (lock_t, stmt_t): (String, String) =
        sqlx::query_as("SELECT lock_t, stmt_t FROM seen_timeouts")
            .fetch_one(&mut conn)
            .await
            .expect("timeouts");
    assert_eq!((lock_t.as_str(), stmt_t.as_str()), ("3s", "1min"));
    let ledger: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT name, applied_by, requested_by FROM chatops_migrations ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("ledger");
    assert_eq!(
        ledger,
        vec![
            (
                "0000_create_chatops_migrations".into(),
                "bob".into(),
                "alice".into()
            ),
            ("0001_create_image".into(), "bob".into(), "alice".into()),
            ("0004_show_timeouts".into(), "alice".into(), "bob".into()),
        ]
    );
    let status = say(&engine, "carol", "!migrations status").await;
    assert!(
        status.message.contains("✅ 0001_create_image applied "),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("by bob (requested by alice)"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("⏳ 0002_add_license pending"),
        "{}",
        status.message
    );

    // Audited: attempts and results.
    let events = t.store.list_audit(100, None).await.expect("audit");
    assert!(events.iter().any(|e| {
        e.kind == "result"
            && e.actor == "bob"
            && e.detail["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Applied `0001_create_image`"))
    }));
}

/// The tables of the catalog database's `public` schema, by name.
/// An engine on a SQLite store of its own whose catalog DB is `catalog_url` with the
/// migrations in `dir` (no Airflow, no migration DAGs).
async fn engine_on(catalog_url: &str, dir: &std::path::Path) -> (support::TestStore, Engine) {
    let t = support::sqlite().await;
    let mut config = support::config_with_store(&t.url);
    config.airflow.url = "http://127.0.0.1:9".into();
    config.migrations.dags = vec![];
    config.catalog_db = Some(CatalogDbConfig {
        url: catalog_url.to_string(),
        migrations_dir: dir.display().to_string(),
        ledger_table: "chatops_migrations".into(),
        lock_timeout: std::time::Duration::from_secs(3),
        statement_timeout: std::time::Duration::from_secs(60),
    });
    let engine = Engine::new(config, t.store.clone()).expect("engine");
    (t, engine)
}

/// One command from maintainer `who`.
async fn say(engine: &Engine, who: &str, text: &str) -> catalog_chatops::reply::Reply {
    engine
        .handle(&maintainer(who), text, &Transcript::new())
        .await
        .expect("addressed")
}

async fn tables(url: &str) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables");
    let _ = conn.close().await;
    names
}

#[tokio::test]
async fn create_index_concurrently_runs_outside_a_transaction_with_its_own_timeout() {
    let Some(catalog_url) = support::postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, sql: &str| std::fs::write(dir.path().join(name), sql).expect("write");
    write(
        "0001_create_image.sql",
        "CREATE TABLE image (id BIGSERIAL PRIMARY KEY, provider TEXT);\n\
         INSERT INTO image (provider) SELECT 'flickr' FROM generate_series(1, 1000);",
    );
    write(
        "0002_index_provider.sql",
        "-- The usual way to index the big table: no lock on writes, no transaction.\n\
         -- chatops: no-transaction\n\
         -- chatops: statement_timeout=2h\n\
         CREATE INDEX CONCURRENTLY image_provider_idx ON image (provider);\n\
         CREATE TABLE seen_timeout AS SELECT current_setting('statement_timeout') AS t;\n",
    );
    write(
        "0003_concurrently_in_a_transaction.sql",
        "CREATE INDEX CONCURRENTLY image_id_provider_idx ON image (id, provider);",
    );
    write(
        "0004_half_done.sql",
        "-- chatops: no-transaction\n\
         ALTER TABLE image ADD COLUMN license TEXT;\n\
         ALTER TABLE no_such_table ADD COLUMN x INT;\n",
    );
    write("0005_typo.sql", "-- chatops: no-transction\nSELECT 1;\n");

    let (_t, engine) = engine_on(&catalog_url, dir.path()).await;
    let both = |name: &'static str| {
        let engine = &engine;
        async move {
            let first = say(engine, "alice", &format!("!migrations apply {name}")).await;
            assert_eq!(
                first.outcome,
                Outcome::AwaitingApproval,
                "{}",
                first.message
            );
            say(engine, "bob", &format!("!migrations apply {name}")).await
        }
    };
    assert_eq!(
        both("0000_create_chatops_migrations").await.outcome,
        Outcome::Ok
    );
    assert_eq!(both("0001_create_image").await.outcome, Outcome::Ok);

    let status = say(&engine, "carol", "!migrations status").await;
    for needle in [
        "⏳ 0002_index_provider pending (no transaction, statement_timeout 2h)",
        "⏳ 0003_concurrently_in_a_transaction pending\n",
        "⚠️ 0005_typo cannot be applied: its header has `-- chatops: no-transction`, which is \
         not a directive",
    ] {
        assert!(
            status.message.contains(needle),
            "{needle}: {}",
            status.message
        );
    }

    let first = say(&engine, "alice", "!migrations apply 0002_index_provider").await;
    assert!(
        first
            .message
            .contains("It runs (no transaction, statement_timeout 2h)."),
        "{}",
        first.message
    );
    let ran = say(&engine, "bob", "!migrations apply 0002_index_provider").await;
    assert_eq!(ran.outcome, Outcome::Ok, "{}", ran.message);

    let mut conn = sqlx::PgConnection::connect(&catalog_url)
        .await
        .expect("connect");
    let valid: bool = sqlx::query_scalar(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE c.relname = 'image_provider_idx'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("the index exists");
    assert!(valid, "a valid index, built concurrently");
    let timeout: String = sqlx::query_scalar("SELECT t FROM seen_timeout")
        .fetch_one(&mut conn)
        .await
        .expect("timeout");
    assert_eq!(timeout, "2h", "the file's own statement_timeout");

    // Inside the bot's transaction CONCURRENTLY is refused, with the way out named.
    let failed = both("0003_concurrently_in_a_transaction").await;
    assert_eq!(failed.outcome, Outcome::Failed, "{}", failed.message);
    assert!(
        failed.message.contains("failed and was rolled back")
            && failed.message.contains(
                "put `-- chatops: no-transaction` at the top of the file to run it statement by \
                 statement"
            ),
        "{}",
        failed.message
    );

    // Without a transaction a failure says what stayed.
    let half = both("0004_half_done").await;
    assert_eq!(half.outcome, Outcome::Failed, "{}", half.message);
    assert!(
        half.message
            .contains("`0004_half_done` failed: statement 2 of 2 failed")
            && half.message.contains(
                "the file runs without a transaction: the statement before it stays applied"
            ),
        "{}",
        half.message
    );
    let license: Option<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_name = 'image' AND column_name = 'license'",
    )
    .fetch_optional(&mut conn)
    .await
    .expect("columns");
    assert_eq!(license.as_deref(), Some("license"));

    // A header with a typo is refused before anything is filed.
    let typo = say(&engine, "alice", "!migrations apply 0005_typo").await;
    assert_eq!(typo.outcome, Outcome::Blocked, "{}", typo.message);
    assert!(
        typo.message.contains("Nothing was done."),
        "{}",
        typo.message
    );

    let ledger: Vec<String> =
        sqlx::query_scalar("SELECT name FROM chatops_migrations ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .expect("ledger");
    assert_eq!(
        ledger,
        [
            "0000_create_chatops_migrations",
            "0001_create_image",
            "0002_index_provider"
        ]
    );
}
