//! Roles: how a verified [`Identity`] becomes a [`Principal`], by the `security:` file of the
//! cube definitions (`cube-definitions/security.yaml`, docs/security.md).
//!
//! - An OIDC role/group claim value listed in a role's `claims` grants the role; its
//!   `own_municipality` rows are those of the user's organisation (CVR → kommune) and of any
//!   asserted kommunekode.
//! - A KOMBIT privilege (OIO-BPP) listed in a role's `privileges` grants the role within the
//!   privilege group's organisation: a user with privileges in two municipalities' groups gets
//!   both scopes. The group's constraints named in the role's `restrictions` become allowed sets.
//! - A service account gets exactly the roles and kommuner configured for its client id.
//! - Roles are additive. No role: denied (unknown users get nothing).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use datakube_model::{RoleAccess, SecurityConfig};

use crate::{AuthMethod, Identity, IdentityMapper, Kommunekode, MemberRestriction, Principal, RowScope, kommuner};

/// The role mapping of one `security:` file; replaceable at run time (hot reload).
pub struct RoleMapper {
    config: RwLock<Arc<SecurityConfig>>,
    /// Map `Development` identities (the development identity is enabled): to the fixed
    /// development users, as [`crate::DevAuthenticator`] does.
    pub development: bool,
}

impl RoleMapper {
    pub fn new(config: SecurityConfig) -> RoleMapper {
        RoleMapper {
            config: RwLock::new(Arc::new(config)),
            development: false,
        }
    }
    /// Also map development identities (PATs created on the development login page).
    pub fn with_development(mut self, on: bool) -> RoleMapper {
        self.development = on;
        self
    }
    /// Use a new configuration for every identity mapped from now on.
    pub fn replace(&self, config: SecurityConfig) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }
    pub fn config(&self) -> Arc<SecurityConfig> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What one granted role contributes.
struct Grant<'a> {
    role: &'a datakube_model::Role,
    /// Kommuner the grant is scoped to.
    kommuner: Vec<Kommunekode>,
    /// (constraint name, value) of the privilege group.
    constraints: Vec<(&'a str, &'a str)>,
}

impl IdentityMapper for RoleMapper {
    fn map(&self, id: &Identity) -> Result<Principal, String> {
        self.map_roles(id, None)
    }
    fn map_with_roles(&self, id: &Identity, roles: &[String]) -> Result<Principal, String> {
        self.map_roles(id, Some(roles))
    }
}

impl RoleMapper {
    fn map_roles(&self, id: &Identity, only: Option<&[String]>) -> Result<Principal, String> {
        if id.method == AuthMethod::Development {
            if !self.development {
                return Err("the development identity is not enabled on this server".into());
            }
            let user = id.subject.strip_prefix("dev:").unwrap_or(&id.subject);
            let d = crate::DEV_USERS
                .iter()
                .find(|d| d.user == user)
                .ok_or_else(|| format!("{} is not a development user", id.subject))?;
            let roles: Vec<String> = d
                .roles
                .iter()
                .map(|r| r.to_string())
                .filter(|r| only.is_none_or(|o| o.iter().any(|x| x.eq_ignore_ascii_case(r))))
                .collect();
            if roles.is_empty() {
                return Err("no role is granted to this identity".into());
            }
            let admin = roles.iter().any(|r| r == "admin");
            return Ok(Principal {
                subject: id.subject.clone(),
                display_name: d.name.to_string(),
                scope: match (admin, d.kommune) {
                    (true, _) | (_, None) => RowScope::All,
                    (false, Some(k)) => RowScope::Municipalities(vec![Kommunekode(k)]),
                },
                roles,
                method: AuthMethod::Development,
                benchmark: true,
                home_kommune: d.kommune.map(Kommunekode),
                ..Principal::default()
            });
        }
        map_identity_with(&self.config(), id, only)
    }
}

/// Map `id` through `config` (see the module documentation).
pub fn map_identity(config: &SecurityConfig, id: &Identity) -> Result<Principal, String> {
    map_identity_with(config, id, None)
}

