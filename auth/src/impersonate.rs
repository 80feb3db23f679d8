//! The XMLA connection properties `EffectiveUserName`, `CustomData` and `Roles`: honoured only
//! for a principal with `impersonate` (a service account configured so), refused for anyone
//! else, and audited either way (`kind: "impersonation"`, `acting_for` = the service account).
//!
//! - `EffectiveUserName` names the subject of a user who has logged in through the browser
//!   before (the [`IdentityStore`] keeps the last verified identity); that identity is mapped
//!   again, so the impersonated user's current roles apply. A `DOMAIN\user` form is tried as
//!   given, then without the domain.
//! - `Roles` (comma-separated) only narrows the roles the mapper grants
//!   ([`IdentityMapper::map_with_roles`]); `Roles=" "` means no role.
//! - `CustomData` is passed through untouched (it stays in the request/session properties for
//!   MDX `CustomData()`); it is written to the audit line.

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditLog, now_rfc3339};
use crate::identities::IdentityStore;
use crate::{AuthMethod, Identity, IdentityMapper, Principal, RowScope};

/// The impersonation properties of one request (after merging the session's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImpersonationRequest {
    pub effective_user_name: Option<String>,
    pub roles: Option<String>,
    pub custom_data: Option<String>,
    /// `SspropInitAppName` or similar, for the audit line.
    pub client_app: String,
}

impl ImpersonationRequest {
    /// Whether any impersonation property is present (`Roles` counts even when blank, since
    /// `Roles=" "` means "no role").
    pub fn is_empty(&self) -> bool {
        self.effective_user_name.as_deref().is_none_or(|s| s.trim().is_empty())
            && self.custom_data.as_deref().is_none_or(|s| s.is_empty())
            && self.roles.is_none()
    }
}

pub struct Impersonation {
    pub identities: Arc<IdentityStore>,
    pub mapper: Arc<dyn IdentityMapper>,
    pub audit: Option<Arc<AuditLog>>,
}

fn scope_text(s: &RowScope) -> String {
    match s {
        RowScope::All => "all".into(),
        RowScope::Municipalities(v) => v.iter().map(|k| k.0.to_string()).collect::<Vec<_>>().join(","),
    }
}

impl Impersonation {
    /// The principal a request runs as: `acting` itself when no impersonation property is
    /// present, otherwise the impersonated (or narrowed) principal, or an error (for the XMLA
    /// fault) when `acting` may not impersonate or the user is unknown.
    pub fn apply(&self, acting: &Principal, req: &ImpersonationRequest) -> Result<Principal, String> {
        if req.is_empty() {
            return Ok(acting.clone());
        }
        let result = self.resolve(acting, req);
        let mut detail = Vec::new();
        if let Some(r) = &req.roles {
            detail.push(format!("roles={r:?}"));
        }
        if let Some(c) = &req.custom_data {
            detail.push(format!("custom_data={c:?}"));
        }
        let (user, scope, outcome) = match &result {
            Ok(p) => (p.subject.clone(), scope_text(&p.scope), "ok"),
            Err(why) => {
                detail.push(why.clone());
                (
                    req.effective_user_name
                        .clone()
                        .unwrap_or_else(|| acting.subject.clone()),
                    String::new(),
                    "denied",
                )
            }
        };
        if let Some(log) = &self.audit {
            let event = AuditEvent {
                time: now_rfc3339(),
                kind: "impersonation".into(),
                user,
                scope,
                method: format!("{:?}", acting.method).to_lowercase(),
                client_app: req.client_app.clone(),
                outcome: outcome.into(),
                detail: detail.join("; "),
                acting_for: acting.subject.clone(),
                ..AuditEvent::default()
            };
            // No audit line, no impersonation.
            log.record(&event, &[])
                .map_err(|e| format!("impersonation refused: the audit log cannot be written ({e})"))?;
        }
        result
    }

