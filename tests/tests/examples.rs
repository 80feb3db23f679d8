//! The Excel connection examples in `examples/excel/`: one Office Data Connection file (.odc) per
//! shipped cube, each a well-formed `<odc:OfficeDataConnection>` (read with a real XML parser)
//! that names a cube of `cube-definitions/`, the catalog and the `/xmla` URL, and stores no
//! password; and the files are exactly what `examples/excel/make-odc.sh` writes.
//!
//! The cube names come from the YAML files by a plain text scan (`cube:` then its `name:`), not
//! from the model crate and not from a list in this file, so a new cube without an .odc fails here.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};

const NS_ODC: &str = "urn:schemas-microsoft-com:office:odc";
const NS_OFFICE: &str = "urn:schemas-microsoft-com:office:office";

fn repo_root() -> PathBuf {
    std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn examples_dir() -> PathBuf {
    repo_root().join("examples/excel")
}

/// The `name:` directly under a top-level `key:` line of a YAML file, if there is one.
fn yaml_block_name(text: &str, key: &str) -> Option<String> {
    let mut lines = text
        .lines()
        .skip_while(|l| strip_comment(l).trim_end() != format!("{key}:"));
    lines.next()?;
    let mut child_indent: Option<usize> = None;
    for line in lines {
        let content = strip_comment(line);
        if content.trim().is_empty() {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        if indent == 0 {
            break; // the next top-level key: the block ended without a name
        }
        let child = *child_indent.get_or_insert(indent);
        if indent == child
            && let Some(v) = content.trim().strip_prefix("name:")
        {
            return Some(unquote(v.trim()).to_string());
        }
    }
    None
}

fn strip_comment(line: &str) -> &str {
    match line.find(" #") {
        Some(i) => &line[..i],
        None if line.trim_start().starts_with('#') => "",
        None => line,
    }
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Top-level `*.yaml` files of `cube-definitions/` (the shared dimensions live in a subfolder).
fn definition_files() -> Vec<(PathBuf, String)> {
    let dir = repo_root().join("cube-definitions");
    let mut files: Vec<(PathBuf, String)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, text)
        })
        .collect();
    files.sort();
    files
}

/// The shipped cube names, by the `cube:` … `name:` text scan.
fn shipped_cubes() -> Vec<String> {
    let mut cubes: Vec<String> = definition_files()
        .iter()
        .filter_map(|(_, text)| yaml_block_name(text, "cube"))
        .collect();
    cubes.sort();
    assert!(
        !cubes.is_empty(),
        "no `cube:` with a `name:` found in cube-definitions/*.yaml"
    );
    let mut unique = cubes.clone();
    unique.dedup();
    assert_eq!(unique, cubes, "a cube name appears twice in cube-definitions/");
    cubes
}

fn catalog_name() -> String {
    let names: Vec<String> = definition_files()
        .iter()
        .filter_map(|(_, text)| yaml_block_name(text, "catalog"))
        .collect();
    assert_eq!(
        names.len(),
        1,
        "expected exactly one `catalog:` in cube-definitions/, found {names:?}"
    );
    names[0].clone()
}

/// The file name make-odc.sh gives a cube: Danish letters folded to ASCII.
fn odc_file_name(catalog: &str, cube: &str) -> String {
    let mut s = String::new();
    for c in cube.chars() {
        match c {
            'Æ' => s.push_str("Ae"),
            'æ' => s.push_str("ae"),
            'Ø' => s.push('O'),
            'ø' => s.push('o'),
            'Å' => s.push_str("Aa"),
            'å' => s.push_str("aa"),
            c => s.push(c),
        }
    }
    format!("{catalog}-{s}.odc")
}

fn odc_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("odc")))
        .collect();
    files.sort();
    files
}

