//! A fake Slack on loopback for the bot's tests: the Web API methods the bot calls (every call
//! recorded: method, which token, parameters from a JSON or form body, uploaded bytes) and the
//! Socket Mode websocket whose single-use URL `apps.connections.open` hands out. The socket says
//! `hello`, delivers the envelopes a test injects to the newest connection, records every
//! acknowledgement, and can ask for a refresh (`disconnect`) or drop the connection.
//!
//! It is as strict as Slack where the bot could go wrong: tokens of the right kind, `chat.update`
//! of a message that exists, at most 40,000 characters of text, 50 blocks and 3,000 characters a
//! section, an upload completed with the length announced, and 429 with `Retry-After` on demand.
#![allow(dead_code)]

pub mod objects;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub use objects::*;

/// How long a test waits for the bot to do something before failing.
pub const WAIT: Duration = Duration::from_secs(60);

/// One HTTP call the bot made.
#[derive(Debug, Clone)]
pub struct Call {
    /// The Web API method (`chat.postMessage`), or `upload` for the bytes sent to an upload URL.
    pub method: String,
    /// `app`, `bot`, `none` or `wrong`.
    pub token: &'static str,
    /// The parameters: the JSON body, or the form fields as strings.
    pub params: Value,
    /// For `upload`: the bytes sent, as text.
    pub body: String,
    /// What the fake answered (200, or 429 when it was told to).
    pub status: u16,
    /// The JSON answered (`{"ok": true, "ts": …}` or `{"ok": false, "error": …}`).
    pub response: Value,
    /// Its place among every call and socket event, for "this happened before that".
    pub seq: u64,
}

impl Call {
    /// Answered `"ok": true`.
    pub fn ok(&self) -> bool {
        self.response["ok"] == true
    }
    /// The `ts` Slack gave the message this call posted.
    pub fn ts(&self) -> Option<&str> {
        self.response.get("ts").and_then(Value::as_str)
    }
    /// The blocks this call carries (`[]` when none).
    pub fn blocks(&self) -> Vec<Value> {
        self.params
            .get("blocks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
    /// The action ids of the buttons this call carries.
    pub fn buttons(&self) -> Vec<String> {
        self.blocks()
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["action_id"].as_str().map(str::to_string))
            .collect()
    }
    /// The text of the first section block (a card's or an announcement's text).
    pub fn section(&self) -> Option<String> {
        self.blocks()
            .iter()
            .find(|b| b["type"] == "section")
            .and_then(|b| b["text"]["text"].as_str().map(str::to_string))
    }
    pub fn text(&self) -> Option<&str> {
        self.params.get("text").and_then(Value::as_str)
    }
    pub fn channel(&self) -> Option<&str> {
        self.params.get("channel").and_then(Value::as_str)
    }
    pub fn thread_ts(&self) -> Option<&str> {
        self.params.get("thread_ts").and_then(Value::as_str)
    }
}

/// What happened on the Socket Mode side, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketLog {
    /// Connection `n` opened (its URL came from the n-th `apps.connections.open`).
    Opened(u64),
    Hello(u64),
    Delivered {
        conn: u64,
        envelope: String,
    },
    Acked {
        conn: u64,
        envelope: String,
    },
    /// The fake sent `disconnect` (`refresh_requested`) on `n`.
    AskedToRefresh(u64),
    /// The bot closed `n`.
    ClosedByBot(u64),
    /// The fake dropped `n` without a word.
    Dropped(u64),
}

#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Call>>,
    /// Each event with its place in the common order of calls and socket events.
    socket_log: Mutex<Vec<(u64, SocketLog)>>,
    clock: AtomicU64,
    changed: Notify,
    /// ts → the message as the fake holds it (`channel`, `ts`, `text`, `blocks`, `thread_ts`).
    messages: Mutex<HashMap<String, Value>>,
    next_ts: AtomicU64,
    next_ticket: AtomicU64,
    /// Tickets handed out and not yet used.
    tickets: Mutex<HashSet<u64>>,
    /// The newest connection that said hello: envelopes go there.
    live: Mutex<Option<u64>>,
    pending: Mutex<VecDeque<Value>>,
    wake: Notify,
    /// Asked of the live connection and kept until one takes it: a `Notify` alone loses a
    /// request made while no connection task is waiting (just after hello, or between two
    /// frames), and the test then waits for a refresh that never comes.
    refresh_asked: AtomicBool,
    drop_asked: AtomicBool,
    refresh: Notify,
    drop_socket: Notify,
    /// method → Retry-After seconds of the 429s still to answer.
    rate_limits: Mutex<HashMap<String, VecDeque<u64>>>,
    names: Mutex<HashMap<String, String>>,
    /// file id → announced length, and the bytes once uploaded.
    uploads: Mutex<HashMap<String, (usize, Option<String>)>>,
    next_file: AtomicU64,
    api_base: Mutex<String>,
    ws_base: Mutex<String>,
}

