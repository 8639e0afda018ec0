//! The read-only pages. Data comes from the store (already redacted when written) and passes the
//! redactor once more before it is escaped into HTML: a secret configured after the fact still
//! never shows.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::html::{esc, page};
use crate::store::{Deploy, now_ms};
use crate::timefmt;

fn store_failed(s: &AppState, e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "page: store query failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(page(
            "Store unavailable",
            &format!("<p>{}</p>", esc(&s.redactor.redact(&e.to_string()))),
        )),
    )
        .into_response()
}

fn duration(d: &Deploy) -> String {
    match d.finished_ms {
        Some(f) => timefmt::duration(f - d.created_ms),
        None => format!("{} so far", timefmt::duration(now_ms() - d.created_ms)),
    }
}

/// `/`: the deploy list and the weekly chart.
pub async fn deploys(State(s): State<Arc<AppState>>) -> Response {
    let list = match s.store.list_deploys(None, 200).await {
        Ok(l) => l,
        Err(e) => return store_failed(&s, e),
    };
    let r = |t: &str| esc(&s.redactor.redact(t));
    let mut body = String::new();
    body.push_str(&super::chart::svg(&list, now_ms()));
    body.push_str(
        "<p><small>Deploys per week over the last 12 weeks (bars) and the median duration of \
         the finished ones (dots; hover for values).</small></p>",
    );
    body.push_str(
        "<table id=\"deploys\"><thead><tr><th>#</th><th>target</th><th>version</th>\
         <th>requested by</th><th>approvers</th><th>outcome</th><th>started</th><th>duration</th>\
         </tr></thead><tbody>",
    );
    for d in &list {
        let approvers = match s.store.approvals(d.id).await {
            Ok(a) => a
                .iter()
                .map(|a| r(&a.approver))
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => return store_failed(&s, e),
        };
        let _ = write!(
            body,
            "<tr class=\"deploy\"><td><a href=\"/deploys/{id}\">#{id}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td class=\"{state}\">{state}</td><td>{}</td><td>{}</td></tr>",
            r(&format!("{} ({})", d.target, d.environment)),
            r(&d.version),
            r(&d.requested_by),
            if approvers.is_empty() {
                "—".into()
            } else {
                approvers
            },
            timefmt::utc(d.created_ms),
            duration(d),
            id = d.id,
            state = d.state.as_str(),
        );
    }
    body.push_str("</tbody></table>");
    if list.is_empty() {
        body.push_str("<p>No deploys yet.</p>");
    }
    Html(page("Deploys", &body)).into_response()
}

/// `/deploys/{id}`: the journal timeline, preflight, plan, step output.
pub async fn deploy(State(s): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    let d = match s.store.get_deploy(id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Html(page(
                    "Not found",
                    &format!("<p>There is no deploy #{id}.</p>"),
                )),
            )
                .into_response();
        }
        Err(e) => return store_failed(&s, e),
    };
    let (steps, approvals) = match (s.store.deploy_steps(id).await, s.store.approvals(id).await) {
        (Ok(st), Ok(a)) => (st, a),
        (Err(e), _) | (_, Err(e)) => return store_failed(&s, e),
    };
    let r = |t: &str| esc(&s.redactor.redact(t));
    let mut b = String::new();
    let _ = write!(
        b,
        "<table id=\"summary\"><tr><th>target</th><td>{}</td></tr><tr><th>version</th><td>{}</td></tr>\
         <tr><th>requested by</th><td>{}</td></tr><tr><th>state</th><td class=\"{st}\" id=\"state\">{st}{}</td></tr>\
         <tr><th>image digest</th><td><code>{}</code></td></tr><tr><th>started</th><td>{}</td></tr>\
         <tr><th>duration</th><td>{}</td></tr><tr><th>approvals</th><td>{}</td></tr></table>",
        r(&format!("{} ({})", d.target, d.environment)),
        r(&d.version),
        r(&d.requested_by),
        d.reason
            .as_deref()
            .map(|x| format!(" — {}", r(x)))
            .unwrap_or_default(),
        r(d.image_digest.as_deref().unwrap_or("—")),
        timefmt::utc(d.created_ms),
        duration(&d),
        if approvals.is_empty() {
            "none".to_string()
        } else {
            approvals
                .iter()
                .map(|a| {
                    format!(
                        "{} (plan <code>{}</code>, {})",
                        r(&a.approver),
                        r(&a.fingerprint[..a.fingerprint.len().min(12)]),
                        timefmt::utc(a.ts_ms)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
        st = d.state.as_str(),
    );

    b.push_str("<h2>Preflight</h2>");
    match &d.preflight {
        Some(p) => {
            b.push_str(
                "<table id=\"preflight\"><tr><th>check</th><th>result</th><th>found</th></tr>",
            );
            for key in ["release", "image", "dag_runs"] {
                let c = &p[key];
                let status = c["status"].as_str().unwrap_or("unknown");
                let details: Vec<String> = c["details"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str()).map(&r).collect())
                    .unwrap_or_default();
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}{}</td></tr>",
                    r(c["name"].as_str().unwrap_or(key)),
                    if status == "pass" { "ok" } else { "bad" },
                    esc(status),
                    r(c["summary"].as_str().unwrap_or("")),
                    if details.is_empty() {
                        String::new()
                    } else {
                        format!("<br>{}", details.join("<br>"))
                    }
                );
            }
            b.push_str("</table>");
        }
        None => b.push_str("<p>No preflight recorded.</p>"),
    }

    b.push_str("<h2>Plan</h2>");
    match (&d.plan_summary, &d.plan_fingerprint) {
        (Some(sum), Some(fp)) => {
            let _ = write!(
                b,
                "<p id=\"plan\">{}</p><p>Fingerprint <code id=\"fingerprint\">{}</code> — approvals bind to it.</p>",
                r(sum),
                r(fp)
            );
        }
        _ => b.push_str("<p>No plan yet.</p>"),
    }

    b.push_str(
        "<h2>Timeline</h2><table id=\"timeline\"><tr><th>time</th><th>step</th><th>state</th><th>detail</th></tr>",
    );
    for st in &steps {
        let reason = st.detail["reason"].as_str().map(&r).unwrap_or_default();
        let exit = st
            .exit_code
            .map(|c| format!("exit {c}"))
            .unwrap_or_default();
        let took = st
            .finished_ms
            .map(|f| timefmt::duration(f - st.started_ms))
            .unwrap_or_default();
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            timefmt::utc(st.started_ms),
            r(&st.step),
            esc(&st.state),
            esc(&st.state),
            [reason, exit, took]
                .into_iter()
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(" · ")
        );
    }
    b.push_str("</table><h2>Step output</h2>");
    for st in steps.iter().filter(|st| st.output_tail.is_some()) {
        let argv = st.detail["argv"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let _ = write!(
            b,
            "<h3>{} — {}</h3><p><code>{}</code></p><pre class=\"output\">{}</pre>",
            r(&st.step),
            esc(&st.state),
            r(&argv),
            r(st.output_tail.as_deref().unwrap_or(""))
        );
    }
    Html(page(
        &format!("Deploy #{} · {} {}", d.id, d.target, d.version),
        &b,
    ))
    .into_response()
}

