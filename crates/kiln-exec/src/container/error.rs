//! Why preparing, running in or removing a job's containers failed. The
//! messages reach the job's log (as the job's or a step's failure reason),
//! so each names the object and carries the engine's own message.

use super::spec::SpecError;

/// An engine request that failed, in one line: the engine's message when
/// it sent one (see [`super::engine_message`]).
pub(crate) type EngineMessage = String;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ContainerError {
    #[error(
        "volume `{volume}` would give the job the container engine's socket ({}); \
         the agent's configuration does not allow it (set allow_socket_mount to permit)",
        .socket.display()
    )]
    SocketMount {
        volume: String,
        socket: std::path::PathBuf,
    },
    #[error("image `{image}`: {message}")]
    Inspect {
        image: String,
        message: EngineMessage,
    },
    #[error("image `{0}` is not on the engine and the pull policy is `never`")]
    NotPulled(String),
    #[error("image `{0}` is still missing after a pull")]
    MissingAfterPull(String),
    #[error("pulling image `{image}` failed: {message}")]
    Pull {
        image: String,
        message: EngineMessage,
    },
    #[error("creating the job's network: {0}")]
    Network(EngineMessage),
    #[error("creating container {name}: {message}")]
    Create {
        name: String,
        message: EngineMessage,
    },
    #[error("starting container {name}: {message}")]
    Start {
        name: String,
        message: EngineMessage,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// What went wrong with service `service`.
    #[error("services.{service}: {source}")]
    Service {
        service: String,
        source: Box<ContainerError>,
    },
    #[error("services.{service}: health check `{cmd}` did not pass ({last})")]
    Unhealthy {
        service: String,
        cmd: String,
        last: String,
    },
    /// An exec request the engine refused.
    #[error("{0}")]
    Exec(EngineMessage),
    #[error("the engine did not report the exit code")]
    NoExitCode,
    #[error("container {id:.12}: {message}")]
    Remove { id: String, message: EngineMessage },
    #[error("network {network}: {message}")]
    RemoveNetwork {
        network: String,
        message: EngineMessage,
    },
}
