//! Tests of the MDDataSet writer (`mddataset.rs`). Every output is parsed with a real XML
//! parser (quick-xml, namespace-aware) into a small tree, and checked structurally.

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

use crate::cellset::*;
use crate::mddataset::{NS_ENGINE, write_mddataset, xml_encode_name};
use crate::response::{NS_MDDATASET, NS_XSD, NS_XSI};

// ---------------------------------------------------------------------------------------
// A minimal XML tree, built with a namespace-aware parser that rejects anything malformed.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Node {
    /// The qualified name as written (`xsd:schema`, `Member`).
    name: String,
    /// Attributes in document order, values unescaped.
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    /// Concatenated text content (whitespace-only runs between elements are dropped).
    text: String,
}

impl Node {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn child(&self, name: &str) -> &Node {
        self.children.iter().find(|c| c.name == name).unwrap_or_else(|| {
            panic!(
                "<{}> has no <{name}> child; children: {:?}",
                self.name,
                self.child_names()
            )
        })
    }
    fn try_child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    fn all(&self, name: &str) -> Vec<&Node> {
        self.children.iter().filter(|c| c.name == name).collect()
    }
    fn child_names(&self) -> Vec<&str> {
        self.children.iter().map(|c| c.name.as_str()).collect()
    }
    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Node)) {
        f(self);
        for c in &self.children {
            c.walk(f);
        }
    }
}

/// Parse `xml` into a tree; panics (with the document) if it is not well-formed, if an
/// element or attribute uses an undeclared prefix, or if an attribute is repeated.
fn parse(xml: &str) -> Node {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    let short = || if xml.len() > 3000 { &xml[..3000] } else { xml };
    loop {
        let (unknown_ns, ev) = match reader.read_resolved_event() {
            Ok((ns, ev)) => (matches!(ns, ResolveResult::Unknown(_)), ev),
            Err(e) => panic!("not well-formed at {}: {e}\n{}", reader.error_position(), short()),
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                assert!(!unknown_ns, "element <{name}> uses an undeclared prefix");
                let mut node = Node {
                    name,
                    ..Node::default()
                };
                for a in e.attributes() {
                    let a = a.unwrap_or_else(|err| panic!("bad attribute on <{}>: {err}", node.name));
                    let key = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
                    if !key.starts_with("xmlns") {
                        let (res, _) = reader.resolve_attribute(a.key);
                        assert!(
                            !matches!(res, ResolveResult::Unknown(_)),
                            "attribute {key} uses an undeclared prefix"
                        );
                    }
                    node.attrs.push((key, a.unescape_value().unwrap().into_owned()));
                }
                if matches!(ev, Event::Empty(_)) {
                    stack.last_mut().unwrap().children.push(node);
                } else {
                    stack.push(node);
                }
            }
            Event::End(_) => {
                let mut node = stack.pop().unwrap();
                if node.text.trim().is_empty() && !node.children.is_empty() {
                    node.text.clear();
                }
                stack.last_mut().unwrap().children.push(node);
            }
            Event::Text(t) => stack.last_mut().unwrap().text.push_str(&t.decode().unwrap()),
            Event::GeneralRef(r) => {
                let s = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => match r.decode().unwrap().as_ref() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => panic!("unknown entity &{other};"),
                    },
                };
                stack.last_mut().unwrap().text.push_str(&s);
            }
            Event::CData(c) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(std::str::from_utf8(&c).unwrap()),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "exactly one document element");
    doc.children.pop().unwrap()
}

/// Parse only for well-formedness, counting elements named `count_name` (for big documents).
pub(crate) fn well_formed_count(xml: &str, count_name: &[u8]) -> usize {
    let mut reader = NsReader::from_str(xml);
    let (mut n, mut depth) = (0usize, 0i64);
    loop {
        match reader.read_resolved_event() {
            Ok((ns, ev)) => {
                assert!(!matches!(ns, ResolveResult::Unknown(_)), "undeclared prefix");
                match ev {
                    Event::Start(e) => {
                        depth += 1;
                        n += usize::from(e.name().as_ref() == count_name);
                        for a in e.attributes() {
                            a.unwrap();
                        }
                    }
                    Event::Empty(e) => {
                        n += usize::from(e.name().as_ref() == count_name);
                        for a in e.attributes() {
                            a.unwrap();
                        }
                    }
                    Event::End(_) => depth -= 1,
                    Event::Eof => break,
                    _ => {}
                }
            }
            Err(e) => panic!("not well-formed at {}: {e}", reader.error_position()),
        }
    }
    assert_eq!(depth, 0);
    n
}

// ---------------------------------------------------------------------------------------
// Checks every output must pass.
// ---------------------------------------------------------------------------------------

const STANDARD: [&str; 5] = ["UName", "Caption", "LName", "LNum", "DisplayInfo"];

