//! SOAP response envelopes, faults and the small XML-writing helpers the writers share.
//!
//! Responses use unprefixed, default-namespaced XMLA elements (`<DiscoverResponse
//! xmlns="urn:schemas-microsoft-com:xml-analysis">`), as SSAS does; ADOMD.NET rejects
//! prefixed ones.

use std::fmt::Write;

pub const NS_ROWSET: &str = "urn:schemas-microsoft-com:xml-analysis:rowset";
pub const NS_MDDATASET: &str = "urn:schemas-microsoft-com:xml-analysis:mddataset";
pub const NS_EMPTY: &str = "urn:schemas-microsoft-com:xml-analysis:empty";
pub const NS_XSD: &str = "http://www.w3.org/2001/XMLSchema";
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Escape text content and attribute values (both safe for either use).
pub fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    if !s
        .chars()
        .any(|c| matches!(c, '<' | '>' | '&' | '"' | '\'') || (c.is_control() && c != '\t' && c != '\n' && c != '\r'))
    {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry other control characters at all; drop them.
            c if c.is_control() && c != '\t' && c != '\n' && c != '\r' => {}
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Which XMLA method a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Discover,
    Execute,
}

/// The XML declaration, `<soap:Envelope>` and the session header (when in a session).
fn open_envelope(s: &mut String, session: Option<&str>) {
    s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    s.push_str("<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">");
    if let Some(id) = session {
        let _ = write!(
            s,
            "<soap:Header><Session xmlns=\"urn:schemas-microsoft-com:xml-analysis\" SessionId=\"{}\"/></soap:Header>",
            esc(id)
        );
    }
}

fn response_element(kind: Kind) -> &'static str {
    match kind {
        Kind::Discover => "DiscoverResponse",
        Kind::Execute => "ExecuteResponse",
    }
}

/// Everything of the envelope before the `<root>` element (for writing the root in between).
pub fn envelope_head(s: &mut String, kind: Kind, session: Option<&str>) {
    open_envelope(s, session);
    let name = response_element(kind);
    let _ = write!(
        s,
        "<soap:Body><{name} xmlns=\"urn:schemas-microsoft-com:xml-analysis\"><return>"
    );
}

/// Everything of the envelope after the `<root>` element.
pub fn envelope_tail(s: &mut String, kind: Kind) {
    let name = response_element(kind);
    let _ = write!(s, "</return></{name}></soap:Body></soap:Envelope>");
}

/// A full SOAP envelope around `root` (a `<root …>` element), echoing the session id.
pub fn envelope(kind: Kind, session: Option<&str>, root: &str) -> String {
    let mut s = String::with_capacity(root.len() + 512);
    envelope_head(&mut s, kind, session);
    s.push_str(root);
    envelope_tail(&mut s, kind);
    s
}

/// The result of a command that returns nothing (BeginSession, EndSession, DDL): an empty
/// root with **no** `xsd:schema` child (Excel refuses one there).
pub fn empty_root() -> String {
    format!("<root xmlns=\"{NS_EMPTY}\"/>")
}

/// Error codes in the faults we send (unsigned, as MSOLAP expects; values in SSAS's
/// 0xC10Axxxx range so clients treat them as server errors).
pub mod codes {
    pub const MALFORMED_REQUEST: u32 = 0xC10A_0001;
    pub const UNSUPPORTED_ROWSET: u32 = 0xC10A_0002;
    pub const BAD_RESTRICTION: u32 = 0xC10A_0003;
    pub const UNKNOWN_CATALOG: u32 = 0xC10A_0004;
    pub const UNKNOWN_CUBE: u32 = 0xC10A_0005;
    pub const MDX_SYNTAX: u32 = 0xC10A_0010;
    pub const MDX_NAME: u32 = 0xC10A_0011;
    pub const MDX_UNSUPPORTED: u32 = 0xC10A_0012;
    pub const QUERY_FAILED: u32 = 0xC10A_0020;
    pub const SESSION: u32 = 0xC10A_0030;
    pub const CANCELLED: u32 = 0xC10A_0031;
    /// `EffectiveUserName`, `CustomData` or `Roles` from a principal not allowed to impersonate
    /// (or naming an unknown user).
    pub const IMPERSONATION_DENIED: u32 = 0xC10A_0040;
    pub const INTERNAL: u32 = 0xC10A_00FF;
}

/// A SOAP 1.1 fault with an XMLA `<Error ErrorCode=… Description=…/>` detail.
pub fn fault(code: u32, message: &str, session: Option<&str>) -> String {
    let mut s = String::with_capacity(message.len() * 2 + 600);
    open_envelope(&mut s, session);
    let m = esc(message);
    let _ = write!(
        s,
        "<soap:Body><soap:Fault><faultcode>XMLAnalysisError.0x{code:08X}</faultcode><faultstring>{m}</faultstring>\
<detail><Error ErrorCode=\"{code}\" Description=\"{m}\" Source=\"datakube\" HelpFile=\"\"/></detail></soap:Fault></soap:Body></soap:Envelope>"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_is_well_formed_and_escaped() {
        let f = fault(
            codes::MDX_SYNTAX,
            "line 1, column 8: expected ')' but found \"<\" & more",
            Some("s1"),
        );
        assert!(f.contains("ErrorCode=\"3238658064\""), "{f}");
        assert!(f.contains("&quot;&lt;&quot; &amp; more"));
        let mut r = quick_xml::Reader::from_str(&f);
        loop {
            match r.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("fault is not well-formed: {e}\n{f}"),
            }
        }
    }

    #[test]
    fn control_characters_are_dropped() {
        assert_eq!(esc("a\u{1}b\tc"), "ab\tc");
    }
}
