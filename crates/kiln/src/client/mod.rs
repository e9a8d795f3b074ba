//! The client commands (`kiln repo`, `trigger`, `runs`, `show`, `logs`,
//! `cancel`, `retry`, `agents`, `queue`, `token`): a server's REST API for
//! people (tables, colour on a terminal, relative times) and for scripts
//! (`--json` passes the server's JSON through; ids alone on stdout; exit
//! codes in `exit.rs`).
//!
//! Each command finds its server and token ([`connect`]), makes one or a
//! few calls through `kiln_client`, and prints. Errors become exit codes and
//! hints in one place ([`error`]).

pub mod args;
pub mod connect;
mod deploys;
mod error;
mod fleet;
mod logs;
mod repo;
mod runs;
mod table;
mod token;
mod trigger;

use args::{ClientCommand, ConnectArgs, RepoCommand, TokenCommand};
use connect::Endpoint;
use error::Error;
use jiff::Timestamp;
use kiln_client::Client;
use std::io::Write;
use table::Style;

/// What every command needs.
pub struct Ctx {
    pub client: Client,
    pub style: Style,
    /// The time the command started, for `3m ago`.
    pub now: Timestamp,
}

/// Run one client command; prints its errors and returns the exit code.
pub fn run(cmd: &ClientCommand, color: bool) -> i32 {
    let endpoint = match connect::resolve_from_env(connect_args(cmd)) {
        Ok(ep) => ep,
        Err(e) => return report(&Error::from(e), None),
    };
    match execute(cmd, &endpoint, color) {
        Ok(code) => code,
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => crate::exit::SUCCESS,
        Err(e) => report(&e, Some(&endpoint)),
    }
}

fn execute(cmd: &ClientCommand, endpoint: &Endpoint, color: bool) -> Result<i32, Error> {
    let ctx = Ctx {
        client: Client::new(&endpoint.server, &endpoint.token)?,
        style: Style { color },
        now: Timestamp::now(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cmd {
            ClientCommand::Repo(RepoCommand::Add(a)) => repo::add(&ctx, a).await,
            ClientCommand::Repo(RepoCommand::List(a)) => repo::list(&ctx, a).await,
            ClientCommand::Repo(RepoCommand::Forge(a)) => repo::forge(&ctx, a).await,
            ClientCommand::Trigger(a) => trigger::trigger(&ctx, a).await,
            ClientCommand::Runs(a) => runs::list(&ctx, a).await,
            ClientCommand::Show(a) => runs::show(&ctx, a).await,
            ClientCommand::Logs(a) => logs::logs(&ctx, a).await,
            ClientCommand::Cancel(a) => runs::cancel(&ctx, a).await,
            ClientCommand::Retry(a) => runs::retry(&ctx, a).await,
            ClientCommand::Deploy(a) => deploys::deploy(&ctx, a).await,
            ClientCommand::Envs(a) => deploys::envs(&ctx, a).await,
            ClientCommand::Approve(a) => {
                deploys::approve(&ctx, a.run, a.job.clone(), false, a.json).await
            }
            ClientCommand::Reject(a) => {
                deploys::approve(&ctx, a.run, Some(a.job.clone()), true, a.json).await
            }
            ClientCommand::Agents(a) => fleet::agents(&ctx, a).await,
            ClientCommand::Queue(a) => fleet::queue(&ctx, a).await,
            ClientCommand::Token(TokenCommand::Create(a)) => token::create(&ctx, a).await,
        }
    })
}

fn connect_args(cmd: &ClientCommand) -> &ConnectArgs {
    match cmd {
        ClientCommand::Repo(RepoCommand::Add(a)) => &a.connect,
        ClientCommand::Repo(RepoCommand::List(a)) => &a.connect,
        ClientCommand::Repo(RepoCommand::Forge(a)) => &a.connect,
        ClientCommand::Trigger(a) => &a.connect,
        ClientCommand::Runs(a) => &a.connect,
        ClientCommand::Show(a) => &a.connect,
        ClientCommand::Logs(a) => &a.connect,
        ClientCommand::Cancel(a) => &a.connect,
        ClientCommand::Retry(a) => &a.connect,
        ClientCommand::Deploy(a) => &a.connect,
        ClientCommand::Envs(a) => &a.connect,
        ClientCommand::Approve(a) => &a.connect,
        ClientCommand::Reject(a) => &a.connect,
        ClientCommand::Agents(a) => &a.connect,
        ClientCommand::Queue(a) => &a.connect,
        ClientCommand::Token(TokenCommand::Create(a)) => &a.connect,
    }
}

fn report(e: &Error, endpoint: Option<&Endpoint>) -> i32 {
    eprintln!("error: {e}");
    if let Some(hint) = e.hint(endpoint) {
        eprintln!("hint: {hint}");
    }
    e.exit_code()
}

/// Write to stdout; a closed pipe (`kiln runs | head`) ends the command
/// quietly (see [`run`]).
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The server's JSON, pretty, as `--json` prints it.
pub fn print_json(json: &serde_json::Value) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(json).map_err(std::io::Error::from)?;
    print(&(text + "\n"))
}
