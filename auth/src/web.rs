//! The browser side of authentication: `/login`, `/callback`, `/logout` and the personal
//! access token page `/tokens`.
//!
//! - With an OpenID provider, `GET /login` redirects to it (authorization code flow with
//!   PKCE, state and nonce; the state is also bound to this browser by a short-lived
//!   `dk_login` cookie) and `GET /callback` finishes the login.
//! - In development mode `GET /login` shows a form for the development users instead, so a
//!   token can be created without an identity provider.
//! - Any verified login ends in [`AuthWeb::complete_login`] (the SAML ACS handler calls it
//!   too): it remembers the identity (for impersonation), creates a browser session (random
//!   id in an `HttpOnly; Secure; SameSite=Lax` cookie; server-side store bounded by
//!   [`MAX_SESSIONS`], idle expiry [`SESSION_IDLE`], absolute [`SESSION_MAX`]) and redirects to
//!   `/tokens`.
//! - `/tokens` lists the user's tokens and creates and revokes them; every POST carries the
//!   session's CSRF token (form field `csrf` or header `X-CSRF-Token`). `Accept:
//!   application/json` (or a JSON body) gives JSON instead of HTML.
//!
//! Every login, failed login, logout, token creation and revocation goes to the audit log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use datakube_http::{BoxFuture, HttpRequest, HttpResponse};
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::audit::{AuditEvent, AuditLog, now_rfc3339};
use crate::identities::IdentityStore;
use crate::oidc::{Oidc, PendingLogin};
use crate::pat::{self, PatStore};
use crate::util::{html_escape, random_token, rfc3339, unix_now};
use crate::{AuthMethod, DEV_USERS, Identity, IdentityMapper, Principal, constant_time_eq};
pub use datakube_model::Lang;

pub const SESSION_COOKIE: &str = "dk_session";
pub const LOGIN_COOKIE: &str = "dk_login";
/// The chosen page language (`da` or `en`), set by `?lang=` on any page.
pub const LANG_COOKIE: &str = "dk_lang";
/// Most browser sessions held; the least recently used is dropped first.
pub const MAX_SESSIONS: usize = 10_000;
/// A session unused this long is gone.
pub const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
/// A session is gone this long after the login, used or not.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 3600);
/// Most logins in progress (between `/login` and `/callback`).
pub const MAX_PENDING: usize = 1_000;
/// A login must come back to `/callback` within this time.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Default lifetime offered for a new token (days).
pub const DEFAULT_TOKEN_DAYS: u32 = 30;

/// How users log in through the browser.
pub enum LoginMode {
    /// Through the OpenID provider.
    Oidc(Arc<Oidc>),
    /// A form for the fixed development users (development identity only).
    Development,
    /// No browser login here (e.g. only SAML, which calls [`AuthWeb::complete_login`]).
    None,
}

struct BrowserSession {
    identity: Identity,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

struct Pending {
    login: PendingLogin,
    binding: String,
}

struct Inner {
    mode: LoginMode,
    public_url: String,
    sessions: Mutex<HashMap<String, BrowserSession>>,
    pending: Mutex<HashMap<String, Pending>>,
    pats: Arc<PatStore>,
    identities: Arc<IdentityStore>,
    mapper: Arc<dyn IdentityMapper>,
    audit: Option<Arc<AuditLog>>,
    max_sessions: usize,
    layout: OnceLock<Arc<dyn PageLayout>>,
}

/// The login pages and the token page (a cheap handle; clone it freely).
#[derive(Clone)]
pub struct AuthWeb {
    inner: Arc<Inner>,
}

/// The paths [`AuthWeb`] answers (exact paths; `/tokens` also with sub-paths).
pub const PATHS: &[&str] = &["/login", "/callback", "/logout", "/tokens"];

/// What a page layout knows about the request it frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageContext {
    pub lang: Lang,
    /// The request path (for the language switch and the current navigation entry).
    pub path: String,
    /// The logged-in user's display name, if any.
    pub user: Option<String>,
    /// Whether that user is an administrator (shows the administration link).
    pub admin: bool,
}

/// Frames a page's body in the site's look (the portal sets one with
/// [`AuthWeb::set_layout`]); without it a plain built-in frame is used.
pub trait PageLayout: Send + Sync {
    /// The whole HTML document: `title` is text, `body` is HTML.
    fn render(&self, ctx: &PageContext, title: &str, body: &str) -> String;
}

/// The logged-in user of a browser request: the identity of the session, mapped again (so
/// role changes apply at once), and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub identity: Identity,
    pub principal: Principal,
    pub csrf: String,
}

/// The language of a request: `?lang=da|en`, else the `dk_lang` cookie, else Danish.
pub fn request_lang(req: &HttpRequest) -> Lang {
    let pick = |v: &str| match v {
        "en" => Some(Lang::En),
        "da" => Some(Lang::Da),
        _ => None,
    };
    query(req)
        .get("lang")
        .and_then(|v| pick(v))
        .or_else(|| cookie(req, LANG_COOKIE).and_then(|v| pick(&v)))
        .unwrap_or_default()
}

/// `da` or `en`.
pub fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Da => "da",
        Lang::En => "en",
    }
}

