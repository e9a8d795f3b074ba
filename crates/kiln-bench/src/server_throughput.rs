//! `server-throughput`: jobs per second through one server and one agent,
//! against the rate at which this machine runs the same step processes
//! without kiln, at the same parallelism, measured in the same run.
//!
//! Two shapes, `--repeat` times, interleaved with their baselines:
//!
//! - one run of N independent jobs (default 1,000), each one
//!   `run: "true"` step: POST sent → the run's `finished_at`;
//! - M separately triggered one-job runs (default 500), triggered as fast as
//!   `--trigger-threads` clients can: first POST sent → the last run's
//!   `finished_at`.
//!
//! - the same M runs triggered with no agent able to take them, then an
//!   agent started that can: its first claim → the last run's end (the
//!   dispatch rate without the triggers).
//!
//! The end is the server's own `finished_at` (same machine, same clock),
//! so the polling interval only delays noticing it, not the number.
//! Baselines: the bash command kiln runs for such a step, N (or M) times,
//! P at a time (P = the agent's capacity), and `/bin/true` likewise.

use crate::baseline::Baseline;
use crate::cluster::{self, Agent, Repo, Server, now_us, ts_us};
use crate::machine::{CpuClock, Machine};
use crate::throughput::median;
use anyhow::{Context, Result, bail};
use kiln_model::{JobStatus, RunId};
use kiln_proto::api::{RunSummary, TriggerRequest, TriggerResponse};
use kiln_proto::results::RunResult;
use kiln_proto::routes;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The aim, jobs per second.
pub const AIM_JOBS_PER_S: f64 = 300.0;

#[derive(Clone, Debug)]
pub struct Config {
    /// Jobs of the one run queued first (0: that shape is not measured).
    pub queued_jobs: usize,
    pub kiln: PathBuf,
    pub jobs: usize,
    pub runs: usize,
    pub capacity: usize,
    pub repeat: usize,
    pub trigger_threads: usize,
    pub poll: Duration,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub machine: Machine,
    pub kiln: String,
    pub kiln_version: String,
    pub capacity: usize,
    pub repeat: usize,
    pub trigger_threads: usize,
    pub shapes: Vec<Shape>,
}

/// One shape (one big run, or many small ones), `repeat` times.
#[derive(Debug, Serialize)]
pub struct Shape {
    pub name: String,
    pub jobs: usize,
    /// POST sent → last `finished_at`, seconds, per repeat.
    pub wall_s: Vec<f64>,
    pub median_s: f64,
    pub jobs_per_s: f64,
    /// Triggering alone: first POST sent → last answer read, seconds (median).
    pub trigger_s: f64,
    /// First POST sent → the first job claimed, ms (median).
    pub first_claim_ms: f64,
    /// Σ (job end − job start, as the agent reports) ÷ (P × wall): how busy
    /// the agent's slots were (median run).
    pub slot_occupancy: f64,
    /// Mean job time on the agent (start → end), ms (median run).
    pub agent_job_ms: f64,
    /// CPU time per job, ms (median run): the server process, the agent
    /// process, and the step processes the agent ran (its waited-for
    /// children). Includes the benchmark's polling of the server.
    pub server_cpu_ms_per_job: f64,
    pub agent_cpu_ms_per_job: f64,
    pub steps_cpu_ms_per_job: f64,
    /// Baselines, seconds (medians) and rates.
    pub bash_median_s: f64,
    pub bash_per_s: f64,
    pub true_median_s: f64,
    pub true_per_s: f64,
    /// kiln jobs/s ÷ baseline processes/s.
    pub ratio_to_bash: f64,
    pub ratio_to_true: f64,
    pub aim_met: bool,
    /// For a single run: the time per job in the last tenth of the jobs to
    /// end ÷ that of the first tenth (median run); 1.0 is a flat tail.
    pub tail_ratio: Option<f64>,
    /// For triggered runs: runs created per second while triggering.
    pub trigger_runs_per_s: Option<f64>,
}

