//! The HTTP surface: the REST API under `/api/v1`, the agent endpoints,
//! `/healthz` and the OpenAPI document. Handlers check the token's role,
//! call the engine or the store, and map errors through `ApiError`.

mod admin;
mod agent;
mod forges;
mod hooks;
mod logs;
pub mod openapi;
mod runs;

use crate::auth;
use crate::engine::Engine;
use crate::error::ApiResult;
use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use kiln_proto::api::{JobSummary, Role, RunSummary};
use kiln_proto::routes as r;
use kiln_store::types::{InstanceRecord, RunRecord};
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Token roles already checked (see `auth::RoleCache`).
    pub roles: Arc<auth::RoleCache>,
}

impl AppState {
    pub(crate) async fn require(&self, headers: &HeaderMap, role: Role) -> ApiResult<Role> {
        auth::require(self.engine.store.as_ref(), &self.roles, headers, role).await
    }
}

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let hook_limit = axum::extract::DefaultBodyLimit::max(state.engine.cfg.hook_body_limit);
    Router::new()
        .route(r::HOOK_GITHUB, post(hooks::github).layer(hook_limit))
        .route(r::HOOK_GITEA, post(hooks::gitea).layer(hook_limit))
        .route(r::HOOK_FORGEJO, post(hooks::forgejo).layer(hook_limit))
        .route(r::HOOK_GITLAB, post(hooks::gitlab).layer(hook_limit))
        .route(r::HEALTHZ, get(admin::healthz))
        .route(r::OPENAPI, get(openapi::document))
        .route(r::REPOS, get(admin::list_repos).post(admin::add_repo))
        .route(r::REPO_TRIGGER, post(runs::trigger))
        .route(r::REPO_FORGE, put(forges::set).delete(forges::remove))
        .route(r::RUNS, get(runs::list))
        .route(r::RUN, get(runs::show))
        .route(r::RUN_RESULTS, get(runs::results))
        .route(r::RUN_LOGS, get(logs::page))
        .route(r::RUN_LOGS_STREAM, get(logs::stream))
        .route(r::RUN_CANCEL, post(runs::cancel))
        .route(r::RUN_RETRY, post(runs::retry))
        .route(r::RUN_APPROVE, post(runs::approve))
        .route(r::REPO_DEPLOY, post(runs::deploy))
        .route(r::REPO_ENVIRONMENTS, get(runs::environments))
        .route(r::AGENTS, get(admin::agents))
        .route(r::QUEUE, get(admin::queue))
        .route(r::TOKENS, post(admin::create_token))
        .route(r::AGENT_REGISTER, post(agent::register))
        .route(r::AGENT_CLAIM, post(agent::claim))
        .route(r::AGENT_HEARTBEAT, post(agent::heartbeat))
        .route(r::AGENT_LOGS, post(agent::logs))
        .route(r::AGENT_COMPLETE, post(agent::complete))
        .fallback(admin::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

pub(crate) fn run_summary(r: &RunRecord) -> RunSummary {
    RunSummary {
        id: r.id,
        repo: r.repo_name.clone(),
        workflow_name: r.workflow_name.clone(),
        workflow_file: r.workflow_file.clone(),
        commit: r.commit.clone(),
        git_ref: r.git_ref.clone(),
        event: r.event.clone(),
        status: r.status,
        waiting: r.hold.clone().filter(|_| !r.status.is_terminal()),
        waiting_reason: None,
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
    }
}

pub(crate) fn job_summary(i: &InstanceRecord) -> JobSummary {
    JobSummary {
        id: i.id,
        job: i.job_key.clone(),
        name: i.name.clone(),
        status: i.status,
        attempt: i.attempt,
        agent: i.agent_name.clone(),
        runs_on: i.runs_on.clone(),
        weight: i.weight,
        priority: i.priority,
        reason: i.reason.clone(),
        waiting: i
            .hold
            .clone()
            .filter(|_| i.status == kiln_model::JobStatus::Queued),
        waiting_reason: None,
        queued_at: Some(i.queued_at),
        started_at: i.started_at,
        finished_at: i.finished_at,
    }
}
