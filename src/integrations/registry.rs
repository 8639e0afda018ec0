//! The container registry over the OCI distribution API: does an image tag exist, and what is its
//! digest (pinned with the deploy); which tags exist.
//!
//! ghcr.io wants a bearer token even for public images: the first request gets `401` with
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, the token comes from the realm (basic auth
//! with REGISTRY_USERNAME/REGISTRY_PASSWORD when set, anonymous otherwise), and the request is
//! retried with it. Tokens are cached per scope and reused until the registry refuses one; the
//! realm is remembered so a new scope skips the 401 round trip. A registry without auth works too.

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
use crate::config::Config;

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

#[derive(Debug, Default)]
struct AuthCache {
    /// scope → bearer token.
    tokens: HashMap<String, String>,
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
        })
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

    /// One request with the bearer dance: a cached token first (or one fetched from a realm we
    /// already know), then on a challenge one fresh exchange and one retry.
    async fn authed(
        &self,
        method: Method,
        path: &str,
        scope: &str,
        accept: &str,
    ) -> Result<Raw, UpstreamError> {
        let (mut token, known_realm) = {
            let c = self.cache();
            (c.tokens.get(scope).cloned(), c.realm.clone())
        };
        let mut fresh = false;
        if token.is_none()
            && let Some(realm) = known_realm
        {
            token = Some(self.exchange(&realm, scope).await?);
            fresh = true;
        }
        loop {
            let raw = self
                .send_once(method.clone(), path, accept, token.as_deref())
                .await?;
            if raw.status != StatusCode::UNAUTHORIZED {
                return Ok(raw);
            }
            if fresh {
                self.cache().tokens.remove(scope);
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
            {
                let mut c = self.cache();
                c.tokens.remove(scope);
                c.realm = Some(Challenge {
                    scope: None,
                    ..challenge.clone()
                });
            }
            let wanted = challenge.scope.as_deref().unwrap_or(scope).to_string();
            token = Some(self.exchange(&challenge, &wanted).await?);
            fresh = true;
        }
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        token: Option<&str>,
    ) -> Result<Raw, UpstreamError> {
        let url = self.url(path);
        self.policy
            .run(SERVICE, path_only(path), || {
                let mut rb = self
                    .http
                    .request(method.clone(), &url)
                    .header(ACCEPT, accept);
                if let Some(t) = token {
                    rb = rb.bearer_auth(t);
                }
                send(rb)
            })
            .await
    }

    /// Fetches a token for `scope` from the challenge's realm and caches it under `scope`.
    async fn exchange(&self, challenge: &Challenge, scope: &str) -> Result<String, UpstreamError> {
        #[derive(Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
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
        self.cache().tokens.insert(scope.to_string(), token.clone());
        Ok(token)
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
    fn image_names_are_lowercased_and_checked() {
        assert_eq!(
            checked_image("WordPress/openverse-catalog").unwrap(),
            "wordpress/openverse-catalog"
        );
        assert!(checked_image("a//b").is_err());
        assert!(checked_image("a b").is_err());
    }
}
