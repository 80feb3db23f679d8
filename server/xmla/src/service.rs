//! The XMLA endpoint: HTTP request in, SOAP response out.
//!
//! `POST /xmla` (and `POST /`, so a bare server URL works) carry XMLA. Every response is text
//! XML with HTTP 200 — faults included — and `X-Transport-Caps-Negotiation-Flags` with binary
//! XML and compression off.
//!
//! Streaming: an MDX, Tabular or DRILLTHROUGH answer is decided (result or fault) before a
//! byte is sent; it is then written on the blocking thread in chunks of about
//! [`CHUNK_BYTES`](crate::sink::CHUNK_BYTES) into a channel of [`CHANNEL_CHUNKS`] chunks
//! that the HTTP side drains at the client's pace, so the serialized XML never is in memory
//! as a whole. An answer that fits in one chunk is sent whole, with `Content-Length`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use datakube_engine::CancelToken;

use datakube_auth::audit::{AuditEvent, AuditLog};
use datakube_auth::impersonate::{Impersonation, ImpersonationRequest};
use datakube_auth::{AuthOutcome, Authenticator, Principal};
use datakube_http::{BoxFuture, HttpRequest, HttpResponse};
use datakube_members::MemberStore;
use datakube_model::{Catalog, Lang};
use hyper::{Method, StatusCode};

use crate::cellset::CellSet;
use crate::discover::{self, Context, Fault, ServerProps};
use crate::response::{self, Kind, codes};
use crate::rowset::Rowset;
use crate::session::{SessionError, SessionState, Sessions};
use crate::sink::{CHUNK_BYTES, ClientGone, Finished, XmlSink};
use crate::soap::{self, SessionHeader};

/// Header every response carries: NEGO, REQ_SX, REQ_XPRESS, RESP_SX, RESP_XPRESS all off.
pub const CAPS_HEADER: (&str, &str) = ("X-Transport-Caps-Negotiation-Flags", "0,0,0,0,0");

/// Chunks a streamed answer may have in flight between the writer and the client; with
/// [`CHUNK_BYTES`] per chunk this bounds the serialized XML held per response (about 256 KiB
/// plus the chunk being written).
pub const CHANNEL_CHUNKS: usize = 4;

/// The model the server answers from. Replaced as a whole (never mutated) on reload: a
/// request holds its `Arc<Runtime>` to the end, so it reads one set of definitions and one
/// snapshot per dataset even while a newer runtime is swapped in.
pub struct Runtime {
    pub catalog: Catalog,
    pub members: MemberStore,
    /// The dataset snapshots the members were loaded from; every SQL of this runtime reads
    /// them (never `CURRENT`), and they are kept on disk while this runtime lives.
    pub snapshots: datakube_engine::storage::Snapshots,
    /// xsd:dateTime of when the definitions were loaded and of the data snapshot.
    pub schema_updated: String,
    pub data_updated: String,
    /// Which data this runtime answers from: the dataset snapshot ids at load time (see
    /// [`data_version`]). Result caches key on it, so answers never cross snapshots.
    pub data_version: String,
}

/// The identity of the data a runtime answers from: `dataset=snapshot-id` of every pinned
/// snapshot, sorted, `;`-separated (empty when there are no datasets, e.g. FoodMart files).
pub fn data_version(snapshots: &datakube_engine::storage::Snapshots) -> String {
    snapshots
        .ids()
        .iter()
        .map(|(d, id)| format!("{d}={id}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Counters of an executor's result cache, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    /// Approximate memory held by the cached answers.
    pub bytes: u64,
}

/// One statement to execute, with everything the executor may use.
pub struct ExecuteRequest<'a> {
    pub runtime: &'a Runtime,
    /// The verified identity: the only source of the row scope.
    pub principal: &'a Principal,
    /// The session's state; an executor may change it (`CREATE SESSION MEMBER`), and the
    /// change is kept when the session exists.
    pub session: &'a std::cell::RefCell<SessionState>,
    pub statement: &'a str,
    pub props: &'a soap::Properties,
    pub lang: Lang,
    /// Cancelled when the client sends `Cancel` for this session.
    pub cancel: &'a CancelToken,
}

/// What a statement answers with. Large results are handed over unwritten: the service
/// writes them while the response is sent (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub enum ExecuteResult {
    /// A `<root>` element already written (empty results, commands).
    Root(String),
    /// An MDX result, written as an MDDataSet; `with_schema` adds the inline `xsd:schema`.
    CellSet { cells: CellSet, with_schema: bool },
    /// A rowset (`Format=Tabular`, DRILLTHROUGH), written with its schema.
    Rowset(Rowset),
}

