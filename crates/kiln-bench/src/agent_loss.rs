//! `agent-loss`: an agent SIGKILLed mid-job → the job's step running again
//! on another agent, in seconds, against the configured lease.
//!
//! One server with a short lease (`--lease`, heartbeat a quarter of it),
//! two agents of capacity 1 on the same label. Per repeat: both agents are
//! registered and long-polling; a one-job run starts whose step appends
//! `$EPOCHREALTIME $$` to a marker file, then sleeps; once the first line
//! is there, the benchmark waits a random fraction of a heartbeat (so that
//! the kill falls anywhere between two heartbeats), takes the wall clock
//! and SIGKILLs the agent running the job; the second line (the second
//! attempt's step, on the other agent) ends the measurement. The server's
//! record of the first attempt's end (lease expiry found by the reaper)
//! and of the second claim split it. Then the run is cancelled, the
//! orphaned step of the killed agent is killed (its process group), and a
//! fresh agent takes the killed one's place.

use crate::cluster::{
    self, Agent, Repo, Server, kill_group, now_us, parse_epoch_realtime, ts_us, wait_lines,
};
use crate::machine::Machine;
use crate::stats::Summary;
use anyhow::{Context, Result, bail};
use kiln_proto::api::{RunDetail, RunSummary, TriggerRequest, TriggerResponse};
use kiln_proto::results::RunResult;
use kiln_proto::routes;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Config {
    pub kiln: PathBuf,
    pub lease: f64,
    pub repeat: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub machine: Machine,
    pub kiln: String,
    pub kiln_version: String,
    pub lease_s: f64,
    pub heartbeat_s: f64,
    /// The server's lease check period (lease ÷ 5, within 0.1 to 1 s).
    pub reaper_period_s: f64,
    pub repeat: usize,
    /// SIGKILL → the second attempt's step running, s.
    pub recovery_s: Summary,
    /// recovery ÷ lease.
    pub recovery_over_lease: Summary,
    /// SIGKILL → the server ended the first attempt (lease expiry), s.
    pub kill_to_expiry_s: Summary,
    /// Lease expiry recorded → the job claimed by the other agent, s.
    pub expiry_to_claim_s: Summary,
    /// Claimed → the second attempt's step running, s.
    pub claim_to_step_s: Summary,
    /// The (killed, waiting) agent of each repeat and its recovery, s.
    pub samples: Vec<(String, String, f64)>,
}

pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    if cfg.repeat == 0 || cfg.lease <= 0.0 {
        bail!("--repeat and --lease must be positive");
    }
    let machine = Machine::probe();
    let kiln_version = cluster::kiln_version(&cfg.kiln)?;
    let heartbeat = cfg.lease / 4.0;
    let tmp = cluster::scratch("kiln-bench-loss-")?;
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks)?;
    let script = format!(
        "echo \"$EPOCHREALTIME $$\" >> {}/$KILN_RUN_ID\nsleep 300",
        marks.display()
    );
    let repo = Repo::create(
        tmp.path(),
        "loss",
        &crate::fixture::workflow_on(1, "[self-hosted, loss]", &script),
    )?;
    let server = Server::start(
        &cfg.kiln,
        &tmp.path().join("data"),
        &[
            ("KILN_LEASE_SECONDS", cfg.lease.to_string()),
            ("KILN_HEARTBEAT_SECONDS", heartbeat.to_string()),
        ],
    )?;
    server.add_repo(&repo)?;
    let token = server.agent_token_file(tmp.path())?;
    let work = tmp.path().join("agents");
    let mut spawned = 0usize;
    let mut start_agent = |server: &Server| -> Result<Agent> {
        spawned += 1;
        let name = format!("loss-{spawned}");
        let a = Agent::start(&cfg.kiln, server, &token, &name, "loss", 1, &work)?;
        server.wait_agent(&name, Duration::from_secs(30))?;
        Ok(a)
    };
    let mut agents = [start_agent(&server)?, start_agent(&server)?];

    let (mut recovery, mut to_expiry, mut to_claim, mut to_step) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut samples = Vec::new();
    for r in 0..cfg.repeat {
        progress(&format!("repeat {}/{}", r + 1, cfg.repeat));
        // Both agents' claims open and parked.
        std::thread::sleep(Duration::from_millis(300));
        let answer: TriggerResponse = server.api.post(
            &routes::repo_trigger(&repo.name),
            &TriggerRequest::default(),
        )?;
        let run = answer
            .runs
            .first()
            .context("the trigger created no run")?
            .id;
        let mark = marks.join(run.to_string());
        let first = wait_lines(&mark, 1, Duration::from_millis(1), Duration::from_secs(60))?;
        let detail: RunDetail = server.api.get(&routes::run(run))?;
        let on = detail
            .jobs
            .first()
            .and_then(|j| j.agent.clone())
            .context("the running job has no agent")?;
        let victim = agents
            .iter()
            .position(|a| a.name == on)
            .with_context(|| format!("the job runs on an unknown agent {on}"))?;
        // Anywhere between two heartbeats.
        let jitter = (now_us().rem_euclid(1000) as f64 / 1000.0) * heartbeat;
        std::thread::sleep(Duration::from_secs_f64(jitter));
        let killed_at = now_us();
        agents[victim].kill();
        let lines = wait_lines(
            &mark,
            2,
            Duration::from_millis(1),
            Duration::from_secs_f64(cfg.lease * 4.0 + 30.0),
        )?;
        let second = parse_epoch_realtime(lines[1].split(' ').next().unwrap_or(""))
            .context("the second attempt's timestamp")?;
        let results: RunResult = server.api.get(&routes::run_results(run))?;
        let (expired, claimed) = split(&results)?;
        recovery.push((second - killed_at) as f64 / 1e6);
        to_expiry.push((expired - killed_at) as f64 / 1e6);
        to_claim.push((claimed - expired) as f64 / 1e6);
        to_step.push((second - claimed) as f64 / 1e6);
        let waiting = agents[1 - victim].name.clone();
        samples.push((on, waiting, (second - killed_at) as f64 / 1e6));

        // Clean up: the orphaned first step, the run, a fresh agent.
        for l in &first {
            if let Some(pid) = l.split(' ').nth(1).and_then(|p| p.parse().ok()) {
                kill_group(pid);
            }
        }
        let _: RunSummary = server.api.post(&routes::run_cancel(run), &())?;
        wait_ended(&server, run)?;
        agents[victim] = start_agent(&server)?;
    }
    Ok(Report {
        benchmark: "agent-loss",
        machine,
        kiln: cfg.kiln.display().to_string(),
        kiln_version,
        lease_s: cfg.lease,
        heartbeat_s: heartbeat,
        reaper_period_s: (cfg.lease / 5.0).clamp(0.1, 1.0),
        repeat: cfg.repeat,
        recovery_over_lease: Summary::of(
            &recovery.iter().map(|x| x / cfg.lease).collect::<Vec<_>>(),
        ),
        recovery_s: Summary::of(&recovery),
        kill_to_expiry_s: Summary::of(&to_expiry),
        expiry_to_claim_s: Summary::of(&to_claim),
        claim_to_step_s: Summary::of(&to_step),
        samples,
    })
}

