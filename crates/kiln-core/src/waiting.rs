//! Why a job waits: in words a person can act on.
//!
//! A queued job waits for one of a few things: a gate (its concurrency
//! group, its environment's deploy lock, an approval), or an agent (none
//! online has its labels, or every one that has them is busy). [`explain`]
//! turns what the caller read (the job's hold, who holds its gate, the
//! online agents with their labels and load) into a [`Reason`]: a kind for
//! programs and a message for people. Pure: the caller reads the store.

use crate::dispatch::{covers, has_room};
use kiln_model::RunId;

/// What holds a job (or a run) back before any agent may take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold<'a> {
    /// Its concurrency group; `holder` is the run holding the group now.
    Group {
        name: &'a str,
        holder: Option<RunId>,
    },
    /// Its environment's deploy lock; `holder` is the run deploying now.
    Environment {
        name: &'a str,
        holder: Option<RunId>,
    },
    /// A deploy that needs `kiln approve`.
    Approval { environment: Option<&'a str> },
    /// A pull request from a fork, held for a maintainer (`why` says so).
    ForkApproval { why: &'a str },
}

/// An online agent as a waiting job sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentLoad<'a> {
    pub name: &'a str,
    /// Its labels with the aliases they satisfy
    /// ([`effective_labels`](crate::dispatch::effective_labels)).
    pub labels: &'a [String],
    pub capacity: u32,
    /// Capacity taken by its running jobs.
    pub used: u32,
}

/// The kind of wait, for programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No online agent has the job's labels.
    NoMatchingAgent,
    /// Agents with the labels are online, but none has room for it now.
    AgentsBusy,
    /// Behind another run in a concurrency group.
    ConcurrencyGroup,
    /// Waiting for an environment's deploy lock.
    DeployLock,
    /// Waiting for `kiln approve`.
    Approval,
    /// Nothing holds it back: an agent with room can take it at its next
    /// claim (higher priorities and other repositories' turns first).
    Ready,
}

/// Why a job waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub kind: Kind,
    pub message: String,
}

