//! SOAP 1.1 request parsing for XMLA.
//!
//! Streaming and namespace-aware (quick-xml): no document tree is built, element depth and
//! attribute counts are bounded, DTDs and entity declarations are refused. Accepts what real
//! clients send: a UTF-8 byte-order mark or junk before `<`, prefixed or default-namespaced
//! envelopes, session headers with or without `mustUnderstand`, multi-valued restrictions as
//! repeated `<Value>` children, and empty `<Statement/>` for session-only commands.

use std::fmt;

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};

pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS_XMLA: &str = "urn:schemas-microsoft-com:xml-analysis";

/// Deepest element nesting accepted in a request.
pub const MAX_DEPTH: usize = 64;
/// Most attributes accepted on one element.
pub const MAX_ATTRIBUTES: usize = 64;
/// Most restrictions, properties or parameters accepted in one request.
pub const MAX_ENTRIES: usize = 1024;

/// The session header of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionHeader {
    None,
    Begin,
    Use(String),
    End(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub name: String,
    pub values: Vec<String>,
}

/// XMLA properties (`<PropertyList>`), looked up case-insensitively; later values win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties(pub Vec<(String, String)>);

impl Properties {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discover {
    pub request_type: String,
    pub restrictions: Vec<Restriction>,
    pub properties: Properties,
}

impl Discover {
    /// The values of restriction `name` (case-insensitive), empty when absent.
    pub fn restriction(&self, name: &str) -> &[String] {
        self.restrictions
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .map(|r| r.values.as_slice())
            .unwrap_or(&[])
    }
}

/// `<Command><Cancel>`: stop the running command of a session (this one when no id is given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute {
    pub statement: String,
    pub cancel: Option<Cancel>,
    pub properties: Properties,
    pub parameters: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Discover(Discover),
    Execute(Execute),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub session: SessionHeader,
    pub method: Method,
}

/// A request that is not acceptable XMLA, with the position (1-based) where that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for SoapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed XMLA request at line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for SoapError {}

/// Where an element sits, by local name, while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Other,
    Envelope,
    Header,
    Body,
    Method,
    RequestType,
    Restrictions,
    RestrictionList,
    Restriction,
    RestrictionValue,
    Properties,
    PropertyList,
    Property,
    Command,
    Statement,
    Parameters,
    Parameter,
    ParameterName,
    ParameterValue,
    Cancel,
    CancelSession,
}

/// The whole body, and where the XML starts in it, for error positions.
struct Parser<'a> {
    body: &'a [u8],
    start: usize,
}

impl Parser<'_> {
    /// An error at byte `pos` of the XML (counted from its first '<').
    fn error_at(&self, pos: usize, message: impl Into<String>) -> SoapError {
        let upto = &self.body[..(self.start + pos).min(self.body.len())];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = upto.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
        let column = String::from_utf8_lossy(&upto[line_start..]).chars().count() + 1;
        SoapError {
            message: message.into(),
            line,
            column,
        }
    }
}

