//! Signature checks over the raw body, in constant time.
//!
//! GitHub, Gitea and Forgejo send the HMAC-SHA256 of the body keyed with the
//! hook's secret, hex-encoded; GitHub prefixes it with `sha256=`. GitLab
//! sends the secret itself in `X-Gitlab-Token`. HMACs are compared with the
//! `hmac` crate's constant-time `verify_slice`; GitLab tokens are compared as
//! SHA-256 digests with `subtle`, so neither their content nor their length
//! leaks through timing.

use super::{Forge, Headers};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was refused. Every variant maps to HTTP 401 at the edge;
/// they differ so that the server's log says what to fix. A wrong secret
/// and a tampered body cannot be told apart: both are [`Self::Mismatch`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no webhook secret is configured for {forge}; every delivery is refused")]
    NoSecret { forge: Forge },
    #[error("missing `{header}` header")]
    Missing { header: &'static str },
    #[error("`{header}` is not a well-formed signature: {why}")]
    Malformed {
        header: &'static str,
        why: &'static str,
    },
    #[error("`{header}` does not match the body and the configured secret")]
    Mismatch { header: &'static str },
}

const GITHUB: &str = "X-Hub-Signature-256";
const GITEA: &str = "X-Gitea-Signature";
const FORGEJO: &str = "X-Forgejo-Signature";
const GITLAB: &str = "X-Gitlab-Token";

/// Check that `body` came from the forge that knows `secret`.
///
/// Call it before parsing; an empty secret refuses everything (an
/// unconfigured secret must not mean "no check"). For Forgejo,
/// `X-Forgejo-Signature` is checked when present, else `X-Gitea-Signature`;
/// a bad Forgejo signature is never rescued by the other header.
pub fn verify<H: Headers + ?Sized>(
    forge: Forge,
    headers: &H,
    body: &[u8],
    secret: &str,
) -> Result<(), VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::NoSecret { forge });
    }
    match forge {
        Forge::GitHub => {
            let value = required(headers, GITHUB)?;
            let hex = value
                .strip_prefix("sha256=")
                .ok_or(VerifyError::Malformed {
                    header: GITHUB,
                    why: "expected `sha256=` followed by 64 hex digits",
                })?;
            check_hmac(GITHUB, hex, body, secret)
        }
        Forge::Gitea => check_hmac(GITEA, required(headers, GITEA)?, body, secret),
        Forge::Forgejo => {
            let (header, value) = match headers.header(FORGEJO) {
                Some(v) => (FORGEJO, v),
                None => (
                    GITEA,
                    required(headers, GITEA)
                        .map_err(|_| VerifyError::Missing { header: FORGEJO })?,
                ),
            };
            check_hmac(header, value, body, secret)
        }
        Forge::GitLab => {
            let token = required(headers, GITLAB)?;
            let given = Sha256::digest(token.as_bytes());
            let wanted = Sha256::digest(secret.as_bytes());
            if bool::from(given.ct_eq(&wanted)) {
                Ok(())
            } else {
                Err(VerifyError::Mismatch { header: GITLAB })
            }
        }
    }
}

/// The `(header, value)` a forge would send for `body`: for tests, fixtures
/// and a "send a test delivery" tool. GitLab's value is the secret itself.
pub fn sign(forge: Forge, body: &[u8], secret: &str) -> (&'static str, String) {
    let hmac = || {
        let mut mac =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    };
    match forge {
        Forge::GitHub => (GITHUB, format!("sha256={}", hmac())),
        Forge::Gitea => (GITEA, hmac()),
        Forge::Forgejo => (FORGEJO, hmac()),
        Forge::GitLab => (GITLAB, secret.to_owned()),
    }
}

fn required<'h, H: Headers + ?Sized>(
    headers: &'h H,
    header: &'static str,
) -> Result<&'h str, VerifyError> {
    match headers.header(header).map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        Some(_) | None => Err(VerifyError::Missing { header }),
    }
}

fn check_hmac(
    header: &'static str,
    hex: &str,
    body: &[u8],
    secret: &str,
) -> Result<(), VerifyError> {
    if hex.len() != 64 {
        return Err(VerifyError::Malformed {
            header,
            why: "an HMAC-SHA256 is 64 hex digits",
        });
    }
    let tag = hex::decode(hex).map_err(|_| VerifyError::Malformed {
        header,
        why: "not hexadecimal",
    })?;
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&tag)
        .map_err(|_| VerifyError::Mismatch { header })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"zen":"Keep it logically awesome."}"#;
    const SECRET: &str = "It's a Secret to Everybody";

    fn signed(forge: Forge) -> Vec<(String, String)> {
        let (h, v) = sign(forge, BODY, SECRET);
        vec![(h.to_owned(), v)]
    }

    #[test]
    fn github_documented_example() {
        // The example from GitHub's "Validating webhook deliveries" page.
        let (_, v) = sign(Forge::GitHub, b"Hello, World!", SECRET);
        assert_eq!(
            v,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn every_forge_accepts_its_own_signature() {
        for forge in [Forge::GitHub, Forge::Gitea, Forge::Forgejo, Forge::GitLab] {
            assert_eq!(
                verify(forge, &signed(forge), BODY, SECRET),
                Ok(()),
                "{forge}"
            );
        }
    }

    #[test]
    fn forgejo_accepts_the_gitea_header_but_a_bad_forgejo_one_is_final() {
        let (_, v) = sign(Forge::Gitea, BODY, SECRET);
        let h = [("X-Gitea-Signature", v.as_str())];
        assert_eq!(verify(Forge::Forgejo, &h[..], BODY, SECRET), Ok(()));
        let bad = "0".repeat(64);
        let h = [
            ("X-Forgejo-Signature", bad.as_str()),
            ("X-Gitea-Signature", v.as_str()),
        ];
        assert_eq!(
            verify(Forge::Forgejo, &h[..], BODY, SECRET),
            Err(VerifyError::Mismatch { header: FORGEJO })
        );
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            verify(Forge::Forgejo, &none[..], BODY, SECRET),
            Err(VerifyError::Missing { header: FORGEJO })
        );
    }

    #[test]
    fn empty_secret_refuses_even_a_matching_gitlab_token() {
        let h = [("X-Gitlab-Token", "")];
        assert_eq!(
            verify(Forge::GitLab, &h[..], BODY, ""),
            Err(VerifyError::NoSecret {
                forge: Forge::GitLab
            })
        );
    }

    #[test]
    fn gitlab_wrong_token() {
        let h = [("X-Gitlab-Token", "guess")];
        assert_eq!(
            verify(Forge::GitLab, &h[..], BODY, SECRET),
            Err(VerifyError::Mismatch { header: GITLAB })
        );
    }
}
