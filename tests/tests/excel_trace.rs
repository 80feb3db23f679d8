//! Replays the 54 requests of a real Excel 365 session (../shared/traces) against the server,
//! in order, with the session ids our server hands out. Names are mapped from the recorded
//! cube to ours (Sales → Økonomi, [Date].[Date] → [Tid].[Kalender], Revenue → Regnskab).
//! Every answer must be a well-formed, fault-free XMLA response of the kind Excel expects.

mod common;

use common::{Answer, Server, curl_post};

fn rewrite(xml: &str) -> String {
    xml.replace("SALES_ANALYTICS", "FLIS")
        .replace("[Sales]", "[Økonomi]")
        .replace("<CUBE_NAME>Sales</CUBE_NAME>", "<CUBE_NAME>Økonomi</CUBE_NAME>")
        .replace("[Date].[Date].[Year]", "[Tid].[Kalender].[År]")
        .replace(
            "[Date].[Date].[Quarter].&amp;[1]",
            "[Tid].[Kalender].[Kvartal].&amp;[20211]",
        )
        .replace("[Date].[Date]", "[Tid].[Kalender]")
        .replace("[Measures].[Revenue]", "[Measures].[Regnskab]")
}

#[test]
fn excel_365_session_replays_without_faults() {
    let s = Server::start();
    let reqs = common::excel_trace();
    assert_eq!(reqs.len(), 54);
    let mut ids: Vec<(String, String)> = Vec::new(); // recorded id → ours
    let mut executes_with_axes = 0;
    for r in &reqs {
        let seq = r["seq"].as_i64().unwrap();
        let kind = r["request_kind"].as_str().unwrap().to_string();
        let mut req = rewrite(r["request_xml"].as_str().unwrap());
        for (theirs, ours) in &ids {
            req = req.replace(theirs.as_str(), ours.as_str());
        }
        let (body, code) = curl_post(&s.url(), &req, &[]);
        assert_eq!(code, "200", "seq {seq}");
        let a = Answer::parse(&body);
        assert!(a.fault.is_none(), "seq {seq} ({kind}) answered a fault: {:?}", a.fault);
        if req.contains("<BeginSession") {
            let recorded = common::session_id(r["response_xml"].as_str().unwrap()).expect("recorded session id");
            let ours = common::session_id(&body).expect("BeginSession answer carries the session id");
            assert_eq!(ours.len(), 36);
            ids.push((recorded, ours));
        } else if req.contains("<Session ") || req.contains("<EndSession ") {
            let sent = common::session_id(&req).unwrap();
            assert_eq!(
                common::session_id(&body).as_deref(),
                Some(sent.as_str()),
                "seq {seq}: the session id is echoed"
            );
        }
        if kind.starts_with("ExecuteEmpty") {
            assert!(
                body.contains("xml-analysis:empty") && !body.contains("xsd:schema"),
                "seq {seq}: empty root without schema"
            );
        } else if kind.starts_with("ExecuteStatement") {
            assert!(
                body.contains("<OlapInfo>") && body.contains("<CellData>"),
                "seq {seq}: an MDDataSet"
            );
            if !a.axes.is_empty() {
                executes_with_axes += 1;
                assert!(a.axes[0].len() > 1, "seq {seq}: the drilled axis has members");
            }
            assert!(!a.cells.is_empty(), "seq {seq}: cells");
        } else {
            assert!(
                body.contains("<xsd:schema"),
                "seq {seq} ({kind}): Discover answers carry the rowset schema"
            );
        }
        if kind.contains("\"Catalog\"") {
            assert!(
                body.contains("<Value>FLIS</Value>"),
                "seq {seq}: DISCOVER_PROPERTIES Catalog is the current catalog"
            );
        }
        if kind.starts_with("MdschemaMembers") {
            assert_eq!(
                body.matches("<row>").count(),
                1,
                "seq {seq}: TREE_OP=8 answers the member itself"
            );
        }
    }
    assert_eq!(ids.len(), 2, "two sessions");
    assert_eq!(executes_with_axes, 6);
}

#[test]
fn transport_headers_and_the_basic_challenge() {
    let s = Server::start();
    let headers = |user: Option<&str>| {
        let mut args = vec![
            "-sk",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "Content-Type: text/xml",
            "--data-binary",
            "not xml at all",
        ];
        if let Some(u) = user {
            args.push("-u");
            args.push(u);
        }
        let url = s.url();
        args.push(&url);
        let out = std::process::Command::new("curl").args(&args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    // Without credentials: 401 with a Basic challenge (MSOLAP sends credentials only then).
    for h in [
        headers(None),
        headers(Some("admin:wrong")),
        headers(Some("nobody:admin")),
    ] {
        assert!(h.starts_with("http/1.1 401") || h.starts_with("http/2 401"), "{h}");
        assert!(h.contains("www-authenticate: basic realm=\"datakube\""), "{h}");
        assert!(h.contains("x-transport-caps-negotiation-flags: 0,0,0,0,0"), "{h}");
    }
    // With credentials: 200 and a fault naming the problem.
    let h = headers(Some("admin:admin"));
    assert!(h.starts_with("http/1.1 200") || h.starts_with("http/2 200"), "{h}");
    assert!(h.contains("x-transport-caps-negotiation-flags: 0,0,0,0,0"), "{h}");
    assert!(h.contains("content-type: text/xml; charset=utf-8"), "{h}");
    let (body, _) = curl_post(&s.url(), "not xml at all", &[]);
    let a = Answer::parse(&body);
    let f = a.fault.expect("a fault for a body that is not XML");
    assert!(f.1.contains("no XML"), "{f:?}");
}
