//! Links to the server's pages that the bot posts in chat, built from the configuration alone so
//! the workflow needs nothing from the server. Beyond loopback the pages want
//! `Authorization: Bearer <SERVER_TOKEN>`; a link carries `?sig=<hex HMAC-SHA256(token, path)>`
//! instead, which opens exactly the page it names (the server checks it with
//! [`verify_signature`]).

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The link to deploy `deploy_id`'s page when `[server] public_url` is set; for the chat thread
/// and the status card.
pub fn deploy_page(config: &Config, deploy_id: i64) -> Option<String> {
    let base = config.server.public_url.as_deref()?;
    let path = format!("/deploys/{deploy_id}");
    Some(match &config.secrets.server_token {
        // A signed link opens without the bearer token; it names exactly one page.
        Some(token) if !config.server.bind.ip().is_loopback() => {
            format!(
                "{base}{path}?sig={}",
                sign_path(token.expose_secret(), &path)
            )
        }
        _ => format!("{base}{path}"),
    })
}

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

    /// A valid configuration with the pages at `https://chatops.example.org`, bound to `bind`,
    /// with `token` as `SERVER_TOKEN` (set after loading: secrets come from the process env).
    fn config(bind: &str, token: Option<&str>) -> Config {
        let toml = "[server]\npublic_url = \"https://chatops.example.org\"\n\
             [targets.catalog]\nrepo = \"WordPress/openverse-catalog\"\n\
             image = \"wordpress/openverse-catalog\"\nworkdir = \"/srv/infra\"\n\
             bump = [\"just\", \"bump\", \"{version}\"]\nplan = [\"just\", \"plan\"]\n\
             apply = [\"just\", \"apply\"]\n";
        let mut c = crate::config::load_from_str(toml, &[]).expect("a valid config");
        c.server.bind = bind.parse().expect("an address");
        c.secrets.server_token = token.map(secrecy::SecretString::from);
        c
    }

    #[test]
    fn a_page_link_is_signed_only_where_the_pages_need_a_token() {
        let token = "s3cret-token-value";
        let open = config("127.0.0.1:8080", None);
        assert_eq!(
            deploy_page(&open, 7).as_deref(),
            Some("https://chatops.example.org/deploys/7")
        );
        // On loopback the pages are open, so the link needs no signature even with a token.
        assert_eq!(
            deploy_page(&config("127.0.0.1:8080", Some(token)), 7).as_deref(),
            Some("https://chatops.example.org/deploys/7")
        );
        let mut unlinked = config("127.0.0.1:8080", None);
        unlinked.server.public_url = None;
        assert_eq!(deploy_page(&unlinked, 7), None, "no public URL, no link");
        let public = config("0.0.0.0:8080", Some(token));
        let link = deploy_page(&public, 7).expect("a link");
        let sig = link
            .strip_prefix("https://chatops.example.org/deploys/7?sig=")
            .expect("signed");
        assert!(verify_signature(token, "/deploys/7", sig), "{link}");
        assert!(!link.contains(token), "the token never leaves: {link}");
    }
}
