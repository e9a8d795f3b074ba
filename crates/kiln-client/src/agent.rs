//! The agent protocol, for agents: one typed method per route of
//! `kiln_proto::agent` (see `docs/protocol.md`).
//!
//! Every method makes exactly one request; retrying is the caller's
//! decision ([`ClientError::is_transient`] says when it is worth it, and
//! [`ClientError::Stale`] or [`ClientError::NotLeaseHolder`] means the
//! attempt is no longer the caller's).
//! Every request has a time limit, so a server that accepts a connection
//! and never answers looks like an unreachable one instead of hanging the
//! agent: [`REQUEST_TIMEOUT`] for the short calls, `wait_ms` plus
//! [`CLAIM_SLACK`] for the long-poll.

use crate::{Client, ClientError, Result};
use kiln_model::InstanceId;
use kiln_proto::agent::{
    Assignment, ClaimRequest, Completion, Heartbeat, HeartbeatReply, LogChunk, RegisterRequest,
    RegisterResponse, WorkRequest, WorkResponse,
};
use kiln_proto::api::ErrorBody;
use kiln_proto::routes;
use std::time::Duration;

/// Time limit of register, heartbeat, logs and complete requests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer than `wait_ms` a claim may take before it counts as
/// unanswered: the server answers 204 at `wait_ms`, and the answer needs
/// time to travel.
pub const CLAIM_SLACK: Duration = Duration::from_secs(10);

impl Client {
    /// `POST register`: announce the agent; the answer carries its id and
    /// the timings to use. Registering again under the same name is allowed
    /// (same id, labels updated).
    ///
    /// The answer's session secret is sent with every later request of this
    /// client and its clones: it names this registration, and replaces any
    /// earlier one of the same name.
    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse> {
        let resp: RegisterResponse = self
            .json(
                self.request(reqwest::Method::POST, routes::AGENT_REGISTER)
                    .timeout(REQUEST_TIMEOUT)
                    .json(req),
            )
            .await?;
        self.set_session(resp.session.clone());
        Ok(resp)
    }

    /// `POST claim`, a long-poll: `Ok(Some)` is a job now leased to this
    /// agent, `Ok(None)` (204) means nothing fitting was queued within
    /// `wait_ms`. The request may stay open for `wait_ms`; it is given
    /// [`CLAIM_SLACK`] more before it fails as [`ClientError::Unreachable`].
    ///
    /// Dropping the returned future while the request is open may lose an
    /// assignment the server made in that instant; its lease then expires
    /// and the server requeues the job.
    pub async fn claim(&self, req: &ClaimRequest) -> Result<Option<Assignment>> {
        let timeout = Duration::from_millis(req.wait_ms) + CLAIM_SLACK;
        let resp = self
            .send_raw(
                self.request(reqwest::Method::POST, routes::AGENT_CLAIM)
                    .timeout(timeout)
                    .json(req),
            )
            .await?;
        let Some(resp) = resp else {
            return Ok(None);
        };
        // A body cut off by the time limit or a dropped connection is a
        // missing answer (transient), not a malformed one.
        let body = resp.bytes().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ClientError::Protocol(format!("claim: {e}")))
    }

    /// `POST work`, a long-poll like [`Client::claim`] that first delivers
    /// `req.reports`: the answer has one outcome per report (see
    /// [`report_error`] for what a failed one means) and the jobs now
    /// leased to this agent. With no report and `wait_ms` > 0 it may stay
    /// open for `wait_ms` (plus [`CLAIM_SLACK`]).
    ///
    /// A failed call delivered nothing the caller can count on: reports
    /// may or may not have been recorded (sending them again gets `stale`
    /// for those that were), and jobs leased in the answer are lost to
    /// this agent until their leases expire.
    pub async fn work(&self, req: &WorkRequest) -> Result<WorkResponse> {
        let timeout = Duration::from_millis(req.wait_ms)
            + if req.wait_ms > 0 {
                CLAIM_SLACK
            } else {
                REQUEST_TIMEOUT
            };
        let resp = self
            .send_raw(
                self.request(reqwest::Method::POST, routes::AGENT_WORK)
                    .timeout(timeout)
                    .json(req),
            )
            .await?
            .ok_or_else(|| ClientError::Protocol("work: an empty answer".into()))?;
        let body = resp.bytes().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(format!("work: {e}")))
    }

    /// `POST heartbeat` for `job`: extends the lease of `hb.attempt`; the
    /// reply says whether the job was cancelled. [`ClientError::Stale`]:
    /// the lease is gone (another attempt owns the job, or it ended).
    pub async fn heartbeat(&self, job: InstanceId, hb: &Heartbeat) -> Result<HeartbeatReply> {
        self.json(
            self.request(reqwest::Method::POST, &routes::agent_heartbeat(job))
                .timeout(REQUEST_TIMEOUT)
                .json(hb),
        )
        .await
    }

    /// `POST logs` for `job`: store one numbered chunk. Idempotent on
    /// `(job, attempt, seq)`: sending a chunk again is accepted and ignored.
    pub async fn send_logs(&self, job: InstanceId, chunk: &LogChunk) -> Result<()> {
        self.send_raw(
            self.request(reqwest::Method::POST, &routes::agent_logs(job))
                .timeout(REQUEST_TIMEOUT)
                .json(chunk),
        )
        .await
        .map(|_| ())
    }

    /// `POST complete` for `job`: report the attempt's result. Once it was
    /// stored, a repeat may answer [`ClientError::Stale`] (the attempt is
    /// no longer running); callers treat that as the end too.
    pub async fn complete(&self, job: InstanceId, completion: &Completion) -> Result<()> {
        self.send_raw(
            self.request(reqwest::Method::POST, &routes::agent_complete(job))
                .timeout(REQUEST_TIMEOUT)
                .json(completion),
        )
        .await
        .map(|_| ())
    }
}

/// A report's error in a `work` answer as a [`ClientError`], by its kind:
/// [`ClientError::Stale`] and [`ClientError::NotLeaseHolder`] end the
/// attempt for the agent, a transient one is worth sending again.
pub fn report_error(body: &ErrorBody) -> ClientError {
    crate::error_of(0, body.kind, body.error.clone())
}
