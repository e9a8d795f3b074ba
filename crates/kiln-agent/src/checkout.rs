//! `actions/checkout` on an agent: the job's commit from a local mirror.
//!
//! One bare mirror per repository URL under `WORK_DIR/mirrors`, created
//! with `git clone --mirror` the first time and updated with `git fetch`
//! only when the commit is missing (`git cat-file -e <sha>^{commit}`).
//! Work on one mirror is serialised by a lock (two jobs of the same
//! repository must not fetch into it at once); jobs of other repositories
//! do not wait. The workspace is then a `git clone --shared` of the mirror
//! (objects borrowed through `alternates`, nothing copied) checked out at
//! the commit, detached, with `origin` pointing at the real URL.
//!
//! Because workspaces borrow the mirror's objects, the mirror must never
//! drop objects while a workspace may use them: mirrors are created with
//! `gc.auto=0`, and fetches never run gc. A crash in the middle of the
//! first clone leaves a `.partial` directory, removed at the next start.
//!
//! Limits: the checkout cannot be interrupted (the runner's `Checkout`
//! port has no cancel token), so a cancel takes effect after it; a commit
//! that no ref of the repository reaches cannot be fetched.

use crate::workdir;
use kiln_exec::runner::Checkout;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The mirrors of one agent, and a lock per mirror.
#[derive(Debug)]
pub(crate) struct Mirrors {
    dir: PathBuf,
    /// Git's environment: the agent's, without its tokens.
    env: Arc<Vec<(String, String)>>,
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl Mirrors {
    pub(crate) fn new(dir: PathBuf, env: Arc<Vec<(String, String)>>) -> Self {
        Mirrors {
            dir,
            env,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Where the mirror of `url` lives: the repository's name (for people)
    /// and a hash of the URL (so that a moved repository gets a new one).
    fn path(&self, name: &str, url: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
                _ => '_',
            })
            .collect();
        let hash = Sha256::digest(url.as_bytes());
        let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
        self.dir
            .join(format!("{}-{hex}.git", safe.trim_start_matches('.')))
    }

    fn lock(&self, mirror: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(mirror.to_path_buf()).or_default().clone()
    }
}

/// Why a checkout failed; the message fails the checkout step.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckoutError {
    #[error("`{0}` is not a commit id")]
    NotACommit(String),
    #[error("`{0}` is not a repository URL")]
    NotAUrl(String),
    #[error("the workspace {} is not empty", .0.display())]
    WorkspaceNotEmpty(PathBuf),
    #[error("removing {}: {source}", .path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("renaming {}: {source}", .path.display())]
    Rename {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("commit {commit} is not in {url}")]
    MissingCommit { commit: String, url: String },
    #[error("{command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Git {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// The checkout of one job.
#[derive(Debug)]
pub(crate) struct GitCheckout {
    pub mirrors: Arc<Mirrors>,
    pub repo_name: String,
    pub url: String,
    pub commit: String,
}

#[async_trait::async_trait]
impl Checkout for GitCheckout {
    async fn checkout(
        &self,
        workspace: &Path,
        log: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), String> {
        self.check_out(workspace, log)
            .await
            .map_err(|e| e.to_string())
    }
}

impl GitCheckout {
    async fn check_out(
        &self,
        workspace: &Path,
        log: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), CheckoutError> {
        let commit = self.commit.as_str();
        if !(4..=64).contains(&commit.len()) || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CheckoutError::NotACommit(commit.to_owned()));
        }
        if self.url.is_empty() || self.url.starts_with('-') {
            return Err(CheckoutError::NotAUrl(self.url.clone()));
        }
        let git = Git {
            env: &self.mirrors.env,
        };
        let mirror = self.mirrors.path(&self.repo_name, &self.url);
        log(format!("{} at {commit}", self.url));
        {
            let lock = self.mirrors.lock(&mirror);
            let _held = lock.lock().await;
            self.update_mirror(&git, &mirror, log).await?;
        }

