//! `kiln up`, `kiln server` and `kiln agent`: composing the server (over the
//! SQLite store) and agents into processes. This is where the storage
//! adapter and the executor are chosen.

use crate::error::CliError;
use kiln_server::config::{Config, RawConfig};
use kiln_store::Store;
use kiln_store::sqlite::SqliteStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub mod args;
mod up;

pub use up::{run_agent, run_server, run_up};

/// The platform data directory for kiln (`~/.local/share/kiln` on Linux).
pub fn platform_data_dir() -> PathBuf {
    crate::client::connect::data_dir(&|k| std::env::var(k).ok())
}

/// Configuration from an optional file, the environment and flags (flags win).
pub fn load_config(file: Option<&Path>, flags: RawConfig) -> Result<Config, CliError> {
    let from_file = match file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::Usage(format!("cannot read config {}: {e}", p.display())))?;
            RawConfig::parse(&p.display().to_string(), &text)
                .map_err(|e| CliError::Usage(e.to_string()))?
        }
        None => RawConfig::default(),
    };
    let env = RawConfig::from_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    from_file
        .merge(env)
        .merge(flags)
        .resolve(crate::client::connect::data_dir(&|_| None))
        .map_err(|e| CliError::Usage(format!("configuration: {e}")))
}

pub async fn open_store(data: &Path) -> Result<Arc<dyn Store>, CliError> {
    std::fs::create_dir_all(data).map_err(|e| {
        CliError::Usage(format!(
            "cannot create data directory {}: {e}",
            data.display()
        ))
    })?;
    let db = data.join("kiln.db");
    let store = SqliteStore::open(&db)
        .await
        .map_err(|e| CliError::Usage(format!("cannot open the database {}: {e}", db.display())))?;
    Ok(Arc::new(store))
}

/// Logs for humans on stderr; `KILN_LOG` (or `RUST_LOG`) sets the filter.
pub fn init_tracing(default: &str) {
    let filter = std::env::var("KILN_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Default labels of an agent on this machine: `self-hosted`, the OS and
/// the architecture (`linux`, `x64`), as GitHub's self-hosted runners have.
pub fn default_labels() -> Vec<String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    vec![
        "self-hosted".into(),
        std::env::consts::OS.into(),
        arch.into(),
    ]
}

pub fn agent_config(
    server: String,
    token: String,
    name: String,
    labels: Vec<String>,
    capacity: u32,
    work_dir: PathBuf,
    exec: kiln_exec::config::ExecConfig,
) -> kiln_agent::AgentConfig {
    kiln_agent::AgentConfig {
        server,
        token,
        name,
        labels,
        capacity,
        work_dir,
        kill_grace: Duration::from_secs(10),
        claim_wait: Duration::from_secs(25),
        exec,
    }
}

/// Run `fut` until it ends or a stop signal; on a signal cancel `token`
/// and wait for `fut` to wind down.
pub async fn until_stopped<F: std::future::Future>(token: CancellationToken, fut: F) -> F::Output {
    tokio::pin!(fut);
    tokio::select! {
        out = &mut fut => out,
        _ = stop_signal() => {
            token.cancel();
            fut.await
        }
    }
}
