//! End-to-end streaming of large Execute answers over HTTP/1.1 (as MSOLAP and ADOMD.NET
//! speak it): a crossjoin on the demo Befolkning cube that gives more than 10 MB of XML
//! arrives with `Transfer-Encoding: chunked`, whole and well-formed, with the cell count
//! computed independently in DuckDB; a client that disconnects half-way leaves the server
//! answering.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{ADMIN, Answer, Server, xml_escape};

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(Server::start)
}

/// Kommune × Alder × Køn rows with one (additive) measure: about 18,000 tuples at the test
/// scale, 13 MB of XML.
const BIG_MDX: &str = "SELECT {[Measures].[Tilflyttede]} ON 0, \
NON EMPTY CrossJoin(CrossJoin([Kommune].[Geografi].[Kommune].Members, [Alder].[Aldersgruppe].[Alder].Members), \
[Køn].[Køn].[Køn].Members) ON 1 FROM [Befolkning]";

/// The same × Herkomst: about 27 MB, far more than socket buffers hold, so a client that
/// stops reading leaves the writer with most of it still to write.
const BIGGER_MDX: &str = "SELECT {[Measures].[Tilflyttede]} ON 0, \
NON EMPTY CrossJoin(CrossJoin(CrossJoin([Kommune].[Geografi].[Kommune].Members, [Alder].[Aldersgruppe].[Alder].Members), \
[Køn].[Køn].[Køn].Members), [Herkomst].[Herkomst].[Herkomst].Members) ON 1 FROM [Befolkning]";

fn execute_body(mdx: &str) -> String {
    format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<Command><Statement>{}</Statement></Command><Properties><PropertyList><Catalog>FLIS</Catalog><LocaleIdentifier>1033</LocaleIdentifier>\
<Format>Native</Format></PropertyList></Properties></Execute></soap:Body></soap:Envelope>",
        xml_escape(mdx)
    )
}

/// POST over HTTP/1.1 with curl; returns (response headers lower-cased, body).
fn post_http11(s: &Server, mdx: &str) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("req.xml");
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    std::fs::write(&req, execute_body(mdx)).unwrap();
    let status = Command::new("curl")
        .args(["-sk", "--http1.1", "--max-time", "120", "-u"])
        .arg(format!("{}:{}", ADMIN.0, ADMIN.1))
        .args(["-H", "Content-Type: text/xml", "--data-binary"])
        .arg(format!("@{}", req.display()))
        .arg("-D")
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .arg(s.url())
        .status()
        .unwrap();
    assert!(status.success(), "curl failed: {status}");
    (
        std::fs::read_to_string(&headers).unwrap().to_ascii_lowercase(),
        std::fs::read(&body).unwrap(),
    )
}

