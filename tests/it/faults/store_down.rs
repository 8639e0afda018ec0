//! The store (Postgres) becomes unavailable while a deploy's plan runs: new connections are
//! refused and the open ones are terminated. The deploy must not go on towards apply, must say
//! the store failed, and must lose nothing it had already recorded; once the store is back, the
//! next process reports the deploy interrupted and `resolve` settles it.

use catalog_chatops::store::DeployState;

use crate::harness::{ALICE, BOB, DEPLOY, Sbx, message, parse, require_just};
use crate::support;

/// Runs SQL on the server's maintenance database (never on the one being cut off).
async fn admin(sql: &str) {
    let url = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| support::DEFAULT_PG.into());
    let pool = sqlx::AnyPool::connect(&url)
        .await
        .expect("admin connection");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .expect("admin statement");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unavailable_mid_deploy_stops_before_apply_and_recovers() {
    if !require_just() {
        return;
    }
    let Some(url) = support::postgres_url().await else {
        return;
    };
    let db = url.rsplit('/').next().expect("database name").to_string();
    let s = Sbx::start_with_store(url, tempfile::tempdir().expect("tempdir")).await;
    let child = s.spawn(ALICE, DEPLOY, &[("SANDBOX_PLAN_SECONDS", "3")]);
    {
        let store = s.store().await;
        assert!(s.wait_state(&store, 1, DeployState::Plan).await);
        assert!(s.wait_log("plan start").await);
        store.close().await;
    }

    // The store goes away while the plan runs.
    admin(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false")).await;
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ))
    .await;
    let out = child.wait_with_output().await.expect("bot ends");
    let (r, lines) = parse(&out);
    let said: Vec<&str> = lines.iter().filter_map(|l| l["text"].as_str()).collect();
    // The plan finished on the step side, but the deploy did not move on: no approval was asked
    // for, and the reply says the store failed.
    assert!(s.wait_log("plan end").await);
    assert!(
        !said.iter().any(|t| t.contains("📋 Deploy #1 plan:")),
        "{said:#?}"
    );
    assert_ne!(r["outcome"], "awaiting_approval", "{r}");
    assert_ne!(r["outcome"], "ok", "{r}");
    let msg = message(&r);
    assert!(msg.contains("The audit log cannot be written"), "{msg}");
    assert!(
        msg.contains("ran, but its outcome could not be recorded"),
        "{msg}"
    );
    assert!(!msg.contains("nothing was done"), "{msg}");

    // The store comes back.
    admin(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).await;
    let store = s.store().await;
    let d = s.deploy(&store, 1).await;
    assert_eq!(d.state, DeployState::Plan, "the deploy did not move on");
    assert!(
        d.plan_fingerprint.is_none(),
        "no plan was offered for approval"
    );
    // What was recorded before the outage is all there.
    let kinds: Vec<(String, Option<String>)> = store
        .list_audit(100, None)
        .await
        .expect("audit")
        .into_iter()
        .rev()
        .map(|e| (e.kind, e.outcome))
        .collect();
    let transitions: Vec<&str> = kinds
        .iter()
        .filter(|(k, _)| k == "deploy.transition")
        .filter_map(|(_, o)| o.as_deref())
        .collect();
    assert_eq!(transitions, ["locked", "bump", "plan"], "{kinds:?}");
    assert_eq!(kinds[0].0, "command", "{kinds:?}");

    interrupted_and_resolved(&s).await;
    s.closing_checks(0).await;
}

async fn interrupted_and_resolved(s: &Sbx) {
    let (r, _) = s.exec(("carol", &[]), "!deploy status 1").await;
    let msg = message(&r);
    assert!(msg.contains("interrupted at unknown"), "{msg}");
    assert!(
        msg.contains("the process that was running plan (pid"),
        "{msg}"
    );
    assert!(msg.contains("Holds the lock `catalog/prod`."), "{msg}");
    let (r, _) = s.exec(BOB, "!deploy resolve 1 failed").await;
    assert_eq!(r["outcome"], "ok", "{r}");
    let store = s.store().await;
    assert!(store.list_locks().await.expect("locks").is_empty());
    assert_eq!(s.deploy(&store, 1).await.state, DeployState::Failed);
}
