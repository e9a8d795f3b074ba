//! The one HTTP client for kiln's server, used by the CLI and by agents, so
//! that every side speaks the contract in `kiln-proto` through the same
//! code. Methods are grouped by subject: [`api`] (the REST API) and
//! [`agent`] (the agent protocol).
//!
//! Errors keep the server's meaning: [`ClientError::Unauthorized`] (401),
//! [`ClientError::Forbidden`] (403), [`ClientError::NotFound`] (404),
//! [`ClientError::Stale`] (409), other statuses as [`ClientError::Server`],
//! and [`ClientError::Unreachable`] when no answer came (the caller may retry).

pub mod agent;
pub mod api;

use kiln_proto::api::ErrorBody;
use serde::de::DeserializeOwned;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the server refused the token (401): {0}")]
    Unauthorized(String),
    #[error("the token lacks the role for this (403): {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict (409): {0}")]
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
            ClientError::Unreachable { .. } => true,
            ClientError::Server { status, .. } => *status >= 500,
            ClientError::Unauthorized(_)
            | ClientError::Forbidden(_)
            | ClientError::NotFound(_)
            | ClientError::Stale(_)
            | ClientError::Protocol(_) => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A connection to one server with one token.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
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
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
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
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        Err(match status {
            401 => ClientError::Unauthorized(message),
            403 => ClientError::Forbidden(message),
            404 => ClientError::NotFound(message),
            409 => ClientError::Stale(message),
            _ => ClientError::Server { status, message },
        })
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
