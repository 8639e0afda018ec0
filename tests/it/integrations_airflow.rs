//! The Airflow client against the sandbox's fake Airflow, in both shapes: Airflow 3 (`/api/v2`,
//! JWT) and Airflow 2 (`/api/v1`, basic auth); pagination, re-login, and every way an answer can
//! fail.

use crate::sandbox_support;

use std::time::Duration;

use catalog_chatops::config::AirflowApi;
use catalog_chatops::integrations::Service;
use catalog_chatops::integrations::airflow::ApiVersion;
use catalog_chatops::sandbox::{Forced, SimImportError, World};
use sandbox_support::{PASSWORD, airflow, sandbox};

const RUNS_V2: &str = "GET /api/v2/dags/~/dagRuns";
const LOGIN: &str = "POST /auth/token";

fn airflow2() -> World {
    let w = World::openverse();
    w.lock().airflow.as_airflow2();
    w
}

#[tokio::test]
async fn airflow3_version_health_and_dags() {
    let h = sandbox(World::openverse_idle()).await;
    let af = airflow(&h, AirflowApi::V2, PASSWORD);
    assert_eq!(af.version().await.unwrap().version, "3.0.2");
    let health = af.health().await.unwrap();
    assert_eq!(health.scheduler.status.as_deref(), Some("healthy"));
    assert!(health.scheduler.latest_heartbeat.is_some());
    assert!(health.dag_processor.unwrap().latest_heartbeat.is_some());
    // Version and health need no login.
    assert_eq!(h.world.count(Service::Airflow, LOGIN), 0);

    let dags = af.list_dags().await.unwrap();
    assert_eq!(dags.len(), h.world.lock().airflow.dags.len());
    assert!(dags.len() > 40);
    let inat = dags
        .iter()
        .find(|d| d.dag_id == "inaturalist_workflow")
        .unwrap();
    assert_eq!(inat.schedule.as_deref(), Some("0 0 2 * *"));
    assert_eq!(inat.tags, ["provider"]);
    let paused: Vec<&str> = dags
        .iter()
        .filter(|d| d.is_paused)
        .map(|d| d.dag_id.as_str())
        .collect();
    assert_eq!(
        paused,
        ["flickr_thumbnails_removal", "justtakeitfree_workflow"]
    );
    let adhoc = dags
        .iter()
        .find(|d| d.dag_id == "image_data_refresh")
        .unwrap();
    assert_eq!(adhoc.schedule, None);
}

#[tokio::test]
async fn airflow3_active_runs_and_runs_that_finish() {
    let h = sandbox(World::openverse()).await;
    let af = airflow(&h, AirflowApi::V2, PASSWORD);
    let mut active: Vec<(String, String)> = af
        .active_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.dag_id, r.state))
        .collect();
    active.sort();
    assert_eq!(
        active,
        [
            ("image_data_refresh".to_string(), "running".to_string()),
            ("inaturalist_workflow".to_string(), "running".to_string()),
        ]
    );

    let run_id = h
        .world
        .lock()
        .airflow
        .add_running("flickr_workflow", 1_000, Some(300));
    let runs = af.active_runs().await.unwrap();
    let flickr = runs
        .iter()
        .find(|r| r.run_id == run_id)
        .expect("running now");
    assert!(flickr.start_date.is_some() && flickr.logical_date.is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let runs = af.active_runs().await.unwrap();
    assert!(runs.iter().all(|r| r.run_id != run_id), "finished by now");
}

#[tokio::test]
async fn active_runs_are_read_across_pages_of_at_most_100() {
    let h = sandbox(World::big(30, 250)).await;
    let af = airflow(&h, AirflowApi::V2, PASSWORD);
    let runs = af.active_runs().await.unwrap();
    assert_eq!(runs.len(), 250);
    assert_eq!(h.world.count(Service::Airflow, RUNS_V2), 3);

    // A server with a smaller page than the client asks for is still read to the end.
    h.world.faults(Service::Airflow, |f| f.page_cap = Some(40));
    let runs = af.active_runs().await.unwrap();
    assert_eq!(runs.len(), 250);
    assert_eq!(h.world.count(Service::Airflow, RUNS_V2), 3 + 7);
    assert_eq!(af.list_dags().await.unwrap().len(), 30);
}

#[tokio::test]
async fn a_big_airflow_is_read_completely() {
    let h = sandbox(World::big(2_000, 5_000)).await;
    let af = airflow(&h, AirflowApi::V2, PASSWORD);
    assert_eq!(af.active_runs().await.unwrap().len(), 5_000);
    assert_eq!(af.list_dags().await.unwrap().len(), 2_000);
}

