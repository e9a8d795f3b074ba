//! [`StoreForges`]: the [`ForgeDirectory`] over the store's forge settings,
//! and the rules that turn what an admin typed into settings
//! ([`resolve`]).
//!
//! Adapters are built once per repository and kept; an entry is dropped
//! when its settings change here ([`ForgeDirectory::changed`]) and is
//! re-checked against the store after [`CACHE_TTL`], so a change made by
//! another server is seen within that time.

use super::http;
use super::secret::SecretKey;
use super::{ForgeDirectory, RepoForge};
use kiln_forge::api::ForgeApi;
use kiln_model::RepoId;
use kiln_proto::api::ForgeKind;
use kiln_store::Store;
use kiln_store::types::ForgeRecord;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a looked-up forge (or its absence) is trusted without asking
/// the store again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

type Entry = (Instant, Option<(jiff::Timestamp, RepoForge)>);

/// Forges from the store, tokens opened with the server's key.
pub struct StoreForges {
    store: Arc<dyn Store>,
    key: Arc<SecretKey>,
    client: Option<reqwest::Client>,
    cache: Mutex<HashMap<RepoId, Entry>>,
}

impl StoreForges {
    pub fn new(store: Arc<dyn Store>, key: Arc<SecretKey>) -> StoreForges {
        let client = match http::client() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client: forges are off");
                None
            }
        };
        StoreForges {
            store,
            key,
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn build(&self, rec: &ForgeRecord) -> Option<RepoForge> {
        let client = self.client.clone()?;
        let token = match self.key.open(rec.repo, &rec.token) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(repo = rec.repo.0, error = %e, "forge token");
                return None;
            }
        };
        let api: Result<Arc<dyn ForgeApi>, _> =
            match rec.kind {
                ForgeKind::Github => {
                    super::github::github(client, &rec.api_url, &token).map(|a| Arc::new(a) as _)
                }
                ForgeKind::Gitea => super::gitea::gitea(client, &rec.api_url, &token, false)
                    .map(|a| Arc::new(a) as _),
                ForgeKind::Forgejo => super::gitea::gitea(client, &rec.api_url, &token, true)
                    .map(|a| Arc::new(a) as _),
                ForgeKind::Gitlab => {
                    super::gitlab::gitlab(client, &rec.api_url, &token).map(|a| Arc::new(a) as _)
                }
            };
        match api {
            Ok(api) => Some(RepoForge {
                api,
                full_name: rec.full_name.clone(),
            }),
            Err(e) => {
                tracing::error!(repo = rec.repo.0, error = %e, "forge settings");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl ForgeDirectory for StoreForges {
    async fn forge(&self, repo: RepoId) -> Option<RepoForge> {
        let now = Instant::now();
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&repo)
            .cloned();
        if let Some((at, entry)) = &cached
            && now.duration_since(*at) < CACHE_TTL
        {
            return entry.as_ref().map(|(_, f)| f.clone());
        }
        let rec = match self.store.forge(repo).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(repo = repo.0, error = %e, "reading forge settings");
                // Keep using what we had.
                return cached.and_then(|(_, e)| e.map(|(_, f)| f));
            }
        };
        let entry = rec.map(|rec| {
            // Same settings as cached: keep the adapter.
            let kept = cached
                .as_ref()
                .and_then(|(_, e)| e.as_ref())
                .filter(|(updated, _)| *updated == rec.updated_at)
                .map(|(_, f)| f.clone());
            (rec.updated_at, kept.or_else(|| self.build(&rec)))
        });
        let entry = match entry {
            Some((updated, Some(f))) => Some((updated, f)),
            Some((_, None)) | None => None,
        };
        let found = entry.as_ref().map(|(_, f)| f.clone());
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(repo, (now, entry));
        found
    }

    fn changed(&self, repo: RepoId) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&repo);
    }
}

/// Settings after defaults: the API root and the full name on the forge.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    pub api_url: String,
    pub full_name: String,
}

