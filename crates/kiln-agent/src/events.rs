//! What the agent tells its operator: registration, retries, jobs. The
//! agent never prints by itself; [`run`](crate::run) passes these to
//! [`StderrEvents`], [`run_with`](crate::run_with) to any [`AgentEvents`].

use kiln_model::{AgentId, InstanceId, JobStatus};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Receives the agent's events. Called from the agent's tasks; must not
/// block.
pub trait AgentEvents: Send + Sync {
    fn event(&self, event: &Event);
}

/// A call of the agent protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Register,
    Claim,
    Heartbeat,
    Logs,
    Complete,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Call::Register => "registration",
            Call::Claim => "claim",
            Call::Heartbeat => "heartbeat",
            Call::Logs => "log upload",
            Call::Complete => "completion",
        })
    }
}

/// How a job's attempt ended, as far as this agent is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEnd {
    /// The result was reported and acknowledged.
    Reported(JobStatus),
    /// The lease was gone (409 or 404 on a heartbeat, 409 on logs): the
    /// job was killed and nothing was reported.
    LeaseLost,
    /// The server answered the completion with 409: the attempt is no
    /// longer running there (an earlier, unacknowledged completion was
    /// stored, or the lease expired meanwhile).
    Stale,
    /// The server refused the completion for good (not retryable).
    Rejected(String),
}

#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Leftovers of an earlier agent process were removed.
    Cleaned {
        path: PathBuf,
    },
    Registered {
        agent: AgentId,
        server: String,
    },
    /// A call failed in a way worth retrying; `failures` counts the
    /// failures in a row of this call (for this job, where there is one).
    Retrying {
        call: Call,
        job: Option<InstanceId>,
        failures: u32,
        retry_in: Duration,
        error: String,
    },
    /// The server answered a claim with a job, now leased to this agent.
    Claimed {
        job: InstanceId,
        attempt: u32,
        name: String,
        weight: u32,
    },
    /// The server asked to cancel a running job; it is being stopped
    /// gracefully.
    CancelRequested {
        job: InstanceId,
        attempt: u32,
    },
    /// The lease of a running job is gone: it is being killed.
    LeaseLost {
        job: InstanceId,
        attempt: u32,
    },
    /// No heartbeat of a running job was acknowledged for so long that its
    /// lease may have expired on the server, which then runs the job
    /// again elsewhere: the job is being killed (the agent's fence; see
    /// `docs/protocol.md`).
    LeaseExpired {
        job: InstanceId,
        attempt: u32,
        /// Since the last acknowledged heartbeat was sent.
        silent: Duration,
    },
    /// Log upload for a job stopped before all lines were acknowledged.
    LogsAbandoned {
        job: InstanceId,
        attempt: u32,
        reason: String,
    },
    /// A job's task ended; its capacity is free again.
    JobEnded {
        job: InstanceId,
        attempt: u32,
        end: JobEnd,
    },
    /// Shutdown was requested: no more claims; `running` jobs will finish.
    ShuttingDown {
        running: usize,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Cleaned { path } => write!(f, "removed leftovers: {}", path.display()),
            Event::Registered { agent, server } => {
                write!(f, "registered with {server} as agent {agent}")
            }
            Event::Retrying {
                call,
                job,
                failures,
                retry_in,
                error,
            } => {
                write!(f, "{call}")?;
                if let Some(job) = job {
                    write!(f, " for job {job}")?;
                }
                write!(
                    f,
                    " failed ({failures} in a row), retrying in {:.1}s: {error}",
                    retry_in.as_secs_f64()
                )
            }
            Event::Claimed {
                job,
                attempt,
                name,
                weight,
            } => write!(f, "job {job} `{name}` attempt {attempt} (weight {weight})"),
            Event::CancelRequested { job, attempt } => {
                write!(
                    f,
                    "job {job} attempt {attempt}: cancelled on the server, stopping"
                )
            }
            Event::LeaseLost { job, attempt } => write!(
                f,
                "job {job} attempt {attempt}: the lease is gone, killing the job"
            ),
            Event::LeaseExpired {
                job,
                attempt,
                silent,
            } => write!(
                f,
                "job {job} attempt {attempt}: no heartbeat acknowledged for {:.1}s, \
                 the lease may have expired; killing the job",
                silent.as_secs_f64()
            ),
            Event::LogsAbandoned {
                job,
                attempt,
                reason,
            } => write!(
                f,
                "job {job} attempt {attempt}: log upload stopped: {reason}"
            ),
            Event::JobEnded { job, attempt, end } => {
                write!(f, "job {job} attempt {attempt}: ")?;
                match end {
                    JobEnd::Reported(status) => write!(f, "{status}"),
                    JobEnd::LeaseLost => write!(f, "abandoned (lease lost), not reported"),
                    JobEnd::Stale => write!(f, "the server no longer expects this attempt"),
                    JobEnd::Rejected(e) => write!(f, "the server refused the result: {e}"),
                }
            }
            Event::ShuttingDown { running } => write!(
                f,
                "shutting down: no more claims, waiting for {running} running job(s)"
            ),
        }
    }
}

/// Writes events to stderr as `kiln agent: …` lines; repeated retries of a
/// call are written only at 1, 2, 4, 8, … failures in a row.
#[derive(Clone, Copy, Debug, Default)]
pub struct StderrEvents;

impl AgentEvents for StderrEvents {
    fn event(&self, event: &Event) {
        if let Event::Retrying { failures, .. } = event
            && !failures.is_power_of_two()
        {
            return;
        }
        eprintln!("kiln agent: {event}");
    }
}
