//! The HTTP policy every integration shares: a timeout per attempt, a bounded number of attempts,
//! exponential backoff with jitter on 429/5xx and connection errors, `Retry-After` honoured up to
//! a cap, and [`UpstreamError`], the one-sentence failure a preflight shows to people.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;

/// Which upstream a call went to; the first word of every [`UpstreamError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Github,
    Registry,
    Airflow,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Github => "github",
            Service::Registry => "registry",
            Service::Airflow => "airflow",
        })
    }
}

/// Why an upstream could not answer. `Display` is one sentence naming the service and the cause;
/// it never contains a secret (no header values, no credentials, no request bodies).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("{service}: timed out after {} ({})", human(*.after), attempts_text(*.attempts))]
    Timeout {
        service: Service,
        after: Duration,
        attempts: u32,
    },
    /// A retryable status (429/5xx) on every attempt.
    #[error("{service}: answered {status} {}", times(*.attempts))]
    Status {
        service: Service,
        status: u16,
        attempts: u32,
    },
    #[error("{service}: could not connect ({cause}; {})", attempts_text(*.attempts))]
    Connect {
        service: Service,
        cause: String,
        attempts: u32,
    },
    #[error("{service}: the answer from {path} was cut short ({})", attempts_text(*.attempts))]
    Truncated {
        service: Service,
        path: String,
        attempts: u32,
    },
    /// The server asked us to come back later than [`HttpPolicy::max_wait`]; we do not sleep that long.
    #[error("{service}: answered {status} and asked to retry after {at} — try again then")]
    RetryLater {
        service: Service,
        status: u16,
        at: String,
    },
    #[error("{service}: rate limit exhausted until {until}{hint}")]
    RateLimited {
        service: Service,
        until: String,
        /// Empty, or ` — …` advice.
        hint: String,
    },
    #[error("{service}: malformed JSON from {path}: {detail}")]
    Malformed {
        service: Service,
        path: String,
        detail: String,
    },
    /// Credentials missing, wrong or insufficient; `detail` says which and what to check.
    #[error("{service}: {detail}")]
    Auth { service: Service, detail: String },
    /// A status the integration has no meaning for (e.g. 400, 422).
    #[error("{service}: unexpected {status} from {path}")]
    Unexpected {
        service: Service,
        status: u16,
        path: String,
    },
    /// A configuration or protocol problem (bad URL, a challenge we cannot follow, …).
    #[error("{service}: {detail}")]
    Invalid { service: Service, detail: String },
}

impl UpstreamError {
    pub fn service(&self) -> Service {
        match self {
            UpstreamError::Timeout { service, .. }
            | UpstreamError::Status { service, .. }
            | UpstreamError::Connect { service, .. }
            | UpstreamError::Truncated { service, .. }
            | UpstreamError::RetryLater { service, .. }
            | UpstreamError::RateLimited { service, .. }
            | UpstreamError::Malformed { service, .. }
            | UpstreamError::Auth { service, .. }
            | UpstreamError::Unexpected { service, .. }
            | UpstreamError::Invalid { service, .. } => *service,
        }
    }
}

/// `10 s`, `1.5 s`, `200 ms`.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn attempts_text(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_string()
    } else {
        format!("{n} attempts")
    }
}

fn times(n: u32) -> String {
    match n {
        1 => "once".to_string(),
        2 => "twice".to_string(),
        3 => "three times".to_string(),
        n => format!("{n} times"),
    }
}

/// `04:51 UTC` for an instant within a day, the full `2026-11-26 04:51 UTC` beyond.
pub(crate) fn clock_utc(at: SystemTime) -> String {
    let now = SystemTime::now();
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let full = crate::timefmt::utc(ms);
    let near = at
        .duration_since(now)
        .is_ok_and(|d| d < Duration::from_secs(20 * 3600));
    match full.split_once(' ') {
        Some((_, clock)) if near => clock.to_string(),
        _ => full,
    }
}

/// Timeouts, attempts and waits for every upstream call. Tests build one with small numbers.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    /// One attempt, from sending the request to the last byte of the body.
    pub timeout: Duration,
    /// Attempts in total (at least 1).
    pub attempts: u32,
    /// The wait before the second attempt; doubles for each further one.
    pub backoff: Duration,
    /// No backoff wait is longer than this.
    pub max_backoff: Duration,
    /// The longest `Retry-After` we sleep through; a longer one fails with the time to retry.
    pub max_wait: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// A complete answer: status, headers and the whole body.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// How one attempt failed before a status could be judged.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// Connecting or sending failed; worth another attempt.
    Transport(String),
    /// The body ended before it was complete; worth another attempt.
    Truncated,
    /// A definite answer that no retry changes (e.g. an exhausted rate limit).
    Fatal(UpstreamError),
}

/// The last failure seen, turned into an error when attempts run out.
enum Last {
    Timeout,
    Status(u16),
    Connect(String),
    Truncated,
}

fn retryable(status: StatusCode) -> bool {
    let s = status.as_u16();
    s == 429 || (500..600).contains(&s) && s != 501 && s != 505
}

/// `Retry-After` as a wait from `now`: delay-seconds or an HTTP date (a past date means now).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A random fraction in [0, 1) without a random-number crate: `RandomState` is seeded randomly
/// per instance, which is plenty for spreading retries.
fn jitter_fraction() -> f64 {
    let r = RandomState::new().hash_one(0u8);
    (r >> 11) as f64 / (1u64 << 53) as f64
}