pub struct FakeSlack {
    /// `[slack] api_url`.
    pub api_url: String,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let shared = Arc::new(Shared {
            next_ts: AtomicU64::new(100),
            next_ticket: AtomicU64::new(1),
            next_file: AtomicU64::new(1),
            ..Shared::default()
        });
        for p in PEOPLE {
            shared
                .names
                .lock()
                .unwrap()
                .insert(p.id.to_string(), p.name.to_string());
        }
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
        let base = format!("http://{}", http.local_addr().expect("addr"));
        *shared.api_base.lock().unwrap() = base.clone();
        let ws = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
        *shared.ws_base.lock().unwrap() = format!("ws://{}", ws.local_addr().expect("addr"));
        let app = Router::new().fallback(http_call).with_state(shared.clone());
        let http_task = tokio::spawn(async move {
            let _ = axum::serve(http, app).await;
        });
        let ws_shared = shared.clone();
        let ws_task = tokio::spawn(async move {
            while let Ok((stream, _)) = ws.accept().await {
                let s = ws_shared.clone();
                tokio::spawn(async move { socket_connection(stream, s).await });
            }
        });
        FakeSlack {
            api_url: format!("{base}/api"),
            shared,
            tasks: vec![http_task, ws_task],
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Successful calls of `method`.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        of(&self.calls(), method)
    }