/// The first attempt's end (lease expiry as recorded) and the second
/// attempt's claim, µs since the epoch.
fn split(results: &RunResult) -> Result<(i64, i64)> {
    let first = results
        .jobs
        .iter()
        .find(|j| j.attempt == 1)
        .context("no first attempt")?;
    let second = results
        .jobs
        .iter()
        .find(|j| j.attempt == 2)
        .context("no second attempt")?;
    if first.reason.as_deref() != Some("agent-lost") {
        bail!(
            "the first attempt ended for {:?}, not agent-lost",
            first.reason
        );
    }
    let expired = ts_us(first.finished_at.context("the first attempt has no end")?);
    let queue = second.phases.first().context("no queue phase")?;
    // The queue phase starts at the first attempt's end and lasts until
    // the claim (whole milliseconds).
    Ok((
        expired,
        ts_us(queue.started_at) + queue.duration_ms as i64 * 1000,
    ))
}

fn wait_ended(server: &Server, run: kiln_model::RunId) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d: RunDetail = server.api.get(&routes::run(run))?;
        if d.summary.status.is_terminal() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("run {run} did not end after cancel");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!(
        "agent-loss: lease {} s, heartbeat {} s, lease check every {} s, {} kills",
        r.lease_s, r.heartbeat_s, r.reaper_period_s, r.repeat
    ));
    line(format!("machine: {}", r.machine.describe()));
    line(format!("kiln: {} ({})", r.kiln, r.kiln_version));
    line(String::new());
    line(format!(
        "{:<44} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "s", "min", "p50", "max", "mean", "n"
    ));
    let row = |name: &str, x: &Summary| {
        format!(
            "{:<44} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7}",
            name, x.min, x.p50, x.max, x.mean, x.n
        )
    };
    line(row("SIGKILL → step running again elsewhere", &r.recovery_s));
    line(row("  ÷ lease", &r.recovery_over_lease));
    line(row(
        "  SIGKILL → lease expiry recorded",
        &r.kill_to_expiry_s,
    ));
    line(row(
        "  expiry → claimed by the other agent",
        &r.expiry_to_claim_s,
    ));
    line(row("  claimed → step running", &r.claim_to_step_s));
    line(format!(
        "bounds: expiry comes lease − (time since the last heartbeat) after the kill, \
         i.e. between {:.2} and {:.2} s, plus up to one lease check ({} s)",
        r.lease_s - r.heartbeat_s,
        r.lease_s,
        r.reaper_period_s
    ));
    s
}
