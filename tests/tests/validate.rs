//! Cube definitions: the shipped `cube-definitions/` load without a single diagnostic, checked
//! against the columns promised in `docs/datasets.md` (the contract with `datakube generate`),
//! and every broken definition under `tests/fixtures/broken/<case>/` produces exactly the
//! diagnostics listed in its `expected.txt`.
//!
//! `expected.txt`: one diagnostic per line, in file/line/column order:
//! `<file>:<line>:<column>: <severity>: <message substring>` optionally followed by
//! ` || <hint substring>`. Lines starting with `#` are comments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datakube_model::{
    Aggregator, Catalog, Diagnostic, DimensionKind, LevelType, MeasureKind, SchemaProvider, SecurityClass, Source,
    load_catalog,
};

fn repo_root() -> PathBuf {
    std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Tables and columns as documented in docs/datasets.md.
struct DatasetsDoc {
    tables: BTreeMap<(String, String), Vec<(String, String)>>,
}

impl DatasetsDoc {
    fn load() -> DatasetsDoc {
        let text = std::fs::read_to_string(repo_root().join("docs/datasets.md")).expect("docs/datasets.md");
        DatasetsDoc {
            tables: parse_datasets_md(&text),
        }
    }
}

/// Reads the `### \`dataset\`` sections and their `| \`table\` | columns |` rows. A column is
/// written `` `name TYPE` ``; a bare `` `name` `` takes its type from a trailing
/// "(all VARCHAR)"/"(VARCHAR)" note in the same cell.
fn parse_datasets_md(text: &str) -> BTreeMap<(String, String), Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    let mut dataset: Option<String> = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            dataset = between(h, '`', '`').map(str::to_string);
            continue;
        }
        let Some(ds) = &dataset else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let Some(table) = between(cells[1], '`', '`').map(str::to_string) else {
            continue;
        };
        let cell = cells[2];
        let shared_type = ["(all VARCHAR)", "(VARCHAR)"]
            .iter()
            .find(|n| cell.contains(*n))
            .map(|_| "VARCHAR");
        let mut columns = Vec::new();
        let mut rest = cell;
        while let Some(start) = rest.find('`') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else { break };
            let item = &after[..end];
            rest = &after[end + 1..];
            let (name, ty) = match item.split_once(' ') {
                Some((n, t)) => (n.to_string(), t.to_string()),
                None => (item.to_string(), shared_type.unwrap_or("UNKNOWN").to_string()),
            };
            if name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                columns.push((name, ty));
            }
        }
        out.insert((ds.clone(), table), columns);
    }
    out
}

fn between(s: &str, open: char, close: char) -> Option<&str> {
    let a = s.find(open)?;
    let b = s[a + 1..].find(close)?;
    Some(&s[a + 1..a + 1 + b])
}

impl SchemaProvider for DatasetsDoc {
    fn columns(&self, source: &Source) -> Result<Vec<(String, String)>, String> {
        match source {
            Source::Dataset { dataset, table } => {
                if !self.tables.keys().any(|(d, _)| d == dataset) {
                    return Err(format!("no dataset '{dataset}'"));
                }
                self.tables
                    .get(&(dataset.clone(), table.clone()))
                    .cloned()
                    .ok_or_else(|| format!("dataset '{dataset}' has no table '{table}'"))
            }
            Source::Path { glob } => Err(format!("no Parquet files match {glob}")),
        }
    }

    fn known_sources(&self) -> Vec<Source> {
        self.tables
            .keys()
            .map(|(d, t)| Source::Dataset {
                dataset: d.clone(),
                table: t.clone(),
            })
            .collect()
    }
}

