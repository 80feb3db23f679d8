//! The SAML 2.0 service provider (OIOSAML 3, for KOMBIT's Context Handler): SP metadata, the
//! signed AuthnRequest (HTTP-Redirect binding, RSA-SHA256 over the query string), and the
//! validation of the Response posted to the assertion consumer service.
//!
//! XML signatures, canonicalisation and decryption are samael's, on Debian's xmlsec1; this
//! module adds what samael leaves to the application and what OIOSAML asks for:
//!
//! * the IdP metadata must name a signing certificate (samael would otherwise accept unsigned
//!   responses), and only RSA/ECDSA with SHA-256 or stronger are accepted;
//! * request ids are 128-bit random, kept for [`SamlConfig::request_lifetime`], answered once;
//! * assertion ids are kept until the assertion expires: a second use is refused (replay);
//! * a DOCTYPE anywhere in the response is refused before any XML parser sees it;
//! * attributes become an [`Identity`] (CVR, names, OIO-BPP privileges).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING, NameIdFormat};
use samael::schema::Assertion;
use samael::service_provider::{Error as SpError, ServiceProvider, ServiceProviderBuilder};
use samael::traits::ToXml as _;

use super::bpp;
use crate::{AuthMethod, Identity};

/// OIOSAML 3 and OIOSAML 2 names of the attributes read.
pub mod attributes {
    pub const CVR: &[&str] = &[
        "https://data.gov.dk/model/core/eid/professional/cvr",
        "dk:gov:saml:attribute:CvrNumberIdentifier",
    ];
    pub const PRIVILEGES: &[&str] = &[
        "https://data.gov.dk/model/core/eid/privilegesIntermediate",
        "dk:gov:saml:attribute:Privileges_intermediate",
    ];
    pub const FIRST_NAME: &[&str] = &["https://data.gov.dk/model/core/eid/firstName", "urn:oid:2.5.4.42"];
    pub const LAST_NAME: &[&str] = &["https://data.gov.dk/model/core/eid/lastName", "urn:oid:2.5.4.4"];
    pub const FULL_NAME: &[&str] = &["https://data.gov.dk/model/core/eid/fullName", "urn:oid:2.5.4.3"];
}

/// Largest `SAMLResponse` form value accepted (base64).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Most outstanding AuthnRequests and remembered assertion ids (the oldest go first).
pub const MAX_REMEMBERED: usize = 100_000;

/// How the service provider is set up.
#[derive(Clone)]
pub struct SamlConfig {
    /// The SP's entityID (registered with the Context Handler), also the expected Audience.
    pub entity_id: String,
    /// The external URL of `POST /saml/acs`: the expected Destination and Recipient.
    pub acs_url: String,
    /// The IdP's metadata (an `EntityDescriptor` with an `IDPSSODescriptor`).
    pub idp_metadata_xml: String,
    /// The SP's private key (PEM; RSA for OIOSAML), signs AuthnRequests and decrypts
    /// EncryptedAssertions.
    pub sp_key_pem: Vec<u8>,
    /// The SP's certificate (PEM), published in the SP metadata for signing and encryption.
    pub sp_cert_pem: Vec<u8>,
    /// Tolerated clock difference for NotBefore / NotOnOrAfter.
    pub clock_skew: Duration,
    /// How old a Response or Assertion (IssueInstant) may be.
    pub max_issue_delay: Duration,
    /// How long an AuthnRequest can be answered.
    pub request_lifetime: Duration,
    /// NameIDFormat asked for and published (OIOSAML 3: persistent).
    pub name_id_format: String,
}

impl fmt::Debug for SamlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamlConfig")
            .field("entity_id", &self.entity_id)
            .field("acs_url", &self.acs_url)
            .field("clock_skew", &self.clock_skew)
            .finish_non_exhaustive()
    }
}

impl SamlConfig {
    /// A configuration with the default times (3 minutes clock skew, 5 minutes issue delay,
    /// 10 minutes to answer a request) and the persistent NameID format. `public_base_url` is
    /// the server's external URL (`https://datakube.example.dk`); the ACS is
    /// `<public_base_url>/saml/acs`.
    pub fn new(
        entity_id: impl Into<String>,
        public_base_url: &str,
        idp_metadata_xml: impl Into<String>,
        sp_key_pem: impl Into<Vec<u8>>,
        sp_cert_pem: impl Into<Vec<u8>>,
    ) -> SamlConfig {
        SamlConfig {
            entity_id: entity_id.into(),
            acs_url: format!("{}/saml/acs", public_base_url.trim_end_matches('/')),
            idp_metadata_xml: idp_metadata_xml.into(),
            sp_key_pem: sp_key_pem.into(),
            sp_cert_pem: sp_cert_pem.into(),
            clock_skew: Duration::from_secs(180),
            max_issue_delay: Duration::from_secs(300),
            request_lifetime: Duration::from_secs(600),
            name_id_format: NameIdFormat::PersistentNameIDFormat.value().to_string(),
        }
    }

