//! Runs: trigger, list, show, results, cancel, retry.

use super::{AppState, job_summary, run_summary};
use crate::engine::results::run_result;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use kiln_model::RunId;
use kiln_proto::api::{
    ApproveRequest, DeployRequest, EnvironmentInfo, ForgeReportInfo, RetryRequest, Role, RunDetail,
    RunSummary, TriggerRequest, TriggerResponse,
};
use kiln_proto::results::RunResult;
use kiln_proto::routes as r;
use serde::Deserialize;

use super::openapi::{ApiErrors, BodyErrors};

#[utoipa::path(
    post,
    path = r::REPO_TRIGGER,
    operation_id = "trigger",
    tag = "runs",
    summary = "Trigger runs at a commit",
    extensions(("x-kiln-role" = json!("maintainer"))),
    params(("repo" = String, Path, description = "The repository's name in kiln")),
    request_body = TriggerRequest,
    responses(
        (status = 200, description = "The runs created, one per workflow that runs on the event", body = TriggerResponse),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn trigger(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(repo): Path<String>,
    Json(req): Json<TriggerRequest>,
) -> ApiResult<Json<TriggerResponse>> {
    s.require(&headers, Role::Maintainer).await?;
    let runs = s.engine.trigger(&repo, req).await?;
    Ok(Json(TriggerResponse {
        runs: runs.iter().map(run_summary).collect(),
    }))
}

/// `?repo=NAME&limit=N`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this repository's runs.
    repo: Option<String>,
    /// At most this many (default 50, at most 1000).
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = r::RUNS,
    operation_id = "list_runs",
    tag = "runs",
    summary = "List runs, newest first",
    extensions(("x-kiln-role" = json!("viewer"))),
    params(ListQuery),
    responses(
        (status = 200, description = "The runs", body = Vec<RunSummary>),
        ApiErrors,
    )
)]
pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<RunSummary>>> {
    s.require(&headers, Role::Viewer).await?;
    let store = &s.engine.store;
    let repo = match &q.repo {
        Some(name) => Some(
            store
                .repo_by_name(name)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("repository `{name}`")))?
                .id,
        ),
        None => None,
    };
    let runs = store.runs(repo, q.limit.unwrap_or(50).min(1000)).await?;
    Ok(Json(runs.iter().map(run_summary).collect()))
}

#[utoipa::path(
    get,
    path = r::RUN,
    operation_id = "show_run",
    tag = "runs",
    summary = "A run with its jobs",
    extensions(("x-kiln-role" = json!("viewer"))),
    params(("run" = RunId, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        ApiErrors,
    )
)]
pub async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(run): Path<RunId>,
) -> ApiResult<Json<RunDetail>> {
    s.require(&headers, Role::Viewer).await?;
    let rec = s.engine.store.run(run).await?;
    let jobs = s.engine.store.instances(run).await?;
    let forge = s.engine.store.report(run).await?.map(|r| ForgeReportInfo {
        delivered: !r.due,
        attempts: r.attempts,
        last_error: r.last_error,
        next_attempt_at: r.due.then_some(r.next_at),
        comment_id: r.comment_id,
    });
    let mut summary = run_summary(&rec);
    summary.waiting_reason = s.engine.run_waiting(&rec).await?;
    let fleet = s.engine.fleet().await?;
    let mut summaries = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let mut js = job_summary(job);
        js.waiting_reason = s.engine.job_waiting(&fleet, job).await?;
        summaries.push(js);
    }
    Ok(Json(RunDetail {
        summary,
        error: rec.error.clone(),
        jobs: summaries,
        forge,
    }))
}

#[utoipa::path(
    get,
    path = r::RUN_RESULTS,
    operation_id = "run_results",
    tag = "runs",
    summary = "The run's results document (docs/results.md)",
    extensions(("x-kiln-role" = json!("viewer"))),
    params(("run" = RunId, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run's results", body = RunResult),
        ApiErrors,
    )
)]
pub async fn results(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(run): Path<RunId>,
) -> ApiResult<Json<RunResult>> {
    s.require(&headers, Role::Viewer).await?;
    let store = &s.engine.store;
    let rec = store.run(run).await?;
    let instances = store.instances(run).await?;
    let attempts = store.attempts(run).await?;
    Ok(Json(run_result(&rec, &instances, &attempts)))
}

