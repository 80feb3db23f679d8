//! The portal's pages in-process: the real `AuthWeb` (development login, sessions, CSRF), the
//! shipped cube definitions and security roles (plus one extra role limited to one cube), and
//! the page handler. What is checked: who sees which cubes (the access rules every XMLA path
//! uses), the connection files' contents, both languages, and that the administration pages
//! and the audit log are for administrators only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datakube_auth::audit::AuditLog;
use datakube_auth::identities::IdentityStore;
use datakube_auth::pat::PatStore;
use datakube_auth::roles::RoleMapper;
use datakube_auth::web::{AuthWeb, LoginMode, SESSION_COOKIE};
use datakube_auth::{AuthMethod, Identity};
use datakube_http::{BoxFuture, Handler, HttpRequest, HttpResponse};
use datakube_portal::{Admin, DefinitionsStatus, Portal, PortalConfig, RefreshRecord};
use http_body_util::BodyExt as _;
use hyper::{Method, StatusCode};

const PUBLIC_URL: &str = "https://portal.test:8443";
const AARHUS_CVR: &str = "55133018";

fn repo() -> PathBuf {
    std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .join("../..")
}

/// A stand-in for the binary's `Admin` (the portal only renders what it reports): fixed
/// status with one validation error, counting reloads.
struct FixedAdmin {
    reloads: AtomicUsize,
}

impl Admin for FixedAdmin {
    fn definitions(&self) -> DefinitionsStatus {
        DefinitionsStatus {
            loaded_at: "2026-01-01T00:00:00Z".into(),
            cubes: vec!["Befolkning".into(), "Skole".into()],
            last_attempt_at: "2026-01-02T00:00:00Z".into(),
            errors: if self.reloads.load(Ordering::SeqCst) > 0 {
                vec!["cube-definitions/skole.yaml:7:3: error: unknown column 'elev_idd' in skole/elev_fag".into()]
            } else {
                Vec::new()
            },
        }
    }
    fn reload(&self) -> DefinitionsStatus {
        self.reloads.fetch_add(1, Ordering::SeqCst);
        self.definitions()
    }
    fn refreshes(&self) -> Vec<RefreshRecord> {
        vec![RefreshRecord {
            dataset: "skole".into(),
            snapshot: "snap1".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:01:00Z".into(),
            outcome: "serving".into(),
        }]
    }
}

