//! OpenID Connect: discovery, the browser login (authorization code flow with PKCE), the
//! provider's signing keys (JWKS, cached, refetched on an unknown `kid` at most once per
//! [`OidcConfig::jwks_min_refetch`]), bearer-token validation, and the claim mapping that turns
//! verified claims into an [`Identity`].
//!
//! Discovery is lazy: a server whose identity provider is down still starts (and serves PATs);
//! discovery is retried on use, at most every [`DISCOVERY_RETRY`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, JsonWebKeySet, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jwt::{self, Claims, JwtError, JwtRules};
use crate::{AuthMethod, Identity, Kommunekode};

/// Shortest wait between two discovery attempts after a failure.
pub const DISCOVERY_RETRY: Duration = Duration::from_secs(5);
/// Timeout of every request to the identity provider.
pub const IDP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which claims carry what. A name is looked up as a top-level claim first, then as a dotted
/// path into nested objects (`realm_access.roles`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimMapping {
    /// The stable user id (default `sub`).
    pub subject: String,
    /// The display name (default `name`; the subject when absent).
    pub display_name: String,
    /// The organisation CVR number(s) (default `organisation_cvr`).
    pub organisation: String,
    /// Kommunekoder asserted directly (default `kommunekode`).
    pub kommunekode: String,
    /// Role or group values (default `roles`).
    pub roles: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            subject: "sub".into(),
            display_name: "name".into(),
            organisation: "organisation_cvr".into(),
            kommunekode: "kommunekode".into(),
            roles: "roles".into(),
        }
    }
}

fn lookup<'a>(claims: &'a Claims, name: &str) -> Option<&'a Value> {
    if name.is_empty() {
        return None;
    }
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

/// A claim's values as strings: a string, a number, or an array of those.
fn strings(v: Option<&Value>) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

impl ClaimMapping {
    /// The identity verified claims describe. A client-credentials token (a `client_id` claim
    /// and no `sub`, or `sub` equal to it, as RFC 9068 prescribes) is a service account
    /// named by its client id; anything else is a user (method `Oidc`).
    pub fn identity(&self, claims: &Claims) -> Result<Identity, String> {
        let client_id = claims.get("client_id").and_then(Value::as_str);
        let sub = claims.get("sub").and_then(Value::as_str);
        if let Some(cid) = client_id
            && sub.is_none_or(|s| s == cid)
        {
            return Ok(Identity {
                subject: cid.to_string(),
                display_name: cid.to_string(),
                method: AuthMethod::ServiceAccount,
                role_claims: strings(lookup(claims, &self.roles)),
                ..Identity::default()
            });
        }
        let subject = strings(lookup(claims, &self.subject))
            .into_iter()
            .next()
            .ok_or_else(|| format!("the token has no subject claim {:?}", self.subject))?;
        let display_name = strings(lookup(claims, &self.display_name))
            .into_iter()
            .next()
            .unwrap_or_else(|| subject.clone());
        let kommunekoder = strings(lookup(claims, &self.kommunekode))
            .iter()
            .filter_map(|s| s.parse::<u16>().ok())
            .filter(|k| (101..=860).contains(k))
            .map(Kommunekode)
            .collect();
        Ok(Identity {
            subject,
            display_name,
            method: AuthMethod::Oidc,
            organisations: strings(lookup(claims, &self.organisation)),
            kommunekoder,
            role_claims: strings(lookup(claims, &self.roles)),
            privileges: Vec::new(),
        })
    }
}

/// How to reach and trust the identity provider.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// This server's client at the provider (browser login and ID-token audience).
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Audiences accepted in bearer access tokens (besides the client id, for ID tokens).
    pub audiences: Vec<String>,
    pub clock_skew: Duration,
    /// `<public-url>/callback`.
    pub redirect_url: String,
    /// Scopes requested at login besides `openid`.
    pub scopes: Vec<String>,
    pub claims: ClaimMapping,
    /// Shortest time between two JWKS fetches triggered by unknown key ids.
    pub jwks_min_refetch: Duration,
    /// Keys older than this are refetched before use.
    pub jwks_max_age: Duration,
}

struct Keys {
    set: Arc<CoreJsonWebKeySet>,
    fetched: Instant,
}

