//! The worlds the sandbox starts with: Openverse as it was (releases in both tag schemes, images
//! for most of them, the real DAGs from `openverse-dags.json`) and a big synthetic Airflow for
//! benchmarks.
//!
//! Deliberate gaps for trying the bot: release `v1.5.2` has no image, `v1.6.0` is only a draft,
//! and the monorepo's newest release is a frontend one (so GitHub's "latest" is not the catalog's).
//! The monorepo as it is today: `catalog-2026.11.30.10.00.00` is the newest published catalog
//! release (image `rel-2026.11.30.10.00.00`, also tagged `latest`), `catalog-2026.12.01.09.00.00`
//! a newer draft, and `catalog-2026.11.16.12.00.00` was published without its `rel-` image.

use serde::Deserialize;

use super::WorldState;
use super::airflow::{AirflowWorld, SimDag, SimRun};
use super::github::{GithubWorld, SimCommit, SimRelease, SimTag};
use super::now_ms;
use super::registry::{RegistryWorld, sha256_digest};
use crate::timefmt::rfc3339;

/// The stand-alone repository (semver tags) and the monorepo (`catalog-YYYY.MM.DD.HH.MM.SS`).
pub const CATALOG_REPO: &str = "WordPress/openverse-catalog";
pub const MONOREPO: &str = "WordPress/openverse";
pub const IMAGE: &str = "wordpress/openverse-catalog";

const FIXTURE: &str = include_str!("openverse-dags.json");

#[derive(Deserialize)]
struct Fixture {
    dags: Vec<FixtureDag>,
    added_later: Vec<FixtureDag>,
}

#[derive(Deserialize)]
struct FixtureDag {
    dag_id: String,
    category: String,
    schedule: Option<String>,
    catchup: bool,
    start_date: Option<String>,
}

/// DAGs that arrived recently and, as Airflow does with new DAGs, still wait paused.
const NEW_AND_PAUSED: [&str; 2] = ["justtakeitfree_workflow", "flickr_thumbnails_removal"];

fn releases() -> Vec<SimRelease> {
    let semver = [
        ("0.4.1", "2021-11-18T16:20:00Z"),
        ("v1.0.0", "2022-03-31T17:02:11Z"),
        ("v1.1.0", "2022-05-05T18:30:45Z"),
        ("v1.2.0", "2022-06-16T15:12:09Z"),
        ("v1.3.0", "2022-08-04T20:41:33Z"),
        ("v1.4.0", "2022-10-13T16:05:27Z"),
        ("v1.5.0", "2022-12-08T19:44:02Z"),
        ("v1.5.1", "2023-01-12T17:26:50Z"),
        ("v1.5.2", "2023-02-16T21:03:14Z"),
        ("v1.5.3", "2023-03-09T18:11:38Z"),
    ];
    let mut out: Vec<SimRelease> = semver
        .iter()
        .enumerate()
        .map(|(i, (tag, at))| SimRelease::published(CATALOG_REPO, 80_000_000 + i as u64, tag, at))
        .collect();
    out.push(SimRelease::draft(
        CATALOG_REPO,
        80_000_100,
        "v1.6.0",
        "2023-04-02T09:00:00Z",
    ));
    let mono = [
        ("catalog-2023.06.29.21.05.08", "2023-06-29T21:05:08Z"),
        ("api-2023.07.01.10.14.22", "2023-07-01T10:14:22Z"),
        ("catalog-2023.07.03.17.52.00", "2023-07-03T17:52:00Z"),
        ("frontend-2023.07.05.09.31.40", "2023-07-05T09:31:40Z"),
        ("catalog-2026.11.16.12.00.00", "2026-11-16T12:00:00Z"),
        ("catalog-2026.11.30.10.00.00", "2026-11-30T10:00:00Z"),
        ("frontend-2026.11.30.15.20.00", "2026-11-30T15:20:00Z"),
    ];
    out.extend(
        mono.iter()
            .enumerate()
            .map(|(i, (tag, at))| SimRelease::published(MONOREPO, 110_000_000 + i as u64, tag, at)),
    );
    out.push(SimRelease::draft(
        MONOREPO,
        110_000_100,
        "catalog-2026.12.01.09.00.00",
        "2026-12-01T09:00:00Z",
    ));
    out
}

/// A plausible 40-hex commit id for a build.
fn commit_sha(seed: &str) -> String {
    sha256_digest(seed.as_bytes())["sha256:".len()..][..40].to_string()
}

