//! MDX functions beyond the pivot shapes (calculated members on any hierarchy, statistics,
//! time functions, hierarchical Order, TopPercent) against the FLIS demo cubes. Every expected
//! value comes from hand-written SQL in DuckDB over the same Parquet files.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::{Server, close};

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(Server::start)
}

/// Regnskab (booked amounts) per kommunekode, from the Parquet files.
fn regnskab_by_kommune(s: &Server) -> BTreeMap<i64, f64> {
    let c = s.duck();
    let sql = format!(
        "SELECT kommunekode::BIGINT, sum(beloeb)::DOUBLE FROM {} WHERE beloebstype_kode = 'R' GROUP BY 1",
        s.table("oekonomi", "postering")
    );
    let mut st = c.prepare(&sql).unwrap();
    st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// (region code, kommune code) of every kommune.
fn regions(s: &Server) -> Vec<(i64, i64)> {
    let c = s.duck();
    let sql = format!(
        "SELECT regionskode::BIGINT, kommunekode::BIGINT FROM {} ORDER BY 1, 2",
        s.table("faelles", "kommune")
    );
    let mut st = c.prepare(&sql).unwrap();
    st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn key(unique_name: &str) -> i64 {
    unique_name
        .rsplit("&[")
        .next()
        .and_then(|k| k.trim_end_matches(']').parse().ok())
        .unwrap_or_else(|| panic!("no key in {unique_name}"))
}

#[test]
fn calculated_member_on_a_regular_hierarchy() {
    let s = server();
    let by_k = regnskab_by_kommune(s);
    let a = s
        .mdx(
            "WITH MEMBER [Kommune].[Geografi].[To] AS Aggregate({[Kommune].[Geografi].[Kommune].&[751], \
             [Kommune].[Geografi].[Kommune].&[101]}), FORMAT_STRING = '#,##0.00' \
             MEMBER [Kommune].[Geografi].[Største] AS Max([Kommune].[Geografi].[Kommune].Members), SOLVE_ORDER = 5 \
             SELECT {[Measures].[Regnskab]} ON 0, {[Kommune].[Geografi].[To], [Kommune].[Geografi].[Kommune].&[751], \
             [Kommune].[Geografi].[Største]} ON 1 FROM [Økonomi]",
            1033,
        )
        .ok();
    let rows: Vec<&str> = a.axes[1].iter().map(|t| t[0].0.as_str()).collect();
    assert_eq!(
        rows,
        [
            "[Kommune].[Geografi].[To]",
            "[Kommune].[Geografi].[Kommune].&[751]",
            "[Kommune].[Geografi].[Største]"
        ]
    );
    let two = by_k[&751] + by_k[&101];
    assert!(close(a.value(0).unwrap(), two), "{:?} vs {two}", a.value(0));
    assert!(close(a.value(1).unwrap(), by_k[&751]));
    let max = by_k.values().cloned().fold(f64::MIN, f64::max);
    assert!(close(a.value(2).unwrap(), max));
    // The calculated member's FORMAT_STRING applies to its cell.
    let fmt = a.cells[&0].2.clone().unwrap();
    assert!(fmt.contains('.') && fmt.matches(',').count() >= 1, "formatted {fmt}");
}

#[test]
fn statistics_over_a_set_match_sql() {
    let s = server();
    let c = s.duck();
    let (median, var_pop, var_samp, stddev_samp, stddev_pop): (f64, f64, f64, f64, f64) = c
        .query_row(
            &format!(
                "SELECT median(t), var_pop(t), var_samp(t), stddev_samp(t), stddev_pop(t) FROM \
                 (SELECT kommunekode, sum(beloeb)::DOUBLE t FROM {} WHERE beloebstype_kode = 'R' GROUP BY 1)",
                s.table("oekonomi", "postering")
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    let kommuner = regions(s).len() as f64;
    let set = "[Kommune].[Geografi].[Kommune].Members";
    let a = s
        .mdx(
            &format!(
                "WITH MEMBER [Measures].[Median] AS Median({set}, [Measures].[Regnskab]) \
                 MEMBER [Measures].[VarP] AS VarP({set}, [Measures].[Regnskab]) \
                 MEMBER [Measures].[Var] AS Var({set}, [Measures].[Regnskab]) \
                 MEMBER [Measures].[Stdev] AS Stdev({set}, [Measures].[Regnskab]) \
                 MEMBER [Measures].[StdevP] AS StdevP({set}, [Measures].[Regnskab]) \
                 MEMBER [Measures].[Antal] AS Count({set}) \
                 SELECT {{[Measures].[Median], [Measures].[VarP], [Measures].[Var], [Measures].[Stdev], \
                 [Measures].[StdevP], [Measures].[Antal]}} ON 0 FROM [Økonomi]"
            ),
            1033,
        )
        .ok();
    for (i, (name, want)) in [
        ("median", median),
        ("varp", var_pop),
        ("var", var_samp),
        ("stdev", stddev_samp),
        ("stdevp", stddev_pop),
        ("count", kommuner),
    ]
    .iter()
    .enumerate()
    {
        let got = a.value(i as u64).unwrap();
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{name}: {got} vs {want}"
        );
    }
}

#[test]
fn time_functions_follow_the_level_types() {
    let s = server();
    let c = s.duck();
    // Regnskab per month, and the months of the calendar in order.
    let sql = format!(
        "SELECT m.maaned_id::BIGINT, m.aar::BIGINT, sum(p.beloeb)::DOUBLE FROM {m} m LEFT JOIN {p} p \
         ON p.maaned_id = m.maaned_id AND p.beloebstype_kode = 'R' GROUP BY 1, 2 ORDER BY 1",
        m = s.table("faelles", "maaned"),
        p = s.table("oekonomi", "postering")
    );
    let mut st = c.prepare(&sql).unwrap();
    let months: Vec<(i64, i64, Option<f64>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Year-to-date: a running sum that restarts every year.
    let a = s
        .mdx(
            "WITH MEMBER [Measures].[ÅTD] AS Sum(YTD(), [Measures].[Regnskab]) \
             MEMBER [Measures].[Sidste 3] AS Sum(LastPeriods(3), [Measures].[Regnskab]) \
             MEMBER [Measures].[Året før] AS ([Measures].[Regnskab], ParallelPeriod([Tid].[Kalender].[År], 1)) \
             SELECT {[Measures].[ÅTD], [Measures].[Sidste 3], [Measures].[Året før]} ON 0, \
             [Tid].[Kalender].[Måned].Members ON 1 FROM [Økonomi]",
            1033,
        )
        .ok();
    assert_eq!(a.axes[1].len(), months.len());
    let mut running: Option<f64> = None;
    let mut year = 0;
    for (i, &(id, aar, v)) in months.iter().enumerate() {
        assert_eq!(key(&a.axes[1][i][0].0), id);
        if aar != year {
            year = aar;
            running = None;
        }
        if let Some(v) = v {
            running = Some(running.unwrap_or(0.0) + v);
        }
        let got = a.value(i as u64 * 3);
        match running {
            None => assert_eq!(got, None, "month {id}"),
            Some(r) => assert!(close(got.unwrap(), r), "YTD {id}: {got:?} vs {r}"),
        }
        let last3: Vec<f64> = months[i.saturating_sub(2)..=i].iter().filter_map(|m| m.2).collect();
        let got = a.value(i as u64 * 3 + 1);
        if last3.is_empty() {
            assert_eq!(got, None);
        } else {
            assert!(close(got.unwrap(), last3.iter().sum()), "LastPeriods {id}");
        }
        // The same month a year before (ids are yyyymm).
        let before = months.iter().find(|m| m.0 == id - 100).and_then(|m| m.2);
        let got = a.value(i as u64 * 3 + 2);
        match before {
            None => assert_eq!(got, None, "ParallelPeriod {id}"),
            Some(b) => assert!(close(got.unwrap(), b), "ParallelPeriod {id}: {got:?} vs {b}"),
        }
    }
    // Opening and closing periods of a year, and the cousin of a month in another year.
    let a = s
        .mdx(
            "SELECT {OpeningPeriod([Tid].[Kalender].[Måned], [Tid].[Kalender].[År].&[2023]), \
             ClosingPeriod([Tid].[Kalender].[Måned], [Tid].[Kalender].[År].&[2023]), \
             Cousin([Tid].[Kalender].[Måned].&[202305], [Tid].[Kalender].[År].&[2021])} ON 0 FROM [Økonomi]",
            1033,
        )
        .ok();
    let (first, last): (i64, i64) = c
        .query_row(
            &format!(
                "SELECT min(maaned_id)::BIGINT, max(maaned_id)::BIGINT FROM {} WHERE aar = 2023",
                s.table("faelles", "maaned")
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let got: Vec<i64> = a.axes[0].iter().map(|t| key(&t[0].0)).collect();
    assert_eq!(got, [first, last, 202105]);
}

#[test]
fn order_keeps_the_hierarchy_unless_told_to_break_it_and_top_percent() {
    let s = server();
    let by_k = regnskab_by_kommune(s);
    let regs = regions(s);
    let mut by_region: BTreeMap<i64, f64> = BTreeMap::new();
    for (r, k) in &regs {
        *by_region.entry(*r).or_default() += by_k.get(k).copied().unwrap_or(0.0);
    }
    let set = "{[Kommune].[Geografi].[Region].Members, [Kommune].[Geografi].[Kommune].Members}";
    // DESC: regions by value, each followed by its kommuner by value.
    let a = s
        .mdx(
            &format!("SELECT Order({set}, [Measures].[Regnskab], DESC) ON 0 FROM [Økonomi]"),
            1033,
        )
        .ok();
    let mut expected = Vec::new();
    let mut rs: Vec<(&i64, &f64)> = by_region.iter().collect();
    rs.sort_by(|a, b| b.1.partial_cmp(a.1).unwrap());
    for (r, _) in rs {
        expected.push(*r);
        let mut ks: Vec<i64> = regs.iter().filter(|x| x.0 == *r).map(|x| x.1).collect();
        ks.sort_by(|a, b| by_k[b].partial_cmp(&by_k[a]).unwrap());
        expected.extend(ks);
    }
    let got: Vec<i64> = a.axes[0].iter().map(|t| key(&t[0].0)).collect();
    assert_eq!(got, expected);
    // BDESC: one flat list by value.
    let a = s
        .mdx(
            &format!("SELECT Order({set}, [Measures].[Regnskab], BDESC) ON 0 FROM [Økonomi]"),
            1033,
        )
        .ok();
    let mut flat: Vec<(i64, f64)> = by_region.iter().map(|(k, v)| (*k, *v)).collect();
    flat.extend(by_k.iter().map(|(k, v)| (*k, *v)));
    flat.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    let got: Vec<i64> = a.axes[0].iter().map(|t| key(&t[0].0)).collect();
    assert_eq!(got, flat.iter().map(|x| x.0).collect::<Vec<_>>());
    // TopPercent: the largest kommuner until half of the total is reached.
    let a = s
        .mdx(
            "SELECT TopPercent([Kommune].[Geografi].[Kommune].Members, 50, [Measures].[Regnskab]) ON 0 FROM [Økonomi]",
            1033,
        )
        .ok();
    let mut ks: Vec<(i64, f64)> = by_k.iter().map(|(k, v)| (*k, *v)).collect();
    ks.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    let half = ks.iter().map(|x| x.1).sum::<f64>() / 2.0;
    let mut acc = 0.0;
    let mut want = Vec::new();
    for (k, v) in ks {
        if acc >= half {
            break;
        }
        acc += v;
        want.push(k);
    }
    let got: Vec<i64> = a.axes[0].iter().map(|t| key(&t[0].0)).collect();
    assert_eq!(got, want);
}

/// Execute `mdx` with a SOAP session header (`BeginSession` when `session` is None).
fn execute_in_session(s: &Server, mdx: &str, session: Option<&str>, user: (&str, &str)) -> (common::Answer, String) {
    let header = match session {
        None => {
            "<BeginSession xmlns=\"urn:schemas-microsoft-com:xml-analysis\" soap:mustUnderstand=\"1\"/>".to_string()
        }
        Some(id) => format!("<Session xmlns=\"urn:schemas-microsoft-com:xml-analysis\" SessionId=\"{id}\"/>"),
    };
    let body = format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Header>{header}</soap:Header><soap:Body>\
<Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\"><Command><Statement>{}</Statement></Command><Properties><PropertyList>\
<Catalog>FLIS</Catalog><LocaleIdentifier>1033</LocaleIdentifier></PropertyList></Properties></Execute></soap:Body></soap:Envelope>",
        common::xml_escape(mdx)
    );
    let (b, code) = common::curl_post_as(&s.url(), &body, Some(user), &[]);
    assert_eq!(code, "200", "{b}");
    let id = common::session_id(&b).unwrap_or_default();
    (common::Answer::parse(&b), id)
}

#[test]
fn session_scoped_calculated_members_and_sets() {
    let s = server();
    let admin = ("admin", "admin");
    let by_k = regnskab_by_kommune(s);
    let total: f64 = by_k.values().sum();
    // A session with a calculated measure and a named set.
    let (a, sid) = execute_in_session(
        s,
        "CREATE SESSION MEMBER [Økonomi].[Measures].[Dobbelt] AS [Measures].[Regnskab] * 2, FORMAT_STRING = '#,##0'",
        None,
        admin,
    );
    assert!(a.fault.is_none(), "{:?}", a.fault);
    assert!(!sid.is_empty(), "BeginSession answers with a session id");
    let (a, _) = execute_in_session(
        s,
        "CREATE SET [Økonomi].[Top3] AS TopCount([Kommune].[Geografi].[Kommune].Members, 3, [Measures].[Regnskab])",
        Some(&sid),
        admin,
    );
    assert!(a.fault.is_none(), "{:?}", a.fault);
    let (a, _) = execute_in_session(
        s,
        "SELECT {[Measures].[Regnskab], [Measures].[Dobbelt]} ON 0, [Top3] ON 1 FROM [Økonomi]",
        Some(&sid),
        admin,
    );
    let a = a.ok();
    let mut top: Vec<(i64, f64)> = by_k.iter().map(|(k, v)| (*k, *v)).collect();
    top.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    let got: Vec<i64> = a.axes[1].iter().map(|t| key(&t[0].0)).collect();
    assert_eq!(got, top.iter().take(3).map(|x| x.0).collect::<Vec<_>>());
    for (i, (_, v)) in top.iter().take(3).enumerate() {
        assert!(close(a.value(i as u64 * 2).unwrap(), *v));
        assert!(close(a.value(i as u64 * 2 + 1).unwrap(), 2.0 * v));
    }
    // The query's WITH overrides the session's definition.
    let (a, _) = execute_in_session(
        s,
        "WITH MEMBER [Measures].[Dobbelt] AS [Measures].[Regnskab] * 3 SELECT [Measures].[Dobbelt] ON 0 FROM [Økonomi]",
        Some(&sid),
        admin,
    );
    assert!(close(a.ok().value(0).unwrap(), 3.0 * total));
    // Another session does not see them.
    let (a, other) = execute_in_session(s, "SELECT [Measures].[Dobbelt] ON 0 FROM [Økonomi]", None, admin);
    assert_ne!(other, sid);
    assert!(a.fault.unwrap().1.contains("Dobbelt"));
    // DROP removes it; dropping it twice is an error naming it.
    let (a, _) = execute_in_session(s, "DROP MEMBER [Økonomi].[Measures].[Dobbelt]", Some(&sid), admin);
    assert!(a.fault.is_none(), "{:?}", a.fault);
    let (a, _) = execute_in_session(s, "SELECT [Measures].[Dobbelt] ON 0 FROM [Økonomi]", Some(&sid), admin);
    assert!(a.fault.is_some());
    let (a, _) = execute_in_session(s, "DROP MEMBER [Økonomi].[Measures].[Dobbelt]", Some(&sid), admin);
    assert!(a.fault.unwrap().1.contains("Dobbelt"));
    // A definition for an unknown cube, or with a parent that does not exist, is refused.
    let (a, _) = execute_in_session(s, "CREATE MEMBER [Nope].[Measures].[X] AS 1", Some(&sid), admin);
    assert!(a.fault.unwrap().1.contains("[Nope]"));
    let (a, _) = execute_in_session(
        s,
        "CREATE MEMBER [Økonomi].[Kommune].[Geografi].[Nowhere].[X] AS 1",
        Some(&sid),
        admin,
    );
    assert!(a.fault.unwrap().1.contains("Nowhere"));
    // Several definitions in one command, separated by `;`.
    let (a, _) = execute_in_session(
        s,
        "CREATE MEMBER [Økonomi].[Measures].[A] AS 1; CREATE MEMBER [Økonomi].[Measures].[B] AS [Measures].[A] + 1",
        Some(&sid),
        admin,
    );
    assert!(a.fault.is_none(), "{:?}", a.fault);
    let (a, _) = execute_in_session(
        s,
        "SELECT {[Measures].[A], [Measures].[B]} ON 0 FROM [Økonomi]",
        Some(&sid),
        admin,
    );
    let a = a.ok();
    assert_eq!((a.value(0), a.value(1)), (Some(1.0), Some(2.0)));
    // Without a session there is nowhere to keep a definition.
    let f = s
        .mdx("CREATE MEMBER [Økonomi].[Measures].[X] AS 1", 1033)
        .fault
        .expect("sessionless CREATE");
    assert!(f.1.contains("BeginSession"), "{f:?}");
}

/// Pairs (key, value) from a hand-written SQL statement.
fn pairs(s: &Server, sql: &str) -> Vec<(i64, f64)> {
    let c = s.duck();
    let mut st = c.prepare(sql).unwrap();
    st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Booked amounts of one kind (R regnskab, B budget) per kommunekode.
fn amount_by_kommune(s: &Server, kind: &str) -> BTreeMap<i64, f64> {
    pairs(
        s,
        &format!(
            "SELECT kommunekode::BIGINT, sum(beloeb)::DOUBLE FROM {} WHERE beloebstype_kode = '{kind}' GROUP BY 1",
            s.table("oekonomi", "postering")
        ),
    )
    .into_iter()
    .collect()
}

/// A region with at least three kommuner with data, two of them (k1, k2), and another region
/// with data: the cast of the VisualTotals and cell calculation tests.
fn visual_cast(s: &Server, by_k: &BTreeMap<i64, f64>) -> (i64, i64, i64, i64) {
    let regs = regions(s);
    let with_data = |r: i64| -> Vec<i64> {
        regs.iter()
            .filter(|x| x.0 == r && by_k.contains_key(&x.1))
            .map(|x| x.1)
            .collect()
    };
    let mut rs: Vec<i64> = regs.iter().map(|x| x.0).collect();
    rs.dedup();
    let r = *rs
        .iter()
        .find(|&&r| with_data(r).len() >= 3)
        .expect("a region with three kommuner");
    let r2 = *rs
        .iter()
        .find(|&&x| x != r && !with_data(x).is_empty())
        .expect("another region");
    let ks = with_data(r);
    (r, ks[0], ks[1], r2)
}

fn region(r: i64) -> String {
    format!("[Kommune].[Geografi].[Region].&[{r}]")
}

fn kommune(k: i64) -> String {
    format!("[Kommune].[Geografi].[Kommune].&[{k}]")
}

#[test]
fn visual_totals_of_a_parent_with_two_of_its_children() {
    let s = server();
    let by_k = regnskab_by_kommune(s);
    let (r, k1, k2, r2) = visual_cast(s, &by_k);
    let region_total = |r: i64| -> f64 {
        regions(s)
            .iter()
            .filter(|x| x.0 == r)
            .filter_map(|x| by_k.get(&x.1))
            .sum()
    };
    let set = format!("{{{}, {}, {}, {}}}", region(r), kommune(k1), kommune(k2), region(r2));
    let plain = s
        .mdx(
            &format!("SELECT {{[Measures].[Regnskab]}} ON 0, {set} ON 1 FROM [Økonomi]"),
            1033,
        )
        .ok();
    let a = s
        .mdx(
            &format!("SELECT {{[Measures].[Regnskab]}} ON 0, VisualTotals({set}) ON 1 FROM [Økonomi]"),
            1033,
        )
        .ok();
    // The same members (unique names and captions) as without VisualTotals.
    assert_eq!(a.axes[1], plain.axes[1]);
    assert!(close(plain.value(0).unwrap(), region_total(r)));
    // The region totals only the two kommuner in the set; they and the region without
    // kommuner in the set keep their own values.
    let two = by_k[&k1] + by_k[&k2];
    assert!(
        (two - region_total(r)).abs() > 1e-6,
        "the region has other kommuner with data"
    );
    assert!(close(a.value(0).unwrap(), two), "{:?} vs {two}", a.value(0));
    assert!(close(a.value(1).unwrap(), by_k[&k1]));
    assert!(close(a.value(2).unwrap(), by_k[&k2]));
    assert!(close(a.value(3).unwrap(), region_total(r2)));
    // A calculated measure is computed from the visual totals of its operands (solve order
    // -4096 for visual totals), not summed: the region's ratio is that of the two kommuner.
    let budget = amount_by_kommune(s, "B");
    let a = s
        .mdx(
            &format!(
                "WITH MEMBER [Measures].[Andel] AS [Measures].[Regnskab] / [Measures].[Budget] \
                 SELECT {{[Measures].[Andel]}} ON 0, VisualTotals({set}) ON 1 FROM [Økonomi]"
            ),
            1033,
        )
        .ok();
    let want = two / (budget[&k1] + budget[&k2]);
    assert!(close(a.value(0).unwrap(), want), "{:?} vs {want}", a.value(0));
    assert!(close(a.value(1).unwrap(), by_k[&k1] / budget[&k1]));
}

#[test]
fn visual_totals_over_nested_levels_with_a_pattern() {
    let s = server();
    let by_k = regnskab_by_kommune(s);
    let (r, k1, k2, r2) = visual_cast(s, &by_k);
    let k3 = regions(s)
        .into_iter()
        .find(|x| x.0 == r2 && by_k.contains_key(&x.1))
        .unwrap()
        .1;
    // All, a region with two kommuner, another region with one: All totals the two regions'
    // visual totals, each region its kommuner in the set.
    let set = format!(
        "{{[Kommune].[Geografi].[All], {}, {}, {}, {}, {}}}",
        region(r),
        kommune(k1),
        kommune(k2),
        region(r2),
        kommune(k3)
    );
    let plain = s
        .mdx(
            &format!("SELECT {{[Measures].[Regnskab]}} ON 0, {set} ON 1 FROM [Økonomi]"),
            1033,
        )
        .ok();
    let a = s
        .mdx(
            &format!("SELECT {{[Measures].[Regnskab]}} ON 0, VisualTotals({set}, '* - visual') ON 1 FROM [Økonomi]"),
            1033,
        )
        .ok();
    let want = [
        by_k[&k1] + by_k[&k2] + by_k[&k3],
        by_k[&k1] + by_k[&k2],
        by_k[&k1],
        by_k[&k2],
        by_k[&k3],
        by_k[&k3],
    ];
    for (i, w) in want.iter().enumerate() {
        assert!(
            close(a.value(i as u64).unwrap(), *w),
            "row {i}: {:?} vs {w}",
            a.value(i as u64)
        );
    }
    // Unique names stay; the totals' captions follow the pattern, the others keep theirs.
    for (i, (got, real)) in a.axes[1].iter().zip(&plain.axes[1]).enumerate() {
        assert_eq!(got[0].0, real[0].0);
        let total = matches!(i, 0 | 1 | 4);
        let caption = if total {
            format!("{} - visual", real[0].1)
        } else {
            real[0].1.clone()
        };
        assert_eq!(got[0].1, caption, "row {i}");
    }
    // `**` is a literal asterisk.
    let a = s
        .mdx(
            &format!(
                "SELECT {{[Measures].[Regnskab]}} ON 0, VisualTotals({{{}, {}}}, '** *') ON 1 FROM [Økonomi]",
                region(r),
                kommune(k1)
            ),
            1033,
        )
        .ok();
    let region_caption = &plain.axes[1][1][0].1;
    assert_eq!(a.axes[1][0][0].1, format!("* {region_caption}"));
    assert!(close(a.value(0).unwrap(), by_k[&k1]));
    // Out of hierarchy order, as SSAS documents it (VisualTotals(USA, WA, CA, Seattle)): a
    // member not followed by its own descendants keeps its value, and All totals everything
    // after it, here the kommune inside the first region a second time.
    let region_total = |r: i64| -> f64 {
        regions(s)
            .iter()
            .filter(|x| x.0 == r)
            .filter_map(|x| by_k.get(&x.1))
            .sum()
    };
    let a = s
        .mdx(
            &format!(
                "SELECT {{[Measures].[Regnskab]}} ON 0, VisualTotals({{[Kommune].[Geografi].[All], {}, {}, {}}}) ON 1 FROM [Økonomi]",
                region(r),
                region(r2),
                kommune(k1)
            ),
            1033,
        )
        .ok();
    let want = [
        region_total(r) + region_total(r2) + by_k[&k1],
        region_total(r),
        region_total(r2),
        by_k[&k1],
    ];
    for (i, w) in want.iter().enumerate() {
        assert!(
            close(a.value(i as u64).unwrap(), *w),
            "row {i}: {:?} vs {w}",
            a.value(i as u64)
        );
    }
}

#[test]
fn visual_totals_in_excels_named_set_pattern() {
    let s = server();
    let by_k = regnskab_by_kommune(s);
    let (r, k1, k2, _) = visual_cast(s, &by_k);
    // What Excel sends to servers without subselects: the filter's members as a VisualTotals
    // set, intersected with the drilled-down axis.
    let a = s
        .mdx(
            &format!(
                "WITH SET [XL_Row_Dim_0] AS 'VisualTotals(Distinct(Hierarchize({{Ascendants({k1}), Descendants({k1}), \
                 Ascendants({k2}), Descendants({k2})}})))' \
                 SELECT NON EMPTY Hierarchize(Intersect({{DrilldownMember({{DrilldownLevel({{[Kommune].[Geografi].[All]}})}}, \
                 {{{r}}})}}, [XL_Row_Dim_0])) DIMENSION PROPERTIES PARENT_UNIQUE_NAME ON 0 FROM [Økonomi] \
                 WHERE ([Measures].[Regnskab])",
                k1 = kommune(k1),
                k2 = kommune(k2),
                r = region(r)
            ),
            1033,
        )
        .ok();
    let names: Vec<&str> = a.axes[0].iter().map(|t| t[0].0.as_str()).collect();
    assert_eq!(
        names,
        [
            "[Kommune].[Geografi].[All]".to_string(),
            region(r),
            kommune(k1),
            kommune(k2)
        ]
    );
    let two = by_k[&k1] + by_k[&k2];
    for (i, w) in [two, two, by_k[&k1], by_k[&k2]].iter().enumerate() {
        assert!(
            close(a.value(i as u64).unwrap(), *w),
            "column {i}: {:?} vs {w}",
            a.value(i as u64)
        );
    }
}

#[test]
fn visual_totals_of_measures_that_do_not_add_up() {
    let s = server();
    let c = s.duck();
    let facts = s.table("beskaeftigelse", "ydelse_uge");
    // Two weeks of one year with benefit data, persons counted once across both.
    let (w1, w2): (i64, i64) = c
        .query_row(
            &format!(
                "SELECT min(uge_id)::BIGINT, max(uge_id)::BIGINT FROM (SELECT uge_id FROM {facts} \
                 WHERE uge_id // 100 = (SELECT max(uge_id) // 100 FROM {facts}) GROUP BY 1 ORDER BY 1 LIMIT 2)"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_ne!(w1, w2);
    let per_week = pairs(
        s,
        &format!(
            "SELECT uge_id::BIGINT, count(DISTINCT person_id)::DOUBLE FROM {facts} WHERE uge_id IN ({w1}, {w2}) GROUP BY 1 ORDER BY 1"
        ),
    );
    let (both, full): (f64, f64) = c
        .query_row(
            &format!(
                "SELECT (SELECT count(DISTINCT person_id) FROM {facts} WHERE uge_id IN ({w1}, {w2}))::DOUBLE, \
                 (SELECT avg(v) FROM (SELECT sum(fuldtid) v FROM {facts} WHERE uge_id IN ({w1}, {w2}) GROUP BY uge_id))::DOUBLE"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let sum_of_weeks: f64 = per_week.iter().map(|x| x.1).sum();
    assert!(
        both < sum_of_weeks,
        "the same persons in both weeks: {both} vs {sum_of_weeks}"
    );
    let year = w1 / 100;
    let set = format!("{{[Tid].[Uge].[År].&[{year}], [Tid].[Uge].[Uge].&[{w1}], [Tid].[Uge].[Uge].&[{w2}]}}");
    // Distinct count and average over time: the year's visual total is read from the two
    // weeks' fact rows, not added up from them.
    let a = s
        .mdx(
            &format!(
                "SELECT {{[Measures].[Personer], [Measures].[Fuldtidspersoner]}} ON 0, VisualTotals({set}) ON 1 FROM [Beskæftigelse]"
            ),
            1033,
        )
        .ok();
    assert_eq!(a.value(0), Some(both));
    assert!(close(a.value(1).unwrap(), full), "{:?} vs {full}", a.value(1));
    assert_eq!(a.value(2), Some(per_week[0].1));
    assert_eq!(a.value(4), Some(per_week[1].1));
    // Last non-empty: the year's visual total is the later month of the two.
    let bestand = s.table("befolkning", "bestand");
    let months = pairs(
        s,
        &format!(
            "SELECT maaned_id::BIGINT, sum(antal_borgere)::DOUBLE FROM {bestand} \
             WHERE maaned_id // 100 = (SELECT max(maaned_id) // 100 FROM {bestand}) GROUP BY 1 ORDER BY 1"
        ),
    );
    assert!(months.len() >= 2);
    let (m1, m2) = (months[0], months[months.len() / 2]);
    let a = s
        .mdx(
            &format!(
                "SELECT {{[Measures].[Antal borgere]}} ON 0, VisualTotals({{[Tid].[Kalender].[År].&[{}], \
                 [Tid].[Kalender].[Måned].&[{}], [Tid].[Kalender].[Måned].&[{}]}}) ON 1 FROM [Befolkning]",
                m1.0 / 100,
                m1.0,
                m2.0
            ),
            1033,
        )
        .ok();
    assert!(close(a.value(0).unwrap(), m2.1), "{:?} vs {}", a.value(0), m2.1);
    assert!(close(a.value(1).unwrap(), m1.1));
}

#[test]
fn visual_totals_refuses_what_it_cannot_total() {
    let s = server();
    for (mdx, why) in [
        (
            "SELECT VisualTotals([Kommune].[Geografi].[Region].Members * [Tid].[Kalender].[År].Members) ON 0 FROM [Økonomi]",
            "tuples",
        ),
        (
            "SELECT VisualTotals({[Measures].[Regnskab], [Measures].[Budget]}) ON 0 FROM [Økonomi]",
            "[Measures]",
        ),
        (
            "SELECT VisualTotals([Kommune].[Geografi].Members, [Kommune].[Geografi].[All]) ON 0 FROM [Økonomi]",
            "pattern",
        ),
        ("SELECT VisualTotals() ON 0 FROM [Økonomi]", "missing"),
    ] {
        let f = s.mdx(mdx, 1033).fault.unwrap_or_else(|| panic!("no fault for {mdx}"));
        assert!(f.1.contains("VisualTotals") && f.1.contains(why), "{mdx}: {f:?}");
    }
}

#[test]
fn cell_calculations_with_condition_and_solve_order() {
    let s = server();
    let by_k = regnskab_by_kommune(s);
    let budget = amount_by_kommune(s, "B");
    let (r, _, _, _) = visual_cast(s, &by_k);
    let mut by_region: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for (reg, k) in regions(s) {
        let e = by_region.entry(reg).or_default();
        e.0 += by_k.get(&k).copied().unwrap_or(0.0);
        e.1 += budget.get(&k).copied().unwrap_or(0.0);
    }
    // Regnskab doubled for one region; Budget and the other regions untouched.
    let a = s
        .mdx(
            &format!(
                "WITH CELL CALCULATION [Dobbelt] FOR '({{[Measures].[Regnskab]}}, {{{}}})' AS '[Measures].CurrentMember * 2' \
                 SELECT {{[Measures].[Regnskab], [Measures].[Budget]}} ON 0, [Kommune].[Geografi].[Region].Members ON 1 FROM [Økonomi]",
                region(r)
            ),
            1033,
        )
        .ok();
    let rows: Vec<i64> = a.axes[1].iter().map(|t| key(&t[0].0)).collect();
    assert_eq!(rows, by_region.keys().copied().collect::<Vec<_>>());
    for (i, (reg, (regnskab, bud))) in by_region.iter().enumerate() {
        let want = if *reg == r { 2.0 * regnskab } else { *regnskab };
        assert!(close(a.value(2 * i as u64).unwrap(), want), "region {reg}");
        assert!(close(a.value(2 * i as u64 + 1).unwrap(), *bud), "region {reg} budget");
    }
    // The region's visual total is in the subcube too, and doubles the two kommuner's total.
    let (_, k1, k2, _) = visual_cast(s, &by_k);
    let a = s
        .mdx(
            &format!(
                "WITH CELL CALCULATION [Dobbelt] FOR '({{[Measures].[Regnskab]}}, {{{r}}})' AS '[Measures].CurrentMember * 2' \
                 SELECT {{[Measures].[Regnskab]}} ON 0, VisualTotals({{{r}, {k1}, {k2}}}) ON 1 FROM [Økonomi]",
                r = region(r),
                k1 = kommune(k1),
                k2 = kommune(k2)
            ),
            1033,
        )
        .ok();
    let two = by_k[&k1] + by_k[&k2];
    assert!(
        close(a.value(0).unwrap(), 2.0 * two),
        "{:?} vs {}",
        a.value(0),
        2.0 * two
    );
    assert!(close(a.value(1).unwrap(), by_k[&k1]));
    assert!(close(a.value(2).unwrap(), by_k[&k2]));
    // A CONDITION: only kommuner above the median are divided by 1000.
    let mut vals: Vec<f64> = by_k.values().copied().collect();
    vals.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let threshold = vals[vals.len() / 2];
    let a = s
        .mdx(
            &format!(
                "WITH CELL CALCULATION [Små] FOR '({{[Measures].[Regnskab]}}, [Kommune].[Geografi].[Kommune].Members)' \
                 AS '[Measures].CurrentMember / 1000', CONDITION = '[Measures].CurrentMember > {threshold}', \
                 FORMAT_STRING = '\"tusinder \"0.000' \
                 SELECT {{[Measures].[Regnskab]}} ON 0, [Kommune].[Geografi].[Kommune].Members ON 1 FROM [Økonomi]"
            ),
            1033,
        )
        .ok();
    let mut changed = 0;
    for (i, t) in a.axes[1].iter().enumerate() {
        let Some(v) = by_k.get(&key(&t[0].0)) else { continue };
        let want = if *v > threshold {
            changed += 1;
            v / 1000.0
        } else {
            *v
        };
        // The calculation's FORMAT_STRING only where its CONDITION holds (and so it computed
        // the cell); elsewhere the measure's own format.
        let fmt = a.cells[&(i as u64)].2.clone().unwrap_or_default();
        assert_eq!(
            fmt.starts_with("tusinder "),
            *v > threshold,
            "{}: FmtValue {fmt:?} for {v} (threshold {threshold})",
            t[0].0
        );
        assert!(
            close(a.value(i as u64).unwrap(), want),
            "{}: {:?} vs {want}",
            t[0].0,
            a.value(i as u64)
        );
    }
    assert!(changed > 0 && changed < by_k.len());
    // Solve order against a calculated measure: above it, the cell calculation adds 1 to the
    // ratio; below it, the ratio is computed from the operands the calculation changed.
    let (reg_r, reg_b) = by_region[&r];
    for (so, want) in [(10, reg_r / reg_b + 1.0), (-1, (reg_r + 1.0) / (reg_b + 1.0))] {
        let a = s
            .mdx(
                &format!(
                    "WITH MEMBER [Measures].[Andel] AS [Measures].[Regnskab] / [Measures].[Budget] \
                     CELL CALCULATION [Plus] FOR '({{{}}})' AS '[Measures].CurrentMember + 1', SOLVE_ORDER = {so} \
                     SELECT {{[Measures].[Andel]}} ON 0 FROM [Økonomi] WHERE ({})",
                    region(r),
                    region(r)
                ),
                1033,
            )
            .ok();
        assert!(
            close(a.value(0).unwrap(), want),
            "SOLVE_ORDER {so}: {:?} vs {want}",
            a.value(0)
        );
    }
    // What cannot be computed is refused, naming the calculation.
    let f = s
        .mdx(
            "WITH CELL CALCULATION [X] FOR '({[Measures].[Regnskab]})' AS '1', CALCULATION_PASS_NUMBER = 2 \
             SELECT {[Measures].[Regnskab]} ON 0 FROM [Økonomi]",
            1033,
        )
        .fault
        .expect("pass numbers are refused");
    assert!(f.1.contains("[X]") && f.1.contains("CALCULATION_PASS_NUMBER"), "{f:?}");
    let f = s
        .mdx(
            "WITH CELL CALCULATION [Y] FOR '(1, 2)' AS '1' SELECT {[Measures].[Regnskab]} ON 0 FROM [Økonomi]",
            1033,
        )
        .fault
        .expect("a FOR clause of numbers");
    assert!(f.1.contains("[Y]"), "{f:?}");
}