/// Fill in the API root and the repository's full name from the git URL
/// where they were not given:
/// - GitHub: `https://api.github.com` for github.com, else (GitHub
///   Enterprise) `https://HOST/api/v3`;
/// - Gitea, Forgejo: `https://HOST/api/v1`; GitLab: `https://HOST/api/v4`;
/// - full name: the URL's path without `.git` (`owner/name`, GitLab
///   `group/sub/name`).
///
/// Works for `https://HOST/o/r.git`, `ssh://git@HOST[:port]/o/r.git` and
/// `git@HOST:o/r.git`; other URLs (file://, paths) need both given.
pub fn resolve(
    kind: ForgeKind,
    repo_url: &str,
    api_url: Option<&str>,
    full_name: Option<&str>,
) -> Result<Resolved, String> {
    let parsed = split_git_url(repo_url);
    let api_url = match api_url.map(str::trim).filter(|s| !s.is_empty()) {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let (host, _) = parsed.as_ref().ok_or_else(|| {
                format!("cannot tell the forge's API URL from `{repo_url}`: give --forge-url")
            })?;
            match kind {
                ForgeKind::Github if host.eq_ignore_ascii_case("github.com") => {
                    "https://api.github.com".to_owned()
                }
                ForgeKind::Github => format!("https://{host}/api/v3"),
                ForgeKind::Gitea | ForgeKind::Forgejo => format!("https://{host}/api/v1"),
                ForgeKind::Gitlab => format!("https://{host}/api/v4"),
            }
        }
    };
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        return Err(format!(
            "forge URL `{api_url}` must start with https:// (or http://)"
        ));
    }
    let full_name = match full_name.map(str::trim).filter(|s| !s.is_empty()) {
        Some(n) => n.trim_matches('/').to_owned(),
        None => parsed.map(|(_, path)| path).ok_or_else(|| {
            format!("cannot tell the repository's name on the forge from `{repo_url}`: give --forge-repo OWNER/NAME")
        })?,
    };
    let segments: Vec<&str> = full_name.split('/').collect();
    if segments.len() < 2
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(format!(
            "forge repository `{full_name}`: expected OWNER/NAME"
        ));
    }
    Ok(Resolved { api_url, full_name })
}

/// (host without port or user, path without `.git`) of a remote git URL.
fn split_git_url(url: &str) -> Option<(String, String)> {
    let url = url.trim();
    let (host, path) = if let Some((scheme, rest)) = url.split_once("://") {
        if !matches!(scheme, "https" | "http" | "ssh" | "git" | "git+ssh") {
            return None;
        }
        let (authority, path) = rest.split_once('/')?;
        let host = authority.rsplit('@').next()?;
        let host = host.split(':').next()?;
        (host.to_owned(), path.to_owned())
    } else {
        // scp-like: [user@]host:path
        let (authority, path) = url.split_once(':')?;
        if authority.contains('/') || path.starts_with("//") {
            return None;
        }
        let host = authority.rsplit('@').next()?;
        (host.to_owned(), path.to_owned())
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path).to_owned();
    (!host.is_empty() && !path.is_empty()).then_some((host, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: ForgeKind, url: &str) -> Result<Resolved, String> {
        resolve(kind, url, None, None)
    }

    #[test]
    fn defaults_from_the_git_url() {
        assert_eq!(
            r(ForgeKind::Github, "https://github.com/octo/web.git"),
            Ok(Resolved {
                api_url: "https://api.github.com".into(),
                full_name: "octo/web".into()
            })
        );
        assert_eq!(
            r(ForgeKind::Github, "git@ghe.corp:team/app.git")
                .unwrap()
                .api_url,
            "https://ghe.corp/api/v3"
        );
        assert_eq!(
            r(
                ForgeKind::Forgejo,
                "ssh://git@codeberg.org:2222/me/tool.git"
            ),
            Ok(Resolved {
                api_url: "https://codeberg.org/api/v1".into(),
                full_name: "me/tool".into()
            })
        );
        assert_eq!(
            r(ForgeKind::Gitlab, "https://gitlab.com/group/sub/proj"),
            Ok(Resolved {
                api_url: "https://gitlab.com/api/v4".into(),
                full_name: "group/sub/proj".into()
            })
        );
    }

    #[test]
    fn given_values_win_and_local_urls_need_them() {
        assert!(r(ForgeKind::Github, "file:///srv/git/web.git").is_err());
        assert!(r(ForgeKind::Github, "/srv/git/web").is_err());
        assert_eq!(
            resolve(
                ForgeKind::Github,
                "file:///srv/git/web.git",
                Some("http://127.0.0.1:9/"),
                Some("octo/web")
            ),
            Ok(Resolved {
                api_url: "http://127.0.0.1:9".into(),
                full_name: "octo/web".into()
            })
        );
        assert!(
            resolve(
                ForgeKind::Github,
                "https://github.com/a/b",
                Some("ftp://x"),
                None
            )
            .is_err()
        );
        assert!(
            resolve(
                ForgeKind::Github,
                "https://github.com/a/b",
                None,
                Some("justone")
            )
            .is_err()
        );
    }
}
