//! The fake container registry: the OCI distribution API's manifest and tag endpoints behind
//! ghcr.io's bearer-token challenge, with images stored as real OCI indexes and manifests whose
//! digests are the sha256 of their bytes. [`oci_image`] also seeds the real-registry test.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::faults::Faults;
use super::{Ctx, QueryPairs, basic_credentials, bearer, query_value, random_token};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

#[derive(Debug, Clone, Default)]
pub struct RegistryWorld {
    /// Demand the bearer-token dance (ghcr.io does, even for public images).
    pub require_auth: bool,
    /// When set, the token realm wants these (wrong ones get `401`), and tokens issued
    /// anonymously cannot pull: the images are private.
    pub credentials: Option<(String, String)>,
    /// Leave `Docker-Content-Digest` out of manifest answers (some registries and proxies do).
    pub omit_digest_header: bool,
    /// repository name (lowercase) → content.
    pub repos: BTreeMap<String, SimRepo>,
    /// issued token → (scope, may pull).
    pub tokens: HashMap<String, (String, bool)>,
    pub faults: Faults,
}

impl RegistryWorld {
    /// Stores a fresh two-platform image (an OCI index over two manifests) under `tags`;
    /// `seed` makes the content, hence the digest, distinct. Returns the index digest.
    pub fn push_image(&mut self, repo: &str, tags: &[&str], seed: &str) -> String {
        let image = oci_image(seed);
        let r = self.repos.entry(repo.to_ascii_lowercase()).or_default();
        for m in &image.manifests {
            r.manifests.insert(m.digest.clone(), m.clone());
        }
        r.manifests
            .insert(image.index.digest.clone(), image.index.clone());
        for t in tags {
            r.tags.insert(t.to_string(), image.index.digest.clone());
        }
        image.index.digest
    }

    pub fn remove_tag(&mut self, repo: &str, tag: &str) {
        if let Some(r) = self.repos.get_mut(&repo.to_ascii_lowercase()) {
            r.tags.remove(tag);
        }
    }

    /// Forgets every issued token: the next request with one gets a fresh challenge.
    pub fn revoke_tokens(&mut self) {
        self.tokens.clear();
    }
}

#[derive(Debug, Clone, Default)]
pub struct SimRepo {
    /// tag → manifest digest.
    pub tags: BTreeMap<String, String>,
    /// digest → manifest or index.
    pub manifests: HashMap<String, SimBlob>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBlob {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl SimBlob {
    fn new(media_type: &str, bytes: Vec<u8>) -> SimBlob {
        SimBlob {
            digest: sha256_digest(&bytes),
            media_type: media_type.to_string(),
            bytes,
        }
    }
}

/// A complete two-platform image: blobs (configs and layers), the platform manifests, and the
/// index over them, all content-addressed.
#[derive(Debug, Clone)]
pub struct OciImage {
    pub blobs: Vec<SimBlob>,
    pub manifests: Vec<SimBlob>,
    pub index: SimBlob,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Builds an image whose content (and so every digest) depends on `seed`.
pub fn oci_image(seed: &str) -> OciImage {
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layer = SimBlob::new(
            OCI_LAYER,
            format!("catalog image {seed} layer for {arch}").into_bytes(),
        );
        let config = SimBlob::new(
            OCI_CONFIG,
            json!({
                "architecture": arch,
                "os": "linux",
                "config": {"Labels": {"org.opencontainers.image.version": seed}},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            })
            .to_string()
            .into_bytes(),
        );
        let manifest = SimBlob::new(
            OCI_MANIFEST,
            json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.bytes.len()},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer.digest, "size": layer.bytes.len()}],
            })
            .to_string()
            .into_bytes(),
        );
        blobs.push(config);
        blobs.push(layer);
        manifests.push((arch, manifest));
    }
    let index = SimBlob::new(
        OCI_INDEX,
        json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests.iter().map(|(arch, m)| json!({
                "mediaType": OCI_MANIFEST,
                "digest": m.digest,
                "size": m.bytes.len(),
                "platform": {"architecture": arch, "os": "linux"},
            })).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes(),
    );
    OciImage {
        blobs,
        manifests: manifests.into_iter().map(|(_, m)| m).collect(),
        index,
    }
}

pub(super) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/token", get(token))
        .route("/v2/", get(root))
        .route("/v2/{*rest}", get(v2))
}

fn error(status: u16, code: &str, message: &str) -> Response {
    super::json(
        status,
        json!({"errors": [{"code": code, "message": message, "detail": null}]}),
    )
}