/// The inner text of the HTML `<xml id=ID>` data island.
fn xml_island<'a>(html: &'a str, id: &str, file: &str) -> &'a str {
    let opens = [format!("<xml id={id}>"), format!("<xml id=\"{id}\">")];
    let (start, open) = opens
        .iter()
        .find_map(|o| html.find(o.as_str()).map(|i| (i, o)))
        .unwrap_or_else(|| panic!("{file}: no <xml id={id}> block"));
    let body = &html[start + open.len()..];
    let end = body
        .find("</xml>")
        .unwrap_or_else(|| panic!("{file}: <xml id={id}> is not closed"));
    &body[..end]
}

#[derive(Debug, Default)]
struct Connection {
    conn_type: String,
    connection_string: String,
    command_type: String,
    command_text: String,
}

/// An element of a parsed XML island: namespace URI, local name, attributes and its text.
struct Element {
    ns: String,
    local: String,
    attrs: Vec<Attr>,
    text: String,
}

/// An attribute: namespace URI (empty when unprefixed), local name and unescaped value.
struct Attr {
    ns: String,
    local: String,
    value: String,
}

/// An XML island read with a namespace-aware parser: the root element's (namespace, local
/// name) and every element in document order.
struct Parsed {
    root: (String, String),
    elements: Vec<Element>,
}

