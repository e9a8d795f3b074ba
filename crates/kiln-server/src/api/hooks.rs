//! `POST /hooks/{github,gitea,forgejo,gitlab}`: webhook deliveries. No
//! token: the delivery's signature, checked against the repository's
//! webhook secret before the body is parsed, is the authentication. The
//! engine does the work after the answer (see `triggers::hooks`).

use super::AppState;
use crate::error::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kiln_forge::webhook::Forge;
use kiln_proto::routes as r;
use serde::Deserialize;

use super::openapi::HookErrors;
use crate::triggers::hooks::Accepted;

/// `?repo=NAME`: verify with that repository's secret only.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HookQuery {
    /// The kiln repository whose secret verifies the delivery; without it
    /// every repository with a secret is tried.
    pub repo: Option<String>,
}

/// What every receiver does, in the document's words.
const HOOK_DESCRIPTION: &str = "No token: the body is verified with the signature header \
    against the repository's webhook secret before it is read. Answers at once; runs are \
    created after. A delivery id seen before is answered as a duplicate and starts nothing. \
    Bodies over `triggers.hook_body_limit_bytes` get 413.";

async fn receive(
    s: AppState,
    forge: Forge,
    q: HookQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    match s
        .engine
        .receive_hook(forge, q.repo.as_deref(), &pairs, &body)
        .await
    {
        Ok(accepted) => {
            let status = if accepted.queued {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            (status, Json(accepted)).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[utoipa::path(
    post,
    path = r::HOOK_GITHUB,
    operation_id = "hook_github",
    tag = "hooks",
    summary = "GitHub webhook delivery",
    description = HOOK_DESCRIPTION,
    extensions(("x-kiln-role" = json!("none"))),
    params(
        HookQuery,
        ("X-Hub-Signature-256" = String, Header, description = "HMAC-SHA256 of the body with the webhook secret"),
        ("X-GitHub-Event" = String, Header, description = "The event's name"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "The delivery's id, for deduplication"),
    ),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "The forge's event payload, verbatim: the signature covers these bytes",
    ),
    responses(
        (status = 200, description = "Accepted; nothing to do (a ping, an ignored event, a duplicate delivery)", body = Accepted),
        (status = 202, description = "Accepted; the event is being handled", body = Accepted),
        HookErrors,
    )
)]
pub async fn github(
    State(s): State<AppState>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(s, Forge::GitHub, q, headers, body).await
}

#[utoipa::path(
    post,
    path = r::HOOK_GITEA,
    operation_id = "hook_gitea",
    tag = "hooks",
    summary = "Gitea webhook delivery",
    description = HOOK_DESCRIPTION,
    extensions(("x-kiln-role" = json!("none"))),
    params(
        HookQuery,
        ("X-Gitea-Signature" = String, Header, description = "HMAC-SHA256 of the body with the webhook secret"),
        ("X-Gitea-Event" = String, Header, description = "The event's name"),
        ("X-Gitea-Delivery" = Option<String>, Header, description = "The delivery's id, for deduplication"),
    ),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "The forge's event payload, verbatim: the signature covers these bytes",
    ),
    responses(
        (status = 200, description = "Accepted; nothing to do (a ping, an ignored event, a duplicate delivery)", body = Accepted),
        (status = 202, description = "Accepted; the event is being handled", body = Accepted),
        HookErrors,
    )
)]
pub async fn gitea(
    State(s): State<AppState>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(s, Forge::Gitea, q, headers, body).await
}

#[utoipa::path(
    post,
    path = r::HOOK_FORGEJO,
    operation_id = "hook_forgejo",
    tag = "hooks",
    summary = "Forgejo webhook delivery",
    description = HOOK_DESCRIPTION,
    extensions(("x-kiln-role" = json!("none"))),
    params(
        HookQuery,
        ("X-Forgejo-Signature" = String, Header, description = "HMAC-SHA256 of the body with the webhook secret (or `X-Gitea-Signature`)"),
        ("X-Forgejo-Event" = String, Header, description = "The event's name (or `X-Gitea-Event`)"),
        ("X-Forgejo-Delivery" = Option<String>, Header, description = "The delivery's id, for deduplication (or `X-Gitea-Delivery`)"),
    ),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "The forge's event payload, verbatim: the signature covers these bytes",
    ),
    responses(
        (status = 200, description = "Accepted; nothing to do (a ping, an ignored event, a duplicate delivery)", body = Accepted),
        (status = 202, description = "Accepted; the event is being handled", body = Accepted),
        HookErrors,
    )
)]
pub async fn forgejo(
    State(s): State<AppState>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(s, Forge::Forgejo, q, headers, body).await
}

#[utoipa::path(
    post,
    path = r::HOOK_GITLAB,
    operation_id = "hook_gitlab",
    tag = "hooks",
    summary = "GitLab webhook delivery",
    description = HOOK_DESCRIPTION,
    extensions(("x-kiln-role" = json!("none"))),
    params(
        HookQuery,
        ("X-Gitlab-Token" = String, Header, description = "The delivery's secret token"),
        ("X-Gitlab-Event" = String, Header, description = "The event's name"),
        ("X-Gitlab-Event-UUID" = Option<String>, Header, description = "The delivery's id, for deduplication (or `Idempotency-Key`)"),
    ),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "The forge's event payload, verbatim: the signature covers these bytes",
    ),
    responses(
        (status = 200, description = "Accepted; nothing to do (a ping, an ignored event, a duplicate delivery)", body = Accepted),
        (status = 202, description = "Accepted; the event is being handled", body = Accepted),
        HookErrors,
    )
)]
pub async fn gitlab(
    State(s): State<AppState>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(s, Forge::GitLab, q, headers, body).await
}