/// [`map_identity`] with the granted roles narrowed to `only` (the XMLA `Roles` property of an
/// impersonating service account): never more than `map_identity` grants.
pub fn map_identity_with(config: &SecurityConfig, id: &Identity, only: Option<&[String]>) -> Result<Principal, String> {
    let mut grants: Vec<Grant> = Vec::new();
    let mut impersonate = false;
    if id.method == AuthMethod::ServiceAccount {
        let Some(sa) = config.service_accounts.iter().find(|s| s.client_id == id.subject) else {
            return Err(format!("unknown service account '{}'", id.subject));
        };
        impersonate = sa.impersonate;
        for r in &sa.roles {
            if let Some(role) = config.role(r) {
                grants.push(Grant {
                    role,
                    kommuner: sa.kommuner.iter().map(|&k| Kommunekode(k)).collect(),
                    constraints: Vec::new(),
                });
            }
        }
    } else {
        let mut own: Vec<Kommunekode> = id
            .organisations
            .iter()
            .filter_map(|c| kommuner::by_cvr(c).map(|k| k.code))
            .chain(
                id.kommunekoder
                    .iter()
                    .copied()
                    .filter(|k| kommuner::by_code(*k).is_some()),
            )
            .collect();
        own.sort();
        own.dedup();
        for role in &config.roles {
            if role.claims.iter().any(|c| id.role_claims.iter().any(|v| v == c)) {
                grants.push(Grant {
                    role,
                    kommuner: own.clone(),
                    constraints: Vec::new(),
                });
            }
        }
        for g in &id.privileges {
            // Privileges in an organisation that is not a municipality grant nothing here.
            let Some(k) = kommuner::by_cvr(&g.cvr) else { continue };
            for role in &config.roles {
                if role.privileges.iter().any(|p| g.privileges.iter().any(|q| q == p)) {
                    grants.push(Grant {
                        role,
                        kommuner: vec![k.code],
                        constraints: g
                            .constraints
                            .iter()
                            .map(|c| (c.name.as_str(), c.value.as_str()))
                            .collect(),
                    });
                }
            }
        }
    }
    if let Some(o) = only {
        grants.retain(|g| o.iter().any(|r| r.eq_ignore_ascii_case(&g.role.name)));
    }
    if grants.is_empty() {
        return Err("no role is granted to this identity".into());
    }

    let mut roles: Vec<String> = Vec::new();
    let mut all_rows = false;
    let mut scope: BTreeSet<Kommunekode> = BTreeSet::new();
    let mut cubes: Option<BTreeSet<String>> = Some(BTreeSet::new());
    // Per restricted dimension: allowed keys, and kommuner granted without a constraint.
    let mut restricted: Vec<MemberRestriction> = Vec::new();
    for g in &grants {
        let name = if g.role.is_admin() {
            "admin"
        } else {
            g.role.name.as_str()
        };
        if !roles.iter().any(|r| r == name) {
            roles.push(name.to_string());
        }
        match g.role.access {
            RoleAccess::All => all_rows = true,
            RoleAccess::OwnMunicipality => scope.extend(g.kommuner.iter().copied()),
            RoleAccess::Benchmark => {}
        }
        match (&mut cubes, &g.role.cubes) {
            (Some(set), Some(list)) => set.extend(list.iter().cloned()),
            (c, None) => *c = None,
            (None, Some(_)) => {}
        }
        if g.role.access == RoleAccess::OwnMunicipality {
            for (constraint, dimension) in &g.role.restrictions {
                let entry = match restricted
                    .iter_mut()
                    .find(|r| r.dimension.eq_ignore_ascii_case(dimension))
                {
                    Some(e) => e,
                    None => {
                        restricted.push(MemberRestriction {
                            dimension: dimension.clone(),
                            keys: Vec::new(),
                            whole_kommuner: Vec::new(),
                        });
                        restricted.last_mut().expect("just pushed")
                    }
                };
                let values: Vec<&str> = g
                    .constraints
                    .iter()
                    .filter(|(n, _)| n == constraint)
                    .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|s| !s.is_empty()))
                    .collect();
                if values.is_empty() {
                    entry.whole_kommuner.extend(g.kommuner.iter().copied());
                } else {
                    entry.keys.extend(values.into_iter().map(str::to_string));
                }
            }
        }
    }
    // A grant of own-municipality access without any restricting role leaves the dimension
    // open for that kommune: grants that never mention the dimension count as whole kommuner.
    for r in &mut restricted {
        for g in &grants {
            let mentions = g
                .role
                .restrictions
                .iter()
                .any(|(_, d)| d.eq_ignore_ascii_case(&r.dimension));
            if g.role.access == RoleAccess::OwnMunicipality && !mentions {
                r.whole_kommuner.extend(g.kommuner.iter().copied());
            }
        }
        r.keys.sort();
        r.keys.dedup();
        r.whole_kommuner.sort();
        r.whole_kommuner.dedup();
    }
    let admin = roles.iter().any(|r| r == "admin");
    let scope = if all_rows || admin {
        RowScope::All
    } else {
        RowScope::Municipalities(scope.into_iter().collect())
    };
    if all_rows || admin {
        restricted.clear();
    }
    let home_kommune = match &scope {
        RowScope::Municipalities(v) if !v.is_empty() => Some(v[0]),
        _ => id
            .organisations
            .iter()
            .find_map(|c| kommuner::by_cvr(c).map(|k| k.code))
            .or_else(|| id.kommunekoder.first().copied()),
    };
    Ok(Principal {
        subject: id.subject.clone(),
        display_name: id.display_name.clone(),
        scope,
        roles,
        method: id.method.clone(),
        organisations: id.organisations.clone(),
        cubes: if admin { None } else { cubes },
        benchmark: true,
        restrictions: restricted,
        impersonate,
        home_kommune,
        ..Principal::default()
    })
}