/// Danish or English text.
pub fn tr<'a>(lang: Lang, da: &'a str, en: &'a str) -> &'a str {
    match lang {
        Lang::Da => da,
        Lang::En => en,
    }
}

/// Remember a `?lang=` choice in a cookie (one year) on the response.
fn remember_lang(req: &HttpRequest, r: &mut HttpResponse) {
    if let Some(v) = query(req).get("lang").filter(|v| *v == "da" || *v == "en") {
        add_cookie(
            r,
            &format!("{LANG_COOKIE}={v}; Path=/; Secure; SameSite=Lax; Max-Age=31536000"),
        );
    }
}

impl AuthWeb {
    /// `public_url` is the server's external base URL (`https://host:port`), used for links.
    pub fn new(
        mode: LoginMode,
        public_url: &str,
        pats: Arc<PatStore>,
        identities: Arc<IdentityStore>,
        mapper: Arc<dyn IdentityMapper>,
        audit: Option<Arc<AuditLog>>,
    ) -> AuthWeb {
        AuthWeb {
            inner: Arc::new(Inner {
                mode,
                public_url: public_url.trim_end_matches('/').to_string(),
                sessions: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                pats,
                identities,
                mapper,
                audit,
                max_sessions: MAX_SESSIONS,
                layout: OnceLock::new(),
            }),
        }
    }

    /// Frame every page (login, tokens, errors, and the portal's) with `layout`. Only the
    /// first call counts; it applies to every clone of this handle.
    pub fn set_layout(&self, layout: Arc<dyn PageLayout>) {
        let _ = self.inner.layout.set(layout);
    }

    /// The logged-in user of a browser request, or `None` (no or expired session, or the
    /// identity mapping now refuses the user).
    pub fn session_user(&self, req: &HttpRequest) -> Option<SessionUser> {
        let (_, identity, csrf) = self.session(req)?;
        let principal = self.inner.mapper.map(&identity).ok()?;
        Some(SessionUser {
            identity,
            principal,
            csrf,
        })
    }

    /// Whether a POST carries the session's CSRF token (header `X-CSRF-Token` or the form
    /// field `csrf`), compared in constant time.
    pub fn csrf_ok(&self, req: &HttpRequest, user: &SessionUser) -> bool {
        let sent = header(req, "x-csrf-token")
            .or_else(|| body_fields(req).get("csrf").cloned())
            .unwrap_or_default();
        !sent.is_empty() && constant_time_eq(sent.as_bytes(), user.csrf.as_bytes())
    }

    /// The context of a page for `req`: language, user, administrator.
    pub fn page_context(&self, req: &HttpRequest) -> PageContext {
        let user = self.session_user(req);
        PageContext {
            lang: request_lang(req),
            path: req.path.clone(),
            admin: user.as_ref().is_some_and(|u| u.principal.is_admin()),
            user: user.map(|u| u.identity.display_name),
        }
    }

    /// An HTML page in the site's layout with strict security headers; remembers a
    /// `?lang=` choice.
    pub fn render(&self, req: &HttpRequest, status: StatusCode, title: &str, body: &str) -> HttpResponse {
        let ctx = self.page_context(req);
        let mut r = self.render_ctx(&ctx, status, title, body);
        remember_lang(req, &mut r);
        r
    }

    fn render_ctx(&self, ctx: &PageContext, status: StatusCode, title: &str, body: &str) -> HttpResponse {
        let html = match self.inner.layout.get() {
            Some(l) => l.render(ctx, title, body),
            None => plain_page(ctx.lang, title, body),
        };
        html_response(status, html)
    }

