//! The runbook's three checks, run concurrently: the GitHub release exists (published, not a
//! draft), its image tag exists on the registry (digest pinned), and no DAG run blocks (the
//! rules are in [`super::dag_runs`]).
//! Every result is reported, never only the first failure; an answer that cannot be had is
//! `unknown` and blocks (fail closed).

use serde::Serialize;

use super::dag_runs::{self, PauseCandidate};
use crate::config::TargetConfig;
use crate::integrations::Integrations;
use crate::version::Version;

/// How a single check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// The service could not answer: blocks like a failure, says why.
    Unknown,
}

impl Status {
    fn icon(self) -> &'static str {
        match self {
            Status::Pass => "✅",
            Status::Fail => "❌",
            Status::Unknown => "⚠️",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// One line: what was found or why it could not be checked.
    pub summary: String,
    /// Further lines (e.g. each blocking DAG run).
    pub details: Vec<String>,
}

impl Check {
    pub(crate) fn new(name: &'static str, status: Status, summary: String) -> Check {
        Check {
            name,
            status,
            summary,
            details: Vec::new(),
        }
    }
}

/// The three results plus what a deploy pins from them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub target: String,
    /// The version asked for (`latest` stays visible here) …
    pub requested: String,
    /// … and the concrete release version it resolved to, when known.
    pub version: Option<String>,
    pub release: Check,
    pub image: Check,
    pub dag_runs: Check,
    pub image_digest: Option<String>,
    /// DAG runs that block (or were overridden with `--force`).
    pub blocking_runs: Vec<BlockingRun>,
    /// `pause_during_deploy` DAGs whose running run waits on a sensor: the deploy pauses them
    /// right before apply and unpauses them when it ends (see [`Report::dags_to_pause`]).
    pub to_pause: Vec<PauseCandidate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockingRun {
    pub dag_id: String,
    pub run_id: String,
    pub state: String,
    pub since: Option<String>,
}

impl Report {
    /// The DAG ids to pause for this deploy's apply: the `pause_during_deploy` DAGs whose
    /// running run did not block because it only waits on sensors. Empty when nothing waits.
    /// Pause them with [`super::dag_runs::pause_for_deploy`], re-check with
    /// [`super::dag_runs::evaluate`] right before apply (a run that left its sensor blocks
    /// then), and unpause with [`super::dag_runs::unpause_after_deploy`] however the deploy ends.
    pub fn dags_to_pause(&self) -> Vec<String> {
        self.to_pause.iter().map(|p| p.dag_id.clone()).collect()
    }

    pub fn checks(&self) -> [&Check; 3] {
        [&self.release, &self.image, &self.dag_runs]
    }

    /// True when a deploy may go ahead; `force` overrides active DAG runs, never an unknown.
    pub fn passed(&self, force: bool) -> bool {
        self.release.status == Status::Pass
            && self.image.status == Status::Pass
            && match self.dag_runs.status {
                Status::Pass => true,
                Status::Fail => force,
                Status::Unknown => false,
            }
    }

    /// The checks that block, by name, for the closing sentence.
    pub fn blockers(&self, force: bool) -> Vec<&'static str> {
        self.checks()
            .into_iter()
            .filter(|c| match c.status {
                Status::Pass => false,
                Status::Fail => !(force && c.name == "DAG runs"),
                Status::Unknown => true,
            })
            .map(|c| c.name)
            .collect()
    }

    /// The report as chat text: one line per check, details indented.
    pub fn render(&self) -> String {
        let version = match &self.version {
            Some(v) if *v != self.requested => format!("{} ({v})", self.requested),
            _ => self.requested.clone(),
        };
        let mut out = format!("Preflight for {} {version}:", self.target);
        for c in self.checks() {
            out.push_str(&format!("\n{} {}: {}", c.status.icon(), c.name, c.summary));
            for d in &c.details {
                out.push_str(&format!("\n    • {d}"));
            }
        }
        out
    }
}

/// Substitutes the validated version into a tag template.
fn tag_for(template: &str, version: &str) -> String {
    template.replace("{version}", version)
}

/// The version part of a release tag under `template` (`catalog-{version}` → strip the prefix).
fn version_from_tag(template: &str, tag: &str) -> Option<String> {
    let (prefix, suffix) = template.split_once("{version}")?;
    tag.strip_prefix(prefix)?
        .strip_suffix(suffix)
        .map(str::to_string)
        .filter(|v| !v.is_empty())
}

