//! Wiring of the web portal (`datakube-portal`) into `serve`: its routes next to the auth
//! pages, with the catalog of the running XMLA service and the reloader as its [`Admin`].

use std::path::Path;
use std::sync::Arc;

use datakube_portal::{Admin, Portal, PortalConfig};

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
