//! The DAG-runs gate against the sandbox's fake Airflow, in both API shapes: queued runs block
//! only when their DAG is active; a `pause_during_deploy` DAG's running run does not block while
//! its started tasks are waiting sensors (and is listed to be paused), and blocks once a real
//! task runs; pausing and unpausing for a deploy report what they did; an answer that cannot be
//! had blocks.

use crate::sandbox_support;
use crate::support;

use catalog_chatops::chat::Transcript;
use catalog_chatops::command::Version;
use catalog_chatops::deploy::dag_runs::{self, Standing};
use catalog_chatops::deploy::preflight::{self, Status};
use catalog_chatops::integrations::Service;
use catalog_chatops::integrations::airflow::PauseChange;
use catalog_chatops::policy::Actor;
use catalog_chatops::sandbox::{Forced, SandboxHandle, SimTask, World};
use catalog_chatops::{Engine, Outcome};
use secrecy::SecretString;

fn world(airflow2: bool) -> World {
    let w = World::openverse_idle();
    if airflow2 {
        w.lock().airflow.as_airflow2();
    }
    w
}

async fn engine(h: &SandboxHandle, pause: &[&str]) -> (Engine, support::TestStore) {
    let t = support::sqlite().await;
    let mut config = support::config_with_store(&t.url);
    h.configure(&mut config);
    config.secrets.airflow_password = Some(SecretString::from(sandbox_support::PASSWORD));
    config.dag_sync = None;
    if let Some(target) = config.targets.get_mut("catalog") {
        target.pause_during_deploy = pause.iter().map(|s| s.to_string()).collect();
    }
    let engine = Engine::with_http_policy(config, t.store.clone(), sandbox_support::policy())
        .expect("engine");
    (engine, t)
}

async fn check(engine: &Engine) -> catalog_chatops::Reply {
    let anyone = Actor::local("dana", &[], "tester");
    engine
        .handle(&anyone, "!deploy check catalog v1.5.3", &Transcript::new())
        .await
        .expect("addressed")
}

fn paused(h: &SandboxHandle, dag_id: &str) -> bool {
    h.world
        .lock()
        .airflow
        .dags
        .iter()
        .find(|d| d.dag_id == dag_id)
        .map(|d| d.is_paused)
        .expect("a known DAG")
}

