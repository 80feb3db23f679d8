//! The web portal (issue 7): the catalogue of cubes a user may open, connection files
//! (`.odc`, `.pbids`), personal access tokens, and the administration pages.
//!
//! Server-rendered HTML in Danish (default) and English (`?lang=en`, remembered in a cookie),
//! one stylesheet and one small copy-to-clipboard script under `/assets/`. The login and token
//! pages stay in `datakube-auth` and are framed by the same [`layout::Layout`].
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the catalogue (other methods on `/` go to the XMLA endpoint) |
//! | `GET /cubes/<cube>` | a cube: dimensions, hierarchies, measures, data quality, connecting |
//! | `GET /cubes/<cube>.odc`, `.pbids` | connection files for Excel and Power BI |
//! | `GET /admin`, `POST /admin/definitions/reload` | definitions status, reload, data refreshes (admins) |
//! | `GET /admin/audit`, `/admin/audit.csv` | the audit log, filtered, and its CSV export (admins) |
//!
//! The portal only reads and asks: which cubes a user may open comes from
//! `members::access::Access` (the function the XMLA discover uses), what the server is doing
//! (definitions, refreshes) through the [`Admin`] trait, which the binary implements.

pub mod admin;
pub mod auditview;
pub mod connfiles;
pub mod layout;
pub mod quality;

use std::path::PathBuf;
use std::sync::Arc;

use datakube_auth::util::{html_escape, unix_now};
use datakube_auth::web::{self, AuthWeb, SessionUser, request_lang, tr};
use datakube_auth::{Principal, RowScope};
use datakube_http::{BoxFuture, Handler, HttpRequest, HttpResponse};
use datakube_members::access::Access;
use datakube_model::{Catalog, Cube, Lang, SecurityClass};
use hyper::{Method, StatusCode};

pub use admin::{Admin, DefinitionsStatus, RefreshRecord};

/// The catalog the server answers from now (it may be replaced by a reload).
pub type CatalogSource = Arc<dyn Fn() -> Arc<Catalog> + Send + Sync>;

/// The routes the portal answers (exact, or prefixes ending in `/`, as `datakube_http::Router`
/// takes them).
pub const ROUTES: &[&str] = &["/", "/cubes/", "/admin/", "/assets/"];

/// Most audit lines shown on one page (the CSV export has all that match).
pub const AUDIT_PAGE_ROWS: usize = 500;

/// What the portal needs from the server.
pub struct PortalConfig {
    /// External base URL (`https://host:port`): connection files point at `<it>/xmla`.
    pub public_url: String,
    /// Where the datasets (and their manifests) live.
    pub data_dir: PathBuf,
    pub catalog: CatalogSource,
    /// Browser sessions, login and token pages.
    pub web: AuthWeb,
    pub admin: Arc<dyn Admin>,
    /// The audit log file (`AuditLog::path()`).
    pub audit_log: PathBuf,
    /// Answers everything on `/` but GET (the XMLA endpoint: SOAP POSTs on `/`).
    pub xmla: Arc<dyn Handler>,
}

/// The portal handler (a cheap handle).
#[derive(Clone)]
pub struct Portal {
    inner: Arc<PortalConfig>,
}

impl Portal {
    /// The portal; also sets its layout on the login and token pages of `config.web`.
    pub fn new(config: PortalConfig) -> Portal {
        config.web.set_layout(Arc::new(layout::Layout));
        Portal {
            inner: Arc::new(config),
        }
    }

    /// The XMLA URL clients connect to.
    pub fn xmla_url(&self) -> String {
        format!("{}/xmla", self.inner.public_url.trim_end_matches('/'))
    }

    async fn route(&self, req: HttpRequest) -> HttpResponse {
        let path = req.path.clone();
        if path == "/" && req.method != Method::GET {
            return self.inner.xmla.handle(req).await;
        }
        match (&req.method, path.as_str()) {
            (&Method::GET, "/") => self.home(&req),
            (&Method::GET, "/assets/portal.css") => asset(layout::CSS, "text/css; charset=utf-8"),
            (&Method::GET, "/assets/portal.js") => asset(layout::JS, "text/javascript; charset=utf-8"),
            (&Method::GET, p) if p.starts_with("/cubes/") => self.cube_route(&req, &p["/cubes/".len()..]),
            (&Method::GET, "/admin") => self.admin_page(&req, None),
            (&Method::POST, "/admin/definitions/reload") => self.reload(&req).await,
            (&Method::GET, "/admin/audit") => self.audit_page(&req),
            (&Method::GET, "/admin/audit.csv") => self.audit_csv(&req),
            _ => self.not_found(&req),
        }
    }

