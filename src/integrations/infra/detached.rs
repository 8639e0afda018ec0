//! Steps that outlive the bot (issue 16). A step's pipes used to end at the bot: when the bot died
//! the step died at its next line of output (SIGPIPE), cutting a `terraform apply` in half. Now
//! the binary starts a small supervisor of its own for each step ([`launch`], the hidden
//! `__step-supervisor` argument, [`supervise`]):
//!
//! - the supervisor calls `setsid` (its own session and process group), so a signal to the bot's
//!   group or a dying terminal does not reach it, and it is re-parented to init when the bot dies;
//! - it runs the step in a process group of the step's own (the group a cancel and `step_timeout`
//!   end), stdout and stderr appended to `output` in the step's directory (mode 0600: raw output;
//!   it is redacted where it is read);
//! - the step's stdin is a pipe the supervisor holds; an answer to a prompt is a file
//!   `answer-<n>` the bot writes atomically (temp + rename), which the supervisor forwards — so
//!   whichever process follows the step can answer, and an answer is never given twice;
//! - it enforces the step's timeout itself (TERM to the group, the kill grace, KILL), and a
//!   `kill` file asks for the same at once (`!deploy cancel`);
//! - when the step has ended (and anything it left in its group is gone) it writes `status.json`
//!   atomically.
//!
//! The bot [`follow`]s the output file as it grows, exactly as it read the pipes: lines, the
//! partial line where Terraform's prompt waits, the same [`Collector`] bounds. Identity is pid
//! plus start time (`/proc/<pid>/stat`), so a reused pid is never taken for the supervisor. A
//! run whose supervisor and step are both gone without `status.json` is [`Followed::Lost`]: its
//! outcome is truly unknown.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{
    Collector, LineSplitter, PromptAnswer, PromptContext, PromptHandler, StepError, StepOutcome,
    StepSpec, Stream, check_workdir, group_alive, io_reason, signal_group,
};

/// The first argument that makes the binary a step supervisor (not a clap subcommand: it needs
/// no config, no runtime and no logging).
pub const SUPERVISOR_ARG: &str = "__step-supervisor";

/// How often the supervisor looks at its step and its directory, and the bot at the output.
const POLL: Duration = Duration::from_millis(50);
/// Read at most this much output at a time.
const CHUNK: usize = 64 * 1024;
/// A supervisor that has not said who it is this long after its run was recorded never will.
const SUPERVISOR_SILENCE: Duration = Duration::from_secs(10);

static SUPERVISOR_EXE: OnceLock<PathBuf> = OnceLock::new();

/// Makes this process run deploy steps detached, with `exe` (the binary itself) as their
/// supervisor. Without it (the library in tests, embedding) steps run attached to the process.
pub fn enable(exe: PathBuf) {
    let _ = SUPERVISOR_EXE.set(exe);
}

/// Whether steps run detached in this process.
pub fn enabled() -> bool {
    SUPERVISOR_EXE.get().is_some()
}

/// A process, told apart from a later one that got the same pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ident {
    pub pid: i64,
    /// Clock ticks since boot at which it started (`/proc/<pid>/stat`, field 22).
    pub start: i64,
}

impl Ident {
    /// The process `pid` as it is now, if it exists.
    pub fn of(pid: i64) -> Option<Ident> {
        let (_, start) = proc_stat(pid)?;
        Some(Ident { pid, start })
    }

    /// This very process is still running (not a zombie, not a newer process with its pid).
    pub fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.start && state != 'Z' && state != 'X')
    }
}

/// Whether a process of group `pgid` is still running. Zombies do not count: a member whose
/// parent died before it is re-parented to init, which may never reap it (in some containers).
pub fn group_running(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No /proc: ask the kernel, zombies included.
        return group_alive(Pid::from_raw(pgid));
    };
    entries.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields after the name: state, ppid, pgrp.
        fields.first().is_some_and(|s| *s != "Z" && *s != "X")
            && fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
    })
}

