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
use serde::Deserialize;

/// `?repo=NAME`: verify with that repository's secret only.
#[derive(Debug, Default, Deserialize)]
pub struct HookQuery {
    pub repo: Option<String>,
}

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

pub async fn github(
    State(s): State<AppState>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(s, Forge::GitHub, q, headers, body).await
}

pub async fn gitea(
    State(s): State<AppState>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(s, Forge::Gitea, q, headers, body).await
}

pub async fn forgejo(
    State(s): State<AppState>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(s, Forge::Forgejo, q, headers, body).await
}

pub async fn gitlab(
    State(s): State<AppState>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(s, Forge::GitLab, q, headers, body).await
}