    fn not_found(&self, req: &HttpRequest) -> HttpResponse {
        let lang = request_lang(req);
        self.inner.web.render(
            req,
            StatusCode::NOT_FOUND,
            tr(lang, "Ikke fundet", "Not found"),
            &format!(
                "<p>{}</p><p><a href=\"/\">{}</a></p>",
                tr(lang, "Siden findes ikke.", "There is no such page."),
                tr(lang, "Til kataloget", "To the catalogue")
            ),
        )
    }

    /// The logged-in user, or a redirect to the login page.
    fn user(&self, req: &HttpRequest) -> Result<SessionUser, Box<HttpResponse>> {
        self.inner
            .web
            .session_user(req)
            .ok_or_else(|| Box::new(web::redirect("/login")))
    }

    /// The logged-in administrator, or a redirect to login, or 403.
    fn admin_user(&self, req: &HttpRequest) -> Result<SessionUser, Box<HttpResponse>> {
        let user = self.user(req)?;
        if user.principal.is_admin() {
            return Ok(user);
        }
        let lang = request_lang(req);
        Err(Box::new(self.inner.web.render(
            req,
            StatusCode::FORBIDDEN,
            tr(lang, "Ingen adgang", "No access"),
            tr(
                lang,
                "<p>Administrationssiderne er kun for administratorer.</p>",
                "<p>The administration pages are for administrators only.</p>",
            ),
        )))
    }

