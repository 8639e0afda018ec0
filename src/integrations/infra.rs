//! The step runner: runs one infrastructure step (`bump`, `plan`, `apply`) from the target's argv
//! template, safely.
//!
//! - **No shell.** The template is an argv; `{version}` is substituted only from a validated
//!   [`Version`] and the program is executed directly.
//! - **Scrubbed environment.** The child starts from nothing, gets `PATH`, `HOME`, `LANG`
//!   (`LC_ALL`), the variables matching the target's `env_passthrough` globs — never the bot's
//!   own secrets — and the target's fixed `env`.
//! - **Own process group.** The step and everything it starts share a group, so a timeout (or a
//!   cancelled future) kills all of it: SIGTERM, a grace period, SIGKILL. Processes left behind
//!   by a step that exited are killed the same way, so no orphan outlives the step.
//! - **Streaming and redaction.** stdout and stderr are read in chunks and reported line by line,
//!   redacted, as they come; the outcome keeps a bounded tail and a bounded head capture.
//! - **Prompts.** Terraform's `Enter a value:` has no trailing newline, so it is detected on the
//!   partial line; a [`PromptHandler`] decides `yes` or `no` from the output so far.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, Command};
use tokio::time::{Instant, sleep_until};

use crate::config::{Secrets, TargetConfig};

pub mod detached;
use crate::redact::Redactor;
use crate::version::Version;

/// The only placeholder in argv templates.
pub const VERSION_PLACEHOLDER: &str = "{version}";
/// Variables every step inherits from the bot (when set), whatever `env_passthrough` says.
pub const BASE_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "LC_ALL"];
/// Names starting with this are the bot's own config overrides (the store URL may carry a
/// password), so they are never passed on either, even through a `*` glob.
const OWN_CONFIG_PREFIX: &str = "CATALOG_CHATOPS";

/// Default time between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// Default size of [`StepOutcome::output_tail`].
pub const DEFAULT_TAIL_BYTES: usize = 64 * 1024;
/// Default size of [`StepOutcome::output`]: enough for any plan of this deployment many times
/// over, and still a bound.
pub const DEFAULT_CAPTURE_BYTES: usize = 8 * 1024 * 1024;
/// A line longer than this is reported in pieces, so a child that never prints a newline cannot
/// grow memory without bound.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// How long output is still read after the step is over (leader exited and its group is gone,
/// or SIGKILL sent): a process that escaped the group could hold the pipes open forever.
const DRAIN: Duration = Duration::from_secs(2);
/// How often to look whether a terminated group is empty, to skip the rest of the grace period.
const GROUP_POLL: Duration = Duration::from_millis(50);
/// Writing a few bytes to a pipe does not block in practice; this bounds it anyway.
const ANSWER_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an argv template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the command template is empty")]
    Empty,
    #[error("`latest` must be resolved to a release before it is put into a command")]
    UnresolvedLatest,
    /// Unreachable through [`Version::parse`]; checked again because it is the last line of
    /// defence before a process is started.
    #[error("the version {0:?} has characters that are not allowed in a command")]
    UnsafeVersion(String),
}

/// Why a step could not be run (as opposed to: it ran and failed, see [`StepOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("step {step}: {source}")]
    Render { step: String, source: RenderError },
    /// E.g. `step bump: cannot run "just": No such file or directory (workdir /srv/x)`.
    #[error("step {step}: cannot run \"{program}\": {reason} (workdir {workdir})")]
    Spawn {
        step: String,
        program: String,
        workdir: String,
        reason: String,
    },
    #[error("step {step}: lost track of the process: {reason}")]
    Wait { step: String, reason: String },
}

/// Substitutes `{version}` in each argument of `template`. No shell ever sees the result.
pub fn render_argv(template: &[String], version: &Version) -> Result<Vec<String>, RenderError> {
    if template.is_empty() {
        return Err(RenderError::Empty);
    }
    let v = match version {
        Version::Latest => return Err(RenderError::UnresolvedLatest),
        Version::Semver(s) | Version::Timestamp(s) => s,
    };
    let safe = !v.is_empty()
        && !v.starts_with('-')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !safe {
        return Err(RenderError::UnsafeVersion(v.clone()));
    }
    Ok(template
        .iter()
        .map(|arg| arg.replace(VERSION_PLACEHOLDER, v))
        .collect())
}

