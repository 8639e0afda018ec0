//! Fault injection shared by the three fake services: added latency, a queue of forced answers
//! (including bodies cut short and connections dropped without an answer), hanging forever, a
//! page-size cap, and request counters that tests assert on.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Ctx;

/// What a fake service does besides its normal job.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Added before every answer.
    pub latency: Duration,
    /// Answers given instead of the real ones, first match first, each once.
    pub forced: VecDeque<Forced>,
    /// Never answer (the connection stays open).
    pub hang: bool,
    /// Largest page the service serves, below its own maximum.
    pub page_cap: Option<usize>,
    /// `"METHOD /path"` (no query) → requests seen.
    pub counts: BTreeMap<String, u64>,
}

impl Faults {
    /// Requests seen for `"METHOD /path"`.
    pub fn count(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    /// Requests seen whose key starts with `prefix` (e.g. `"HEAD /v2/"`).
    pub fn count_prefix(&self, prefix: &str) -> u64 {
        self.counts
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Every request seen.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Queues a forced answer.
    pub fn force(&mut self, f: Forced) {
        self.forced.push_back(f);
    }

    fn take_forced(&mut self, path: &str) -> Option<Forced> {
        let at = self
            .forced
            .iter()
            .position(|f| f.path_prefix.as_deref().is_none_or(|p| path.starts_with(p)))?;
        self.forced.remove(at)
    }
}

/// A canned answer: status, headers, body; optionally cut short, or no answer at all.
#[derive(Debug, Clone)]
pub struct Forced {
    /// Only requests whose path starts with this get it; `None` means any request.
    pub path_prefix: Option<String>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Announce a longer `Content-Length` than the body and close early.
    pub truncate: bool,
    /// Read the request, then drop the connection without writing a byte of the answer: what a
    /// client sees when a proxy or a TLS terminator resets the connection.
    pub reset: bool,
}

impl Forced {
    pub fn status(status: u16) -> Forced {
        Forced {
            path_prefix: None,
            status,
            headers: Vec::new(),
            body: Vec::new(),
            truncate: false,
            reset: false,
        }
    }

    /// `429` asking to come back after `retry_after` (seconds or an HTTP date).
    pub fn too_many(retry_after: &str) -> Forced {
        Forced::status(429).header("retry-after", retry_after)
    }

    /// `200` with a body that is not JSON.
    pub fn garbage() -> Forced {
        Forced::status(200)
            .header("content-type", "application/json")
            .body("<html>502 Bad Gateway</html>")
    }

    /// `200` whose body stops before its announced length.
    pub fn truncated(body: &str) -> Forced {
        Forced {
            truncate: true,
            ..Forced::status(200)
                .header("content-type", "application/json")
                .body(body)
        }
    }

    /// The connection is dropped without an answer (no status line, no headers).
    pub fn reset() -> Forced {
        Forced {
            reset: true,
            ..Forced::status(200)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Forced {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: &str) -> Forced {
        self.body = body.as_bytes().to_vec();
        self
    }

    /// Restricts the answer to requests whose path starts with `prefix`.
    pub fn on(mut self, prefix: &str) -> Forced {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    fn into_response(self) -> Response {
        if self.reset {
            // hyper buffers the status line and headers until the body's first frame; a body
            // that fails at once ends the connection before anything was written.
            return Body::new(Refused).into_response();
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let len = self.body.len();
        let mut resp = if self.truncate {
            (status, Body::new(CutShort::new(self.body))).into_response()
        } else {
            (status, self.body).into_response()
        };
        let headers = resp.headers_mut();
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.insert(k, v);
            }
        }
        if self.truncate {
            // The body stream fails after its bytes: hyper drops the connection short of this
            // length and the client sees an incomplete message.
            headers.insert(
                axum::http::header::CONTENT_LENGTH,
                HeaderValue::from(len as u64 + 100),
            );
        }
        resp
    }
}

/// Counts the request, applies latency, hangs, or answers with a forced response.
pub(super) async fn layer(State(ctx): State<Ctx>, req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let key = format!("{} {}", req.method(), path);
    let (latency, hang, forced) = {
        let mut w = ctx.world.lock();
        let f = w.faults_mut(ctx.service);
        *f.counts.entry(key).or_default() += 1;
        (f.latency, f.hang, f.take_forced(&path))
    };
    if hang {
        // Never answer; only a sandbox shutdown releases the request.
        ctx.shutdown.cancelled().await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match forced {
        Some(f) => f.into_response(),
        None => next.run(req).await,
    }
}

/// A body that yields its bytes, pauses (so hyper flushes them), then fails: the connection
/// breaks off mid-way.
struct CutShort {
    bytes: Option<Vec<u8>>,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl CutShort {
    fn new(bytes: Vec<u8>) -> CutShort {
        CutShort {
            bytes: Some(bytes),
            pause: Box::pin(tokio::time::sleep(Duration::from_millis(20))),
        }
    }
}

impl http_body::Body for CutShort {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        if let Some(bytes) = self.bytes.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(bytes.into()))));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                Poll::Ready(Some(Err(std::io::Error::other("connection cut short"))))
            }
        }
    }
}

/// A body that fails before yielding anything: the server drops the connection unanswered.
struct Refused;

impl http_body::Body for Refused {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by the sandbox",
        ))))
    }
}
