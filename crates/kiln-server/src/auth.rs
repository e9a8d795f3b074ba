//! Bearer tokens: random secrets, stored only as SHA-256 hashes, each with
//! a role. 401 when the token is missing or unknown, 403 when its role is
//! not enough (agents' tokens reach only the agent endpoints).

use crate::error::ApiError;
use axum::http::HeaderMap;
use kiln_proto::api::Role;
use kiln_store::Store;
use sha2::{Digest, Sha256};

/// A new random token: `kiln_` and 48 hex characters (192 bits).
pub fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(format!("kiln_{}", hex(&bytes)))
}

pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.trim().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Roles of tokens seen before, by hash. Tokens are never changed or
/// deleted (there is no revocation yet), so a cached role stays true; a
/// revocation must clear this cache.
#[derive(Default)]
pub struct RoleCache(std::sync::Mutex<std::collections::HashMap<String, Role>>);

/// Check the request's bearer token against `needed`.
pub async fn require(
    store: &dyn Store,
    cache: &RoleCache,
    headers: &HeaderMap,
    needed: Role,
) -> Result<Role, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "missing bearer token: send `Authorization: Bearer <token>`".into(),
            )
        })?;
    let secret = value.strip_prefix("Bearer ").ok_or_else(|| {
        ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
    })?;
    let hash = hash(secret);
    let cached = cache
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&hash)
        .copied();
    let role = match cached {
        Some(role) => role,
        None => {
            let record = store
                .token_by_hash(&hash)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("unknown token".into()))?;
            cache
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(hash, record.role);
            record.role
        }
    };
    if role.allows(needed) {
        Ok(role)
    } else {
        Err(ApiError::Forbidden(format!(
            "this needs a {} token; yours is {}",
            needed.as_str(),
            role.as_str()
        )))
    }
}

/// Who the request's token belongs to, for records (an approver, a
/// deployer): the token's name, else `token #ID`. Call after [`require`].
pub async fn who(store: &dyn Store, headers: &HeaderMap) -> Result<String, ApiError> {
    let secret = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
    let record = store
        .token_by_hash(&hash(secret))
        .await?
        .ok_or_else(|| ApiError::Unauthorized("unknown token".into()))?;
    Ok(record
        .name
        .unwrap_or_else(|| format!("token #{}", record.id)))
}
