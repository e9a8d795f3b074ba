//! The error responses operations list. Every error the server's handlers
//! send is an `ErrorBody`; which kinds come with which status is read from
//! `ApiError::status_and_kind`, the one table, so the document says what
//! the server does. Bodies the HTTP layer refuses before a handler runs
//! (too large, not JSON, the wrong shape) get axum's plain-text answers.

use crate::error::ApiError;
use axum::http::StatusCode;
use kiln_proto::api::ErrorKind;
use std::collections::BTreeMap;
use utoipa::IntoResponses;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{Ref, RefOr};

/// One error of each variant: the table's rows. The match makes a new
/// variant a compile error here until it is listed.
fn every_api_error() -> Vec<ApiError> {
    let all = vec![
        ApiError::BadRequest(String::new()),
        ApiError::NotLeaseHolder(String::new()),
        ApiError::Stale(String::new()),
        ApiError::Unauthorized(String::new()),
        ApiError::Forbidden(String::new()),
        ApiError::NotFound(String::new()),
        ApiError::Conflict(String::new()),
        ApiError::Internal(String::new()),
    ];
    for e in &all {
        match e {
            ApiError::BadRequest(_)
            | ApiError::NotLeaseHolder(_)
            | ApiError::Stale(_)
            | ApiError::Unauthorized(_)
            | ApiError::Forbidden(_)
            | ApiError::NotFound(_)
            | ApiError::Conflict(_)
            | ApiError::Internal(_) => {}
        }
    }
    all
}

/// The kinds the server sends with `status`, as the wire spells them.
pub(crate) fn kinds_for(status: StatusCode) -> Vec<String> {
    let mut kinds: Vec<String> = every_api_error()
        .iter()
        .map(ApiError::status_and_kind)
        .filter(|(s, _)| *s == status)
        .map(|(_, k)| kind_name(k))
        .collect();
    kinds.dedup();
    kinds
}

fn kind_name(k: ErrorKind) -> String {
    match serde_json::to_value(k) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(_) | Err(_) => format!("{k:?}"),
    }
}

fn error(status: StatusCode, what: &str) -> (String, RefOr<Response>) {
    let kinds = kinds_for(status);
    let words = if kinds.len() == 1 { "kind" } else { "kinds" };
    let kinds = kinds
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let response = ResponseBuilder::new()
        .description(format!("{what} (`ErrorBody`, {words} {kinds})"))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    (status.as_u16().to_string(), response.into())
}

fn plain(status: StatusCode, what: &str) -> (String, RefOr<Response>) {
    let response = ResponseBuilder::new()
        .description(format!("{what} (plain text from the HTTP layer)"))
        .content("text/plain", ContentBuilder::new().build())
        .build();
    (status.as_u16().to_string(), response.into())
}

fn internal() -> (String, RefOr<Response>) {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The server failed; retrying later may work",
    )
}

/// What an operation that needs a token may answer besides success.
pub(crate) struct ApiErrors;

impl IntoResponses for ApiErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            error(
                StatusCode::BAD_REQUEST,
                "The request is malformed or impossible: do not repeat it unchanged",
            ),
            error(StatusCode::UNAUTHORIZED, "No token, or an unknown one"),
            error(
                StatusCode::FORBIDDEN,
                "The token's role is not enough (or an agent reported on a lease it does not hold)",
            ),
            error(StatusCode::NOT_FOUND, "Something named does not exist"),
            error(
                StatusCode::CONFLICT,
                "The current state forbids it, or the fencing token is stale: the kind tells",
            ),
            internal(),
        ])
    }
}

/// What the HTTP layer answers for a JSON body it cannot hand to the
/// handler.
pub(crate) struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The body is larger than the server accepts",
            ),
            plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "The body is not sent as `application/json`",
            ),
            plain(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The body is JSON but not of the expected shape",
            ),
        ])
    }
}

/// What a webhook receiver may answer besides accepting the delivery.
pub(crate) struct HookErrors;

impl IntoResponses for HookErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            error(
                StatusCode::BAD_REQUEST,
                "Verified, but the body cannot be read, it names no event, or several repositories \
                 share the secret and the payload names none of them exactly",
            ),
            error(
                StatusCode::UNAUTHORIZED,
                "The signature does not verify with any repository's webhook secret",
            ),
            error(StatusCode::NOT_FOUND, "`?repo=` names no repository"),
            plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The body is over `triggers.hook_body_limit_bytes`",
            ),
            internal(),
        ])
    }
}

/// What an operation that needs no token may answer besides success.
pub(crate) struct PublicErrors;

impl IntoResponses for PublicErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([internal()])
    }
}
