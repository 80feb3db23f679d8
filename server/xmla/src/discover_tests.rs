//! Discover details found by real clients: Content=Data (ADOMD.NET cache checks) and hidden
//! measures (MEASURE_VISIBILITY defaults to visible only, as in SSAS).

use datakube_members::MemberStore;
use datakube_model::Lang;

use crate::discover::{Context, ServerProps, discover};
use crate::soap::{Discover, Properties, Restriction};

fn catalog() -> datakube_model::Catalog {
    datakube_model::load_catalog(
        std::path::Path::new(&format!(
            "{}/../../cube-definitions",
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
        )),
        None,
    )
    .unwrap()
}

fn run(request_type: &str, restrictions: Vec<(&str, &str)>, props: Vec<(&str, &str)>) -> String {
    run_in(Lang::Da, request_type, restrictions, props)
}

fn run_in(lang: Lang, request_type: &str, restrictions: Vec<(&str, &str)>, props: Vec<(&str, &str)>) -> String {
    let catalog = catalog();
    let members = MemberStore::default();
    let server = ServerProps::default();
    let access = datakube_members::access::Access::all();
    let ctx = Context {
        catalog: &catalog,
        members: &members,
        lang,
        current_catalog: None,
        server: &server,
        schema_updated: "",
        data_updated: "",
        access: &access,
    };
    let req = Discover {
        request_type: request_type.into(),
        restrictions: restrictions
            .into_iter()
            .map(|(n, v)| Restriction {
                name: n.into(),
                values: vec![v.into()],
            })
            .collect(),
        properties: Properties(props.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
    };
    discover(&req, &ctx).unwrap()
}

#[test]
fn content_data_omits_the_schema_and_schema_omits_the_rows() {
    let both = run("MDSCHEMA_CUBES", vec![], vec![]);
    assert!(both.contains("<xsd:schema") && both.contains("<row>"));
    let data = run("MDSCHEMA_CUBES", vec![], vec![("Content", "Data")]);
    assert!(!data.contains("<xsd:schema") && data.contains("<row>"), "{data}");
    let schema = run("MDSCHEMA_CUBES", vec![], vec![("Content", "Schema")]);
    assert!(schema.contains("<xsd:schema") && !schema.contains("<row>"));
}

#[test]
fn hidden_measures_are_listed_only_when_asked_for() {
    // Benchmark has measures with `visible: false` (read independently from the YAML file).
    let yaml = std::fs::read_to_string(format!(
        "{}/../../cube-definitions/benchmark.yaml",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    ))
    .unwrap();
    assert!(yaml.contains("visible: false"), "the fixture assumption holds");
    let default = run("MDSCHEMA_MEASURES", vec![("CUBE_NAME", "Benchmark")], vec![]);
    assert!(
        !default.contains("<MEASURE_IS_VISIBLE>false</MEASURE_IS_VISIBLE>"),
        "{default}"
    );
    let all = run(
        "MDSCHEMA_MEASURES",
        vec![("CUBE_NAME", "Benchmark"), ("MEASURE_VISIBILITY", "3")],
        vec![],
    );
    assert!(all.contains("<MEASURE_IS_VISIBLE>false</MEASURE_IS_VISIBLE>"));
    assert!(all.matches("<row>").count() > default.matches("<row>").count());
}

#[test]
fn functions_lists_what_the_engine_evaluates() {
    let r = run("MDSCHEMA_FUNCTIONS", vec![("FUNCTION_NAME", "DrilldownLevel")], vec![]);
    assert_eq!(r.matches("<row>").count(), 1, "{r}");
    assert!(r.contains("INCLUDE_CALC_MEMBERS"));
    // Every listed function is one the engine's evaluator names (read from its source).
    let eval = std::fs::read_to_string(format!(
        "{}/../query/src/eval.rs",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    ))
    .unwrap()
    .to_lowercase();
    let all = run("MDSCHEMA_FUNCTIONS", vec![], vec![]);
    for name in all
        .split("<FUNCTION_NAME>")
        .skip(1)
        .map(|p| p.split('<').next().unwrap().to_lowercase())
    {
        assert!(
            eval.contains(&format!("\"{name}\"")),
            "{name} is listed but not evaluated"
        );
    }
}

/// The rows of a rowset answer: per row, (column, text) in document order, read with a real
/// XML parser.
fn rows_of(xml: &str) -> Vec<Vec<(String, String)>> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let (mut rows, mut row, mut text, mut depth) = (Vec::new(), Vec::new(), String::new(), 0usize);
    loop {
        match r.read_event().expect("well-formed") {
            Event::Start(e) if e.name().as_ref() == b"row" => {
                depth = 1;
                row = Vec::new();
            }
            Event::Start(_) if depth > 0 => {
                depth += 1;
                text.clear();
            }
            Event::Text(t) if depth > 0 => text.push_str(&t.decode().unwrap()),
            Event::GeneralRef(g) if depth > 0 => text.push_str(match g.decode().unwrap().as_ref() {
                "amp" => "&",
                "lt" => "<",
                "gt" => ">",
                "quot" => "\"",
                _ => "'",
            }),
            Event::End(e) if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    rows.push(std::mem::take(&mut row));
                } else {
                    row.push((
                        String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                        std::mem::take(&mut text),
                    ));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    rows
}

fn get<'a>(row: &'a [(String, String)], col: &str) -> Option<&'a str> {
    row.iter().find(|(c, _)| c == col).map(|(_, v)| v.as_str())
}