/// The structural invariants Excel relies on, checked on any MDDataSet `root`:
/// - top-level order (schema?) → OlapInfo → Axes → CellData;
/// - the same axes, in the same order, in AxesInfo and Axes (Axis0.., then SlicerAxis);
/// - for every member: its Hierarchy is the declared one at that position; its children
///   are the five standard ones in order, then a subsequence (in order) of the declared
///   extra properties of that hierarchy — nothing undeclared, nothing out of order;
/// - no tuple without members; no `xsi:nil` anywhere;
/// - cells: ascending ordinals inside the cell space, children in CellInfo order.
fn check_consistency(root: &Node) {
    assert_eq!(root.name, "root");
    assert_eq!(root.attr("xmlns"), Some(NS_MDDATASET));
    assert_eq!(root.attr("xmlns:xsi"), Some(NS_XSI));
    assert_eq!(root.attr("xmlns:xsd"), Some(NS_XSD));
    let names = root.child_names();
    let expected: &[&str] = if names.first() == Some(&"xsd:schema") {
        &["xsd:schema", "OlapInfo", "Axes", "CellData"]
    } else {
        &["OlapInfo", "Axes", "CellData"]
    };
    assert_eq!(names, expected);

    let olap = root.child("OlapInfo");
    assert_eq!(olap.child_names(), ["CubeInfo", "AxesInfo", "CellInfo"]);
    let axes_info = olap.child("AxesInfo").all("AxisInfo");
    let axes = root.child("Axes").all("Axis");
    assert_eq!(axes_info.len(), axes.len(), "AxesInfo and Axes list the same axes");
    let n = axes.len();
    for (i, (info, axis)) in axes_info.iter().zip(&axes).enumerate() {
        let expected = if i + 1 == n {
            "SlicerAxis".to_string()
        } else {
            format!("Axis{i}")
        };
        assert_eq!(info.attr("name"), Some(expected.as_str()));
        assert_eq!(axis.attr("name"), Some(expected.as_str()));
        let hiers = info.all("HierarchyInfo");
        for h in &hiers {
            let hn = h.attr("name").unwrap();
            let decl = h.child_names();
            assert!(decl.len() >= 5);
            assert_eq!(decl[..5], STANDARD, "standard properties first, in order, for {hn}");
            for (c, prop) in h.children[..5].iter().zip([
                "MEMBER_UNIQUE_NAME",
                "MEMBER_CAPTION",
                "LEVEL_UNIQUE_NAME",
                "LEVEL_NUMBER",
                "DISPLAY_INFO",
            ]) {
                assert_eq!(c.attr("name").unwrap(), format!("{hn}.[{prop}]"));
                assert!(c.attr("type").is_some());
            }
        }
        assert_eq!(axis.child_names(), ["Tuples"]);
        for tuple in &axis.child("Tuples").children {
            assert_eq!(tuple.name, "Tuple");
            assert!(!tuple.children.is_empty(), "a tuple with zero members");
            assert_eq!(tuple.children.len(), hiers.len(), "one member per declared hierarchy");
            for (m, h) in tuple.children.iter().zip(&hiers) {
                assert_eq!(m.name, "Member");
                assert_eq!(m.attr("Hierarchy"), h.attr("name"));
                let got = m.child_names();
                let decl = h.child_names();
                assert!(
                    got.len() >= 5 && got[..5] == STANDARD,
                    "member children start with the standard five: {got:?}"
                );
                // The rest must be an in-order subsequence of the declared extras.
                let mut it = decl[5..].iter();
                for g in &got[5..] {
                    assert!(
                        it.any(|d| d == g),
                        "member child <{g}> undeclared or out of order; declared {decl:?}, got {got:?}"
                    );
                }
                for c in &m.children {
                    assert!(c.attrs.is_empty(), "member children carry no attributes");
                }
            }
        }
    }

    let cell_info = olap.child("CellInfo").child_names();
    let axis_lengths: Vec<u64> = axes[..n - 1]
        .iter()
        .map(|a| a.child("Tuples").children.len() as u64)
        .collect();
    let space: u64 = axis_lengths.iter().product();
    let mut last: Option<u64> = None;
    for cell in root.child("CellData").children.iter() {
        assert_eq!(cell.name, "Cell");
        let ord: u64 = cell
            .attr("CellOrdinal")
            .expect("CellOrdinal attribute")
            .parse()
            .unwrap();
        assert!(ord < space, "ordinal {ord} outside a cell space of {space}");
        assert!(last.is_none_or(|l| ord > l), "ordinals ascend");
        last = Some(ord);
        let mut it = cell_info.iter();
        for c in &cell.children {
            assert!(
                it.any(|d| *d == c.name),
                "cell child <{}> not in CellInfo order {cell_info:?}",
                c.name
            );
            let expect_type = c.name == "Value";
            assert_eq!(c.attr("xsi:type").is_some(), expect_type, "only Value carries xsi:type");
        }
    }

    root.walk(&mut |n| {
        for (k, _) in &n.attrs {
            assert!(!k.ends_with(":nil") && k != "nil", "xsi:nil on <{}>", n.name);
        }
    });
}

fn write_and_check(cs: &CellSet, with_schema: bool) -> (String, Node) {
    let xml = write_mddataset(cs, with_schema);
    assert!(!xml.contains("xsi:nil"), "no xsi:nil anywhere");
    let root = parse(&xml);
    check_consistency(&root);
    (xml, root)
}

// ---------------------------------------------------------------------------------------
// Test data: Kommune regions on Axis0, measures on Axis1, Tid and Køn in the slicer.
// ---------------------------------------------------------------------------------------

const KOMMUNE: &str = "[Kommune].[Geografi]";

fn member(
    h: &str,
    uname: &str,
    caption: &str,
    lname: &str,
    lnum: u32,
    di: u32,
    props: Vec<Option<&str>>,
) -> AxisMember {
    AxisMember {
        hierarchy: h.into(),
        unique_name: uname.into(),
        caption: caption.into(),
        level_unique_name: lname.into(),
        level_number: lnum,
        display_info: di,
        properties: props.into_iter().map(|p| p.map(str::to_string)).collect(),
    }
}

fn prop(h: &str, name: &str, element: &str, ty: &str) -> AxisProperty {
    AxisProperty {
        hierarchy: h.into(),
        name: name.into(),
        element: element.into(),
        xsd_type: ty.into(),
    }
}

fn measure(name: &str, first: bool) -> AxisMember {
    member(
        "[Measures]",
        &format!("[Measures].[{name}]"),
        name,
        "[Measures].[MeasuresLevel]",
        0,
        display_info(0, false, !first),
        vec![],
    )
}

fn kommune_axis() -> Axis {
    let all = "[Kommune].[Geografi].[All]";
    let region = "[Kommune].[Geografi].[Region]";
    let props = vec![
        prop(
            KOMMUNE,
            "[Kommune].[Geografi].[PARENT_UNIQUE_NAME]",
            "PARENT_UNIQUE_NAME",
            "xsd:string",
        ),
        prop(
            KOMMUNE,
            "[Kommune].[Geografi].[Region].[Antal kommuner]",
            "Antal kommuner",
            "xsd:int",
        ),
    ];
    let tuples = vec![
        vec![member(
            KOMMUNE,
            all,
            "Hele landet",
            "[Kommune].[Geografi].[(All)]",
            0,
            display_info(5, true, false),
            vec![None, None],
        )],
        vec![member(
            KOMMUNE,
            "[Kommune].[Geografi].[Region].&[1084]",
            "Region Hovedstaden",
            region,
            1,
            display_info(29, false, false),
            vec![Some(all), Some("29")],
        )],
        vec![member(
            KOMMUNE,
            "[Kommune].[Geografi].[Region].&[1085]",
            "Region Sjælland",
            region,
            1,
            display_info(17, false, true),
            vec![Some(all), Some("17")],
        )],
        vec![member(
            KOMMUNE,
            "[Kommune].[Geografi].[Region].&[1083]",
            "Region Syddanmark",
            region,
            1,
            display_info(22, false, true),
            vec![Some(all), None],
        )],
    ];
    Axis {
        hierarchies: vec![KOMMUNE.into()],
        properties: props,
        tuples,
    }
}

fn measures_axis() -> Axis {
    Axis {
        hierarchies: vec!["[Measures]".into()],
        properties: vec![prop(
            "[Measures]",
            "[Measures].[PARENT_UNIQUE_NAME]",
            "PARENT_UNIQUE_NAME",
            "xsd:string",
        )],
        tuples: vec![vec![measure("Befolkning", true)], vec![measure("Areal km²", false)]],
    }
}

