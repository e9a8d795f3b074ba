//! `exec-throughput`: how many trivial jobs per second `kiln exec` runs, as
//! a ratio to how fast this machine spawns the same processes without kiln.
//!
//! One run measures, `--repeat` times and interleaved (so that a burst of
//! other work on the machine hits every series alike):
//!
//! 1. `/bin/true`, N spawns P at a time from Rust (the raw process cost);
//! 2. the bash command kiln runs per step, N spawns P at a time;
//! 3. `kiln exec --quiet --parallel P --json FILE` with fresh workspaces;
//! 4. the same with `--in-place`;
//! 5. and 6. kiln's fixed cost: 3. and 4. selecting one job (`--job j0000`),
//!    so that the whole workflow is still read and the worktree still listed.
//!
//! Then it reports medians, jobs/s, ratios, kiln's own cost per job (see
//! [`own_cost_ms`]) and a breakdown of where each job's time went, from the
//! results document kiln wrote. `docs/benchmarks.md` explains every number.

use crate::baseline::Baseline;
use crate::fixture::{self, Fixture};
use crate::machine::{CpuClock, Machine};
use anyhow::{Context, Result, bail};
use kiln_model::JobStatus;
use kiln_proto::results::{JobResult, PhaseKind, ResultsDocument};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct Config {
    pub jobs: usize,
    pub repeat: usize,
    pub kiln: PathBuf,
    pub parallel: usize,
    pub files: usize,
    pub modes: Vec<Mode>,
    pub keep: bool,
}

/// How kiln gives each job its workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A fresh copy of the working tree per job (the default).
    Fresh,
    /// `--in-place`: every job runs in the repository itself.
    InPlace,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Fresh => "fresh",
            Mode::InPlace => "in-place",
        }
    }

    /// The aim for kiln's own cost per job, from the issue.
    pub fn aim_ms(self) -> f64 {
        match self {
            Mode::Fresh => 5.0,
            Mode::InPlace => 1.0,
        }
    }
}

/// Everything one run measured; printed as a table or written as JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub machine: Machine,
    pub kiln: String,
    pub kiln_version: String,
    pub jobs: usize,
    pub parallel: usize,
    pub repeat: usize,
    /// Files a fresh workspace copies (the workflow file included).
    pub worktree_files: usize,
    pub workflow_bytes: usize,
    pub true_baseline: Series,
    pub bash_baseline: Series,
    pub modes: Vec<ModeReport>,
    /// Where the repository was kept (`--keep`), for profiling.
    pub kept_repository: Option<PathBuf>,
}

/// Repeated measurements of one command over the N jobs.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    pub label: String,
    /// Wall time of each repeat, seconds, in the order measured.
    pub wall_s: Vec<f64>,
    /// CPU time (user + system, the process and its children) of each
    /// repeat, seconds; empty without `/proc`.
    pub cpu_s: Vec<f64>,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub jobs_per_s: f64,
    /// Median CPU time per job, milliseconds.
    pub cpu_ms_per_job: Option<f64>,
}

impl Series {
    fn new(label: &str, samples: &[(Duration, Option<Duration>)], jobs: usize) -> Series {
        let wall_s: Vec<f64> = samples.iter().map(|s| s.0.as_secs_f64()).collect();
        let cpu_s: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.1.map(|c| c.as_secs_f64()))
            .collect();
        let median_s = median(&wall_s);
        Series {
            label: label.to_owned(),
            median_s,
            min_s: wall_s.iter().copied().fold(f64::INFINITY, f64::min),
            max_s: wall_s.iter().copied().fold(0.0, f64::max),
            jobs_per_s: jobs as f64 / median_s,
            cpu_ms_per_job: (cpu_s.len() == wall_s.len() && !cpu_s.is_empty())
                .then(|| median(&cpu_s) * 1000.0 / jobs as f64),
            wall_s,
            cpu_s,
        }
    }
}

