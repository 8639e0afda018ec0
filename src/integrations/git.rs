//! The infrastructure checkout as git sees it: what the bump changed (`git diff HEAD`), and the
//! bump of a successful deploy committed on a branch of its own and pushed, for the infra pull
//! request.
//!
//! git runs through the step runner ([`super::infra::run_step`]): no shell, the target's scrubbed
//! environment (PATH, HOME, LANG, its `env_passthrough` and `env`; never the bot's secrets), its
//! own process group, a timeout, redacted output. `GIT_TERMINAL_PROMPT=0` makes a push that would
//! ask for a password fail instead of hanging.
//!
//! The commit is built on a scratch index (`GIT_INDEX_FILE`) from the tracked files only: the
//! checkout's branch, index and working tree are left exactly as the bump left them, and an
//! untracked file (a plan file, a `.terraform` folder, a local secret) is never pushed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::TargetConfig;
use crate::redact::Redactor;

use super::infra::{self, StepEvent, StepSpec, Stream};

/// Bounds every git command; a push over a slow link included.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);
/// How many of git's lines a failure quotes.
const QUOTED_LINES: usize = 5;
/// Who the bot's commits are by (the pull request names the people behind the deploy).
pub const COMMIT_AUTHOR: (&str, &str) = (
    "catalog-chatops",
    "catalog-chatops@users.noreply.github.com",
);

/// Why a git command gave no usable answer; the sentence names the command and git's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GitError(pub String);

/// The git checkout a target's steps run in.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// The step workdir (any folder inside the checkout).
    pub workdir: PathBuf,
    env_passthrough: Vec<String>,
    env: BTreeMap<String, String>,
    redactor: Redactor,
}

/// What one git command printed.
#[derive(Debug, Clone, Default)]
struct Printed {
    stdout: Vec<String>,
    all: Vec<String>,
}

impl Checkout {
    /// The checkout holding `target.workdir`, or `None` when the workdir is not inside one, or
    /// is a folder that checkout ignores (the sandbox's `data/sandbox-infra` inside this repo):
    /// then nothing about the bump can be read from git. An error when git cannot say.
    pub async fn of_target(
        target: &TargetConfig,
        redactor: Redactor,
    ) -> Result<Option<Checkout>, GitError> {
        let workdir = PathBuf::from(&target.workdir);
        if find_git_dir(&workdir).is_none() {
            return Ok(None);
        }
        let checkout = Checkout {
            workdir,
            env_passthrough: target.env_passthrough.clone(),
            env: target.env.clone(),
            redactor,
        };
        // 0: ignored, 1: not ignored, anything else: git could not tell.
        match checkout.run(&["check-ignore", "--quiet", "."], &[]).await? {
            (Some(0), _) => Ok(None),
            (Some(1), _) => Ok(Some(checkout)),
            (code, p) => Err(checkout.failure("git check-ignore --quiet .", code, &p)),
        }
    }

