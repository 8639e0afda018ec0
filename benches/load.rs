//! Load: 50 users sending 2,000 mixed commands through the engine concurrently, on SQLite and on
//! Postgres. Reports throughput, p50/p99 command latency and errors, and checks that the audit log
//! holds exactly 2,000 attempts with an intact chain. Run with `cargo bench --bench load`.

mod common;

use common::fresh_postgres;
use std::sync::Arc;
use std::time::Instant;

use catalog_chatops::chat::Transcript;
use catalog_chatops::config;
use catalog_chatops::integrations::HttpPolicy;
use catalog_chatops::policy::Actor;
use catalog_chatops::sandbox::{self, World};
use catalog_chatops::store::Store;
use catalog_chatops::{Engine, Outcome};

const USERS: usize = 50;
const COMMANDS: usize = 2_000;

/// Read commands, preflights against the sandbox, refused privileged commands and typos.
const MIX: &[(&str, &[&str])] = &[
    ("!help", &[]),
    ("!locks", &[]),
    ("!deploy status", &[]),
    ("!deploy history catalog", &[]),
    ("!audit 5", &[]),
    ("!deploy check catalog v1.5.3", &[]),
    ("!deploy catalog v1.5.3", &["contributor"]),
    ("!dag enable flickr_workflow", &["contributor"]),
    ("!deplyo catalog v1.5.3", &[]),
    ("!deploy check catalog v1.2", &[]),
];

async fn run(label: &str, url: &str) {
    let world = sandbox::start(World::openverse_idle())
        .await
        .expect("sandbox");
    world.world.lock().airflow.password.clear();
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sandbox.toml"))
        .expect("config");
    let mut config =
        config::load_from_str(&toml, &[("CATALOG_CHATOPS__STORE__URL".into(), url.into())])
            .expect("valid");
    world.configure(&mut config);
    // 40 commands per user arrive at once: the limit is not what is measured here.
    config.limits.commands_per_minute = 10_000;
    config.limits.burst = 10_000;
    let store = Store::open(url).await.expect("open");
    store.migrate().await.expect("migrate");
    let engine =
        Engine::with_http_policy(config, store.clone(), HttpPolicy::default()).expect("engine");
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(COMMANDS)));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for u in 0..USERS {
        let engine = engine.clone();
        let latencies = latencies.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..COMMANDS / USERS {
                let (text, roles) = MIX[(u + i) % MIX.len()];
                let name = format!("user{u:02}");
                let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
                let actor = Actor::chat("load", &name, &name, &roles);
                let t = Instant::now();
                let reply = engine.handle(&actor, text, &Transcript::new()).await;
                let took = t.elapsed();
                latencies.lock().expect("lock").push(took);
                // Blocked by the audit log or an upstream that could not answer would be an error
                // here: the sandbox answers everything and every check passes.
                match reply {
                    Some(r) if r.outcome == Outcome::Blocked || r.outcome == Outcome::Failed => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        eprintln!("{text}: {}", r.message);
                    }
                    None => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Some(_) => {}
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let wall = start.elapsed();
    let mut l = latencies.lock().expect("lock").clone();
    l.sort();
    let pct = |p: f64| l[((l.len() as f64 - 1.0) * p) as usize];
    let attempts = store.count_audit("command").await.expect("count");
    let verify = store.verify_audit().await.expect("verify");
    println!(
        "{label}: {COMMANDS} commands from {USERS} users in {:.2} s = {:.0} commands/s; p50 {:.1} ms, p99 {:.1} ms; errors {}; audit attempts {attempts}, chain {}",
        wall.as_secs_f64(),
        COMMANDS as f64 / wall.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        errors.load(std::sync::atomic::Ordering::Relaxed),
        match &verify.first_broken {
            None => format!("intact ({} events)", verify.events),
            Some(b) => format!("BROKEN at {}", b.seq),
        }
    );
    assert_eq!(attempts, COMMANDS as i64);
    assert_eq!(verify.first_broken, None);
    world.shutdown().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        run(
            "sqlite",
            &format!("sqlite://{}/load.db", dir.path().display()),
        )
        .await;
        match fresh_postgres("load").await {
            Some(url) => run("postgres", &url).await,
            None => println!("postgres: unreachable, skipped"),
        }
    });
}
