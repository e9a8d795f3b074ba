//! Why a job's `container:` or `services:` could not be rendered, or its
//! `options:` parsed. The messages reach the job's log as the reason the
//! job failed to start.

use kiln_pipeline::expr::{EvalError, ExprError};

use crate::config::UnknownPullPolicy;

/// Why `container:` or `services:` could not be rendered.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    Parse(#[from] ExprError),
    #[error("{0}")]
    Eval(#[from] EvalError),
    #[error("image is empty")]
    EmptyImage,
    #[error("port `{0}`: expected CONTAINER, HOST:CONTAINER or IP:HOST:CONTAINER")]
    Port(String),
    #[error("services.{0}: a service name must be a host name (letters, digits, `-`, `_`, `.`)")]
    ServiceName(String),
    #[error("options: {0}")]
    Options(OptionError),
    /// The error of a part of the spec, with where it is (`container`,
    /// `services.db`, `env `X``, `image`, …).
    #[error("{at}: {source}")]
    Within { at: String, source: Box<SpecError> },
}

impl SpecError {
    /// This error, located at `at`.
    pub(crate) fn within(self, at: impl Into<String>) -> SpecError {
        SpecError::Within {
            at: at.into(),
            source: Box::new(self),
        }
    }
}

/// Why `options:` could not be parsed as `docker run` flags.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OptionError {
    #[error("unterminated {0} quote")]
    Unterminated(&'static str),
    #[error("`{0}` is not an option")]
    NotAnOption(String),
    #[error("{flag}: expected true or false, got `{value}`")]
    NotABool { flag: String, value: String },
    #[error("{0} needs a value")]
    NeedsValue(String),
    #[error("{flag}: {problem}")]
    Value { flag: String, problem: BadValue },
    #[error("`{flag}` is not supported by kiln (supported: {supported})")]
    Unsupported {
        flag: String,
        supported: &'static str,
    },
}

/// What is wrong with the value given to an `options:` flag.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BadValue {
    #[error("`{0}` is not a positive number")]
    NotPositive(String),
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("`{0}` is not a size (like 512m or 2g)")]
    NotASize(String),
    #[error("`{0}` is not a duration (like 10s or 1m30s)")]
    NotADuration(String),
    #[error(transparent)]
    Pull(#[from] UnknownPullPolicy),
}
