//! The agent protocol's endpoints (see `docs/protocol.md`). Only agent
//! tokens reach them, and every call after `register` names its agent by
//! the session secret that `register` handed out: the engine then accepts
//! a report on a job only from the agent that holds the attempt's lease.

use super::AppState;
use crate::auth;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use kiln_model::InstanceId;
use kiln_proto::agent::{
    Assignment, ClaimRequest, Completion, Heartbeat, HeartbeatReply, LogChunk, MAX_JOBS_PER_CLAIM,
    MAX_REPORTS, RegisterRequest, RegisterResponse, ReportOutcome, SESSION_HEADER, SessionSecret,
    WorkRequest, WorkResponse,
};
use kiln_proto::api::Role;
use kiln_proto::routes as r;
use kiln_store::types::AgentRecord;
use std::time::Duration;

use super::openapi::{ApiErrors, BodyErrors};

impl AppState {
    /// The agent token's role, then the agent named by the session header.
    async fn agent(&self, headers: &HeaderMap) -> ApiResult<AgentRecord> {
        self.require(headers, Role::Agent).await?;
        let secret = headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::Unauthorized(format!(
                    "missing `{SESSION_HEADER}` header: register the agent first"
                ))
            })?;
        self.engine
            .store
            .agent_by_session(&auth::hash(secret))
            .await?
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "unknown agent session: it was replaced by a newer registration of this \
                     agent's name, or the server's data was reset; register again"
                        .into(),
                )
            })
    }
}

