//! Labels on everything kiln creates in the engine, and the sweep that
//! removes what a dead kiln process left behind.
//!
//! Every container and network carries [`MANAGED`], the job attempt's
//! label ([`JOB`]) and its owner: the host name, the pid and the pid's
//! start time (from `/proc/PID/stat`, so that a reused pid is not mistaken
//! for the owner). An object is a leftover when its owner ran on this host
//! and is no longer alive; objects of other hosts sharing the engine, and of
//! live processes, are never touched.

use std::collections::HashMap;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};

use super::engine::Engine;

/// Why the sweep could not even list what kiln left behind (failures to
/// remove single objects are in [`Swept::failures`]).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("listing kiln's containers: {0}")]
    Containers(bollard::errors::Error),
    #[error("listing kiln's networks: {0}")]
    Networks(bollard::errors::Error),
}

pub const MANAGED: &str = "io.kiln.managed";
pub const JOB: &str = "io.kiln.job";
pub const HOST: &str = "io.kiln.owner.host";
pub const PID: &str = "io.kiln.owner.pid";
pub const START: &str = "io.kiln.owner.start";
/// `job` or `service`, on containers.
pub const ROLE: &str = "io.kiln.role";

/// Who owns what this process creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot; empty when
    /// `/proc` cannot tell.
    pub start: String,
}

impl Owner {
    pub fn this_process() -> Owner {
        let pid = std::process::id();
        Owner {
            host: hostname(),
            pid,
            start: start_time(pid).unwrap_or_default(),
        }
    }

    /// Whether the owner named by these labels is a live process on this
    /// host. `None`: the labels do not name an owner on this host, so it is
    /// not ours to judge.
    fn alive_from(labels: &HashMap<String, String>, host: &str) -> Option<bool> {
        if labels.get(HOST).map(String::as_str) != Some(host) {
            return None;
        }
        let pid: u32 = labels.get(PID)?.parse().ok()?;
        let start = labels.get(START).cloned().unwrap_or_default();
        Some(match start_time(pid) {
            None => false,
            Some(now) => start.is_empty() || now == start,
        })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Field 22 of `/proc/PID/stat`: the start time. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last
/// `)`. `None` when the process does not exist (or is a zombie: it has
/// exited).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3; start time is field 22.
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18).map(str::to_owned)
}

/// The labels of an object created for job attempt `job`.
pub fn for_job(owner: &Owner, job: &str, role: Option<&str>) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (MANAGED.to_owned(), "true".to_owned()),
        (JOB.to_owned(), job.to_owned()),
        (HOST.to_owned(), owner.host.clone()),
        (PID.to_owned(), owner.pid.to_string()),
        (START.to_owned(), owner.start.clone()),
    ]);
    if let Some(role) = role {
        labels.insert(ROLE.to_owned(), role.to_owned());
    }
    labels
}

/// What a sweep removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub failures: Vec<String>,
}

/// Removes the containers (with their anonymous volumes) and networks
/// whose owner ran on this host and is dead. Safe to run at any time and
/// from several processes at once: removing what is already gone counts as
/// done.
pub async fn sweep(engine: &Engine) -> Result<Swept, SweepError> {
    let host = hostname();
    let filter = HashMap::from([("label", vec![format!("{MANAGED}=true")])]);
    // Podman's Docker API briefly reports a container it is cleaning up
    // after as `stopped`, a state the Docker API (and bollard) does not
    // have, and the whole listing then fails to decode. The state passes
    // within moments: list again, a few times, before giving up.
    let mut tries = 0;
    let containers = loop {
        let listed = engine
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filter)
                    .build(),
            ))
            .await;
        match listed {
            Ok(c) => break c,
            Err(bollard::errors::Error::JsonDataError { .. }) if tries < 10 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(SweepError::Containers(e)),
        }
    };
    let mut swept = Swept::default();
    for c in containers {
        let labels = c.labels.clone().unwrap_or_default();
        if Owner::alive_from(&labels, &host) != Some(false) {
            continue;
        }
        let Some(id) = c.id else { continue };
        let name = c
            .names
            .and_then(|n| n.first().cloned())
            .unwrap_or_else(|| id.clone());
        match engine
            .docker
            .remove_container(
                &id,
                Some(
                    RemoveContainerOptionsBuilder::new()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await
        {
            Ok(()) => swept.containers.push(name),
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => swept.failures.push(format!("container {name}: {e}")),
        }
    }
    let networks = engine
        .docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filter).build(),
        ))
        .await
        .map_err(SweepError::Networks)?;
    for n in networks {
        let labels = n.labels.clone().unwrap_or_default();
        if Owner::alive_from(&labels, &host) != Some(false) {
            continue;
        }
        let Some(name) = n.name.or(n.id) else {
            continue;
        };
        match engine.docker.remove_network(&name).await {
            Ok(()) => swept.networks.push(name),
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => swept.failures.push(format!("network {name}: {e}")),
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_not() {
        let me = Owner::this_process();
        assert!(!me.start.is_empty());
        let labels = for_job(&me, "j", None);
        assert_eq!(Owner::alive_from(&labels, &me.host), Some(true));
        // Another host's objects are not ours to judge.
        assert_eq!(Owner::alive_from(&labels, "elsewhere"), None);
        // The same pid with another start time: reused, so the owner is dead.
        let mut reused = labels.clone();
        reused.insert(START.to_owned(), "1".to_owned());
        assert_eq!(Owner::alive_from(&reused, &me.host), Some(false));
        // A pid that exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut dead = labels;
        dead.insert(PID.to_owned(), pid.to_string());
        assert_eq!(Owner::alive_from(&dead, &me.host), Some(false));
    }
}