fn header_lines(headers: &str) -> Vec<&str> {
    headers.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

#[test]
fn a_large_answer_arrives_chunked_whole_and_well_formed() {
    let s = server();
    let (headers, body) = post_http11(s, BIG_MDX);
    let lines = header_lines(&headers);
    assert_eq!(lines[0], "http/1.1 200 ok", "{headers}");
    assert!(lines.contains(&"transfer-encoding: chunked"), "{headers}");
    assert!(!lines.iter().any(|l| l.starts_with("content-length:")), "{headers}");
    assert!(lines.contains(&"content-type: text/xml; charset=utf-8"), "{headers}");
    assert!(
        lines.contains(&"x-transport-caps-negotiation-flags: 0,0,0,0,0"),
        "{headers}"
    );
    assert!(body.len() > 10 * 1024 * 1024, "only {} bytes", body.len());
    let xml = String::from_utf8(body).expect("UTF-8");
    assert!(xml.ends_with("</return></ExecuteResponse></soap:Body></soap:Envelope>"));
    // A real XML parser reads it to the end (it panics on anything malformed).
    let a = Answer::parse(&xml).ok();

    // Expected: the (kommune, age, sex) combinations with a Tilflyttede value, by hand in SQL.
    let expected: i64 = s
        .duck()
        .query_row(
            &format!(
                "SELECT count(*) FROM (SELECT DISTINCT b.kommunekode, b.alder, b.koen_kode FROM {} b \
                 JOIN {} k USING (kommunekode) JOIN {} a USING (alder) JOIN {} g USING (koen_kode) \
                 WHERE b.tilflyttede IS NOT NULL)",
                s.table("befolkning", "bestand"),
                s.table("faelles", "kommune"),
                s.table("faelles", "alder"),
                s.table("faelles", "koen"),
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(expected > 10_000, "the fixture is big enough: {expected}");
    assert_eq!(a.axes.len(), 2);
    assert_eq!(a.axes[1].len() as i64, expected, "row tuples");
    assert_eq!(a.cells.len() as i64, expected, "cells");
    assert_eq!(*a.cells.keys().last().unwrap() as i64, expected - 1);
}

#[test]
fn a_small_answer_keeps_its_content_length() {
    let s = server();
    let (headers, body) = post_http11(
        s,
        "SELECT {[Measures].[Tilflyttede]} ON 0, [Køn].[Køn].[Køn].Members ON 1 FROM [Befolkning]",
    );
    let lines = header_lines(&headers);
    assert!(
        lines.contains(&format!("content-length: {}", body.len()).as_str()),
        "{headers}"
    );
    assert!(!lines.contains(&"transfer-encoding: chunked"), "{headers}");
    let a = Answer::parse(&String::from_utf8(body).unwrap()).ok();
    assert_eq!(a.axes[1].len(), 2);
}

#[test]
fn an_error_before_the_first_byte_is_a_soap_fault() {
    let s = server();
    let (headers, body) = post_http11(
        s,
        "SELECT {[Measures].[Tilflyttede]} ON 0, CrossJoin([Kommune].[Geografi].[Kommune].Members, [Nope].[Nope].Members) ON 1 FROM [Befolkning]",
    );
    let lines = header_lines(&headers);
    assert_eq!(lines[0], "http/1.1 200 ok", "{headers}");
    assert!(lines.contains(&"x-transport-caps-negotiation-flags: 0,0,0,0,0"));
    let a = Answer::parse(&String::from_utf8(body).unwrap());
    let (code, message) = a.fault.expect("a SOAP fault");
    assert!(code.parse::<u32>().is_ok(), "numeric ErrorCode: {code}");
    assert!(message.contains("Nope"), "{message}");
}

#[test]
fn a_client_that_disconnects_mid_stream_leaves_the_server_answering() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("req.xml");
    std::fs::write(&req, execute_body(BIGGER_MDX)).unwrap();
    let mut curl = Command::new("curl")
        .args(["-sk", "--http1.1", "--max-time", "120", "-u"])
        .arg(format!("{}:{}", ADMIN.0, ADMIN.1))
        .args(["-H", "Content-Type: text/xml", "--data-binary"])
        .arg(format!("@{}", req.display()))
        .arg(s.url())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the beginning of the answer, then go away.
    let mut first = vec![0u8; 256 * 1024];
    curl.stdout.take().unwrap().read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"<?xml"));
    curl.kill().unwrap();
    curl.wait().unwrap();

    // The writer notices at its next chunk and stops (it does not write the rest).
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = s.log.lock().unwrap();
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains("stopped while streaming") => break,
            Ok(line) => seen.push(line),
            Err(_) => panic!("the writer did not stop; log:\n{}", seen.join("\n")),
        }
    }
    drop(log);

    // The server is healthy: the next request is answered, correctly.
    assert!(s.child_alive());
    let a = s
        .mdx(
            "SELECT {[Measures].[Tilflyttede]} ON 0, [Køn].[Køn].[Køn].Members ON 1 FROM [Befolkning]",
            1033,
        )
        .ok();
    assert_eq!(a.axes[1].len(), 2);
    assert_eq!(a.cells.len(), 2);
}
