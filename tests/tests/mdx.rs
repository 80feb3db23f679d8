//! End-to-end MDX over XMLA: the Excel pivot shapes against the real server, every expected
//! number computed by hand-written SQL in DuckDB over the same Parquet files.

mod common;

use std::sync::OnceLock;

use common::{Server, close};

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(Server::start)
}

fn sql_f64(s: &Server, sql: &str) -> f64 {
    s.duck()
        .query_row(sql, [], |r| r.get::<_, f64>(0))
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
}

fn sql_rows(s: &Server, sql: &str) -> Vec<(String, f64)> {
    let c = s.duck();
    let mut st = c.prepare(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn grand_total_without_axes() {
    let s = server();
    let a = s.mdx("SELECT  FROM [Økonomi] WHERE ([Measures].[Regnskab]) CELL PROPERTIES VALUE, FORMAT_STRING, BACK_COLOR, FORE_COLOR", 1033).ok();
    let expected = sql_f64(
        s,
        &format!(
            "SELECT sum(beloeb)::DOUBLE FROM {} WHERE beloebstype_kode = 'R'",
            s.table("oekonomi", "postering")
        ),
    );
    assert_eq!(a.cells.len(), 1);
    let (v, ty, _) = &a.cells[&0];
    assert_eq!(ty, "xsd:double");
    assert!(close(v.parse().unwrap(), expected), "{v} vs {expected}");
}

#[test]
fn regions_drilldown_matches_sql_with_danish_captions() {
    let s = server();
    let a = s
        .mdx(
            "SELECT NON EMPTY Hierarchize({DrilldownLevel({[Kommune].[Geografi].[All]},,,INCLUDE_CALC_MEMBERS)}) \
             DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON COLUMNS FROM [Økonomi] \
             WHERE ([Measures].[Regnskab]) CELL PROPERTIES VALUE, FORMAT_STRING, FORMATTED_VALUE",
            1030,
        )
        .ok();
    let expected = sql_rows(
        s,
        &format!(
            "SELECT k.region_navn, sum(p.beloeb)::DOUBLE FROM {} p JOIN {} k USING (kommunekode) \
             WHERE p.beloebstype_kode = 'R' GROUP BY k.regionskode, k.region_navn ORDER BY k.regionskode",
            s.table("oekonomi", "postering"),
            s.table("faelles", "kommune")
        ),
    );
    assert_eq!(expected.len(), 5);
    let axis = &a.axes[0];
    assert_eq!(axis.len(), 6, "All + 5 regions");
    assert_eq!(axis[0][0].0, "[Kommune].[Geografi].[All]");
    let total: f64 = expected.iter().map(|r| r.1).sum();
    assert!(close(a.value(0).unwrap(), total));
    for (i, (name, v)) in expected.iter().enumerate() {
        assert_eq!(&axis[i + 1][0].1, name, "Danish region caption");
        assert!(
            close(a.value(i as u64 + 1).unwrap(), *v),
            "{name}: {:?} vs {v}",
            a.value(i as u64 + 1)
        );
    }
    // Danish number format: '.' groups thousands.
    let fmt = a.cells[&0].2.as_deref().unwrap();
    assert!(fmt.ends_with(" kr.") && fmt.contains('.'), "{fmt}");
}

#[test]
fn english_captions_follow_locale() {
    let s = server();
    let a = s
        .mdx("SELECT [Kommune].[Geografi].[Region].Members ON 0 FROM [Økonomi]", 1033)
        .ok();
    let expected: Vec<String> = {
        let c = s.duck();
        let mut st = c
            .prepare(&format!(
                "SELECT DISTINCT regionskode, region_navn_en FROM {} ORDER BY 1",
                s.table("faelles", "kommune")
            ))
            .unwrap();
        st.query_map([], |r| r.get::<_, String>(1))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let got: Vec<String> = a.axes[0].iter().map(|t| t[0].1.clone()).collect();
    assert_eq!(got, expected);
}

#[test]
fn last_non_empty_population_by_year() {
    let s = server();
    let a = s
        .mdx(
            "SELECT NON EMPTY Hierarchize(DrilldownMember({{DrilldownLevel({[Tid].[Kalender].[All]},,,INCLUDE_CALC_MEMBERS)}}, \
             {[Tid].[Kalender].[År].&[2021]},,,INCLUDE_CALC_MEMBERS)) DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON COLUMNS \
             FROM [Befolkning] WHERE ([Measures].[Antal borgere])",
            1033,
        )
        .ok();
    let axis = &a.axes[0];
    let names: Vec<&str> = axis.iter().map(|t| t[0].0.as_str()).collect();
    let y2021 = names
        .iter()
        .position(|n| *n == "[Tid].[Kalender].[År].&[2021]")
        .expect("2021 on the axis");
    assert!(
        names[y2021 + 1].starts_with("[Tid].[Kalender].[Kvartal]"),
        "2021 is drilled: {names:?}"
    );
    // The year's value is the population at its last month with data.
    let expected = sql_f64(
        s,
        &format!(
            "WITH m AS (SELECT maaned_id, sum(antal_borgere) v FROM {} WHERE aar = 2021 GROUP BY maaned_id) \
             SELECT v::DOUBLE FROM m ORDER BY maaned_id DESC LIMIT 1",
            s.table("befolkning", "bestand")
        ),
    );
    assert_eq!(a.value(y2021 as u64), Some(expected));
    // The All member is the last month overall.
    let last = sql_f64(
        s,
        &format!(
            "WITH m AS (SELECT maaned_id, sum(antal_borgere) v FROM {} GROUP BY maaned_id) SELECT v::DOUBLE FROM m ORDER BY maaned_id DESC LIMIT 1",
            s.table("befolkning", "bestand")
        ),
    );
    assert_eq!(a.value(0), Some(last));
    assert_eq!(a.cells[&0].1, "xsd:double");
}

#[test]
fn subselect_crossjoin_and_calculated_measures() {
    let s = server();
    let a = s
        .mdx(
            "SELECT {[Measures].[Regnskab],[Measures].[Budget],[Measures].[Afvigelse]} ON 0, \
             NON EMPTY CrossJoin({[Kommune].[Geografi].[Kommune].Members}, {[Konto].[Funktion].[Hovedkonto].Members}) ON 1 \
             FROM (SELECT ({[Kommune].[Geografi].[Kommune].&[751], [Kommune].[Geografi].[Kommune].&[825]}) ON COLUMNS FROM [Økonomi])",
            1033,
        )
        .ok();
    let rows = &a.axes[1];
    let kommuner: std::collections::BTreeSet<&str> = rows.iter().map(|t| t[0].0.as_str()).collect();
    assert_eq!(
        kommuner.into_iter().collect::<Vec<_>>(),
        vec![
            "[Kommune].[Geografi].[Kommune].&[751]",
            "[Kommune].[Geografi].[Kommune].&[825]"
        ],
        "the subselect keeps only Aarhus and Læsø"
    );
    let c = s.duck();
    let sql = format!(
        "SELECT sum(beloeb) FILTER (WHERE beloebstype_kode = 'R')::DOUBLE, sum(beloeb) FILTER (WHERE beloebstype_kode = 'B')::DOUBLE \
         FROM {} p JOIN {} k USING (funktion_kode) WHERE p.kommunekode = ? AND k.hovedkonto_kode = ?",
        s.table("oekonomi", "postering"),
        s.table("oekonomi", "konto")
    );
    for (i, t) in rows.iter().enumerate() {
        let kommune: i64 = t[0]
            .0
            .rsplit("&[")
            .next()
            .unwrap()
            .trim_end_matches(']')
            .parse()
            .unwrap();
        let hk = t[1].0.rsplit("&[").next().unwrap().trim_end_matches(']').to_string();
        let (r, b): (Option<f64>, Option<f64>) = c
            .query_row(&sql, datakube_engine::duckdb::params![kommune, hk], |x| {
                Ok((x.get(0)?, x.get(1)?))
            })
            .unwrap();
        let base = i as u64 * 3;
        assert_eq!(a.value(base).is_some(), r.is_some());
        if let Some(r) = r {
            assert!(close(a.value(base).unwrap(), r), "Regnskab {kommune}/{hk}");
        }
        if let Some(b) = b {
            assert!(close(a.value(base + 1).unwrap(), b), "Budget {kommune}/{hk}");
        }
        let afv = r.unwrap_or(0.0) - b.unwrap_or(0.0);
        assert!(close(a.value(base + 2).unwrap_or(0.0), afv), "Afvigelse {kommune}/{hk}");
    }
}

#[test]
fn distinct_count_by_ydelsesgruppe() {
    let s = server();
    let a = s
        .mdx(
            "SELECT [Measures].[Personer] ON 0, [Ydelse].[Ydelse].[Ydelsesgruppe].Members ON 1 FROM [Beskæftigelse]",
            1030,
        )
        .ok();
    let expected = sql_rows(
        s,
        &format!(
            "SELECT y.ydelsesgruppe_navn, count(DISTINCT f.person_id)::DOUBLE FROM {} f JOIN {} y USING (ydelse_kode) \
             GROUP BY y.ydelsesgruppe_kode, y.ydelsesgruppe_navn ORDER BY y.ydelsesgruppe_kode",
            s.table("beskaeftigelse", "ydelse_uge"),
            s.table("beskaeftigelse", "ydelse")
        ),
    );
    let got: Vec<(String, f64)> = a.axes[1]
        .iter()
        .enumerate()
        .filter_map(|(i, t)| a.value(i as u64).map(|v| (t[0].1.clone(), v)))
        .collect();
    assert_eq!(got, expected);
    assert!(a.cells.values().all(|c| c.1 == "xsd:int"), "counts are xsd:int");
}

#[test]
fn errors_are_faults_that_name_the_problem() {
    let s = server();
    let f = s
        .mdx("SELECT {[Measures].[Regnskab] ON 0 FROM [Økonomi]", 1033)
        .fault
        .expect("syntax error");
    assert!(f.1.contains("line 1, column"), "{f:?}");
    assert!(f.0.parse::<u32>().is_ok(), "numeric ErrorCode: {f:?}");
    let f = s.mdx("SELECT FROM [Nope]", 1033).fault.expect("unknown cube");
    assert!(f.1.contains("[Nope]") && f.1.contains("[Økonomi]"), "{f:?}");
    let f = s
        .mdx("SELECT [Kommune].[Geografi].[Kommune].&[999] ON 0 FROM [Økonomi]", 1033)
        .fault
        .expect("unknown member");
    assert!(f.1.contains("&[999]") && f.1.contains("line 1, column 8"), "{f:?}");
    let f = s
        .mdx("SELECT [Measures].[Regnskabb] ON 0 FROM [Økonomi]", 1033)
        .fault
        .expect("unknown measure");
    assert!(f.1.contains("[Regnskabb]") && f.1.contains("[Regnskab]"), "{f:?}");
    let f = s
        .mdx(
            "SELECT Frobnicate([Kommune].[Geografi].Members) ON 0 FROM [Økonomi]",
            1033,
        )
        .fault
        .expect("unknown function");
    assert!(f.1.contains("Frobnicate"), "{f:?}");
}

/// Population per kommune at the last month with data (the Antal borgere of the All time member).
fn population_by_kommune(s: &Server) -> Vec<(i64, String, i64, f64)> {
    let c = s.duck();
    let sql = format!(
        "WITH last AS (SELECT max(maaned_id) m FROM {b}) \
         SELECT k.kommunekode, k.kommune_navn, k.regionskode, sum(b.antal_borgere)::DOUBLE \
         FROM {b} b JOIN {k} k USING (kommunekode), last WHERE b.maaned_id = last.m \
         GROUP BY ALL ORDER BY k.kommunekode",
        b = s.table("befolkning", "bestand"),
        k = s.table("faelles", "kommune")
    );
    let mut st = c.prepare(&sql).unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn key_of(unique_name: &str) -> i64 {
    unique_name
        .rsplit("&[")
        .next()
        .unwrap()
        .trim_end_matches(']')
        .parse()
        .unwrap()
}

#[test]
fn population_by_region_then_drill_to_kommune() {
    let s = server();
    let pop = population_by_kommune(s);
    let a = s
        .mdx(
            "SELECT NON EMPTY Hierarchize(DrilldownMember({{DrilldownLevel({[Kommune].[Geografi].[All]},,,INCLUDE_CALC_MEMBERS)}}, \
             {[Kommune].[Geografi].[Region].&[1082]},,,INCLUDE_CALC_MEMBERS)) DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON COLUMNS \
             FROM [Befolkning] WHERE ([Measures].[Antal borgere]) CELL PROPERTIES VALUE, FORMAT_STRING",
            1030,
        )
        .ok();
    let axis = &a.axes[0];
    let mut checked = 0;
    for (i, t) in axis.iter().enumerate() {
        let u = &t[0].0;
        let expected: f64 = if u.contains("[Region].&[") {
            let r = key_of(u);
            pop.iter().filter(|p| p.2 == r).map(|p| p.3).sum()
        } else if u.contains("[Kommune].&[") {
            let k = key_of(u);
            assert_eq!(
                pop.iter().find(|p| p.0 == k).unwrap().2,
                1082,
                "only Midtjylland is drilled"
            );
            pop.iter().find(|p| p.0 == k).unwrap().3
        } else {
            pop.iter().map(|p| p.3).sum()
        };
        assert_eq!(a.value(i as u64), Some(expected), "{u}");
        checked += 1;
    }
    let midt = pop.iter().filter(|p| p.2 == 1082).count();
    assert_eq!(checked, 1 + 5 + midt, "All, 5 regions and the kommuner of Midtjylland");
}

#[test]
fn crossjoin_with_koen() {
    let s = server();
    let a = s
        .mdx(
            "SELECT NON EMPTY CrossJoin(Hierarchize({DrilldownLevel({[Kommune].[Geografi].[All]},,,INCLUDE_CALC_MEMBERS)}), \
             Hierarchize({DrilldownLevel({[Køn].[Køn].[All]},,,INCLUDE_CALC_MEMBERS)})) ON COLUMNS FROM [Befolkning] WHERE ([Measures].[Antal borgere])",
            1033,
        )
        .ok();
    let c = s.duck();
    let sql = format!(
        "SELECT sum(b.antal_borgere)::DOUBLE FROM {b} b JOIN {k} k USING (kommunekode) \
         WHERE b.maaned_id = (SELECT max(maaned_id) FROM {b}) AND (k.regionskode = ? OR ? IS NULL) AND (b.koen_kode = ? OR ? IS NULL)",
        b = s.table("befolkning", "bestand"),
        k = s.table("faelles", "kommune")
    );
    assert_eq!(a.axes[0].len(), 6 * 3, "(All + 5 regions) × (All + 2)");
    for (i, t) in a.axes[0].iter().enumerate() {
        let region: Option<i64> = t[0].0.contains("&[").then(|| key_of(&t[0].0));
        let koen: Option<String> = t[1]
            .0
            .contains("&[")
            .then(|| t[1].0.rsplit("&[").next().unwrap().trim_end_matches(']').to_string());
        let v: f64 = c
            .query_row(
                &sql,
                datakube_engine::duckdb::params![region, region, koen, koen],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(a.value(i as u64), Some(v), "{:?}", t);
    }
}

#[test]
fn label_filter_and_top_10_in_subselects() {
    let s = server();
    let pop = population_by_kommune(s);
    // Label filter: kommuner whose name begins with "H".
    let a = s
        .mdx(
            "SELECT NON EMPTY Hierarchize({[Kommune].[Geografi].[Kommune].Members}) ON COLUMNS \
             FROM (SELECT Filter([Kommune].[Geografi].[Kommune].Members, Left([Kommune].[Geografi].CurrentMember.Member_Caption, 1) = \"H\") ON COLUMNS FROM [Befolkning]) \
             WHERE ([Measures].[Antal borgere])",
            1030,
        )
        .ok();
    // Hierarchy order: by region, then kommune (both by key).
    let mut expected: Vec<&(i64, String, i64, f64)> = pop.iter().filter(|p| p.1.starts_with('H')).collect();
    expected.sort_by_key(|p| (p.2, p.0));
    let got: Vec<i64> = a.axes[0].iter().map(|t| key_of(&t[0].0)).collect();
    assert_eq!(got, expected.iter().map(|p| p.0).collect::<Vec<_>>());
    for (i, p) in expected.iter().enumerate() {
        assert_eq!(a.value(i as u64), Some(p.3), "{}", p.1);
    }
    // Top 10 kommuner by population, and the visual total of the All member.
    let a = s
        .mdx(
            "SELECT NON EMPTY Hierarchize({DrilldownLevel({[Kommune].[Geografi].[All]},,,INCLUDE_CALC_MEMBERS)}) ON COLUMNS \
             FROM (SELECT TopCount([Kommune].[Geografi].[Kommune].Members, 10, [Measures].[Antal borgere]) ON COLUMNS FROM [Befolkning]) \
             WHERE ([Measures].[Antal borgere])",
            1030,
        )
        .ok();
    let mut sorted = pop.clone();
    sorted.sort_by(|a, b| b.3.partial_cmp(&a.3).unwrap());
    let top: Vec<_> = sorted.into_iter().take(10).collect();
    let total: f64 = top.iter().map(|p| p.3).sum();
    assert_eq!(
        a.value(0),
        Some(total),
        "the All member shows the total of the 10 (visual totals)"
    );
    let regions: std::collections::BTreeSet<i64> = top.iter().map(|p| p.2).collect();
    assert_eq!(
        a.axes[0].len(),
        1 + regions.len(),
        "only regions holding a top-10 kommune"
    );
}

#[test]
fn row_scope_comes_from_the_login() {
    let s = server();
    let q = "SELECT [Kommune].[Geografi].[Region].Members ON 0 FROM [Økonomi] WHERE ([Measures].[Regnskab])";
    let aarhus = s.mdx_as(q, 1033, ("aarhus", "aarhus")).ok();
    let expected = sql_f64(
        s,
        &format!(
            "SELECT sum(beloeb)::DOUBLE FROM {} WHERE beloebstype_kode = 'R' AND kommunekode = 751",
            s.table("oekonomi", "postering")
        ),
    );
    let values: Vec<f64> = aarhus.cells.values().map(|c| c.0.parse().unwrap()).collect();
    assert_eq!(values.len(), 1, "only Midtjylland has rows Aarhus may see");
    assert!(close(values[0], expected));
    // Naming another kommune in the query cannot widen the scope: for Aarhus's analyst Læsø is
    // not a member at all, and the fault is the one a kommune that does not exist gives.
    let q =
        |k: u32| format!("SELECT FROM [Økonomi] WHERE ([Measures].[Regnskab], [Kommune].[Geografi].[Kommune].&[{k}])");
    let other = s.mdx_as(&q(825), 1033, ("aarhus", "aarhus"));
    let f = other.fault.clone().expect("a fault");
    assert!(f.1.contains("&[825]") && f.1.contains("is not a member"), "{f:?}");
    assert!(other.cells.is_empty());
    let missing = s.mdx_as(&q(999), 1033, ("aarhus", "aarhus")).fault.expect("a fault");
    assert_eq!(f.0, missing.0, "same error code as for a kommune that does not exist");
    assert_eq!(
        f.1.replace("825", "999"),
        missing.1,
        "same message as for a missing kommune"
    );
}

/// Rows of a rowset answer: each row's children as (element, text).
fn rowset_rows(xml: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut r = quick_xml::Reader::from_str(xml);
    let mut row: Option<Vec<(String, String)>> = None;
    let mut current = String::new();
    let mut text = String::new();
    loop {
        match r.read_event().unwrap() {
            quick_xml::events::Event::Start(e) => {
                let n = String::from_utf8_lossy(e.local_name().as_ref()).to_string();
                if n == "row" {
                    row = Some(Vec::new());
                } else {
                    current = n;
                }
                text.clear();
            }
            quick_xml::events::Event::Text(t) => text.push_str(&t.decode().unwrap()),
            quick_xml::events::Event::End(e) => {
                let n = String::from_utf8_lossy(e.local_name().as_ref()).to_string();
                if n == "row" {
                    out.push(row.take().unwrap());
                } else if let Some(rw) = row.as_mut()
                    && n == current
                {
                    rw.push((n, text.clone()));
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    out
}

fn execute_raw(s: &Server, statement: &str, user: (&str, &str)) -> String {
    let body = format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<Command><Statement>{}</Statement></Command><Properties><PropertyList><Catalog>FLIS</Catalog><Format>Tabular</Format></PropertyList></Properties>\
<Parameters><Parameter><Name>CubeName</Name><Value>Økonomi</Value></Parameter></Parameters></Execute></soap:Body></soap:Envelope>",
        common::xml_escape(statement)
    );
    let (b, code) = common::curl_post_as(&s.url(), &body, Some(user), &[]);
    assert_eq!(code, "200");
    b
}

#[test]
fn drillthrough_shows_the_persons_behind_a_cell_within_the_row_scope() {
    let s = server();
    let q = "DRILLTHROUGH MAXROWS 1000 SELECT FROM [Befolkning] WHERE ([Measures].[Antal borgere], [Kommune].[Geografi].[Kommune].&[825])";
    let xml = execute_raw(s, q, common::ADMIN);
    assert!(!xml.contains("<faultstring>"), "{xml}");
    assert!(xml.contains("type=\"xsd:"), "every drillthrough column is typed");
    let rows = rowset_rows(&xml);
    let c = s.duck();
    let mut st = c
        .prepare(&format!(
            "SELECT person_id FROM {} WHERE kommunekode = 825 ORDER BY ALL LIMIT 1000",
            s.table("befolkning", "person")
        ))
        .unwrap();
    let expected: Vec<String> = st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    let got: Vec<String> = rows
        .iter()
        .map(|r| r.iter().find(|(n, _)| n == "person_id").unwrap().1.clone())
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut exp_sorted = expected.clone();
    exp_sorted.sort();
    assert!(!expected.is_empty());
    assert_eq!(got_sorted, exp_sorted);
    // Dates are xsd:dateTime text, the same days DuckDB gives (not the driver's Debug form).
    let mut st = c
        .prepare(&format!(
            "SELECT person_id, strftime(foedselsdato, '%Y-%m-%dT%H:%M:%S') FROM {} WHERE kommunekode = 825",
            s.table("befolkning", "person")
        ))
        .unwrap();
    let born: std::collections::HashMap<String, String> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(xml.contains("name=\"foedselsdato\" type=\"xsd:dateTime\""), "{xml}");
    for r in &rows {
        let id = &r.iter().find(|(n, _)| n == "person_id").unwrap().1;
        let date = &r.iter().find(|(n, _)| n == "foedselsdato").unwrap().1;
        assert_eq!(Some(date), born.get(id), "{id}");
    }
    // Aarhus may not see Læsø's residents, and without a kommune only sees its own.
    let denied = rowset_rows(&execute_raw(s, q, ("aarhus", "aarhus")));
    assert!(denied.is_empty(), "{denied:?}");
    let own = rowset_rows(&execute_raw(
        s,
        "DRILLTHROUGH MAXROWS 50 SELECT FROM [Befolkning] WHERE ([Measures].[Antal borgere])",
        ("aarhus", "aarhus"),
    ));
    assert_eq!(own.len(), 50);
    assert!(
        own.iter()
            .all(|r| r.iter().any(|(n, v)| n == "kommunekode" && v == "751"))
    );
    // Benchmark cubes never show details.
    let xml = execute_raw(s, "DRILLTHROUGH SELECT FROM [Benchmark]", common::ADMIN);
    assert!(xml.contains("benchmark") && xml.contains("<faultstring>"), "{xml}");
}

#[test]
fn power_bi_dmv_statement_with_a_parameter() {
    let s = server();
    let xml = execute_raw(
        s,
        "select [MEASURE_UNIQUE_NAME], [MEASURE_CAPTION] from $system.mdschema_measures where [CUBE_NAME] = @CubeName and [MEASURE_IS_VISIBLE]",
        common::ADMIN,
    );
    let rows = rowset_rows(&xml);
    let names: Vec<&str> = rows.iter().map(|r| r[0].1.as_str()).collect();
    // The visible measures of Økonomi as the YAML file declares them.
    let yaml = std::fs::read_to_string(common::repo_root().join("cube-definitions/okonomi.yaml")).unwrap();
    for m in ["Regnskab", "Budget", "Afvigelse", "Forbrugsprocent"] {
        assert!(yaml.contains(&format!("name: {m}")), "{m} in okonomi.yaml");
        assert!(names.contains(&format!("[Measures].[{m}]").as_str()), "{m}: {names:?}");
    }
    assert!(
        rows.iter()
            .all(|r| r.len() == 2 && r[0].0 == "MEASURE_UNIQUE_NAME" && r[1].0 == "MEASURE_CAPTION")
    );
}

#[test]
fn tabular_format_flattens_rows_and_columns() {
    let s = server();
    let xml = execute_raw(
        s,
        "SELECT {[Measures].[Regnskab], [Measures].[Budget]} ON 0, [Kommune].[Geografi].[Region].Members ON 1 FROM [Økonomi]",
        common::ADMIN,
    );
    assert!(!xml.contains("<faultstring>"), "{xml}");
    let rows = rowset_rows(&xml);
    assert_eq!(rows.len(), 5);
    let expected = sql_rows(
        s,
        &format!(
            "SELECT k.region_navn, sum(p.beloeb) FILTER (WHERE beloebstype_kode = 'B')::DOUBLE FROM {} p JOIN {} k USING (kommunekode) \
             GROUP BY k.regionskode, k.region_navn ORDER BY k.regionskode",
            s.table("oekonomi", "postering"),
            s.table("faelles", "kommune")
        ),
    );
    for (row, (name, budget)) in rows.iter().zip(&expected) {
        assert_eq!(row.len(), 3, "caption + two measures: {row:?}");
        assert_eq!(&row[0].1, name);
        assert!(close(row[2].1.parse().unwrap(), *budget));
    }
}

#[test]
fn drillthrough_return_picks_columns() {
    let s = server();
    let xml = execute_raw(
        s,
        "DRILLTHROUGH MAXROWS 5 SELECT FROM [Befolkning] WHERE ([Kommune].[Geografi].[Kommune].&[751]) RETURN [$Befolkning].[person_id], [$Befolkning].[alder]",
        common::ADMIN,
    );
    let rows = rowset_rows(&xml);
    assert_eq!(rows.len(), 5, "{xml}");
    assert!(
        rows.iter()
            .all(|r| r.iter().map(|c| c.0.as_str()).collect::<Vec<_>>() == ["person_id", "alder"])
    );
    let xml = execute_raw(
        s,
        "DRILLTHROUGH SELECT FROM [Befolkning] RETURN [$Befolkning].[cpr]",
        common::ADMIN,
    );
    assert!(xml.contains("<faultstring>") && xml.contains("[cpr]"), "{xml}");
}

#[test]
fn collapse_form_and_child_count_probe() {
    let s = server();
    // Collapse Midtjylland while Køn stays expanded under the other regions.
    let a = s
        .mdx(
            "SELECT NON EMPTY Hierarchize(DrilldownMember(CrossJoin({[Kommune].[Geografi].[All],[Kommune].[Geografi].[Region].AllMembers}, \
             {([Køn].[Køn].[All])}), {-{[Kommune].[Geografi].[Region].&[1082]}}, [Køn].[Køn])) ON 0 FROM [Befolkning]",
            1033,
        )
        .ok();
    let count = |u: &str| a.axes[0].iter().filter(|t| t[0].0 == u).count();
    assert_eq!(count("[Kommune].[Geografi].[Region].&[1082]"), 1, "collapsed");
    assert_eq!(count("[Kommune].[Geografi].[Region].&[1081]"), 3, "All + Mand + Kvinde");
    // Excel's child-count probe: the number of regions under All, of kommuner under a region.
    let a = s
        .mdx(
            "WITH MEMBER [Measures].cChildren As 'AddCalculatedMembers([Kommune].[Geografi].currentmember.children).count' \
             Set FilteredMembers As '{[Kommune].[Geografi].[Kommune].&[751]}' Select {[Measures].cChildren} on ROWS, \
             Hierarchize(Generate(FilteredMembers, Ascendants([Kommune].[Geografi].currentmember))) DIMENSION PROPERTIES PARENT_UNIQUE_NAME, MEMBER_TYPE ON COLUMNS FROM [Befolkning]",
            1033,
        )
        .ok();
    let csv = std::fs::read_to_string(common::repo_root().join("data/municipalities.csv")).unwrap();
    let midt = csv.lines().filter(|l| l.split(',').nth(2) == Some("1082")).count() as f64;
    assert_eq!((a.value(0), a.value(1)), (Some(5.0), Some(midt)));
}
