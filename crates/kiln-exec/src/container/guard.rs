//! The socket-mount guard: a job must not bind-mount the container engine's
//! socket (or a directory above it, `/` included) unless the agent's
//! configuration allows it, because whoever holds the socket controls the
//! engine and so the machine.

use super::error::ContainerError;
use std::path::{Path, PathBuf};

use super::engine::{DOCKER_SOCKET, Endpoint, PODMAN_SYSTEM_SOCKET};

/// The host side of a `-v`/`volumes:` entry when it is a bind mount
/// (`/src:/dst[:mode]`); `None` for a named or anonymous volume.
pub(crate) fn bind_source(volume: &str) -> Option<&str> {
    let (src, _) = volume.split_once(':')?;
    src.starts_with('/').then_some(src)
}

/// The sockets that count as "the engine's": the one kiln talks to and the
/// well-known ones, canonical where they exist.
pub(crate) fn engine_sockets(endpoint: &Endpoint) -> Vec<PathBuf> {
    let mut sockets: Vec<PathBuf> = vec![
        PathBuf::from(DOCKER_SOCKET),
        PathBuf::from("/run/docker.sock"),
        PathBuf::from(PODMAN_SYSTEM_SOCKET),
    ];
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        sockets.push(Path::new(&dir).join("podman/podman.sock"));
    }
    if let Some(path) = endpoint.socket_path() {
        sockets.push(path);
    }
    let mut out = Vec::new();
    for s in sockets {
        if let Ok(c) = std::fs::canonicalize(&s) {
            out.push(c);
        }
        out.push(s);
    }
    out
}

/// `Err` names the first volume that exposes an engine socket.
pub(crate) fn check(volumes: &[&str], sockets: &[PathBuf]) -> Result<(), ContainerError> {
    for volume in volumes {
        let Some(src) = bind_source(volume) else {
            continue;
        };
        let src = Path::new(src);
        let canonical = std::fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
        for socket in sockets {
            if socket.starts_with(&canonical) || socket.starts_with(src) {
                return Err(ContainerError::SocketMount {
                    volume: (*volume).to_owned(),
                    socket: socket.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_and_their_directories_are_refused() {
        let sockets = vec![PathBuf::from("/run/podman/podman.sock")];
        assert!(check(&["/run/podman/podman.sock:/var/run/docker.sock"], &sockets).is_err());
        assert!(check(&["/run:/host-run:ro"], &sockets).is_err());
        assert!(check(&["/:/host"], &sockets).is_err());
        assert!(check(&["/srv/cache:/cache", "named:/data", "/anon"], &sockets).is_ok());
    }
}