    /// Number of live browser sessions (for tests and metrics).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn audit(
        &self,
        kind: &str,
        identity: Option<&Identity>,
        outcome: &str,
        detail: &str,
        peer: &str,
        secrets: &[&str],
    ) {
        let Some(log) = &self.inner.audit else { return };
        let event = AuditEvent {
            time: now_rfc3339(),
            kind: kind.into(),
            user: identity.map(|i| i.subject.clone()).unwrap_or_default(),
            organisation: identity.map(|i| i.organisations.clone()).unwrap_or_default(),
            method: identity.map(|i| method_name(&i.method)).unwrap_or_default(),
            peer: peer.into(),
            outcome: outcome.into(),
            detail: detail.into(),
            ..AuditEvent::default()
        };
        if let Err(e) = log.record(&event, secrets) {
            tracing::error!("audit log: {e}");
        }
    }

    /// Finish a verified login (OIDC callback, development form, SAML ACS): remember the
    /// identity, start a browser session and redirect to `/tokens`. A user the mapper denies
    /// gets a 403 page (and an audit line) instead.
    pub fn complete_login(&self, identity: Identity, peer: &str) -> HttpResponse {
        if let Err(why) = self.inner.mapper.map(&identity) {
            self.audit("login", Some(&identity), "denied", &why, peer, &[]);
            let ctx = PageContext {
                lang: Lang::Da,
                path: "/login".into(),
                user: None,
                admin: false,
            };
            return self.render_ctx(
                &ctx,
                StatusCode::FORBIDDEN,
                "Ingen adgang · No access",
                &format!(
                    "<p>Du er logget ind som {name}, men har ingen adgang til datakube: {why}</p>\
<p lang=\"en\">You are logged in as {name}, but have no access to datakube: {why}</p>",
                    name = html_escape(&identity.display_name),
                    why = html_escape(&why)
                ),
            );
        }
        if let Err(e) = self.inner.identities.record(&identity, unix_now()) {
            tracing::error!("could not remember the identity of a login: {e}");
        }
        let id = random_token(32);
        let now = Instant::now();
        {
            let mut s = self.inner.sessions.lock().unwrap_or_else(|p| p.into_inner());
            s.retain(|_, v| alive(v, now));
            if s.len() >= self.inner.max_sessions
                && let Some(oldest) = s.iter().min_by_key(|(_, v)| v.last_seen).map(|(k, _)| k.clone())
            {
                s.remove(&oldest);
            }
            s.insert(
                id.clone(),
                BrowserSession {
                    identity: identity.clone(),
                    csrf: random_token(32),
                    created: now,
                    last_seen: now,
                },
            );
        }
        self.audit("login", Some(&identity), "ok", "browser session started", peer, &[&id]);
        let mut r = redirect("/tokens");
        add_cookie(&mut r, &session_cookie(SESSION_COOKIE, &id, None));
        add_cookie(&mut r, &session_cookie(LOGIN_COOKIE, "", Some(0)));
        r
    }

    /// The session of a request: (session id, identity, CSRF token).
    fn session(&self, req: &HttpRequest) -> Option<(String, Identity, String)> {
        let id = cookie(req, SESSION_COOKIE)?;
        let now = Instant::now();
        let mut s = self.inner.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let live = s.get(&id).is_some_and(|v| alive(v, now));
        if !live {
            s.remove(&id);
            return None;
        }
        let v = s.get_mut(&id)?;
        v.last_seen = now;
        Some((id, v.identity.clone(), v.csrf.clone()))
    }

    async fn login(&self, req: &HttpRequest) -> HttpResponse {
        let peer = req.peer.to_string();
        let lang = request_lang(req);
        match (&self.inner.mode, &req.method) {
            (LoginMode::Oidc(oidc), &Method::GET) => match oidc.begin_login().await {
                Ok((url, login)) => {
                    let binding = random_token(24);
                    {
                        let mut p = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
                        p.retain(|_, v| v.login.created.elapsed() < PENDING_TTL);
                        if p.len() >= MAX_PENDING
                            && let Some(oldest) = p.iter().min_by_key(|(_, v)| v.login.created).map(|(k, _)| k.clone())
                        {
                            p.remove(&oldest);
                        }
                        p.insert(
                            login.state.clone(),
                            Pending {
                                login,
                                binding: binding.clone(),
                            },
                        );
                    }
                    let mut r = redirect(&url);
                    add_cookie(
                        &mut r,
                        &session_cookie(LOGIN_COOKIE, &binding, Some(PENDING_TTL.as_secs())),
                    );
                    r
                }
                Err(why) => {
                    self.audit("login", None, "fault", &why, &peer, &[]);
                    self.render(
                        req,
                        StatusCode::BAD_GATEWAY,
                        tr(lang, "Login er ikke muligt", "Login is not possible"),
                        &format!(
                            "<p>{} {}</p>",
                            tr(
                                lang,
                                "Identitetsudbyderen svarer ikke:",
                                "The identity provider does not answer:"
                            ),
                            html_escape(&why)
                        ),
                    )
                }
            },
            (LoginMode::Development, &Method::GET) => self.dev_form(req, StatusCode::OK, ""),
            (LoginMode::Development, &Method::POST) => {
                let form = form(&req.body);
                let binding = cookie(req, LOGIN_COOKIE).unwrap_or_default();
                let csrf = form.get("csrf").cloned().unwrap_or_default();
                if binding.is_empty() || !constant_time_eq(binding.as_bytes(), csrf.as_bytes()) {
                    self.audit(
                        "login",
                        None,
                        "denied",
                        "login form without a valid CSRF token",
                        &peer,
                        &[],
                    );
                    return self.dev_form(
                        req,
                        StatusCode::FORBIDDEN,
                        tr(
                            lang,
                            "Formularen er udløbet; prøv igen.",
                            "The form has expired; try again.",
                        ),
                    );
                }
                let user = form
                    .get("user")
                    .map(|u| u.trim().to_ascii_lowercase())
                    .unwrap_or_default();
                let password = form.get("password").cloned().unwrap_or_default();
                let ok = DEV_USERS
                    .iter()
                    .find(|d| d.user == user)
                    .filter(|d| constant_time_eq(d.password.as_bytes(), password.as_bytes()));
                match ok.and_then(|d| crate::mapper::dev_identity(d.user)) {
                    Some(identity) => self.complete_login(identity, &peer),
                    None => {
                        self.audit(
                            "login",
                            None,
                            "denied",
                            "development login: unknown user or wrong password",
                            &peer,
                            &[&password],
                        );
                        self.dev_form(
                            req,
                            StatusCode::UNAUTHORIZED,
                            tr(
                                lang,
                                "Ukendt bruger eller forkert adgangskode.",
                                "Unknown user or wrong password.",
                            ),
                        )
                    }
                }
            }
            _ => self.render(
                req,
                StatusCode::NOT_FOUND,
                tr(lang, "Ingen login her", "No login here"),
                tr(
                    lang,
                    "<p>Denne server har ingen browser-login konfigureret.</p>",
                    "<p>This server has no browser login configured.</p>",
                ),
            ),
        }
    }

    fn dev_form(&self, req: &HttpRequest, status: StatusCode, message: &str) -> HttpResponse {
        let lang = request_lang(req);
        let binding = random_token(24);
        let users: String = DEV_USERS
            .iter()
            .map(|d| {
                format!(
                    "<li><code>{}</code> — {}</li>",
                    html_escape(d.user),
                    html_escape(d.name)
                )
            })
            .collect();
        let msg = if message.is_empty() {
            String::new()
        } else {
            format!("<p class=\"error\">{}</p>", html_escape(message))
        };
        let mut r = self.render(
            req,
            status,
            tr(lang, "Log ind (udviklingsidentitet)", "Log in (development identity)"),
            &format!(
                "<p class=\"warning\"><strong>{warn}</strong> {readme}</p>\
{msg}<form method=\"post\" action=\"/login\" class=\"stack\"><input type=\"hidden\" name=\"csrf\" value=\"{binding}\">\
<label>{user} <input name=\"user\" autocomplete=\"username\" required></label> \
<label>{password} <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label> \
<button type=\"submit\">{login}</button></form><ul>{users}</ul>",
                warn = tr(
                    lang,
                    "Udviklingsidentitet — ikke til produktion.",
                    "Development identity — not for production."
                ),
                readme = tr(
                    lang,
                    "Brugerne og deres adgangskoder står i README.",
                    "The users and their passwords are listed in the README."
                ),
                user = tr(lang, "Bruger", "User"),
                password = tr(lang, "Adgangskode", "Password"),
                login = tr(lang, "Log ind", "Log in"),
            ),
        );
        add_cookie(
            &mut r,
            &session_cookie(LOGIN_COOKIE, &binding, Some(PENDING_TTL.as_secs())),
        );
        r
    }

    async fn callback(&self, req: &HttpRequest) -> HttpResponse {
        let peer = req.peer.to_string();
        let lang = request_lang(req);
        let LoginMode::Oidc(oidc) = &self.inner.mode else {
            return self.render(
                req,
                StatusCode::NOT_FOUND,
                tr(lang, "Ingen login her", "No login here"),
                "",
            );
        };
        let q = query(req);
        let fail = |this: &Self, why: &str, secrets: &[&str]| {
            this.audit("login", None, "denied", why, &peer, secrets);
            this.render(
                req,
                StatusCode::BAD_REQUEST,
                tr(lang, "Login mislykkedes", "Login failed"),
                &format!(
                    "<p>{}</p><p><a href=\"/login\">{}</a></p>",
                    html_escape(why),
                    tr(lang, "Prøv igen", "Try again")
                ),
            )
        };
        let state = q.get("state").cloned().unwrap_or_default();
        let pending = {
            let mut p = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.remove(&state)
        };
        let Some(pending) = pending else {
            return fail(self, "unknown or already used login state", &[]);
        };
        let binding = cookie(req, LOGIN_COOKIE).unwrap_or_default();
        if !constant_time_eq(binding.as_bytes(), pending.binding.as_bytes()) {
            return fail(
                self,
                "the login was started in another browser (state cookie mismatch)",
                &[],
            );
        }
        if pending.login.created.elapsed() > PENDING_TTL {
            return fail(self, "the login took too long", &[]);
        }
        if let Some(err) = q.get("error") {
            let desc = q.get("error_description").cloned().unwrap_or_default();
            return fail(self, &format!("the identity provider refused: {err} {desc}"), &[]);
        }
        if let Some(iss) = q.get("iss")
            && iss != &oidc.config().issuer
        {
            return fail(self, "the authorization response names another issuer", &[]);
        }
        let Some(code) = q.get("code") else {
            return fail(self, "the callback has no code", &[]);
        };
        match oidc.finish_login(code, pending.login).await {
            Ok(identity) => self.complete_login(identity, &peer),
            Err(why) => fail(self, &why, &[code]),
        }
    }

    async fn logout(&self, req: &HttpRequest) -> HttpResponse {
        let lang = request_lang(req);
        let session = self.session(req);
        if let Some((id, identity, _)) = &session {
            self.inner.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            self.audit("logout", Some(identity), "ok", "", &req.peer.to_string(), &[id]);
        }
        let provider = match &self.inner.mode {
            LoginMode::Oidc(o) => o.end_session_url().await,
            _ => None,
        };
        let link = provider
            .map(|u| {
                format!(
                    "<p><a href=\"{}\">{}</a></p>",
                    html_escape(&u),
                    tr(
                        lang,
                        "Log også ud hos identitetsudbyderen",
                        "Also log out at the identity provider"
                    )
                )
            })
            .unwrap_or_default();
        let mut r = self.render(
            req,
            StatusCode::OK,
            tr(lang, "Logget ud", "Logged out"),
            &format!(
                "<p>{}</p>{link}<p><a href=\"/login\">{}</a></p>",
                tr(lang, "Du er logget ud af datakube.", "You are logged out of datakube."),
                tr(lang, "Log ind igen", "Log in again")
            ),
        );
        add_cookie(&mut r, &session_cookie(SESSION_COOKIE, "", Some(0)));
        r
    }

    fn tokens(&self, req: &HttpRequest) -> HttpResponse {
        let wants_json = accepts_json(req);
        let Some((_sid, identity, csrf)) = self.session(req) else {
            return if wants_json || req.method != Method::GET {
                datakube_http::json(StatusCode::UNAUTHORIZED, &json!({"error": "log in at /login first"}))
            } else {
                redirect("/login")
            };
        };
        let peer = req.peer.to_string();
        let now = unix_now();
        let sub = req.path.trim_start_matches("/tokens").trim_matches('/');
        match (&req.method, sub) {
            (&Method::GET, "") => {
                let list = self.inner.pats.list(&identity);
                if wants_json {
                    return datakube_http::json(
                        StatusCode::OK,
                        &json!({"user": identity.subject, "csrf": csrf, "tokens": list.iter().map(|t| token_json(t, now)).collect::<Vec<_>>()}),
                    );
                }
                self.tokens_page(req, &identity, &csrf, &list, now, None)
            }
            (&Method::POST, rest) => {
                let body = body_fields(req);
                let sent = header(req, "x-csrf-token")
                    .or_else(|| body.get("csrf").cloned())
                    .unwrap_or_default();
                if !constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
                    self.audit(
                        if rest.is_empty() {
                            "token_created"
                        } else {
                            "token_revoked"
                        },
                        Some(&identity),
                        "denied",
                        "missing or wrong CSRF token",
                        &peer,
                        &[],
                    );
                    return self.error(
                        req,
                        wants_json,
                        StatusCode::FORBIDDEN,
                        "missing or wrong CSRF token; reload /tokens",
                    );
                }
                if rest.is_empty() {
                    let name = body.get("name").cloned().unwrap_or_default();
                    let days = match body.get("days").map(|d| d.trim().parse::<u32>()) {
                        None => DEFAULT_TOKEN_DAYS,
                        Some(Ok(d)) => d,
                        Some(Err(_)) => 0,
                    };
                    match self.inner.pats.create(&identity, &name, days, now) {
                        Ok((token, record)) => {
                            self.audit(
                                "token_created",
                                Some(&identity),
                                "ok",
                                &format!(
                                    "token {} {:?}, expires {}",
                                    record.id,
                                    record.name,
                                    rfc3339(record.expires)
                                ),
                                &peer,
                                &[&token],
                            );
                            if wants_json {
                                let mut v = token_json(&record, now);
                                v["token"] = token.clone().into();
                                let mut r = datakube_http::json(StatusCode::CREATED, &v);
                                no_store(&mut r);
                                return r;
                            }
                            let list = self.inner.pats.list(&identity);
                            self.tokens_page(req, &identity, &csrf, &list, now, Some((&token, &record)))
                        }
                        Err(e) => self.error(req, wants_json, StatusCode::BAD_REQUEST, &e.to_string()),
                    }
                } else if let Some(id) = rest.strip_suffix("/revoke") {
                    match self.inner.pats.revoke(&identity, id, now) {
                        Ok(record) => {
                            self.audit(
                                "token_revoked",
                                Some(&identity),
                                "ok",
                                &format!("token {} {:?}", record.id, record.name),
                                &peer,
                                &[],
                            );
                            if wants_json {
                                datakube_http::json(StatusCode::OK, &token_json(&record, now))
                            } else {
                                redirect("/tokens")
                            }
                        }
                        Err(e) => self.error(req, wants_json, StatusCode::NOT_FOUND, &e.to_string()),
                    }
                } else {
                    self.error(req, wants_json, StatusCode::NOT_FOUND, "no such action")
                }
            }
            _ => self.error(req, wants_json, StatusCode::NOT_FOUND, "no such page"),
        }
    }

    fn tokens_page(
        &self,
        req: &HttpRequest,
        identity: &Identity,
        csrf: &str,
        list: &[pat::PatRecord],
        now: u64,
        created: Option<(&str, &pat::PatRecord)>,
    ) -> HttpResponse {
        let lang = request_lang(req);
        let t = |da: &'static str, en: &'static str| tr(lang, da, en);
        let xmla = format!("{}/xmla", self.inner.public_url);
        let fresh = created
            .map(|(token, r)| {
                format!(
                    "<section class=\"new card\"><h2>{head}: {name}</h2><p>{once}</p>\
<p><code id=\"new-token\">{token}</code> <button type=\"button\" class=\"copy\" data-copy=\"new-token\">{copy}</button></p>\
<p>{expires} {at}.</p></section>",
                    head = t("Ny token", "New token"),
                    name = html_escape(&r.name),
                    once = t(
                        "Kopiér den nu — den vises kun denne ene gang:",
                        "Copy it now — it is shown this one time only:"
                    ),
                    token = html_escape(token),
                    copy = t("Kopiér", "Copy"),
                    expires = t("Udløber", "Expires"),
                    at = rfc3339(r.expires)
                )
            })
            .unwrap_or_default();
        let rows: String = list
            .iter()
            .map(|tk| {
                let status = if tk.revoked.is_some() {
                    t("tilbagekaldt", "revoked")
                } else if now >= tk.expires {
                    t("udløbet", "expired")
                } else {
                    t("aktiv", "active")
                };
                let action = if tk.is_live(now) {
                    format!(
                        "<form method=\"post\" action=\"/tokens/{id}/revoke\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\" class=\"danger\">{revoke}</button></form>",
                        id = html_escape(&tk.id),
                        csrf = html_escape(csrf),
                        revoke = t("Tilbagekald", "Revoke"),
                    )
                } else {
                    String::new()
                };
                format!(
                    "<tr data-token-id=\"{}\"><td data-label=\"{}\">{}</td><td data-label=\"{}\">{}</td><td data-label=\"{}\">{}</td>\
<td data-label=\"{}\">{}</td><td data-label=\"{}\">{status}</td><td>{action}</td></tr>",
                    html_escape(&tk.id),
                    t("Navn", "Name"),
                    html_escape(&tk.name),
                    t("Oprettet", "Created"),
                    rfc3339(tk.created),
                    t("Udløber", "Expires"),
                    rfc3339(tk.expires),
                    t("Sidst brugt", "Last used"),
                    tk.last_used.map(rfc3339).unwrap_or_else(|| t("aldrig", "never").into()),
                    t("Status", "Status"),
                )
            })
            .collect();
        let empty = if list.is_empty() {
            format!(
                "<p class=\"muted\">{}</p>",
                t("Du har ingen tokens endnu.", "You have no tokens yet.")
            )
        } else {
            String::new()
        };
        let mut r = self.render(
            req,
            StatusCode::OK,
            t("Personlige adgangstokens", "Personal access tokens"),
            &format!(
                "<p>{logged_in} <strong>{name}</strong> ({method}).</p>{fresh}\
<p>{how} <code>{xmla}</code>{how2}</p>\
<section class=\"card\"><h2>{create}</h2><form method=\"post\" action=\"/tokens\" class=\"stack\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label>{name_label} <input name=\"name\" required maxlength=\"{maxname}\" placeholder=\"{placeholder}\"></label> \
<label>{days_label} {maxdays}) <input name=\"days\" type=\"number\" min=\"1\" max=\"{maxdays}\" value=\"{days}\" required></label> \
<button type=\"submit\">{create_button}</button></form></section>\
<h2>{yours}</h2>{empty}<table class=\"responsive\"><thead><tr><th>{c1}</th><th>{c2}</th><th>{c3}</th><th>{c4}</th><th>{c5}</th><th></th></tr></thead>\
<tbody>{rows}</tbody></table>",
                logged_in = t("Logget ind som", "Logged in as"),
                name = html_escape(&identity.display_name),
                method = method_name(&identity.method),
                how = t(
                    "I Excel, Power BI eller TARGIT: server",
                    "In Excel, Power BI or TARGIT: server"
                ),
                how2 = t(
                    ", et vilkårligt brugernavn, og tokenen som adgangskode.",
                    ", any user name, and the token as the password."
                ),
                xmla = html_escape(&xmla),
                create = t("Opret en token", "Create a token"),
                csrf = html_escape(csrf),
                name_label = t("Navn", "Name"),
                placeholder = t("fx Excel på min pc", "e.g. Excel on my PC"),
                days_label = t("Gyldig i dage (højst", "Valid for days (at most"),
                create_button = t("Opret", "Create"),
                yours = t("Dine tokens", "Your tokens"),
                c1 = t("Navn", "Name"),
                c2 = t("Oprettet", "Created"),
                c3 = t("Udløber", "Expires"),
                c4 = t("Sidst brugt", "Last used"),
                c5 = t("Status", "Status"),
                maxname = pat::MAX_NAME_CHARS,
                maxdays = pat::MAX_DAYS,
                days = DEFAULT_TOKEN_DAYS,
            ),
        );
        no_store(&mut r);
        r
    }

    fn error(&self, req: &HttpRequest, json: bool, status: StatusCode, message: &str) -> HttpResponse {
        if json {
            datakube_http::json(status, &json!({ "error": message }))
        } else {
            let lang = request_lang(req);
            self.render(
                req,
                status,
                tr(lang, "Fejl", "Error"),
                &format!(
                    "<p class=\"error\">{}</p><p><a href=\"/tokens\">{}</a></p>",
                    html_escape(message),
                    tr(lang, "Tilbage", "Back")
                ),
            )
        }
    }
}

