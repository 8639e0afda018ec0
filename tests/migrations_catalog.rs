//! `!migrations status` and `!migrations apply` against the real Postgres as the catalog
//! database (a fresh database per test): files against the ledger, the two-person rule within
//! the existing grammar, one transaction that rolls back whole, the timeouts set.

mod support;

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

    let t = support::sqlite().await;
    let mut config = support::config_with_store(&t.url);
    config.airflow.url = "http://127.0.0.1:9".into();
    config.migrations.dags = vec![];
    config.catalog_db = Some(CatalogDbConfig {
        url: catalog_url.clone(),
        migrations_dir: dir.path().display().to_string(),
        ledger_table: "chatops_migrations".into(),
        lock_timeout: std::time::Duration::from_secs(3),
        statement_timeout: std::time::Duration::from_secs(60),
    });
    let engine = Engine::new(config, t.store.clone()).expect("engine");
    let say = |who: &str, text: &str| {
        let engine = engine.clone();
        let who = maintainer(who);
        let text = text.to_string();
        async move {
            engine
                .handle(&who, &text, &Transcript::new())
                .await
                .expect("addressed")
        }
    };

    let status = say("alice", "!migrations status").await;
    assert_eq!(status.outcome, Outcome::Ok, "{}", status.message);
    assert!(
        status
            .message
            .contains("Bot store (sqlite): 5 migrations applied, none pending."),
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

    // Unknown name: the pending ones are listed, nothing changes.
    let unknown = say("alice", "!migrations apply 0009_nope").await;
    assert_eq!(unknown.outcome, Outcome::Invalid);
    assert!(
        unknown
            .message
            .contains("pending: 0001_create_image, 0002_add_license"),
        "{}",
        unknown.message
    );

    // Alice requests; Alice again is still waiting; Bob approves and it runs.
    let req = say("alice", "!migrations apply 0001_create_image").await;
    assert_eq!(req.outcome, Outcome::AwaitingApproval, "{}", req.message);
    assert!(
        req.message.contains("second maintainer (not alice)"),
        "{}",
        req.message
    );
    let again = say("alice", "!migrations apply 0001_create_image.sql").await;
    assert_eq!(again.outcome, Outcome::AwaitingApproval);
    assert!(again.message.contains("needs a second maintainer, not you"));
    let status = say("carol", "!migrations status").await;
    assert!(
        status
            .message
            .contains("⏳ 0001_create_image pending · requested by alice"),
        "{}",
        status.message
    );
    let run = say("bob", "!migrations apply 0001_create_image").await;
    assert_eq!(run.outcome, Outcome::Ok, "{}", run.message);
    assert!(
        run.message.contains("requested by alice, approved by bob"),
        "{}",
        run.message
    );
    let done = say("carol", "!migrations apply 0001_create_image").await;
    assert!(done.message.contains("already applied"), "{}", done.message);

    // A failing file rolls back whole and uses the request up.
    say("alice", "!migrations apply 0003_broken").await;
    let failed = say("bob", "!migrations apply 0003_broken").await;
    assert_eq!(failed.outcome, Outcome::Failed, "{}", failed.message);
    assert!(failed.message.contains("rolled back"), "{}", failed.message);

    // The timeouts are set inside the transaction.
    say("bob", "!migrations apply 0004_show_timeouts").await;
    let ok = say("alice", "!migrations apply 0004_show_timeouts").await;
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
            ("0001_create_image".into(), "bob".into(), "alice".into()),
            ("0004_show_timeouts".into(), "alice".into(), "bob".into()),
        ]
    );
    let status = say("carol", "!migrations status").await;
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