#[utoipa::path(
    post,
    path = r::RUN_CANCEL,
    operation_id = "cancel_run",
    tag = "runs",
    summary = "Cancel a run",
    extensions(("x-kiln-role" = json!("maintainer"))),
    params(("run" = RunId, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run, cancelling", body = RunSummary),
        ApiErrors,
    )
)]
pub async fn cancel(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(run): Path<RunId>,
) -> ApiResult<Json<RunSummary>> {
    s.require(&headers, Role::Maintainer).await?;
    let rec = s.engine.store.run(run).await?;
    if rec.status.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "run {run} already ended ({})",
            rec.status
        )));
    }
    s.engine.cancel(run).await?;
    Ok(Json(run_summary(&s.engine.store.run(run).await?)))
}

#[utoipa::path(
    post,
    path = r::RUN_RETRY,
    operation_id = "retry_run",
    tag = "runs",
    summary = "Run the same workflow at the same commit again",
    description = "The body is optional: without it every job runs again.",
    extensions(("x-kiln-role" = json!("maintainer"))),
    params(("run" = RunId, Path, description = "The run's id")),
    request_body = Option<RetryRequest>,
    responses(
        (status = 200, description = "The new run", body = RunSummary),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn retry(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(run): Path<RunId>,
    body: Option<Json<RetryRequest>>,
) -> ApiResult<Json<RunSummary>> {
    s.require(&headers, Role::Maintainer).await?;
    let failed_only = body.map(|b| b.0.failed_only).unwrap_or(false);
    let new = s.engine.retry(run, failed_only).await?;
    Ok(Json(run_summary(&new)))
}

/// Approve or reject a job waiting for approval (or release a run held
/// for a fork's pull request, without `job`).
#[utoipa::path(
    post,
    path = r::RUN_APPROVE,
    operation_id = "approve_run",
    tag = "runs",
    summary = "Approve or reject a deploy job waiting for approval (or release a run held for a fork)",
    extensions(("x-kiln-role" = json!("maintainer"))),
    params(("run" = RunId, Path, description = "The run's id")),
    request_body = ApproveRequest,
    responses(
        (status = 200, description = "The run after the decision", body = RunDetail),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn approve(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(run): Path<RunId>,
    Json(req): Json<ApproveRequest>,
) -> ApiResult<Json<RunDetail>> {
    s.require(&headers, Role::Maintainer).await?;
    let who = crate::auth::who(s.engine.store.as_ref(), &headers).await?;
    match &req.job {
        Some(job) => {
            s.engine.approve(run, job, req.reject, &who).await?;
        }
        None if req.reject => {
            return Err(ApiError::BadRequest(
                "to turn down a held run, cancel it (`kiln cancel`)".into(),
            ));
        }
        None => {
            if !s.engine.release_run(run).await? {
                return Err(ApiError::Conflict(format!(
                    "run {run} is not held for approval: name the job (`kiln approve {run} JOB`)"
                )));
            }
        }
    }
    show(State(s), headers, Path(run)).await
}

/// Deploy a commit to an environment (`kiln deploy`).
#[utoipa::path(
    post,
    path = r::REPO_DEPLOY,
    operation_id = "deploy",
    tag = "repos",
    summary = "Deploy a commit to an environment",
    extensions(("x-kiln-role" = json!("maintainer"))),
    params(("repo" = String, Path, description = "The repository's name in kiln")),
    request_body = DeployRequest,
    responses(
        (status = 200, description = "The deploy run", body = TriggerResponse),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn deploy(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(repo): Path<String>,
    Json(req): Json<DeployRequest>,
) -> ApiResult<Json<TriggerResponse>> {
    s.require(&headers, Role::Maintainer).await?;
    let who = crate::auth::who(s.engine.store.as_ref(), &headers).await?;
    let runs = s.engine.deploy(&repo, req, &who).await?;
    Ok(Json(TriggerResponse {
        runs: runs.iter().map(run_summary).collect(),
    }))
}

/// Each environment's current commit and deploy history (`kiln envs`).
#[utoipa::path(
    get,
    path = r::REPO_ENVIRONMENTS,
    operation_id = "list_environments",
    tag = "repos",
    summary = "Environments: current commit, who deployed it, history",
    extensions(("x-kiln-role" = json!("viewer"))),
    params(("repo" = String, Path, description = "The repository's name in kiln")),
    responses(
        (status = 200, description = "The repository's environments", body = Vec<EnvironmentInfo>),
        ApiErrors,
    )
)]
pub async fn environments(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(repo): Path<String>,
) -> ApiResult<Json<Vec<EnvironmentInfo>>> {
    s.require(&headers, Role::Viewer).await?;
    Ok(Json(s.engine.environments(&repo).await?))
}