/// Where the inherited part of a step's environment comes from.
#[derive(Debug, Clone, Default)]
pub enum InheritedEnv {
    /// The bot's own environment, read when the step starts.
    #[default]
    Process,
    /// A fixed set, so tests can run in parallel without touching the process environment.
    Given(BTreeMap<String, String>),
}

impl InheritedEnv {
    fn vars(&self) -> BTreeMap<String, String> {
        match self {
            // Non-UTF-8 variables are skipped: nothing a step needs looks like that.
            InheritedEnv::Process => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            InheritedEnv::Given(vars) => vars.clone(),
        }
    }
}

/// Everything needed to run one step.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// `bump`, `plan`, `apply`: names the step in errors and logs.
    pub name: String,
    /// Already rendered (see [`render_argv`]); `argv[0]` is looked up on the step's `PATH`.
    pub argv: Vec<String>,
    pub workdir: PathBuf,
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Fixed variables from the target's config, set last.
    pub env: BTreeMap<String, String>,
    /// Globs (`*` matches any run of characters) of variables to pass on from `inherited_env`.
    pub env_passthrough: Vec<String>,
    pub inherited_env: InheritedEnv,
    pub redactor: Redactor,
    /// Bound of [`StepOutcome::output_tail`] in bytes.
    pub tail_bytes: usize,
    /// Bound of [`StepOutcome::output`] (the head of the output) in bytes.
    pub capture_bytes: usize,
}

impl StepSpec {
    /// A spec with the defaults: inherited env from the process, no passthrough, no extra env,
    /// 5 s grace, 64 KiB tail, 8 MiB capture.
    pub fn new(
        name: impl Into<String>,
        argv: Vec<String>,
        workdir: impl Into<PathBuf>,
        timeout: Duration,
        redactor: Redactor,
    ) -> StepSpec {
        StepSpec {
            name: name.into(),
            argv,
            workdir: workdir.into(),
            timeout,
            kill_grace: DEFAULT_KILL_GRACE,
            env: BTreeMap::new(),
            env_passthrough: Vec::new(),
            inherited_env: InheritedEnv::Process,
            redactor,
            tail_bytes: DEFAULT_TAIL_BYTES,
            capture_bytes: DEFAULT_CAPTURE_BYTES,
        }
    }

    /// The spec for one of `target`'s templates (`target.bump`, `.plan` or `.apply`), with its
    /// workdir, timeout, env and passthrough.
    pub fn for_target(
        name: &str,
        template: &[String],
        target: &TargetConfig,
        version: &Version,
        redactor: Redactor,
    ) -> Result<StepSpec, StepError> {
        let argv = render_argv(template, version).map_err(|source| StepError::Render {
            step: name.to_string(),
            source,
        })?;
        let mut spec = StepSpec::new(name, argv, &target.workdir, target.step_timeout, redactor);
        spec.env = target.env.clone();
        spec.env_passthrough = target.env_passthrough.clone();
        Ok(spec)
    }

    /// The environment the child gets.
    pub fn child_env(&self) -> BTreeMap<String, String> {
        scrubbed_env(&self.inherited_env.vars(), &self.env_passthrough, &self.env)
    }
}

/// Never passed to a step, whatever the config says.
fn is_bot_secret(name: &str) -> bool {
    Secrets::ENV_VARS.contains(&name) || name.starts_with(OWN_CONFIG_PREFIX)
}

