//! A job's heartbeat: keeps the lease alive from the claim until the
//! completion is acknowledged.
//!
//! - a reply with `cancel: true` cancels the job gracefully (once; the
//!   runner still runs `if: always()` steps);
//! - 409 (another attempt owns the job) or 404 (the server no longer knows
//!   it) means the lease is gone: the job is killed at once and marked
//!   lost, so that nothing more is reported for it;
//! - any other failure keeps the job running and the heartbeat going at
//!   its usual pace: a restarted server extends every lease, so a job
//!   outlives the server's downtime.

use crate::events::{AgentEvents, Call, Event};
use kiln_client::{Client, ClientError};
use kiln_exec::port::Cancel;
use kiln_model::InstanceId;
use kiln_proto::agent::Heartbeat;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub(crate) struct Beat {
    pub client: Client,
    pub job: InstanceId,
    pub attempt: u32,
    pub every: Duration,
    /// The job's cancel tokens.
    pub cancel: Cancel,
    /// Cancelled here when the lease is gone.
    pub lost: CancellationToken,
    /// Cancelled by the job when its completion is about to be sent: a
    /// 409 from then on may answer that completion, and ends the beat
    /// without declaring the lease lost.
    pub reporting: CancellationToken,
    pub events: Arc<dyn AgentEvents>,
}

/// Beat until `stop` is cancelled or the lease is lost.
pub(crate) async fn beat(b: Beat, stop: CancellationToken) {
    let every = b.every.max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate; the claim itself started the lease.
    ticker.tick().await;
    let mut failures = 0;
    let hb = Heartbeat { attempt: b.attempt };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // An answer slower than the interval counts as none: a stalled
        // request must not hold back the next heartbeat past the lease.
        let limit = every.max(Duration::from_secs(1));
        let reply = tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout(limit, b.client.heartbeat(b.job, &hb)) => {
                r.unwrap_or_else(|_| Err(ClientError::Unreachable {
                    url: b.client.base().to_owned(),
                    message: format!("no answer within {:.1}s", limit.as_secs_f64()),
                }))
            }
        };
        match reply {
            Ok(reply) => {
                failures = 0;
                if reply.cancel && !b.cancel.graceful.is_cancelled() {
                    b.events.event(&Event::CancelRequested {
                        job: b.job,
                        attempt: b.attempt,
                    });
                    b.cancel.graceful.cancel();
                }
            }
            Err(
                ClientError::Stale(_) | ClientError::NotFound(_) | ClientError::NotLeaseHolder(_),
            ) if b.reporting.is_cancelled() => {
                return;
            }
            // The attempt is not ours any more (another attempt or agent
            // holds the job, or it ended): stop the steps.
            Err(
                ClientError::Stale(_) | ClientError::NotFound(_) | ClientError::NotLeaseHolder(_),
            ) => {
                b.events.event(&Event::LeaseLost {
                    job: b.job,
                    attempt: b.attempt,
                });
                b.lost.cancel();
                b.cancel.immediate.cancel();
                return;
            }
            Err(
                e @ (ClientError::Unreachable { .. }
                | ClientError::Server { .. }
                | ClientError::Conflict(_)
                | ClientError::Invalid(_)
                | ClientError::Unauthorized(_)
                | ClientError::Forbidden(_)
                | ClientError::Protocol(_)),
            ) => {
                failures += 1;
                b.events.event(&Event::Retrying {
                    call: Call::Heartbeat,
                    job: Some(b.job),
                    failures,
                    retry_in: every,
                    error: e.to_string(),
                });
            }
        }
    }
}