struct Measured {
    wall_s: f64,
    tail_ratio: Option<f64>,
    runs: usize,
    trigger_s: f64,
    first_claim_ms: f64,
    occupancy: f64,
    agent_job_ms: f64,
    /// Server, agent, agent's children: CPU ms per job.
    cpu_ms: [f64; 3],
}

/// CPU time so far of the server, the agent, and the agent's children.
type CpuNow<'a> = &'a dyn Fn() -> Option<[f64; 3]>;

fn cpu_per_job(before: Option<[f64; 3]>, after: Option<[f64; 3]>, jobs: usize) -> [f64; 3] {
    match (before, after) {
        (Some(b), Some(a)) => [0, 1, 2].map(|k| (a[k] - b[k]) * 1000.0 / jobs as f64),
        _ => [f64::NAN; 3],
    }
}

pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    if cfg.jobs == 0 || cfg.runs == 0 || cfg.repeat == 0 || cfg.capacity == 0 {
        bail!("--jobs, --runs, --repeat and the capacity must be at least 1");
    }
    let machine = Machine::probe();
    let kiln_version = cluster::kiln_version(&cfg.kiln)?;
    let tmp = cluster::scratch("kiln-bench-throughput-")?;
    let big = Repo::create(
        tmp.path(),
        "big",
        &crate::fixture::workflow_on(cfg.jobs, "self-hosted", "true"),
    )?;
    let small = Repo::create(
        tmp.path(),
        "small",
        &crate::fixture::workflow_on(1, "self-hosted", "true"),
    )?;
    let drain = Repo::create(
        tmp.path(),
        "drain",
        &crate::fixture::workflow_on(1, "[self-hosted, drain]", "true"),
    )?;
    let queued = Repo::create(
        tmp.path(),
        "queued",
        &crate::fixture::workflow_on(cfg.queued_jobs.max(1), "[self-hosted, drain]", "true"),
    )?;
    let server = Server::start(&cfg.kiln, &tmp.path().join("data"), &[])?;
    server.add_repo(&big)?;
    server.add_repo(&small)?;
    server.add_repo(&drain)?;
    server.add_repo(&queued)?;
    let token = server.agent_token_file(tmp.path())?;
    let agent = Agent::start(
        &cfg.kiln,
        &server,
        &token,
        "bench-agent",
        "",
        cfg.capacity,
        &tmp.path().join("agents"),
    )?;
    server.wait_agent("bench-agent", Duration::from_secs(30))?;
    let p = cfg.capacity;
    let clock = CpuClock::new();
    let (server_pid, agent_pid) = (
        server.pid().to_string(),
        agent.pid().context("the agent")?.to_string(),
    );
    let cpu_now = || -> Option<[f64; 3]> {
        let (s, _) = clock.of(&server_pid)?;
        let (a, c) = clock.of(&agent_pid)?;
        Some([s.as_secs_f64(), a.as_secs_f64(), c.as_secs_f64()])
    };
    let bash = Baseline::bash_script(tmp.path(), tmp.path())?;

    progress("warming up");
    bash.measure(100, p)?;
    Baseline::True.measure(100, p)?;
    many_runs(
        &server,
        &small,
        20,
        cfg.trigger_threads,
        p,
        cfg.poll,
        &cpu_now,
    )?;

    let mut big_m = Vec::new();
    let mut small_m = Vec::new();
    let mut drain_m = Vec::new();
    let mut queued_m = Vec::new();
    let drains = std::cell::Cell::new(0usize);
    let drain_agent = || -> Result<Agent> {
        drains.set(drains.get() + 1);
        Agent::start(
            &cfg.kiln,
            &server,
            &token,
            &format!("drain-{}", drains.get()),
            "drain",
            cfg.capacity,
            &tmp.path().join("agents"),
        )
    };
    let (mut big_bash, mut big_true, mut small_bash, mut small_true) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..cfg.repeat {
        progress(&format!("repeat {}/{}: baselines", r + 1, cfg.repeat));
        big_bash.push(bash.measure(cfg.jobs, p)?.as_secs_f64());
        big_true.push(Baseline::True.measure(cfg.jobs, p)?.as_secs_f64());
        progress(&format!(
            "repeat {}/{}: one run of {} jobs",
            r + 1,
            cfg.repeat,
            cfg.jobs
        ));
        big_m.push(one_big_run(&server, &big, cfg.jobs, p, cfg.poll, &cpu_now)?);
        small_bash.push(bash.measure(cfg.runs, p)?.as_secs_f64());
        small_true.push(Baseline::True.measure(cfg.runs, p)?.as_secs_f64());
        progress(&format!(
            "repeat {}/{}: {} one-job runs",
            r + 1,
            cfg.repeat,
            cfg.runs
        ));
        small_m.push(many_runs(
            &server,
            &small,
            cfg.runs,
            cfg.trigger_threads,
            p,
            cfg.poll,
            &cpu_now,
        )?);
        progress(&format!(
            "repeat {}/{}: {} one-job runs queued, then drained",
            r + 1,
            cfg.repeat,
            cfg.runs
        ));
        drain_m.push(drain_runs(
            &server,
            &drain,
            cfg.runs,
            1,
            cfg.trigger_threads,
            p,
            cfg.poll,
            &drain_agent,
            &clock,
        )?);
        if cfg.queued_jobs > 0 {
            progress(&format!(
                "repeat {}/{}: one run of {} jobs queued, then drained",
                r + 1,
                cfg.repeat,
                cfg.queued_jobs
            ));
            queued_m.push(drain_runs(
                &server,
                &queued,
                1,
                cfg.queued_jobs,
                1,
                p,
                cfg.poll,
                &drain_agent,
                &clock,
            )?);
        }
    }
    let mut shapes = vec![
        shape(
            format!("one run of {} jobs", cfg.jobs),
            cfg.jobs,
            &big_m,
            &big_bash,
            &big_true,
        ),
        shape(
            format!("{} one-job runs", cfg.runs),
            cfg.runs,
            &small_m,
            &small_bash,
            &small_true,
        ),
        shape(
            format!("{} one-job runs, queued first", cfg.runs),
            cfg.runs,
            &drain_m,
            &small_bash,
            &small_true,
        ),
    ];
    if cfg.queued_jobs > 0 {
        // Baselines scaled from the big run's (same work per job).
        let scale = |v: &[f64]| -> Vec<f64> {
            v.iter()
                .map(|x| x * cfg.queued_jobs as f64 / cfg.jobs as f64)
                .collect()
        };
        shapes.push(shape(
            format!("one run of {} jobs, queued first", cfg.queued_jobs),
            cfg.queued_jobs,
            &queued_m,
            &scale(&big_bash),
            &scale(&big_true),
        ));
    }
    Ok(Report {
        benchmark: "server-throughput",
        machine,
        kiln: cfg.kiln.display().to_string(),
        kiln_version,
        capacity: cfg.capacity,
        repeat: cfg.repeat,
        trigger_threads: cfg.trigger_threads,
        shapes,
    })
}

