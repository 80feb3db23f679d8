//! An interim [`IdentityMapper`] until the role mapping of `security.yaml` lands: users get the
//! municipalities of their organisation CVRs (through the municipality table) and of their
//! kommunekode claims, their role claims as roles (`admin` sees every row); service accounts
//! get exactly the roles configured for them (`--service-account`); the development identity
//! maps to the fixed development users (only when the development identity is enabled).
//! Anyone else gets nothing.

use std::str::FromStr;

use crate::{AuthMethod, DEV_USERS, Identity, IdentityMapper, Kommunekode, Principal, RowScope, kommuner};

/// A client-credentials client and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub client_id: String,
    pub roles: Vec<String>,
    /// May send `EffectiveUserName`, `CustomData` and `Roles`.
    pub impersonate: bool,
    /// Kommuner whose rows it may read itself (without impersonating); empty: none
    /// (unless it has the `admin` role).
    pub kommuner: Vec<Kommunekode>,
}

impl FromStr for ServiceAccount {
    type Err = String;
    /// `CLIENT_ID:ROLE[+ROLE…][:impersonate][:kommune=751+825]`, e.g. `targit:analytiker:impersonate`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.trim().split(':');
        let client_id = parts.next().unwrap_or("").trim().to_string();
        if client_id.is_empty() {
            return Err(format!(
                "service account {s:?}: no client id (CLIENT_ID:ROLE[+ROLE…][:impersonate])"
            ));
        }
        let roles = parts
            .next()
            .unwrap_or("")
            .split('+')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect();
        let mut sa = ServiceAccount {
            client_id,
            roles,
            impersonate: false,
            kommuner: Vec::new(),
        };
        for flag in parts {
            if flag == "impersonate" {
                sa.impersonate = true;
            } else if let Some(k) = flag.strip_prefix("kommune=") {
                for code in k.split('+') {
                    sa.kommuner.push(Kommunekode(
                        code.trim()
                            .parse()
                            .map_err(|_| format!("service account {s:?}: bad kommunekode {code:?}"))?,
                    ));
                }
            } else {
                return Err(format!(
                    "service account {s:?}: unknown flag {flag:?} (impersonate, kommune=…)"
                ));
            }
        }
        Ok(sa)
    }
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct InterimMapper {
    pub service_accounts: Vec<ServiceAccount>,
    /// Map `Development` identities (the development identity is enabled).
    pub development: bool,
}

/// The identity the development login page creates for a development user.
pub fn dev_identity(user: &str) -> Option<Identity> {
    let d = DEV_USERS.iter().find(|d| d.user == user)?;
    Some(Identity {
        subject: format!("dev:{}", d.user),
        display_name: d.name.to_string(),
        method: AuthMethod::Development,
        kommunekoder: d.kommune.map(Kommunekode).into_iter().collect(),
        role_claims: d.roles.iter().map(|r| r.to_string()).collect(),
        ..Identity::default()
    })
}

/// Admins see every row; with roles narrowed to none (`Roles=" "`), nothing.
fn scope_for(roles: &[String], kommuner: Vec<Kommunekode>, narrowed: bool) -> RowScope {
    if narrowed && roles.is_empty() {
        RowScope::Municipalities(Vec::new())
    } else if roles.iter().any(|r| r == "admin") {
        RowScope::All
    } else {
        RowScope::Municipalities(kommuner)
    }
}

