//! The process executor against `kiln-test-child`, a program whose every
//! move the tests script. Tests synchronise on lines the child prints
//! ("ready", pids) as they reach the sink, never on sleeps; the only timer
//! is [`BOUND`], which turns a hang into a failure.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_exec::port::{
    Cancel, ExecError, Executor, JobHandle, JobSpec, LogLine, LogSink, StepExit, StepReport,
    StepSpec, Stream,
};
use kiln_exec::process::{MAX_LINE_BYTES, ProcessExecutor};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::mpsc;

/// Fails a test instead of letting it hang; never a synchronisation tool.
const BOUND: Duration = Duration::from_secs(20);

const CHILD: &str = env!("CARGO_BIN_EXE_kiln-test-child");

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {BOUND:?}"))
}

struct ChannelSink(mpsc::UnboundedSender<LogLine>);

impl LogSink for ChannelSink {
    fn line(&self, line: LogLine) {
        let _ = self.0.send(line);
    }
}

/// One job with one sink whose lines the test reads from `lines`.
struct Harness {
    job: Box<dyn JobHandle>,
    sink: Arc<dyn LogSink>,
    lines: Lines,
    workspace: tempfile::TempDir,
}

/// The lines the sink received, read in order.
struct Lines(mpsc::UnboundedReceiver<LogLine>);

impl Harness {
    async fn start() -> Self {
        let workspace = tempfile::tempdir().unwrap();
        let job = ProcessExecutor::new()
            .start_job(&JobSpec {
                workspace: workspace.path().to_path_buf(),
                label: "test-job".to_owned(),
            })
            .await
            .unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        Self {
            job,
            sink: Arc::new(ChannelSink(tx)),
            lines: Lines(lines),
            workspace,
        }
    }

    /// A step running the test child with `args`, in the workspace.
    fn step(&self, args: &[&str]) -> StepSpec {
        let mut argv = vec![CHILD.to_owned()];
        argv.extend(args.iter().map(|a| a.to_string()));
        StepSpec {
            argv,
            env: vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())],
            cwd: self.workspace.path().to_path_buf(),
            timeout: None,
            kill_grace: Duration::from_secs(5),
        }
    }

    async fn run(&mut self, step: StepSpec) -> StepReport {
        self.run_with(step, &Cancel::default()).await
    }

    async fn run_with(&mut self, step: StepSpec, cancel: &Cancel) -> StepReport {
        let sink = self.sink.clone();
        bounded("the step", self.job.run_step(step, sink, cancel)).await
    }

    /// Runs `step` while `control` watches its lines (and cancels it).
    async fn run_while<T>(
        &mut self,
        step: StepSpec,
        cancel: &Cancel,
        control: impl AsyncFnOnce(&mut Lines) -> T,
    ) -> (StepReport, T) {
        let run = self.job.run_step(step, self.sink.clone(), cancel);
        let control = control(&mut self.lines);
        bounded("the step", async { tokio::join!(run, control) }).await
    }

    /// Finishes the job and returns every line not yet received. The
    /// channel closes only when the executor dropped all its clones of the
    /// sink, so this also checks that no reader outlives `finish`.
    async fn finish(self) -> Vec<LogLine> {
        let Harness {
            job,
            sink,
            lines: Lines(mut lines),
            workspace,
        } = self;
        bounded("finish", job.finish()).await.unwrap();
        drop(sink);
        let mut rest = Vec::new();
        bounded("the sink to be released", async {
            while let Some(line) = lines.recv().await {
                rest.push(line);
            }
        })
        .await;
        drop(workspace);
        rest
    }
}

impl Lines {
    /// Receives lines until `done` holds for all received so far.
    async fn until_all(&mut self, done: impl Fn(&[LogLine]) -> bool) -> Vec<LogLine> {
        let mut seen = Vec::new();
        bounded("the expected lines", async {
            while !done(&seen) {
                seen.push(self.0.recv().await.expect("the sink was dropped"));
            }
        })
        .await;
        seen
    }

