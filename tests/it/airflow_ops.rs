//! Airflow operations in chat against the sandbox's fake Airflow (and fake GitHub for
//! dag-sync): the new-DAG announcer (seeding, once-only, removed-and-returned, pagination over
//! many pages, Airflow 2 and 3 shapes, Airflow down), `!dags new`, `!dag enable` (catchup
//! confirmation, nearest ids), `!airflow status` (contents, coalescing of 100 concurrent asks)
//! and `!dag-sync status`.

use crate::sandbox_support;
use crate::support;

use std::time::Duration;

use catalog_chatops::chat::Transcript;
use catalog_chatops::config::CommitSource;
use catalog_chatops::integrations::Service;
use catalog_chatops::policy::Actor;
use catalog_chatops::sandbox::{
    DEPLOYED_COMMIT_INDEX, Forced, SandboxHandle, SimDag, SimImportError, World, sim_sha,
};
use catalog_chatops::watch::Announcer;
use catalog_chatops::{Engine, Outcome};
use secrecy::SecretString;

fn actor(name: &str, roles: &[&str]) -> Actor {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    Actor::local(name, &roles, "tester")
}

fn dag(id: &str, paused: bool, catchup: bool, start: &str, schedule: &str) -> SimDag {
    SimDag {
        dag_id: id.into(),
        is_paused: paused,
        schedule: Some(schedule.into()),
        catchup,
        start_date: Some(start.into()),
        tags: vec!["provider".into()],
        fileloc: format!("/opt/airflow/catalog/dags/providers/{id}.py"),
    }
}

async fn engine(h: &SandboxHandle, store_url: &str) -> Engine {
    let mut config = support::config_with_store(store_url);
    h.configure(&mut config);
    config.secrets.airflow_password = Some(SecretString::from(sandbox_support::PASSWORD));
    config.limits.commands_per_minute = 100_000;
    config.limits.burst = 100_000;
    config.dag_sync = None;
    let store = catalog_chatops::store::Store::open(store_url)
        .await
        .expect("store");
    Engine::with_http_policy(config, store, sandbox_support::policy()).expect("engine")
}

#[tokio::test]
async fn announcer_seeds_then_announces_each_new_paused_dag_once() {
    for api2 in [false, true] {
        let world = World::openverse_idle();
        if api2 {
            world.lock().airflow.as_airflow2();
        }
        let h = sandbox_support::sandbox(world).await;
        let t = support::sqlite().await;
        let engine = engine(&h, &t.url).await;
        let announcer = Announcer::new(engine.ctx().clone());
        let conv = Transcript::new();

        // Seeding: the two paused DAGs already there are not announced.
        let r = announcer.poll_once(&conv).await.expect("seed");
        assert!(r.seeded && r.announced.is_empty() && r.dags > 40);
        assert!(conv.messages().is_empty());

        // A new paused DAG with catchup from 2015: announced once, naming the backfill.
        h.world.lock().airflow.add_dag(dag(
            "kew_gardens_workflow",
            true,
            true,
            "2015-11-01T00:00:00Z",
            "@daily",
        ));
        // A new DAG that is already unpaused is not announced.
        h.world.lock().airflow.add_dag(dag(
            "already_running_workflow",
            false,
            false,
            "2024-01-01T00:00:00Z",
            "@daily",
        ));
        let r = announcer.poll_once(&conv).await.expect("poll");
        assert_eq!(r.new.len(), 2);
        assert_eq!(r.announced.len(), 1, "{r:?}");
        let a = &r.announced[0];
        assert_eq!(a.button_id, "dag:enable:kew_gardens_workflow");
        assert_eq!(
            a.enable_command,
            "!dag enable kew_gardens_workflow --confirm"
        );
        assert!(a.text.contains("catchup backfill: about "), "{}", a.text);
        assert!(a.text.contains("since 2015-11-01 (@daily)"), "{}", a.text);
        assert_eq!(conv.messages(), vec![a.text.clone()]);

        let r = announcer.poll_once(&conv).await.expect("poll again");
        assert!(r.announced.is_empty() && r.new.is_empty());

        // Removed and back again: not new.
        h.world
            .lock()
            .airflow
            .dags
            .retain(|d| d.dag_id != "kew_gardens_workflow");
        announcer.poll_once(&conv).await.expect("poll without it");
        h.world.lock().airflow.add_dag(dag(
            "kew_gardens_workflow",
            true,
            true,
            "2015-11-01T00:00:00Z",
            "@daily",
        ));
        let r = announcer.poll_once(&conv).await.expect("poll with it back");
        assert!(r.new.is_empty() && r.announced.is_empty());
        assert_eq!(conv.messages().len(), 1, "api v1: {api2}");
    }
}

