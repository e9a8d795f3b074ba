//! The CLI's typed errors and their exit codes.

use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Workflow files have errors; the diagnostics were already printed.
    #[error("{0}")]
    Invalid(String),
    /// Wrong arguments or an unusable environment (no git repository, …).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Invalid(_) | CliError::Usage(_) => exit::INVALID,
            CliError::Io(_) => exit::FAILURE,
        }
    }
}
