//! The HTTP surface: the REST API under `/api/v1`, the agent endpoints,
//! `/healthz` and the OpenAPI document. Handlers check the token's role,
//! call the engine or the store, and map errors through `ApiError`. Each
//! handler carries its own `#[utoipa::path]` documentation; `routes`
//! builds the router and the document from the same list.

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
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use kiln_proto::api::{JobSummary, Role, RunSummary};
use kiln_store::types::{InstanceRecord, RunRecord};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    let (api, _doc) = routes(state.engine.cfg.hook_body_limit).split_for_parts();
    api.fallback(admin::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The route table: every route with its documentation. The router and
/// the OpenAPI document are its two halves, so a route cannot be served
/// without being described. One `routes!` per path: handlers grouped in
/// one call share one method router, and each is served at every path
/// of the group.
pub(crate) fn routes(hook_body_limit: usize) -> OpenApiRouter<AppState> {
    // Webhooks get their own body limit (the forge's payloads, not ours).
    let hooks = OpenApiRouter::new()
        .routes(routes!(hooks::github))
        .routes(routes!(hooks::gitea))
        .routes(routes!(hooks::forgejo))
        .routes(routes!(hooks::gitlab))
        .layer(DefaultBodyLimit::max(hook_body_limit));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(hooks)
        .routes(routes!(admin::healthz))
        .routes(routes!(openapi::document))
        .routes(routes!(admin::list_repos, admin::add_repo))
        .routes(routes!(runs::trigger))
        .routes(routes!(forges::set, forges::remove))
        .routes(routes!(runs::list))
        .routes(routes!(runs::show))
        .routes(routes!(runs::results))
        .routes(routes!(logs::page))
        .routes(routes!(logs::stream))
        .routes(routes!(runs::cancel))
        .routes(routes!(runs::retry))
        .routes(routes!(runs::approve))
        .routes(routes!(runs::deploy))
        .routes(routes!(runs::environments))
        .routes(routes!(admin::agents))
        .routes(routes!(admin::queue))
        .routes(routes!(admin::create_token))
        .routes(routes!(agent::register))
        .routes(routes!(agent::claim))
        .routes(routes!(agent::work))
        .routes(routes!(agent::heartbeat))
        .routes(routes!(agent::logs))
        .routes(routes!(agent::complete))
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