fn registry() -> RegistryWorld {
    let mut r = RegistryWorld {
        require_auth: true,
        ..RegistryWorld::default()
    };
    for v in ["v1.5.0", "v1.5.1"] {
        r.push_image(IMAGE, &[v, &commit_sha(v)], v);
    }
    r.push_image(IMAGE, &["v1.5.3", &commit_sha("v1.5.3")], "v1.5.3");
    r.push_image(
        IMAGE,
        &[
            "rel-2023.06.29.21.05.08",
            &commit_sha("2023.06.29.21.05.08"),
        ],
        "2023.06.29.21.05.08",
    );
    r.push_image(
        IMAGE,
        &[
            "rel-2023.07.03.17.52.00",
            &commit_sha("2023.07.03.17.52.00"),
        ],
        "2023.07.03.17.52.00",
    );
    // The monorepo era retags `latest` as `rel-…`: one image, three names. (No image for
    // catalog-2026.11.16.12.00.00, none yet for the draft.)
    r.push_image(
        IMAGE,
        &[
            "latest",
            "rel-2026.11.30.10.00.00",
            &commit_sha("2026.11.30.10.00.00"),
        ],
        "2026.11.30.10.00.00",
    );
    r
}

fn fixture_dags() -> Vec<SimDag> {
    // The fixture is compiled in; a parse failure is a build-time mistake caught by the tests.
    let fixture: Fixture = serde_json::from_str(FIXTURE).unwrap_or(Fixture {
        dags: Vec::new(),
        added_later: Vec::new(),
    });
    let mut dags: Vec<SimDag> = fixture
        .dags
        .into_iter()
        .chain(fixture.added_later)
        .map(|d| SimDag {
            is_paused: NEW_AND_PAUSED.contains(&d.dag_id.as_str()),
            fileloc: format!("/opt/airflow/catalog/dags/{}/{}.py", d.category, d.dag_id),
            schedule: d.schedule,
            catchup: d.catchup,
            start_date: d.start_date.map(|s| format!("{s}T00:00:00Z")),
            tags: vec![d.category],
            dag_id: d.dag_id,
        })
        .collect();
    dags.sort_by(|a, b| a.dag_id.cmp(&b.dag_id));
    dags
}

/// Finished runs of a few DAGs, so recent-run listings have something to show.
fn history(now: i64) -> Vec<SimRun> {
    const DAY: i64 = 86_400_000;
    let mut runs = Vec::new();
    for (i, dag) in [
        "brooklyn_museum_workflow",
        "europeana_workflow",
        "flickr_workflow",
        "wikimedia_commons_workflow",
        "image_data_refresh",
    ]
    .iter()
    .enumerate()
    {
        for d in 1..=3 {
            let start = now - d * DAY - i as i64 * 3_600_000;
            runs.push(SimRun {
                dag_id: dag.to_string(),
                run_id: format!("scheduled__{}", rfc3339(start).replace('Z', "+00:00")),
                run_type: "scheduled".to_string(),
                logical_date: Some(rfc3339(start - DAY)),
                queued_at_ms: start - 1_000,
                starts_at_ms: start,
                ends_at_ms: Some(start + 45 * 60_000),
                final_state: if d == 2 && i == 1 {
                    "failed"
                } else {
                    "success"
                }
                .to_string(),
            });
        }
    }
    runs
}

pub(super) fn openverse(active: bool) -> WorldState {
    let now = now_ms();
    let mut airflow = AirflowWorld {
        dags: fixture_dags(),
        runs: history(now),
        ..AirflowWorld::default()
    };
    if active {
        // A couple of runs active that finish a few minutes after the sandbox starts.
        airflow.add_running("inaturalist_workflow", 25 * 60_000, Some(2 * 60_000));
        airflow.add_running("image_data_refresh", 3 * 3_600_000, Some(4 * 60_000));
    }
    WorldState {
        github: GithubWorld {
            releases: releases(),
            commits: monorepo_commits(now),
            tags: monorepo_tags(),
            ..GithubWorld::default()
        },
        registry: registry(),
        airflow,
    }
}

/// The sandbox's deployed DAG commit (`sandbox/DEPLOYED_COMMIT`): `main` is four commits
/// ahead of it, two of which touch `catalog/dags`.
pub const DEPLOYED_COMMIT_INDEX: usize = 3;

/// A deterministic 40-hex commit id for the `n`th simulated commit.
pub fn sim_sha(n: usize) -> String {
    super::sha256_digest(format!("sandbox-commit-{n}").as_bytes())
        .trim_start_matches("sha256:")
        .chars()
        .take(40)
        .collect()
}

/// The catalog releases' tags on `main`, so that a deploy's card can say what ships: from
/// `catalog-2023.07.03…` (the oldest commit) to `catalog-2026.11.30…` (the tip), five of the
/// seven commits touch `catalog/`.
fn monorepo_tags() -> Vec<SimTag> {
    [
        ("catalog-2023.07.03.17.52.00", 0),
        ("catalog-2026.11.16.12.00.00", 3),
        ("catalog-2026.11.30.10.00.00", 7),
    ]
    .into_iter()
    .map(|(name, n)| SimTag {
        repo: MONOREPO.to_string(),
        name: name.to_string(),
        sha: sim_sha(n),
    })
    .collect()
}