fn alive(s: &BrowserSession, now: Instant) -> bool {
    now.duration_since(s.last_seen) < SESSION_IDLE && now.duration_since(s.created) < SESSION_MAX
}

fn method_name(m: &AuthMethod) -> String {
    match m {
        AuthMethod::Development => "development",
        AuthMethod::Oidc => "oidc",
        AuthMethod::Saml => "saml",
        AuthMethod::PersonalAccessToken => "pat",
        AuthMethod::ServiceAccount => "service_account",
    }
    .into()
}

fn token_json(t: &pat::PatRecord, now: u64) -> serde_json::Value {
    json!({
        "id": t.id, "name": t.name, "created": rfc3339(t.created), "expires": rfc3339(t.expires),
        "last_used": t.last_used.map(rfc3339), "revoked": t.revoked.map(rfc3339), "live": t.is_live(now),
    })
}

impl datakube_http::Handler for AuthWeb {
    fn handle(&self, req: HttpRequest) -> BoxFuture<HttpResponse> {
        let this = self.clone();
        Box::pin(async move {
            match req.path.as_str() {
                "/login" => this.login(&req).await,
                "/callback" if req.method == Method::GET => this.callback(&req).await,
                "/logout" => this.logout(&req).await,
                p if p == "/tokens" || p.starts_with("/tokens/") => this.tokens(&req),
                _ => this.render(&req, StatusCode::NOT_FOUND, "Ikke fundet · Not found", ""),
            }
        })
    }
}

