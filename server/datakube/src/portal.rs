//! Wiring of the web portal (`datakube-portal`) into `serve`: its routes next to the auth
//! pages, with the catalog of the running XMLA service and an [`Admin`] implementation.
//!
//! INTERIM: [`StartupAdmin`] stands in for the operations worker's `Admin` over the hot
//! reloader and the data refresher, and is replaced by it at merge. It reports the definitions
//! loaded at start; its reload re-validates the YAML with `datakube_model::load_catalog` and
//! reports the errors, but never swaps anything in (a valid set is reported as valid and
//! applied only at the next start); refreshes are the snapshots in use at start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datakube_auth::util::{rfc3339, unix_now};
use datakube_engine::Engine;
use datakube_portal::{Admin, DefinitionsStatus, Portal, PortalConfig, RefreshRecord};

use crate::schemas::ParquetSchemas;

/// INTERIM (replaced at merge by the reloader-backed `Admin`): see the module docs.
pub struct StartupAdmin {
    definitions: PathBuf,
    data_dir: PathBuf,
    engine: Engine,
    status: Mutex<DefinitionsStatus>,
    refreshes: Vec<RefreshRecord>,
}

impl StartupAdmin {
    pub fn new(definitions: &Path, data_dir: &Path, engine: Engine, catalog: &datakube_model::Catalog) -> StartupAdmin {
        let now = rfc3339(unix_now());
        let mut refreshes: Vec<RefreshRecord> = datakube_datagen::dataset_names()
            .iter()
            .filter_map(|d| {
                let q = datakube_portal::quality::read(data_dir, d).ok()?;
                Some(RefreshRecord {
                    dataset: d.to_string(),
                    snapshot: q.snapshot_id,
                    started_at: q.generated_at.clone(),
                    finished_at: q.generated_at,
                    outcome: "serving".into(),
                })
            })
            .collect();
        refreshes.sort_by(|a, b| b.finished_at.cmp(&a.finished_at));
        StartupAdmin {
            definitions: definitions.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            engine,
            status: Mutex::new(DefinitionsStatus {
                loaded_at: now.clone(),
                cubes: catalog.cubes.iter().map(|c| c.name.clone()).collect(),
                last_attempt_at: now,
                errors: Vec::new(),
            }),
            refreshes,
        }
    }
}

impl Admin for StartupAdmin {
    fn definitions(&self) -> DefinitionsStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn reload(&self) -> DefinitionsStatus {
        let provider = ParquetSchemas::new(self.engine.clone(), self.data_dir.clone());
        let errors = match datakube_model::load_catalog(&self.definitions, Some(&provider)) {
            Ok(_) => Vec::new(),
            Err(diags) => diags
                .iter()
                .filter(|d| d.severity == datakube_model::Severity::Error)
                .map(|d| d.to_string())
                .collect(),
        };
        if !errors.is_empty() {
            tracing::warn!(
                errors = errors.len(),
                "cube definitions reloaded from the portal have errors; the running ones stay"
            );
        }
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.last_attempt_at = rfc3339(unix_now());
        s.errors = errors;
        s.clone()
    }

    fn refreshes(&self) -> Vec<RefreshRecord> {
        self.refreshes.clone()
    }
}

/// Add the portal's routes to `router`: `/` (GET; other methods stay with the XMLA endpoint
/// `xmla`), `/cubes/…`, `/admin…`, `/assets/…`.
#[allow(clippy::too_many_arguments)] // plain wiring, called once from serve()
pub fn routes(
    router: datakube_http::Router,
    xmla: Arc<dyn datakube_http::Handler>,
    service: Arc<datakube_xmla::service::XmlaService>,
    web: &datakube_auth::web::AuthWeb,
    admin: Arc<dyn Admin>,
    audit_log: &Path,
    public_url: &str,
    data_dir: &Path,
) -> datakube_http::Router {
    let portal = Arc::new(Portal::new(PortalConfig {
        public_url: public_url.to_string(),
        data_dir: data_dir.to_path_buf(),
        catalog: Arc::new(move || Arc::new(service.runtime().catalog.clone())),
        web: web.clone(),
        admin,
        audit_log: audit_log.to_path_buf(),
        xmla,
    }));
    datakube_portal::ROUTES
        .iter()
        .fold(router, |r, p| r.route(p, portal.clone()))
}
