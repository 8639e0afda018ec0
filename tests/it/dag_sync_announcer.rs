//! The dag-sync announcer against the sandbox's fake GitHub and Airflow, with the deployed
//! commit read from a file the test moves the way dag-sync moves the host's checkout: one
//! "Deployed: …" message per commit that touched the DAG folder, none for other commits, none
//! twice across restarts or replicas, the Enable action of each new DAG the commit brought, and
//! a checkout whose commit GitHub does not know (made on the host) recovering onto the branch.

use crate::sandbox_support;
use crate::support;

use std::time::Duration;

use catalog_chatops::Engine;
use catalog_chatops::chat::Transcript;
use catalog_chatops::config::{CommitSource, Config};
use catalog_chatops::sandbox::{DEPLOYED_COMMIT_INDEX, SandboxHandle, SimDag, World, sim_sha};
use catalog_chatops::store::Store;
use catalog_chatops::watch::DagSyncAnnouncer;
use secrecy::SecretString;

/// The fake monorepo's `main`, oldest first (src/sandbox/seed.rs): commits 1, 3, 5 and 7 touch
/// `catalog/dags`, the others do not.
const INATURALIST: usize = 5;
const FRONTEND: usize = 6;
const EUROPEANA: usize = 7;

struct Host {
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host {
            file: dir.path().join("DEPLOYED_COMMIT"),
            _dir: dir,
        };
        host.move_to(&sim_sha(DEPLOYED_COMMIT_INDEX));
        host
    }

    /// What dag-sync's `git reset --hard` does, as the source sees it.
    fn move_to(&self, sha: &str) {
        std::fs::write(&self.file, format!("{sha}\n")).expect("write the deployed commit");
    }
}

fn config(h: &SandboxHandle, store_url: &str, host: &Host, wait: Duration) -> Config {
    let mut config = support::config_with_store(store_url);
    h.configure(&mut config);
    config.secrets.airflow_password = Some(SecretString::from(sandbox_support::PASSWORD));
    let sync = config
        .dag_sync
        .as_mut()
        .expect("the shipped config has [dag_sync]");
    sync.commit_source = CommitSource::File(host.file.display().to_string());
    sync.announce_after = wait;
    config
}

fn announcer(config: Config, store: Store) -> DagSyncAnnouncer {
    let engine =
        Engine::with_http_policy(config, store, sandbox_support::policy()).expect("engine");
    DagSyncAnnouncer::new(engine.ctx().clone())
}

fn new_dag(id: &str) -> SimDag {
    SimDag {
        dag_id: id.into(),
        is_paused: true,
        schedule: Some("@monthly".into()),
        catchup: false,
        start_date: Some("2024-01-01T00:00:00Z".into()),
        tags: vec!["provider".into()],
        fileloc: "/opt/airflow/catalog/dags/providers/provider_workflow_dag_factory.py".into(),
    }
}

