//! kiln's server: HTTP only. The REST API and agent endpoints ([`api`]),
//! tokens ([`auth`]), configuration ([`config`]) and the one table from
//! engine errors to HTTP statuses ([`error`]). The engine that drives runs
//! through the store is the `kiln-engine` crate (re-exported here under
//! its module names); the storage adapter is chosen by the caller (the
//! `kiln` binary) and passed in as `Arc<dyn Store>`.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;

pub use kiln_engine::{engine, forge, git, signals, triggers};

use engine::{Engine, EngineConfig};
use jiff::Timestamp;
use kiln_proto::api::Role;
use kiln_store::Store;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {message}")]
    Listen { addr: SocketAddr, message: String },
    #[error("{0}")]
    Startup(String),
}

/// A started server.
pub struct Server {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stop accepting, finish in-flight requests, stop the reaper.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Open the engine over `store`, recover after a restart, and serve on
/// `cfg.listen`.
pub async fn start(cfg: &config::Config, store: Arc<dyn Store>) -> Result<Server, ServerError> {
    let key = Arc::new(forge::secret::SecretKey::at(cfg.secret_key_file.clone()));
    let forges = Arc::new(forge::directory::StoreForges::new(
        store.clone(),
        key.clone(),
    ));
    let engine = Engine::with_forges(
        store,
        git::Mirrors::new(cfg.data_dir.join("mirrors")),
        EngineConfig {
            lease: cfg.lease,
            heartbeat: cfg.heartbeat,
            max_attempts: cfg.max_attempts,
            max_claim_wait: cfg.max_claim_wait,
            workflows_dir: cfg.workflows_dir.clone(),
            time_zone: cfg.time_zone.clone(),
            hook_body_limit: cfg.hook_body_limit,
            label_aliases: cfg.label_aliases.clone(),
        },
        forges,
        forge::Outbound::new(&cfg.public_url, key),
    );
    engine
        .recover()
        .await
        .map_err(|e| ServerError::Startup(format!("recovering runs: {e}")))?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| ServerError::Listen {
            addr: cfg.listen,
            message: e.to_string(),
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Startup(e.to_string()))?;
    let shutdown = CancellationToken::new();
    let app = api::router(api::AppState {
        engine: engine.clone(),
        roles: Default::default(),
    });
    tokio::spawn(engine.clone().reaper(shutdown.clone()));
    tokio::spawn(engine.clone().gatekeeper(shutdown.clone()));
    tokio::spawn(engine.clone().poller(shutdown.clone()));
    tokio::spawn(forge::report::deliver(engine.clone(), shutdown.clone()));
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(Server {
        addr,
        engine,
        shutdown,
        task,
    })
}

/// At first start (no tokens at all): create the admin token, write it to
/// `dir/admin.token` (mode 0600) and return its path. Later starts leave it.
pub async fn bootstrap_admin(
    store: &dyn Store,
    dir: &Path,
) -> Result<Option<PathBuf>, ServerError> {
    let err = |e: String| ServerError::Startup(e);
    if store.token_count().await.map_err(|e| err(e.to_string()))? > 0 {
        return Ok(None);
    }
    let path = dir.join("admin.token");
    let secret = auth::new_secret().map_err(|e| err(e.to_string()))?;
    write_secret(&path, &secret).map_err(|e| err(format!("writing {}: {e}", path.display())))?;
    store
        .add_token(
            &auth::hash(&secret),
            Role::Admin,
            Some("admin (first start)"),
            Timestamp::now(),
        )
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(Some(path))
}

/// A token of `role` written to `path` (created if missing; reused if the
/// file holds a token the store knows).
pub async fn ensure_token_file(
    store: &dyn Store,
    path: &Path,
    role: Role,
    name: &str,
) -> Result<String, ServerError> {
    let err = |e: String| ServerError::Startup(e);
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if let Ok(Some(rec)) = store.token_by_hash(&auth::hash(&existing)).await
            && rec.role == role
        {
            return Ok(existing);
        }
    }
    let secret = auth::new_secret().map_err(|e| err(e.to_string()))?;
    store
        .add_token(&auth::hash(&secret), role, Some(name), Timestamp::now())
        .await
        .map_err(|e| err(e.to_string()))?;
    write_secret(path, &secret).map_err(|e| err(format!("writing {}: {e}", path.display())))?;
    Ok(secret)
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{secret}")
}