/// `BASE_ENV` from `inherited`, then the variables matching a `passthrough` glob, then `fixed`;
/// the bot's own secrets are dropped at every stage.
pub fn scrubbed_env(
    inherited: &BTreeMap<String, String>,
    passthrough: &[String],
    fixed: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, value) in inherited {
        let wanted = BASE_ENV.contains(&name.as_str())
            || passthrough.iter().any(|glob| glob_match(glob, name));
        if wanted && !is_bot_secret(name) {
            out.insert(name.clone(), value.clone());
        }
    }
    // Config validation refuses secret names here already; checked again because this is where
    // a leak would happen.
    for (name, value) in fixed {
        if !is_bot_secret(name) {
            out.insert(name.clone(), value.clone());
        }
    }
    out
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n) = (glob.as_bytes(), name.as_bytes());
    let (mut gi, mut ni) = (0, 0);
    // Where the last `*` was and how much of `name` it has swallowed so far, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ni));
            gi += 1;
        } else if gi < g.len() && g[gi] == n[ni] {
            gi += 1;
            ni += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == b'*')
}

/// What Terraform prints when it waits for an answer on stdin (without a trailing newline): the
/// prompt this runner recognises on a partial line and hands to the [`PromptHandler`].
pub const PROMPT: &str = "Enter a value:";

/// Removes ANSI escape sequences: CSI (`ESC [ … final`), OSC (`ESC ] … BEL|ESC \`) and two-byte
/// escapes. Terraform colours headers and symbols unless run with `-no-color`.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            // nF escapes such as `ESC ( B` (charset selection): intermediates in ` `..`/`, then
            // one final character.
            Some(' '..='/') => {
                for c in chars.by_ref() {
                    if !(' '..='/').contains(&c) {
                        break;
                    }
                }
            }
            // Two-character escapes (ESC followed by one character), or a lone ESC at the end.
            Some(_) | None => {}
        }
    }
    out
}

/// The answer given to a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptAnswer {
    Yes,
    No,
}

impl PromptAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptAnswer::Yes => "yes",
            PromptAnswer::No => "no",
        }
    }
}

impl fmt::Display for PromptAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a [`PromptHandler`] decides from.
#[derive(Debug)]
pub struct PromptContext<'a> {
    /// The output so far (redacted, both streams), ending with the prompt itself, so a plan
    /// parser reads what the step is about to do from it directly.
    pub output: &'a str,
    /// The output exceeded [`StepSpec::capture_bytes`] and its end is missing: a handler that
    /// checks a plan must answer `no`.
    pub truncated: bool,
}

