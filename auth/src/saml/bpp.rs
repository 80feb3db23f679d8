//! The OIO Basic Privilege Profile (OIO-BPP): the privileges a user holds, per organisation,
//! as the KOMBIT Context Handler sends them in the SAML attribute
//! `https://data.gov.dk/model/core/eid/privilegesIntermediate` (OIOSAML 3) or
//! `dk:gov:saml:attribute:Privileges_intermediate` (OIOSAML 2): base64 of
//!
//! ```xml
//! <bpp:PrivilegeList xmlns:bpp="http://itst.dk/oiosaml/basic_privilege_profile">
//!   <PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:55133018">
//!     <Constraint Name="http://sts.kombit.dk/constraints/orgenhed/1">uuid1,uuid2</Constraint>
//!     <Privilege>http://example.dk/roles/usersystemrole/cube_read/1</Privilege>
//!   </PrivilegeGroup>
//! </bpp:PrivilegeList>
//! ```
//!
//! Parsed namespace-aware with quick-xml: the root must be `PrivilegeList` (in the BPP namespace
//! or none); `PrivilegeGroup`, `Privilege` and `Constraint` are taken in no namespace or the BPP
//! namespace; elements of other namespaces and unknown elements are ignored (with their
//! content). Groups whose scope is not a CVR number (`…:productionUnitIdentifier:…`, …) are
//! left out: they name no organisation this server knows, and leaving them out only narrows.
//!
//! Bounded: the input size, the nesting depth and the number of groups, privileges and
//! constraints are limited; a DOCTYPE (and so any entity declaration) is refused, and only the
//! five predefined entities and character references are resolved.

use std::fmt;

use base64::Engine as _;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::{Constraint, PrivilegeGroup};

/// The OIO-BPP namespace.
pub const BPP_NS: &str = "http://itst.dk/oiosaml/basic_privilege_profile";
/// The scope prefix of a privilege group held in an organisation with a CVR number.
pub const CVR_SCOPE_PREFIX: &str = "urn:dk:gov:saml:cvrNumberIdentifier:";

/// Largest base64 attribute value accepted.
pub const MAX_BASE64_BYTES: usize = 256 * 1024;
/// Deepest element nesting accepted (a BPP document has three levels).
pub const MAX_DEPTH: usize = 16;
/// Most privilege groups accepted in one document.
pub const MAX_GROUPS: usize = 1000;
/// Most privileges plus constraints accepted in one document.
pub const MAX_ENTRIES: usize = 20_000;
/// Longest privilege URI or constraint value accepted.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// Why a privilege attribute was refused. The text names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BppError(pub String);

impl fmt::Display for BppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OIO-BPP privilege list: {}", self.0)
    }
}

impl std::error::Error for BppError {}

fn err<T>(msg: impl Into<String>) -> Result<T, BppError> {
    Err(BppError(msg.into()))
}

/// Decode the base64 attribute value and parse the privilege list in it.
pub fn parse_base64(value: &str) -> Result<Vec<PrivilegeGroup>, BppError> {
    if value.len() > MAX_BASE64_BYTES {
        return err(format!(
            "the base64 value is {} bytes, more than the limit of {MAX_BASE64_BYTES}",
            value.len()
        ));
    }
    // Attribute values may be folded over lines.
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.as_bytes()))
        .map_err(|e| BppError(format!("the attribute value is not valid base64 ({e})")))?;
    let text =
        std::str::from_utf8(&bytes).map_err(|e| BppError(format!("the decoded value is not UTF-8 text ({e})")))?;
    parse_xml(text)
}

/// What the parser is inside of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    List,
    Group,
    Privilege,
    Constraint,
    /// An unknown or foreign element: skipped with everything in it.
    Ignored,
}

