//! `serve` at rest: idle RSS and the time from process start to `/readyz` answering 200.
//!
//!     cargo bench --bench serve
//!
//! Runs the release binary several times against a fresh SQLite store (migrations included in
//! the start-up time) and prints the median and worst of each, in the form docs/BENCHMARKS.md
//! records. Targets: idle RSS under 30 MB, start to ready under 300 ms.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_catalog-chatops");
const RUNS: usize = 7;

async fn ready(addr: &str) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    buf.starts_with(b"HTTP/1.1 200")
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn one_run() -> (Duration, u64) {
    let dir = std::env::temp_dir().join(format!("ccx-serve-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/catalog-chatops.toml");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["--config", config, "serve"])
        .env(
            "CATALOG_CHATOPS__STORE__URL",
            format!("sqlite://{}/bench.db", dir.display()),
        )
        .env("CATALOG_CHATOPS__SERVER__BIND", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut addr = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(url) = line.strip_prefix("catalog-chatops serve: listening on http://") {
            addr = url.to_string();
            break;
        }
    }
    assert!(!addr.is_empty(), "serve did not start");
    while !ready(&addr).await {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let to_ready = started.elapsed();
    // Idle: let start-up allocations settle, as an operator would see it a moment later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = child.id().and_then(rss_kib).unwrap_or(0);
    let _ = child.start_kill();
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    (to_ready, rss)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: do a single quick run.
    let runs = if std::env::args().any(|a| a == "--bench") {
        RUNS
    } else {
        1
    };
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        let (t, r) = one_run().await;
        times.push(t);
        rss.push(r);
    }
    times.sort();
    rss.sort();
    let mid = runs / 2;
    println!("serve: {runs} run(s), fresh SQLite store each, release build");
    println!(
        "start → /readyz 200: median {:.0} ms, worst {:.0} ms (target < 300 ms)",
        times[mid].as_secs_f64() * 1000.0,
        times[runs - 1].as_secs_f64() * 1000.0
    );
    println!(
        "idle RSS (VmRSS 2 s after ready): median {:.1} MB, worst {:.1} MB (target < 30 MB)",
        rss[mid] as f64 / 1024.0,
        rss[runs - 1] as f64 / 1024.0
    );
}
