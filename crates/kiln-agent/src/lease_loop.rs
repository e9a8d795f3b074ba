//! The agent's main loop: register, then trade results for work.
//!
//! Every call to the server is a `work` call (`docs/protocol.md`): it
//! carries the reports of finished jobs and asks for as many jobs as the
//! free capacity takes. Two kinds are in flight at most, one of each:
//!
//! - the *poll*, a long-poll with no reports, open whenever capacity is
//!   free and nothing else asks for it, sent again the moment it returns,
//!   so that pickup latency is the server's, never a polling interval's;
//! - the *push*, sent at once (without waiting for the poll) when jobs
//!   finish: their reports, each with its last log lines, and a claim of
//!   the capacity they freed, answered without waiting. With a queue, a
//!   job costs this one call.
//!
//! Capacity counts a job from its lease until its report is handed over;
//! capacity asked for by a call in flight is not offered again. A job
//! waits for its report's outcome (stored, stale, refused) and keeps its
//! heartbeat until then.
//!
//! Failures: a transient one (unreachable, 5xx, a garbled answer, a
//! report answered `conflict`) backs off and retries, reports included;
//! 404, 409 or 401 on a call (the server does not know this agent or its
//! session, as after its database was reset, or another process
//! registered the same name) registers again, twice at most in a row;
//! then, and on 403 and other refusals, the agent stops claiming, lets
//! the running jobs finish and report, and ends with
//! [`AgentError::Rejected`].

