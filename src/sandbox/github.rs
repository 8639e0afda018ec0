//! The fake GitHub REST API: a repository's releases by tag, the latest one, and the paginated
//! list (drafts only for authenticated callers, as GitHub shows them only to people with push
//! access), with GitHub's rate-limit headers; commits, tags and compare (in the shape of GitHub's
//! "Compare two commits", paginated); and opening pull requests (authenticated callers only).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::faults::Faults;
use super::{Ctx, QueryPairs, query_value};

#[derive(Debug, Clone, Default)]
pub struct GithubWorld {
    pub releases: Vec<SimRelease>,
    /// The history of each repository's default branch (`main`), oldest first.
    pub commits: Vec<SimCommit>,
    /// Tags of each repository, naming commits of `commits`.
    pub tags: Vec<SimTag>,
    /// Pull requests opened through the API, oldest first.
    pub pulls: Vec<SimPull>,
    /// `None`: unlimited; otherwise counted down per request, `403` at zero.
    pub rate_limit: Option<RateLimit>,
    pub faults: Faults,
}

/// A git tag (a release's, say) on one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTag {
    pub repo: String,
    pub name: String,
    pub sha: String,
}

/// A pull request opened through `POST /repos/{owner}/{repo}/pulls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPull {
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub head: String,
    pub base: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds when the limit comes back.
    pub reset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRelease {
    /// `owner/name`; compared case-insensitively like GitHub does.
    pub repo: String,
    pub id: u64,
    pub tag: String,
    pub name: String,
    pub draft: bool,
    pub prerelease: bool,
    /// RFC 3339.
    pub created_at: String,
    pub published_at: Option<String>,
}

impl SimRelease {
    /// A published, non-prerelease release; `at` is RFC 3339.
    pub fn published(repo: &str, id: u64, tag: &str, at: &str) -> SimRelease {
        SimRelease {
            repo: repo.to_string(),
            id,
            tag: tag.to_string(),
            name: tag.to_string(),
            draft: false,
            prerelease: false,
            created_at: at.to_string(),
            published_at: Some(at.to_string()),
        }
    }

    pub fn draft(repo: &str, id: u64, tag: &str, created: &str) -> SimRelease {
        SimRelease {
            draft: true,
            published_at: None,
            ..SimRelease::published(repo, id, tag, created)
        }
    }

    fn to_json(&self, base: &str) -> Value {
        let api = format!("{base}/repos/{}/releases/{}", self.repo, self.id);
        let html = if self.draft {
            format!(
                "https://github.com/{}/releases/tag/untagged-{:x}",
                self.repo, self.id
            )
        } else {
            format!("https://github.com/{}/releases/tag/{}", self.repo, self.tag)
        };
        json!({
            "url": api,
            "html_url": html,
            "assets_url": format!("{api}/assets"),
            "upload_url": format!("https://uploads.github.com/repos/{}/releases/{}/assets{{?name,label}}", self.repo, self.id),
            "tarball_url": format!("{base}/repos/{}/tarball/{}", self.repo, self.tag),
            "zipball_url": format!("{base}/repos/{}/zipball/{}", self.repo, self.tag),
            "id": self.id,
            "node_id": format!("RE_kwDO{:08}", self.id),
            "tag_name": self.tag,
            "target_commitish": "main",
            "name": self.name,
            "body": format!("Release {}", self.tag),
            "draft": self.draft,
            "prerelease": self.prerelease,
            "created_at": self.created_at,
            "published_at": self.published_at,
            "author": null,
            "assets": [],
        })
    }
}

/// One commit on `main` of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCommit {
    pub repo: String,
    /// 40 hex characters.
    pub sha: String,
    /// The whole message; the first line is the subject.
    pub message: String,
    pub author_login: String,
    /// RFC 3339.
    pub date: String,
    /// Paths the commit changed, from the repository root.
    pub files: Vec<String>,
}