fn load_shipped(provider: Option<&dyn SchemaProvider>) -> Catalog {
    match load_catalog(&repo_root().join("cube-definitions"), provider) {
        Ok(c) => c,
        Err(diags) => panic!("cube-definitions has problems:\n{}", render(&diags)),
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

#[test]
fn datasets_contract_is_parsed() {
    let doc = DatasetsDoc::load();
    let konto = &doc.tables[&("oekonomi".to_string(), "konto".to_string())];
    assert!(
        konto.contains(&("funktion_kode".to_string(), "VARCHAR".to_string())),
        "{konto:?}"
    );
    assert!(
        konto.contains(&("funktion_sort".to_string(), "INTEGER".to_string())),
        "{konto:?}"
    );
    let postering = &doc.tables[&("oekonomi".to_string(), "postering".to_string())];
    assert!(
        postering.contains(&("beloeb".to_string(), "DECIMAL(18,2)".to_string())),
        "{postering:?}"
    );
    assert_eq!(doc.tables.len(), 27, "{:?}", doc.tables.keys().collect::<Vec<_>>());
}

#[test]
fn shipped_definitions_load_without_diagnostics() {
    let doc = DatasetsDoc::load();
    let catalog = load_shipped(Some(&doc));
    assert!(catalog.warnings.is_empty(), "warnings:\n{}", render(&catalog.warnings));

    let names: Vec<&str> = catalog.cubes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Befolkning",
            "Benchmark",
            "Beskæftigelse",
            "Økonomi",
            "Personale",
            "Skole"
        ]
    );
    assert_eq!(catalog.name, "FLIS");

    // Shared dimensions resolved into the cubes, with the canonical unique names.
    let bef = catalog.cube("befolkning").unwrap();
    let kommune = bef.level("Kommune", "Geografi", "Kommune").unwrap();
    assert_eq!(kommune.unique_name, "[Kommune].[Geografi].[Kommune]");
    assert_eq!(kommune.key_column, "kommunekode");
    assert_eq!(kommune.key_type.as_deref(), Some("INTEGER"));
    assert!(kommune.property("cvr").is_some() && kommune.property("Indbyggere").is_some());
    assert_eq!(
        bef.dimension("Kommune").unwrap().foreign_key.as_deref(),
        Some("kommunekode")
    );
    let tid = bef.dimension("Tid").unwrap();
    assert_eq!(tid.kind, DimensionKind::Time);
    assert_eq!(tid.hierarchies.len(), 1, "Befolkning uses only [Tid].[Kalender]");
    let levels: Vec<(&str, LevelType)> = tid
        .default_hierarchy()
        .levels
        .iter()
        .map(|l| (l.name.as_str(), l.level_type))
        .collect();
    assert_eq!(
        levels,
        [
            ("År", LevelType::Years),
            ("Kvartal", LevelType::Quarters),
            ("Måned", LevelType::Months)
        ]
    );
    assert_eq!(tid.default_hierarchy().all_member.unique_name, "[Tid].[Kalender].[All]");
    let antal = bef.measure("Antal borgere").unwrap();
    assert_eq!(antal.unique_name, "[Measures].[Antal borgere]");
    assert_eq!(antal.caption.en, "Number of residents");
    match &antal.kind {
        MeasureKind::Stored(s) => {
            assert_eq!(s.aggregator, Aggregator::LastNonEmpty);
            assert_eq!(s.time_dimension.as_deref(), Some("Tid"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(bef.drillthrough.as_ref().unwrap().columns[0], "person_id");

    let besk = catalog.cube("Beskæftigelse").unwrap();
    assert_eq!(
        besk.dimension("Tid").unwrap().default_hierarchy().unique_name,
        "[Tid].[Uge]"
    );
    assert_eq!(besk.dimension("Tid").unwrap().default_hierarchy().primary_key, "uge_id");

    let oek = catalog.cube("Økonomi").unwrap();
    match &oek.measure("Forbrugsprocent").unwrap().kind {
        MeasureKind::Calculated(c) => assert_eq!(c.references, ["Budget", "Regnskab"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        oek.measure("Forbrugsprocent").unwrap().format_string.as_deref(),
        Some("0.0%")
    );
    match &oek.measure("Regnskab").unwrap().kind {
        MeasureKind::Stored(s) => assert_eq!(s.filter.as_ref().unwrap().column, "beloebstype_kode"),
        other => panic!("{other:?}"),
    }
    let funktion = oek.hierarchy("Konto", "Funktion").unwrap();
    let names: Vec<&str> = funktion.levels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["Hovedkonto", "Hovedfunktion", "Funktion"]);

    let pers = catalog.cube("Personale").unwrap();
    let org = pers.hierarchy("Organisation", "Organisation").unwrap();
    assert_eq!(org.parent_column.as_deref(), Some("overordnet_id"));

    let bench = catalog.cube("Benchmark").unwrap();
    assert_eq!(bench.security.class, SecurityClass::Benchmark { min_cell_count: 5 });
    assert!(bench.drillthrough.is_none());
    for m in bench.measures.iter().filter(|m| m.visible) {
        assert!(m.disclosure_count.is_some(), "{}", m.name);
    }
    for c in &catalog.cubes {
        assert_eq!(
            c.security.row_scope_column.as_deref(),
            Some("kommunekode"),
            "{}",
            c.name
        );
        for m in &c.measures {
            assert!(!m.caption.da.is_empty() && !m.caption.en.is_empty());
        }
    }
}

#[test]
fn shipped_definitions_load_without_schema_provider() {
    let catalog = load_shipped(None);
    assert_eq!(catalog.cubes.len(), 6);
    assert!(catalog.warnings.is_empty(), "{}", render(&catalog.warnings));
    // Without a provider column types are unknown, everything else is the same.
    let k = catalog
        .cube("Befolkning")
        .unwrap()
        .level("Kommune", "Geografi", "Kommune")
        .unwrap();
    assert_eq!(k.key_type, None);
}

#[test]
fn a_file_argument_loads_its_catalog_folder() {
    let doc = DatasetsDoc::load();
    let catalog = load_catalog(&repo_root().join("cube-definitions/okonomi.yaml"), Some(&doc)).unwrap();
    assert_eq!(catalog.cubes.len(), 6);
}

struct Expected {
    file: String,
    line: usize,
    column: usize,
    severity: String,
    message: String,
    hint: Option<String>,
}

fn parse_expected(text: &str) -> Vec<Expected> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (main, hint) = match line.split_once(" || ") {
            Some((m, h)) => (m, Some(h.to_string())),
            None => (line, None),
        };
        let mut parts = main.splitn(5, ':');
        let mut next = || {
            parts
                .next()
                .unwrap_or_else(|| panic!("bad expected line: {line}"))
                .trim()
                .to_string()
        };
        let file = next();
        let line_no = next().parse().unwrap_or_else(|_| panic!("bad line number: {line}"));
        let column = next().parse().unwrap_or_else(|_| panic!("bad column: {line}"));
        let severity = next();
        let message = next();
        out.push(Expected {
            file,
            line: line_no,
            column,
            severity,
            message,
            hint,
        });
    }
    out
}

#[test]
fn broken_definitions_report_exact_positions() {
    let doc = DatasetsDoc::load();
    let dir = repo_root().join("tests/fixtures/broken");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "only {} broken cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(msg) = check_case(case, &doc) {
            failures.push(format!("{}:\n{msg}", case.file_name().unwrap().to_string_lossy()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn check_case(case: &Path, doc: &DatasetsDoc) -> Result<(), String> {
    let expected_text = std::fs::read_to_string(case.join("expected.txt")).map_err(|e| format!("expected.txt: {e}"))?;
    let expected = parse_expected(&expected_text);
    let diags = match load_catalog(case, Some(doc)) {
        Ok(c) => c.warnings,
        Err(d) => d,
    };
    let got = render(&diags);
    if diags.len() != expected.len() {
        return Err(format!(
            "expected {} diagnostics, got {}:\n{got}",
            expected.len(),
            diags.len()
        ));
    }
    for (e, d) in expected.iter().zip(&diags) {
        let file = d
            .file
            .strip_prefix(case)
            .unwrap_or(&d.file)
            .to_string_lossy()
            .replace('\\', "/");
        let hint_ok = match &e.hint {
            Some(h) => d.hint.as_deref().is_some_and(|dh| dh.contains(h.as_str())),
            None => true,
        };
        if file != e.file
            || d.line != e.line
            || d.column != e.column
            || d.severity.to_string() != e.severity
            || !d.message.contains(&e.message)
            || !hint_ok
        {
            return Err(format!(
                "expected {}:{}:{}: {}: …{}…{}\ngot:\n{got}",
                e.file,
                e.line,
                e.column,
                e.severity,
                e.message,
                e.hint.as_ref().map(|h| format!(" || …{h}…")).unwrap_or_default()
            ));
        }
    }
    Ok(())
}
