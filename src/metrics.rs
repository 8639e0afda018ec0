//! Process-wide counters, gauges and histograms, rendered in the Prometheus text format for
//! `/metrics`.
//!
//! Hand-written rather than `prometheus-client` or `metrics`: the set is small and fixed, the
//! text format is a few lines of code, and it adds no dependency (nor build time) to a binary
//! that must stay small. The recording functions are plain calls at a handful of places (the
//! engine's end of a command, the end of a deploy step or transition, the end of an upstream
//! request, the watchers), so nothing else needs a handle threaded through it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) for step durations: steps run from seconds to the 30-minute timeout.
const STEP_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
];
/// Upper bounds (seconds) for upstream requests: loopback fakes answer in milliseconds, the
/// real services in tens to hundreds, a timeout is 10 s.
const UPSTREAM_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.len() != self.bounds.len() {
            self.counts = vec![0; self.bounds.len()];
        }
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// (name, type, help) of every metric, in the order they are rendered.
const FAMILIES: [(&str, &str, &str); 9] = [
    (
        "catalog_chatops_commands_total",
        "counter",
        "Chat commands handled, by command name and outcome.",
    ),
    (
        "catalog_chatops_rate_limited_total",
        "counter",
        "Commands refused by the per-user rate limit.",
    ),
    (
        "catalog_chatops_deploys_total",
        "counter",
        "Deploys that reached a final state (or awaiting approval), by outcome.",
    ),
    (
        "catalog_chatops_step_duration_seconds",
        "histogram",
        "Duration of deploy steps (bump, plan, apply), by step and result.",
    ),
    (
        "catalog_chatops_upstream_request_duration_seconds",
        "histogram",
        "Latency of upstream calls (all attempts included), by service.",
    ),
    (
        "catalog_chatops_upstream_errors_total",
        "counter",
        "Upstream calls that ended in an error, by service.",
    ),
    (
        "catalog_chatops_watcher_lag_seconds",
        "gauge",
        "Seconds since each watcher last completed a poll.",
    ),
    (
        "catalog_chatops_leader",
        "gauge",
        "1 while this process leads the watchers, else 0.",
    ),
    (
        "catalog_chatops_ready",
        "gauge",
        "1 while /readyz would answer 200.",
    ),
];

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

/// A poisoned lock only means another thread panicked mid-update; counts stay usable.
fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut guard = registry().lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard)
}

fn inc(name: &'static str, labels: Labels) {
    with(|r| *r.counters.entry((name, labels)).or_default() += 1);
}

fn observe(name: &'static str, labels: Labels, bounds: &'static [f64], v: f64) {
    with(|r| {
        r.histograms
            .entry((name, labels))
            .or_insert_with(|| Histogram {
                bounds,
                ..Histogram::default()
            })
            .observe(v)
    });
}

fn set(name: &'static str, labels: Labels, v: f64) {
    with(|r| {
        r.gauges.insert((name, labels), v);
    });
}

/// The engine handled a command (`outcome` as in `exec --json`).
pub fn command_handled(command: &str, outcome: &str) {
    inc(
        "catalog_chatops_commands_total",
        vec![("command", command.into()), ("outcome", outcome.into())],
    );
    if outcome == "rate_limited" {
        inc("catalog_chatops_rate_limited_total", Vec::new());
    }
}

/// A deploy reached `state` (final states and `awaiting_approval`).
pub fn deploy_reached(state: &str) {
    inc(
        "catalog_chatops_deploys_total",
        vec![("outcome", state.into())],
    );
}

/// A deploy step ended.
pub fn step_finished(step: &str, succeeded: bool, took: Duration) {
    observe(
        "catalog_chatops_step_duration_seconds",
        vec![
            ("step", step.into()),
            ("result", if succeeded { "ok" } else { "error" }.into()),
        ],
        &STEP_BUCKETS,
        took.as_secs_f64(),
    );
}

/// An upstream call ended (after its retries).
pub fn upstream_request(service: &str, took: Duration, ok: bool) {
    observe(
        "catalog_chatops_upstream_request_duration_seconds",
        vec![("service", service.into())],
        &UPSTREAM_BUCKETS,
        took.as_secs_f64(),
    );
    if !ok {
        inc(
            "catalog_chatops_upstream_errors_total",
            vec![("service", service.into())],
        );
    }
}

/// A watcher sets how far behind it is (seconds since its last completed poll).
pub fn set_watcher_lag(watcher: &str, lag: Duration) {
    set(
        "catalog_chatops_watcher_lag_seconds",
        vec![("watcher", watcher.into())],
        lag.as_secs_f64(),
    );
}

/// Leadership of the watchers changed.
pub fn set_leader(leading: bool) {
    set(
        "catalog_chatops_leader",
        Vec::new(),
        if leading { 1.0 } else { 0.0 },
    );
}

pub fn set_ready(ready: bool) {
    set(
        "catalog_chatops_ready",
        Vec::new(),
        if ready { 1.0 } else { 0.0 },
    );
}

/// Label values escaped as the text format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[(&'static str, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn num(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

/// Everything recorded so far, in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    with(|r| {
        let mut out = String::new();
        for (name, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            match kind {
                "counter" => {
                    for ((n, labels), v) in &r.counters {
                        if *n == name {
                            let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
                        }
                    }
                }
                "gauge" => {
                    for ((n, labels), v) in &r.gauges {
                        if *n == name {
                            let _ = writeln!(out, "{name}{} {}", label_text(labels, None), num(*v));
                        }
                    }
                }
                _ => {
                    for ((n, labels), h) in &r.histograms {
                        if *n != name {
                            continue;
                        }
                        for (b, c) in h.bounds.iter().zip(&h.counts) {
                            let le = label_text(labels, Some(("le", num(*b))));
                            let _ = writeln!(out, "{name}_bucket{le} {c}");
                        }
                        let inf = label_text(labels, Some(("le", "+Inf".into())));
                        let _ = writeln!(out, "{name}_bucket{inf} {}", h.count);
                        let l = label_text(labels, None);
                        let _ = writeln!(out, "{name}_sum{l} {}", num(h.sum));
                        let _ = writeln!(out, "{name}_count{l} {}", h.count);
                    }
                }
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        command_handled("help", "ok");
        command_handled("help", "ok");
        step_finished("plan", true, Duration::from_secs(3));
        let text = render();
        assert!(
            text.contains("catalog_chatops_commands_total{command=\"help\",outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "catalog_chatops_step_duration_seconds_bucket{step=\"plan\",result=\"ok\",le=\"1\"} 0"
        ));
        assert!(text.contains(
            "catalog_chatops_step_duration_seconds_bucket{step=\"plan\",result=\"ok\",le=\"5\"} 1"
        ));
        assert!(text.contains("# TYPE catalog_chatops_leader gauge"));
    }
}