/// Time per job in the last tenth of a run's jobs to end ÷ the first
/// tenth's, by their `finished_at`.
fn tail_ratio(results: &RunResult) -> Option<f64> {
    let mut ends: Vec<i64> = results
        .jobs
        .iter()
        .filter_map(|j| j.finished_at.map(ts_us))
        .collect();
    ends.sort_unstable();
    let tenth = ends.len() / 10;
    if tenth < 2 {
        return None;
    }
    let first = (ends[tenth] - ends[0]) as f64;
    let n = ends.len();
    let last = (ends[n - 1] - ends[n - 1 - tenth]) as f64;
    (first > 0.0).then(|| last / first)
}

fn shape(name: String, jobs: usize, m: &[Measured], bash: &[f64], tru: &[f64]) -> Shape {
    let wall_s: Vec<f64> = m.iter().map(|x| x.wall_s).collect();
    let median_s = median(&wall_s);
    let mid = m.iter().find(|x| x.wall_s == median_s).unwrap_or(&m[0]);
    let bash_median_s = median(bash);
    let true_median_s = median(tru);
    let jobs_per_s = jobs as f64 / median_s;
    Shape {
        name,
        jobs,
        median_s,
        jobs_per_s,
        trigger_s: median(&m.iter().map(|x| x.trigger_s).collect::<Vec<_>>()),
        first_claim_ms: median(&m.iter().map(|x| x.first_claim_ms).collect::<Vec<_>>()),
        slot_occupancy: mid.occupancy,
        server_cpu_ms_per_job: mid.cpu_ms[0],
        agent_cpu_ms_per_job: mid.cpu_ms[1],
        steps_cpu_ms_per_job: mid.cpu_ms[2],
        agent_job_ms: mid.agent_job_ms,
        bash_median_s,
        bash_per_s: jobs as f64 / bash_median_s,
        true_median_s,
        true_per_s: jobs as f64 / true_median_s,
        ratio_to_bash: bash_median_s / median_s,
        ratio_to_true: true_median_s / median_s,
        aim_met: jobs_per_s >= AIM_JOBS_PER_S,
        tail_ratio: mid.tail_ratio,
        trigger_runs_per_s: {
            let runs = mid.runs;
            let trigger_s = median(&m.iter().map(|x| x.trigger_s).collect::<Vec<_>>());
            (runs > 1 && trigger_s > 0.0).then(|| runs as f64 / trigger_s)
        },
        wall_s,
    }
}

