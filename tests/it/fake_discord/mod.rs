//! A fake Discord on loopback for the bot's tests: the REST routes serenity calls (every call
//! recorded: method, path, JSON body, multipart attachments) and a gateway websocket whose URL
//! `GET /gateway` hands out. The gateway speaks HELLO → IDENTIFY → READY → GUILD_CREATE, answers
//! heartbeats and RESUME, delivers the events a test injects, and can drop the connection.
//!
//! The objects it returns are shaped like Discord's (see `objects.rs`) and are checked against
//! serenity's own model types by `fake_objects_deserialise_as_serenity_models`.
#![allow(dead_code)]

pub mod objects;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub use objects::*;

/// The token the fake accepts.
pub const TOKEN: &str = "fake-bot-token.abc.def";

/// How long a test waits for the bot to do something before failing.
pub const WAIT: Duration = Duration::from_secs(60);

/// One REST call serenity made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Without the `/api/v10` prefix, e.g. `/channels/1100/messages`.
    pub path: String,
    /// The JSON body (for multipart: the `payload_json` part); `Null` when there was none.
    pub body: Value,
    /// Multipart attachments: (file name, content).
    pub files: Vec<(String, String)>,
}

impl Call {
    /// The message content this call carries, if any.
    pub fn content(&self) -> Option<&str> {
        self.body.get("content").and_then(Value::as_str)
    }
}

/// A gateway event the bot saw or did, for waiting on connection life-cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayLog {
    Connected,
    Identified,
    Resumed,
}

#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Call>>,
    gateway_log: Mutex<Vec<GatewayLog>>,
    /// Messages the fake created, by id, so edits and interactions can return them.
    messages: Mutex<HashMap<u64, Value>>,
    changed: Notify,
    next_id: AtomicU64,
    pending: Mutex<VecDeque<(String, Value)>>,
    pending_ready: Notify,
    drop_connection: Notify,
    /// A close code to answer IDENTIFY with (4014: the intent is not enabled).
    refuse_identify: Mutex<Option<u16>>,
    gateway_url: Mutex<String>,
    /// Set by [`FakeDiscord::fan_out`]: every ready session gets every dispatched event.
    fan_out: Mutex<Option<tokio::sync::broadcast::Sender<(String, Value)>>>,
}

