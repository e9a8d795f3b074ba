//! kiln-bench: benchmarks of the `kiln` binary that anyone can rerun.
//!
//! Machines are noisy, so no number stands alone: every benchmark measures a
//! baseline in the same run, on the same machine, interleaved with what it
//! benchmarks, and reports ratios to it. The numbers of a reference run, the
//! machine, and what each number means are in `docs/benchmarks.md`.
//! Nothing here is a test: tests never assert on timing.

mod baseline;
mod fixture;
mod machine;
mod throughput;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write as _;
use std::path::PathBuf;
use throughput::{Config, Mode, Report};

#[derive(Debug, Parser)]
#[command(
    name = "kiln-bench",
    about = "Benchmarks of the kiln binary, against baselines measured in the same run",
    after_help = "Docs: docs/benchmarks.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// `kiln exec` of N independent one-step jobs, against raw process spawns
    #[command(
        long_about = "Generates a small git repository with a workflow of N independent jobs, each \
                      one `run: \"true\"` step, and measures, interleaved and --repeat times: \
                      spawning /bin/true N times P at a time from Rust; the same for the bash \
                      command kiln runs per step; `kiln exec --quiet --parallel P` with fresh \
                      workspaces and with --in-place; and each of those with one job selected \
                      (kiln's fixed cost). Reports medians, jobs/s, ratios to the baselines, \
                      kiln's own cost per job, and where each job's time went.",
        after_help = "Examples:\n  \
                      cargo build --release -p kiln -p kiln-bench\n  \
                      target/release/kiln-bench exec-throughput\n  \
                      target/release/kiln-bench exec-throughput --jobs 200 --mode in-place --json -"
    )]
    ExecThroughput(ExecThroughputArgs),
}

#[derive(Debug, Args)]
struct ExecThroughputArgs {
    /// Jobs in the generated workflow
    #[arg(long, default_value_t = 500)]
    jobs: usize,
    /// Times each measurement is repeated; medians are reported
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// The kiln binary (default: `kiln` next to this program)
    #[arg(long, value_name = "PATH")]
    kiln: Option<PathBuf>,
    /// Jobs (and baseline processes) at a time (default: number of CPUs, as kiln)
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// Small files committed in the generated repository
    #[arg(long, default_value_t = 20)]
    files: usize,
    /// Which workspace modes to run
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    mode: ModeArg,
    /// Also write the report as JSON to FILE (`-`: stdout, instead of the table)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Keep the generated repository and print its path (to profile kiln in it)
    #[arg(long)]
    keep: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Both,
    Fresh,
    InPlace,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::ExecThroughput(args) => exec_throughput(args),
    }
}

fn exec_throughput(args: ExecThroughputArgs) -> Result<()> {
    let kiln = match args.kiln {
        Some(k) => k,
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("kiln")))
            .filter(|k| k.is_file())
            .unwrap_or_else(|| PathBuf::from("kiln")),
    };
    let cfg = Config {
        jobs: args.jobs,
        repeat: args.repeat,
        kiln,
        parallel: args
            .parallel
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        files: args.files,
        modes: match args.mode {
            ModeArg::Both => vec![Mode::Fresh, Mode::InPlace],
            ModeArg::Fresh => vec![Mode::Fresh],
            ModeArg::InPlace => vec![Mode::InPlace],
        },
        keep: args.keep,
    };
    let report = throughput::run(&cfg, &mut |msg| eprintln!("kiln-bench: {msg}"))?;
    let json = serde_json::to_string_pretty(&report)? + "\n";
    match &args.json {
        Some(p) if p.as_os_str() == "-" => {
            std::io::stdout().write_all(json.as_bytes())?;
            return Ok(());
        }
        Some(p) => std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?,
        None => {}
    }
    print!("{}", table(&report));
    Ok(())
}

/// The human-readable report.
fn table(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!(
        "exec-throughput: {} jobs of one `run: \"true\"` step, parallel {}, median of {}, \
         repository of {} files",
        r.jobs, r.parallel, r.repeat, r.worktree_files
    ));
    line(format!("machine: {}", r.machine.describe()));
    line(format!("kiln: {} ({})", r.kiln, r.kiln_version));
    line(String::new());
    line(format!(
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>10}",
        "", "median s", "min s", "max s", "jobs/s", "vs true", "vs bash", "CPU ms/job"
    ));
    let row = |name: &str, x: &throughput::Series, vs_true: f64, vs_bash: f64| {
        format!(
            "{:<24} {:>9.3} {:>9.3} {:>9.3} {:>9.0} {:>10.3} {:>9.3} {:>10}",
            name,
            x.median_s,
            x.min_s,
            x.max_s,
            x.jobs_per_s,
            vs_true,
            vs_bash,
            x.cpu_ms_per_job.map_or("?".into(), |c| format!("{c:.2}"))
        )
    };
    let t = r.true_baseline.median_s;
    let b = r.bash_baseline.median_s;
    line(row(&r.true_baseline.label, &r.true_baseline, 1.0, b / t));
    line(row(&r.bash_baseline.label, &r.bash_baseline, t / b, 1.0));
    for m in &r.modes {
        line(row(&m.run.label, &m.run, m.ratio_to_true, m.ratio_to_bash));
    }
    line(String::new());
    line("kiln's own cost per job = (kiln wall - bash wall) x P / N:".into());
    for m in &r.modes {
        line(format!(
            "  {:<9} {:>6.2} ms  ({:.2} ms without the fixed {:.0} ms of a 1-job run)  \
             aim < {} ms: {}",
            m.mode.name(),
            m.own_cost_ms_per_job,
            m.own_cost_marginal_ms_per_job,
            m.fixed.median_s * 1000.0,
            m.aim_ms,
            if m.aim_met { "met" } else { "NOT met" }
        ));
    }
    line(String::new());
    line("per job, means in ms (median run, from kiln's results document):".into());
    line(format!(
        "  {:<9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7} {:>9}",
        "",
        "queue",
        "prepare",
        "(ws)",
        "step",
        "cleanup",
        "job",
        "step-bash",
        "slot",
        "outside",
        "occupancy"
    ));
    for m in &r.modes {
        let x = &m.breakdown;
        line(format!(
            "  {:<9} {:>7.1} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>9.3} {:>7.3} {:>7.3} {:>8.0}%",
            m.mode.name(),
            x.queue_wait_ms,
            x.prepare_ms,
            x.workspace_phase_ms,
            x.step_ms,
            x.cleanup_ms,
            x.job_ms,
            x.step_over_bash_ms,
            x.slot_ms_per_job,
            x.outside_jobs_ms,
            x.slot_occupancy * 100.0
        ));
    }
    for m in &r.modes {
        line(format!(
            "  {}: kiln process {:.0} ms, of which driving the run graph {} ms, \
             start-up and exit {:.0} ms",
            m.mode.name(),
            m.run.median_s * 1000.0,
            m.breakdown.run_duration_ms,
            m.breakdown.outside_run_ms
        ));
    }
    if let Some(p) = &r.kept_repository {
        line(format!("repository kept at {}", p.display()));
    }
    s
}
