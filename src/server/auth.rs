//! Access to the pages beyond loopback: `Authorization: Bearer <SERVER_TOKEN>`, or a signed link
//! `?sig=<hex HMAC-SHA256(token, path)>` that the bot posts in chat so a click opens one page
//! ([`crate::links`] signs and checks them).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::AppState;
use crate::links::verify_signature;

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
