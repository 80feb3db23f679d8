//! SAML end to end against a real identity provider: pysaml2 (on xmlsec1) started by the test
//! as tests/saml/idp.py, standing in for KOMBIT's Context Handler.
//!
//! The SP side is `SamlWeb` in-process on the real HTTPS front door (`datakube_http::Server`
//! with a self-signed certificate on 127.0.0.1); the server binary does not mount the SAML
//! routes yet. curl plays the browser: GET /saml/login → 302 to the IdP with a signed
//! AuthnRequest (the IdP verifies the signature with the certificate from our metadata) → the
//! IdP's auto-POST form → POST /saml/acs → the login-completion callback answers with the
//! verified identity as JSON.
//!
//! Needs tests/saml/install.sh (pysaml2 venv, xmlsec1; scripts/test runs it).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use datakube_auth::audit::AuditLog;
use datakube_auth::saml::{LoginComplete, SamlConfig, SamlSp, SamlWeb};
use datakube_auth::{AuthMethod, Identity, Kommunekode, kommuner};
use datakube_http::tls::{TlsSource, server_config};
use datakube_http::{Server, ServerInfo};

const SP_ENTITY_ID: &str = "https://datakube.test/saml";
const SUBJECT: &str = "https://data.gov.dk/model/core/eid/person/uuid/0e5f4a8e-7a2b-4c4e-9c1d-3b2f0f6d1a11";
const AARHUS: &str = "55133018";
const LAESOE: &str = "45973328";
const ORGENHED: &str = "6f1c0e5a-1111-4c3e-9d5e-000000000001,6f1c0e5a-1111-4c3e-9d5e-000000000002";

struct Harness {
    _rt: tokio::runtime::Runtime,
    sp_base: String,
    idp_base: String,
    audit: PathBuf,
    dir: tempfile::TempDir,
    idp: Child,
    // Closing it tells idp.py to exit (also when the test binary dies).
    _idp_stdin: ChildStdin,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.idp.kill();
        let _ = self.idp.wait();
    }
}