impl From<String> for ExecuteResult {
    fn from(root: String) -> Self {
        ExecuteResult::Root(root)
    }
}

impl From<Rowset> for ExecuteResult {
    fn from(r: Rowset) -> Self {
        ExecuteResult::Rowset(r)
    }
}

impl ExecuteResult {
    /// Write the `<root>` element into `out`.
    pub fn write_to(&self, out: &mut XmlSink<'_>) -> Result<(), ClientGone> {
        match self {
            ExecuteResult::Root(r) => {
                out.buf.push_str(r);
                Ok(())
            }
            ExecuteResult::CellSet { cells, with_schema } => {
                crate::mddataset::write_mddataset_to(cells, *with_schema, out)
            }
            ExecuteResult::Rowset(r) => r.write_to(out),
        }
    }

    /// The `<root>` element as one string.
    pub fn into_xml(self) -> String {
        match self {
            ExecuteResult::Root(r) => r,
            ExecuteResult::CellSet { cells, with_schema } => crate::mddataset::write_mddataset(&cells, with_schema),
            ExecuteResult::Rowset(r) => r.to_xml(),
        }
    }
}

/// Executes MDX statements (provided by the query engine).
pub trait Executor: Send + Sync {
    /// Answer the statement with a result to write, or a fault. Everything that can fail
    /// must fail here: once writing starts, the response is on its way.
    fn execute(&self, req: &ExecuteRequest) -> Result<ExecuteResult, Fault>;

    /// A new [`Runtime`] replaced the old one: drop whatever was cached for the old one.
    fn on_runtime_replaced(&self) {}

    /// Hit/miss counters of the executor's result cache, if it has one.
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }
}

/// The answer to one XMLA request, before it is sent.
#[derive(Debug)]
pub enum Reply {
    /// A complete SOAP text: Discover answers, faults, empty and small results.
    Text(String),
    /// An Execute answer still to be written (into its envelope, echoing `session`).
    Execute {
        session: Option<String>,
        result: Box<ExecuteResult>,
    },
}

impl Reply {
    /// Write the whole SOAP envelope into `out`.
    pub fn write_to(&self, out: &mut XmlSink<'_>) -> Result<(), ClientGone> {
        match self {
            Reply::Text(t) => {
                out.buf.push_str(t);
                Ok(())
            }
            Reply::Execute { session, result } => {
                response::envelope_head(&mut out.buf, Kind::Execute, session.as_deref());
                result.write_to(out)?;
                response::envelope_tail(&mut out.buf, Kind::Execute);
                Ok(())
            }
        }
    }

    /// The whole SOAP text as one string.
    pub fn into_string(self) -> String {
        match self {
            Reply::Text(t) => t,
            Reply::Execute { session, result } => {
                response::envelope(Kind::Execute, session.as_deref(), &result.into_xml())
            }
        }
    }
}

/// Told about every XMLA request (for metrics); the service itself keeps no statistics.
pub trait XmlaObserver: Send + Sync {
    /// One request answered (before a streamed answer is written): `request` is the Discover
    /// rowset name (`MDSCHEMA_CUBES`, …) or `Execute`; `cube` the cube it named (may be
    /// empty); `fault` whether it was answered with a fault.
    fn request(&self, request: &str, cube: &str, seconds: f64, fault: bool);
    /// A request with credentials that were refused.
    fn auth_failure(&self);
}

/// What [`XmlaService::answer`] learned about a request, for the observer.
#[derive(Default)]
struct RequestLabels {
    request: String,
    cube: String,
    fault: bool,
}

/// Commands running per session: (owner, token), for `Cancel`.
type RunningCommands = HashMap<String, (String, Arc<CancelToken>)>;

