//! The agent's errors: what stops it for good. Everything the agent can
//! retry (an unreachable server, a 5xx) is retried and reported as an
//! [`Event`](crate::Event) instead.

use kiln_client::ClientError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server answered, and the answer means retrying is useless
    /// (bad token, missing role, a request it calls invalid).
    #[error("the server refused the agent's {call}: {source}")]
    Rejected {
        call: crate::Call,
        #[source]
        source: ClientError,
    },
}
