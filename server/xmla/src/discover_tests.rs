//! Discover details found by real clients: Content=Data (ADOMD.NET cache checks) and hidden
//! measures (MEASURE_VISIBILITY defaults to visible only, as in SSAS).

use datakube_members::MemberStore;
use datakube_model::Lang;

use crate::discover::{Context, ServerProps, discover};
use crate::soap::{Discover, Properties, Restriction};

fn catalog() -> datakube_model::Catalog {
    datakube_model::load_catalog(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../cube-definitions")),
        None,
    )
    .unwrap()
}

fn run(request_type: &str, restrictions: Vec<(&str, &str)>, props: Vec<(&str, &str)>) -> String {
    let catalog = catalog();
    let members = MemberStore::default();
    let server = ServerProps::default();
    let ctx = Context {
        catalog: &catalog,
        members: &members,
        lang: Lang::Da,
        current_catalog: None,
        server: &server,
        schema_updated: "",
        data_updated: "",
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
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../cube-definitions/benchmark.yaml"
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
    let eval = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../query/src/eval.rs"))
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
