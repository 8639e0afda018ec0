//! The registry client against the sandbox's fake registry: ghcr.io's bearer dance (and token
//! reuse, in one process and across processes through the store), manifests with the full Accept
//! list, tag pagination, and every way an answer can fail.

use crate::sandbox_support;
use crate::support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use catalog_chatops::auth_memory::RegistryRealm;
use catalog_chatops::integrations::registry::RegistryClient;
use catalog_chatops::integrations::{Service, UpstreamError};
use catalog_chatops::sandbox::{Forced, IMAGE, OCI_INDEX, SandboxHandle, World};
use catalog_chatops::store::Store;
use sandbox_support::{registry, sandbox};
use secrecy::{ExposeSecret, SecretString};
use support::all_backends;

const V153: &str = "/v2/wordpress/openverse-catalog/manifests/v1.5.3";

fn digest_of(world: &World, tag: &str) -> String {
    world.lock().registry.repos[IMAGE].tags[tag].clone()
}

fn token_requests(world: &World) -> u64 {
    world.count(Service::Registry, "GET /token")
}

#[tokio::test]
async fn the_bearer_challenge_is_followed_and_the_index_digest_returned() {
    let h = sandbox(World::openverse_idle()).await;
    let m = registry(&h, None)
        .manifest(IMAGE, "v1.5.3")
        .await
        .unwrap()
        .expect("the image exists");
    assert_eq!(m.digest, digest_of(&h.world, "v1.5.3"));
    assert_eq!(m.media_type, OCI_INDEX);
    // 401 → token → retry.
    assert_eq!(h.world.count(Service::Registry, &format!("HEAD {V153}")), 2);
    assert_eq!(token_requests(&h.world), 1);
}

#[tokio::test]
async fn a_token_is_reused_until_refused_then_exchanged_once_more() {
    let h = sandbox(World::openverse_idle()).await;
    let reg = registry(&h, None);
    for tag in ["v1.5.3", "latest", "rel-2023.07.03.17.52.00"] {
        assert!(reg.manifest(IMAGE, tag).await.unwrap().is_some());
    }
    assert_eq!(token_requests(&h.world), 1);
    // Only the very first request met a challenge.
    assert_eq!(h.world.count_prefix(Service::Registry, "HEAD /v2/"), 4);

    h.world.lock().registry.revoke_tokens();
    assert!(reg.manifest(IMAGE, "v1.5.3").await.unwrap().is_some());
    assert_eq!(token_requests(&h.world), 2);
}

#[tokio::test]
async fn a_known_realm_saves_the_401_round_trip_for_a_new_scope() {
    let h = sandbox(World::openverse_idle()).await;
    h.world
        .lock()
        .registry
        .push_image("wordpress/openverse-api", &["v2.0.0"], "api");
    let reg = registry(&h, None);
    assert!(reg.manifest(IMAGE, "v1.5.3").await.unwrap().is_some());
    let heads = h.world.count_prefix(Service::Registry, "HEAD /v2/");
    assert!(
        reg.manifest("wordpress/openverse-api", "v2.0.0")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        h.world.count_prefix(Service::Registry, "HEAD /v2/"),
        heads + 1
    );
    assert_eq!(token_requests(&h.world), 2);
}

#[tokio::test]
async fn missing_tags_and_images_are_none_and_names_are_lowercased() {
    let h = sandbox(World::openverse_idle()).await;
    let reg = registry(&h, None);
    assert_eq!(reg.manifest(IMAGE, "v1.5.2").await.unwrap(), None);
    assert_eq!(reg.manifest("wordpress/nothing", "v1").await.unwrap(), None);
    let m = reg
        .manifest("WordPress/openverse-catalog", "latest")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.digest, digest_of(&h.world, "latest"));
    // `latest` and the monorepo's newest `rel-` tag are one image.
    assert_eq!(m.digest, digest_of(&h.world, "rel-2026.11.30.10.00.00"));
}

