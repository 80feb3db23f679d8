//! `datakube-auth`: who is asking, and what they may see.
//!
//! Identity comes only from verified credentials (OIDC tokens, SAML assertions via KOMBIT's
//! Context Handler, personal access tokens, service accounts). Nothing a client sends in a
//! request body or connection string can produce or widen a [`Principal`].
//!
//! The path of a credential:
//!
//! ```text
//! credential ──(provider: dev / oidc / saml / pat)──▶ Identity ──(roles: security.yaml)──▶ Principal
//! ```
//!
//! An [`Identity`] is what a provider verified (subject, organisations, role claims, OIO-BPP
//! privilege groups); an [`IdentityMapper`] turns it into a [`Principal`] (roles, cubes, row
//! scope, restrictions) or denies it. Unknown users get nothing.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub mod audit;
pub mod dev;
pub mod identities;
pub mod impersonate;
pub mod jwt;
pub mod kommuner;
pub mod mapper;
pub mod oidc;
pub mod pat;
pub mod roles;
pub mod saml;
pub mod util;
pub mod web;

pub use dev::{DEV_USERS, DevAuthenticator, DevUser};

/// A boxed future, as the authenticators return them (a bearer token may need the IdP's keys).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A Danish municipality code (kommunekode), 101–860.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Kommunekode(pub u16);

/// What rows a principal may read in a cube of class `individual`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RowScope {
    /// Only rows whose row-scope column equals one of these codes (none: no rows at all).
    Municipalities(Vec<Kommunekode>),
    /// Every row (administrators and national users).
    All,
}

impl Default for RowScope {
    /// Deny by default: no municipality.
    fn default() -> Self {
        RowScope::Municipalities(Vec::new())
    }
}

impl RowScope {
    /// Whether rows of kommune `k` are visible.
    pub fn contains(&self, k: Kommunekode) -> bool {
        match self {
            RowScope::All => true,
            RowScope::Municipalities(v) => v.contains(&k),
        }
    }
    /// No rows at all.
    pub fn is_empty(&self) -> bool {
        matches!(self, RowScope::Municipalities(v) if v.is_empty())
    }
}

/// How the principal was authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMethod {
    /// The built-in development identity (never on a non-loopback address unless forced).
    #[default]
    Development,
    Oidc,
    Saml,
    PersonalAccessToken,
    ServiceAccount,
}

/// A constraint (dataafgrænsning) on a privilege group, e.g.
/// `http://sts.kombit.dk/constraints/orgenhed/1` = `uuid1,uuid2` or `…/KLE/1` = `32.30.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub name: String,
    pub value: String,
}

/// One `PrivilegeGroup` of an OIO Basic Privilege Profile: privileges (brugersystemrolle URIs)
/// held in one organisation (CVR), with optional constraints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivilegeGroup {
    /// The CVR from `Scope="urn:dk:gov:saml:cvrNumberIdentifier:<CVR>"`.
    pub cvr: String,
    pub privileges: Vec<String>,
    pub constraints: Vec<Constraint>,
}

/// What an identity provider verified about a user or client, before roles are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Stable subject id from the provider (`sub`, SAML NameID, service-account client id).
    pub subject: String,
    pub display_name: String,
    pub method: AuthMethod,
    /// Organisation CVR numbers asserted (OIOSAML `…/professional/cvr`, or the OIDC claim the
    /// claim mapping names).
    pub organisations: Vec<String>,
    /// Kommunekoder asserted directly (an OIDC claim, when the mapping names one).
    pub kommunekoder: Vec<Kommunekode>,
    /// Role or group claim values (OIDC), matched against the roles' `claims`.
    pub role_claims: Vec<String>,
    /// OIO-BPP privilege groups (SAML `privilegesIntermediate`, or a broker's claims).
    pub privileges: Vec<PrivilegeGroup>,
}

/// Members a principal may see on one hierarchy of any cube that has it (an allowed set):
/// the listed keys at any level, with their ancestors and descendants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberRestriction {
    /// The dimension's name, e.g. `Organisation`.
    pub dimension: String,
    /// Allowed member keys (e.g. organisation-unit UUIDs, KLE numbers; `*` suffix = prefix).
    pub keys: Vec<String>,
    /// Kommuner whose members are all allowed (a grant in that kommune without a constraint).
    pub whole_kommuner: Vec<Kommunekode>,
}

