//! The client commands' errors, and the one place where the server's
//! answers ([`ClientError`]) become exit codes and hints.

use crate::client::connect::{ConnectError, Endpoint};
use crate::exit;
use kiln_client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Bad arguments that clap could not catch (`--input` without `=`, an
    /// unknown job name).
    #[error("{0}")]
    Usage(String),
    /// The live log stream closed before the run finished.
    #[error("the log stream of run {0} closed before the run finished")]
    StreamClosed(kiln_model::RunId),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Connect(e) if e.is_usage() => exit::INVALID,
            Error::Connect(_) => exit::SERVER,
            Error::Client(e) => client_exit_code(e),
            Error::Usage(_) => exit::INVALID,
            Error::StreamClosed(_) => exit::SERVER,
            Error::Io(_) => exit::FAILURE,
        }
    }

    /// What to try next, when there is something useful to say.
    pub fn hint(&self, endpoint: Option<&Endpoint>) -> Option<String> {
        let Error::Client(e) = self else {
            return None;
        };
        match e {
            ClientError::Unauthorized(_) => Some(match endpoint {
                Some(ep) => format!(
                    "the token came from {}; pass another with --token-file, KILN_TOKEN or \
                     --token (an admin makes one with `kiln token create`)",
                    ep.token_from
                ),
                None => "pass a token with --token-file, KILN_TOKEN or --token".to_owned(),
            }),
            ClientError::Forbidden(_) => Some(
                "ask an admin for a token with a higher role: \
                 `kiln token create --role maintainer` (or admin)"
                    .to_owned(),
            ),
            ClientError::Unreachable { .. } => Some(match endpoint {
                Some(ep) => format!(
                    "is the server running? The address came from {}; start one with `kiln up`, \
                     or pass --server/KILN_SERVER",
                    ep.server_from
                ),
                None => "start a server with `kiln up`, or pass --server/KILN_SERVER".to_owned(),
            }),
            ClientError::Protocol(_) => {
                Some("is that a kiln server, and of the same version as this client?".to_owned())
            }
            ClientError::Invalid(_)
            | ClientError::NotFound(_)
            | ClientError::Conflict(_)
            | ClientError::Stale(_)
            | ClientError::NotLeaseHolder(_)
            | ClientError::Server { .. } => None,
        }
    }
}

/// The exit code for each way the server can answer.
pub fn client_exit_code(e: &ClientError) -> i32 {
    match e {
        // Unknown repository or run, duplicate name, bad input: the caller's
        // to fix.
        ClientError::Invalid(_)
        | ClientError::NotFound(_)
        | ClientError::Conflict(_)
        | ClientError::Stale(_)
        | ClientError::NotLeaseHolder(_) => exit::INVALID,
        ClientError::Server { status, .. } if *status < 500 => exit::INVALID,
        // The server cannot be used from here: not reachable, broken, not
        // kiln, or it refuses the token.
        ClientError::Server { .. }
        | ClientError::Unreachable { .. }
        | ClientError::Protocol(_)
        | ClientError::Unauthorized(_)
        | ClientError::Forbidden(_) => exit::SERVER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_families_map_to_exit_codes() {
        let server = |status| ClientError::Server {
            status,
            message: String::new(),
        };
        assert_eq!(client_exit_code(&server(400)), exit::INVALID);
        assert_eq!(client_exit_code(&server(413)), exit::INVALID);
        assert_eq!(client_exit_code(&ClientError::NotFound("x".into())), 2);
        assert_eq!(client_exit_code(&ClientError::Stale("x".into())), 2);
        assert_eq!(client_exit_code(&ClientError::Conflict("x".into())), 2);
        assert_eq!(client_exit_code(&ClientError::Invalid("x".into())), 2);
        assert_eq!(client_exit_code(&ClientError::Unauthorized("x".into())), 3);
        assert_eq!(client_exit_code(&ClientError::Forbidden("x".into())), 3);
        assert_eq!(client_exit_code(&server(500)), exit::SERVER);
        let down = ClientError::Unreachable {
            url: "http://h".into(),
            message: "refused".into(),
        };
        assert_eq!(client_exit_code(&down), exit::SERVER);
    }
}