fn repo_root() -> PathBuf {
    std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn harness() -> MutexGuard<'static, Harness> {
    static H: OnceLock<Mutex<Harness>> = OnceLock::new();
    H.get_or_init(|| Mutex::new(Harness::start()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// An RSA-2048 key and a self-signed SHA-256 certificate, as PEM.
fn sp_keypair() -> (Vec<u8>, Vec<u8>) {
    use openssl::{asn1::Asn1Time, bn::BigNum, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "datakube test SP").unwrap();
    let name = name.build();
    let mut b = x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (key.private_key_to_pem_pkcs8().unwrap(), b.build().to_pem().unwrap())
}

impl Harness {
    fn start() -> Harness {
        let root = repo_root();
        let python = root.join("tests/saml/.venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run tests/saml/install.sh (scripts/test runs it) to install pysaml2 and xmlsec1",
            python.display()
        );
        let xmlsec = Command::new("xmlsec1").arg("--version").output();
        assert!(
            xmlsec.as_ref().is_ok_and(|o| o.status.success()),
            "the xmlsec1 program is missing: run tests/saml/install.sh (or scripts/system-deps)"
        );
        let dir = tempfile::tempdir().unwrap();
        let idp_dir = dir.path().join("idp");
        let mut idp = Command::new(&python)
            .args(["-W", "ignore", "-u"])
            .arg(root.join("tests/saml/idp.py"))
            .arg("--dir")
            .arg(&idp_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/saml/idp.py");
        let stdin = idp.stdin.take().unwrap();
        let stdout = idp.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("IDP READY ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        // Generous: a loaded 2-core machine needs ~20 s to import pysaml2 and make two RSA keys.
        let idp_base = rx
            .recv_timeout(Duration::from_secs(180))
            .expect("tests/saml/idp.py did not print IDP READY within 180 s (see its stderr above)");

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let sp_base = format!("https://127.0.0.1:{}", addr.port());

        let (key, cert) = sp_keypair();
        std::fs::write(dir.path().join("sp-key.pem"), &key).unwrap();
        std::fs::write(dir.path().join("sp-cert.pem"), &cert).unwrap();
        let config = SamlConfig::from_files(
            SP_ENTITY_ID,
            &sp_base,
            &idp_dir.join("idp-metadata.xml"),
            &dir.path().join("sp-key.pem"),
            &dir.path().join("sp-cert.pem"),
        )
        .unwrap();
        let sp = Arc::new(SamlSp::new(config).expect("the SP accepts the IdP's metadata"));
        let audit_path = dir.path().join("audit/audit.jsonl");
        let audit = Arc::new(AuditLog::open(&audit_path, 1 << 20, 2).unwrap());
        let on_login: LoginComplete = Arc::new(|identity: Identity, return_to: Option<String>| {
            Box::pin(async move {
                datakube_http::json(
                    hyper::StatusCode::OK,
                    &serde_json::json!({"identity": identity, "return_to": return_to}),
                )
            })
        });
        let web = SamlWeb::new(sp, Some(audit), on_login);
        let (tls, _) = server_config(&TlsSource::SelfSigned {
            dir: dir.path().join("tls"),
        })
        .unwrap();
        let server = Server {
            listen: addr,
            tls,
            info: ServerInfo {
                name: "datakube-saml-test",
                version: "0",
                duckdb: String::new(),
                catalog: String::new(),
                cubes: Vec::new(),
            },
            handler: Arc::new(web),
        };
        rt.spawn(async move { server.run(listener, std::future::pending()).await });

        let h = Harness {
            _rt: rt,
            sp_base,
            idp_base,
            audit: audit_path,
            dir,
            idp,
            _idp_stdin: stdin,
        };
        // The IdP trusts this SP through the SP's own metadata endpoint.
        let (status, md) = h.curl(&["-sk", &format!("{}/saml/metadata", h.sp_base)]);
        assert_eq!(status, 200, "{md}");
        let md_file = h.dir.path().join("sp-metadata.xml");
        std::fs::write(&md_file, &md).unwrap();
        let (status, body) = h.curl(&[
            "-s",
            "--data-binary",
            &format!("@{}", md_file.display()),
            &format!("{}/_sp_metadata", h.idp_base),
        ]);
        assert_eq!(status, 200, "the IdP refused our metadata: {body}\n{md}");
        h
    }

    /// Run curl; returns (HTTP status, body). `-w` appends the status on its own line.
    fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("curl")
            .args(["--max-time", "60", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .expect("curl (a Debian base package) must be installed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    fn set_mode(&self, mode: &str) {
        let (status, body) = self.curl(&["-s", "-X", "POST", &format!("{}/_mode/{mode}", self.idp_base)]);
        assert_eq!(status, 200, "{body}");
    }

    /// GET /saml/login → the IdP's redirect URL.
    fn start_login(&self, return_to: &str) -> String {
        let out = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"])
            .arg(format!("{}/saml/login?return_to={return_to}", self.sp_base))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (code, location) = text.split_once(' ').unwrap();
        assert_eq!(code, "302", "GET /saml/login: {text}");
        assert!(
            location.starts_with(&format!("{}/sso/redirect?SAMLRequest=", self.idp_base)),
            "{location}"
        );
        location.to_string()
    }

    /// The IdP's answer to the redirect: the auto-POST form's action, SAMLResponse, RelayState.
    fn idp_form(&self, location: &str) -> (String, String, String) {
        let (status, html) = self.curl(&["-s", location]);
        assert_eq!(status, 200, "the IdP refused the AuthnRequest: {html}");
        let action = html_attr_after(&html, "<form", "action").expect("form action");
        let response = input_value(&html, "SAMLResponse").expect("SAMLResponse in the IdP's form");
        let relay = input_value(&html, "RelayState").unwrap_or_default();
        (action, response, relay)
    }

    /// POST the form to the ACS like the browser's auto-submit.
    fn post_acs(&self, action: &str, saml_response: &str, relay: &str) -> (u16, String) {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", saml_response)
            .append_pair("RelayState", relay)
            .finish();
        let f = self.dir.path().join("acs-body");
        std::fs::write(&f, body).unwrap();
        self.curl(&[
            "-sk",
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "--data-binary",
            &format!("@{}", f.display()),
            action,
        ])
    }

    /// The whole browser flow with the IdP in `mode`: (status, body, SAMLResponse).
    fn login(&self, mode: &str) -> (u16, String, String) {
        self.set_mode(mode);
        let location = self.start_login("/portal/tokens");
        let (action, response, relay) = self.idp_form(&location);
        assert_eq!(action, format!("{}/saml/acs", self.sp_base));
        assert_eq!(relay, "/portal/tokens");
        let (status, body) = self.post_acs(&action, &response, &relay);
        (status, body, response)
    }

    fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn last_audit(&self) -> serde_json::Value {
        self.audit_lines().pop().expect("an audit line")
    }

    /// A refused login: 403 whose text names `reason`, and an `auth_failure` audit line with it.
    fn assert_refused(&self, mode: &str, reason: &str) -> String {
        let before = self.audit_lines().len();
        let (status, body, response) = self.login(mode);
        assert_eq!(status, 403, "{mode}: {body}");
        assert!(body.contains("SAML login refused"), "{mode}: {body}");
        assert!(body.contains(reason), "{mode}: expected '{reason}' in: {body}");
        let lines = self.audit_lines();
        assert_eq!(lines.len(), before + 1, "{mode}: one audit line per refusal");
        let a = lines.last().unwrap();
        assert_eq!(a["kind"], "auth_failure", "{a}");
        assert_eq!(a["method"], "saml", "{a}");
        assert_eq!(a["outcome"], "denied", "{a}");
        assert!(a["detail"].as_str().unwrap().contains(reason), "{mode}: {a}");
        assert!(a.get("user").is_none(), "no unverified user in the audit line: {a}");
        let raw = std::fs::read_to_string(&self.audit).unwrap();
        assert!(
            !raw.contains(&response[..64]),
            "the assertion must not reach the audit log"
        );
        body
    }
}

fn html_attr_after(html: &str, tag: &str, attr: &str) -> Option<String> {
    let at = html.find(tag)?;
    let rest = &html[at..];
    let end = rest.find('>')?;
    let key = format!("{attr}=\"");
    let s = rest[..end].find(&key)? + key.len();
    let e = rest[s..].find('"')? + s;
    Some(html_unescape(&rest[s..e]))
}

fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind("<input")?;
    html_attr_after(&html[start..], "<input", "value")
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn identity_of(body: &str) -> (Identity, Option<String>) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (
        serde_json::from_value(v["identity"].clone()).unwrap(),
        v["return_to"].as_str().map(str::to_string),
    )
}

fn assert_karen(identity: &Identity) {
    assert_eq!(identity.subject, SUBJECT);
    assert_eq!(identity.display_name, "Karen Sørensen");
    assert_eq!(identity.method, AuthMethod::Saml);
    assert_eq!(identity.organisations, vec![AARHUS.to_string()]);
    assert_eq!(identity.privileges.len(), 2, "{:?}", identity.privileges);
    let aarhus = &identity.privileges[0];
    assert_eq!(aarhus.cvr, AARHUS);
    assert_eq!(
        aarhus.privileges,
        vec![
            "http://datakube.dk/roles/usersystemrole/cube_read/1",
            "http://datakube.dk/roles/usersystemrole/drillthrough/1"
        ]
    );
    let c: Vec<(&str, &str)> = aarhus
        .constraints
        .iter()
        .map(|c| (c.name.as_str(), c.value.as_str()))
        .collect();
    assert_eq!(
        c,
        vec![
            ("http://sts.kombit.dk/constraints/orgenhed/1", ORGENHED),
            ("http://sts.kombit.dk/constraints/KLE/1", "32.30.*")
        ]
    );
    let laesoe = &identity.privileges[1];
    assert_eq!(laesoe.cvr, LAESOE);
    assert_eq!(
        laesoe.privileges,
        vec!["http://datakube.dk/roles/usersystemrole/cube_read/1"]
    );
    assert!(laesoe.constraints.is_empty());
    // The two privilege scopes are the two municipalities Aarhus (751) and Læsø (825).
    let codes: Vec<Kommunekode> = identity
        .privileges
        .iter()
        .map(|g| kommuner::by_cvr(&g.cvr).expect("a municipality CVR").code)
        .collect();
    assert_eq!(codes, vec![Kommunekode(751), Kommunekode(825)]);
    // Through the roles of the shipped security.yaml: two municipality scopes, and the orgenhed
    // constraint of the Aarhus group as an allowed set on Organisation (Læsø's group had none).
    let dir = &format!(
        "{}/../cube-definitions",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    );
    let security = datakube_model::load_catalog(std::path::Path::new(dir), None)
        .expect("shipped definitions load")
        .security;
    let p = datakube_auth::roles::map_identity(&security, identity).expect("the analyst role is granted");
    assert_eq!(
        p.scope,
        datakube_auth::RowScope::Municipalities(vec![Kommunekode(751), Kommunekode(825)])
    );
    let org = p
        .restrictions
        .iter()
        .find(|r| r.dimension == "Organisation")
        .expect("an allowed set on Organisation");
    assert_eq!(org.keys.len(), 2, "{org:?}");
    assert_eq!(org.whole_kommuner, vec![Kommunekode(825)]);
}

#[test]
fn saml_login_yields_identity_with_two_municipalities() {
    let h = harness();
    let before = h.audit_lines().len();
    let (status, body, response) = h.login("ok");
    assert_eq!(status, 200, "{body}");
    let (identity, return_to) = identity_of(&body);
    assert_karen(&identity);
    assert_eq!(return_to.as_deref(), Some("/portal/tokens"));

    let lines = h.audit_lines();
    assert_eq!(lines.len(), before + 1);
    let a = &lines[before];
    assert_eq!(a["kind"], "login", "{a}");
    assert_eq!(a["method"], "saml");
    assert_eq!(a["outcome"], "ok");
    assert_eq!(a["user"], SUBJECT);
    assert_eq!(a["organisation"], serde_json::json!([AARHUS]));
    assert!(a["detail"].as_str().unwrap().contains("55133018, 45973328"), "{a}");
    let raw = std::fs::read_to_string(&h.audit).unwrap();
    assert!(
        !raw.contains(&response[..64]),
        "the assertion must not reach the audit log"
    );
}

#[test]
fn saml_metadata_and_signed_authn_request() {
    let h = harness();
    let (status, md) = h.curl(&["-sk", &format!("{}/saml/metadata", h.sp_base)]);
    assert_eq!(status, 200);
    for want in [
        &format!("entityID=\"{SP_ENTITY_ID}\""),
        &format!("Location=\"{}/saml/acs\"", h.sp_base),
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
        "AuthnRequestsSigned=\"true\"",
        "WantAssertionsSigned=\"true\"",
        "use=\"signing\"",
        "use=\"encryption\"",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "X509Certificate",
    ] {
        assert!(md.contains(want), "SP metadata lacks {want}: {md}");
    }
    assert!(!md.contains("SingleLogoutService"), "no SLO is offered: {md}");

    // The redirect carries an RSA-SHA256 signature over the query, and the IdP verified it
    // against the certificate in our metadata (pysaml2 with WantAuthnRequestsSigned).
    h.set_mode("ok");
    let location = h.start_login("/x");
    assert!(
        location.contains("SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256"),
        "{location}"
    );
    assert!(location.contains("&Signature="), "{location}");
    let (action, _, relay) = h.idp_form(&location);
    assert_eq!(action, format!("{}/saml/acs", h.sp_base));
    assert_eq!(relay, "/x");
    let (_, last) = h.curl(&["-s", &format!("{}/_last", h.idp_base)]);
    let last: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["signature_verified"], true, "{last}");
    assert_eq!(last["issuer"], SP_ENTITY_ID);
    assert_eq!(
        last["name_id_format"],
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    );
    let id = last["id"].as_str().unwrap();
    assert!(id.starts_with('_') && id.len() == 33, "128-bit random request id: {id}");

    // A request whose signature is broken is refused by the IdP.
    let broken = location.replace("&Signature=", "&Signature=AAAA");
    let (status, body) = h.curl(&["-s", &broken]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("AuthnRequest refused"), "{body}");

    // An open redirect is not possible: a foreign return_to is dropped.
    let location = h.start_login("https%3A%2F%2Fevil.example%2F");
    assert!(!location.contains("RelayState"), "{location}");
}

#[test]
fn saml_refuses_response_signed_by_another_key() {
    harness().assert_refused("wrong_key", "signature: ");
}

#[test]
fn saml_refuses_unsigned_response() {
    harness().assert_refused("unsigned", "signature: ");
}

#[test]
fn saml_refuses_sha1_signature() {
    // Correctly signed, but with RSA-SHA1: only SHA-256 or stronger are accepted.
    harness().assert_refused("sha1", "signature: ");
}

#[test]
fn saml_refuses_tampered_assertion() {
    // The professional CVR was changed from Aarhus to Viborg after signing.
    harness().assert_refused("tampered", "does not verify");
}

#[test]
fn saml_refuses_expired_assertion() {
    let body = harness().assert_refused("expired", "expired: ");
    assert!(body.contains("expired at"), "{body}");
}

#[test]
fn saml_refuses_wrong_audience() {
    let body = harness().assert_refused("wrong_audience", "audience: ");
    assert!(body.contains(SP_ENTITY_ID), "{body}");
}

#[test]
fn saml_refuses_replayed_assertion() {
    let h = harness();
    h.set_mode("ok");
    let location = h.start_login("/portal");
    let (action, response, relay) = h.idp_form(&location);
    let (status, body) = h.post_acs(&action, &response, &relay);
    assert_eq!(status, 200, "{body}");
    let before = h.audit_lines().len();
    let (status, body) = h.post_acs(&action, &response, &relay);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("replay: assertion"), "{body}");
    assert!(body.contains("has already been used"), "{body}");
    let lines = h.audit_lines();
    assert_eq!(lines.len(), before + 1);
    assert_eq!(lines[before]["kind"], "auth_failure");
    assert!(
        lines[before]["detail"].as_str().unwrap().contains("replay"),
        "{}",
        lines[before]
    );

    // Something that is not a signed SAML response at all is refused and audited too.
    for (junk, reason) in [("bm90IHhtbA==", "signature: "), ("%%%", "malformed: ")] {
        let (status, body) = h.post_acs(&action, junk, "");
        assert!(status == 403 || status == 400, "{status} {body}");
        assert!(body.contains(reason), "{body}");
        let last = h.last_audit();
        assert_eq!(last["kind"], "auth_failure");
        assert!(last["detail"].as_str().unwrap().contains(reason), "{last}");
    }
}

#[test]
fn saml_encrypted_assertion_is_decrypted() {
    let h = harness();
    let (status, body, _) = h.login("encrypted");
    assert_eq!(status, 200, "{body}");
    let (identity, _) = identity_of(&body);
    assert_karen(&identity);
    assert_eq!(h.last_audit()["kind"], "login");
}
