//! Socket Mode: Slack's events reach the bot over a websocket the bot opens itself (no public
//! URL). `apps.connections.open` (app token) gives a single-use `wss://` URL; Slack says `hello`,
//! then sends envelopes (`events_api`, `slash_commands`, `interactive`), each to be acknowledged
//! with `{"envelope_id": …}` within 3 s or it is delivered again (`retry_attempt`).
//!
//! Every envelope is acknowledged as soon as it is read, before any work: the work (a whole
//! preflight and plan) runs in its own task, so a slow command never delays an ack, and a
//! redelivered envelope is caught by the claim in the store, not here.
//!
//! Slack refreshes connections: a `disconnect` envelope (`refresh_requested`, `warning`) says
//! this socket will close soon. A new connection is opened first and the old one closed only
//! once the new one said `hello`, so nothing falls in a gap. A socket that drops or goes silent
//! is replaced, with a backoff while connecting keeps failing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::api::{Api, ApiError};

/// Our ping period; Slack answers with a pong.
const PING_EVERY: Duration = Duration::from_secs(10);
/// With no frame at all for this long (not even a pong), the socket is dead though not closed.
const SILENT_FOR: Duration = Duration::from_secs(35);
/// Opening the websocket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest wait between two failed attempts to connect.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One envelope that carries work: its kind and payload as Slack sent them.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    /// `events_api`, `slash_commands` or `interactive`.
    pub kind: String,
    pub payload: Value,
}

/// What a frame from Slack is.
#[derive(Debug, PartialEq)]
enum Frame {
    Hello,
    Disconnect {
        reason: String,
    },
    Work(Box<EnvelopeParts>),
    /// Anything else: logged and ignored.
    Other(String),
}

#[derive(Debug, PartialEq)]
struct EnvelopeParts {
    id: String,
    kind: String,
    payload: Value,
    /// 0 on first delivery; Slack counts redeliveries of an envelope it thinks was not acked.
    retry_attempt: u64,
    retry_reason: Option<String>,
}

fn parse(text: &str) -> Frame {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Frame::Other("a frame that is not JSON".into());
    };
    let kind = v["type"].as_str().unwrap_or_default();
    match kind {
        "hello" => Frame::Hello,
        "disconnect" => Frame::Disconnect {
            reason: v["reason"].as_str().unwrap_or("unknown").to_string(),
        },
        _ => match v["envelope_id"].as_str() {
            Some(id) => Frame::Work(Box::new(EnvelopeParts {
                id: id.to_string(),
                kind: kind.to_string(),
                payload: v["payload"].clone(),
                retry_attempt: v["retry_attempt"].as_u64().unwrap_or(0),
                retry_reason: v["retry_reason"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            })),
            None => Frame::Other(format!("a {kind:?} frame without an envelope id")),
        },
    }
}

/// Why Socket Mode stopped for good.
#[derive(Debug, thiserror::Error)]
#[error("Socket Mode stopped: {0}")]
pub struct Stopped(pub ApiError);

/// What a session tells the supervisor.
enum Note {
    Hello(u64),
    /// Slack asked this session to be replaced.
    Replace(u64),
    Ended(u64, Ending),
}

enum Ending {
    /// Closed by either side, or silent; a new connection is due.
    Closed(String),
    /// The app token is refused: reconnecting cannot help.
    Fatal(ApiError),
}

