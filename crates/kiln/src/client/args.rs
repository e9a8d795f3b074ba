//! The client commands' arguments and help. Flattened into the top-level
//! command list by `cli.rs`, so each is a `kiln` subcommand of its own.

use clap::{Args, Subcommand};
use kiln_model::RunId;
use kiln_proto::api::Role;
use std::path::PathBuf;

const CONNECT_HELP: &str = "The server and token come from --server/--token/--token-file, then \
    KILN_SERVER/KILN_TOKEN, then the file `kiln up` writes (<data dir>/client.json; data dir: \
    KILN_DATA or ~/.local/share/kiln).";

const EXIT_HELP: &str = "Exit codes: 0 ok, 2 bad input or unknown name/id, 3 cannot reach the \
    server or the token was refused.";

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Add or list the repositories a server builds
    #[command(subcommand)]
    Repo(RepoCommand),

    /// Start runs of a repository's workflows on the server
    #[command(
        long_about = "Start runs of a repository's workflows on the server: one run per workflow \
                      that runs on the event (or only --workflow). Prints the id of each run, one \
                      a line, so scripts can capture them.\n\n\
                      With --wait, follows the logs of every run until they finish.",
        after_help = format!("Examples:\n  kiln trigger web\n  \
                      kiln trigger web --ref release/2.0 --workflow ci\n  \
                      kiln trigger web --commit 4f2a9c1 --event workflow_dispatch --input level=3\n  \
                      RUN=$(kiln trigger web --workflow deploy)\n  \
                      kiln trigger web --wait && echo green\n\n\
                      {CONNECT_HELP}\n\n\
                      Exit codes: 0 ok (with --wait: every run succeeded), 1 a run did not succeed \
                      (--wait), 2 bad input or unknown repository, 3 cannot reach the server or \
                      the token was refused.")
    )]
    Trigger(TriggerArgs),

    /// List recent runs, newest first
    #[command(after_help = format!(
        "Examples:\n  kiln runs\n  kiln runs --repo web --limit 5\n  \
                            kiln runs --json | jq '.[] | select(.status == \"failure\") | .id'\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Runs(RunsArgs),

    /// Show a run: its status, why it failed, and its jobs
    #[command(after_help = format!(
        "Examples:\n  kiln show 42\n  kiln show 42 --json\n  kiln show 42 --results > results.json\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Show(ShowArgs),

    /// Print a run's output, or follow it live with -f
    #[command(
        long_about = "Print a run's output as `[job] line`; stderr lines are dimmed on a terminal. \
                      With -f, keeps following until the run finishes.",
        after_help = format!(
            "Examples:\n  kiln logs 42\n  kiln logs 42 --job test -f\n  \
             kiln logs 42 --json > logs.json\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
        )
    )]
    Logs(LogsArgs),

    /// Cancel a run: running jobs are stopped, queued ones never start
    #[command(after_help = format!(
        "Examples:\n  kiln cancel 42\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Cancel(CancelArgs),

    /// Run a finished run again at the same commit; prints the new run's id
    #[command(after_help = format!(
        "Examples:\n  kiln retry 42\n  kiln retry 42 --failed-only\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Retry(RetryArgs),

    /// Deploy a commit to an environment: runs the jobs that deploy there
    #[command(
        long_about = "Run, at COMMIT, the jobs of every workflow that deploy to ENV (`environment: ENV`) \
                      and the jobs they need, with `github.event_name == 'deploy'`. Deploys of one \
                      environment run one at a time, and a commit older than the one the environment \
                      runs is refused as stale unless --force (how a person rolls back). Prints the \
                      new runs' ids. See docs/deploys.md.",
        after_help = format!(
            "Examples:\n  kiln deploy web production --commit 3f2a9c1\n  \
             kiln deploy web production --commit v1.4.0 --force\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
        )
    )]
    Deploy(DeployArgs),

    /// Show each environment's current commit, who deployed it and its history
    #[command(after_help = format!(
        "Examples:\n  kiln envs web\n  kiln envs web --json\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Envs(EnvsArgs),

    /// Approve a deploy job waiting for approval (or a run held for a fork's pull request)
    #[command(after_help = format!(
        "Examples:\n  kiln approve 42 deploy\n  kiln approve 42   # a fork's pull request\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Approve(ApproveArgs),

    /// Reject a deploy job waiting for approval: it ends as cancelled
    #[command(after_help = format!(
        "Examples:\n  kiln reject 42 deploy\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Reject(RejectArgs),

    /// List the agents, their labels and how busy they are
    #[command(after_help = format!(
        "Examples:\n  kiln agents\n  kiln agents --json\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Agents(ListArgs),

    /// List the jobs waiting for an agent
    #[command(after_help = format!(
        "Examples:\n  kiln queue\n  kiln queue --json\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Queue(ListArgs),

    /// Create API tokens
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Where the server is and which token to show it.
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Server")]
pub struct ConnectArgs {
    /// The server's URL [default: $KILN_SERVER, then the server `kiln up` started]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// An API token [default: $KILN_TOKEN, then the token `kiln up` wrote];
    /// prefer --token-file or KILN_TOKEN: arguments are visible to other users
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Read the API token from FILE
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Register a git repository with the server under NAME
    #[command(after_help = format!(
        "Examples:\n  kiln repo add web https://git.example.com/web.git\n  \
         kiln repo add tools file:///srv/git/tools.git --priority -10\n  kiln repo add scratch ~/src/scratch\n  \
         kiln repo add web https://git.example.com/web.git --poll-interval 300 \\\n      \
         --webhook-secret-file /etc/kiln/web.secret --allow alice --allow bob\n\n\
         kiln repo add web https://github.com/octo/web.git --forge github --forge-token-env GITHUB_TOKEN\n\n\
         {CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Add(RepoAddArgs),
    /// List the repositories the server knows
    #[command(after_help = format!(
        "Examples:\n  kiln repo list\n  kiln repo list --json\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    List(ListArgs),
    /// Set or remove the forge a repository reports to (commit statuses, PR comments)
    #[command(after_help = format!(
        "Examples:\n  kiln repo forge web --forge github --forge-token-env GITHUB_TOKEN\n  \
         kiln repo forge tools --forge gitlab --forge-url https://gitlab.example.com/api/v4 \\\n    \
         --forge-repo infra/tools --forge-token-file /run/secrets/gitlab\n  \
         kiln repo forge web --remove\n\n\
         The token is stored encrypted on the server and never shown again.\n\n\
         {CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Forge(RepoForgeArgs),
}

