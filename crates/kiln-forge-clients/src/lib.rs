//! The forges kiln talks to: which forge API (if any) serves a repository.
//!
//! The engine asks a [`ForgeDirectory`] for a repository's forge when it
//! needs one (a comment command's permission check, a reply, a commit
//! status). A repository without a configured forge gets `None`: kiln then
//! works from git alone (polling, no statuses).
//!
//! - [`http`], [`github`], [`gitea`], [`gitlab`]: the HTTP adapters of
//!   [`ForgeApi`];
//! - [`secret`]: forge tokens sealed at rest;
//! - [`directory`]: [`StoreForges`](directory::StoreForges), the directory
//!   over the store's settings;
//!
//! What kiln tells forges (commit statuses, the pull request comment) is
//! decided and delivered by the engine (`kiln_engine::forge::{status,
//! report}`) through these adapters.
//!
//! Design note: `docs/design/forge-api.md`.

pub mod directory;
pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod secret;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use kiln_forge::api::ForgeApi;
use kiln_model::RepoId;
use std::sync::Arc;

/// A repository's forge: the API and the repository's name there.
#[derive(Clone)]
pub struct RepoForge {
    pub api: Arc<dyn ForgeApi>,
    /// `owner/name` on the forge.
    pub full_name: String,
}

/// Looks up the forge of a repository.
#[async_trait::async_trait]
pub trait ForgeDirectory: Send + Sync {
    async fn forge(&self, repo: RepoId) -> Option<RepoForge>;

    /// The repository's forge settings were just changed (or removed) in
    /// the store: forget anything cached for it. Default: nothing cached.
    fn changed(&self, _repo: RepoId) {}
}

/// No repository has a forge.
pub struct NoForges;

#[async_trait::async_trait]
impl ForgeDirectory for NoForges {
    async fn forge(&self, _repo: RepoId) -> Option<RepoForge> {
        None
    }
}

/// What the outbound half needs besides the directory: where links point,
/// the key that seals tokens, and the deliverer's wake-up call.
#[derive(Default)]
pub struct Outbound {
    /// The server's public URL (no trailing slash); links in statuses and
    /// comments start with it. Empty: no links.
    pub public_url: String,
    /// Seals and opens forge tokens; `None`: forge settings cannot be set.
    pub key: Option<Arc<secret::SecretKey>>,
    /// Wakes the deliverer when a report is requested.
    pub wake: tokio::sync::Notify,
}

impl Outbound {
    pub fn new(public_url: &str, key: Arc<secret::SecretKey>) -> Outbound {
        Outbound {
            public_url: public_url.trim_end_matches('/').to_owned(),
            key: Some(key),
            wake: tokio::sync::Notify::new(),
        }
    }
}