#[tokio::test]
async fn a_registry_without_auth_needs_no_token() {
    let h = sandbox(World::openverse_idle()).await;
    h.world.lock().registry.require_auth = false;
    let m = registry(&h, None).manifest(IMAGE, "v1.5.3").await.unwrap();
    assert!(m.is_some());
    assert_eq!(token_requests(&h.world), 0);
    assert_eq!(h.world.count(Service::Registry, &format!("HEAD {V153}")), 1);
}

#[tokio::test]
async fn credentials_are_used_for_private_images_and_their_failures_are_named() {
    let h = sandbox(World::openverse_idle()).await;
    h.world.lock().registry.credentials = Some(("bot".into(), "s3cret-pass".into()));

    let ok = registry(&h, Some(("bot", "s3cret-pass")))
        .manifest(IMAGE, "v1.5.3")
        .await
        .unwrap();
    assert!(ok.is_some());

    let e = registry(&h, Some(("bot", "wrong-password")))
        .manifest(IMAGE, "v1.5.3")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "registry: token exchange refused (401) — check REGISTRY_USERNAME and REGISTRY_PASSWORD"
    );
    assert!(!format!("{e:?}").contains("wrong-password"));

    let e = registry(&h, None)
        .manifest(IMAGE, "v1.5.3")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("registry: 401 after an anonymous token exchange"),
        "{e}"
    );
}

#[tokio::test]
async fn a_token_refused_right_after_the_exchange_names_the_password() {
    let h = sandbox(World::openverse_idle()).await;
    let challenge = format!(
        "Bearer realm=\"{}/token\",service=\"sandbox-registry\",scope=\"repository:{IMAGE}:pull\"",
        h.registry_url
    );
    h.world.faults(Service::Registry, |f| {
        for _ in 0..2 {
            f.force(
                Forced::status(401)
                    .header("www-authenticate", &challenge)
                    .on("/v2/"),
            );
        }
    });
    let e = registry(&h, Some(("bot", "pw-1234")))
        .manifest(IMAGE, "v1.5.3")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "registry: 401 after token exchange — check REGISTRY_PASSWORD"
    );
    assert_eq!(token_requests(&h.world), 1);
}

#[tokio::test]
async fn without_a_digest_header_the_manifest_is_fetched_and_hashed() {
    let h = sandbox(World::openverse_idle()).await;
    h.world.lock().registry.omit_digest_header = true;
    let m = registry(&h, None)
        .manifest(IMAGE, "v1.5.3")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.digest, digest_of(&h.world, "v1.5.3"));
    assert_eq!(m.media_type, OCI_INDEX);
    assert_eq!(h.world.count(Service::Registry, &format!("GET {V153}")), 1);
}

#[tokio::test]
async fn tags_follow_link_pagination_up_to_the_cap() {
    let h = sandbox(World::openverse_idle()).await;
    let all: Vec<String> = h.world.lock().registry.repos[IMAGE]
        .tags
        .keys()
        .cloned()
        .collect();
    assert!(all.len() >= 9, "{all:?}");
    let reg = registry(&h, None);

    let t = reg.tags_paged(IMAGE, 2, 100).await.unwrap();
    assert_eq!(t.tags, all);
    assert!(!t.truncated);
    assert_eq!(t.pages, all.len().div_ceil(2));

    let t = reg.tags_paged(IMAGE, 2, 2).await.unwrap();
    assert_eq!(t.tags, all[..4]);
    assert!(t.truncated);

    // A server serving smaller pages than asked is still read to the end.
    h.world.faults(Service::Registry, |f| f.page_cap = Some(3));
    let t = reg.tags(IMAGE, 100).await.unwrap();
    assert_eq!(t.tags, all);
    assert_eq!(t.pages, all.len().div_ceil(3));

    assert!(
        reg.tags("wordpress/nothing", 5)
            .await
            .unwrap()
            .tags
            .is_empty()
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_for() {
    let h = sandbox(World::openverse_idle()).await;
    let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(1));
    h.world.faults(Service::Registry, |f| {
        f.force(Forced::too_many(&soon).on("/v2/"))
    });
    let m = registry(&h, None).manifest(IMAGE, "v1.5.3").await.unwrap();
    assert!(m.is_some());
    let e = {
        h.world.faults(Service::Registry, |f| {
            f.force(Forced::too_many("120").on("/v2/"))
        });
        registry(&h, None)
            .manifest(IMAGE, "v1.5.3")
            .await
            .unwrap_err()
    };
    assert!(matches!(e, UpstreamError::RetryLater { .. }), "{e}");
}

#[tokio::test]
async fn a_500_then_success_and_500s_until_exhaustion() {
    let h = sandbox(World::openverse_idle()).await;
    let reg = registry(&h, None);
    h.world.faults(Service::Registry, |f| {
        f.force(Forced::status(503).on("/v2/"))
    });
    assert!(reg.manifest(IMAGE, "v1.5.3").await.unwrap().is_some());

    h.world.faults(Service::Registry, |f| {
        for _ in 0..3 {
            f.force(Forced::status(500).on("/v2/"));
        }
    });
    let e = reg.manifest(IMAGE, "v1.5.3").await.unwrap_err();
    assert_eq!(e.to_string(), "registry: answered 500 three times");
}

#[tokio::test]
async fn a_hanging_registry_times_out() {
    let h = sandbox(World::openverse_idle()).await;
    h.world.faults(Service::Registry, |f| f.hang = true);
    let e = registry(&h, None)
        .manifest(IMAGE, "v1.5.3")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "registry: timed out after 500 ms (3 attempts)"
    );
}

