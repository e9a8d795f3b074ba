//! The server's view of repositories: one bare mirror per repository under
//! the data directory, fetched on trigger, from which runs read their
//! workflow files at the pinned commit (never from a working tree).
//!
//! kiln uses the `git` program: it speaks every transport (file://, git://,
//! http(s)://, ssh) with the user's configuration and credentials.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {args}: {message}")]
    Failed { args: String, message: String },
    #[error("running git: {0}")]
    Spawn(String),
}

pub struct Mirrors {
    dir: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

async fn git(cwd: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
    let mut cmd = Command::new("git");
    if let Some(d) = cwd {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null());
    let out = cmd
        .output()
        .await
        .map_err(|e| GitError::Spawn(e.to_string()))?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Mirrors {
    pub fn new(dir: PathBuf) -> Self {
        Mirrors {
            dir,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(name.to_owned()).or_default().clone()
    }

    /// The mirror of `name` if it exists and already has `commit`: a
    /// trigger pinned to a known commit needs no fetch.
    pub async fn has_commit(&self, name: &str, commit: &str) -> Option<PathBuf> {
        let path = self.path(name);
        if !path.join("HEAD").exists() {
            return None;
        }
        self.commit(&path, commit).await.ok().map(|_| path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.git"))
    }

    /// Clone or fetch the mirror of `name` from `url`.
    pub async fn sync(&self, name: &str, url: &str) -> Result<PathBuf, GitError> {
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        let path = self.path(name);
        if path.join("HEAD").exists() {
            git(
                Some(&path),
                &[
                    "fetch",
                    "--prune",
                    "--quiet",
                    "origin",
                    "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*",
                ],
            )
            .await?;
        } else {
            std::fs::create_dir_all(&self.dir).map_err(|e| GitError::Spawn(e.to_string()))?;
            let p = path.display().to_string();
            git(None, &["clone", "--mirror", "--quiet", url, &p]).await?;
        }
        Ok(path)
    }

    /// The commit `git_ref` points at (default: the remote's HEAD), and the
    /// full ref name when there is one.
    pub async fn resolve(
        &self,
        mirror: &Path,
        git_ref: Option<&str>,
    ) -> Result<(String, Option<String>), GitError> {
        let full = match git_ref {
            Some(r) if r.starts_with("refs/") => Some(r.to_owned()),
            Some(r) => {
                let heads = format!("refs/heads/{r}");
                let tags = format!("refs/tags/{r}");
                if git(Some(mirror), &["rev-parse", "--verify", "-q", &heads])
                    .await
                    .is_ok()
                {
                    Some(heads)
                } else if git(Some(mirror), &["rev-parse", "--verify", "-q", &tags])
                    .await
                    .is_ok()
                {
                    Some(tags)
                } else {
                    return Err(GitError::Failed {
                        args: format!("rev-parse {r}"),
                        message: format!("no branch or tag named `{r}`"),
                    });
                }
            }
            None => git(Some(mirror), &["symbolic-ref", "-q", "HEAD"])
                .await
                .ok()
                .map(|s| s.trim().to_owned()),
        };
        let target = full.clone().unwrap_or_else(|| "HEAD".into());
        let sha = git(
            Some(mirror),
            &["rev-parse", "--verify", &format!("{target}^{{commit}}")],
        )
        .await?;
        Ok((sha.trim().to_owned(), full))
    }

    /// The full id of `commit`, which must exist in the mirror.
    pub async fn commit(&self, mirror: &Path, commit: &str) -> Result<String, GitError> {
        let sha = git(
            Some(mirror),
            &["rev-parse", "--verify", &format!("{commit}^{{commit}}")],
        )
        .await?;
        Ok(sha.trim().to_owned())
    }

    /// `*.yml`/`*.yaml` files directly in `dir` at `commit`, with contents.
    pub async fn workflow_files(
        &self,
        mirror: &Path,
        commit: &str,
        dir: &str,
    ) -> Result<Vec<(String, String)>, GitError> {
        let listing = match git(
            Some(mirror),
            &["ls-tree", "--name-only", &format!("{commit}:{dir}")],
        )
        .await
        {
            Ok(l) => l,
            Err(_) => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for name in listing.lines() {
            if name.ends_with(".yml") || name.ends_with(".yaml") {
                let path = format!("{dir}/{name}");
                let text = git(Some(mirror), &["show", &format!("{commit}:{path}")]).await?;
                out.push((path, text));
            }
        }
        out.sort();
        Ok(out)
    }
}
