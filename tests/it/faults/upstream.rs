//! Each upstream (GitHub, registry, Airflow) failing in each way while `!deploy catalog v1.5.3`
//! runs: the deploy fails closed — blocked before the lock, naming the service and the fault —
//! and no step runs. The engine runs in this process with quick timeouts so a hang costs about a
//! second; the steps are the real `just` with the sandbox's infra justfile.
//!
//! There is no TLS on loopback: a dropped connection (the server reads the request and closes
//! without answering) stands for a TLS failure or a connection reset, which reach the client the
//! same way — as a transport error before any status.

use catalog_chatops::Outcome;
use catalog_chatops::integrations::Service;
use catalog_chatops::sandbox::Forced;
use catalog_chatops::store::DeployState;

use crate::harness::{ALICE, BOB, DEPLOY, Sbx, require_just};

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// 500 on every attempt.
    ServerError,
    /// 429 asking to come back in an hour (beyond the policy's longest wait).
    TooManyRequests,
    /// Never answers.
    Hang,
    /// A 200 whose body stops short of its Content-Length.
    Truncated,
    /// A 200 whose body is not the JSON asked for.
    WrongJson,
    /// The connection is dropped without an answer.
    Reset,
}

/// Enough forced answers for every attempt of every request one check makes.
const PERSISTENT: usize = 12;

/// The preflight check each service answers.
fn check_of(service: Service) -> &'static str {
    match service {
        Service::Github => "release",
        Service::Registry => "image",
        Service::Airflow => "DAG runs",
    }
}

/// Where a body fault is aimed: a request whose JSON body the client reads (the registry's
/// manifest check is a HEAD, so its JSON is the token answer).
fn json_path(service: Service) -> &'static str {
    match service {
        Service::Github => "/repos/WordPress/openverse-catalog/releases/tags/v1.5.3",
        Service::Registry => "/token",
        Service::Airflow => "/api/v2/dags/~/dagRuns",
    }
}

fn inject(s: &Sbx, service: Service, fault: Fault) {
    s.world.world.faults(service, |f| match fault {
        Fault::Hang => f.hang = true,
        _ => {
            for _ in 0..PERSISTENT {
                f.force(match fault {
                    Fault::ServerError => Forced::status(500),
                    Fault::TooManyRequests => Forced::too_many("3600"),
                    Fault::Truncated => {
                        Forced::truncated("{\"tag_name\": \"v1.5.3\", \"dra").on(json_path(service))
                    }
                    Fault::WrongJson => Forced::garbage().on(json_path(service)),
                    Fault::Reset => Forced::reset(),
                    Fault::Hang => unreachable!("handled above"),
                });
            }
        }
    });
}

/// The sentence the preflight line must carry after `⚠️ <check>: `.
fn expected(service: Service, fault: Fault) -> String {
    match fault {
        Fault::ServerError => format!("{service}: answered 500 three times"),
        Fault::TooManyRequests => format!("{service}: answered 429 and asked to retry after"),
        Fault::Hang => format!("{service}: timed out after 400 ms (3 attempts)"),
        Fault::Truncated => format!(
            "{service}: the answer from {} was cut short (3 attempts)",
            json_path(service)
        ),
        Fault::WrongJson => format!("{service}: malformed JSON from {}", json_path(service)),
        Fault::Reset => format!("{service}: could not connect (connection closed"),
    }
}

async fn fails_closed(service: Service, fault: Fault) {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    inject(&s, service, fault);
    let engine = s.engine().await;
    let (reply, posted) = s.handle(&engine, ALICE, DEPLOY).await;

    // The outcome: blocked before anything is locked, naming the check, the service, the fault.
    assert_eq!(reply.outcome, Outcome::Blocked, "{}", reply.message);
    let check = check_of(service);
    assert_eq!(
        reply.message,
        format!("Deploy of catalog v1.5.3 blocked by {check}; nothing was changed."),
    );
    let report = posted
        .iter()
        .find(|m| m.starts_with("Preflight for catalog v1.5.3:"))
        .expect("the preflight report is posted");
    let line = format!("⚠️ {check}: {}", expected(service, fault));
    assert!(report.contains(&line), "wanted `{line}` in:\n{report}");
    if let Fault::TooManyRequests = fault {
        assert!(report.contains("— try again then"), "{report}");
    }
    // The other two checks were still made and reported.
    let others = ["release", "image", "DAG runs"]
        .into_iter()
        .filter(|c| *c != check);
    for other in others {
        assert!(report.contains(&format!("✅ {other}:")), "{report}");
    }
    // The service really was asked (more than once where the fault is worth a retry).
    let asked = s.world.world.lock().faults(service).total();
    // A 429 asking for an hour and a definite (malformed) answer are not worth another attempt.
    let retried = !matches!(fault, Fault::TooManyRequests | Fault::WrongJson);
    assert!(
        asked >= if retried { 3 } else { 1 },
        "{service} saw {asked} request(s)"
    );

    // Nothing ran, nothing is held.
    assert!(s.steps_log().is_empty(), "{:?}", s.steps_log());
    let store = s.store().await;
    assert!(
        store
            .list_deploys(None, 10)
            .await
            .expect("deploys")
            .is_empty()
    );
    assert!(store.list_locks().await.expect("locks").is_empty());
    s.closing_checks(0).await;
}