/// Where a repository's forge is and how to reach it.
#[derive(Debug, Args)]
pub struct ForgeArgs {
    /// The forge hosting the repository: github, gitea, forgejo or gitlab
    #[arg(long, value_name = "KIND")]
    pub forge: Option<String>,
    /// The forge's API root (default: from the repository URL: https://api.github.com, \
    /// https://HOST/api/v1 for Gitea/Forgejo, https://HOST/api/v4 for GitLab)
    #[arg(long, value_name = "URL", requires = "forge")]
    pub forge_url: Option<String>,
    /// The repository's full name on the forge (default: the repository URL's path)
    #[arg(long, value_name = "OWNER/NAME", requires = "forge")]
    pub forge_repo: Option<String>,
    /// Read the forge API token from this environment variable
    #[arg(
        long = "forge-token-env",
        value_name = "VAR",
        requires = "forge",
        conflicts_with = "forge_token_file"
    )]
    pub forge_token_env: Option<String>,
    /// Read the forge API token from this file (--token-file is kiln's own token)
    #[arg(long = "forge-token-file", value_name = "PATH", requires = "forge")]
    pub forge_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RepoForgeArgs {
    /// The repository's name in kiln
    pub name: String,
    #[command(flatten)]
    pub forge: ForgeArgs,
    /// Remove the repository's forge (no more statuses or comments)
    #[arg(long, conflicts_with = "forge")]
    pub remove: bool,
    /// Print the server's answer as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct RepoAddArgs {
    /// A short name, used in `kiln trigger NAME` and `kiln runs --repo NAME`
    pub name: String,
    /// Any git URL the server can fetch: https://, ssh, git://, file://, or a path on the server
    pub url: String,
    /// Seconds between polls of the remote for new commits (default 60; 0 turns polling off)
    #[arg(long, value_name = "SECS")]
    pub poll_interval: Option<u32>,
    /// A file holding the secret webhooks are signed with (or set KILN_WEBHOOK_SECRET)
    #[arg(long, value_name = "PATH")]
    pub webhook_secret_file: Option<std::path::PathBuf>,
    /// Run pull requests from forks without waiting for a maintainer's approval
    #[arg(long)]
    pub no_fork_approval: bool,
    /// A login allowed to run comment commands such as `!testme` (repeatable; default: anyone with write access on the forge)
    #[arg(long = "allow", value_name = "USER")]
    pub allow: Vec<String>,
    /// Do not answer a refused comment command with a reply
    #[arg(long)]
    pub no_outsider_reply: bool,
    /// The priority of the repository's jobs unless their workflow or job sets `priority:` (-1000 to 1000, higher first; default 0)
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1000..=1000))]
    pub priority: Option<i32>,
    #[command(flatten)]
    pub forge: ForgeArgs,
    /// Print the server's answer as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// A listing: a table, or the server's JSON.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the server's JSON instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The repository's name on the server (see `kiln repo list`)
    pub repo: String,
    /// A branch or tag to build [default: the remote's HEAD]
    #[arg(long = "ref", value_name = "REF", conflicts_with = "commit")]
    pub git_ref: Option<String>,
    /// A commit to build instead of resolving a ref
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Run only this workflow (its `name:`, file name, or file stem)
    #[arg(long, short = 'w', value_name = "NAME")]
    pub workflow: Option<String>,
    /// The event: push, pull_request, workflow_dispatch, schedule, … [default: push]
    #[arg(long, value_name = "EVENT")]
    pub event: Option<String>,
    /// A workflow_dispatch input; repeatable
    #[arg(long = "input", value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// A flag visible to expressions as `kiln.flags.NAME`; repeatable
    #[arg(long = "flag", value_name = "NAME[=VALUE]")]
    pub flags: Vec<String>,
    /// Follow the logs until every run finishes; exit 1 unless all succeeded
    #[arg(long)]
    pub wait: bool,
    /// Print the server's answer as JSON (with --wait, logs then go to stderr)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this repository
    #[arg(long, value_name = "NAME")]
    pub repo: Option<String>,
    /// At most N runs
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
    pub limit: u32,
    /// Print the server's JSON instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run's id (see `kiln runs`)
    pub run: RunId,
    /// Print the server's JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Print the run's results document (per job and attempt: steps, agent, phase timings) as JSON
    #[arg(long)]
    pub results: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run's id (see `kiln runs`)
    pub run: RunId,
    /// Only this job: its key under `jobs:`, its display name, or its id (see `kiln show`)
    #[arg(long, short = 'j', value_name = "JOB")]
    pub job: Option<String>,
    /// Keep following the output until the run finishes
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Print the stored entries as the server's JSON (not with -f)
    #[arg(long, conflicts_with = "follow")]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run's id
    pub run: RunId,
    /// Print the server's answer as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The repository's name
    pub repo: String,
    /// The environment (`environment:` of the deploy jobs)
    pub env: String,
    /// The commit, branch or tag to deploy
    #[arg(long, value_name = "SHA")]
    pub commit: String,
    /// Deploy even if the environment runs a newer commit (a manual rollback)
    #[arg(long)]
    pub force: bool,
    /// Print the server's answer as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct EnvsArgs {
    /// The repository's name
    pub repo: String,
    /// Print the server's answer as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The run's id
    pub run: RunId,
    /// The job key under `jobs:` (leave out for a run held for a fork's pull request)
    pub job: Option<String>,
    /// Print the server's answer as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The run's id
    pub run: RunId,
    /// The job key under `jobs:`
    pub job: String,
    /// Print the server's answer as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The run's id
    pub run: RunId,
    /// Rerun only the jobs that did not succeed (and the jobs that need them)
    #[arg(long)]
    pub failed_only: bool,
    /// Print the server's answer as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints only the token, so scripts can capture it
    #[command(after_help = format!(
        "Roles: admin (everything, tokens included), maintainer (repositories, runs), viewer \
         (read only), agent (for `kiln agent`: the agent protocol only).\n\n\
         Examples:\n  kiln token create --role viewer --name dashboard\n  \
         kiln token create --role agent --name build-01 > agent.token\n  \
         export KILN_TOKEN=$(kiln token create --role maintainer)\n\n\
         The token is shown once; the server keeps only its hash.\n\n{CONNECT_HELP}\n\n{EXIT_HELP}"
    ))]
    Create(TokenCreateArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token may do: admin, maintainer, viewer, or agent
    #[arg(long, value_name = "ROLE", value_parser = |s: &str| s.parse::<Role>())]
    pub role: Role,
    /// A name to recognise the token by
    #[arg(long)]
    pub name: Option<String>,
    /// Print the server's answer (token, role, name) as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}