/// One workspace mode of kiln, against the baselines.
#[derive(Debug, Serialize)]
pub struct ModeReport {
    pub mode: Mode,
    pub run: Series,
    /// kiln jobs/s ÷ `/bin/true` spawns/s (= baseline wall ÷ kiln wall).
    pub ratio_to_true: f64,
    /// kiln jobs/s ÷ bash steps/s.
    pub ratio_to_bash: f64,
    /// `(kiln wall − bash wall) × P / N`, medians: see [`own_cost_ms`].
    pub own_cost_ms_per_job: f64,
    /// The same after taking kiln's fixed cost out of its wall time.
    pub own_cost_marginal_ms_per_job: f64,
    /// Wall time of the same command selecting one job: start-up, reading
    /// the workflow, listing the worktree, one job, writing the results.
    pub fixed: Series,
    pub aim_ms: f64,
    pub aim_met: bool,
    /// From the results document of the median run.
    pub breakdown: Breakdown,
}

/// Where the time of the median run went, from kiln's results document.
/// Per-job values are means over the jobs, in milliseconds, computed from
/// the nanosecond timestamps (kiln's own `duration_ms` fields are whole
/// milliseconds, too coarse for jobs this short).
#[derive(Debug, Default, Serialize)]
pub struct Breakdown {
    /// Ready until started: waiting for a free slot. With N jobs and P
    /// slots this is mostly the queue itself, about half the run, not cost.
    pub queue_wait_ms: f64,
    /// Job start until its step starts: workspace (copy or nothing), the
    /// executor's job start, the job's env.
    pub prepare_ms: f64,
    /// The workspace phase alone, as kiln reports it (whole ms, truncated).
    pub workspace_phase_ms: f64,
    /// The step: rendering, writing the script, resolving and spawning
    /// bash, waiting for it, draining its pipes, reading file commands.
    pub step_ms: f64,
    /// Step end until job end: the executor's finish, removing the job's
    /// directory.
    pub cleanup_ms: f64,
    /// Job start to job end.
    pub job_ms: f64,
    /// The step minus what the same bash command takes without kiln
    /// (bash baseline wall × P / N): kiln's cost inside the step.
    pub step_over_bash_ms: f64,
    /// Wall × P / N: how long each job holds a slot, all costs included.
    pub slot_ms_per_job: f64,
    /// Slot time per job not inside any job: kiln's start-up and exit,
    /// and slots idle between one job's end and the next one's start.
    pub outside_jobs_ms: f64,
    /// Σ job time ÷ (P × the run's own duration): how busy the slots were
    /// while the run graph was being driven.
    pub slot_occupancy: f64,
    /// The run's duration as kiln measured it (driver start to end).
    pub run_duration_ms: u64,
    /// The kiln process's wall time outside that: start-up (git, reading
    /// the workflow, listing files), writing the results, exit.
    pub outside_run_ms: f64,
}

/// kiln's own cost per job, in milliseconds: `(kiln − bash) × P / N`.
///
/// With P slots kept busy, each of the N jobs holds a slot for `wall × P /
/// N` on average; the difference between kiln's and the bash baseline's is
/// what kiln adds to each job's slot time on top of the step's process.
/// When P equals the CPU count and the machine is CPU-bound, this is also
/// about kiln's CPU time per job. It includes kiln's fixed start-up cost,
/// spread over the N jobs; `marginal` takes that out.
pub fn own_cost_ms(kiln_s: f64, bash_s: f64, jobs: usize, parallel: usize) -> f64 {
    (kiln_s - bash_s) * parallel as f64 / jobs as f64 * 1000.0
}

/// The median of `xs` (the lower middle value for an even count, so that
/// it is always one real measurement).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

/// The index of the median measurement in `xs`.
fn median_index(xs: &[f64]) -> usize {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    idx[idx.len().saturating_sub(1) / 2]
}

pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    if cfg.jobs == 0 || cfg.repeat == 0 || cfg.parallel == 0 {
        bail!("--jobs, --repeat and --parallel must be at least 1");
    }
    let machine = Machine::probe();
    let kiln_version = kiln_version(&cfg.kiln)?;
    let fixture = Fixture::create(cfg.files, cfg.jobs)?;
    let scratch = tempfile::Builder::new()
        .prefix("kiln-bench-scratch-")
        .tempdir()?;
    let true_b = Baseline::True;
    let bash_b = Baseline::bash_script(scratch.path(), fixture.root())?;
    let clock = CpuClock::new();
    let (n, p) = (cfg.jobs, cfg.parallel);
    let results_path = scratch.path().join("results.json");
    let first = fixture::job_id(0);

    // Warm-up, untimed: page cache, binaries, the dynamic loader.
    progress("warming up");
    true_b.measure(n.min(100), p)?;
    bash_b.measure(n.min(100), p)?;
    for &mode in &cfg.modes {
        run_kiln(cfg, &fixture, mode, Some(&first), &results_path, &clock)?;
    }

    let mut true_s = Vec::new();
    let mut bash_s = Vec::new();
    let mut kiln_s: Vec<Vec<(Duration, Option<Duration>)>> = vec![Vec::new(); cfg.modes.len()];
    let mut fixed_s: Vec<Vec<(Duration, Option<Duration>)>> = vec![Vec::new(); cfg.modes.len()];
    let mut docs: Vec<Vec<ResultsDocument>> = vec![Vec::new(); cfg.modes.len()];
    for r in 0..cfg.repeat {
        progress(&format!("repeat {}/{}", r + 1, cfg.repeat));
        true_s.push(timed(&clock, || true_b.measure(n, p))?);
        bash_s.push(timed(&clock, || bash_b.measure(n, p))?);
        for (m, &mode) in cfg.modes.iter().enumerate() {
            let (wall, cpu, doc) = run_kiln(cfg, &fixture, mode, None, &results_path, &clock)?;
            check(&doc, n)?;
            kiln_s[m].push((wall, cpu));
            docs[m].push(doc);
            let (wall, cpu, doc) =
                run_kiln(cfg, &fixture, mode, Some(&first), &results_path, &clock)?;
            check(&doc, 1)?;
            fixed_s[m].push((wall, cpu));
        }
    }

    let true_baseline = Series::new(true_b.label(), &true_s, n);
    let bash_baseline = Series::new(bash_b.label(), &bash_s, n);
    let modes = cfg
        .modes
        .iter()
        .enumerate()
        .map(|(m, &mode)| {
            let label = match mode {
                Mode::Fresh => "kiln exec (fresh)",
                Mode::InPlace => "kiln exec --in-place",
            };
            let run = Series::new(label, &kiln_s[m], n);
            let fixed = Series::new(&format!("{label}, 1 job"), &fixed_s[m], 1);
            let own = own_cost_ms(run.median_s, bash_baseline.median_s, n, p);
            let marginal = own_cost_ms(run.median_s - fixed.median_s, bash_baseline.median_s, n, p);
            let doc = &docs[m][median_index(&run.wall_s)];
            let breakdown = breakdown(doc, &run, &bash_baseline, n, p);
            ModeReport {
                mode,
                ratio_to_true: true_baseline.median_s / run.median_s,
                ratio_to_bash: bash_baseline.median_s / run.median_s,
                own_cost_ms_per_job: own,
                own_cost_marginal_ms_per_job: marginal,
                aim_ms: mode.aim_ms(),
                aim_met: own < mode.aim_ms(),
                run,
                fixed,
                breakdown,
            }
        })
        .collect();
    let worktree_files = fixture.worktree_files;
    let workflow_bytes = fixture.workflow_bytes;
    let kept_repository = cfg.keep.then(|| fixture.keep());
    Ok(Report {
        benchmark: "exec-throughput",
        machine,
        kiln: cfg.kiln.display().to_string(),
        kiln_version,
        jobs: n,
        parallel: p,
        repeat: cfg.repeat,
        worktree_files,
        workflow_bytes,
        true_baseline,
        bash_baseline,
        modes,
        kept_repository,
    })
}

/// Wall and CPU time of `f`.
fn timed(
    clock: &CpuClock,
    f: impl FnOnce() -> Result<Duration>,
) -> Result<(Duration, Option<Duration>)> {
    let cpu0 = clock.now();
    let wall = f()?;
    let cpu = clock.now().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    Ok((wall, cpu))
}

fn kiln_version(kiln: &Path) -> Result<String> {
    let out = Command::new(kiln)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} (build it, or pass --kiln PATH)", kiln.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs `kiln exec` once in the fixture; its wall and CPU time and the