impl InterimMapper {
    fn map_roles(&self, identity: &Identity, only: Option<&[String]>) -> Result<Principal, String> {
        let narrow = |roles: Vec<String>| -> Vec<String> {
            match only {
                None => roles,
                Some(o) => roles
                    .into_iter()
                    .filter(|r| o.iter().any(|x| x.eq_ignore_ascii_case(r)))
                    .collect(),
            }
        };
        match identity.method {
            AuthMethod::ServiceAccount => {
                let sa = self
                    .service_accounts
                    .iter()
                    .find(|s| s.client_id == identity.subject)
                    .ok_or_else(|| format!("client {:?} is not a configured service account", identity.subject))?;
                let roles = narrow(sa.roles.clone());
                Ok(Principal {
                    subject: sa.client_id.clone(),
                    display_name: sa.client_id.clone(),
                    scope: scope_for(&roles, sa.kommuner.clone(), only.is_some()),
                    method: AuthMethod::ServiceAccount,
                    benchmark: !roles.is_empty(),
                    impersonate: sa.impersonate,
                    home_kommune: sa.kommuner.first().copied(),
                    roles,
                    ..Principal::default()
                })
            }
            AuthMethod::Development if !self.development => {
                Err("the development identity is not enabled on this server".into())
            }
            _ => {
                let mut kommuner: Vec<Kommunekode> = identity.kommunekoder.clone();
                for cvr in &identity.organisations {
                    if let Some(k) = kommuner::by_cvr(cvr) {
                        kommuner.push(k.code);
                    }
                }
                kommuner.sort();
                kommuner.dedup();
                let roles = narrow(identity.role_claims.clone());
                let scope = scope_for(&roles, kommuner.clone(), only.is_some());
                if scope.is_empty() {
                    return Err(format!(
                        "{} belongs to no municipality known here and has no admin role",
                        identity.subject
                    ));
                }
                Ok(Principal {
                    subject: identity.subject.clone(),
                    display_name: identity.display_name.clone(),
                    scope,
                    method: identity.method.clone(),
                    organisations: identity.organisations.clone(),
                    benchmark: true,
                    home_kommune: kommuner.first().copied(),
                    roles,
                    ..Principal::default()
                })
            }
        }
    }
}

impl IdentityMapper for InterimMapper {
    fn map(&self, identity: &Identity) -> Result<Principal, String> {
        self.map_roles(identity, None)
    }
    fn map_with_roles(&self, identity: &Identity, roles: &[String]) -> Result<Principal, String> {
        self.map_roles(identity, Some(roles))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_accounts_parse() {
        let sa: ServiceAccount = "targit:analytiker+leder:impersonate".parse().unwrap();
        assert_eq!(sa.roles, vec!["analytiker", "leder"]);
        assert!(sa.impersonate);
        let sa: ServiceAccount = "bi:analytiker:kommune=751+825".parse().unwrap();
        assert!(!sa.impersonate);
        assert_eq!(sa.kommuner, vec![Kommunekode(751), Kommunekode(825)]);
        assert!(":x".parse::<ServiceAccount>().is_err());
        assert!("a:b:sudo".parse::<ServiceAccount>().is_err());
    }

    #[test]
    fn users_get_the_municipality_of_their_cvr_and_unknown_users_nothing() {
        let m = InterimMapper::default();
        let anna = Identity {
            subject: "anna".into(),
            method: AuthMethod::Oidc,
            organisations: vec!["55133018".into()],
            role_claims: vec!["analytiker".into()],
            ..Identity::default()
        };
        let p = m.map(&anna).unwrap();
        assert_eq!(p.scope, RowScope::Municipalities(vec![Kommunekode(751)]));
        assert!(!p.impersonate);
        let stranger = Identity {
            subject: "x".into(),
            method: AuthMethod::Oidc,
            organisations: vec!["12345678".into()],
            ..Identity::default()
        };
        assert!(m.map(&stranger).is_err());
        // The development identity only maps when enabled.
        let dev = dev_identity("aarhus").unwrap();
        assert!(m.map(&dev).is_err());
        let m = InterimMapper {
            development: true,
            ..InterimMapper::default()
        };
        assert_eq!(
            m.map(&dev).unwrap().scope,
            RowScope::Municipalities(vec![Kommunekode(751)])
        );
        assert_eq!(m.map(&dev_identity("admin").unwrap()).unwrap().scope, RowScope::All);
    }

    #[test]
    fn service_accounts_get_only_their_roles_and_roles_only_narrow() {
        let m = InterimMapper {
            service_accounts: vec!["targit:admin+analytiker:impersonate".parse().unwrap()],
            development: false,
        };
        let sa = Identity {
            subject: "targit".into(),
            method: AuthMethod::ServiceAccount,
            role_claims: vec!["superuser".into()],
            ..Identity::default()
        };
        let p = m.map(&sa).unwrap();
        assert_eq!(p.roles, vec!["admin", "analytiker"]);
        assert!(p.impersonate && p.scope == RowScope::All);
        // Narrowing to analytiker drops admin, and with it the full scope.
        let p = m
            .map_with_roles(&sa, &["analytiker".into(), "superuser".into()])
            .unwrap();
        assert_eq!(p.roles, vec!["analytiker"]);
        assert_eq!(p.scope, RowScope::Municipalities(vec![]));
        let unknown = Identity {
            subject: "other".into(),
            ..sa
        };
        assert!(m.map(&unknown).is_err());
    }
}