macro_rules! fails_closed {
    ($($name:ident: $service:ident, $fault:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            fails_closed(Service::$service, Fault::$fault).await;
        }
    )*};
}

fails_closed! {
    github_500_blocks_the_deploy: Github, ServerError;
    github_429_retry_after_blocks_the_deploy: Github, TooManyRequests;
    github_timeout_blocks_the_deploy: Github, Hang;
    github_truncated_body_blocks_the_deploy: Github, Truncated;
    github_wrong_json_blocks_the_deploy: Github, WrongJson;
    github_connection_reset_blocks_the_deploy: Github, Reset;
    registry_500_blocks_the_deploy: Registry, ServerError;
    registry_429_retry_after_blocks_the_deploy: Registry, TooManyRequests;
    registry_timeout_blocks_the_deploy: Registry, Hang;
    registry_truncated_body_blocks_the_deploy: Registry, Truncated;
    registry_wrong_json_blocks_the_deploy: Registry, WrongJson;
    registry_connection_reset_blocks_the_deploy: Registry, Reset;
    airflow_500_blocks_the_deploy: Airflow, ServerError;
    airflow_429_retry_after_blocks_the_deploy: Airflow, TooManyRequests;
    airflow_timeout_blocks_the_deploy: Airflow, Hang;
    airflow_truncated_body_blocks_the_deploy: Airflow, Truncated;
    airflow_wrong_json_blocks_the_deploy: Airflow, WrongJson;
    airflow_connection_reset_blocks_the_deploy: Airflow, Reset;
}

/// A single 429 with a short `Retry-After` is waited out: the deploy goes on to its plan and
/// waits for approval; nothing is applied.
async fn waits_out_one_429(service: Service) {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    s.world
        .world
        .faults(service, |f| f.force(Forced::too_many("1")));
    let engine = s.engine().await;
    let (reply, _) = s.handle(&engine, ALICE, DEPLOY).await;
    assert_eq!(
        reply.outcome,
        Outcome::AwaitingApproval,
        "{}",
        reply.message
    );
    assert!(
        s.world.world.lock().faults(service).forced.is_empty(),
        "the 429 was served"
    );
    let store = s.store().await;
    assert_eq!(
        s.deploy(&store, 1).await.state,
        DeployState::AwaitingApproval
    );
    assert!(s.steps_log().iter().any(|l| l == "plan end"));
    s.closing_checks(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_single_429_is_waited_out() {
    waits_out_one_429(Service::Github).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_single_429_is_waited_out() {
    waits_out_one_429(Service::Registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airflow_single_429_is_waited_out() {
    waits_out_one_429(Service::Airflow).await;
}

/// Airflow failing after an approved apply: the deploy fails at verify saying why, the lock is
/// released, and the one apply on the step side is the approved one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airflow_500_during_verify_fails_the_deploy_after_the_approved_apply() {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    let engine = s.engine().await;
    let (reply, _) = s.handle(&engine, ALICE, DEPLOY).await;
    assert_eq!(
        reply.outcome,
        Outcome::AwaitingApproval,
        "{}",
        reply.message
    );
    s.world.world.faults(Service::Airflow, |f| {
        for _ in 0..PERSISTENT {
            f.force(Forced::status(500).on("/api/v2/monitor/health"));
        }
    });
    let (reply, _) = s.handle(&engine, BOB, "!deploy approve 1").await;
    assert_eq!(reply.outcome, Outcome::Failed, "{}", reply.message);
    assert!(
        reply
            .message
            .starts_with("❌ Deploy #1 of catalog v1.5.3 failed at verify: Airflow was not healthy within 3s (last: airflow: answered 500 three times)"),
        "{}",
        reply.message
    );
    assert!(reply.message.ends_with("The lock is released."));
    let store = s.store().await;
    assert_eq!(s.deploy(&store, 1).await.state, DeployState::Failed);
    assert!(store.list_locks().await.expect("locks").is_empty());
    s.closing_checks(1).await;
}

/// The reset fault itself: the fake reads the request and closes the connection without
/// writing a single byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_answers_nothing_at_all() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Sbx::start().await;
    s.world
        .world
        .faults(Service::Github, |f| f.force(Forced::reset()));
    let addr = s.world.github_url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    conn.write_all(b"GET /rate_limit HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut got),
    )
    .await
    .expect("the connection is closed, not left open");
    // A reset (ECONNRESET) or an orderly close: either way, no answer.
    if read.is_ok() {
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }
    assert_eq!(s.world.world.count(Service::Github, "GET /rate_limit"), 1);
    // The next request on a new connection is answered normally.
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    conn.write_all(b"GET /rate_limit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut got = Vec::new();
    conn.read_to_end(&mut got).await.expect("read");
    assert!(
        got.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
}