#[tokio::test]
async fn announcer_reads_every_page_and_survives_airflow_down() {
    let h = sandbox_support::sandbox(World::big(450, 0)).await;
    let t = support::sqlite().await;
    let engine = engine(&h, &t.url).await;
    let announcer = Announcer::new(engine.ctx().clone());
    let conv = Transcript::new();
    // A server that cuts pages at 40 still gets read completely.
    h.world.faults(Service::Airflow, |f| f.page_cap = Some(40));
    let r = announcer.poll_once(&conv).await.expect("seed");
    assert_eq!(r.dags, 450);
    assert_eq!(
        h.world.count(Service::Airflow, "GET /api/v2/dags"),
        450_u64.div_ceil(40)
    );
    assert_eq!(t.store.seen_dags().await.expect("seen").len(), 450);

    // Down: an error, nothing posted, nothing recorded.
    h.world.faults(Service::Airflow, |f| {
        for _ in 0..10 {
            f.force(Forced::status(503).on("/api/v2/dags"));
        }
    });
    h.world.lock().airflow.add_dag(dag(
        "zz_new_workflow",
        true,
        false,
        "2024-01-01T00:00:00Z",
        "@weekly",
    ));
    assert!(announcer.poll_once(&conv).await.is_err());
    assert!(conv.messages().is_empty());
    // Back: the DAG that arrived meanwhile is announced.
    h.world.faults(Service::Airflow, |f| f.forced.clear());
    let r = announcer
        .poll_once(&conv)
        .await
        .expect("poll after the outage");
    assert_eq!(r.new, ["zz_new_workflow"]);
    assert_eq!(conv.messages().len(), 1);
    assert!(conv.messages()[0].contains("!dag enable zz_new_workflow`"));
}