#[tokio::test]
async fn airflow2_shape_with_basic_auth() {
    let h = sandbox(airflow2()).await;
    let af = airflow(&h, AirflowApi::V1, PASSWORD);
    assert_eq!(af.version().await.unwrap().version, "2.9.3");
    assert!(
        af.health()
            .await
            .unwrap()
            .scheduler
            .latest_heartbeat
            .is_some()
    );
    let runs = af.active_runs().await.unwrap();
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter()
            .all(|r| r.state == "running" && r.logical_date.is_some())
    );
    let dags = af.list_dags().await.unwrap();
    let europeana = dags
        .iter()
        .find(|d| d.dag_id == "europeana_workflow")
        .unwrap();
    assert_eq!(europeana.schedule.as_deref(), Some("@daily"));
    assert_eq!(h.world.count(Service::Airflow, LOGIN), 0);
    assert!(
        h.world
            .count(Service::Airflow, "GET /api/v1/dags/~/dagRuns")
            >= 1
    );

    let e = airflow(&h, AirflowApi::V1, "wrong")
        .active_runs()
        .await
        .unwrap_err();
    // Airflow 2's 401 cannot tell "basic auth off" from "wrong password": both fixes named.
    let text = e.to_string();
    assert!(
        text.starts_with(
            "airflow: 401 for user chatops on /api/v1/dags/~/dagRuns — Airflow 2 refuses the \
             same way for two causes"
        ) && text.contains(
            "`AIRFLOW__API__AUTH_BACKENDS=airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session`"
        ) && text.contains("`airflow users create --username chatops"),
        "{e}"
    );
}

#[tokio::test]
async fn auto_detects_the_api() {
    let h3 = sandbox(World::openverse_idle()).await;
    let af = airflow(&h3, AirflowApi::Auto, PASSWORD);
    assert_eq!(af.api().await.unwrap(), ApiVersion::V2);
    assert_eq!(af.active_runs().await.unwrap().len(), 0);
    assert_eq!(h3.world.count(Service::Airflow, "GET /api/v2/version"), 1);

    let h2 = sandbox(airflow2()).await;
    let af = airflow(&h2, AirflowApi::Auto, PASSWORD);
    assert_eq!(af.api().await.unwrap(), ApiVersion::V1);
    assert_eq!(af.active_runs().await.unwrap().len(), 2);
    // Detected once, then remembered.
    assert_eq!(h2.world.count(Service::Airflow, "GET /api/v2/version"), 1);
    assert_eq!(h2.world.count(Service::Airflow, "GET /api/v1/version"), 1);
}

#[tokio::test]
async fn the_jwt_is_reused_and_renewed_once_when_refused() {
    let h = sandbox(World::openverse()).await;
    let af = airflow(&h, AirflowApi::V2, PASSWORD);
    af.active_runs().await.unwrap();
    af.list_dags().await.unwrap();
    assert_eq!(h.world.count(Service::Airflow, LOGIN), 1);

    h.world.lock().airflow.expire_tokens();
    assert_eq!(af.active_runs().await.unwrap().len(), 2);
    assert_eq!(h.world.count(Service::Airflow, LOGIN), 2);

    // A 403 earns one new login; a 403 on the fresh token is a permission problem.
    h.world.faults(Service::Airflow, |f| {
        for _ in 0..2 {
            f.force(Forced::status(403).on("/api/v2/importErrors"));
        }
    });
    let e = af.import_errors().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "airflow: 403 for /api/v2/importErrors — user chatops lacks the permission"
    );
    assert_eq!(h.world.count(Service::Airflow, LOGIN), 3);
}

#[tokio::test]
async fn a_wrong_password_is_named() {
    let h = sandbox(World::openverse_idle()).await;
    let e = airflow(&h, AirflowApi::V2, "not-the-password")
        .active_runs()
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "airflow: login refused (401) for user chatops — check AIRFLOW_PASSWORD"
    );
    assert!(!format!("{e:?}").contains("not-the-password"));
}

#[tokio::test]
async fn pause_details_recent_runs_and_import_errors() {
    for world in [World::openverse_idle(), airflow2()] {
        let h = sandbox(world).await;
        let api = if h.world.lock().airflow.serve_v2 {
            AirflowApi::V2
        } else {
            AirflowApi::V1
        };
        let af = airflow(&h, api, PASSWORD);

        let d = af
            .set_paused("justtakeitfree_workflow", false)
            .await
            .unwrap()
            .unwrap();
        assert!(!d.is_paused);
        assert!(
            !h.world
                .lock()
                .airflow
                .dags
                .iter()
                .any(|d| d.dag_id == "justtakeitfree_workflow" && d.is_paused)
        );
        assert_eq!(af.set_paused("no_such_dag", false).await.unwrap(), None);

        let details = af
            .dag_details("finnish_museums_workflow")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(details.catchup, Some(true));
        assert_eq!(details.start_date.as_deref(), Some("2015-11-01T00:00:00Z"));
        assert_eq!(af.dag_details("no_such_dag").await.unwrap(), None);

        let runs = af.dag_runs("europeana_workflow", 2).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert!(runs[0].start_date > runs[1].start_date, "newest first");
        assert_eq!(runs[1].state, "failed");

        assert!(af.import_errors().await.unwrap().is_empty());
        h.world.lock().airflow.import_errors.push(SimImportError {
            id: 1,
            filename: "/opt/airflow/catalog/dags/providers/new_workflow.py".into(),
            stack_trace: "Traceback (most recent call last):\n  File \"new_workflow.py\", line 3\nModuleNotFoundError: No module named 'requests_oauthlib'\n".into(),
            timestamp: "2023-07-03T18:00:00Z".into(),
        });
        let errors = af.import_errors().await.unwrap();
        assert_eq!(
            errors[0].summary,
            "ModuleNotFoundError: No module named 'requests_oauthlib'"
        );
    }
}