fn slicer() -> Axis {
    Axis {
        hierarchies: vec!["[Tid].[Tid]".into(), "[Køn].[Køn]".into()],
        properties: vec![],
        tuples: vec![vec![
            member(
                "[Tid].[Tid]",
                "[Tid].[Tid].[År].&[2024]",
                "2024",
                "[Tid].[Tid].[År]",
                1,
                display_info(4, false, true),
                vec![],
            ),
            member(
                "[Køn].[Køn]",
                "[Køn].[Køn].[All]",
                "I alt",
                "[Køn].[Køn].[(All)]",
                0,
                display_info(2, false, false),
                vec![],
            ),
        ]],
    }
}

fn cell(ordinal: u64, value: CellValue, formatted: Option<&str>) -> Cell {
    Cell {
        ordinal,
        value,
        formatted: formatted.map(str::to_string),
        format_string: Some("#,##0".into()),
    }
}

/// 4 regions × 2 measures = 8 cells; ordinals 3 and 6 are empty.
fn kommune_cellset() -> CellSet {
    let lens = [4usize, 2];
    let ord = |r: usize, m: usize| cell_ordinal(&[r, m], &lens);
    CellSet {
        cube_name: "Befolkning".into(),
        last_data_update: "2024-06-01T02:00:00".into(),
        last_schema_update: "2024-05-01T12:30:00.5".into(),
        axes: vec![kommune_axis(), measures_axis()],
        slicer: slicer(),
        cell_properties: CellProperty::DEFAULT.to_vec(),
        language: 1030,
        cells: vec![
            cell(ord(0, 0), CellValue::Int(5_961_249), Some("5.961.249")),
            cell(ord(1, 0), CellValue::Int(1_883_425), Some("1.883.425")),
            cell(ord(2, 0), CellValue::Int(843_513), Some("843.513")),
            cell(ord(0, 1), CellValue::Double(42_951.3), Some("42.951,3")),
            cell(ord(1, 1), CellValue::Decimal("2562.60".into()), None),
            cell(ord(3, 1), CellValue::Double(12_191.2), Some("12.191,2")),
        ],
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn document_order_and_namespaces() {
    let (xml, root) = write_and_check(&kommune_cellset(), true);
    assert_eq!(root.child_names(), ["xsd:schema", "OlapInfo", "Axes", "CellData"]);
    assert!(
        xml.starts_with("<root xmlns=\"urn:schemas-microsoft-com:xml-analysis:mddataset\""),
        "{}",
        &xml[..200]
    );
    let schema = root.child("xsd:schema");
    assert_eq!(schema.attr("targetNamespace"), Some(NS_MDDATASET));
    // The schema declares root with OlapInfo, Axes, CellData, all optional.
    let root_decl = schema
        .all("xsd:element")
        .into_iter()
        .find(|e| e.attr("name") == Some("root"))
        .expect("root declared");
    let seq = root_decl.child("xsd:complexType").child("xsd:sequence");
    let declared: Vec<(&str, &str)> = seq
        .all("xsd:element")
        .iter()
        .map(|e| (e.attr("name").unwrap(), e.attr("minOccurs").unwrap()))
        .collect();
    assert_eq!(declared, [("OlapInfo", "0"), ("Axes", "0"), ("CellData", "0")]);
    // Named types a reader may look for, and the Cell's CellOrdinal attribute.
    let types: Vec<&str> = schema
        .all("xsd:complexType")
        .iter()
        .filter_map(|t| t.attr("name"))
        .collect();
    for t in [
        "MemberType",
        "PropType",
        "TupleType",
        "MembersType",
        "TuplesType",
        "AxisInfo",
        "HierarchyInfo",
        "CellInfo",
        "Cell",
        "CellData",
    ] {
        assert!(types.contains(&t), "schema type {t} missing: {types:?}");
    }
    let cell_type = schema
        .all("xsd:complexType")
        .into_iter()
        .find(|t| t.attr("name") == Some("Cell"))
        .unwrap();
    assert_eq!(cell_type.child("xsd:attribute").attr("name"), Some("CellOrdinal"));
}

#[test]
fn content_data_omits_the_schema() {
    let (xml, root) = write_and_check(&kommune_cellset(), false);
    assert_eq!(root.child_names(), ["OlapInfo", "Axes", "CellData"]);
    assert!(!xml.contains("xsd:schema"));
    // Everything else is identical to the SchemaData form.
    let with = write_mddataset(&kommune_cellset(), true);
    let start = with.find("<OlapInfo>").unwrap();
    assert_eq!(&with[start..], &xml[xml.find("<OlapInfo>").unwrap()..]);
}

#[test]
fn cube_info_with_update_times_in_the_engine_namespace() {
    let (_, root) = write_and_check(&kommune_cellset(), false);
    let cube = root.child("OlapInfo").child("CubeInfo").child("Cube");
    assert_eq!(cube.child_names(), ["CubeName", "LastDataUpdate", "LastSchemaUpdate"]);
    assert_eq!(cube.child("CubeName").text, "Befolkning");
    assert_eq!(cube.child("LastDataUpdate").attr("xmlns"), Some(NS_ENGINE));
    assert_eq!(cube.child("LastDataUpdate").text, "2024-06-01T02:00:00");
    assert_eq!(cube.child("LastSchemaUpdate").attr("xmlns"), Some(NS_ENGINE));
    assert_eq!(cube.child("LastSchemaUpdate").text, "2024-05-01T12:30:00.5");

    // Unknown times are left out rather than written as an invalid empty dateTime.
    let mut cs = kommune_cellset();
    cs.last_data_update.clear();
    cs.last_schema_update.clear();
    let (_, root) = write_and_check(&cs, false);
    assert_eq!(
        root.child("OlapInfo").child("CubeInfo").child("Cube").child_names(),
        ["CubeName"]
    );
}

#[test]
fn axes_info_declares_standard_then_extra_properties() {
    let (_, root) = write_and_check(&kommune_cellset(), true);
    let infos = root.child("OlapInfo").child("AxesInfo").all("AxisInfo");
    let names: Vec<_> = infos.iter().map(|a| a.attr("name").unwrap()).collect();
    assert_eq!(names, ["Axis0", "Axis1", "SlicerAxis"]);

    let h = infos[0].child("HierarchyInfo");
    assert_eq!(h.attr("name"), Some(KOMMUNE));
    let decl: Vec<(&str, &str, &str)> = h
        .children
        .iter()
        .map(|c| (c.name.as_str(), c.attr("name").unwrap(), c.attr("type").unwrap()))
        .collect();
    assert_eq!(
        decl,
        [
            ("UName", "[Kommune].[Geografi].[MEMBER_UNIQUE_NAME]", "xsd:string"),
            ("Caption", "[Kommune].[Geografi].[MEMBER_CAPTION]", "xsd:string"),
            ("LName", "[Kommune].[Geografi].[LEVEL_UNIQUE_NAME]", "xsd:string"),
            ("LNum", "[Kommune].[Geografi].[LEVEL_NUMBER]", "xsd:int"),
            ("DisplayInfo", "[Kommune].[Geografi].[DISPLAY_INFO]", "xsd:unsignedInt"),
            (
                "PARENT_UNIQUE_NAME",
                "[Kommune].[Geografi].[PARENT_UNIQUE_NAME]",
                "xsd:string"
            ),
            (
                "Antal_x0020_kommuner",
                "[Kommune].[Geografi].[Region].[Antal kommuner]",
                "xsd:int"
            ),
        ]
    );
    // Measures: its own PARENT_UNIQUE_NAME declaration.
    let m = infos[1].child("HierarchyInfo");
    assert_eq!(m.attr("name"), Some("[Measures]"));
    assert_eq!(
        m.child_names(),
        ["UName", "Caption", "LName", "LNum", "DisplayInfo", "PARENT_UNIQUE_NAME"]
    );
    // Slicer: every hierarchy in it, in order, with only the standard five.
    let s: Vec<_> = infos[2]
        .all("HierarchyInfo")
        .iter()
        .map(|h| (h.attr("name").unwrap(), h.children.len()))
        .collect();
    assert_eq!(s, [("[Tid].[Tid]", 5), ("[Køn].[Køn]", 5)]);
}

#[test]
fn properties_of_another_hierarchy_are_not_declared_for_this_one() {
    // Two hierarchies crossjoined on one axis, each with its own PARENT_UNIQUE_NAME and one
    // with a user property; members carry only their own hierarchy's values.
    let mut axis = kommune_axis();
    let tid = "[Tid].[Tid]";
    axis.hierarchies.push(tid.into());
    axis.properties.push(prop(
        tid,
        "[Tid].[Tid].[PARENT_UNIQUE_NAME]",
        "PARENT_UNIQUE_NAME",
        "xsd:string",
    ));
    for t in &mut axis.tuples {
        t.push(member(
            tid,
            "[Tid].[Tid].[År].&[2024]",
            "2024",
            "[Tid].[Tid].[År]",
            1,
            4,
            vec![Some("[Tid].[Tid].[All]")],
        ));
    }
    let mut cs = kommune_cellset();
    cs.slicer = Axis {
        hierarchies: vec!["[Køn].[Køn]".into()],
        properties: vec![],
        tuples: vec![vec![slicer().tuples[0][1].clone()]],
    };
    cs.axes[0] = axis;
    let (_, root) = write_and_check(&cs, true);
    let hs = root.child("OlapInfo").child("AxesInfo").all("AxisInfo")[0].all("HierarchyInfo");
    assert_eq!(hs[0].child_names()[5..], ["PARENT_UNIQUE_NAME", "Antal_x0020_kommuner"]);
    assert_eq!(hs[1].child_names()[5..], ["PARENT_UNIQUE_NAME"]);
    assert_eq!(hs[1].children[5].attr("name"), Some("[Tid].[Tid].[PARENT_UNIQUE_NAME]"));
    let tuple = &root.child("Axes").all("Axis")[0].child("Tuples").children[1];
    assert_eq!(tuple.children[1].child("PARENT_UNIQUE_NAME").text, "[Tid].[Tid].[All]");
    assert_eq!(tuple.children[1].children.len(), 6);
}

#[test]
fn members_carry_declared_children_in_order_and_omit_nulls() {
    let (_, root) = write_and_check(&kommune_cellset(), false);
    let axes = root.child("Axes").all("Axis");
    let tuples = &axes[0].child("Tuples").children;
    assert_eq!(tuples.len(), 4);
    let all = tuples[0].child("Member");
    assert_eq!(all.attr("Hierarchy"), Some(KOMMUNE));
    // The All member has neither a parent nor the user property: both left out.
    assert_eq!(all.child_names(), STANDARD);
    assert_eq!(all.child("UName").text, "[Kommune].[Geografi].[All]");
    assert_eq!(all.child("LName").text, "[Kommune].[Geografi].[(All)]");
    assert_eq!(all.child("LNum").text, "0");
    assert_eq!(all.child("DisplayInfo").text, (5 | DRILLED_DOWN).to_string());

    let sj = tuples[2].child("Member");
    assert_eq!(
        sj.child_names(),
        [
            "UName",
            "Caption",
            "LName",
            "LNum",
            "DisplayInfo",
            "PARENT_UNIQUE_NAME",
            "Antal_x0020_kommuner"
        ]
    );
    assert_eq!(sj.child("Caption").text, "Region Sjælland");
    assert_eq!(sj.child("DisplayInfo").text, (17 | PARENT_SAME_AS_PREV).to_string());
    assert_eq!(sj.child("PARENT_UNIQUE_NAME").text, "[Kommune].[Geografi].[All]");
    assert_eq!(sj.child("Antal_x0020_kommuner").text, "17");
    // Only the second extra is null: the first is still written, the second left out.
    assert_eq!(tuples[3].child("Member").child_names()[5..], ["PARENT_UNIQUE_NAME"]);

    let m = axes[1].child("Tuples").children[1].child("Member");
    assert_eq!(m.child("UName").text, "[Measures].[Areal km²]");
    assert_eq!(m.child("LName").text, "[Measures].[MeasuresLevel]");
    assert_eq!(m.child("DisplayInfo").text, "131072");

    let slicer = axes[2].child("Tuples");
    assert_eq!(slicer.children.len(), 1, "the slicer has exactly one tuple");
    let hiers: Vec<_> = slicer.children[0]
        .children
        .iter()
        .map(|m| m.attr("Hierarchy").unwrap())
        .collect();
    assert_eq!(hiers, ["[Tid].[Tid]", "[Køn].[Køn]"]);
}

#[test]
fn cell_info_lists_exactly_the_requested_properties_in_order() {
    use CellProperty::*;
    let decl = |p: CellProperty| match p {
        Value => ("Value", "VALUE", None),
        FormattedValue => ("FmtValue", "FORMATTED_VALUE", Some("xsd:string")),
        FormatString => ("FormatString", "FORMAT_STRING", Some("xsd:string")),
        Language => ("Language", "LANGUAGE", Some("xsd:unsignedInt")),
        BackColor => ("BackColor", "BACK_COLOR", Some("xsd:unsignedInt")),
        ForeColor => ("ForeColor", "FORE_COLOR", Some("xsd:unsignedInt")),
        FontFlags => ("FontFlags", "FONT_FLAGS", Some("xsd:int")),
        CellOrdinal => ("CellOrdinal", "CELL_ORDINAL", Some("xsd:unsignedInt")),
    };
    let lists: Vec<Vec<CellProperty>> = vec![
        CellProperty::DEFAULT.to_vec(),
        vec![Value, FormatString, Language, BackColor, ForeColor, FontFlags],
        vec![Value, FormatString, BackColor, ForeColor],
        vec![CellOrdinal],
        vec![Value],
        vec![
            FontFlags,
            CellOrdinal,
            ForeColor,
            BackColor,
            Language,
            FormatString,
            FormattedValue,
            Value,
        ],
        vec![],
    ];
    for props in lists {
        let mut cs = kommune_cellset();
        cs.cell_properties = props.clone();
        let (_, root) = write_and_check(&cs, true);
        let info = root.child("OlapInfo").child("CellInfo");
        let got: Vec<(&str, &str, Option<&str>)> = info
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.attr("name").unwrap(), c.attr("type")))
            .collect();
        let want: Vec<_> = props.iter().map(|&p| decl(p)).collect();
        assert_eq!(got, want);
        for c in &info.children {
            let keys: Vec<&str> = c.attrs.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                keys,
                if c.name == "Value" {
                    vec!["name"]
                } else {
                    vec!["name", "type"]
                }
            );
        }
    }
    // The default list is SSAS's: VALUE, FORMATTED_VALUE, CELL_ORDINAL.
    let (_, root) = write_and_check(&kommune_cellset(), true);
    assert_eq!(
        root.child("OlapInfo").child("CellInfo").child_names(),
        ["Value", "FmtValue", "CellOrdinal"]
    );
}