    /// Receives lines until one has exactly `text`; returns them all.
    async fn until(&mut self, text: &str) -> Vec<LogLine> {
        let mut seen = Vec::new();
        bounded(&format!("the line {text:?}"), async {
            loop {
                let line = self.0.recv().await.expect("the sink was dropped");
                let done = line.text == text;
                seen.push(line);
                if done {
                    return;
                }
            }
        })
        .await;
        seen
    }

    /// Receives lines until one starts with `prefix`; returns the rest of it
    /// parsed as a pid.
    async fn pid_after(&mut self, prefix: &str) -> Pid {
        bounded(&format!("a line {prefix:?}"), async {
            loop {
                let line = self.0.recv().await.expect("the sink was dropped");
                if let Some(pid) = line.text.strip_prefix(prefix) {
                    return Pid::from_raw(pid.trim().parse().unwrap());
                }
            }
        })
        .await
    }
}

fn texts(lines: &[LogLine], stream: Stream) -> Vec<&str> {
    lines
        .iter()
        .filter(|line| line.stream == stream)
        .map(|line| line.text.as_str())
        .collect()
}

/// Whether `pid` is a live process (a zombie counts as dead: it has exited
/// and only waits for its parent to collect it).
fn alive(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the command name, which is in parentheses.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim().chars().next());
            !matches!(state, Some('Z' | 'X') | None)
        }
        Err(_) => false,
    }
}

// --- output ---------------------------------------------------------------

#[tokio::test]
async fn lines_arrive_in_order_on_stdout() {
    let mut h = Harness::start().await;
    let report = h.run(h.step(&["lines", "500"])).await;
    assert_eq!(report.exit, StepExit::Exited(0));
    let lines = h.finish().await;
    let expected: Vec<String> = (1..=500).map(|i| format!("line {i}")).collect();
    assert_eq!(texts(&lines, Stream::Stdout), expected);
    assert!(texts(&lines, Stream::Stderr).is_empty());
}

#[tokio::test]
async fn stdout_and_stderr_are_told_apart() {
    let mut h = Harness::start().await;
    let report = h.run(h.step(&["stderr"])).await;
    assert_eq!(report.exit, StepExit::Exited(0));
    let lines = h.finish().await;
    assert_eq!(texts(&lines, Stream::Stdout), ["out 1", "out 2"]);
    assert_eq!(texts(&lines, Stream::Stderr), ["err 1", "err 2"]);
}

#[tokio::test]
async fn line_endings_and_invalid_utf8() {
    let mut h = Harness::start().await;
    for args in [&["no-newline"][..], &["crlf"], &["invalid-utf8"]] {
        let report = h.run(h.step(args)).await;
        assert_eq!(report.exit, StepExit::Exited(0), "{args:?}");
    }
    let lines = h.finish().await;
    assert_eq!(
        texts(&lines, Stream::Stdout),
        ["first", "last", "a", "b", "ok \u{FFFD} end"]
    );
}

#[tokio::test]
async fn long_lines_are_split() {
    let mut h = Harness::start().await;
    let length = 2 * MAX_LINE_BYTES + 10;
    let report = h.run(h.step(&["long-line", &length.to_string()])).await;
    assert_eq!(report.exit, StepExit::Exited(0));
    let lines = h.finish().await;
    let lengths: Vec<usize> = lines.iter().map(|line| line.text.len()).collect();
    assert_eq!(lengths, [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]);
    assert!(
        lines
            .iter()
            .all(|line| line.text.bytes().all(|b| b == b'x'))
    );
}