/// Decides the answer to `Enter a value:`. After a `no` the step's stdin is closed, so nothing
/// later can be approved by accident.
pub type PromptHandler = Box<dyn FnMut(&PromptContext<'_>) -> PromptAnswer + Send>;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What [`run_step`] reports while the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEvent<'a> {
    /// The process started; `pid` is also its process group id. Journal it: after a crash of the
    /// bot, `kill(-pid, …)` reaches whatever is left of the step.
    Started { pid: u32 },
    /// One line of output, redacted, without its line ending.
    Line { stream: Stream, text: &'a str },
    /// The step printed a prompt (`text`, redacted) and waits on it — the prompt is the end of
    /// what it printed so far — and this is the answer given; `None` when there was nobody to
    /// answer (no handler, or stdin already closed after a `no`), so the step reads end-of-file.
    /// A prompt followed by more output is not waiting and is never answered.
    Prompt {
        text: &'a str,
        answer: Option<PromptAnswer>,
    },
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub step: String,
    /// Process id of the step, and its process group id.
    pub pid: u32,
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when it was killed.
    pub signal: Option<i32>,
    /// It ran past its timeout and was killed (with its whole group).
    pub timed_out: bool,
    /// Processes of the step's group were still there after it exited, and were killed.
    pub killed_leftovers: bool,
    /// Answers given to prompts, in order.
    pub answers: Vec<PromptAnswer>,
    /// The end of the output (both streams, redacted), at most about `tail_bytes`.
    pub output_tail: String,
    /// The start of the output (both streams, redacted), at most `capture_bytes`.
    pub output: String,
    /// `output` stopped at `capture_bytes`.
    pub output_truncated: bool,
    /// Bytes the step printed, before redaction.
    pub full_output_len: u64,
    pub duration: Duration,
}

impl StepOutcome {
    /// Exited with 0 in time.
    pub fn success(&self) -> bool {
        !self.timed_out && self.exit_code == Some(0)
    }

    /// A sentence for the conversation, e.g. `step plan exited with code 3`.
    pub fn describe(&self) -> String {
        let step = &self.step;
        if self.timed_out {
            return format!(
                "step {step} timed out after {} and was killed with its child processes",
                humantime::format_duration(Duration::from_secs(self.duration.as_secs()))
            );
        }
        match (self.exit_code, self.signal) {
            (Some(0), _) => format!("step {step} succeeded"),
            (Some(code), _) => format!("step {step} exited with code {code}"),
            (None, Some(sig)) => {
                let name = Signal::try_from(sig).map_or("unknown signal", |s| s.as_str());
                format!("step {step} was killed by signal {sig} ({name})")
            }
            (None, None) => format!("step {step} ended without an exit status"),
        }
    }
}

/// Runs the step to its end: streams its redacted lines to `on_event`, answers prompts with
/// `prompt`, kills its whole process group on timeout.
///
/// Dropping the returned future kills the step's process group (SIGKILL).
pub async fn run_step(
    spec: &StepSpec,
    mut on_event: impl FnMut(StepEvent<'_>) + Send,
    mut prompt: Option<PromptHandler>,
) -> Result<StepOutcome, StepError> {
    let started = Instant::now();
    let program = spec.argv.first().ok_or_else(|| StepError::Render {
        step: spec.name.clone(),
        source: RenderError::Empty,
    })?;
    let spawn_error = |reason: String| StepError::Spawn {
        step: spec.name.clone(),
        program: program.clone(),
        workdir: spec.workdir.display().to_string(),
        reason,
    };
    // Checked first: a missing workdir and a missing program both fail the spawn with ENOENT,
    // and the sentence must say which.
    check_workdir(&spec.workdir).await.map_err(spawn_error)?;

    let mut cmd = Command::new(program);
    cmd.args(&spec.argv[1..])
        .current_dir(&spec.workdir)
        .env_clear()
        .envs(spec.child_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| spawn_error(io_reason(&e)))?;
    let Some(pid) = child.id() else {
        // `id()` is `None` only once the child has been waited for, which has not happened yet.
        return Err(StepError::Wait {
            step: spec.name.clone(),
            reason: "the process has no id right after it started".into(),
        });
    };
    let pgid = Pid::from_raw(pid as i32);
    let mut guard = GroupGuard { pgid, armed: true };
    tracing::info!(step = %spec.name, pid, argv = ?spec.argv, "step started");
    on_event(StepEvent::Started { pid });

    // Without a handler nobody will answer, so the step reads end-of-file instead of hanging
    // until its timeout.
    let mut stdin: Option<ChildStdin> = child.stdin.take().filter(|_| prompt.is_some());
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();

    let mut out = Collector::new(spec);
    let mut out_split = LineSplitter::default();
    let mut err_split = LineSplitter::default();
    let mut out_buf = vec![0u8; 8192];
    let mut err_buf = vec![0u8; 8192];

    let deadline = started + spec.timeout;
    let mut status: Option<ExitStatus> = None;
    let mut timed_out = false;
    let mut killed_leftovers = false;
    // When SIGKILL goes to the group, once SIGTERM has been sent.
    let mut kill_at: Option<Instant> = None;
    // When to stop reading output that is still open after the step is over.
    let mut drain_until: Option<Instant> = None;

    loop {
        if status.is_some() && kill_at.is_none() {
            if stdout.is_none() && stderr.is_none() {
                break;
            }
            drain_until.get_or_insert_with(|| Instant::now() + DRAIN);
        }
        tokio::select! {
            r = read_some(stdout.as_mut(), &mut out_buf) => {
                let lines = handle_read(r, &mut out_split, &out_buf, &mut stdout);
                out.lines(Stream::Stdout, lines, &mut on_event);
                if out_split.prompt_pending() {
                    let split = &mut out_split;
                    answer_prompt(&mut out, split, &mut stdin, &mut prompt, &mut on_event).await;
                }
            }
            r = read_some(stderr.as_mut(), &mut err_buf) => {
                let lines = handle_read(r, &mut err_split, &err_buf, &mut stderr);
                out.lines(Stream::Stderr, lines, &mut on_event);
                if err_split.prompt_pending() {
                    let split = &mut err_split;
                    answer_prompt(&mut out, split, &mut stdin, &mut prompt, &mut on_event).await;
                }
            }
            r = child.wait(), if status.is_none() => match r {
                Ok(s) => {
                    status = Some(s);
                    // Whatever the step left in its group is killed, so nothing outlives it.
                    if group_alive(pgid) {
                        if kill_at.is_none() {
                            killed_leftovers = true;
                            signal_group(pgid, Signal::SIGTERM);
                            kill_at = Some(Instant::now() + spec.kill_grace);
                        }
                    } else {
                        kill_at = None;
                    }
                }
                Err(e) => {
                    signal_group(pgid, Signal::SIGKILL);
                    let reason = e.to_string();
                    return Err(StepError::Wait { step: spec.name.clone(), reason });
                }
            },
            _ = sleep_until(deadline), if !timed_out && status.is_none() => {
                timed_out = true;
                tracing::warn!(step = %spec.name, pid, "step timed out; terminating its group");
                signal_group(pgid, Signal::SIGTERM);
                kill_at = Some(Instant::now() + spec.kill_grace);
            }
            _ = sleep_until(kill_at.unwrap_or(deadline)), if kill_at.is_some() => {
                signal_group(pgid, Signal::SIGKILL);
                kill_at = None;
                drain_until = Some(Instant::now() + DRAIN);
            }
            _ = tokio::time::sleep(GROUP_POLL), if kill_at.is_some() && status.is_some() => {
                if !group_alive(pgid) {
                    kill_at = None;
                }
            }
            _ = sleep_until(drain_until.unwrap_or(deadline)), if drain_until.is_some() => {
                // Someone outside the group holds the pipes; stop listening to them.
                out.lines(Stream::Stdout, out_split.finish(), &mut on_event);
                out.lines(Stream::Stderr, err_split.finish(), &mut on_event);
                stdout = None;
                stderr = None;
                drain_until = None;
            }
        }
    }
    guard.armed = false;
    drop(stdin);

    let status = status.ok_or_else(|| StepError::Wait {
        step: spec.name.clone(),
        reason: "the loop ended before the process did".into(),
    })?;
    use std::os::unix::process::ExitStatusExt;
    let outcome = StepOutcome {
        step: spec.name.clone(),
        pid,
        exit_code: status.code(),
        signal: status.signal(),
        timed_out,
        killed_leftovers,
        answers: out.answers,
        output_tail: out.tail.into_iter().collect::<Vec<_>>().join("\n"),
        output: out.capture,
        output_truncated: out.capture_truncated,
        full_output_len: out.raw_len,
        duration: started.elapsed(),
    };
    tracing::info!(step = %spec.name, pid, exit_code = ?outcome.exit_code, signal = ?outcome.signal,
        timed_out, duration = ?outcome.duration, "step ended");
    Ok(outcome)
}

/// Kills the group if the step's future is dropped before the step ended.
struct GroupGuard {
    pgid: Pid,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

/// Best effort: the group may already be gone (ESRCH), which is what we wanted anyway.
///
/// The group id is the leader's pid. While any member lives, Linux does not reuse that pid, and
/// the leader is only reaped by `child.wait()` in the loop above, so until then the id cannot
/// name someone else's group. After that, the only window is between the group becoming empty
/// and our next look, with a pid reused in between; pids are allocated cyclically, so that would
/// take a full wrap of the pid space within milliseconds.
fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(pgid = pgid.as_raw(), %signal, "cannot signal the step's group: {e}")
        }
    }
}

/// Whether any process (zombies included) is left in the group.
fn group_alive(pgid: Pid) -> bool {
    // EPERM means a process exists that we may not signal: still alive.
    !matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

async fn check_workdir(dir: &Path) -> Result<(), String> {
    match tokio::fs::metadata(dir).await {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err("the workdir is not a directory".into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err("the workdir does not exist".into()),
        Err(e) => Err(format!("the workdir cannot be used: {}", io_reason(&e))),
    }
}

/// The OS's sentence for an error, without Rust's ` (os error 2)` suffix.
fn io_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// Reads from the pipe if it is still open; pends forever otherwise, so the `select!` branch of
/// a closed pipe never fires.
async fn read_some<R: AsyncRead + Unpin>(r: Option<&mut R>, buf: &mut [u8]) -> io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Feeds a read's bytes to the splitter; on end-of-file or a read error closes the pipe and
/// flushes the partial line.
fn handle_read<R>(
    r: io::Result<usize>,
    split: &mut LineSplitter,
    buf: &[u8],
    pipe: &mut Option<R>,
) -> Vec<String> {
    match r {
        Ok(n) if n > 0 => split.push(&buf[..n.min(buf.len())]),
        other => {
            if let Err(e) = other {
                tracing::warn!("reading the step's output failed: {e}");
            }
            *pipe = None;
            split.finish()
        }
    }
}

/// Splits a byte stream into lines; keeps the unterminated rest to look for prompts in it.
#[derive(Default)]
struct LineSplitter {
    partial: Vec<u8>,
    /// The current partial line has been treated as a prompt already.
    prompted: bool,
    raw_len: u64,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.raw_len += bytes.len() as u64;
        let mut lines = Vec::new();
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            self.partial.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") {
                lines.push(take_line(&mut self.partial));
                self.prompted = false;
            } else if self.partial.len() > MAX_LINE_BYTES {
                lines.push(take_line(&mut self.partial));
            }
        }
        lines
    }

    /// The rest at end-of-file.
    fn finish(&mut self) -> Vec<String> {
        if self.partial.is_empty() {
            Vec::new()
        } else {
            vec![take_line(&mut self.partial)]
        }
    }

    /// The partial line is a prompt that has not been handled yet.
    fn prompt_pending(&self) -> bool {
        !self.prompted
            && !self.partial.is_empty()
            && strip_ansi(&String::from_utf8_lossy(&self.partial))
                .trim_end()
                .ends_with(PROMPT)
    }
}