#[tokio::test]
async fn malformed_and_truncated_answers_are_named() {
    let h = sandbox(World::openverse_idle()).await;
    let reg = registry(&h, None);
    h.world.faults(Service::Registry, |f| {
        f.force(Forced::garbage().on("/v2/wordpress/openverse-catalog/tags/list"))
    });
    let e = reg.tags(IMAGE, 10).await.unwrap_err();
    assert!(
        e.to_string().starts_with(
            "registry: malformed JSON from /v2/wordpress/openverse-catalog/tags/list: expected value"
        ),
        "{e}"
    );

    h.world.faults(Service::Registry, |f| {
        f.force(Forced::status(200).body("{\"nothing\": true}").on("/token"))
    });
    h.world.lock().registry.revoke_tokens();
    let fresh = registry(&h, None);
    let e = fresh.manifest(IMAGE, "v1.5.3").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "registry: malformed JSON from /token: no token in the answer"
    );

    h.world.faults(Service::Registry, |f| {
        for _ in 0..3 {
            f.force(Forced::truncated("{\"name\":\"wordp").on("/v2/wordpress"));
        }
    });
    let e = reg.tags(IMAGE, 10).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "registry: the answer from /v2/wordpress/openverse-catalog/tags/list was cut short (3 attempts)"
    );
}

// ---- what the dance teaches, kept in the store for the next process ----------------------------

/// Registry requests so far: (manifest HEADs, token requests).
fn requests(world: &World) -> (u64, u64) {
    (
        world.count(Service::Registry, &format!("HEAD {V153}")),
        token_requests(world),
    )
}

/// A client as a new process builds it: nothing in memory, `store` behind it.
fn remembering(h: &SandboxHandle, store: &Store, creds: Option<(&str, &str)>) -> RegistryClient {
    registry(h, creds).remembering(Arc::new(store.clone()))
}

/// The preflight's registry check (`v1.5.3` exists) as a new process makes it.
async fn check_as_a_new_process(h: &SandboxHandle, store: &Store, creds: Option<(&str, &str)>) {
    let m = remembering(h, store, creds)
        .manifest(IMAGE, "v1.5.3")
        .await
        .expect("the check is answered");
    assert!(m.is_some(), "the image exists");
}

/// The token the store keeps for the image's pull scope, if any.
async fn stored_token(store: &Store, h: &SandboxHandle) -> Option<SecretString> {
    store
        .registry_token(&h.registry_url, &pull_scope(), 0)
        .await
        .expect("read the store")
        .map(|(token, _)| token)
}

/// The scope the client asks tokens for, as the fake's challenge names it.
fn pull_scope() -> String {
    format!("repository:{IMAGE}:pull")
}