    /// Runs git; its exit code (`None` when killed or timed out) and what it printed.
    async fn run(
        &self,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Result<(Option<i32>, Printed), GitError> {
        let mut argv = vec!["git".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let mut spec = StepSpec::new(
            "git",
            argv,
            &self.workdir,
            GIT_TIMEOUT,
            self.redactor.clone(),
        );
        spec.env_passthrough = self.env_passthrough.clone();
        spec.env = self.env.clone();
        // Never wait for a password nobody will type; never page; no system-wide config.
        for (k, v) in [
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_PAGER", "cat"),
            ("GIT_CONFIG_NOSYSTEM", "1"),
        ]
        .iter()
        .chain(extra_env)
        {
            spec.env.insert(k.to_string(), v.to_string());
        }
        let mut printed = Printed::default();
        let outcome = infra::run_step(
            &spec,
            |ev| {
                if let StepEvent::Line { stream, text } = ev {
                    let text = strip_url_credentials(text);
                    if stream == Stream::Stdout {
                        printed.stdout.push(text.clone());
                    }
                    printed.all.push(text);
                }
            },
            None,
        )
        .await
        .map_err(|e| GitError(format!("`git {}` could not run: {e}", args.join(" "))))?;
        let code = if outcome.timed_out {
            None
        } else {
            outcome.exit_code
        };
        Ok((code, printed))
    }

    /// Runs git and insists on success.
    async fn git(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Result<Printed, GitError> {
        match self.run(args, extra_env).await? {
            (Some(0), printed) => Ok(printed),
            (code, printed) => {
                Err(self.failure(&format!("git {}", args.join(" ")), code, &printed))
            }
        }
    }

    /// `` `git …` failed (exit 1): <git's reasons> ``.
    fn failure(&self, shown: &str, code: Option<i32>, printed: &Printed) -> GitError {
        let said: Vec<&str> = printed
            .all
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        // git's reasons (a hook's refusal, `fatal: …`) come before its summary lines; quote
        // them rather than only the last lines.
        let reasons: Vec<&str> = said
            .iter()
            .copied()
            .filter(|l| {
                l.starts_with("remote:")
                    || l.starts_with("error:")
                    || l.starts_with("fatal:")
                    || l.starts_with('!')
            })
            .collect();
        let quoted = if reasons.is_empty() { &said } else { &reasons };
        let tail = quoted[quoted.len().saturating_sub(QUOTED_LINES)..].join(" / ");
        let how = match code {
            Some(c) => format!("exit {c}"),
            None => format!(
                "killed or timed out after {}",
                humantime::format_duration(GIT_TIMEOUT)
            ),
        };
        GitError(if tail.is_empty() {
            format!("`{shown}` failed ({how})")
        } else {
            format!("`{shown}` failed ({how}): {tail}")
        })
    }

    /// `git diff HEAD`: every change to tracked files since the checked-out commit, staged or
    /// not (a bump recipe may `git add` what it wrote).
    pub async fn diff_head(&self) -> Result<String, GitError> {
        let p = self
            .git(
                &[
                    "diff",
                    "--no-color",
                    "--no-ext-diff",
                    "--no-textconv",
                    "HEAD",
                    "--",
                ],
                &[],
            )
            .await?;
        Ok(p.stdout.join("\n"))
    }

    /// Commits the tracked files as they are now on top of `HEAD`, without touching the branch,
    /// the index or the working tree; `None` when they equal `HEAD` (nothing to propose).
    pub async fn commit_worktree(&self, message: &str) -> Result<Option<String>, GitError> {
        let git_dir = self.one_line(&["rev-parse", "--absolute-git-dir"]).await?;
        let scratch = Path::new(&git_dir).join(format!("chatops-index-{}", std::process::id()));
        let index = scratch.display().to_string();
        let result = async {
            let env = [("GIT_INDEX_FILE", index.as_str())];
            self.git(&["read-tree", "HEAD"], &env).await?;
            self.git(&["add", "--update", "--", ":/"], &env).await?;
            let tree = self.one_line_env(&["write-tree"], &env).await?;
            let head_tree = self.one_line(&["rev-parse", "HEAD^{tree}"]).await?;
            if tree == head_tree {
                return Ok(None);
            }
            let (name, email) = COMMIT_AUTHOR;
            let who = [
                ("GIT_AUTHOR_NAME", name),
                ("GIT_AUTHOR_EMAIL", email),
                ("GIT_COMMITTER_NAME", name),
                ("GIT_COMMITTER_EMAIL", email),
            ];
            let commit = self
                .one_line_env(&["commit-tree", &tree, "-p", "HEAD", "-m", message], &who)
                .await?;
            Ok(Some(commit))
        }
        .await;
        let _ = std::fs::remove_file(&scratch);
        result
    }

    /// Creates the local branch `name` at `commit` (refusing to move an existing one).
    pub async fn create_branch(&self, name: &str, commit: &str) -> Result<(), GitError> {
        self.git(&["branch", "--no-track", "--", name, commit], &[])
            .await
            .map(|_| ())
    }

    /// Pushes the local branch `name` to the same name on `remote`; never forced.
    pub async fn push(&self, remote: &str, name: &str) -> Result<(), GitError> {
        let refspec = format!("refs/heads/{name}:refs/heads/{name}");
        self.git(&["push", "--porcelain", "--", remote, &refspec], &[])
            .await
            .map(|_| ())
    }

    async fn one_line(&self, args: &[&str]) -> Result<String, GitError> {
        self.one_line_env(args, &[]).await
    }

    async fn one_line_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String, GitError> {
        let p = self.git(args, env).await?;
        p.stdout
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .map(str::to_string)
            .ok_or_else(|| GitError(format!("`git {}` printed nothing", args.join(" "))))
    }
}

/// The `.git` (a folder, or a worktree's file) of the checkout holding `dir`, if any.
pub fn find_git_dir(dir: &Path) -> Option<PathBuf> {
    let start = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(dir)
    };
    start
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|g| g.exists())
}

/// The lines a diff adds (without their `+`), file headers left out.
pub fn added_lines(diff: &str) -> Vec<&str> {
    diff.lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .map(|l| &l[1..])
        .collect()
}

/// Whether `tag` appears in `text` as a whole tag: `v1.5.3` is not found in `v1.5.30`, nor
/// `rel-2026.11.30.10.00.00` in `xrel-…`.
pub fn mentions_tag(text: &str, tag: &str) -> bool {
    if tag.is_empty() {
        return false;
    }
    let part_of_tag = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    text.match_indices(tag).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + tag.len()..].chars().next();
        // A tag at the end of a sentence (`… to v1.5.3.`) still counts.
        let after_ok = match after {
            None => true,
            Some('.') => !text[at + tag.len() + 1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric()),
            Some(c) => !part_of_tag(c),
        };
        !before.is_some_and(part_of_tag) && after_ok
    })
}

/// `https://user:token@host/…` → `https://***@host/…`: a remote URL with credentials in it
/// must not reach chat through git's messages.
pub fn strip_url_credentials(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(userinfo) => {
                out.push_str("***");
                rest = &tail[userinfo..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_found_whole() {
        assert!(mentions_tag(
            "catalog_image_tag: rel-2026.11.30.10.00.00",
            "rel-2026.11.30.10.00.00"
        ));
        assert!(mentions_tag("tag = \"v1.5.3\"", "v1.5.3"));
        assert!(mentions_tag("updated to v1.5.3.", "v1.5.3"));
        assert!(!mentions_tag("tag = \"v1.5.30\"", "v1.5.3"));
        assert!(!mentions_tag("tag = \"v1.5.3.1\"", "v1.5.3"));
        assert!(!mentions_tag("xv1.5.3", "v1.5.3"));
        assert!(!mentions_tag(
            "rel-2026.11.30.10.00.00-rc",
            "rel-2026.11.30.10.00.00"
        ));
        assert!(!mentions_tag("anything", ""));
    }

    #[test]
    fn added_lines_leave_headers_and_removals_out() {
        let diff =
            "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-tag: v1.5.2\n+tag: v1.5.3\n";
        assert_eq!(added_lines(diff), ["tag: v1.5.3"]);
    }

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            strip_url_credentials("To https://x-access-token:ghs_abc@github.com/o/r.git"),
            "To https://***@github.com/o/r.git"
        );
        assert_eq!(
            strip_url_credentials("fatal: unable to access 'https://github.com/o/r/': 403"),
            "fatal: unable to access 'https://github.com/o/r/': 403"
        );
        assert_eq!(strip_url_credentials("no url here"), "no url here");
    }
}