#[tokio::test]
async fn the_background_loop_backs_off_and_stops_on_cancel() {
    let h = sandbox_support::sandbox(World::openverse_idle()).await;
    let t = support::sqlite().await;
    let mut config = support::config_with_store(&t.url);
    h.configure(&mut config);
    config.secrets.airflow_password = Some(SecretString::from(sandbox_support::PASSWORD));
    config.watch.poll_interval = Duration::from_millis(50);
    let engine = Engine::with_http_policy(config, t.store.clone(), sandbox_support::policy())
        .expect("engine");
    h.world.faults(Service::Airflow, |f| f.hang = true);
    let cancel = tokio_util::sync::CancellationToken::new();
    let conv: std::sync::Arc<Transcript> = std::sync::Arc::new(Transcript::new());
    let task = catalog_chatops::watch::announcer::spawn(
        engine.ctx().clone(),
        conv.clone(),
        cancel.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops on cancel")
        .expect("no panic");
    assert!(conv.messages().is_empty(), "an outage posts nothing");
}

#[tokio::test]
async fn dags_new_and_dag_enable() {
    let h = sandbox_support::sandbox(World::openverse_idle()).await;
    let t = support::sqlite().await;
    let engine = engine(&h, &t.url).await;
    let maintainer = actor("alice", &["core-maintainer"]);
    let say = |text: &str| {
        let engine = engine.clone();
        let who = maintainer.clone();
        let text = text.to_string();
        async move {
            engine
                .handle(&who, &text, &Transcript::new())
                .await
                .expect("addressed")
        }
    };

    let before = say("!dags new").await;
    assert!(
        before.message.contains("has not polled"),
        "{}",
        before.message
    );

    let announcer = Announcer::new(engine.ctx().clone());
    announcer.poll_once(&Transcript::new()).await.expect("seed");
    h.world.lock().airflow.add_dag(dag(
        "auckland_museum_workflow",
        true,
        true,
        "2015-11-01T00:00:00Z",
        "@daily",
    ));
    h.world.lock().airflow.add_dag(dag(
        "pexels_workflow",
        true,
        false,
        "2020-01-01T00:00:00Z",
        "@weekly",
    ));
    announcer.poll_once(&Transcript::new()).await.expect("poll");

    let new = say("!dags new --days 3").await;
    assert_eq!(new.outcome, Outcome::Ok);
    assert!(
        new.message
            .starts_with("2 new paused DAGs (first seen in the last 3 days):")
    );
    assert!(new.message.contains("`auckland_museum_workflow`"));
    assert!(
        new.message
            .contains("⚠️ enabling starts a catchup backfill: about ")
    );
    assert!(new.message.contains("`pexels_workflow` · first seen just now · schedule @weekly · no catchup → `!dag enable pexels_workflow`"), "{}", new.message);
    // Seeded DAGs (already there before the first poll) are not new.
    assert!(!new.message.contains("justtakeitfree_workflow"));

    // Catchup: the first ask names the backfill and changes nothing.
    let ask = say("!dag enable auckland_museum_workflow").await;
    assert_eq!(ask.outcome, Outcome::Blocked);
    assert!(ask.message.contains("--confirm"), "{}", ask.message);
    assert!(ask.message.contains("since 2015-11-01"), "{}", ask.message);
    let paused = |id: &str| {
        h.world
            .lock()
            .airflow
            .dags
            .iter()
            .find(|d| d.dag_id == id)
            .map(|d| d.is_paused)
    };
    assert_eq!(paused("auckland_museum_workflow"), Some(true));
    let ok = say("!dag enable auckland_museum_workflow --confirm").await;
    assert_eq!(ok.outcome, Outcome::Ok, "{}", ok.message);
    assert_eq!(paused("auckland_museum_workflow"), Some(false));
    let ok = say("!dag enable pexels_workflow").await;
    assert_eq!(ok.outcome, Outcome::Ok, "{}", ok.message);
    assert_eq!(paused("pexels_workflow"), Some(false));
    let again = say("!dag enable pexels_workflow").await;
    assert!(again.message.contains("already enabled"));

    let typo = say("!dag enable auckland_musuem_workflow").await;
    assert_eq!(typo.outcome, Outcome::Invalid);
    assert!(
        typo.message.starts_with(
            "Airflow has no DAG `auckland_musuem_workflow`. Did you mean `auckland_museum_workflow`"
        ),
        "{}",
        typo.message
    );

    // No permission: denied before anything happens.
    let denied = engine
        .handle(
            &actor("bob", &["contributor"]),
            "!dag enable justtakeitfree_workflow",
            &Transcript::new(),
        )
        .await
        .expect("addressed");
    assert_eq!(denied.outcome, Outcome::Denied);
    assert_eq!(paused("justtakeitfree_workflow"), Some(true));

    // Audited: the attempt and its result.
    let events = t.store.list_audit(50, None).await.expect("audit");
    assert!(events.iter().any(|e| {
        e.kind == "result"
            && e.outcome.as_deref() == Some("ok")
            && e.detail["message"]
                .as_str()
                .is_some_and(|m| m.contains("Enabled `pexels_workflow`"))
    }));
}

#[tokio::test]
async fn airflow_status_shows_everything_and_100_concurrent_asks_cost_one_request_each() {
    let world = World::openverse();
    world.lock().airflow.import_errors.push(SimImportError {
        id: 1,
        filename: "/opt/airflow/catalog/dags/providers/broken.py".into(),
        stack_trace: "Traceback (most recent call last):\n  File \"x\"\nModuleNotFoundError: No module named 'nowhere'\n".into(),
        timestamp: "2026-01-01T00:00:00Z".into(),
    });
    let h = sandbox_support::sandbox(world).await;
    h.world
        .faults(Service::Airflow, |f| f.latency = Duration::from_millis(100));
    let t = support::sqlite().await;
    let engine = engine(&h, &t.url).await;

    let mut tasks = Vec::new();
    for i in 0..100 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            engine
                .handle(
                    &actor(&format!("user{i}"), &[]),
                    "!airflow status",
                    &Transcript::new(),
                )
                .await
                .expect("addressed")
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    let counts = h.world.lock().airflow.faults.counts.clone();
    for (endpoint, n) in &counts {
        // Two different questions share the run list's path: running+queued runs, and runs
        // that failed in the last 24 h. Each was asked once.
        let queries = if endpoint == "GET /api/v2/dags/~/dagRuns" {
            2
        } else {
            1
        };
        assert!(*n <= queries, "{endpoint} was asked {n} times: {counts:?}");
    }
    assert!(counts.len() >= 5, "{counts:?}");
    let text = &replies[0].message;
    assert_eq!(replies[0].outcome, Outcome::Ok, "{text}");
    for needle in [
        "Airflow 3.0.2 at http://127.0.0.1:",
        "✅ scheduler: healthy · heartbeat ",
        "✅ dag processor: healthy",
        "Active runs: 2 running, 0 queued",
        "`image_data_refresh`",
        "Failed runs in the last 24 h: ",
        "Import errors: 1",
        "broken.py: ModuleNotFoundError: No module named 'nowhere'",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    assert!(replies.iter().all(|r| r.outcome == Outcome::Ok));

    // A cached answer later says how old it is.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = engine
        .handle(&actor("carol", &[]), "!airflow status", &Transcript::new())
        .await
        .expect("addressed");
    assert!(later.message.ends_with(" s ago)"), "{}", later.message);
    assert!(
        later.message.contains("(as of 1 s ago)"),
        "{}",
        later.message
    );
}

#[tokio::test]
async fn airflow_status_when_airflow_is_down_says_so() {
    let h = sandbox_support::sandbox(World::openverse_idle()).await;
    h.world.faults(Service::Airflow, |f| {
        for _ in 0..50 {
            f.force(Forced::status(503));
        }
    });
    let t = support::sqlite().await;
    let engine = engine(&h, &t.url).await;
    let r = engine
        .handle(&actor("a", &[]), "!airflow status", &Transcript::new())
        .await
        .expect("addressed");
    assert_eq!(r.outcome, Outcome::Blocked, "{}", r.message);
    assert!(r.message.contains("version unknown"), "{}", r.message);
    assert!(r.message.contains("503"), "{}", r.message);
}

#[tokio::test]
async fn dag_sync_status_against_the_fake_github() {
    let h = sandbox_support::sandbox(World::openverse_idle()).await;
    let t = support::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("DEPLOYED_COMMIT");
    std::fs::write(&file, format!("{}\n", sim_sha(DEPLOYED_COMMIT_INDEX))).expect("write");
    let mut config = support::config_with_store(&t.url);
    h.configure(&mut config);
    config.secrets.airflow_password = Some(SecretString::from(sandbox_support::PASSWORD));
    let Some(sync) = config.dag_sync.as_mut() else {
        panic!("the shipped config has [dag_sync]");
    };
    sync.commit_source = CommitSource::File(file.display().to_string());
    let engine = Engine::with_http_policy(config, t.store.clone(), sandbox_support::policy())
        .expect("engine");
    let r = engine
        .handle(&actor("a", &[]), "!dag-sync status", &Transcript::new())
        .await
        .expect("addressed");
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.message);
    let m = &r.message;
    assert!(
        m.contains(&format!("has {}", &sim_sha(DEPLOYED_COMMIT_INDEX)[..7])),
        "{m}"
    );
    assert!(
        m.contains("4 commits behind `main`; 2 of them touch catalog/dags/."),
        "{m}"
    );
    assert!(
        m.contains(
            "Retry iNaturalist downloads on 503 (#4106) · stacimc · PR #4106 · lands in ~10m 00s"
        ),
        "{m}"
    );
    assert!(
        m.contains(
            "Lower the Europeana batch size (#4108) · AetherUnbound · PR #4108 · lands in ~20m 00s"
        ),
        "{m}"
    );
    assert!(m.contains("all 4 land in roughly 20m 00s"), "{m}");
    assert!(m.contains("last sync just now"), "{m}");

    // Unknown commit: a sentence, blocked.
    std::fs::write(&file, "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef\n").expect("write");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut config = support::config_with_store(&t.url);
    h.configure(&mut config);
    if let Some(s) = config.dag_sync.as_mut() {
        s.commit_source = CommitSource::File(file.display().to_string());
    }
    let engine = Engine::with_http_policy(config, t.store.clone(), sandbox_support::policy())
        .expect("engine");
    let r = engine
        .handle(&actor("a", &[]), "!dag-sync status", &Transcript::new())
        .await
        .expect("addressed");
    assert_eq!(r.outcome, Outcome::Blocked);
    assert!(
        r.message
            .contains("does not know the deployed commit deadbeefdead"),
        "{}",
        r.message
    );
}

/// Production's Airflow 2.9.3 reports `"status": null` for the DAG processor (inside the
/// scheduler) and for a triggerer that never ran: not a failure, no red mark.
#[tokio::test]
async fn airflow2_components_that_do_not_run_separately_are_not_failures() {
    let world = World::openverse_idle();
    world.lock().airflow.as_airflow2();
    world.lock().airflow.triggerer_running = false;
    let h = sandbox_support::sandbox(world).await;
    let t = support::sqlite().await;
    let engine = engine(&h, &t.url).await;
    let r = engine
        .handle(&actor("a", &[]), "!airflow status", &Transcript::new())
        .await
        .expect("addressed");
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.message);
    for needle in [
        "Airflow 2.9.3 at ",
        "✅ scheduler: healthy",
        "➖ triggerer: not running separately (no triggerer has reported; deferrable tasks need one)",
        "➖ dag processor: not running separately (it runs inside the scheduler)",
    ] {
        assert!(r.message.contains(needle), "{needle}: {}", r.message);
    }
    assert!(!r.message.contains('❌'), "{}", r.message);
}