#[test]
fn cells_are_sparse_typed_and_in_cell_info_order() {
    let (_, root) = write_and_check(&kommune_cellset(), false);
    let cells = &root.child("CellData").children;
    let ords: Vec<&str> = cells.iter().map(|c| c.attr("CellOrdinal").unwrap()).collect();
    // (region, measure) → region + 4 × measure; (3,0) and (2,1) are empty and left out.
    assert_eq!(ords, ["0", "1", "2", "4", "5", "7"]);
    let c0 = &cells[0];
    assert_eq!(
        c0.child_names(),
        ["Value", "FmtValue"],
        "SSAS writes the ordinal only as the attribute"
    );
    assert_eq!(c0.child("Value").attr("xsi:type"), Some("xsd:int"));
    assert_eq!(c0.child("Value").text, "5961249");
    assert_eq!(c0.child("FmtValue").text, "5.961.249");
    let dec = &cells[4];
    assert_eq!(dec.child_names(), ["Value"], "no formatted value: FmtValue left out");
    assert_eq!(dec.child("Value").attr("xsi:type"), Some("xsd:decimal"));
    assert_eq!(dec.child("Value").text, "2562.60");
    assert_eq!(cells[3].child("Value").attr("xsi:type"), Some("xsd:double"));
    assert_eq!(cells[3].child("Value").text.parse::<f64>().unwrap(), 42_951.3);

    // The full classic Excel list: FormatString and Language are written, the colours and
    // font flags (no values) are declared in CellInfo but never appear in a cell.
    use CellProperty::*;
    let mut cs = kommune_cellset();
    cs.cell_properties = vec![Value, FormatString, Language, BackColor, ForeColor, FontFlags];
    let (xml, root) = write_and_check(&cs, false);
    for c in &root.child("CellData").children {
        assert_eq!(c.child_names(), ["Value", "FormatString", "Language"]);
        assert_eq!(c.child("FormatString").text, "#,##0");
        assert_eq!(c.child("Language").text, "1030");
    }
    assert!(!xml.contains("<BackColor>") && !xml.contains("<BackColor/>") && !xml.contains("<FontFlags>"));

    // CELL_ORDINAL only (Excel's filter-list queries): empty cells elements, ordinals intact.
    cs.cell_properties = vec![CellOrdinal];
    let (xml, root) = write_and_check(&cs, false);
    assert!(xml.contains("<Cell CellOrdinal=\"0\"/>"), "{xml}");
    assert_eq!(root.child("CellData").children.len(), 6);
    assert!(root.child("CellData").children.iter().all(|c| c.children.is_empty()));
}

