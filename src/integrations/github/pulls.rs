//! Opening a pull request (the infra repository's, after a deploy). One attempt only: creating
//! is not idempotent, and a retry after a lost answer would fail as a duplicate anyway.

use reqwest::StatusCode;
use serde::Serialize;

use super::super::UpstreamError;
use super::super::http::{path_only, root_cause};
use super::{GithubClient, SERVICE, invalid, repo_path};

/// The pull request GitHub opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
}

/// What to open.
#[derive(Debug, Clone, Serialize)]
pub struct NewPullRequest<'a> {
    pub title: &'a str,
    /// The branch with the changes (in the same repository).
    pub head: &'a str,
    /// The branch to merge into.
    pub base: &'a str,
    pub body: &'a str,
}

impl GithubClient {
    /// `POST /repos/{owner}/{name}/pulls`. A refusal comes back as a sentence with GitHub's
    /// own reason (`422 … A pull request already exists for …`).
    pub async fn open_pull_request(
        &self,
        repo: &str,
        pr: &NewPullRequest<'_>,
    ) -> Result<PullRequest, UpstreamError> {
        let path = format!("{}/pulls", repo_path(repo)?);
        let attempt = async {
            let resp = self
                .octo
                ._post(path.as_str(), Some(pr))
                .await
                .map_err(|e| UpstreamError::Connect {
                    service: SERVICE,
                    cause: root_cause(&e),
                    attempts: 1,
                })?;
            let status = resp.status();
            let body =
                self.octo
                    .body_to_string(resp)
                    .await
                    .map_err(|e| UpstreamError::Connect {
                        service: SERVICE,
                        cause: root_cause(&e),
                        attempts: 1,
                    })?;
            Ok::<_, UpstreamError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.policy.timeout, attempt)
            .await
            .map_err(|_| UpstreamError::Timeout {
                service: SERVICE,
                after: self.policy.timeout,
                attempts: 1,
            })??;
        if status == StatusCode::CREATED || status == StatusCode::OK {
            #[derive(serde::Deserialize)]
            struct Created {
                number: u64,
                html_url: String,
            }
            let c: Created = serde_json::from_str(&body).map_err(|e| UpstreamError::Malformed {
                service: SERVICE,
                path: path_only(&path).to_string(),
                detail: e.to_string(),
            })?;
            return Ok(PullRequest {
                number: c.number,
                html_url: c.html_url,
            });
        }
        let said = github_message(&body);
        Err(match status {
            StatusCode::UNAUTHORIZED => UpstreamError::Auth {
                service: SERVICE,
                detail: if self.has_token {
                    "401 — GITHUB_TOKEN was refused; check it".to_string()
                } else {
                    "401 without a token — opening a pull request needs GITHUB_TOKEN with \
                     pull-request write access to the repository"
                        .to_string()
                },
            },
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => UpstreamError::Auth {
                service: SERVICE,
                detail: format!(
                    "{} for {} — GITHUB_TOKEN needs pull-request write access to {repo}{said}",
                    status.as_u16(),
                    path_only(&path)
                ),
            },
            _ => invalid(format!(
                "{} from {}{said}",
                status.as_u16(),
                path_only(&path)
            )),
        })
    }
}

/// `: <message> (<each error's message>)` from GitHub's error body, or nothing.
fn github_message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return String::new();
    };
    let mut out = v["message"].as_str().unwrap_or_default().to_string();
    let details: Vec<&str> = v["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["message"].as_str()).collect())
        .unwrap_or_default();
    if !details.is_empty() {
        out.push_str(&format!(" ({})", details.join("; ")));
    }
    let out: String = out.chars().take(300).collect();
    if out.is_empty() {
        out
    } else {
        format!(": {out}")
    }
}
