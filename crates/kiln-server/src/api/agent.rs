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
    ClaimRequest, Completion, Heartbeat, HeartbeatReply, LogChunk, RegisterRequest,
    RegisterResponse, SESSION_HEADER, SessionSecret,
};
use kiln_proto::api::Role;
use kiln_store::types::AgentRecord;
use std::time::Duration;

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