#[tokio::test]
async fn retries_on_429_and_500_then_success() {
    let h = sandbox(World::openverse()).await;
    let af = airflow(&h, AirflowApi::V2, PASSWORD);
    h.world.faults(Service::Airflow, |f| {
        f.force(Forced::status(500).on("/api/v2/dags/~/dagRuns"));
        f.force(Forced::too_many("0").on("/api/v2/dags/~/dagRuns"));
    });
    assert_eq!(af.active_runs().await.unwrap().len(), 2);
    assert_eq!(h.world.count(Service::Airflow, RUNS_V2), 3);

    h.world.faults(Service::Airflow, |f| {
        for _ in 0..3 {
            f.force(Forced::status(500).on("/api/v2/dags/~/dagRuns"));
        }
    });
    let e = af.active_runs().await.unwrap_err();
    assert_eq!(e.to_string(), "airflow: answered 500 three times");

    h.world.faults(Service::Airflow, |f| {
        f.force(Forced::too_many("600").on("/api/v2/dags/~/dagRuns"))
    });
    let e = af.active_runs().await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("airflow: answered 429 and asked to retry after "),
        "{e}"
    );
}

#[tokio::test]
async fn a_slow_airflow_times_out() {
    let h = sandbox(World::openverse()).await;
    h.world
        .faults(Service::Airflow, |f| f.latency = Duration::from_millis(700));
    let e = airflow(&h, AirflowApi::V2, PASSWORD)
        .active_runs()
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "airflow: timed out after 500 ms (3 attempts)"
    );
}

#[tokio::test]
async fn malformed_and_truncated_pages_are_named() {
    let h = sandbox(World::openverse()).await;
    let af = airflow(&h, AirflowApi::V2, PASSWORD);
    h.world.faults(Service::Airflow, |f| {
        f.force(
            Forced::status(200)
                .header("content-type", "application/json")
                .body("{\"dag_runs\": [{\"dag_id\": 7}], \"total_entries\": 1}")
                .on("/api/v2/dags/~/dagRuns"),
        )
    });
    let e = af.active_runs().await.unwrap_err();
    assert!(
        e.to_string().starts_with(
            "airflow: malformed JSON from /api/v2/dags/~/dagRuns: invalid type: integer `7`, expected"
        ),
        "{e}"
    );

    h.world.faults(Service::Airflow, |f| {
        f.force(Forced::garbage().on("/api/v2/dags/~/dagRuns"))
    });
    let e = af.active_runs().await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("airflow: malformed JSON from /api/v2/dags/~/dagRuns: expected value"),
        "{e}"
    );

    h.world.faults(Service::Airflow, |f| {
        f.force(Forced::truncated("{\"dag_runs\": [").on("/api/v2/dags/~/dagRuns"))
    });
    assert_eq!(af.active_runs().await.unwrap().len(), 2, "retried whole");
}

#[tokio::test]
async fn the_sandbox_config_reaches_all_three_fakes() {
    use catalog_chatops::integrations::{HttpPolicy, Integrations};
    let h = sandbox(World::openverse_idle()).await;
    let toml = include_str!("../../config/sandbox.toml");
    let mut config = catalog_chatops::config::load_from_str(toml, &[]).expect("sandbox config");
    h.configure(&mut config);
    config.secrets.github_token = None;
    config.secrets.registry_username = None;
    config.secrets.registry_password = None;
    config.secrets.airflow_password = Some(PASSWORD.to_string().into());
    let target = &config.targets["catalog"];
    let all = Integrations::from_config(&config, HttpPolicy::default()).unwrap();
    let release = all
        .github
        .release_by_tag(&target.repo, "v1.5.3")
        .await
        .unwrap();
    assert!(release.is_some());
    let image = all
        .registry
        .manifest(&target.image, "v1.5.3")
        .await
        .unwrap();
    assert!(image.is_some());
    assert!(all.airflow.active_runs().await.unwrap().is_empty());
}
