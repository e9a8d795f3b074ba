//! The engine's errors: what went wrong, in the engine's own words. No
//! HTTP here; the server's edge (`crate::error`) maps each variant to a
//! status and an [`ErrorKind`](kiln_proto::api::ErrorKind) in one table,
//! and the agent acts on the kind (stale: stop; conflict: retry; the
//! rest: log why and give up).

use kiln_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request can never succeed as written: a commit that is not in
    /// the repository, a workflow that does not exist, a non-final result.
    #[error("{0}")]
    Invalid(String),
    /// The thing named does not exist (the message names it and says so).
    #[error("{0}")]
    NotFound(String),
    /// The current state forbids it (a run still running), or concurrent
    /// changes kept winning: re-read, and a retry may succeed.
    #[error("{0}")]
    Conflict(String),
    /// The attempt (fencing token) is no longer current: nothing changed.
    #[error("stale attempt: {0}")]
    Stale(String),
    /// An agent reported on an attempt whose lease another agent holds.
    #[error("{0}")]
    NotLeaseHolder(String),
    /// Storage, git or the server itself failed.
    #[error("{0}")]
    Internal(String),
}

pub type EngineResult<T> = Result<T, EngineError>;

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => EngineError::NotFound(format!("{m} not found")),
            StoreError::Conflict(m) => EngineError::Conflict(m),
            StoreError::Invalid(m) => EngineError::Invalid(m),
            StoreError::Stale(m) => EngineError::Stale(m),
            StoreError::NotOwner(m) => EngineError::NotLeaseHolder(m),
            StoreError::Backend(m) => EngineError::Internal(format!("storage: {m}")),
        }
    }
}
