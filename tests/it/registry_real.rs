//! The registry client against a real `docker-registry` (the Debian package of
//! distribution/distribution): its own config without auth, filesystem storage in a temp dir,
//! seeded over HTTP with blobs, two platform manifests and an OCI index.
//!
//! A required tier in CI: with `CI=true` a missing binary fails the test; elsewhere it skips
//! with the reason printed.

use crate::sandbox_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use catalog_chatops::integrations::registry::{MANIFEST_ACCEPT, RegistryClient};
use catalog_chatops::sandbox::{OCI_INDEX, OCI_MANIFEST, oci_image};
use reqwest::StatusCode;

const BINARY: &str = "/usr/bin/docker-registry";
const IMAGE: &str = "wordpress/openverse-catalog";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// The running registry; killed when dropped, whatever the test did.
struct Registry {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start_registry() -> Option<Registry> {
    if !std::path::Path::new(BINARY).exists() {
        if in_ci() {
            panic!("{BINARY} is required in CI (apt-get install docker-registry)");
        }
        eprintln!("skipping: {BINARY} is not installed (apt-get install docker-registry)");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        dir.path().join("data").display()
    );
    let config_path = dir.path().join("config.yml");
    std::fs::write(&config_path, config).expect("write the registry config");
    let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
    let child = tokio::process::Command::new(BINARY)
        .arg("serve")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start docker-registry");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = http.get(format!("{url}/v2/")).send().await
            && r.status() == StatusCode::OK
        {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
            panic!("docker-registry did not answer /v2/ within 15 s; its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Registry {
        child,
        url,
        _dir: dir,
    })
}

/// Uploads a blob with the two-step upload (POST, then PUT with the digest).
async fn upload_blob(http: &reqwest::Client, base: &str, digest: &str, bytes: &[u8]) {
    let r = http
        .post(format!("{base}/v2/{IMAGE}/blobs/uploads/"))
        .send()
        .await
        .expect("start upload");
    assert_eq!(r.status(), StatusCode::ACCEPTED, "start upload");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("upload location")
        .to_string();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = http
        .put(format!("{location}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("finish upload");
    assert_eq!(r.status(), StatusCode::CREATED, "finish upload of {digest}");
}

async fn put_manifest(
    http: &reqwest::Client,
    base: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) {
    let r = http
        .put(format!("{base}/v2/{IMAGE}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("put manifest");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "put manifest {reference}: {body}"
    );
}

#[tokio::test]
async fn manifests_and_tags_from_a_real_registry() {
    let Some(mut registry) = start_registry().await else {
        return;
    };
    let base = registry.url.clone();
    let http = reqwest::Client::new();

    // Seed: blobs, the two platform manifests (by digest), the index under two tags, and one
    // platform manifest under a tag of its own.
    let image = oci_image("real-registry");
    for b in &image.blobs {
        upload_blob(&http, &base, &b.digest, &b.bytes).await;
    }
    for m in &image.manifests {
        put_manifest(&http, &base, &m.digest, OCI_MANIFEST, &m.bytes).await;
    }
    for tag in ["v1.5.3", "latest"] {
        put_manifest(&http, &base, tag, OCI_INDEX, &image.index.bytes).await;
    }
    let amd64 = &image.manifests[0];
    put_manifest(&http, &base, "amd64-only", OCI_MANIFEST, &amd64.bytes).await;

    let client = RegistryClient::new(&base, None, None, sandbox_support::policy()).expect("client");

    let m = client
        .manifest("WordPress/openverse-catalog", "v1.5.3")
        .await
        .expect("manifest")
        .expect("the tag exists");
    assert_eq!(m.digest, image.index.digest);
    assert_eq!(m.media_type, OCI_INDEX);

    let m = client.manifest(IMAGE, "amd64-only").await.unwrap().unwrap();
    assert_eq!(m.digest, amd64.digest);
    assert_eq!(m.media_type, OCI_MANIFEST);

    // Without the index types in Accept, the registry does not answer with the index.
    let narrow = http
        .head(format!("{base}/v2/{IMAGE}/manifests/v1.5.3"))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    let narrow_digest = narrow
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert!(
        narrow.status() != StatusCode::OK || narrow_digest.as_deref() != Some(&image.index.digest),
        "a HEAD without the index types got the index ({})",
        narrow.status()
    );
    // The full list is what makes the difference.
    let full = http
        .head(format!("{base}/v2/{IMAGE}/manifests/v1.5.3"))
        .header("accept", MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), StatusCode::OK);

    assert_eq!(client.manifest(IMAGE, "v9.9.9").await.unwrap(), None);
    assert_eq!(
        client.manifest("wordpress/nothing", "v1").await.unwrap(),
        None
    );

    // distribution 2.8 (Debian's docker-registry) ignores `n` on tags/list — tag pagination
    // arrived in distribution 3 — and sends every tag at once, unsorted, without a `Link`. The
    // client asks for one per page and must still get them all, and stop there. Link pagination
    // itself is exercised against the sandbox (tests/integrations_registry.rs).
    let mut tags = client.tags_paged(IMAGE, 1, 10).await.unwrap();
    assert!(!tags.truncated, "{tags:?}");
    assert!((1..=3).contains(&tags.pages), "{tags:?}");
    tags.tags.sort();
    assert_eq!(tags.tags, ["amd64-only", "latest", "v1.5.3"]);
    if tags.pages == 3 {
        // A registry that honours `n`: the cap applies.
        let capped = client.tags_paged(IMAGE, 1, 2).await.unwrap();
        assert_eq!(capped.tags.len(), 2, "{capped:?}");
        assert!(capped.truncated);
    }
    assert!(
        client
            .tags("wordpress/nothing", 5)
            .await
            .unwrap()
            .tags
            .is_empty()
    );

    registry.child.kill().await.expect("stop docker-registry");
}