impl HttpPolicy {
    /// The wait after failed attempt `n` (1-based): exponential, capped, with jitter in its upper half.
    fn backoff_after(&self, n: u32) -> Duration {
        let exp = self
            .backoff
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1)));
        let d = exp.min(self.max_backoff);
        d.mul_f64(0.5 + 0.5 * jitter_fraction())
    }

    /// Runs `attempt` until it yields a non-retryable answer or the attempts run out. Statuses that
    /// are not retryable (2xx, 3xx, 4xx but 429) are returned for the caller to interpret.
    pub(crate) async fn run<F, Fut>(
        &self,
        service: Service,
        path: &str,
        attempt: F,
    ) -> Result<Raw, UpstreamError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Raw, AttemptError>>,
    {
        let started = std::time::Instant::now();
        let result = self.run_attempts(service, path, attempt).await;
        // A 4xx answer is the caller's to judge (a missing image is an answer, not an error).
        crate::metrics::upstream_request(&service.to_string(), started.elapsed(), result.is_ok());
        result
    }

    async fn run_attempts<F, Fut>(
        &self,
        service: Service,
        path: &str,
        mut attempt: F,
    ) -> Result<Raw, UpstreamError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Raw, AttemptError>>,
    {
        let attempts = self.attempts.max(1);
        let mut last = Last::Timeout;
        for n in 1..=attempts {
            let mut wait = None;
            match tokio::time::timeout(self.timeout, attempt()).await {
                Err(_) => last = Last::Timeout,
                Ok(Err(AttemptError::Transport(cause))) => last = Last::Connect(cause),
                Ok(Err(AttemptError::Truncated)) => last = Last::Truncated,
                Ok(Err(AttemptError::Fatal(e))) => return Err(e),
                Ok(Ok(raw)) if retryable(raw.status) => {
                    let now = SystemTime::now();
                    if let Some(d) = retry_after(&raw.headers, now) {
                        if d > self.max_wait {
                            return Err(UpstreamError::RetryLater {
                                service,
                                status: raw.status.as_u16(),
                                at: clock_utc(now + d),
                            });
                        }
                        wait = Some(d);
                    }
                    last = Last::Status(raw.status.as_u16());
                }
                Ok(Ok(raw)) => return Ok(raw),
            }
            if n < attempts {
                let d = wait.unwrap_or_else(|| self.backoff_after(n));
                tracing::debug!(%service, path, attempt = n, wait_ms = d.as_millis() as u64, "retrying");
                tokio::time::sleep(d).await;
            }
        }
        Err(match last {
            Last::Timeout => UpstreamError::Timeout {
                service,
                after: self.timeout,
                attempts,
            },
            Last::Status(status) => UpstreamError::Status {
                service,
                status,
                attempts,
            },
            Last::Connect(cause) => UpstreamError::Connect {
                service,
                cause,
                attempts,
            },
            Last::Truncated => UpstreamError::Truncated {
                service,
                path: path.to_string(),
                attempts,
            },
        })
    }
}

/// A reqwest client for one service. reqwest's own timeout is not set: the policy's timeout wraps
/// each whole attempt, body included.
pub(crate) fn reqwest_client(
    service: Service,
    policy: &HttpPolicy,
) -> Result<reqwest::Client, UpstreamError> {
    reqwest::Client::builder()
        .connect_timeout(policy.timeout)
        .user_agent(concat!("catalog-chatops/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| UpstreamError::Invalid {
            service,
            detail: format!("cannot build an HTTP client ({})", root_cause(&e)),
        })
}

/// Sends a request and reads the whole body.
pub(crate) async fn send(rb: reqwest::RequestBuilder) -> Result<Raw, AttemptError> {
    let resp = rb
        .send()
        .await
        .map_err(|e| AttemptError::Transport(root_cause(&e)))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(|e| {
        if e.is_body() || e.is_decode() {
            AttemptError::Truncated
        } else {
            AttemptError::Transport(root_cause(&e))
        }
    })?;
    Ok(Raw {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// The innermost cause of an error (`Connection refused (os error 111)`), which names neither
/// the URL nor anything sent with it.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Parses a JSON body, naming the path (without its query) when it does not fit.
pub(crate) fn parse_json<T: DeserializeOwned>(
    service: Service,
    path: &str,
    body: &[u8],
) -> Result<T, UpstreamError> {
    serde_json::from_slice(body).map_err(|e| UpstreamError::Malformed {
        service,
        path: path_only(path).to_string(),
        detail: e.to_string(),
    })
}

/// A path without its query string, for messages.
pub(crate) fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay as they are).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a query value.
pub(crate) fn encode_query(s: &str) -> String {
    encode_segment(s)
}

/// A status that no integration expected.
pub(crate) fn unexpected(service: Service, raw: &Raw, path: &str) -> UpstreamError {
    UpstreamError::Unexpected {
        service,
        status: raw.status.as_u16(),
        path: path_only(path).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn sentences() {
        let e = UpstreamError::Timeout {
            service: Service::Github,
            after: Duration::from_secs(10),
            attempts: 3,
        };
        assert_eq!(e.to_string(), "github: timed out after 10 s (3 attempts)");
        let e = UpstreamError::Status {
            service: Service::Airflow,
            status: 500,
            attempts: 3,
        };
        assert_eq!(e.to_string(), "airflow: answered 500 three times");
        let e = UpstreamError::Timeout {
            service: Service::Registry,
            after: Duration::from_millis(200),
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "registry: timed out after 200 ms (1 attempt)"
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = HttpPolicy {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..HttpPolicy::default()
        };
        for _ in 0..20 {
            let b1 = p.backoff_after(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
            let b4 = p.backoff_after(4);
            assert!(b4 >= Duration::from_millis(150) && b4 <= Duration::from_millis(300));
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("v1.5.3"), "v1.5.3");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(path_only("/x/y?limit=1"), "/x/y");
    }
}
