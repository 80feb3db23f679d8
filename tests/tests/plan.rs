//! The logical plan is independent of MDX: a plan built directly from member ids (as a DAX
//! front end will build it) gives the same cells as the equivalent MDX statement, and both
//! equal hand-written SQL over the same Parquet.

mod common;

use std::collections::BTreeMap;

use common::close;
use datakube_query::exec::{Trace, execute_built};
use datakube_query::plan::{LogicalPlan, PlanAxis};
use datakube_query::space::MemberRef;
use datakube_xmla::cellset::{CellProperty, CellValue};

const NORDJYLLAND: i64 = 1081;

#[test]
fn a_plan_built_without_mdx_matches_mdx_and_sql() {
    let data = common::inprocess::generate();
    let members = data.members();
    let ctx = data.context(&members, datakube_query::security::Access::all());
    let year: i64 = data
        .duck()
        .query_row(
            &format!(
                "SELECT max(aar)::BIGINT - 1 FROM {}",
                data.table("oekonomi", "postering")
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();

    // Regnskab of Nordjylland's kommuner in one year, built from names resolved by hand:
    // measure by name, hierarchy by unique name, members by key.
    let mut trace = Trace::default();
    let built = execute_built(
        &ctx,
        "Økonomi",
        |space| {
            let h_of = |unique: &str| {
                (1..space.hierarchy_count())
                    .find(|&h| space.hierarchy_unique_name(h) == unique)
                    .unwrap_or_else(|| panic!("no hierarchy {unique}"))
            };
            let geo = h_of("[Kommune].[Geografi]");
            let tid = h_of("[Tid].[Kalender]");
            let regnskab = space.measures.iter().position(|m| m.name == "Regnskab").unwrap() as u32;
            let region = space
                .hier(geo)
                .by_key(1, &NORDJYLLAND.to_string())
                .expect("region member");
            let kommuner = space.hier(geo).members.get(region).children.clone();
            let aar = space.hier(tid).by_key(1, &year.to_string()).expect("year member");
            let mut base = space.default_coordinate();
            base[0] = regnskab;
            Ok(LogicalPlan {
                cube: "Økonomi".into(),
                axes: vec![PlanAxis {
                    name: "Axis0".into(),
                    hierarchies: vec![geo],
                    tuples: kommuner.iter().map(|&id| vec![MemberRef { h: geo, id }]).collect(),
                    non_empty: false,
                    properties: Vec::new(),
                    source: "built by hand".into(),
                }],
                base,
                restricted: [(tid, vec![aar])].into_iter().collect(),
                cell_properties: CellProperty::DEFAULT.to_vec(),
            })
        },
        &mut trace,
    )
    .unwrap();
    assert!(trace.plan.contains("Axis0"), "{}", trace.plan);
    assert!(
        trace.plan.contains("restricted: [Tid].[Kalender] to 1 member(s)"),
        "{}",
        trace.plan
    );

    // The same question in MDX.
    let mdx = datakube_query::execute(
        &ctx,
        &format!(
            "SELECT [Kommune].[Geografi].[Region].&[{NORDJYLLAND}].Children ON 0 \
             FROM (SELECT [Tid].[Kalender].[År].&[{year}] ON 0 FROM [Økonomi]) WHERE ([Measures].[Regnskab])"
        ),
    )
    .unwrap();

    // And in SQL.
    let sql: BTreeMap<i64, f64> = {
        let c = data.duck();
        let q = format!(
            "SELECT p.kommunekode::BIGINT, sum(p.beloeb)::DOUBLE FROM {} p JOIN {} k ON p.kommunekode = k.kommunekode \
             WHERE k.regionskode = {NORDJYLLAND} AND p.aar = {year} AND p.beloebstype_kode = 'R' GROUP BY 1",
            data.table("oekonomi", "postering"),
            data.table("faelles", "kommune")
        );
        let mut st = c.prepare(&q).unwrap();
        st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(sql.len() >= 5, "Nordjylland's kommuner with ledger rows: {sql:?}");

    let value = |v: &CellValue| match v {
        CellValue::Double(x) => *x,
        CellValue::Int(i) => f64::from(*i),
        CellValue::Long(i) => *i as f64,
        other => panic!("not a number: {other:?}"),
    };
    let names = |cs: &datakube_xmla::cellset::CellSet| -> Vec<String> {
        cs.axes[0].tuples.iter().map(|t| t[0].unique_name.clone()).collect()
    };
    assert_eq!(names(&built), names(&mdx), "same tuples");
    assert_eq!(built.cells.len(), mdx.cells.len());
    for (b, m) in built.cells.iter().zip(&mdx.cells) {
        assert_eq!(b.ordinal, m.ordinal);
        assert!(close(value(&b.value), value(&m.value)));
    }
    for c in &built.cells {
        let un = &names(&built)[c.ordinal as usize];
        let code: i64 = un.rsplit("&[").next().unwrap().trim_end_matches(']').parse().unwrap();
        assert!(
            close(value(&c.value), sql[&code]),
            "{un}: {:?} vs SQL {}",
            c.value,
            sql[&code]
        );
    }
}