/// Parse a privilege list document.
pub fn parse_xml(xml: &str) -> Result<Vec<PrivilegeGroup>, BppError> {
    if xml.len() > MAX_BASE64_BYTES {
        return err(format!("the document is larger than {MAX_BASE64_BYTES} bytes"));
    }
    let mut reader = NsReader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Frame> = Vec::new();
    let mut groups: Vec<PrivilegeGroup> = Vec::new();
    // The group being read; `None` while inside a group with a scope that is not a CVR.
    let mut current: Option<PrivilegeGroup> = None;
    let mut text = String::new();
    let mut constraint_name = String::new();
    let mut entries = 0usize;
    let mut root_seen = false;

    loop {
        let pos = reader.buffer_position();
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|e| BppError(format!("malformed XML at byte {pos}: {e}")))?;
        let in_value = matches!(stack.last(), Some(Frame::Privilege | Frame::Constraint));
        match ev {
            Event::DocType(_) => return err("a DOCTYPE is not allowed (no DTDs or entity declarations)"),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                if stack.len() >= MAX_DEPTH {
                    return err(format!("elements nested deeper than {MAX_DEPTH} levels"));
                }
                let local = e.local_name();
                let local = std::str::from_utf8(local.as_ref()).unwrap_or("");
                let ours = match ns {
                    ResolveResult::Unbound => true,
                    ResolveResult::Bound(n) => n.as_ref() == BPP_NS.as_bytes(),
                    ResolveResult::Unknown(p) => {
                        return err(format!("undeclared namespace prefix '{}'", String::from_utf8_lossy(&p)));
                    }
                };
                let parent = stack.last().copied();
                let frame = match (parent, ours, local) {
                    (None, _, _) if root_seen => return err("more than one root element"),
                    (None, true, "PrivilegeList") => Frame::List,
                    (None, _, other) => {
                        return err(format!(
                            "the root element is '{other}', expected PrivilegeList (namespace {BPP_NS})"
                        ));
                    }
                    (Some(Frame::List), true, "PrivilegeGroup") => {
                        if groups.len() >= MAX_GROUPS {
                            return err(format!("more than {MAX_GROUPS} privilege groups"));
                        }
                        current = group_for_scope(&reader, e)?;
                        Frame::Group
                    }
                    (Some(Frame::Group), true, "Privilege") => Frame::Privilege,
                    (Some(Frame::Group), true, "Constraint") => {
                        constraint_name = attribute(&reader, e, "Name")?
                            .ok_or_else(|| BppError("a Constraint element has no Name attribute".into()))?;
                        if constraint_name.trim().is_empty() {
                            return err("a Constraint element has an empty Name attribute");
                        }
                        Frame::Constraint
                    }
                    (Some(Frame::Privilege | Frame::Constraint), _, other) => {
                        return err(format!(
                            "unexpected element '{other}' inside a privilege or constraint value"
                        ));
                    }
                    _ => Frame::Ignored,
                };
                if parent.is_none() {
                    root_seen = true;
                }
                text.clear();
                if empty {
                    finish(frame, &mut current, &mut groups, &text, &constraint_name, &mut entries)?;
                } else {
                    stack.push(frame);
                }
            }
            Event::End(_) => {
                let frame = stack.pop().expect("quick-xml checks end names");
                finish(frame, &mut current, &mut groups, &text, &constraint_name, &mut entries)?;
                text.clear();
            }
            Event::Text(t) if in_value => {
                let s = t
                    .decode()
                    .map_err(|e| BppError(format!("text is not valid UTF-8 ({e})")))?;
                push_bounded(&mut text, &s)?;
            }
            Event::CData(t) if in_value => {
                let s = t
                    .decode()
                    .map_err(|e| BppError(format!("CDATA is not valid UTF-8 ({e})")))?;
                push_bounded(&mut text, &s)?;
            }
            Event::GeneralRef(r) => {
                let resolved = if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|e| BppError(format!("bad character reference: {e}")))?
                {
                    c.to_string()
                } else {
                    let name = r
                        .decode()
                        .map_err(|e| BppError(format!("bad entity reference ({e})")))?;
                    quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| {
                            BppError(format!(
                                "unknown entity '&{name};' (only the predefined ones are allowed)"
                            ))
                        })?
                        .to_string()
                };
                if in_value {
                    push_bounded(&mut text, &resolved)?;
                }
            }
            Event::Text(t) if stack.is_empty() || matches!(stack.last(), Some(Frame::List | Frame::Group)) => {
                let s = t.decode().unwrap_or_default();
                if !s.trim().is_empty() {
                    return err(format!("unexpected text '{}'", s.trim()));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return err("the document is empty (no PrivilegeList element)");
    }
    if !stack.is_empty() {
        return err("the document ends before its elements are closed");
    }
    Ok(groups)
}

fn push_bounded(text: &mut String, s: &str) -> Result<(), BppError> {
    if text.len() + s.len() > MAX_VALUE_BYTES {
        return err(format!(
            "a privilege or constraint value is longer than {MAX_VALUE_BYTES} bytes"
        ));
    }
    text.push_str(s);
    Ok(())
}

fn finish(
    frame: Frame,
    current: &mut Option<PrivilegeGroup>,
    groups: &mut Vec<PrivilegeGroup>,
    text: &str,
    constraint_name: &str,
    entries: &mut usize,
) -> Result<(), BppError> {
    let count = |entries: &mut usize| {
        *entries += 1;
        if *entries > MAX_ENTRIES {
            return err(format!("more than {MAX_ENTRIES} privileges and constraints"));
        }
        Ok(())
    };
    match frame {
        Frame::Group => {
            if let Some(g) = current.take() {
                if g.privileges.is_empty() {
                    return err(format!("the privilege group for CVR {} has no Privilege", g.cvr));
                }
                groups.push(g);
            }
        }
        Frame::Privilege => {
            let v = text.trim();
            if v.is_empty() {
                return err("an empty Privilege element");
            }
            count(entries)?;
            if let Some(g) = current.as_mut()
                && !g.privileges.iter().any(|p| p == v)
            {
                g.privileges.push(v.to_string());
            }
        }
        Frame::Constraint => {
            count(entries)?;
            if let Some(g) = current.as_mut() {
                g.constraints.push(Constraint {
                    name: constraint_name.trim().to_string(),
                    value: text.trim().to_string(),
                });
            }
        }
        Frame::List | Frame::Ignored => {}
    }
    Ok(())
}

