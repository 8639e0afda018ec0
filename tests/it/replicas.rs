//! Two `catalog-chatops run` processes on one Postgres, both logged in to the fake Discord with
//! the same token, so that every gateway event reaches both (as Discord does for two sessions of
//! one bot without sharding). Each message must be handled exactly once (the claim in the
//! store), the new-DAG watcher must run on one leader only, and killing that leader with SIGKILL
//! must move the watcher to the survivor within the configured lease.

use crate::fake_discord;
use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use catalog_chatops::sandbox::{self, SandboxHandle, SimDag, World};
use catalog_chatops::store::Store;
use fake_discord::{ALICE, CHANNEL_ID, Call, FakeDiscord, GUILD_ID, TOKEN, message_create};
use tokio::process::{Child, Command};

/// Where the leader posts its announcements; distinct from the commands' channel.
const ANNOUNCE_CHANNEL: u64 = 1300;
const AIRFLOW_PASSWORD: &str = "replica-airflow-pw";
/// The store lease, and with it the leader's poll (a third of it): the failover bound.
const LEASE: Duration = Duration::from_secs(1);
const COMMANDS: u64 = 50;

struct Replica {
    child: Child,
    url: String,
}

fn command(
    store_url: &str,
    world: &SandboxHandle,
    fake: &FakeDiscord,
    dir: &Path,
    args: &[&str],
) -> Command {
    let mut c = support::sandbox_command(world, store_url, dir, AIRFLOW_PASSWORD);
    c.args(args)
        .env("CATALOG_CHATOPS__DISCORD__GUILD_ID", GUILD_ID.to_string())
        .env(
            "CATALOG_CHATOPS__DISCORD__ANNOUNCE_CHANNEL_ID",
            ANNOUNCE_CHANNEL.to_string(),
        )
        .env("CATALOG_CHATOPS__DISCORD__API_URL", &fake.api_url)
        .env("CATALOG_CHATOPS__SERVER__BIND", "127.0.0.1:0")
        .env(
            "CATALOG_CHATOPS__DEPLOY__LEASE",
            format!("{}ms", LEASE.as_millis()),
        )
        .env("CATALOG_CHATOPS__WATCH__POLL_INTERVAL", "200ms")
        // One user sends all 51 commands at once; the per-user limit is not under test here.
        .env("CATALOG_CHATOPS__LIMITS__COMMANDS_PER_MINUTE", "6000")
        .env("CATALOG_CHATOPS__LIMITS__BURST", "100")
        .env("DISCORD_TOKEN", TOKEN);
    c
}

/// Starts `run` and waits for the address its HTTP server listens on.
async fn start(cmd: Command) -> Replica {
    let (child, url) = support::spawn_listening(cmd, "run").await;
    Replica { child, url }
}

/// The `catalog_chatops_leader` gauge of a replica; `None` when it does not answer.
async fn leader_gauge(http: &reqwest::Client, r: &Replica) -> Option<f64> {
    let text = http
        .get(format!("{}/metrics", r.url))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("catalog_chatops_leader "))
        .and_then(|v| v.trim().parse().ok())
}