    /// [`SamlConfig::new`] with the IdP metadata, key and certificate read from files.
    pub fn from_files(
        entity_id: &str,
        public_base_url: &str,
        idp_metadata: &Path,
        sp_key: &Path,
        sp_cert: &Path,
    ) -> Result<SamlConfig, SamlError> {
        let read = |p: &Path, what: &str| {
            std::fs::read(p).map_err(|e| SamlError::Config(format!("cannot read the {what} {}: {e}", p.display())))
        };
        let md = String::from_utf8(read(idp_metadata, "IdP metadata")?)
            .map_err(|_| SamlError::Config(format!("the IdP metadata {} is not UTF-8", idp_metadata.display())))?;
        Ok(SamlConfig::new(
            entity_id,
            public_base_url,
            md,
            read(sp_key, "SP key")?,
            read(sp_cert, "SP certificate")?,
        ))
    }
}

/// Why a SAML message was refused (or the SP could not be set up). `Display` gives the kind
/// and the reason; the reason never contains the assertion itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamlError {
    /// The SP configuration or the IdP metadata is unusable.
    Config(String),
    /// Not a SAML response (form, base64, XML, DOCTYPE).
    Malformed(String),
    /// Unsigned, signed by a key not in the IdP metadata, or changed after signing.
    Signature(String),
    /// IssueInstant too old, or NotOnOrAfter passed (beyond the clock skew).
    Expired(String),
    /// NotBefore still ahead (beyond the clock skew).
    NotYetValid(String),
    /// The Audience is not this SP.
    Audience(String),
    /// Destination or Recipient is not this SP's ACS.
    Destination(String),
    /// The Issuer is not the IdP of the metadata.
    Issuer(String),
    /// Not an answer to a request this SP made (or the request expired).
    InResponseTo(String),
    /// The assertion (or the request it answers) has been used before.
    Replay(String),
    /// The IdP answered with a non-success status.
    Status(String),
    /// The assertion is valid but its subject or attributes are unusable (e.g. bad OIO-BPP).
    Attributes(String),
    /// Decryption or another crypto-provider failure.
    Crypto(String),
}

impl SamlError {
    /// A short word for the kind of refusal (for logs and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            SamlError::Config(_) => "config",
            SamlError::Malformed(_) => "malformed",
            SamlError::Signature(_) => "signature",
            SamlError::Expired(_) => "expired",
            SamlError::NotYetValid(_) => "not_yet_valid",
            SamlError::Audience(_) => "audience",
            SamlError::Destination(_) => "destination",
            SamlError::Issuer(_) => "issuer",
            SamlError::InResponseTo(_) => "in_response_to",
            SamlError::Replay(_) => "replay",
            SamlError::Status(_) => "status",
            SamlError::Attributes(_) => "attributes",
            SamlError::Crypto(_) => "crypto",
        }
    }

    /// The reason without the kind.
    pub fn reason(&self) -> &str {
        match self {
            SamlError::Config(s)
            | SamlError::Malformed(s)
            | SamlError::Signature(s)
            | SamlError::Expired(s)
            | SamlError::NotYetValid(s)
            | SamlError::Audience(s)
            | SamlError::Destination(s)
            | SamlError::Issuer(s)
            | SamlError::InResponseTo(s)
            | SamlError::Replay(s)
            | SamlError::Status(s)
            | SamlError::Attributes(s)
            | SamlError::Crypto(s) => s,
        }
    }
}

impl fmt::Display for SamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.reason())
    }
}

impl std::error::Error for SamlError {}

