//! The XMLA endpoint: HTTP request in, SOAP response out.
//!
//! `POST /xmla` (and `POST /`, so a bare server URL works) carry XMLA. Every response is text
//! XML with HTTP 200 — faults included — and `X-Transport-Caps-Negotiation-Flags` with binary
//! XML and compression off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use datakube_engine::CancelToken;

use datakube_auth::{AuthOutcome, Authenticator, Principal};
use datakube_http::{BoxFuture, HttpRequest, HttpResponse};
use datakube_members::MemberStore;
use datakube_model::{Catalog, Lang};
use hyper::{Method, StatusCode};

use crate::discover::{self, Context, Fault, ServerProps};
use crate::response::{self, Kind, codes};
use crate::session::{SessionError, SessionState, Sessions};
use crate::soap::{self, SessionHeader};

/// Header every response carries: NEGO, REQ_SX, REQ_XPRESS, RESP_SX, RESP_XPRESS all off.
pub const CAPS_HEADER: (&str, &str) = ("X-Transport-Caps-Negotiation-Flags", "0,0,0,0,0");

/// The model the server answers from. Replaced as a whole (never mutated) on reload.
pub struct Runtime {
    pub catalog: Catalog,
    pub members: MemberStore,
    /// xsd:dateTime of when the definitions were loaded and of the data snapshot.
    pub schema_updated: String,
    pub data_updated: String,
}

/// One statement to execute, with everything the executor may use.
pub struct ExecuteRequest<'a> {
    pub runtime: &'a Runtime,
    /// The verified identity: the only source of the row scope.
    pub principal: &'a Principal,
    pub session: &'a SessionState,
    pub statement: &'a str,
    pub props: &'a soap::Properties,
    pub lang: Lang,
    /// Cancelled when the client sends `Cancel` for this session.
    pub cancel: &'a CancelToken,
}

/// Executes MDX statements (provided by the query engine).
pub trait Executor: Send + Sync {
    /// Answer the statement with an MDDataSet or rowset `<root>`, or a fault.
    fn execute(&self, req: &ExecuteRequest) -> Result<String, Fault>;
}

/// Commands running per session: (owner, token), for `Cancel`.
type RunningCommands = HashMap<String, (String, Arc<CancelToken>)>;

pub struct XmlaService {
    running: Mutex<RunningCommands>,
    pub runtime: RwLock<Arc<Runtime>>,
    pub sessions: Sessions,
    pub server: ServerProps,
    pub executor: Box<dyn Executor>,
}

/// The language for a `LocaleIdentifier`: 1030 (and other Danish LCIDs) Danish, English
/// LCIDs (1033, 2057, …) English; anything else (e.g. 127 from Mono clients, 3072) the default.
pub fn lang_for_lcid(lcid: Option<u32>) -> Lang {
    match lcid {
        Some(l) if l & 0x3ff == 0x09 => Lang::En,
        _ => Lang::Da,
    }
}

fn xml_response(body: String) -> HttpResponse {
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        "text/xml; charset=utf-8".parse().expect("static header"),
    );
    h.insert(CAPS_HEADER.0, CAPS_HEADER.1.parse().expect("static header"));
    r
}

