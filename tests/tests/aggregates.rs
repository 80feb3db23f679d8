//! Aggregates (issue 6): with the aggregates declared in the cube definitions built, every
//! statement of the benchmark workload gives the same cells as without them, and the same
//! numbers as its hand-written DuckDB SQL over the fact tables; several statements really
//! read an aggregate; distinct-count and semi-additive measures never do, even where an
//! aggregate covers their levels; a missing aggregate folder is simply not used.
//!
//! The service runs in-process (`datakube_bench::Harness`, result cache off). The aggregate
//! switch is process-wide, so everything that toggles it is in one test.

use std::path::{Path, PathBuf};

use datakube_bench::{Answer, Harness, Scope, workload};
use datakube_engine::{Engine, EngineConfig};
use datakube_query::aggregates;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The shipped definitions, plus (for the negative case) a row-count measure on
/// Beskæftigelse and an aggregate holding it at Kommune × Ydelse × Uge-år: it covers the
/// levels of the distinct-count statement, which must still read the fact table.
fn definitions(dir: &Path) -> PathBuf {
    let defs = dir.join("defs");
    copy_dir(
        &std::path::PathBuf::from(
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../cube-definitions"),
        &defs,
    );
    let p = defs.join("beskaeftigelse.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    let text = text.replacen(
        "  measures:\n",
        "  measures:\n    - name: Forløbsuger\n      caption: {da: Forløbsuger, en: Benefit weeks}\n      aggregator: count\n",
        1,
    ) + "  aggregates:\n    - name: kommune_ydelse_aar\n      levels: [\"[Kommune].[Geografi].[Kommune]\", \"[Ydelse].[Ydelse].[Ydelse]\", \"[Tid].[Uge].[År]\"]\n      measures: [Forløbsuger]\n";
    std::fs::write(&p, text).unwrap();
    defs
}

fn close(a: &Answer, b: &Answer) -> bool {
    a.rows == b.rows
        && a.values.len() == b.values.len()
        && a.values
            .iter()
            .zip(&b.values)
            .all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0))
}

fn explain(engine: &Engine, data_dir: &Path, catalog: &datakube_model::Catalog, mdx: &str) -> Vec<String> {
    let snapshots = datakube_engine::storage::Snapshots::current(data_dir).expect("snapshots");
    let members = datakube_members::MemberStore::load(engine, &snapshots, catalog).expect("members");
    let ctx = datakube_query::exec::QueryContext {
        catalog,
        members: &members,
        engine,
        snapshots: &snapshots,
        lang: datakube_model::Lang::Da,
        lcid: 1030,
        access: datakube_query::security::Access::all(),
        last_data_update: "",
        last_schema_update: "",
        default_cube: None,
        ignore_missing_members: false,
        session_definitions: Vec::new(),
        cancel: None,
    };
    let trace = datakube_query::exec::explain(&ctx, mdx).expect("explain");
    assert!(!trace.statements.is_empty(), "{mdx}: no SQL");
    trace.statements.iter().map(|s| s.source.clone()).collect()
}

