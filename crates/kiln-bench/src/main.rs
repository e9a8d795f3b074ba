//! kiln-bench: benchmarks of the `kiln` binary that anyone can rerun.
//!
//! Machines are noisy, so no number stands alone: every benchmark measures a
//! baseline in the same run, on the same machine, interleaved with what it
//! benchmarks, and reports ratios to it. The numbers of a reference run, the
//! machine, and what each number means are in `docs/benchmarks.md`.
//! Nothing here is a test: tests never assert on timing.

mod agent_loss;
mod baseline;
mod cluster;
mod dispatch;
mod fixture;
mod http;
mod machine;
mod memory;
mod server_throughput;
mod stats;
mod throughput;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;
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
    /// Trigger accepted → the first step's process started, warm agent
    #[command(
        long_about = "Starts `kiln server` and one `kiln agent` on loopback (temporary data \
                      directory, free port) and triggers a one-job, one-step workflow --runs \
                      times on the branch and as many times pinning the commit, interleaved \
                      with the baselines: spawn+wait /bin/true, and spawn of the bash command \
                      kiln runs for the step → its first command. The step's first command \
                      writes bash's $EPOCHREALTIME; \"accepted\" is when the trigger's HTTP \
                      answer was read. Reports p50/p90/p99/max, ratios, and where the time went.",
        after_help = "Example:\n  target/release/kiln-bench server-dispatch --runs 200"
    )]
    ServerDispatch(DispatchArgs),
    /// Jobs/s: one run of N `true` jobs, and M one-job runs, one agent
    ServerThroughput(ServerThroughputArgs),
    /// RSS of the server idle and with 10,000 queued jobs, of an idle agent
    ServerMemory(MemoryArgs),
    /// SIGKILL of an agent mid-job → the job running again on another agent
    AgentLoss(AgentLossArgs),
    /// All four server benchmarks, one after the other
    ServerAll(ServerAllArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// The kiln binary (default: `kiln` next to this program)
    #[arg(long, value_name = "PATH")]
    kiln: Option<PathBuf>,
    /// Also write the report as JSON to FILE (`-`: stdout, instead of the table)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DispatchArgs {
    /// Runs per variant (branch, pinned commit)
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Untimed runs first
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Pause after a run ended, so that the agent is long-polling again
    #[arg(long, default_value_t = 100, value_name = "MS")]
    settle_ms: u64,
    /// The agent's capacity (default: number of CPUs, as `kiln agent`)
    #[arg(long, value_name = "N")]
    capacity: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ServerThroughputArgs {
    /// Jobs in the one big run
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// Separately triggered one-job runs
    #[arg(long, default_value_t = 500)]
    runs: usize,
    /// Jobs of the one run queued before its agent starts (0: skip that shape)
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    queued_jobs: usize,
    /// Times each shape is measured; medians are reported
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Clients triggering the one-job runs at the same time
    #[arg(long, default_value_t = 4, value_name = "N")]
    trigger_threads: usize,
    /// How often the benchmark asks whether the runs have ended (the end
    /// itself is the server's `finished_at`)
    #[arg(long, default_value_t = 100, value_name = "MS")]
    poll_ms: u64,
    /// The agent's capacity and the baselines' parallelism (default: CPUs)
    #[arg(long, value_name = "N")]
    capacity: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct MemoryArgs {
    /// Jobs per queued run
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// Queued runs (jobs × runs jobs queued)
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Wait before reading an idle process's RSS
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    settle_ms: u64,
    /// The agent's capacity (default: CPUs)
    #[arg(long, value_name = "N")]
    capacity: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct AgentLossArgs {
    /// The server's lease, seconds (heartbeat: a quarter of it)
    #[arg(long, default_value_t = 3.0, value_name = "S")]
    lease: f64,
    /// Agents killed, one per run
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ServerAllArgs {
    /// Runs per dispatch variant
    #[arg(long, default_value_t = 200)]
    dispatch_runs: usize,
    /// Repeats of each throughput shape
    #[arg(long, default_value_t = 3)]
    throughput_repeat: usize,
    /// Agent kills
    #[arg(long, default_value_t = 5)]
    loss_repeat: usize,
    #[command(flatten)]
    common: Common,
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
        Cmd::ServerDispatch(a) => {
            let cfg = dispatch_config(&a.common, a.runs, a.warmup, a.settle_ms, a.capacity);
            let r = dispatch::run(&cfg, &mut progress)?;
            emit(&a.common, &r, dispatch::table(&r))
        }
        Cmd::ServerThroughput(a) => {
            let cfg = server_throughput::Config {
                kiln: kiln_path(a.common.kiln.clone()),
                jobs: a.jobs,
                runs: a.runs,
                queued_jobs: a.queued_jobs,
                capacity: a.capacity.unwrap_or_else(cpus),
                repeat: a.repeat,
                trigger_threads: a.trigger_threads,
                poll: Duration::from_millis(a.poll_ms),
            };
            let r = server_throughput::run(&cfg, &mut progress)?;
            emit(&a.common, &r, server_throughput::table(&r))
        }
        Cmd::ServerMemory(a) => {
            let cfg = memory::Config {
                kiln: kiln_path(a.common.kiln.clone()),
                jobs: a.jobs,
                runs: a.runs,
                capacity: a.capacity.unwrap_or_else(cpus),
                settle: Duration::from_millis(a.settle_ms),
            };
            let r = memory::run(&cfg, &mut progress)?;
            emit(&a.common, &r, memory::table(&r))
        }
        Cmd::AgentLoss(a) => {
            let cfg = agent_loss::Config {
                kiln: kiln_path(a.common.kiln.clone()),
                lease: a.lease,
                repeat: a.repeat,
            };
            let r = agent_loss::run(&cfg, &mut progress)?;
            emit(&a.common, &r, agent_loss::table(&r))
        }
        Cmd::ServerAll(a) => server_all(a),
    }
}

fn progress(msg: &str) {
    eprintln!("kiln-bench: {msg}");
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn kiln_path(given: Option<PathBuf>) -> PathBuf {
    match given {
        Some(k) => k,
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("kiln")))
            .filter(|k| k.is_file())
            .unwrap_or_else(|| PathBuf::from("kiln")),
    }
}

fn dispatch_config(
    c: &Common,
    runs: usize,
    warmup: usize,
    settle_ms: u64,
    capacity: Option<usize>,
) -> dispatch::Config {
    dispatch::Config {
        kiln: kiln_path(c.kiln.clone()),
        runs,
        warmup,
        capacity: capacity.unwrap_or_else(cpus),
        settle: Duration::from_millis(settle_ms),
    }
}

/// Prints the table, or writes JSON where asked.
fn emit(c: &Common, report: &impl serde::Serialize, table: String) -> Result<()> {
    let json = serde_json::to_string_pretty(report)? + "\n";
    match &c.json {
        Some(p) if p.as_os_str() == "-" => {
            std::io::stdout().write_all(json.as_bytes())?;
            return Ok(());
        }
        Some(p) => std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?,
        None => {}
    }
    print!("{table}");
    Ok(())
}

fn server_all(a: ServerAllArgs) -> Result<()> {
    let kiln = kiln_path(a.common.kiln.clone());
    let d = dispatch::run(
        &dispatch_config(&a.common, a.dispatch_runs, 10, 100, None),
        &mut progress,
    )?;
    println!("{}", dispatch::table(&d));
    let t = server_throughput::run(
        &server_throughput::Config {
            kiln: kiln.clone(),
            jobs: 1000,
            runs: 500,
            queued_jobs: 10_000,
            capacity: cpus(),
            repeat: a.throughput_repeat,
            trigger_threads: 4,
            poll: Duration::from_millis(100),
        },
        &mut progress,
    )?;
    println!("{}", server_throughput::table(&t));
    let m = memory::run(
        &memory::Config {
            kiln: kiln.clone(),
            jobs: 1000,
            runs: 10,
            capacity: cpus(),
            settle: Duration::from_secs(1),
        },
        &mut progress,
    )?;
    println!("{}", memory::table(&m));
    let l = agent_loss::run(
        &agent_loss::Config {
            kiln,
            lease: 3.0,
            repeat: a.loss_repeat,
        },
        &mut progress,
    )?;
    print!("{}", agent_loss::table(&l));
    if let Some(p) = &a.common.json {
        let all = serde_json::json!({
            "server-dispatch": d,
            "server-throughput": t,
            "server-memory": m,
            "agent-loss": l,
        });
        let text = serde_json::to_string_pretty(&all)? + "\n";
        if p.as_os_str() == "-" {
            std::io::stdout().write_all(text.as_bytes())?;
        } else {
            std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
        }
    }
    Ok(())
}

fn exec_throughput(args: ExecThroughputArgs) -> Result<()> {
    let kiln = kiln_path(args.kiln);
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
