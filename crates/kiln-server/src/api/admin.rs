//! Repositories, agents, the queue, tokens, health.

use super::AppState;
use crate::auth;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use jiff::Timestamp;
use kiln_proto::api::{AddRepo, AgentInfo, CreateToken, CreatedToken, QueuedJob, RepoInfo, Role};
use std::collections::HashMap;

pub async fn healthz(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    s.engine.store.token_count().await?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint: see /api/v1/openapi.json".into())
}

pub async fn list_repos(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<RepoInfo>>> {
    s.require(&headers, Role::Viewer).await?;
    let repos = s.engine.store.repos().await?;
    let forges: HashMap<_, _> = s
        .engine
        .store
        .forges()
        .await?
        .into_iter()
        .map(|f| (f.repo, f))
        .collect();
    Ok(Json(
        repos
            .into_iter()
            .map(|r| {
                let forge = forges.get(&r.id);
                super::forges::repo_info(r, forge)
            })
            .collect(),
    ))
}

pub async fn add_repo(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<AddRepo>,
) -> ApiResult<Json<RepoInfo>> {
    s.require(&headers, Role::Admin).await?;
    let name = req.name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.starts_with('.')
    {
        return Err(ApiError::BadRequest(format!(
            "repository name `{name}`: use letters, digits, `-`, `_` and `.` (not first)"
        )));
    }
    if req.url.trim().is_empty() {
        return Err(ApiError::BadRequest("repository URL is empty".into()));
    }
    // Check the forge settings before anything is stored.
    if let Some(f) = &req.forge {
        crate::forge::directory::resolve(
            f.kind,
            req.url.trim(),
            f.api_url.as_deref(),
            f.repo.as_deref(),
        )
        .map_err(ApiError::BadRequest)?;
        if f.token.trim().is_empty() {
            return Err(ApiError::BadRequest("the forge token is empty".into()));
        }
    }
    let r = s
        .engine
        .store
        .add_repo(name, req.url.trim(), Timestamp::now())
        .await
        .map_err(|e| match e {
            kiln_store::StoreError::Conflict(_) => {
                ApiError::Conflict(format!("a repository named `{name}` exists"))
            }
            other => other.into(),
        })?;
    let forge = match &req.forge {
        Some(f) => Some(super::forges::store_settings(&s, &r, f).await?),
        None => None,
    };
    Ok(Json(super::forges::repo_info(r, forge.as_ref())))
}

pub async fn agents(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<AgentInfo>>> {
    s.require(&headers, Role::Viewer).await?;
    let store = &s.engine.store;
    let running = store.running_by_agent().await?;
    let mut used: HashMap<_, (u32, Vec<_>)> = HashMap::new();
    for (agent, inst, weight) in running {
        let e = used.entry(agent).or_default();
        e.0 += weight;
        e.1.push(inst);
    }
    let now = Timestamp::now();
    let offline_after =
        s.engine.cfg.lease.as_secs_f64() + s.engine.cfg.max_claim_wait.as_secs_f64();
    let out = store
        .agents()
        .await?
        .into_iter()
        .map(|a| {
            let (u, running) = used.remove(&a.id).unwrap_or_default();
            let age = now.duration_since(a.last_seen).as_secs_f64();
            AgentInfo {
                id: a.id,
                name: a.name,
                labels: a.labels,
                capacity: a.capacity,
                used: u,
                online: age <= offline_after,
                last_seen: a.last_seen,
                running,
            }
        })
        .collect();
    Ok(Json(out))
}

pub async fn queue(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<QueuedJob>>> {
    s.require(&headers, Role::Viewer).await?;
    let store = &s.engine.store;
    let repos: HashMap<_, _> = store
        .repos()
        .await?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    let mut out = Vec::new();
    for c in store.candidates(1000).await? {
        let inst = store.instance(c.id).await?;
        out.push(QueuedJob {
            id: c.id,
            run: inst.run,
            repo: repos.get(&c.repo).cloned().unwrap_or_default(),
            name: inst.name,
            runs_on: c.runs_on,
            weight: c.weight,
            queued_at: inst.queued_at,
        });
    }
    Ok(Json(out))
}

pub async fn create_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<CreateToken>,
) -> ApiResult<Json<CreatedToken>> {
    s.require(&headers, Role::Admin).await?;
    let secret = auth::new_secret()?;
    s.engine
        .store
        .add_token(
            &auth::hash(&secret),
            req.role,
            req.name.as_deref(),
            Timestamp::now(),
        )
        .await?;
    Ok(Json(CreatedToken {
        token: secret,
        role: req.role,
        name: req.name,
    }))
}