/// Airflow 2 answers a bare 401 both when basic auth is off and when the password is wrong, and
/// a 403 when the user's role may not write: each names what to change.
#[tokio::test]
async fn airflow2_refusals_name_the_auth_backend_and_the_user_command() {
    let world = World::openverse_idle();
    world.lock().airflow.as_airflow2();
    let h = sandbox_support::sandbox(world).await;
    let t = support::sqlite().await;
    let mut config = support::config_with_store(&t.url);
    h.configure(&mut config);
    config.secrets.airflow_password = Some(SecretString::from("not-the-password"));
    config.dag_sync = None;
    let wrong_password =
        Engine::with_http_policy(config, t.store.clone(), sandbox_support::policy())
            .expect("engine");
    let maintainer = actor("alice", &["core-maintainer"]);
    for text in [
        "!dag enable pexels_workflow",
        "!deploy check catalog v1.5.3",
    ] {
        let r = wrong_password
            .handle(&maintainer, text, &Transcript::new())
            .await
            .expect("addressed");
        assert_eq!(r.outcome, Outcome::Blocked, "{text}: {}", r.message);
        for needle in [
            "401 for user chatops on /api/v1/",
            "`AIRFLOW__API__AUTH_BACKENDS=airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session`",
            "the user chatops does not exist or the password in AIRFLOW_PASSWORD is wrong",
            "`airflow users create --username chatops --role Op",
        ] {
            assert!(
                r.message.contains(needle),
                "{text}: {needle}: {}",
                r.message
            );
        }
        assert!(!r.message.contains("not-the-password"), "{}", r.message);
    }

    // The right password, a role that may only read: 403 on the write, naming the role fix.
    h.world.lock().airflow.read_only = true;
    let viewer = engine(&h, &t.url).await;
    let r = viewer
        .handle(
            &maintainer,
            "!dag enable justtakeitfree_workflow",
            &Transcript::new(),
        )
        .await
        .expect("addressed");
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.message);
    for needle in [
        "403 for user chatops on /api/v1/dags/justtakeitfree_workflow",
        "the password was accepted (the `AIRFLOW__API__AUTH_BACKENDS=airflow.api.auth.backend.basic_auth,…` backend works)",
        "`airflow users add-role -u chatops -r Op`",
        "`airflow users create --username chatops --role Op …`",
    ] {
        assert!(r.message.contains(needle), "{needle}: {}", r.message);
    }
    assert!(
        h.world
            .lock()
            .airflow
            .dags
            .iter()
            .any(|d| d.dag_id == "justtakeitfree_workflow" && d.is_paused),
        "nothing changed"
    );
}

/// A DAG without a schedule only runs when triggered; enabling it must not promise a schedule.
#[tokio::test]
async fn enabling_a_dag_without_a_schedule_says_it_runs_only_when_triggered() {
    for airflow2 in [false, true] {
        let world = World::openverse_idle();
        if airflow2 {
            world.lock().airflow.as_airflow2();
        }
        world.lock().airflow.add_dag(SimDag {
            schedule: None,
            ..dag(
                "add_license_url",
                true,
                false,
                "2024-01-01T00:00:00Z",
                "@daily",
            )
        });
        let h = sandbox_support::sandbox(world).await;
        let t = support::sqlite().await;
        let engine = engine(&h, &t.url).await;
        let r = engine
            .handle(
                &actor("alice", &["core-maintainer"]),
                "!dag enable add_license_url",
                &Transcript::new(),
            )
            .await
            .expect("addressed");
        assert_eq!(r.outcome, Outcome::Ok, "{}", r.message);
        assert_eq!(
            r.message,
            "Enabled `add_license_url`: it is unpaused; it has no schedule, so it runs only when \
             triggered (from the Airflow UI, the API, or another DAG)."
        );
        assert!(!r.message.contains("will run on its schedule"));
    }
}