#[tokio::test]
async fn lines_carry_timestamps_in_order_within_the_step() {
    let mut h = Harness::start().await;
    let report = h.run(h.step(&["stderr"])).await;
    let more = h.run(h.step(&["lines", "100"])).await;
    let lines = h.finish().await;
    assert_eq!(lines.len(), 104);
    for pair in lines.windows(2) {
        assert!(pair[0].at <= pair[1].at, "{pair:?}");
    }
    assert!(report.started <= report.finished);
    assert!(report.started <= lines[0].at && lines[3].at <= report.finished);
    assert!(more.started <= lines[4].at && lines[103].at <= more.finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_reach_the_sink_while_the_step_runs() {
    let mut h = Harness::start().await;
    let cancel = Cancel::default();
    let (report, seen) = h
        .run_while(h.step(&["sleep"]), &cancel, async |lines| {
            // "ready" arrives before the step ends: the step only ends
            // because of the cancel that follows.
            let seen = lines.until("ready").await;
            cancel.graceful.cancel();
            seen
        })
        .await;
    assert_eq!(report.exit, StepExit::Cancelled);
    assert_eq!(seen.last().map(|line| line.text.as_str()), Some("ready"));
    h.finish().await;
}

// --- spawning -------------------------------------------------------------

#[tokio::test]
async fn exit_codes_are_reported() {
    let mut h = Harness::start().await;
    assert_eq!(
        h.run(h.step(&["exit", "7"])).await.exit,
        StepExit::Exited(7)
    );
    assert_eq!(
        h.run(h.step(&["exit", "0"])).await.exit,
        StepExit::Exited(0)
    );
    h.finish().await;
}

#[tokio::test]
async fn a_signal_kiln_did_not_send_is_reported() {
    let mut h = Harness::start().await;
    let usr1 = Signal::SIGUSR1 as i32;
    let report = h.run(h.step(&["signal", &usr1.to_string()])).await;
    assert_eq!(report.exit, StepExit::Signalled(usr1));
    h.finish().await;
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_failure() {
    let mut h = Harness::start().await;
    let mut step = h.step(&[]);
    step.argv = vec!["kiln-no-such-program".to_owned(), "x".to_owned()];
    let StepExit::SpawnFailed(message) = h.run(step).await.exit else {
        panic!("expected a spawn failure");
    };
    assert_eq!(
        message,
        "kiln-no-such-program: command not found in PATH (/usr/bin:/bin)"
    );
    h.finish().await;
}

#[tokio::test]
async fn the_program_is_looked_up_in_the_step_path_only() {
    let mut h = Harness::start().await;
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(CHILD, bin.path().join("kiln-child-on-path")).unwrap();
    let path = bin.path().display().to_string();

    let mut step = h.step(&["exit", "3"]);
    step.argv[0] = "kiln-child-on-path".to_owned();
    step.env = vec![("PATH".to_owned(), path.clone())];
    assert_eq!(h.run(step).await.exit, StepExit::Exited(3));

    // `sh` is in kiln's own PATH, not in the step's.
    let mut step = h.step(&[]);
    step.argv = vec!["sh".to_owned(), "-c".to_owned(), "true".to_owned()];
    step.env = vec![("PATH".to_owned(), path.clone())];
    assert_eq!(
        h.run(step).await.exit,
        StepExit::SpawnFailed(format!("sh: command not found in PATH ({path})"))
    );
    h.finish().await;
}

#[tokio::test]
async fn a_missing_working_directory_is_a_spawn_failure() {
    let mut h = Harness::start().await;
    let mut step = h.step(&["exit", "0"]);
    step.cwd = h.workspace.path().join("missing");
    let StepExit::SpawnFailed(message) = h.run(step).await.exit else {
        panic!("expected a spawn failure");
    };
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("missing"), "{message}");
    h.finish().await;
}

#[tokio::test]
async fn the_environment_is_exactly_the_given_one() {
    let mut h = Harness::start().await;
    let mut step = h.step(&["env"]);
    step.env = vec![
        ("KILN_A".to_owned(), "1".to_owned()),
        ("KILN_B".to_owned(), "two words".to_owned()),
    ];
    assert_eq!(h.run(step).await.exit, StepExit::Exited(0));
    let lines = h.finish().await;
    assert_eq!(
        texts(&lines, Stream::Stdout),
        ["KILN_A=1", "KILN_B=two words"]
    );
}

#[tokio::test]
async fn the_step_runs_in_the_given_directory() {
    let mut h = Harness::start().await;
    let dir = h.workspace.path().join("sub");
    std::fs::create_dir(&dir).unwrap();
    let mut step = h.step(&["pwd"]);
    step.cwd = dir.clone();
    let expected = canonical(&dir);
    assert_eq!(h.run(step).await.exit, StepExit::Exited(0));
    let lines = h.finish().await;
    assert_eq!(
        texts(&lines, Stream::Stdout),
        [expected.display().to_string()]
    );
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap()
}

#[tokio::test]
async fn a_missing_workspace_fails_to_prepare() {
    let result = ProcessExecutor::new()
        .start_job(&JobSpec {
            workspace: PathBuf::from("/nonexistent/kiln-workspace"),
            label: "test-job".to_owned(),
        })
        .await;
    assert!(matches!(result, Err(ExecError::Prepare(_))));
}

// --- stopping -------------------------------------------------------------

#[tokio::test]
async fn a_timeout_kills_a_term_ignoring_child_after_the_grace_period() {
    let mut h = Harness::start().await;
    let mut step = h.step(&["ignore-term"]);
    // Long enough for the child to block SIGTERM (its first act) before
    // the timeout; had it not, SIGTERM would end it and the "got SIGTERM"
    // assertion below would fail rather than pass by accident.
    step.timeout = Some(Duration::from_secs(1));
    step.kill_grace = Duration::from_millis(200);
    let report = h.run(step).await;
    assert_eq!(report.exit, StepExit::TimedOut);
    let lines = h.finish().await;
    let pid = lines
        .iter()
        .find_map(|line| line.text.strip_prefix("pid "))
        .map(|pid| Pid::from_raw(pid.parse().unwrap()))
        .expect("the child printed its pid");
    assert_eq!(texts(&lines, Stream::Stdout)[1..], ["ready", "got SIGTERM"]);
    assert!(!alive(pid));
}

#[tokio::test]
async fn a_graceful_cancel_terminates_the_step() {
    let mut h = Harness::start().await;
    let cancel = Cancel::default();
    let step = h.step(&["sleep"]);
    let (report, pid) = h
        .run_while(step, &cancel, async |lines| {
            let pid = lines.pid_after("pid ").await;
            lines.until("ready").await;
            cancel.graceful.cancel();
            pid
        })
        .await;
    assert_eq!(report.exit, StepExit::Cancelled);
    assert!(!alive(pid));
    h.finish().await;
}

#[tokio::test]
async fn a_graceful_cancel_kills_after_the_grace_period() {
    let mut h = Harness::start().await;
    let cancel = Cancel::default();
    let mut step = h.step(&["ignore-term"]);
    step.kill_grace = Duration::from_millis(200);
    let (report, pid) = h
        .run_while(step, &cancel, async |lines| {
            let pid = lines.pid_after("pid ").await;
            lines.until("ready").await;
            cancel.graceful.cancel();
            lines.until("got SIGTERM").await;
            pid
        })
        .await;
    assert_eq!(report.exit, StepExit::Cancelled);
    assert!(!alive(pid));
    h.finish().await;
}

#[tokio::test]
async fn an_immediate_cancel_kills_at_once() {
    let mut h = Harness::start().await;
    let cancel = Cancel::default();
    let step = h.step(&["ignore-term"]);
    let (report, pid) = h
        .run_while(step, &cancel, async |lines| {
            let pid = lines.pid_after("pid ").await;
            lines.until("ready").await;
            cancel.immediate.cancel();
            pid
        })
        .await;
    assert_eq!(report.exit, StepExit::Cancelled);
    assert!(!alive(pid));
    let rest = h.finish().await;
    assert!(
        texts(&rest, Stream::Stdout).is_empty(),
        "no SIGTERM was sent"
    );
}

#[tokio::test]
async fn an_immediate_cancel_cuts_the_grace_period_short() {
    let mut h = Harness::start().await;
    let cancel = Cancel::default();
    let mut step = h.step(&["ignore-term"]);
    // Were the grace period waited out, the test would hit its bound.
    step.kill_grace = Duration::from_secs(3600);
    let (report, pid) = h
        .run_while(step, &cancel, async |lines| {
            let pid = lines.pid_after("pid ").await;
            lines.until("ready").await;
            cancel.graceful.cancel();
            lines.until("got SIGTERM").await;
            cancel.immediate.cancel();
            pid
        })
        .await;
    assert_eq!(report.exit, StepExit::Cancelled);
    assert!(!alive(pid));
    h.finish().await;
}

#[tokio::test]
async fn stopping_a_step_stops_its_whole_process_group() {
    let mut h = Harness::start().await;
    let cancel = Cancel::default();
    let mut step = h.step(&["tree", "ignore-term"]);
    step.kill_grace = Duration::from_millis(200);
    let (report, (leader, grandchild)) = h
        .run_while(step, &cancel, async |lines| {
            let grandchild = lines.pid_after("grandchild ").await;
            let leader = lines.pid_after("pid ").await;
            lines.until("ready").await;
            cancel.graceful.cancel();
            (leader, grandchild)
        })
        .await;
    assert_eq!(report.exit, StepExit::Cancelled);
    // The leader died of SIGTERM; the grandchild, which ignores it, was
    // killed when the grace period ended, before run_step returned.
    assert!(!alive(leader));
    assert!(!alive(grandchild));
    h.finish().await;
}

#[tokio::test]
async fn a_step_cancelled_before_it_starts_is_not_spawned() {
    let mut h = Harness::start().await;
    let cancel = Cancel::default();
    cancel.graceful.cancel();
    let report = h.run_with(h.step(&["lines", "3"]), &cancel).await;
    assert_eq!(report.exit, StepExit::Cancelled);
    assert!(h.finish().await.is_empty());
}

// --- processes outliving the step -----------------------------------------

#[tokio::test]
async fn a_grandchild_holding_stdout_does_not_hold_the_step() {
    let mut h = Harness::start().await;
    let report = h.run(h.step(&["grandchild"])).await;
    assert_eq!(report.exit, StepExit::Exited(0));
    let grandchild = h.lines.pid_after("grandchild ").await;
    assert!(
        alive(grandchild),
        "run_step returned while the grandchild lives"
    );
    h.finish().await;
    assert!(!alive(grandchild), "finish stops what the job left running");
}

#[tokio::test]
async fn finish_kills_a_grandchild_that_ignores_sigterm() {
    let mut h = Harness::start().await;
    let mut step = h.step(&["grandchild", "ignore-term"]);
    step.kill_grace = Duration::from_millis(200);
    assert_eq!(h.run(step).await.exit, StepExit::Exited(0));
    let grandchild = h.lines.pid_after("grandchild ").await;
    assert!(alive(grandchild));
    h.finish().await;
    assert!(!alive(grandchild));
}

#[tokio::test]
async fn background_output_flows_until_finish_which_stops_it() {
    let mut h = Harness::start().await;
    let report = h.run(h.step(&["background"])).await;
    assert_eq!(report.exit, StepExit::Exited(0));
    // Two processes write these two lines: they may come in either order.
    let seen = h
        .lines
        .until_all(|seen| {
            seen.iter().any(|line| line.text == "bg ready")
                && seen.iter().any(|line| line.text.starts_with("background "))
        })
        .await;
    let background = seen
        .iter()
        .find_map(|line| line.text.strip_prefix("background "))
        .map(|pid| Pid::from_raw(pid.parse().unwrap()))
        .unwrap();

    // A later step runs while the background process lives.
    assert_eq!(
        h.run(h.step(&["exit", "0"])).await.exit,
        StepExit::Exited(0)
    );
    assert!(alive(background));

    // Output written after its step returned still reaches the sink.
    kill(background, Signal::SIGUSR1).unwrap();
    let after = h.lines.until("bg after").await;
    assert_eq!(after.last().map(|line| line.stream), Some(Stream::Stdout));
    assert!(after.last().unwrap().at >= report.finished);

    h.finish().await;
    assert!(!alive(background));
}

// --- the watcher: no step outlives its job or its kiln process ------------

/// The live (not zombie) members of process group `pgid`, from `/proc`.
fn members(pgid: Pid) -> Vec<Pid> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp: Option<i32> = fields.nth(1).and_then(|p| p.parse().ok());
        if pgrp == Some(pgid.as_raw()) && !matches!(state, Some("Z" | "X")) {
            found.push(Pid::from_raw(pid));
        }
    }
    found
}