#[tokio::test]
async fn a_second_process_reuses_the_anonymous_token_and_saves_two_round_trips() {
    for t in all_backends().await {
        let h = sandbox(World::openverse_idle()).await;
        check_as_a_new_process(&h, &t.store, None).await;
        // 401 → token → HEAD.
        assert_eq!(requests(&h.world), (2, 1), "{}", t.backend);

        check_as_a_new_process(&h, &t.store, None).await;
        // Only the HEAD: neither the challenge nor the token exchange.
        assert_eq!(requests(&h.world), (3, 1), "{}", t.backend);
        // Without the store a new client dances again.
        assert!(
            registry(&h, None)
                .manifest(IMAGE, "v1.5.3")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(requests(&h.world), (5, 2), "{}", t.backend);
        h.shutdown().await;
    }
}

#[tokio::test]
async fn with_credentials_only_the_realm_is_kept_and_saves_the_challenge() {
    for t in all_backends().await {
        let h = sandbox(World::openverse_idle()).await;
        h.world.lock().registry.credentials = Some(("bot".into(), "s3cret-pass".into()));
        let creds = Some(("bot", "s3cret-pass"));
        check_as_a_new_process(&h, &t.store, creds).await;
        assert_eq!(requests(&h.world), (2, 1), "{}", t.backend);
        let realm = t
            .store
            .registry_realm(&h.registry_url)
            .await
            .unwrap()
            .expect("the realm is kept");
        assert_eq!(realm.realm, format!("{}/token", h.registry_url));
        // The token it got with the password is a secret of this process: not in the store.
        assert!(stored_token(&t.store, &h).await.is_none(), "{}", t.backend);

        check_as_a_new_process(&h, &t.store, creds).await;
        // A token from the known realm, then the HEAD: the 401 round trip is saved.
        assert_eq!(requests(&h.world), (3, 2), "{}", t.backend);
        h.shutdown().await;
    }
}

#[tokio::test]
async fn an_expired_stored_token_is_not_offered() {
    for t in all_backends().await {
        let h = sandbox(World::openverse_idle()).await;
        check_as_a_new_process(&h, &t.store, None).await;
        let token = stored_token(&t.store, &h)
            .await
            .expect("the anonymous token is kept");
        // The registry would still take it, but it expired a minute ago by its own lifetime.
        let expired = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - 60_000;
        t.store
            .remember_registry_token(&h.registry_url, &pull_scope(), &token, expired)
            .await
            .unwrap();
        assert!(
            t.store
                .registry_token(&h.registry_url, &pull_scope(), expired + 1)
                .await
                .unwrap()
                .is_none()
        );

        check_as_a_new_process(&h, &t.store, None).await;
        // A fresh token from the remembered realm (no 401), then the HEAD.
        assert_eq!(requests(&h.world), (3, 2), "{}", t.backend);
        let fresh = stored_token(&t.store, &h)
            .await
            .expect("the new token is kept");
        assert_ne!(fresh.expose_secret(), token.expose_secret());
        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_stored_token_the_registry_refuses_falls_back_to_the_dance() {
    for t in all_backends().await {
        let h = sandbox(World::openverse_idle()).await;
        check_as_a_new_process(&h, &t.store, None).await;
        let old = stored_token(&t.store, &h).await.expect("kept");
        h.world.lock().registry.revoke_tokens();

        check_as_a_new_process(&h, &t.store, None).await;
        // The stored token → 401 → a token from the challenge's realm → HEAD.
        assert_eq!(requests(&h.world), (4, 2), "{}", t.backend);
        let new = stored_token(&t.store, &h)
            .await
            .expect("the new token replaces the refused one");
        assert_ne!(new.expose_secret(), old.expose_secret());
        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_stored_realm_that_no_longer_answers_is_forgotten() {
    for t in all_backends().await {
        let h = sandbox(World::openverse_idle()).await;
        let moved = RegistryRealm {
            realm: format!("{}/token", support::CLOSED),
            service: Some("sandbox-registry".into()),
        };
        t.store
            .remember_registry_realm(&h.registry_url, &moved)
            .await
            .unwrap();
        check_as_a_new_process(&h, &t.store, None).await;
        // The dead realm cost a refused connection; then the full dance.
        assert_eq!(requests(&h.world), (2, 1), "{}", t.backend);
        let realm = t
            .store
            .registry_realm(&h.registry_url)
            .await
            .unwrap()
            .expect("relearnt");
        assert_eq!(realm.realm, format!("{}/token", h.registry_url));
        h.shutdown().await;
    }
}

#[tokio::test]
async fn tokens_never_show_in_debug_output_or_errors() {
    let t = support::sqlite().await;
    let h = sandbox(World::openverse_idle()).await;
    let reg = remembering(&h, &t.store, None);
    assert!(reg.manifest(IMAGE, "v1.5.3").await.unwrap().is_some());
    let issued: Vec<String> = h.world.lock().registry.tokens.keys().cloned().collect();
    assert_eq!(issued.len(), 1);
    let stored = stored_token(&t.store, &h).await.expect("kept");
    assert_eq!(stored.expose_secret(), issued[0]);
    for shown in [format!("{reg:?}"), format!("{stored:?}")] {
        assert!(!shown.contains(&issued[0]), "{shown}");
    }
    h.shutdown().await;
}

/// Two `exec` processes, one after the other, on one store: the second's preflight asks the
/// registry once (the manifest), where the first needed the challenge and the token as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_exec_process_skips_the_token_dance() {
    const BIN: &str = env!("CARGO_BIN_EXE_catalog-chatops");
    let h = sandbox(World::openverse_idle()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store_url = support::store_url(dir.path()).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let before = h.world.count_prefix(Service::Registry, "");
        let out = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sandbox.toml"))
            .args(["exec", "--json", "!deploy check catalog v1.5.3"])
            .env("CATALOG_CHATOPS__STORE__URL", &store_url)
            .env("CATALOG_CHATOPS__GITHUB__API_URL", &h.github_url)
            .env("CATALOG_CHATOPS__REGISTRY__URL", &h.registry_url)
            .env("CATALOG_CHATOPS__AIRFLOW__URL", &h.airflow_url)
            .env("AIRFLOW_PASSWORD", "sandbox")
            .env_remove("CATALOG_CHATOPS_CONFIG")
            .env_remove("REGISTRY_USERNAME")
            .env_remove("REGISTRY_PASSWORD")
            .current_dir(dir.path())
            .kill_on_drop(true)
            .output()
            .await
            .expect("run exec");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("\"outcome\":\"ok\""), "{stdout}");
        seen.push(h.world.count_prefix(Service::Registry, "") - before);
    }
    assert_eq!(
        seen,
        [3, 1],
        "registry requests of the first and the second process"
    );
    h.shutdown().await;
}

/// A stored realm gets the registry password only on the registry's own origin: a realm on
/// another host must come from the registry's challenge, so whoever can write the store cannot
/// collect the password.
#[tokio::test]
async fn a_stored_realm_elsewhere_never_gets_the_password() {
    let t = support::sqlite().await;
    let h = sandbox(World::openverse_idle()).await;
    let elsewhere = sandbox(World::openverse_idle()).await;
    h.world.lock().registry.credentials = Some(("bot".into(), "s3cret-pass".into()));
    let planted = RegistryRealm {
        realm: format!("{}/token", elsewhere.registry_url),
        service: Some("sandbox-registry".into()),
    };
    t.store
        .remember_registry_realm(&h.registry_url, &planted)
        .await
        .unwrap();
    let m = remembering(&h, &t.store, Some(("bot", "s3cret-pass")))
        .manifest(IMAGE, "v1.5.3")
        .await
        .unwrap();
    assert!(m.is_some());
    assert_eq!(
        token_requests(&elsewhere.world),
        0,
        "the planted realm was asked"
    );
    // The full dance at the registry's own realm, which replaces the planted one.
    assert_eq!(requests(&h.world), (2, 1));
    let realm = t
        .store
        .registry_realm(&h.registry_url)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(realm.realm, format!("{}/token", h.registry_url));
    h.shutdown().await;
    elsewhere.shutdown().await;
}