#[tokio::test]
async fn one_message_per_dag_commit_none_for_others_none_twice() {
    let h = sandbox_support::sandbox(World::openverse_idle()).await;
    let t = support::sqlite().await;
    let host = Host::new();
    let wait = Duration::from_secs(3);
    let a = announcer(config(&h, &t.url, &host, wait), t.store.clone());
    let conv = Transcript::new();

    // The first poll records where the checkout is.
    let r = a.poll_once(&conv).await.expect("seed");
    assert!(r.seeded && r.announced.is_empty());
    assert_eq!(r.deployed, Some(sim_sha(DEPLOYED_COMMIT_INDEX)));

    // A commit that does not touch the DAG folder: nothing, ever.
    host.move_to(&sim_sha(DEPLOYED_COMMIT_INDEX + 1));
    let r = a.poll_once(&conv).await.expect("poll");
    assert!(r.recorded.is_empty() && r.announced.is_empty(), "{r:?}");

    // A DAG commit: recorded at once, posted once Airflow had `announce_after` to parse it.
    host.move_to(&sim_sha(INATURALIST));
    let r = a.poll_once(&conv).await.expect("poll");
    assert_eq!(r.recorded, [sim_sha(INATURALIST)]);
    assert!(r.announced.is_empty(), "not before announce_after");
    // Airflow parses what arrived: a new paused DAG appears.
    h.world
        .lock()
        .airflow
        .add_dag(new_dag("inaturalist_sounds_workflow"));
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    let r = a.poll_once(&conv).await.expect("poll");
    assert_eq!(r.announced.len(), 1, "{r:?}");
    let m = &r.announced[0];
    let short = &sim_sha(INATURALIST)[..7];
    assert_eq!(
        m.text,
        format!(
            "🔄 Deployed: Retry iNaturalist downloads on 503 (#4106) ({short})\n🆕 New DAG \
             `inaturalist_sounds_workflow` is paused · schedule @monthly. Enable it with `!dag \
             enable inaturalist_sounds_workflow`."
        )
    );
    assert_eq!(m.enable.len(), 1);
    assert_eq!(
        m.enable[0].button_id,
        "dag:enable:inaturalist_sounds_workflow"
    );
    assert_eq!(
        m.enable[0].command,
        "!dag enable inaturalist_sounds_workflow"
    );
    assert_eq!(conv.messages(), std::slice::from_ref(&m.text));

    // Polled again, and by a restarted process: nothing twice.
    assert!(a.poll_once(&conv).await.expect("poll").announced.is_empty());
    let restarted = announcer(config(&h, &t.url, &host, wait), t.store.clone());
    let r = restarted.poll_once(&conv).await.expect("poll");
    assert!(!r.seeded && r.announced.is_empty());

    // dag-sync catches up two commits between two polls: only the DAG one is announced, and
    // a move with no new DAG in Airflow has no Enable action.
    host.move_to(&sim_sha(FRONTEND));
    host.move_to(&sim_sha(EUROPEANA));
    let r = restarted.poll_once(&conv).await.expect("poll");
    assert_eq!(r.recorded, [sim_sha(EUROPEANA)]);
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    let r = restarted.poll_once(&conv).await.expect("poll");
    assert_eq!(r.announced.len(), 1);
    assert_eq!(
        r.announced[0].text,
        format!(
            "🔄 Deployed: Lower the Europeana batch size (#4108) ({})",
            &sim_sha(EUROPEANA)[..7]
        )
    );
    assert!(r.announced[0].enable.is_empty());
    assert_eq!(conv.messages().len(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn a_checkout_github_does_not_know_recovers_and_is_announced() {
    let h = sandbox_support::sandbox(World::openverse_idle()).await;
    let t = support::sqlite().await;
    let host = Host::new();
    // Someone committed on the host: GitHub has never seen that commit.
    host.move_to("deadbeefdeadbeefdeadbeefdeadbeefdeadbeef");
    let a = announcer(config(&h, &t.url, &host, Duration::ZERO), t.store.clone());
    let conv = Transcript::new();
    assert!(a.poll_once(&conv).await.expect("seed").seeded);
    // dag-sync resets it to the first commit of HEAD..origin/main it can reach.
    host.move_to(&sim_sha(EUROPEANA));
    let r = a.poll_once(&conv).await.expect("poll");
    assert_eq!(r.recorded, [sim_sha(EUROPEANA)]);
    assert_eq!(r.announced.len(), 1, "{r:?}");
    assert!(
        r.announced[0]
            .text
            .starts_with("🔄 Deployed: Lower the Europeana batch size (#4108)")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn two_replicas_on_one_postgres_store_post_once() {
    let Some(pg) = support::postgres().await else {
        return;
    };
    let h = sandbox_support::sandbox(World::openverse_idle()).await;
    let host = Host::new();
    // Two processes: two pools on the same database.
    let other = Store::open(&pg.url).await.expect("second store");
    let a = announcer(config(&h, &pg.url, &host, Duration::ZERO), pg.store.clone());
    let b = announcer(config(&h, &pg.url, &host, Duration::ZERO), other);
    let conv = Transcript::new();
    let (ra, rb) = tokio::join!(a.poll_once(&conv), b.poll_once(&conv));
    ra.expect("a seeds");
    rb.expect("b seeds");
    for commit in [INATURALIST, EUROPEANA] {
        host.move_to(&sim_sha(commit));
        let (ra, rb) = tokio::join!(a.poll_once(&conv), b.poll_once(&conv));
        let posted = ra.expect("a").announced.len() + rb.expect("b").announced.len();
        assert_eq!(posted, 1, "commit {commit}");
    }
    assert_eq!(conv.messages().len(), 2, "{:?}", conv.messages());
    h.shutdown().await;
}

#[tokio::test]
async fn a_source_that_fails_posts_nothing_and_says_why() {
    let h = sandbox_support::sandbox(World::openverse_idle()).await;
    let t = support::sqlite().await;
    let host = Host::new();
    let a = announcer(config(&h, &t.url, &host, Duration::ZERO), t.store.clone());
    let conv = Transcript::new();
    a.poll_once(&conv).await.expect("seed");
    std::fs::write(&host.file, "not a commit\n").expect("write");
    let e = a.poll_once(&conv).await.expect_err("garbage");
    assert!(
        e.to_string().contains(
            "the deployed commit cannot be read: the deployed commit source gave \"not\""
        ),
        "{e}"
    );
    assert!(conv.messages().is_empty());
    h.shutdown().await;
}