#[test]
fn value_types_int_long_boundary_decimal_double_string_bool() {
    let cases: Vec<(CellValue, &str, &str)> = vec![
        (CellValue::Int(i32::MAX), "xsd:int", "2147483647"),
        (CellValue::Int(i32::MIN), "xsd:int", "-2147483648"),
        (CellValue::Long(2_147_483_647), "xsd:int", "2147483647"),
        (CellValue::Long(2_147_483_648), "xsd:long", "2147483648"),
        (CellValue::Long(-2_147_483_648), "xsd:int", "-2147483648"),
        (CellValue::Long(-2_147_483_649), "xsd:long", "-2147483649"),
        (CellValue::Long(i64::MAX), "xsd:long", "9223372036854775807"),
        (CellValue::Decimal("1234.50".into()), "xsd:decimal", "1234.50"),
        (CellValue::Decimal("-0.0001".into()), "xsd:decimal", "-0.0001"),
        (CellValue::Double(f64::INFINITY), "xsd:double", "INF"),
        (CellValue::Double(f64::NEG_INFINITY), "xsd:double", "-INF"),
        (CellValue::Double(f64::NAN), "xsd:double", "NaN"),
        (CellValue::Double(521_586_767.0), "xsd:double", "521586767"),
        (CellValue::Double(0.1), "xsd:double", "0.1"),
        (CellValue::Double(-2.5), "xsd:double", "-2.5"),
        (CellValue::Double(0.0), "xsd:double", "0"),
        (CellValue::Double(1e300), "xsd:double", "1E300"),
        (CellValue::Double(-1.5e-12), "xsd:double", "-1.5E-12"),
        (CellValue::Double(f64::MAX), "xsd:double", "1.7976931348623157E308"),
        (CellValue::Str("ikke oplyst".into()), "xsd:string", "ikke oplyst"),
        (CellValue::Str(String::new()), "xsd:string", ""),
        (CellValue::Bool(true), "xsd:boolean", "true"),
        (CellValue::Bool(false), "xsd:boolean", "false"),
    ];
    let mut cs = kommune_cellset();
    cs.axes = vec![Axis {
        hierarchies: vec!["[Measures]".into()],
        properties: vec![],
        tuples: (0..cases.len())
            .map(|i| vec![measure(&format!("M{i}"), i == 0)])
            .collect(),
    }];
    cs.cell_properties = vec![CellProperty::Value];
    cs.cells = cases
        .iter()
        .enumerate()
        .map(|(i, (v, _, _))| Cell {
            ordinal: i as u64,
            value: v.clone(),
            formatted: None,
            format_string: None,
        })
        .collect();
    let (_, root) = write_and_check(&cs, false);
    let cells = &root.child("CellData").children;
    assert_eq!(cells.len(), cases.len());
    for (c, (v, ty, text)) in cells.iter().zip(&cases) {
        let value = c.child("Value");
        assert_eq!(value.attr("xsi:type"), Some(*ty), "{v:?}");
        assert_eq!(value.text, *text, "{v:?}");
        if let CellValue::Double(d) = v
            && d.is_finite()
        {
            // Finite doubles round-trip exactly through their text.
            assert_eq!(value.text.parse::<f64>().unwrap(), *d);
        }
    }
}

