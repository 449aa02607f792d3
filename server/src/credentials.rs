//! What a credential is: the roles a caller may have, random tokens (API tokens, session
//! cookies, one-time tickets) and the SHA-256 under which they are stored (a token is
//! high-entropy, so a slow password hash would add latency without adding safety).

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do; each role includes the ones below it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read flows, versions and runs.
    Viewer,
    /// Also start and cancel runs, send events.
    Operator,
    /// Also create, save, publish and roll back flows.
    Builder,
    /// Also manage tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Builder => "builder",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "builder" => Some(Role::Builder),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A new random token, `trl_` + 64 hex digits.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("trl_{}", hex::encode(bytes))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
