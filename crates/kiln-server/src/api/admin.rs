//! Repositories, agents, the queue, tokens, health.

use super::AppState;
use crate::auth;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use jiff::Timestamp;
use kiln_model::workflow::{PRIORITY_MAX, PRIORITY_MIN};
use kiln_proto::api::{
    AddRepo, AgentInfo, CreateToken, CreatedToken, QueuedJob, RepoInfo, RepoTriggers, Role,
    TriggerSettingsRequest,
};
use kiln_proto::routes as r;
use kiln_store::types::TriggerSettings;
use std::collections::HashMap;

use super::openapi::{ApiErrors, BodyErrors, PublicErrors};

/// `/healthz`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`: the server answers and its store does.
    pub status: &'static str,
}

#[utoipa::path(
    get,
    path = r::HEALTHZ,
    tag = "system",
    summary = "Health check: the server and its store answer",
    extensions(("x-kiln-role" = json!("none"))),
    responses((status = 200, description = "Healthy", body = Health), PublicErrors)
)]
pub async fn healthz(State(s): State<AppState>) -> ApiResult<Json<Health>> {
    s.engine.store.token_count().await?;
    Ok(Json(Health { status: "ok" }))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint: see /api/v1/openapi.json".into())
}

#[utoipa::path(
    get,
    path = r::REPOS,
    tag = "repos",
    summary = "List repositories",
    extensions(("x-kiln-role" = json!("viewer"))),
    responses((status = 200, description = "Every repository", body = Vec<RepoInfo>), ApiErrors)
)]
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
    let mut out = Vec::with_capacity(repos.len());
    for r in repos {
        let t = s.engine.store.trigger_settings(r.id).await?;
        let forge = forges.get(&r.id);
        out.push(super::forges::repo_info(r, forge, Some(triggers_view(&t))));
    }
    Ok(Json(out))
}

/// What the API shows of trigger settings: never the secret itself.
pub(crate) fn triggers_view(t: &TriggerSettings) -> RepoTriggers {
    RepoTriggers {
        poll_interval_secs: t.poll_interval_secs,
        webhook_secret_set: t.webhook_secret.as_deref().is_some_and(|s| !s.is_empty()),
        fork_approval: t.fork_approval,
        command_allowlist: t.command_allowlist.clone(),
        reply_to_outsiders: t.reply_to_outsiders,
        priority: t.priority,
    }
}

/// Settings from a request: given fields over the defaults.
fn settings_from(req: Option<&TriggerSettingsRequest>) -> ApiResult<TriggerSettings> {
    let mut t = TriggerSettings::default();
    let Some(req) = req else { return Ok(t) };
    if let Some(n) = req.poll_interval_secs {
        t.poll_interval_secs = n;
    }
    if let Some(secret) = &req.webhook_secret {
        if secret.trim().is_empty() {
            return Err(ApiError::BadRequest(
                "the webhook secret is empty: leave it out, or give one".into(),
            ));
        }
        t.webhook_secret = Some(secret.trim().to_owned());
    }
    if let Some(b) = req.fork_approval {
        t.fork_approval = b;
    }
    if let Some(b) = req.reply_to_outsiders {
        t.reply_to_outsiders = b;
    }
    if let Some(p) = req.priority {
        if !(PRIORITY_MIN..=PRIORITY_MAX).contains(&p) {
            return Err(ApiError::BadRequest(format!(
                "priority {p}: give a whole number from {PRIORITY_MIN} to {PRIORITY_MAX}"
            )));
        }
        t.priority = p;
    }
    for login in &req.command_allowlist {
        let login = login.trim();
        if login.is_empty() || login.contains(char::is_whitespace) {
            return Err(ApiError::BadRequest(format!(
                "`{login}` is not a login for the command allowlist"
            )));
        }
        t.command_allowlist.push(login.to_owned());
    }
    Ok(t)
}

/// How long `add_repo` waits for the remote's refs before answering (the
/// first poll takes the baseline instead).
const BASELINE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[utoipa::path(
    post,
    path = r::REPOS,
    tag = "repos",
    summary = "Add a repository (any git URL)",
    extensions(("x-kiln-role" = json!("admin"))),
    request_body = AddRepo,
    responses(
        (status = 200, description = "The repository as stored", body = RepoInfo),
        ApiErrors,
        BodyErrors,
    )
)]
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
    let settings = settings_from(req.triggers.as_ref())?;
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
    s.engine.store.set_trigger_settings(r.id, &settings).await?;
    let forge = match &req.forge {
        Some(f) => Some(super::forges::store_settings(&s, &r, f).await?),
        None => None,
    };
    // Only what changes from now on triggers: record what the remote has.
    // A remote that cannot be reached now gets its baseline at the first
    // poll instead.
    match tokio::time::timeout(BASELINE_WAIT, s.engine.baseline(&r)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(repo = %r.name, error = %e, "no polling baseline yet"),
        Err(_) => {
            tracing::warn!(repo = %r.name, "the remote is slow: polling takes its baseline later")
        }
    }
    Ok(Json(super::forges::repo_info(
        r,
        forge.as_ref(),
        Some(triggers_view(&settings)),
    )))
}

#[utoipa::path(
    get,
    path = r::AGENTS,
    operation_id = "list_agents",
    tag = "admin",
    summary = "Registered agents",
    extensions(("x-kiln-role" = json!("viewer"))),
    responses((status = 200, description = "Every registered agent", body = Vec<AgentInfo>), ApiErrors)
)]
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
    let out = store
        .agents()
        .await?
        .into_iter()
        .map(|a| {
            let (u, running) = used.remove(&a.id).unwrap_or_default();
            let online = s.engine.is_online(&a, now);
            AgentInfo {
                id: a.id,
                name: a.name,
                labels: a.labels,
                capacity: a.capacity,
                used: u,
                online,
                last_seen: a.last_seen,
                lost_at: a.lost_at,
                running,
            }
        })
        .collect();
    Ok(Json(out))
}

#[utoipa::path(
    get,
    path = r::QUEUE,
    operation_id = "list_queue",
    tag = "admin",
    summary = "Jobs waiting for an agent, in claim order, each with why it waits",
    extensions(("x-kiln-role" = json!("viewer"))),
    responses((status = 200, description = "The queue", body = Vec<QueuedJob>), ApiErrors)
)]
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
    let fleet = s.engine.fleet().await?;
    let mut out = Vec::new();
    // Every waiting job, held ones included, in claim order.
    for inst in store.queued_instances(1000).await? {
        let waiting_reason = s.engine.job_waiting(&fleet, &inst).await?;
        out.push(QueuedJob {
            id: inst.id,
            run: inst.run,
            repo: repos.get(&inst.repo).cloned().unwrap_or_default(),
            name: inst.name,
            runs_on: inst.runs_on,
            weight: inst.weight,
            priority: inst.priority,
            attempt: inst.attempt,
            queued_at: inst.queued_at,
            waiting_reason,
        });
    }
    Ok(Json(out))
}

#[utoipa::path(
    post,
    path = r::TOKENS,
    tag = "admin",
    summary = "Create a token (its secret is shown once)",
    extensions(("x-kiln-role" = json!("admin"))),
    request_body = CreateToken,
    responses(
        (status = 200, description = "The new token", body = CreatedToken),
        ApiErrors,
        BodyErrors,
    )
)]
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
