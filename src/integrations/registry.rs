//! The container registry over the OCI distribution API: does an image tag exist, and what is its
//! digest (pinned with the deploy); which tags exist.
//!
//! ghcr.io wants a bearer token even for public images: the first request gets `401` with
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, the token comes from the realm (basic auth
//! with REGISTRY_USERNAME/REGISTRY_PASSWORD when set, anonymous otherwise), and the request is
//! retried with it. A registry without auth works too.
//!
//! That dance is three round trips, the longest chain of a preflight, so what it teaches is kept:
//! tokens per scope until shortly before they expire, and the realm, so a new scope skips the 401.
//! With a store ([`RegistryClient::remembering`]) the next process starts from it too: the realm
//! always, a token only when it was obtained anonymously — one obtained with credentials may pull
//! private images and stays in this process's memory. A stored realm is sent the credentials only
//! when it is on the registry's own origin. Everything remembered is a hint: a refused token or a
//! realm that no longer answers sends the client back to the full dance. Tokens are secrets in
//! memory ([`SecretString`]) and never logged.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LINK, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::http::{Raw, encode_query, parse_json, path_only, reqwest_client, send, unexpected};
use super::{HttpPolicy, Service, UpstreamError};
use crate::auth_memory::{AuthMemory, RegistryRealm};
use crate::config::Config;
use crate::timefmt::now_ms;

const SERVICE: Service = Service::Registry;

/// Every manifest type a tag may point at. A registry answers a HEAD for a multi-platform image
/// (an OCI index or a Docker manifest list) only when the request accepts those types.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Tags per page when listing.
pub const DEFAULT_TAG_PAGE: usize = 100;

/// What a tag points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// `sha256:…`, the content address to pin.
    pub digest: String,
    /// e.g. `application/vnd.oci.image.index.v1+json`.
    pub media_type: String,
}

/// A tag listing, possibly cut at the page cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tags {
    pub tags: Vec<String>,
    /// More pages existed beyond the cap.
    pub truncated: bool,
    pub pages: usize,
}

/// Where tokens come from, learnt from the first challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    realm: String,
    service: Option<String>,
    scope: Option<String>,
}

/// Without `expires_in` a token lives 60 s (the Docker registry token specification).
const DEFAULT_TOKEN_LIFETIME_S: u64 = 60;

/// A token and the moment after which it is no longer offered (ms since the epoch): a little
/// before it expires, so that it does not expire on its way to the registry.
#[derive(Debug, Clone)]
struct HeldToken {
    token: SecretString,
    usable_until_ms: i64,
}

/// When a token that lives `lifetime_s` from `now_ms` stops being offered: a fifth of its life
/// early, at least 1 s and at most 30 s.
fn usable_until(now_ms: i64, lifetime_s: u64) -> i64 {
    let lifetime_ms = i64::try_from(lifetime_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let margin_ms = (lifetime_ms / 5).clamp(1_000, 30_000);
    now_ms.saturating_add(lifetime_ms.saturating_sub(margin_ms))
}

#[derive(Debug, Default)]
struct AuthCache {
    /// scope → bearer token.
    tokens: HashMap<String, HeldToken>,
    realm: Option<Challenge>,
}

#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    username: Option<String>,
    password: Option<SecretString>,
    policy: HttpPolicy,
    auth: Arc<Mutex<AuthCache>>,
    /// Where the realm (and anonymous tokens) outlive this process: the store.
    memory: Option<Arc<dyn AuthMemory>>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .field("has_credentials", &self.password.is_some())
            .finish_non_exhaustive()
    }
}

fn auth_error(detail: impl Into<String>) -> UpstreamError {
    UpstreamError::Auth {
        service: SERVICE,
        detail: detail.into(),
    }
}

fn invalid(detail: String) -> UpstreamError {
    UpstreamError::Invalid {
        service: SERVICE,
        detail,
    }
}

