//! Hot reload: the server swaps in a new [`Runtime`] when the cube definitions change (file
//! poll or the admin action) or a dataset's `CURRENT` names a new snapshot (`datakube
//! refresh`). A new runtime is built whole — snapshots pinned, definitions validated against
//! them, members loaded — and only then replaces the old one in one step; requests already
//! running finish on the runtime they started with. A failed build leaves the running
//! runtime untouched and is reported (log, `/admin/status`, the portal, `/metrics`).
//!
//! Also here: [`Reloader`] as the portal's [`Admin`], the refresh log that `datakube refresh`
//! writes, and the operations endpoints (`/metrics`, `/ready`, `/admin/status`,
//! `/admin/reload`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use datakube_auth::{AuthOutcome, Authenticator};
use datakube_engine::Engine;
use datakube_engine::storage::{self, Snapshots};
use datakube_http::{BoxFuture, HttpRequest, HttpResponse};
use datakube_portal::admin::{Admin, DefinitionsStatus, RefreshRecord};
use datakube_xmla::service::{Runtime, XmlaService};
use hyper::{Method, StatusCode};

use crate::metrics::{Gauges, Metrics};

/// The refresh log `datakube refresh` appends to, in the data directory (JSON lines).
pub const REFRESH_LOG: &str = "refresh-log.jsonl";
/// Refreshes listed by [`Admin::refreshes`].
pub const MAX_REFRESHES_LISTED: usize = 50;

/// Build a runtime from the definitions in `definitions` over the current snapshot of every
/// dataset. Errors are `file:line:column: error: …` lines (or one line for data problems).
pub fn build_runtime(engine: &Engine, data_dir: &Path, definitions: &Path) -> Result<Runtime, Vec<String>> {
    let snapshots = Snapshots::current(data_dir).map_err(|e| vec![e.to_string()])?;
    let provider = crate::schemas::ParquetSchemas::new(engine.clone(), snapshots.clone());
    let catalog = datakube_model::load_catalog(definitions, Some(&provider))
        .map_err(|diags| diags.iter().map(|d| d.to_string()).collect::<Vec<_>>())?;
    let members = datakube_members::MemberStore::load(engine, &snapshots, &catalog)
        .map_err(|e| vec![format!("loading members: {e}")])?;
    let now = xsd_now();
    Ok(Runtime {
        catalog,
        members,
        data_version: datakube_xmla::service::data_version(&snapshots),
        snapshots,
        schema_updated: now.clone(),
        data_updated: now,
    })
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC), as XMLA's LAST_SCHEMA_UPDATE.
fn xsd_now() -> String {
    datakube_auth::audit::now_rfc3339().trim_end_matches('Z').to_string()
}

/// What identifies the definitions on disk: every file's path, size and modification time.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
    }
    if dir.is_file()
        && let Ok(m) = dir.metadata()
    {
        out.push((
            dir.to_path_buf(),
            m.len(),
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        ));
    }
    out.sort();
    out
}

/// dataset → the snapshot id its `CURRENT` names now.
fn current_ids(data_dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(data_dir.join("datasets")) {
        for e in entries.flatten() {
            if let Ok(id) = std::fs::read_to_string(e.path().join("CURRENT")) {
                out.insert(e.file_name().to_string_lossy().to_string(), id.trim().to_string());
            }
        }
    }
    out
}

struct State {
    definitions: DefinitionsStatus,
    /// The definitions and data last tried (a broken set is not retried until it changes).
    tried_definitions: Vec<(PathBuf, u64, SystemTime)>,
    tried_data: BTreeMap<String, String>,
    /// The problem of the last attempt when it was about data (snapshot → reason).
    data_failures: BTreeMap<String, String>,
}

pub struct Reloader {
    pub service: Arc<XmlaService>,
    engine: Engine,
    data_dir: PathBuf,
    definitions: PathBuf,
    keep_snapshots: usize,
    /// `--refresh-inbox`: folders dropped here are imported as snapshots.
    inbox: Option<(PathBuf, datakube_engine::EngineConfig)>,
    pub metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// One reload at a time.
    busy: Mutex<()>,
}

