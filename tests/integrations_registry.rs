//! The registry client against the sandbox's fake registry: ghcr.io's bearer dance (and token
//! reuse), manifests with the full Accept list, tag pagination, and every way an answer can fail.

mod sandbox_support;

use std::time::{Duration, SystemTime};

use catalog_chatops::integrations::{Service, UpstreamError};
use catalog_chatops::sandbox::{Forced, IMAGE, OCI_INDEX, World};
use sandbox_support::{registry, sandbox};

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
    // `latest` and the monorepo's `rel-` tag are one image.
    assert_eq!(m.digest, digest_of(&h.world, "rel-2023.07.03.17.52.00"));
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