impl SimCommit {
    fn to_json(&self, base: &str) -> Value {
        json!({
            "sha": self.sha,
            "node_id": format!("C_{}", &self.sha[..self.sha.len().min(12)]),
            "url": format!("{base}/repos/{}/commits/{}", self.repo, self.sha),
            "html_url": format!("https://github.com/{}/commit/{}", self.repo, self.sha),
            "commit": {
                "message": self.message,
                "author": {"name": self.author_login, "email": format!("{}@users.noreply.github.com", self.author_login), "date": self.date},
                "committer": {"name": "GitHub", "email": "noreply@github.com", "date": self.date},
            },
            "author": {"login": self.author_login, "id": 1, "type": "User"},
            "committer": {"login": "web-flow", "id": 19864447, "type": "User"},
            "parents": [],
        })
    }
}

fn repo_commits(ctx: &Ctx, owner: &str, repo: &str) -> (Vec<SimCommit>, Vec<SimTag>) {
    let full = format!("{owner}/{repo}");
    let w = ctx.world.lock();
    let mine = |r: &str| r.eq_ignore_ascii_case(&full);
    (
        w.github
            .commits
            .iter()
            .filter(|c| mine(&c.repo))
            .cloned()
            .collect(),
        w.github
            .tags
            .iter()
            .filter(|t| mine(&t.repo))
            .cloned()
            .collect(),
    )
}

/// Where `rev` (a branch name for the tip, a tag, or a full or abbreviated sha) is in `history`.
fn position(history: &[SimCommit], tags: &[SimTag], rev: &str) -> Option<usize> {
    if rev == "main" || rev == "HEAD" {
        return history.len().checked_sub(1);
    }
    let rev = tags
        .iter()
        .find(|t| t.name == rev)
        .map_or(rev, |t| t.sha.as_str());
    history
        .iter()
        .position(|c| rev.len() >= 7 && c.sha.starts_with(rev))
}

/// The files a commit changed, as a compare's `files` lists them (a plausible one-line edit).
fn file_json(repo: &str, sha: &str, path: &str) -> Value {
    json!({
        "sha": super::sha256_digest(format!("{sha}:{path}").as_bytes()).trim_start_matches("sha256:")[..40].to_string(),
        "filename": path,
        "status": "modified",
        "additions": 1,
        "deletions": 1,
        "changes": 2,
        "blob_url": format!("https://github.com/{repo}/blob/{sha}/{path}"),
        "raw_url": format!("https://github.com/{repo}/raw/{sha}/{path}"),
        "contents_url": format!("https://api.github.com/repos/{repo}/contents/{path}?ref={sha}"),
        "patch": "@@ -1 +1 @@\n-old\n+new",
    })
}

/// `GET /repos/{owner}/{repo}/compare/{base}...{head}`: the commits after `base` up to `head`,
/// oldest first, like GitHub: without `per_page` at most 250 of them; with `per_page` (at most
/// 100) and `page` one page of them. `total_commits`, `files`, `html_url` and the base and merge
/// base commits as GitHub shows them.
async fn compare(
    State(ctx): State<Ctx>,
    Path((owner, repo, basehead)): Path<(String, String, String)>,
    query: QueryPairs,
) -> Response {
    let (history, tags) = repo_commits(&ctx, &owner, &repo);
    let Some((base, head)) = basehead.split_once("...") else {
        return answer(&ctx, 404, not_found());
    };
    let (Some(b), Some(h)) = (
        position(&history, &tags, base),
        position(&history, &tags, head),
    ) else {
        return answer(&ctx, 404, json!({"message": "Not Found", "status": "404"}));
    };
    let (status, ahead, behind) = match b.cmp(&h) {
        std::cmp::Ordering::Equal => ("identical", 0, 0),
        std::cmp::Ordering::Less => ("ahead", h - b, 0),
        std::cmp::Ordering::Greater => ("behind", 0, b - h),
    };
    let range: &[SimCommit] = if b < h { &history[b + 1..=h] } else { &[] };
    let (skip, take) = match query_value(&query, "per_page").and_then(|v| v.parse::<usize>().ok()) {
        Some(per_page) => {
            let per_page = per_page.clamp(1, 100);
            let page = query_value(&query, "page")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(1)
                .max(1);
            ((page - 1) * per_page, per_page)
        }
        None => (0, 250),
    };
    let commits: Vec<Value> = range
        .iter()
        .skip(skip)
        .take(take)
        .map(|c| c.to_json(&ctx.base))
        .collect();
    let full = format!("{owner}/{repo}");
    let mut files: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in range {
        for f in &c.files {
            if seen.insert(f.clone()) {
                files.push(file_json(&full, &c.sha, f));
            }
        }
    }
    let base_commit = history[b].to_json(&ctx.base);
    answer(
        &ctx,
        200,
        json!({
            "url": format!("{}/repos/{full}/compare/{basehead}", ctx.base),
            "html_url": format!("https://github.com/{full}/compare/{basehead}"),
            "permalink_url": format!(
                "https://github.com/{full}/compare/{}:{}...{}:{}",
                owner, history[b].sha, owner, history[h].sha
            ),
            "diff_url": format!("https://github.com/{full}/compare/{basehead}.diff"),
            "patch_url": format!("https://github.com/{full}/compare/{basehead}.patch"),
            "base_commit": base_commit,
            "merge_base_commit": history[b.min(h)].to_json(&ctx.base),
            "status": status,
            "ahead_by": ahead,
            "behind_by": behind,
            "total_commits": ahead,
            "commits": commits,
            "files": files,
        }),
    )
}

