//! Access to the pages beyond loopback: `Authorization: Bearer <SERVER_TOKEN>`, or a signed link
//! `?sig=<hex HMAC-SHA256(token, path)>` that the bot posts in chat so a click opens one page.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::AppState;

const BLOCK: usize = 64;

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        let d = Sha256::digest(key);
        k[..d.len()].copy_from_slice(&d);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().to_vec()
}

/// The `sig` parameter for `path` (e.g. `/deploys/7`).
pub fn sign_path(token: &str, path: &str) -> String {
    hex::encode(hmac_sha256(token.as_bytes(), path.as_bytes()))
}

/// Compares in constant time so the signature cannot be guessed byte by byte.
pub fn verify_signature(token: &str, path: &str, sig: &str) -> bool {
    let want = sign_path(token, path);
    want.len() == sig.len()
        && want
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub(super) async fn require(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if s.open {
        return next.run(req).await;
    }
    let Some(token) = s.token.as_ref().map(|t| t.expose_secret().to_string()) else {
        // Validation refuses a non-loopback bind without a token; fail closed all the same.
        return (
            StatusCode::FORBIDDEN,
            "pages are disabled: no SERVER_TOKEN\n",
        )
            .into_response();
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| equal(t.trim(), &token));
    let signed = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("sig=")))
        .is_some_and(|sig| verify_signature(&token, req.uri().path(), sig));
    if bearer || signed {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token or a signed link is required\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_bind_the_path() {
        let sig = sign_path("s3cret-token-value", "/deploys/7");
        assert!(verify_signature("s3cret-token-value", "/deploys/7", &sig));
        assert!(!verify_signature("s3cret-token-value", "/deploys/8", &sig));
        assert!(!verify_signature("other-token-value!", "/deploys/7", &sig));
    }
}