fn parse_xml(xml: &str, file: &str) -> Parsed {
    let mut r = NsReader::from_str(xml);
    let mut root: Option<(String, String)> = None;
    let mut open: Vec<usize> = Vec::new();
    let mut elements: Vec<Element> = Vec::new();
    let mut raw_text: Vec<String> = Vec::new();
    loop {
        let (ns, ev) = r
            .read_resolved_event()
            .unwrap_or_else(|e| panic!("{file}: not well-formed XML: {e}\n{xml}"));
        let ns = match ns {
            ResolveResult::Bound(Namespace(n)) => String::from_utf8(n.to_vec()).unwrap(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(p) => panic!("{file}: undeclared namespace prefix {p:?}"),
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                if root.is_none() {
                    root = Some((ns.clone(), local.clone()));
                } else {
                    assert!(!open.is_empty(), "{file}: more than one root element");
                }
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.unwrap_or_else(|err| panic!("{file}: bad attribute: {err}"));
                    let (ans, alocal) = r.resolve_attribute(a.key);
                    let ans = match ans {
                        ResolveResult::Bound(Namespace(n)) => String::from_utf8(n.to_vec()).unwrap(),
                        ResolveResult::Unbound => String::new(),
                        ResolveResult::Unknown(p) => panic!("{file}: undeclared attribute prefix {p:?}"),
                    };
                    let value = a.unescape_value().unwrap().into_owned();
                    attrs.push(Attr {
                        ns: ans,
                        local: String::from_utf8(alocal.as_ref().to_vec()).unwrap(),
                        value,
                    });
                }
                elements.push(Element {
                    ns,
                    local,
                    attrs,
                    text: String::new(),
                });
                if matches!(ev, Event::Start(_)) {
                    open.push(elements.len() - 1);
                    raw_text.push(String::new());
                }
            }
            Event::Text(t) => {
                let text = t.decode().unwrap();
                if let Some(buf) = raw_text.last_mut() {
                    buf.push_str(&text);
                } else {
                    assert!(
                        text.trim().is_empty(),
                        "{file}: text outside the root element: {text:?}"
                    );
                }
            }
            Event::GeneralRef(g) => {
                let name = g.decode().unwrap();
                raw_text
                    .last_mut()
                    .unwrap_or_else(|| panic!("{file}: entity outside the root element"))
                    .push_str(&format!("&{name};"));
            }
            Event::CData(c) => {
                let text = c.decode().unwrap();
                raw_text.last_mut().unwrap().push_str(&quick_xml::escape::escape(text));
            }
            Event::End(_) => {
                let i = open.pop().unwrap();
                let raw = raw_text.pop().unwrap();
                elements[i].text = quick_xml::escape::unescape(&raw)
                    .unwrap_or_else(|e| panic!("{file}: bad entity in {raw:?}: {e}"))
                    .into_owned();
            }
            Event::DocType(_) => panic!("{file}: DOCTYPE in a data island"),
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(open.is_empty(), "{file}: unclosed elements");
    Parsed {
        root: root.unwrap_or_else(|| panic!("{file}: empty XML island")),
        elements,
    }
}

fn parse_msodc(html: &str, file: &str) -> Vec<Connection> {
    let parsed = parse_xml(xml_island(html, "msodc", file), file);
    assert_eq!(
        parsed.root,
        (NS_ODC.to_string(), "OfficeDataConnection".to_string()),
        "{file}: the msodc island must hold one <odc:OfficeDataConnection> in {NS_ODC}"
    );
    let mut conns: Vec<Connection> = Vec::new();
    for Element { ns, local, attrs, text } in &parsed.elements {
        if ns != NS_ODC {
            continue;
        }
        match local.as_str() {
            "Connection" => conns.push(Connection {
                conn_type: attrs
                    .iter()
                    .find(|a| a.ns == NS_ODC && a.local == "Type")
                    .map(|a| a.value.clone())
                    .unwrap_or_else(|| panic!("{file}: <odc:Connection> without odc:Type")),
                ..Default::default()
            }),
            "ConnectionString" => {
                conns
                    .last_mut()
                    .expect("ConnectionString outside Connection")
                    .connection_string = text.clone()
            }
            "CommandType" => conns.last_mut().expect("CommandType outside Connection").command_type = text.clone(),
            "CommandText" => conns.last_mut().expect("CommandText outside Connection").command_text = text.clone(),
            _ => {}
        }
    }
    conns
}

/// `key=value;…` as (lower-case key, value) pairs; the values of an MSOLAP string here carry
/// neither `;` nor quotes.
fn connection_properties(s: &str, file: &str) -> Vec<(String, String)> {
    s.split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .unwrap_or_else(|| panic!("{file}: connection string part {p:?} is not key=value"));
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect()
}

fn property<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
    // The last occurrence wins, as for MSOLAP.
    props.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn yaml_scan_reads_block_names() {
    let text = "# c\ncube:\n  name: \"Økonomi\" # the ledger\n  dimensions:\n    - name: Konto\nother:\n  name: X\n";
    assert_eq!(yaml_block_name(text, "cube").as_deref(), Some("Økonomi"));
    assert_eq!(yaml_block_name(text, "other").as_deref(), Some("X"));
    assert_eq!(
        yaml_block_name("cube:\n  dimensions:\n    - name: Konto\n", "cube"),
        None
    );
    assert_eq!(yaml_block_name("dimension:\n  name: Kommune\n", "cube"), None);
}

#[test]
fn one_odc_per_shipped_cube() {
    let cubes = shipped_cubes();
    let catalog = catalog_name();
    let dir = examples_dir();
    let mut by_cube: BTreeMap<String, Vec<String>> = cubes.iter().map(|c| (c.clone(), Vec::new())).collect();
    let files = odc_files(&dir);
    assert!(!files.is_empty(), "no .odc files in {}", dir.display());

    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = fs::read(path).unwrap();
        let html = String::from_utf8(bytes).unwrap_or_else(|_| panic!("{file}: not UTF-8"));
        let html = html.strip_prefix('\u{feff}').unwrap_or(&html);
        let lower = html.to_ascii_lowercase();
        assert!(
            lower.contains("<meta http-equiv=content-type") && lower.contains("charset=utf-8"),
            "{file}: needs <meta http-equiv=Content-Type content=\"text/x-ms-odc; charset=utf-8\">"
        );

        // Office document properties: a well-formed <o:DocumentProperties> with a name.
        let docprops = parse_xml(xml_island(html, "docprops", &file), &file);
        assert_eq!(
            docprops.root,
            (NS_OFFICE.to_string(), "DocumentProperties".to_string()),
            "{file}: the docprops island must hold <o:DocumentProperties> in {NS_OFFICE}"
        );
        assert!(
            docprops
                .elements
                .iter()
                .any(|e| e.ns == NS_OFFICE && e.local == "Name" && !e.text.trim().is_empty()),
            "{file}: <o:DocumentProperties> has no <o:Name>"
        );

        let conns = parse_msodc(html, &file);
        assert_eq!(
            conns.len(),
            1,
            "{file}: expected exactly one <odc:Connection>, found {conns:?}"
        );
        let c = &conns[0];
        assert_eq!(c.conn_type, "OLEDB", "{file}: odc:Type");
        assert_eq!(c.command_type, "Cube", "{file}: odc:CommandType");
        let cube = c.command_text.clone();
        assert!(
            cubes.contains(&cube),
            "{file}: CommandText {cube:?} is not a cube in cube-definitions/ ({cubes:?})"
        );
        assert_eq!(
            file,
            odc_file_name(&catalog, &cube),
            "{file}: file name for cube {cube}"
        );

        let props = connection_properties(&c.connection_string, &file);
        let provider = property(&props, "provider").unwrap_or_else(|| panic!("{file}: no Provider"));
        assert!(
            provider.starts_with("MSOLAP"),
            "{file}: Provider={provider}, expected MSOLAP.x"
        );
        assert_eq!(
            property(&props, "initial catalog"),
            Some(catalog.as_str()),
            "{file}: Initial Catalog"
        );
        let source = property(&props, "data source").unwrap_or_else(|| panic!("{file}: no Data Source"));
        assert!(
            source.starts_with("https://") && source.ends_with("/xmla"),
            "{file}: Data Source={source}, expected https://…/xmla"
        );
        assert_eq!(
            property(&props, "locale identifier"),
            Some("1030"),
            "{file}: Locale Identifier"
        );
        for secret in ["password", "pwd", "encryption password"] {
            assert!(
                property(&props, secret).is_none(),
                "{file}: the connection string stores a password ({secret}=)"
            );
        }
        let squeezed: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(
            !squeezed.contains("password=") && !squeezed.contains("pwd="),
            "{file}: the file contains a password"
        );

        by_cube.get_mut(&cube).unwrap().push(file);
    }

    for (cube, files) in &by_cube {
        assert_eq!(
            files.len(),
            1,
            "cube {cube}: expected exactly one .odc in examples/excel/, found {files:?} (run examples/excel/make-odc.sh)"
        );
    }
}

