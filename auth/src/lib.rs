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

/// The answer of an [`Authenticator`] for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Authenticated(Principal),
    /// No or wrong credentials: answer 401 with a `WWW-Authenticate: Basic` challenge
    /// (MSOLAP sends credentials only after one). The text says why, for the log.
    Challenge(String),
}

/// Turns a request's credentials into a verified [`Principal`].
pub trait Authenticator: Send + Sync {
    /// `authorization` is the HTTP `Authorization` header, if any.
    fn authenticate(&self, authorization: Option<&str>) -> AuthOutcome;
    /// The realm named in the 401 challenge.
    fn realm(&self) -> &str {
        "datakube"
    }
}

/// The built-in development identity: fixed users with fixed passwords, documented in the
/// README, so that Excel can log in to a demo at once. Never for production; the server
/// refuses it on a non-loopback address unless explicitly forced.
pub struct DevAuthenticator {
    users: Vec<(String, String, Principal)>,
}

/// A user of the development identity.
pub struct DevUser {
    pub user: &'static str,
    pub password: &'static str,
    /// The kommune the user belongs to; `None` = all kommuner.
    pub kommune: Option<u16>,
    pub roles: &'static [&'static str],
    pub name: &'static str,
}

pub const DEV_USERS: &[DevUser] = &[
    DevUser {
        user: "aarhus",
        password: "aarhus",
        kommune: Some(751),
        roles: &["analytiker"],
        name: "Analytiker, Aarhus Kommune (udvikling)",
    },
    DevUser {
        user: "laesoe",
        password: "laesoe",
        kommune: Some(825),
        roles: &["analytiker"],
        name: "Analytiker, Læsø Kommune (udvikling)",
    },
    DevUser {
        user: "admin",
        password: "admin",
        kommune: None,
        roles: &["admin", "analytiker"],
        name: "Administrator (udvikling)",
    },
];

impl Default for DevAuthenticator {
    fn default() -> Self {
        let users = DEV_USERS
            .iter()
            .map(|d| {
                (
                    d.user.to_string(),
                    d.password.to_string(),
                    Principal {
                        subject: format!("dev:{}", d.user),
                        display_name: d.name.to_string(),
                        scope: match d.kommune {
                            Some(k) => RowScope::Municipalities(vec![Kommunekode(k)]),
                            None => RowScope::All,
                        },
                        roles: d.roles.iter().map(|r| r.to_string()).collect(),
                        method: AuthMethod::Development,
                    },
                )
            })
            .collect();
        DevAuthenticator { users }
    }
}

/// Decode `Authorization: Basic base64(user:password)`.
pub fn parse_basic(authorization: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Compare without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator for DevAuthenticator {
    fn authenticate(&self, authorization: Option<&str>) -> AuthOutcome {
        let Some(h) = authorization else {
            return AuthOutcome::Challenge("no credentials".into());
        };
        let Some((user, password)) = parse_basic(h) else {
            return AuthOutcome::Challenge("credentials are not HTTP Basic".into());
        };
        // MSOLAP may send DOMAIN\user; the domain carries no meaning here.
        let user = user.rsplit('\\').next().unwrap_or(&user).to_ascii_lowercase();
        for (u, p, principal) in &self.users {
            if *u == user && constant_time_eq(p.as_bytes(), password.as_bytes()) {
                return AuthOutcome::Authenticated(principal.clone());
            }
        }
        AuthOutcome::Challenge("unknown user or wrong password".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[test]
    fn dev_users_log_in_with_their_scope() {
        let a = DevAuthenticator::default();
        match a.authenticate(Some(&basic("aarhus", "aarhus"))) {
            AuthOutcome::Authenticated(p) => assert_eq!(p.scope, RowScope::Municipalities(vec![Kommunekode(751)])),
            other => panic!("{other:?}"),
        }
        match a.authenticate(Some(&basic("KOMMUNE\\Admin", "admin"))) {
            AuthOutcome::Authenticated(p) => assert!(p.is_admin() && p.scope == RowScope::All),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_or_missing_credentials_are_challenged() {
        let a = DevAuthenticator::default();
        assert!(matches!(a.authenticate(None), AuthOutcome::Challenge(_)));
        assert!(matches!(
            a.authenticate(Some(&basic("aarhus", "wrong"))),
            AuthOutcome::Challenge(_)
        ));
        assert!(matches!(a.authenticate(Some("Bearer xyz")), AuthOutcome::Challenge(_)));
        assert!(matches!(a.authenticate(Some("Basic !!!")), AuthOutcome::Challenge(_)));
    }
}
