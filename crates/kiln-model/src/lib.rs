//! kiln's vocabulary: plain data shared by every other crate.
//!
//! Nothing here does I/O, reads the clock or knows about a runtime. The
//! pipeline crate produces [`workflow::Workflow`] values from YAML; the core,
//! the executors and the server consume them. Types are newtypes and enums so
//! that a job id cannot be passed where a step id is expected, and status
//! matches are spelled out in full.

pub mod ids;
#[cfg(feature = "openapi")]
mod openapi;
pub mod retry;
pub mod status;
pub mod value;
pub mod workflow;

pub use ids::{AgentId, InstanceId, JobId, RepoId, RunId, StepId};
pub use retry::{Failure, FailureClass, RetryOn, RetryPolicy};
pub use status::{JobStatus, StepStatus};
pub use value::Value;
