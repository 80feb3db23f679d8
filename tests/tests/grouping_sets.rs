//! Cell SQL batches level combinations into one statement with `GROUPING SETS`: a pivot with
//! its totals scans the fact table once. The answers are checked against hand-written SQL,
//! and the statements actually run (from `explain`) are asserted on: their number, their
//! grouping sets and the partition filter on the year.

mod common;

use std::collections::BTreeMap;

use common::close;
use datakube_xmla::cellset::{CellSet, CellValue};

const NORDJYLLAND: i64 = 1081;

fn number(v: &CellValue) -> Option<f64> {
    match v {
        CellValue::Double(x) => Some(*x),
        CellValue::Int(i) => Some(f64::from(*i)),
        CellValue::Long(i) => Some(*i as f64),
        other => panic!("not a number: {other:?}"),
    }
}

/// Row member unique name → value, for a cellset with one column.
fn by_row(cs: &CellSet) -> BTreeMap<String, Option<f64>> {
    let names: Vec<String> = cs.axes[1].tuples.iter().map(|t| t[0].unique_name.clone()).collect();
    let mut out: BTreeMap<String, Option<f64>> = names.iter().map(|n| (n.clone(), None)).collect();
    for c in &cs.cells {
        out.insert(names[c.ordinal as usize].clone(), number(&c.value));
    }
    out
}