        let has_git = workspace.join(".git").exists();
        if !has_git {
            let empty = std::fs::read_dir(workspace)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true);
            if !empty {
                return Err(CheckoutError::WorkspaceNotEmpty(workspace.to_path_buf()));
            }
            git.run(
                None,
                &[
                    "clone".as_ref(),
                    "--shared".as_ref(),
                    "--no-checkout".as_ref(),
                    "-q".as_ref(),
                    "--".as_ref(),
                    mirror.as_os_str(),
                    workspace.as_os_str(),
                ],
            )
            .await?;
            git.run(Some(workspace), &["remote", "set-url", "origin", &self.url])
                .await?;
        }
        git.run(
            Some(workspace),
            &["checkout", "-q", "--detach", commit, "--"],
        )
        .await?;
        log(format!(
            "checked out {commit} (detached) in {}",
            workspace.display()
        ));
        Ok(())
    }

    /// Make sure the mirror exists and has the commit. Called with the
    /// mirror's lock held.
    async fn update_mirror(
        &self,
        git: &Git<'_>,
        mirror: &Path,
        log: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), CheckoutError> {
        let commit = self.commit.as_str();
        let wanted = format!("{commit}^{{commit}}");
        if !mirror.join("HEAD").is_file() {
            let partial = mirror.with_extension("partial");
            for leftover in [mirror, partial.as_path()] {
                workdir::remove(leftover).map_err(|source| CheckoutError::Remove {
                    path: leftover.to_path_buf(),
                    source,
                })?;
            }
            log(format!(
                "cloning {} into the mirror {}",
                self.url,
                mirror.display()
            ));
            git.run(
                None,
                &[
                    "clone".as_ref(),
                    "--mirror".as_ref(),
                    "-q".as_ref(),
                    "--".as_ref(),
                    self.url.as_ref(),
                    partial.as_os_str(),
                ],
            )
            .await?;
            git.run(Some(&partial), &["config", "gc.auto", "0"]).await?;
            std::fs::rename(&partial, mirror).map_err(|source| CheckoutError::Rename {
                path: partial.clone(),
                source,
            })?;
        } else if git
            .run(Some(mirror), &["cat-file", "-e", &wanted])
            .await
            .is_ok()
        {
            log(format!(
                "the mirror {} already has the commit",
                mirror.display()
            ));
            return Ok(());
        } else {
            log(format!(
                "fetching {} into the mirror {}",
                self.url,
                mirror.display()
            ));
            git.run(
                Some(mirror),
                &["-c", "gc.auto=0", "fetch", "-q", "--prune", "origin"],
            )
            .await?;
        }
        git.run(Some(mirror), &["cat-file", "-e", &wanted])
            .await
            .map_err(|_| CheckoutError::MissingCommit {
                commit: commit.to_owned(),
                url: self.url.clone(),
            })
    }
}

struct Git<'a> {
    env: &'a [(String, String)],
}

impl Git<'_> {
    /// Run git (in `dir`, when given) and fail with its stderr.
    async fn run<S: AsRef<std::ffi::OsStr>>(
        &self,
        dir: Option<&Path>,
        args: &[S],
    ) -> Result<(), CheckoutError> {
        let mut cmd = tokio::process::Command::new("git");
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(dir) = dir {
            cmd.arg("-C").arg(dir);
        }
        cmd.args(args);
        let shown = || {
            let mut s = String::from("git");
            if let Some(dir) = dir {
                s.push_str(&format!(" -C {}", dir.display()));
            }
            for a in args {
                s.push(' ');
                s.push_str(&a.as_ref().to_string_lossy());
            }
            s
        };
        let out = cmd.output().await.map_err(|source| CheckoutError::Spawn {
            command: shown(),
            source,
        })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(CheckoutError::Git {
            command: shown(),
            status: out.status,
            stderr: stderr.trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_paths_are_safe_and_distinct() {
        let m = Mirrors::new("/m".into(), Arc::new(Vec::new()));
        let a = m.path("../evil/name", "file:///a");
        assert_eq!(a.parent(), Some(Path::new("/m")));
        assert!(
            a.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("_evil_name-")
        );
        assert_ne!(m.path("r", "file:///a"), m.path("r", "file:///b"));
    }
}