pub struct FakeDiscord {
    pub api_url: String,
    pub gateway_url: String,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeDiscord {
    pub async fn start() -> FakeDiscord {
        let shared = Arc::new(Shared {
            next_id: AtomicU64::new(500_000),
            ..Shared::default()
        });
        let gw = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let gateway_url = format!("ws://{}", gw.local_addr().expect("addr"));
        *shared.gateway_url.lock().unwrap() = gateway_url.clone();
        let rest = TcpListener::bind("127.0.0.1:0").await.expect("bind rest");
        let api_url = format!("http://{}", rest.local_addr().expect("addr"));
        let app = Router::new().fallback(rest_call).with_state(shared.clone());
        let rest_task = tokio::spawn(async move {
            let _ = axum::serve(rest, app).await;
        });
        let gw_shared = shared.clone();
        let gw_task = tokio::spawn(async move {
            while let Ok((stream, _)) = gw.accept().await {
                let s = gw_shared.clone();
                tokio::spawn(async move { gateway_connection(stream, s).await });
            }
        });
        FakeDiscord {
            api_url,
            gateway_url,
            shared,
            tasks: vec![rest_task, gw_task],
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    pub fn gateway_log(&self) -> Vec<GatewayLog> {
        self.shared.gateway_log.lock().unwrap().clone()
    }

    /// A fresh snowflake.
    pub fn id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Delivers a dispatch event (`MESSAGE_CREATE`, `INTERACTION_CREATE`) on the current or the
    /// next gateway session.
    pub fn dispatch(&self, event: &str, data: Value) {
        if let Some(tx) = self.shared.fan_out.lock().unwrap().as_ref() {
            // No session yet means nobody receives it, as on Discord.
            let _ = tx.send((event.to_string(), data));
            return;
        }
        self.shared
            .pending
            .lock()
            .unwrap()
            .push_back((event.to_string(), data));
        self.shared.pending_ready.notify_one();
    }

    /// From now on every ready gateway session receives every dispatched event, as when two
    /// bot processes log in with one token (no sharding): Discord sends each session everything.
    /// Without it an event goes to one session only.
    pub fn fan_out(&self) {
        *self.shared.fan_out.lock().unwrap() = Some(tokio::sync::broadcast::channel(4096).0);
    }

    /// Closes the gateway connection with 4000 (unknown error: the client may resume).
    pub fn drop_connection(&self) {
        self.shared.drop_connection.notify_one();
    }

    /// Makes the gateway answer IDENTIFY by closing with `code`.
    pub fn refuse_identify(&self, code: u16) {
        *self.shared.refuse_identify.lock().unwrap() = Some(code);
    }

    /// The message the fake holds under `id` (as last created or edited).
    pub fn message(&self, id: u64) -> Value {
        self.shared.messages.lock().unwrap()[&id].clone()
    }

    /// The first message the fake created in `channel` (a thread's first message: the card).
    pub fn first_message_in(&self, channel: u64) -> Option<u64> {
        let want = channel.to_string();
        self.shared
            .messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| m["channel_id"] == want.as_str())
            .map(|(id, _)| *id)
            .min()
    }

    /// Waits until `f` finds something in the recorded calls; panics naming `what` after
    /// [`WAIT`].
    pub async fn wait_for<T>(&self, what: &str, f: impl Fn(&[Call]) -> Option<T>) -> T {
        self.wait_with(what, || f(&self.calls())).await
    }

    pub async fn wait_gateway(&self, what: &str, f: impl Fn(&[GatewayLog]) -> bool) {
        self.wait_with(what, || f(&self.gateway_log()).then_some(()))
            .await
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
                    "timed out waiting for {what}; calls so far:\n{:#?}",
                    self.calls()
                        .iter()
                        .map(|c| format!("{} {} {}", c.method, c.path, c.body))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

fn record_gateway(s: &Shared, e: GatewayLog) {
    s.gateway_log.lock().unwrap().push(e);
    s.changed.notify_waiters();
}

/// Splits a multipart body into (`payload_json`, files).
fn multipart(content_type: &str, body: &[u8]) -> (Value, Vec<(String, String)>) {
    let Some(boundary) = content_type.split("boundary=").nth(1) else {
        return (Value::Null, Vec::new());
    };
    let boundary = boundary.trim_matches('"');
    let text = String::from_utf8_lossy(body);
    let mut payload = Value::Null;
    let mut files = Vec::new();
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, content)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        let field = |key: &str| {
            head.split(&format!("{key}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_string)
        };
        if field("name").as_deref() == Some("payload_json") {
            payload = serde_json::from_str(content).unwrap_or(Value::Null);
        } else if let Some(file) = field("filename") {
            files.push((file, content.to_string()));
        }
    }
    (payload, files)
}

async fn rest_call(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path()
        .strip_prefix("/api/v10")
        .unwrap_or(uri.path())
        .to_string();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (body, files) = if content_type.starts_with("multipart/") {
        multipart(&content_type, &body)
    } else {
        (
            serde_json::from_slice(&body).unwrap_or(Value::Null),
            Vec::new(),
        )
    };
    let call = Call {
        method: method.to_string(),
        path: path.clone(),
        body: body.clone(),
        files,
    };
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bot {TOKEN}"));
    let response = if authorised {
        route(&s, &method, &path, &body)
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
        )
            .into_response()
    };
    s.calls.lock().unwrap().push(call);
    s.changed.notify_waiters();
    response
}

fn route(s: &Shared, method: &Method, path: &str, body: &Value) -> Response {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let new_id = || s.next_id.fetch_add(1, Ordering::SeqCst);
    let ok = |v: Value| axum::Json(v).into_response();
    let keep = |id: u64, m: Value| {
        s.messages.lock().unwrap().insert(id, m.clone());
        m
    };
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["users", "@me"]) => ok(bot_user()),
        ("GET", ["gateway"]) => ok(json!({ "url": *s.gateway_url.lock().unwrap() })),
        ("GET", ["gateway", "bot"]) => ok(json!({
            "url": *s.gateway_url.lock().unwrap(),
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        })),
        ("PUT", ["applications", _, "guilds", _, "commands"]) => ok(json!([])),
        ("GET", ["guilds", _, "roles"]) => ok(Value::Array(guild_roles())),
        ("POST", ["channels", c, "messages"]) => {
            let id = new_id();
            let m = message(id, c.parse().unwrap_or(0), bot_user(), body);
            ok(keep(id, m))
        }
        ("PATCH", ["channels", c, "messages", m]) => {
            let id: u64 = m.parse().unwrap_or(0);
            let mut msg = s
                .messages
                .lock()
                .unwrap()
                .get(&id)
                .cloned()
                .unwrap_or_else(|| message(id, c.parse().unwrap_or(0), bot_user(), &json!({})));
            for key in ["content", "components"] {
                if let Some(v) = body.get(key) {
                    msg[key] = v.clone();
                }
            }
            ok(keep(id, msg))
        }
        ("POST", ["channels", c, "messages", _, "threads"])
        | ("POST", ["channels", c, "threads"]) => {
            let name = body.get("name").and_then(Value::as_str).unwrap_or("thread");
            ok(thread(new_id(), c.parse().unwrap_or(0), name))
        }
        ("POST", ["interactions", _, _, "callback"]) => StatusCode::NO_CONTENT.into_response(),
        ("PATCH", ["webhooks", _, _, "messages", "@original"]) | ("POST", ["webhooks", _, _]) => {
            let id = new_id();
            ok(keep(id, message(id, CHANNEL_ID, bot_user(), body)))
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Unknown route in the fake", "code": 0})),
        )
            .into_response(),
    }
}

async fn gateway_connection(stream: tokio::net::TcpStream, s: Arc<Shared>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    record_gateway(&s, GatewayLog::Connected);
    let send = |v: Value| WsMessage::Text(v.to_string());
    if ws
        .send(send(json!({"op": 10, "d": {"heartbeat_interval": 41250}})))
        .await
        .is_err()
    {
        return;
    }
    let mut ready = false;
    // Sequence numbers are per session, as on Discord: a new session starts at 1 and a resumed
    // one continues from the last number the client saw.
    let mut seq: u64 = 0;
    // This session's subscription when events fan out to every session.
    let mut fanned: Option<tokio::sync::broadcast::Receiver<(String, Value)>> = None;
    loop {
        tokio::select! {
            incoming = ws.next() => {
                let Some(Ok(WsMessage::Text(text))) = incoming else {
                    match incoming {
                        Some(Ok(_)) => continue,
                        _ => return,
                    }
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                match v["op"].as_u64() {
                    Some(1) => {
                        let acked = ws.send(send(json!({"op": 11}))).await;
                        if acked.is_err() { return; }
                    }
                    Some(2) => {
                        // Subscribe before telling waiters, so an event dispatched once they
                        // see this session reaches it.
                        fanned = s.fan_out.lock().unwrap().as_ref().map(|tx| tx.subscribe());
                        record_gateway(&s, GatewayLog::Identified);
                        let refuse = *s.refuse_identify.lock().unwrap();
                        if let Some(code) = refuse {
                            let _ = ws.send(WsMessage::Close(Some(CloseFrame {
                                code: CloseCode::from(code),
                                reason: "Disallowed intent(s).".into(),
                            }))).await;
                            return;
                        }
                        let url = s.gateway_url.lock().unwrap().clone();
                        for (t, d) in [("READY", ready_event(&url)), ("GUILD_CREATE", guild())] {
                            seq += 1;
                            if ws.send(send(json!({"op": 0, "t": t, "s": seq, "d": d}))).await.is_err() {
                                return;
                            }
                        }
                        ready = true;
                        s.pending_ready.notify_one();
                    }
                    Some(6) => {
                        seq = v["d"]["seq"].as_u64().unwrap_or(0) + 1;
                        if ws.send(send(json!({"op": 0, "t": "RESUMED", "s": seq, "d": {}}))).await.is_err() {
                            return;
                        }
                        record_gateway(&s, GatewayLog::Resumed);
                        ready = true;
                        s.pending_ready.notify_one();
                    }
                    _ => {}
                }
            }
            _ = s.pending_ready.notified(), if ready => {
                loop {
                    let next = s.pending.lock().unwrap().pop_front();
                    let Some((t, d)) = next else { break };
                    seq += 1;
                    if ws.send(send(json!({"op": 0, "t": t, "s": seq, "d": d}))).await.is_err() {
                        // Not delivered: keep it for the next session.
                        s.pending.lock().unwrap().push_front((t, d));
                        return;
                    }
                }
            }
            Some((t, d)) = next_fanned(&mut fanned) => {
                seq += 1;
                if ws.send(send(json!({"op": 0, "t": t, "s": seq, "d": d}))).await.is_err() {
                    return;
                }
            }
            _ = s.drop_connection.notified() => {
                let _ = ws.send(WsMessage::Close(Some(CloseFrame {
                    code: CloseCode::from(4000),
                    reason: "fake: dropped".into(),
                }))).await;
                return;
            }
        }
    }
}

/// The next fanned-out event for a session, or never when the session does not subscribe.
async fn next_fanned(
    rx: &mut Option<tokio::sync::broadcast::Receiver<(String, Value)>>,
) -> Option<(String, Value)> {
    match rx {
        Some(rx) => rx.recv().await.ok(),
        None => std::future::pending().await,
    }
}
