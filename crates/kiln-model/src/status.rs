//! Outcomes of jobs and steps.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a job (one matrix instance) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    /// Waiting for its `needs`, or for capacity.
    Queued,
    Running,
    Success,
    Failure,
    /// Stopped by a person, by Ctrl-C, or by fail-fast.
    Cancelled,
    /// Its `if:` was false, or a job it needs did not succeed.
    Skipped,
}

impl JobStatus {
    /// True once the job will not change any more.
    pub fn is_terminal(self) -> bool {
        match self {
            JobStatus::Queued | JobStatus::Running => false,
            JobStatus::Success | JobStatus::Failure | JobStatus::Cancelled | JobStatus::Skipped => {
                true
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Failure => "failure",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Skipped => "skipped",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one step ended. `outcome` in GitHub's terms is the raw result;
/// `conclusion` applies `continue-on-error` (see the results document).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Success,
    Failure,
    Cancelled,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Success => "success",
            StepStatus::Failure => "failure",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Skipped => "skipped",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
