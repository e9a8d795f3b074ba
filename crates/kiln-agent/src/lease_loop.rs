//! The agent's main loop: register, then claim whenever capacity is free.
//!
//! At most one claim is open at a time, asking for all the capacity that
//! is free when it is sent; it is sent again the moment it returns (with
//! a job or with 204), so pickup latency is the server's, never a polling
//! interval's. With no free capacity the loop waits for a job to end.
//! Capacity freed while a claim is open is offered with the next claim,
//! at the latest `claim_wait` later (the open claim is not abandoned: its
//! answer may be a job already leased to this agent).
//!
//! Failures: a transient one (unreachable, 5xx, a garbled answer) backs
//! off and retries; 404, 409 or 401 on a claim (the server does not know
//! this agent or its session, as after its database was reset, or another
//! process registered the same name) registers again, twice at most in a
//! row; then, and on 403 and other refusals, the agent stops claiming,
//! lets the running jobs finish, and ends with [`AgentError::Rejected`].

use crate::backoff::{self, Backoff};
use crate::checkout::Mirrors;
use crate::error::AgentError;
use crate::events::{AgentEvents, Call, Event};
use crate::job::{self, Shared};
use crate::{AgentConfig, workdir};
use kiln_client::{Client, ClientError};
use kiln_model::InstanceId;
use kiln_proto::agent::{Assignment, ClaimRequest, RegisterRequest, RegisterResponse};
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
    let shared = Arc::new(Shared {
        client: client.clone(),
        name: config.name.clone(),
        mirrors: Arc::new(Mirrors::new(layout.mirrors.clone(), base_env.clone())),
        layout,
        kill_grace: config.kill_grace,
        executor: kiln_exec::select::Executors::new(config.exec.clone()),
        base_env,
        events: events.clone(),
    });

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

    let mut jobs: JoinSet<(InstanceId, u32)> = JoinSet::new();
    let mut weights: HashMap<tokio::task::Id, u32> = HashMap::new();
    let mut used = 0u32;
    let mut claims: JoinSet<Result<Option<Assignment>, ClientError>> = JoinSet::new();
    let mut backoff = Backoff::new(backoff::CONNECT);
    let mut failures = 0u32;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut fatal: Option<AgentError> = None;
    let mut stopping = false;
    // Registrations since the last claim the server accepted.
    let mut reregistered = 0u32;

    loop {
        if !stopping && (shutdown.is_cancelled() || fatal.is_some()) {
            stopping = true;
            claims.abort_all();
            events.event(&Event::ShuttingDown {
                running: jobs.len(),
            });
        }
        if stopping && jobs.is_empty() {
            break;
        }
        let free = config.capacity.saturating_sub(used);
        if !stopping && claims.is_empty() && free > 0 && retry_at.is_none() {
            let req = ClaimRequest {
                agent_id: agent,
                free_capacity: free,
                wait_ms,
            };
            let client = client.clone();
            claims.spawn(async move { client.claim(&req).await });
        }
        tokio::select! {
            _ = shutdown.cancelled(), if !stopping => {}
            Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => {
                let id = match &done {
                    Ok((id, _)) => *id,
                    Err(e) => e.id(),
                };
                used = used.saturating_sub(weights.remove(&id).unwrap_or(0));
            }
            Some(claimed) = claims.join_next(), if !claims.is_empty() => {
                let claimed = claimed.unwrap_or_else(|e| Err(ClientError::Protocol(e.to_string())));
                match claimed {
                    Ok(Some(a)) => {
                        failures = 0;
                        reregistered = 0;
                        backoff.reset();
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
                        events.event(&Event::Claimed {
                            job: a.job,
                            attempt: a.attempt,
                            name: a.name.clone(),
                            weight,
                        });
                        let shared = shared.clone();
                        let events = events.clone();
                        let handle = jobs.spawn(async move {
                            let (job, attempt) = (a.job, a.attempt);
                            let end = job::run(shared, a).await;
                            events.event(&Event::JobEnded { job, attempt, end });
                            (job, attempt)
                        });
                        weights.insert(handle.id(), weight);
                    }
                    Ok(None) => {
                        failures = 0;
                        reregistered = 0;
                        backoff.reset();
                    }
                    Err(source @ (ClientError::NotFound(_)
                    | ClientError::Stale(_)
                    | ClientError::Unauthorized(_)))
                        if reregistered >= 2 =>
                    {
                        fatal = Some(AgentError::Rejected { call: Call::Claim, source });
                    }
                    Err(ClientError::NotFound(_) | ClientError::Stale(_) | ClientError::Unauthorized(_)) => {
                        reregistered += 1;
                        match register(&client, &config, &shutdown, events.as_ref()).await {
                            Ok(Some(reg)) => agent = reg.agent_id,
                            Ok(None) => {}
                            Err(e) => fatal = Some(e),
                        }
                    }
                    // A garbled answer may be a proxy's page or a newer
                    // server: worth another try, like a 5xx.
                    Err(e) if e.is_transient() || matches!(e, ClientError::Protocol(_)) => {
                        failures += 1;
                        let retry_in = backoff.next_delay();
                        events.event(&Event::Retrying {
                            call: Call::Claim,
                            job: None,
                            failures,
                            retry_in,
                            error: e.to_string(),
                        });
                        retry_at = Some(tokio::time::Instant::now() + retry_in);
                    }
                    Err(source) => {
                        fatal = Some(AgentError::Rejected { call: Call::Claim, source });
                    }
                }
            }
            _ = sleep_until(retry_at), if retry_at.is_some() => retry_at = None,
        }
    }
    match fatal {
        Some(e) => Err(e),
        None => Ok(()),
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