/// State letter and start time of `pid` from `/proc/<pid>/stat`.
fn proc_stat(pid: i64) -> Option<(char, i64)> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself:
    // the fields after it start after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 overall is the 20th after the command name (fields 3.. are 0..).
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// What the supervisor needs to run the step; removed as soon as it is read (the environment
/// may carry passed-through credentials).
#[derive(Debug, Serialize, Deserialize)]
struct SupervisedSpec {
    name: String,
    argv: Vec<String>,
    workdir: PathBuf,
    env: BTreeMap<String, String>,
    timeout_ms: u64,
    kill_grace_ms: u64,
    /// Whether the step's stdin is a pipe for answers (otherwise it reads end-of-file).
    interactive: bool,
}

/// How the step ended, as the supervisor saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// Ended because a `kill` file asked for it (a cancel).
    pub killed: bool,
    pub killed_leftovers: bool,
    pub duration_ms: u64,
    /// The step could not be started at all.
    pub spawn_error: Option<String>,
}

/// The files of one step run.
#[derive(Debug, Clone)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn output(&self) -> PathBuf {
        self.file("output")
    }
    fn answer(&self, n: usize) -> PathBuf {
        self.file(&format!("answer-{n}"))
    }
    /// The recorded end, if the step has ended.
    pub fn status(&self) -> Option<Status> {
        read_json(&self.file("status.json"))
    }
    /// The supervisor, once it has said who it is.
    pub fn supervisor(&self) -> Option<Ident> {
        read_json(&self.file("supervisor.json"))
    }
    /// The step's leader (its pid is its group's id), once it started.
    pub fn step(&self) -> Option<Ident> {
        read_json(&self.file("step.json"))
    }
    /// Asks the supervisor to end the step's whole group now (TERM, the kill grace, KILL).
    pub fn request_kill(&self) -> std::io::Result<()> {
        write_atomic(&self.file("kill"), b"kill\n")
    }
    /// The answer given to prompt `n` and the output offset it was given at.
    fn recorded_answer(&self, n: usize) -> Option<(Option<PromptAnswer>, u64)> {
        let text = std::fs::read_to_string(self.answer(n)).ok()?;
        let mut lines = text.lines();
        let answer = match lines.next()? {
            "yes" => Some(PromptAnswer::Yes),
            "no" => Some(PromptAnswer::No),
            _ => None,
        };
        let offset = lines.next()?.trim().parse().ok()?;
        Some((answer, offset))
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes `bytes` to `path` so that a reader sees the whole file or none: a temp file beside it,
/// synced, renamed over it.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Starts the supervisor for `spec` in `dir` (created, mode 0700) and returns it. Errors are the
/// attached runner's: a workdir that is not there is named as such.
pub async fn launch(spec: &StepSpec, dir: &Path, interactive: bool) -> Result<Ident, StepError> {
    let program = spec.argv.first().cloned().unwrap_or_default();
    let spawn_error = |reason: String| StepError::Spawn {
        step: spec.name.clone(),
        program: program.clone(),
        workdir: spec.workdir.display().to_string(),
        reason,
    };
    check_workdir(&spec.workdir).await.map_err(spawn_error)?;
    let exe = SUPERVISOR_EXE
        .get()
        .ok_or_else(|| spawn_error("steps do not run detached in this process".into()))?;
    let setup = |e: std::io::Error| {
        spawn_error(format!(
            "cannot prepare the step's directory {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    };
    std::fs::create_dir_all(dir).map_err(setup)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(setup)?;
    let supervised = SupervisedSpec {
        name: spec.name.clone(),
        argv: spec.argv.clone(),
        workdir: spec.workdir.clone(),
        env: spec.child_env(),
        timeout_ms: spec.timeout.as_millis() as u64,
        kill_grace_ms: spec.kill_grace.as_millis() as u64,
        interactive,
    };
    let json = serde_json::to_vec(&supervised).unwrap_or_default();
    write_atomic(&dir.join("spec.json"), &json).map_err(setup)?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg(SUPERVISOR_ARG)
        .arg(dir)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        spawn_error(format!(
            "cannot start its supervisor {}: {}",
            exe.display(),
            io_reason(&e)
        ))
    })?;
    let pid = i64::from(child.id().unwrap_or(0));
    let ident = Ident::of(pid).unwrap_or(Ident { pid, start: 0 });
    // Reaped here while this process lives; after that, init reaps it.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(ident)
}

/// The body of `catalog-chatops __step-supervisor <dir>`: runs the step described in `dir` to
/// its end and records its status. Returns the process's exit code (0 once a status is written).
pub fn supervise(dir: &Path) -> i32 {
    let run = RunDir(dir.to_path_buf());
    let me = Ident::of(i64::from(std::process::id())).unwrap_or(Ident {
        pid: i64::from(std::process::id()),
        start: 0,
    });
    if write_atomic(
        &run.file("supervisor.json"),
        &serde_json::to_vec(&me).unwrap_or_default(),
    )
    .is_err()
    {
        return 2;
    }
    let started = Instant::now();
    let finish = |status: &Status| -> i32 {
        let json = serde_json::to_vec(status).unwrap_or_default();
        match write_atomic(&run.file("status.json"), &json) {
            Ok(()) => 0,
            Err(_) => 3,
        }
    };
    let spec: SupervisedSpec = match read_json(&run.file("spec.json")) {
        Some(s) => s,
        None => {
            return finish(&Status {
                spawn_error: Some("its description (spec.json) is missing or unreadable".into()),
                ..Status::default()
            });
        }
    };
    let _ = std::fs::remove_file(run.file("spec.json"));
    let output = match std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(run.output())
    {
        Ok(f) => f,
        Err(e) => {
            return finish(&Status {
                spawn_error: Some(format!("cannot open its output file: {}", io_reason(&e))),
                ..Status::default()
            });
        }
    };
    let Some(program) = spec.argv.first() else {
        return finish(&Status {
            spawn_error: Some("the command is empty".into()),
            ..Status::default()
        });
    };
    let (out2, out3) = match (output.try_clone(), output.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return finish(&Status {
                spawn_error: Some(format!("cannot share its output file: {}", io_reason(&e))),
                ..Status::default()
            });
        }
    };
    drop(output);
    let mut cmd = std::process::Command::new(program);
    cmd.args(&spec.argv[1..])
        .current_dir(&spec.workdir)
        .env_clear()
        .envs(&spec.env)
        .stdin(if spec.interactive {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(out2)
        .stderr(out3)
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return finish(&Status {
                spawn_error: Some(io_reason(&e)),
                ..Status::default()
            });
        }
    };
    let pid = i64::from(child.id());
    let pgid = Pid::from_raw(child.id() as i32);
    let step = Ident::of(pid).unwrap_or(Ident { pid, start: 0 });
    let _ = write_atomic(
        &run.file("step.json"),
        &serde_json::to_vec(&step).unwrap_or_default(),
    );
    let mut stdin = child.stdin.take();
    let grace = Duration::from_millis(spec.kill_grace_ms);
    let deadline = started + Duration::from_millis(spec.timeout_ms);
    let mut status = Status::default();
    let mut kill_at: Option<Instant> = None;
    let mut next_answer = 0;
    let exit = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        // Answers in order; a `no` (or anything but yes) closes stdin for good.
        while let Some((answer, _)) = run.recorded_answer(next_answer) {
            next_answer += 1;
            if let Some(pipe) = stdin.as_mut() {
                let word = answer.map_or("", PromptAnswer::as_str);
                let _ = pipe.write_all(format!("{word}\n").as_bytes());
                let _ = pipe.flush();
            }
            if answer != Some(PromptAnswer::Yes) {
                stdin = None;
            }
        }
        let now = Instant::now();
        if !status.killed && kill_at.is_none() && run.file("kill").exists() {
            status.killed = true;
            signal_group(pgid, Signal::SIGTERM);
            kill_at = Some(now + grace);
        }
        if !status.timed_out && !status.killed && now >= deadline {
            status.timed_out = true;
            signal_group(pgid, Signal::SIGTERM);
            kill_at = Some(now + grace);
        }
        if let Some(at) = kill_at
            && now >= at
        {
            signal_group(pgid, Signal::SIGKILL);
            kill_at = None;
        }
        std::thread::sleep(POLL);
    };
    drop(stdin);
    // Whatever the step left in its group is ended too, so nothing outlives the step.
    if group_alive(pgid) && group_running(pgid.as_raw()) {
        status.killed_leftovers = true;
        signal_group(pgid, Signal::SIGTERM);
        let until = Instant::now() + grace;
        while group_running(pgid.as_raw()) && Instant::now() < until {
            std::thread::sleep(POLL);
        }
        signal_group(pgid, Signal::SIGKILL);
    }
    use std::os::unix::process::ExitStatusExt;
    if let Some(s) = exit {
        status.exit_code = s.code();
        status.signal = s.signal();
    }
    status.duration_ms = started.elapsed().as_millis() as u64;
    finish(&status)
}

