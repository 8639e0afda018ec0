//! GitHub releases (the release behind a tag, and the newest published one) and, for dag-sync,
//! commits: how far a branch is ahead of a deployed commit, and which commits touch a folder;
//! what a release brings (`changes`) and the infra pull request (`pulls`).
//!
//! octocrab builds the client (base URL, token, headers) and supplies the typed `Release` model;
//! the calls go through octocrab's raw `_get` rather than its typed helpers because those hide the
//! status and headers we need for our own retry policy and for GitHub's rate-limit headers.

use std::fmt;
use std::time::{Duration, SystemTime};

use octocrab::Octocrab;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde::Serialize;

use super::http::{
    AttemptError, Raw, clock_utc, encode_segment, parse_json, path_only, root_cause, unexpected,
};
use super::{HttpPolicy, Service, UpstreamError};
use crate::config::Config;

mod changes;
mod pulls;

pub use changes::Changes;
pub use pulls::{NewPullRequest, PullRequest};

const SERVICE: Service = Service::Github;
/// GitHub serves at most 100 releases per page.
const PAGE: usize = 100;
/// How many pages of releases `latest_release_with_prefix` reads before giving up.
const MAX_PAGES: usize = 10;

/// A GitHub release, reduced to what a preflight shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub tag: String,
    pub name: Option<String>,
    pub draft: bool,
    pub prerelease: bool,
    /// RFC 3339, UTC (`2023-07-03T17:52:00Z`); drafts have none.
    pub published_at: Option<String>,
    pub html_url: String,
}

impl From<octocrab::models::repos::Release> for Release {
    fn from(r: octocrab::models::repos::Release) -> Self {
        Release {
            tag: r.tag_name,
            name: r.name.filter(|n| !n.is_empty()),
            draft: r.draft,
            prerelease: r.prerelease,
            published_at: r
                .published_at
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            html_url: r.html_url.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct GithubClient {
    octo: Octocrab,
    policy: HttpPolicy,
    has_token: bool,
}

impl fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubClient")
            .field("has_token", &self.has_token)
            .finish_non_exhaustive()
    }
}

fn invalid(detail: String) -> UpstreamError {
    UpstreamError::Invalid {
        service: SERVICE,
        detail,
    }
}

impl GithubClient {
    /// `api_url` is `https://api.github.com` or a fake's base URL. Building loads the system's
    /// root certificates (octocrab's rustls connector): do it once at startup, not per request.
    pub fn new(
        api_url: &str,
        token: Option<SecretString>,
        policy: HttpPolicy,
    ) -> Result<GithubClient, UpstreamError> {
        let has_token = token.is_some();
        let mut builder = Octocrab::builder()
            .base_uri(api_url.trim_end_matches('/'))
            .map_err(|_| invalid(format!("api_url {api_url:?} is not a valid URL")))?
            .add_header(
                reqwest::header::ACCEPT,
                "application/vnd.github+json".to_string(),
            )
            .add_header(
                reqwest::header::HeaderName::from_static("x-github-api-version"),
                "2022-11-28".to_string(),
            )
            // No read timeout of its own: the policy's timeout wraps each whole attempt, and a
            // read timeout racing it turned a silent server into "could not connect (timed out)".
            .set_connect_timeout(Some(policy.timeout));
        if let Some(token) = token {
            builder = builder.personal_token(token);
        }
        let octo = builder
            .build()
            .map_err(|e| invalid(format!("cannot build a client ({})", root_cause(&e))))?;
        Ok(GithubClient {
            octo,
            policy,
            has_token,
        })
    }

    pub fn from_config(config: &Config, policy: HttpPolicy) -> Result<GithubClient, UpstreamError> {
        GithubClient::new(
            &config.github.api_url,
            config.secrets.github_token.clone(),
            policy,
        )
    }

