//! Every class of malformed request gets a SOAP fault (HTTP 200, numeric ErrorCode) with a
//! message naming the problem, and the server stays up.

mod common;

use common::{Answer, Server, curl_post};

fn discover(request_type: &str, restrictions: &str) -> String {
    format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Discover xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<RequestType>{request_type}</RequestType><Restrictions><RestrictionList>{restrictions}</RestrictionList></Restrictions>\
<Properties><PropertyList><Catalog>FLIS</Catalog></PropertyList></Properties></Discover></soap:Body></soap:Envelope>"
    )
}

#[test]
fn malformed_requests_get_precise_faults_and_the_server_stays_up() {
    let s = Server::start();
    let deep = format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\">{}",
        "<a>".repeat(200)
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("not XML", "hello".into(), "no XML"),
        ("wrong envelope", "<Envelope xmlns=\"urn:nope\"><Body/></Envelope>".into(), "expected a SOAP Envelope"),
        ("unknown RequestType", discover("MDSCHEMA_NOPE", ""), "MDSCHEMA_NOPE"),
        ("bad restriction", discover("MDSCHEMA_CUBES", "<NO_SUCH_COLUMN>x</NO_SUCH_COLUMN>"), "NO_SUCH_COLUMN"),
        ("deep nesting", deep, "nested deeper"),
        ("DTD", "<!DOCTYPE x [<!ENTITY e \"boom\">]><x>&e;</x>".into(), "DOCTYPE"),
        ("entity", "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\"><Command><Statement>&xxe;</Statement></Command></Execute></soap:Body></soap:Envelope>".into(), "unknown entity"),
    ];
    for (what, body, needle) in &cases {
        let (b, code) = curl_post(&s.url(), body, &[]);
        assert_eq!(code, "200", "{what}: faults are HTTP 200");
        let f = Answer::parse(&b)
            .fault
            .unwrap_or_else(|| panic!("{what}: no fault in {b}"));
        assert!(f.0.parse::<u32>().is_ok(), "{what}: numeric ErrorCode, got {:?}", f.0);
        assert!(f.1.contains(needle), "{what}: fault {:?} does not name {needle:?}", f.1);
    }
    // MDX syntax error and unknown member (MdxMissingMemberMode=Error, Excel's setting).
    let f = s
        .mdx("SELECT {[Measures].[Regnskab] ON 0 FROM [Økonomi]", 1033)
        .fault
        .expect("syntax");
    assert!(f.1.contains("line 1, column"), "{f:?}");
    let f = s
        .mdx("SELECT [Kommune].[Geografi].[Kommune].&[1] ON 0 FROM [Økonomi]", 1033)
        .fault
        .expect("member");
    assert!(f.1.contains("&[1]"), "{f:?}");
    // Still up and answering.
    let a = s.mdx("SELECT FROM [Økonomi] WHERE ([Measures].[Regnskab])", 1033).ok();
    assert_eq!(a.cells.len(), 1);
    assert!(s.child_alive(), "the server process is still running");
}

/// MdxMissingMemberMode=Ignore leaves unknown members out (sets) or empty (values); an unknown
/// dimension or measure is still an error, and Error mode (the default) still faults.
#[test]
fn missing_member_mode_ignore_drops_unknown_members() {
    let s = Server::start();
    let exec = |mdx: &str, mode: &str| {
        let body = format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<Command><Statement>{}</Statement></Command><Properties><PropertyList><Catalog>FLIS</Catalog><LocaleIdentifier>1033</LocaleIdentifier>\
{mode}</PropertyList></Properties></Execute></soap:Body></soap:Envelope>",
            common::xml_escape(mdx)
        );
        Answer::parse(&s.post(&body))
    };
    let ignore = "<MdxMissingMemberMode>Ignore</MdxMissingMemberMode>";
    let error = "<MdxMissingMemberMode>Error</MdxMissingMemberMode>";
    // Region 1084 (Hovedstaden) exists, 9999 does not.
    let set = "SELECT {[Kommune].[Geografi].[Region].&[1084], [Kommune].[Geografi].[Region].&[9999]} ON 0 \
FROM [Befolkning] WHERE ([Measures].[Antal borgere])";
    let a = exec(set, ignore).ok();
    assert_eq!(a.axes[0].len(), 1, "the missing member is left out");
    assert_eq!(a.axes[0][0][0].0, "[Kommune].[Geografi].[Region].&[1084]");
    let f = exec(set, error).fault.expect("Error mode faults");
    assert!(f.1.contains("&[9999]"), "{f:?}");
    let f = exec(set, "").fault.expect("Error is the default");
    assert!(f.1.contains("&[9999]"), "{f:?}");
    // In a value: the tuple with a missing member is empty, the other value is there.
    let calc = "WITH MEMBER [Measures].[X] AS ([Measures].[Antal borgere], [Kommune].[Geografi].[Region].&[9999]) \
MEMBER [Measures].[Y] AS ([Measures].[Antal borgere], [Kommune].[Geografi].[Region].&[1084]) \
SELECT {[Measures].[X], [Measures].[Y]} ON 0 FROM [Befolkning]";
    let a = exec(calc, ignore).ok();
    assert_eq!(a.value(0), None, "X is empty");
    assert!(a.value(1).is_some_and(|v| v > 0.0), "Y has a value");
    // Unknown dimensions and measures are errors in both modes.
    let f = exec("SELECT [Nope].[Nope].&[1] ON 0 FROM [Befolkning]", ignore)
        .fault
        .expect("unknown dimension");
    assert!(f.1.contains("[Nope]"), "{f:?}");
    let f = exec("SELECT [Measures].[Nope] ON 0 FROM [Befolkning]", ignore)
        .fault
        .expect("unknown measure");
    assert!(f.1.contains("[Nope]"), "{f:?}");
}