struct Discovery {
    meta: Option<Arc<CoreProviderMetadata>>,
    last_failure: Option<Instant>,
}

/// A browser login in progress: what the callback needs to finish it.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub state: String,
    nonce: String,
    pkce_verifier: String,
    pub created: Instant,
}

/// The identity provider as this server sees it.
pub struct Oidc {
    cfg: OidcConfig,
    http: openidconnect::reqwest::Client,
    discovery: tokio::sync::Mutex<Discovery>,
    keys: RwLock<Option<Keys>>,
    /// Held while fetching keys; the time of the last fetch.
    refetch: tokio::sync::Mutex<Option<Instant>>,
    /// JWKS fetches so far (discovery's included), for tests and logs.
    pub jwks_fetches: AtomicU64,
}

impl Oidc {
    pub fn new(cfg: OidcConfig) -> Result<Oidc, String> {
        IssuerUrl::new(cfg.issuer.clone()).map_err(|e| format!("--oidc-issuer {:?}: {e}", cfg.issuer))?;
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would open the server to SSRF through the provider's metadata.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(IDP_TIMEOUT)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Oidc {
            cfg,
            http,
            discovery: tokio::sync::Mutex::new(Discovery {
                meta: None,
                last_failure: None,
            }),
            keys: RwLock::new(None),
            refetch: tokio::sync::Mutex::new(None),
            jwks_fetches: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    /// Whether the browser login is configured (a client id).
    pub fn login_enabled(&self) -> bool {
        self.cfg.client_id.is_some()
    }

    /// The provider's metadata (discovered once, then cached).
    pub async fn metadata(&self) -> Result<Arc<CoreProviderMetadata>, String> {
        let mut d = self.discovery.lock().await;
        if let Some(m) = &d.meta {
            return Ok(m.clone());
        }
        if d.last_failure.is_some_and(|t| t.elapsed() < DISCOVERY_RETRY) {
            return Err("identity provider discovery failed recently; retrying shortly".into());
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.clone()).map_err(|e| e.to_string())?;
        match CoreProviderMetadata::discover_async(issuer, &self.http).await {
            Ok(meta) => {
                self.jwks_fetches.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    issuer = %self.cfg.issuer,
                    keys = meta.jwks().keys().len(),
                    "OpenID provider discovered"
                );
                self.store_keys(meta.jwks().clone());
                *self.refetch.lock().await = Some(Instant::now());
                let meta = Arc::new(meta);
                d.meta = Some(meta.clone());
                Ok(meta)
            }
            Err(e) => {
                d.last_failure = Some(Instant::now());
                let why = format!("OpenID discovery at {} failed: {}", self.cfg.issuer, error_chain(&e));
                tracing::warn!("{why}");
                Err(why)
            }
        }
    }

