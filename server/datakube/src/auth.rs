//! Wiring of authentication: the state directory (tokens, remembered identities), the audit
//! log, the identity mapper, the authenticator chain (development users only in development
//! mode, personal access tokens, bearer JWTs) and the login pages.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use datakube_auth::audit::AuditLog;
use datakube_auth::identities::IdentityStore;
use datakube_auth::impersonate::Impersonation;
use datakube_auth::oidc::{BearerAuthenticator, ClaimMapping, Oidc, OidcConfig};
use datakube_auth::pat::{PatAuthenticator, PatStore};
use datakube_auth::roles::RoleMapper;
use datakube_auth::web::{AuthWeb, LoginMode};
use datakube_auth::{Authenticator, Chain, DevAuthenticator, IdentityMapper};

use crate::ServeArgs;

/// What is opened before the listener (files), wired after it (URLs, the provider).
pub struct AuthSetup {
    pub audit: Arc<AuditLog>,
    pub pats: Arc<PatStore>,
    pub identities: Arc<IdentityStore>,
    /// The role mapping of security.yaml ([`RoleMapper`]).
    pub mapper: Arc<dyn IdentityMapper>,
    pub impersonation: Arc<Impersonation>,
    development: bool,
}

pub struct Wired {
    pub authenticator: Arc<dyn Authenticator>,
    pub web: AuthWeb,
}

impl AuthSetup {
    pub fn open(
        a: &ServeArgs,
        state_dir: &Path,
        development: bool,
        security: &datakube_model::SecurityConfig,
    ) -> anyhow::Result<AuthSetup> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700));
        }
        let audit_path = a.audit_log.clone().unwrap_or_else(|| state_dir.join("audit.jsonl"));
        let audit = Arc::new(
            AuditLog::open(&audit_path, a.audit_log_max_bytes, a.audit_log_keep)
                .with_context(|| format!("opening the audit log {}", audit_path.display()))?,
        );
        let pats = Arc::new(PatStore::open(&state_dir.join("tokens.json")).context("opening the token store")?);
        let identities =
            Arc::new(IdentityStore::open(&state_dir.join("identities.json")).context("opening the identity store")?);
        // Roles from security.yaml; service accounts given on the command line are added to
        // its `service_accounts` (they name roles of the file).
        let mut security = security.clone();
        for sa in &a.service_accounts {
            security.service_accounts.retain(|x| x.client_id != sa.client_id);
            security.service_accounts.push(datakube_model::ServiceAccount {
                client_id: sa.client_id.clone(),
                roles: sa.roles.clone(),
                kommuner: sa.kommuner.iter().map(|k| k.0).collect(),
                impersonate: sa.impersonate,
            });
        }
        let mapper: Arc<dyn IdentityMapper> = Arc::new(RoleMapper::new(security).with_development(development));
        let impersonation = Arc::new(Impersonation {
            identities: identities.clone(),
            mapper: mapper.clone(),
            audit: Some(audit.clone()),
        });
        Ok(AuthSetup {
            audit,
            pats,
            identities,
            mapper,
            impersonation,
            development,
        })
    }

    /// The authenticator chain and the login pages, once the public URL is known.
    pub async fn wire(&self, a: &ServeArgs, public_url: &str) -> anyhow::Result<Wired> {
        let mut chain: Vec<Arc<dyn Authenticator>> = Vec::new();
        if self.development {
            chain.push(Arc::new(DevAuthenticator::default()));
        }
        chain.push(Arc::new(PatAuthenticator {
            store: self.pats.clone(),
            mapper: self.mapper.clone(),
        }));
        let mode = match &a.oidc_issuer {
            None => LoginMode::Development,
            Some(issuer) => {
                let oidc = Arc::new(
                    Oidc::new(OidcConfig {
                        issuer: issuer.clone(),
                        client_id: a.oidc_client_id.clone(),
                        client_secret: a.oidc_client_secret.clone(),
                        audiences: a.oidc_audience.iter().filter(|s| !s.is_empty()).cloned().collect(),
                        clock_skew: Duration::from_secs(a.clock_skew_seconds),
                        redirect_url: format!("{}/callback", public_url.trim_end_matches('/')),
                        scopes: a.oidc_scopes.iter().filter(|s| !s.is_empty()).cloned().collect(),
                        claims: ClaimMapping {
                            subject: a.oidc_claim_subject.clone(),
                            display_name: a.oidc_claim_name.clone(),
                            organisation: a.oidc_claim_cvr.clone(),
                            kommunekode: a.oidc_claim_kommunekode.clone(),
                            roles: a.oidc_claim_roles.clone(),
                        },
                        jwks_min_refetch: Duration::from_secs(a.jwks_min_refetch_seconds),
                        jwks_max_age: Duration::from_secs(3600),
                    })
                    .map_err(|e| anyhow::anyhow!(e))?,
                );
                if oidc.config().audiences.is_empty() && oidc.config().client_id.is_none() {
                    anyhow::bail!(
                        "--oidc-issuer needs --oidc-audience or --oidc-client-id (the audience tokens must carry)"
                    );
                }
                // Discover now so that a wrong issuer shows at start; the server starts anyway
                // (PATs keep working) and discovery is retried on use.
                if let Err(e) = oidc.metadata().await {
                    tracing::warn!("{e}; continuing, discovery is retried on use");
                }
                chain.push(Arc::new(BearerAuthenticator {
                    oidc: oidc.clone(),
                    mapper: self.mapper.clone(),
                }));
                if oidc.login_enabled() {
                    LoginMode::Oidc(oidc)
                } else {
                    LoginMode::None
                }
            }
        };
        let web = AuthWeb::new(
            mode,
            public_url,
            self.pats.clone(),
            self.identities.clone(),
            self.mapper.clone(),
            Some(self.audit.clone()),
        );
        Ok(Wired {
            authenticator: Arc::new(Chain(chain)),
            web,
        })
    }
}
