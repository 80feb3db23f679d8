//! Verification of signed JWTs (access and ID tokens) against the identity provider's keys.
//!
//! The signature is checked with `openidconnect`'s JWK implementation; the claims checks are
//! ours because they must cover access tokens too (`typ: at+jwt`, RFC 9068), `nbf`, and a
//! configurable clock skew. Only asymmetric algorithms are accepted: `alg: none` and the HMAC
//! algorithms (`HS*`, the classic "use the public key as the HMAC secret" confusion) are
//! refused before any key is looked at, and a key is only used with an algorithm of its own
//! type.
//!
//! Error texts never contain the token.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use openidconnect::JsonWebKey as _;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm};
use serde_json::{Map, Value};

/// The claims of a verified token.
pub type Claims = Map<String, Value>;

/// Longest token accepted (bytes); real access tokens are a few KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct JwtRules {
    /// The `iss` the token must carry (exactly).
    pub issuer: String,
    /// The token's `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    /// Tolerance for `exp`, `nbf` and `iat` against the local clock.
    pub clock_skew: Duration,
}

/// Why a token was refused. The texts are for logs and the audit log: no token text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    Malformed(&'static str),
    /// `none`, HMAC or an unknown algorithm.
    Algorithm(String),
    /// No key with the token's `kid` (after a JWKS refetch, when allowed).
    UnknownKey(String),
    /// The signature does not verify with the key.
    Signature,
    Issuer,
    Audience,
    Expired,
    NotYetValid,
    MissingClaim(&'static str),
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::Malformed(why) => write!(f, "malformed JWT: {why}"),
            JwtError::Algorithm(a) => write!(f, "JWT algorithm {a:?} is not accepted"),
            JwtError::UnknownKey(kid) => write!(f, "JWT signed by an unknown key (kid {kid:?})"),
            JwtError::Signature => write!(f, "JWT signature does not verify"),
            JwtError::Issuer => write!(f, "JWT issuer is not the configured identity provider"),
            JwtError::Audience => write!(f, "JWT audience is not this server"),
            JwtError::Expired => write!(f, "JWT has expired"),
            JwtError::NotYetValid => write!(f, "JWT is not valid yet (nbf/iat in the future)"),
            JwtError::MissingClaim(c) => write!(f, "JWT lacks the claim {c}"),
        }
    }
}

impl std::error::Error for JwtError {}

/// The parts of a JWS header we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// Whether `text` has the shape of a compact JWS (three base64url parts).
pub fn looks_like_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed("not base64url"))
}

fn split(token: &str) -> Result<(&str, &str, &str), JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed("too long"));
    }
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((h, p, s)),
        _ => Err(JwtError::Malformed(
            "not three dot-separated parts (JWE is not supported)",
        )),
    }
}

/// The header of a token, unverified.
pub fn header(token: &str) -> Result<Header, JwtError> {
    let (h, _, _) = split(token)?;
    let v: Value = serde_json::from_slice(&b64(h)?).map_err(|_| JwtError::Malformed("header is not JSON"))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(Header {
        alg: s("alg").ok_or(JwtError::Malformed("header has no alg"))?,
        kid: s("kid"),
        typ: s("typ"),
    })
}

/// The asymmetric algorithms accepted.
fn algorithm(alg: &str) -> Result<CoreJwsSigningAlgorithm, JwtError> {
    const ACCEPTED: &[&str] = &[
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    ];
    if !ACCEPTED.contains(&alg) {
        return Err(JwtError::Algorithm(alg.chars().take(20).collect()));
    }
    serde_json::from_value(Value::String(alg.to_string())).map_err(|_| JwtError::Algorithm(alg.to_string()))
}

/// Whether `kid` is among the signing keys of `keys`.
pub fn has_key(keys: &CoreJsonWebKeySet, kid: &str) -> bool {
    signing_keys(keys).any(|k| k.key_id().is_some_and(|id| id.as_str() == kid))
}

fn signing_keys(keys: &CoreJsonWebKeySet) -> impl Iterator<Item = &CoreJsonWebKey> {
    keys.keys()
        .iter()
        .filter(|k| matches!(k.key_use(), None | Some(CoreJsonWebKeyUse::Signature)))
}