/// Why a queued job with `runs_on` and `weight` waits.
pub fn explain(
    runs_on: &[String],
    weight: u32,
    hold: Option<&Hold<'_>>,
    agents: &[AgentLoad<'_>],
) -> Reason {
    if let Some(hold) = hold {
        return held(hold);
    }
    let matching: Vec<&AgentLoad<'_>> = agents
        .iter()
        .filter(|a| covers(a.labels, runs_on))
        .collect();
    if matching.is_empty() {
        let have = if agents.is_empty() {
            "no agent is online".to_owned()
        } else {
            let mut sets: Vec<String> = agents
                .iter()
                .map(|a| format!("{} [{}]", a.name, a.labels.join(", ")))
                .collect();
            sets.sort();
            format!("online agents have: {}", sets.join("; "))
        };
        return Reason {
            kind: Kind::NoMatchingAgent,
            message: format!(
                "no online agent has labels [{}] ({have})",
                runs_on.join(", ")
            ),
        };
    }
    if matching
        .iter()
        .any(|a| has_room(weight, a.capacity, a.capacity.saturating_sub(a.used)))
    {
        return Reason {
            kind: Kind::Ready,
            message: "ready: an agent with room takes it at its next claim".to_owned(),
        };
    }
    let used: u32 = matching.iter().map(|a| a.used).sum();
    let capacity: u32 = matching.iter().map(|a| a.capacity).sum();
    let (noun, these) = if matching.len() == 1 {
        ("agent", format!("`{}`", matching[0].name))
    } else {
        ("agents", format!("{} agents", matching.len()))
    };
    let need = if weight > 1 {
        format!("; it needs {weight} free")
    } else {
        String::new()
    };
    Reason {
        kind: Kind::AgentsBusy,
        message: format!("all matching {noun} busy ({these}, capacity {used}/{capacity}{need})"),
    }
}

fn held(hold: &Hold<'_>) -> Reason {
    match hold {
        Hold::Group { name, holder } => Reason {
            kind: Kind::ConcurrencyGroup,
            message: match holder {
                Some(run) => format!("waiting behind run {run} in concurrency group `{name}`"),
                None => format!("waiting for its turn in concurrency group `{name}`"),
            },
        },
        Hold::Environment { name, holder } => Reason {
            kind: Kind::DeployLock,
            message: match holder {
                Some(run) => format!("waiting for the deploy lock of `{name}` held by run {run}"),
                None => format!("waiting for the deploy lock of `{name}`"),
            },
        },
        Hold::Approval { environment } => Reason {
            kind: Kind::Approval,
            message: match environment {
                Some(env) => {
                    format!("waiting for approval to deploy to `{env}` (`kiln approve RUN JOB`)")
                }
                None => "waiting for approval (`kiln approve RUN JOB`)".to_owned(),
            },
        },
        Hold::ForkApproval { why } => Reason {
            kind: Kind::Approval,
            message: format!("waiting for approval: {why} (`kiln approve RUN`)"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_agent_with_the_labels_names_what_online_agents_have() {
        let a = l(&["self-hosted", "linux", "x64"]);
        let g = l(&["gpu"]);
        let agents = [
            AgentLoad {
                name: "box",
                labels: &a,
                capacity: 2,
                used: 0,
            },
            AgentLoad {
                name: "spark",
                labels: &g,
                capacity: 1,
                used: 0,
            },
        ];
        let r = explain(&l(&["ubuntu-latest"]), 1, None, &agents);
        assert_eq!(r.kind, Kind::NoMatchingAgent);
        assert_eq!(
            r.message,
            "no online agent has labels [ubuntu-latest] (online agents have: \
             box [self-hosted, linux, x64]; spark [gpu])"
        );
        let r = explain(&l(&["linux"]), 1, None, &[]);
        assert_eq!(
            r.message,
            "no online agent has labels [linux] (no agent is online)"
        );
    }

    #[test]
    fn busy_agents_say_their_load_and_ready_when_one_has_room() {
        let a = l(&["linux"]);
        let busy = [AgentLoad {
            name: "box",
            labels: &a,
            capacity: 2,
            used: 2,
        }];
        let r = explain(&l(&["linux"]), 1, None, &busy);
        assert_eq!(r.kind, Kind::AgentsBusy);
        assert_eq!(r.message, "all matching agent busy (`box`, capacity 2/2)");
        let two = [
            AgentLoad {
                name: "a",
                labels: &a,
                capacity: 2,
                used: 1,
            },
            AgentLoad {
                name: "b",
                labels: &a,
                capacity: 2,
                used: 1,
            },
        ];
        let r = explain(&l(&["linux"]), 2, None, &two);
        assert_eq!(
            r.message,
            "all matching agents busy (2 agents, capacity 2/4; it needs 2 free)"
        );
        assert_eq!(explain(&l(&["linux"]), 1, None, &two).kind, Kind::Ready);
    }

    #[test]
    fn holds_come_first() {
        let group = Hold::Group {
            name: "ci-main",
            holder: Some(RunId(40)),
        };
        let r = explain(&[], 1, Some(&group), &[]);
        assert_eq!(r.kind, Kind::ConcurrencyGroup);
        assert_eq!(
            r.message,
            "waiting behind run 40 in concurrency group `ci-main`"
        );
        let env = Hold::Environment {
            name: "production",
            holder: Some(RunId(41)),
        };
        assert_eq!(
            explain(&[], 1, Some(&env), &[]).message,
            "waiting for the deploy lock of `production` held by run 41"
        );
        let approval = Hold::Approval {
            environment: Some("production"),
        };
        assert_eq!(explain(&[], 1, Some(&approval), &[]).kind, Kind::Approval);
    }
}
