//! Shared helpers for the end-to-end tests: start the real `datakube` binary, talk XMLA to it
//! with curl (a real HTTPS client), read the answers with a real XML parser, and compute
//! expected numbers with hand-written SQL in DuckDB over the same Parquet files.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use quick_xml::events::Event;

pub mod inprocess;

/// The `datakube` binary built beside this test (`cargo build --workspace --bins`).
pub fn datakube_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("datakube");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release --workspace --bins` (scripts/test does)",
        bin.display()
    );
    bin
}

pub fn repo_root() -> PathBuf {
    std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Copy a folder tree (cube definitions, a dataset) into a test's own folder.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A running server. It is started through a small shell guard that kills it when this test
/// process goes away (its stdin closes), so shared servers in statics never outlive the tests.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log: std::sync::Mutex<mpsc::Receiver<String>>,
    pub startup_log: Vec<String>,
    _guard: ChildStdin,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start_in(data_dir: &Path, extra: &[&str], tmp: Option<tempfile::TempDir>) -> Server {
        Server::start_with(data_dir, &repo_root().join("cube-definitions"), extra, tmp)
    }

    /// A server on `data_dir` with another catalog (no demo data is generated).
    pub fn start_in_with_definitions(data_dir: &Path, definitions: &Path) -> Server {
        Server::start_with(data_dir, definitions, &["--no-demo-data"], None)
    }

    /// A server on `data_dir` with the definitions in `definitions` and extra `serve` options.
    pub fn start_full(data_dir: &Path, definitions: &Path, extra: &[&str]) -> Server {
        Server::start_with(data_dir, definitions, extra, None)
    }

    fn start_with(data_dir: &Path, definitions: &Path, extra: &[&str], tmp: Option<tempfile::TempDir>) -> Server {
        let mut args: Vec<String> = vec![
            datakube_bin().display().to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--cube-definitions".into(),
            definitions.display().to_string(),
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--demo-scale".into(),
            "0.002".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
        let script = format!(
            "{} & pid=$!; trap 'kill -TERM $pid 2>/dev/null' EXIT; read _; kill -TERM $pid; wait $pid",
            quoted.join(" ")
        );
        let mut child = Command::new("bash")
            .args(["-c", &script])
            .current_dir(repo_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start datakube");
        let guard = child.stdin.take().unwrap();
        let (port, rx, seen) = wait_for_url(child.stderr.take().unwrap());
        Server {
            child,
            port,
            data_dir: data_dir.to_path_buf(),
            log: std::sync::Mutex::new(rx),
            startup_log: seen,
            _guard: guard,
            _tmp: tmp,
        }
    }

    /// A server on fresh demo data in a temporary directory.
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        Server::start_in(&dir, &[], Some(tmp))
    }

    /// Whether the server (behind its guard shell) still runs: /health answers.
    pub fn child_alive(&self) -> bool {
        let out = Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "10",
                &format!("https://127.0.0.1:{}/health", self.port),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("\"ok\"")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/xmla", self.port)
    }

    /// POST a SOAP body; returns the response body.
    pub fn post(&self, body: &str) -> String {
        let (b, code) = curl_post(&self.url(), body, &[]);
        assert_eq!(code, "200", "XMLA answers HTTP 200 (also for faults): {b}");
        b
    }

    /// Execute an MDX statement as the development administrator.
    pub fn mdx(&self, mdx: &str, lcid: u32) -> Answer {
        self.mdx_as(mdx, lcid, ADMIN)
    }

    /// Execute an MDX statement as `user` (user, password).
    pub fn mdx_as(&self, mdx: &str, lcid: u32, user: (&str, &str)) -> Answer {
        self.mdx_in("FLIS", mdx, lcid, user)
    }

    /// Execute an MDX statement in `catalog` as `user` (user, password).
    pub fn mdx_in(&self, catalog: &str, mdx: &str, lcid: u32, user: (&str, &str)) -> Answer {
        let body = format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<Command><Statement>{}</Statement></Command><Properties><PropertyList><Catalog>{}</Catalog><LocaleIdentifier>{lcid}</LocaleIdentifier>\
<Format>Native</Format></PropertyList></Properties></Execute></soap:Body></soap:Envelope>",
            xml_escape(mdx),
            xml_escape(catalog)
        );
        let (b, code) = curl_post_as(&self.url(), &body, Some(user), &[]);
        assert_eq!(code, "200", "XMLA answers HTTP 200 (also for faults): {b}");
        Answer::parse(&b)
    }

    /// DuckDB connection for hand-written expected values.
    pub fn duck(&self) -> datakube_engine::duckdb::Connection {
        datakube_engine::open_connection(&datakube_engine::EngineConfig::default()).unwrap()
    }

    /// `read_parquet('<current snapshot>/<table>/**/*.parquet')` for hand-written SQL.
    pub fn table(&self, dataset: &str, table: &str) -> String {
        let id = std::fs::read_to_string(self.data_dir.join("datasets").join(dataset).join("CURRENT")).unwrap();
        let glob = self
            .data_dir
            .join("datasets")
            .join(dataset)
            .join("snapshots")
            .join(id.trim())
            .join(table)
            .join("**")
            .join("*.parquet");
        format!(
            "read_parquet({}, hive_partitioning = true)",
            datakube_engine::sql_string(&glob.to_string_lossy())
        )
    }
}

/// Follow a starting server's stderr until it prints the XMLA URL; returns the port, the rest
/// of the log as a channel, and the lines before the URL.
pub fn wait_for_url(stderr: std::process::ChildStderr) -> (u16, mpsc::Receiver<String>, Vec<String>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("server did not print its URL; output so far:\n{}", seen.join("\n")));
        if let Some(rest) = line.trim().strip_prefix("https://localhost:")
            && let Some(p) = rest.strip_suffix("/xmla")
        {
            return (p.parse::<u16>().expect("port"), rx, seen);
        }
        seen.push(line);
    }
}

/// The shared reference material (traces, FoodMart conformance queries):
/// `$DATAKUBE_SHARED_DIR`, by default `../shared` beside the clone.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("DATAKUBE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"))
}

/// The recorded Excel 365 session (`<shared>/traces`), one JSON object per request.
pub fn excel_trace() -> Vec<serde_json::Value> {
    let path = shared_dir().join("traces/excel365-session.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the Excel 365 trace {} ({e}); put the shared material beside the clone or set DATAKUBE_SHARED_DIR",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The SessionId attribute in a SOAP text.
pub fn session_id(xml: &str) -> Option<String> {
    let i = xml.find("SessionId=\"")? + "SessionId=\"".len();
    Some(xml[i..].split('"').next()?.to_string())
}

/// The text of one of XML's predefined entities (`amp` → `&`); `?` for any other.
pub fn xml_entity(name: &str) -> &'static str {
    match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => "?",
    }
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The development administrator of the built-in identity (see README).
pub const ADMIN: (&str, &str) = ("admin", "admin");

/// curl -k POST as the development administrator; returns (body, HTTP status).
pub fn curl_post(url: &str, body: &str, extra: &[&str]) -> (String, String) {
    curl_post_as(url, body, Some(ADMIN), extra)
}

/// curl -k POST with HTTP Basic credentials (or none); returns (body, HTTP status).
pub fn curl_post_as(url: &str, body: &str, user: Option<(&str, &str)>, extra: &[&str]) -> (String, String) {
    let credentials = user.map(|(u, p)| format!("{u}:{p}"));
    let auth: Vec<&str> = match &credentials {
        Some(c) => vec!["-u", c.as_str()],
        None => vec![],
    };
    let mut c = Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "60",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: text/xml",
            "--data-binary",
            "@-",
        ])
        .args(&auth)
        .args(extra)
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    c.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (b, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (b.to_string(), code.to_string())
}

/// An MDDataSet (or fault) read with a real XML parser.
#[derive(Debug, Default)]
pub struct Answer {
    pub fault: Option<(String, String)>,
    /// Per axis (Axis0, Axis1, …; not the slicer): tuples of (unique name, caption).
    pub axes: Vec<Vec<Vec<(String, String)>>>,
    /// Cells by ordinal: the Value text and its xsi:type, and FmtValue.
    pub cells: BTreeMap<u64, (String, String, Option<String>)>,
    pub raw: String,
}

impl Answer {
    pub fn parse(xml: &str) -> Answer {
        let mut a = Answer {
            raw: xml.to_string(),
            ..Default::default()
        };
        let mut r = quick_xml::Reader::from_str(xml);
        let mut path: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut axis_is_slicer = false;
        let mut cur_member: (String, String) = Default::default();
        let mut cur_tuple: Vec<(String, String)> = Vec::new();
        let mut cell: Option<(u64, String, String, Option<String>)> = None;
        let mut value_type = String::new();
        let mut fault_code = String::new();
        loop {
            match r
                .read_event()
                .unwrap_or_else(|e| panic!("response is not well-formed XML: {e}\n{xml}"))
            {
                Event::Start(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).to_string();
                    match name.as_str() {
                        "Axis" => {
                            let n = attr(&e, "name");
                            axis_is_slicer = n == "SlicerAxis";
                            if !axis_is_slicer && path.iter().any(|p| p == "Axes") {
                                a.axes.push(Vec::new());
                            }
                        }
                        "Tuple" => cur_tuple.clear(),
                        "Cell" => {
                            cell = Some((
                                attr(&e, "CellOrdinal").parse().unwrap(),
                                String::new(),
                                String::new(),
                                None,
                            ))
                        }
                        "Value" => value_type = attr(&e, "xsi:type"),
                        "Error" => fault_code = attr(&e, "ErrorCode"),
                        _ => {}
                    }
                    path.push(name);
                    text.clear();
                }
                Event::Empty(e) if e.local_name().as_ref() == b"Error" => {
                    fault_code = attr(&e, "ErrorCode");
                }
                Event::Text(t) => text.push_str(&t.decode().unwrap()),
                Event::GeneralRef(g) => {
                    text.push_str(xml_entity(&g.decode().unwrap()));
                }
                Event::End(_) => {
                    let name = path.pop().unwrap_or_default();
                    let in_axes = path.iter().any(|p| p == "Axes");
                    match name.as_str() {
                        "UName" if in_axes => cur_member.0 = text.clone(),
                        "Caption" if in_axes => cur_member.1 = text.clone(),
                        "Member" if in_axes => cur_tuple.push(std::mem::take(&mut cur_member)),
                        "Tuple" if in_axes && !axis_is_slicer => {
                            a.axes.last_mut().unwrap().push(std::mem::take(&mut cur_tuple))
                        }
                        "Value" => {
                            if let Some(c) = cell.as_mut() {
                                c.1 = text.clone();
                                c.2 = value_type.clone();
                            }
                        }
                        "FmtValue" => {
                            if let Some(c) = cell.as_mut() {
                                c.3 = Some(text.clone());
                            }
                        }
                        "Cell" => {
                            let c = cell.take().unwrap();
                            a.cells.insert(c.0, (c.1, c.2, c.3));
                        }
                        "faultstring" => a.fault = Some((fault_code.clone(), text.clone())),
                        _ => {}
                    }
                    if name == "detail"
                        && let Some(f) = a.fault.as_mut()
                    {
                        f.0 = fault_code.clone();
                    }
                    text.clear();
                }
                Event::Eof => break,
                _ => {}
            }
        }
        a
    }

    pub fn ok(self) -> Answer {
        if let Some(f) = &self.fault {
            panic!("unexpected fault {f:?}");
        }
        self
    }

    pub fn value(&self, ordinal: u64) -> Option<f64> {
        self.cells.get(&ordinal).map(|c| c.0.parse::<f64>().unwrap())
    }
}

fn attr(e: &quick_xml::events::BytesStart, name: &str) -> String {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .map(|a| a.unescape_value().unwrap().to_string())
        .unwrap_or_default()
}

/// Compare money/percentages computed two ways (float sums differ in the last bits).
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}
