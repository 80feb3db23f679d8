//! The built-in development identity.

use crate::{AuthMethod, AuthOutcome, Authenticator, BoxFuture, Kommunekode, Principal, RowScope};
use crate::{constant_time_eq, parse_basic};

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
        user: "koebenhavn",
        password: "koebenhavn",
        kommune: Some(101),
        roles: &["analytiker"],
        name: "Analytiker, Københavns Kommune (udvikling)",
    },
    DevUser {
        user: "odense",
        password: "odense",
        kommune: Some(461),
        roles: &["analytiker"],
        name: "Analytiker, Odense Kommune (udvikling)",
    },
    DevUser {
        user: "aalborg",
        password: "aalborg",
        kommune: Some(851),
        roles: &["analytiker"],
        name: "Analytiker, Aalborg Kommune (udvikling)",
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
                        benchmark: true,
                        ..Principal::default()
                    },
                )
            })
            .collect();
        DevAuthenticator { users }
    }
}

impl Authenticator for DevAuthenticator {
    fn authenticate<'a>(&'a self, authorization: Option<&'a str>) -> BoxFuture<'a, AuthOutcome> {
        let outcome = self.check(authorization);
        Box::pin(async move { outcome })
    }
}

impl DevAuthenticator {
    /// The synchronous check behind [`Authenticator::authenticate`].
    pub fn check(&self, authorization: Option<&str>) -> AuthOutcome {
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
        match a.check(Some(&basic("aarhus", "aarhus"))) {
            AuthOutcome::Authenticated(p) => assert_eq!(p.scope, RowScope::Municipalities(vec![Kommunekode(751)])),
            other => panic!("{other:?}"),
        }
        match a.check(Some(&basic("KOMMUNE\\Admin", "admin"))) {
            AuthOutcome::Authenticated(p) => assert!(p.is_admin() && p.scope == RowScope::All),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_or_missing_credentials_are_challenged() {
        let a = DevAuthenticator::default();
        assert!(matches!(a.check(None), AuthOutcome::Challenge(_)));
        assert!(matches!(
            a.check(Some(&basic("aarhus", "wrong"))),
            AuthOutcome::Challenge(_)
        ));
        assert!(matches!(a.check(Some("Bearer xyz")), AuthOutcome::Challenge(_)));
        assert!(matches!(a.check(Some("Basic !!!")), AuthOutcome::Challenge(_)));
    }
}
