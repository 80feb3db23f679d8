//! `datakube-auth`: who is asking, and what they may see.
//!
//! Identity comes only from verified credentials (OIDC tokens, SAML assertions via KOMBIT's
//! Context Handler, personal access tokens, service accounts). The types here are what the
//! rest of the server sees; providers arrive with the security issue. Nothing a client sends
//! in a request body or connection string can produce or widen a [`Principal`].

use serde::{Deserialize, Serialize};

/// A Danish municipality code (kommunekode), 101–860.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Kommunekode(pub u16);

/// What rows a principal may read in a cube of class `individual`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RowScope {
    /// Only rows whose row-scope column equals one of these codes.
    Municipalities(Vec<Kommunekode>),
    /// Every row (administrators and national users).
    All,
}

/// How the principal was authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMethod {
    /// The built-in development identity (never on a non-loopback address unless forced).
    Development,
    Oidc,
    Saml,
    PersonalAccessToken,
    ServiceAccount,
}

/// A verified identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable subject id (not personal data in logs: log `subject_hash`, not this).
    pub subject: String,
    pub display_name: String,
    pub scope: RowScope,
    pub roles: Vec<String>,
    pub method: AuthMethod,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}