/// What [`follow`] reports while it reads the step's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowEvent<'a> {
    /// One line (redacted), and the output offset just after it.
    Line { text: &'a str, end: u64 },
    /// A prompt and the answer given (now, or before by whichever process followed then), and
    /// the output offset at which it waits.
    Prompt {
        text: &'a str,
        answer: Option<PromptAnswer>,
        at: u64,
    },
}

/// How a followed step ended.
#[derive(Debug)]
pub enum Followed {
    /// The supervisor recorded its end.
    Ended(StepOutcome),
    /// The supervisor and the step are gone and nothing recorded how the step ended.
    Lost(String),
}

/// Follows the step in `dir` from the start of its output to its recorded end: every line goes
/// to `on_event` (with its end offset, so a caller that re-attaches can skip what was posted),
/// prompts are answered with `prompt` (a prompt answered before — by a process that died since —
/// keeps that answer; the handler still sees it, so it learns the plan it was about), and the
/// outcome has the same bounds and fields as the attached runner's. `supervisor` is who the
/// caller recorded; the directory's own record is used when it is `None`.
pub async fn follow(
    spec: &StepSpec,
    dir: &Path,
    supervisor: Option<Ident>,
    mut on_event: impl FnMut(FollowEvent<'_>) + Send,
    mut prompt: Option<PromptHandler>,
) -> Result<Followed, StepError> {
    let run = RunDir(dir.to_path_buf());
    let began = Instant::now();
    let mut out = Collector::new(spec);
    let mut split = LineSplitter::default();
    let mut file: Option<std::fs::File> = None;
    let mut offset: u64 = 0;
    let mut buf = vec![0u8; CHUNK];
    let mut prompts = 0usize;
    let mut closed = prompt.is_none();
    loop {
        if file.is_none() {
            file = std::fs::File::open(run.output()).ok();
        }
        // A prompt answered before ends exactly where it was answered: read up to there, so the
        // prompt is seen as the partial line it was.
        let recorded = run.recorded_answer(prompts);
        let limit = recorded.map(|(_, at)| at);
        let mut read = 0usize;
        if let Some(f) = file.as_mut() {
            let want = match limit {
                Some(at) if at > offset => ((at - offset) as usize).min(CHUNK),
                Some(_) => 0,
                None => CHUNK,
            };
            if want > 0 {
                f.seek(SeekFrom::Start(offset))
                    .and_then(|_| f.read(&mut buf[..want]))
                    .map(|n| read = n)
                    .map_err(|e| StepError::Wait {
                        step: spec.name.clone(),
                        reason: format!("cannot read its output file: {}", io_reason(&e)),
                    })?;
            }
        }
        if read > 0 {
            feed(&buf[..read], offset, &mut split, &mut out, &mut on_event);
            offset += read as u64;
            continue;
        }
        // Nothing more for now: a prompt waits at the end of what was printed.
        let at_recorded = limit.is_some_and(|at| at <= offset);
        if split.prompt_pending() && (limit.is_none() || at_recorded) {
            split.prompted = true;
            let text = out
                .redactor
                .redact(String::from_utf8_lossy(&split.partial).as_ref());
            let keep = out.capture.len();
            out.capture.push_str(&text);
            let decided = prompt.as_mut().map(|handler| {
                handler(&PromptContext {
                    output: &out.capture,
                    truncated: out.capture_truncated,
                })
            });
            out.capture.truncate(keep);
            let answer = match recorded {
                // Given before: that answer stands (the supervisor forwarded it already).
                Some((given, _)) => given,
                None if closed => None,
                None => {
                    let answer = decided;
                    let word = answer.map_or("", PromptAnswer::as_str);
                    write_atomic(
                        &run.answer(prompts),
                        format!("{word}\n{offset}\n").as_bytes(),
                    )
                    .map_err(|e| StepError::Wait {
                        step: spec.name.clone(),
                        reason: format!("cannot give the answer: {}", io_reason(&e)),
                    })?;
                    answer
                }
            };
            if answer != Some(PromptAnswer::Yes) {
                closed = true;
            }
            if let Some(a) = answer {
                out.answers.push(a);
            }
            prompts += 1;
            on_event(FollowEvent::Prompt {
                text: &text,
                answer,
                at: offset,
            });
            continue;
        }
        if at_recorded {
            // An answer recorded at a point where no prompt shows: keep it, go on reading.
            if let Some((Some(a), _)) = recorded {
                out.answers.push(a);
            }
            prompts += 1;
            continue;
        }
        if let Some(status) = run.status() {
            // The step and its group are gone: the output is complete. One more read catches
            // what came after the last look.
            if drain(
                &run,
                &mut file,
                &mut offset,
                &mut buf,
                &mut split,
                &mut out,
                &mut on_event,
            ) {
                continue;
            }
            let rest = split.finish();
            emit(rest, offset, &mut out, &mut on_event);
            if let Some(reason) = status.spawn_error {
                return Err(StepError::Spawn {
                    step: spec.name.clone(),
                    program: spec.argv.first().cloned().unwrap_or_default(),
                    workdir: spec.workdir.display().to_string(),
                    reason,
                });
            }
            let pid = run.step().map_or(0, |s| s.pid as u32);
            return Ok(Followed::Ended(StepOutcome {
                step: spec.name.clone(),
                pid,
                exit_code: status.exit_code,
                signal: status.signal,
                timed_out: status.timed_out,
                killed_leftovers: status.killed_leftovers,
                answers: out.answers,
                output_tail: out.tail.into_iter().collect::<Vec<_>>().join("\n"),
                output: out.capture,
                output_truncated: out.capture_truncated,
                full_output_len: out.raw_len,
                duration: Duration::from_millis(status.duration_ms),
            }));
        }
        if let Some(reason) = gone(&run, supervisor, Some(began)) {
            // The status may have landed between the two looks.
            if run.status().is_some() {
                continue;
            }
            return Ok(Followed::Lost(reason));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Reads what is left of the output after the status appeared; true when it read something.
fn drain(
    run: &RunDir,
    file: &mut Option<std::fs::File>,
    offset: &mut u64,
    buf: &mut [u8],
    split: &mut LineSplitter,
    out: &mut Collector<'_>,
    on_event: &mut impl FnMut(FollowEvent<'_>),
) -> bool {
    if file.is_none() {
        *file = std::fs::File::open(run.output()).ok();
    }
    let Some(f) = file.as_mut() else {
        return false;
    };
    let n = f
        .seek(SeekFrom::Start(*offset))
        .and_then(|_| f.read(buf))
        .unwrap_or(0);
    if n == 0 {
        return false;
    }
    feed(&buf[..n], *offset, split, out, on_event);
    *offset += n as u64;
    true
}

/// Splits `bytes` (read at `offset`) into lines, each reported with the offset after it.
fn feed(
    bytes: &[u8],
    offset: u64,
    split: &mut LineSplitter,
    out: &mut Collector<'_>,
    on_event: &mut impl FnMut(FollowEvent<'_>),
) {
    let mut at = 0;
    for piece in bytes.split_inclusive(|&b| b == b'\n') {
        at += piece.len();
        let lines = split.push(piece);
        emit(lines, offset + at as u64, out, on_event);
    }
}

fn emit(
    lines: Vec<String>,
    end: u64,
    out: &mut Collector<'_>,
    on_event: &mut impl FnMut(FollowEvent<'_>),
) {
    if lines.is_empty() {
        return;
    }
    out.lines(Stream::Stdout, lines, &mut |ev| {
        if let super::StepEvent::Line { text, .. } = ev {
            on_event(FollowEvent::Line { text, end });
        }
    });
}

/// Why the run in `dir` can never be followed to a recorded end — its supervisor and its step
/// are gone and no status was written — or `None` while it can. For a process that finds the
/// run of a dead owner (the owner recorded the run before starting its supervisor, so a run
/// without any supervisor on record never started one).
pub fn lost(dir: &Path, recorded: Option<Ident>) -> Option<String> {
    let run = RunDir(dir.to_path_buf());
    if run.status().is_some() {
        return None;
    }
    gone(&run, recorded, None)
}

/// Why nobody is left to record the step's end, or `None` while someone is. `began`: when the
/// caller started waiting for a supervisor that has not said who it is yet.
fn gone(run: &RunDir, recorded: Option<Ident>, began: Option<Instant>) -> Option<String> {
    let supervisor = run.supervisor().or(recorded);
    let Some(supervisor) = supervisor else {
        // Not started yet, or never will be.
        return began
            .is_none_or(|b| b.elapsed() > SUPERVISOR_SILENCE)
            .then(|| {
                "the step's supervisor never started and nothing recorded how the step ended".into()
            });
    };
    if supervisor.alive() {
        return None;
    }
    match run.step() {
        // Without its supervisor nobody can learn the step's exit status; wait until it is gone
        // so that it is not reported lost while it still changes things.
        Some(step) if step.alive() => None,
        _ => Some(format!(
            "the step's supervisor (pid {}) and the step are gone without recording how the \
             step ended",
            supervisor.pid
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_an_identity_that_a_different_start_time_does_not_share() {
        let me = Ident::of(i64::from(std::process::id())).expect("/proc");
        assert!(me.alive());
        let reused = Ident {
            pid: me.pid,
            start: me.start + 1,
        };
        assert!(!reused.alive(), "same pid, another start: another process");
        assert!(Ident::of(999_999_999).is_none());
    }

    /// Runs `script` (bash) under [`supervise`] in a thread, as the binary would in its own
    /// process, with `timeout`.
    fn supervised(dir: &Path, script: &str, timeout: Duration) -> std::thread::JoinHandle<i32> {
        let spec = SupervisedSpec {
            name: "apply".into(),
            argv: vec!["bash".into(), "-c".into(), script.into()],
            workdir: dir.to_path_buf(),
            env: [(
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_default(),
            )]
            .into(),
            timeout_ms: timeout.as_millis() as u64,
            kill_grace_ms: 200,
            interactive: true,
        };
        write_atomic(&dir.join("spec.json"), &serde_json::to_vec(&spec).unwrap()).unwrap();
        let dir = dir.to_path_buf();
        std::thread::spawn(move || supervise(&dir))
    }

    fn step_spec(dir: &Path) -> StepSpec {
        StepSpec::new(
            "apply",
            vec!["bash".into()],
            dir,
            Duration::from_secs(60),
            crate::redact::Redactor::default(),
        )
    }

    #[tokio::test]
    async fn a_supervised_step_is_answered_through_a_file_and_followed_again_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let script =
            "echo 'Plan: 1 to add'; printf 'Enter a value: '; read a; echo \"got $a\"; exit 3";
        let sup = supervised(dir.path(), script, Duration::from_secs(60));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let handler_seen = seen.clone();
        let handler: PromptHandler = Box::new(move |ctx| {
            handler_seen.lock().unwrap().push(ctx.output.to_string());
            PromptAnswer::Yes
        });
        let mut lines = Vec::new();
        let followed = follow(
            &step_spec(dir.path()),
            dir.path(),
            None,
            |ev| {
                if let FollowEvent::Line { text, .. } = ev {
                    lines.push(text.to_string());
                }
            },
            Some(handler),
        )
        .await
        .unwrap();
        assert_eq!(sup.join().unwrap(), 0);
        let Followed::Ended(o) = followed else {
            panic!("lost")
        };
        assert_eq!(o.exit_code, Some(3));
        assert_eq!(o.answers, vec![PromptAnswer::Yes]);
        assert!(lines.iter().any(|l| l.ends_with("got yes")), "{lines:?}");
        assert!(seen.lock().unwrap()[0].ends_with("Plan: 1 to add\nEnter a value: "));

        // A process that re-attaches later reads the same story: the recorded answer, not a new
        // one (its handler answers no, and is still shown the plan).
        let again: PromptHandler = Box::new(|_| PromptAnswer::No);
        let followed = follow(
            &step_spec(dir.path()),
            dir.path(),
            None,
            |_| {},
            Some(again),
        )
        .await
        .unwrap();
        let Followed::Ended(o2) = followed else {
            panic!("lost")
        };
        assert_eq!(o2.answers, vec![PromptAnswer::Yes]);
        assert_eq!(
            (o2.exit_code, o2.output.clone()),
            (o.exit_code, o.output.clone())
        );
    }

    #[tokio::test]
    async fn the_supervisor_ends_a_step_past_its_timeout_and_on_a_kill_request() {
        let dir = tempfile::tempdir().unwrap();
        let sup = supervised(
            dir.path(),
            "echo start; sleep 60 & wait",
            Duration::from_millis(300),
        );
        assert_eq!(sup.join().unwrap(), 0);
        let status = RunDir(dir.path().to_path_buf()).status().expect("status");
        assert!(status.timed_out, "{status:?}");
        assert_eq!(status.signal, Some(15));

        let dir = tempfile::tempdir().unwrap();
        let sup = supervised(
            dir.path(),
            "echo start; sleep 60 & wait",
            Duration::from_secs(60),
        );
        let run = RunDir(dir.path().to_path_buf());
        while run.step().is_none() {
            std::thread::sleep(POLL);
        }
        run.request_kill().unwrap();
        assert_eq!(sup.join().unwrap(), 0);
        let status = run.status().expect("status");
        assert!(status.killed && !status.timed_out, "{status:?}");
        let step = run.step().unwrap();
        assert!(!group_running(step.pid as i32), "the whole group ended");
    }

    #[tokio::test]
    async fn a_run_whose_supervisor_and_step_are_gone_without_a_status_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir(dir.path().to_path_buf());
        let dead = Ident {
            pid: 999_999_999,
            start: 1,
        };
        write_atomic(
            &run.file("supervisor.json"),
            &serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        let why = lost(dir.path(), None).expect("lost");
        assert!(
            why.starts_with("the step's supervisor (pid 999999999) and the step are gone"),
            "{why}"
        );
        let followed = follow(&step_spec(dir.path()), dir.path(), None, |_| {}, None)
            .await
            .unwrap();
        assert!(matches!(followed, Followed::Lost(_)));
        // With a status, the same run has a recorded end.
        write_atomic(
            &run.file("status.json"),
            &serde_json::to_vec(&Status {
                exit_code: Some(0),
                ..Status::default()
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(lost(dir.path(), None), None);
    }

    #[test]
    fn answers_are_read_back_with_their_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir(dir.path().to_path_buf());
        assert_eq!(run.recorded_answer(0), None);
        write_atomic(&run.answer(0), b"yes\n1234\n").expect("write");
        assert_eq!(
            run.recorded_answer(0),
            Some((Some(PromptAnswer::Yes), 1234))
        );
        write_atomic(&run.answer(1), b"\n99\n").expect("write");
        assert_eq!(run.recorded_answer(1), Some((None, 99)));
    }
}
