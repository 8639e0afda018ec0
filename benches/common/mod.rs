//! Helpers the benchmarks share: the sandbox's configuration, medians and units, and the
//! process's peak RSS. Each bench uses a part of them.
#![allow(dead_code)]

use std::time::Duration;

use catalog_chatops::config::{self, Config};

/// `config/sandbox.toml` as shipped (the fakes' URLs are set by the caller).
pub fn sandbox_config() -> Config {
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sandbox.toml"))
        .expect("config");
    config::load_from_str(&toml, &[]).expect("valid")
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort();
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// This process's peak resident set (`VmHWM` in /proc/self/status), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A fresh Postgres database named `ccx_<tag>_<pid>` on `TEST_POSTGRES_URL` (default the local
/// server), or `None` when no server answers (the bench then measures SQLite only).
pub async fn fresh_postgres(tag: &str) -> Option<String> {
    let admin = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&admin).await.ok()?;
    let name = format!("ccx_{tag}_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .ok()?;
    Some(format!("{}/{name}", admin.rsplit_once('/')?.0))
}