pub struct XmlaService {
    running: Mutex<RunningCommands>,
    pub runtime: RwLock<Arc<Runtime>>,
    pub sessions: Sessions,
    pub server: ServerProps,
    pub executor: Box<dyn Executor>,
    /// Where queries on non-public cubes are recorded (written before the answer is sent).
    pub audit: Option<Arc<datakube_auth::audit::AuditLog>>,
    /// Honours `EffectiveUserName`, `CustomData` and `Roles` for principals allowed to
    /// impersonate. Without it those properties are refused from everyone.
    pub impersonation: Option<Arc<Impersonation>>,
    /// Told about every request and refused credential (metrics).
    pub observer: Option<Arc<dyn XmlaObserver>>,
}

/// The language for a `LocaleIdentifier`: 1030 (and other Danish LCIDs) Danish, English
/// LCIDs (1033, 2057, …) English; anything else (e.g. 127 from Mono clients, 3072) the default.
pub fn lang_for_lcid(lcid: Option<u32>) -> Lang {
    match lcid {
        Some(l) if l & 0x3ff == 0x09 => Lang::En,
        _ => Lang::Da,
    }
}

fn xml_response(body: datakube_http::Body) -> HttpResponse {
    let mut r = hyper::Response::new(body);
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
            audit: None,
            impersonation: None,
            observer: None,
        }
    }

    /// Swap in a new runtime; requests already running keep the one they started with.
    pub fn replace_runtime(&self, runtime: Arc<Runtime>) -> Arc<Runtime> {
        let mut slot = self.runtime.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *slot, runtime)
    }

    /// The principal a request runs as, after `EffectiveUserName`, `CustomData` and `Roles`
    /// (from the request, else the session): see `datakube_auth::impersonate`.
    fn effective_principal(
        &self,
        principal: &Principal,
        props: &soap::Properties,
        session: Option<&SessionState>,
    ) -> Result<Principal, Fault> {
        let get = |name: &str| {
            props.get(name).map(str::to_string).or_else(|| {
                session.and_then(|s| {
                    s.properties
                        .iter()
                        .rev()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                })
            })
        };
        let req = ImpersonationRequest {
            effective_user_name: get("EffectiveUserName"),
            roles: get("Roles"),
            custom_data: get("CustomData"),
            client_app: get("SspropInitAppName").unwrap_or_default(),
        };
        if req.is_empty() {
            return Ok(principal.clone());
        }
        match &self.impersonation {
            Some(imp) => imp.apply(principal, &req),
            None => Err("EffectiveUserName, CustomData and Roles are not accepted by this server".to_string()),
        }
        .map_err(|why| Fault::new(codes::IMPERSONATION_DENIED, why))
    }

    /// Record every query on a non-public cube in `log`.
    pub fn with_audit(mut self, log: Arc<datakube_auth::audit::AuditLog>) -> Self {
        self.audit = Some(log);
        self
    }

    /// Write the audit line of one Execute; `Err` when it cannot be written (the answer is
    /// then withheld: an unaudited answer on personal data is not sent).
    #[allow(clippy::too_many_arguments)]
    fn audit_execute(
        &self,
        runtime: &Runtime,
        principal: &Principal,
        statement: &str,
        props: &crate::soap::Properties,
        started: std::time::Instant,
        result: &Result<(Kind, ExecuteResult), Fault>,
    ) -> Result<(), Fault> {
        let Some(log) = &self.audit else { return Ok(()) };
        let cube = match result {
            Ok((_, ExecuteResult::CellSet { cells, .. })) => cells.cube_name.clone(),
            _ => statement_cube(statement)
                .or_else(|| props.get("Cube").map(str::to_string))
                .unwrap_or_default(),
        };
        if runtime.catalog.cube(&cube).is_some_and(|c| c.is_public()) {
            return Ok(());
        }
        let upper: String = statement
            .trim_start()
            .chars()
            .take(16)
            .collect::<String>()
            .to_ascii_uppercase();
        let (cells, rows) = match result {
            Ok((_, ExecuteResult::CellSet { cells, .. })) => (Some(cells.cells.len() as u64), None),
            Ok((_, ExecuteResult::Rowset(r))) => (None, Some(r.rows.len() as u64)),
            _ => (None, None),
        };
        let (outcome, detail) = match result {
            Ok(_) => ("ok", String::new()),
            Err(f) if f.code == codes::CANCELLED => ("cancelled", f.message.clone()),
            Err(f) => ("fault", f.message.clone()),
        };
        let event = datakube_auth::audit::AuditEvent {
            time: datakube_auth::audit::now_rfc3339(),
            kind: if upper.starts_with("DRILLTHROUGH") {
                "drillthrough"
            } else {
                "query"
            }
            .into(),
            user: principal.subject.clone(),
            organisation: principal.organisations.clone(),
            scope: match &principal.scope {
                datakube_auth::RowScope::All => "all".into(),
                datakube_auth::RowScope::Municipalities(k) => {
                    k.iter().map(|k| k.0.to_string()).collect::<Vec<_>>().join(",")
                }
            },
            method: format!("{:?}", principal.method).to_lowercase(),
            client_app: props.get("SspropInitAppName").unwrap_or_default().to_string(),
            cube,
            statement: statement.chars().take(64 * 1024).collect(),
            cells,
            rows,
            duration_ms: Some((started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0),
            outcome: outcome.into(),
            detail,
            acting_for: principal.acting_for.clone().unwrap_or_default(),
            ..Default::default()
        };
        log.record(&event, &[]).map_err(|e| {
            tracing::error!("the audit log cannot be written: {e}");
            Fault::new(
                codes::QUERY_FAILED,
                "the audit log cannot be written; the answer is withheld (ask the administrator)",
            )
        })
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Call after storing a new [`Runtime`] in `runtime`: cached answers of the old one vanish.
    pub fn on_runtime_replaced(&self) {
        self.executor.on_runtime_replaced();
    }

    /// The executor's result-cache counters (for /metrics).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.executor.cache_stats()
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
        self.answer(body, principal).into_string()
    }

    /// Handle one XMLA request body for `principal` (the verified identity): everything up to
    /// writing the answer, which the caller does (streamed or whole).
    pub fn answer(&self, body: &[u8], principal: &Principal) -> Reply {
        let started = std::time::Instant::now();
        let mut labels = RequestLabels::default();
        let reply = self.answer_labelled(body, principal, &mut labels);
        if let Some(o) = &self.observer {
            if let Reply::Text(t) = &reply {
                labels.fault = t.contains("<soap:Fault>");
            }
            o.request(
                &labels.request,
                &labels.cube,
                started.elapsed().as_secs_f64(),
                labels.fault,
            );
        }
        reply
    }

    fn answer_labelled(&self, body: &[u8], principal: &Principal, labels: &mut RequestLabels) -> Reply {
        let owner = principal.subject.as_str();
        let req = match soap::parse_request(body) {
            Ok(r) => r,
            Err(e) => {
                labels.request = "malformed".into();
                return Reply::Text(response::fault(codes::MALFORMED_REQUEST, &e.to_string(), None));
            }
        };
        match &req.method {
            soap::Method::Discover(d) => {
                labels.request = d.request_type.to_ascii_uppercase();
                labels.cube = d
                    .restriction("CUBE_NAME")
                    .first()
                    .cloned()
                    .or_else(|| d.properties.get("Cube").map(str::to_string))
                    .unwrap_or_default();
            }
            soap::Method::Execute(e) => {
                labels.request = "Execute".into();
                labels.cube = statement_cube(&e.statement)
                    .or_else(|| e.properties.get("Cube").map(str::to_string))
                    .unwrap_or_default();
            }
        }
        // Session first: every in-session response echoes the id.
        let mut session = match &req.session {
            SessionHeader::None => None,
            SessionHeader::Begin => Some(self.sessions.begin(owner)),
            SessionHeader::Use(id) | SessionHeader::End(id) => match self.sessions.use_session(id, owner) {
                Ok(s) => Some(s),
                Err(SessionError::NotOwner) => {
                    return Reply::Text(response::fault(
                        codes::SESSION,
                        &format!("session {id} belongs to another user"),
                        None,
                    ));
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
        // Sessions belong to the authenticated principal; statements run as the effective one.
        let effective = match self.effective_principal(principal, props, session.as_ref()) {
            Ok(p) => p,
            Err(f) => {
                tracing::info!(code = f.code, "XMLA fault: {}", f.message);
                return Reply::Text(response::fault(f.code, &f.message, session_id.as_deref()));
            }
        };
        let principal = &effective;
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
            return Reply::Text(response::fault(
                codes::UNKNOWN_CATALOG,
                &format!(
                    "unknown catalog '{c}'; this server has the catalog '{}'",
                    runtime.catalog.name
                ),
                session_id.as_deref(),
            ));
        }
        let access =
            datakube_members::access::Access::from_principal(principal, &runtime.catalog.security.disclosure_marker);
        let ctx = Context {
            catalog: &runtime.catalog,
            members: &runtime.members,
            lang,
            current_catalog: current_catalog.as_deref(),
            server: &self.server,
            schema_updated: &runtime.schema_updated,
            data_updated: &runtime.data_updated,
            access: &access,
        };
        let result = match &req.method {
            soap::Method::Discover(d) => discover::discover(d, &ctx).map(|root| (Kind::Discover, root.into())),
            soap::Method::Execute(e) => {
                if let Some(c) = &e.cancel {
                    let target = c.session_id.clone().or_else(|| session_id.clone());
                    self.cancel(target.as_deref(), owner)
                        .map(|()| (Kind::Execute, response::empty_root().into()))
                } else if e.statement.trim().is_empty() {
                    Ok((Kind::Execute, response::empty_root().into()))
                } else if crate::dmv::is_dmv(&e.statement) {
                    // DMV (`SELECT … FROM $SYSTEM.<rowset>`, Power Query): a schema rowset.
                    crate::dmv::execute(&e.statement, &e.parameters, &ctx).map(|root| (Kind::Execute, root.into()))
                } else {
                    let state = std::cell::RefCell::new(session.clone().unwrap_or_default());
                    let token = Arc::new(CancelToken::new());
                    let key = session_id.clone().unwrap_or_default();
                    if !key.is_empty() {
                        self.running_map()
                            .insert(key.clone(), (owner.to_string(), token.clone()));
                    }
                    let started = std::time::Instant::now();
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
                    let state = state.into_inner();
                    if session.as_ref().is_some_and(|s| s.definitions != state.definitions) {
                        self.sessions.save(&state);
                    }
                    match self.audit_execute(&runtime, principal, &e.statement, &e.properties, started, &result) {
                        Ok(()) => result,
                        Err(f) => Err(f),
                    }
                }
            }
        };
        if let SessionHeader::End(id) = &req.session {
            let _ = self.sessions.end(id, owner);
        }
        match result {
            Ok((kind, ExecuteResult::Root(root))) => {
                Reply::Text(response::envelope(kind, session_id.as_deref(), &root))
            }
            Ok((_, result)) => Reply::Execute {
                session: session_id,
                result: Box::new(result),
            },
            Err(f) => {
                tracing::info!(code = f.code, "XMLA fault: {}", f.message);
                Reply::Text(response::fault(f.code, &f.message, session_id.as_deref()))
            }
        }
    }
}

/// Answer one XMLA request on a blocking thread: a whole body when the answer is a complete
/// text or fits in one chunk, otherwise a body streamed from this thread as it is written.
async fn respond(svc: Arc<XmlaService>, body: bytes::Bytes, principal: Principal) -> HttpResponse {
    let (head_tx, head_rx) = tokio::sync::oneshot::channel::<datakube_http::Body>();
    let task = tokio::task::spawn_blocking(move || {
        let reply = svc.answer(&body, &principal);
        send_reply(reply, head_tx);
        // The result (possibly a large cell set) is dropped here, on the blocking thread.
    });
    match head_rx.await {
        Ok(body) => xml_response(body),
        // The thread ended without a body: it panicked before the first byte.
        Err(_) => {
            let why = match task.await {
                Err(e) => e.to_string(),
                Ok(()) => "no answer was produced".to_string(),
            };
            tracing::error!("XMLA request failed: {why}");
            xml_response(datakube_http::full(response::fault(
                codes::INTERNAL,
                &format!("internal error: {why}"),
                None,
            )))
        }
    }
}

/// Write `reply` (on a blocking thread) and hand the HTTP side its body through `head`: the
/// whole text if it is ready or stays under one chunk, otherwise a channel body that gets
/// its first chunk right away and the rest as the client reads (the writer waits while the
/// channel is full and stops at its next checkpoint once the client is gone).
fn send_reply(reply: Reply, head: tokio::sync::oneshot::Sender<datakube_http::Body>) {
    if let Reply::Text(t) = reply {
        let _ = head.send(datakube_http::full(t));
        return;
    }
    let started = std::time::Instant::now();
    let (tx, body) = datakube_http::body_channel(CHANNEL_CHUNKS);
    let mut pending_head = Some((head, body));
    let mut emit = |chunk: String| -> Result<(), ClientGone> {
        if let Some((head, body)) = pending_head.take() {
            head.send(body).map_err(|_| ClientGone)?;
        }
        tx.send_blocking(bytes::Bytes::from(chunk))
    };
    let mut out = XmlSink::chunked(CHUNK_BYTES, &mut emit);
    let written = reply.write_to(&mut out);
    let sent = out.emitted();
    match written.and_then(|()| out.finish()) {
        Ok(Finished::Whole(text)) => {
            if let Some((head, _)) = pending_head.take() {
                let _ = head.send(datakube_http::full(text));
            }
        }
        Ok(Finished::Streamed) => {
            tx.finish();
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "XMLA answer streamed");
        }
        Err(ClientGone) => {
            tracing::info!(
                sent_bytes = sent,
                "XMLA answer stopped while streaming: the client is gone"
            );
        }
    }
}

/// The HTTP side: routes `POST /xmla` and `POST /` to XMLA, after authentication.
pub struct XmlaHandler {
    pub service: Arc<XmlaService>,
    pub auth: Arc<dyn Authenticator>,
    /// Where refused credentials are recorded (`kind: "auth_failure"`); requests without
    /// credentials (the first request of every MSOLAP connection) are not.
    pub audit: Option<Arc<AuditLog>>,
}

/// Audit a refused credential: the reason, never the credential (its parts are passed as
/// secrets, so a line that would contain one is not written).
fn audit_refusal(audit: &AuditLog, authorization: &str, why: &str, req: &HttpRequest) {
    let mut secrets: Vec<String> = vec![authorization.to_string()];
    if let Some((_, rest)) = authorization.trim().split_once(' ') {
        secrets.push(rest.trim().to_string());
    }
    if let Some((_, password)) = datakube_auth::parse_basic(authorization) {
        secrets.push(password);
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let event = AuditEvent {
        time: datakube_auth::audit::now_rfc3339(),
        kind: "auth_failure".into(),
        client_app: req
            .headers
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
        peer: req.peer.to_string(),
        method: if datakube_auth::parse_bearer(authorization).is_some() {
            "bearer".into()
        } else {
            "basic".into()
        },
        outcome: "denied".into(),
        detail: why.to_string(),
        ..AuditEvent::default()
    };
    if let Err(e) = audit.record(&event, &secrets) {
        tracing::error!("audit log: {e}");
    }
}

/// 401 with a Basic challenge: MSOLAP (Excel, Power BI, TARGIT) sends credentials only then.
fn challenge(realm: &str) -> HttpResponse {
    let mut r = hyper::Response::new(datakube_http::full(bytes::Bytes::from_static(
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
        let audit = self.audit.clone();
        Box::pin(async move {
            match (&req.method, req.path.as_str()) {
                (&Method::POST, "/xmla" | "/" | "/xmla/") => {
                    let authorization = req
                        .headers
                        .get(hyper::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    let principal = match auth.authenticate(authorization).await {
                        AuthOutcome::Authenticated(p) => p,
                        AuthOutcome::Challenge(why) => {
                            tracing::info!(peer = %req.peer, "XMLA request challenged: {why}");
                            if let (Some(a), Some(h)) = (&audit, authorization) {
                                audit_refusal(a, h, &why, &req);
                            }
                            if authorization.is_some()
                                && let Some(o) = &svc.observer
                            {
                                o.auth_failure();
                            }
                            return challenge(auth.realm());
                        }
                    };
                    respond(svc, req.body.clone(), principal).await
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

/// The cube an MDX statement reads: the name after its last `FROM [` (the innermost
/// subselect names the cube), for the audit log of statements that failed.
fn statement_cube(statement: &str) -> Option<String> {
    let upper = statement.to_ascii_uppercase();
    let at = upper.rfind("FROM")?;
    let rest = statement[at + 4..].trim_start();
    let rest = rest.strip_prefix('[')?;
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ']' {
            if chars.peek() == Some(&']') {
                chars.next();
                name.push(']');
                continue;
            }
            return Some(name);
        }
        name.push(c);
    }
    None
}