/// Verify `token`'s signature with `keys` and its claims with `rules` at Unix time `now`;
/// returns the claims.
pub fn verify(token: &str, keys: &CoreJsonWebKeySet, rules: &JwtRules, now: u64) -> Result<Claims, JwtError> {
    let (h, p, s) = split(token)?;
    let hdr = header(token)?;
    let alg = algorithm(&hdr.alg)?;
    let signature = b64(s)?;
    let message = &token.as_bytes()[..h.len() + 1 + p.len()];
    let candidates: Vec<&CoreJsonWebKey> = match &hdr.kid {
        Some(kid) => signing_keys(keys)
            .filter(|k| k.key_id().is_some_and(|id| id.as_str() == kid))
            .collect(),
        None => signing_keys(keys).collect(),
    };
    if candidates.is_empty() {
        return Err(JwtError::UnknownKey(
            hdr.kid.unwrap_or_default().chars().take(64).collect(),
        ));
    }
    // A key of another type than the algorithm (e.g. an RSA key for ES256) fails here too.
    if !candidates
        .iter()
        .any(|k| k.verify_signature(&alg, message, &signature).is_ok())
    {
        return Err(JwtError::Signature);
    }
    let claims: Claims = match serde_json::from_slice(&b64(p)?) {
        Ok(Value::Object(m)) => m,
        _ => return Err(JwtError::Malformed("payload is not a JSON object")),
    };
    check_claims(&claims, rules, now)?;
    Ok(claims)
}

