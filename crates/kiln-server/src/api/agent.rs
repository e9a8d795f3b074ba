//! The agent protocol's endpoints (see `docs/protocol.md`). Only agent
//! tokens reach them.

use super::AppState;
use crate::error::ApiResult;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use kiln_model::InstanceId;
use kiln_proto::agent::{
    ClaimRequest, Completion, Heartbeat, HeartbeatReply, LogChunk, RegisterRequest,
    RegisterResponse,
};
use kiln_proto::api::Role;
use std::time::Duration;

pub async fn register(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<Json<RegisterResponse>> {
    s.require(&headers, Role::Agent).await?;
    let a = s
        .engine
        .store
        .register_agent(
            &req.name,
            &req.labels,
            req.capacity.max(1),
            Timestamp::now(),
        )
        .await?;
    Ok(Json(RegisterResponse {
        agent_id: a.id,
        heartbeat_ms: s.engine.cfg.heartbeat.as_millis() as u64,
        lease_ms: s.engine.cfg.lease.as_millis() as u64,
    }))
}

pub async fn claim(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<ClaimRequest>,
) -> ApiResult<Response> {
    s.require(&headers, Role::Agent).await?;
    let agent = s.engine.store.agent(req.agent_id).await?;
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
    s.require(&headers, Role::Agent).await?;
    let cancel = s.engine.heartbeat(job, hb.attempt).await?;
    Ok(Json(HeartbeatReply { cancel }))
}

pub async fn logs(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<InstanceId>,
    Json(chunk): Json<LogChunk>,
) -> ApiResult<StatusCode> {
    s.require(&headers, Role::Agent).await?;
    s.engine
        .logs(job, chunk.attempt, chunk.seq, chunk.lines)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn complete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<InstanceId>,
    Json(c): Json<Completion>,
) -> ApiResult<StatusCode> {
    s.require(&headers, Role::Agent).await?;
    s.engine.complete(job, c.attempt, c.result).await?;
    Ok(StatusCode::NO_CONTENT)
}
