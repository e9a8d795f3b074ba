//! Webhook intake: find the repository, verify the signature over the raw
//! body, only then parse, deduplicate by delivery id, and hand the event
//! to [`Engine::on_event`] in a task of its own so that the forge gets its
//! answer within milliseconds.
//!
//! Finding the repository before parsing: with `?repo=NAME` on the hook's
//! URL only that repository's secret is tried. Without it, every
//! repository that has a webhook secret is a candidate and the body is
//! verified against each secret (a few HMACs); the repositories whose
//! secret verifies are the candidates left. When several share a secret,
//! the (now verified) body's clone URLs and full name pick among them.
//!
//! Durability: the delivery id is committed before the answer; the event's
//! work runs after it. If the server dies in between, the delivery is
//! known but its runs were never created: a redelivery is answered as a
//! duplicate, and polling (on by default) picks the pushed commit up
//! later, since the event key was not claimed.

use super::TriggerEvent;
use crate::engine::Engine;
use jiff::Timestamp;
use kiln_forge::webhook::{self, Forge, ForgeEvent, VerifyError};
use kiln_store::StoreError;
use kiln_store::types::RepoRecord;
use std::sync::Arc;

/// Why a delivery was refused (its HTTP status is in `crate::error`).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The signature does not verify (or no repository has a secret).
    #[error("delivery not verified: {0}")]
    Unauthorized(String),
    /// `?repo=` names no repository.
    #[error("no repository named `{0}`")]
    UnknownRepo(String),
    /// Verified, but the body cannot be read, or it matches no single
    /// repository.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The answer to an accepted delivery (a wire type).
pub use kiln_proto::api::HookAccepted as Accepted;

/// Lowercase, without the scheme's user part, a trailing `/` or `.git`:
/// the forms of one repository's URL compare equal.
fn normalize_url(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    let u = u.strip_suffix(".git").unwrap_or(u);
    let u = match u.split_once("://") {
        Some((_, rest)) => rest.rsplit_once('@').map_or(rest, |(_, host)| host),
        None => u,
    };
    u.to_ascii_lowercase()
}

/// Does the payload's repository name `repo`? Clone URLs compared
/// normalized, or the full name as the end of the registered URL.
pub fn payload_names(repo: &RepoRecord, payload: &webhook::Repo) -> bool {
    let mine = normalize_url(&repo.url);
    payload.clone_urls.iter().any(|u| normalize_url(u) == mine)
        || (!payload.full_name.is_empty()
            && mine.ends_with(&format!("/{}", payload.full_name.to_ascii_lowercase())))
}

fn payload_repo(ev: &ForgeEvent) -> Option<&webhook::Repo> {
    match ev {
        ForgeEvent::Push(p) => Some(&p.repo),
        ForgeEvent::PullRequest(p) => Some(&p.repo),
        ForgeEvent::Comment(c) => Some(&c.repo),
        ForgeEvent::Ping | ForgeEvent::Ignored { .. } => None,
    }
}

impl Engine {
    /// Take a delivery from `forge`. `headers` are the request's headers,
    /// `body` its raw bytes (the size limit is the router's).
    pub async fn receive_hook(
        self: &Arc<Self>,
        forge: Forge,
        repo_name: Option<&str>,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Accepted, HookError> {
        let candidates: Vec<RepoRecord> = match repo_name {
            Some(name) => vec![
                self.store
                    .repo_by_name(name)
                    .await?
                    .ok_or_else(|| HookError::UnknownRepo(name.to_owned()))?,
            ],
            None => self.store.repos().await?,
        };
        let mut verified = Vec::new();
        let mut refusal: Option<VerifyError> = None;
        for repo in candidates {
            let secret = self
                .store
                .trigger_settings(repo.id)
                .await?
                .webhook_secret
                .unwrap_or_default();
            if secret.is_empty() && repo_name.is_none() {
                continue;
            }
            match webhook::verify(forge, headers, body, &secret) {
                Ok(()) => verified.push(repo),
                Err(e) => {
                    refusal.get_or_insert(e);
                }
            }
        }
        if verified.is_empty() {
            let why = refusal.map_or_else(
                || format!("no repository has a webhook secret for {forge} deliveries"),
                |e| e.to_string(),
            );
            tracing::warn!(%forge, repo = repo_name, why, "webhook refused");
            return Err(HookError::Unauthorized(why));
        }
        // Verified: only now is the body read.
        let event_name = webhook::event_name(forge, headers)
            .ok_or_else(|| HookError::BadRequest(format!("no {forge} event header")))?
            .to_owned();
        let event = webhook::parse(forge, &event_name, body)
            .map_err(|e| HookError::BadRequest(e.to_string()))?;
        let repo = if verified.len() == 1 {
            verified.remove(0)
        } else {
            let named: Vec<RepoRecord> = match payload_repo(&event) {
                Some(p) => verified
                    .into_iter()
                    .filter(|r| payload_names(r, p))
                    .collect(),
                None => Vec::new(),
            };
            match <[RepoRecord; 1]>::try_from(named) {
                Ok([r]) => r,
                Err(_) => {
                    return Err(HookError::BadRequest(
                        "several repositories share this webhook secret and the payload \
                         names none of them exactly: add `?repo=NAME` to the hook's URL"
                            .into(),
                    ));
                }
            }
        };
        let delivery = webhook::delivery_id(forge, headers);
        if let Some(id) = &delivery
            && !self
                .store
                .record_delivery(forge.name(), id, Timestamp::now())
                .await?
        {
            tracing::info!(%forge, repo = %repo.name, delivery = id, "duplicate delivery");
            return Ok(Accepted {
                repo: repo.name,
                event: event_name,
                delivery,
                duplicate: true,
                queued: false,
            });
        }
        let Some(trigger) = TriggerEvent::from_forge(event) else {
            return Ok(Accepted {
                repo: repo.name,
                event: event_name,
                delivery,
                duplicate: false,
                queued: false,
            });
        };
        let engine = self.clone();
        let name = repo.name.clone();
        let id = delivery.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.on_event(&repo, trigger).await {
                tracing::warn!(%forge, repo = %repo.name, delivery = id, error = %e, "webhook event failed");
            }
        });
        Ok(Accepted {
            repo: name,
            event: event_name,
            delivery,
            duplicate: false,
            queued: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::RepoId;

    fn repo(url: &str) -> RepoRecord {
        RepoRecord {
            id: RepoId(1),
            name: "app".into(),
            url: url.into(),
            created_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn payload_matches_by_clone_url_or_full_name() {
        let p = webhook::Repo {
            full_name: "Octo/Hello".into(),
            clone_urls: vec![
                "https://github.com/Octo/Hello.git".into(),
                "git@github.com:Octo/Hello.git".into(),
            ],
        };
        assert!(payload_names(&repo("https://github.com/octo/hello"), &p));
        assert!(payload_names(
            &repo("https://token@github.com/Octo/Hello.git/"),
            &p
        ));
        assert!(payload_names(
            &repo("ssh://git@example.com/mirror/octo/hello.git"),
            &p
        ));
        assert!(!payload_names(
            &repo("https://github.com/octo/hello-world"),
            &p
        ));
        assert!(!payload_names(&repo("file:///srv/other.git"), &p));
    }
}
