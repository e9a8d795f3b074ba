//! A job's output on its way to the server.
//!
//! [`JobLog`] is the runner's [`JobObserver`]: it turns runner events into
//! [`WireLine`]s (step output under the step's number; kiln's notes about
//! the job as `System` lines of step 0; a `System` line under the step's
//! number when a step starts and when it ends) and pushes them into the
//! job's [`Spool`]. [`ship`] takes batches from the spool and sends them as
//! chunks numbered 0, 1, 2, … for the attempt, one at a time, each retried
//! with backoff until acknowledged; the server stores a chunk once, so a
//! chunk sent again after a lost answer is harmless.

use crate::backoff::{self, Backoff};
use crate::events::{AgentEvents, Call, Event};
use crate::spool::Spool;
use jiff::Timestamp;
use kiln_client::{Client, ClientError};
use kiln_exec::port::{LogLine, Stream};
use kiln_exec::runner::JobObserver;
use kiln_model::{InstanceId, StepStatus};
use kiln_proto::agent::{LogChunk, WireLine};
use kiln_proto::api::LogStream;
use kiln_proto::results::StepResult;
use std::sync::Arc;
use std::time::Duration;

/// How long a line may wait for company before it is sent.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(150);

pub(crate) struct JobLog {
    spool: Arc<Spool>,
}

impl JobLog {
    pub(crate) fn new(spool: Arc<Spool>) -> Self {
        JobLog { spool }
    }

    fn system(&self, step: u32, text: String) {
        self.spool.push(WireLine {
            step,
            stream: LogStream::System,
            at: Timestamp::now(),
            text,
        });
    }
}

impl JobObserver for JobLog {
    fn step_started(&self, number: u32, name: &str) {
        self.system(number, format!("{name}: started"));
    }

    fn line(&self, number: u32, line: LogLine) {
        self.spool.push(WireLine {
            step: number,
            stream: match line.stream {
                Stream::Stdout => LogStream::Stdout,
                Stream::Stderr => LogStream::Stderr,
            },
            at: Timestamp::try_from(line.at).unwrap_or_else(|_| Timestamp::now()),
            text: line.text,
        });
    }

    fn step_finished(&self, result: &StepResult) {
        // Skipped steps never started: no line, the result says it.
        let verb = match result.status {
            StepStatus::Skipped => return,
            StepStatus::Success => "succeeded",
            StepStatus::Failure => "failed",
            StepStatus::Cancelled => "cancelled",
        };
        let mut text = format!(
            "{}: {verb} in {:.1}s",
            result.name,
            result.duration_ms as f64 / 1000.0
        );
        if let Some(reason) = &result.reason {
            text.push_str(&format!(" ({reason})"));
        }
        self.system(result.number, text);
    }

    fn note(&self, text: &str) {
        self.system(0, text.to_owned());
    }
}

/// How shipping ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Shipped {
    /// Every line taken was acknowledged and the spool is closed (after
    /// [`Spool::finish`], up to a chunk of lines may be left in it);
    /// the next chunk's number.
    All { next_seq: u64 },
    /// 409: the attempt is no longer ours; the spool now discards.
    Stale,
    /// The server refused a chunk for good; the spool now discards.
    Rejected(String),
}

/// Send the spool's lines until it is closed and drained (or, after
/// [`Spool::finish`], drained to its last chunk). Cancel-safe at
/// any await point (the caller aborts it when the lease is lost).
pub(crate) async fn ship(
    client: Client,
    job: InstanceId,
    attempt: u32,
    spool: Arc<Spool>,
    events: Arc<dyn AgentEvents>,
) -> Shipped {
    let mut seq = 0u64;
    let mut backoff = Backoff::new(backoff::DELIVER);
    while let Some(lines) = spool.next_batch(FLUSH_INTERVAL).await {
        let chunk = LogChunk {
            attempt,
            seq,
            lines,
        };
        let mut failures = 0;
        loop {
            match client.send_logs(job, &chunk).await {
                Ok(()) => break,
                Err(e @ (ClientError::Stale(_) | ClientError::NotLeaseHolder(_))) => {
                    spool.discard();
                    events.event(&Event::LogsAbandoned {
                        job,
                        attempt,
                        reason: format!("the attempt is no longer this agent's: {e}"),
                    });
                    return Shipped::Stale;
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    let retry_in = backoff.next_delay();
                    events.event(&Event::Retrying {
                        call: Call::Logs,
                        job: Some(job),
                        failures,
                        retry_in,
                        error: e.to_string(),
                    });
                    tokio::time::sleep(retry_in).await;
                }
                Err(e) => {
                    spool.discard();
                    let reason = e.to_string();
                    events.event(&Event::LogsAbandoned {
                        job,
                        attempt,
                        reason: reason.clone(),
                    });
                    return Shipped::Rejected(reason);
                }
            }
        }
        backoff.reset();
        seq += 1;
    }
    Shipped::All { next_seq: seq }
}