/// The group for a `PrivilegeGroup` start tag: `Some` for a CVR scope, `None` for another
/// kind of scope (skipped), an error for a missing or malformed one.
fn group_for_scope(reader: &NsReader<&[u8]>, e: &BytesStart) -> Result<Option<PrivilegeGroup>, BppError> {
    let scope =
        attribute(reader, e, "Scope")?.ok_or_else(|| BppError("a PrivilegeGroup has no Scope attribute".into()))?;
    let scope = scope.trim();
    match scope.strip_prefix(CVR_SCOPE_PREFIX) {
        Some(cvr) if cvr.len() == 8 && cvr.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(PrivilegeGroup {
            cvr: cvr.to_string(),
            privileges: Vec::new(),
            constraints: Vec::new(),
        })),
        Some(cvr) => err(format!(
            "the PrivilegeGroup scope '{scope}' has '{cvr}', not an 8-digit CVR number"
        )),
        None if scope.starts_with("urn:dk:gov:saml:") => Ok(None),
        None => err(format!(
            "the PrivilegeGroup scope '{scope}' is not of the form {CVR_SCOPE_PREFIX}<CVR>"
        )),
    }
}

/// An unqualified attribute's unescaped value.
fn attribute(reader: &NsReader<&[u8]>, e: &BytesStart, name: &str) -> Result<Option<String>, BppError> {
    for a in e.attributes() {
        let a = a.map_err(|e| BppError(format!("malformed attribute: {e}")))?;
        let (ns, local) = reader.resolve_attribute(a.key);
        if matches!(ns, ResolveResult::Unbound) && local.as_ref() == name.as_bytes() {
            let v = a
                .decode_and_unescape_value(reader.decoder())
                .map_err(|e| BppError(format!("attribute {name}: {e}")))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<bpp:PrivilegeList xmlns:bpp="http://itst.dk/oiosaml/basic_privilege_profile"
                   xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:55133018">
    <Constraint Name="http://sts.kombit.dk/constraints/orgenhed/1">6f1c0e5a-1111-4c3e-9d5e-000000000001,6f1c0e5a-1111-4c3e-9d5e-000000000002</Constraint>
    <Constraint Name="http://sts.kombit.dk/constraints/KLE/1">32.30.*</Constraint>
    <Privilege>http://datakube.dk/roles/usersystemrole/cube_read/1</Privilege>
    <Privilege>http://datakube.dk/roles/usersystemrole/drillthrough/1</Privilege>
  </PrivilegeGroup>
  <PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:45973328">
    <Privilege>http://datakube.dk/roles/usersystemrole/benchmark/1</Privilege>
  </PrivilegeGroup>
</bpp:PrivilegeList>"#;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn two_groups_with_privileges_and_constraints() {
        let g = parse_base64(&b64(TWO)).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].cvr, "55133018");
        assert_eq!(
            g[0].privileges,
            vec![
                "http://datakube.dk/roles/usersystemrole/cube_read/1",
                "http://datakube.dk/roles/usersystemrole/drillthrough/1"
            ]
        );
        assert_eq!(g[0].constraints.len(), 2);
        assert_eq!(g[0].constraints[0].name, "http://sts.kombit.dk/constraints/orgenhed/1");
        assert_eq!(
            g[0].constraints[0].value,
            "6f1c0e5a-1111-4c3e-9d5e-000000000001,6f1c0e5a-1111-4c3e-9d5e-000000000002"
        );
        assert_eq!(g[0].constraints[1].value, "32.30.*");
        assert_eq!(g[1].cvr, "45973328");
        assert_eq!(
            g[1].privileges,
            vec!["http://datakube.dk/roles/usersystemrole/benchmark/1"]
        );
        assert!(g[1].constraints.is_empty());
    }

    #[test]
    fn valid_single_group_folded_base64_default_namespace_and_escapes() {
        let xml = r#"<PrivilegeList xmlns="http://itst.dk/oiosaml/basic_privilege_profile"><PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:29189846"><Privilege>urn:a&amp;b&#x43;</Privilege><Privilege><![CDATA[urn:c<d>]]></Privilege></PrivilegeGroup></PrivilegeList>"#;
        let folded: String = b64(xml)
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let g = parse_base64(&folded).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].cvr, "29189846");
        assert_eq!(g[0].privileges, vec!["urn:a&bC", "urn:c<d>"]);
    }

    #[test]
    fn unknown_elements_and_foreign_namespaces_are_ignored() {
        let xml = r#"<bpp:PrivilegeList xmlns:bpp="http://itst.dk/oiosaml/basic_privilege_profile" xmlns:x="urn:other">
  <x:Extension><Privilege>urn:not-a-privilege</Privilege></x:Extension>
  <Comment>text that is not ours</Comment>
  <PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:55133018" Extra="1">
    <Note>ignored</Note>
    <x:Privilege>urn:foreign</x:Privilege>
    <Privilege>urn:mine</Privilege>
  </PrivilegeGroup>
  <PrivilegeGroup Scope="urn:dk:gov:saml:productionUnitIdentifier:1003388394">
    <Privilege>urn:p-unit</Privilege>
  </PrivilegeGroup>
</bpp:PrivilegeList>"#;
        let g = parse_xml(xml).unwrap();
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(g[0].privileges, vec!["urn:mine"]);
    }

    #[test]
    fn malformed_base64_is_refused_with_the_reason() {
        let e = parse_base64("PHByaXZ!!!not base64").unwrap_err();
        assert!(e.to_string().contains("not valid base64"), "{e}");
        let e = parse_base64(&base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, 0x00])).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[test]
    fn malformed_xml_is_refused_naming_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            (
                r#"<PrivilegeList><PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:55133018"><Privilege>x</PrivilegeGroup></PrivilegeList>"#,
                "malformed XML",
            ),
            (r#"<PrivilegeList><PrivilegeGroup>"#, "no Scope"),
            (r#"<Privileges/>"#, "root element is 'Privileges'"),
            ("", "empty"),
            ("not xml at all", "unexpected text"),
            (
                r#"<PrivilegeList><PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:5513"><Privilege>x</Privilege></PrivilegeGroup></PrivilegeList>"#,
                "not an 8-digit CVR",
            ),
            (
                r#"<PrivilegeList><PrivilegeGroup Scope="55133018"><Privilege>x</Privilege></PrivilegeGroup></PrivilegeList>"#,
                "not of the form",
            ),
            (
                r#"<PrivilegeList><PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:55133018"></PrivilegeGroup></PrivilegeList>"#,
                "has no Privilege",
            ),
            (
                r#"<PrivilegeList><PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:55133018"><Constraint>1</Constraint><Privilege>x</Privilege></PrivilegeGroup></PrivilegeList>"#,
                "no Name attribute",
            ),
            (
                r#"<PrivilegeList><PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:55133018"><Privilege>a<b/></Privilege></PrivilegeGroup></PrivilegeList>"#,
                "unexpected element 'b'",
            ),
            (r#"<p:PrivilegeList/>"#, "undeclared namespace prefix 'p'"),
        ];
        for (xml, want) in cases {
            let e = parse_xml(xml).unwrap_err().to_string();
            assert!(e.contains(want), "{xml}: expected '{want}' in '{e}'");
            // The same through the attribute path.
            let e2 = parse_base64(&b64(xml)).unwrap_err().to_string();
            assert_eq!(e, e2);
        }
    }

    #[test]
    fn entities_and_doctype_are_refused() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><PrivilegeList><PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:55133018"><Privilege>&lol2;</Privilege></PrivilegeGroup></PrivilegeList>"#;
        let e = parse_xml(bomb).unwrap_err().to_string();
        assert!(e.contains("DOCTYPE is not allowed"), "{e}");
        let undeclared = r#"<PrivilegeList><PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:55133018"><Privilege>&xxe;</Privilege></PrivilegeGroup></PrivilegeList>"#;
        let e = parse_xml(undeclared).unwrap_err().to_string();
        assert!(e.contains("unknown entity '&xxe;'"), "{e}");
    }

    #[test]
    fn sizes_and_depth_are_bounded() {
        let deep = format!(
            "<PrivilegeList>{}{}</PrivilegeList>",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        let e = parse_xml(&deep).unwrap_err().to_string();
        assert!(e.contains("nested deeper"), "{e}");
        let big = "A".repeat(MAX_BASE64_BYTES + 4);
        let e = parse_base64(&big).unwrap_err().to_string();
        assert!(e.contains("more than the limit"), "{e}");
        let many = format!(
            "<PrivilegeList>{}</PrivilegeList>",
            r#"<PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:55133018"><Privilege>x</Privilege></PrivilegeGroup>"#
                .repeat(MAX_GROUPS + 1)
        );
        let e = parse_xml(&many).unwrap_err().to_string();
        assert!(e.contains("more than 1000 privilege groups"), "{e}");
    }
}