    /// The cubes `principal` may open, by the rules every XMLA path uses.
    pub fn visible_cubes<'a>(catalog: &'a Catalog, principal: &Principal) -> Vec<&'a Cube> {
        let access = Access::from_principal(principal, &catalog.security.disclosure_marker);
        catalog.cubes.iter().filter(|c| access.may_open(c)).collect()
    }

    // --- catalogue -----------------------------------------------------------------------

    fn home(&self, req: &HttpRequest) -> HttpResponse {
        let lang = request_lang(req);
        let t = |da: &'static str, en: &'static str| tr(lang, da, en);
        let Some(user) = self.inner.web.session_user(req) else {
            return self.inner.web.render(
                req,
                StatusCode::OK,
                t("Velkommen til datakube", "Welcome to datakube"),
                &format!(
                    "<p class=\"lead\">{}</p><p class=\"actions\"><a class=\"button\" href=\"/login\">{}</a></p>",
                    t(
                        "Kommunale data som kuber i Excel, Power BI og TARGIT. Log ind for at se de kuber, du har adgang til, hente forbindelsesfiler og oprette en personlig adgangstoken.",
                        "Municipal data as cubes in Excel, Power BI and TARGIT. Log in to see the cubes you may open, download connection files and create a personal access token."
                    ),
                    t("Log ind", "Log in")
                ),
            );
        };
        let catalog = (self.inner.catalog)();
        let cubes = Self::visible_cubes(&catalog, &user.principal);
        let mut cards = String::new();
        for cube in &cubes {
            let q = cube_dataset(cube).map(|d| quality::read(&self.inner.data_dir, d));
            let fresh = match &q {
                Some(Ok(q)) => format!(
                    "<p class=\"muted\">{} {} · {} {}</p>",
                    t("Data til og med", "Data up to"),
                    html_escape(&q.period_to),
                    t("øjebliksbillede", "snapshot"),
                    html_escape(q.generated_at.get(..10).unwrap_or(&q.generated_at)),
                ),
                _ => String::new(),
            };
            let dims: Vec<String> = cube
                .dimensions
                .iter()
                .map(|d| html_escape(d.caption.get(lang)))
                .collect();
            let measures = cube.measures.iter().filter(|m| m.visible).count();
            let link = cube_link(&cube.name);
            cards.push_str(&format!(
                "<article class=\"card cube\" data-cube=\"{name}\"><h2><a href=\"{link}\">{caption}</a></h2>\
<p>{class}</p><p>{desc}</p><p class=\"muted\">{dimlabel}: {dims}<br>{measures} {measurelabel}</p>{fresh}\
<div class=\"actions\"><a class=\"button\" href=\"{link}\">{details}</a>\
<a class=\"button secondary\" href=\"{link}.odc\" download>Excel (.odc)</a>\
<a class=\"button secondary\" href=\"{link}.pbids\" download>Power BI (.pbids)</a></div></article>",
                name = html_escape(&cube.name),
                caption = html_escape(cube.caption.get(lang)),
                class = class_badge(cube, lang),
                desc = html_escape(cube.description.as_ref().map(|d| d.get(lang)).unwrap_or_default()),
                dimlabel = t("Dimensioner", "Dimensions"),
                dims = dims.join(", "),
                measurelabel = t("mål", "measures"),
                details = t("Detaljer", "Details"),
            ));
        }
        if cubes.is_empty() {
            cards.push_str(&format!(
                "<p>{}</p>",
                t(
                    "Du har ikke adgang til nogen kuber. Kontakt din administrator.",
                    "You have no access to any cube. Contact your administrator."
                )
            ));
        }
        let body = format!(
            "<p class=\"lead\">{intro} <strong>{scope}</strong>.</p>{connect}<div class=\"grid\">{cards}</div>",
            intro = t(
                "Kuberne du har adgang til. Du ser data for",
                "The cubes you may open. You see data for"
            ),
            scope = html_escape(&scope_text(&user.principal, lang)),
            connect = self.connect_box(&catalog, lang, None),
        );
        let title = format!("{} {}", t("Kubekatalog", "Cube catalogue"), catalog.caption.get(lang));
        self.inner.web.render(req, StatusCode::OK, &title, &body)
    }

    /// Server, catalog, (cube) and the connection string with copy buttons.
    fn connect_box(&self, catalog: &Catalog, lang: Lang, cube: Option<&Cube>) -> String {
        let t = |da: &'static str, en: &'static str| tr(lang, da, en);
        let url = self.xmla_url();
        let conn = connfiles::connection_string(&url, &catalog.name, lang);
        let cube_row = cube
            .map(|c| {
                format!(
                    "<dt>{}</dt><dd><code>{}</code></dd>",
                    t("Kube", "Cube"),
                    html_escape(&c.name)
                )
            })
            .unwrap_or_default();
        format!(
            "<section class=\"card connect\"><h2>{head}</h2><dl class=\"facts\">\
<dt>{server}</dt><dd class=\"copyrow\"><code class=\"copyable\" id=\"server-url\">{url}</code>\
<button type=\"button\" class=\"copy\" data-copy=\"server-url\" data-done=\"{done}\">{copy}</button></dd>\
<dt>{catlabel}</dt><dd><code id=\"catalog-name\">{catalog}</code></dd>{cube_row}\
<dt>{connlabel}</dt><dd class=\"copyrow\"><code class=\"copyable\" id=\"connection-string\">{conn}</code>\
<button type=\"button\" class=\"copy\" data-copy=\"connection-string\" data-done=\"{done}\">{copy}</button></dd></dl>\
<p class=\"muted\">{login} <a href=\"/tokens\">{tokens}</a>.</p></section>",
            head = t("Sådan forbinder du", "How to connect"),
            server = t("Server", "Server"),
            url = html_escape(&url),
            catlabel = t("Katalog (database)", "Catalog (database)"),
            catalog = html_escape(&catalog.name),
            connlabel = t("Forbindelsesstreng", "Connection string"),
            conn = html_escape(&conn),
            copy = t("Kopiér", "Copy"),
            done = t("Kopieret", "Copied"),
            login = t(
                "Log på med et vilkårligt brugernavn og en personlig adgangstoken som adgangskode:",
                "Log on with any user name and a personal access token as the password:"
            ),
            tokens = t("opret en token", "create a token"),
        )
    }

    fn cube_route(&self, req: &HttpRequest, rest: &str) -> HttpResponse {
        let user = match self.user(req) {
            Ok(u) => u,
            Err(r) => return *r,
        };
        let (raw, kind) = if let Some(n) = rest.strip_suffix(".odc") {
            (n, "odc")
        } else if let Some(n) = rest.strip_suffix(".pbids") {
            (n, "pbids")
        } else {
            (rest, "page")
        };
        let Some(name) = percent_decode(raw) else {
            return self.not_found(req);
        };
        let catalog = (self.inner.catalog)();
        let Some(cube) = Self::visible_cubes(&catalog, &user.principal)
            .into_iter()
            .find(|c| c.name.eq_ignore_ascii_case(&name))
        else {
            // A cube the user may not open looks like one that does not exist.
            return self.not_found(req);
        };
        let lang = request_lang(req);
        let stem = connfiles::file_stem(&catalog.name, &cube.name);
        match kind {
            "odc" => download(
                connfiles::odc(&self.xmla_url(), &catalog, cube, lang),
                "text/x-ms-odc; charset=utf-8",
                &format!("{stem}.odc"),
            ),
            "pbids" => download(
                connfiles::pbids(&self.xmla_url(), &catalog),
                "application/json; charset=utf-8",
                &format!("{stem}.pbids"),
            ),
            _ => self.cube_page(req, &catalog, cube, &user, lang),
        }
    }

    fn cube_page(
        &self,
        req: &HttpRequest,
        catalog: &Catalog,
        cube: &Cube,
        user: &SessionUser,
        lang: Lang,
    ) -> HttpResponse {
        let t = |da: &'static str, en: &'static str| tr(lang, da, en);
        let link = cube_link(&cube.name);
        let desc = |d: &Option<datakube_model::Description>| {
            d.as_ref()
                .map(|d| format!("<p class=\"muted\">{}</p>", html_escape(d.get(lang))))
                .unwrap_or_default()
        };
        let mut dims = String::new();
        for d in &cube.dimensions {
            let mut hiers = String::new();
            for h in &d.hierarchies {
                let levels: Vec<String> = h.levels.iter().map(|l| html_escape(l.caption.get(lang))).collect();
                hiers.push_str(&format!(
                    "<li class=\"hier\"><strong>{}</strong> <span class=\"levels\">{}</span>{}</li>",
                    html_escape(h.caption.get(lang)),
                    levels.join(" › "),
                    desc(&h.description)
                ));
            }
            dims.push_str(&format!(
                "<section class=\"card dimension\"><h3>{}</h3>{}<ul class=\"plain\">{hiers}</ul></section>",
                html_escape(d.caption.get(lang)),
                desc(&d.description)
            ));
        }
        let mut measures = String::new();
        for m in cube.measures.iter().filter(|m| m.visible) {
            measures.push_str(&format!(
                "<tr><td data-label=\"{}\"><strong>{}</strong></td><td data-label=\"{}\">{}</td><td data-label=\"{}\">{}</td></tr>",
                t("Mål", "Measure"),
                html_escape(m.caption.get(lang)),
                t("Mappe", "Folder"),
                html_escape(m.display_folder.as_deref().unwrap_or("")),
                t("Beskrivelse", "Description"),
                html_escape(m.description.as_ref().map(|d| d.get(lang)).unwrap_or_default()),
            ));
        }
        let body = format!(
            "<p>{class}</p><p class=\"lead\">{desc}</p>\
<div class=\"actions\"><a class=\"button\" href=\"{link}.odc\" download id=\"download-odc\">{odc}</a>\
<a class=\"button\" href=\"{link}.pbids\" download id=\"download-pbids\">{pbids}</a></div>\
{connect}\
<h2>{dimhead}</h2><div class=\"grid\">{dims}</div>\
<h2>{mhead}</h2><div class=\"scroll\"><table class=\"responsive measures\"><thead><tr><th>{mcol}</th><th>{fcol}</th><th>{dcol}</th></tr></thead><tbody>{measures}</tbody></table></div>\
<h2>{qhead}</h2>{quality}",
            class = class_badge(cube, lang),
            desc = html_escape(cube.description.as_ref().map(|d| d.get(lang)).unwrap_or_default()),
            odc = t("Hent Excel-fil (.odc)", "Download Excel file (.odc)"),
            pbids = t("Hent Power BI-fil (.pbids)", "Download Power BI file (.pbids)"),
            connect = self.connect_box(catalog, lang, Some(cube)),
            dimhead = t("Dimensioner og hierarkier", "Dimensions and hierarchies"),
            mhead = t("Mål", "Measures"),
            mcol = t("Mål", "Measure"),
            fcol = t("Mappe", "Folder"),
            dcol = t("Beskrivelse", "Description"),
            qhead = t("Datakvalitet", "Data quality"),
            quality = self.quality_section(cube, &user.principal, lang),
        );
        self.inner
            .web
            .render(req, StatusCode::OK, cube.caption.get(lang), &body)
    }

    fn quality_section(&self, cube: &Cube, principal: &Principal, lang: Lang) -> String {
        let t = |da: &'static str, en: &'static str| tr(lang, da, en);
        let Some(dataset) = cube_dataset(cube) else {
            return format!(
                "<p class=\"muted\">{}</p>",
                t(
                    "Kuben læser filer uden for et datasæt; der er ingen kvalitetsdeklaration.",
                    "The cube reads files outside a dataset; there is no quality declaration."
                )
            );
        };
        let q = match quality::read(&self.inner.data_dir, dataset) {
            Ok(q) => q,
            Err(e) => {
                return format!(
                    "<p class=\"error\">{} {}</p>",
                    t(
                        "Datasættets manifest kan ikke læses:",
                        "The dataset's manifest cannot be read:"
                    ),
                    html_escape(&e)
                );
            }
        };
        let age = q
            .age_days(unix_now())
            .map(|d| format!(" ({d} {})", t("dage siden", "days ago")))
            .unwrap_or_default();
        let pct = |v: f64| {
            let s = format!("{:.1} %", v * 100.0);
            if lang == Lang::Da { s.replace('.', ",") } else { s }
        };
        let own: Vec<u16> = match &principal.scope {
            RowScope::Municipalities(k) => k.iter().map(|k| k.0).collect(),
            RowScope::All => Vec::new(),
        };
        let own_rows: String = own
            .iter()
            .map(|k| {
                format!(
                    "<dt>{}</dt><dd>{}</dd>",
                    html_escape(&kommune_name(*k)),
                    q.completeness.get(k).map(|v| pct(*v)).unwrap_or_else(|| "–".into())
                )
            })
            .collect();
        let all_rows: String = q
            .completeness
            .iter()
            .map(|(k, v)| {
                format!(
                    "<tr{}><td>{k}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                    if own.contains(k) { " class=\"own\"" } else { "" },
                    html_escape(&kommune_name(*k)),
                    pct(*v)
                )
            })
            .collect();
        let summary = match q.min_completeness() {
            Some(min) if q.incomplete() == 0 => format!(
                "<span class=\"badge ok\">{}</span> {} ({})",
                t("komplet", "complete"),
                t(
                    "alle kommuner har data for hele perioden",
                    "every municipality has data for the whole period"
                ),
                pct(min)
            ),
            Some(min) => format!(
                "<span class=\"badge warn\">{} {}</span> {} {}",
                q.incomplete(),
                t("kommuner med huller", "municipalities with gaps"),
                t("laveste:", "lowest:"),
                pct(min)
            ),
            None => t("ikke oplyst", "not declared").to_string(),
        };
        let issues = if q.known_issues.is_empty() {
            format!(
                "<p class=\"muted\">{}</p>",
                t("Ingen kendte problemer.", "No known issues.")
            )
        } else {
            format!(
                "<ul class=\"issues\">{}</ul>",
                q.known_issues
                    .iter()
                    .map(|i| format!("<li>{}</li>", html_escape(i)))
                    .collect::<String>()
            )
        };
        format!(
            "<section class=\"card quality\"><dl class=\"facts\">\
<dt>{dslabel}</dt><dd><code>{dataset}</code> · {snaplabel} <code>{snap}</code></dd>\
<dt>{datelabel}</dt><dd>{generated}{age}</dd>\
<dt>{periodlabel}</dt><dd>{from} – {to}</dd>\
<dt>{complabel}</dt><dd>{summary}</dd>{own_rows}</dl>\
<h3>{issueslabel}</h3>{issues}\
<details><summary>{perkommune}</summary><div class=\"scroll\"><table class=\"completeness\"><thead><tr><th>{code}</th><th>{kommune}</th><th class=\"num\">{share}</th></tr></thead>\
<tbody>{all_rows}</tbody></table></div></details></section>",
            dslabel = t("Datasæt", "Dataset"),
            dataset = html_escape(&q.dataset),
            snaplabel = t("øjebliksbillede", "snapshot"),
            snap = html_escape(&q.snapshot_id),
            datelabel = t("Dannet", "Made"),
            generated = html_escape(&q.generated_at),
            periodlabel = t("Periode (aktualitet)", "Period (freshness)"),
            from = html_escape(&q.period_from),
            to = html_escape(&q.period_to),
            complabel = t("Fuldstændighed", "Completeness"),
            issueslabel = t("Kendte problemer", "Known issues"),
            perkommune = t("Fuldstændighed pr. kommune", "Completeness per municipality"),
            code = t("Kode", "Code"),
            kommune = t("Kommune", "Municipality"),
            share = t("Andel af perioder med data", "Share of periods with data"),
        )
    }

    // --- administration ------------------------------------------------------------------

    fn admin_page(&self, req: &HttpRequest, after_reload: Option<DefinitionsStatus>) -> HttpResponse {
        let user = match self.admin_user(req) {
            Ok(u) => u,
            Err(r) => return *r,
        };
        let lang = request_lang(req);
        let t = |da: &'static str, en: &'static str| tr(lang, da, en);
        let status = after_reload.unwrap_or_else(|| self.inner.admin.definitions());
        let state = if status.errors.is_empty() {
            format!(
                "<span class=\"badge ok\" id=\"definitions-state\">{}</span>",
                t("indlæst", "loaded")
            )
        } else {
            format!(
                "<span class=\"badge bad\" id=\"definitions-state\">{}</span> {}",
                t("fejl", "errors"),
                t(
                    "Sidste forsøg på at indlæse definitionerne mislykkedes; serveren svarer fortsat fra de tidligere definitioner.",
                    "The last attempt to load the definitions failed; the server keeps answering from the previous definitions."
                )
            )
        };
        let errors = if status.errors.is_empty() {
            String::new()
        } else {
            format!(
                "<h3>{}</h3><pre class=\"errors\" id=\"definition-errors\">{}</pre>",
                t("Valideringsfejl", "Validation errors"),
                html_escape(&status.errors.join("\n"))
            )
        };
        let cubes: String = status
            .cubes
            .iter()
            .map(|c| {
                format!(
                    "<li><span class=\"badge ok\">{}</span> {}</li>",
                    t("indlæst", "loaded"),
                    html_escape(c)
                )
            })
            .collect();
        let refreshes = self.inner.admin.refreshes();
        let rrows: String = refreshes
            .iter()
            .map(|r| {
                let badge = if r.outcome.starts_with("failed") {
                    "bad"
                } else if r.outcome == "running" {
                    "warn"
                } else {
                    "ok"
                };
                format!(
                    "<tr><td data-label=\"{}\">{}</td><td data-label=\"{}\"><code>{}</code></td><td data-label=\"{}\">{}</td><td data-label=\"{}\">{}</td><td data-label=\"{}\"><span class=\"badge {badge}\">{}</span></td></tr>",
                    t("Datasæt", "Dataset"),
                    html_escape(&r.dataset),
                    t("Øjebliksbillede", "Snapshot"),
                    html_escape(&r.snapshot),
                    t("Start", "Started"),
                    html_escape(&r.started_at),
                    t("Slut", "Finished"),
                    html_escape(&r.finished_at),
                    t("Udfald", "Outcome"),
                    html_escape(&r.outcome),
                )
            })
            .collect();
        let body = format!(
            "<section class=\"card\"><h2>{defs}</h2><p>{state}</p><dl class=\"facts\">\
<dt>{loaded}</dt><dd id=\"loaded-at\">{loaded_at}</dd><dt>{attempt}</dt><dd id=\"last-attempt\">{last}</dd></dl>{errors}\
<h3>{cubeshead}</h3><ul class=\"plain\" id=\"loaded-cubes\">{cubes}</ul>\
<form method=\"post\" action=\"/admin/definitions/reload\" class=\"stack\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\" id=\"reload\">{reload}</button></form></section>\
<section class=\"card\"><h2>{rhead}</h2><div class=\"scroll\"><table class=\"responsive refreshes\"><thead><tr><th>{c1}</th><th>{c2}</th><th>{c3}</th><th>{c4}</th><th>{c5}</th></tr></thead><tbody>{rrows}</tbody></table></div></section>\
<p><a class=\"button secondary\" href=\"/admin/audit\">{audit}</a></p>",
            defs = t("Kubedefinitioner", "Cube definitions"),
            loaded = t("Indlæst", "Loaded"),
            loaded_at = html_escape(&status.loaded_at),
            attempt = t("Sidste forsøg", "Last attempt"),
            last = html_escape(&status.last_attempt_at),
            cubeshead = t("Kuber i brug", "Cubes in use"),
            csrf = html_escape(&user.csrf),
            reload = t("Genindlæs definitioner", "Reload definitions"),
            rhead = t("Seneste dataopdateringer", "Last data refreshes"),
            c1 = t("Datasæt", "Dataset"),
            c2 = t("Øjebliksbillede", "Snapshot"),
            c3 = t("Start", "Started"),
            c4 = t("Slut", "Finished"),
            c5 = t("Udfald", "Outcome"),
            audit = t("Revisionslog", "Audit log"),
        );
        let mut r = self
            .inner
            .web
            .render(req, StatusCode::OK, t("Administration", "Administration"), &body);
        web::no_store(&mut r);
        r
    }

    async fn reload(&self, req: &HttpRequest) -> HttpResponse {
        let user = match self.admin_user(req) {
            Ok(u) => u,
            Err(r) => return *r,
        };
        if !self.inner.web.csrf_ok(req, &user) {
            let lang = request_lang(req);
            return self.inner.web.render(
                req,
                StatusCode::FORBIDDEN,
                tr(lang, "Fejl", "Error"),
                tr(
                    lang,
                    "<p class=\"error\">Formularen mangler en gyldig CSRF-token; genindlæs siden.</p>",
                    "<p class=\"error\">The form lacks a valid CSRF token; reload the page.</p>",
                ),
            );
        }
        let admin = self.inner.admin.clone();
        tracing::info!("cube definitions reload requested from the portal");
        let status = match tokio::task::spawn_blocking(move || admin.reload()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("reload failed: {e}");
                self.inner.admin.definitions()
            }
        };
        self.admin_page(req, Some(status))
    }

    fn audit_filter(req: &HttpRequest) -> auditview::Filter {
        let q = web::query(req);
        let get = |k: &str| q.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        auditview::Filter {
            user: get("user"),
            kind: get("kind"),
            from: get("from"),
            to: get("to"),
        }
    }

    fn audit_page(&self, req: &HttpRequest) -> HttpResponse {
        if let Err(r) = self.admin_user(req) {
            return *r;
        }
        let lang = request_lang(req);
        let t = |da: &'static str, en: &'static str| tr(lang, da, en);
        let filter = Self::audit_filter(req);
        let (lines, bad) = match auditview::read(&self.inner.audit_log) {
            Ok(x) => x,
            Err(e) => {
                return self.inner.web.render(
                    req,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    t("Revisionslog", "Audit log"),
                    &format!("<p class=\"error\">{}</p>", html_escape(&e.to_string())),
                );
            }
        };
        let kinds = auditview::kinds(&lines);
        let matching: Vec<&serde_json::Value> = lines.iter().rev().filter(|l| filter.matches(l)).collect();
        let shown = [
            "time",
            "kind",
            "user",
            "scope",
            "cube",
            "statement",
            "outcome",
            "detail",
        ];
        let rows: String = matching
            .iter()
            .take(AUDIT_PAGE_ROWS)
            .map(|l| {
                let cells: String = shown
                    .iter()
                    .map(|c| {
                        let mut v = auditview::cell(l, c);
                        if v.chars().count() > 160 {
                            v = v.chars().take(160).collect::<String>() + "…";
                        }
                        format!("<td data-label=\"{c}\">{}</td>", html_escape(&v))
                    })
                    .collect();
                format!("<tr>{cells}</tr>")
            })
            .collect();
        let options: String = std::iter::once(String::new())
            .chain(kinds)
            .map(|k| {
                format!(
                    "<option value=\"{v}\"{sel}>{label}</option>",
                    v = html_escape(&k),
                    sel = if k == filter.kind { " selected" } else { "" },
                    label = if k.is_empty() {
                        t("alle", "all").to_string()
                    } else {
                        html_escape(&k)
                    }
                )
            })
            .collect();
        let qs = req.query.as_deref().unwrap_or("");
        let body = format!(
            "<form method=\"get\" action=\"/admin/audit\" class=\"stack card\" id=\"audit-filter\">\
<label>{ulabel} <input name=\"user\" value=\"{user}\"></label>\
<label>{klabel} <select name=\"kind\">{options}</select></label>\
<label>{flabel} <input type=\"date\" name=\"from\" value=\"{from}\"></label>\
<label>{tlabel} <input type=\"date\" name=\"to\" value=\"{to}\"></label>\
<button type=\"submit\">{filter}</button>\
<a class=\"button secondary\" id=\"audit-csv\" href=\"/admin/audit.csv{qmark}{qs}\" download>{csv}</a></form>\
<p class=\"muted\" id=\"audit-count\">{count}</p>{bad}\
<div class=\"scroll\"><table class=\"responsive audit\"><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table></div>",
            ulabel = t("Bruger", "User"),
            user = html_escape(&filter.user),
            klabel = t("Hændelse", "Event"),
            flabel = t("Fra dato", "From date"),
            from = html_escape(&filter.from),
            tlabel = t("Til dato", "To date"),
            to = html_escape(&filter.to),
            filter = t("Filtrér", "Filter"),
            qmark = if qs.is_empty() { "" } else { "?" },
            qs = html_escape(qs),
            csv = t("Eksportér CSV", "Export CSV"),
            count = match lang {
                Lang::Da => format!(
                    "{} linjer matcher (nyeste først; højst {} vises, CSV-eksporten har dem alle).",
                    matching.len(),
                    AUDIT_PAGE_ROWS
                ),
                Lang::En => format!(
                    "{} lines match (newest first; at most {} shown, the CSV export has them all).",
                    matching.len(),
                    AUDIT_PAGE_ROWS
                ),
            },
            bad = if bad > 0 {
                format!(
                    "<p class=\"error\">{bad} {}</p>",
                    t(
                        "linjer er ikke gyldig JSON og er sprunget over.",
                        "lines are not valid JSON and were skipped."
                    )
                )
            } else {
                String::new()
            },
            heads = shown.iter().map(|h| format!("<th>{h}</th>")).collect::<String>(),
        );
        let mut r = self
            .inner
            .web
            .render(req, StatusCode::OK, t("Revisionslog", "Audit log"), &body);
        web::no_store(&mut r);
        r
    }

    fn audit_csv(&self, req: &HttpRequest) -> HttpResponse {
        if let Err(r) = self.admin_user(req) {
            return *r;
        }
        let filter = Self::audit_filter(req);
        match auditview::read(&self.inner.audit_log) {
            Ok((lines, _)) => {
                let matching: Vec<&serde_json::Value> = lines.iter().filter(|l| filter.matches(l)).collect();
                let mut r = download(
                    auditview::csv(&matching),
                    "text/csv; charset=utf-8",
                    "datakube-audit.csv",
                );
                web::no_store(&mut r);
                r
            }
            Err(e) => datakube_http::text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        }
    }
}