use crate::backoff::{self, Backoff};
use crate::checkout::Mirrors;
use crate::error::AgentError;
use crate::events::JobEnd;
use crate::events::{AgentEvents, Call, Event};
use crate::job::{self, Delivery, Shared};
use crate::{AgentConfig, workdir};
use kiln_client::agent::report_error;
use kiln_client::{Client, ClientError};
use kiln_model::{AgentId, InstanceId};
use kiln_proto::agent::{
    MAX_REPORTS, RegisterRequest, RegisterResponse, Report, ReportOutcome, WorkRequest,
    WorkResponse,
};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(
    config: AgentConfig,
    shutdown: CancellationToken,
    events: Arc<dyn AgentEvents>,
) -> Result<(), AgentError> {
    validate(&config)?;
    let client = Client::new(&config.server, &config.token)
        .map_err(|source| AgentError::Config(format!("server `{}`: {source}", config.server)))?;
    let layout = {
        let work_dir = config.work_dir.clone();
        let events = events.clone();
        tokio::task::spawn_blocking(move || workdir::prepare(&work_dir, events.as_ref()))
            .await
            .map_err(|e| AgentError::Io {
                path: config.work_dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })??
    };
    let base_env = Arc::new(base_env());
    let (reports_tx, reports_rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
    let shared = Arc::new(Shared {
        client: client.clone(),
        name: config.name.clone(),
        mirrors: Arc::new(Mirrors::new(layout.mirrors.clone(), base_env.clone())),
        layout,
        kill_grace: config.kill_grace,
        executor: kiln_exec::select::Executors::new(config.exec.clone()),
        base_env,
        events: events.clone(),
        reports: reports_tx,
    });
    let mut reports = reports_rx;

    // What a crashed predecessor left in the container engine (its owner
    // is dead); no engine, nothing to do.
    tokio::spawn({
        let executors = shared.executor.clone();
        async move {
            let _ = executors.sweep_leftovers().await;
        }
    });

    let Some(reg) = register(&client, &config, &shutdown, events.as_ref()).await? else {
        return Ok(());
    };
    let mut agent = reg.agent_id;
    let wait_ms = config.claim_wait.as_millis().min(u64::MAX as u128) as u64;

    let mut jobs: JoinSet<InstanceId> = JoinSet::new();
    let mut task_jobs: HashMap<tokio::task::Id, InstanceId> = HashMap::new();
    // Capacity held per job, until its report is handed over.
    let mut held: HashMap<InstanceId, u32> = HashMap::new();
    let mut used = 0u32;
    let mut pending: Vec<Delivery> = Vec::new();
    let mut poll: JoinSet<Sent> = JoinSet::new();
    let mut push: JoinSet<Sent> = JoinSet::new();
    let mut asked = (0u32, 0u32); // (by the poll, by the push)
    let mut backoff = Backoff::new(backoff::CONNECT);
    let mut failures = 0u32;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut fatal: Option<AgentError> = None;
    let mut stopping = false;
    // Registrations since the last call the server accepted.
    let mut reregistered = 0u32;

    loop {
        if !stopping && (shutdown.is_cancelled() || fatal.is_some()) {
            stopping = true;
            // The poll carries no reports: nothing is lost with it.
            poll.abort_all();
            asked.0 = 0;
            events.event(&Event::ShuttingDown {
                running: jobs.len(),
            });
        }
        if stopping && jobs.is_empty() && pending.is_empty() && push.is_empty() {
            break;
        }
        let free = config.capacity.saturating_sub(used + asked.0 + asked.1);
        if retry_at.is_none() && push.is_empty() && !pending.is_empty() {
            let give = if stopping { 0 } else { free };
            let deliveries: Vec<Delivery> =
                pending.drain(..pending.len().min(MAX_REPORTS)).collect();
            asked.1 = give;
            push.spawn(send(client.clone(), agent, deliveries, give, 0));
        } else if !stopping && retry_at.is_none() && poll.is_empty() && push.is_empty() && free > 0
        {
            asked.0 = free;
            poll.spawn(send(client.clone(), agent, Vec::new(), free, wait_ms));
        }
        let sent = tokio::select! {
            _ = shutdown.cancelled(), if !stopping => None,
            Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => {
                let id = match &done {
                    Ok((id, _)) => *id,
                    Err(e) => e.id(),
                };
                if let Some(job) = task_jobs.remove(&id)
                    && let Some(w) = held.remove(&job)
                {
                    used = used.saturating_sub(w);
                }
                None
            }
            Some(d) = reports.recv() => {
                if let Some(w) = held.remove(&d.report.job) {
                    used = used.saturating_sub(w);
                }
                pending.push(d);
                None
            }
            Some(done) = poll.join_next(), if !poll.is_empty() => {
                asked.0 = 0;
                Some(done)
            }
            Some(done) = push.join_next(), if !push.is_empty() => {
                asked.1 = 0;
                Some(done)
            }
            _ = sleep_until(retry_at), if retry_at.is_some() => {
                retry_at = None;
                None
            }
        };
        let Some(sent) = sent else { continue };
        let Ok(Sent { deliveries, answer }) = sent else {
            // The call's task panicked or was aborted (the poll, at
            // shutdown): it carried no reports worth keeping.
            continue;
        };
        match answer {
            Ok(resp) => {
                failures = 0;
                reregistered = 0;
                backoff.reset();
                let mut retry = false;
                for (d, outcome) in deliveries.into_iter().zip(
                    resp.reports
                        .into_iter()
                        .map(Some)
                        .chain(std::iter::repeat(None)),
                ) {
                    match outcome_of(&d.report, outcome) {
                        Some(end) => {
                            let _ = d.ack.send(end);
                        }
                        None => {
                            retry = true;
                            pending.push(d);
                        }
                    }
                }
                if retry {
                    failures += 1;
                    let retry_in = backoff.next_delay();
                    events.event(&Event::Retrying {
                        call: Call::Complete,
                        job: None,
                        failures,
                        retry_in,
                        error: "the server could not record a report yet".into(),
                    });
                    retry_at = Some(tokio::time::Instant::now() + retry_in);
                }
                for a in resp.jobs {
                    // A job heavier than the whole capacity is given
                    // only to an idle agent and takes all of it.
                    let weight = a
                        .workflow
                        .jobs
                        .get(a.job_index)
                        .map(|j| j.weight)
                        .unwrap_or(1)
                        .min(config.capacity);
                    used += weight;
                    held.insert(a.job, weight);
                    events.event(&Event::Claimed {
                        job: a.job,
                        attempt: a.attempt,
                        name: a.name.clone(),
                        weight,
                    });
                    let shared = shared.clone();
                    let events = events.clone();
                    let job = a.job;
                    let handle = jobs.spawn(async move {
                        let (job, attempt) = (a.job, a.attempt);
                        let end = job::run(shared, a).await;
                        events.event(&Event::JobEnded { job, attempt, end });
                        job
                    });
                    task_jobs.insert(handle.id(), job);
                }
            }
            Err(e) => {
                // Reports of a failed call go again with the next one.
                let call = if deliveries.is_empty() {
                    Call::Claim
                } else {
                    Call::Complete
                };
                let failed = deliveries;
                match e {
                    source @ (ClientError::NotFound(_)
                    | ClientError::Stale(_)
                    | ClientError::Unauthorized(_))
                        if reregistered >= 2 || stopping =>
                    {
                        reject(failed, &source);
                        fatal.get_or_insert(AgentError::Rejected { call, source });
                    }
                    ClientError::NotFound(_)
                    | ClientError::Stale(_)
                    | ClientError::Unauthorized(_) => {
                        pending.extend(failed);
                        reregistered += 1;
                        match register(&client, &config, &shutdown, events.as_ref()).await {
                            Ok(Some(reg)) => agent = reg.agent_id,
                            Ok(None) => {}
                            Err(e) => fatal = Some(e),
                        }
                    }
                    // A garbled answer may be a proxy's page or a newer
                    // server: worth another try, like a 5xx.
                    e if e.is_transient() || matches!(e, ClientError::Protocol(_)) => {
                        pending.extend(failed);
                        failures += 1;
                        let retry_in = backoff.next_delay();
                        events.event(&Event::Retrying {
                            call,
                            job: None,
                            failures,
                            retry_in,
                            error: e.to_string(),
                        });
                        retry_at = Some(tokio::time::Instant::now() + retry_in);
                    }
                    source => {
                        reject(failed, &source);
                        fatal.get_or_insert(AgentError::Rejected { call, source });
                    }
                }
            }
        }
    }
    match fatal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A `work` call and what came back.
struct Sent {
    deliveries: Vec<Delivery>,
    answer: Result<WorkResponse, ClientError>,
}

async fn send(
    client: Client,
    agent: AgentId,
    deliveries: Vec<Delivery>,
    free_capacity: u32,
    wait_ms: u64,
) -> Sent {
    let req = WorkRequest {
        agent_id: agent,
        reports: deliveries.iter().map(|d| d.report.clone()).collect(),
        free_capacity,
        wait_ms,
    };
    let answer = client.work(&req).await;
    Sent { deliveries, answer }
}

/// How a report's outcome ends its job; `None`: send it again.
fn outcome_of(report: &Report, outcome: Option<ReportOutcome>) -> Option<JobEnd> {
    let Some(outcome) = outcome else {
        // The server answered fewer outcomes than reports: send again.
        return None;
    };
    if outcome.job != report.job || outcome.attempt != report.attempt {
        return None;
    }
    let Some(error) = outcome.error else {
        return Some(JobEnd::Reported(report.result.status));
    };
    match report_error(&error) {
        ClientError::Stale(_) | ClientError::NotLeaseHolder(_) => Some(JobEnd::Stale),
        e if e.is_transient() => None,
        e => Some(JobEnd::Rejected(e.to_string())),
    }
}

/// The call was refused for good: its reports end unreported.
fn reject(deliveries: Vec<Delivery>, why: &ClientError) {
    for d in deliveries {
        let _ = d.ack.send(JobEnd::Rejected(why.to_string()));
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn validate(config: &AgentConfig) -> Result<(), AgentError> {
    let problem = if config.server.trim().is_empty() {
        Some("the server URL is empty".to_owned())
    } else if config.name.trim().is_empty() {
        Some("the agent name is empty".to_owned())
    } else if config.capacity == 0 {
        Some("capacity must be at least 1".to_owned())
    } else if config.claim_wait.is_zero() {
        Some("the claim wait must be longer than zero".to_owned())
    } else {
        None
    };
    match problem {
        Some(p) => Err(AgentError::Config(p)),
        None => Ok(()),
    }
}

/// Register, retrying transient failures with backoff. `None`: shutdown
/// came first.
async fn register(
    client: &Client,
    config: &AgentConfig,
    shutdown: &CancellationToken,
    events: &dyn AgentEvents,
) -> Result<Option<RegisterResponse>, AgentError> {
    let req = RegisterRequest {
        name: config.name.clone(),
        labels: config.labels.clone(),
        capacity: config.capacity,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let mut backoff = Backoff::new(backoff::CONNECT);
    let mut failures = 0;
    loop {
        let answer = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            r = client.register(&req) => r,
        };
        match answer {
            Ok(reg) => {
                events.event(&Event::Registered {
                    agent: reg.agent_id,
                    server: client.base().to_owned(),
                });
                return Ok(Some(reg));
            }
            Err(e) if e.is_transient() => {
                failures += 1;
                let retry_in = backoff.next_delay();
                events.event(&Event::Retrying {
                    call: Call::Register,
                    job: None,
                    failures,
                    retry_in,
                    error: e.to_string(),
                });
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(retry_in) => {}
                }
            }
            Err(source) => {
                return Err(AgentError::Rejected {
                    call: Call::Register,
                    source,
                });
            }
        }
    }
}

/// The environment steps start from: the agent's, without its tokens.
fn base_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !is_secret(k))
        .collect()
}

fn is_secret(name: &str) -> bool {
    name.starts_with("KILN_TOKEN") || name.starts_with("KILN_AGENT_TOKEN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_not_passed_to_jobs() {
        assert!(is_secret("KILN_TOKEN"));
        assert!(is_secret("KILN_AGENT_TOKEN_FILE"));
        assert!(!is_secret("KILN_WORKSPACE"));
        assert!(!is_secret("PATH"));
    }
}