    pub fn socket_log(&self) -> Vec<SocketLog> {
        self.shared
            .socket_log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// When (in the order of [`Call::seq`]) `envelope` was acknowledged.
    pub fn acked_at(&self, envelope: &str) -> Option<u64> {
        self.shared
            .socket_log
            .lock()
            .unwrap()
            .iter()
            .find_map(|(seq, e)| {
                matches!(e, SocketLog::Acked { envelope: x, .. } if x == envelope).then_some(*seq)
            })
    }

    /// Delivers an envelope on the newest connection (now, or as soon as one says hello).
    pub fn deliver(&self, envelope: Value) {
        self.shared.pending.lock().unwrap().push_back(envelope);
        self.shared.wake.notify_waiters();
    }

    /// Sends `disconnect` (`refresh_requested`) on the newest connection and keeps it open, as
    /// Slack does before it closes a connection.
    pub fn refresh(&self) {
        self.shared.refresh_asked.store(true, Ordering::SeqCst);
        self.shared.refresh.notify_waiters();
    }

    /// Drops the newest connection without a close frame.
    pub fn drop_socket(&self) {
        self.shared.drop_asked.store(true, Ordering::SeqCst);
        self.shared.drop_socket.notify_waiters();
    }

    /// The next `times` calls of `method` are answered 429 with `Retry-After: secs`.
    pub fn rate_limit(&self, method: &str, times: usize, secs: u64) {
        self.shared
            .rate_limits
            .lock()
            .unwrap()
            .entry(method.to_string())
            .or_default()
            .extend(std::iter::repeat_n(secs, times));
    }

    /// Renames a person (what `users.info` answers from now on).
    pub fn rename(&self, p: Person, name: &str) {
        self.shared
            .names
            .lock()
            .unwrap()
            .insert(p.id.to_string(), name.to_string());
    }

    /// The message the fake holds under `ts`, as last posted or updated.
    pub fn message(&self, ts: &str) -> Value {
        self.shared.messages.lock().unwrap()[ts].clone()
    }

    /// A ts for a message a person types (distinct from the bot's).
    pub fn user_ts(&self) -> String {
        format!(
            "1700000500.{:06}",
            self.shared.next_ts.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// Waits until `f` finds something in the recorded calls; panics naming `what` after
    /// [`WAIT`].
    pub async fn wait_for<T>(&self, what: &str, f: impl Fn(&[Call]) -> Option<T>) -> T {
        self.wait_with(what, || f(&self.calls())).await
    }

    pub async fn wait_socket<T>(&self, what: &str, f: impl Fn(&[SocketLog]) -> Option<T>) -> T {
        self.wait_with(what, || f(&self.socket_log())).await
    }

    async fn wait_with<T>(&self, what: &str, f: impl Fn() -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = f() {
                return v;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "timed out waiting for {what}; calls so far:\n{:#?}\nsocket: {:?}",
                    self.calls()
                        .iter()
                        .map(|c| format!("{} {} {}", c.status, c.method, c.params))
                        .collect::<Vec<_>>(),
                    self.socket_log()
                );
            }
        }
    }
}

/// The successful calls of `method` among `calls`.
pub fn of(calls: &[Call], method: &str) -> Vec<Call> {
    calls
        .iter()
        .filter(|c| c.method == method && c.ok())
        .cloned()
        .collect()
}

fn log(s: &Shared, e: SocketLog) {
    let seq = s.clock.fetch_add(1, Ordering::SeqCst);
    s.socket_log.lock().unwrap().push((seq, e));
    s.changed.notify_waiters();
}

/// `a=1&b=x+y` as a JSON object of strings.
fn form(body: &[u8]) -> Value {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if bytes[i] == b'%'
                && let Some(b) = hex
            {
                out.push(b);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let mut m = serde_json::Map::new();
    for pair in String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        m.insert(decode(k), Value::String(decode(v)));
    }
    Value::Object(m)
}

fn slack_error(error: &str) -> Value {
    json!({ "ok": false, "error": error })
}

async fn http_call(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if let Some(file) = path.strip_prefix("/upload/v1/") {
        let text = String::from_utf8_lossy(&body).into_owned();
        let known = {
            let mut uploads = s.uploads.lock().unwrap();
            match uploads.get_mut(file) {
                Some(u) => {
                    u.1 = Some(text.clone());
                    true
                }
                None => false,
            }
        };
        let token = if headers.contains_key("authorization") {
            "bot"
        } else {
            "none"
        };
        s.calls.lock().unwrap().push(Call {
            method: "upload".into(),
            token,
            params: json!({ "file": file }),
            body: text,
            status: if known { 200 } else { 404 },
            response: json!({ "ok": known }),
            seq: s.clock.fetch_add(1, Ordering::SeqCst),
        });
        s.changed.notify_waiters();
        return if known {
            (StatusCode::OK, format!("OK - {}", body.len())).into_response()
        } else {
            StatusCode::NOT_FOUND.into_response()
        };
    }
    let Some(method) = path.strip_prefix("/api/").map(str::to_string) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let params = if is_json {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        form(&body)
    };
    let token = match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => "none",
        Some(v) if v == format!("Bearer {APP_TOKEN}") => "app",
        Some(v) if v == format!("Bearer {BOT_TOKEN}") => "bot",
        Some(_) => "wrong",
    };
    let limited = s
        .rate_limits
        .lock()
        .unwrap()
        .get_mut(&method)
        .and_then(VecDeque::pop_front);
    let mut call = Call {
        method: method.clone(),
        token,
        params: params.clone(),
        body: String::new(),
        status: 200,
        response: Value::Null,
        // Taken on arrival, before the answer: the order in which the bot asked.
        seq: s.clock.fetch_add(1, Ordering::SeqCst),
    };
    let response = if let Some(secs) = limited {
        call.status = 429;
        call.response = json!({ "ok": false, "error": "ratelimited" });
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            axum::Json(call.response.clone()),
        )
            .into_response()
    } else {
        let needs = if method == "apps.connections.open" {
            "app"
        } else {
            "bot"
        };
        call.response = match token {
            "none" => slack_error("not_authed"),
            t if t == needs => web_api(&s, &method, &params),
            "app" | "bot" => slack_error("not_allowed_token_type"),
            _ => slack_error("invalid_auth"),
        };
        axum::Json(call.response.clone()).into_response()
    };
    s.calls.lock().unwrap().push(call);
    s.changed.notify_waiters();
    response
}

fn str_param<'p>(params: &'p Value, key: &str) -> Option<&'p str> {
    params.get(key).and_then(Value::as_str)
}