    /// The release for `tag` in `repo` (`owner/name`); `None` when GitHub has none. A draft comes
    /// back with `draft: true` when GitHub shows it (only to tokens with push access, via the
    /// release list; anonymous callers get `None`), so the caller can say why it does not count.
    pub async fn release_by_tag(
        &self,
        repo: &str,
        tag: &str,
    ) -> Result<Option<Release>, UpstreamError> {
        let base = repo_path(repo)?;
        let path = format!("{base}/releases/tags/{}", encode_segment(tag));
        if let Some(r) = self.one_release(&path).await? {
            return Ok(Some(r));
        }
        if !self.has_token {
            return Ok(None);
        }
        // `/releases/tags/{tag}` only finds published releases; a draft shows up in the list,
        // and only to callers with push access. Drafts are the newest entries: one page suffices.
        let path = format!("{base}/releases?per_page={PAGE}&page=1");
        let raw = self.get(&path).await?;
        match raw.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.status_error(&raw, &path)),
        }
        let list: Vec<octocrab::models::repos::Release> = parse_json(SERVICE, &path, &raw.body)?;
        Ok(list
            .into_iter()
            .find(|r| r.draft && r.tag_name == tag)
            .map(Release::from))
    }

    /// The newest published release that is neither a draft nor a prerelease (GitHub's own
    /// "latest"); `None` when the repository has none.
    pub async fn latest_release(&self, repo: &str) -> Result<Option<Release>, UpstreamError> {
        let path = format!("{}/releases/latest", repo_path(repo)?);
        Ok(self
            .one_release(&path)
            .await?
            .filter(|r| !r.draft && !r.prerelease))
    }

    /// The newest published, non-draft, non-prerelease release whose tag starts with `prefix`.
    /// A monorepo (tags `catalog-…`, `api-…`) needs this: its GitHub "latest" may be another
    /// component's release.
    pub async fn latest_release_with_prefix(
        &self,
        repo: &str,
        prefix: &str,
    ) -> Result<Option<Release>, UpstreamError> {
        let base = repo_path(repo)?;
        for page in 1..=MAX_PAGES {
            let path = format!("{base}/releases?per_page={PAGE}&page={page}");
            let raw = self.get(&path).await?;
            match raw.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Ok(None),
                _ => return Err(self.status_error(&raw, &path)),
            }
            let list: Vec<octocrab::models::repos::Release> =
                parse_json(SERVICE, &path, &raw.body)?;
            let len = list.len();
            // GitHub lists newest first; within a page pick the latest publication explicitly.
            let best = list
                .into_iter()
                .filter(|r| !r.draft && !r.prerelease && r.tag_name.starts_with(prefix))
                .filter(|r| r.published_at.is_some())
                .max_by_key(|r| r.published_at);
            if let Some(best) = best {
                return Ok(Some(best.into()));
            }
            if len < PAGE {
                break;
            }
        }
        Ok(None)
    }

    async fn one_release(&self, path: &str) -> Result<Option<Release>, UpstreamError> {
        let raw = self.get(path).await?;
        match raw.status {
            StatusCode::OK => {
                let r: octocrab::models::repos::Release = parse_json(SERVICE, path, &raw.body)?;
                Ok(Some(r.into()))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_error(&raw, path)),
        }
    }

    fn status_error(&self, raw: &Raw, path: &str) -> UpstreamError {
        match raw.status {
            StatusCode::UNAUTHORIZED => UpstreamError::Auth {
                service: SERVICE,
                detail: if self.has_token {
                    "401 — GITHUB_TOKEN was refused; check it".to_string()
                } else {
                    "401 without a token — set GITHUB_TOKEN".to_string()
                },
            },
            StatusCode::FORBIDDEN => UpstreamError::Auth {
                service: SERVICE,
                detail: format!("403 for {}", path_only(path)),
            },
            _ => unexpected(SERVICE, raw, path),
        }
    }

    async fn get(&self, path: &str) -> Result<Raw, UpstreamError> {
        self.policy
            .run(SERVICE, path, || async {
                let resp = self
                    .octo
                    ._get(path)
                    .await
                    .map_err(|e| AttemptError::Transport(root_cause(&e)))?;
                let status = resp.status();
                let headers = resp.headers().clone();
                if let Some(e) = self.rate_limited(status, &headers) {
                    return Err(AttemptError::Fatal(e));
                }
                let body = self.octo.body_to_string(resp).await.map_err(|e| match e {
                    octocrab::Error::InvalidUtf8 { .. } => {
                        AttemptError::Fatal(UpstreamError::Malformed {
                            service: SERVICE,
                            path: path_only(path).to_string(),
                            detail: "the body is not UTF-8".to_string(),
                        })
                    }
                    _ => AttemptError::Truncated,
                })?;
                Ok(Raw {
                    status,
                    headers,
                    body: body.into_bytes(),
                })
            })
            .await
    }

    /// GitHub's primary rate limit: 403 or 429 with `x-ratelimit-remaining: 0`; the limit comes
    /// back at `x-ratelimit-reset` (Unix seconds). Waiting for it is not an option in a preflight.
    fn rate_limited(&self, status: StatusCode, headers: &HeaderMap) -> Option<UpstreamError> {
        if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
            return None;
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if header("x-ratelimit-remaining") != Some(0) {
            return None;
        }
        let until = header("x-ratelimit-reset")
            .map(|s| clock_utc(SystemTime::UNIX_EPOCH + Duration::from_secs(s)))
            .unwrap_or_else(|| "an unknown time".to_string());
        Some(UpstreamError::RateLimited {
            service: SERVICE,
            until,
            hint: if self.has_token {
                String::new()
            } else {
                " — set GITHUB_TOKEN for a higher limit".to_string()
            },
        })
    }
}