/// Waits (bounded) for `pid` to exit, on the event itself: a pidfd turns
/// readable when its process exits, whoever its parent is.
async fn exited(pid: Pid) {
    use nix::libc;
    let waited = tokio::task::spawn_blocking(move || {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if fd < 0 {
            // ESRCH: already gone (and reaped).
            return !alive(pid);
        }
        let fd = fd as libc::c_int;
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the fd is ours and closed below.
        let ready = unsafe { libc::poll(&mut poll, 1, BOUND.as_millis() as libc::c_int) };
        unsafe { libc::close(fd) };
        ready == 1
    })
    .await
    .unwrap();
    assert!(waited, "process {pid} did not exit within {BOUND:?}");
}

#[tokio::test]
async fn a_finished_step_leaves_nothing_in_its_group() {
    let mut h = Harness::start().await;
    let report = h.run(h.step(&["pid"])).await;
    assert_eq!(report.exit, StepExit::Exited(0));
    let group = h.lines.pid_after("pgid ").await;
    // The group's watcher was released when the step ended: whatever is
    // still there is on its way out.
    for pid in members(group) {
        exited(pid).await;
    }
    assert!(members(group).is_empty());
    h.finish().await;
}

#[tokio::test]
async fn finish_does_not_wait_for_watchers() {
    let mut h = Harness::start().await;
    // A grace period longer than the test's bound: waiting for it (as if
    // the watcher were a leftover that ignores SIGTERM) fails the test.
    let mut step = h.step(&["background"]);
    step.kill_grace = BOUND * 2;
    assert_eq!(h.run(step).await.exit, StepExit::Exited(0));
    let background = h.lines.pid_after("background ").await;
    let mut step = h.step(&["exit", "0"]);
    step.kill_grace = BOUND * 2;
    assert_eq!(h.run(step).await.exit, StepExit::Exited(0));
    // SIGTERM ends the background process; finish returns then.
    h.finish().await;
    assert!(!alive(background));
}

