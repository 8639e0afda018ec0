//! A small inline SVG: deploys per week (bars) and their median duration (dots), newest week on
//! the right. No JavaScript, no chart library: a dozen rectangles.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::store::Deploy;

const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;
const WEEKS: i64 = 12;

/// (deploys, median duration in minutes of the finished ones) per week, oldest first.
fn weekly(deploys: &[Deploy], now_ms: i64) -> Vec<(i64, usize, Option<f64>)> {
    let this_week = now_ms / WEEK_MS;
    let mut by: BTreeMap<i64, Vec<Option<i64>>> = BTreeMap::new();
    for w in (this_week - WEEKS + 1)..=this_week {
        by.insert(w, Vec::new());
    }
    for d in deploys {
        let w = d.created_ms / WEEK_MS;
        if let Some(v) = by.get_mut(&w) {
            v.push(d.finished_ms.map(|f| f - d.created_ms));
        }
    }
    by.into_iter()
        .map(|(w, v)| {
            let mut done: Vec<i64> = v.iter().flatten().copied().collect();
            done.sort_unstable();
            let median = (!done.is_empty()).then(|| done[done.len() / 2] as f64 / 60_000.0);
            (w, v.len(), median)
        })
        .collect()
}

pub fn svg(deploys: &[Deploy], now_ms: i64) -> String {
    let weeks = weekly(deploys, now_ms);
    let (w, h, pad) = (600.0, 160.0, 24.0);
    let max_n = weeks.iter().map(|(_, n, _)| *n).max().unwrap_or(0).max(1) as f64;
    let max_m = weeks
        .iter()
        .filter_map(|(_, _, m)| *m)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let slot = (w - 2.0 * pad) / weeks.len().max(1) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" \
         aria-label=\"Deploys per week and their median duration\" id=\"chart\">\
         <title>Deploys per week (bars) and median duration in minutes (dots), last {WEEKS} weeks</title>\
         <line x1=\"{pad}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#999\"/>",
        y = h - pad,
        x2 = w - pad
    );
    for (i, (_, n, median)) in weeks.iter().enumerate() {
        let x = pad + i as f64 * slot;
        let bh = (*n as f64 / max_n) * (h - 2.0 * pad);
        let _ = write!(
            out,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#6b8fd6\">\
             <title>{n} deploy(s)</title></rect>",
            x + slot * 0.15,
            h - pad - bh,
            slot * 0.7,
            bh
        );
        if *n > 0 {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{n}</text>",
                x + slot / 2.0,
                h - pad - bh - 3.0
            );
        }
        if let Some(m) = median {
            let cy = h - pad - (m / max_m) * (h - 2.0 * pad);
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{cy:.1}\" r=\"4\" fill=\"#d65f3b\"><title>median {m:.1} min</title></circle>",
                x + slot / 2.0
            );
        }
    }
    out.push_str("</svg>");
    out
}
