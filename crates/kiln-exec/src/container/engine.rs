//! Finding and connecting to the container engine (Docker or Podman, both
//! through the Docker Engine API).
//!
//! Discovery order, first match wins: `DOCKER_HOST` (any scheme bollard
//! speaks without TLS: `unix://`, `tcp://`, `http://`), the Docker socket
//! (`/var/run/docker.sock`), the rootless Podman socket
//! (`$XDG_RUNTIME_DIR/podman/podman.sock`), the system Podman socket
//! (`/run/podman/podman.sock`). Discovery only looks at the environment and
//! the file system; [`Engine::connect`] then talks to the engine.

use std::path::{Path, PathBuf};

use bollard::Docker;

/// Requests to the engine may legitimately take long (a pull, a stop with
/// a long grace period); kiln bounds them itself where it matters.
const REQUEST_TIMEOUT_SECS: u64 = 3600;

/// Why no engine could be found or connected to. One line each, for
/// `kiln doctor` and job errors alike.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no container engine found: DOCKER_HOST is not set and none of {} exists", .looked.join(", "))]
    NotFound { looked: Vec<String> },
    #[error("socket {0} does not exist")]
    NoSocket(String),
    #[error("{0}: unsupported engine address (kiln speaks unix:// and tcp:// without TLS)")]
    Unsupported(String),
    #[error("{url}: {source}")]
    Client {
        url: String,
        source: bollard::errors::Error,
    },
    #[error("{url} does not answer: {source}")]
    NoAnswer {
        url: String,
        source: bollard::errors::Error,
    },
    #[error("{url}: reading the engine version: {source}")]
    Version {
        url: String,
        source: bollard::errors::Error,
    },
}

/// Where the engine was found, and why there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `unix:///path` or `tcp://host:port`.
    pub url: String,
    pub source: EndpointSource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointSource {
    DockerHost,
    DockerSocket,
    PodmanRootlessSocket,
    PodmanSystemSocket,
}

impl EndpointSource {
    pub fn describe(self) -> &'static str {
        match self {
            EndpointSource::DockerHost => "from DOCKER_HOST",
            EndpointSource::DockerSocket => "the Docker socket",
            EndpointSource::PodmanRootlessSocket => "the rootless Podman socket",
            EndpointSource::PodmanSystemSocket => "the system Podman socket",
        }
    }
}

impl Endpoint {
    /// The socket's path, for a `unix://` endpoint.
    pub fn socket_path(&self) -> Option<PathBuf> {
        self.url.strip_prefix("unix://").map(PathBuf::from)
    }
}

pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
pub const PODMAN_SYSTEM_SOCKET: &str = "/run/podman/podman.sock";

/// Where to look, given the environment (`DOCKER_HOST`, `XDG_RUNTIME_DIR`)
/// and a file-existence test; pure so that the order is unit-tested.
pub fn discover_with(
    docker_host: Option<&str>,
    xdg_runtime_dir: Option<&str>,
    exists: impl Fn(&Path) -> bool,
) -> Result<Endpoint, EngineError> {
    if let Some(host) = docker_host.filter(|h| !h.is_empty()) {
        return Ok(Endpoint {
            url: host.to_owned(),
            source: EndpointSource::DockerHost,
        });
    }
    let mut candidates = vec![(DOCKER_SOCKET.to_owned(), EndpointSource::DockerSocket)];
    if let Some(dir) = xdg_runtime_dir.filter(|d| !d.is_empty()) {
        candidates.push((
            format!("{dir}/podman/podman.sock"),
            EndpointSource::PodmanRootlessSocket,
        ));
    }
    candidates.push((
        PODMAN_SYSTEM_SOCKET.to_owned(),
        EndpointSource::PodmanSystemSocket,
    ));
    for (path, source) in &candidates {
        if exists(Path::new(path)) {
            return Ok(Endpoint {
                url: format!("unix://{path}"),
                source: *source,
            });
        }
    }
    Err(EngineError::NotFound {
        looked: candidates.into_iter().map(|(p, _)| p).collect(),
    })
}

/// [`discover_with`] on this process's environment.
pub fn discover() -> Result<Endpoint, EngineError> {
    let host = std::env::var("DOCKER_HOST").ok();
    let xdg = std::env::var("XDG_RUNTIME_DIR").ok();
    discover_with(host.as_deref(), xdg.as_deref(), |p| p.exists())
}

