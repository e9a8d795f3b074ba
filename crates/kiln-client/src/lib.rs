//! The one HTTP client for kiln's server, used by the CLI and by agents, so
//! that every side speaks the contract in `kiln-proto` through the same
//! code. Methods are grouped by subject: [`api`] (the REST API) and
//! [`agent`] (the agent protocol).
//!
//! Errors keep the server's meaning, read from the answer's
//! [`ErrorKind`] (the status code where a kind is missing):
//! [`ClientError::Invalid`] (400), [`ClientError::Unauthorized`] (401),
//! [`ClientError::Forbidden`] (403), [`ClientError::NotLeaseHolder`] (403:
//! another agent holds the attempt), [`ClientError::NotFound`] (404),
//! [`ClientError::Conflict`] (409: the state forbids it now),
//! [`ClientError::Stale`] (409: the attempt is over), other statuses as
//! [`ClientError::Server`], and [`ClientError::Unreachable`] when no answer
//! came (the caller may retry).

pub mod agent;
pub mod api;

use kiln_proto::agent::{SESSION_HEADER, SessionSecret};
use kiln_proto::api::{ErrorBody, ErrorKind};
use serde::de::DeserializeOwned;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the server refused the request (400): {0}")]
    Invalid(String),
    #[error("the server refused the token (401): {0}")]
    Unauthorized(String),
    #[error("the token lacks the role for this (403): {0}")]
    Forbidden(String),
    #[error("another agent holds this attempt (403): {0}")]
    NotLeaseHolder(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict (409): {0}")]
    Conflict(String),
    #[error("stale attempt (409): {0}")]
    Stale(String),
    #[error("server error {status}: {message}")]
    Server { status: u16, message: String },
    #[error("cannot reach the server at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

impl ClientError {
    /// Worth retrying later (no answer, or the server failed).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::Conflict(_) => true,
            ClientError::Server { status, .. } => *status >= 500,
            ClientError::Invalid(_)
            | ClientError::Unauthorized(_)
            | ClientError::Forbidden(_)
            | ClientError::NotLeaseHolder(_)
            | ClientError::NotFound(_)
            | ClientError::Stale(_)
            | ClientError::Protocol(_) => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// An error answer as a [`ClientError`]: by its kind, else by its status.
pub(crate) fn error_of(status: u16, kind: ErrorKind, message: String) -> ClientError {
    match (kind, status) {
        (ErrorKind::Invalid, _) | (ErrorKind::Other, 400) => ClientError::Invalid(message),
        (ErrorKind::Unauthorized, _) | (ErrorKind::Other, 401) => {
            ClientError::Unauthorized(message)
        }
        (ErrorKind::Forbidden, _) | (ErrorKind::Other, 403) => ClientError::Forbidden(message),
        (ErrorKind::NotLeaseHolder, _) => ClientError::NotLeaseHolder(message),
        (ErrorKind::NotFound, _) | (ErrorKind::Other, 404) => ClientError::NotFound(message),
        (ErrorKind::Conflict, _) => ClientError::Conflict(message),
        // A 409 without a kind comes from a server older than kinds, whose
        // 409s on agent calls meant a stale attempt.
        (ErrorKind::Stale, _) | (ErrorKind::Other, 409) => ClientError::Stale(message),
        (ErrorKind::TooLarge | ErrorKind::Internal | ErrorKind::Other, _) => {
            ClientError::Server { status, message }
        }
    }
}

/// A connection to one server with one token (and, for an agent, the
/// session its registration got; clones share it).
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
    session: Arc<RwLock<Option<SessionSecret>>>,
}

impl Client {
    /// `base` like `http://127.0.0.1:8080` (no trailing slash needed).
    pub fn new(base: &str, token: &str) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            http,
            session: Arc::default(),
        })
    }

    /// Send `session` with every later request (and with every clone's).
    pub fn set_session(&self, session: SessionSecret) {
        *self.session.write().unwrap_or_else(|p| p.into_inner()) = Some(session);
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        match &*self.session.read().unwrap_or_else(|p| p.into_inner()) {
            Some(session) => req.header(SESSION_HEADER, session.expose()),
            None => req,
        }
    }

    /// Send and map the status; `Ok(None)` for 204.
    pub(crate) async fn send_raw(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Option<reqwest::Response>> {
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        if status == 204 {
            return Ok(None);
        }
        if (200..300).contains(&status) {
            return Ok(Some(resp));
        }
        let text = resp.text().await.unwrap_or_default();
        let (message, kind) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => (b.error, b.kind),
            Err(_) => (text, ErrorKind::Other),
        };
        Err(error_of(status, kind, message))
    }

    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T> {
        match self.send_raw(req).await? {
            Some(resp) => resp
                .json::<T>()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string())),
            None => Err(ClientError::Protocol("empty answer (204)".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_decide_and_statuses_fill_in_for_old_servers() {
        let e = |status, kind| error_of(status, kind, "m".into());
        assert!(matches!(
            e(409, ErrorKind::Conflict),
            ClientError::Conflict(_)
        ));
        assert!(matches!(e(409, ErrorKind::Stale), ClientError::Stale(_)));
        assert!(matches!(e(409, ErrorKind::Other), ClientError::Stale(_)));
        assert!(matches!(
            e(403, ErrorKind::NotLeaseHolder),
            ClientError::NotLeaseHolder(_)
        ));
        assert!(matches!(
            e(403, ErrorKind::Forbidden),
            ClientError::Forbidden(_)
        ));
        assert!(matches!(
            e(400, ErrorKind::Invalid),
            ClientError::Invalid(_)
        ));
        assert!(matches!(e(400, ErrorKind::Other), ClientError::Invalid(_)));
        assert!(matches!(
            e(503, ErrorKind::Other),
            ClientError::Server { status: 503, .. }
        ));
        assert!(
            e(409, ErrorKind::Conflict).is_transient(),
            "a conflict is worth a retry"
        );
        assert!(!e(409, ErrorKind::Stale).is_transient());
        assert!(!e(400, ErrorKind::Invalid).is_transient());
    }
}