/// results document it wrote.
fn run_kiln(
    cfg: &Config,
    fixture: &Fixture,
    mode: Mode,
    job: Option<&str>,
    results: &Path,
    clock: &CpuClock,
) -> Result<(Duration, Option<Duration>, ResultsDocument)> {
    let mut cmd = Command::new(&cfg.kiln);
    cmd.args(["exec", "--quiet", "--color", "never", "--parallel"])
        .arg(cfg.parallel.to_string())
        .arg("--json")
        .arg(results);
    if mode == Mode::InPlace {
        cmd.arg("--in-place");
    }
    if let Some(job) = job {
        cmd.args(["--job", job]);
    }
    cmd.current_dir(fixture.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let cpu0 = clock.now();
    let started = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("running {}", cfg.kiln.display()))?;
    let wall = started.elapsed();
    let cpu = clock.now().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    if !out.status.success() {
        bail!(
            "{:?} exited with {}:\n{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(results)
        .with_context(|| format!("reading {}", results.display()))?;
    let doc: ResultsDocument = serde_json::from_str(&text)
        .with_context(|| format!("parsing the results document {}", results.display()))?;
    Ok((wall, cpu, doc))
}

/// A run is only worth timing if every job ran and succeeded.
fn check(doc: &ResultsDocument, jobs: usize) -> Result<()> {
    let all: Vec<&JobResult> = doc.runs.iter().flat_map(|r| &r.jobs).collect();
    let ok = all
        .iter()
        .filter(|j| j.status == JobStatus::Success)
        .count();
    if all.len() != jobs || ok != jobs {
        bail!(
            "expected {jobs} successful jobs, the results document has {} jobs, {ok} successful",
            all.len()
        );
    }
    Ok(())
}

fn ms(from: Option<jiff::Timestamp>, to: Option<jiff::Timestamp>) -> Option<f64> {
    let (from, to) = (from?, to?);
    Some(to.duration_since(from).as_secs_f64() * 1000.0)
}

fn breakdown(
    doc: &ResultsDocument,
    run: &Series,
    bash: &Series,
    jobs: usize,
    parallel: usize,
) -> Breakdown {
    let all: Vec<&JobResult> = doc.runs.iter().flat_map(|r| &r.jobs).collect();
    let count = all.len().max(1) as f64;
    let mean = |f: &dyn Fn(&JobResult) -> Option<f64>| -> f64 {
        all.iter().filter_map(|j| f(j)).sum::<f64>() / count
    };
    let step = |j: &JobResult| j.steps.first().cloned();
    let job_ms = mean(&|j| ms(j.started_at, j.finished_at));
    let step_ms = mean(&|j| step(j).and_then(|s| ms(s.started_at, s.finished_at)));
    let run_duration_ms = doc.runs.iter().map(|r| r.duration_ms).max().unwrap_or(0);
    let slot_ms_per_job = run.median_s * 1000.0 * parallel as f64 / jobs as f64;
    Breakdown {
        queue_wait_ms: mean(&|j| ms(j.queued_at, j.started_at)),
        prepare_ms: mean(&|j| ms(j.started_at, step(j)?.started_at)),
        workspace_phase_ms: mean(&|j| {
            j.phases
                .iter()
                .find(|p| p.kind == PhaseKind::Workspace)
                .map(|p| p.duration_ms as f64)
        }),
        step_ms,
        cleanup_ms: mean(&|j| ms(step(j)?.finished_at, j.finished_at)),
        job_ms,
        step_over_bash_ms: step_ms - bash.median_s * 1000.0 * parallel as f64 / jobs as f64,
        slot_ms_per_job,
        outside_jobs_ms: slot_ms_per_job - job_ms,
        slot_occupancy: job_ms * count / (parallel as f64 * run_duration_ms.max(1) as f64),
        run_duration_ms,
        outside_run_ms: run.median_s * 1000.0 - run_duration_ms as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_a_real_measurement() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.0);
        assert_eq!(median(&[5.0]), 5.0);
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), 2);
    }

    #[test]
    fn own_cost_is_extra_slot_time_per_job() {
        // 500 jobs on 2 slots: 0.5 s more wall is 1 s more slot time, 2 ms a job.
        let c = own_cost_ms(2.5, 2.0, 500, 2);
        assert!((c - 2.0).abs() < 1e-9, "{c}");
    }
}
