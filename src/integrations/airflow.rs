//! Airflow's REST API: active DAG runs (the deploy blocker), DAGs and their paused flag, import
//! errors, health and version — for Airflow 2 (`/api/v1`, basic auth) and Airflow 3 (`/api/v2`,
//! a JWT from `POST /auth/token`, logged in again once when a token is refused).
//!
//! Lists are read in pages of at most 100 (Airflow silently cuts larger limits) and the offset
//! advances by what actually came back, so a server with a smaller cap is still read completely.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell};

use super::http::{Raw, encode_segment, parse_json, path_only, reqwest_client, send, unexpected};
use super::{HttpPolicy, Service, UpstreamError};
use crate::backfill::Backfill;
use crate::config::{AirflowApi, Config};

const SERVICE: Service = Service::Airflow;
/// Airflow's largest page.
pub const PAGE_LIMIT: usize = 100;
/// A guard against a server whose `total_entries` never comes within reach.
const MAX_PAGES: usize = 2_000;

/// The API a server speaks, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ApiVersion {
    /// Airflow 2: `/api/v1`.
    V1,
    /// Airflow 3: `/api/v2`.
    V2,
}

impl ApiVersion {
    fn prefix(self) -> &'static str {
        match self {
            ApiVersion::V1 => "/api/v1",
            ApiVersion::V2 => "/api/v2",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AirflowVersion {
    pub version: String,
    #[serde(default)]
    pub git_version: Option<String>,
}

/// One component of `health()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    /// `healthy`, `unhealthy`, or none when the server does not say.
    pub status: Option<String>,
    /// RFC 3339; the metadatabase has none.
    pub latest_heartbeat: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub metadatabase: Component,
    pub scheduler: Component,
    pub triggerer: Option<Component>,
    pub dag_processor: Option<Component>,
}

/// A DAG run in either API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DagRun {
    pub dag_id: String,
    pub run_id: String,
    /// `queued`, `running`, `success`, `failed`.
    pub state: String,
    /// v2 `logical_date`, v1 `logical_date` or the older `execution_date`; manual runs in
    /// Airflow 3 may have none.
    pub logical_date: Option<String>,
    pub queued_at: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub run_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dag {
    pub dag_id: String,
    pub is_paused: bool,
    /// `@daily`, a cron expression, `every 1 day`… or none for unscheduled DAGs.
    pub schedule: Option<String>,
    /// Only when the server includes it (lists usually do not; see [`AirflowClient::dag_details`]).
    pub catchup: Option<bool>,
    pub tags: Vec<String>,
    pub fileloc: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DagDetails {
    pub dag_id: String,
    pub is_paused: bool,
    pub schedule: Option<String>,
    pub catchup: Option<bool>,
    pub start_date: Option<String>,
}

impl DagDetails {
    /// The catchup backfill unpausing this DAG would start, if any: `catchup` on, a start date
    /// in the past and a schedule that can be counted.
    pub fn catchup_backfill(&self, now: i64) -> Option<Backfill> {
        if self.catchup != Some(true) {
            return None;
        }
        let start = crate::timefmt::parse_rfc3339_ms(self.start_date.as_deref()?)?;
        crate::backfill::estimate(self.schedule.as_deref()?, start, now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportError {
    pub filename: String,
    /// The line that says what went wrong: the stack trace's first line, or its last when the
    /// first is only `Traceback (most recent call last):`.
    pub summary: String,
    pub timestamp: Option<String>,
}

/// One task instance of a run, in either API's shape (only what the deploy gate reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskInstance {
    pub task_id: String,
    /// `-1` for a task that is not mapped.
    pub map_index: i64,
    /// `None` while the scheduler has not looked at it yet (`"state": null`).
    pub state: Option<String>,
    /// The operator's class name (`PythonSensor`, `BashOperator`); v3 also sends a display
    /// name (`operator_name`), which is kept when it differs.
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    pub start_date: Option<String>,
}

impl TaskInstance {
    /// `copy_data` or `copy_data[3]` for a mapped instance.
    pub fn label(&self) -> String {
        if self.map_index >= 0 {
            format!("{}[{}]", self.task_id, self.map_index)
        } else {
            self.task_id.clone()
        }
    }
}

/// What [`AirflowClient::set_paused_reporting`] did to one DAG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PauseChange {
    /// The flag changed to what was asked.
    Changed,
    /// It already was what was asked; nothing was sent.
    Unchanged,
    /// Airflow does not know the DAG.
    NotFound,
    /// Airflow accepted the request but still reports the old flag.
    Ignored,
    /// Airflow refused the request (401, 403, another 4xx): the flag is as it was.
    Refused { error: String },
    /// The request failed without a definite answer (timeout, 5xx, garbage): the flag may or
    /// may not have changed; the sentence says why.
    Failed { error: String },
}

impl PauseChange {
    /// Airflow's answer to the PATCH that set `is_paused` to `paused`.
    fn of(answer: Result<Option<Dag>, UpstreamError>, paused: bool) -> PauseChange {
        match answer {
            Ok(None) => PauseChange::NotFound,
            Ok(Some(d)) if d.is_paused == paused => PauseChange::Changed,
            Ok(Some(_)) => PauseChange::Ignored,
            // Only a 4xx is a definite "no"; an unexpected 5xx (501, 505) or 3xx says nothing
            // about whether the flag changed, so it stays `Failed` and the end unpauses to be safe.
            Err(e @ UpstreamError::Auth { .. }) => PauseChange::Refused {
                error: e.to_string(),
            },
            Err(e @ UpstreamError::Unexpected { status, .. }) if (400..500).contains(&status) => {
                PauseChange::Refused {
                    error: e.to_string(),
                }
            }
            Err(e) => PauseChange::Failed {
                error: e.to_string(),
            },
        }
    }
}

#[derive(Clone)]
pub struct AirflowClient {
    http: reqwest::Client,
    base: String,
    configured: AirflowApi,
    username: String,
    password: Option<SecretString>,
    policy: HttpPolicy,
    detected: Arc<OnceCell<ApiVersion>>,
    /// The Airflow 3 JWT; held across a login so concurrent callers log in once.
    jwt: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for AirflowClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AirflowClient")
            .field("base", &self.base)
            .field("api", &self.configured)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn auth_error(detail: impl Into<String>) -> UpstreamError {
    UpstreamError::Auth {
        service: SERVICE,
        detail: detail.into(),
    }
}

/// Which credentials a request carries.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Basic,
    Bearer(&'a str),
}

impl AirflowClient {
    pub fn new(
        url: &str,
        api: AirflowApi,
        username: &str,
        password: Option<SecretString>,
        policy: HttpPolicy,
    ) -> Result<AirflowClient, UpstreamError> {
        let base = url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|_| UpstreamError::Invalid {
            service: SERVICE,
            detail: format!("url {url:?} is not a valid URL"),
        })?;
        Ok(AirflowClient {
            http: reqwest_client(SERVICE, &policy)?,
            base,
            configured: api,
            username: username.to_string(),
            password,
            policy,
            detected: Arc::default(),
            jwt: Arc::default(),
        })
    }

    pub fn from_config(
        config: &Config,
        policy: HttpPolicy,
    ) -> Result<AirflowClient, UpstreamError> {
        AirflowClient::new(
            &config.airflow.url,
            config.airflow.api,
            &config.airflow.username,
            config.secrets.airflow_password.clone(),
            policy,
        )
    }

    /// The API in use: as configured, or detected once (`/api/v2/version`, then `/api/v1/version`).
    pub async fn api(&self) -> Result<ApiVersion, UpstreamError> {
        match self.configured {
            AirflowApi::V1 => Ok(ApiVersion::V1),
            AirflowApi::V2 => Ok(ApiVersion::V2),
            AirflowApi::Auto => self
                .detected
                .get_or_try_init(|| self.detect())
                .await
                .copied(),
        }
    }

    async fn detect(&self) -> Result<ApiVersion, UpstreamError> {
        let mut seen = Vec::new();
        for api in [ApiVersion::V2, ApiVersion::V1] {
            let path = format!("{}/version", api.prefix());
            let raw = self.send_once(Method::GET, &path, None, Auth::None).await?;
            if raw.status == StatusCode::OK {
                return Ok(api);
            }
            seen.push(raw.status.as_u16().to_string());
        }
        Err(UpstreamError::Invalid {
            service: SERVICE,
            detail: format!(
                "neither /api/v2/version nor /api/v1/version answered ({}) — check airflow.url",
                seen.join(", ")
            ),
        })
    }

    /// Version and health need no credentials.
    pub async fn version(&self) -> Result<AirflowVersion, UpstreamError> {
        let path = format!("{}/version", self.api().await?.prefix());
        let raw = self.send_once(Method::GET, &path, None, Auth::None).await?;
        expect_ok(&raw, &path)?;
        parse_json(SERVICE, &path, &raw.body)
    }

    /// Metadatabase, scheduler, triggerer and DAG processor with their latest heartbeats.
    pub async fn health(&self) -> Result<Health, UpstreamError> {
        #[derive(Deserialize)]
        struct RawComponent {
            status: Option<String>,
            latest_scheduler_heartbeat: Option<String>,
            latest_triggerer_heartbeat: Option<String>,
            latest_dag_processor_heartbeat: Option<String>,
        }
        impl From<RawComponent> for Component {
            fn from(c: RawComponent) -> Self {
                Component {
                    status: c.status,
                    latest_heartbeat: c
                        .latest_scheduler_heartbeat
                        .or(c.latest_triggerer_heartbeat)
                        .or(c.latest_dag_processor_heartbeat),
                }
            }
        }
        #[derive(Deserialize)]
        struct RawHealth {
            metadatabase: RawComponent,
            scheduler: RawComponent,
            triggerer: Option<RawComponent>,
            dag_processor: Option<RawComponent>,
        }
        let path = match self.api().await? {
            ApiVersion::V1 => "/api/v1/health",
            ApiVersion::V2 => "/api/v2/monitor/health",
        };
        let raw = self.send_once(Method::GET, path, None, Auth::None).await?;
        expect_ok(&raw, path)?;
        let h: RawHealth = parse_json(SERVICE, path, &raw.body)?;
        Ok(Health {
            metadatabase: h.metadatabase.into(),
            scheduler: h.scheduler.into(),
            triggerer: h.triggerer.map(Into::into),
            dag_processor: h.dag_processor.map(Into::into),
        })
    }

    /// Every running or queued run across all DAGs, all pages read.
    pub async fn active_runs(&self) -> Result<Vec<DagRun>, UpstreamError> {
        let path = format!(
            "{}/dags/~/dagRuns?state=running&state=queued",
            self.api().await?.prefix()
        );
        let runs: Vec<RawRun> = self.collect(&path, usize::MAX).await?;
        let mut out: Vec<DagRun> = runs.into_iter().map(DagRun::from).collect();
        // Offset pages can overlap when runs start or finish between two requests.
        let mut seen = std::collections::HashSet::new();
        out.retain(|r| seen.insert((r.dag_id.clone(), r.run_id.clone())));
        Ok(out)
    }

    /// Runs across all DAGs in `state` that ended at or after `since` (RFC 3339), at most `max`,
    /// and how many there are in all.
    pub async fn runs_ended_since(
        &self,
        state: &str,
        since: &str,
        max: usize,
    ) -> Result<(Vec<DagRun>, usize), UpstreamError> {
        let path = format!(
            "{}/dags/~/dagRuns?state={}&end_date_gte={}&order_by=-end_date",
            self.api().await?.prefix(),
            encode_segment(state),
            encode_segment(since)
        );
        let (runs, total) = self.collect_counted::<RawRun>(&path, max).await?;
        Ok((runs.into_iter().map(DagRun::from).collect(), total))
    }

    /// The most recent runs of one DAG, newest first, at most `limit`.
    pub async fn dag_runs(&self, dag_id: &str, limit: usize) -> Result<Vec<DagRun>, UpstreamError> {
        let path = format!(
            "{}/dags/{}/dagRuns?order_by=-start_date",
            self.api().await?.prefix(),
            encode_segment(dag_id)
        );
        let runs: Vec<RawRun> = self.collect(&path, limit).await?;
        Ok(runs.into_iter().map(DagRun::from).collect())
    }

    /// Every DAG the server knows, all pages read.
    pub async fn list_dags(&self) -> Result<Vec<Dag>, UpstreamError> {
        let path = format!("{}/dags", self.api().await?.prefix());
        let dags: Vec<RawDag> = self.collect(&path, usize::MAX).await?;
        Ok(dags.into_iter().map(Dag::from).collect())
    }

    /// One DAG's details (catchup, start date); `None` when Airflow does not know it.
    pub async fn dag_details(&self, dag_id: &str) -> Result<Option<DagDetails>, UpstreamError> {
        let path = format!(
            "{}/dags/{}/details",
            self.api().await?.prefix(),
            encode_segment(dag_id)
        );
        let raw = self.authed(Method::GET, &path, None).await?;
        if raw.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        expect_ok(&raw, &path)?;
        let d: RawDag = parse_json(SERVICE, &path, &raw.body)?;
        Ok(Some(DagDetails {
            start_date: d.start_date.clone(),
            catchup: d.catchup,
            ..Dag::from(d).into()
        }))
    }

    /// Pauses or unpauses a DAG; the DAG as Airflow now has it, or `None` when it does not exist.
    pub async fn set_paused(
        &self,
        dag_id: &str,
        paused: bool,
    ) -> Result<Option<Dag>, UpstreamError> {
        let path = format!(
            "{}/dags/{}?update_mask=is_paused",
            self.api().await?.prefix(),
            encode_segment(dag_id)
        );
        let body = serde_json::json!({ "is_paused": paused });
        let raw = self.authed(Method::PATCH, &path, Some(&body)).await?;
        if raw.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        expect_ok(&raw, &path)?;
        let d: RawDag = parse_json(SERVICE, &path, &raw.body)?;
        Ok(Some(d.into()))
    }

    /// Every task instance of one run, all pages read (mapped tasks give one per index).
    pub async fn task_instances(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Vec<TaskInstance>, UpstreamError> {
        let path = format!(
            "{}/dags/{}/dagRuns/{}/taskInstances",
            self.api().await?.prefix(),
            encode_segment(dag_id),
            encode_segment(run_id)
        );
        let tasks: Vec<RawTaskInstance> = self.collect(&path, usize::MAX).await?;
        Ok(tasks.into_iter().map(TaskInstance::from).collect())
    }

    /// The ids of every paused DAG (`?paused=true`, all pages read). A queued run carries no
    /// paused flag of its own, so this is how the gate tells a run that will start from one
    /// that never will.
    pub async fn paused_dag_ids(&self) -> Result<HashSet<String>, UpstreamError> {
        let path = format!("{}/dags?paused=true", self.api().await?.prefix());
        let dags: Vec<RawDag> = self.collect(&path, usize::MAX).await?;
        // A server that ignores the filter still sends each DAG's flag.
        Ok(dags
            .into_iter()
            .filter(|d| d.is_paused == Some(true))
            .map(|d| d.dag_id)
            .collect())
    }

    /// Sets a DAG's paused flag and says what happened, never failing: the caller reports each
    /// DAG's outcome (pausing for a deploy must say what it did even when Airflow is down).
    /// A DAG that already has the flag is left alone, so "unchanged" really means untouched.
    pub async fn set_paused_reporting(&self, dag_id: &str, paused: bool) -> PauseChange {
        match self.dag_details(dag_id).await {
            Ok(None) => return PauseChange::NotFound,
            Ok(Some(d)) if d.is_paused == paused => return PauseChange::Unchanged,
            Ok(Some(_)) => {}
            Err(e) => {
                return PauseChange::Failed {
                    error: e.to_string(),
                };
            }
        }
        PauseChange::of(self.set_paused(dag_id, paused).await, paused)
    }

    /// Files Airflow failed to import, all pages read.
    pub async fn import_errors(&self) -> Result<Vec<ImportError>, UpstreamError> {
        #[derive(Deserialize)]
        struct RawImportError {
            filename: String,
            #[serde(default)]
            stack_trace: String,
            timestamp: Option<String>,
        }
        let path = format!("{}/importErrors", self.api().await?.prefix());
        let errors: Vec<RawImportError> = self.collect(&path, usize::MAX).await?;
        Ok(errors
            .into_iter()
            .map(|e| ImportError {
                summary: summary_line(&e.stack_trace),
                filename: e.filename,
                timestamp: e.timestamp,
            })
            .collect())
    }

    /// Reads `path` page by page (`limit`/`offset`) until `total_entries` or `max` items.
    async fn collect<T: DeserializeOwned>(
        &self,
        path: &str,
        max: usize,
    ) -> Result<Vec<T>, UpstreamError> {
        Ok(self.collect_counted(path, max).await?.0)
    }

    /// Like `collect`, with the server's `total_entries` of the last page.
    async fn collect_counted<T: DeserializeOwned>(
        &self,
        path: &str,
        max: usize,
    ) -> Result<(Vec<T>, usize), UpstreamError> {
        #[derive(Deserialize)]
        struct Page<T> {
            #[serde(
                alias = "dag_runs",
                alias = "dags",
                alias = "import_errors",
                alias = "task_instances"
            )]
            items: Vec<T>,
            total_entries: usize,
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut total = 0;
        for _ in 0..MAX_PAGES {
            let limit = PAGE_LIMIT.min(max - out.len());
            let page_path = format!("{path}{sep}limit={limit}&offset={}", out.len());
            let raw = self.authed(Method::GET, &page_path, None).await?;
            expect_ok(&raw, &page_path)?;
            let page: Page<T> = parse_json(SERVICE, &page_path, &raw.body)?;
            let got = page.items.len();
            total = page.total_entries;
            out.extend(page.items);
            if got == 0 || out.len() >= page.total_entries || out.len() >= max {
                break;
            }
        }
        out.truncate(max);
        let total = total.max(out.len());
        Ok((out, total))
    }

    /// A request with the API's credentials; on Airflow 3 a refused token means one new login.
    async fn authed(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Raw, UpstreamError> {
        match self.api().await? {
            ApiVersion::V1 => {
                let raw = self.send_once(method, path, body, Auth::Basic).await?;
                match raw.status {
                    StatusCode::UNAUTHORIZED => Err(auth_error(self.v1_unauthorized(path))),
                    StatusCode::FORBIDDEN => Err(auth_error(self.v1_forbidden(path))),
                    _ => Ok(raw),
                }
            }
            ApiVersion::V2 => {
                let (token, fresh) = self.token(None).await?;
                let raw = self
                    .send_once(method.clone(), path, body, Auth::Bearer(&token))
                    .await?;
                let refused =
                    matches!(raw.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
                if !refused {
                    return Ok(raw);
                }
                let raw = if fresh {
                    raw
                } else {
                    // The token may have expired: log in again, once.
                    let (token, _) = self.token(Some(&token)).await?;
                    self.send_once(method, path, body, Auth::Bearer(&token))
                        .await?
                };
                match raw.status {
                    StatusCode::UNAUTHORIZED => Err(auth_error(
                        "401 right after logging in — check AIRFLOW_PASSWORD",
                    )),
                    StatusCode::FORBIDDEN => Err(self.forbidden(path)),
                    _ => Ok(raw),
                }
            }
        }
    }

    /// Airflow 2 answers the same bare 401 when its API takes no passwords at all (the default
    /// `auth_backends` is `session`, browsers only), when the user does not exist and when the
    /// password is wrong: the body cannot tell them apart, so the sentence names every cause
    /// and its fix.
    fn v1_unauthorized(&self, path: &str) -> String {
        let password = if self.password.is_some() {
            "the password in AIRFLOW_PASSWORD is wrong"
        } else {
            "AIRFLOW_PASSWORD is not set"
        };
        format!(
            "401 for user {user} on {path} — Airflow 2 refuses the same way for two causes: (1) \
             its REST API does not accept passwords: set \
             `AIRFLOW__API__AUTH_BACKENDS=airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session` \
             on the webserver (the default takes browser sessions only) and restart it; (2) the \
             user {user} does not exist or {password}: create it with `airflow users create \
             --username {user} --role Op --password … --firstname … --lastname … --email …` and \
             give the bot that password in AIRFLOW_PASSWORD",
            user = self.username,
            path = path_only(path),
        )
    }

    /// Authenticated, not allowed: the user exists and the basic-auth backend took the
    /// password, but the user's role lacks the permission.
    fn v1_forbidden(&self, path: &str) -> String {
        format!(
            "403 for user {user} on {path} — the password was accepted (the \
             `AIRFLOW__API__AUTH_BACKENDS=airflow.api.auth.backend.basic_auth,…` backend works) \
             but the user's role may not do this: give {user} a role that can read and edit \
             DAGs (Op or Admin: `airflow users add-role -u {user} -r Op`, or create a user with \
             `airflow users create --username {user} --role Op …`)",
            user = self.username,
            path = path_only(path),
        )
    }

    fn forbidden(&self, path: &str) -> UpstreamError {
        auth_error(format!(
            "403 for {} — user {} lacks the permission",
            path_only(path),
            self.username
        ))
    }

    /// The current JWT, logging in when there is none or when it is `refused`. The bool says
    /// whether it was just issued.
    async fn token(&self, refused: Option<&str>) -> Result<(String, bool), UpstreamError> {
        let mut slot = self.jwt.lock().await;
        match (slot.as_deref(), refused) {
            (Some(t), None) => return Ok((t.to_string(), false)),
            // Someone else already replaced the refused token.
            (Some(t), Some(r)) if t != r => return Ok((t.to_string(), false)),
            _ => {}
        }
        *slot = None;
        let token = self.login().await?;
        *slot = Some(token.clone());
        Ok((token, true))
    }

    async fn login(&self) -> Result<String, UpstreamError> {
        #[derive(Deserialize)]
        struct LoginAnswer {
            access_token: String,
        }
        let path = "/auth/token";
        let body = serde_json::json!({
            "username": self.username,
            "password": self.password.as_ref().map_or("", |p| p.expose_secret()),
        });
        let raw = self
            .send_once(Method::POST, path, Some(&body), Auth::None)
            .await?;
        match raw.status {
            StatusCode::OK | StatusCode::CREATED => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(auth_error(format!(
                    "login refused ({}) for user {} — {}",
                    raw.status.as_u16(),
                    self.username,
                    if self.password.is_some() {
                        "check AIRFLOW_PASSWORD"
                    } else {
                        "AIRFLOW_PASSWORD is not set"
                    }
                )));
            }
            _ => return Err(unexpected(SERVICE, &raw, path)),
        }
        let answer: LoginAnswer = parse_json(SERVICE, path, &raw.body)?;
        Ok(answer.access_token)
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        auth: Auth<'_>,
    ) -> Result<Raw, UpstreamError> {
        let url = format!("{}{}", self.base, path);
        self.policy
            .run(SERVICE, path_only(path), || {
                let mut rb = self
                    .http
                    .request(method.clone(), &url)
                    .header(reqwest::header::ACCEPT, "application/json");
                if let Some(b) = body {
                    rb = rb.json(b);
                }
                rb = match auth {
                    Auth::None => rb,
                    Auth::Basic => rb.basic_auth(
                        &self.username,
                        self.password.as_ref().map(|p| p.expose_secret()),
                    ),
                    Auth::Bearer(t) => rb.bearer_auth(t),
                };
                send(rb)
            })
            .await
    }
}

fn expect_ok(raw: &Raw, path: &str) -> Result<(), UpstreamError> {
    if raw.status.is_success() {
        Ok(())
    } else {
        Err(unexpected(SERVICE, raw, path))
    }
}

fn summary_line(trace: &str) -> String {
    let mut lines = trace.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    if first.starts_with("Traceback") {
        trace
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or(first)
            .to_string()
    } else {
        first.to_string()
    }
}

/// A run as either API sends it.
#[derive(Deserialize)]
struct RawRun {
    dag_id: String,
    #[serde(alias = "run_id")]
    dag_run_id: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    logical_date: Option<String>,
    /// Airflow 2 before 2.2, and kept beside `logical_date` for compatibility later.
    #[serde(default)]
    execution_date: Option<String>,
    #[serde(default)]
    queued_at: Option<String>,
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
    #[serde(default)]
    run_type: Option<String>,
}

impl From<RawRun> for DagRun {
    fn from(r: RawRun) -> Self {
        DagRun {
            dag_id: r.dag_id,
            run_id: r.dag_run_id,
            state: r.state.unwrap_or_else(|| "unknown".to_string()),
            logical_date: r.logical_date.or(r.execution_date),
            queued_at: r.queued_at,
            start_date: r.start_date,
            end_date: r.end_date,
            run_type: r.run_type,
        }
    }
}

/// A page of `…/taskInstances` as either API sends it (for replaying recorded answers).
pub fn parse_task_instances(body: &str) -> Result<Vec<TaskInstance>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Page {
        task_instances: Vec<RawTaskInstance>,
    }
    let page: Page = serde_json::from_str(body)?;
    Ok(page
        .task_instances
        .into_iter()
        .map(TaskInstance::from)
        .collect())
}

/// A task instance as either API sends it.
#[derive(Deserialize)]
struct RawTaskInstance {
    task_id: String,
    #[serde(default)]
    map_index: Option<i64>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    operator: Option<String>,
    /// Airflow 3 only.
    #[serde(default)]
    operator_name: Option<String>,
    #[serde(default)]
    start_date: Option<String>,
}

impl From<RawTaskInstance> for TaskInstance {
    fn from(t: RawTaskInstance) -> Self {
        // Airflow 2 sends `"state": null` for a task not yet scheduled; some versions say "none".
        let state = t.state.filter(|s| !s.is_empty() && s != "none");
        let operator_name = t.operator_name.filter(|n| Some(n) != t.operator.as_ref());
        TaskInstance {
            task_id: t.task_id,
            map_index: t.map_index.unwrap_or(-1),
            state,
            operator: t.operator,
            operator_name,
            start_date: t.start_date,
        }
    }
}

/// A DAG (list entry or details) as either API sends it.
#[derive(Deserialize)]
struct RawDag {
    dag_id: String,
    #[serde(default)]
    is_paused: Option<bool>,
    /// Airflow 3.
    #[serde(default)]
    timetable_summary: Option<String>,
    /// Airflow 2: `{"__type": "CronExpression", "value": "@daily"}`, a `TimeDelta`, or null.
    #[serde(default)]
    schedule_interval: Option<serde_json::Value>,
    #[serde(default)]
    timetable_description: Option<String>,
    #[serde(default)]
    catchup: Option<bool>,
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    tags: Option<Vec<RawTag>>,
    #[serde(default)]
    fileloc: Option<String>,
}

#[derive(Deserialize)]
struct RawTag {
    name: String,
}

impl RawDag {
    fn schedule(&self) -> Option<String> {
        if let Some(s) = self.timetable_summary.as_deref().filter(|s| *s != "None") {
            return Some(s.to_string());
        }
        if let Some(v) = &self.schedule_interval {
            match v.get("__type").and_then(|t| t.as_str()) {
                Some("CronExpression") => {
                    if let Some(s) = v.get("value").and_then(|x| x.as_str()) {
                        return Some(s.to_string());
                    }
                }
                Some("TimeDelta") => {
                    let n = |k: &str| v.get(k).and_then(|x| x.as_i64()).unwrap_or(0);
                    let secs = n("days") * 86_400 + n("seconds");
                    return Some(format!(
                        "every {}",
                        crate::timefmt::duration(secs.saturating_mul(1000))
                    ));
                }
                _ => {}
            }
        }
        self.timetable_description
            .clone()
            .filter(|d| !d.is_empty() && d != "Never, external triggers only")
    }
}

impl From<RawDag> for Dag {
    fn from(d: RawDag) -> Self {
        Dag {
            schedule: d.schedule(),
            dag_id: d.dag_id,
            is_paused: d.is_paused.unwrap_or(false),
            catchup: d.catchup,
            tags: d
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.name)
                .collect(),
            fileloc: d.fileloc,
        }
    }
}

impl From<Dag> for DagDetails {
    fn from(d: Dag) -> Self {
        DagDetails {
            dag_id: d.dag_id,
            is_paused: d.is_paused,
            schedule: d.schedule,
            catchup: d.catchup,
            start_date: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal is only a definite "no" (401/403, another 4xx); anything that leaves the flag
    /// unknown (a 5xx Airflow did not mean to retry, a timeout) is `Failed`, which the deploy's
    /// end unpauses to be safe.
    #[test]
    fn a_pause_answer_is_refused_only_when_airflow_said_no() {
        let dag = |is_paused| Dag {
            dag_id: "image_data_refresh".into(),
            is_paused,
            schedule: None,
            catchup: None,
            tags: Vec::new(),
            fileloc: None,
        };
        let unexpected = |status| UpstreamError::Unexpected {
            service: Service::Airflow,
            status,
            path: "/api/v1/dags/image_data_refresh".into(),
        };
        assert_eq!(
            PauseChange::of(Ok(Some(dag(true))), true),
            PauseChange::Changed
        );
        assert_eq!(
            PauseChange::of(Ok(Some(dag(false))), true),
            PauseChange::Ignored
        );
        assert_eq!(PauseChange::of(Ok(None), true), PauseChange::NotFound);
        let auth = UpstreamError::Auth {
            service: Service::Airflow,
            detail: "403 Forbidden".into(),
        };
        for e in [auth, unexpected(400), unexpected(422)] {
            assert!(
                matches!(PauseChange::of(Err(e), true), PauseChange::Refused { .. }),
                "refused"
            );
        }
        let timeout = UpstreamError::Timeout {
            service: Service::Airflow,
            after: std::time::Duration::from_secs(5),
            attempts: 3,
        };
        for e in [unexpected(501), unexpected(302), timeout] {
            assert!(
                matches!(PauseChange::of(Err(e), true), PauseChange::Failed { .. }),
                "not known"
            );
        }
    }

    #[test]
    fn only_a_dag_with_catchup_and_a_past_start_date_has_a_backfill() {
        let dag = |catchup: Option<bool>, start: Option<&str>| DagDetails {
            dag_id: "d".into(),
            is_paused: true,
            schedule: Some("@daily".into()),
            catchup,
            start_date: start.map(str::to_string),
        };
        let now = crate::timefmt::parse_rfc3339_ms("2025-11-01T12:00:00Z").expect("timestamp");
        let b = dag(Some(true), Some("2015-11-01T00:00:00+00:00"))
            .catchup_backfill(now)
            .expect("a backfill");
        assert_eq!((b.runs, b.since.as_str()), (3653, "2015-11-01"));
        assert_eq!(
            dag(Some(false), Some("2015-11-01T00:00:00Z")).catchup_backfill(now),
            None
        );
        assert_eq!(
            dag(None, Some("2015-11-01T00:00:00Z")).catchup_backfill(now),
            None
        );
        assert_eq!(dag(Some(true), None).catchup_backfill(now), None);
        assert_eq!(
            dag(Some(true), Some("yesterday")).catchup_backfill(now),
            None
        );
    }

    #[test]
    fn both_run_shapes_map() {
        let v1: RawRun = serde_json::from_str(
            r#"{"dag_id":"a","dag_run_id":"r1","state":"running","execution_date":"2023-01-01T00:00:00+00:00","start_date":null}"#,
        )
        .unwrap();
        let r = DagRun::from(v1);
        assert_eq!(r.run_id, "r1");
        assert_eq!(r.logical_date.as_deref(), Some("2023-01-01T00:00:00+00:00"));
        let v2: RawRun = serde_json::from_str(
            r#"{"dag_id":"a","dag_run_id":"r2","state":"queued","logical_date":null,"queued_at":"2025-01-01T00:00:00Z","run_after":"2025-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let r = DagRun::from(v2);
        assert_eq!((r.state.as_str(), r.logical_date), ("queued", None));
    }

    #[test]
    fn schedules_of_both_shapes() {
        let d: RawDag = serde_json::from_str(
            r#"{"dag_id":"a","schedule_interval":{"__type":"CronExpression","value":"@daily"}}"#,
        )
        .unwrap();
        assert_eq!(d.schedule().as_deref(), Some("@daily"));
        let d: RawDag = serde_json::from_str(
            r#"{"dag_id":"a","schedule_interval":{"__type":"TimeDelta","days":1,"seconds":0,"microseconds":0}}"#,
        )
        .unwrap();
        assert_eq!(d.schedule().as_deref(), Some("every 24h 00m"));
        let d: RawDag =
            serde_json::from_str(r#"{"dag_id":"a","timetable_summary":"0 0 2 * *"}"#).unwrap();
        assert_eq!(d.schedule().as_deref(), Some("0 0 2 * *"));
        let d: RawDag = serde_json::from_str(r#"{"dag_id":"a","timetable_summary":null}"#).unwrap();
        assert_eq!(d.schedule(), None);
    }

    #[test]
    fn import_error_summaries() {
        assert_eq!(
            summary_line("Traceback (most recent call last):\n  File \"x.py\"\nImportError: no\n"),
            "ImportError: no"
        );
        assert_eq!(summary_line("SyntaxError: bad\nmore"), "SyntaxError: bad");
    }
}
