//! Which forge API (if any) serves a repository.
//!
//! The engine asks a [`ForgeDirectory`] for a repository's forge when it
//! needs one (a comment command's permission check, a reply, a commit
//! status). A repository without a configured forge gets `None`: kiln then
//! works from git alone (polling, no statuses).

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
}

/// No repository has a forge.
pub struct NoForges;

#[async_trait::async_trait]
impl ForgeDirectory for NoForges {
    async fn forge(&self, _repo: RepoId) -> Option<RepoForge> {
        None
    }
}
