//! The server's view of repositories: one bare mirror per repository under
//! the data directory, fetched on trigger, from which runs read their
//! workflow files at the pinned commit (never from a working tree).
//!
//! kiln uses the `git` program: it speaks every transport (file://, git://,
//! http(s)://, ssh) with the user's configuration and credentials.
//!
//! A trigger costs git processes, so they are shared where that changes
//! nothing a trigger can see:
//! - fetches of one repository run one at a time, and a trigger whose
//!   request came before a fetch *started* takes that fetch's result
//!   instead of fetching again (it sees the remote at least as new as
//!   when it asked): a burst of triggers costs two fetches, not one each;
//! - a ref resolves once per fetch (the mirror's refs change only then);
//! - the workflow files at a commit are read once (a commit never changes).

use std::collections::{BTreeMap, HashMap};
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
    repos: Mutex<HashMap<String, Arc<Mirror>>>,
    /// Workflow files by (mirror, commit, directory).
    files: Mutex<HashMap<(PathBuf, String, String), Arc<Files>>>,
}

/// Workflow files: (path, text).
type Files = Vec<(String, String)>;

/// A resolved ref: the commit, and the full ref name when there is one.
type Resolved = (String, Option<String>);

/// Entries kept in each cache before it starts over.
const CACHED: usize = 256;

#[derive(Default)]
struct Mirror {
    /// Held while fetching: when the last successful fetch started.
    fetch: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Refs resolved since the last fetch, and that fetch's number.
    resolved: Mutex<(u64, HashMap<Option<String>, Resolved>)>,
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
            repos: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
        }
    }

    fn mirror(&self, name: &str) -> Arc<Mirror> {
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        repos.entry(name.to_owned()).or_default().clone()
    }

    /// The state of the mirror at `path` (named by its repository).
    fn mirror_at(&self, path: &Path) -> Option<Arc<Mirror>> {
        let name = path.file_name()?.to_str()?.strip_suffix(".git")?;
        Some(self.mirror(name))
    }

    /// The mirror of `name` if it exists and already has `commit`: a
    /// trigger pinned to a known commit needs no fetch.
    /// `a` is a strict ancestor of `b` in `mirror` (false when git cannot
    /// tell, e.g. a commit is missing).
    pub async fn is_ancestor(&self, mirror: &Path, a: &str, b: &str) -> bool {
        a != b
            && git(Some(mirror), &["merge-base", "--is-ancestor", a, b])
                .await
                .is_ok()
    }

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

    /// Clone or fetch the mirror of `name` from `url`: afterwards it holds
    /// the remote's refs as they were at some moment after this call began.
    pub async fn sync(&self, name: &str, url: &str) -> Result<PathBuf, GitError> {
        let asked = std::time::Instant::now();
        let mirror = self.mirror(name);
        let mut last = mirror.fetch.lock().await;
        let path = self.path(name);
        if last.is_some_and(|started| started > asked) && path.join("HEAD").exists() {
            // A fetch that started after we asked has just ended.
            return Ok(path);
        }
        let started = std::time::Instant::now();
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
        *last = Some(started);
        let mut resolved = mirror.resolved.lock().unwrap_or_else(|p| p.into_inner());
        resolved.0 += 1;
        resolved.1.clear();
        Ok(path)
    }

    /// The commit `git_ref` points at (default: the remote's HEAD), and the
    /// full ref name when there is one.
    pub async fn resolve(
        &self,
        mirror: &Path,
        git_ref: Option<&str>,
    ) -> Result<(String, Option<String>), GitError> {
        let state = self.mirror_at(mirror);
        let key = git_ref.map(str::to_owned);
        let fetched = match &state {
            Some(m) => {
                let resolved = m.resolved.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(hit) = resolved.1.get(&key) {
                    return Ok(hit.clone());
                }
                Some(resolved.0)
            }
            None => None,
        };
        let answer = self.resolve_now(mirror, git_ref).await?;
        if let (Some(m), Some(fetched)) = (state, fetched) {
            let mut resolved = m.resolved.lock().unwrap_or_else(|p| p.into_inner());
            // Kept only if no fetch came in between.
            if resolved.0 == fetched && resolved.1.len() < CACHED {
                resolved.1.insert(key, answer.clone());
            }
        }
        Ok(answer)
    }

    async fn resolve_now(
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
        let key = (mirror.to_path_buf(), commit.to_owned(), dir.to_owned());
        if let Some(hit) = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(hit.as_ref().clone());
        }
        let files = self.read_workflow_files(mirror, commit, dir).await?;
        if files.is_empty() {
            // Perhaps the commit is not fetched yet: ask git again next time.
            return Ok(files);
        }
        let mut cache = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHED {
            cache.clear();
        }
        cache.insert(key, Arc::new(files.clone()));
        Ok(files)
    }

    async fn read_workflow_files(
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

    /// The branches and tags of the remote at `url` (`refs/heads/*`,
    /// `refs/tags/*` -> commit; an annotated tag maps to the commit it
    /// points at) and the commit of its `HEAD`, from `git ls-remote`:
    /// nothing is fetched.
    pub async fn ls_remote(&self, url: &str) -> Result<RemoteRefs, GitError> {
        let out = git(None, &["ls-remote", url]).await?;
        Ok(parse_ls_remote(&out))
    }

    /// Make sure `commit` is in the mirror of `name`: fetch the branches
    /// and tags, then each of `refs` (such as `refs/pull/7/head`, kept
    /// under `refs/kiln/`), then the commit itself. Error when none of it
    /// brings the commit.
    pub async fn ensure_commit(
        &self,
        name: &str,
        url: &str,
        commit: &str,
        refs: &[String],
    ) -> Result<PathBuf, GitError> {
        if let Some(path) = self.has_commit(name, commit).await {
            return Ok(path);
        }
        let path = self.sync(name, url).await?;
        if self.commit(&path, commit).await.is_ok() {
            return Ok(path);
        }
        let mirror = self.mirror(name);
        let _fetching = mirror.fetch.lock().await;
        for r in refs {
            let local = format!("refs/kiln/{}", r.trim_start_matches("refs/"));
            let spec = format!("+{r}:{local}");
            if git(Some(&path), &["fetch", "--quiet", "origin", &spec])
                .await
                .is_ok()
                && self.commit(&path, commit).await.is_ok()
            {
                return Ok(path);
            }
        }
        let spec = format!("+{commit}:refs/kiln/commits/{commit}");
        git(Some(&path), &["fetch", "--quiet", "origin", &spec]).await?;
        self.commit(&path, commit).await?;
        Ok(path)
    }

    /// Files changed by a push that moved a ref from `before` to `after`:
    /// `git diff before after` when `before` is a commit the mirror has;
    /// otherwise (a new ref, or history rewritten beyond reach) the files
    /// the commit `after` itself changed against its first parent (every
    /// file of a root commit).
    pub async fn changed_files(
        &self,
        mirror: &Path,
        before: Option<&str>,
        after: &str,
    ) -> Result<Vec<String>, GitError> {
        let known_before = match before {
            Some(b) if self.commit(mirror, b).await.is_ok() => Some(b),
            Some(_) | None => None,
        };
        let parent = format!("{after}^1");
        let out = match known_before {
            Some(b) => {
                git(
                    Some(mirror),
                    &["diff", "--name-only", "--no-renames", b, after],
                )
                .await?
            }
            None if self.commit(mirror, &parent).await.is_ok() => {
                git(
                    Some(mirror),
                    &["diff", "--name-only", "--no-renames", &parent, after],
                )
                .await?
            }
            None => {
                git(
                    Some(mirror),
                    &[
                        "diff-tree",
                        "--no-commit-id",
                        "--name-only",
                        "--no-renames",
                        "-r",
                        "--root",
                        after,
                    ],
                )
                .await?
            }
        };
        Ok(lines(&out))
    }

    /// Files a pull request changes: the diff from the merge base of the
    /// base branch and `head` to `head` (`git diff base...head`). `None`
    /// when the mirror lacks the base branch.
    pub async fn pull_request_files(
        &self,
        mirror: &Path,
        base_branch: &str,
        head: &str,
    ) -> Result<Option<Vec<String>>, GitError> {
        let base = format!("refs/heads/{base_branch}");
        if self.commit(mirror, &base).await.is_err() {
            return Ok(None);
        }
        let range = format!("{base}...{head}");
        let out = git(
            Some(mirror),
            &["diff", "--name-only", "--no-renames", &range],
        )
        .await?;
        Ok(Some(lines(&out)))
    }
}

