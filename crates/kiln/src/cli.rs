//! Command-line interface: what each command takes and how `--help`
//! teaches it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "A self-hosted CI/CD orchestrator in one binary",
    long_about = "kiln runs the workflows in a repository's .kiln/workflows/ (GitHub Actions syntax) \
                  on this machine or on a fleet of agents.\n\n\
                  Start with `kiln validate` to check the workflow files, then `kiln exec` to run them \
                  here, exactly as an agent would.",
    after_help = "Exit codes: 0 success, 1 a job failed, 2 invalid workflow or usage, 3 cannot reach \
                  the server or the token was refused, 130 interrupted.\n\
                  Docs: docs/cli.md"
)]
pub struct Cli {
    /// When to use colour: auto (only on a terminal), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, env = "KILN_COLOR")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a CI server with local agents for the repository you are in
    #[command(
        long_about = "Start kiln: the server (API, queue, SQLite under the data directory) and local \
                      agents in one process. Run inside a git repository, it registers that \
                      repository, so `kiln trigger NAME --wait` runs its workflows at once.\n\n\
                      The admin token is written to DATA/admin.token on first start, and clients \
                      (`kiln runs`, `kiln logs`, ...) find this server through DATA/client.json.",
        after_help = "Examples:\n  kiln up\n  kiln up --agents 2 --labels gpu\n  \
                      kiln up --data /srv/kiln --listen 0.0.0.0:7171\n\nStop with Ctrl-C: running \
                      jobs finish first; Ctrl-C again stops at once."
    )]
    Up(crate::serve::args::UpArgs),

    /// Run the server alone (agents connect with `kiln agent`)
    #[command(
        after_help = "Examples:\n  kiln server --print-defaults > kiln.toml\n  \
                      kiln server --config kiln.toml\n  KILN_LISTEN=0.0.0.0:7171 kiln server"
    )]
    Server(crate::serve::args::ServerArgs),

    /// Run an agent that takes jobs from a server
    #[command(
        after_help = "Examples:\n  kiln token create --role agent > agent.token\n  \
                      kiln agent --server http://ci:7171 --token-file agent.token --labels gpu --capacity 4"
    )]
    Agent(crate::serve::args::AgentArgs),

    /// Check workflow files and explain every problem with file:line:col
    #[command(
        long_about = "Check workflow files and explain every problem with file:line:col, the source \
                      line and a hint.\n\nWith no PATH, checks .kiln/workflows/ of the repository \
                      you are in. A PATH may be a file or a directory.",
        after_help = "Examples:\n  kiln validate\n  kiln validate .github/workflows\n  \
                      kiln validate ci.yml --json\n\nExit codes: 0 valid, 2 invalid."
    )]
    Validate(ValidateArgs),

    /// Run workflows on this machine, as an agent would
    #[command(
        long_about = "Run the repository's workflows on this machine, exactly as an agent runs them: \
                      jobs in dependency order, matrices expanded, independent jobs side by side.\n\n\
                      Each job gets a fresh copy of the working tree (HEAD plus uncommitted changes, \
                      .gitignore honoured) unless --in-place is given. Ctrl-C cancels running jobs \
                      cleanly (steps with `if: always()` still run); a second Ctrl-C kills at once.",
        after_help = "Examples:\n  kiln exec                          # every workflow that runs on push\n  \
                      kiln exec --workflow ci --job test  # one job and what it needs\n  \
                      kiln exec --event workflow_dispatch --input level=3\n  \
                      kiln exec --workflows .github/workflows --json results.json\n\n\
                      Exit codes: 0 all jobs succeeded, 1 a job failed, 2 invalid workflow or usage, \
                      130 interrupted."
    )]
    Exec(ExecArgs),

    /// Check the container engine: which one kiln sees, and whether a container runs
    #[command(
        long_about = "Check the container engine that container jobs use: where kiln finds it \
                      (DOCKER_HOST, the Docker socket, or the Podman socket), its version, and \
                      whether a trivial container runs the way kiln runs job containers. Each \
                      failure comes with a fix.",
        after_help = "Examples:\n  kiln doctor\n  kiln doctor --image localhost/kiln-busybox\n\n\
                      Exit codes: 0 everything works, 1 a check failed."
    )]
    Doctor(DoctorArgs),

    #[command(flatten)]
    Client(crate::client::args::ClientCommand),
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The image of the trivial container (pulled if the engine lacks it)
    #[arg(long, value_name = "IMAGE", default_value = "busybox:latest")]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Workflow files or directories (default: .kiln/workflows)
    pub paths: Vec<PathBuf>,
    /// Print diagnostics as JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Directory holding the workflow files, relative to the repository root
    #[arg(long, value_name = "DIR", default_value = ".kiln/workflows")]
    pub workflows: PathBuf,
    /// Run only this workflow (its `name:`, file name, or file stem)
    #[arg(long, short = 'w', value_name = "NAME")]
    pub workflow: Option<String>,
    /// Run only these jobs (and the jobs they need); repeatable
    #[arg(long = "job", short = 'j', value_name = "ID")]
    pub jobs: Vec<String>,
    /// The event to simulate: push, pull_request, workflow_dispatch, schedule, comment, …
    #[arg(long, default_value = "push")]
    pub event: String,
    /// A workflow_dispatch input, checked against its declared type; repeatable
    #[arg(long = "input", value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// A flag visible to expressions as `kiln.flags.NAME` (`NAME` or `NAME=VALUE`); repeatable
    #[arg(long = "flag", value_name = "NAME[=VALUE]")]
    pub flags: Vec<String>,
    /// Capacity: sum of job weights that may run at once (default: number of CPUs)
    #[arg(long, value_name = "N")]
    pub parallel: Option<u32>,
    /// Write the results document (per job and step: status, exit code, timings) to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Run in the working tree itself instead of a fresh copy per job
    #[arg(long)]
    pub in_place: bool,
    /// Seconds between SIGTERM and SIGKILL when a step times out or is cancelled
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub kill_grace: f64,
    /// Do not print step output, only job results and the summary
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub containers: crate::serve::args::ContainerArgs,
}
