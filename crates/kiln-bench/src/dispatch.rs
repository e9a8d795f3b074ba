//! `server-dispatch`: trigger accepted → the first step's process running,
//! with a warm agent, against the latency of starting the same process
//! without kiln, measured in the same run.
//!
//! One server and one agent (capacity: CPUs) on loopback; a repository
//! whose one workflow has one job whose one step is
//! `echo "$EPOCHREALTIME" > MARKS/$KILN_RUN_ID` (no checkout step). Per
//! iteration, interleaved:
//!
//! 1. trigger on the branch: the client takes the wall clock when the POST
//!    is sent and when its answer has been read ("accepted"); the step's
//!    first command (a bash builtin) writes bash's wall clock; the same
//!    clock (`CLOCK_REALTIME`), on the same machine;
//! 2. the same trigger pinning the commit (`commit` in the request);
//! 3. the baselines: spawn `/bin/true` and wait; spawn the bash command
//!    kiln runs for the step, configured as kiln configures it, and take
//!    the time from just before the spawn to the timestamp its first
//!    command writes;
//! 4. the git commands the server's trigger path runs, run by the
//!    benchmark against the server's own mirror.
//!
//! After each trigger the benchmark waits for the run to end and for the
//! agent to be long-polling again (`--settle-ms`), then reads where the
//! time went from the server (run created, job queued, job claimed) and
//! the results document (agent's job start, the runner's step start).

use crate::cluster::{self, Agent, Repo, Server, now_us, parse_epoch_realtime, ts_us, wait_lines};
use crate::machine::Machine;
use crate::stats::Summary;
use anyhow::{Context, Result, bail};
use kiln_proto::api::{RunDetail, TriggerRequest, TriggerResponse};
use kiln_proto::results::RunResult;
use kiln_proto::routes;
use serde::Serialize;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The aims, in milliseconds.
pub const AIM_P50_MS: f64 = 10.0;
pub const AIM_P99_MS: f64 = 50.0;

#[derive(Clone, Debug)]
pub struct Config {
    pub kiln: PathBuf,
    pub runs: usize,
    pub capacity: usize,
    /// Pause after a run ended before the next trigger, so that the agent's
    /// next claim is open and parked on the server.
    pub settle: Duration,
    pub warmup: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub machine: Machine,
    pub kiln: String,
    pub kiln_version: String,
    pub runs: usize,
    pub capacity: usize,
    pub settle_ms: u64,
    pub variants: Vec<Variant>,
    /// Spawn `/bin/true` and wait for it, ms.
    pub true_spawn_wait_ms: Summary,
    /// Spawn the step's bash command (as kiln does) → its first command's
    /// timestamp, ms: what "the step's process started" costs without kiln.
    pub bash_spawn_to_first_command_ms: Summary,
    /// The same process, spawn → exit and pipes drained, ms.
    pub bash_spawn_wait_ms: Summary,
    /// The git commands of the trigger path, run against the server's
    /// mirror by the benchmark, ms: the whole sequence and each command.
    pub git_sequence_ms: Summary,
    pub git_commands_p50_ms: Vec<(String, f64)>,
}

/// One way of triggering.
#[derive(Debug, Serialize)]
pub struct Variant {
    pub name: &'static str,
    /// Trigger accepted (answer read) → the step's first command, ms.
    pub dispatch_ms: Summary,
    /// POST sent → answer read, ms.
    pub trigger_call_ms: Summary,
    /// POST sent → the step's first command, ms.
    pub total_ms: Summary,
    /// Medians of each segment, ms, in order (see `docs/benchmarks.md`);
    /// segments that straddle "accepted" may be negative.
    pub segments_p50_ms: Vec<(String, f64)>,
    /// dispatch p50 ÷ the bash baseline's spawn → first command p50.
    pub p50_ratio_to_bash_start: f64,
    pub p50_ratio_to_true_spawn: f64,
    pub aim_p50_met: bool,
    pub aim_p99_met: bool,
}

/// The timestamps of one triggered run, µs since the epoch.
#[derive(Clone, Copy, Debug)]
struct Sample {
    sent: i64,
    accepted: i64,
    created: i64,
    queued: i64,
    claimed: i64,
    agent_start: i64,
    step_start: i64,
    marker: i64,
}