/// What `git ls-remote` says about a remote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteRefs {
    /// `refs/heads/*` and `refs/tags/*` -> commit.
    pub refs: BTreeMap<String, String>,
    /// The commit `HEAD` points at (the default branch's tip).
    pub head: Option<String>,
}

fn lines(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Parse `git ls-remote` output. A peeled tag line (`refs/tags/v1^{}`)
/// replaces the tag object's id with its commit's.
pub(crate) fn parse_ls_remote(out: &str) -> RemoteRefs {
    let mut r = RemoteRefs::default();
    for line in out.lines() {
        let Some((sha, name)) = line.split_once('\t') else {
            continue;
        };
        let (sha, name) = (sha.trim(), name.trim());
        if name == "HEAD" {
            r.head = Some(sha.to_owned());
        } else if let Some(tag) = name.strip_suffix("^{}") {
            if tag.starts_with("refs/tags/") {
                r.refs.insert(tag.to_owned(), sha.to_owned());
            }
        } else if name.starts_with("refs/heads/") || name.starts_with("refs/tags/") {
            r.refs
                .entry(name.to_owned())
                .or_insert_with(|| sha.to_owned());
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_remote_keeps_branches_and_tags_and_peels() {
        let out = "aaa\tHEAD\naaa\trefs/heads/main\nbbb\trefs/heads/dev\n\
                   ccc\trefs/tags/v1\nddd\trefs/tags/v1^{}\neee\trefs/pull/1/head\n\
                   fff\trefs/tags/light\n";
        let r = parse_ls_remote(out);
        assert_eq!(r.head.as_deref(), Some("aaa"));
        let want: BTreeMap<String, String> = [
            ("refs/heads/dev", "bbb"),
            ("refs/heads/main", "aaa"),
            ("refs/tags/light", "fff"),
            ("refs/tags/v1", "ddd"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        assert_eq!(r.refs, want);
    }
}