impl From<SpError> for SamlError {
    fn from(e: SpError) -> SamlError {
        let text = e.to_string();
        match e {
            SpError::FailedToValidateSignature => SamlError::Signature(
                "the response is not signed, or its signature does not verify with the IdP's certificate \
                 from its metadata (wrong key, or changed after signing)"
                    .into(),
            ),
            SpError::AssertionExpired { .. }
            | SpError::ResponseExpired { .. }
            | SpError::AssertionConditionExpired { .. }
            | SpError::AssertionSubjectConfirmationExpired { .. } => SamlError::Expired(text),
            SpError::AssertionConditionExpiredBefore { .. }
            | SpError::AssertionSubjectConfirmationExpiredBefore { .. } => SamlError::NotYetValid(text),
            SpError::AssertionConditionAudienceRestrictionFailed { .. } => SamlError::Audience(text),
            SpError::DestinationValidationError { .. } | SpError::AssertionRecipientMismatch { .. } => {
                SamlError::Destination(text)
            }
            SpError::AssertionIssuerMismatch { .. } | SpError::ResponseIssuerMismatch { .. } => SamlError::Issuer(text),
            // samael lists every outstanding request id here: not for a browser or a log.
            SpError::AssertionInResponseToInvalid { .. } | SpError::ResponseInResponseToInvalid { .. } => {
                SamlError::InResponseTo(
                    "InResponseTo names no login request of this server that is still open \
                     (unsolicited, expired or foreign)"
                        .into(),
                )
            }
            SpError::ResponseBadStatusCode { .. } => SamlError::Status(text),
            SpError::AssertionBearerSubjectConfirmationMissing | SpError::AssertionSubjectConfirmationMissing => {
                SamlError::Attributes(text)
            }
            SpError::EncryptedAssertionsNotYetSupported
            | SpError::MissingPrivateKeySP
            | SpError::MissingEncryptedKeyInfo
            | SpError::MissingEncryptedValueInfo
            | SpError::EncryptedAssertionKeyMethodUnsupported { .. }
            | SpError::EncryptedAssertionValueMethodUnsupported { .. }
            | SpError::EncryptedAssertionInvalid
            | SpError::FailedToDecryptAssertion
            | SpError::UnsupportedKey
            | SpError::CryptoProviderError(_) => SamlError::Crypto(text),
            SpError::FailedToParseSamlResponse(ref d) => SamlError::Malformed(format!("{text}: {d}")),
            SpError::FailedToParseSamlAssertion(ref d) => SamlError::Malformed(format!("{text}: {d}")),
            SpError::CryptoXmlError(ref d) => SamlError::Malformed(format!("{text}: {d}")),
            _ => SamlError::Malformed(text),
        }
    }
}

/// A verified login: who, and where the browser wanted to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlLogin {
    pub identity: Identity,
    /// The `RelayState` sent back (a local path the login started from, if any).
    pub relay_state: Option<String>,
    /// The assertion's ID (now in the replay cache).
    pub assertion_id: String,
}

/// Ids with an expiry, bounded: the oldest go first.
#[derive(Default)]
struct Expiring(HashMap<String, Instant>);

impl Expiring {
    fn purge(&mut self, now: Instant) {
        self.0.retain(|_, until| *until > now);
    }
    fn live(&self, id: &str, now: Instant) -> bool {
        self.0.get(id).is_some_and(|until| *until > now)
    }
    fn insert(&mut self, id: String, until: Instant, now: Instant) {
        if self.0.len() >= MAX_REMEMBERED {
            self.purge(now);
        }
        if self.0.len() >= MAX_REMEMBERED
            && let Some(oldest) = self.0.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
        {
            self.0.remove(&oldest);
        }
        self.0.insert(id, until);
    }
}

#[derive(Default)]
struct State {
    /// AuthnRequest ids not yet answered.
    outstanding: Expiring,
    /// AuthnRequest ids answered (kept as long as they could have been answered).
    answered: Expiring,
    /// Assertion ids accepted, until they expire.
    assertions: Expiring,
}

/// The SAML service provider. Cheap to share (`Arc`); all methods take `&self`.
pub struct SamlSp {
    sp: ServiceProvider,
    key: PKey<Private>,
    config: SamlConfig,
    idp_entity_id: String,
    sso_redirect_url: String,
    state: Mutex<State>,
}

impl fmt::Debug for SamlSp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamlSp")
            .field("entity_id", &self.config.entity_id)
            .field("idp", &self.idp_entity_id)
            .finish_non_exhaustive()
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(180))
}

