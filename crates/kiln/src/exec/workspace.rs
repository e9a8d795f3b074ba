//! Fresh job workspaces for `kiln exec`: a copy of the working tree as git
//! sees it (HEAD plus uncommitted changes, `.gitignore` honoured), one per
//! job, so that jobs running side by side cannot trip over each other.
//!
//! The file list is computed once per `kiln exec`; each job then costs one
//! `mkdir` per directory and one copy per file (the kernel's
//! `copy_file_range`, via `std::fs::copy`). Symbolic links are recreated as
//! links. The copy has no `.git` directory: steps that need git history run
//! with `--in-place`.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

/// The template every job workspace is copied from.
#[derive(Debug)]
pub struct Source {
    root: PathBuf,
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl Source {
    /// `files` are relative to `root`.
    pub fn new(root: PathBuf, files: Vec<PathBuf>) -> Self {
        let mut dirs = BTreeSet::new();
        for f in &files {
            let mut p = f.parent();
            while let Some(d) = p {
                if d.as_os_str().is_empty() {
                    break;
                }
                dirs.insert(d.to_path_buf());
                p = d.parent();
            }
        }
        // BTreeSet order puts parents before children.
        Source {
            root,
            dirs: dirs.into_iter().collect(),
            files,
        }
    }

    /// Create `dest` (which must not exist) as a copy.
    pub fn materialize(&self, dest: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dest)?;
        for d in &self.dirs {
            match std::fs::create_dir(dest.join(d)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        for f in &self.files {
            let from = self.root.join(f);
            let to = dest.join(f);
            let meta = std::fs::symlink_metadata(&from)?;
            if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            } else if meta.is_file() {
                std::fs::copy(&from, &to).map_err(|e| {
                    io::Error::new(e.kind(), format!("copying {}: {e}", from.display()))
                })?;
            }
            // Submodule directories (listed as files by git) are skipped.
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_dirs_and_links() {
        let src = tempfile::tempdir().unwrap();
        let root = src.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f.txt"), "deep").unwrap();
        std::fs::write(root.join("top.txt"), "top").unwrap();
        std::os::unix::fs::symlink("top.txt", root.join("link")).unwrap();
        std::fs::write(root.join("ignored.txt"), "not listed").unwrap();
        let s = Source::new(
            root.to_path_buf(),
            vec!["a/b/f.txt".into(), "top.txt".into(), "link".into()],
        );
        let dest = tempfile::tempdir().unwrap();
        let ws = dest.path().join("ws");
        s.materialize(&ws).unwrap();
        assert_eq!(
            std::fs::read_to_string(ws.join("a/b/f.txt")).unwrap(),
            "deep"
        );
        assert_eq!(std::fs::read_to_string(ws.join("link")).unwrap(), "top");
        assert!(
            std::fs::symlink_metadata(ws.join("link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(!ws.join("ignored.txt").exists());
    }
}