const SEGMENTS: [&str; 7] = [
    "POST sent → run created (server: auth, git, parsing)",
    "run created → job queued (server)",
    "job queued → answer read (client)",
    "answer read → job claimed (server)",
    "job claimed → job started (agent)",
    "job started → step started (agent: workspace, env, runner)",
    "step started → step's first command (spawn, bash start)",
];

impl Sample {
    fn segments(&self) -> [i64; 7] {
        [
            self.created - self.sent,
            self.queued - self.created,
            self.accepted - self.queued,
            self.claimed - self.accepted,
            self.agent_start - self.claimed,
            self.step_start - self.agent_start,
            self.marker - self.step_start,
        ]
    }
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    if cfg.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let machine = Machine::probe();
    let kiln_version = cluster::kiln_version(&cfg.kiln)?;
    let tmp = cluster::scratch("kiln-bench-dispatch-")?;
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks)?;
    let script = format!("echo \"$EPOCHREALTIME\" > {}/$KILN_RUN_ID", marks.display());
    let repo = Repo::create(
        tmp.path(),
        "dispatch",
        &crate::fixture::workflow_on(1, "self-hosted", &script),
    )?;
    let commit = repo.head()?;
    let server = Server::start(&cfg.kiln, &tmp.path().join("data"), &[])?;
    server.add_repo(&repo)?;
    let token = server.agent_token_file(tmp.path())?;
    let _agent = Agent::start(
        &cfg.kiln,
        &server,
        &token,
        "bench-agent",
        "",
        cfg.capacity,
        &tmp.path().join("agents"),
    )?;
    server.wait_agent("bench-agent", Duration::from_secs(30))?;
    let baseline = BashStart::new(tmp.path())?;

    let branch = TriggerRequest::default();
    let pinned = TriggerRequest {
        commit: Some(commit.clone()),
        ..TriggerRequest::default()
    };
    progress(&format!("warming up ({} runs)", cfg.warmup));
    for _ in 0..cfg.warmup {
        one_run(&server, &repo, &branch, &marks, cfg.settle)?;
    }
    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    let (mut t_true, mut t_bash_start, mut t_bash_wait) = (Vec::new(), Vec::new(), Vec::new());
    let mut git_total = Vec::new();
    let mut git_each: Vec<Vec<f64>> = Vec::new();
    let mut git_names = Vec::new();
    for i in 0..cfg.runs {
        if i % 20 == 0 {
            progress(&format!("run {}/{}", i + 1, cfg.runs));
        }
        samples[0].push(one_run(&server, &repo, &branch, &marks, cfg.settle)?);
        samples[1].push(one_run(&server, &repo, &pinned, &marks, cfg.settle)?);
        t_true.push(true_spawn_wait()?);
        let (start, wait) = baseline.once()?;
        t_bash_start.push(start);
        t_bash_wait.push(wait);
        let (total, each) = git_sequence(&server.mirror(&repo.name), &commit)?;
        git_total.push(total);
        git_names = each.iter().map(|(n, _)| n.clone()).collect();
        git_each.resize(each.len(), Vec::new());
        for (k, (_, t)) in each.into_iter().enumerate() {
            git_each[k].push(t);
        }
    }
    let true_spawn_wait_ms = Summary::of(&t_true);
    let bash_spawn_to_first_command_ms = Summary::of(&t_bash_start);
    let variants = ["branch (the default)", "pinned commit"]
        .into_iter()
        .zip(samples)
        .map(|(name, s)| {
            let dispatch: Vec<f64> = s.iter().map(|x| ms(x.marker - x.accepted)).collect();
            let dispatch_ms = Summary::of(&dispatch);
            let segments_p50_ms = SEGMENTS
                .iter()
                .enumerate()
                .map(|(k, label)| {
                    let xs: Vec<f64> = s.iter().map(|x| ms(x.segments()[k])).collect();
                    (label.to_string(), Summary::of(&xs).p50)
                })
                .collect();
            Variant {
                name,
                p50_ratio_to_bash_start: dispatch_ms.p50 / bash_spawn_to_first_command_ms.p50,
                p50_ratio_to_true_spawn: dispatch_ms.p50 / true_spawn_wait_ms.p50,
                aim_p50_met: dispatch_ms.p50 < AIM_P50_MS,
                aim_p99_met: dispatch_ms.p99 < AIM_P99_MS,
                trigger_call_ms: Summary::of(
                    &s.iter()
                        .map(|x| ms(x.accepted - x.sent))
                        .collect::<Vec<_>>(),
                ),
                total_ms: Summary::of(&s.iter().map(|x| ms(x.marker - x.sent)).collect::<Vec<_>>()),
                dispatch_ms,
                segments_p50_ms,
            }
        })
        .collect();
    Ok(Report {
        benchmark: "server-dispatch",
        machine,
        kiln: cfg.kiln.display().to_string(),
        kiln_version,
        runs: cfg.runs,
        capacity: cfg.capacity,
        settle_ms: cfg.settle.as_millis() as u64,
        variants,
        true_spawn_wait_ms,
        bash_spawn_to_first_command_ms,
        bash_spawn_wait_ms: Summary::of(&t_bash_wait),
        git_sequence_ms: Summary::of(&git_total),
        git_commands_p50_ms: git_names
            .into_iter()
            .zip(git_each.iter().map(|xs| Summary::of(xs).p50))
            .collect(),
    })
}

