//! Aggregates (issue 6): with the aggregates declared in the cube definitions built, every
//! statement of the benchmark workload gives the same cells as without them, and the same
//! numbers as its hand-written DuckDB SQL over the fact tables; several statements really
//! read an aggregate, the distinct count and the semi-additive stock among them; a distinct
//! count reads its grouping-sets aggregate only at exactly one of its sets, a semi-additive
//! measure only an aggregate that keeps the time key; a missing aggregate folder is simply
//! not used.
//!
//! The service runs in-process (`datakube_bench::Harness`, result cache off). The aggregate
//! switch is process-wide, so everything that toggles it is in one test.

mod common;
use common::copy_dir;

use std::path::{Path, PathBuf};

use datakube_bench::{Answer, Harness, Scope, workload};
use datakube_engine::{Engine, EngineConfig};
use datakube_query::aggregates;

/// The shipped definitions, plus a row-count measure on Beskæftigelse and a plain aggregate
/// holding it at Kommune × Ydelse × Uge-år: the levels of the shipped distinct-count
/// aggregate, whose rows a count may add up and a distinct count may not.
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
    )
    .replacen(
        "  aggregates:\n",
        "  aggregates:\n    - name: kommune_ydelse_aar\n      levels: [\"[Kommune].[Geografi].[Kommune]\", \"[Ydelse].[Ydelse].[Ydelse]\", \"[Tid].[Uge].[År]\"]\n      measures: [Forløbsuger]\n",
        1,
    );
    assert!(
        text.contains("kommune_ydelse_aar"),
        "beskaeftigelse.yaml has no aggregates: list"
    );
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
        "semi-additive",
        "distinct count",
    ] {
        assert_eq!(
            used.iter().filter(|u| u.starts_with(name)).count(),
            2,
            "{name} did not read an aggregate in both scopes: {used:?}"
        );
    }

    // Which source each statement reads. The distinct count by Ydelsesgruppe in 2024 is one
    // of the grouping sets of personer_kommune_ydelse_aar; a count at the same levels adds
    // up the rows of the smaller plain aggregate.
    let src = |mdx: &str| explain(&engine, &data, &catalog, mdx);
    let distinct = "SELECT {[Measures].[Personer]} ON 0, [Ydelse].[Ydelse].[Ydelsesgruppe].Members ON 1 FROM [Beskæftigelse] WHERE ([Tid].[Uge].[År].&[2024])";
    let distinct_agg = vec!["aggregate personer_kommune_ydelse_aar".to_string()];
    assert_eq!(src(distinct), distinct_agg);
    assert_eq!(
        src(&distinct.replace("[Personer]", "[Forløbsuger]")),
        vec!["aggregate kommune_ydelse_aar".to_string()]
    );
    // A subselect of one year is that year's set too.
    assert_eq!(
        src(
            "SELECT {[Measures].[Personer]} ON 0, [Ydelse].[Ydelse].[Ydelsesgruppe].Members ON 1 FROM (SELECT {[Tid].[Uge].[År].&[2024]} ON 0 FROM [Beskæftigelse])"
        ),
        distinct_agg
    );
    // No set is exactly these: two years added up, weeks (finer than the aggregate's
    // years), Køn (not in it). Each reads the fact table, where the persons are counted once.
    for mdx in [
        "SELECT {[Measures].[Personer]} ON 0, [Ydelse].[Ydelse].[Ydelsesgruppe].Members ON 1 FROM (SELECT {[Tid].[Uge].[År].&[2023], [Tid].[Uge].[År].&[2024]} ON 0 FROM [Beskæftigelse])",
        "SELECT {[Measures].[Personer]} ON 0, Head([Tid].[Uge].[Uge].Members, 3) ON 1 FROM [Beskæftigelse]",
        "SELECT {[Measures].[Personer]} ON 0, [Køn].[Køn].[Køn].Members ON 1 FROM [Beskæftigelse] WHERE ([Tid].[Uge].[År].&[2024])",
    ] {
        assert!(src(mdx).iter().all(|s| s == "fact table"), "{mdx}: {:?}", src(mdx));
    }
    // The stock by month reads the aggregate that keeps the month; by Køn, which no
    // aggregate of Befolkning keeps, the fact table.
    let semi = "SELECT {[Measures].[Antal borgere]} ON 0, [Tid].[Kalender].[Måned].Members ON 1 FROM [Befolkning]";
    assert_eq!(src(semi), vec!["aggregate kommune_herkomst_maaned".to_string()]);
    assert!(
        src("SELECT {[Measures].[Antal borgere]} ON 0, [Køn].[Køn].[Køn].Members ON 1 FROM [Befolkning]")
            .iter()
            .all(|s| s == "fact table")
    );

    // Other sets than the workload's, against hand-written SQL: distinct persons by region
    // (the coarser level of Kommune) and by Ydelse (the finest) in 2024, in both scopes, and
    // the stock per quarter (a coarser time level than the aggregate's month).
    let extra = [
        (
            "SELECT {[Measures].[Personer]} ON 0, NON EMPTY [Kommune].[Geografi].[Region].Members ON 1 FROM [Beskæftigelse] WHERE ([Tid].[Uge].[År].&[2024])",
            "SELECT COUNT(DISTINCT f.person_id) FROM {t:beskaeftigelse.ydelse_uge} f JOIN {t:faelles.kommune} k ON f.kommunekode = k.kommunekode WHERE {scope} AND f.aar = 2024 GROUP BY k.regionskode",
        ),
        (
            "SELECT {[Measures].[Personer]} ON 0, NON EMPTY [Ydelse].[Ydelse].[Ydelse].Members ON 1 FROM [Beskæftigelse] WHERE ([Tid].[Uge].[År].&[2024])",
            "SELECT COUNT(DISTINCT f.person_id) FROM {t:beskaeftigelse.ydelse_uge} f WHERE {scope} AND f.aar = 2024 GROUP BY f.ydelse_kode",
        ),
        (
            "SELECT {[Measures].[Antal borgere]} ON 0, NON EMPTY Descendants([Tid].[Kalender].[År].&[2023], [Tid].[Kalender].[Kvartal]) ON 1 FROM [Befolkning]",
            "WITH m AS (SELECT t.kvartal_id AS q, f.maaned_id, SUM(f.antal_borgere) AS v FROM {t:befolkning.bestand} f JOIN {t:faelles.maaned} t ON f.maaned_id = t.maaned_id WHERE {scope} AND f.aar = 2023 GROUP BY 1, 2) SELECT arg_max(v, maaned_id) FROM m GROUP BY q",
        ),
    ];
    for (mdx, sql) in extra {
        let stmt = datakube_bench::workload::Statement {
            name: Box::leak(format!("extra: {mdx}").into_boxed_str()),
            kind: datakube_bench::workload::Kind::Execute,
            mdx: Box::leak(mdx.to_string().into_boxed_str()),
            sql: Some(Box::leak(sql.to_string().into_boxed_str())),
            check: datakube_bench::workload::Check::Values,
        };
        for scope in &scopes {
            let before = aggregates::reads();
            h.check(&stmt, scope)
                .expect("answer equals the SQL's")
                .expect("has SQL");
            assert!(
                aggregates::reads() > before,
                "{mdx} ({}): no aggregate read",
                scope.label
            );
        }
    }

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