fn query_pairs(conn: &datakube_engine::duckdb::Connection, sql: &str) -> BTreeMap<String, f64> {
    let mut st = conn.prepare(sql).unwrap();
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_drilled_pivot_with_totals_is_one_statement_with_grouping_sets() {
    // Aggregates would answer this pivot from a smaller table; the fact table is the case
    // where one scan instead of three matters.
    datakube_query::aggregates::set_enabled(false);
    let data = common::inprocess::generate();
    let members = data.members();
    let ctx = data.context(&members, datakube_query::security::Access::all());
    let conn = data.duck();
    let fact = data.table("oekonomi", "postering");
    let kommune = data.table("faelles", "kommune");
    let year: i64 = conn
        .query_row(&format!("SELECT max(aar)::BIGINT - 1 FROM {fact}"), [], |r| r.get(0))
        .unwrap();

    // All, the regions, and Nordjylland's kommuner: three level combinations.
    let mdx = format!(
        "SELECT {{[Measures].[Regnskab]}} ON 0, Hierarchize(DrilldownMember({{DrilldownLevel({{[Kommune].[Geografi].[All]}})}}, \
         {{[Kommune].[Geografi].[Region].&[{NORDJYLLAND}]}})) ON 1 FROM [Økonomi] WHERE ([Tid].[Kalender].[År].&[{year}])"
    );
    let trace = datakube_query::exec::explain(&ctx, &mdx).unwrap();
    assert_eq!(trace.statements.len(), 1, "one statement: {:#?}", trace.statements);
    let st = &trace.statements[0];
    assert_eq!(st.grouping_sets.len(), 3, "{st}");
    assert!(st.sql.contains("GROUPING SETS"), "{st}");
    // The year is read from the fact table's partition column: no join, files pruned.
    assert!(st.sql.contains("f.\"aar\" IN ("), "{st}");

    let got = by_row(&datakube_query::execute(&ctx, &mdx).unwrap());
    let base = format!(
        "FROM {fact} p JOIN {kommune} k ON p.kommunekode = k.kommunekode WHERE p.aar = {year} AND p.beloebstype_kode = 'R'"
    );
    let mut want = query_pairs(
        &conn,
        &format!("SELECT '[Kommune].[Geografi].[All]', sum(p.beloeb)::DOUBLE {base}"),
    );
    want.extend(query_pairs(
        &conn,
        &format!(
            "SELECT '[Kommune].[Geografi].[Region].&[' || k.regionskode || ']', sum(p.beloeb)::DOUBLE {base} GROUP BY k.regionskode"
        ),
    ));
    want.extend(query_pairs(
        &conn,
        &format!(
            "SELECT '[Kommune].[Geografi].[Kommune].&[' || p.kommunekode || ']', sum(p.beloeb)::DOUBLE {base} \
             AND k.regionskode = {NORDJYLLAND} GROUP BY p.kommunekode"
        ),
    ));
    assert!(
        want.len() >= 1 + 5 + 5,
        "All, 5 regions, Nordjylland's kommuner: {want:?}"
    );
    assert_eq!(got.len(), want.len(), "tuples: {got:?} vs SQL {want:?}");
    for (name, v) in &want {
        let g = got.get(name).copied().flatten();
        assert!(g.is_some_and(|g| close(g, *v)), "{name}: {g:?} vs SQL {v}");
    }
}

#[test]
fn a_semi_additive_year_and_its_months_are_one_pruned_statement() {
    let data = common::inprocess::generate();
    let members = data.members();
    let ctx = data.context(&members, datakube_query::security::Access::all());
    let conn = data.duck();
    let fact = data.table("befolkning", "bestand");
    let year: i64 = conn
        .query_row(&format!("SELECT max(aar)::BIGINT - 1 FROM {fact}"), [], |r| r.get(0))
        .unwrap();

    let mdx = format!(
        "SELECT {{[Measures].[Antal borgere]}} ON 0, {{[Tid].[Kalender].[År].&[{year}], \
         Descendants([Tid].[Kalender].[År].&[{year}], [Tid].[Kalender].[Måned])}} ON 1 FROM [Befolkning]"
    );
    let trace = datakube_query::exec::explain(&ctx, &mdx).unwrap();
    assert_eq!(trace.statements.len(), 1, "one statement: {:#?}", trace.statements);
    let st = &trace.statements[0];
    assert_eq!(st.grouping_sets.len(), 2, "{st}");
    // Months alone would read every year's files: the statement filters the partition column.
    assert!(st.sql.contains(&format!("f.\"aar\" IN ({year})")), "{st}");

    let got = by_row(&datakube_query::execute(&ctx, &mdx).unwrap());
    // Per month the sum of the stock; the year is its last month with rows.
    let months = query_pairs(
        &conn,
        &format!(
            "SELECT '[Tid].[Kalender].[Måned].&[' || maaned_id || ']', sum(antal_borgere)::DOUBLE FROM {fact} \
             WHERE aar = {year} GROUP BY maaned_id"
        ),
    );
    assert_eq!(months.len(), 12, "{months:?}");
    let last: f64 = conn
        .query_row(
            &format!(
                "SELECT sum(antal_borgere)::DOUBLE FROM {fact} WHERE maaned_id = (SELECT max(maaned_id) FROM {fact} WHERE aar = {year})"
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    let y = got[&format!("[Tid].[Kalender].[År].&[{year}]")];
    assert!(y.is_some_and(|y| close(y, last)), "year: {y:?} vs SQL {last}");
    for (name, v) in &months {
        let g = got.get(name).copied().flatten();
        assert!(g.is_some_and(|g| close(g, *v)), "{name}: {g:?} vs SQL {v}");
    }
}

#[test]
fn a_distinct_count_total_beside_its_groups_is_counted_only_over_rows() {
    // A grouped statement does not count its rows (`count(*)` beside COUNT(DISTINCT) costs
    // DuckDB a sixth of the statement): the total is empty exactly when no group came back.
    datakube_query::aggregates::set_enabled(false);
    let data = common::inprocess::generate();
    let members = data.members();
    let conn = data.duck();
    let fact = data.table("beskaeftigelse", "ydelse_uge");
    let ydelse = data.table("beskaeftigelse", "ydelse");
    let (year, kommune): (i64, i64) = conn
        .query_row(
            &format!("SELECT max(aar)::BIGINT, min(kommunekode)::BIGINT FROM {fact}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mdx = format!(
        "SELECT {{[Measures].[Personer]}} ON 0, {{DrilldownLevel({{[Ydelse].[Ydelse].[All]}})}} ON 1 \
         FROM [Beskæftigelse] WHERE ([Tid].[Uge].[År].&[{year}])"
    );

    // With rows: the total and every group as COUNT(DISTINCT) in DuckDB.
    let ctx = data.context(&members, datakube_query::security::Access::kommuner(&[kommune]));
    let trace = datakube_query::exec::explain(&ctx, &mdx).unwrap();
    assert_eq!(trace.statements.len(), 1, "{:#?}", trace.statements);
    let st = &trace.statements[0];
    assert_eq!(st.grouping_sets.len(), 2, "{st}");
    assert!(
        !st.sql.contains("count(*)"),
        "a grouped statement needs no row count: {st}"
    );
    let got = by_row(&datakube_query::execute(&ctx, &mdx).unwrap());
    let base = format!(
        "FROM {fact} f JOIN {ydelse} y ON f.ydelse_kode = y.ydelse_kode WHERE f.aar = {year} AND f.kommunekode = {kommune}"
    );
    let mut want = query_pairs(
        &conn,
        &format!("SELECT '[Ydelse].[Ydelse].[All]', count(DISTINCT f.person_id)::DOUBLE {base}"),
    );
    want.extend(query_pairs(
        &conn,
        &format!(
            "SELECT '[Ydelse].[Ydelse].[Ydelsesgruppe].&[' || y.ydelsesgruppe_kode || ']', count(DISTINCT f.person_id)::DOUBLE \
             {base} GROUP BY y.ydelsesgruppe_kode"
        ),
    ));
    assert!(want.len() >= 3, "{want:?}");
    for (name, v) in &want {
        let g = got.get(name).copied().flatten();
        assert!(g.is_some_and(|g| close(g, *v)), "{name}: {g:?} vs SQL {v}");
    }

    // Without rows (a row scope of a kommune the data does not have): every cell empty, the
    // total too, where COUNT(DISTINCT) over no rows is 0.
    let none: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {fact} WHERE kommunekode = 9999"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(none, 0);
    let ctx = data.context(&members, datakube_query::security::Access::kommuner(&[9999]));
    let got = by_row(&datakube_query::execute(&ctx, &mdx).unwrap());
    assert!(got.contains_key("[Ydelse].[Ydelse].[All]"), "{got:?}");
    assert!(got.values().all(Option::is_none), "no rows, no values: {got:?}");

    // The total alone is a statement without grouping columns: there the row count tells
    // an empty total from a count of 0.
    let total =
        format!("SELECT {{[Measures].[Personer]}} ON 0 FROM [Beskæftigelse] WHERE ([Tid].[Uge].[År].&[{year}])");
    let trace = datakube_query::exec::explain(&ctx, &total).unwrap();
    assert!(trace.statements[0].sql.contains("count(*)"), "{}", trace.statements[0]);
    let cs = datakube_query::execute(&ctx, &total).unwrap();
    assert!(cs.cells.is_empty(), "no rows, no value: {:?}", cs.cells);
}
