//! The fake Airflow: Airflow 3's `/api/v2` (JWT from `POST /auth/token`) and, when asked,
//! Airflow 2's `/api/v1` (basic auth), each in its own JSON shape: version, health, DAGs (list,
//! details, pause), DAG runs across all DAGs with state filters, import errors. Pages are at most
//! 100 long whatever the client asks, like the real one. Run states follow the clock.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::faults::Faults;
use super::{Ctx, QueryPairs, basic_credentials, bearer, now_ms, query_value, random_token};
use crate::integrations::airflow::ApiVersion;
use crate::timefmt::rfc3339;

#[derive(Debug, Clone)]
pub struct AirflowWorld {
    /// Serve `/api/v1` (Airflow 2).
    pub serve_v1: bool,
    /// Serve `/api/v2` and `/auth/token` (Airflow 3).
    pub serve_v2: bool,
    pub version: String,
    pub username: String,
    pub password: String,
    /// Kept sorted by `dag_id`, as Airflow lists them.
    pub dags: Vec<SimDag>,
    pub runs: Vec<SimRun>,
    pub import_errors: Vec<SimImportError>,
    /// JWTs issued and still valid.
    pub tokens: HashSet<String>,
    /// Report the scheduler as unhealthy with a stale heartbeat.
    pub scheduler_down: bool,
    /// A DAG processor of its own (Airflow 3, or 2.x with `standalone_dag_processor`); without
    /// one Airflow 2 reports `"status": null` for it, as it does for a triggerer that never ran.
    pub dag_processor_separate: bool,
    pub triggerer_running: bool,
    /// The user may read but not change anything (Airflow 2's `Viewer` role): writes get 403.
    pub read_only: bool,
    /// Task instances by (dag id, run id); a run without an entry has one task that follows
    /// the run's state.
    pub tasks: HashMap<(String, String), Vec<SimTask>>,
    /// What one run's tasks become the moment its DAG is paused, once: `(dag id, run id,
    /// tasks)`. It plays the race the bot must catch, a sensor that succeeds and lets the next
    /// task start between the bot's check of the run and its pause.
    pub tasks_on_pause: Option<(String, String, Vec<SimTask>)>,
    pub faults: Faults,
}

/// One task instance of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTask {
    pub task_id: String,
    /// The operator's class name (`HttpSensor`, `PythonOperator`).
    pub operator: String,
    /// `None` until scheduled (`"state": null`).
    pub state: Option<String>,
}

impl SimTask {
    pub fn new(task_id: &str, operator: &str, state: Option<&str>) -> SimTask {
        SimTask {
            task_id: task_id.to_string(),
            operator: operator.to_string(),
            state: state.map(str::to_string),
        }
    }

    fn to_json(&self, run: &SimRun, api: ApiVersion) -> Value {
        let mut v = json!({
            "task_id": self.task_id,
            "dag_id": run.dag_id,
            "dag_run_id": run.run_id,
            "map_index": -1,
            "state": self.state,
            "operator": self.operator,
            "start_date": self.state.as_ref().map(|_| rfc3339(run.starts_at_ms)),
            "end_date": null,
            "try_number": if self.state.is_some() { 1 } else { 0 },
            "max_tries": 0,
            "pool": "default_pool",
            "queue": "default",
        });
        if api == ApiVersion::V2
            && let Some(o) = v.as_object_mut()
        {
            o.insert("operator_name".into(), json!(self.operator));
        }
        v
    }
}

impl Default for AirflowWorld {
    fn default() -> Self {
        AirflowWorld {
            serve_v1: false,
            serve_v2: true,
            version: "3.0.2".to_string(),
            username: "chatops".to_string(),
            password: "sandbox".to_string(),
            dags: Vec::new(),
            runs: Vec::new(),
            import_errors: Vec::new(),
            tokens: HashSet::new(),
            scheduler_down: false,
            dag_processor_separate: true,
            triggerer_running: true,
            read_only: false,
            tasks: HashMap::new(),
            tasks_on_pause: None,
            faults: Faults::default(),
        }
    }
}

