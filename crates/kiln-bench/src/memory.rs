//! `server-memory`: resident memory of the server idle and with a deep
//! queue, and of an idle agent, from `/proc/PID/status` (`VmRSS` now,
//! `VmHWM` the peak so far).
//!
//! Two servers, so that no agent ever sees the deep queue:
//!
//! 1. server A starts; after `--settle-ms` its RSS is "idle"; then
//!    `--runs` triggers of a workflow of `--jobs` independent jobs (default
//!    10 × 1,000 = 10,000 queued jobs; a job's matrix is limited to 256, so
//!    many jobs, not one matrix) with no agent attached, RSS after each;
//!    after the last and `--settle-ms`, RSS and HWM "with N queued";
//! 2. server B starts with one agent (capacity: CPUs) that registers and
//!    long-polls; after `--settle-ms` the agent's RSS is "agent idle".
//!
//! For scale, the RSS of two processes any job runs anyway: `sleep` and an
//! idle `bash --noprofile --norc`, measured in the same run.

use crate::cluster::{self, Agent, Repo, Rss, Server};
use crate::machine::Machine;
use anyhow::{Context, Result, bail};
use kiln_model::JobStatus;
use kiln_proto::api::{RunDetail, TriggerRequest, TriggerResponse};
use kiln_proto::routes;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The aims, MiB.
pub const AIM_SERVER_IDLE_MIB: f64 = 30.0;
pub const AIM_SERVER_QUEUED_MIB: f64 = 150.0;
pub const AIM_AGENT_IDLE_MIB: f64 = 15.0;

#[derive(Clone, Debug)]
pub struct Config {
    pub kiln: PathBuf,
    pub jobs: usize,
    pub runs: usize,
    pub capacity: usize,
    pub settle: Duration,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub machine: Machine,
    pub kiln: String,
    pub kiln_version: String,
    pub settle_ms: u64,
    pub server_idle: Rss,
    /// (queued jobs, RSS after that trigger, trigger call seconds).
    pub server_by_queue: Vec<(usize, Rss, f64)>,
    pub queued: usize,
    pub server_queued: Rss,
    /// The SQLite database with its WAL, bytes, with the queue in it.
    pub database_bytes: u64,
    pub agent_idle: Rss,
    /// Server B with one idle agent attached.
    pub server_with_agent_idle: Rss,
    pub sleep_rss: Rss,
    pub bash_rss: Rss,
    pub aim_server_idle_met: bool,
    pub aim_server_queued_met: bool,
    pub aim_agent_idle_met: bool,
}

pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    if cfg.jobs == 0 || cfg.runs == 0 {
        bail!("--jobs and --runs must be at least 1");
    }
    let machine = Machine::probe();
    let kiln_version = cluster::kiln_version(&cfg.kiln)?;
    let tmp = cluster::scratch("kiln-bench-memory-")?;

    progress("server idle");
    let a = Server::start(&cfg.kiln, &tmp.path().join("data-a"), &[])?;
    std::thread::sleep(cfg.settle);
    let server_idle = Rss::of(a.pid())?;
    let repo = Repo::create(
        tmp.path(),
        "queue",
        &crate::fixture::workflow_on(cfg.jobs, "self-hosted", "true"),
    )?;
    a.add_repo(&repo)?;
    let mut server_by_queue = Vec::new();
    let mut run_ids = Vec::new();
    for k in 1..=cfg.runs {
        progress(&format!("queueing: run {k}/{}", cfg.runs));
        let t = Instant::now();
        let answer: TriggerResponse = a.api.post(
            &routes::repo_trigger(&repo.name),
            &TriggerRequest::default(),
        )?;
        let took = t.elapsed().as_secs_f64();
        run_ids.push(
            answer
                .runs
                .first()
                .context("the trigger created no run")?
                .id,
        );
        server_by_queue.push((k * cfg.jobs, Rss::of(a.pid())?, took));
    }
    std::thread::sleep(cfg.settle);
    let server_queued = Rss::of(a.pid())?;
    let mut queued = 0;
    for id in &run_ids {
        let d: RunDetail = a.api.get(&routes::run(*id))?;
        queued += d
            .jobs
            .iter()
            .filter(|j| j.status == JobStatus::Queued)
            .count();
    }
    let database_bytes = dir_bytes(&a.data, "kiln");
    drop(a);

    progress("agent idle");
    let b = Server::start(&cfg.kiln, &tmp.path().join("data-b"), &[])?;
    let token = b.agent_token_file(tmp.path())?;
    let agent = Agent::start(
        &cfg.kiln,
        &b,
        &token,
        "bench-agent",
        "",
        cfg.capacity,
        &tmp.path().join("agents"),
    )?;
    b.wait_agent("bench-agent", Duration::from_secs(30))?;
    std::thread::sleep(cfg.settle);
    let agent_idle = Rss::of(agent.pid().context("the agent")?)?;
    let server_with_agent_idle = Rss::of(b.pid())?;

    let sleep_rss = idle_process_rss(Command::new("sleep").arg("30"))?;
    let bash_rss = idle_process_rss(
        Command::new("bash")
            .args(["--noprofile", "--norc", "-c", "read -r x"])
            .stdin(Stdio::piped()),
    )?;

    Ok(Report {
        benchmark: "server-memory",
        machine,
        kiln: cfg.kiln.display().to_string(),
        kiln_version,
        settle_ms: cfg.settle.as_millis() as u64,
        aim_server_idle_met: server_idle.rss_mib() < AIM_SERVER_IDLE_MIB,
        aim_server_queued_met: server_queued.rss_mib() < AIM_SERVER_QUEUED_MIB,
        aim_agent_idle_met: agent_idle.rss_mib() < AIM_AGENT_IDLE_MIB,
        server_idle,
        server_by_queue,
        queued,
        server_queued,
        database_bytes,
        agent_idle,
        server_with_agent_idle,
        sleep_rss,
        bash_rss,
    })
}

