//! A repository's forge settings: set (`PUT`), remove (`DELETE`). The
//! token is sealed before it reaches the store and never sent back.

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::forge::directory::resolve;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use jiff::Timestamp;
use kiln_proto::api::{ForgeInfo, ForgeSettings, RepoInfo, Role};
use kiln_proto::routes as r;
use kiln_store::types::{ForgeRecord, RepoRecord};

use super::openapi::{ApiErrors, BodyErrors};

/// What the API shows of a stored forge.
pub(crate) fn info(f: &ForgeRecord) -> ForgeInfo {
    ForgeInfo {
        kind: f.kind,
        api_url: f.api_url.clone(),
        repo: f.full_name.clone(),
        token_set: !f.token.ciphertext.is_empty(),
    }
}

pub(crate) fn repo_info(
    r: RepoRecord,
    forge: Option<&ForgeRecord>,
    triggers: Option<kiln_proto::api::RepoTriggers>,
) -> RepoInfo {
    RepoInfo {
        name: r.name,
        url: r.url,
        created_at: r.created_at,
        triggers,
        forge: forge.map(info),
    }
}

/// Validate, seal and store `settings` for `repo`.
pub(crate) async fn store_settings(
    s: &AppState,
    repo: &RepoRecord,
    settings: &ForgeSettings,
) -> ApiResult<ForgeRecord> {
    let token = settings.token.trim();
    if token.is_empty() {
        return Err(ApiError::BadRequest("the forge token is empty".into()));
    }
    let resolved = resolve(
        settings.kind,
        &repo.url,
        settings.api_url.as_deref(),
        settings.repo.as_deref(),
    )
    .map_err(ApiError::BadRequest)?;
    let key =
        s.engine.outbound.key.as_ref().ok_or_else(|| {
            ApiError::Internal("this server cannot store secrets (no key)".into())
        })?;
    let sealed = key
        .seal(repo.id, token)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let rec = ForgeRecord {
        repo: repo.id,
        kind: settings.kind,
        api_url: resolved.api_url,
        full_name: resolved.full_name,
        token: sealed,
        updated_at: Timestamp::now(),
    };
    s.engine.store.set_forge(&rec).await?;
    s.engine.forges.changed(repo.id);
    Ok(rec)
}

async fn repo_named(s: &AppState, name: &str) -> ApiResult<RepoRecord> {
    s.engine
        .store
        .repo_by_name(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("repository `{name}`")))
}

#[utoipa::path(
    put,
    path = r::REPO_FORGE,
    operation_id = "set_forge",
    tag = "repos",
    summary = "Set the repository's forge (commit statuses, pull request comments)",
    description = "The token is stored encrypted and never returned.",
    extensions(("x-kiln-role" = json!("admin"))),
    params(("repo" = String, Path, description = "The repository's name in kiln")),
    request_body = ForgeSettings,
    responses(
        (status = 200, description = "The repository, with its forge (never the token)", body = RepoInfo),
        ApiErrors,
        BodyErrors,
    )
)]
pub async fn set(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(settings): Json<ForgeSettings>,
) -> ApiResult<Json<RepoInfo>> {
    s.require(&headers, Role::Admin).await?;
    let repo = repo_named(&s, &name).await?;
    let rec = store_settings(&s, &repo, &settings).await?;
    let t = s.engine.store.trigger_settings(repo.id).await?;
    Ok(Json(repo_info(
        repo,
        Some(&rec),
        Some(super::admin::triggers_view(&t)),
    )))
}

#[utoipa::path(
    delete,
    path = r::REPO_FORGE,
    operation_id = "remove_forge",
    tag = "repos",
    summary = "Remove the repository's forge",
    extensions(("x-kiln-role" = json!("admin"))),
    params(("repo" = String, Path, description = "The repository's name in kiln")),
    responses(
        (status = 200, description = "The repository, without a forge", body = RepoInfo),
        ApiErrors,
    )
)]
pub async fn remove(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<RepoInfo>> {
    s.require(&headers, Role::Admin).await?;
    let repo = repo_named(&s, &name).await?;
    if !s.engine.store.remove_forge(repo.id).await? {
        return Err(ApiError::NotFound(format!(
            "repository `{name}` has no forge"
        )));
    }
    s.engine.forges.changed(repo.id);
    let t = s.engine.store.trigger_settings(repo.id).await?;
    Ok(Json(repo_info(
        repo,
        None,
        Some(super::admin::triggers_view(&t)),
    )))
}
