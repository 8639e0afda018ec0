//! The GitHub client against the sandbox's fake GitHub: both tag schemes, drafts, "latest",
//! rate limits, and every way an answer can fail.

use crate::sandbox_support;

use std::time::{Duration, Instant, SystemTime};

use catalog_chatops::integrations::{Service, UpstreamError};
use catalog_chatops::sandbox::{CATALOG_REPO, Forced, MONOREPO, RateLimit, World};
use sandbox_support::{github, sandbox};

const TAG_PATH: &str = "/repos/WordPress/openverse-catalog/releases/tags/v1.5.3";
const TOKEN: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";

#[tokio::test]
async fn finds_releases_in_both_tag_schemes() {
    let h = sandbox(World::openverse_idle()).await;
    let gh = github(&h, None);

    let r = gh
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.tag, "v1.5.3");
    assert!(!r.draft && !r.prerelease);
    assert_eq!(r.published_at.as_deref(), Some("2023-03-09T18:11:38Z"));
    assert_eq!(
        r.html_url,
        "https://github.com/WordPress/openverse-catalog/releases/tag/v1.5.3"
    );

    let r = gh
        .release_by_tag(MONOREPO, "catalog-2023.07.03.17.52.00")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.published_at.as_deref(), Some("2023-07-03T17:52:00Z"));
    assert_eq!(
        h.world.count(Service::Github, &format!("GET {TAG_PATH}")),
        1
    );
}

#[tokio::test]
async fn a_missing_release_is_none() {
    let h = sandbox(World::openverse_idle()).await;
    let gh = github(&h, None);
    assert_eq!(
        gh.release_by_tag(CATALOG_REPO, "v9.9.9").await.unwrap(),
        None
    );
    assert_eq!(
        gh.release_by_tag("nobody/nothing", "v1.0.0").await.unwrap(),
        None
    );
    assert!(gh.release_by_tag("not-a-repo", "v1").await.is_err());
}

#[tokio::test]
async fn a_draft_is_shown_as_a_draft_to_a_token_and_hidden_from_anonymous_callers() {
    let h = sandbox(World::openverse_idle()).await;
    assert_eq!(
        github(&h, None)
            .release_by_tag(CATALOG_REPO, "v1.6.0")
            .await
            .unwrap(),
        None
    );
    let r = github(&h, Some(TOKEN))
        .release_by_tag(CATALOG_REPO, "v1.6.0")
        .await
        .unwrap()
        .expect("the draft, for a token");
    assert!(r.draft);
    assert_eq!(r.published_at, None);
}