/// Triggers one run, waits for its step's marker, for the run to end and
/// for the agent to settle; the run's timestamps.
fn one_run(
    server: &Server,
    repo: &Repo,
    req: &TriggerRequest,
    marks: &Path,
    settle: Duration,
) -> Result<Sample> {
    let path = routes::repo_trigger(&repo.name);
    let sent = now_us();
    let answer: TriggerResponse = server.api.post(&path, req)?;
    let accepted = now_us();
    let run = answer
        .runs
        .first()
        .context("the trigger created no run")?
        .id;
    let lines = wait_lines(
        &marks.join(run.to_string()),
        1,
        Duration::from_micros(500),
        Duration::from_secs(60),
    )?;
    let marker = parse_epoch_realtime(&lines[0])
        .with_context(|| format!("the step wrote `{}`", lines[0]))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let detail = loop {
        let d: RunDetail = server.api.get(&routes::run(run))?;
        if d.summary.status.is_terminal() {
            break d;
        }
        if Instant::now() > deadline {
            bail!("run {run} did not end");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let results: RunResult = server.api.get(&routes::run_results(run))?;
    std::thread::sleep(settle);
    let job = detail.jobs.first().context("a run without jobs")?;
    let result = results.jobs.first().context("results without jobs")?;
    let missing = || format!("run {run}: a timestamp is missing: {detail:?} {results:?}");
    Ok(Sample {
        sent,
        accepted,
        created: ts_us(detail.summary.created_at),
        queued: ts_us(job.queued_at.with_context(missing)?),
        claimed: ts_us(job.started_at.with_context(missing)?),
        agent_start: ts_us(result.started_at.with_context(missing)?),
        step_start: ts_us(
            result
                .steps
                .first()
                .and_then(|s| s.started_at)
                .with_context(missing)?,
        ),
        marker,
    })
}

/// Spawn `/bin/true` and wait, ms.
fn true_spawn_wait() -> Result<f64> {
    let t = Instant::now();
    let status = Command::new("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("/bin/true failed");
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// The step's process without kiln: the command kiln's process executor
/// runs for the step (`bash --noprofile --norc -eo pipefail SCRIPT`, in a
/// new process group, stdin `/dev/null`, stdout and stderr piped), its
/// script writing `$EPOCHREALTIME` first, as the benchmarked step does.
struct BashStart {
    bash: PathBuf,
    script: PathBuf,
    mark: PathBuf,
    cwd: PathBuf,
}

impl BashStart {
    fn new(dir: &Path) -> Result<BashStart> {
        let mark = dir.join("baseline.mark");
        let script = dir.join("baseline-step.sh");
        std::fs::write(
            &script,
            format!("echo \"$EPOCHREALTIME\" > {}\n", mark.display()),
        )?;
        Ok(BashStart {
            bash: crate::baseline::which("bash")?,
            script,
            mark,
            cwd: dir.to_path_buf(),
        })
    }

    /// (spawn → first command, spawn → exit), ms.
    fn once(&self) -> Result<(f64, f64)> {
        let _ = std::fs::remove_file(&self.mark);
        let before = now_us();
        let t = Instant::now();
        let out = Command::new(&self.bash)
            .arg0("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&self.script)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .output()?;
        let wait = t.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            bail!(
                "the bash baseline failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = std::fs::read_to_string(&self.mark)?;
        let at = parse_epoch_realtime(&text).context("the bash baseline's timestamp")?;
        Ok((ms(at - before), wait))
    }
}

/// Runs the git commands of `Engine::trigger` (branch variant) against the
/// mirror: the whole sequence and each command, ms.
fn git_sequence(mirror: &Path, commit: &str) -> Result<(f64, Vec<(String, f64)>)> {
    let tree = format!("{commit}:.kiln/workflows");
    let file = format!("{commit}:.kiln/workflows/bench.yml");
    let cmds: [(&str, Vec<&str>); 5] = [
        (
            "fetch",
            vec![
                "fetch",
                "--prune",
                "--quiet",
                "origin",
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
        ),
        ("symbolic-ref", vec!["symbolic-ref", "-q", "HEAD"]),
        ("rev-parse", vec!["rev-parse", "--verify", "HEAD^{commit}"]),
        ("ls-tree", vec!["ls-tree", "--name-only", &tree]),
        ("show", vec!["show", &file]),
    ];
    let all = Instant::now();
    let mut each = Vec::new();
    for (name, args) in cmds {
        let t = Instant::now();
        let out = Command::new("git")
            .arg("-C")
            .arg(mirror)
            .args(&args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() && name != "symbolic-ref" {
            bail!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        each.push((name.to_owned(), t.elapsed().as_secs_f64() * 1000.0));
    }
    Ok((all.elapsed().as_secs_f64() * 1000.0, each))
}

/// The human-readable report.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!(
        "server-dispatch: {} runs per variant, one job of one step, agent capacity {}, settle {} ms",
        r.runs, r.capacity, r.settle_ms
    ));
    line(format!("machine: {}", r.machine.describe()));
    line(format!("kiln: {} ({})", r.kiln, r.kiln_version));
    line(String::new());
    line(format!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "ms", "min", "p50", "p90", "p99", "max", "mean"
    ));
    let row = |name: &str, x: &Summary| {
        format!(
            "{:<44} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            name, x.min, x.p50, x.p90, x.p99, x.max, x.mean
        )
    };
    for v in &r.variants {
        line(row(&format!("dispatch, {}", v.name), &v.dispatch_ms));
        line(row(
            &format!("  trigger call, {}", v.name),
            &v.trigger_call_ms,
        ));
        line(row(&format!("  sent → step, {}", v.name), &v.total_ms));
    }
    line(row("baseline: spawn+wait /bin/true", &r.true_spawn_wait_ms));
    line(row(
        "baseline: spawn bash step → first command",
        &r.bash_spawn_to_first_command_ms,
    ));
    line(row("baseline: spawn+wait bash step", &r.bash_spawn_wait_ms));
    line(row(
        "trigger's git commands (by the bench)",
        &r.git_sequence_ms,
    ));
    line(format!(
        "  p50 per git command: {}",
        r.git_commands_p50_ms
            .iter()
            .map(|(n, t)| format!("{n} {t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    line(String::new());
    for v in &r.variants {
        line(format!(
            "{}: dispatch p50 {:.2} ms = {:.1}× bash start, {:.1}× /bin/true spawn; \
             aim p50 < {AIM_P50_MS} ms: {}; aim p99 < {AIM_P99_MS} ms: {}",
            v.name,
            v.dispatch_ms.p50,
            v.p50_ratio_to_bash_start,
            v.p50_ratio_to_true_spawn,
            met(v.aim_p50_met),
            met(v.aim_p99_met)
        ));
        for (label, p50) in &v.segments_p50_ms {
            line(format!("  {p50:>8.2}  {label}"));
        }
    }
    s
}

pub fn met(b: bool) -> &'static str {
    if b { "met" } else { "NOT met" }
}