#[test]
fn finite_doubles_round_trip_in_short_forms() {
    let mut cs = kommune_cellset();
    let values: Vec<f64> = vec![
        1.0,
        -1.0,
        1e-7,
        9.99e-8,
        1e20,
        1e21,
        123456789.123,
        5e-324,
        f64::MIN_POSITIVE,
        -0.0,
        1.0 / 3.0,
        2.0f64.powi(60),
    ];
    cs.axes = vec![Axis {
        hierarchies: vec!["[Measures]".into()],
        properties: vec![],
        tuples: (0..values.len())
            .map(|i| vec![measure(&format!("M{i}"), i == 0)])
            .collect(),
    }];
    cs.cell_properties = vec![CellProperty::Value];
    cs.cells = values
        .iter()
        .enumerate()
        .map(|(i, d)| Cell {
            ordinal: i as u64,
            value: CellValue::Double(*d),
            formatted: None,
            format_string: None,
        })
        .collect();
    let (_, root) = write_and_check(&cs, false);
    for (c, d) in root.child("CellData").children.iter().zip(&values) {
        let t = &c.child("Value").text;
        assert!(t.len() <= 24, "short form for {d}: {t}");
        assert!(
            t.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | 'E')),
            "xsd:double lexical form: {t}"
        );
        let back: f64 = t.parse().unwrap();
        assert_eq!(back.to_bits(), d.to_bits(), "{d} → {t}");
    }
}

#[test]
fn text_and_attributes_are_escaped() {
    let nasty = "Æbler & <Pærer> \"x\" 'y'";
    let hier = "[Frugt & Grønt].[Sort]";
    let mut cs = kommune_cellset();
    cs.cube_name = "Salg <&> \"2024\"".into();
    cs.axes = vec![Axis {
        hierarchies: vec![hier.into()],
        properties: vec![prop(
            hier,
            "[Frugt & Grønt].[Sort].[Sort].[Mærke & \"Co\"]",
            "Mærke & \"Co\"",
            "xsd:string",
        )],
        tuples: vec![vec![member(
            hier,
            "[Frugt & Grønt].[Sort].&[<1>]",
            nasty,
            "[Frugt & Grønt].[Sort].[Sort]",
            1,
            0,
            vec![Some("A&B <c> \"d\"")],
        )]],
    }];
    cs.cell_properties = vec![
        CellProperty::Value,
        CellProperty::FormattedValue,
        CellProperty::FormatString,
    ];
    cs.cells = vec![Cell {
        ordinal: 0,
        value: CellValue::Str(nasty.into()),
        formatted: Some("<b>&nbsp;".into()),
        format_string: Some("#,##0 \"kr\";-#,##0 'kr'".into()),
    }];
    let (xml, root) = write_and_check(&cs, true);
    assert!(!xml.contains("& "), "raw ampersand in output");
    assert_eq!(
        root.child("OlapInfo")
            .child("CubeInfo")
            .child("Cube")
            .child("CubeName")
            .text,
        "Salg <&> \"2024\""
    );
    let h = root.child("OlapInfo").child("AxesInfo").all("AxisInfo")[0].child("HierarchyInfo");
    assert_eq!(h.attr("name"), Some(hier));
    assert_eq!(
        h.children[0].attr("name"),
        Some("[Frugt & Grønt].[Sort].[MEMBER_UNIQUE_NAME]")
    );
    assert_eq!(h.children[5].name, "Mærke_x0020__x0026__x0020__x0022_Co_x0022_");
    assert_eq!(
        h.children[5].attr("name"),
        Some("[Frugt & Grønt].[Sort].[Sort].[Mærke & \"Co\"]")
    );
    let m = root.child("Axes").all("Axis")[0]
        .child("Tuples")
        .child("Tuple")
        .child("Member");
    assert_eq!(m.attr("Hierarchy"), Some(hier));
    assert_eq!(m.child("UName").text, "[Frugt & Grønt].[Sort].&[<1>]");
    assert_eq!(m.child("Caption").text, nasty);
    assert_eq!(m.children[5].text, "A&B <c> \"d\"");
    let c = root.child("CellData").child("Cell");
    assert_eq!(c.child("Value").text, nasty);
    assert_eq!(c.child("FmtValue").text, "<b>&nbsp;");
    assert_eq!(c.child("FormatString").text, "#,##0 \"kr\";-#,##0 'kr'");
}

#[test]
fn no_axes_means_only_the_slicer_and_one_cell() {
    let mut cs = kommune_cellset();
    cs.axes.clear();
    cs.slicer.hierarchies.insert(0, "[Measures]".into());
    cs.slicer.tuples[0].insert(0, measure("Befolkning", true));
    cs.cell_properties = vec![CellProperty::Value, CellProperty::FormatString];
    cs.cells = vec![cell(0, CellValue::Int(5_961_249), None)];
    let (_, root) = write_and_check(&cs, true);
    let infos: Vec<_> = root
        .child("OlapInfo")
        .child("AxesInfo")
        .all("AxisInfo")
        .iter()
        .map(|a| a.attr("name").unwrap())
        .collect();
    assert_eq!(infos, ["SlicerAxis"]);
    let axes = root.child("Axes").all("Axis");
    assert_eq!(axes.len(), 1);
    assert_eq!(axes[0].attr("name"), Some("SlicerAxis"));
    assert_eq!(axes[0].child("Tuples").children[0].children.len(), 3);
    let cells = &root.child("CellData").children;
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].attr("CellOrdinal"), Some("0"));
    assert_eq!(cells[0].child("Value").text, "5961249");

    // An empty result: no cell at all, and an empty CellData.
    cs.cells.clear();
    let (xml, root) = write_and_check(&cs, true);
    assert!(root.child("CellData").children.is_empty());
    assert!(xml.ends_with("<CellData/></root>"));
}

#[test]
fn an_empty_slicer_has_no_tuple_at_all() {
    // Every hierarchy of the cube is on an axis: the slicer has nothing. We never write a
    // zero-member tuple (Excel rejects it): the axis is `<Tuples/>` and its AxisInfo empty.
    let mut cs = kommune_cellset();
    cs.slicer = Axis::default();
    let (xml, root) = write_and_check(&cs, true);
    assert!(xml.contains("<AxisInfo name=\"SlicerAxis\"></AxisInfo>"), "{xml}");
    assert!(xml.contains("<Axis name=\"SlicerAxis\"><Tuples/></Axis>"));
    assert!(!xml.contains("<Tuple></Tuple>") && !xml.contains("<Tuple/>"));
    let slicer = root.child("Axes").all("Axis")[2];
    assert!(slicer.child("Tuples").children.is_empty());

    // A slicer given a tuple without members (an engine slip) still writes no such tuple.
    cs.slicer = Axis {
        hierarchies: vec![],
        properties: vec![],
        tuples: vec![vec![]],
    };
    let (xml, _) = write_and_check(&cs, true);
    assert!(xml.contains("<Axis name=\"SlicerAxis\"><Tuples/></Axis>"));
}

