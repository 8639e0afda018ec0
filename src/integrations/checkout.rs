//! The commit the Airflow host's DAG checkout is on, and when it last moved, read from the
//! configured source: dag-sync moves the checkout at the monorepo root on the EC2 host, so a bot
//! elsewhere reads it through a command (`ssh host git -C <checkout> log --walk-reflogs …`), a
//! bot on the host from the checkout itself (`path`), and a test or a hand-written setup from a
//! file. Commands run without a shell, with a timeout, never blocking the runtime.

use std::time::Duration;

use crate::config::CommitSource;
use crate::timefmt::parse_rfc3339_ms;

/// A git, file or command source that takes longer than this is broken.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the deployed commit source said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub sha: String,
    /// When the checkout last moved (ms), where the source can tell.
    pub synced_ms: Option<i64>,
}

/// The command a `path` source runs: the commit HEAD points at and when HEAD last moved (its
/// newest reflog entry, which `git reset --hard` — what dag-sync runs — writes). `git -C` finds
/// the repository root from any folder inside it, so the time is the checkout's, not the
/// folder's. The same argv after `ssh host` makes a command source for a checkout elsewhere.
pub fn git_head_argv(path: &str) -> Vec<String> {
    [
        "git",
        "-C",
        path,
        "log",
        "--walk-reflogs",
        "-1",
        "--date=unix",
        "--format=%H%x20%gd",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

/// Reads the deployed commit from the configured source.
pub async fn deployed_commit(source: &CommitSource) -> Result<Deployed, String> {
    match source {
        CommitSource::Path(path) => match run(&git_head_argv(path)).await {
            Ok(out) => parse_source_output(&out),
            // No reflog (`core.logAllRefUpdates` off, or a bare copy): the commit without a time.
            Err(reflog_error) => {
                let out = run(&[
                    "git".to_string(),
                    "-C".to_string(),
                    path.clone(),
                    "rev-parse".to_string(),
                    "HEAD".to_string(),
                ])
                .await
                .map_err(|e| format!("{e} (and before that: {reflog_error})"))?;
                let mut d = parse_source_output(&out)?;
                d.synced_ms = None;
                Ok(d)
            }
        },
        CommitSource::File(file) => {
            let text = tokio::fs::read_to_string(file)
                .await
                .map_err(|e| format!("cannot read {file}: {e}"))?;
            let mut d = parse_source_output(&text)?;
            if d.synced_ms.is_none() {
                d.synced_ms = mtime_ms(std::path::Path::new(file)).await;
            }
            Ok(d)
        }
        CommitSource::Command(argv) => parse_source_output(&run(argv).await?),
    }
}

/// A source's output: the commit as the first word, then optionally when the checkout last
/// moved — git's reflog selector `HEAD@{<unix seconds>}` (from `--date=unix --format='%H %gd'`),
/// plain unix seconds (`stat -c %Y`), or RFC 3339.
pub fn parse_source_output(text: &str) -> Result<Deployed, String> {
    let mut words = text.split_whitespace();
    let sha = words.next().unwrap_or_default().to_string();
    if sha.len() < 7 || sha.len() > 40 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "the deployed commit source gave {:?}, which is not a commit id",
            sha.chars().take(60).collect::<String>()
        ));
    }
    let synced_ms = match words.next() {
        None => None,
        Some(w) => Some(parse_sync_time(w).ok_or_else(|| {
            format!(
                "the deployed commit source gave {:?} after the commit, which is not a time \
                 (expected HEAD@{{<unix seconds>}}, unix seconds or RFC 3339)",
                w.chars().take(60).collect::<String>()
            )
        })?),
    };
    Ok(Deployed {
        sha: sha.to_ascii_lowercase(),
        synced_ms,
    })
}

fn parse_sync_time(word: &str) -> Option<i64> {
    let inner = word
        .strip_prefix("HEAD@{")
        .and_then(|w| w.strip_suffix('}'))
        .unwrap_or(word);
    if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit()) {
        return inner.parse::<i64>().ok()?.checked_mul(1000);
    }
    parse_rfc3339_ms(inner)
}