impl AirflowWorld {
    /// Makes this an Airflow 2 (only `/api/v1`, basic auth).
    /// The DAG processor runs inside the scheduler, as in production's 2.9.3.
    pub fn as_airflow2(&mut self) {
        self.serve_v1 = true;
        self.serve_v2 = false;
        self.version = "2.9.3".to_string();
        self.dag_processor_separate = false;
    }

    /// Adds a run that was queued `queued_ago_ms` ago and never starts by itself (a paused
    /// DAG's run, or one held back by `max_active_runs`). Returns its run id.
    pub fn add_queued(&mut self, dag_id: &str, queued_ago_ms: i64) -> String {
        let queued = now_ms() - queued_ago_ms;
        let run_id = format!("manual__{}", rfc3339(queued).replace('Z', "+00:00"));
        self.runs.push(SimRun {
            dag_id: dag_id.to_string(),
            run_id: run_id.clone(),
            run_type: "manual".to_string(),
            logical_date: Some(rfc3339(queued)),
            queued_at_ms: queued,
            starts_at_ms: i64::MAX,
            ends_at_ms: None,
            final_state: "success".to_string(),
        });
        run_id
    }

    /// Sets the task instances of one run.
    pub fn set_tasks(&mut self, dag_id: &str, run_id: &str, tasks: Vec<SimTask>) {
        self.tasks
            .insert((dag_id.to_string(), run_id.to_string()), tasks);
    }

    /// An empty configured password accepts any (the interactive sandbox needs no secret).
    pub fn password_ok(&self, given: &str) -> bool {
        self.password.is_empty() || given == self.password
    }

    /// Expires every JWT: the next request with one gets `401`.
    pub fn expire_tokens(&mut self) {
        self.tokens.clear();
    }

    /// Adds a run that started `started_ago_ms` ago and runs for `runs_for_ms` more (`None`:
    /// until the world ends). Returns its run id.
    pub fn add_running(
        &mut self,
        dag_id: &str,
        started_ago_ms: i64,
        runs_for_ms: Option<i64>,
    ) -> String {
        let now = now_ms();
        let start = now - started_ago_ms;
        let run_id = format!("manual__{}", rfc3339(start).replace('Z', "+00:00"));
        self.runs.push(SimRun {
            dag_id: dag_id.to_string(),
            run_id: run_id.clone(),
            run_type: "manual".to_string(),
            logical_date: Some(rfc3339(start)),
            queued_at_ms: start - 2_000,
            starts_at_ms: start,
            ends_at_ms: runs_for_ms.map(|d| now + d),
            final_state: "success".to_string(),
        });
        run_id
    }

    pub fn add_dag(&mut self, dag: SimDag) {
        self.dags.retain(|d| d.dag_id != dag.dag_id);
        self.dags.push(dag);
        self.dags.sort_by(|a, b| a.dag_id.cmp(&b.dag_id));
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDag {
    pub dag_id: String,
    pub is_paused: bool,
    /// `@daily`, a cron expression, or `None` for DAGs only triggered by hand.
    pub schedule: Option<String>,
    pub catchup: bool,
    /// RFC 3339.
    pub start_date: Option<String>,
    pub tags: Vec<String>,
    pub fileloc: String,
}

/// A run whose state follows the clock: queued until `starts_at_ms`, running until
/// `ends_at_ms` (forever when `None`), then `final_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRun {
    pub dag_id: String,
    pub run_id: String,
    pub run_type: String,
    pub logical_date: Option<String>,
    pub queued_at_ms: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
    pub final_state: String,
}

impl SimRun {
    pub fn state(&self, now: i64) -> &str {
        if now < self.starts_at_ms {
            "queued"
        } else if self.ends_at_ms.is_none_or(|end| now < end) {
            "running"
        } else {
            &self.final_state
        }
    }