impl XmlaService {
    pub fn new(runtime: Runtime, server: ServerProps, executor: Box<dyn Executor>) -> Self {
        XmlaService {
            running: Mutex::new(HashMap::new()),
            runtime: RwLock::new(Arc::new(runtime)),
            sessions: Sessions::new(),
            server,
            executor,
        }
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn running_map(&self) -> std::sync::MutexGuard<'_, RunningCommands> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cancel the running command of `session` (owned by `owner`). Nothing running is fine.
    fn cancel(&self, session: Option<&str>, owner: &str) -> Result<(), Fault> {
        let Some(id) = session else {
            return Err(Fault::new(
                codes::SESSION,
                "Cancel needs a session: send it in a session or name its SessionID",
            ));
        };
        match self.running_map().get(id) {
            Some((o, _)) if o != owner => Err(Fault::new(
                codes::SESSION,
                format!("session {id} belongs to another user"),
            )),
            Some((_, token)) => {
                tracing::info!(session = id, "command cancelled by the client");
                token.cancel();
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Handle one XMLA request body for `principal` (the verified identity); returns the SOAP text.
    pub fn handle_soap(&self, body: &[u8], principal: &Principal) -> String {
        let owner = principal.subject.as_str();
        let req = match soap::parse_request(body) {
            Ok(r) => r,
            Err(e) => return response::fault(codes::MALFORMED_REQUEST, &e.to_string(), None),
        };
        // Session first: every in-session response echoes the id.
        let mut session = match &req.session {
            SessionHeader::None => None,
            SessionHeader::Begin => Some(self.sessions.begin(owner)),
            SessionHeader::Use(id) | SessionHeader::End(id) => match self.sessions.use_session(id, owner) {
                Ok(s) => Some(s),
                Err(SessionError::NotOwner) => {
                    return response::fault(codes::SESSION, &format!("session {id} belongs to another user"), None);
                }
            },
        };
        let props = match &req.method {
            soap::Method::Discover(d) => &d.properties,
            soap::Method::Execute(e) => &e.properties,
        };
        if let Some(s) = session.as_mut() {
            s.absorb(&props.0);
            self.sessions.save(s);
        }
        let session_id = session.as_ref().map(|s| s.id.clone());
        let lcid = props
            .get("LocaleIdentifier")
            .and_then(|v| v.trim().parse().ok())
            .or(session.as_ref().and_then(|s| s.locale));
        let lang = lang_for_lcid(lcid);
        let runtime = self.runtime();
        let requested_catalog = props.get("Catalog").filter(|c| !c.is_empty()).map(str::to_string);
        let current_catalog = requested_catalog
            .clone()
            .or_else(|| session.as_ref().and_then(|s| s.catalog.clone()));
        if let Some(c) = &current_catalog
            && !c.eq_ignore_ascii_case(&runtime.catalog.name)
        {
            return response::fault(
                codes::UNKNOWN_CATALOG,
                &format!(
                    "unknown catalog '{c}'; this server has the catalog '{}'",
                    runtime.catalog.name
                ),
                session_id.as_deref(),
            );
        }
        let ctx = Context {
            catalog: &runtime.catalog,
            members: &runtime.members,
            lang,
            current_catalog: current_catalog.as_deref(),
            server: &self.server,
            schema_updated: &runtime.schema_updated,
            data_updated: &runtime.data_updated,
        };
        let result = match &req.method {
            soap::Method::Discover(d) => discover::discover(d, &ctx).map(|root| (Kind::Discover, root)),
            soap::Method::Execute(e) => {
                if let Some(c) = &e.cancel {
                    let target = c.session_id.clone().or_else(|| session_id.clone());
                    self.cancel(target.as_deref(), owner)
                        .map(|()| (Kind::Execute, response::empty_root()))
                } else if e.statement.trim().is_empty() {
                    Ok((Kind::Execute, response::empty_root()))
                } else if crate::dmv::is_dmv(&e.statement) {
                    // DMV (`SELECT … FROM $SYSTEM.<rowset>`, Power Query): a schema rowset.
                    crate::dmv::execute(&e.statement, &e.parameters, &ctx).map(|root| (Kind::Execute, root))
                } else {
                    let state = session.clone().unwrap_or_default();
                    let token = Arc::new(CancelToken::new());
                    let key = session_id.clone().unwrap_or_default();
                    if !key.is_empty() {
                        self.running_map()
                            .insert(key.clone(), (owner.to_string(), token.clone()));
                    }
                    let result = self
                        .executor
                        .execute(&ExecuteRequest {
                            runtime: &runtime,
                            principal,
                            session: &state,
                            statement: &e.statement,
                            props: &e.properties,
                            lang,
                            cancel: &token,
                        })
                        .map(|root| (Kind::Execute, root));
                    if !key.is_empty() {
                        self.running_map().remove(&key);
                    }
                    result
                }
            }
        };
        if let SessionHeader::End(id) = &req.session {
            let _ = self.sessions.end(id, owner);
        }
        match result {
            Ok((kind, root)) => response::envelope(kind, session_id.as_deref(), &root),
            Err(f) => {
                tracing::info!(code = f.code, "XMLA fault: {}", f.message);
                response::fault(f.code, &f.message, session_id.as_deref())
            }
        }
    }
}

/// The HTTP side: routes `POST /xmla` and `POST /` to XMLA, after authentication.
pub struct XmlaHandler {
    pub service: Arc<XmlaService>,
    pub auth: Arc<dyn Authenticator>,
}

/// 401 with a Basic challenge: MSOLAP (Excel, Power BI, TARGIT) sends credentials only then.
fn challenge(realm: &str) -> HttpResponse {
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
        b"authentication required: log in with your user name and password or a personal access token\n",
    )));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static header"),
    );
    if let Ok(v) = format!("Basic realm=\"{realm}\", charset=\"UTF-8\"").parse() {
        h.insert(hyper::header::WWW_AUTHENTICATE, v);
    }
    h.insert(CAPS_HEADER.0, CAPS_HEADER.1.parse().expect("static header"));
    r
}

impl datakube_http::Handler for XmlaHandler {
    fn handle(&self, req: HttpRequest) -> BoxFuture<HttpResponse> {
        let svc = self.service.clone();
        let auth = self.auth.clone();
        Box::pin(async move {
            match (&req.method, req.path.as_str()) {
                (&Method::POST, "/xmla" | "/" | "/xmla/") => {
                    let authorization = req
                        .headers
                        .get(hyper::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    let principal = match auth.authenticate(authorization) {
                        AuthOutcome::Authenticated(p) => p,
                        AuthOutcome::Challenge(why) => {
                            tracing::info!(peer = %req.peer, "XMLA request challenged: {why}");
                            return challenge(auth.realm());
                        }
                    };
                    let body = req.body.clone();
                    let text = tokio::task::spawn_blocking(move || svc.handle_soap(&body, &principal))
                        .await
                        .unwrap_or_else(|e| response::fault(codes::INTERNAL, &format!("internal error: {e}"), None));
                    xml_response(text)
                }
                (&Method::GET, "/") => {
                    let rt = svc.runtime();
                    let mut r = datakube_http::text(
                        StatusCode::OK,
                        format!(
                            "datakube — XMLA server for catalog {} ({} cubes).\nConnect Excel (Data > Get Data > From Analysis Services) to {}\n",
                            rt.catalog.name,
                            rt.catalog.cubes.len(),
                            svc.server.data_source_url
                        ),
                    );
                    r.headers_mut()
                        .insert(CAPS_HEADER.0, CAPS_HEADER.1.parse().expect("static header"));
                    r
                }
                _ => {
                    let mut r = datakube_http::text(StatusCode::NOT_FOUND, format!("no such path: {}\n", req.path));
                    r.headers_mut()
                        .insert(CAPS_HEADER.0, CAPS_HEADER.1.parse().expect("static header"));
                    r
                }
            }
        })
    }
}