#[test]
fn make_odc_reproduces_the_shipped_files() {
    let dir = examples_dir();
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(dir.join("make-odc.sh"))
        .arg("-o")
        .arg(out.path())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("running bash examples/excel/make-odc.sh");
    assert!(status.success(), "make-odc.sh failed: {status}");

    let names = |d: &Path| -> Vec<String> {
        odc_files(d)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(out.path()),
        names(&dir),
        "examples/excel/*.odc differ from what make-odc.sh writes (rerun it)"
    );
    for name in names(&dir) {
        let shipped = fs::read_to_string(dir.join(&name)).unwrap();
        let generated = fs::read_to_string(out.path().join(&name)).unwrap();
        assert_eq!(
            shipped, generated,
            "examples/excel/{name} is not what make-odc.sh writes (rerun it)"
        );
    }

    // Another host, user and locale: the values land in the connection string, escaped.
    let other = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(dir.join("make-odc.sh"))
        .args(["-o"])
        .arg(other.path())
        .args(["-u", "a&b", "-l", "1033", "https://datakube.kommune.dk/xmla"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let catalog = catalog_name();
    for cube in shipped_cubes() {
        let name = odc_file_name(&catalog, &cube);
        let html = fs::read_to_string(other.path().join(&name)).unwrap();
        let conns = parse_msodc(&html, &name);
        assert_eq!(conns[0].command_text, cube);
        let props = connection_properties(&conns[0].connection_string, &name);
        assert_eq!(
            property(&props, "data source"),
            Some("https://datakube.kommune.dk/xmla")
        );
        assert_eq!(property(&props, "user id"), Some("a&b"));
        assert_eq!(property(&props, "locale identifier"), Some("1033"));
    }

    // A URL that is not https://…/xmla is refused.
    let status = Command::new("bash")
        .arg(dir.join("make-odc.sh"))
        .arg("-o")
        .arg(other.path())
        .arg("http://localhost:8443/")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "make-odc.sh accepted a non-https URL");
}