/// The time claims, `iss` and `aud` of already verified claims.
pub fn check_claims(claims: &Claims, rules: &JwtRules, now: u64) -> Result<(), JwtError> {
    let skew = rules.clock_skew.as_secs();
    let num = |k: &str| claims.get(k).and_then(Value::as_f64).map(|f| f as u64);
    let exp = num("exp").ok_or(JwtError::MissingClaim("exp"))?;
    if now > exp.saturating_add(skew) {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = num("nbf")
        && now.saturating_add(skew) < nbf
    {
        return Err(JwtError::NotYetValid);
    }
    if let Some(iat) = num("iat")
        && now.saturating_add(skew) < iat
    {
        return Err(JwtError::NotYetValid);
    }
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == rules.issuer => {}
        Some(_) => return Err(JwtError::Issuer),
        None => return Err(JwtError::MissingClaim("iss")),
    }
    let aud: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => return Err(JwtError::MissingClaim("aud")),
    };
    if !aud.iter().any(|a| rules.audiences.iter().any(|r| r == a)) {
        return Err(JwtError::Audience);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use openidconnect::core::CoreRsaPrivateSigningKey;
    use openidconnect::{JsonWebKeyId, PrivateSigningKey as _};

    pub const ISSUER: &str = "https://idp.example";

    pub fn key(which: &str, kid: &str) -> CoreRsaPrivateSigningKey {
        let pem = match which {
            "a" => include_str!("../testdata/rsa-a.pem"),
            _ => include_str!("../testdata/rsa-b.pem"),
        };
        CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.into()))).unwrap()
    }

    pub fn b64e(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    /// A token with `header` and `claims` signed by `k` (RS256).
    pub fn sign(k: &CoreRsaPrivateSigningKey, header: Value, claims: Value) -> String {
        let msg = format!(
            "{}.{}",
            b64e(header.to_string().as_bytes()),
            b64e(claims.to_string().as_bytes())
        );
        let sig = k
            .sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, msg.as_bytes())
            .unwrap();
        format!("{msg}.{}", b64e(&sig))
    }

    pub fn jwks(keys: &[&CoreRsaPrivateSigningKey]) -> CoreJsonWebKeySet {
        CoreJsonWebKeySet::new(keys.iter().map(|k| k.as_verification_key()).collect())
    }

    pub fn rules() -> JwtRules {
        JwtRules {
            issuer: ISSUER.into(),
            audiences: vec!["urn:datakube".into(), "datakube".into()],
            clock_skew: Duration::from_secs(60),
        }
    }

    const NOW: u64 = 1_800_000_000;

    fn claims() -> Value {
        serde_json::json!({"iss": ISSUER, "aud": "urn:datakube", "sub": "anna", "exp": NOW + 300, "iat": NOW - 10})
    }

    fn rs(kid: &str) -> Value {
        serde_json::json!({"alg": "RS256", "kid": kid, "typ": "at+jwt"})
    }

    #[test]
    fn a_good_token_verifies() {
        let a = key("a", "k1");
        let t = sign(&a, rs("k1"), claims());
        let c = verify(&t, &jwks(&[&a]), &rules(), NOW).unwrap();
        assert_eq!(c["sub"], "anna");
        // An audience array works when one entry matches.
        let mut cl = claims();
        cl["aud"] = serde_json::json!(["other", "datakube"]);
        assert!(verify(&sign(&a, rs("k1"), cl), &jwks(&[&a]), &rules(), NOW).is_ok());
    }

    #[test]
    fn wrong_key_unknown_kid_and_tampering_are_refused() {
        let (a, b) = (key("a", "k1"), key("b", "k1"));
        // Signed by another key that claims the published kid.
        let t = sign(&b, rs("k1"), claims());
        assert_eq!(verify(&t, &jwks(&[&a]), &rules(), NOW), Err(JwtError::Signature));
        // A kid that is not published.
        let t = sign(&b, rs("k9"), claims());
        assert!(matches!(verify(&t, &jwks(&[&a]), &rules(), NOW), Err(JwtError::UnknownKey(k)) if k == "k9"));
        // A changed payload under a good signature.
        let t = sign(&a, rs("k1"), claims());
        let parts: Vec<&str> = t.split('.').collect();
        let mut cl = claims();
        cl["sub"] = "admin".into();
        let forged = format!("{}.{}.{}", parts[0], b64e(cl.to_string().as_bytes()), parts[2]);
        assert_eq!(verify(&forged, &jwks(&[&a]), &rules(), NOW), Err(JwtError::Signature));
    }

    #[test]
    fn alg_none_and_hmac_confusion_are_refused() {
        let a = key("a", "k1");
        let keys = jwks(&[&a]);
        let body = b64e(claims().to_string().as_bytes());
        let none = format!("{}.{body}.", b64e(br#"{"alg":"none","kid":"k1"}"#));
        assert!(matches!(
            verify(&none, &keys, &rules(), NOW),
            Err(JwtError::Algorithm(_))
        ));
        // HS256 "signed" with the public key as the secret: refused before any key is used.
        let hs = format!("{}.{body}.{}", b64e(br#"{"alg":"HS256","kid":"k1"}"#), b64e(b"mac"));
        assert!(matches!(verify(&hs, &keys, &rules(), NOW), Err(JwtError::Algorithm(_))));
        // ES256 with an RSA key: the key type does not match the algorithm.
        let es = format!("{}.{body}.{}", b64e(br#"{"alg":"ES256","kid":"k1"}"#), b64e(&[0u8; 64]));
        assert_eq!(verify(&es, &keys, &rules(), NOW), Err(JwtError::Signature));
    }

    #[test]
    fn time_claims_honour_the_skew() {
        let a = key("a", "k1");
        let keys = jwks(&[&a]);
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = claims();
            f(&mut c);
            sign(&a, rs("k1"), c)
        };
        // Expired 30 s ago: inside the 60 s skew; 61 s ago: refused.
        assert!(verify(&with(&|c| c["exp"] = (NOW - 30).into()), &keys, &rules(), NOW).is_ok());
        assert_eq!(
            verify(&with(&|c| c["exp"] = (NOW - 61).into()), &keys, &rules(), NOW),
            Err(JwtError::Expired)
        );
        // nbf in 30 s: fine with skew; in 120 s: not yet valid; with no skew, 30 s is refused.
        assert!(verify(&with(&|c| c["nbf"] = (NOW + 30).into()), &keys, &rules(), NOW).is_ok());
        assert_eq!(
            verify(&with(&|c| c["nbf"] = (NOW + 120).into()), &keys, &rules(), NOW),
            Err(JwtError::NotYetValid)
        );
        let strict = JwtRules {
            clock_skew: Duration::ZERO,
            ..rules()
        };
        assert_eq!(
            verify(&with(&|c| c["nbf"] = (NOW + 30).into()), &keys, &strict, NOW),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            verify(&with(&|c| c["iat"] = (NOW + 600).into()), &keys, &rules(), NOW),
            Err(JwtError::NotYetValid)
        );
        // exp is required.
        assert_eq!(
            verify(
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
                &keys,
                &rules(),
                NOW
            ),
            Err(JwtError::MissingClaim("exp"))
        );
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let a = key("a", "k1");
        let keys = jwks(&[&a]);
        let mut c = claims();
        c["iss"] = "https://evil.example".into();
        assert_eq!(
            verify(&sign(&a, rs("k1"), c), &keys, &rules(), NOW),
            Err(JwtError::Issuer)
        );
        let mut c = claims();
        c["aud"] = serde_json::json!(["urn:other-api"]);
        assert_eq!(
            verify(&sign(&a, rs("k1"), c), &keys, &rules(), NOW),
            Err(JwtError::Audience)
        );
    }

    #[test]
    fn garbage_is_malformed_and_errors_carry_no_token_text() {
        let keys = jwks(&[&key("a", "k1")]);
        for t in ["", "abc", "a.b", "a.b.c.d.e", "!!.??.**"] {
            assert!(
                matches!(verify(t, &keys, &rules(), NOW), Err(JwtError::Malformed(_))),
                "{t}"
            );
        }
        let t = sign(&key("b", "kx"), rs("kx"), claims());
        let e = verify(&t, &keys, &rules(), NOW).unwrap_err().to_string();
        assert!(!e.contains(t.split('.').nth(2).unwrap()) && !e.contains(t.split('.').nth(1).unwrap()));
        assert!(looks_like_jwt(&t) && !looks_like_jwt("dkpat_abc") && !looks_like_jwt("a.b.c"));
    }
}
