//! Dispatch on the forge and its event header; the per-forge modules map
//! the bodies. Bodies are read with serde into small structs that name only
//! the fields kiln uses, so unknown fields (every real body has hundreds)
//! are ignored and a missing one that kiln needs is a [`ParseError`].

use super::{Forge, ForgeEvent, gitea, github, gitlab};
use serde::de::DeserializeOwned;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON, or lacks a field kiln needs. Webhooks must be
    /// configured with the JSON content type (`application/json`).
    #[error("{forge} `{event}` body: {message}")]
    Body {
        forge: Forge,
        event: String,
        message: String,
    },
}

/// Parse a verified body. `event` is the value of the forge's event header
/// (see [`super::event_name`]); events kiln does not act on come back as
/// [`ForgeEvent::Ignored`], not as errors.
pub fn parse(forge: Forge, event: &str, body: &[u8]) -> Result<ForgeEvent, ParseError> {
    match forge {
        Forge::GitHub => github::parse(event, body),
        Forge::Gitea | Forge::Forgejo => gitea::parse(forge, event, body),
        Forge::GitLab => gitlab::parse(event, body),
    }
}

pub(crate) fn body<T: DeserializeOwned>(
    forge: Forge,
    event: &str,
    body: &[u8],
) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError::Body {
        forge,
        event: event.to_owned(),
        message: e.to_string(),
    })
}

pub(crate) fn ignored(event: impl Into<String>) -> ForgeEvent {
    ForgeEvent::Ignored {
        event: event.into(),
    }
}

/// Non-empty URLs, in order, without repeats.
pub(crate) fn urls<'a>(candidates: impl IntoIterator<Item = Option<&'a String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for u in candidates.into_iter().flatten() {
        if !u.is_empty() && !out.contains(u) {
            out.push(u.clone());
        }
    }
    out
}

pub(crate) fn branch_name(r: &str) -> String {
    r.strip_prefix("refs/heads/").unwrap_or(r).to_owned()
}
