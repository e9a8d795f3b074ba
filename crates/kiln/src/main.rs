//! The `kiln` binary: the composition root. It parses the command line,
//! picks the implementations, and maps errors to exit codes (`exit.rs`).

mod cli;
mod client;
mod cmd;
mod error;
mod exec;
mod exit;
mod repo;
mod serve;
mod workflows;

use clap::Parser;
use cli::{Cli, ColorChoice, Command};
use std::io::IsTerminal;

fn main() {
    let cli = Cli::parse();
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let result = match &cli.command {
        Command::Validate(args) => cmd::validate::run(args, color),
        Command::Exec(args) => exec::run(args, color),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Client(cmd) => Ok(client::run(cmd, color)),
        Command::Up(args) => serve::run_up(args),
        Command::Server(args) => serve::run_server(args),
        Command::Agent(args) => serve::run_agent(args),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