/// `/locks`: who holds what.
pub async fn locks(State(s): State<Arc<AppState>>) -> Response {
    let locks = match s.store.list_locks().await {
        Ok(l) => l,
        Err(e) => return store_failed(&s, e),
    };
    let r = |t: &str| esc(&s.redactor.redact(t));
    let mut b = String::new();
    if locks.is_empty() {
        b.push_str("<p>No locks are held.</p>");
    } else {
        b.push_str("<table id=\"locks\"><tr><th>lock</th><th>holder</th><th>deploy</th><th>reason</th><th>since</th></tr>");
        for l in &locks {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r(&l.key),
                r(&l.holder),
                l.deploy_id
                    .map(|id| format!("<a href=\"/deploys/{id}\">#{id}</a>"))
                    .unwrap_or_default(),
                r(&l.reason),
                timefmt::utc(l.acquired_ms)
            );
        }
        b.push_str("</table>");
    }
    Html(page("Locks", &b)).into_response()
}

/// `/audit`: the newest events and the result of walking the hash chain.
pub async fn audit(State(s): State<Arc<AppState>>) -> Response {
    let (report, events) = match (
        s.store.verify_audit().await,
        s.store.list_audit(200, None).await,
    ) {
        (Ok(v), Ok(e)) => (v, e),
        (Err(e), _) | (_, Err(e)) => return store_failed(&s, e),
    };
    let r = |t: &str| esc(&s.redactor.redact(t));
    let mut b = String::new();
    match &report.first_broken {
        None => {
            let _ = write!(
                b,
                "<p class=\"ok\" id=\"chain\">Hash chain intact: {} event(s) verified.</p>",
                report.events
            );
        }
        Some(br) => {
            let _ = write!(
                b,
                "<p class=\"bad\" id=\"chain\">Hash chain BROKEN at event #{}: {}. {} event(s) before it are intact.</p>",
                br.seq,
                r(&br.reason),
                report.events
            );
        }
    }
    b.push_str("<table id=\"audit\"><tr><th>#</th><th>time</th><th>who</th><th>kind</th><th>command</th><th>decision</th><th>outcome</th><th>deploy</th></tr>");
    for ev in &events {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ev.seq,
            timefmt::utc(ev.ts_ms),
            r(&ev.actor),
            r(&ev.source),
            r(&ev.kind),
            r(ev.command.as_deref().or(ev.raw.as_deref()).unwrap_or("")),
            r(ev.decision.as_deref().unwrap_or("")),
            r(ev.outcome.as_deref().unwrap_or("")),
            ev.deploy_id
                .map(|id| format!("<a href=\"/deploys/{id}\">#{id}</a>"))
                .unwrap_or_default(),
        );
    }
    b.push_str("</table>");
    Html(page("Audit log", &b)).into_response()
}