impl Handler for Portal {
    fn handle(&self, req: HttpRequest) -> BoxFuture<HttpResponse> {
        let this = self.clone();
        Box::pin(async move { this.route(req).await })
    }
}

// --- helpers -------------------------------------------------------------------------------

/// The dataset of a cube's fact table.
fn cube_dataset(cube: &Cube) -> Option<&str> {
    match &cube.source {
        datakube_model::Source::Dataset { dataset, .. } => Some(dataset),
        datakube_model::Source::Path { .. } => None,
    }
}

fn cube_link(name: &str) -> String {
    format!("/cubes/{}", percent_encode(name))
}

fn kommune_name(code: u16) -> String {
    datakube_auth::kommuner::by_code(datakube_auth::Kommunekode(code))
        .map(|k| k.name.clone())
        .unwrap_or_else(|| code.to_string())
}

/// Whose rows the principal sees.
fn scope_text(p: &Principal, lang: Lang) -> String {
    match &p.scope {
        RowScope::All => tr(lang, "alle kommuner", "all municipalities").to_string(),
        RowScope::Municipalities(k) if k.is_empty() => tr(lang, "ingen kommune", "no municipality").to_string(),
        RowScope::Municipalities(k) => k.iter().map(|k| kommune_name(k.0)).collect::<Vec<_>>().join(", "),
    }
}