    fn to_json(&self, api: ApiVersion, now: i64) -> Value {
        let state = self.state(now);
        let start = (now >= self.starts_at_ms).then(|| rfc3339(self.starts_at_ms));
        let end = self.ends_at_ms.filter(|e| now >= *e).map(rfc3339);
        match api {
            ApiVersion::V2 => json!({
                "dag_run_id": self.run_id,
                "dag_id": self.dag_id,
                "logical_date": self.logical_date,
                "queued_at": rfc3339(self.queued_at_ms),
                "start_date": start,
                "end_date": end,
                "duration": null,
                "data_interval_start": self.logical_date,
                "data_interval_end": self.logical_date,
                "run_after": rfc3339(self.queued_at_ms),
                "last_scheduling_decision": null,
                "run_type": self.run_type,
                "state": state,
                "triggered_by": if self.run_type == "manual" { "rest_api" } else { "timetable" },
                "triggering_user_name": null,
                "conf": {},
                "note": null,
                "dag_versions": [],
                "bundle_version": null,
                "dag_display_name": self.dag_id,
            }),
            ApiVersion::V1 => json!({
                "dag_run_id": self.run_id,
                "dag_id": self.dag_id,
                "logical_date": self.logical_date,
                "execution_date": self.logical_date,
                "start_date": start,
                "end_date": end,
                "data_interval_start": self.logical_date,
                "data_interval_end": self.logical_date,
                "last_scheduling_decision": null,
                "run_type": self.run_type,
                "state": state,
                "external_trigger": self.run_type == "manual",
                "conf": {},
                "note": null,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimImportError {
    pub id: u64,
    pub filename: String,
    pub stack_trace: String,
    /// RFC 3339.
    pub timestamp: String,
}

fn description(schedule: Option<&str>) -> String {
    match schedule {
        None => "Never, external triggers only".to_string(),
        Some("@daily") => "At 00:00".to_string(),
        Some("@weekly") => "At 00:00, only on Sunday".to_string(),
        Some("@monthly") => "At 00:00, on day 1 of the month".to_string(),
        Some("@quarterly") => {
            "At 00:00, on day 1 of the month, only in January, April, July, and October".to_string()
        }
        Some(other) => other.to_string(),
    }
}

impl SimDag {
    fn to_json(&self, api: ApiVersion, details: bool) -> Value {
        let relative = self
            .fileloc
            .split_once("/dags/")
            .map_or(self.fileloc.as_str(), |(_, r)| r);
        let mut v = match api {
            ApiVersion::V2 => json!({
                "dag_id": self.dag_id,
                "dag_display_name": self.dag_id,
                "is_paused": self.is_paused,
                "is_stale": false,
                "last_parsed_time": rfc3339(now_ms() - 30_000),
                "last_expired": null,
                "bundle_name": "dags-folder",
                "bundle_version": null,
                "relative_fileloc": relative,
                "fileloc": self.fileloc,
                "description": null,
                "timetable_summary": self.schedule,
                "timetable_description": description(self.schedule.as_deref()),
                "tags": self.tags.iter().map(|t| json!({"name": t, "dag_id": self.dag_id})).collect::<Vec<_>>(),
                "max_active_tasks": 16,
                "max_active_runs": 1,
                "max_consecutive_failed_dag_runs": 0,
                "has_task_concurrency_limits": false,
                "has_import_errors": false,
                "next_dagrun_logical_date": null,
                "next_dagrun_data_interval_start": null,
                "next_dagrun_data_interval_end": null,
                "next_dagrun_run_after": null,
                "owners": ["data-eng-admin"],
                "file_token": format!("sbx.{}", self.dag_id),
            }),
            ApiVersion::V1 => json!({
                "dag_id": self.dag_id,
                "root_dag_id": null,
                "is_paused": self.is_paused,
                "is_active": true,
                "is_subdag": false,
                "last_parsed_time": rfc3339(now_ms() - 30_000),
                "fileloc": self.fileloc,
                "file_token": format!("sbx.{}", self.dag_id),
                "owners": ["data-eng-admin"],
                "description": null,
                "schedule_interval": self.schedule.as_ref().map(|s| json!({"__type": "CronExpression", "value": s})),
                "timetable_description": description(self.schedule.as_deref()),
                "tags": self.tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
                "max_active_tasks": 16,
                "max_active_runs": 1,
                "has_task_concurrency_limits": false,
                "has_import_errors": false,
                "next_dagrun": null,
            }),
        };
        if details && let Some(obj) = v.as_object_mut() {
            obj.insert("catchup".into(), json!(self.catchup));
            obj.insert("start_date".into(), json!(self.start_date));
            obj.insert("end_date".into(), Value::Null);
            obj.insert("timezone".into(), json!("UTC"));
        }
        v
    }
}

pub(super) fn routes() -> Router<Ctx> {
    Router::new()
        .nest("/api/v1", api_routes(ApiVersion::V1))
        .nest("/api/v2", api_routes(ApiVersion::V2))
        .route("/auth/token", post(login))
        .fallback(|| async { detail(404, "Not Found") })
}

fn api_routes(api: ApiVersion) -> Router<Ctx> {
    let health_path = match api {
        ApiVersion::V1 => "/health",
        ApiVersion::V2 => "/monitor/health",
    };
    Router::new()
        .route(
            "/version",
            get(move |s: State<Ctx>| async move { version(s, api) }),
        )
        .route(
            health_path,
            get(move |s: State<Ctx>| async move { health(s, api) }),
        )
        .route(
            "/dags",
            get(
                move |s: State<Ctx>, h: HeaderMap, q: QueryPairs| async move {
                    guarded(&s, &h, api, || list_dags(&s, api, &q))
                },
            ),
        )
        .route(
            "/dags/{dag_id}",
            get(
                move |s: State<Ctx>, h: HeaderMap, p: Path<String>| async move {
                    guarded(&s, &h, api, || get_dag(&s, api, &p, false))
                },
            )
            .patch(
                move |s: State<Ctx>, h: HeaderMap, p: Path<String>, body: Json<Value>| async move {
                    guarded(&s, &h, api, || patch_dag(&s, api, &p, &body))
                },
            ),
        )
        .route(
            "/dags/{dag_id}/details",
            get(
                move |s: State<Ctx>, h: HeaderMap, p: Path<String>| async move {
                    guarded(&s, &h, api, || get_dag(&s, api, &p, true))
                },
            ),
        )
        .route(
            "/dags/{dag_id}/dagRuns",
            get(
                move |s: State<Ctx>, h: HeaderMap, p: Path<String>, q: QueryPairs| async move {
                    guarded(&s, &h, api, || list_runs(&s, api, &p, &q))
                },
            ),
        )
        .route(
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
            get(
                move |s: State<Ctx>,
                      h: HeaderMap,
                      Path((dag, run)): Path<(String, String)>,
                      q: QueryPairs| async move {
                    guarded(&s, &h, api, || task_instances(&s, api, &dag, &run, &q))
                },
            ),
        )
        .route(
            "/importErrors",
            get(
                move |s: State<Ctx>, h: HeaderMap, q: QueryPairs| async move {
                    guarded(&s, &h, api, || import_errors(&s, api, &q))
                },
            ),
        )
}

fn detail(status: u16, text: &str) -> Response {
    super::json(status, json!({"detail": text}))
}

fn serves(ctx: &Ctx, api: ApiVersion) -> bool {
    let w = ctx.world.lock();
    match api {
        ApiVersion::V1 => w.airflow.serve_v1,
        ApiVersion::V2 => w.airflow.serve_v2,
    }
}

/// The API is served and the caller authenticated (basic auth on v1, a JWT on v2).
fn guarded(
    ctx: &Ctx,
    headers: &HeaderMap,
    api: ApiVersion,
    f: impl FnOnce() -> Response,
) -> Response {
    if !serves(ctx, api) {
        return detail(404, "Not Found");
    }
    let ok = {
        let w = ctx.world.lock();
        match api {
            ApiVersion::V1 => basic_credentials(headers)
                .is_some_and(|(u, p)| u == w.airflow.username && w.airflow.password_ok(&p)),
            ApiVersion::V2 => bearer(headers).is_some_and(|t| w.airflow.tokens.contains(&t)),
        }
    };
    if !ok {
        return match api {
            ApiVersion::V1 => super::json(
                401,
                json!({"detail": null, "status": 401, "title": "Unauthorized", "type": "https://airflow.apache.org/docs/apache-airflow/2.9.3/stable-rest-api-ref.html#section/Errors/Unauthenticated"}),
            ),
            ApiVersion::V2 => detail(401, "Not authenticated"),
        };
    }
    f()
}

async fn login(State(ctx): State<Ctx>, body: Option<Json<Value>>) -> Response {
    if !serves(&ctx, ApiVersion::V2) {
        return detail(404, "Not Found");
    }
    let field = |k: &str| {
        body.as_ref()
            .and_then(|b| b.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let (user, pass) = (field("username"), field("password"));
    let mut w = ctx.world.lock();
    if user.as_deref() != Some(w.airflow.username.as_str())
        || !w.airflow.password_ok(pass.as_deref().unwrap_or(""))
    {
        drop(w);
        return detail(401, "Invalid credentials");
    }
    let token = random_token("eyJzYW5kYm94In0.");
    w.airflow.tokens.insert(token.clone());
    drop(w);
    super::json(201, json!({"access_token": token}))
}

fn version(State(ctx): State<Ctx>, api: ApiVersion) -> Response {
    if !serves(&ctx, api) {
        return detail(404, "Not Found");
    }
    let v = ctx.world.lock().airflow.version.clone();
    super::json(200, json!({"version": v, "git_version": null}))
}

fn health(State(ctx): State<Ctx>, api: ApiVersion) -> Response {
    if !serves(&ctx, api) {
        return detail(404, "Not Found");
    }
    let (down, processor, triggerer) = {
        let w = ctx.world.lock();
        (
            w.airflow.scheduler_down,
            w.airflow.dag_processor_separate,
            w.airflow.triggerer_running,
        )
    };
    let now = now_ms();
    let beat = if down { now - 3_600_000 } else { now - 4_000 };
    let status = if down { "unhealthy" } else { "healthy" };
    // A component that does not run on its own: `null` status and heartbeat (Airflow 2.9.3).
    let part = |running: bool, key: &str, ago: i64| {
        if running {
            json!({"status": "healthy", key: rfc3339(now - ago)})
        } else {
            json!({"status": null, key: null})
        }
    };
    super::json(
        200,
        json!({
            "metadatabase": {"status": "healthy"},
            "scheduler": {"status": status, "latest_scheduler_heartbeat": rfc3339(beat)},
            "triggerer": part(triggerer, "latest_triggerer_heartbeat", 6_000),
            "dag_processor": part(processor, "latest_dag_processor_heartbeat", 8_000),
        }),
    )
}

/// `limit` (default 50, at most 100 or the injected cap) and `offset`.
fn page_bounds(ctx: &Ctx, q: &[(String, String)]) -> (usize, usize) {
    let cap = ctx
        .world
        .lock()
        .airflow
        .faults
        .page_cap
        .unwrap_or(100)
        .min(100);
    let limit = query_value(q, "limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(50)
        .min(cap);
    let offset = query_value(q, "offset")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    (limit, offset)
}

fn list_dags(ctx: &Ctx, api: ApiVersion, q: &[(String, String)]) -> Response {
    let (limit, offset) = page_bounds(ctx, q);
    let paused = query_value(q, "paused").map(|v| v == "true");
    let w = ctx.world.lock();
    let matching: Vec<&SimDag> = w
        .airflow
        .dags
        .iter()
        .filter(|d| paused.is_none_or(|p| d.is_paused == p))
        .collect();
    let total = matching.len();
    let dags: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|d| d.to_json(api, false))
        .collect();
    drop(w);
    super::json(200, json!({"dags": dags, "total_entries": total}))
}

fn get_dag(ctx: &Ctx, api: ApiVersion, dag_id: &str, details: bool) -> Response {
    let w = ctx.world.lock();
    match w.airflow.dags.iter().find(|d| d.dag_id == dag_id) {
        Some(d) => super::json(200, d.to_json(api, details)),
        None => {
            drop(w);
            detail(404, &format!("Dag with id {dag_id} was not found"))
        }
    }
}

fn patch_dag(ctx: &Ctx, api: ApiVersion, dag_id: &str, body: &Value) -> Response {
    let Some(paused) = body.get("is_paused").and_then(|v| v.as_bool()) else {
        return detail(422, "is_paused is required");
    };
    if ctx.world.lock().airflow.read_only {
        // The permission check comes before the DAG lookup, as in Airflow 2.9.3.
        return match api {
            ApiVersion::V1 => super::json(
                403,
                json!({"detail": null, "status": 403, "title": "Forbidden", "type": "https://airflow.apache.org/docs/apache-airflow/2.9.3/stable-rest-api-ref.html#section/Errors/PermissionDenied"}),
            ),
            ApiVersion::V2 => detail(403, "Forbidden"),
        };
    }
    let mut w = ctx.world.lock();
    match w.airflow.dags.iter_mut().find(|d| d.dag_id == dag_id) {
        Some(d) => {
            d.is_paused = paused;
            let answer = super::json(200, d.to_json(api, false));
            if paused
                && let Some((dag, run, tasks)) = w
                    .airflow
                    .tasks_on_pause
                    .take_if(|(dag, _, _)| dag == dag_id)
            {
                w.airflow.set_tasks(&dag, &run, tasks);
            }
            answer
        }
        None => {
            drop(w);
            detail(404, &format!("Dag with id {dag_id} was not found"))
        }
    }
}

fn list_runs(ctx: &Ctx, api: ApiVersion, dag_id: &str, q: &[(String, String)]) -> Response {
    let (limit, offset) = page_bounds(ctx, q);
    let states: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "state")
        .map(|(_, v)| v.as_str())
        .collect();
    let order = query_value(q, "order_by");
    let ended_since = query_value(q, "end_date_gte").and_then(crate::timefmt::parse_rfc3339_ms);
    let now = now_ms();
    let w = ctx.world.lock();
    if dag_id != "~" && !w.airflow.dags.iter().any(|d| d.dag_id == dag_id) {
        drop(w);
        return detail(404, &format!("Dag with id {dag_id} was not found"));
    }
    let mut matching: Vec<&SimRun> = w
        .airflow
        .runs
        .iter()
        .filter(|r| dag_id == "~" || r.dag_id == dag_id)
        .filter(|r| states.is_empty() || states.contains(&r.state(now)))
        .filter(|r| match ended_since {
            Some(since) => r.ends_at_ms.is_some_and(|end| end <= now && end >= since),
            None => true,
        })
        .collect();
    match order {
        Some("-start_date") => matching.sort_by_key(|r| std::cmp::Reverse(r.starts_at_ms)),
        Some("-end_date") => matching.sort_by_key(|r| std::cmp::Reverse(r.ends_at_ms)),
        _ => {}
    }
    let total = matching.len();
    let runs: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|r| r.to_json(api, now))
        .collect();
    drop(w);
    super::json(200, json!({"dag_runs": runs, "total_entries": total}))
}

fn task_instances(
    ctx: &Ctx,
    api: ApiVersion,
    dag_id: &str,
    run_id: &str,
    q: &[(String, String)],
) -> Response {
    let (limit, offset) = page_bounds(ctx, q);
    let now = now_ms();
    let w = ctx.world.lock();
    let Some(run) = w
        .airflow
        .runs
        .iter()
        .find(|r| r.dag_id == dag_id && r.run_id == run_id)
    else {
        drop(w);
        return detail(
            404,
            &format!("The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"),
        );
    };
    let tasks = match w
        .airflow
        .tasks
        .get(&(dag_id.to_string(), run_id.to_string()))
    {
        Some(t) => t.clone(),
        None => {
            let state = match run.state(now) {
                "queued" => None,
                s => Some(s),
            };
            vec![SimTask::new("main", "PythonOperator", state)]
        }
    };
    let total = tasks.len();
    let items: Vec<Value> = tasks
        .iter()
        .skip(offset)
        .take(limit)
        .map(|t| t.to_json(run, api))
        .collect();
    drop(w);
    super::json(
        200,
        json!({"task_instances": items, "total_entries": total}),
    )
}

fn import_errors(ctx: &Ctx, api: ApiVersion, q: &[(String, String)]) -> Response {
    let (limit, offset) = page_bounds(ctx, q);
    let w = ctx.world.lock();
    let errors: Vec<Value> = w
        .airflow
        .import_errors
        .iter()
        .skip(offset)
        .take(limit)
        .map(|e| {
            let mut v = json!({
                "import_error_id": e.id,
                "timestamp": e.timestamp,
                "filename": e.filename,
                "stack_trace": e.stack_trace,
            });
            if api == ApiVersion::V2
                && let Some(o) = v.as_object_mut()
            {
                o.insert("bundle_name".into(), json!("dags-folder"));
            }
            v
        })
        .collect();
    let total = w.airflow.import_errors.len();
    drop(w);
    super::json(
        200,
        json!({"import_errors": errors, "total_entries": total}),
    )
}