/// Σ job time ÷ (P × wall), the mean job time (ms) and the first claim
/// (µs since the epoch), from results documents.
fn occupancy(results: &[RunResult], p: usize, wall_us: i64) -> Result<(f64, f64, i64)> {
    let mut busy = 0i64;
    let mut n = 0usize;
    let mut first = i64::MAX;
    for r in results {
        for j in &r.jobs {
            if j.status != JobStatus::Success {
                bail!("job {} ended {} ({:?})", j.name, j.status, j.reason);
            }
            let (Some(s), Some(e)) = (j.started_at, j.finished_at) else {
                bail!("job {} has no start or end", j.name);
            };
            busy += ts_us(e) - ts_us(s);
            n += 1;
            // The queue phase ends when the server handed the job out.
            if let Some(q) = j.phases.first() {
                first = first.min(ts_us(q.started_at) + q.duration_ms as i64 * 1000);
            }
        }
    }
    Ok((
        busy as f64 / (p as f64 * wall_us as f64),
        busy as f64 / n.max(1) as f64 / 1000.0,
        first,
    ))
}

fn one_big_run(
    server: &Server,
    repo: &Repo,
    jobs: usize,
    p: usize,
    poll: Duration,
    cpu: CpuNow<'_>,
) -> Result<Measured> {
    let cpu0 = cpu();
    let sent = now_us();
    let answer: TriggerResponse = server.api.post(
        &routes::repo_trigger(&repo.name),
        &TriggerRequest::default(),
    )?;
    let accepted = now_us();
    let run = answer
        .runs
        .first()
        .context("the trigger created no run")?
        .id;
    let ended = wait_all(server, &repo.name, &[run], poll, Duration::from_secs(600))?;
    let cpu_ms = cpu_per_job(cpu0, cpu(), jobs);
    let results: RunResult = server.api.get(&routes::run_results(run))?;
    if results.jobs.len() != jobs {
        bail!(
            "expected {jobs} jobs, the results have {}",
            results.jobs.len()
        );
    }
    let wall = ended - sent;
    let tail_ratio = tail_ratio(&results);
    let (occupancy, agent_job_ms, first) = occupancy(&[results], p, wall)?;
    Ok(Measured {
        wall_s: wall as f64 / 1e6,
        tail_ratio,
        runs: 1,
        trigger_s: (accepted - sent) as f64 / 1e6,
        first_claim_ms: (first - sent) as f64 / 1000.0,
        occupancy,
        agent_job_ms,
        cpu_ms,
    })
}