// --- HTTP helpers ------------------------------------------------------------------------------

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn accepts_json(req: &HttpRequest) -> bool {
    header(req, "accept").is_some_and(|a| a.contains("application/json"))
        || header(req, "content-type").is_some_and(|c| c.contains("application/json"))
}

/// A cookie of the request.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

fn pairs(bytes: &[u8]) -> HashMap<String, String> {
    openidconnect::url::form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The query parameters of a request.
pub fn query(req: &HttpRequest) -> HashMap<String, String> {
    pairs(req.query.as_deref().unwrap_or("").as_bytes())
}

fn form(body: &[u8]) -> HashMap<String, String> {
    pairs(body)
}

/// Fields of a form or JSON object body.
pub fn body_fields(req: &HttpRequest) -> HashMap<String, String> {
    if header(req, "content-type").is_some_and(|c| c.contains("application/json")) {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&req.body)
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| {
                        let s = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, s)
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        form(&req.body)
    }
}

/// `Set-Cookie` text: HttpOnly, Secure, SameSite=Lax, Path=/; `max_age` 0 deletes it.
fn session_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Lax");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    c
}

fn add_cookie(r: &mut HttpResponse, cookie: &str) {
    if let Ok(v) = cookie.parse() {
        r.headers_mut().append(hyper::header::SET_COOKIE, v);
    }
}