impl SamlSp {
    /// Check the configuration and the IdP metadata: the IdP must publish a signing
    /// certificate and an HTTP-Redirect SingleSignOnService; the key must match the
    /// certificate.
    pub fn new(config: SamlConfig) -> Result<SamlSp, SamlError> {
        let cfg_err = |m: String| SamlError::Config(m);
        let key = PKey::private_key_from_pem(&config.sp_key_pem)
            .map_err(|e| cfg_err(format!("the SP key is not a PEM private key: {e}")))?;
        let cert = X509::from_pem(&config.sp_cert_pem)
            .map_err(|e| cfg_err(format!("the SP certificate is not a PEM certificate: {e}")))?;
        let cert_key = cert
            .public_key()
            .map_err(|e| cfg_err(format!("the SP certificate has no usable public key: {e}")))?;
        if !key.public_eq(&cert_key) {
            return Err(cfg_err("the SP key does not belong to the SP certificate".into()));
        }
        let cert_der = cert
            .to_der()
            .map_err(|e| cfg_err(format!("the SP certificate cannot be encoded: {e}")))?;
        if config.idp_metadata_xml.to_ascii_uppercase().contains("<!DOCTYPE") {
            return Err(cfg_err(
                "the IdP metadata carries a DOCTYPE, which SAML metadata never needs".into(),
            ));
        }
        let idp: EntityDescriptor = config
            .idp_metadata_xml
            .parse()
            .map_err(|e| cfg_err(format!("the IdP metadata is not a SAML EntityDescriptor: {e}")))?;
        let idp_entity_id = idp
            .entity_id
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| cfg_err("the IdP metadata has no entityID".into()))?;
        let sso_redirect_url = idp
            .idp_sso_descriptors
            .iter()
            .flatten()
            .flat_map(|d| d.single_sign_on_services.iter())
            .find(|s| s.binding == HTTP_REDIRECT_BINDING)
            .map(|s| s.location.clone())
            .ok_or_else(|| {
                cfg_err("the IdP metadata has no SingleSignOnService with the HTTP-Redirect binding".into())
            })?;
        let sp = ServiceProviderBuilder::default()
            .entity_id(config.entity_id.clone())
            .key(key.clone())
            .certificate(samael::crypto::CertificateDer::from(cert_der))
            .acs_url(config.acs_url.clone())
            .metadata_url(None::<String>)
            .slo_url(None::<String>)
            .idp_metadata(idp)
            .authn_name_id_format(config.name_id_format.clone())
            .allow_idp_initiated(false)
            .max_clock_skew(chrono_duration(config.clock_skew))
            .max_issue_delay(chrono_duration(config.max_issue_delay))
            .allowed_signature_algorithms(Some(vec![
                AllowedSignatureAlgorithm::RsaSha256,
                AllowedSignatureAlgorithm::RsaSha384,
                AllowedSignatureAlgorithm::RsaSha512,
                AllowedSignatureAlgorithm::EcdsaSha256,
                AllowedSignatureAlgorithm::EcdsaSha384,
                AllowedSignatureAlgorithm::EcdsaSha512,
            ]))
            .build()
            .map_err(|e| cfg_err(format!("SAML service provider: {e}")))?;
        // Without a signing certificate samael would take unsigned responses: refuse to start.
        match sp.idp_signing_certs() {
            Ok(Some(certs)) if !certs.is_empty() => {}
            Ok(_) => {
                return Err(cfg_err(
                    "the IdP metadata names no signing certificate (KeyDescriptor use=\"signing\")".into(),
                ));
            }
            Err(e) => return Err(cfg_err(format!("the IdP metadata's certificate: {e}"))),
        }
        Ok(SamlSp {
            sp,
            key,
            config,
            idp_entity_id,
            sso_redirect_url,
            state: Mutex::new(State::default()),
        })
    }

    pub fn config(&self) -> &SamlConfig {
        &self.config
    }

    /// The IdP's entityID from its metadata.
    pub fn idp_entity_id(&self) -> &str {
        &self.idp_entity_id
    }

    /// The SP metadata (`GET /saml/metadata`): entityID, the ACS with the HTTP-POST binding,
    /// the certificate for signing and for encryption, the NameIDFormat, signed requests.
    pub fn metadata_xml(&self) -> Result<String, SamlError> {
        // samael insists on an SLO location; this SP has no single logout, so it is dropped below.
        let mut with_slo = self.sp.clone();
        with_slo.slo_url = Some(self.config.acs_url.clone());
        let mut md = with_slo
            .metadata()
            .map_err(|e| SamlError::Config(format!("SP metadata: {e}")))?;
        for d in md.sp_sso_descriptors.iter_mut().flatten() {
            d.single_logout_services = None;
            d.authn_requests_signed = Some(true);
            d.want_assertions_signed = Some(true);
            d.name_id_formats = Some(vec![self.config.name_id_format.clone()]);
            // samael marks both key descriptors "signing"; the one with encryption methods is
            // the encryption key, offered with exactly what samael decrypts (OIOSAML 3 prefers
            // AES-GCM).
            for k in d.key_descriptors.iter_mut().flatten() {
                if let Some(methods) = k.encryption_methods.as_mut() {
                    k.key_use = Some("encryption".into());
                    *methods = [
                        "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                        "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
                    ]
                    .into_iter()
                    .map(|a| samael::metadata::EncryptionMethod { algorithm: a.into() })
                    .collect();
                }
            }
        }
        let xml = md
            .to_string()
            .map_err(|e| SamlError::Config(format!("SP metadata: {e}")))?;
        Ok(xml)
    }

    /// A signed AuthnRequest as the URL to redirect the browser to (HTTP-Redirect binding:
    /// deflated request, `RelayState`, `SigAlg` = RSA-SHA256, `Signature` over the query). The
    /// request id is remembered for [`SamlConfig::request_lifetime`].
    pub fn authn_request(&self, relay_state: Option<&str>) -> Result<String, SamlError> {
        let mut req = self
            .sp
            .make_authentication_request(&self.sso_redirect_url)
            .map_err(|e| SamlError::Config(format!("AuthnRequest: {e}")))?;
        let mut rnd = [0u8; 16];
        openssl::rand::rand_bytes(&mut rnd).map_err(|e| SamlError::Crypto(format!("random request id: {e}")))?;
        // An xs:ID must not start with a digit.
        req.id = format!("_{}", hex::encode(rnd));
        req.force_authn = None;
        let url = req
            .signed_redirect(relay_state.unwrap_or(""), &self.key)
            .map_err(|e| SamlError::Crypto(format!("signing the AuthnRequest: {e}")))?
            .ok_or_else(|| SamlError::Config("the AuthnRequest has no destination".into()))?;
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.outstanding.insert(req.id, now + self.config.request_lifetime, now);
        Ok(url.to_string())
    }

    /// Validate an `application/x-www-form-urlencoded` ACS body (`SAMLResponse`, `RelayState`).
    pub fn validate_form(&self, form_body: &[u8]) -> Result<SamlLogin, SamlError> {
        let mut response = None;
        let mut relay_state = None;
        for (k, v) in url::form_urlencoded::parse(form_body) {
            match k.as_ref() {
                "SAMLResponse" => response = Some(v.into_owned()),
                "RelayState" => relay_state = Some(v.into_owned()),
                _ => {}
            }
        }
        let response = response.ok_or_else(|| SamlError::Malformed("the form has no SAMLResponse".into()))?;
        let mut login = self.validate_response(&response)?;
        login.relay_state = relay_state.filter(|r| !r.is_empty());
        Ok(login)
    }

    /// Validate a base64 `SAMLResponse` (HTTP-POST binding): signature against the IdP's
    /// certificate, Destination, Issuer, status, InResponseTo (a request of ours, answered
    /// once), time limits with clock skew, Audience, Recipient, assertion replay; then the
    /// attributes become an [`Identity`].
    pub fn validate_response(&self, saml_response_b64: &str) -> Result<SamlLogin, SamlError> {
        if saml_response_b64.len() > MAX_RESPONSE_BYTES {
            return Err(SamlError::Malformed(format!(
                "the SAMLResponse is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        let compact: String = saml_response_b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| SamlError::Malformed(format!("the SAMLResponse is not base64 ({e})")))?;
        let xml =
            String::from_utf8(bytes).map_err(|_| SamlError::Malformed("the SAMLResponse is not UTF-8 XML".into()))?;
        if xml.to_ascii_uppercase().contains("<!DOCTYPE") {
            return Err(SamlError::Malformed(
                "the SAMLResponse carries a DOCTYPE, which SAML never needs".into(),
            ));
        }
        let now = Instant::now();
        // Answered ids stay acceptable to samael so that a second answer is reported as a
        // replay below, from verified content.
        let possible: Vec<String> = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.outstanding.purge(now);
            st.answered.purge(now);
            st.assertions.purge(now);
            st.outstanding.0.keys().chain(st.answered.0.keys()).cloned().collect()
        };
        let possible_refs: Vec<&str> = possible.iter().map(String::as_str).collect();
        let assertion = self.sp.parse_xml_response(&xml, Some(&possible_refs))?;

        // Verified from here on.
        let in_response_to = bearer_in_response_to(&assertion)
            .ok_or_else(|| SamlError::InResponseTo("the assertion answers no request".into()))?;
        let until = self.assertion_expiry(&assertion, now);
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.assertions.live(&assertion.id, now) {
                return Err(SamlError::Replay(format!(
                    "assertion {} has already been used to log in",
                    assertion.id
                )));
            }
            if !st.outstanding.live(&in_response_to, now) {
                return Err(SamlError::Replay(format!(
                    "the login request {in_response_to} has already been answered"
                )));
            }
            st.outstanding.0.remove(&in_response_to);
            let request_until = now + self.config.request_lifetime;
            st.answered.insert(in_response_to, request_until, now);
            st.assertions.insert(assertion.id.clone(), until, now);
        }
        let identity = identity_from_assertion(&assertion)?;
        Ok(SamlLogin {
            identity,
            relay_state: None,
            assertion_id: assertion.id.clone(),
        })
    }

    /// How long to remember an assertion id: until its latest NotOnOrAfter plus the clock skew
    /// (at least the issue delay, at most a day).
    fn assertion_expiry(&self, a: &Assertion, now: Instant) -> Instant {
        let latest = a
            .conditions
            .as_ref()
            .and_then(|c| c.not_on_or_after)
            .into_iter()
            .chain(
                a.subject
                    .iter()
                    .flat_map(|s| s.subject_confirmations.iter().flatten())
                    .filter_map(|c| c.subject_confirmation_data.as_ref()?.not_on_or_after),
            )
            .max();
        let secs = latest
            .map(|t| (t - chrono::Utc::now()).num_seconds().max(0) as u64)
            .unwrap_or(0);
        let keep = Duration::from_secs(secs) + self.config.clock_skew;
        now + keep.clamp(
            self.config.max_issue_delay + self.config.clock_skew,
            Duration::from_secs(86_400),
        )
    }
}

fn bearer_in_response_to(a: &Assertion) -> Option<String> {
    a.subject
        .iter()
        .flat_map(|s| s.subject_confirmations.iter().flatten())
        .filter(|c| c.method.as_deref() == Some("urn:oasis:names:tc:SAML:2.0:cm:bearer"))
        .filter_map(|c| c.subject_confirmation_data.as_ref()?.in_response_to.clone())
        .next()
}

/// All values of the first of `names` that the assertion carries.
fn values(a: &Assertion, names: &[&str]) -> Vec<String> {
    for name in names {
        let found: Vec<String> = a
            .attribute_statements
            .iter()
            .flatten()
            .flat_map(|s| s.attributes.iter())
            .filter(|at| at.name.as_deref() == Some(name))
            .flat_map(|at| at.values.iter())
            .filter_map(|v| v.value.as_deref())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// The [`Identity`] an assertion describes: NameID → subject; first and last name (or the
/// full name, or the NameID) → display name; professional CVR → organisations; the OIO-BPP
/// privileges attribute → privilege groups.
pub fn identity_from_assertion(a: &Assertion) -> Result<Identity, SamlError> {
    let subject = a
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SamlError::Attributes("the assertion has no NameID".into()))?;
    let first = values(a, attributes::FIRST_NAME).into_iter().next();
    let last = values(a, attributes::LAST_NAME).into_iter().next();
    let display_name = match (first, last) {
        (Some(f), Some(l)) => format!("{f} {l}"),
        (Some(n), None) | (None, Some(n)) => n,
        (None, None) => values(a, attributes::FULL_NAME)
            .into_iter()
            .next()
            .unwrap_or_else(|| subject.clone()),
    };
    let mut organisations = Vec::new();
    for cvr in values(a, attributes::CVR) {
        if cvr.len() != 8 || !cvr.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SamlError::Attributes(format!(
                "the CVR attribute value '{cvr}' is not an 8-digit CVR number"
            )));
        }
        if !organisations.contains(&cvr) {
            organisations.push(cvr);
        }
    }
    let mut privileges = Vec::new();
    for v in values(a, attributes::PRIVILEGES) {
        privileges.extend(bpp::parse_base64(&v).map_err(|e| SamlError::Attributes(e.to_string()))?);
    }
    Ok(Identity {
        subject,
        display_name,
        method: AuthMethod::Saml,
        organisations,
        privileges,
        ..Identity::default()
    })
}
