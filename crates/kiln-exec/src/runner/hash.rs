//! `hashFiles()`: one SHA-256 over the files matching glob patterns.
//!
//! As on GitHub: patterns are relative to the workspace, a leading `!`
//! excludes, files are taken in sorted path order, each file is hashed and
//! the digests are hashed together; no match gives the empty string.

use globset::GlobSetBuilder;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub fn hash_files(workspace: &Path, patterns: &[String]) -> Result<String, String> {
    let mut include = GlobSetBuilder::new();
    let mut exclude = GlobSetBuilder::new();
    for p in patterns {
        let (set, pat) = match p.strip_prefix('!') {
            Some(rest) => (&mut exclude, rest),
            None => (&mut include, p.as_str()),
        };
        let pat = pat.strip_prefix("./").unwrap_or(pat);
        // As on GitHub, `*` stays within one directory; `**` crosses them.
        let glob = globset::GlobBuilder::new(pat)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("hashFiles: bad pattern `{p}`: {e}"))?;
        set.add(glob);
    }
    let include = include.build().map_err(|e| format!("hashFiles: {e}"))?;
    let exclude = exclude.build().map_err(|e| format!("hashFiles: {e}"))?;
    let mut files = Vec::new();
    walk(workspace, workspace, &mut files).map_err(|e| format!("hashFiles: {e}"))?;
    files.retain(|rel| include.is_match(rel) && !exclude.is_match(rel));
    if files.is_empty() {
        return Ok(String::new());
    }
    files.sort();
    let mut all = Sha256::new();
    for rel in &files {
        let bytes = std::fs::read(workspace.join(rel))
            .map_err(|e| format!("hashFiles: reading {}: {e}", rel.display()))?;
        all.update(Sha256::digest(&bytes));
    }
    Ok(hex(&all.finalize()))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            if entry.file_name() != ".git" {
                walk(root, &path, out)?;
            }
        } else if ty.is_file()
            && let Ok(rel) = path.strip_prefix(root)
        {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_excludes_and_changes_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/x.lock"), "1").unwrap();
        std::fs::write(root.join("a/y.lock"), "2").unwrap();
        std::fs::write(root.join("z.txt"), "3").unwrap();
        let h1 = hash_files(root, &["**/*.lock".into()]).unwrap();
        assert_eq!(h1.len(), 64);
        let only_y = hash_files(root, &["**/*.lock".into(), "!a/b/**".into()]).unwrap();
        assert_ne!(h1, only_y);
        assert_eq!(hash_files(root, &["nothing/*".into()]).unwrap(), "");
        // `*` does not cross directories; `**` does.
        assert_eq!(hash_files(root, &["*.lock".into()]).unwrap(), "");
        assert_ne!(hash_files(root, &["a/*.lock".into()]).unwrap(), "");
        std::fs::write(root.join("a/y.lock"), "changed").unwrap();
        assert_ne!(hash_files(root, &["**/*.lock".into()]).unwrap(), h1);
        // Unrelated files do not change the hash.
        let h2 = hash_files(root, &["**/*.lock".into()]).unwrap();
        std::fs::write(root.join("z.txt"), "4").unwrap();
        assert_eq!(hash_files(root, &["**/*.lock".into()]).unwrap(), h2);
    }
}
