//! The git repository kiln was started in, through the `git` program.
//!
//! kiln shells out to git rather than linking a git library: the user's git
//! already knows their configuration, `.gitignore` rules and credentials.

use crate::error::CliError;
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(out.stdout)
}

fn git_line(dir: &Path, args: &[&str]) -> Option<String> {
    git(dir, args)
        .ok()
        .map(|o| String::from_utf8_lossy(&o).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// What kiln needs to know about the repository.
#[derive(Clone, Debug)]
pub struct Repo {
    pub root: PathBuf,
    /// HEAD's commit, if there is one.
    pub head: Option<String>,
    /// The branch HEAD is on, if any.
    pub branch: Option<String>,
    pub name: String,
}

impl Repo {
    /// The repository containing `dir`.
    pub fn discover(dir: &Path) -> Result<Repo, CliError> {
        let root = git_line(dir, &["rev-parse", "--show-toplevel"]).ok_or_else(|| {
            CliError::Usage(format!(
                "{} is not inside a git repository: kiln runs a repository's workflows (run `git init` first)",
                dir.display()
            ))
        })?;
        let root = PathBuf::from(root);
        let head = git_line(&root, &["rev-parse", "--verify", "-q", "HEAD"]);
        let branch = git_line(&root, &["symbolic-ref", "-q", "--short", "HEAD"]);
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repo".into());
        Ok(Repo {
            root,
            head,
            branch,
            name,
        })
    }

    /// Files of the working tree as a job should see them: tracked files
    /// (with uncommitted changes) and untracked files not ignored by
    /// `.gitignore`, relative to the root. Deleted files are left out.
    pub fn worktree_files(&self) -> Result<Vec<PathBuf>, CliError> {
        let out = git(
            &self.root,
            &[
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
        )
        .map_err(|e| CliError::Usage(format!("listing files with git: {e}")))?;
        let mut files: Vec<PathBuf> = out
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| PathBuf::from(String::from_utf8_lossy(s).into_owned()))
            .filter(|p| self.root.join(p).symlink_metadata().is_ok())
            .collect();
        files.sort();
        files.dedup();
        Ok(files)
    }
}
