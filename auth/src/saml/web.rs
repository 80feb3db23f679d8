//! The SAML routes as a [`datakube_http::Handler`]:
//!
//! * `GET /saml/metadata`: the SP metadata (`application/samlmetadata+xml`);
//! * `GET /saml/login[?return_to=/local/path]`: 302 to the IdP with a signed AuthnRequest;
//! * `POST /saml/acs`: validates the Response; on success calls the login-completion callback
//!   (which makes the browser session), otherwise answers 403 with the reason.
//!
//! Every login and every refused response is written to the audit log (`login` /
//! `auth_failure`, method `saml`, with the reason), never the assertion itself.

use std::sync::Arc;

use datakube_http::{BoxFuture, HttpRequest, HttpResponse, full, text};
use hyper::{Method, Response, StatusCode, header};

use super::sp::{SamlError, SamlLogin, SamlSp};
use crate::Identity;
use crate::audit::{AuditEvent, AuditLog, now_rfc3339};

/// Called after a verified login with the identity and the local path the login started from
/// (`return_to`, if any); answers the browser (typically: set a session cookie, redirect).
pub type LoginComplete = Arc<dyn Fn(Identity, Option<String>) -> BoxFuture<HttpResponse> + Send + Sync>;

/// The paths [`SamlWeb`] answers.
pub const METADATA_PATH: &str = "/saml/metadata";
pub const LOGIN_PATH: &str = "/saml/login";
pub const ACS_PATH: &str = "/saml/acs";

/// The three SAML routes.
#[derive(Clone)]
pub struct SamlWeb {
    sp: Arc<SamlSp>,
    audit: Option<Arc<AuditLog>>,
    on_login: LoginComplete,
}

impl SamlWeb {
    pub fn new(sp: Arc<SamlSp>, audit: Option<Arc<AuditLog>>, on_login: LoginComplete) -> SamlWeb {
        SamlWeb { sp, audit, on_login }
    }

    pub fn sp(&self) -> &Arc<SamlSp> {
        &self.sp
    }

    /// Whether a router should send `path` here (`/saml/…`).
    pub fn handles(path: &str) -> bool {
        path == "/saml" || path.starts_with("/saml/")
    }

    fn audit(&self, event: AuditEvent, secret: &str) -> std::io::Result<()> {
        match &self.audit {
            Some(log) => log.record(&event, &[secret]),
            None => Ok(()),
        }
    }

    async fn acs(&self, req: HttpRequest) -> HttpResponse {
        let base = AuditEvent {
            time: now_rfc3339(),
            method: "saml".into(),
            peer: req.peer.to_string(),
            client_app: header_str(&req, header::USER_AGENT),
            ..AuditEvent::default()
        };
        // The raw response is the credential: the audit log refuses any line containing it.
        let raw = String::from_utf8_lossy(&req.body).into_owned();
        let sp = self.sp.clone();
        let body = req.body.clone();
        // xmlsec and the XML parsing are CPU work: off the async threads.
        let result = tokio::task::spawn_blocking(move || sp.validate_form(&body))
            .await
            .unwrap_or_else(|e| Err(SamlError::Crypto(format!("validation task failed: {e}"))));
        match result {
            Ok(SamlLogin {
                identity, relay_state, ..
            }) => {
                let cvrs: Vec<&str> = identity.privileges.iter().map(|g| g.cvr.as_str()).collect();
                let event = AuditEvent {
                    kind: "login".into(),
                    user: identity.subject.clone(),
                    organisation: identity.organisations.clone(),
                    outcome: "ok".into(),
                    detail: format!(
                        "SAML login via {}; privilege groups for CVR {}",
                        self.sp.idp_entity_id(),
                        {
                            if cvrs.is_empty() {
                                "none".to_string()
                            } else {
                                cvrs.join(", ")
                            }
                        }
                    ),
                    ..base
                };
                if let Err(e) = self.audit(event, &raw) {
                    tracing::error!(target: "datakube::auth", "audit log: {e}");
                    return text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the login could not be recorded in the audit log\n",
                    );
                }
                tracing::info!(target: "datakube::auth", method = "saml", "login");
                let return_to = relay_state.filter(|r| local_path(r));
                (self.on_login)(identity, return_to).await
            }
            Err(e) => {
                let event = AuditEvent {
                    kind: "auth_failure".into(),
                    outcome: "denied".into(),
                    detail: format!("SAML response refused: {e}"),
                    ..base
                };
                if let Err(err) = self.audit(event, &raw) {
                    tracing::error!(target: "datakube::auth", "audit log: {err}");
                }
                tracing::warn!(target: "datakube::auth", method = "saml", kind = e.kind(), "SAML response refused: {e}");
                let status = match e {
                    SamlError::Malformed(_) => StatusCode::BAD_REQUEST,
                    SamlError::Config(_) | SamlError::Crypto(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::FORBIDDEN,
                };
                text(status, format!("SAML login refused: {e}\n"))
            }
        }
    }

    fn login(&self, req: &HttpRequest) -> HttpResponse {
        let return_to = req.query.as_deref().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "return_to")
                .map(|(_, v)| v.into_owned())
        });
        let relay = return_to.filter(|r| local_path(r));
        match self.sp.authn_request(relay.as_deref()) {
            Ok(url) => {
                let mut r = Response::new(full(""));
                *r.status_mut() = StatusCode::FOUND;
                if let Ok(v) = url.parse() {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
                r
            }
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("SAML login unavailable: {e}\n"),
            ),
        }
    }

    fn metadata(&self) -> HttpResponse {
        match self.sp.metadata_xml() {
            Ok(xml) => {
                let mut r = Response::new(full(xml));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/samlmetadata+xml"),
                );
                r
            }
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("SAML metadata unavailable: {e}\n"),
            ),
        }
    }
}

impl datakube_http::Handler for SamlWeb {
    fn handle(&self, req: HttpRequest) -> BoxFuture<HttpResponse> {
        let resp = match (&req.method, req.path.as_str()) {
            (&Method::GET, METADATA_PATH) => self.metadata(),
            (&Method::GET, LOGIN_PATH) => self.login(&req),
            (&Method::POST, ACS_PATH) => {
                let me = self.clone();
                return Box::pin(async move { me.acs(req).await });
            }
            (_, METADATA_PATH | LOGIN_PATH | ACS_PATH) => text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} {} is not allowed\n", req.method, req.path),
            ),
            _ => text(StatusCode::NOT_FOUND, format!("no such path: {}\n", req.path)),
        };
        Box::pin(async move { resp })
    }
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> String {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect())
        .unwrap_or_default()
}

/// A path on this server (no scheme, no host, no `//`, no backslash): the only return
/// targets accepted, so the login cannot be used as an open redirect. At most 80 bytes
/// (the SAML limit for RelayState).
pub fn local_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && p.len() <= 80
        && p.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_return_targets() {
        assert!(local_path("/portal/tokens"));
        assert!(!local_path("//evil.example/x"));
        assert!(!local_path("https://evil.example/"));
        assert!(!local_path("/\\evil.example"));
        assert!(!local_path("/a b"));
        assert!(!local_path(&format!("/{}", "a".repeat(80))));
    }
}
