//! Tests of DMV statements (`dmv.rs`) against the shipped cube definitions.
//!
//! Expected rows are read from the YAML files themselves with a small indentation-based reader
//! (not from the catalog the code under test uses), and every answer is parsed as XML.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use datakube_members::MemberStore;
use datakube_model::{Catalog, Lang};
use quick_xml::Reader;
use quick_xml::events::Event;

use crate::discover::{Context, Fault, ServerProps};
use crate::dmv::{execute, is_dmv};
use crate::response::codes;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn defs_dir() -> PathBuf {
    Path::new(&format!(
        "{}/../../cube-definitions",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    ))
    .to_path_buf()
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        datakube_model::load_catalog(&defs_dir(), None)
            .unwrap_or_else(|d| panic!("the shipped cube definitions do not load: {d:?}"))
    })
}

fn run_lang(statement: &str, params: &[(&str, &str)], lang: Lang) -> Result<Rowset, Fault> {
    let members = MemberStore::default();
    let server = ServerProps::default();
    let access = datakube_members::access::Access::all();
    let ctx = Context {
        catalog: catalog(),
        members: &members,
        lang,
        current_catalog: None,
        server: &server,
        schema_updated: "2024-01-01T00:00:00",
        data_updated: "2024-01-01T00:00:00",
        access: &access,
    };
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    execute(statement, &params, &ctx).map(|xml| parse_rowset(&xml))
}

fn run(statement: &str, params: &[(&str, &str)]) -> Rowset {
    run_lang(statement, params, Lang::Da).unwrap_or_else(|f| panic!("{statement}\nfailed: {}", f.message))
}

fn fault(statement: &str, params: &[(&str, &str)]) -> Fault {
    match run_lang(statement, params, Lang::Da) {
        Ok(r) => panic!("{statement}\nshould fail, gave {:?}", r.rows),
        Err(f) => f,
    }
}

// ---------------------------------------------------------------------------------------
// The answer, parsed: schema columns (name, xsd type) and rows (element, text) in order
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct Rowset {
    columns: Vec<(String, String)>,
    rows: Vec<Vec<(String, String)>>,
}

impl Rowset {
    fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }
    /// The value of `col` in every row (None where the row omits it).
    fn values(&self, col: &str) -> Vec<Option<&str>> {
        self.rows
            .iter()
            .map(|r| r.iter().find(|(n, _)| n == col).map(|(_, v)| v.as_str()))
            .collect()
    }
    /// The values of `col`, all present.
    fn strings(&self, col: &str) -> Vec<String> {
        self.values(col)
            .into_iter()
            .map(|v| {
                v.unwrap_or_else(|| panic!("a row has no {col}: {:?}", self.rows))
                    .to_string()
            })
            .collect()
    }
    /// Each row's elements must be schema columns, in schema order (a nested column repeats).
    fn check_row_order(&self) {
        for r in &self.rows {
            let positions: Vec<usize> = r
                .iter()
                .map(|(n, _)| {
                    self.columns
                        .iter()
                        .position(|(c, _)| c == n)
                        .unwrap_or_else(|| panic!("row element {n} is not in the schema {:?}", self.columns))
                })
                .collect();
            assert!(
                positions.windows(2).all(|w| w[0] <= w[1]),
                "row out of schema order: {r:?}"
            );
        }
    }
}