/// Runs Socket Mode until `shutdown`, handing each envelope to `deliver` (which must not block:
/// it spawns the work). `first_url` is a URL already opened (by `connect`'s token check), used
/// once. `connected` is true while a session that said `hello` is up.
pub async fn run(
    api: Arc<Api>,
    first_url: Option<String>,
    deliver: Arc<dyn Fn(Envelope) + Send + Sync>,
    connected: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> Result<(), Stopped> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Note>();
    let mut sessions: BTreeMap<u64, CancellationToken> = BTreeMap::new();
    let mut next_id = 0u64;
    // Sessions in a row that ended before `hello`: the backoff grows with them.
    let mut failures = 0u32;
    let mut said_hello: BTreeMap<u64, bool> = BTreeMap::new();
    let mut start = |url: Option<String>,
                     sessions: &mut BTreeMap<u64, CancellationToken>,
                     said_hello: &mut BTreeMap<u64, bool>| {
        next_id += 1;
        let stop = shutdown.child_token();
        sessions.insert(next_id, stop.clone());
        said_hello.insert(next_id, false);
        tokio::spawn(session(
            next_id,
            api.clone(),
            url,
            tx.clone(),
            deliver.clone(),
            stop,
        ));
        next_id
    };
    start(first_url, &mut sessions, &mut said_hello);
    loop {
        let note = tokio::select! {
            _ = shutdown.cancelled() => {
                connected.store(false, Ordering::SeqCst);
                return Ok(());
            }
            note = rx.recv() => note,
        };
        // The sender lives in this function, so the channel never closes.
        let Some(note) = note else { return Ok(()) };
        match note {
            Note::Hello(id) => {
                failures = 0;
                said_hello.insert(id, true);
                connected.store(true, Ordering::SeqCst);
                // The older sessions were being replaced: now they may go.
                for (old, stop) in sessions.range(..id) {
                    tracing::debug!(session = old, "closing the replaced Socket Mode connection");
                    stop.cancel();
                }
                tracing::info!(session = id, "Socket Mode connected");
            }
            Note::Replace(id) => {
                if sessions.keys().next_back() == Some(&id) {
                    start(None, &mut sessions, &mut said_hello);
                }
            }
            Note::Ended(id, ending) => {
                sessions.remove(&id);
                let greeted = said_hello.remove(&id).unwrap_or(false);
                match ending {
                    Ending::Fatal(e) => {
                        connected.store(false, Ordering::SeqCst);
                        for stop in sessions.values() {
                            stop.cancel();
                        }
                        return Err(Stopped(e));
                    }
                    Ending::Closed(why) => {
                        tracing::info!(session = id, reason = %why, "Socket Mode connection ended");
                    }
                }
                if !sessions.is_empty() {
                    continue;
                }
                connected.store(false, Ordering::SeqCst);
                if !greeted {
                    failures += 1;
                }
                let wait = backoff(failures);
                if !wait.is_zero() {
                    tracing::warn!(
                        wait_s = wait.as_secs_f64(),
                        attempts = failures,
                        "cannot keep a Socket Mode connection; trying again"
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                start(None, &mut sessions, &mut said_hello);
            }
        }
    }
}

/// The wait before connecting again after `failures` attempts in a row that never got a
/// `hello`: none after a session that worked, then 0.5 s doubling up to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = failures.saturating_sub(1).min(10);
    (Duration::from_millis(500) * 2u32.pow(exp)).min(MAX_BACKOFF)
}

/// One websocket connection, from `apps.connections.open` until it closes.
async fn session(
    id: u64,
    api: Arc<Api>,
    url: Option<String>,
    tx: mpsc::UnboundedSender<Note>,
    deliver: Arc<dyn Fn(Envelope) + Send + Sync>,
    stop: CancellationToken,
) {
    let ending = connection(id, &api, url, &tx, &deliver, &stop).await;
    let _ = tx.send(Note::Ended(id, ending));
}

async fn connection(
    id: u64,
    api: &Api,
    url: Option<String>,
    tx: &mpsc::UnboundedSender<Note>,
    deliver: &Arc<dyn Fn(Envelope) + Send + Sync>,
    stop: &CancellationToken,
) -> Ending {
    let url = match url {
        Some(u) => u,
        None => match api.open_connection().await {
            Ok(u) => u,
            Err(e) if e.is_auth() => return Ending::Fatal(e),
            Err(e) => return Ending::Closed(e.to_string()),
        },
    };
    // The URL is a single-use ticket; it is not logged.
    let ws =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(&url)).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => return Ending::Closed(format!("cannot open the websocket: {e}")),
            Err(_) => return Ending::Closed("the websocket did not open in time".into()),
        };
    let (mut sink, mut stream) = ws.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return Ending::Closed("replaced or shutting down".into());
            }
            _ = ping.tick() => {
                if let Err(e) = sink.send(Message::Ping(Vec::new())).await {
                    return Ending::Closed(format!("cannot ping: {e}"));
                }
            }
            frame = tokio::time::timeout_at(heard + SILENT_FOR, stream.next()) => {
                let msg = match frame {
                    Err(_) => return Ending::Closed(format!("nothing heard for {} s", SILENT_FOR.as_secs())),
                    Ok(None) => return Ending::Closed("the socket ended".into()),
                    Ok(Some(Err(e))) => return Ending::Closed(format!("websocket error: {e}")),
                    Ok(Some(Ok(m))) => m,
                };
                heard = tokio::time::Instant::now();
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Close(_) => return Ending::Closed("Slack closed the socket".into()),
                    // Pings are answered by tungstenite; pongs only prove the socket lives.
                    _ => continue,
                };
                match parse(&text) {
                    Frame::Hello => {
                        let _ = tx.send(Note::Hello(id));
                    }
                    Frame::Disconnect { reason } => {
                        tracing::info!(session = id, %reason, "Slack asked for a new connection");
                        let _ = tx.send(Note::Replace(id));
                    }
                    Frame::Work(e) => {
                        // Acknowledge first: Slack wants it within 3 s, whatever the work.
                        let ack = json!({ "envelope_id": e.id }).to_string();
                        if let Err(err) = sink.send(Message::Text(ack)).await {
                            // Not acknowledged: Slack delivers it again on another
                            // connection, and the store's claim keeps it from running twice.
                            return Ending::Closed(format!("cannot acknowledge an envelope: {err}"));
                        }
                        if e.retry_attempt > 0 {
                            tracing::info!(
                                envelope = %e.id,
                                retry_attempt = e.retry_attempt,
                                retry_reason = e.retry_reason.as_deref().unwrap_or(""),
                                "Slack redelivered an envelope"
                            );
                        }
                        deliver(Envelope {
                            id: e.id,
                            kind: e.kind,
                            payload: e.payload,
                        });
                    }
                    Frame::Other(what) => tracing::debug!(session = id, %what, "ignored"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_told_apart() {
        assert_eq!(
            parse(r#"{"type":"hello","num_connections":1,"debug_info":{"host":"x"}}"#),
            Frame::Hello
        );
        assert_eq!(
            parse(r#"{"type":"disconnect","reason":"refresh_requested"}"#),
            Frame::Disconnect {
                reason: "refresh_requested".into()
            }
        );
        let Frame::Work(e) = parse(
            r#"{"envelope_id":"e-1","type":"events_api","payload":{"event":{"type":"message"}},
                "accepts_response_payload":false,"retry_attempt":2,"retry_reason":"timeout"}"#,
        ) else {
            panic!("an envelope")
        };
        assert_eq!(e.id, "e-1");
        assert_eq!(e.kind, "events_api");
        assert_eq!(e.payload["event"]["type"], "message");
        assert_eq!(
            (e.retry_attempt, e.retry_reason.as_deref()),
            (2, Some("timeout"))
        );
        assert!(matches!(parse("not json"), Frame::Other(_)));
        assert!(matches!(parse(r#"{"type":"events_api"}"#), Frame::Other(_)));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