fn many_runs(
    server: &Server,
    repo: &Repo,
    runs: usize,
    threads: usize,
    p: usize,
    poll: Duration,
    cpu: CpuNow<'_>,
) -> Result<Measured> {
    let cpu0 = cpu();
    let (ids, sent, accepted) = trigger_many(server, repo, runs, threads)?;
    let ended = wait_all(server, &repo.name, &ids, poll, Duration::from_secs(600))?;
    let cpu_ms = cpu_per_job(cpu0, cpu(), runs);
    let mut results = Vec::new();
    for id in &ids {
        results.push(server.api.get::<RunResult>(&routes::run_results(*id))?);
    }
    let wall = ended - sent;
    let (occupancy, agent_job_ms, first) = occupancy(&results, p, wall)?;
    Ok(Measured {
        wall_s: wall as f64 / 1e6,
        tail_ratio: None,
        runs,
        trigger_s: (accepted - sent) as f64 / 1e6,
        first_claim_ms: (first - sent) as f64 / 1000.0,
        occupancy,
        agent_job_ms,
        cpu_ms,
    })
}

/// `runs` one-job runs queued first (no agent has their label), then an
/// agent with that label started: the first claim → the last run's end.
#[allow(clippy::too_many_arguments)]
fn drain_runs(
    server: &Server,
    repo: &Repo,
    runs: usize,
    jobs_per_run: usize,
    threads: usize,
    p: usize,
    poll: Duration,
    agent: &dyn Fn() -> Result<Agent>,
    clock: &CpuClock,
) -> Result<Measured> {
    let (ids, sent, accepted) = trigger_many(server, repo, runs, threads)?;
    let server_pid = server.pid().to_string();
    let s0 = clock.of(&server_pid).map(|c| c.0.as_secs_f64());
    let a = agent()?;
    let agent_pid = a.pid().context("the agent")?.to_string();
    let ended = wait_all(server, &repo.name, &ids, poll, Duration::from_secs(600))?;
    let s1 = clock.of(&server_pid).map(|c| c.0.as_secs_f64());
    let a1 = clock.of(&agent_pid);
    let jobs = (runs * jobs_per_run) as f64;
    let cpu_ms = match (s0, s1, a1) {
        (Some(s0), Some(s1), Some((own, children))) => [
            (s1 - s0) * 1000.0 / jobs,
            own.as_secs_f64() * 1000.0 / jobs,
            children.as_secs_f64() * 1000.0 / jobs,
        ],
        _ => [f64::NAN; 3],
    };
    drop(a);
    let mut results = Vec::new();
    for id in &ids {
        results.push(server.api.get::<RunResult>(&routes::run_results(*id))?);
    }
    let (_, _, first) = occupancy(&results, p, 1)?;
    let wall = ended - first;
    let (occupancy, agent_job_ms, _) = occupancy(&results, p, wall)?;
    let tail_ratio = match results.as_slice() {
        [one] => tail_ratio(one),
        _ => None,
    };
    Ok(Measured {
        wall_s: wall as f64 / 1e6,
        tail_ratio,
        runs: ids.len(),
        trigger_s: (accepted - sent) as f64 / 1e6,
        first_claim_ms: 0.0,
        occupancy,
        agent_job_ms,
        cpu_ms,
    })
}

/// Triggers `runs` runs of `repo` from `threads` clients at once; the run
/// ids, when the first POST was sent and when the last answer was read.
fn trigger_many(
    server: &Server,
    repo: &Repo,
    runs: usize,
    threads: usize,
) -> Result<(Vec<RunId>, i64, i64)> {
    let path = routes::repo_trigger(&repo.name);
    let next = Mutex::new(0usize);
    let ids = Mutex::new(Vec::with_capacity(runs));
    let sent = now_us();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..threads.clamp(1, runs))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        {
                            let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                            if *n >= runs {
                                return Ok(());
                            }
                            *n += 1;
                        }
                        let a: TriggerResponse =
                            server.api.post(&path, &TriggerRequest::default())?;
                        let id = a.runs.first().context("the trigger created no run")?.id;
                        ids.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a trigger thread panicked")?;
        }
        Ok(())
    })?;
    let accepted = now_us();
    let ids = ids.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok((ids, sent, accepted))
}

