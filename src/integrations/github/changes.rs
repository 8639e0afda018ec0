//! What a release brings: the commits between two tags that touch a folder (the catalog's, in
//! the monorepo), for the plan card.
//!
//! GitHub's compare lists the commits between two refs but not which files each one changed; its
//! commit list filters by path but knows no range. So the range comes from compare (paginated,
//! oldest first) and the folder's commits from the commit list from the new tag down, read until
//! it leaves the range; the answer is their intersection in compare's order.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde::Serialize;

use super::super::UpstreamError;
use super::super::http::{encode_segment, parse_json};
use super::{Commit, GithubClient, PAGE, RawCommit, SERVICE, repo_path};

/// At most this many pages (of 100) are read from each list: 1,000 commits between two catalog
/// releases is far beyond any real one, and a bound on the requests a plan makes.
const MAX_RANGE_PAGES: usize = 10;

/// The commits one release brings, as the plan card shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// GitHub's page of the whole comparison.
    pub compare_url: String,
    /// Every commit between the two tags, whatever it touches.
    pub total_commits: u64,
    /// How many commits the new tag is behind the old one (a rollback's).
    pub behind_by: u64,
    /// The commits that touch the folder, oldest first.
    pub commits: Vec<Commit>,
    /// False when the range was longer than the bot reads: `commits` may miss older ones.
    pub complete: bool,
}

impl GithubClient {
    /// The commits after `base` up to `head` (tags, branches or shas) that touch `folder`
    /// (every commit when `folder` is empty); `None` when GitHub knows one of the refs not.
    pub async fn changes_between(
        &self,
        repo: &str,
        base: &str,
        head: &str,
        folder: &str,
    ) -> Result<Option<Changes>, UpstreamError> {
        #[derive(serde::Deserialize)]
        struct RawPage {
            html_url: String,
            total_commits: u64,
            #[serde(default)]
            behind_by: u64,
            #[serde(default)]
            commits: Vec<RawCommit>,
        }
        let base_path = format!(
            "{}/compare/{}...{}",
            repo_path(repo)?,
            encode_segment(base),
            encode_segment(head)
        );
        let mut range: Vec<Commit> = Vec::new();
        let mut compare_url = String::new();
        let mut total = 0;
        let mut behind_by = 0;
        for page in 1..=MAX_RANGE_PAGES {
            let path = format!("{base_path}?per_page={PAGE}&page={page}");
            let raw = self.get(&path).await?;
            match raw.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Ok(None),
                _ => return Err(self.status_error(&raw, &path)),
            }
            let p: RawPage = parse_json(SERVICE, &path, &raw.body)?;
            compare_url = p.html_url;
            total = p.total_commits;
            behind_by = p.behind_by;
            let n = p.commits.len();
            range.extend(p.commits.into_iter().map(Commit::from));
            if n < PAGE || range.len() as u64 >= total {
                break;
            }
        }
        let mut complete = range.len() as u64 >= total;
        let folder = folder.trim_matches('/');
        let commits = if folder.is_empty() {
            range
        } else {
            let in_range: HashSet<&str> = range.iter().map(|c| c.sha.as_str()).collect();
            let mut touching: HashSet<String> = HashSet::new();
            let mut left_range = false;
            for page in 1..=MAX_RANGE_PAGES {
                let path = format!(
                    "{}/commits?sha={}&path={}&per_page={PAGE}&page={page}",
                    repo_path(repo)?,
                    encode_segment(head),
                    encode_segment(folder),
                );
                let raw = self.get(&path).await?;
                match raw.status {
                    StatusCode::OK => {}
                    StatusCode::NOT_FOUND => return Ok(None),
                    _ => return Err(self.status_error(&raw, &path)),
                }
                let list: Vec<RawCommit> = parse_json(SERVICE, &path, &raw.body)?;
                let n = list.len();
                for c in list {
                    if in_range.contains(c.sha.as_str()) {
                        touching.insert(c.sha);
                    } else {
                        // Newest first: the first commit outside the range is at or before
                        // the old release, and so is everything after it.
                        left_range = true;
                    }
                }
                if left_range || n < PAGE {
                    break;
                }
            }
            if !left_range && touching.len() >= MAX_RANGE_PAGES * PAGE {
                complete = false;
            }
            range
                .into_iter()
                .filter(|c| touching.contains(&c.sha))
                .collect()
        };
        Ok(Some(Changes {
            compare_url,
            total_commits: total,
            behind_by,
            commits,
            complete,
        }))
    }
}