/// Takes the buffered line out of `partial`, without its line ending.
fn take_line(partial: &mut Vec<u8>) -> String {
    let mut line = std::mem::take(partial);
    if line.ends_with(b"\n") {
        line.pop();
        if line.ends_with(b"\r") {
            line.pop();
        }
    } else if let Err(e) = std::str::from_utf8(&line) {
        // A line cut at MAX_LINE_BYTES may end inside a character; keep its start for the next.
        if e.error_len().is_none() {
            *partial = line.split_off(e.valid_up_to());
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// The redacted output: streamed, tail, head capture, answers.
struct Collector<'a> {
    redactor: &'a Redactor,
    tail: VecDeque<String>,
    tail_len: usize,
    tail_bytes: usize,
    capture: String,
    capture_bytes: usize,
    capture_truncated: bool,
    answers: Vec<PromptAnswer>,
    raw_len: u64,
}

impl<'a> Collector<'a> {
    fn new(spec: &'a StepSpec) -> Collector<'a> {
        Collector {
            redactor: &spec.redactor,
            tail: VecDeque::new(),
            tail_len: 0,
            tail_bytes: spec.tail_bytes,
            capture: String::new(),
            capture_bytes: spec.capture_bytes,
            capture_truncated: false,
            answers: Vec::new(),
            raw_len: 0,
        }
    }

    fn lines(
        &mut self,
        stream: Stream,
        lines: Vec<String>,
        on_event: &mut impl FnMut(StepEvent<'_>),
    ) {
        for raw in lines {
            self.raw_len += raw.len() as u64 + 1;
            let line = self.redactor.redact(&raw);
            on_event(StepEvent::Line {
                stream,
                text: &line,
            });
            if !self.capture_truncated {
                // `<`: the line's newline must fit too.
                if self.capture.len() + line.len() < self.capture_bytes {
                    self.capture.push_str(&line);
                    self.capture.push('\n');
                } else {
                    self.capture_truncated = true;
                }
            }
            self.tail_len += line.len() + 1;
            self.tail.push_back(line);
            // The newest line stays even if it alone is over the bound.
            while self.tail_len > self.tail_bytes && self.tail.len() > 1 {
                if let Some(old) = self.tail.pop_front() {
                    self.tail_len -= old.len() + 1;
                }
            }
        }
    }
}

/// Asks the handler about the prompt in `split`'s partial line and writes the answer.
async fn answer_prompt(
    out: &mut Collector<'_>,
    split: &mut LineSplitter,
    stdin: &mut Option<ChildStdin>,
    prompt: &mut Option<PromptHandler>,
    on_event: &mut impl FnMut(StepEvent<'_>),
) {
    split.prompted = true;
    let text = out
        .redactor
        .redact(String::from_utf8_lossy(&split.partial).as_ref());
    let answer = match (stdin.as_mut(), prompt.as_mut()) {
        (Some(_), Some(handler)) => {
            // The prompt line joins the capture only for the handler's eyes: it is captured for
            // good when its line ends.
            let keep = out.capture.len();
            out.capture.push_str(&text);
            let answer = handler(&PromptContext {
                output: &out.capture,
                truncated: out.capture_truncated,
            });
            out.capture.truncate(keep);
            Some(answer)
        }
        _ => None,
    };
    on_event(StepEvent::Prompt {
        text: &text,
        answer,
    });
    let Some(answer) = answer else {
        return;
    };
    out.answers.push(answer);
    if let Some(pipe) = stdin.as_mut() {
        let line = format!("{answer}\n");
        let write = async {
            pipe.write_all(line.as_bytes()).await?;
            pipe.flush().await
        };
        match tokio::time::timeout(ANSWER_WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot answer the step's prompt: {e}"),
            Err(_) => tracing::warn!("answering the step's prompt timed out"),
        }
    }
    if answer == PromptAnswer::No {
        // Fail closed: after a refusal no later prompt can be answered.
        *stdin = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(strip_ansi("\u{1b}[1;31mred\u{1b}[0m plain"), "red plain");
        assert_eq!(
            strip_ansi("\u{1b}]8;;http://x\u{7}link\u{1b}]8;;\u{1b}\\"),
            "link"
        );
        assert_eq!(strip_ansi("a\u{1b}(Bb"), "ab");
        assert_eq!(strip_ansi("end\u{1b}"), "end");
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn render_substitutes_version_only() {
        let t = strings(&[
            "just",
            "bump",
            "prod",
            "catalog-airflow",
            "{version}",
            "x={version}",
        ]);
        assert_eq!(
            render_argv(&t, &v("v1.2.3")).unwrap(),
            [
                "just",
                "bump",
                "prod",
                "catalog-airflow",
                "v1.2.3",
                "x=v1.2.3"
            ]
        );
        assert_eq!(
            render_argv(&strings(&["echo", "{other}", "$HOME"]), &v("1.0.0")).unwrap(),
            ["echo", "{other}", "$HOME"]
        );
        assert_eq!(render_argv(&[], &v("1.0.0")), Err(RenderError::Empty));
        assert_eq!(
            render_argv(&t, &Version::Latest),
            Err(RenderError::UnresolvedLatest)
        );
        // Only reachable by building the enum by hand, never through Version::parse.
        assert!(matches!(
            render_argv(&t, &Version::Semver("$(id)".into())),
            Err(RenderError::UnsafeVersion(_))
        ));
        assert!(matches!(
            render_argv(&t, &Version::Semver("-rf".into())),
            Err(RenderError::UnsafeVersion(_))
        ));
    }

    #[test]
    fn globs() {
        assert!(glob_match("AWS_*", "AWS_REGION"));
        assert!(glob_match("AWS_*", "AWS_"));
        assert!(!glob_match("AWS_*", "XAWS_REGION"));
        assert!(glob_match("*", "ANYTHING"));
        assert!(glob_match("*_TOKEN", "GITHUB_TOKEN"));
        assert!(glob_match("TF_*_X*", "TF_VAR_X1"));
        assert!(!glob_match("TF_*_X", "TF_VAR_Y"));
        assert!(glob_match("EXACT", "EXACT"));
        assert!(!glob_match("EXACT", "EXACTLY"));
        assert!(glob_match("**A", "BA"));
    }

    #[test]
    fn env_is_scrubbed() {
        let inherited: BTreeMap<String, String> = [
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("LANG", "C.UTF-8"),
            ("AWS_REGION", "us-east-1"),
            ("GITHUB_TOKEN", "ghp_x"),
            ("AIRFLOW_PASSWORD", "pw"),
            ("CATALOG_CHATOPS__STORE__URL", "postgres://u:pw@h/db"),
            ("OTHER", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let fixed = BTreeMap::from([("TF_VAR_env".to_string(), "prod".to_string())]);
        let env = scrubbed_env(&inherited, &strings(&["AWS_*"]), &fixed);
        assert_eq!(
            env.keys().map(String::as_str).collect::<Vec<_>>(),
            ["AWS_REGION", "HOME", "LANG", "PATH", "TF_VAR_env"]
        );
        let all = scrubbed_env(&inherited, &strings(&["*"]), &BTreeMap::new());
        for secret in Secrets::ENV_VARS {
            assert!(!all.contains_key(secret));
        }
        assert!(!all.contains_key("CATALOG_CHATOPS__STORE__URL"));
        assert!(all.contains_key("OTHER"));
    }

    #[test]
    fn lines_split_across_chunks_and_prompts_without_newline() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"one\ntw"), ["one"]);
        assert_eq!(s.push(b"o\r\n\n  Enter a "), ["two", ""]);
        assert!(!s.prompt_pending());
        assert!(s.push(b"value: ").is_empty());
        assert!(s.prompt_pending());
        s.prompted = true;
        assert!(!s.prompt_pending());
        assert_eq!(s.push(b"\nafter"), ["  Enter a value: "]);
        assert!(!s.prompted);
        assert_eq!(s.finish(), ["after"]);
        assert!(s.finish().is_empty());
    }

    #[test]
    fn long_lines_are_cut_at_character_boundaries() {
        let mut s = LineSplitter::default();
        let e = "é".as_bytes();
        let mut bytes = vec![b'a'; MAX_LINE_BYTES];
        bytes.push(e[0]);
        let lines = s.push(&bytes);
        assert_eq!(lines, ["a".repeat(MAX_LINE_BYTES)]);
        assert!(s.push(&e[1..]).is_empty());
        assert_eq!(s.finish(), ["é"]);
    }

    #[test]
    fn outcome_sentences() {
        let mut o = StepOutcome {
            step: "plan".into(),
            pid: 1,
            exit_code: Some(3),
            signal: None,
            timed_out: false,
            killed_leftovers: false,
            answers: vec![],
            output_tail: String::new(),
            output: String::new(),
            output_truncated: false,
            full_output_len: 0,
            duration: Duration::from_millis(61_500),
        };
        assert_eq!(o.describe(), "step plan exited with code 3");
        assert!(!o.success());
        o.exit_code = None;
        o.signal = Some(9);
        assert_eq!(o.describe(), "step plan was killed by signal 9 (SIGKILL)");
        o.timed_out = true;
        assert_eq!(
            o.describe(),
            "step plan timed out after 1m 1s and was killed with its child processes"
        );
    }
}