    fn store_keys(&self, set: CoreJsonWebKeySet) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Keys {
            set: Arc::new(set),
            fetched: Instant::now(),
        });
    }

    fn cached_keys(&self) -> Option<(Arc<CoreJsonWebKeySet>, Instant)> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|k| (k.set.clone(), k.fetched))
    }

    /// The signing keys, refetched when older than `jwks_max_age`.
    pub async fn keys(&self) -> Result<Arc<CoreJsonWebKeySet>, String> {
        self.metadata().await?;
        match self.cached_keys() {
            Some((k, fetched)) if fetched.elapsed() < self.cfg.jwks_max_age => Ok(k),
            _ => {
                self.refetch_keys().await?;
                self.cached_keys().map(|(k, _)| k).ok_or_else(|| "no keys".into())
            }
        }
    }

    /// Fetch the JWKS again unless that happened less than `jwks_min_refetch` ago. Returns
    /// whether it was fetched.
    pub async fn refetch_keys(&self) -> Result<bool, String> {
        let meta = self.metadata().await?;
        let mut last = self.refetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.cfg.jwks_min_refetch) {
            return Ok(false);
        }
        *last = Some(Instant::now());
        let set = JsonWebKeySet::fetch_async(meta.jwks_uri(), &self.http)
            .await
            .map_err(|e| format!("fetching the JWKS failed: {}", error_chain(&e)))?;
        let n = self.jwks_fetches.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            keys = set.keys().len(),
            fetches = n,
            "JWKS fetched from the identity provider"
        );
        self.store_keys(set);
        Ok(true)
    }

    fn rules(&self) -> JwtRules {
        let mut audiences = self.cfg.audiences.clone();
        audiences.extend(self.cfg.client_id.clone());
        JwtRules {
            issuer: self.cfg.issuer.clone(),
            audiences,
            clock_skew: self.cfg.clock_skew,
        }
    }

    /// Verify a bearer JWT (access or ID token) and return its claims. An unknown `kid`
    /// triggers one (rate-limited) JWKS refetch: the provider may have rotated its keys.
    pub async fn verify_token(&self, token: &str) -> Result<Claims, String> {
        let keys = self.keys().await?;
        let rules = self.rules();
        let now = crate::util::unix_now();
        match jwt::verify(token, &keys, &rules, now) {
            Err(JwtError::UnknownKey(kid)) => {
                let fetched = self.refetch_keys().await?;
                if !fetched {
                    return Err(format!("{} (JWKS refetch rate-limited)", JwtError::UnknownKey(kid)));
                }
                let keys = self.keys().await?;
                jwt::verify(token, &keys, &rules, now).map_err(|e| e.to_string())
            }
            other => other.map_err(|e| e.to_string()),
        }
    }

    /// The claims of a bearer token as an [`Identity`].
    pub async fn identity_from_token(&self, token: &str) -> Result<Identity, String> {
        let claims = self.verify_token(token).await?;
        self.cfg.claims.identity(&claims)
    }

    fn client(&self, meta: &CoreProviderMetadata, keys: &CoreJsonWebKeySet) -> Result<LoginClient, String> {
        let client_id = self.cfg.client_id.clone().ok_or("no --oidc-client-id configured")?;
        let redirect = RedirectUrl::new(self.cfg.redirect_url.clone()).map_err(|e| e.to_string())?;
        Ok(CoreClient::from_provider_metadata(
            meta.clone().set_jwks(keys.clone()),
            ClientId::new(client_id),
            self.cfg.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Start a browser login: the provider's authorization URL (with state, nonce and a PKCE
    /// S256 challenge) and what the callback needs.
    pub async fn begin_login(&self) -> Result<(String, PendingLogin), String> {
        let meta = self.metadata().await?;
        let keys = self.keys().await?;
        let client = self.client(&meta, &keys)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in &self.cfg.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            PendingLogin {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                created: Instant::now(),
            },
        ))
    }

    /// Finish a browser login: exchange the code (with the PKCE verifier), verify the ID
    /// token (signature, issuer, audience, expiry, nonce) and map its claims.
    pub async fn finish_login(&self, code: &str, pending: PendingLogin) -> Result<Identity, String> {
        let meta = self.metadata().await?;
        let keys = self.keys().await?;
        let client = self.client(&meta, &keys)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| e.to_string())?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| format!("the code exchange failed: {}", error_chain(&e)))?;
        let id_token = response.id_token().ok_or("the provider returned no ID token")?;
        let nonce = Nonce::new(pending.nonce.clone());
        if let Err(e) = id_token.claims(&client.id_token_verifier(), &nonce) {
            // Perhaps signed with a key rotated in since the last fetch: refetch once.
            if !matches!(e, openidconnect::ClaimsVerificationError::SignatureVerification(_))
                || !self.refetch_keys().await?
            {
                return Err(format!("the ID token is not valid: {e}"));
            }
            let keys = self.keys().await?;
            let client = self.client(&meta, &keys)?;
            id_token
                .claims(&client.id_token_verifier(), &nonce)
                .map_err(|e| format!("the ID token is not valid: {e}"))?;
        }
        // Verified above; read every claim (custom ones included) from the payload.
        let raw = id_token.to_string();
        let payload = raw.split('.').nth(1).ok_or("ID token without payload")?;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| "ID token payload is not base64url")?;
        let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| "ID token payload is not a JSON object")?;
        let mut identity = self.cfg.claims.identity(&claims)?;
        identity.method = AuthMethod::Oidc;
        Ok(identity)
    }

    /// The provider's logout endpoint, if it publishes one.
    pub async fn end_session_url(&self) -> Option<String> {
        let meta = self.metadata().await.ok()?;
        let v = serde_json::to_value(&*meta).ok()?;
        v.get("end_session_endpoint")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// Accepts `Authorization: Bearer <JWT>` from the identity provider (user access or ID tokens,
/// and client-credentials tokens of service accounts), and HTTP Basic whose password is such a
/// JWT (clients that can only send a user name and password).
pub struct BearerAuthenticator {
    pub oidc: Arc<Oidc>,
    pub mapper: Arc<dyn crate::IdentityMapper>,
}

/// The JWT a request carries, if any.
pub fn presented_jwt(authorization: Option<&str>) -> Option<String> {
    let h = authorization?;
    if let Some(t) = crate::parse_bearer(h) {
        return jwt::looks_like_jwt(t).then(|| t.to_string());
    }
    crate::parse_basic(h).map(|(_, p)| p).filter(|p| jwt::looks_like_jwt(p))
}

impl crate::Authenticator for BearerAuthenticator {
    fn authenticate<'a>(&'a self, authorization: Option<&'a str>) -> crate::BoxFuture<'a, crate::AuthOutcome> {
        Box::pin(async move {
            use crate::AuthOutcome;
            let Some(token) = presented_jwt(authorization) else {
                return AuthOutcome::Challenge("no bearer JWT".into());
            };
            let identity = match self.oidc.identity_from_token(&token).await {
                Ok(i) => i,
                Err(why) => return AuthOutcome::Challenge(why),
            };
            match self.mapper.map(&identity) {
                Ok(mut p) => {
                    p.method = identity.method;
                    AuthOutcome::Authenticated(p)
                }
                Err(why) => AuthOutcome::Challenge(format!("no access: {why}")),
            }
        })
    }
}

type LoginClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn user_claims_map_to_an_identity() {
        let m = ClaimMapping::default();
        let id = m
            .identity(&claims(serde_json::json!({
                "sub": "anna", "name": "Anna A", "organisation_cvr": "55133018",
                "roles": ["analytiker", "leder"], "kommunekode": [751, "825", "999"], "client_id": "datakube"
            })))
            .unwrap();
        assert_eq!(id.subject, "anna");
        assert_eq!(id.display_name, "Anna A");
        assert_eq!(id.method, AuthMethod::Oidc);
        assert_eq!(id.organisations, vec!["55133018"]);
        assert_eq!(id.role_claims, vec!["analytiker", "leder"]);
        // 999 is no kommunekode.
        assert_eq!(id.kommunekoder, vec![Kommunekode(751), Kommunekode(825)]);
    }

    #[test]
    fn the_mapping_is_configurable_with_nested_paths() {
        let m = ClaimMapping {
            subject: "oid".into(),
            display_name: "preferred_username".into(),
            organisation: "https://data.gov.dk/model/core/eid/professional/cvr".into(),
            kommunekode: "".into(),
            roles: "realm_access.roles".into(),
        };
        let id = m
            .identity(&claims(serde_json::json!({
                "sub": "ignored", "oid": "u-1", "preferred_username": "anna@aarhus.dk",
                "https://data.gov.dk/model/core/eid/professional/cvr": "55133018",
                "realm_access": {"roles": ["admin"]}
            })))
            .unwrap();
        assert_eq!(
            (id.subject.as_str(), id.display_name.as_str()),
            ("u-1", "anna@aarhus.dk")
        );
        assert_eq!(id.organisations, vec!["55133018"]);
        assert_eq!(id.role_claims, vec!["admin"]);
        // No subject claim: refused.
        assert!(m.identity(&claims(serde_json::json!({"sub": "x"}))).is_err());
        // The display name falls back to the subject.
        let id = ClaimMapping::default()
            .identity(&claims(serde_json::json!({"sub": "lars"})))
            .unwrap();
        assert_eq!(id.display_name, "lars");
    }

    #[test]
    fn client_credentials_tokens_are_service_accounts() {
        let m = ClaimMapping::default();
        for c in [
            serde_json::json!({"client_id": "targit", "sub": "targit", "scope": "xmla"}),
            serde_json::json!({"client_id": "targit"}),
        ] {
            let id = m.identity(&claims(c)).unwrap();
            assert_eq!(id.method, AuthMethod::ServiceAccount);
            assert_eq!(id.subject, "targit");
            assert!(id.organisations.is_empty());
        }
    }
}