/// What Slack would refuse in a message: too long a text, too many blocks, too long a section.
fn message_problem(params: &Value) -> Option<&'static str> {
    if str_param(params, "text").is_some_and(|t| t.chars().count() > 40_000) {
        return Some("msg_too_long");
    }
    if let Some(blocks) = params.get("blocks") {
        let Some(blocks) = blocks.as_array() else {
            return Some("invalid_blocks_format");
        };
        if blocks.len() > 50 {
            return Some("invalid_blocks");
        }
        for b in blocks {
            let text = b["text"]["text"].as_str().unwrap_or("");
            if b["type"] == "section" && text.chars().count() > 3000 {
                return Some("invalid_blocks");
            }
            if b["type"] == "actions"
                && b["elements"]
                    .as_array()
                    .is_none_or(|e| e.is_empty() || e.len() > 25)
            {
                return Some("invalid_blocks");
            }
        }
    } else if str_param(params, "text").is_none_or(str::is_empty) {
        return Some("no_text");
    }
    None
}

fn web_api(s: &Shared, method: &str, params: &Value) -> Value {
    let ok = |v: Value| {
        let mut v = v;
        v["ok"] = json!(true);
        v
    };
    match method {
        "apps.connections.open" => {
            let ticket = s.next_ticket.fetch_add(1, Ordering::SeqCst);
            s.tickets.lock().unwrap().insert(ticket);
            let url = format!(
                "{}/link/?ticket={ticket}&app_id={APP_ID}",
                s.ws_base.lock().unwrap()
            );
            ok(json!({ "url": url }))
        }
        "auth.test" => ok(json!({
            "url": "https://openverse.slack.com/", "team": "Openverse", "user": "catalog-bot",
            "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID,
            "is_enterprise_install": false
        })),
        "chat.postMessage" => {
            let Some(channel) = str_param(params, "channel") else {
                return slack_error("channel_not_found");
            };
            if let Some(problem) = message_problem(params) {
                return slack_error(problem);
            }
            let ts = format!("1700000000.{:06}", s.next_ts.fetch_add(1, Ordering::SeqCst));
            let mut m = json!({
                "type": "message", "user": BOT_USER, "bot_id": BOT_ID, "app_id": APP_ID,
                "team": TEAM_ID, "channel": channel, "ts": ts,
                "text": params.get("text").cloned().unwrap_or(json!("")),
                "blocks": params.get("blocks").cloned().unwrap_or(json!([])),
            });
            if let Some(t) = params.get("thread_ts") {
                m["thread_ts"] = t.clone();
            }
            s.messages.lock().unwrap().insert(ts.clone(), m.clone());
            ok(json!({ "channel": channel, "ts": ts, "message": m }))
        }
        "chat.update" => {
            let (Some(channel), Some(ts)) = (str_param(params, "channel"), str_param(params, "ts"))
            else {
                return slack_error("invalid_arguments");
            };
            if let Some(problem) = message_problem(params) {
                return slack_error(problem);
            }
            let mut messages = s.messages.lock().unwrap();
            let Some(m) = messages.get_mut(ts).filter(|m| m["channel"] == channel) else {
                return slack_error("message_not_found");
            };
            for key in ["text", "blocks"] {
                if let Some(v) = params.get(key) {
                    m[key] = v.clone();
                }
            }
            let m = m.clone();
            ok(json!({ "channel": channel, "ts": ts, "text": m["text"], "message": m }))
        }
        "chat.postEphemeral" => {
            if str_param(params, "user").is_none() || str_param(params, "channel").is_none() {
                return slack_error("invalid_arguments");
            }
            if let Some(problem) = message_problem(params) {
                return slack_error(problem);
            }
            let ts = format!("1700000000.{:06}", s.next_ts.fetch_add(1, Ordering::SeqCst));
            ok(json!({ "message_ts": ts }))
        }
        "users.info" => {
            let Some(id) = str_param(params, "user") else {
                return slack_error("user_not_found");
            };
            match s.names.lock().unwrap().get(id) {
                Some(name) => ok(json!({ "user": user(id, name) })),
                None => slack_error("user_not_found"),
            }
        }
        "usergroups.list" => ok(json!({ "usergroups": [usergroup()] })),
        "usergroups.users.list" => match str_param(params, "usergroup") {
            Some(GROUP_ID) => {
                let members: Vec<&str> = PEOPLE
                    .iter()
                    .filter(|p| p.maintainer)
                    .map(|p| p.id)
                    .collect();
                ok(json!({ "users": members }))
            }
            _ => slack_error("no_such_subteam"),
        },
        "files.getUploadURLExternal" => {
            let (Some(_name), Some(length)) = (
                str_param(params, "filename"),
                str_param(params, "length").and_then(|l| l.parse::<usize>().ok()),
            ) else {
                return slack_error("invalid_arguments");
            };
            let id = format!("F{:08}", s.next_file.fetch_add(1, Ordering::SeqCst));
            s.uploads.lock().unwrap().insert(id.clone(), (length, None));
            let url = format!("{}/upload/v1/{id}", s.api_base.lock().unwrap());
            ok(json!({ "upload_url": url, "file_id": id }))
        }
        "files.completeUploadExternal" => {
            let Some(files) = params.get("files").and_then(Value::as_array) else {
                return slack_error("invalid_arguments");
            };
            let uploads = s.uploads.lock().unwrap();
            for f in files {
                let id = f["id"].as_str().unwrap_or_default();
                match uploads.get(id) {
                    Some((length, Some(bytes))) if bytes.len() == *length => {}
                    Some(_) => return slack_error("file_upload_size_mismatch"),
                    None => return slack_error("file_not_found"),
                }
            }
            ok(json!({ "files": files }))
        }
        _ => slack_error("unknown_method"),
    }
}