    fn resolve(&self, acting: &Principal, req: &ImpersonationRequest) -> Result<Principal, String> {
        if !acting.impersonate {
            return Err(format!(
                "{} may not use EffectiveUserName, CustomData or Roles: only service accounts allowed to impersonate may",
                acting.subject
            ));
        }
        let roles: Option<Vec<String>> = req.roles.as_ref().map(|r| {
            r.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        });
        let identity = match req
            .effective_user_name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(name) => self
                .identities
                .get(name)
                .or_else(|| name.rsplit_once('\\').and_then(|(_, u)| self.identities.get(u)))
                .ok_or_else(|| format!("EffectiveUserName {name:?} is not a user who has logged in to this server"))?,
            None => Identity {
                subject: acting.subject.clone(),
                display_name: acting.display_name.clone(),
                method: AuthMethod::ServiceAccount,
                ..Identity::default()
            },
        };
        let mut p = match &roles {
            Some(r) => self.mapper.map_with_roles(&identity, r)?,
            None => self.mapper.map(&identity)?,
        };
        if req.effective_user_name.is_some() {
            // The impersonated user acts through the service account; it cannot chain.
            p.impersonate = false;
            p.acting_for = Some(acting.subject.clone());
        }
        p.custom_data = req.custom_data.clone().filter(|c| !c.is_empty());
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapper::InterimMapper;

    fn setup() -> (tempfile::TempDir, Impersonation, Arc<AuditLog>) {
        let dir = tempfile::tempdir().unwrap();
        let ids = Arc::new(IdentityStore::open(&dir.path().join("identities.json")).unwrap());
        ids.record(
            &Identity {
                subject: "anna".into(),
                method: AuthMethod::Oidc,
                organisations: vec!["55133018".into()],
                role_claims: vec!["analytiker".into()],
                ..Identity::default()
            },
            1,
        )
        .unwrap();
        let audit = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl"), 1 << 20, 1).unwrap());
        let mapper = InterimMapper {
            service_accounts: vec![
                "targit:admin:impersonate".parse().unwrap(),
                "plain:analytiker".parse().unwrap(),
            ],
            development: false,
        };
        let imp = Impersonation {
            identities: ids,
            mapper: Arc::new(mapper.clone()),
            audit: Some(audit.clone()),
        };
        (dir, imp, audit)
    }

    fn sa(m: &Impersonation, id: &str) -> Principal {
        m.mapper
            .map(&Identity {
                subject: id.into(),
                method: AuthMethod::ServiceAccount,
                ..Identity::default()
            })
            .unwrap()
    }

    fn lines(a: &AuditLog) -> Vec<serde_json::Value> {
        std::fs::read_to_string(a.path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn an_allowed_service_account_becomes_the_user_and_it_is_audited() {
        let (_d, imp, audit) = setup();
        let req = ImpersonationRequest {
            effective_user_name: Some("KOMMUNE\\anna".into()),
            custom_data: Some("afdeling 7".into()),
            client_app: "TARGIT".into(),
            ..Default::default()
        };
        let p = imp.apply(&sa(&imp, "targit"), &req).unwrap();
        assert_eq!(p.subject, "anna");
        assert_eq!(p.scope, RowScope::Municipalities(vec![crate::Kommunekode(751)]));
        assert!(!p.impersonate);
        let l = &lines(&audit)[0];
        assert_eq!(l["kind"], "impersonation");
        assert_eq!(l["user"], "anna");
        assert_eq!(l["acting_for"], "targit");
        assert_eq!(l["outcome"], "ok");
        assert!(l["detail"].as_str().unwrap().contains("afdeling 7"));
    }

    #[test]
    fn others_are_refused_and_unknown_users_too() {
        let (_d, imp, audit) = setup();
        let req = ImpersonationRequest {
            effective_user_name: Some("anna".into()),
            ..Default::default()
        };
        let e = imp.apply(&sa(&imp, "plain"), &req).unwrap_err();
        assert!(e.contains("may not use EffectiveUserName"), "{e}");
        let unknown = ImpersonationRequest {
            effective_user_name: Some("nobody".into()),
            ..Default::default()
        };
        assert!(imp.apply(&sa(&imp, "targit"), &unknown).is_err());
        let l = lines(&audit);
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|l| l["outcome"] == "denied"));
        // Nothing to impersonate: the acting principal, no audit line.
        let p = imp.apply(&sa(&imp, "plain"), &ImpersonationRequest::default()).unwrap();
        assert_eq!(p.subject, "plain");
        assert_eq!(lines(&audit).len(), 2);
    }

    #[test]
    fn roles_only_narrow() {
        let (_d, imp, _a) = setup();
        let req = ImpersonationRequest {
            roles: Some(" ".into()),
            ..Default::default()
        };
        let p = imp.apply(&sa(&imp, "targit"), &req).unwrap();
        assert!(p.roles.is_empty() && p.scope == RowScope::Municipalities(vec![]));
        let req = ImpersonationRequest {
            roles: Some("admin,superuser".into()),
            ..Default::default()
        };
        assert_eq!(imp.apply(&sa(&imp, "targit"), &req).unwrap().roles, vec!["admin"]);
    }
}
