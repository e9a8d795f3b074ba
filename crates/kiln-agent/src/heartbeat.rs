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
//!   outlives a short downtime of the server;
//! - but once no heartbeat was acknowledged for the lease's length (less
//!   a margin), the lease may have expired and the server may have given
//!   the job to another agent: the job is killed and marked lost, as on a
//!   409 (the fence). The agent cannot tell a server that is down from one
//!   it is cut off from, and only the second runs the job again; killing
//!   the job in both cases is what keeps two attempts from running at
//!   once. The fence is not applied once the completion is on its way:
//!   the steps have ended then, and the completion's answer decides.

use crate::events::{AgentEvents, Call, Event};
use kiln_client::{Client, ClientError};
use kiln_exec::port::Cancel;
use kiln_model::InstanceId;
use kiln_proto::agent::Heartbeat;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub(crate) struct Beat {
    pub client: Client,
    pub job: InstanceId,
    pub attempt: u32,
    pub every: Duration,
    /// The lease's length: the server requeues the job once no heartbeat
    /// extended it for this long.
    pub lease: Duration,
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

/// How much earlier than the lease's length without an acknowledged
/// heartbeat the agent kills a job: `lease / FENCE_MARGIN_DIVISOR`. It
/// covers what the agent cannot measure: the time between the server
/// starting or extending the lease and the agent learning of it (the
/// claim's and heartbeats' latency) and the time killing takes.
pub(crate) const FENCE_MARGIN_DIVISOR: u32 = 10;

/// When a job whose last acknowledged heartbeat was sent at `acked` must
/// be killed: the earliest moment its lease may have expired, less the
/// margin. `None` (no fence) for a lease not longer than the heartbeat
/// interval, which no server hands out.
pub(crate) fn fence_at(acked: Instant, lease: Duration, every: Duration) -> Option<Instant> {
    if lease <= every {
        return None;
    }
    Some(acked + (lease - lease / FENCE_MARGIN_DIVISOR))
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Beat until `stop` is cancelled or the lease is lost.
pub(crate) async fn beat(b: Beat, stop: CancellationToken) {
    let every = b.every.max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate; the claim itself started the lease,
    // shortly before this task did (the margin covers the difference).
    ticker.tick().await;
    let mut acked = Instant::now();
    let mut failures = 0;
    let hb = Heartbeat { attempt: b.attempt };
    loop {
        let fence = fence_at(acked, b.lease, every).filter(|_| !b.reporting.is_cancelled());
        tokio::select! {
            _ = stop.cancelled() => return,
            () = sleep_until_opt(fence) => return expired(&b, acked),
            _ = ticker.tick() => {}
        }
        // An answer slower than the interval counts as none: a stalled
        // request must not hold back the next heartbeat past the lease.
        let limit = every.max(Duration::from_secs(1));
        let sent = Instant::now();
        let reply = tokio::select! {
            _ = stop.cancelled() => return,
            () = sleep_until_opt(fence) => return expired(&b, acked),
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
                // The server extended the lease when it took the request,
                // which was after it was sent.
                acked = sent;
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

/// The fence: the lease may have expired. Kill the job and mark it lost,
/// as on a 409; the server requeues it when the lease has expired.
fn expired(b: &Beat, acked: Instant) {
    b.events.event(&Event::LeaseExpired {
        job: b.job,
        attempt: b.attempt,
        silent: acked.elapsed(),
    });
    b.lost.cancel();
    b.cancel.immediate.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_falls_a_margin_before_the_lease_ends() {
        let acked = Instant::now();
        let lease = Duration::from_secs(15);
        let every = Duration::from_secs(5);
        assert_eq!(
            fence_at(acked, lease, every),
            Some(acked + Duration::from_millis(13_500))
        );
        assert_eq!(fence_at(acked, every, every), None);
    }
}
