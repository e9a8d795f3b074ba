//! Webhook deliveries: verify first, then parse into one normalized event.
//!
//! The order is the contract: [`verify`] runs over the raw body bytes before
//! anything parses them, so a forged body never reaches serde. A delivery
//! that fails verification changes nothing (the server answers 401).
//! [`delivery_id`] gives the id the server deduplicates retries by, and
//! [`parse`] maps the forge's event header and body to a [`ForgeEvent`].
//!
//! What each forge sends (checked against the forges' documentation and the
//! recorded bodies in `shared/fixtures/webhooks/`):
//!
//! | forge   | event header      | delivery id                                  | signature |
//! |---------|-------------------|----------------------------------------------|-----------|
//! | GitHub  | `X-GitHub-Event`  | `X-GitHub-Delivery`                          | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>` |
//! | Gitea   | `X-Gitea-Event`   | `X-Gitea-Delivery`                           | `X-Gitea-Signature: <hex HMAC-SHA256>` |
//! | Forgejo | `X-Forgejo-Event` | `X-Forgejo-Delivery`                         | `X-Forgejo-Signature: <hex HMAC-SHA256>` |
//! | GitLab  | `X-Gitlab-Event`  | `Idempotency-Key`, else `X-Gitlab-Event-UUID` | `X-Gitlab-Token: <the secret itself>` |
//!
//! Forgejo also sends the `X-Gitea-*` headers for compatibility; they are
//! the fallback when a `X-Forgejo-*` header is absent. GitLab's
//! `Idempotency-Key` (GitLab 17.4+) stays the same across retries of one
//! event, which is what deduplication needs; older GitLab only has
//! `X-Gitlab-Event-UUID`.

mod event;
mod gitea;
mod github;
mod gitlab;
mod parse;
mod verify;

pub use event::{Comment, ForgeEvent, PrAction, PullRequest, Push, Repo};
pub use parse::{ParseError, parse};
pub use verify::{VerifyError, sign, verify};

use std::fmt;

/// The forges kiln receives webhooks from. Forgejo is Gitea's fork and
/// sends Gitea's bodies; it is its own variant because its headers differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Forge {
    GitHub,
    Gitea,
    Forgejo,
    GitLab,
}

impl Forge {
    /// The lowercase name used in routes (`/hooks/<name>`) and messages.
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
            Forge::GitLab => "gitlab",
        }
    }

    /// The headers that carry the event name, in the order they are tried.
    pub(crate) fn event_headers(self) -> &'static [&'static str] {
        match self {
            Forge::GitHub => &["X-GitHub-Event"],
            Forge::Gitea => &["X-Gitea-Event"],
            Forge::Forgejo => &["X-Forgejo-Event", "X-Gitea-Event"],
            Forge::GitLab => &["X-Gitlab-Event"],
        }
    }

    pub(crate) fn delivery_headers(self) -> &'static [&'static str] {
        match self {
            Forge::GitHub => &["X-GitHub-Delivery"],
            Forge::Gitea => &["X-Gitea-Delivery"],
            Forge::Forgejo => &["X-Forgejo-Delivery", "X-Gitea-Delivery"],
            Forge::GitLab => &["Idempotency-Key", "X-Gitlab-Event-UUID"],
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Read access to a request's headers, by case-insensitive name.
///
/// Implemented for lists of `(name, value)` pairs so that this crate needs no
/// HTTP library; the server collects its header map into one.
pub trait Headers {
    /// The first value of header `name` (ASCII case-insensitive).
    fn header(&self, name: &str) -> Option<&str>;
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

fn first_header<'h, H: Headers + ?Sized>(headers: &'h H, names: &[&str]) -> Option<&'h str> {
    names
        .iter()
        .find_map(|n| headers.header(n))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The event name the forge put in its event header (`push`,
/// `pull_request`, `Merge Request Hook` …), to pass to [`parse`].
pub fn event_name<H: Headers + ?Sized>(forge: Forge, headers: &H) -> Option<&str> {
    first_header(headers, forge.event_headers())
}

/// The id of this delivery, the same on every retry of it, for
/// deduplication. `None` when the forge sent none (old GitLab).
pub fn delivery_id<H: Headers + ?Sized>(forge: Forge, headers: &H) -> Option<String> {
    first_header(headers, forge.delivery_headers()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_case_insensitive_and_forgejo_falls_back_to_gitea() {
        let h = vec![
            ("x-gitea-event".to_owned(), "push".to_owned()),
            ("X-GITEA-DELIVERY".to_owned(), "abc".to_owned()),
        ];
        assert_eq!(event_name(Forge::Forgejo, &h), Some("push"));
        assert_eq!(delivery_id(Forge::Forgejo, &h).as_deref(), Some("abc"));
        let h = [
            ("X-Forgejo-Delivery", "own"),
            ("X-Gitea-Delivery", "compat"),
        ];
        assert_eq!(delivery_id(Forge::Forgejo, &h[..]).as_deref(), Some("own"));
        assert_eq!(delivery_id(Forge::GitHub, &h[..]), None);
    }

    #[test]
    fn gitlab_prefers_the_idempotency_key() {
        let h = [
            ("X-Gitlab-Event-UUID", "event"),
            ("Idempotency-Key", "retry-stable"),
        ];
        assert_eq!(
            delivery_id(Forge::GitLab, &h[..]).as_deref(),
            Some("retry-stable")
        );
        let h = [("X-Gitlab-Event-UUID", "event")];
        assert_eq!(delivery_id(Forge::GitLab, &h[..]).as_deref(), Some("event"));
        let h = [("X-Gitlab-Event-UUID", "  ")];
        assert_eq!(delivery_id(Forge::GitLab, &h[..]), None);
    }
}