impl RegistryClient {
    pub fn new(
        url: &str,
        username: Option<String>,
        password: Option<SecretString>,
        policy: HttpPolicy,
    ) -> Result<RegistryClient, UpstreamError> {
        let base = url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base)
            .map_err(|_| invalid(format!("url {url:?} is not a valid URL")))?;
        Ok(RegistryClient {
            http: reqwest_client(SERVICE, &policy)?,
            base,
            username,
            password,
            policy,
            auth: Arc::default(),
            memory: None,
        })
    }

    /// Keeps what the token dance teaches in `store` as well, for the next process (every
    /// `exec` is one), and starts from what earlier processes kept there.
    pub fn remembering(mut self, memory: Arc<dyn AuthMemory>) -> RegistryClient {
        self.memory = Some(memory);
        self
    }

    pub fn from_config(
        config: &Config,
        policy: HttpPolicy,
    ) -> Result<RegistryClient, UpstreamError> {
        RegistryClient::new(
            &config.registry.url,
            config.secrets.registry_username.clone(),
            config.secrets.registry_password.clone(),
            policy,
        )
    }

    /// The manifest `image:tag` points at, via `HEAD` with the full Accept list; `None` when the
    /// registry has no such tag (or image). When a HEAD carries no `Docker-Content-Digest`, the
    /// manifest is fetched and hashed instead.
    pub async fn manifest(
        &self,
        image: &str,
        tag: &str,
    ) -> Result<Option<Manifest>, UpstreamError> {
        let image = checked_image(image)?;
        if tag.is_empty() || tag.contains(['/', '?', '#', ' ']) {
            return Err(invalid(format!("tag {tag:?} is not a valid reference")));
        }
        let path = format!("/v2/{image}/manifests/{tag}");
        let scope = pull_scope(&image);
        let raw = self
            .authed(Method::HEAD, &path, &scope, MANIFEST_ACCEPT)
            .await?;
        match raw.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.status_error(&raw, &path, &image)),
        }
        let media_type = content_type(&raw.headers);
        if let Some(digest) = raw
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| d.starts_with("sha256:"))
        {
            return Ok(Some(Manifest {
                digest: digest.to_string(),
                media_type: media_type.unwrap_or_default(),
            }));
        }
        // No digest header: the digest is the sha256 of the manifest's exact bytes.
        let raw = self
            .authed(Method::GET, &path, &scope, MANIFEST_ACCEPT)
            .await?;
        match raw.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.status_error(&raw, &path, &image)),
        }
        let media_type = match content_type(&raw.headers) {
            Some(t) => t,
            None => {
                #[derive(Deserialize)]
                struct Typed {
                    #[serde(rename = "mediaType")]
                    media_type: Option<String>,
                }
                let t: Typed = parse_json(SERVICE, &path, &raw.body)?;
                t.media_type.unwrap_or_default()
            }
        };
        Ok(Some(Manifest {
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&raw.body))),
            media_type,
        }))
    }

    /// All tags of `image`, [`DEFAULT_TAG_PAGE`] per page, at most `page_cap` pages.
    pub async fn tags(&self, image: &str, page_cap: usize) -> Result<Tags, UpstreamError> {
        self.tags_paged(image, DEFAULT_TAG_PAGE, page_cap).await
    }

    /// Tags of `image` following `Link: <…>; rel="next"` with `n=page_size`, stopping after
    /// `page_cap` pages (then `truncated` says more existed). An unknown image has no tags.
    pub async fn tags_paged(
        &self,
        image: &str,
        page_size: usize,
        page_cap: usize,
    ) -> Result<Tags, UpstreamError> {
        #[derive(Deserialize)]
        struct Page {
            tags: Option<Vec<String>>,
        }
        let image = checked_image(image)?;
        let scope = pull_scope(&image);
        let mut next = Some(format!("/v2/{image}/tags/list?n={}", page_size.max(1)));
        let mut out = Tags {
            tags: Vec::new(),
            truncated: false,
            pages: 0,
        };
        while let Some(path) = next.take() {
            if out.pages >= page_cap {
                out.truncated = true;
                break;
            }
            let raw = self
                .authed(Method::GET, &path, &scope, "application/json")
                .await?;
            match raw.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND if out.pages == 0 => return Ok(out),
                _ => return Err(self.status_error(&raw, &path, &image)),
            }
            let page: Page = parse_json(SERVICE, &path, &raw.body)?;
            out.pages += 1;
            out.tags.extend(page.tags.unwrap_or_default());
            next = next_link(&raw.headers);
        }
        Ok(out)
    }

    fn status_error(&self, raw: &Raw, path: &str, image: &str) -> UpstreamError {
        match raw.status {
            StatusCode::FORBIDDEN => auth_error(format!(
                "403 denied for {image} — {}",
                if self.password.is_some() {
                    "check that REGISTRY_USERNAME may pull it"
                } else {
                    "the image may be private; set REGISTRY_USERNAME and REGISTRY_PASSWORD"
                }
            )),
            _ => unexpected(SERVICE, raw, path),
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base, path_or_url)
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, AuthCache> {
        // The cache holds only tokens; a panic elsewhere cannot leave it inconsistent.
        self.auth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Only tokens obtained without credentials are written to the store (see the module doc).
    fn anonymous(&self) -> bool {
        self.username.is_none()
    }

    /// One request with the bearer dance: a token this or an earlier process holds (or one
    /// fetched from a realm it knows) first; then, on a challenge, one fresh exchange at the realm
    /// the challenge names and one retry.
    async fn authed(
        &self,
        method: Method,
        path: &str,
        scope: &str,
        accept: &str,
    ) -> Result<Raw, UpstreamError> {
        let mut token = self.held_token(scope).await;
        // Whether `token` was fetched by this call (and so is not kept anywhere yet).
        let mut exchanged = false;
        if token.is_none()
            && let Some(realm) = self.known_realm().await
        {
            match self.exchange(&realm, scope).await {
                Ok(t) => {
                    token = Some(t);
                    exchanged = true;
                }
                // The realm may have moved since it was learnt: ask the registry again.
                Err(e) => {
                    tracing::debug!(error = %e, "the known registry token realm gave no token");
                    self.forget_realm().await;
                }
            }
        }
        // Whether `token` came from the challenge of this very request: if the registry refuses
        // that one too, asking again cannot help.
        let mut answered_challenge = false;
        loop {
            let raw = self
                .send_once(
                    method.clone(),
                    path,
                    accept,
                    token.as_ref().map(|t| &t.token),
                )
                .await?;
            if raw.status != StatusCode::UNAUTHORIZED {
                if let Some(t) = token.filter(|_| exchanged) {
                    self.keep_token(scope, t).await;
                }
                return Ok(raw);
            }
            if token.is_some() {
                self.forget_token(scope).await;
            }
            if answered_challenge {
                return Err(auth_error(if self.password.is_some() {
                    "401 after token exchange — check REGISTRY_PASSWORD"
                } else {
                    "401 after an anonymous token exchange — the image may be private; set \
                     REGISTRY_USERNAME and REGISTRY_PASSWORD"
                }));
            }
            let Some(challenge) = bearer_challenge(&raw.headers) else {
                return Err(auth_error(
                    "401 without a Bearer challenge — this registry's auth is not supported",
                ));
            };
            self.learn_realm(&challenge).await;
            let wanted = challenge.scope.as_deref().unwrap_or(scope).to_string();
            token = Some(self.exchange(&challenge, &wanted).await?);
            exchanged = true;
            answered_challenge = true;
        }
    }

    /// A usable token for `scope`: this process's, or one an earlier process stored.
    async fn held_token(&self, scope: &str) -> Option<HeldToken> {
        let now = now_ms();
        {
            let mut c = self.cache();
            match c.tokens.get(scope) {
                Some(t) if t.usable_until_ms > now => return Some(t.clone()),
                Some(_) => {
                    c.tokens.remove(scope);
                }
                None => {}
            }
        }
        let store = self.memory.as_ref().filter(|_| self.anonymous())?;
        match store.token(&self.base, scope, now).await {
            Ok(Some((token, usable_until_ms))) => {
                let held = HeldToken {
                    token,
                    usable_until_ms,
                };
                self.cache().tokens.insert(scope.to_string(), held.clone());
                Some(held)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stored registry tokens; asking the registry");
                None
            }
        }
    }

    /// The realm this process learnt, or one an earlier process stored.
    async fn known_realm(&self) -> Option<Challenge> {
        if let Some(realm) = self.cache().realm.clone() {
            return Some(realm);
        }
        let store = self.memory.as_ref()?;
        match store.realm(&self.base).await {
            // The realm gets REGISTRY_USERNAME/PASSWORD. One read from the store is trusted with
            // them only on the registry's own origin (ghcr.io's is): a realm elsewhere must be
            // named by the registry itself, in this process, so that whoever can write the store
            // cannot send the password somewhere else.
            Ok(Some(r)) if !self.anonymous() && !same_origin(&r.realm, &self.base) => None,
            Ok(Some(r)) => {
                let realm = Challenge {
                    realm: r.realm,
                    service: r.service,
                    scope: None,
                };
                self.cache().realm = Some(realm.clone());
                Some(realm)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the stored registry realm; asking the registry");
                None
            }
        }
    }

    /// Keeps the realm a challenge named (its scope belongs to one request only).
    async fn learn_realm(&self, challenge: &Challenge) {
        let realm = Challenge {
            scope: None,
            ..challenge.clone()
        };
        self.cache().realm = Some(realm.clone());
        if let Some(store) = &self.memory {
            let stored = RegistryRealm {
                realm: realm.realm,
                service: realm.service,
            };
            if let Err(e) = store.remember_realm(&self.base, &stored).await {
                tracing::warn!(error = %e, "cannot store the registry realm");
            }
        }
    }

    async fn forget_realm(&self) {
        self.cache().realm = None;
        if let Some(store) = &self.memory
            && let Err(e) = store.forget_realm(&self.base).await
        {
            tracing::warn!(error = %e, "cannot forget the stored registry realm");
        }
    }

    /// A freshly fetched token the registry accepted: held for the next requests of this process
    /// and, when it was obtained anonymously, stored for the next processes.
    async fn keep_token(&self, scope: &str, token: HeldToken) {
        if token.usable_until_ms <= now_ms() {
            return;
        }
        if let Some(store) = self.memory.as_ref().filter(|_| self.anonymous())
            && let Err(e) = store
                .remember_token(&self.base, scope, &token.token, token.usable_until_ms)
                .await
        {
            tracing::warn!(error = %e, "cannot store the registry token");
        }
        self.cache().tokens.insert(scope.to_string(), token);
    }

    /// The registry refused the token for `scope`: nobody offers it again.
    async fn forget_token(&self, scope: &str) {
        self.cache().tokens.remove(scope);
        if let Some(store) = &self.memory
            && let Err(e) = store.forget_token(&self.base, scope).await
        {
            tracing::warn!(error = %e, "cannot forget the stored registry token");
        }
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        token: Option<&SecretString>,
    ) -> Result<Raw, UpstreamError> {
        let url = self.url(path);
        self.policy
            .run(SERVICE, path_only(path), || {
                let mut rb = self
                    .http
                    .request(method.clone(), &url)
                    .header(ACCEPT, accept);
                if let Some(t) = token {
                    rb = rb.bearer_auth(t.expose_secret());
                }
                send(rb)
            })
            .await
    }

    /// Fetches a token for `scope` from the challenge's realm.
    async fn exchange(
        &self,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<HeldToken, UpstreamError> {
        #[derive(Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let realm = &challenge.realm;
        if !(realm.starts_with("http://") || realm.starts_with("https://")) {
            return Err(auth_error(format!(
                "the token realm {realm:?} is not an http(s) URL"
            )));
        }
        let mut url = realm.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(service) = &challenge.service {
            url.push_str(&format!("{sep}service={}", encode_query(service)));
            sep = '&';
        }
        url.push_str(&format!("{sep}scope={}", encode_query(scope)));
        let realm_path = reqwest::Url::parse(realm)
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| "the token realm".to_string());
        let raw = self
            .policy
            .run(SERVICE, &realm_path, || {
                let mut rb = self.http.get(&url).header(ACCEPT, "application/json");
                if let Some(user) = &self.username {
                    rb = rb.basic_auth(user, self.password.as_ref().map(|p| p.expose_secret()));
                }
                send(rb)
            })
            .await?;
        match raw.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(auth_error(format!(
                    "token exchange refused ({}) — {}",
                    raw.status.as_u16(),
                    if self.username.is_some() {
                        "check REGISTRY_USERNAME and REGISTRY_PASSWORD"
                    } else {
                        "anonymous pulls are not allowed; set REGISTRY_USERNAME and REGISTRY_PASSWORD"
                    }
                )));
            }
            _ => return Err(unexpected(SERVICE, &raw, &realm_path)),
        }
        let answer: TokenAnswer = parse_json(SERVICE, &realm_path, &raw.body)?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| UpstreamError::Malformed {
                service: SERVICE,
                path: realm_path.clone(),
                detail: "no token in the answer".to_string(),
            })?;
        Ok(HeldToken {
            token: SecretString::from(token),
            usable_until_ms: usable_until(
                now_ms(),
                answer.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME_S),
            ),
        })
    }
}