fn parse_rowset(xml: &str) -> Rowset {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut out = Rowset {
        columns: Vec::new(),
        rows: Vec::new(),
    };
    // Depth of the stack at `<xsd:complexType name="row">`: its columns are two levels down.
    let mut row_type: Option<usize> = None;
    let mut text = String::new();
    loop {
        let ev = reader
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed at {}: {e}\n{xml}", reader.error_position()));
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                let attr = |k: &str| {
                    e.try_get_attribute(k)
                        .unwrap()
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                if name == "xsd:complexType" && attr("name").as_deref() == Some("row") {
                    row_type = Some(stack.len());
                }
                if row_type.is_some_and(|d| stack.len() == d + 2) && name == "xsd:element" {
                    out.columns
                        .push((attr("name").unwrap(), attr("type").unwrap_or_else(|| "(nested)".into())));
                }
                if name == "row" && stack.len() == 1 {
                    out.rows.push(Vec::new());
                }
                text.clear();
                if matches!(ev, Event::Start(_)) {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap();
                if row_type == Some(stack.len()) {
                    row_type = None;
                }
                if stack.len() == 2 && stack[1] == "row" {
                    out.rows.last_mut().unwrap().push((name, std::mem::take(&mut text)));
                }
            }
            Event::Text(t) => text.push_str(&t.decode().unwrap()),
            Event::GeneralRef(r) => match r.resolve_char_ref().unwrap() {
                Some(c) => text.push(c),
                None => text.push_str(match r.decode().unwrap().as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unknown entity &{other};"),
                }),
            },
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed elements");
    out.check_row_order();
    out
}

// ---------------------------------------------------------------------------------------
// A minimal reader for the definition files: block lists by indentation
// ---------------------------------------------------------------------------------------

fn read(rel: &str) -> String {
    std::fs::read_to_string(defs_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// A block of YAML lines; a list item's first line has its `- ` turned into spaces so that its
/// keys all sit at the same indentation.
#[derive(Debug, Clone)]
struct Block(Vec<String>);

impl Block {
    fn of(text: &str) -> Block {
        Block(text.lines().map(str::to_string).collect())
    }
    fn key_indent(&self) -> usize {
        self.0
            .iter()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| indent(l))
            .min()
            .unwrap_or(0)
    }
    /// The scalar `key: value` at this block's own level.
    fn get(&self, key: &str) -> Option<String> {
        let k = self.key_indent();
        let prefix = format!("{key}:");
        self.0
            .iter()
            .filter(|l| indent(l) == k)
            .find_map(|l| l.trim().strip_prefix(&prefix).map(|v| v.trim().to_string()))
            .filter(|v| !v.is_empty())
    }
    /// The Danish caption of `caption: {da: …, en: …}`.
    fn caption_da(&self) -> String {
        let c = self.get("caption").expect("a caption");
        let da = c.split("da:").nth(1).expect("da:");
        da.split(", en:").next().unwrap().trim().to_string()
    }
    /// The items of the list under `key:` (searched at any depth, first match).
    fn list(&self, key: &str) -> Vec<Block> {
        let head = format!("{key}:");
        let Some(start) = self.0.iter().position(|l| l.trim() == head) else {
            return Vec::new();
        };
        let k = indent(&self.0[start]);
        let mut items: Vec<Block> = Vec::new();
        for l in &self.0[start + 1..] {
            if l.trim().is_empty() {
                continue;
            }
            if indent(l) <= k {
                break;
            }
            if indent(l) == k + 2 && l.trim_start().starts_with("- ") {
                items.push(Block(vec![l.replacen("- ", "  ", 1)]));
            } else if let Some(item) = items.last_mut() {
                item.0.push(l.clone());
            }
        }
        items
    }
    /// A sub-block: the lines under `key:` (for `cube:` / `dimension:`).
    fn section(&self, key: &str) -> Block {
        let head = format!("{key}:");
        let start = self.0.iter().position(|l| l.trim() == head).expect(key);
        let k = indent(&self.0[start]);
        Block(
            self.0[start + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || indent(l) > k)
                .cloned()
                .collect(),
        )
    }
}

/// The cube files (top-level YAML with a `cube:` section).
fn cube_blocks() -> Vec<Block> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(defs_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .filter(|t| t.lines().any(|l| l == "cube:"))
        .map(|t| Block::of(&t).section("cube"))
        .collect()
}

fn cube_block(file: &str) -> Block {
    Block::of(&read(file)).section("cube")
}

/// A shared dimension's definition, found by name among `dimensions/*.yaml`.
fn shared_dimension(name: &str) -> Block {
    for e in std::fs::read_dir(defs_dir().join("dimensions")).unwrap() {
        let b = Block::of(&std::fs::read_to_string(e.unwrap().path()).unwrap()).section("dimension");
        if b.get("name").as_deref() == Some(name) {
            return b;
        }
    }
    panic!("no shared dimension {name}")
}

/// (dimension name, dimension caption, hierarchies used) of a cube, from its YAML.
fn cube_dimensions(cube: &Block) -> Vec<(String, String, Vec<Block>)> {
    cube.list("dimensions")
        .into_iter()
        .map(|d| match d.get("shared") {
            Some(name) => {
                let def = shared_dimension(&name);
                let mut hs = def.list("hierarchies");
                if let Some(used) = d.get("use_hierarchies") {
                    let used: Vec<String> = used
                        .trim_matches(|c| c == '[' || c == ']')
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect();
                    hs.retain(|h| used.contains(&h.get("name").unwrap()));
                }
                (name, def.caption_da(), hs)
            }
            None => (d.get("name").unwrap(), d.caption_da(), d.list("hierarchies")),
        })
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

const OKONOMI: &[(&str, &str)] = &[("CubeName", "Økonomi")];

// ---------------------------------------------------------------------------------------
// Recognising DMV statements
// ---------------------------------------------------------------------------------------

#[test]
fn dmv_statements_are_recognised_in_any_spelling() {
    for s in [
        "select [CATALOG_NAME] from $system.DBSCHEMA_CATALOGS",
        "SELECT * FROM $SYSTEM.MDSCHEMA_CUBES",
        "select * from [$System].[MDSCHEMA_CUBES]",
        "select * from $System.[mdschema_cubes]",
        "  \n\tSelect CUBE_NAME\nFrom\n  $system . mdschema_cubes ;",
        "select [DIMENSION_CAPTION]from $system.mdschema_dimensions",
        "-- Power Query\nselect * /* all */ from $system.mdschema_levels",
        "select * from SYSTEMRESTRICTSCHEMA($System.MDSCHEMA_CUBES, [CUBE_NAME] = 'Økonomi')",
        // Recognised so that the syntax error is a DMV one.
        "select * from $system.mdschema_cubes where [CUBE_NAME] = 'unterminated",
        "select * from $system.TMSCHEMA_TABLES",
    ] {
        assert!(is_dmv(s), "not recognised: {s}");
    }
}

#[test]
fn mdx_and_other_statements_are_not_dmv() {
    for s in [
        "",
        "   ",
        "SELECT {[Measures].[Regnskab]} ON 0 FROM [Økonomi]",
        "SELECT NON EMPTY [Tid].[Kalender].[År].MEMBERS ON ROWS FROM [Økonomi] WHERE ([Measures].[Budget])",
        "WITH MEMBER [Measures].[x] AS 1 SELECT [Measures].[x] ON 0 FROM [Økonomi]",
        "SELECT {} ON 0 FROM (SELECT {[Tid].[Kalender].[År].&[2020]} ON 0 FROM [Økonomi])",
        "SELECT {[Measures].[x]} ON 0 FROM [$System.Cubes]",
        "SELECT \"from $system.x\" ON 0 FROM [Økonomi]",
        "EVALUATE 'Økonomi'",
        "DRILLTHROUGH SELECT FROM [Økonomi]",
        "select * from system.mdschema_cubes",
        "select * from $system",
        "from $system.mdschema_cubes select *",
    ] {
        assert!(!is_dmv(s), "wrongly recognised: {s}");
    }
}

// ---------------------------------------------------------------------------------------
// The statements Power Query sends (powerbi-targit-auth.md §1.4, excel-xmla.md §9)
// ---------------------------------------------------------------------------------------

#[test]
fn catalogs() {
    let r = run("select [CATALOG_NAME] from $system.DBSCHEMA_CATALOGS", &[]);
    assert_eq!(r.columns, vec![("CATALOG_NAME".to_string(), "xsd:string".to_string())]);
    let expected = Block::of(&read("catalog.yaml")).section("catalog").get("name").unwrap();
    assert_eq!(r.strings("CATALOG_NAME"), vec![expected]);
}

#[test]
fn cubes_with_cube_source_1() {
    let r = run(
        "select [CUBE_NAME], [BASE_CUBE_NAME], [CUBE_CAPTION] from $system.mdschema_cubes where [CUBE_SOURCE] = 1",
        &[],
    );
    assert_eq!(r.column_names(), ["CUBE_NAME", "BASE_CUBE_NAME", "CUBE_CAPTION"]);
    assert!(r.columns.iter().all(|(_, t)| t == "xsd:string"), "{:?}", r.columns);
    let cubes = cube_blocks();
    assert!(cubes.len() >= 5, "found {} cube files", cubes.len());
    let expected: Vec<(String, String)> = cubes.iter().map(|c| (c.get("name").unwrap(), c.caption_da())).collect();
    let got: Vec<(String, String)> = r
        .strings("CUBE_NAME")
        .into_iter()
        .zip(r.strings("CUBE_CAPTION"))
        .collect();
    assert_eq!(sorted(got), sorted(expected));
    // No cube has a base cube: the column is declared and omitted from every row.
    assert!(r.values("BASE_CUBE_NAME").iter().all(Option::is_none));

    // Dimension "cubes" (CUBE_SOURCE 2) do not exist.
    let r = run(
        "select [CUBE_NAME] from $system.mdschema_cubes where [CUBE_SOURCE] = 2",
        &[],
    );
    assert!(r.rows.is_empty());
    assert_eq!(r.column_names(), ["CUBE_NAME"]);
}

/// Measures of a cube file: (name, Danish caption, visible, display folder).
fn yaml_measures(file: &str) -> Vec<(String, String, bool, Option<String>)> {
    cube_block(file)
        .list("measures")
        .iter()
        .map(|m| {
            (
                m.get("name").unwrap(),
                m.caption_da(),
                m.get("visible").as_deref() != Some("false"),
                m.get("display_folder"),
            )
        })
        .collect()
}

const MEASURES_STATEMENT: &str = "select [MEASURE_UNIQUE_NAME], [MEASURE_CAPTION], [DATA_TYPE], [MEASUREGROUP_NAME], [MEASURE_DISPLAY_FOLDER] from $system.mdschema_measures where [CUBE_NAME] = @CubeName and [MEASURE_IS_VISIBLE]";

#[test]
fn measures_of_a_cube() {
    let r = run(MEASURES_STATEMENT, OKONOMI);
    assert_eq!(
        r.columns,
        [
            ("MEASURE_UNIQUE_NAME", "xsd:string"),
            ("MEASURE_CAPTION", "xsd:string"),
            ("DATA_TYPE", "xsd:unsignedShort"),
            ("MEASUREGROUP_NAME", "xsd:string"),
            ("MEASURE_DISPLAY_FOLDER", "xsd:string"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let expected = yaml_measures("okonomi.yaml");
    assert_eq!(
        expected.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
        ["Regnskab", "Budget", "Afvigelse", "Forbrugsprocent"],
        "the reader of okonomi.yaml"
    );
    // In definition order, as MDSCHEMA_MEASURES lists them.
    assert_eq!(
        r.strings("MEASURE_UNIQUE_NAME"),
        expected
            .iter()
            .map(|m| format!("[Measures].[{}]", m.0))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        r.strings("MEASURE_CAPTION"),
        expected.iter().map(|m| m.1.clone()).collect::<Vec<_>>()
    );
    // Sums and calculations are doubles (DBTYPE_R8 = 5).
    assert!(r.strings("DATA_TYPE").iter().all(|t| t == "5"));
    assert!(r.strings("MEASUREGROUP_NAME").iter().all(|g| g == "Økonomi"));
    assert!(r.values("MEASURE_DISPLAY_FOLDER").iter().all(Option::is_none));
}

#[test]
fn hidden_measures_are_left_out_and_folders_kept() {
    let r = run(MEASURES_STATEMENT, &[("CubeName", "Benchmark")]);
    let all = yaml_measures("benchmark.yaml");
    assert!(all.iter().any(|m| !m.2), "benchmark.yaml has hidden measures");
    let visible: Vec<_> = all.iter().filter(|m| m.2).collect();
    assert_eq!(
        r.strings("MEASURE_UNIQUE_NAME"),
        visible
            .iter()
            .map(|m| format!("[Measures].[{}]", m.0))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        r.values("MEASURE_DISPLAY_FOLDER")
            .into_iter()
            .map(|v| v.map(str::to_string))
            .collect::<Vec<_>>(),
        visible.iter().map(|m| m.3.clone()).collect::<Vec<_>>()
    );

    // Hidden measures are only listed when asked for (MEASURE_VISIBILITY defaults to 1, as in
    // SSAS); then NOT picks exactly the hidden ones.
    let r = run(
        "select [MEASURE_NAME] from $system.mdschema_measures where [CUBE_NAME] = @CubeName and not [MEASURE_IS_VISIBLE]",
        &[("CubeName", "Benchmark")],
    );
    assert!(r.strings("MEASURE_NAME").is_empty());
    let r = run(
        "select [MEASURE_NAME] from SYSTEMRESTRICTSCHEMA($system.mdschema_measures, MEASURE_VISIBILITY = 3) where [CUBE_NAME] = @CubeName and not [MEASURE_IS_VISIBLE]",
        &[("CubeName", "Benchmark")],
    );
    assert_eq!(
        r.strings("MEASURE_NAME"),
        all.iter().filter(|m| !m.2).map(|m| m.0.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn dimensions_without_measures() {
    let r = run(
        "select [DIMENSION_UNIQUE_NAME], [DIMENSION_CAPTION] from $system.mdschema_dimensions where [CUBE_NAME] = @CubeName and [DIMENSION_UNIQUE_NAME] <> '[Measures]'",
        OKONOMI,
    );
    assert_eq!(r.column_names(), ["DIMENSION_UNIQUE_NAME", "DIMENSION_CAPTION"]);
    let expected: Vec<(String, String)> = cube_dimensions(&cube_block("okonomi.yaml"))
        .into_iter()
        .map(|(n, c, _)| (format!("[{n}]"), c))
        .collect();
    assert_eq!(expected.len(), 6, "the reader of okonomi.yaml: {expected:?}");
    let got: Vec<(String, String)> = r
        .strings("DIMENSION_UNIQUE_NAME")
        .into_iter()
        .zip(r.strings("DIMENSION_CAPTION"))
        .collect();
    assert_eq!(got, expected);

    // Without the condition [Measures] is there too.
    let r = run(
        "select [DIMENSION_UNIQUE_NAME] from $system.mdschema_dimensions where [CUBE_NAME] = @CubeName",
        OKONOMI,
    );
    assert_eq!(r.rows.len(), expected.len() + 1);
    assert!(r.strings("DIMENSION_UNIQUE_NAME").contains(&"[Measures]".to_string()));
}

#[test]
fn hierarchies_without_measures() {
    let r = run(
        "select [DIMENSION_UNIQUE_NAME], [HIERARCHY_UNIQUE_NAME], [HIERARCHY_CAPTION], [HIERARCHY_DISPLAY_FOLDER], [HIERARCHY_ORIGIN], [HIERARCHY_IS_VISIBLE] from $system.mdschema_hierarchies where [CUBE_NAME] = @CubeName and [DIMENSION_UNIQUE_NAME] <> '[Measures]'",
        OKONOMI,
    );
    assert_eq!(
        r.columns,
        [
            ("DIMENSION_UNIQUE_NAME", "xsd:string"),
            ("HIERARCHY_UNIQUE_NAME", "xsd:string"),
            ("HIERARCHY_CAPTION", "xsd:string"),
            ("HIERARCHY_DISPLAY_FOLDER", "xsd:string"),
            ("HIERARCHY_ORIGIN", "xsd:unsignedShort"),
            ("HIERARCHY_IS_VISIBLE", "xsd:boolean"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let mut expected = Vec::new();
    for (d, _, hs) in cube_dimensions(&cube_block("okonomi.yaml")) {
        for h in hs {
            expected.push((
                format!("[{d}]"),
                format!("[{d}].[{}]", h.get("name").unwrap()),
                h.caption_da(),
            ));
        }
    }
    // Tid contributes only Kalender (use_hierarchies), not Uge.
    assert!(expected.iter().any(|e| e.1 == "[Tid].[Kalender]"));
    assert!(!expected.iter().any(|e| e.1 == "[Tid].[Uge]"));
    let d = r.strings("DIMENSION_UNIQUE_NAME");
    let h = r.strings("HIERARCHY_UNIQUE_NAME");
    let c = r.strings("HIERARCHY_CAPTION");
    let got: Vec<(String, String, String)> = (0..r.rows.len())
        .map(|i| (d[i].clone(), h[i].clone(), c[i].clone()))
        .collect();
    assert_eq!(got, expected);
    assert!(r.strings("HIERARCHY_IS_VISIBLE").iter().all(|v| v == "true"));
}

#[test]
fn levels_without_all_and_measures() {
    let r = run(
        "select [DIMENSION_UNIQUE_NAME], [HIERARCHY_UNIQUE_NAME], [LEVEL_UNIQUE_NAME], [LEVEL_NUMBER], [LEVEL_CAPTION] from $system.mdschema_levels where [CUBE_NAME] = @CubeName and [LEVEL_NAME] <> '(All)' and [DIMENSION_UNIQUE_NAME] <> '[Measures]'",
        OKONOMI,
    );
    assert_eq!(
        r.columns,
        [
            ("DIMENSION_UNIQUE_NAME", "xsd:string"),
            ("HIERARCHY_UNIQUE_NAME", "xsd:string"),
            ("LEVEL_UNIQUE_NAME", "xsd:string"),
            ("LEVEL_NUMBER", "xsd:unsignedInt"),
            ("LEVEL_CAPTION", "xsd:string"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let mut expected = Vec::new();
    for (d, _, hs) in cube_dimensions(&cube_block("okonomi.yaml")) {
        for h in hs {
            let hu = format!("[{d}].[{}]", h.get("name").unwrap());
            for (n, l) in h.list("levels").iter().enumerate() {
                expected.push(format!(
                    "{d}|{hu}|{hu}.[{}]|{}|{}",
                    l.get("name").unwrap(),
                    n + 1,
                    l.caption_da()
                ));
            }
        }
    }
    assert!(expected.contains(&"Konto|[Konto].[Funktion]|[Konto].[Funktion].[Funktion]|3|Funktion".to_string()));
    let cols = [
        "DIMENSION_UNIQUE_NAME",
        "HIERARCHY_UNIQUE_NAME",
        "LEVEL_UNIQUE_NAME",
        "LEVEL_NUMBER",
        "LEVEL_CAPTION",
    ];
    let vals: Vec<Vec<String>> = cols.iter().map(|c| r.strings(c)).collect();
    let got: Vec<String> = (0..r.rows.len())
        .map(|i| {
            format!(
                "{}|{}|{}|{}|{}",
                vals[0][i].trim_matches(|c| c == '[' || c == ']'),
                vals[1][i],
                vals[2][i],
                vals[3][i],
                vals[4][i]
            )
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn kpis_and_measure_groups() {
    let r = run(
        "select [KPI_NAME], [KPI_CAPTION], [MEASUREGROUP_NAME], [KPI_DISPLAY_FOLDER], [KPI_GOAL], [KPI_STATUS], [KPI_TREND], [KPI_VALUE] from $system.mdschema_kpis where [CUBE_NAME] = @CubeName",
        OKONOMI,
    );
    // The definitions have no KPIs: no rows, but the schema in SELECT order.
    assert!(!read("okonomi.yaml").contains("kpi"));
    assert!(r.rows.is_empty());
    assert_eq!(
        r.column_names(),
        [
            "KPI_NAME",
            "KPI_CAPTION",
            "MEASUREGROUP_NAME",
            "KPI_DISPLAY_FOLDER",
            "KPI_GOAL",
            "KPI_STATUS",
            "KPI_TREND",
            "KPI_VALUE"
        ]
    );
    assert!(r.columns.iter().all(|(_, t)| t == "xsd:string"));

    let r = run(
        "select [MEASUREGROUP_NAME], [MEASUREGROUP_CAPTION] from $system.mdschema_measuregroups where [CUBE_NAME] = @CubeName",
        OKONOMI,
    );
    assert_eq!(r.strings("MEASUREGROUP_NAME"), ["Økonomi"]);
    assert_eq!(
        r.strings("MEASUREGROUP_CAPTION"),
        [cube_block("okonomi.yaml").caption_da()]
    );
}

#[test]
fn member_properties_of_a_dimension() {
    let statement = "select [DIMENSION_UNIQUE_NAME], [HIERARCHY_UNIQUE_NAME], [LEVEL_UNIQUE_NAME], [PROPERTY_CAPTION], [DATA_TYPE], [PROPERTY_NAME] from $system.mdschema_properties where [CUBE_NAME] = @CubeName and [DIMENSION_UNIQUE_NAME] = @DimensionUniqueName and PROPERTY_IS_VISIBLE and LEN([PROPERTY_ATTRIBUTE_HIERARCHY_NAME]) = 0";
    for dim in ["Tid", "Kommune"] {
        let unique = format!("[{dim}]");
        let r = run(
            statement,
            &[("CubeName", "Økonomi"), ("DimensionUniqueName", unique.as_str())],
        );
        let (_, _, hs) = cube_dimensions(&cube_block("okonomi.yaml"))
            .into_iter()
            .find(|(n, _, _)| n == dim)
            .unwrap();
        let mut expected = Vec::new();
        for h in &hs {
            for l in h.list("levels") {
                for p in l.list("properties") {
                    let hu = format!("[{dim}].[{}]", h.get("name").unwrap());
                    expected.push(format!(
                        "{unique}|{hu}|{hu}.[{}]|{}|{}",
                        l.get("name").unwrap(),
                        p.caption_da(),
                        p.get("name").unwrap()
                    ));
                }
            }
        }
        assert!(!expected.is_empty(), "{dim} has member properties in its YAML");
        let cols = [
            "DIMENSION_UNIQUE_NAME",
            "HIERARCHY_UNIQUE_NAME",
            "LEVEL_UNIQUE_NAME",
            "PROPERTY_CAPTION",
            "PROPERTY_NAME",
        ];
        let vals: Vec<Vec<String>> = cols.iter().map(|c| r.strings(c)).collect();
        let got: Vec<String> = (0..r.rows.len())
            .map(|i| {
                (0..cols.len())
                    .map(|c| vals[c][i].as_str())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        assert_eq!(got, expected);
        assert_eq!(r.columns[4], ("DATA_TYPE".to_string(), "xsd:unsignedShort".to_string()));
    }
}

// ---------------------------------------------------------------------------------------
// The rest of the dialect
// ---------------------------------------------------------------------------------------

#[test]
fn select_star_has_every_column_in_schema_order() {
    let r = run("SELECT * FROM $SYSTEM.MDSCHEMA_MEASUREGROUPS", &[]);
    let def = crate::rowsets::find("MDSCHEMA_MEASUREGROUPS").unwrap();
    assert_eq!(r.column_names(), def.columns.iter().map(|c| c.name).collect::<Vec<_>>());
    assert_eq!(r.rows.len(), cube_blocks().len());
}

#[test]
fn names_are_case_insensitive_and_answer_in_the_rowsets_spelling() {
    let r = run(
        "select cube_name, [Cube_Caption] from [$System].[mdschema_cubes] where cube_name = 'BENCHMARK'",
        &[],
    );
    assert_eq!(r.column_names(), ["CUBE_NAME", "CUBE_CAPTION"]);
    assert_eq!(r.strings("CUBE_NAME"), ["Benchmark"]);
    // Non-ASCII text compares case-insensitively too.
    let r = run(
        "select [CUBE_NAME] from $system.mdschema_cubes where [CUBE_NAME] = 'økonomi'",
        &[],
    );
    assert_eq!(r.strings("CUBE_NAME"), ["Økonomi"]);
}

#[test]
fn parameters_match_with_or_without_at_sign() {
    for name in ["CubeName", "@CubeName", "CUBENAME", " cubename "] {
        let r = run(
            "select [MEASURE_NAME] from $system.mdschema_measures where [CUBE_NAME] = @cubeName",
            &[(name, "Økonomi")],
        );
        assert_eq!(r.rows.len(), 4, "parameter named {name:?}");
    }
}

#[test]
fn order_by_distinct_and_top() {
    let names = sorted(cube_blocks().iter().map(|c| c.get("name").unwrap()).collect::<Vec<_>>());
    let r = run(
        "select [CUBE_NAME] from $system.mdschema_cubes order by [CUBE_NAME]",
        &[],
    );
    assert_eq!(
        r.strings("CUBE_NAME")
            .iter()
            .map(|s| s.to_lowercase())
            .collect::<Vec<_>>(),
        sorted(names.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>())
    );
    let r = run("select [CUBE_NAME] from $system.mdschema_cubes order by 1 desc", &[]);
    let mut desc = sorted(names.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>());
    desc.reverse();
    assert_eq!(
        r.strings("CUBE_NAME")
            .iter()
            .map(|s| s.to_lowercase())
            .collect::<Vec<_>>(),
        desc
    );
    let r = run(
        "select top 2 [CUBE_NAME] from $system.mdschema_cubes order by [CUBE_NAME] desc",
        &[],
    );
    assert_eq!(
        r.strings("CUBE_NAME")
            .iter()
            .map(|s| s.to_lowercase())
            .collect::<Vec<_>>(),
        desc[..2]
    );
    // Sorting on a column that is not selected; numbers sort as numbers.
    let r = run(
        "select [LEVEL_UNIQUE_NAME] from $system.mdschema_levels where [HIERARCHY_UNIQUE_NAME] = '[Konto].[Funktion]' and [CUBE_NAME] = 'Økonomi' order by [LEVEL_NUMBER] desc",
        &[],
    );
    assert_eq!(
        r.strings("LEVEL_UNIQUE_NAME"),
        [
            "[Konto].[Funktion].[Funktion]",
            "[Konto].[Funktion].[Hovedfunktion]",
            "[Konto].[Funktion].[Hovedkonto]",
            "[Konto].[Funktion].[(All)]"
        ]
    );
    // DISTINCT: one measure group per cube, though many measures.
    let r = run(
        "select distinct [MEASUREGROUP_NAME] from $system.mdschema_measures",
        &[],
    );
    assert_eq!(sorted(r.strings("MEASUREGROUP_NAME")), names);
}

#[test]
fn or_not_parentheses_and_null_tests() {
    let r = run(
        "select [CUBE_NAME] from $system.mdschema_cubes where ([CUBE_NAME] = 'Økonomi' or [CUBE_NAME] = 'Benchmark') and not ([CUBE_NAME] = 'Benchmark')",
        &[],
    );
    assert_eq!(r.strings("CUBE_NAME"), ["Økonomi"]);
    // Økonomi's measures have no display folder; Benchmark's all visible ones have one.
    let r = run(
        "select [MEASURE_NAME] from $system.mdschema_measures where [MEASURE_DISPLAY_FOLDER] is null and [CUBE_NAME] = @CubeName",
        OKONOMI,
    );
    assert_eq!(r.rows.len(), 4);
    let r = run(
        "select [MEASURE_NAME] from $system.mdschema_measures where [MEASURE_DISPLAY_FOLDER] is not null and [CUBE_NAME] = 'Benchmark'",
        &[],
    );
    let folders = yaml_measures("benchmark.yaml").iter().filter(|m| m.3.is_some()).count();
    assert_eq!(r.rows.len(), folders);
    // A NULL cell is unequal to any value.
    let r = run(
        "select [MEASURE_NAME] from $system.mdschema_measures where [MEASURE_DISPLAY_FOLDER] <> 'x' and [CUBE_NAME] = @CubeName",
        OKONOMI,
    );
    assert_eq!(r.rows.len(), 4);
    // Comparisons: value on the left, numbers given as text, booleans as literals.
    let r = run(
        "select [LEVEL_NAME] from $system.mdschema_levels where 2 <= [LEVEL_NUMBER] and [LEVEL_NUMBER] < '3' and [HIERARCHY_UNIQUE_NAME] = '[Konto].[Funktion]' and [CUBE_NAME] = 'Økonomi' and [LEVEL_IS_VISIBLE] = true",
        &[],
    );
    assert_eq!(r.strings("LEVEL_NAME"), ["Hovedfunktion"]);
}

#[test]
fn systemrestrictschema_passes_restrictions() {
    let r = run(
        "SELECT [MEASURE_NAME] FROM SYSTEMRESTRICTSCHEMA($System.MDSCHEMA_MEASURES, [CUBE_NAME] = @CubeName, MEASURE_NAME = 'Budget')",
        OKONOMI,
    );
    assert_eq!(r.strings("MEASURE_NAME"), ["Budget"]);
    let f = fault(
        "SELECT * FROM SYSTEMRESTRICTSCHEMA($System.MDSCHEMA_MEASURES, [MEASURE_CAPTION] = 'Budget')",
        &[],
    );
    assert_eq!(f.code, codes::BAD_RESTRICTION);
    assert!(f.message.contains("column 63"), "{}", f.message);
    assert!(f.message.contains("no restriction 'MEASURE_CAPTION'"), "{}", f.message);
    assert!(
        f.message.contains("MEASUREGROUP_NAME"),
        "lists the restrictions: {}",
        f.message
    );
}

#[test]
fn discover_rowsets_work_too() {
    let r = run(
        "select [PropertyName], [Value] from $system.DISCOVER_PROPERTIES where [PropertyName] = 'Catalog'",
        &[],
    );
    assert_eq!(r.strings("PropertyName"), ["Catalog"]);
    assert_eq!(r.strings("Value"), ["FLIS"]);
    // Nested Restrictions column is written as DISCOVER_SCHEMA_ROWSETS writes it.
    let r = run(
        "select * from $system.DISCOVER_SCHEMA_ROWSETS where [SchemaName] = 'MDSCHEMA_CUBES'",
        &[],
    );
    assert_eq!(r.strings("SchemaName"), ["MDSCHEMA_CUBES"]);
    assert_eq!(r.rows[0].iter().filter(|(n, _)| n == "Restrictions").count(), 6);
}

#[test]
fn captions_follow_the_language() {
    let r = run_lang(
        "select [CUBE_CAPTION] from $system.mdschema_cubes where [CUBE_NAME] = 'Økonomi'",
        &[],
        Lang::En,
    )
    .unwrap();
    assert_eq!(r.strings("CUBE_CAPTION"), ["Finance"]);
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

/// Runs `statement`, expects a fault with `code` whose message contains every one of `parts`.
fn check_fault(statement: &str, params: &[(&str, &str)], code: u32, parts: &[&str]) {
    let f = fault(statement, params);
    assert_eq!(f.code, code, "{statement}: {}", f.message);
    for p in parts {
        assert!(f.message.contains(p), "{statement}\nmessage lacks {p:?}: {}", f.message);
    }
}

#[test]
fn unsupported_rowsets_are_named_with_the_supported_ones() {
    for (statement, name) in [
        ("select * from $system.TMSCHEMA_TABLES", "TMSCHEMA_TABLES"),
        ("select * from $system.DISCOVER_CSDL_METADATA", "DISCOVER_CSDL_METADATA"),
        (
            "select * from $system.discover_object_memory_usage",
            "discover_object_memory_usage",
        ),
    ] {
        check_fault(
            statement,
            &[],
            codes::UNSUPPORTED_ROWSET,
            &[
                name,
                "not supported",
                "column 23",
                "MDSCHEMA_CUBES",
                "DBSCHEMA_CATALOGS",
                "DISCOVER_PROPERTIES",
            ],
        );
    }
}

#[test]
fn unknown_columns_name_the_column_and_position() {
    check_fault(
        "select [CUBE_NAME], [NOPE] from $system.mdschema_cubes",
        &[],
        codes::BAD_RESTRICTION,
        &[
            "line 1, column 21",
            "no column 'NOPE'",
            "MDSCHEMA_CUBES",
            "CUBE_CAPTION",
        ],
    );
    check_fault(
        "select * from $system.mdschema_cubes\nwhere [CUBE_SOURCE] = 1 and [FOO] = 'x'",
        &[],
        codes::BAD_RESTRICTION,
        &["line 2, column 29", "'FOO'"],
    );
    check_fault(
        "select * from $system.mdschema_cubes order by [BAR]",
        &[],
        codes::BAD_RESTRICTION,
        &["column 47", "'BAR'"],
    );
    check_fault(
        "select * from $system.mdschema_cubes order by 30",
        &[],
        codes::BAD_RESTRICTION,
        &["column 47", "ORDER BY 30", "has 19 columns"],
    );
    check_fault(
        "select [CUBE_NAME], [cube_name] from $system.mdschema_cubes",
        &[],
        codes::BAD_RESTRICTION,
        &["column 21", "selected twice"],
    );
    // A restriction that is not a column belongs in SYSTEMRESTRICTSCHEMA.
    check_fault(
        "select * from $system.mdschema_members where [TREE_OP] = 8",
        &[],
        codes::BAD_RESTRICTION,
        &["column 46", "TREE_OP is a restriction", "SYSTEMRESTRICTSCHEMA"],
    );
}

#[test]
fn bad_values_and_parameters() {
    check_fault(
        "select * from $system.mdschema_cubes where [CUBE_SOURCE] = 'one'",
        &[],
        codes::BAD_RESTRICTION,
        &["column 60", "CUBE_SOURCE holds numbers", "'one'"],
    );
    check_fault(
        "select * from $system.mdschema_measures where [CUBE_NAME] = @CubeName",
        &[("Other", "x")],
        codes::BAD_RESTRICTION,
        &["column 61", "@CubeName has no value", "Other"],
    );
    check_fault(
        "select * from $system.mdschema_measures where [CUBE_NAME]",
        &[],
        codes::BAD_RESTRICTION,
        &["column 47", "CUBE_NAME is not a true/false column"],
    );
    check_fault(
        "select * from $system.mdschema_measures where [MEASURE_IS_VISIBLE] = 'maybe'",
        &[],
        codes::BAD_RESTRICTION,
        &["column 70", "true or false"],
    );
    check_fault(
        "select * from $system.mdschema_measures where [CUBE_NAME] = NULL",
        &[],
        codes::BAD_RESTRICTION,
        &["column 61", "IS NULL"],
    );
    check_fault(
        "select * from $system.mdschema_measures where [CUBE_NAME] = [MEASURE_NAME]",
        &[],
        codes::BAD_RESTRICTION,
        &["column 59", "two columns"],
    );
}

#[test]
fn syntax_errors_name_the_problem_and_position() {
    let cases: &[(&str, &[&str])] = &[
        (
            "select [CUBE_NAME] $system.mdschema_cubes",
            &["column 20", "expected FROM", "'$system'"],
        ),
        (
            "select from $system.mdschema_cubes",
            &["column 8", "expected * or a column name", "'from'"],
        ),
        (
            "select * from mdschema_cubes",
            &["column 15", "expected $SYSTEM.<rowset>"],
        ),
        ("select * from $system.", &["column 23", "the end of the statement"]),
        (
            "select * from $system.mdschema_cubes where [CUBE_NAME] = 'x",
            &["column 58", "unterminated 'text'"],
        ),
        (
            "select * from $system.mdschema_cubes where [CUBE_NAME",
            &["column 44", "unterminated [name]"],
        ),
        (
            "select * from $system.mdschema_cubes where [CUBE_NAME] like 'x%'",
            &["column 56", "LIKE is not supported"],
        ),
        (
            "select * from $system.mdschema_cubes where [CUBE_NAME] in ('a', 'b')",
            &["column 56", "IN is not supported"],
        ),
        (
            "select * from $system.mdschema_cubes where [CUBE_NAME] = 'a' and",
            &["column 65", "expected a column or a value", "the end of the statement"],
        ),
        (
            "select * from $system.mdschema_cubes where ([CUBE_NAME] = 'a'",
            &["column 62", "expected ')'"],
        ),
        (
            "select * from $system.mdschema_cubes where = 'a'",
            &["column 44", "expected a column or a value"],
        ),
        (
            "select * from $system.mdschema_cubes where 'a' 'b'",
            &["column 48", "expected a comparison"],
        ),
        (
            "select * from $system.mdschema_cubes where UPPER([CUBE_NAME]) = 'A'",
            &["column 44", "UPPER( ) is not supported"],
        ),
        (
            "select * from $system.mdschema_cubes group by [CUBE_NAME]",
            &["column 38", "GROUP is not supported"],
        ),
        (
            "select * from $system.mdschema_cubes order [CUBE_NAME]",
            &["column 44", "expected BY"],
        ),
        (
            "select * from $system.mdschema_cubes extra",
            &["column 38", "expected WHERE, ORDER BY or the end"],
        ),
        (
            "select top x * from $system.mdschema_cubes",
            &["column 12", "a whole number after TOP"],
        ),
        (
            "select * from $system.mdschema_cubes /* open",
            &["column 38", "unterminated /* comment"],
        ),
        (
            "select *\n  from $system.mdschema_cubes\n  where [CUBE_SOURCE] = = 1",
            &["line 3, column 25", "expected a column or a value"],
        ),
    ];
    for (statement, parts) in cases {
        check_fault(statement, &[], codes::MDX_SYNTAX, parts);
    }
}

#[test]
fn comments_and_semicolon_are_accepted() {
    let r = run(
        "-- which cubes\nselect [CUBE_NAME] // the name\nfrom $system.mdschema_cubes /* all */ where [CUBE_NAME] = 'Økonomi';",
        &[],
    );
    assert_eq!(r.strings("CUBE_NAME"), ["Økonomi"]);
}

// ---------------------------------------------------------------------------------------
// Through the service: Execute with <Parameters> gives an ExecuteResponse rowset
// ---------------------------------------------------------------------------------------

/// Stands in for the MDX engine: a DMV must never reach it.
struct NotMdx;
impl crate::service::Executor for NotMdx {
    fn execute(&self, req: &crate::service::ExecuteRequest) -> Result<crate::service::ExecuteResult, Fault> {
        let statement = req.statement;
        Err(Fault::new(
            codes::MDX_UNSUPPORTED,
            format!("sent to the MDX engine: {statement}"),
        ))
    }
}

#[test]
fn execute_request_with_a_dmv_statement() {
    use crate::service::{Runtime, XmlaService};
    let principal = datakube_auth::Principal {
        subject: "dev".into(),
        display_name: "Developer".into(),
        scope: datakube_auth::RowScope::All,
        roles: Vec::new(),
        method: datakube_auth::AuthMethod::Development,
        ..Default::default()
    };
    let svc = XmlaService::new(
        Runtime {
            catalog: catalog().clone(),
            members: MemberStore::default(),
            snapshots: datakube_engine::storage::Snapshots::empty(std::path::Path::new(".")),
            schema_updated: "2024-01-01T00:00:00".into(),
            data_updated: "2024-01-01T00:00:00".into(),
            data_version: String::new(),
        },
        ServerProps::default(),
        Box::new(NotMdx),
    );
    let body = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<Execute xmlns="urn:schemas-microsoft-com:xml-analysis"><Command><Statement>select [MEASURE_UNIQUE_NAME] from $system.mdschema_measures where [CUBE_NAME] = @CubeName and [MEASURE_IS_VISIBLE]</Statement></Command>
<Properties><PropertyList><Catalog>FLIS</Catalog></PropertyList></Properties>
<Parameters><Parameter><Name>CubeName</Name><Value>Økonomi</Value></Parameter></Parameters></Execute></soap:Body></soap:Envelope>"#;
    let out = svc.handle_soap(body.as_bytes(), &principal);
    assert!(out.contains("<ExecuteResponse"), "{out}");
    let start = out.find("<root").unwrap();
    let end = out.find("</root>").unwrap() + "</root>".len();
    let r = parse_rowset(&out[start..end]);
    assert_eq!(
        r.strings("MEASURE_UNIQUE_NAME"),
        yaml_measures("okonomi.yaml")
            .iter()
            .map(|m| format!("[Measures].[{}]", m.0))
            .collect::<Vec<_>>()
    );

    // A bad DMV is a SOAP fault, not an MDX error.
    let bad = body.replace("[MEASURE_IS_VISIBLE]</Statement>", "[NOPE]</Statement>");
    let out = svc.handle_soap(bad.as_bytes(), &principal);
    assert!(
        out.contains("Fault") && out.contains("no column &apos;NOPE&apos;"),
        "{out}"
    );

    // MDX still goes to the engine.
    let mdx = body.replace(
        "select [MEASURE_UNIQUE_NAME] from $system.mdschema_measures where [CUBE_NAME] = @CubeName and [MEASURE_IS_VISIBLE]",
        "SELECT {[Measures].[Budget]} ON 0 FROM [Økonomi]",
    );
    let out = svc.handle_soap(mdx.as_bytes(), &principal);
    assert!(out.contains("sent to the MDX engine"), "{out}");
}