#[tokio::test]
async fn a_killed_executor_process_takes_its_steps_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut runner = tokio::process::Command::new(CHILD)
        .arg("process-job")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = runner.stdout.take().unwrap();
    let (grandchild, leader) = bounded("the step's handshake", async {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let (mut grandchild, mut leader, mut pgid) = (None, None, None);
        while let Some(line) = lines.next_line().await.unwrap() {
            let pid = |p: &str| Some(Pid::from_raw(p.trim().parse().unwrap()));
            if let Some(p) = line.strip_prefix("grandchild ") {
                grandchild = pid(p);
            } else if let Some(p) = line.strip_prefix("pid ") {
                leader = pid(p);
            } else if let Some(p) = line.strip_prefix("pgid ") {
                pgid = pid(p);
            } else if line == "ready" {
                break;
            }
        }
        (grandchild.unwrap(), (leader.unwrap(), pgid.unwrap()))
    })
    .await;
    let (leader, pgid) = leader;
    // The step's group: its process, the grandchild (which ignores
    // SIGTERM) and the watcher.
    let group = members(pgid);
    assert!(group.contains(&leader) && group.contains(&grandchild));
    assert_eq!(group.len(), 3, "{group:?}");

    // As an agent SIGKILLed mid-step: no finish, no Drop.
    runner.start_kill().unwrap();
    runner.wait().await.unwrap();

    for pid in group {
        exited(pid).await;
    }
    assert!(!alive(leader) && !alive(grandchild));
    assert!(members(pgid).is_empty());
}
