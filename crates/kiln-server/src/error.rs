//! API errors and the one table that maps them to HTTP statuses and the
//! wire's [`ErrorKind`]. Every error of the layers below (the engine's,
//! the store's, a webhook's refusal) becomes an [`ApiError`] here and
//! nowhere else.

use crate::engine::error::EngineError;
use crate::triggers::hooks::HookError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_proto::api::{ErrorBody, ErrorKind};
use kiln_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// An agent's report on an attempt leased to another agent.
    #[error("{0}")]
    NotLeaseHolder(String),
    /// The fencing token is no longer current.
    #[error("stale attempt: {0}")]
    Stale(String),

    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The one table: each error's HTTP status and kind.
    pub fn status_and_kind(&self) -> (StatusCode, ErrorKind) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorKind::Invalid),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorKind::Unauthorized),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorKind::Forbidden),
            ApiError::NotLeaseHolder(_) => (StatusCode::FORBIDDEN, ErrorKind::NotLeaseHolder),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorKind::NotFound),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, ErrorKind::Conflict),
            ApiError::Stale(_) => (StatusCode::CONFLICT, ErrorKind::Stale),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_kind().0
    }

    /// The error as the wire carries it.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.to_string(),
            kind: self.status_and_kind().1,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => ApiError::BadRequest(m),
            EngineError::NotFound(m) => ApiError::NotFound(m),
            EngineError::Conflict(m) => ApiError::Conflict(m),
            EngineError::Stale(m) => ApiError::Stale(m),
            EngineError::NotLeaseHolder(m) => ApiError::NotLeaseHolder(m),
            EngineError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<HookError> for ApiError {
    fn from(e: HookError) -> Self {
        match e {
            HookError::Unauthorized(_) => ApiError::Unauthorized(e.to_string()),
            HookError::UnknownRepo(_) => ApiError::NotFound(e.to_string()),
            HookError::BadRequest(m) => ApiError::BadRequest(m),
            HookError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
        }
        (status, Json(self.body())).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