/// `POST /repos/{owner}/{repo}/pulls`: opens a pull request for an authenticated caller; `422`
/// (as GitHub) when one is already open for the same head and base, or a field is missing.
async fn open_pull(
    State(ctx): State<Ctx>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authenticated(&headers) {
        return answer(
            &ctx,
            401,
            json!({"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request", "status": "401"}),
        );
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let (title, head, base) = (field("title"), field("head"), field("base"));
    let invalid = |message: String| {
        json!({
            "message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "code": "custom", "message": message}],
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
            "status": "422",
        })
    };
    if title.is_empty() || head.is_empty() || base.is_empty() {
        return answer(
            &ctx,
            422,
            invalid("title, head and base are required".into()),
        );
    }
    let full = format!("{owner}/{repo}");
    let number = {
        let mut w = ctx.world.lock();
        let pulls = &mut w.github.pulls;
        if pulls
            .iter()
            .any(|p| p.repo.eq_ignore_ascii_case(&full) && p.head == head && p.base == base)
        {
            None
        } else {
            let number = 4200 + pulls.len() as u64 + 1;
            pulls.push(SimPull {
                repo: full.clone(),
                number,
                title: title.clone(),
                head: head.clone(),
                base: base.clone(),
                body: field("body"),
            });
            Some(number)
        }
    };
    let Some(number) = number else {
        return answer(
            &ctx,
            422,
            invalid(format!("A pull request already exists for {owner}:{head}.")),
        );
    };
    answer(
        &ctx,
        201,
        json!({
            "url": format!("{}/repos/{full}/pulls/{number}", ctx.base),
            "id": 1_900_000_000u64 + number,
            "node_id": format!("PR_kwDO{number:08}"),
            "html_url": format!("https://github.com/{full}/pull/{number}"),
            "number": number,
            "state": "open",
            "locked": false,
            "title": title,
            "body": field("body"),
            "draft": false,
            "head": {"label": format!("{owner}:{head}"), "ref": head},
            "base": {"label": format!("{owner}:{base}"), "ref": base},
            "user": {"login": "catalog-chatops[bot]", "type": "Bot"},
            "created_at": crate::timefmt::rfc3339(super::now_ms()),
        }),
    )
}

/// `GET /repos/{owner}/{repo}/commits?sha=&path=&per_page=&page=`: newest first.
async fn commits(
    State(ctx): State<Ctx>,
    Path((owner, repo)): Path<(String, String)>,
    query: QueryPairs,
) -> Response {
    let (history, tags) = repo_commits(&ctx, &owner, &repo);
    let rev = query_value(&query, "sha").unwrap_or("main");
    let Some(tip) = position(&history, &tags, rev) else {
        return answer(&ctx, 404, not_found());
    };
    let path = query_value(&query, "path").map(|p| p.trim_matches('/').to_string());
    let per_page = query_value(&query, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query_value(&query, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let items: Vec<Value> = history[..=tip]
        .iter()
        .rev()
        .filter(|c| match &path {
            Some(p) => c
                .files
                .iter()
                .any(|f| f == p || f.starts_with(&format!("{p}/"))),
            None => true,
        })
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|c| c.to_json(&ctx.base))
        .collect();
    answer(&ctx, 200, Value::Array(items))
}

pub(super) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/repos/{owner}/{repo}/compare/{basehead}", get(compare))
        .route("/repos/{owner}/{repo}/commits", get(commits))
        .route("/repos/{owner}/{repo}/pulls", post(open_pull))
        .route("/repos/{owner}/{repo}/releases", get(list))
        .route("/repos/{owner}/{repo}/releases/latest", get(latest))
        .route("/repos/{owner}/{repo}/releases/tags/{tag}", get(by_tag))
        .fallback(|State(ctx): State<Ctx>| async move { answer(&ctx, 404, not_found()) })
}

fn not_found() -> Value {
    json!({
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest",
        "status": "404",
    })
}

/// Counts the request against the rate limit and adds GitHub's headers; `403` once exhausted.
fn answer(ctx: &Ctx, status: u16, body: Value) -> Response {
    let limit = {
        let mut w = ctx.world.lock();
        w.github.rate_limit.as_mut().map(|rl| {
            let before = rl.clone();
            rl.remaining = rl.remaining.saturating_sub(1);
            before
        })
    };
    let (status, body) = match &limit {
        Some(rl) if rl.remaining == 0 => (
            403,
            json!({
                "message": "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit.)",
                "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
            }),
        ),
        _ => (status, body),
    };
    let mut resp = super::json(status, body);
    if let Some(rl) = limit {
        let h = resp.headers_mut();
        h.insert("x-ratelimit-limit", HeaderValue::from(rl.limit));
        h.insert(
            "x-ratelimit-remaining",
            HeaderValue::from(rl.remaining.saturating_sub(1)),
        );
        h.insert("x-ratelimit-reset", HeaderValue::from(rl.reset));
        h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
    }
    resp
}

fn authenticated(headers: &HeaderMap) -> bool {
    headers.contains_key(axum::http::header::AUTHORIZATION)
}

fn repo_releases(ctx: &Ctx, owner: &str, repo: &str, with_drafts: bool) -> Vec<SimRelease> {
    let full = format!("{owner}/{repo}");
    let w = ctx.world.lock();
    let mut out: Vec<SimRelease> = w
        .github
        .releases
        .iter()
        .filter(|r| r.repo.eq_ignore_ascii_case(&full) && (with_drafts || !r.draft))
        .cloned()
        .collect();
    // Newest first, as GitHub lists them.
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    out
}

async fn by_tag(
    State(ctx): State<Ctx>,
    Path((owner, repo, tag)): Path<(String, String, String)>,
) -> Response {
    // GitHub: "Get a published release with the specified tag name" — never a draft.
    let found = repo_releases(&ctx, &owner, &repo, false)
        .into_iter()
        .find(|r| r.tag == tag);
    match found {
        Some(r) => answer(&ctx, 200, r.to_json(&ctx.base)),
        None => answer(&ctx, 404, not_found()),
    }
}

async fn latest(State(ctx): State<Ctx>, Path((owner, repo)): Path<(String, String)>) -> Response {
    let found = repo_releases(&ctx, &owner, &repo, false)
        .into_iter()
        .filter(|r| !r.prerelease)
        .max_by(|a, b| a.published_at.cmp(&b.published_at));
    match found {
        Some(r) => answer(&ctx, 200, r.to_json(&ctx.base)),
        None => answer(&ctx, 404, not_found()),
    }
}

async fn list(
    State(ctx): State<Ctx>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Response {
    let cap = ctx.world.lock().github.faults.page_cap.unwrap_or(100);
    let per_page = query_value(&query, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100)
        .min(cap);
    let page = query_value(&query, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let all = repo_releases(&ctx, &owner, &repo, authenticated(&headers));
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|r| r.to_json(&ctx.base))
        .collect();
    let more = page * per_page < all.len();
    let mut resp = answer(&ctx, 200, Value::Array(items));
    if more {
        let link = format!(
            "<{}/repos/{owner}/{repo}/releases?per_page={per_page}&page={}>; rel=\"next\"",
            ctx.base,
            page + 1
        );
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(axum::http::header::LINK, v);
        }
    }
    resp
}