/// Polls the repository's newest runs until every run of `ids` has ended
/// successfully; the latest `finished_at`, µs since the epoch.
fn wait_all(
    server: &Server,
    repo: &str,
    ids: &[RunId],
    poll: Duration,
    timeout: Duration,
) -> Result<i64> {
    let deadline = Instant::now() + timeout;
    let limit = (ids.len() + 10).min(1000);
    let path = format!("{}?repo={repo}&limit={limit}", routes::RUNS);
    loop {
        let runs: Vec<RunSummary> = server.api.get(&path)?;
        let by_id: HashMap<RunId, &RunSummary> = runs.iter().map(|r| (r.id, r)).collect();
        let mut last = 0i64;
        let mut all = true;
        for id in ids {
            match by_id.get(id) {
                Some(r) if r.status.is_terminal() => {
                    if r.status != JobStatus::Success {
                        bail!("run {id} ended {}", r.status);
                    }
                    last = last.max(r.finished_at.map_or(0, ts_us));
                }
                Some(_) | None => {
                    all = false;
                    break;
                }
            }
        }
        if all {
            return Ok(last);
        }
        if Instant::now() > deadline {
            bail!("runs did not end within {timeout:?}");
        }
        std::thread::sleep(poll);
    }
}

pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!(
        "server-throughput: one server, one agent of capacity {} (P), median of {}, \
         {} trigger threads",
        r.capacity, r.repeat, r.trigger_threads
    ));
    line(format!("machine: {}", r.machine.describe()));
    line(format!("kiln: {} ({})", r.kiln, r.kiln_version));
    line(String::new());
    line(format!(
        "{:<34} {:>8} {:>8} {:>9} {:>10} {:>9} {:>9} {:>8} {:>9} {:>7}",
        "",
        "wall s",
        "jobs/s",
        "bash/s",
        "true/s",
        "vs bash",
        "vs true",
        "trig s",
        "1st ms",
        "busy"
    ));
    for x in &r.shapes {
        line(format!(
            "{:<34} {:>8.3} {:>8.1} {:>9.0} {:>10.0} {:>9.3} {:>9.3} {:>8.3} {:>9.1} {:>6.0}%",
            x.name,
            x.median_s,
            x.jobs_per_s,
            x.bash_per_s,
            x.true_per_s,
            x.ratio_to_bash,
            x.ratio_to_true,
            x.trigger_s,
            x.first_claim_ms,
            x.slot_occupancy * 100.0
        ));
    }
    line(String::new());
    for x in &r.shapes {
        if let Some(t) = x.tail_ratio {
            line(format!(
                "{}: time per job in the last tenth ÷ the first tenth: {t:.2} (aim ≤ 1.5: {})",
                x.name,
                crate::dispatch::met(t <= 1.5)
            ));
        }
        if let Some(t) = x.trigger_runs_per_s {
            line(format!(
                "{}: runs created while triggering: {t:.1} runs/s (aim ≥ 300: {})",
                x.name,
                crate::dispatch::met(t >= 300.0)
            ));
        }
        line(format!(
            "{}: {:.1} jobs/s (walls {}), aim ≥ {AIM_JOBS_PER_S} jobs/s: {}; \
             mean job on the agent {:.2} ms; CPU ms/job: server {:.2}, agent {:.2}, \
             steps {:.2}",
            x.name,
            x.jobs_per_s,
            x.wall_s
                .iter()
                .map(|w| format!("{w:.2}"))
                .collect::<Vec<_>>()
                .join(" "),
            crate::dispatch::met(x.aim_met),
            x.agent_job_ms,
            x.server_cpu_ms_per_job,
            x.agent_cpu_ms_per_job,
            x.steps_cpu_ms_per_job
        ));
    }
    s
}