/// A commit, reduced to what `!dag-sync status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commit {
    pub sha: String,
    /// The message's first line.
    pub subject: String,
    /// The GitHub login, or the git author name when GitHub has no account for it.
    pub author: String,
    /// RFC 3339.
    pub date: Option<String>,
}

impl Commit {
    /// The pull request a squash-merge subject names (`… (#1234)`).
    pub fn pr_number(&self) -> Option<u64> {
        let rest = self.subject.trim_end().strip_suffix(')')?;
        let open = rest.rfind("(#")?;
        rest[open + 2..].parse().ok()
    }
}

#[derive(serde::Deserialize)]
struct RawCommit {
    sha: String,
    commit: RawCommitInner,
    #[serde(default)]
    author: Option<RawUser>,
}

#[derive(serde::Deserialize)]
struct RawCommitInner {
    message: String,
    #[serde(default)]
    author: Option<RawGitAuthor>,
}

#[derive(serde::Deserialize)]
struct RawGitAuthor {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    date: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawUser {
    login: String,
}

impl From<RawCommit> for Commit {
    fn from(c: RawCommit) -> Self {
        let git_author = c.commit.author;
        Commit {
            sha: c.sha,
            subject: c
                .commit
                .message
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            author: c
                .author
                .map(|u| u.login)
                .or_else(|| git_author.as_ref().and_then(|a| a.name.clone()))
                .unwrap_or_else(|| "unknown".to_string()),
            date: git_author.and_then(|a| a.date),
        }
    }
}

/// How far `head` is ahead of `base`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// `ahead`, `behind`, `identical` or `diverged`.
    pub status: String,
    pub ahead_by: u64,
    pub behind_by: u64,
    /// Oldest first; GitHub lists at most 250.
    pub commits: Vec<Commit>,
}

impl GithubClient {
    /// `head` (a branch) compared with `base` (the deployed commit); `None` when GitHub does not
    /// know one of them.
    pub async fn compare(
        &self,
        repo: &str,
        base: &str,
        head: &str,
    ) -> Result<Option<Comparison>, UpstreamError> {
        #[derive(serde::Deserialize)]
        struct RawComparison {
            status: String,
            ahead_by: u64,
            behind_by: u64,
            #[serde(default)]
            commits: Vec<RawCommit>,
        }
        let path = format!(
            "{}/compare/{}...{}",
            repo_path(repo)?,
            encode_segment(base),
            encode_segment(head)
        );
        let raw = self.get(&path).await?;
        match raw.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.status_error(&raw, &path)),
        }
        let c: RawComparison = parse_json(SERVICE, &path, &raw.body)?;
        Ok(Some(Comparison {
            status: c.status,
            ahead_by: c.ahead_by,
            behind_by: c.behind_by,
            commits: c.commits.into_iter().map(Commit::from).collect(),
        }))
    }

    /// The newest commits (at most `limit`, up to 100) reachable from `rev` that touch `folder`.
    pub async fn commits_touching(
        &self,
        repo: &str,
        rev: &str,
        folder: &str,
        limit: usize,
    ) -> Result<Vec<Commit>, UpstreamError> {
        let path = format!(
            "{}/commits?sha={}&path={}&per_page={}",
            repo_path(repo)?,
            encode_segment(rev),
            encode_segment(folder),
            limit.clamp(1, PAGE)
        );
        let raw = self.get(&path).await?;
        match raw.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(Vec::new()),
            _ => return Err(self.status_error(&raw, &path)),
        }
        let list: Vec<RawCommit> = parse_json(SERVICE, &path, &raw.body)?;
        Ok(list.into_iter().map(Commit::from).collect())
    }
}

/// `/repos/{owner}/{name}` for `owner/name`, refusing anything else.
fn repo_path(repo: &str) -> Result<String, UpstreamError> {
    match repo.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => Ok(
            format!("/repos/{}/{}", encode_segment(owner), encode_segment(name)),
        ),
        _ => Err(invalid(format!(
            "repo {repo:?} is not of the form owner/name"
        ))),
    }
}
