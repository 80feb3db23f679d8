use super::soap::*;

/// The text of the recorded Excel 365 session: `$DATAKUBE_SHARED_DIR/traces/…`, by default
/// `../shared` beside the clone (the workspace's parent folder).
pub(crate) fn excel_trace_text() -> String {
    let shared = std::env::var_os("DATAKUBE_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(
                std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../../shared")
        });
    let path = shared.join("traces/excel365-session.jsonl");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the Excel 365 trace {} ({e}); put the shared material beside the clone or set DATAKUBE_SHARED_DIR",
            path.display()
        )
    })
}

fn trace() -> Vec<serde_json::Value> {
    let text = excel_trace_text();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_excel_365_request_parses() {
    let reqs = trace();
    assert_eq!(reqs.len(), 54);
    let (mut discovers, mut executes, mut begins, mut ends) = (0, 0, 0, 0);
    for r in &reqs {
        let xml = r["request_xml"].as_str().unwrap();
        let parsed = parse_request(xml.as_bytes()).unwrap_or_else(|e| panic!("seq {}: {e}", r["seq"]));
        match &parsed.method {
            Method::Discover(d) => {
                discovers += 1;
                assert!(
                    d.request_type.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                    "{}",
                    d.request_type
                );
            }
            Method::Execute(_) => executes += 1,
        }
        match parsed.session {
            SessionHeader::Begin => begins += 1,
            SessionHeader::End(_) => ends += 1,
            _ => {}
        }
    }
    // Counted independently of the parser: the trace's request_kind field.
    let kinds = |k: &str| {
        reqs.iter()
            .filter(|r| r["request_kind"].as_str().unwrap_or("").contains(k))
            .count()
    };
    assert_eq!(executes + discovers, 54);
    assert!(executes >= kinds("Execute").min(1));
    assert_eq!(begins, 2, "Excel opens two sessions");
    assert_eq!(ends, 1, "the wizard's probe session ends explicitly");
}

#[test]
fn multi_valued_restrictions_and_properties() {
    let xml = r#"<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<Discover xmlns="urn:schemas-microsoft-com:xml-analysis"><RequestType>DISCOVER_PROPERTIES</RequestType>
<Restrictions><RestrictionList><PropertyName><Value>Catalog</Value><Value>ProviderVersion</Value></PropertyName></RestrictionList></Restrictions>
<Properties><PropertyList><Catalog>FLIS</Catalog><LocaleIdentifier>1030</LocaleIdentifier></PropertyList></Properties>
</Discover></soap:Body></soap:Envelope>"#;
    let r = parse_request(xml.as_bytes()).unwrap();
    let Method::Discover(d) = r.method else { panic!() };
    assert_eq!(d.restriction("propertyname"), ["Catalog", "ProviderVersion"]);
    assert_eq!(d.properties.get("catalog"), Some("FLIS"));
    assert_eq!(d.properties.get("LocaleIdentifier"), Some("1030"));
    assert_eq!(r.session, SessionHeader::None);
}

#[test]
fn default_namespace_envelope_with_bom_mustunderstand_and_entities() {
    let xml = "\u{feff}<Envelope xmlns=\"http://schemas.xmlsoap.org/soap/envelope/\"><Header>\
<Session xmlns=\"urn:schemas-microsoft-com:xml-analysis\" mustUnderstand=\"1\" SessionId=\"abc-1\"/></Header>\
<Body><Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\"><Command><Statement>SELECT [a] &amp; &#65; &lt;x&gt; FROM [Økonomi]</Statement></Command>\
<Properties><PropertyList><Format>Native</Format></PropertyList></Properties></Execute></Body></Envelope>";
    let r = parse_request(xml.as_bytes()).unwrap();
    assert_eq!(r.session, SessionHeader::Use("abc-1".into()));
    let Method::Execute(e) = r.method else { panic!() };
    assert_eq!(e.statement, "SELECT [a] & A <x> FROM [Økonomi]");
    assert_eq!(e.properties.get("Format"), Some("Native"));
}

#[test]
fn cdata_statement_and_parameters() {
    let xml = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<Execute xmlns="urn:schemas-microsoft-com:xml-analysis"><Command><Statement><![CDATA[select * from $system.mdschema_cubes where [CUBE_NAME] = @CubeName]]></Statement></Command>
<Properties/><Parameters><Parameter><Name>CubeName</Name><Value>Befolkning</Value></Parameter></Parameters></Execute></soap:Body></soap:Envelope>"#;
    let r = parse_request(xml.as_bytes()).unwrap();
    let Method::Execute(e) = r.method else { panic!() };
    assert!(e.statement.contains("@CubeName"));
    assert_eq!(e.parameters, vec![("CubeName".to_string(), "Befolkning".to_string())]);
}

#[test]
fn bad_requests_name_the_problem_and_position() {
    let cases: &[(&str, &str, usize)] = &[
        ("", "no XML", 1),
        (
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\n<soap:Body>\n<Discover xmlns=\"urn:schemas-microsoft-com:xml-analysis\"></Foo>",
            "not well-formed",
            3,
        ),
        ("<!DOCTYPE x [<!ENTITY a \"b\">]><x/>", "DOCTYPE", 1),
        ("<Envelope/>", "expected a SOAP Envelope", 1),
        (
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><Frobnicate/></s:Body></s:Envelope>",
            "unknown XMLA method <Frobnicate>",
            1,
        ),
        (
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body></s:Body></s:Envelope>",
            "no Discover or Execute",
            1,
        ),
        (
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header><Session/></s:Header><s:Body/></s:Envelope>",
            "without a SessionId",
            1,
        ),
        (
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><Execute><Command><Statement>&foo;</Statement></Command></Execute></s:Body></s:Envelope>",
            "unknown entity",
            1,
        ),
        ("<x:Envelope><x:Body/></x:Envelope>", "undeclared namespace", 1),
    ];
    for (xml, msg, line) in cases {
        let err = parse_request(xml.as_bytes()).unwrap_err();
        assert!(err.message.contains(msg), "{xml:?}: got {err}");
        assert_eq!(err.line, *line, "{xml:?}: got {err}");
    }
}

#[test]
fn depth_and_attribute_limits() {
    let mut deep = String::from("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><Execute>");
    for _ in 0..100 {
        deep.push_str("<a>");
    }
    let err = parse_request(deep.as_bytes()).unwrap_err();
    assert!(err.message.contains("nested deeper"), "{err}");
    let attrs: String = (0..100).map(|i| format!(" a{i}=\"1\"")).collect();
    let xml = format!(
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><Execute{attrs}/></s:Body></s:Envelope>"
    );
    let err = parse_request(xml.as_bytes()).unwrap_err();
    assert!(err.message.contains("attributes"), "{err}");
}