/// `401` with the challenge ghcr.io sends.
fn challenge(ctx: &Ctx, repo: Option<&str>) -> Response {
    let mut value = format!(
        "Bearer realm=\"{}/token\",service=\"sandbox-registry\"",
        ctx.base
    );
    if let Some(repo) = repo {
        value.push_str(&format!(",scope=\"repository:{repo}:pull\""));
    }
    let mut resp = error(401, "UNAUTHORIZED", "authentication required");
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Whether the request may read `repo`: no auth demanded, or a token that covers it.
fn may_pull(ctx: &Ctx, headers: &HeaderMap, repo: Option<&str>) -> bool {
    let w = ctx.world.lock();
    if !w.registry.require_auth {
        return true;
    }
    let Some(token) = bearer(headers) else {
        return false;
    };
    match (w.registry.tokens.get(&token), repo) {
        (Some(_), None) => true,
        (Some((scope, pull)), Some(repo)) => *pull && scope_covers(scope, repo),
        (None, _) => false,
    }
}

/// `repository:a/b:pull` (possibly several, space-separated) covers `a/b`.
fn scope_covers(scope: &str, repo: &str) -> bool {
    scope.split(' ').any(|s| {
        let mut parts = s.splitn(3, ':');
        parts.next() == Some("repository")
            && parts.next() == Some(repo)
            && parts
                .next()
                .is_some_and(|a| a.split(',').any(|a| a == "pull"))
    })
}

async fn token(State(ctx): State<Ctx>, headers: HeaderMap, query: QueryPairs) -> Response {
    let scope = query_value(&query, "scope").unwrap_or("").to_string();
    let given = basic_credentials(&headers);
    let mut w = ctx.world.lock();
    let pull = match (&w.registry.credentials, given) {
        (None, _) => true,
        (Some(want), Some(got)) if *want == got => true,
        (Some(_), Some(_)) => {
            drop(w);
            return error(401, "UNAUTHORIZED", "invalid username or password");
        }
        // Anonymous: a token, but one that cannot pull private images.
        (Some(_), None) => false,
    };
    let token = random_token("sbx_");
    w.registry.tokens.insert(token.clone(), (scope, pull));
    drop(w);
    super::json(
        200,
        json!({"token": token, "access_token": token, "expires_in": 300}),
    )
}

async fn root(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if !may_pull(&ctx, &headers, None) {
        return challenge(&ctx, None);
    }
    super::json(200, json!({}))
}

async fn v2(
    State(ctx): State<Ctx>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
    query: QueryPairs,
) -> Response {
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        if !may_pull(&ctx, &headers, Some(repo)) {
            return challenge(&ctx, Some(repo));
        }
        return manifest(&ctx, repo, reference, &method, &headers);
    }
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        if !may_pull(&ctx, &headers, Some(repo)) {
            return challenge(&ctx, Some(repo));
        }
        return tags(&ctx, repo, &query);
    }
    error(404, "NOT_FOUND", "no such endpoint")
}

fn manifest(
    ctx: &Ctx,
    repo: &str,
    reference: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let (blob, omit_digest) = {
        let w = ctx.world.lock();
        let Some(r) = w.registry.repos.get(repo) else {
            return error(404, "NAME_UNKNOWN", "repository name not known to registry");
        };
        let digest = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            r.tags.get(reference).cloned()
        };
        let blob = digest.and_then(|d| r.manifests.get(&d).cloned());
        (blob, w.registry.omit_digest_header)
    };
    let Some(blob) = blob else {
        return error(404, "MANIFEST_UNKNOWN", "manifest unknown");
    };
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let accepted = |t: &str| {
        accept
            .split(',')
            .any(|a| a.split(';').next().unwrap_or("").trim() == t)
    };
    // Like distribution: an index is only served to clients that say they understand one.
    if (blob.media_type == OCI_INDEX || blob.media_type == DOCKER_LIST)
        && !accepted(&blob.media_type)
    {
        return error(
            404,
            "MANIFEST_UNKNOWN",
            "OCI index found, but accept header does not support OCI indexes",
        );
    }
    let len = blob.bytes.len();
    let body = if method == Method::HEAD {
        Vec::new()
    } else {
        blob.bytes
    };
    let mut resp = (axum::http::StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&blob.media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if !omit_digest && let Ok(v) = HeaderValue::from_str(&blob.digest) {
        h.insert("docker-content-digest", v);
    }
    h.insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

fn tags(ctx: &Ctx, repo: &str, query: &[(String, String)]) -> Response {
    let (all, cap) = {
        let w = ctx.world.lock();
        let Some(r) = w.registry.repos.get(repo) else {
            return error(404, "NAME_UNKNOWN", "repository name not known to registry");
        };
        (
            r.tags.keys().cloned().collect::<Vec<_>>(),
            w.registry.faults.page_cap,
        )
    };
    let n = query_value(query, "n")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(all.len().max(1))
        .max(1)
        .min(cap.unwrap_or(usize::MAX));
    let last = query_value(query, "last");
    let rest: Vec<&String> = all
        .iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    let page: Vec<&String> = rest.iter().take(n).copied().collect();
    let mut resp = super::json(200, json!({"name": repo, "tags": page}));
    if rest.len() > n
        && let Some(last) = page.last()
        && let Ok(v) = HeaderValue::from_str(&format!(
            "</v2/{repo}/tags/list?last={last}&n={n}>; rel=\"next\""
        ))
    {
        resp.headers_mut().insert(header::LINK, v);
    }
    resp
}