#[test]
fn an_empty_axis_has_no_cells() {
    let mut cs = kommune_cellset();
    cs.axes[0].tuples.clear();
    cs.cells.clear();
    let (xml, root) = write_and_check(&cs, true);
    assert!(xml.contains("<Axis name=\"Axis0\"><Tuples/></Axis>"));
    // The axis is still described, so the client knows which hierarchy it would hold.
    assert_eq!(
        root.child("OlapInfo").child("AxesInfo").all("AxisInfo")[0]
            .child("HierarchyInfo")
            .attr("name"),
        Some(KOMMUNE)
    );
    assert!(root.child("CellData").children.is_empty());
}

#[test]
fn cells_outside_the_cell_space_are_left_out() {
    let mut cs = kommune_cellset();
    cs.cells.push(cell(8, CellValue::Int(1), None)); // 4 × 2 = 8 cells: ordinals 0..=7
    let (_, root) = write_and_check(&cs, false);
    assert_eq!(root.child("CellData").children.len(), 6);
}

/// `rows` members × `cols` measures, every cell filled (text with `&` and non-ASCII letters,
/// doubles and longs). Also used by the streaming tests.
pub(crate) fn big_cellset(rows: usize, cols: usize) -> CellSet {
    let mut cs = kommune_cellset();
    cs.axes = vec![
        Axis {
            hierarchies: vec![KOMMUNE.into()],
            properties: vec![prop(
                KOMMUNE,
                "[Kommune].[Geografi].[PARENT_UNIQUE_NAME]",
                "PARENT_UNIQUE_NAME",
                "xsd:string",
            )],
            tuples: (0..rows)
                .map(|i| {
                    vec![member(
                        KOMMUNE,
                        &format!("[Kommune].[Geografi].[Kommune].&[{i}]"),
                        &format!("Kommune nr. {i} & Co"),
                        "[Kommune].[Geografi].[Kommune]",
                        2,
                        display_info(0, false, i > 0),
                        vec![Some("[Kommune].[Geografi].[Region].&[1084]")],
                    )]
                })
                .collect(),
        },
        Axis {
            hierarchies: vec!["[Measures]".into()],
            properties: vec![],
            tuples: (0..cols).map(|i| vec![measure(&format!("Mål {i}"), i == 0)]).collect(),
        },
    ];
    cs.cell_properties = vec![
        CellProperty::Value,
        CellProperty::FormattedValue,
        CellProperty::FormatString,
        CellProperty::Language,
    ];
    cs.cells = (0..(rows * cols) as u64)
        .map(|o| Cell {
            ordinal: o,
            value: if o % 2 == 0 {
                CellValue::Double(o as f64 * 1.25)
            } else {
                CellValue::Long(o as i64 * 100_000)
            },
            formatted: Some(format!("{o}")),
            format_string: Some("#,##0.00".into()),
        })
        .collect();
    cs
}

#[test]
fn a_hundred_thousand_cells() {
    // 1,000 members × 100 measures; every cell filled. Checks well-formedness and count
    // only (no timing assertions; in release this writes ~12 MB in a few milliseconds).
    let rows = 1000usize;
    let cols = 100usize;
    let cs = big_cellset(rows, cols);
    let xml = write_mddataset(&cs, true);
    assert_eq!(well_formed_count(&xml, b"Cell"), rows * cols);
    assert_eq!(well_formed_count(&xml, b"Tuple"), rows + cols + 1);
    assert!(xml.contains("<Cell CellOrdinal=\"99999\"><Value xsi:type=\"xsd:long\">9999900000</Value>"));
}

#[test]
fn xml_encode_name_cases() {
    let cases = [
        ("Store Type", "Store_x0020_Type"),
        ("PARENT_UNIQUE_NAME", "PARENT_UNIQUE_NAME"),
        ("CVR", "CVR"),
        ("2nd Level", "_x0032_nd_x0020_Level"),
        ("1", "_x0031_"),
        ("Level2", "Level2"),
        (
            "[Store].[Store Type]",
            "_x005b_Store_x005d_._x005b_Store_x0020_Type_x005d_",
        ),
        ("a-b.c", "a-b.c"),
        ("-a", "_x002d_a"),
        (".a", "_x002e_a"),
        ("a:b", "a_x003a_b"),
        ("Område", "Område"),
        ("Ærø Kommune", "Ærø_x0020_Kommune"),
        ("Łódź", "Łódź"),
        ("Москва", "Москва"),
        ("100%", "_x0031_00_x0025_"),
        ("a&b", "a_x0026_b"),
        ("tab\there", "tab_x0009_here"),
        ("_x0020_", "_x005f_x0020_"),
        ("a_x12_", "a_x12_"),
        ("_under", "_under"),
        ("€", "_x20ac_"),
        ("a😀", "a_x0001f600_"),
        ("", ""),
    ];
    for (input, want) in cases {
        assert_eq!(xml_encode_name(input), want, "{input:?}");
    }
    // Every encoding is a usable element name.
    for (input, _) in cases.iter().filter(|(i, _)| !i.is_empty()) {
        let n = xml_encode_name(input);
        let doc = format!("<{n}>x</{n}>");
        assert_eq!(parse(&doc).name, n);
    }
}

// ---------------------------------------------------------------------------------------
// Comparison with an MDDataSet Excel 365 accepted (the MallardCube trace, MIT).
// ---------------------------------------------------------------------------------------

