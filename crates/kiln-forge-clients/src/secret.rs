//! Secrets at rest: forge tokens are sealed with ChaCha20-Poly1305 (from
//! aws-lc-rs, the provider rustls already uses) under the server's secret
//! key before they reach the store.
//!
//! The key is 32 random bytes, kept hex-encoded in a file (default
//! `DATA/secret.key`, setting `secret_key_file`), created with mode 0600
//! the first time a secret is sealed or opened. Losing the file loses the
//! stored tokens (set them again); copying the database without it leaks
//! nothing. Each sealing uses a fresh random 96-bit nonce, and the
//! repository id is bound as associated data, so a sealed token moved to
//! another repository's row does not open.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use kiln_model::RepoId;
use kiln_store::types::SealedSecret;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key file {path}: {source}")]
    KeyFile { path: String, source: KeyFileError },
    #[error("a stored secret does not open with this server's key (was secret.key replaced?)")]
    Open,
    #[error("sealing a secret: {0}")]
    Seal(String),
}

/// Why the key file could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Random(getrandom::Error),
    #[error("not hex")]
    NotHex,
    #[error("expected 64 hex digits (32 bytes)")]
    WrongLength,
    #[error("not a 32-byte key")]
    NotAKey,
}

/// The server's secret key, loaded (or created) on first use.
pub struct SecretKey {
    path: PathBuf,
    key: OnceLock<LessSafeKey>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.path.display())
    }
}

fn aad(repo: RepoId) -> String {
    format!("kiln forge token v1 repo={}", repo.0)
}

impl SecretKey {
    /// The key in `path` (nothing is read until first use).
    pub fn at(path: PathBuf) -> SecretKey {
        SecretKey {
            path,
            key: OnceLock::new(),
        }
    }

    fn key(&self) -> Result<&LessSafeKey, SecretError> {
        if let Some(k) = self.key.get() {
            return Ok(k);
        }
        let bytes = load_or_create(&self.path).map_err(|source| SecretError::KeyFile {
            path: self.path.display().to_string(),
            source,
        })?;
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| SecretError::KeyFile {
                path: self.path.display().to_string(),
                source: KeyFileError::NotAKey,
            })?;
        // Another task may have won the race; either key is the same file's.
        Ok(self.key.get_or_init(|| LessSafeKey::new(unbound)))
    }

    /// Seal `secret` for `repo`.
    pub fn seal(&self, repo: RepoId, secret: &str) -> Result<SealedSecret, SecretError> {
        let key = self.key()?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretError::Seal(e.to_string()))?;
        let mut data = secret.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(repo).as_bytes()),
            &mut data,
        )
        .map_err(|_| SecretError::Seal("encryption failed".into()))?;
        Ok(SealedSecret {
            nonce: nonce.to_vec(),
            ciphertext: data,
        })
    }

    /// Open what [`seal`](Self::seal) made for `repo`.
    pub fn open(&self, repo: RepoId, sealed: &SealedSecret) -> Result<String, SecretError> {
        let key = self.key()?;
        let nonce: [u8; NONCE_LEN] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::Open)?;
        let mut data = sealed.ciphertext.clone();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(repo).as_bytes()),
                &mut data,
            )
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Open)
    }
}

/// Read the hex key, or create the file (0600, exclusive) with a new one.
fn load_or_create(path: &Path) -> Result<[u8; 32], KeyFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(e.into()),
    }
}

fn parse(text: &str) -> Result<[u8; 32], KeyFileError> {
    let bytes = hex::decode(text.trim()).map_err(|_| KeyFileError::NotHex)?;
    bytes.try_into().map_err(|_| KeyFileError::WrongLength)
}

fn create(path: &Path) -> Result<[u8; 32], KeyFileError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(KeyFileError::Random)?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path);
    match file {
        Ok(mut f) => {
            writeln!(f, "{}", hex::encode(key))?;
            f.sync_all()?;
            Ok(key)
        }
        // Someone else created it meanwhile: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            parse(&std::fs::read_to_string(path)?)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn seal_open_round_trip_with_a_0600_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let key = SecretKey::at(path.clone());
        let sealed = key.seal(RepoId(1), "ghp_topsecret").unwrap();
        assert!(!format!("{sealed:?}").contains("topsecret"));
        assert_ne!(sealed.ciphertext, b"ghp_topsecret");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Reloaded from the file by another process.
        let again = SecretKey::at(path.clone());
        assert_eq!(again.open(RepoId(1), &sealed).unwrap(), "ghp_topsecret");
        // Bound to its repository, and to its bytes.
        assert!(matches!(
            again.open(RepoId(2), &sealed),
            Err(SecretError::Open)
        ));
        let mut bad = sealed.clone();
        bad.ciphertext[0] ^= 1;
        assert!(matches!(
            again.open(RepoId(1), &bad),
            Err(SecretError::Open)
        ));
        // Two sealings never share a nonce.
        assert_ne!(key.seal(RepoId(1), "x").unwrap().nonce, sealed.nonce);
        // Another key does not open it.
        let other = SecretKey::at(dir.path().join("other.key"));
        assert!(matches!(
            other.open(RepoId(1), &sealed),
            Err(SecretError::Open)
        ));
    }

    #[test]
    fn a_broken_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        std::fs::write(&path, "nothex").unwrap();
        let e = SecretKey::at(path).seal(RepoId(1), "x").unwrap_err();
        assert!(e.to_string().contains("secret.key"), "{e}");
    }
}