/// Which engine answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Docker,
    Podman,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Docker => "Docker",
            EngineKind::Podman => "Podman",
        }
    }
}

/// A connected engine: the client plus what kiln learned about it once.
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) docker: Docker,
    pub endpoint: Endpoint,
    pub kind: EngineKind,
    /// The engine's own version (`4.3.1`, `27.0.3`).
    pub version: String,
    /// The Engine API version in use (`1.41`).
    pub api_version: String,
    /// CPUs the engine's machine has, for capping CPU limits.
    pub cpus: Option<u32>,
}

impl Engine {
    /// Connects to `endpoint`, negotiates the API version and reads the
    /// engine's identity. Errors are one line, for `kiln doctor` and job
    /// errors alike.
    pub async fn connect(endpoint: Endpoint) -> Result<Engine, EngineError> {
        let docker = match &endpoint.url {
            url if url.starts_with("unix://") => {
                let path = url.trim_start_matches("unix://");
                if !Path::new(path).exists() {
                    return Err(EngineError::NoSocket(path.to_owned()));
                }
                Docker::connect_with_unix(url, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            }
            url if url.starts_with("tcp://") || url.starts_with("http://") => {
                Docker::connect_with_http(url, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            }
            url => {
                return Err(EngineError::Unsupported(url.to_owned()));
            }
        }
        .map_err(|source| EngineError::Client {
            url: endpoint.url.clone(),
            source,
        })?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|source| EngineError::NoAnswer {
                url: endpoint.url.clone(),
                source,
            })?;
        let version = docker
            .version()
            .await
            .map_err(|source| EngineError::Version {
                url: endpoint.url.clone(),
                source,
            })?;
        let podman = version
            .components
            .iter()
            .flatten()
            .any(|c| c.name.to_ascii_lowercase().contains("podman"));
        let kind = if podman {
            EngineKind::Podman
        } else {
            EngineKind::Docker
        };
        let engine_version = if podman {
            version
                .components
                .iter()
                .flatten()
                .find(|c| c.name.to_ascii_lowercase().contains("podman"))
                .map(|c| c.version.clone())
                .or(version.version.clone())
        } else {
            version.version.clone()
        }
        .unwrap_or_else(|| "unknown".to_owned());
        let api = docker.client_version();
        let cpus = docker
            .info()
            .await
            .ok()
            .and_then(|info| info.ncpu)
            .and_then(|n| u32::try_from(n).ok());
        Ok(Engine {
            docker,
            endpoint,
            kind,
            version: engine_version,
            api_version: format!("{}.{}", api.major_version, api.minor_version),
            cpus,
        })
    }

    /// Discovers and connects.
    pub async fn connect_default() -> Result<Engine, EngineError> {
        Engine::connect(discover()?).await
    }

    /// One line naming the engine: `Podman 4.3.1 (API 1.41) at unix:///…
    /// (from DOCKER_HOST)`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} (API {}) at {} ({})",
            self.kind.name(),
            self.version,
            self.api_version,
            self.endpoint.url,
            self.endpoint.source.describe()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_wins() {
        let e = discover_with(Some("tcp://h:2375"), None, |_| true).unwrap();
        assert_eq!(e.url, "tcp://h:2375");
        assert_eq!(e.source, EndpointSource::DockerHost);
    }

    #[test]
    fn sockets_in_order() {
        let e = discover_with(None, Some("/run/user/7"), |_| true).unwrap();
        assert_eq!(e.url, "unix:///var/run/docker.sock");
        let e =
            discover_with(None, Some("/run/user/7"), |p| p != Path::new(DOCKER_SOCKET)).unwrap();
        assert_eq!(e.url, "unix:///run/user/7/podman/podman.sock");
        assert_eq!(e.source, EndpointSource::PodmanRootlessSocket);
        let e = discover_with(Some(""), None, |p| p == Path::new(PODMAN_SYSTEM_SOCKET)).unwrap();
        assert_eq!(e.source, EndpointSource::PodmanSystemSocket);
        assert_eq!(e.socket_path().unwrap(), Path::new(PODMAN_SYSTEM_SOCKET));
    }

    #[test]
    fn nothing_found_says_where_it_looked() {
        let err = discover_with(None, None, |_| false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/var/run/docker.sock"), "{err}");
        assert!(err.contains("/run/podman/podman.sock"), "{err}");
    }
}