fn class_badge(cube: &Cube, lang: Lang) -> String {
    let (class, text) = match cube.security.class {
        SecurityClass::Individual => (
            "",
            tr(
                lang,
                "Individniveau · kun din kommunes rækker",
                "Individual level · your municipality's rows only",
            ),
        ),
        SecurityClass::Benchmark { .. } => (
            "warn",
            tr(
                lang,
                "Benchmark · alle kommuner, små celler skjules",
                "Benchmark · all municipalities, small cells suppressed",
            ),
        ),
        SecurityClass::Public => ("ok", tr(lang, "Offentlig", "Public")),
    };
    format!("<span class=\"badge {class}\">{text}</span>")
}

fn asset(body: &'static str, content_type: &str) -> HttpResponse {
    let mut r = hyper::Response::new(datakube_http::full(bytes::Bytes::from_static(body.as_bytes())));
    let h = r.headers_mut();
    if let Ok(v) = content_type.parse() {
        h.insert(hyper::header::CONTENT_TYPE, v);
    }
    h.insert(
        hyper::header::CACHE_CONTROL,
        "public, max-age=86400".parse().expect("static header"),
    );
    h.insert("x-content-type-options", "nosniff".parse().expect("static header"));
    r
}

/// A file to save: `Content-Disposition: attachment` with an ASCII and a UTF-8 name.
fn download(body: String, content_type: &str, filename: &str) -> HttpResponse {
    let mut r = hyper::Response::new(datakube_http::full(body));
    let h = r.headers_mut();
    if let Ok(v) = content_type.parse() {
        h.insert(hyper::header::CONTENT_TYPE, v);
    }
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        percent_encode(filename)
    )
    .parse()
    {
        h.insert(hyper::header::CONTENT_DISPOSITION, v);
    }
    h.insert("x-content-type-options", "nosniff".parse().expect("static header"));
    r
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode `%XX` escapes; `None` for a broken escape or text that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        assert_eq!(percent_encode("Økonomi"), "%C3%98konomi");
        assert_eq!(percent_decode("%C3%98konomi").as_deref(), Some("Økonomi"));
        assert_eq!(percent_decode("%C3"), None);
        assert_eq!(percent_decode("%zz"), None);
    }
}