/// A verified identity with what it may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable subject id (not personal data in logs: log [`Principal::subject_hash`]).
    pub subject: String,
    pub display_name: String,
    /// Rows visible in `individual` cubes (the user's own municipalities).
    pub scope: RowScope,
    /// Role names granted (`admin` is the administrator role).
    pub roles: Vec<String>,
    pub method: AuthMethod,
    /// Organisation CVRs the identity carried.
    pub organisations: Vec<String>,
    /// Cubes granted by name; `None` = every cube the other grants allow.
    pub cubes: Option<BTreeSet<String>>,
    /// May read `benchmark` cubes (all municipalities, aggregated and disclosure-controlled).
    pub benchmark: bool,
    /// Allowed sets on other dimensions (all must hold).
    pub restrictions: Vec<MemberRestriction>,
    /// A service account that may send `EffectiveUserName`, `CustomData` and `Roles`.
    pub impersonate: bool,
    /// The kommune whose comparison group `[Sammenligningsgruppe]` resolves to (the first
    /// municipality of the scope, or the organisation's kommune).
    pub home_kommune: Option<Kommunekode>,
    /// Set by impersonation: the service account acting for this principal (audited on
    /// every query it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// The `CustomData` connection property, accepted only from a service account allowed to
    /// impersonate; MDX `CustomData()` returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
    /// Whether the principal may open `cube` at all (before its class is considered).
    pub fn may_open(&self, cube: &str) -> bool {
        self.is_admin() || self.cubes.as_ref().is_none_or(|c| c.contains(cube))
    }
    /// A short, non-reversible id for logs (no personal data): the first 12 hex digits of
    /// SHA-256 over the subject.
    pub fn subject_hash(&self) -> String {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(self.subject.as_bytes());
        hex::encode(&d[..6])
    }
}

/// Turns a verified [`Identity`] into a [`Principal`], or denies it (the reason goes to the
/// audit log). Implemented by the role mapping of `security.yaml`.
pub trait IdentityMapper: Send + Sync {
    fn map(&self, identity: &Identity) -> Result<Principal, String>;
    /// Like [`IdentityMapper::map`] with the granted roles narrowed to `roles` (the XMLA
    /// `Roles` property of an impersonating service account): never more than `map` grants.
    /// The default only filters `Principal::roles`; a mapper whose roles grant scope, cubes or
    /// restrictions must override it so that those narrow too.
    fn map_with_roles(&self, identity: &Identity, roles: &[String]) -> Result<Principal, String> {
        let mut p = self.map(identity)?;
        p.roles.retain(|r| roles.iter().any(|x| x.eq_ignore_ascii_case(r)));
        Ok(p)
    }
}

/// The answer of an [`Authenticator`] for one request.
// One per request, moved once: boxing the principal would buy nothing.
#[allow(clippy::large_enum_variant)]
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
    fn authenticate<'a>(&'a self, authorization: Option<&'a str>) -> BoxFuture<'a, AuthOutcome>;
    /// The realm named in the 401 challenge.
    fn realm(&self) -> &str {
        "datakube"
    }
}

/// Several authenticators tried in order; the first that authenticates wins.
pub struct Chain(pub Vec<std::sync::Arc<dyn Authenticator>>);

impl Authenticator for Chain {
    fn authenticate<'a>(&'a self, authorization: Option<&'a str>) -> BoxFuture<'a, AuthOutcome> {
        Box::pin(async move {
            let mut why = Vec::new();
            for a in &self.0 {
                match a.authenticate(authorization).await {
                    AuthOutcome::Authenticated(p) => return AuthOutcome::Authenticated(p),
                    AuthOutcome::Challenge(w) => why.push(w),
                }
            }
            why.dedup();
            AuthOutcome::Challenge(if why.is_empty() {
                "no authenticator configured".into()
            } else {
                why.join("; ")
            })
        })
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

/// The token of `Authorization: Bearer <token>`.
pub fn parse_bearer(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("Bearer").then(|| rest.trim())
}

/// Compare without leaking where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