impl Reloader {
    pub fn new(
        service: Arc<XmlaService>,
        engine: Engine,
        data_dir: PathBuf,
        definitions: PathBuf,
        keep_snapshots: usize,
        inbox: Option<(PathBuf, datakube_engine::EngineConfig)>,
        metrics: Arc<Metrics>,
    ) -> Arc<Reloader> {
        let rt = service.runtime();
        metrics.set_cubes(&rt.catalog.cubes.iter().map(|c| c.name.clone()).collect::<Vec<_>>());
        let now = datakube_auth::audit::now_rfc3339();
        let state = State {
            definitions: DefinitionsStatus {
                loaded_at: now.clone(),
                cubes: rt.catalog.cubes.iter().map(|c| c.name.clone()).collect(),
                last_attempt_at: now,
                errors: Vec::new(),
            },
            tried_definitions: fingerprint(&definitions),
            tried_data: rt.snapshots.ids(),
            data_failures: BTreeMap::new(),
        };
        Arc::new(Reloader {
            service,
            engine,
            data_dir,
            definitions,
            keep_snapshots,
            inbox,
            metrics,
            state: Mutex::new(state),
            busy: Mutex::new(()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Build a runtime from disk and swap it in; on failure keep the running one.
    /// `trigger` is `definitions`, `data` or `admin` (for logs and metrics).
    pub fn reload(&self, trigger: &str) -> DefinitionsStatus {
        let _busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let tried_definitions = fingerprint(&self.definitions);
        let tried_data = current_ids(&self.data_dir);
        let started = std::time::Instant::now();
        let result = build_runtime(&self.engine, &self.data_dir, &self.definitions);
        let now = datakube_auth::audit::now_rfc3339();
        let mut st = self.state();
        st.definitions.last_attempt_at = now.clone();
        st.tried_definitions = tried_definitions;
        st.tried_data = tried_data.clone();
        match result {
            Ok(mut rt) => {
                let old = self.service.runtime();
                if old.snapshots.ids() == rt.snapshots.ids() {
                    rt.data_updated = old.data_updated.clone();
                }
                let cubes: Vec<String> = rt.catalog.cubes.iter().map(|c| c.name.clone()).collect();
                let ids = rt.snapshots.ids();
                self.metrics.set_cubes(&cubes);
                self.service.replace_runtime(Arc::new(rt));
                // Cached answers of the old runtime go at once (they are keyed by its data
                // version, so none could be served for the new one anyway).
                self.service.on_runtime_replaced();
                drop(old);
                st.definitions.loaded_at = now;
                st.definitions.cubes = cubes;
                st.definitions.errors.clear();
                st.data_failures.clear();
                self.metrics.reload(trigger, true);
                tracing::info!(
                    trigger,
                    ms = started.elapsed().as_millis() as u64,
                    snapshots = ?ids,
                    "new runtime swapped in (definitions and snapshots)"
                );
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(trigger, "reload refused: {e}");
                }
                tracing::warn!(
                    trigger,
                    errors = errors.len(),
                    "reload failed; the running definitions and snapshots stay in use"
                );
                let running = self.service.runtime().snapshots.ids();
                st.data_failures = tried_data
                    .iter()
                    .filter(|(ds, id)| running.get(*ds) != Some(*id))
                    .map(|(_, id)| (id.clone(), errors.first().cloned().unwrap_or_default()))
                    .collect();
                st.definitions.errors = errors;
                self.metrics.reload(trigger, false);
            }
        }
        st.definitions.clone()
    }

    /// One poll: reload when the definitions or a `CURRENT` changed since the last attempt,
    /// re-read aggregate folders that changed on disk, then delete snapshots no runtime uses any more.
    pub fn poll(&self) {
        self.import_inbox();
        let (defs_changed, data_changed) = {
            let st = self.state();
            (
                fingerprint(&self.definitions) != st.tried_definitions,
                current_ids(&self.data_dir) != st.tried_data,
            )
        };
        if defs_changed || data_changed {
            self.reload(if defs_changed { "definitions" } else { "data" });
        }
        // Aggregates built, rebuilt or removed by another process (`datakube aggregates
        // build`): statements read them from memory, so the disk is compared here.
        datakube_query::aggregates::revalidate();
        for dir in storage::sweep(&self.data_dir, self.keep_snapshots) {
            tracing::info!("old snapshot deleted (no query uses it): {}", dir.display());
        }
    }

    /// Import every folder in the inbox that holds a `READY` file (written last by whoever
    /// delivers it, so a half-copied folder is never read): `datakube refresh --from` for the
    /// dataset its `manifest.json` names. The folder then moves to `.done/` or, with an
    /// `ERROR.txt`, to `.failed/`.
    fn import_inbox(&self) {
        let Some((inbox, engine)) = &self.inbox else { return };
        let Ok(entries) = std::fs::read_dir(inbox) else { return };
        let mut folders: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && p.join("READY").is_file()
                    && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        folders.sort();
        for folder in folders {
            let name = folder.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            let dataset = std::fs::read_to_string(folder.join("manifest.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("dataset").and_then(|d| d.as_str()).map(str::to_string));
            let result = match &dataset {
                None => Err(anyhow::anyhow!(
                    "{}: manifest.json must name the dataset (\"dataset\": \"...\")",
                    folder.display()
                )),
                Some(ds) => crate::refresh::refresh(&crate::refresh::RefreshRequest {
                    data_dir: &self.data_dir,
                    definitions: &self.definitions,
                    dataset: ds,
                    from: Some(&folder),
                    seed: 0,
                    scale: None,
                    engine: engine.clone(),
                }),
            };
            let target = match &result {
                Ok(id) => {
                    tracing::info!(dataset = ?dataset, snapshot = %id, "inbox folder imported: {}", folder.display());
                    inbox.join(".done")
                }
                Err(e) => {
                    tracing::error!("inbox folder {} refused: {e:#}", folder.display());
                    let _ = std::fs::write(folder.join("ERROR.txt"), format!("{e:#}\n"));
                    inbox.join(".failed")
                }
            };
            let _ = std::fs::create_dir_all(&target);
            if let Err(e) = std::fs::rename(&folder, target.join(&name)) {
                tracing::error!(
                    "cannot move inbox folder {}: {e}; remove its READY file",
                    folder.display()
                );
                let _ = std::fs::remove_file(folder.join("READY"));
            }
        }
    }

    /// Poll every `every` on a thread of its own, for the life of the process.
    pub fn spawn_poller(self: &Arc<Self>, every: Duration) {
        let me = self.clone();
        std::thread::Builder::new()
            .name("datakube-reload".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    me.poll();
                }
            })
            .expect("spawning the reload thread");
    }

    /// Whether a runtime is loaded and every snapshot it reads is on disk.
    pub fn ready(&self) -> bool {
        self.service.runtime().snapshots.all_present()
    }

    pub fn gauges(&self) -> Gauges {
        let rt = self.service.runtime();
        let mut refreshes: BTreeMap<String, (f64, BTreeMap<String, u64>)> = BTreeMap::new();
        for r in read_refresh_log(&self.data_dir) {
            let e = refreshes.entry(r.dataset.clone()).or_default();
            let outcome = r.outcome.split(':').next().unwrap_or_default().to_string();
            *e.1.entry(outcome).or_default() += 1;
            if r.outcome == "switched" {
                e.0 = e.0.max(r.finished_unix);
            }
        }
        Gauges {
            sessions: self.service.sessions.len(),
            ready: rt.snapshots.all_present(),
            definitions_valid: self.state().definitions.errors.is_empty(),
            snapshots: rt.snapshots.ids(),
            refreshes,
        }
    }

    fn status_json(&self) -> serde_json::Value {
        let d = self.definitions();
        let rt = self.service.runtime();
        serde_json::json!({
            "ready": self.ready(),
            "definitions": {
                "loaded_at": d.loaded_at,
                "cubes": d.cubes,
                "last_attempt_at": d.last_attempt_at,
                "errors": d.errors,
            },
            "snapshots": rt.snapshots.ids(),
            "data_updated": rt.data_updated,
            "refreshes": self.refreshes().iter().map(|r| serde_json::json!({
                "dataset": r.dataset,
                "snapshot": r.snapshot,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "outcome": r.outcome,
            })).collect::<Vec<_>>(),
        })
    }
}

/// For the portal. `reload` builds a whole runtime (seconds on large data): call it from a
/// blocking thread (`tokio::task::spawn_blocking`), not on the async executor.
impl Admin for Reloader {
    fn definitions(&self) -> DefinitionsStatus {
        self.state().definitions.clone()
    }

    fn reload(&self) -> DefinitionsStatus {
        Reloader::reload(self, "admin")
    }

    fn refreshes(&self) -> Vec<RefreshRecord> {
        let rt = self.service.runtime();
        let failures = self.state().data_failures.clone();
        let current = current_ids(&self.data_dir);
        let mut out: Vec<RefreshRecord> = read_refresh_log(&self.data_dir)
            .into_iter()
            .map(|r| {
                let outcome = if r.outcome == "switched" {
                    if rt.snapshots.id(&r.dataset) == Some(r.snapshot.as_str()) {
                        "serving".to_string()
                    } else if let Some(why) = failures.get(&r.snapshot) {
                        format!("failed: the server could not load it: {why}")
                    } else if current.get(&r.dataset) == Some(&r.snapshot) {
                        "running".to_string()
                    } else {
                        "replaced".to_string()
                    }
                } else {
                    r.outcome.clone()
                };
                RefreshRecord {
                    dataset: r.dataset,
                    snapshot: r.snapshot,
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                    outcome,
                }
            })
            .collect();
        out.reverse();
        out.truncate(MAX_REFRESHES_LISTED);
        out
    }
}

/// One refresh as the log tells it (the last line of its process and start time wins).
#[derive(Debug, Clone)]
pub struct LoggedRefresh {
    pub dataset: String,
    pub snapshot: String,
    pub started_at: String,
    pub finished_at: String,
    pub finished_unix: f64,
    /// `running`, `switched`, `unchanged` or `failed: …`.
    pub outcome: String,
}

/// The refreshes in the log, oldest first. A refresh still `running` whose process is gone
/// was killed: it is reported as failed (its snapshot was never made current).
pub fn read_refresh_log(data_dir: &Path) -> Vec<LoggedRefresh> {
    let Ok(text) = std::fs::read_to_string(data_dir.join(REFRESH_LOG)) else {
        return Vec::new();
    };
    let mut order: Vec<(u64, String)> = Vec::new();
    let mut by_run: BTreeMap<(u64, String), LoggedRefresh> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
        let pid = v.get("pid").and_then(|x| x.as_u64()).unwrap_or(0);
        let key = (pid, s("started_at"));
        if !by_run.contains_key(&key) {
            order.push(key.clone());
        }
        by_run.insert(
            key,
            LoggedRefresh {
                dataset: s("dataset"),
                snapshot: s("snapshot"),
                started_at: s("started_at"),
                finished_at: s("finished_at"),
                finished_unix: v.get("finished_unix").and_then(|x| x.as_f64()).unwrap_or(0.0),
                outcome: s("outcome"),
            },
        );
    }
    order
        .into_iter()
        .filter_map(|k| {
            let mut r = by_run.remove(&k)?;
            if r.outcome == "running" && Path::new("/proc/self").exists() && !Path::new("/proc").join(k.0.to_string()).exists()
            {
                r.outcome = "failed: interrupted (the refresh process ended before switching; the previous snapshot stayed current)".into();
            }
            Some(r)
        })
        .collect()
}

/// The handler while the server starts: 503 (`/ready` included) until [`Starting::start`]
/// hands over the real router. (`/health` and `/version` are answered by the HTTP layer.)
#[derive(Default)]
pub struct Starting {
    handler: std::sync::OnceLock<Arc<dyn datakube_http::Handler>>,
}

impl Starting {
    pub fn start(&self, handler: Arc<dyn datakube_http::Handler>) {
        let _ = self.handler.set(handler);
    }

    pub fn is_started(&self) -> bool {
        self.handler.get().is_some()
    }
}

impl datakube_http::Handler for Starting {
    fn handle(&self, req: HttpRequest) -> BoxFuture<HttpResponse> {
        match self.handler.get() {
            Some(h) => h.handle(req),
            None => Box::pin(async move {
                let mut r = json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"status": "starting", "reason": "loading data and cube definitions"}),
                );
                r.headers_mut()
                    .insert(hyper::header::RETRY_AFTER, "5".parse().expect("static header"));
                r
            }),
        }
    }
}