/// Replies in the commands' channel that answer `!deploy status <n>`, by n.
fn status_replies(calls: &[Call]) -> Vec<u64> {
    let path = format!("/channels/{CHANNEL_ID}/messages");
    calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == path)
        .filter_map(|c| c.content())
        .filter_map(|t| t.split("There is no deploy #").nth(1))
        .filter_map(|rest| {
            rest.split(|ch: char| !ch.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Announcements posted for `dag_id`.
fn announcements_of(calls: &[Call], dag_id: &str) -> usize {
    let path = format!("/channels/{ANNOUNCE_CHANNEL}/messages");
    calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == path)
        .filter(|c| c.content().is_some_and(|t| t.contains(dag_id)))
        .count()
}

fn new_paused_dag(world: &SandboxHandle, dag_id: &str) {
    world.world.lock().airflow.dags.push(SimDag {
        dag_id: dag_id.to_string(),
        is_paused: true,
        schedule: None,
        catchup: false,
        start_date: None,
        tags: vec!["replicas".into()],
        fileloc: format!("/opt/airflow/catalog/dags/{dag_id}.py"),
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_run_processes_handle_each_message_once_and_fail_over_the_watchers() {
    let Some(store_url) = support::postgres_url().await else {
        return;
    };
    let fake = FakeDiscord::start().await;
    fake.fan_out();
    let world = sandbox::start(World::openverse_idle())
        .await
        .expect("sandbox");
    world.world.lock().airflow.password = AIRFLOW_PASSWORD.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    sandbox::session::write_infra(&dir.path().join("infra")).expect("infra justfile");
    let cmd = |args: &[&str]| command(&store_url, &world, &fake, dir.path(), args);

    // Migrate once so the two replicas do not race on the schema.
    let m = cmd(&["migrate"]).output().await.expect("migrate");
    assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
    let mut a = start(cmd(&[])).await;
    let mut b = start(cmd(&[])).await;
    fake.wait_gateway("both replicas to identify", |log| {
        log.iter()
            .filter(|e| **e == fake_discord::GatewayLog::Identified)
            .count()
            >= 2
    })
    .await;

    // Exactly one replica leads the watchers.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut ga, mut gb) = (None, None);
    while Instant::now() < deadline {
        ga = leader_gauge(&http, &a).await;
        gb = leader_gauge(&http, &b).await;
        if ga.unwrap_or(0.0) + gb.unwrap_or(0.0) == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ga.unwrap_or(0.0) + gb.unwrap_or(0.0),
        1.0,
        "exactly one leader: {ga:?} {gb:?}"
    );

    // The same 50 messages reach both replicas; each is answered once.
    for n in 0..COMMANDS {
        let text = format!("!deploy status {}", 1000 + n);
        fake.dispatch(
            "MESSAGE_CREATE",
            message_create(fake.id(), ALICE, &text, true),
        );
    }
    fake.wait_for("an answer to every message", |calls| {
        (status_replies(calls).len() as u64 >= COMMANDS).then_some(())
    })
    .await;

    // The leader's watcher announces a new paused DAG, once.
    new_paused_dag(&world, "replicas_before_failover");
    fake.wait_for("the leader's announcement", |calls| {
        (announcements_of(calls, "replicas_before_failover") > 0).then_some(())
    })
    .await;

    // SIGKILL the leader; the survivor takes the watchers over.
    let (leader, survivor) = if ga == Some(1.0) {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    leader.child.start_kill().expect("kill -9 the leader");
    leader.child.wait().await.expect("reaped");
    let killed_at = Instant::now();
    let mut took_over = None;
    while killed_at.elapsed() < LEASE * 10 {
        if leader_gauge(&http, survivor).await == Some(1.0) {
            took_over = Some(killed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took_over = took_over.expect("the survivor took over the watchers");
    eprintln!("failover took {took_over:?} (lease {LEASE:?})");
    assert!(
        took_over <= LEASE * 3,
        "the watchers moved within the lease and its polling slack: {took_over:?}"
    );
    new_paused_dag(&world, "replicas_after_failover");
    fake.wait_for("the survivor's announcement", |calls| {
        (announcements_of(calls, "replicas_after_failover") > 0).then_some(())
    })
    .await;

    // The survivor still answers commands; nothing was handled twice.
    fake.dispatch(
        "MESSAGE_CREATE",
        message_create(fake.id(), ALICE, "!deploy status 2000", true),
    );
    fake.wait_for("the survivor's answer", |calls| {
        status_replies(calls).contains(&2000).then_some(())
    })
    .await;
    let calls = fake.calls();
    let mut replies = status_replies(&calls);
    replies.sort_unstable();
    let expected: Vec<u64> = (1000..1000 + COMMANDS).chain([2000]).collect();
    assert_eq!(replies, expected, "every message answered exactly once");
    assert_eq!(
        announcements_of(&calls, "replicas_before_failover"),
        1,
        "the survivor did not announce again what the old leader announced"
    );
    assert_eq!(announcements_of(&calls, "replicas_after_failover"), 1);

    let store = Store::open(&store_url).await.expect("store");
    assert_eq!(
        store.count_audit("command").await.expect("count"),
        (COMMANDS + 1) as i64,
        "one audited attempt per message"
    );
    let split: Vec<(String, i64)> = sqlx::query_as(
        "SELECT claimed_by, COUNT(*) FROM command_claims \
         WHERE claim_key LIKE 'discord:msg:%' GROUP BY claimed_by ORDER BY claimed_by",
    )
    .fetch_all(store.pool())
    .await
    .expect("claims");
    eprintln!("messages handled per replica: {split:?}");
    assert_eq!(
        split.iter().map(|(_, n)| n).sum::<i64>(),
        (COMMANDS + 1) as i64
    );
    let verify = cmd(&["audit", "verify"]).output().await.expect("verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    store.close().await;
}