/// Whether two URLs share scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// Image names on a registry are lowercase path components.
fn checked_image(image: &str) -> Result<String, UpstreamError> {
    let image = image.trim_matches('/').to_ascii_lowercase();
    let ok = !image.is_empty()
        && image.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    if ok {
        Ok(image)
    } else {
        Err(invalid(format!(
            "image {image:?} is not a valid repository name"
        )))
    }
}

fn pull_scope(image: &str) -> String {
    format!("repository:{image}:pull")
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .filter(|v| !v.is_empty() && v != "application/octet-stream")
}

/// `Bearer realm="…",service="…",scope="…"` → its parameters; `None` for other schemes.
fn bearer_challenge(headers: &HeaderMap) -> Option<Challenge> {
    headers.get_all(WWW_AUTHENTICATE).iter().find_map(|v| {
        let v = v.to_str().ok()?.trim();
        let (scheme, rest) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = auth_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        Some(Challenge {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    })
}

/// `k="v, w",k2=v2` → pairs; quoted values may hold commas and `\"`.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.push((key, value));
    }
    out
}

/// The target of `Link: <…>; rel="next"`, if any.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers.get_all(LINK).iter().find_map(|v| {
        let v = v.to_str().ok()?;
        v.split(',').find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
            });
            is_next.then(|| target.to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn parses_ghcr_challenge() {
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:wordpress/openverse-catalog:pull,push""#,
            ),
        );
        let c = bearer_challenge(&h).unwrap();
        assert_eq!(c.realm, "https://ghcr.io/token");
        assert_eq!(c.service.as_deref(), Some("ghcr.io"));
        assert_eq!(
            c.scope.as_deref(),
            Some("repository:wordpress/openverse-catalog:pull,push")
        );
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="x""#),
        );
        assert_eq!(bearer_challenge(&h), None);
    }

    #[test]
    fn follows_next_links() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(r#"</v2/a/b/tags/list?last=v1&n=1>; rel="next""#),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("/v2/a/b/tags/list?last=v1&n=1")
        );
        h.insert(LINK, HeaderValue::from_static(r#"</x>; rel="prev""#));
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert!(same_origin("https://ghcr.io/token", "https://ghcr.io"));
        assert!(same_origin(
            "http://127.0.0.1:5000/token?x=1",
            "http://127.0.0.1:5000"
        ));
        assert!(!same_origin(
            "https://auth.docker.io/token",
            "https://registry-1.docker.io"
        ));
        assert!(!same_origin("http://ghcr.io/token", "https://ghcr.io"));
        assert!(!same_origin(
            "http://127.0.0.1:5001/token",
            "http://127.0.0.1:5000"
        ));
        assert!(!same_origin("not a url", "https://ghcr.io"));
    }

    #[test]
    fn tokens_stop_being_offered_a_little_before_they_expire() {
        // A fifth of the lifetime early, between 1 s and 30 s.
        assert_eq!(usable_until(1_000_000, 300), 1_000_000 + 270_000);
        assert_eq!(usable_until(0, 60), 48_000);
        assert_eq!(usable_until(0, 3_600), 3_570_000);
        assert!(usable_until(5_000, 1) <= 5_000, "never offered");
        assert!(usable_until(5_000, 0) < 5_000, "never offered");
        assert!(usable_until(0, u64::MAX) > 0, "no overflow");
    }

    #[test]
    fn image_names_are_lowercased_and_checked() {
        assert_eq!(
            checked_image("WordPress/openverse-catalog").unwrap(),
            "wordpress/openverse-catalog"
        );
        assert!(checked_image("a//b").is_err());
        assert!(checked_image("a b").is_err());
    }
}
