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