/// Answers what the portal passes on (XMLA POSTs on `/`).
struct Fallback;
impl Handler for Fallback {
    fn handle(&self, _req: HttpRequest) -> BoxFuture<HttpResponse> {
        Box::pin(async { datakube_http::text(StatusCode::OK, "xmla endpoint") })
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    web: AuthWeb,
    portal: Portal,
    admin: Arc<FixedAdmin>,
    audit: PathBuf,
    rt: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    // The shipped definitions, plus a role that may open only the Skole cube.
    let defs = tmp.path().join("defs");
    copy_dir(&repo().join("cube-definitions"), &defs);
    let sec = std::fs::read_to_string(defs.join("security.yaml")).unwrap();
    let extra = "    - name: skoleanalytiker\n      caption: {da: Skoleanalytiker, en: School analyst}\n      claims: [skole_analytiker]\n      access: own_municipality\n      cubes: [Skole]\n  service_accounts:";
    assert!(sec.contains("  service_accounts:"));
    std::fs::write(
        defs.join("security.yaml"),
        sec.replacen("  service_accounts:", extra, 1),
    )
    .unwrap();
    let catalog = Arc::new(datakube_model::load_catalog(&defs, None).unwrap_or_else(|d| panic!("{d:?}")));
    // A data-quality declaration for the Skole dataset.
    let snap = tmp.path().join("data/datasets/skole/snapshots/snap1");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(tmp.path().join("data/datasets/skole/CURRENT"), "snap1\n").unwrap();
    std::fs::write(
        snap.join("manifest.json"),
        r#"{"dataset":"skole","snapshot_id":"snap1","generated_at":"2026-01-01T00:00:00Z",
            "period":{"from":"2016/17","to":"2025/26"},"completeness":{"101":1.0,"751":0.875},
            "known_issues":["Karakterer kun for 9. klasse."]}"#,
    )
    .unwrap();
    let state = tmp.path().join("state");
    let audit_path = state.join("audit.jsonl");
    let audit = Arc::new(AuditLog::open(&audit_path, 1 << 20, 1).unwrap());
    let web = AuthWeb::new(
        LoginMode::Development,
        PUBLIC_URL,
        Arc::new(PatStore::open(&state.join("tokens.json")).unwrap()),
        Arc::new(IdentityStore::open(&state.join("identities.json")).unwrap()),
        Arc::new(RoleMapper::new(catalog.security.clone()).with_development(true)),
        Some(audit),
    );
    let admin = Arc::new(FixedAdmin {
        reloads: AtomicUsize::new(0),
    });
    let portal = Portal::new(PortalConfig {
        public_url: PUBLIC_URL.into(),
        data_dir: tmp.path().join("data"),
        catalog: Arc::new(move || catalog.clone()),
        web: web.clone(),
        admin: admin.clone(),
        audit_log: audit_path.clone(),
        xmla: Arc::new(Fallback),
    });
    Fixture {
        _tmp: tmp,
        web,
        portal,
        admin,
        audit: audit_path,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: String,
}

impl Fixture {
    /// A browser session for `identity`; returns the Cookie header value.
    fn login(&self, identity: Identity) -> String {
        let r = self.web.complete_login(identity, "test");
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login refused");
        let sc = r
            .headers()
            .get_all(hyper::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")))
            .unwrap();
        sc.split(';').next().unwrap().to_string()
    }

    fn dev(&self, user: &str) -> String {
        self.login(datakube_auth::mapper::dev_identity(user).unwrap())
    }

    /// An OIDC-style identity of Aarhus Kommune with the given role claims.
    fn oidc(&self, subject: &str, roles: &[&str]) -> String {
        self.login(Identity {
            subject: subject.into(),
            display_name: subject.into(),
            method: AuthMethod::Oidc,
            organisations: vec![AARHUS_CVR.into()],
            kommunekoder: Vec::new(),
            role_claims: roles.iter().map(|r| r.to_string()).collect(),
            privileges: Vec::new(),
        })
    }

    fn request(&self, method: Method, target: &str, cookies: &str, body: &str) -> Answer {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (target.to_string(), None),
        };
        let mut headers = hyper::HeaderMap::new();
        if !cookies.is_empty() {
            headers.insert(hyper::header::COOKIE, cookies.parse().unwrap());
        }
        headers.insert(
            hyper::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let req = HttpRequest {
            method,
            path,
            query,
            headers,
            body: bytes::Bytes::from(body.to_string()),
            peer: "127.0.0.1:5000".parse().unwrap(),
        };
        self.rt.block_on(async {
            let r = self.portal.handle(req).await;
            let status = r.status();
            let headers = r.headers().clone();
            let body = String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
            Answer { status, headers, body }
        })
    }

    fn get(&self, target: &str, cookies: &str) -> Answer {
        self.request(Method::GET, target, cookies, "")
    }
}

fn cubes_listed(html: &str) -> Vec<String> {
    html.split("data-cube=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let i = s.find(a).unwrap_or_else(|| panic!("{a} not in {s}")) + a.len();
    &s[i..i + s[i..].find(b).unwrap()]
}

#[test]
fn the_catalogue_lists_only_cubes_the_user_may_open() {
    let f = fixture();
    // The analyst role of security.yaml opens every cube (own kommune, benchmark for all).
    let aarhus = f.dev("aarhus");
    let home = f.get("/", &aarhus);
    assert_eq!(home.status, StatusCode::OK);
    assert_eq!(
        cubes_listed(&home.body),
        [
            "Befolkning",
            "Benchmark",
            "Beskæftigelse",
            "Økonomi",
            "Personale",
            "Skole"
        ]
    );
    assert!(home.body.contains("Aarhus"), "the scope is named");
    // A role limited to the Skole cube: the others are absent and answer 404, like a cube
    // that does not exist, for the page and the connection files alike.
    let skole = f.oidc("skole-analyst", &["skole_analytiker"]);
    let home = f.get("/", &skole);
    assert_eq!(cubes_listed(&home.body), ["Skole"]);
    for path in [
        "/cubes/Befolkning",
        "/cubes/Befolkning.odc",
        "/cubes/Benchmark.pbids",
        "/cubes/%C3%98konomi",
    ] {
        assert_eq!(f.get(path, &skole).status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(f.get("/cubes/Skole", &skole).status, StatusCode::OK);
    // The benchmark role: only the benchmark cube.
    let bench = f.oidc("benchmark-user", &["flis_benchmark"]);
    assert_eq!(cubes_listed(&f.get("/", &bench).body), ["Benchmark"]);
    assert_eq!(f.get("/cubes/Skole", &bench).status, StatusCode::NOT_FOUND);
    // Without a session: a welcome page at /, a login redirect elsewhere.
    let anon = f.get("/", "");
    assert_eq!(anon.status, StatusCode::OK);
    assert!(cubes_listed(&anon.body).is_empty() && anon.body.contains("href=\"/login\""));
    let r = f.get("/cubes/Skole.odc", "");
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/login");
}

#[test]
fn the_cube_page_shows_structure_quality_and_connection() {
    let f = fixture();
    let aarhus = f.dev("aarhus");
    let page = f.get("/cubes/Skole", &aarhus);
    assert_eq!(page.status, StatusCode::OK);
    let b = &page.body;
    // Dimensions, hierarchies with their levels, measures (Danish captions by default).
    assert!(
        b.contains("Dimensioner og hierarkier") && b.contains("Klassetrin"),
        "{b}"
    );
    assert!(b.contains(" › "), "levels of a hierarchy are listed");
    // The manifest: snapshot, period, completeness of the own kommune, known issues.
    assert!(b.contains("snap1") && b.contains("2016/17") && b.contains("2025/26"));
    assert!(b.contains("<dt>Aarhus</dt><dd>87,5 %</dd>"), "{b}");
    assert!(b.contains("1 kommuner med huller"));
    assert!(b.contains("Karakterer kun for 9. klasse."));
    // Server, catalog and the connection string to copy.
    assert!(b.contains("id=\"server-url\">https://portal.test:8443/xmla</code>"));
    let conn = between(b, "id=\"connection-string\">", "</code>");
    assert_eq!(
        conn,
        "Provider=MSOLAP.8;Integrated Security=Basic;Persist Security Info=True;User ID=;Data Source=https://portal.test:8443/xmla;Initial Catalog=FLIS;Locale Identifier=1030"
    );
    // A cube without a manifest says so instead of failing.
    let page = f.get("/cubes/Befolkning", &aarhus);
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("manifest kan ikke læses"));
}

#[test]
fn connection_files_name_the_server_catalog_and_cube() {
    let f = fixture();
    let aarhus = f.dev("aarhus");
    let odc = f.get("/cubes/%C3%98konomi.odc", &aarhus);
    assert_eq!(odc.status, StatusCode::OK);
    assert!(
        odc.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/x-ms-odc")
    );
    let cd = odc.headers["content-disposition"].to_str().unwrap();
    assert!(cd.starts_with("attachment; filename=\"FLIS-Okonomi.odc\""), "{cd}");
    let conn = between(&odc.body, "<odc:ConnectionString>", "</odc:ConnectionString>");
    assert!(conn.contains("Data Source=https://portal.test:8443/xmla;"), "{conn}");
    assert!(conn.contains("Initial Catalog=FLIS;") && conn.ends_with("Locale Identifier=1030"));
    assert!(!conn.to_ascii_lowercase().contains("password"));
    assert_eq!(between(&odc.body, "<odc:CommandText>", "</odc:CommandText>"), "Økonomi");
    assert!(odc.body.contains("<odc:CommandType>Cube</odc:CommandType>"));
    // English: the locale of the file follows the page language.
    let odc = f.get("/cubes/Skole.odc?lang=en", &aarhus);
    assert!(odc.body.contains("Locale Identifier=1033</odc:ConnectionString>"));
    let pbids = f.get("/cubes/Skole.pbids", &aarhus);
    assert_eq!(pbids.status, StatusCode::OK);
    assert!(
        pbids.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("FLIS-Skole.pbids")
    );
    let v: serde_json::Value = serde_json::from_str(&pbids.body).unwrap();
    let c = &v["connections"][0];
    assert_eq!(v["version"], "0.1");
    assert_eq!(c["details"]["protocol"], "analysis-services");
    assert_eq!(c["details"]["address"]["server"], "https://portal.test:8443/xmla");
    assert_eq!(c["details"]["address"]["database"], "FLIS");
    assert_eq!(c["mode"], "Import");
}

#[test]
fn danish_by_default_english_on_request_and_remembered() {
    let f = fixture();
    let aarhus = f.dev("aarhus");
    let da = f.get("/", &aarhus);
    assert!(da.body.contains("<html lang=\"da\"") && da.body.contains("Kubekatalog"));
    assert!(da.body.contains(">Befolkning</a>") && da.body.contains("Log ud"));
    let en = f.get("/?lang=en", &aarhus);
    assert!(en.body.contains("<html lang=\"en\"") && en.body.contains("Cube catalogue"));
    assert!(
        en.body.contains(">Population</a>") && en.body.contains("Log out"),
        "captions follow the language"
    );
    let cookie = en
        .headers
        .get_all(hyper::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("dk_lang=en"))
        .expect("the choice is remembered");
    assert!(cookie.contains("Secure") && cookie.contains("SameSite=Lax"));
    let again = f.get("/cubes/Skole", &format!("{aarhus}; dk_lang=en"));
    assert!(again.body.contains("Data quality") && again.body.contains("Dimensions and hierarchies"));
    // The token page of datakube-auth is framed by the portal's layout, in the language chosen.
    let tokens = f.web.clone();
    let req = HttpRequest {
        method: Method::GET,
        path: "/tokens".into(),
        query: Some("lang=en".into()),
        headers: {
            let mut h = hyper::HeaderMap::new();
            h.insert(hyper::header::COOKIE, aarhus.parse().unwrap());
            h
        },
        body: bytes::Bytes::new(),
        peer: "127.0.0.1:5000".parse().unwrap(),
    };
    let body = f.rt.block_on(async {
        let r = tokens.handle(req).await;
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    });
    assert!(body.contains("/assets/portal.css") && body.contains("Personal access tokens"));
    assert!(body.contains("Create a token") && body.contains("href=\"/\""));
    // POSTs on / stay with the XMLA endpoint.
    let post = f.request(Method::POST, "/", "", "<Envelope/>");
    assert_eq!(post.body, "xmla endpoint");
    // The assets are served with their types.
    let css = f.get("/assets/portal.css", "");
    assert!(css.headers["content-type"].to_str().unwrap().starts_with("text/css"));
}

#[test]
fn administration_is_for_administrators_only() {
    let f = fixture();
    let aarhus = f.dev("aarhus");
    for path in ["/admin", "/admin/audit", "/admin/audit.csv"] {
        assert_eq!(f.get(path, &aarhus).status, StatusCode::FORBIDDEN, "{path}");
        let r = f.get(path, "");
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path} without a session");
    }
    let home = f.get("/", &aarhus);
    assert!(!home.body.contains("href=\"/admin\""), "no admin link for analysts");
    // An analyst cannot reload, even with their own CSRF token.
    let csrf = f.web.session_user(&fake_req(&aarhus)).map(|u| u.csrf).unwrap();
    let r = f.request(
        Method::POST,
        "/admin/definitions/reload",
        &aarhus,
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(f.admin.reloads.load(Ordering::SeqCst), 0);

    let admin = f.dev("admin");
    let page = f.get("/admin", &admin);
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"definitions-state\">indlæst") && page.body.contains("snap1"));
    assert!(f.get("/", &admin).body.contains("href=\"/admin\""));
    // Reload needs the session's CSRF token.
    let r = f.request(Method::POST, "/admin/definitions/reload", &admin, "csrf=wrong");
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(f.admin.reloads.load(Ordering::SeqCst), 0);
    let csrf = between(&page.body, "name=\"csrf\" value=\"", "\"").to_string();
    let r = f.request(
        Method::POST,
        "/admin/definitions/reload",
        &admin,
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(f.admin.reloads.load(Ordering::SeqCst), 1);
    assert!(r.body.contains("id=\"definitions-state\">fejl"));
    assert!(
        r.body
            .contains("cube-definitions/skole.yaml:7:3: error: unknown column &#39;elev_idd&#39;")
    );
}

fn fake_req(cookies: &str) -> HttpRequest {
    let mut headers = hyper::HeaderMap::new();
    headers.insert(hyper::header::COOKIE, cookies.parse().unwrap());
    HttpRequest {
        method: Method::GET,
        path: "/".into(),
        query: None,
        headers,
        body: bytes::Bytes::new(),
        peer: "127.0.0.1:5000".parse().unwrap(),
    }
}

#[test]
fn the_audit_log_filters_and_exports_csv() {
    let f = fixture();
    let admin = f.dev("admin"); // writes a login line for dev:admin
    let _ = f.dev("aarhus");
    let mut text = std::fs::read_to_string(&f.audit).unwrap();
    text.push_str(
        "{\"time\":\"2025-03-04T05:06:07.000Z\",\"kind\":\"query\",\"user\":\"dev:aarhus\",\"cube\":\"Skole\",\"statement\":\"SELECT 1, 2\",\"cells\":2,\"outcome\":\"ok\"}\n",
    );
    text.push_str("not json\n");
    std::fs::write(&f.audit, text).unwrap();

    let all = f.get("/admin/audit", &admin);
    assert_eq!(all.status, StatusCode::OK);
    assert!(
        all.body.contains(">3 lines match") || all.body.contains(">3 linjer matcher"),
        "{}",
        all.body
    );
    assert!(all.body.contains("1 linjer er ikke gyldig JSON"));
    let q = f.get("/admin/audit?kind=query&from=2025-03-04&to=2025-03-04", &admin);
    assert!(q.body.contains(">1 linjer matcher") && q.body.contains("SELECT 1, 2"));
    let q = f.get("/admin/audit?user=AARHUS", &admin);
    assert!(q.body.contains(">2 linjer matcher"));
    assert!(q.body.contains("href=\"/admin/audit.csv?user=AARHUS\""));
    let csv = f.get("/admin/audit.csv?user=aarhus&kind=query", &admin);
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.body.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 2, "{}", csv.body);
    assert!(lines[0].starts_with("time,kind,user,"));
    assert!(lines[1].starts_with("2025-03-04T05:06:07.000Z,query,dev:aarhus,"));
    assert!(lines[1].contains(",Skole,\"SELECT 1, 2\",2,"));
}