#[test]
fn aggregate_answers_equal_fact_table_answers_for_the_whole_workload() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let opts = datakube_datagen::GenerateOptions {
        data_dir: data.clone(),
        seed: datakube_datagen::DEFAULT_SEED,
        scale: 0.002,
        engine: EngineConfig::default(),
        datasets: None,
    };
    datakube_datagen::generate(&opts, &datakube_datagen::progress::NoProgress).expect("generate");
    let defs = definitions(tmp.path());
    let catalog = datakube_model::load_catalog(&defs, None).expect("definitions");
    let engine = Engine::open(&EngineConfig::default()).unwrap();
    let snaps = datakube_engine::storage::Snapshots::current(&data).unwrap();

    // Build every declared aggregate; its row count is what DuckDB counts in its file.
    let mut built = 0;
    for cube in &catalog.cubes {
        for agg in &cube.aggregates {
            let meta = aggregates::build(&engine, &snaps, cube, agg).expect("build");
            let b = aggregates::built(&snaps, cube)
                .into_iter()
                .find(|b| b.meta.name == agg.name)
                .expect("built aggregate found");
            let conn = engine.connection().unwrap();
            let rows: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM read_parquet('{}')", b.parquet().display()),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(meta.rows, rows as u64, "{}", agg.name);
            assert!(rows > 0, "{} is empty", agg.name);
            built += 1;
        }
    }
    assert!(built >= 5, "only {built} aggregates declared");

    let h = Harness::open(&data, &defs, &EngineConfig::default(), 64 << 20).expect("harness");
    h.set_cache(false);
    let scopes = [Scope::admin(751, 1082), Scope::kommune(751, 1082)];
    let mut used = Vec::new();
    let mut compared = 0;
    for scope in &scopes {
        for stmt in workload() {
            if stmt.kind != datakube_bench::workload::Kind::Execute {
                continue;
            }
            aggregates::set_enabled(false);
            let before = aggregates::reads();
            let base = h.run(&stmt, scope).expect("fact table answer");
            assert_eq!(aggregates::reads(), before, "{}: aggregates are off", stmt.name);
            aggregates::set_enabled(true);
            let before = aggregates::reads();
            // Against the hand-written SQL over the fact tables (independent of the engine).
            let with = match h.check(&stmt, scope).expect("aggregate answer equals the SQL's") {
                Some((got, _)) => got,
                None => h.run(&stmt, scope).unwrap(),
            };
            if aggregates::reads() > before {
                used.push(format!("{} ({})", stmt.name, scope.label));
            }
            assert!(
                close(&base, &with),
                "{} ({}): with aggregates {:?}, without {:?}",
                stmt.name,
                scope.label,
                &with.values[..with.values.len().min(8)],
                &base.values[..base.values.len().min(8)]
            );
            compared += 1;
            if stmt.name.starts_with("distinct count") || stmt.name.starts_with("semi-additive") {
                assert!(
                    !used.iter().any(|u| u.starts_with(stmt.name)),
                    "{} read an aggregate",
                    stmt.name
                );
            }
        }
    }
    assert!(compared >= 20, "only {compared} statements compared");
    // Not vacuous: the Økonomi statements and the flows read aggregates in both scopes.
    for name in [
        "first pivot",
        "drill Region",
        "Kommune × Hovedkonto",
        "Konto drill",
        "flows:",
    ] {
        assert_eq!(
            used.iter().filter(|u| u.starts_with(name)).count(),
            2,
            "{name} did not read an aggregate in both scopes: {used:?}"
        );
    }

    // The distinct count reads the fact table although kommune_ydelse_aar covers its levels;
    // a stored count at the same levels reads the aggregate.
    let distinct = "SELECT {[Measures].[Personer]} ON 0, [Ydelse].[Ydelse].[Ydelsesgruppe].Members ON 1 FROM [Beskæftigelse] WHERE ([Tid].[Uge].[År].&[2024])";
    let count = distinct.replace("[Personer]", "[Forløbsuger]");
    assert_eq!(
        explain(&engine, &data, &catalog, distinct),
        vec!["fact table".to_string()]
    );
    assert_eq!(
        explain(&engine, &data, &catalog, &count),
        vec!["aggregate kommune_ydelse_aar".to_string()]
    );
    let semi = "SELECT {[Measures].[Antal borgere]} ON 0, [Tid].[Kalender].[Måned].Members ON 1 FROM [Befolkning]";
    assert!(
        explain(&engine, &data, &catalog, semi)
            .iter()
            .all(|s| s == "fact table")
    );

    // Without its folder an aggregate is not used (once the server's poll has compared the
    // folders it read with the disk), and the answer still agrees with the SQL.
    let first = workload()
        .into_iter()
        .find(|s| s.name.starts_with("first pivot"))
        .unwrap();
    let okonomi = catalog.cubes.iter().find(|c| c.name == "Økonomi").unwrap();
    std::fs::remove_dir_all(aggregates::aggregates_dir(&snaps, okonomi).unwrap()).unwrap();
    aggregates::revalidate();
    assert!(aggregates::built(&snaps, okonomi).is_empty());
    let before = aggregates::reads();
    h.check(&first, &scopes[0]).unwrap().expect("has SQL");
    assert_eq!(aggregates::reads(), before, "a removed aggregate was read");
}