/// `main` of the monorepo, oldest first: some commits touch the DAG folder, some do not.
pub fn monorepo_commits(now: i64) -> Vec<SimCommit> {
    let items: [(&str, &str, &[&str]); 8] = [
        (
            "Bump frontend dependencies (#4101)",
            "dhruvkb",
            &["frontend/package.json"],
        ),
        (
            "Add the justtakeitfree provider DAG (#4102)",
            "stacimc",
            &[
                "catalog/dags/providers/provider_api_scripts/justtakeitfree.py",
                "catalog/dags/providers/provider_workflows.py",
            ],
        ),
        ("Fix API docs typo (#4103)", "zackkrida", &["api/README.md"]),
        (
            "Add flickr thumbnails removal DAG (#4104)",
            "AetherUnbound",
            &["catalog/dags/maintenance/flickr_thumbnails_removal.py"],
        ),
        (
            "Update catalog test fixtures (#4105)",
            "obulat",
            &["catalog/tests/fixtures/x.json"],
        ),
        (
            "Retry iNaturalist downloads on 503 (#4106)",
            "stacimc",
            &["catalog/dags/providers/provider_api_scripts/inaturalist.py"],
        ),
        (
            "Frontend: fix header overlap (#4107)",
            "dhruvkb",
            &["frontend/src/components/VHeader.vue"],
        ),
        (
            "Lower the Europeana batch size (#4108)",
            "AetherUnbound",
            &["catalog/dags/providers/provider_api_scripts/europeana.py"],
        ),
    ];
    items
        .iter()
        .enumerate()
        .map(|(i, (subject, author, files))| SimCommit {
            repo: MONOREPO.to_string(),
            sha: sim_sha(i),
            message: format!("{subject}\n\nSigned-off-by: {author}"),
            author_login: author.to_string(),
            date: rfc3339(now - (items.len() - i) as i64 * 3_600_000),
            files: files.iter().map(|f| f.to_string()).collect(),
        })
        .collect()
}

pub(super) fn big(dags: usize, running: usize) -> WorldState {
    big_with_history(dags, 0, running)
}

/// [`big`] plus `finished` runs that ended over the past days (most succeeded, every tenth
/// failed), as a busy Airflow keeps them: the running-runs query has to filter them out.
pub(super) fn big_with_history(dags: usize, finished: usize, running: usize) -> WorldState {
    let now = now_ms();
    let mut state = openverse(false);
    let dag_id = |i: usize| {
        let dag = if dags == 0 { 0 } else { i % dags };
        format!("synthetic_{dag:05}_workflow")
    };
    state.airflow.dags = (0..dags)
        .map(|i| SimDag {
            dag_id: format!("synthetic_{i:05}_workflow"),
            is_paused: i % 10 == 0,
            schedule: Some("@daily".to_string()),
            catchup: false,
            start_date: Some("2023-01-01T00:00:00Z".to_string()),
            tags: vec!["synthetic".to_string()],
            fileloc: format!("/opt/airflow/catalog/dags/synthetic/dag_{i:05}.py"),
        })
        .collect();
    let run = |i: usize, start: i64, ends: Option<i64>, final_state: &str| SimRun {
        dag_id: dag_id(i),
        run_id: format!("scheduled__{}_{i}", rfc3339(start).replace('Z', "+00:00")),
        run_type: "scheduled".to_string(),
        logical_date: Some(rfc3339(start)),
        queued_at_ms: start - 1_000,
        starts_at_ms: start,
        ends_at_ms: ends,
        final_state: final_state.to_string(),
    };
    // Finished runs first (older), then the running ones, as Airflow's default order has them.
    state.airflow.runs = (0..finished)
        .map(|i| {
            let start = now - 3_600_000 - i as i64 * 30_000;
            let state = if i % 10 == 9 { "failed" } else { "success" };
            run(i, start, Some(start + 20 * 60_000), state)
        })
        .chain((0..running).map(|i| {
            run(
                finished + i,
                now - 60_000 - i as i64 * 1_000,
                None,
                "success",
            )
        }))
        .collect();
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_deployed_commit_file_names_a_seeded_commit() {
        let file = include_str!("../../sandbox/DEPLOYED_COMMIT");
        assert_eq!(file.trim(), sim_sha(DEPLOYED_COMMIT_INDEX));
    }

    #[test]
    fn fixture_parses_and_has_the_real_dags() {
        let f: Fixture = serde_json::from_str(FIXTURE).unwrap();
        assert!(f.dags.len() >= 38);
        let dags = fixture_dags();
        assert!(dags.iter().any(|d| d.dag_id == "inaturalist_workflow"));
        assert!(dags.iter().filter(|d| d.is_paused).count() == 2);
    }
}