#[test]
fn every_function_is_described_in_english_and_danish() {
    let en = rows_of(&run_in(Lang::En, "MDSCHEMA_FUNCTIONS", vec![], vec![]));
    let da = rows_of(&run_in(Lang::Da, "MDSCHEMA_FUNCTIONS", vec![], vec![]));
    assert!(en.len() >= 48, "{} functions", en.len());
    assert_eq!(en.len(), da.len());
    // Danish letters are a fair sign that the Danish text is Danish; the English texts
    // must not be the Danish ones.
    let mut danish_letters = 0;
    for (e, d) in en.iter().zip(&da) {
        let name = get(e, "FUNCTION_NAME").unwrap();
        assert_eq!(get(d, "FUNCTION_NAME"), Some(name), "same order in both languages");
        let (de, dd) = (get(e, "DESCRIPTION").unwrap_or(""), get(d, "DESCRIPTION").unwrap_or(""));
        assert!(de.len() > 15 && de.ends_with('.'), "{name}: English description {de:?}");
        assert!(dd.len() > 15 && dd.ends_with('.'), "{name}: Danish description {dd:?}");
        assert_ne!(de, dd, "{name}");
        assert!(dd.starts_with(char::is_uppercase) && de.starts_with(char::is_uppercase));
        danish_letters += usize::from(dd.contains(['æ', 'ø', 'å']));
        assert!(!de.contains(['æ', 'ø', 'å']), "{name}: {de}");
        assert!(
            !get(e, "PARAMETER_LIST").unwrap_or("").is_empty(),
            "{name}: no parameter list"
        );
        assert_eq!(get(e, "CAPTION"), Some(name));
        // ORIGIN 1 (MDX) with a group, or 2 with the VBA library; RETURN_TYPE a VARTYPE.
        match get(e, "ORIGIN") {
            Some("1") => assert_eq!(get(e, "LIBRARY_NAME"), None, "{name}"),
            Some("2") => assert_eq!(get(e, "LIBRARY_NAME"), Some("VBA"), "{name}"),
            other => panic!("{name}: ORIGIN {other:?}"),
        }
        assert!(!get(e, "INTERFACE_NAME").unwrap_or("").is_empty(), "{name}");
        assert!(
            matches!(get(e, "RETURN_TYPE"), Some("3" | "5" | "8" | "11" | "12")),
            "{name}: {:?}",
            get(e, "RETURN_TYPE")
        );
    }
    assert!(
        danish_letters > 10,
        "only {danish_letters} Danish descriptions have æ, ø or å"
    );
    // Sorted by ORIGIN, INTERFACE_NAME, FUNCTION_NAME as the rowset is defined.
    let keys: Vec<(String, String, String)> = en
        .iter()
        .map(|r| {
            (
                get(r, "ORIGIN").unwrap().to_string(),
                get(r, "INTERFACE_NAME").unwrap().to_string(),
                get(r, "FUNCTION_NAME").unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn function_rows_follow_the_restrictions() {
    let one = rows_of(&run_in(
        Lang::En,
        "MDSCHEMA_FUNCTIONS",
        vec![("FUNCTION_NAME", "Children")],
        vec![],
    ));
    assert_eq!(one.len(), 1);
    let r = &one[0];
    assert_eq!(
        get(r, "DESCRIPTION"),
        Some("Returns the members one level below a member (its children).")
    );
    assert_eq!(get(r, "PARAMETER_LIST"), Some("Member"));
    assert_eq!(get(r, "RETURN_TYPE"), Some("12"));
    assert_eq!(get(r, "ORIGIN"), Some("1"));
    assert_eq!(get(r, "INTERFACE_NAME"), Some("SET"));
    assert_eq!(get(r, "OBJECT"), Some("Member"));
    // Members applies to hierarchies and levels: a row for each.
    let members = rows_of(&run("MDSCHEMA_FUNCTIONS", vec![("FUNCTION_NAME", "members")], vec![]));
    let objects: Vec<_> = members.iter().map(|r| get(r, "OBJECT").unwrap()).collect();
    assert_eq!(objects, ["Hierarchy", "Level"]);
    assert_eq!(
        get(&members[1], "DESCRIPTION"),
        Some("Returnerer medlemmerne på et niveau uden de beregnede.")
    );
    // The VBA functions: ORIGIN 2, sorted by module, then name.
    let vba = rows_of(&run("MDSCHEMA_FUNCTIONS", vec![("ORIGIN", "2")], vec![]));
    let names: Vec<_> = vba.iter().map(|r| get(r, "FUNCTION_NAME").unwrap()).collect();
    assert_eq!(
        names,
        [
            "CBool",
            "Fix",
            "Val",
            "Date",
            "DateSerial",
            "Day",
            "Month",
            "Now",
            "Weekday",
            "Year",
            "Exp",
            "Log",
            "Round",
            "Sgn",
            "Sqr",
            "Format",
            "InStr",
            "Left",
            "Len",
            "Mid",
            "Right"
        ]
    );
    let strings = rows_of(&run("MDSCHEMA_FUNCTIONS", vec![("INTERFACE_NAME", "Strings")], vec![]));
    assert_eq!(strings.len(), 6);
    assert!(
        rows_of(&run(
            "MDSCHEMA_FUNCTIONS",
            vec![("FUNCTION_NAME", "NoSuchFunction")],
            vec![]
        ))
        .is_empty()
    );
}