#[utoipa::path(
    post,
    path = r::AGENT_REGISTER,
    operation_id = "agent_register",
    tag = "agent",
    summary = "Register: an agent id, a session secret and the timings",
    description = "Registering again under the same name replaces the session: the previous \
                   one gets 401.",
    extensions(("x-kiln-role" = json!("agent"))),
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "Registered", body = RegisterResponse),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn register(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<Json<RegisterResponse>> {
    s.require(&headers, Role::Agent).await?;
    let session = auth::new_secret()?;
    let a = s
        .engine
        .store
        .register_agent(
            &req.name,
            &req.labels,
            req.capacity.max(1),
            &auth::hash(&session),
            Timestamp::now(),
        )
        .await?;
    Ok(Json(RegisterResponse {
        agent_id: a.id,
        session: SessionSecret::new(session),
        heartbeat_ms: s.engine.cfg.heartbeat.as_millis() as u64,
        lease_ms: s.engine.cfg.lease.as_millis() as u64,
    }))
}

#[utoipa::path(
    post,
    path = r::AGENT_CLAIM,
    operation_id = "agent_claim",
    tag = "agent",
    summary = "Long-poll for a job that fits the agent's labels and free capacity",
    extensions(("x-kiln-role" = json!("agent")), ("x-kiln-session" = json!(true))),
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "A leased job; its `attempt` is the fencing token", body = Assignment),
        (status = 204, description = "No job within `wait_ms`"),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn claim(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<ClaimRequest>,
) -> ApiResult<Response> {
    let agent = s.agent(&headers).await?;
    if req.agent_id != agent.id {
        return Err(ApiError::BadRequest(format!(
            "the claim names agent {} but the session is agent {}'s",
            req.agent_id, agent.id
        )));
    }
    s.engine
        .store
        .touch_agent(agent.id, Timestamp::now())
        .await?;
    match s
        .engine
        .claim(
            &agent,
            req.free_capacity,
            Duration::from_millis(req.wait_ms),
        )
        .await?
    {
        Some(a) => Ok(Json(a).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[utoipa::path(
    post,
    path = r::AGENT_WORK,
    operation_id = "agent_work",
    tag = "agent",
    summary = "Report finished jobs and claim new ones in one round trip",
    description = "Records each report (its last log chunk, then its result) and then \
                   long-polls like `claim`, leasing as many jobs as `free_capacity` takes \
                   (at most 32). Each report gets its own outcome; one that fails does not \
                   fail the call.",
    extensions(("x-kiln-role" = json!("agent")), ("x-kiln-session" = json!(true))),
    request_body = WorkRequest,
    responses(
        (status = 200, description = "The reports' outcomes and the leased jobs", body = WorkResponse),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn work(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<WorkRequest>,
) -> ApiResult<Json<WorkResponse>> {
    let agent = s.agent(&headers).await?;
    if req.agent_id != agent.id {
        return Err(ApiError::BadRequest(format!(
            "the request names agent {} but the session is agent {}'s",
            req.agent_id, agent.id
        )));
    }
    if req.reports.len() > MAX_REPORTS {
        return Err(ApiError::BadRequest(format!(
            "{} reports in one call; at most {MAX_REPORTS}",
            req.reports.len()
        )));
    }
    let keys: Vec<(InstanceId, u32)> = req.reports.iter().map(|r| (r.job, r.attempt)).collect();
    if keys.is_empty() {
        // Reports and claims mark the agent as seen; a bare poll does it here.
        s.engine
            .store
            .touch_agent(agent.id, Timestamp::now())
            .await?;
    }
    let outcomes = s.engine.report(agent.id, req.reports).await?;
    let reports: Vec<ReportOutcome> = keys
        .into_iter()
        .zip(outcomes)
        .map(|((job, attempt), outcome)| ReportOutcome {
            job,
            attempt,
            error: outcome.err().map(|e| ApiError::from(e).body()),
        })
        .collect();
    let claimed = s
        .engine
        .claim_jobs(
            &agent,
            req.free_capacity,
            MAX_JOBS_PER_CLAIM,
            Duration::from_millis(req.wait_ms),
        )
        .await;
    let jobs = match claimed {
        Ok(jobs) => jobs,
        // The reports are recorded: answer their outcomes (sent again,
        // they would only be stale) and let the agent ask again.
        Err(e) if !reports.is_empty() => {
            tracing::warn!(agent = %agent.id, error = %e, "claiming after reports failed");
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(WorkResponse { reports, jobs }))
}

#[utoipa::path(
    post,
    path = r::AGENT_HEARTBEAT,
    operation_id = "agent_heartbeat",
    tag = "agent",
    summary = "Extend the lease; the reply says whether to cancel",
    extensions(("x-kiln-role" = json!("agent")), ("x-kiln-session" = json!(true))),
    params(("job" = InstanceId, Path, description = "The job instance the attempt belongs to")),
    request_body = Heartbeat,
    responses(
        (status = 200, description = "The lease is extended", body = HeartbeatReply),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn heartbeat(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<InstanceId>,
    Json(hb): Json<Heartbeat>,
) -> ApiResult<Json<HeartbeatReply>> {
    let agent = s.agent(&headers).await?;
    let cancel = s.engine.heartbeat(agent.id, job, hb.attempt).await?;
    Ok(Json(HeartbeatReply { cancel }))
}

#[utoipa::path(
    post,
    path = r::AGENT_LOGS,
    operation_id = "agent_logs",
    tag = "agent",
    summary = "Upload a numbered log chunk (a chunk seen before is accepted and ignored)",
    extensions(("x-kiln-role" = json!("agent")), ("x-kiln-session" = json!(true))),
    params(("job" = InstanceId, Path, description = "The job instance the attempt belongs to")),
    request_body = LogChunk,
    responses(
        (status = 204, description = "Stored (or seen before)"),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn logs(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<InstanceId>,
    Json(chunk): Json<LogChunk>,
) -> ApiResult<StatusCode> {
    let agent = s.agent(&headers).await?;
    s.engine
        .logs(agent.id, job, chunk.attempt, chunk.seq, chunk.lines)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = r::AGENT_COMPLETE,
    operation_id = "agent_complete",
    tag = "agent",
    summary = "Report the attempt's result (retried until acknowledged)",
    extensions(("x-kiln-role" = json!("agent")), ("x-kiln-session" = json!(true))),
    params(("job" = InstanceId, Path, description = "The job instance the attempt belongs to")),
    request_body = Completion,
    responses(
        (status = 204, description = "Recorded"),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn complete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<InstanceId>,
    Json(c): Json<Completion>,
) -> ApiResult<StatusCode> {
    let agent = s.agent(&headers).await?;
    s.engine
        .complete(agent.id, job, c.attempt, c.result)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