/// Runs the three checks concurrently. For a concrete version the release, the image and the DAG
/// runs are asked at once; for `latest` the image check follows the release (it needs the
/// resolved version) while the DAG-run check runs alongside.
pub async fn run(
    clients: &Integrations,
    target_name: &str,
    target: &TargetConfig,
    version: &Version,
) -> Report {
    let release_then_image = async {
        let (release, resolved) = check_release(clients, target, version).await;
        let image = match (version, &resolved) {
            (Version::Latest, Some(v)) => Some(check_image(clients, target, v).await),
            _ => None,
        };
        (release, resolved, image)
    };
    let image_now = async {
        match version {
            Version::Latest => None,
            v => Some(check_image(clients, target, v.as_str()).await),
        }
    };
    let ((release, resolved, late_image), early_image, gate) = tokio::join!(
        release_then_image,
        image_now,
        dag_runs::evaluate(&clients.airflow, target)
    );
    let (image, image_digest) = early_image.or(late_image).unwrap_or_else(|| {
        (
            Check::new(
                "image",
                Status::Unknown,
                "not checked: the release version is not known".to_string(),
            ),
            None,
        )
    });
    Report {
        target: target_name.to_string(),
        requested: version.as_str().to_string(),
        version: resolved,
        release,
        image,
        dag_runs: gate.check,
        image_digest,
        blocking_runs: gate.blocking,
        to_pause: gate.to_pause,
    }
}

/// The version itself when it names one; `latest` is only known once GitHub answers.
fn concrete(version: &Version) -> Option<String> {
    match version {
        Version::Latest => None,
        v => Some(v.as_str().to_string()),
    }
}

async fn check_release(
    clients: &Integrations,
    target: &TargetConfig,
    version: &Version,
) -> (Check, Option<String>) {
    let answer = match version {
        Version::Latest => {
            // A monorepo's GitHub "latest" may be another component's release, so look for the
            // newest release whose tag fits this target's template.
            let prefix = target
                .release_tag
                .split_once("{version}")
                .map(|(p, _)| p)
                .unwrap_or("");
            if prefix.is_empty() {
                clients.github.latest_release(&target.repo).await
            } else {
                clients
                    .github
                    .latest_release_with_prefix(&target.repo, prefix)
                    .await
            }
        }
        v => {
            clients
                .github
                .release_by_tag(&target.repo, &tag_for(&target.release_tag, v.as_str()))
                .await
        }
    };
    match answer {
        Err(e) => (
            Check::new("release", Status::Unknown, e.to_string()),
            concrete(version),
        ),
        Ok(None) => {
            let what = match version {
                Version::Latest => format!("no published release in {}", target.repo),
                v => format!(
                    "no release `{}` in {}",
                    tag_for(&target.release_tag, v.as_str()),
                    target.repo
                ),
            };
            (Check::new("release", Status::Fail, what), concrete(version))
        }
        Ok(Some(r)) if r.draft => (
            Check::new(
                "release",
                Status::Fail,
                format!("`{}` is a draft: publish it first ({})", r.tag, r.html_url),
            ),
            version_from_tag(&target.release_tag, &r.tag),
        ),
        Ok(Some(r)) => {
            let resolved =
                concrete(version).or_else(|| version_from_tag(&target.release_tag, &r.tag));
            // A `latest` whose tag does not fit the template cannot be deployed by name.
            if resolved.is_none() {
                return (
                    Check::new(
                        "release",
                        Status::Fail,
                        format!(
                            "the newest release `{}` does not match release_tag `{}`",
                            r.tag, target.release_tag
                        ),
                    ),
                    None,
                );
            }
            let when = r
                .published_at
                .as_deref()
                .map(|p| format!(", published {}", p.replace('T', " ").replace('Z', " UTC")))
                .unwrap_or_default();
            let name = r
                .name
                .as_deref()
                .filter(|n| *n != r.tag)
                .map(|n| format!(" “{n}”"))
                .unwrap_or_default();
            let pre = if r.prerelease { " (pre-release)" } else { "" };
            (
                Check::new(
                    "release",
                    Status::Pass,
                    format!("`{}`{name}{pre}{when} — {}", r.tag, r.html_url),
                ),
                resolved,
            )
        }
    }
}

async fn check_image(
    clients: &Integrations,
    target: &TargetConfig,
    version: &str,
) -> (Check, Option<String>) {
    let tag = tag_for(&target.image_tag, version);
    match clients.registry.manifest(&target.image, &tag).await {
        Err(e) => (Check::new("image", Status::Unknown, e.to_string()), None),
        Ok(None) => (
            Check::new(
                "image",
                Status::Fail,
                format!("no image `{}:{tag}` on the registry", target.image),
            ),
            None,
        ),
        Ok(Some(m)) => (
            Check::new(
                "image",
                Status::Pass,
                format!("`{}:{tag}` → {}", target.image, m.digest),
            ),
            Some(m.digest),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_versions_round_trip_in_both_schemes() {
        assert_eq!(tag_for("{version}", "v1.5.3"), "v1.5.3");
        assert_eq!(
            tag_for("catalog-{version}", "2023.07.03.17.52.00"),
            "catalog-2023.07.03.17.52.00"
        );
        assert_eq!(
            tag_for("rel-{version}", "2023.07.03.17.52.00"),
            "rel-2023.07.03.17.52.00"
        );
        assert_eq!(
            version_from_tag("catalog-{version}", "catalog-2023.07.03.17.52.00").as_deref(),
            Some("2023.07.03.17.52.00")
        );
        assert_eq!(
            version_from_tag("catalog-{version}", "api-2023.07.03"),
            None
        );
        assert_eq!(
            version_from_tag("{version}", "v1.5.3").as_deref(),
            Some("v1.5.3")
        );
    }
}