#[tokio::test]
async fn latest_is_the_newest_published_release() {
    let h = sandbox(World::openverse_idle()).await;
    let gh = github(&h, Some(TOKEN));
    // The draft v1.6.0 is newer but does not count.
    let r = gh.latest_release(CATALOG_REPO).await.unwrap().unwrap();
    assert_eq!(r.tag, "v1.5.3");
    // In the monorepo GitHub's "latest" may be another component's release…
    let r = gh.latest_release(MONOREPO).await.unwrap().unwrap();
    assert!(r.tag.starts_with("frontend-"));
    // …so the catalog's is found by prefix.
    let r = gh
        .latest_release_with_prefix(MONOREPO, "catalog-")
        .await
        .unwrap()
        .unwrap();
    // The newer draft does not count.
    assert_eq!(r.tag, "catalog-2026.11.30.10.00.00");
    assert_eq!(gh.latest_release("nobody/nothing").await.unwrap(), None);
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_for() {
    let h = sandbox(World::openverse_idle()).await;
    h.world
        .faults(Service::Github, |f| f.force(Forced::too_many("1")));
    let started = Instant::now();
    let r = github(&h, None)
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap();
    assert!(r.is_some());
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(
        h.world.count(Service::Github, &format!("GET {TAG_PATH}")),
        2
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_fails_at_once_saying_when() {
    let h = sandbox(World::openverse_idle()).await;
    let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    h.world
        .faults(Service::Github, |f| f.force(Forced::too_many(&later)));
    let e = github(&h, None)
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap_err();
    assert!(
        matches!(e, UpstreamError::RetryLater { status: 429, .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("github: answered 429 and asked to retry after "),
        "{e}"
    );
    assert_eq!(
        h.world.count(Service::Github, &format!("GET {TAG_PATH}")),
        1
    );
}

#[tokio::test]
async fn a_500_then_success_is_retried() {
    let h = sandbox(World::openverse_idle()).await;
    h.world
        .faults(Service::Github, |f| f.force(Forced::status(500)));
    let r = github(&h, None)
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap();
    assert!(r.is_some());
    assert_eq!(
        h.world.count(Service::Github, &format!("GET {TAG_PATH}")),
        2
    );
}

#[tokio::test]
async fn three_500s_exhaust_the_retries() {
    let h = sandbox(World::openverse_idle()).await;
    h.world.faults(Service::Github, |f| {
        for _ in 0..3 {
            f.force(Forced::status(500));
        }
    });
    let e = github(&h, None)
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "github: answered 500 three times");
    assert_eq!(
        h.world.count(Service::Github, &format!("GET {TAG_PATH}")),
        3
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let h = sandbox(World::openverse_idle()).await;
    h.world.faults(Service::Github, |f| f.hang = true);
    let e = github(&h, None)
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "github: timed out after 500 ms (3 attempts)");
}

#[tokio::test]
async fn malformed_json_is_named_with_its_path() {
    let h = sandbox(World::openverse_idle()).await;
    h.world
        .faults(Service::Github, |f| f.force(Forced::garbage()));
    let e = github(&h, None)
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "github: malformed JSON from {TAG_PATH}: expected value"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn a_truncated_body_is_retried_then_reported() {
    let h = sandbox(World::openverse_idle()).await;
    h.world
        .faults(Service::Github, |f| f.force(Forced::truncated("{\"tag_na")));
    let r = github(&h, None)
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap();
    assert!(r.is_some(), "the second attempt gets the whole body");

    h.world.faults(Service::Github, |f| {
        for _ in 0..3 {
            f.force(Forced::truncated("{\"tag_na"));
        }
    });
    let e = github(&h, None)
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("github: the answer from {TAG_PATH} was cut short (3 attempts)")
    );
}

#[tokio::test]
async fn an_exhausted_rate_limit_fails_at_once_with_the_reset_time() {
    let h = sandbox(World::openverse_idle()).await;
    let reset = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    h.world.lock().github.rate_limit = Some(RateLimit {
        limit: 60,
        remaining: 0,
        reset,
    });
    let e = github(&h, None)
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::RateLimited { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("github: rate limit exhausted until "),
        "{msg}"
    );
    assert!(msg.contains(" UTC — set GITHUB_TOKEN"), "{msg}");
    assert_eq!(
        h.world.count(Service::Github, &format!("GET {TAG_PATH}")),
        1
    );
}

#[tokio::test]
async fn the_token_never_appears_in_errors() {
    let h = sandbox(World::openverse_idle()).await;
    h.world.faults(Service::Github, |f| {
        f.force(Forced::status(401).body(&format!("{{\"message\":\"bad {TOKEN}\"}}")))
    });
    let e = github(&h, Some(TOKEN))
        .release_by_tag(CATALOG_REPO, "v1.5.3")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "github: 401 — GITHUB_TOKEN was refused; check it"
    );
    assert!(!format!("{e:?}").contains(TOKEN));
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    let h = sandbox(World::openverse_idle()).await;
    let url = h.github_url.clone();
    h.shutdown().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gh = catalog_chatops::integrations::github::GithubClient::new(
        &url,
        None,
        sandbox_support::policy(),
    )
    .unwrap();
    let e = gh.release_by_tag(CATALOG_REPO, "v1.5.3").await.unwrap_err();
    assert!(
        matches!(e, UpstreamError::Connect { attempts: 3, .. }),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("github: could not connect ("),
        "{e}"
    );
}

#[tokio::test]
async fn shutting_the_sandbox_down_releases_hanging_requests() {
    let h = sandbox(World::openverse_idle()).await;
    h.world.faults(Service::Github, |f| f.hang = true);
    let url = format!("{}{TAG_PATH}", h.github_url);
    let pending = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pending.is_finished());
    tokio::time::timeout(Duration::from_secs(5), h.shutdown())
        .await
        .expect("shutdown completes");
    let answer = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the hanging request ends")
        .unwrap();
    assert_ne!(answer.ok(), Some(reqwest::StatusCode::OK));
}
