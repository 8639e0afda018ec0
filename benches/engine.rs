//! Measured, not asserted: in-process dispatch latency of read commands and audit appends per
//! second on SQLite and Postgres. Run with `cargo bench --bench engine`; figures go to
//! docs/BENCHMARKS.md.
//!
//! Postgres figures need `TEST_POSTGRES_URL` (default `postgres://root@127.0.0.1:5432/test`);
//! a fresh database is created for the run.

mod common;

use common::fresh_postgres;
use std::time::{Duration, Instant};

use catalog_chatops::Engine;
use catalog_chatops::chat::Transcript;
use catalog_chatops::command::{self, ParseContext};
use catalog_chatops::config;
use catalog_chatops::policy::Actor;
use catalog_chatops::store::{NewAuditEvent, Store};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<48} n={:<6} p50={:>8.1} µs  p99={:>8.1} µs  max={:>8.1} µs",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    );
}

fn shipped_config(store_url: &str) -> config::Config {
    let toml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/catalog-chatops.toml"
    ))
    .expect("config");
    let mut c = config::load_from_str(
        &toml,
        &[("CATALOG_CHATOPS__STORE__URL".into(), store_url.into())],
    )
    .expect("valid config");
    c.limits.commands_per_minute = 10_000;
    c.limits.burst = 10_000;
    c
}

fn event(n: usize) -> NewAuditEvent {
    NewAuditEvent {
        kind: "command".into(),
        source: "local".into(),
        actor: format!("user{}", n % 50),
        roles: vec!["core-maintainer".into()],
        raw: Some("!locks".into()),
        command: Some("!locks".into()),
        decision: Some("allowed".into()),
        outcome: Some("ok".into()),
        detail: serde_json::json!({ "n": n }),
        ..NewAuditEvent::default()
    }
}

async fn appends(store: &Store, label: &str, total: usize, tasks: usize) {
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for n in 0..total / tasks {
                store
                    .append_audit(&event(t * 1_000_000 + n))
                    .await
                    .expect("append");
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label:<48} {total} appends, {tasks} task(s): {:>8.0} appends/s",
        total as f64 / secs
    );
}

async fn dispatch(store: Store, url: &str, label: &str) {
    let engine = Engine::new(shipped_config(url), store).expect("engine");
    let actor = Actor::local("bench", &["contributor".to_string()], "bench");
    for text in ["!help", "!locks", "!deploy status"] {
        let conv = Transcript::new();
        for _ in 0..50 {
            engine.handle(&actor, text, &conv).await;
        }
        let mut samples = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            let t = Instant::now();
            let r = engine.handle(&actor, text, &conv).await;
            samples.push(t.elapsed());
            assert!(r.is_some());
        }
        report(
            &format!("{label}: engine.handle({text}) (1 durable audit append)"),
            samples,
        );
    }
}

fn parse_and_authorize() {
    let targets = vec!["catalog".to_string()];
    let ctx = ParseContext {
        prefix: "!",
        bot_user_id: None,
        targets: &targets,
        version_tags: &[],
    };
    let policy =
        catalog_chatops::policy::Policy::new(shipped_config("sqlite::memory:").permissions);
    let actor = Actor::local("bench", &["contributor".to_string()], "bench");
    let mut samples = Vec::with_capacity(100_000);
    for i in 0..100_000 {
        let text = if i % 2 == 0 {
            "!deploy status 7"
        } else {
            "!deploy catalog v1.2.3"
        };
        let t = Instant::now();
        let cmd = command::parse(text, &ctx)
            .expect("valid")
            .expect("addressed");
        let _ = std::hint::black_box(policy.authorize(&actor, cmd.permission()));
        samples.push(t.elapsed());
    }
    report("parse + authorize (no I/O)", samples);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        parse_and_authorize();

        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let store = Store::open(&url).await.expect("open");
        store.migrate().await.expect("migrate");
        dispatch(store.clone(), &url, "sqlite").await;
        {
            // The same with `?synchronous=normal`: commits survive a crash of the bot, not a
            // power failure.
            let url = format!(
                "sqlite://{}/bench-normal.db?synchronous=normal",
                dir.path().display()
            );
            let normal = Store::open(&url).await.expect("open");
            normal.migrate().await.expect("migrate");
            dispatch(normal.clone(), &url, "sqlite synchronous=normal").await;
            appends(&normal, "sqlite (WAL, synchronous=NORMAL)", 5_000, 1).await;
        }
        appends(&store, "sqlite (WAL, synchronous=FULL)", 5_000, 1).await;
        appends(&store, "sqlite (WAL, synchronous=FULL)", 5_000, 8).await;
        let v = store.verify_audit().await.expect("verify");
        assert_eq!(v.first_broken, None);
        let t = Instant::now();
        let v = store.verify_audit().await.expect("verify");
        println!(
            "sqlite: audit verify of {} events: {:.0} ms",
            v.events,
            t.elapsed().as_secs_f64() * 1e3
        );

        match fresh_postgres("bench").await {
            Some(url) => {
                let store = Store::open(&url).await.expect("open pg");
                store.migrate().await.expect("migrate pg");
                dispatch(store.clone(), &url, "postgres").await;
                appends(&store, "postgres", 5_000, 1).await;
                appends(&store, "postgres", 5_000, 8).await;
                let v = store.verify_audit().await.expect("verify");
                assert_eq!(v.first_broken, None);
            }
            None => println!("postgres: unreachable, skipped"),
        }
    });
}