#[tokio::test]
async fn a_queued_run_blocks_only_when_its_dag_is_active() {
    for airflow2 in [false, true] {
        let h = sandbox_support::sandbox(world(airflow2)).await;
        // justtakeitfree_workflow is paused in the seeded world; inaturalist_workflow is active.
        assert!(paused(&h, "justtakeitfree_workflow"));
        assert!(!paused(&h, "inaturalist_workflow"));
        h.world
            .lock()
            .airflow
            .add_queued("justtakeitfree_workflow", 3_600_000);
        let (engine, _t) = engine(&h, &[]).await;

        let r = check(&engine).await;
        assert_eq!(r.outcome, Outcome::Ok, "airflow2={airflow2}: {}", r.message);
        assert!(
            r.message.contains(
                "✅ DAG runs: no blocking DAG runs; 1 active run(s) do not block\n    • \
                 justtakeitfree_workflow · manual__"
            ),
            "{}",
            r.message
        );
        // Airflow 2 sends no `queued_at`: "since" only where the API says.
        let since = if airflow2 { "" } else { " since 1 h ago" };
        assert!(
            r.message.contains(&format!(
                ", queued{since}: not blocking — the DAG is paused, so the run never starts"
            )),
            "{}",
            r.message
        );

        h.world
            .lock()
            .airflow
            .add_queued("inaturalist_workflow", 120_000);
        let r = check(&engine).await;
        assert_eq!(r.outcome, Outcome::Blocked, "{}", r.message);
        assert!(
            r.message
                .contains("❌ DAG runs: 1 active DAG run(s) block the deploy"),
            "{}",
            r.message
        );
        let since = if airflow2 { "" } else { " since 2 min ago" };
        assert!(
            r.message.contains(&format!(
                ", queued{since}: the DAG is active, so the run will start"
            )),
            "{}",
            r.message
        );
        assert!(
            r.message
                .contains("the DAG is paused, so the run never starts"),
            "the paused one is still named as not blocking: {}",
            r.message
        );

        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_pause_during_deploy_run_waiting_on_its_sensor_does_not_block() {
    for airflow2 in [false, true] {
        let h = sandbox_support::sandbox(world(airflow2)).await;
        let run_id = h
            .world
            .lock()
            .airflow
            .add_running("image_data_refresh", 5 * 3_600_000, None);
        let set = |tasks: Vec<SimTask>| {
            h.world
                .lock()
                .airflow
                .set_tasks("image_data_refresh", &run_id, tasks)
        };
        let (engine, _t) = engine(&h, &["image_data_refresh"]).await;

        // The sensor in each state it passes through between pokes: waiting.
        for state in [
            "up_for_reschedule",
            "scheduled",
            "queued",
            "running",
            "deferred",
        ] {
            set(vec![
                SimTask::new("wait_for_api_idle", "HttpSensor", Some(state)),
                SimTask::new("copy_upstream_table", "PythonOperator", None),
                SimTask::new("get_current_index", "PythonOperator", Some("success")),
            ]);
            let r = check(&engine).await;
            assert_eq!(
                r.outcome,
                Outcome::Ok,
                "airflow2={airflow2} {state}: {}",
                r.message
            );
            assert!(
                r.message.contains(&format!(
                    "not blocking — it waits on its sensor wait_for_api_idle ({state}); the DAG \
                     will be paused during the deploy (pause_during_deploy)"
                )),
                "{state}: {}",
                r.message
            );
        }
        // What the workflow gets: the DAG to pause.
        let report = preflight::run(
            &engine.ctx().integrations,
            "catalog",
            &engine.ctx().config.targets["catalog"],
            &Version::parse("v1.5.3").expect("version"),
        )
        .await;
        assert!(report.passed(false));
        assert_eq!(report.dags_to_pause(), ["image_data_refresh"]);
        assert_eq!(report.to_pause[0].run_id, run_id);

        // The copy started: it blocks, and says which task.
        set(vec![
            SimTask::new("wait_for_api_idle", "HttpSensor", Some("success")),
            SimTask::new("copy_upstream_table", "PythonOperator", Some("running")),
        ]);
        let r = check(&engine).await;
        assert_eq!(r.outcome, Outcome::Blocked, "{}", r.message);
        assert!(
            r.message.contains("image_data_refresh · manual__")
                && r.message.contains(
                    "task copy_upstream_table (PythonOperator) is running — not only waiting \
                 sensors, so pausing it would not make the deploy safe"
                ),
            "{}",
            r.message
        );
        // A sensor retrying after a failed poke blocks too.
        set(vec![SimTask::new(
            "wait_for_api_idle",
            "HttpSensor",
            Some("up_for_retry"),
        )]);
        assert_eq!(check(&engine).await.outcome, Outcome::Blocked);

        // The same run of a DAG not in pause_during_deploy blocks whatever its tasks do.
        set(vec![SimTask::new(
            "wait_for_api_idle",
            "HttpSensor",
            Some("up_for_reschedule"),
        )]);
        let (plain, _t2) = engine_without_pause(&h).await;
        let r = check(&plain).await;
        assert_eq!(r.outcome, Outcome::Blocked, "{}", r.message);

        // Tasks that cannot be read make the check unknown.
        let tasks_path = format!(
            "/api/{}/dags/image_data_refresh/dagRuns/",
            if airflow2 { "v1" } else { "v2" }
        );
        h.world.faults(Service::Airflow, |f| {
            for _ in 0..10 {
                f.force(Forced::status(500).on(&tasks_path));
            }
        });
        let r = check(&engine).await;
        assert_eq!(r.outcome, Outcome::Blocked, "{}", r.message);
        assert!(
            r.message
                .contains("⚠️ DAG runs: cannot read the tasks of image_data_refresh"),
            "{}",
            r.message
        );
        h.shutdown().await;
    }
}

async fn engine_without_pause(h: &SandboxHandle) -> (Engine, support::TestStore) {
    engine(h, &[]).await
}

#[tokio::test]
async fn pausing_and_unpausing_for_a_deploy_report_what_they_did() {
    for airflow2 in [false, true] {
        let h = sandbox_support::sandbox(world(airflow2)).await;
        let (engine, _t) = engine(&h, &["image_data_refresh"]).await;
        let airflow = &engine.ctx().integrations.airflow;
        assert!(!paused(&h, "image_data_refresh"));
        assert!(paused(&h, "justtakeitfree_workflow"));
        let ids: Vec<String> = [
            "image_data_refresh",
            "justtakeitfree_workflow",
            "no_such_dag",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let reports = dag_runs::pause_for_deploy(airflow, &ids).await;
        let said: Vec<String> = reports.iter().map(|r| r.describe(true)).collect();
        assert_eq!(
            said,
            [
                "paused `image_data_refresh`",
                "`justtakeitfree_workflow` was already paused; the deploy will not unpause it",
                "`no_such_dag` could not be paused: Airflow has no such DAG",
            ],
            "airflow2={airflow2}"
        );
        assert!(paused(&h, "image_data_refresh"));
        let ours = dag_runs::paused_by_us(&reports);
        assert_eq!(ours, ["image_data_refresh"]);

        // Unpausing only what this deploy paused; twice is harmless (a recovering process).
        let reports = dag_runs::unpause_after_deploy(airflow, &ours).await;
        assert_eq!(reports[0].change, PauseChange::Changed);
        assert_eq!(reports[0].describe(false), "unpaused `image_data_refresh`");
        assert!(!paused(&h, "image_data_refresh"));
        assert!(
            paused(&h, "justtakeitfree_workflow"),
            "left as someone set it"
        );
        let again = dag_runs::unpause_after_deploy(airflow, &ours).await;
        assert_eq!(again[0].change, PauseChange::Unchanged);

        // Airflow down: each DAG says why, nothing is assumed.
        h.world.faults(Service::Airflow, |f| {
            for _ in 0..20 {
                f.force(Forced::status(503).on("/api/"));
            }
        });
        let failed = dag_runs::pause_for_deploy(airflow, &ours).await;
        assert!(!failed[0].holds());
        assert!(
            failed[0]
                .describe(true)
                .starts_with("`image_data_refresh` could not be paused: airflow: answered 503"),
            "{}",
            failed[0].describe(true)
        );
        h.shutdown().await;
    }
}

#[tokio::test]
async fn the_gate_judges_every_run_and_lists_what_to_pause() {
    let h = sandbox_support::sandbox(world(false)).await;
    let refresh = h
        .world
        .lock()
        .airflow
        .add_running("audio_data_refresh", 60_000, None);
    h.world.lock().airflow.set_tasks(
        "audio_data_refresh",
        &refresh,
        vec![SimTask::new(
            "wait",
            "ExternalTaskSensor",
            Some("up_for_reschedule"),
        )],
    );
    h.world
        .lock()
        .airflow
        .add_queued("justtakeitfree_workflow", 60_000);
    let (engine, _t) = engine(&h, &["audio_data_refresh"]).await;
    let gate = dag_runs::evaluate(
        &engine.ctx().integrations.airflow,
        &engine.ctx().config.targets["catalog"],
    )
    .await;
    assert_eq!(gate.check.status, Status::Pass, "{:?}", gate.check);
    let standings: Vec<(&str, &Standing)> = gate
        .runs
        .iter()
        .map(|j| (j.run.dag_id.as_str(), &j.standing))
        .collect();
    assert!(standings.contains(&("justtakeitfree_workflow", &Standing::NeverStarts)));
    assert!(standings.contains(&(
        "audio_data_refresh",
        &Standing::WaitsOnSensor {
            sensors: vec!["wait (up_for_reschedule)".into()]
        }
    )));
    assert_eq!(gate.to_pause.len(), 1);
    assert_eq!(gate.to_pause[0].dag_id, "audio_data_refresh");
    h.shutdown().await;
}