/// Parse an XMLA SOAP request body.
pub fn parse_request(body: &[u8]) -> Result<Request, SoapError> {
    // Skip a byte-order mark and anything before the first '<' (some clients send junk).
    let start = body.iter().position(|&b| b == b'<').ok_or(SoapError {
        message: "the request body holds no XML (expected a SOAP Envelope)".into(),
        line: 1,
        column: 1,
    })?;
    let src = &body[start..];
    let p = Parser { body, start };
    let mut reader = NsReader::from_reader(src);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;

    let mut stack: Vec<Ctx> = Vec::new();
    let mut session = SessionHeader::None;
    let mut method_name: Option<String> = None;
    let mut f = Fields::default();
    let mut text = String::new();
    let mut saw_envelope = false;

    loop {
        let pos = reader.buffer_position() as usize;
        let (ns, ev) = match reader.read_resolved_event() {
            Ok(x) => x,
            Err(e) => {
                let at = reader.error_position() as usize;
                return Err(p.error_at(at, format!("not well-formed XML: {e}")));
            }
        };
        let ns_str = match ns {
            ResolveResult::Bound(Namespace(n)) => std::str::from_utf8(n).unwrap_or(""),
            ResolveResult::Unknown(_) => {
                return Err(p.error_at(pos, "an element uses an undeclared namespace prefix"));
            }
            ResolveResult::Unbound => "",
        };
        match ev {
            Event::DocType(_) => {
                return Err(p.error_at(pos, "DOCTYPE declarations are not accepted in XMLA requests"));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(ev, Event::Empty(_));
                if stack.len() >= MAX_DEPTH {
                    return Err(p.error_at(pos, format!("elements nested deeper than {MAX_DEPTH} levels")));
                }
                check_attributes(&p, pos, e)?;
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let parent = stack.last().copied();
                let ctx = match (parent, local.as_str()) {
                    (None, "Envelope") if ns_str == NS_SOAP => {
                        saw_envelope = true;
                        Ctx::Envelope
                    }
                    (None, _) => {
                        return Err(p.error_at(pos, format!("expected a SOAP Envelope ({NS_SOAP}), found <{local}>")));
                    }
                    (Some(Ctx::Envelope), "Header") if ns_str == NS_SOAP => Ctx::Header,
                    (Some(Ctx::Envelope), "Body") if ns_str == NS_SOAP => Ctx::Body,
                    (Some(Ctx::Header), "BeginSession") if is_xmla_or_none(ns_str) => {
                        session = SessionHeader::Begin;
                        Ctx::Other
                    }
                    (Some(Ctx::Header), "Session") if is_xmla_or_none(ns_str) => {
                        session = SessionHeader::Use(session_id(&p, pos, e)?);
                        Ctx::Other
                    }
                    (Some(Ctx::Header), "EndSession") if is_xmla_or_none(ns_str) => {
                        session = SessionHeader::End(session_id(&p, pos, e)?);
                        Ctx::Other
                    }
                    (Some(Ctx::Body), "Discover" | "Execute") if is_xmla_or_none(ns_str) => {
                        if method_name.is_some() {
                            return Err(p.error_at(pos, "the SOAP Body holds more than one XMLA method"));
                        }
                        method_name = Some(local.clone());
                        Ctx::Method
                    }
                    (Some(Ctx::Body), other) => {
                        return Err(p.error_at(
                            pos,
                            format!("unknown XMLA method <{other}> in namespace '{ns_str}' (expected Discover or Execute in {NS_XMLA})"),
                        ));
                    }
                    (Some(Ctx::Method), "RequestType") => Ctx::RequestType,
                    (Some(Ctx::Method), "Restrictions") => Ctx::Restrictions,
                    (Some(Ctx::Restrictions), "RestrictionList") => Ctx::RestrictionList,
                    (Some(Ctx::RestrictionList), name) => {
                        if f.restrictions.len() >= MAX_ENTRIES {
                            return Err(p.error_at(pos, format!("more than {MAX_ENTRIES} restrictions")));
                        }
                        f.restrictions.push(Restriction {
                            name: name.to_string(),
                            values: Vec::new(),
                        });
                        Ctx::Restriction
                    }
                    (Some(Ctx::Restriction), "Value") => Ctx::RestrictionValue,
                    (Some(Ctx::Method), "Properties") => Ctx::Properties,
                    (Some(Ctx::Properties), "PropertyList") => Ctx::PropertyList,
                    (Some(Ctx::PropertyList), name) => {
                        if f.properties.len() >= MAX_ENTRIES {
                            return Err(p.error_at(pos, format!("more than {MAX_ENTRIES} properties")));
                        }
                        f.properties.push((name.to_string(), String::new()));
                        Ctx::Property
                    }
                    (Some(Ctx::Method), "Command") => Ctx::Command,
                    (Some(Ctx::Command), "Statement") => {
                        f.statement = Some(String::new());
                        Ctx::Statement
                    }
                    (Some(Ctx::Command), "Cancel") => {
                        f.cancel = Some(Cancel { session_id: None });
                        Ctx::Cancel
                    }
                    (Some(Ctx::Cancel), "SessionID") => Ctx::CancelSession,
                    (Some(Ctx::Method), "Parameters") => Ctx::Parameters,
                    (Some(Ctx::Parameters), "Parameter") => {
                        if f.parameters.len() >= MAX_ENTRIES {
                            return Err(p.error_at(pos, format!("more than {MAX_ENTRIES} parameters")));
                        }
                        f.param_name.clear();
                        f.param_value.clear();
                        Ctx::Parameter
                    }
                    (Some(Ctx::Parameter), "Name") => Ctx::ParameterName,
                    (Some(Ctx::Parameter), "Value") => Ctx::ParameterValue,
                    _ => Ctx::Other,
                };
                text.clear();
                if is_empty {
                    f.close(ctx, &mut text);
                } else {
                    stack.push(ctx);
                }
            }
            Event::Text(t) => {
                let s = t
                    .decode()
                    .map_err(|e| p.error_at(pos, format!("text is not UTF-8: {e}")))?;
                append_text(&mut text, &s, &stack, &p, pos)?;
            }
            Event::CData(t) => {
                let s = String::from_utf8(t.into_inner().into_owned())
                    .map_err(|_| p.error_at(pos, "CDATA is not UTF-8"))?;
                append_text(&mut text, &s, &stack, &p, pos)?;
            }
            Event::GeneralRef(r) => {
                let s = if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|e| p.error_at(pos, format!("bad character reference: {e}")))?
                {
                    c.to_string()
                } else {
                    let name = r
                        .decode()
                        .map_err(|e| p.error_at(pos, format!("bad entity reference: {e}")))?;
                    match name.as_ref() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => {
                            return Err(p.error_at(
                                pos,
                                format!("unknown entity '&{other};' (only the five XML entities are accepted)"),
                            ));
                        }
                    }
                };
                append_text(&mut text, &s, &stack, &p, pos)?;
            }
            Event::End(_) => {
                let ctx = stack.pop().unwrap_or(Ctx::Other);
                f.close(ctx, &mut text);
                text.clear();
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !saw_envelope {
        return Err(p.error_at(0, "no SOAP Envelope found"));
    }
    let Fields {
        request_type,
        restrictions,
        properties,
        parameters,
        statement,
        cancel,
        ..
    } = f;
    let properties = Properties(properties);
    let method = match method_name.as_deref() {
        Some("Discover") => {
            if request_type.trim().is_empty() {
                return Err(p.error_at(0, "Discover without a RequestType"));
            }
            Method::Discover(Discover {
                request_type: request_type.trim().to_string(),
                restrictions,
                properties,
            })
        }
        Some(_) => Method::Execute(Execute {
            statement: statement.unwrap_or_default(),
            cancel,
            properties,
            parameters,
        }),
        None => return Err(p.error_at(0, "the SOAP Body holds no Discover or Execute")),
    };
    Ok(Request { session, method })
}

/// What a request carries, collected while its elements close.
#[derive(Default)]
struct Fields {
    request_type: String,
    restrictions: Vec<Restriction>,
    properties: Vec<(String, String)>,
    parameters: Vec<(String, String)>,
    statement: Option<String>,
    param_name: String,
    param_value: String,
    cancel: Option<Cancel>,
}

impl Fields {
    /// An element of kind `ctx` ended; `text` is its text content.
    fn close(&mut self, ctx: Ctx, text: &mut String) {
        match ctx {
            Ctx::RequestType => self.request_type = std::mem::take(text),
            Ctx::Restriction => {
                if let Some(r) = self.restrictions.last_mut()
                    && r.values.is_empty()
                    && !text.trim().is_empty()
                {
                    r.values.push(text.trim().to_string());
                }
            }
            Ctx::RestrictionValue => {
                if let Some(r) = self.restrictions.last_mut() {
                    r.values.push(text.trim().to_string());
                }
            }
            Ctx::Property => {
                if let Some(pr) = self.properties.last_mut() {
                    pr.1 = text.trim().to_string();
                }
            }
            Ctx::Statement => self.statement = Some(std::mem::take(text)),
            Ctx::ParameterName => self.param_name = text.trim().to_string(),
            Ctx::ParameterValue => self.param_value = std::mem::take(text),
            Ctx::Parameter => self.parameters.push((
                std::mem::take(&mut self.param_name),
                std::mem::take(&mut self.param_value),
            )),
            // `<Cancel><SessionID>…</SessionID>`: empty means this session.
            Ctx::CancelSession => {
                if let Some(c) = self.cancel.as_mut() {
                    c.session_id = Some(text.trim().to_string()).filter(|s| !s.is_empty());
                }
            }
            _ => {}
        }
    }
}

fn is_xmla_or_none(ns: &str) -> bool {
    ns == NS_XMLA || ns.is_empty()
}

fn check_attributes(p: &Parser, pos: usize, e: &BytesStart) -> Result<(), SoapError> {
    let mut n = 0;
    for a in e.attributes() {
        a.map_err(|err| p.error_at(pos, format!("malformed attribute: {err}")))?;
        n += 1;
        if n > MAX_ATTRIBUTES {
            return Err(p.error_at(pos, format!("more than {MAX_ATTRIBUTES} attributes on one element")));
        }
    }
    Ok(())
}

fn session_id(p: &Parser, pos: usize, e: &BytesStart) -> Result<String, SoapError> {
    for a in e.attributes().flatten() {
        if a.key.local_name().as_ref() == b"SessionId" {
            let v = a
                .unescape_value()
                .map_err(|err| p.error_at(pos, format!("bad SessionId: {err}")))?;
            let v = v.trim().to_string();
            if v.is_empty() || v.len() > 128 {
                return Err(p.error_at(pos, "SessionId must be 1 to 128 characters"));
            }
            return Ok(v);
        }
    }
    Err(p.error_at(pos, "session header without a SessionId attribute"))
}

/// Text is kept only where it means something, bounded by the body limit of the HTTP layer.
fn append_text(text: &mut String, s: &str, stack: &[Ctx], p: &Parser, pos: usize) -> Result<(), SoapError> {
    match stack.last() {
        Some(
            Ctx::RequestType
            | Ctx::Restriction
            | Ctx::RestrictionValue
            | Ctx::Property
            | Ctx::Statement
            | Ctx::ParameterName
            | Ctx::ParameterValue
            | Ctx::CancelSession,
        ) => {
            text.push_str(s);
            Ok(())
        }
        _ if s.trim().is_empty() => Ok(()),
        Some(Ctx::Other) | Some(Ctx::Header) => Ok(()),
        _ => Err(p.error_at(
            pos,
            format!("unexpected text '{}'", s.trim().chars().take(40).collect::<String>()),
        )),
    }
}
