//! End-to-end: a real, certified OpenID provider (npm `oidc-provider`, tests/oidc/idp.js) on
//! loopback and the real `datakube` binary over HTTPS, driven with curl (a real browser-style
//! cookie jar for the login, real Basic and Bearer credentials for XMLA).
//!
//! Needs `tests/oidc/install.sh` (scripts/test runs it); fails, never skips, without it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Answer, datakube_bin, repo_root, xml_escape};

const CLIENT_SECRET: &str = "test-client-secret-0123456789abcdef";
const AUDIENCE: &str = "urn:datakube";

type Lines = Arc<Mutex<Vec<String>>>;

/// Run `cmd` behind a bash guard that kills it when this test process goes away; collect its
/// stdout and stderr lines.
fn spawn_guarded(args: &[String], env: &[(&str, String)], cwd: &Path) -> (Child, ChildStdin, Lines) {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
    let script = format!(
        "{} 2>&1 & pid=$!; trap 'kill -TERM $pid 2>/dev/null' EXIT; read _; kill -TERM $pid; wait $pid",
        quoted.join(" ")
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script])
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let guard = child.stdin.take().unwrap();
    let lines: Lines = Arc::default();
    let out = child.stdout.take().unwrap();
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    (child, guard, lines)
}

fn wait_for(lines: &Lines, what: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(l) = lines.lock().unwrap().iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {what:?} within {timeout:?}; output:\n{}",
            lines.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test OpenID provider.
struct Idp {
    child: Child,
    guard: Option<ChildStdin>,
    lines: Lines,
    issuer: String,
    port: u16,
    keys: PathBuf,
    redirect: String,
}

impl Idp {
    fn start(port: u16, keys: &Path, redirect: &str, rotate: bool) -> Idp {
        let dir = repo_root().join("tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the test OpenID provider is not installed: run tests/oidc/install.sh (scripts/test does)"
        );
        let env = vec![
            ("PORT", port.to_string()),
            ("KEYS_FILE", keys.display().to_string()),
            ("REDIRECT_URI", redirect.to_string()),
            ("CLIENT_SECRET", CLIENT_SECRET.to_string()),
            ("AUDIENCE", AUDIENCE.to_string()),
            ("ROTATE", if rotate { "1" } else { "0" }.to_string()),
        ];
        let (child, guard, lines) = spawn_guarded(&["node".into(), "idp.js".into()], &env, &dir);
        let l = wait_for(&lines, "listening http://", Duration::from_secs(60));
        let issuer = l.trim().strip_prefix("listening ").unwrap().to_string();
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        Idp {
            child,
            guard: Some(guard),
            lines,
            issuer,
            port,
            keys: keys.to_path_buf(),
            redirect: redirect.to_string(),
        }
    }

    fn stop(&mut self) {
        drop(self.guard.take());
        let _ = self.child.wait();
    }

    /// Restart on the same port (same issuer) with a new signing key in front.
    fn rotate(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpListener::bind(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "the IdP port stays busy");
            std::thread::sleep(Duration::from_millis(100));
        }
        *self = Idp::start(self.port, &self.keys.clone(), &self.redirect.clone(), true);
    }

    fn jwks_fetches(&self) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.trim() == "request GET /jwks")
            .count()
    }

    /// A client-credentials access token (JWT) for `client` and `resource`.
    fn client_token(&self, client: &str, resource: &str) -> String {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "20", "-u", &format!("{client}:{CLIENT_SECRET}")])
            .args([
                "-d",
                "grant_type=client_credentials",
                "-d",
                &format!("resource={resource}"),
            ])
            .arg(format!("{}/token", self.issuer))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("token endpoint: {}", String::from_utf8_lossy(&out.stdout)));
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {v}"))
            .to_string()
    }

    /// A JWT with `claims`, signed by the provider's current key or a foreign one.
    fn sign(&self, claims: serde_json::Value, key: &str) -> String {
        let body = serde_json::json!({"claims": claims, "key": key}).to_string();
        let out = Command::new("curl")
            .args(["-s", "--max-time", "20", "-X", "POST", "--data-binary", &body])
            .arg(format!("{}/test/sign", self.issuer))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The real datakube binary with its whole output captured.
struct Datakube {
    _child: Child,
    _guard: ChildStdin,
    lines: Lines,
    base: String,
    port: u16,
    state: PathBuf,
}

impl Datakube {
    fn start(data: &Path, port: u16, extra: &[String], env: &[(&str, String)]) -> Datakube {
        let mut args: Vec<String> = vec![
            datakube_bin().display().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--cube-definitions".into(),
            repo_root().join("cube-definitions").display().to_string(),
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--demo-scale".into(),
            "0.002".into(),
        ];
        args.extend(extra.iter().cloned());
        let (child, guard, lines) = spawn_guarded(&args, env, &repo_root());
        wait_for(
            &lines,
            &format!("https://localhost:{port}/xmla"),
            Duration::from_secs(300),
        );
        Datakube {
            _child: child,
            _guard: guard,
            lines,
            base: format!("https://localhost:{port}"),
            port,
            state: data.join("state"),
        }
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn resolve(&self) -> String {
        format!("localhost:{}:127.0.0.1", self.port)
    }

    /// POST a SOAP body with an `Authorization` header (or none): (status, headers, body).
    fn xmla(&self, authorization: Option<&str>, body: &str) -> (u16, String, String) {
        let mut args: Vec<String> = vec![
            "-sk".into(),
            "--max-time".into(),
            "60".into(),
            "--resolve".into(),
            self.resolve(),
            "-D".into(),
            "-".into(),
            "-H".into(),
            "Content-Type: text/xml".into(),
            "--data-binary".into(),
            "@-".into(),
        ];
        if let Some(a) = authorization {
            args.push("-H".into());
            args.push(format!("Authorization: {a}"));
        }
        args.push(format!("{}/xmla", self.base));
        let mut c = Command::new("curl")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0);
        (status, head.to_ascii_lowercase(), body.to_string())
    }
}

fn basic(user: &str, password: &str) -> String {
    // base64 by hand: the tests crate has no base64 dependency.
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

fn discover_cubes() -> String {
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Discover xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<RequestType>MDSCHEMA_CUBES</RequestType><Restrictions><RestrictionList/></Restrictions><Properties><PropertyList><Catalog>FLIS</Catalog></PropertyList></Properties>\
</Discover></soap:Body></soap:Envelope>".into()
}

/// Rows per kommune of the Økonomi cube, with extra properties (impersonation).
fn execute(mdx: &str, props: &str) -> String {
    format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<Command><Statement>{}</Statement></Command><Properties><PropertyList><Catalog>FLIS</Catalog><LocaleIdentifier>1033</LocaleIdentifier>\
<MdxMissingMemberMode>Ignore</MdxMissingMemberMode>{props}\
</PropertyList></Properties></Execute></soap:Body></soap:Envelope>",
        xml_escape(mdx)
    )
}

/// Regnskab of Aarhus (751) and Læsø (825): what a principal sees of each.
const TWO_KOMMUNER: &str = "SELECT {[Kommune].[Geografi].[Kommune].&[751], [Kommune].[Geografi].[Kommune].&[825]} ON 0 \
FROM [Økonomi] WHERE ([Measures].[Regnskab])";

/// The cells of Aarhus and Læsø (`None` when empty or absent: a foreign kommune is not a
/// member for the principal, and `MdxMissingMemberMode=Ignore` leaves it out; both `None` for a
/// fault).
fn cells(body: &str) -> Vec<Option<f64>> {
    let a = Answer::parse(body);
    let names: Vec<String> = a
        .axes
        .first()
        .map(|ax| ax.iter().map(|t| t[0].0.clone()).collect())
        .unwrap_or_default();
    ["&[751]", "&[825]"]
        .iter()
        .map(|k| {
            names
                .iter()
                .position(|n| n.ends_with(k))
                .and_then(|i| a.value(i as u64))
        })
        .collect()
}

/// A browser: curl with a cookie jar, following redirects by hand across both hosts.
struct Browser {
    jar: PathBuf,
    resolve: String,
}

struct Page {
    url: String,
    status: u16,
    body: String,
}

impl Browser {
    fn request(&self, method: &str, url: &str, form: Option<&str>) -> (u16, Option<String>, String) {
        let mut c = Command::new("curl");
        c.args(["-sk", "--max-time", "30", "--resolve", &self.resolve, "-D", "-"])
            .args([
                "-b",
                &self.jar.display().to_string(),
                "-c",
                &self.jar.display().to_string(),
            ]);
        if let Some(f) = form {
            c.args(["-X", method, "--data-binary", f]);
        }
        let out = c.arg(url).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0);
        let location = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("location:"))
            .map(|l| l[9..].trim().to_string());
        (status, location, body.to_string())
    }

    /// GET or POST, then follow redirects (as GET) to the final page.
    fn go(&self, method: &str, url: &str, form: Option<&str>) -> Page {
        let (mut status, mut location, mut body) = self.request(method, url, form);
        let mut url = url.to_string();
        for _ in 0..20 {
            let Some(loc) = location.take().filter(|_| (300..400).contains(&status)) else {
                break;
            };
            url = absolute(&url, &loc);
            (status, location, body) = self.request("GET", &url, None);
        }
        Page { url, status, body }
    }
}

fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return loc.to_string();
    }
    let origin_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[origin_end..]
        .find('/')
        .map(|i| i + origin_end)
        .unwrap_or(base.len());
    format!("{}{loc}", &base[..host_end])
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let i = s.find(a)? + a.len();
    Some(&s[i..i + s[i..].find(b)?])
}

/// Log in through the provider as `account` (its devInteractions login and consent forms);
/// returns the datakube `/tokens` page.
fn browser_login(b: &Browser, dk: &Datakube, account: &str) -> Page {
    let mut page = b.go("GET", &format!("{}/login", dk.base), None);
    for _ in 0..4 {
        if page.url.starts_with(&dk.base) {
            break;
        }
        assert_eq!(page.status, 200, "IdP page {}: {}", page.url, page.body);
        let action = between(&page.body, "action=\"", "\"").expect("a form on the IdP page");
        let action = absolute(&page.url, action);
        let form = if page.body.contains("value=\"login\"") {
            format!("prompt=login&login={account}&password=irrelevant")
        } else {
            "prompt=consent".to_string()
        };
        page = b.go("POST", &action, Some(&form));
    }
    assert!(
        page.url.ends_with("/tokens"),
        "login ended at {}: {}",
        page.url,
        page.body
    );
    page
}

/// Create a token through the HTML form of the /tokens page; returns (token, page).
fn create_token(b: &Browser, dk: &Datakube, tokens_page: &str, name: &str, days: u32) -> (String, String) {
    let csrf = between(tokens_page, "name=\"csrf\" value=\"", "\"").expect("csrf field");
    let page = b.go(
        "POST",
        &format!("{}/tokens", dk.base),
        Some(&format!("csrf={csrf}&name={name}&days={days}")),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let token = between(&page.body, "<code id=\"new-token\">", "</code>")
        .expect("the new token is shown")
        .to_string();
    (token, page.body)
}

fn assert_refused(dk: &Datakube, authorization: &str, what: &str) {
    let (status, head, body) = dk.xmla(Some(authorization), &discover_cubes());
    assert_eq!(status, 401, "{what}: expected 401, got {status}: {body}");
    assert!(
        head.contains("www-authenticate: basic realm=\"datakube\""),
        "{what}: the 401 carries the Basic challenge MSOLAP needs: {head}"
    );
}

fn auth_failures(dk: &Datakube) -> Vec<String> {
    dk.audit()
        .iter()
        .filter(|l| l["kind"] == "auth_failure")
        .map(|l| l["detail"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn oidc_login_pats_bearer_rotation_refusals_and_impersonation() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dk_port = free_port();
    let redirect = format!("https://localhost:{dk_port}/callback");
    let mut idp = Idp::start(0, &tmp.path().join("idp-keys.json"), &redirect, false);
    let data = tmp.path().join("data");
    let extra: Vec<String> = [
        "--oidc-issuer",
        &idp.issuer,
        "--oidc-client-id",
        "datakube",
        "--oidc-audience",
        AUDIENCE,
        "--oidc-scopes",
        "",
        "--public-url",
        &format!("https://localhost:{dk_port}"),
        "--clock-skew-seconds",
        "1",
        "--jwks-min-refetch-seconds",
        "2",
        "--service-account",
        "bi-impersonator:analytiker:impersonate",
        "--service-account",
        "bi-plain:analytiker:kommune=825",
        "--service-account",
        "bi-short:analytiker:kommune=825",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dk = Datakube::start(
        &data,
        dk_port,
        &extra,
        &[("DATAKUBE_OIDC_CLIENT_SECRET", CLIENT_SECRET.to_string())],
    );
    let server_up = started.elapsed();
    let mut secrets: Vec<String> = vec![CLIENT_SECRET.to_string()];

    // The development identity is off when an identity provider is configured.
    assert_refused(&dk, &basic("admin", "admin"), "development user with an IdP");

    // --- Browser login (authorization code + PKCE), then a PAT through the HTML page. -----------
    let b = Browser {
        jar: tmp.path().join("cookies.txt"),
        resolve: dk.resolve(),
    };
    let t = Instant::now();
    let page = browser_login(&b, &dk, "anna");
    let login_time = t.elapsed();
    assert!(page.body.contains("Anna Analytiker"), "{}", page.body);
    let jar = std::fs::read_to_string(&b.jar).unwrap();
    let session_line = jar.lines().find(|l| l.contains("dk_session")).expect("session cookie");
    assert!(session_line.starts_with("#HttpOnly_"), "HttpOnly: {session_line}");
    assert!(session_line.contains("\tTRUE\t"), "Secure: {session_line}");
    let (pat, created_page) = create_token(&b, &dk, &page.body, "excel", 30);
    secrets.push(pat.clone());
    assert!(pat.starts_with("dkpat_") && pat.len() == 49, "{pat}");
    assert!(created_page.contains("excel"));
    // Over 90 days is refused.
    let csrf = between(&page.body, "name=\"csrf\" value=\"", "\"").unwrap();
    let over = b.go(
        "POST",
        &format!("{}/tokens", dk.base),
        Some(&format!("csrf={csrf}&name=long&days=91")),
    );
    assert_eq!(over.status, 400);
    // Without the CSRF token nothing is created.
    let no_csrf = b.go("POST", &format!("{}/tokens", dk.base), Some("name=x&days=5"));
    assert_eq!(no_csrf.status, 403);
    // The store holds a hash, never the token.
    let store = std::fs::read_to_string(dk.state.join("tokens.json")).unwrap();
    assert!(!store.contains(&pat) && store.contains("\"hash\""));

    // --- XMLA with Basic: any user name, the PAT as password. -----------------------------------
    let (status, _, body) = dk.xmla(Some(&basic("hvemsomhelst", &pat)), &discover_cubes());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<CUBE_NAME>Økonomi</CUBE_NAME>"), "{body}");
    let (status, _, body) = dk.xmla(Some(&basic("KOMMUNE\\anna", &pat)), &execute(TWO_KOMMUNER, ""));
    assert_eq!(status, 200);
    let anna_cells = cells(&body);
    assert!(anna_cells[0].is_some_and(|v| v != 0.0), "Anna sees Aarhus: {body}");
    assert!(
        anna_cells[1].is_none_or(|v| v == 0.0),
        "Anna (Aarhus) sees no Læsø rows: {body}"
    );
    // Last use is recorded on the page.
    let list = b.go("GET", &format!("{}/tokens", dk.base), None);
    assert!(!list.body.contains("aldrig"), "last use shown: {}", list.body);

    // --- Bearer JWTs from the provider (service accounts). ---------------------------------------
    let plain = idp.client_token("bi-plain", AUDIENCE);
    secrets.push(plain.clone());
    let (status, _, body) = dk.xmla(Some(&format!("Bearer {plain}")), &execute(TWO_KOMMUNER, ""));
    assert_eq!(status, 200, "{body}");
    let plain_cells = cells(&body);
    assert!(
        plain_cells[0].is_none_or(|v| v == 0.0) && plain_cells[1].is_some_and(|v| v != 0.0),
        "{body}"
    );
    let (status, _, body) = dk.xmla(Some(&format!("Bearer {plain}")), &discover_cubes());
    assert_eq!(status, 200);
    assert!(body.contains("<CUBE_NAME>"));

    // --- Refusals: each a 401 with the Basic challenge and an audit line with the reason. --------
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good_claims = |iss: &str, aud: &str| serde_json::json!({"iss": iss, "aud": aud, "sub": "bi-plain", "client_id": "bi-plain", "exp": now + 300, "iat": now});
    let wrong_iss = idp.sign(good_claims("http://127.0.0.1:1", AUDIENCE), "provider");
    let wrong_aud = idp.client_token("bi-plain", "urn:other-api");
    let forged = idp.sign(good_claims(&idp.issuer, AUDIENCE), "foreign-same-kid");
    secrets.extend([wrong_iss.clone(), wrong_aud.clone(), forged.clone()]);
    // bi-short's token (1 s) is accepted while it lives ...
    let short = idp.client_token("bi-short", AUDIENCE);
    secrets.push(short.clone());
    let (status, _, _) = dk.xmla(Some(&format!("Bearer {short}")), &discover_cubes());
    assert_eq!(status, 200);
    assert_refused(&dk, &format!("Bearer {wrong_iss}"), "wrong issuer");
    assert_refused(&dk, &format!("Bearer {wrong_aud}"), "wrong audience");
    assert_refused(&dk, &format!("Bearer {forged}"), "signed by a key not in the JWKS");
    // The same JWT as a Basic password is checked the same way.
    assert_refused(&dk, &basic("x", &forged), "forged JWT as Basic password");
    // ... and refused once expired (TTL 1 s, skew 1 s).
    std::thread::sleep(Duration::from_millis(3200));
    assert_refused(&dk, &format!("Bearer {short}"), "expired");
    // Unknown kids: one JWKS refetch, then rate-limited (--jwks-min-refetch-seconds 2).
    let fetches_before = idp.jwks_fetches();
    let foreign1 = idp.sign(good_claims(&idp.issuer, AUDIENCE), "foreign");
    let foreign2 = idp.sign(good_claims(&idp.issuer, AUDIENCE), "foreign");
    secrets.extend([foreign1.clone(), foreign2.clone()]);
    assert_refused(&dk, &format!("Bearer {foreign1}"), "unknown kid");
    assert_refused(&dk, &format!("Bearer {foreign2}"), "unknown kid again");
    let unknown_kid_fetches = idp.jwks_fetches() - fetches_before;
    assert_eq!(unknown_kid_fetches, 1, "two unknown kids within 2 s: one JWKS fetch");
    // Revoked PAT.
    let list = b.go("GET", &format!("{}/tokens", dk.base), None);
    let id = between(&list.body, "data-token-id=\"", "\"").unwrap();
    let csrf = between(&list.body, "name=\"csrf\" value=\"", "\"").unwrap();
    let revoked = b.go(
        "POST",
        &format!("{}/tokens/{id}/revoke", dk.base),
        Some(&format!("csrf={csrf}")),
    );
    assert!(revoked.body.contains("tilbagekaldt"), "{}", revoked.body);
    assert_refused(&dk, &basic("anna", &pat), "revoked PAT");
    assert_refused(
        &dk,
        &basic("anna", "dkpat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        "unknown PAT",
    );

    let failures = auth_failures(&dk);
    for (what, reason) in [
        ("development user", "no personal access token"),
        ("wrong issuer", "issuer"),
        ("wrong audience", "audience"),
        ("forged", "signature does not verify"),
        ("expired", "expired"),
        ("unknown kid", "unknown key"),
        ("rate limit", "rate-limited"),
        ("revoked", "revoked personal access token"),
    ] {
        assert!(
            failures.iter().any(|f| f.contains(reason)),
            "{what}: no auth_failure with {reason:?} in {failures:#?}"
        );
    }

    // --- Key rotation: the provider restarts with a new key; its tokens work after a refetch. ---
    std::thread::sleep(Duration::from_millis(2100));
    let issuer = idp.issuer.clone();
    idp.rotate();
    assert_eq!(idp.issuer, issuer);
    let keys: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("idp-keys.json")).unwrap()).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2, "the old key stays published");
    let rotated = idp.client_token("bi-plain", AUDIENCE);
    secrets.push(rotated.clone());
    let t = Instant::now();
    let (status, _, body) = dk.xmla(Some(&format!("Bearer {rotated}")), &discover_cubes());
    let rotation_time = t.elapsed();
    assert_eq!(status, 200, "a token with the new kid after the JWKS refetch: {body}");
    assert_eq!(idp.jwks_fetches(), 1, "the restarted provider served its JWKS once");
    let (status, _, _) = dk.xmla(Some(&format!("Bearer {rotated}")), &discover_cubes());
    assert_eq!(status, 200);
    assert_eq!(idp.jwks_fetches(), 1, "known kid: no further fetch");

    // --- Impersonation. ------------------------------------------------------------------------
    let imp = idp.client_token("bi-impersonator", AUDIENCE);
    let plain = idp.client_token("bi-plain", AUDIENCE);
    secrets.extend([imp.clone(), plain.clone()]);
    let as_anna = "<EffectiveUserName>anna</EffectiveUserName><CustomData>afdeling-7</CustomData>";
    let (status, _, body) = dk.xmla(Some(&format!("Bearer {imp}")), &execute(TWO_KOMMUNER, as_anna));
    assert_eq!(status, 200);
    assert_eq!(cells(&body), anna_cells, "the impersonator sees exactly what Anna sees");
    // MDX CustomData() returns the property the impersonator sent, and only then.
    let custom = "WITH MEMBER [Measures].[Kundedata] AS CustomData() \
SELECT {[Measures].[Kundedata]} ON 0 FROM [Økonomi]";
    let (_, _, body) = dk.xmla(Some(&format!("Bearer {imp}")), &execute(custom, as_anna));
    assert!(
        body.contains("<Value xsi:type=\"xsd:string\">afdeling-7</Value>"),
        "CustomData() as Anna through the impersonator: {body}"
    );
    let (_, _, body) = dk.xmla(
        Some(&format!("Bearer {imp}")),
        &execute(custom, "<EffectiveUserName>anna</EffectiveUserName>"),
    );
    assert!(Answer::parse(&body).fault.is_none(), "{body}");
    assert!(
        !body.contains("afdeling-7"),
        "no CustomData sent, none returned: {body}"
    );
    // Without impersonation the impersonator has no municipality at all.
    let (_, _, body) = dk.xmla(Some(&format!("Bearer {imp}")), &execute(TWO_KOMMUNER, ""));
    assert!(cells(&body).iter().all(|c| c.is_none_or(|v| v == 0.0)), "{body}");
    // Roles only narrows: naming a role it does not have leaves no role (and no rows).
    let (_, _, body) = dk.xmla(
        Some(&format!("Bearer {imp}")),
        &execute(
            TWO_KOMMUNER,
            "<EffectiveUserName>anna</EffectiveUserName><Roles>admin</Roles>",
        ),
    );
    assert!(
        Answer::parse(&body).fault.is_some() || cells(&body).iter().all(|c| c.is_none_or(|v| v == 0.0)),
        "Roles cannot widen: {body}"
    );
    // A service account without impersonation gets a fault.
    let (status, _, body) = dk.xmla(Some(&format!("Bearer {plain}")), &execute(TWO_KOMMUNER, as_anna));
    assert_eq!(status, 200);
    let fault = Answer::parse(&body).fault.expect("a fault");
    assert!(fault.1.contains("may not use EffectiveUserName"), "{fault:?}");
    // An unknown user cannot be impersonated.
    let (_, _, body) = dk.xmla(
        Some(&format!("Bearer {imp}")),
        &execute(TWO_KOMMUNER, "<EffectiveUserName>nobody</EffectiveUserName>"),
    );
    assert!(Answer::parse(&body).fault.is_some(), "{body}");
    let audit = dk.audit();
    let imps: Vec<&serde_json::Value> = audit.iter().filter(|l| l["kind"] == "impersonation").collect();
    assert!(
        imps.iter()
            .any(|l| l["user"] == "anna" && l["acting_for"] == "bi-impersonator" && l["outcome"] == "ok"),
        "{imps:#?}"
    );
    assert!(
        imps.iter()
            .any(|l| l["acting_for"] == "bi-plain" && l["outcome"] == "denied"),
        "{imps:#?}"
    );
    // The queries Anna's impersonator ran are audited as Anna's, acting for the account.
    assert!(
        audit.iter().any(|l| l["kind"] == "query"
            && l["user"] == "anna"
            && l["acting_for"] == "bi-impersonator"
            && l["cube"] == "Økonomi"),
        "query lines of the impersonated user carry acting_for: {:#?}",
        audit.iter().filter(|l| l["kind"] == "query").collect::<Vec<_>>()
    );
    assert!(
        audit
            .iter()
            .any(|l| l["kind"] == "login" && l["user"] == "anna" && l["outcome"] == "ok")
    );
    assert!(
        audit
            .iter()
            .any(|l| l["kind"] == "token_created" && l["outcome"] == "ok")
    );
    assert!(
        audit
            .iter()
            .any(|l| l["kind"] == "token_revoked" && l["outcome"] == "ok")
    );

    // --- Logout ends the browser session. --------------------------------------------------------
    let out = b.go("GET", &format!("{}/logout", dk.base), None);
    assert_eq!(out.status, 200);
    let (status, location, _) = b.request("GET", &format!("{}/tokens", dk.base), None);
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/login")),
        "after logout /tokens needs a new login"
    );
    assert!(dk.audit().iter().any(|l| l["kind"] == "logout" && l["user"] == "anna"));

    // --- No credential text anywhere in the server's output or the audit log. -------------------
    std::thread::sleep(Duration::from_millis(300));
    let output = dk.lines.lock().unwrap().join("\n");
    let mut audit_text = String::new();
    for e in std::fs::read_dir(&dk.state).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("audit") {
            audit_text.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    assert!(output.contains("JWKS fetched"), "the output was captured: {output}");
    for s in &secrets {
        assert!(!s.is_empty());
        for part in std::iter::once(s.as_str()).chain(s.split('.').filter(|p| p.len() > 20)) {
            assert!(!output.contains(part), "credential text in the server output");
            assert!(!audit_text.contains(part), "credential text in the audit log");
        }
    }
    eprintln!(
        "oidc e2e: server up in {server_up:?}; browser login {login_time:?}; request with a rotated key (JWKS refetch) {rotation_time:?}; \
unknown-kid refetches {unknown_kid_fetches} for 2 tokens; total {:?}",
        started.elapsed()
    );
}

#[test]
fn development_mode_login_page_creates_a_working_pat() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let dk = Datakube::start(&tmp.path().join("data"), port, &[], &[]);
    let b = Browser {
        jar: tmp.path().join("cookies.txt"),
        resolve: dk.resolve(),
    };
    let form = b.go("GET", &format!("{}/login", dk.base), None);
    assert!(form.body.contains("Udviklingsidentitet"), "{}", form.body);
    let csrf = between(&form.body, "name=\"csrf\" value=\"", "\"").unwrap();
    let bad = b.go(
        "POST",
        &format!("{}/login", dk.base),
        Some(&format!("csrf={csrf}&user=laesoe&password=forkert-kode")),
    );
    assert_eq!(bad.status, 401);
    let csrf = between(&bad.body, "name=\"csrf\" value=\"", "\"").unwrap();
    let page = b.go(
        "POST",
        &format!("{}/login", dk.base),
        Some(&format!("csrf={csrf}&user=laesoe&password=laesoe")),
    );
    assert!(page.url.ends_with("/tokens") && page.status == 200, "{}", page.body);
    let (pat, _) = create_token(&b, &dk, &page.body, "dev", 7);
    let (status, _, body) = dk.xmla(Some(&basic("x", &pat)), &execute(TWO_KOMMUNER, ""));
    assert_eq!(status, 200);
    let c = cells(&body);
    assert!(
        c[0].is_none_or(|v| v == 0.0) && c[1].is_some_and(|v| v != 0.0),
        "Læsø only: {body}"
    );
    // The development users still work directly, as the README says.
    let (status, _, _) = dk.xmla(Some(&basic("aarhus", "aarhus")), &discover_cubes());
    assert_eq!(status, 200);
    // Impersonation properties from a development user: a fault.
    let (_, _, body) = dk.xmla(
        Some(&basic("admin", "admin")),
        &execute(TWO_KOMMUNER, "<EffectiveUserName>dev:aarhus</EffectiveUserName>"),
    );
    assert!(Answer::parse(&body).fault.is_some(), "{body}");
    let audit = std::fs::read_to_string(dk.state.join("audit.jsonl")).unwrap();
    assert!(!audit.contains(&pat) && !audit.contains("forkert-kode"));
    assert!(audit.contains("\"kind\":\"login\"") && audit.contains("\"kind\":\"impersonation\""));
}

#[test]
fn the_development_identity_is_refused_off_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(datakube_bin())
        .args([
            "--data-dir",
            &tmp.path().display().to_string(),
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--no-demo-data",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve the development identity"), "{err}");
    assert!(err.contains("--allow-dev-identity-on-network"), "{err}");
}