/// `Cache-Control: no-store`.
pub fn no_store(r: &mut HttpResponse) {
    r.headers_mut()
        .insert(hyper::header::CACHE_CONTROL, "no-store".parse().expect("static header"));
}

/// 303 See Other to `location`.
pub fn redirect(location: &str) -> HttpResponse {
    let mut r = hyper::Response::new(datakube_http::full(bytes::Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = location.parse() {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    no_store(&mut r);
    r
}

/// The built-in frame when no layout is set.
fn plain_page(lang: Lang, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"{l}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>{t} — datakube</title><style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}\
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ccc;padding:.3rem .6rem;text-align:left}}\
code#new-token{{font-size:1.1rem;background:#ffd;padding:.3rem;word-break:break-all}}.error{{color:#b00}}</style></head>\
<body><h1>{t}</h1>{body}</body></html>",
        l = lang_code(lang),
        t = html_escape(title)
    )
}

/// The security headers of every HTML page: scripts and styles only from this server (the
/// portal's `/assets/`; inline styles allowed), no framing, no referrer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML response with strict security headers.
pub fn html_response(status: StatusCode, html: String) -> HttpResponse {
    let mut r = hyper::Response::new(datakube_http::full(html));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        "text/html; charset=utf-8".parse().expect("static header"),
    );
    h.insert(
        "content-security-policy",
        CONTENT_SECURITY_POLICY.parse().expect("static header"),
    );
    h.insert("x-frame-options", "DENY".parse().expect("static header"));
    h.insert("referrer-policy", "no-referrer".parse().expect("static header"));
    h.insert("x-content-type-options", "nosniff".parse().expect("static header"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapper::InterimMapper;
    use datakube_http::Handler as _;
    use http_body_util::BodyExt as _;

    struct Fixture {
        _dir: tempfile::TempDir,
        web: AuthWeb,
        audit: Arc<AuditLog>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let audit = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl"), 1 << 20, 1).unwrap());
        let web = AuthWeb::new(
            LoginMode::Development,
            "https://localhost:8443",
            Arc::new(PatStore::open(&dir.path().join("tokens.json")).unwrap()),
            Arc::new(IdentityStore::open(&dir.path().join("identities.json")).unwrap()),
            Arc::new(InterimMapper {
                development: true,
                ..InterimMapper::default()
            }),
            Some(audit.clone()),
        );
        Fixture { _dir: dir, web, audit }
    }

    fn request(method: Method, path: &str, cookies: &str, body: &str) -> HttpRequest {
        let mut headers = hyper::HeaderMap::new();
        if !cookies.is_empty() {
            headers.insert(hyper::header::COOKIE, cookies.parse().unwrap());
        }
        headers.insert(
            hyper::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        HttpRequest {
            method,
            path: path.into(),
            query: None,
            headers,
            body: bytes::Bytes::from(body.to_string()),
            peer: "127.0.0.1:5000".parse().unwrap(),
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn text(r: HttpResponse) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    fn set_cookie(r: &HttpResponse, name: &str) -> Option<String> {
        r.headers()
            .get_all(hyper::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
        let i = s.find(a).unwrap_or_else(|| panic!("{a} not in {s}")) + a.len();
        &s[i..i + s[i..].find(b).unwrap()]
    }

    #[test]
    fn dev_login_creates_a_session_and_tokens_need_csrf() {
        let f = fixture();
        rt().block_on(async {
            let r = f.web.handle(request(Method::GET, "/login", "", "")).await;
            let login_cookie = set_cookie(&r, LOGIN_COOKIE).unwrap();
            assert!(
                login_cookie.contains("HttpOnly")
                    && login_cookie.contains("Secure")
                    && login_cookie.contains("SameSite=Lax")
            );
            let binding = between(&login_cookie, "=", ";").to_string();
            let html = text(r).await;
            assert!(html.contains(&format!("value=\"{binding}\"")));
            // Wrong password: 401, audited without the password.
            let r = f
                .web
                .handle(request(
                    Method::POST,
                    "/login",
                    &format!("{LOGIN_COOKIE}={binding}"),
                    &format!("csrf={binding}&user=aarhus&password=wrong-password-123"),
                ))
                .await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            // Right password without the binding cookie: refused.
            let r = f
                .web
                .handle(request(
                    Method::POST,
                    "/login",
                    "",
                    &format!("csrf={binding}&user=aarhus&password=aarhus"),
                ))
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            let r = f
                .web
                .handle(request(
                    Method::POST,
                    "/login",
                    &format!("{LOGIN_COOKIE}={binding}"),
                    &format!("csrf={binding}&user=aarhus&password=aarhus"),
                ))
                .await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            assert_eq!(r.headers()["location"], "/tokens");
            let sc = set_cookie(&r, SESSION_COOKIE).unwrap();
            assert!(
                sc.contains("HttpOnly") && sc.contains("Secure") && sc.contains("SameSite=Lax"),
                "{sc}"
            );
            let sid = between(&sc, "=", ";").to_string();
            let cookies = format!("{SESSION_COOKIE}={sid}");
            let html = text(f.web.handle(request(Method::GET, "/tokens", &cookies, "")).await).await;
            let csrf = between(&html, "name=\"csrf\" value=\"", "\"").to_string();
            // Without CSRF: refused.
            let r = f
                .web
                .handle(request(Method::POST, "/tokens", &cookies, "name=excel&days=30"))
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            // Over 90 days: refused.
            let r = f
                .web
                .handle(request(
                    Method::POST,
                    "/tokens",
                    &cookies,
                    &format!("csrf={csrf}&name=excel&days=91"),
                ))
                .await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            let r = f
                .web
                .handle(request(
                    Method::POST,
                    "/tokens",
                    &cookies,
                    &format!("csrf={csrf}&name=excel&days=30"),
                ))
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()["cache-control"], "no-store");
            let html = text(r).await;
            let token = between(&html, "<code id=\"new-token\">", "</code>").to_string();
            assert!(token.starts_with(pat::PREFIX));
            // The list page does not show it again.
            let html = text(f.web.handle(request(Method::GET, "/tokens", &cookies, "")).await).await;
            assert!(!html.contains(&token) && html.contains("excel"));
            let id = between(&html, "data-token-id=\"", "\"").to_string();
            let r = f
                .web
                .handle(request(
                    Method::POST,
                    &format!("/tokens/{id}/revoke"),
                    &cookies,
                    &format!("csrf={csrf}"),
                ))
                .await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            // Logout ends the session.
            let r = f.web.handle(request(Method::GET, "/logout", &cookies, "")).await;
            assert!(set_cookie(&r, SESSION_COOKIE).unwrap().contains("Max-Age=0"));
            let r = f.web.handle(request(Method::GET, "/tokens", &cookies, "")).await;
            assert_eq!(r.headers()["location"], "/login");
            let audit = std::fs::read_to_string(f.audit.path()).unwrap();
            assert!(!audit.contains(&token) && !audit.contains("wrong-password-123") && !audit.contains(&sid));
            let kinds: Vec<String> = audit
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    format!("{}:{}", v["kind"].as_str().unwrap(), v["outcome"].as_str().unwrap())
                })
                .collect();
            for k in [
                "login:denied",
                "login:ok",
                "token_created:denied",
                "token_created:ok",
                "token_revoked:ok",
                "logout:ok",
            ] {
                assert!(kinds.iter().any(|x| x == k), "{k} missing in {kinds:?}");
            }
        });
    }

    #[test]
    fn sessions_are_bounded() {
        let mut f = fixture();
        Arc::get_mut(&mut f.web.inner).unwrap().max_sessions = 20;
        let id = crate::mapper::dev_identity("laesoe").unwrap();
        for _ in 0..25 {
            let _ = f.web.complete_login(id.clone(), "test");
        }
        assert_eq!(f.web.session_count(), 20);
    }
}