/// Starts `cmd`, waits 200 ms, reads its RSS, kills it.
fn idle_process_rss(cmd: &mut Command) -> Result<Rss> {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    std::thread::sleep(Duration::from_millis(200));
    let rss = Rss::of(child.id());
    let _ = child.kill();
    let _ = child.wait();
    rss
}

/// Bytes of the files in `dir` whose name starts with `prefix`.
fn dir_bytes(dir: &Path, prefix: &str) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!(
        "server-memory: VmRSS / VmHWM from /proc, settle {} ms",
        r.settle_ms
    ));
    line(format!("machine: {}", r.machine.describe()));
    line(format!("kiln: {} ({})", r.kiln, r.kiln_version));
    line(String::new());
    let row = |name: &str, x: &Rss, aim: Option<(f64, bool)>| {
        format!(
            "{:<40} {:>8.1} {:>8.1}  {}",
            name,
            x.rss_mib(),
            x.hwm_mib(),
            aim.map_or(String::new(), |(a, m)| format!(
                "aim < {a} MiB: {}",
                crate::dispatch::met(m)
            ))
        )
    };
    line(format!("{:<40} {:>8} {:>8}", "MiB", "RSS", "HWM"));
    line(row(
        "server idle",
        &r.server_idle,
        Some((AIM_SERVER_IDLE_MIB, r.aim_server_idle_met)),
    ));
    line(row(
        &format!("server with {} queued jobs", r.queued),
        &r.server_queued,
        Some((AIM_SERVER_QUEUED_MIB, r.aim_server_queued_met)),
    ));
    line(row(
        "agent idle (registered, long-polling)",
        &r.agent_idle,
        Some((AIM_AGENT_IDLE_MIB, r.aim_agent_idle_met)),
    ));
    line(row(
        "server idle with one agent",
        &r.server_with_agent_idle,
        None,
    ));
    line(row("for scale: sleep", &r.sleep_rss, None));
    line(row("for scale: idle bash", &r.bash_rss, None));
    line(String::new());
    line(format!(
        "database with the queue: {:.1} MiB; RSS by queued jobs (trigger call s):",
        r.database_bytes as f64 / 1048576.0
    ));
    for (n, rss, took) in &r.server_by_queue {
        line(format!(
            "  {n:>6} queued: RSS {:>7.1} HWM {:>7.1} ({took:.2} s)",
            rss.rss_mib(),
            rss.hwm_mib()
        ));
    }
    line(format!(
        "ratios: server idle = {:.1}× an idle bash; agent idle = {:.1}× an idle bash",
        r.server_idle.rss_mib() / r.bash_rss.rss_mib(),
        r.agent_idle.rss_mib() / r.bash_rss.rss_mib()
    ));
    s
}