/// `/metrics`, `/ready`, `/admin/status` and `/admin/reload`.
pub struct OpsHandler {
    pub reloader: Arc<Reloader>,
    pub auth: Arc<dyn Authenticator>,
}

fn json(status: StatusCode, v: serde_json::Value) -> HttpResponse {
    datakube_http::json(status, &v)
}

impl datakube_http::Handler for OpsHandler {
    fn handle(&self, req: HttpRequest) -> BoxFuture<HttpResponse> {
        let reloader = self.reloader.clone();
        let auth = self.auth.clone();
        Box::pin(async move {
            match (&req.method, req.path.as_str()) {
                (&Method::GET, "/metrics") => {
                    let text = reloader.metrics.render(&reloader.gauges());
                    let mut r = hyper::Response::new(datakube_http::full(text));
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8"
                            .parse()
                            .expect("static header"),
                    );
                    r
                }
                (&Method::GET, "/ready") => {
                    if reloader.ready() {
                        json(StatusCode::OK, serde_json::json!({"status": "ready"}))
                    } else {
                        json(
                            StatusCode::SERVICE_UNAVAILABLE,
                            serde_json::json!({"status": "not ready", "reason": "a snapshot the runtime reads is missing on disk"}),
                        )
                    }
                }
                (m, "/admin/status" | "/admin/reload") => {
                    let authorization = req
                        .headers
                        .get(hyper::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    let principal = match auth.authenticate(authorization).await {
                        AuthOutcome::Authenticated(p) => p,
                        AuthOutcome::Challenge(why) => {
                            if authorization.is_some() {
                                use datakube_xmla::service::XmlaObserver as _;
                                reloader.metrics.auth_failure();
                            }
                            let mut r = json(
                                StatusCode::UNAUTHORIZED,
                                serde_json::json!({"error": format!("authentication required: {why}")}),
                            );
                            if let Ok(v) = format!("Basic realm=\"{}\", charset=\"UTF-8\"", auth.realm()).parse() {
                                r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
                            }
                            return r;
                        }
                    };
                    if !principal.is_admin() {
                        return json(
                            StatusCode::FORBIDDEN,
                            serde_json::json!({"error": "the admin role is needed"}),
                        );
                    }
                    match (m, req.path.as_str()) {
                        (&Method::GET, "/admin/status") => json(StatusCode::OK, reloader.status_json()),
                        (&Method::POST, "/admin/reload") => {
                            tracing::info!(user = %principal.subject_hash(), "reload requested by an administrator");
                            let r = reloader.clone();
                            let _ = tokio::task::spawn_blocking(move || Reloader::reload(&r, "admin")).await;
                            let body = reloader.status_json();
                            let applied = body["definitions"]["errors"].as_array().is_some_and(|e| e.is_empty());
                            json(
                                if applied {
                                    StatusCode::OK
                                } else {
                                    StatusCode::UNPROCESSABLE_ENTITY
                                },
                                body,
                            )
                        }
                        _ => json(
                            StatusCode::METHOD_NOT_ALLOWED,
                            serde_json::json!({"error": "GET /admin/status or POST /admin/reload"}),
                        ),
                    }
                }
                _ => datakube_http::text(StatusCode::NOT_FOUND, format!("no such path: {}\n", req.path)),
            }
        })
    }
}