/// An [`Identity`] from OIDC claims (a JWT's payload or the userinfo answer), by the claim
/// names of the `security:` file. String or list values are both accepted.
pub fn identity_from_claims(config: &SecurityConfig, claims: &serde_json::Value, method: AuthMethod) -> Identity {
    let names = &config.claims;
    let strings = |name: &str| -> Vec<String> {
        match claims.get(name) {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Number(n)) => vec![n.to_string()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let subject = strings(&names.subject).into_iter().next().unwrap_or_default();
    Identity {
        display_name: strings(&names.name)
            .into_iter()
            .next()
            .unwrap_or_else(|| subject.clone()),
        subject,
        method,
        organisations: strings(&names.cvr),
        kommunekoder: strings(&names.kommunekode)
            .iter()
            .filter_map(|s| s.trim().parse().ok().map(Kommunekode))
            .collect(),
        role_claims: strings(&names.roles),
        privileges: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Constraint, PrivilegeGroup};

    fn config() -> SecurityConfig {
        let dir = &format!(
            "{}/../cube-definitions",
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
        );
        datakube_model::load_catalog(std::path::Path::new(dir), None)
            .expect("shipped definitions load")
            .security
    }

    const AARHUS: &str = "55133018";
    const LAESOE: &str = "45973328";
    const EGEN: &str = "http://datakube.dk/roles/usersystemrole/flis_egen_kommune/1";
    const ORGENHED: &str = "http://sts.kombit.dk/constraints/orgenhed/1";

    fn saml(groups: Vec<PrivilegeGroup>) -> Identity {
        Identity {
            subject: "CN=Test,Serial=1".into(),
            display_name: "Test".into(),
            method: AuthMethod::Saml,
            organisations: vec![AARHUS.into()],
            privileges: groups,
            ..Default::default()
        }
    }

    #[test]
    fn cvrs_in_the_table() {
        assert_eq!(kommuner::by_cvr(AARHUS).map(|k| k.code.0), Some(751));
        assert_eq!(kommuner::by_cvr(LAESOE).map(|k| k.code.0), Some(825));
    }

    #[test]
    fn unknown_users_get_nothing() {
        let c = config();
        let id = Identity {
            subject: "x".into(),
            method: AuthMethod::Oidc,
            organisations: vec![AARHUS.into()],
            role_claims: vec!["some_other_role".into()],
            ..Default::default()
        };
        assert!(map_identity(&c, &id).is_err());
        // A privilege of another system does not count either.
        let id = saml(vec![PrivilegeGroup {
            cvr: AARHUS.into(),
            privileges: vec!["http://other/roles/x/1".into()],
            constraints: vec![],
        }]);
        assert!(map_identity(&c, &id).is_err());
        // Nor does a granted privilege in an organisation that is not a municipality.
        let id = saml(vec![PrivilegeGroup {
            cvr: "12345678".into(),
            privileges: vec![EGEN.into()],
            constraints: vec![],
        }]);
        assert!(map_identity(&c, &id).is_err());
    }

    #[test]
    fn oidc_claims_give_the_organisation_scope() {
        let c = config();
        let claims =
            serde_json::json!({"sub": "u1", "name": "A", "organisation_cvr": AARHUS, "roles": ["flis_analytiker"]});
        let p = map_identity(&c, &identity_from_claims(&c, &claims, AuthMethod::Oidc)).unwrap();
        assert_eq!(p.scope, RowScope::Municipalities(vec![Kommunekode(751)]));
        assert_eq!(p.roles, ["analytiker"]);
        assert_eq!(p.home_kommune, Some(Kommunekode(751)));
        assert!(!p.is_admin() && p.benchmark && p.restrictions.iter().all(|r| r.keys.is_empty()));

        // Benchmark only: no individual rows at all.
        let claims = serde_json::json!({"sub": "u2", "organisation_cvr": LAESOE, "roles": "flis_benchmark"});
        let p = map_identity(&c, &identity_from_claims(&c, &claims, AuthMethod::Oidc)).unwrap();
        assert!(p.scope.is_empty());
        assert_eq!(p.home_kommune, Some(Kommunekode(825)));

        let claims = serde_json::json!({"sub": "u3", "roles": ["datakube_admin"]});
        let p = map_identity(&c, &identity_from_claims(&c, &claims, AuthMethod::Oidc)).unwrap();
        assert!(p.is_admin() && p.scope == RowScope::All);
    }

    #[test]
    fn privileges_for_two_cvrs_give_two_scopes_and_constraints_become_restrictions() {
        let c = config();
        let id = saml(vec![
            PrivilegeGroup {
                cvr: AARHUS.into(),
                privileges: vec![EGEN.into()],
                constraints: vec![Constraint {
                    name: ORGENHED.into(),
                    value: "u-1, u-2".into(),
                }],
            },
            PrivilegeGroup {
                cvr: LAESOE.into(),
                privileges: vec![EGEN.into()],
                constraints: vec![],
            },
        ]);
        let p = map_identity(&c, &id).unwrap();
        assert_eq!(
            p.scope,
            RowScope::Municipalities(vec![Kommunekode(751), Kommunekode(825)])
        );
        assert_eq!(p.restrictions.len(), 1);
        let r = &p.restrictions[0];
        assert_eq!(r.dimension, "Organisation");
        assert_eq!(r.keys, ["u-1", "u-2"]);
        // Læsø's grant had no constraint: all of Læsø's units stay allowed.
        assert_eq!(r.whole_kommuner, [Kommunekode(825)]);
    }

    #[test]
    fn service_accounts_get_only_their_roles() {
        let c = config();
        let id = Identity {
            subject: "targit-server".into(),
            method: AuthMethod::ServiceAccount,
            role_claims: vec!["datakube_admin".into()],
            ..Default::default()
        };
        let p = map_identity(&c, &id).unwrap();
        assert_eq!(
            p.roles,
            ["benchmark"],
            "claims of a service account's token grant nothing"
        );
        assert!(p.impersonate && p.scope.is_empty() && !p.is_admin());
        let id = Identity {
            subject: "unknown-client".into(),
            method: AuthMethod::ServiceAccount,
            ..Default::default()
        };
        assert!(map_identity(&c, &id).unwrap_err().contains("unknown service account"));
    }
}