async fn socket_connection(stream: tokio::net::TcpStream, s: Arc<Shared>) {
    // The URL's ticket says which `apps.connections.open` it came from; one use only.
    let ticket = Arc::new(Mutex::new(None::<u64>));
    let seen = ticket.clone();
    use tokio_tungstenite::tungstenite::handshake::server::{
        ErrorResponse, Request, Response as WsResponse,
    };
    // The signature is tungstenite's handshake callback.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
        let t = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("ticket=")))
            .and_then(|t| t.parse::<u64>().ok());
        *seen.lock().unwrap() = t;
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let Some(conn) = *ticket.lock().unwrap() else {
        return;
    };
    if !s.tickets.lock().unwrap().remove(&conn) {
        // A used or unknown ticket: Slack refuses it.
        let _ = ws.close(None).await;
        return;
    }
    log(&s, SocketLog::Opened(conn));
    let hello = json!({
        "type": "hello", "num_connections": 1,
        "debug_info": { "host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060 },
        "connection_info": { "app_id": APP_ID }
    });
    if ws.send(WsMessage::Text(hello.to_string())).await.is_err() {
        return;
    }
    *s.live.lock().unwrap() = Some(conn);
    log(&s, SocketLog::Hello(conn));
    s.wake.notify_waiters();
    loop {
        let wake = s.wake.notified();
        let refresh = s.refresh.notified();
        let dropped = s.drop_socket.notified();
        tokio::pin!(wake, refresh, dropped);
        wake.as_mut().enable();
        refresh.as_mut().enable();
        dropped.as_mut().enable();
        // Deliver what is pending while this is the live connection.
        if *s.live.lock().unwrap() == Some(conn) {
            loop {
                let next = s.pending.lock().unwrap().pop_front();
                let Some(e) = next else { break };
                let id = e["envelope_id"].as_str().unwrap_or_default().to_string();
                if ws.send(WsMessage::Text(e.to_string())).await.is_err() {
                    s.pending.lock().unwrap().push_front(e);
                    return;
                }
                log(&s, SocketLog::Delivered { conn, envelope: id });
            }
        }
        let live = *s.live.lock().unwrap() == Some(conn);
        // The requests are checked after the wake-ups are enabled, so none falls in between.
        if live && s.refresh_asked.swap(false, Ordering::SeqCst) {
            let d = json!({
                "type": "disconnect", "reason": "refresh_requested",
                "debug_info": { "host": "applink-fake" }
            });
            // Logged first: the bot may act on it before this send returns.
            log(&s, SocketLog::AskedToRefresh(conn));
            if ws.send(WsMessage::Text(d.to_string())).await.is_err() {
                return;
            }
            continue;
        }
        if live && s.drop_asked.swap(false, Ordering::SeqCst) {
            log(&s, SocketLog::Dropped(conn));
            *s.live.lock().unwrap() = None;
            // Dropping the stream ends the TCP connection without a close frame.
            return;
        }
        tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if let Some(id) = v["envelope_id"].as_str() {
                        log(&s, SocketLog::Acked { conn, envelope: id.to_string() });
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                    log(&s, SocketLog::ClosedByBot(conn));
                    let mut l = s.live.lock().unwrap();
                    if *l == Some(conn) {
                        *l = None;
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
            _ = &mut wake => {}
            // Taken at the top of the loop.
            _ = &mut refresh, if live => {}
            _ = &mut dropped, if live => {}
        }
    }
}