fn trace_responses() -> Vec<(u64, String)> {
    let text = crate::soap_tests::excel_trace_text();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["request_kind"].as_str().unwrap_or("").starts_with("ExecuteStatement"))
        .map(|v| {
            (
                v["seq"].as_u64().unwrap(),
                v["response_xml"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Rebuild a CellSet from a traced MDDataSet: same axes, hierarchies, declared properties,
/// members, cell properties and cells.
fn cellset_from_trace(root: &Node) -> CellSet {
    let olap = root.child("OlapInfo");
    let mut axes = Vec::new();
    let mut slicer = Axis::default();
    let data_axes = root.child("Axes").all("Axis");
    for info in olap.child("AxesInfo").all("AxisInfo") {
        let name = info.attr("name").unwrap();
        let mut axis = Axis::default();
        for h in info.all("HierarchyInfo") {
            let hn = h.attr("name").unwrap().to_string();
            assert_eq!(h.child_names()[..5], STANDARD);
            for p in &h.children[5..] {
                assert_eq!(
                    xml_encode_name(&p.name),
                    p.name,
                    "traced element names need no encoding"
                );
                axis.properties
                    .push(prop(&hn, p.attr("name").unwrap(), &p.name, p.attr("type").unwrap()));
            }
            axis.hierarchies.push(hn);
        }
        let data = data_axes
            .iter()
            .find(|a| a.attr("name") == Some(name))
            .expect("an Axis per AxisInfo");
        for t in &data.child("Tuples").children {
            let mut tuple = Vec::new();
            for m in &t.children {
                let h = m.attr("Hierarchy").unwrap();
                let props = axis
                    .properties
                    .iter()
                    .filter(|p| p.hierarchy == h)
                    .map(|p| m.try_child(&p.element).map(|c| c.text.clone()))
                    .collect();
                tuple.push(AxisMember {
                    hierarchy: h.into(),
                    unique_name: m.child("UName").text.clone(),
                    caption: m.child("Caption").text.clone(),
                    level_unique_name: m.child("LName").text.clone(),
                    level_number: m.child("LNum").text.parse().unwrap(),
                    display_info: m.child("DisplayInfo").text.parse().unwrap(),
                    properties: props,
                });
            }
            axis.tuples.push(tuple);
        }
        if name == "SlicerAxis" {
            slicer = axis;
        } else {
            assert_eq!(name, format!("Axis{}", axes.len()));
            axes.push(axis);
        }
    }
    let cell_properties = olap
        .child("CellInfo")
        .children
        .iter()
        .map(|c| CellProperty::from_name(c.attr("name").unwrap()).expect("a known cell property"))
        .collect();
    let cells = root
        .child("CellData")
        .children
        .iter()
        .map(|c| {
            let v = c.child("Value");
            let value = match v.attr("xsi:type").unwrap() {
                "xsd:double" => CellValue::Double(v.text.parse().unwrap()),
                "xsd:int" => CellValue::Int(v.text.parse().unwrap()),
                "xsd:long" => CellValue::Long(v.text.parse().unwrap()),
                "xsd:decimal" => CellValue::Decimal(v.text.clone()),
                "xsd:boolean" => CellValue::Bool(v.text == "true"),
                _ => CellValue::Str(v.text.clone()),
            };
            Cell {
                ordinal: c.attr("CellOrdinal").unwrap().parse().unwrap(),
                value,
                formatted: c.try_child("FmtValue").map(|n| n.text.clone()),
                format_string: c.try_child("FormatString").map(|n| n.text.clone()),
            }
        })
        .collect();
    CellSet {
        cube_name: olap.child("CubeInfo").child("Cube").child("CubeName").text.clone(),
        last_data_update: String::new(),
        last_schema_update: String::new(),
        axes,
        slicer,
        cell_properties,
        language: 1033,
        cells,
    }
}

/// A flat signature of a subtree: one entry per element open (name and attribute names, plus
/// attribute values and text when `values`), one per close.
fn signature(n: &Node, values: bool, out: &mut Vec<String>) {
    let attrs: Vec<String> = n
        .attrs
        .iter()
        .map(|(k, v)| if values { format!("{k}={v:?}") } else { k.clone() })
        .collect();
    out.push(format!("<{} {}>", n.name, attrs.join(" ")));
    if values && !n.text.is_empty() {
        out.push(format!("text {:?}", n.text));
    }
    for c in &n.children {
        signature(c, values, out);
    }
    out.push(format!("</{}>", n.name));
}

fn sig(n: &Node, values: bool) -> Vec<String> {
    let mut v = Vec::new();
    signature(n, values, &mut v);
    v
}

fn find_root(envelope: &Node) -> &Node {
    envelope
        .child("soap:Body")
        .child("ExecuteResponse")
        .child("return")
        .child("root")
}

#[test]
fn same_structure_as_the_excel_365_trace() {
    let responses = trace_responses();
    assert!(responses.len() >= 2, "the trace holds the pivot's Execute statements");
    for (i, (seq, xml)) in responses.iter().enumerate() {
        let env = parse(xml);
        let theirs = find_root(&env);
        let cs = cellset_from_trace(theirs);
        if i == 0 {
            // The first statement is the grand total: no axes, every hierarchy in the slicer.
            assert!(cs.axes.is_empty() && cs.slicer.hierarchies.len() > 1, "seq {seq}");
        }
        let (_, ours) = write_and_check(&cs, true);
        assert_eq!(ours.child_names(), theirs.child_names(), "seq {seq}: top-level order");

        let (o, t) = (ours.child("OlapInfo"), theirs.child("OlapInfo"));
        assert_eq!(o.child_names(), t.child_names(), "seq {seq}");
        // CubeInfo and AxesInfo: identical, attribute values included.
        assert_eq!(
            sig(o.child("CubeInfo"), true),
            sig(t.child("CubeInfo"), true),
            "seq {seq}: CubeInfo"
        );
        assert_eq!(
            sig(o.child("AxesInfo"), true),
            sig(t.child("AxesInfo"), true),
            "seq {seq}: AxesInfo"
        );
        // CellInfo: same elements and attributes. (MallardCube types the colours xsd:string;
        // we use xsd:unsignedInt as SSAS does, so values are not compared.)
        assert_eq!(
            sig(o.child("CellInfo"), false),
            sig(t.child("CellInfo"), false),
            "seq {seq}: CellInfo"
        );
        // Axes: identical, member texts included.
        assert_eq!(
            sig(ours.child("Axes"), true),
            sig(theirs.child("Axes"), true),
            "seq {seq}: Axes"
        );
        // Cells: same ordinals and typed values; our children are theirs minus the empty
        // colour elements MallardCube writes (we omit properties that have no value).
        let (oc, tc) = (&ours.child("CellData").children, &theirs.child("CellData").children);
        assert_eq!(oc.len(), tc.len(), "seq {seq}");
        for (a, b) in oc.iter().zip(tc) {
            assert_eq!(a.attrs, b.attrs, "seq {seq}: Cell attributes");
            assert_eq!(a.child("Value").attrs, b.child("Value").attrs);
            assert_eq!(
                a.child("Value").text.parse::<f64>().unwrap(),
                b.child("Value").text.parse::<f64>().unwrap()
            );
            let theirs_non_empty: Vec<&str> = b
                .children
                .iter()
                .filter(|c| !c.text.is_empty())
                .map(|c| c.name.as_str())
                .collect();
            assert_eq!(a.child_names(), theirs_non_empty, "seq {seq}");
        }
    }
}

#[test]
fn in_place_escaping_matches_the_shared_escaper() {
    let samples = [
        "",
        "plain",
        "Æbler & <Pærer> \"x\" 'y'",
        "tab\there\nnew\rline",
        "nul\u{0}bell\u{7}del\u{7f}",
        "c1 \u{80}\u{85}\u{9f} kept \u{a0}£Â€😀",
        "&&&<<<>>>",
        "\u{1f}x\u{c2}",
    ];
    for t in samples {
        let mut s = String::from("prefix:");
        crate::mddataset::push_esc(&mut s, t);
        assert_eq!(s, format!("prefix:{}", crate::response::esc(t)), "{t:?}");
    }
}