async fn mtime_ms(path: &std::path::Path) -> Option<i64> {
    let modified = tokio::fs::metadata(path).await.ok()?.modified().ok()?;
    let d = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// Runs argv (no shell) with a timeout; its stdout, or a sentence naming what failed.
async fn run(argv: &[String]) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the commit source command is empty".to_string());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(SOURCE_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(format!(
                "`{program}` did not finish within {} s",
                SOURCE_TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot run `{program}`: {e}")),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "`{program}` failed ({}): {}",
            out.status,
            err.lines().next().unwrap_or("no output")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sources_give_a_commit_or_a_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("DEPLOYED");
        std::fs::write(&f, "0123456789abcdef0123456789abcdef01234567\n").unwrap();
        let d = deployed_commit(&CommitSource::File(f.display().to_string()))
            .await
            .unwrap();
        assert_eq!(d.sha, "0123456789abcdef0123456789abcdef01234567");
        assert!(d.synced_ms.is_some());
        let cmd = CommitSource::Command(vec!["echo".into(), "ABCDEF1".into()]);
        assert_eq!(deployed_commit(&cmd).await.unwrap().sha, "abcdef1");
        let bad = CommitSource::Command(vec!["echo".into(), "hello; rm -rf".into()]);
        assert!(
            deployed_commit(&bad)
                .await
                .unwrap_err()
                .contains("not a commit id")
        );
        let missing = CommitSource::Command(vec!["/nonexistent/prog".into()]);
        assert!(
            deployed_commit(&missing)
                .await
                .unwrap_err()
                .contains("cannot run")
        );
    }

    #[test]
    fn source_output_with_a_sync_time() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let d = parse_source_output(&format!("{sha} HEAD@{{1796102452}}\n")).unwrap();
        assert_eq!(d.sha, sha);
        assert_eq!(d.synced_ms, Some(1_796_102_452_000));
        let d = parse_source_output(&format!("{sha}\n1796102452\n")).unwrap();
        assert_eq!(d.synced_ms, Some(1_796_102_452_000));
        let d = parse_source_output(&format!("{sha} 2026-12-01T05:00:00Z")).unwrap();
        assert_eq!(d.synced_ms, parse_rfc3339_ms("2026-12-01T05:00:00Z"));
        assert_eq!(parse_source_output(sha).unwrap().synced_ms, None);
        assert!(
            parse_source_output(&format!("{sha} yesterday"))
                .unwrap_err()
                .contains("\"yesterday\" after the commit, which is not a time")
        );
    }

    /// A real git checkout: the commit and the time of the last `git reset --hard` are read at
    /// the repository root even when the source names a folder inside it (the DAG folder).
    #[tokio::test]
    async fn a_path_source_reads_the_repository_root() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
                .args(args)
                .output()
                .expect("git");
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q"]);
        std::fs::create_dir_all(dir.path().join("catalog/dags")).unwrap();
        std::fs::write(dir.path().join("catalog/dags/a.py"), "x = 1\n").unwrap();
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "one"]);
        let first = git(&["rev-parse", "HEAD"]);
        git(&["commit", "-q", "--allow-empty", "-m", "two"]);
        git(&["reset", "-q", "--hard", &first]);
        let dags = dir.path().join("catalog/dags").display().to_string();
        let d = deployed_commit(&CommitSource::Path(dags)).await.unwrap();
        assert_eq!(d.sha, first);
        let synced = d.synced_ms.expect("the reflog's time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap();
        assert!((now - synced).abs() < 120_000, "{synced}");
        // The same argv as a command source (what `ssh host git …` prints).
        let argv = git_head_argv(&dir.path().display().to_string());
        let d = deployed_commit(&CommitSource::Command(argv)).await.unwrap();
        assert_eq!(
            (d.sha.as_str(), d.synced_ms),
            (first.as_str(), Some(synced))
        );
    }
}
