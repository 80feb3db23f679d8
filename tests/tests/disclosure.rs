//! Benchmark disclosure control, end to end against the real server: small cells are
//! suppressed, a complementary cell is suppressed so the region total cannot reveal the small
//! one, the same complement is suppressed whatever the query shows, and totals over a set the
//! client chose are suppressed. Expected values and the expected suppression come from
//! hand-written SQL over the same Parquet files and the rules as documented in
//! docs/security.md, not from the server's code.

mod common;
use common::copy_dir;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{Answer, Server, close};

const NORDJYLLAND: i64 = 1081;
const LAESOE: i64 = 825;
const AARHUS: (&str, &str) = ("aarhus", "aarhus");

/// Copy the shipped cube definitions to `to`, with the benchmark cube's k set to `k`.
fn definitions_with_k(to: &Path, k: i64) {
    let from = common::repo_root().join("cube-definitions");
    copy_dir(&from, to);
    let b = to.join("benchmark.yaml");
    let text = std::fs::read_to_string(&b).unwrap();
    assert!(
        text.contains("min_cell_count: 5"),
        "benchmark.yaml sets min_cell_count: 5"
    );
    std::fs::write(&b, text.replace("min_cell_count: 5", &format!("min_cell_count: {k}"))).unwrap();
}

/// Indbyggere per kommune of one region at one month, from the Parquet files.
fn indbyggere(s: &Server, month: i64) -> BTreeMap<i64, (i64, f64)> {
    let c = s.duck();
    let sql = format!(
        "SELECT k.kommunekode::BIGINT, k.regionskode::BIGINT, sum(b.indbyggere)::DOUBLE \
         FROM {} b JOIN {} k ON b.kommunekode = k.kommunekode WHERE b.maaned_id = {month} GROUP BY 1, 2",
        s.table("benchmark", "noegletal"),
        s.table("faelles", "kommune")
    );
    let mut st = c.prepare(&sql).unwrap();
    st.query_map([], |r| {
        Ok((r.get::<_, i64>(0)?, (r.get::<_, i64>(1)?, r.get::<_, f64>(2)?)))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn last_month(s: &Server) -> i64 {
    let c = s.duck();
    c.query_row(
        &format!(
            "SELECT max(maaned_id)::BIGINT FROM {}",
            s.table("benchmark", "noegletal")
        ),
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Row captions' keys (the `&[..]` of each row member) with the cell of column 0.
fn rows(a: &Answer) -> Vec<(String, Option<f64>, Option<String>)> {
    a.axes[1]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let un = t[0].0.clone();
            let cell = a.cells.get(&(i as u64));
            let v = cell.and_then(|(v, _, _)| v.parse::<f64>().ok());
            let f = cell.and_then(|(_, _, f)| f.clone());
            (un, v, f)
        })
        .collect()
}

fn kommune(code: i64) -> String {
    format!("[Kommune].[Geografi].[Kommune].&[{code}]")
}

#[test]
fn small_cells_are_suppressed_with_a_complement_that_does_not_depend_on_the_query() {
    // Demo data first (a server that generates it), then a second server on the same data
    // with k chosen so that exactly one kommune of Nordjylland is below it: Læsø.
    let first = Server::start();
    let month = last_month(&first);
    let all = indbyggere(&first, month);
    let mut region: Vec<(i64, f64)> = all
        .iter()
        .filter(|(_, (r, _))| *r == NORDJYLLAND)
        .map(|(k, (_, v))| (*k, *v))
        .collect();
    region.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    assert_eq!(
        region[0].0, LAESOE,
        "Læsø is the smallest kommune of Nordjylland: {region:?}"
    );
    assert!(region[1].1 > region[0].1, "the two smallest differ: {region:?}");
    let k = region[1].1 as i64;
    let tmp = tempfile::tempdir().unwrap();
    definitions_with_k(tmp.path(), k);
    let s = Server::start_in_with_definitions(&first.data_dir, tmp.path());

    // The expected suppression in Nordjylland: Læsø (primary, below k) and the smallest of
    // the others (complementary), which is region[1] — at exactly k, so not primary.
    let complement = region[1].0;
    let q = format!(
        "SELECT {{[Measures].[Indbyggere]}} ON 0, {{[Kommune].[Geografi].[Region].&[{NORDJYLLAND}], [Kommune].[Geografi].[Region].&[{NORDJYLLAND}].Children}} ON 1 \
         FROM [Benchmark] WHERE [Tid].[Kalender].[Måned].&[{month}]"
    );
    let a = s.mdx_as(&q, 1030, AARHUS).ok();
    let got = rows(&a);
    assert_eq!(got.len(), region.len() + 1, "the region and all its kommuner: {got:?}");
    let total: f64 = region.iter().map(|(_, v)| v).sum();
    let mut shown_sum = 0.0;
    for (un, v, f) in &got {
        if un.contains("[Region]") {
            assert!(close(v.expect("the region total is shown"), total), "{v:?} vs {total}");
            continue;
        }
        let code: i64 = un.rsplit("&[").next().unwrap().trim_end_matches(']').parse().unwrap();
        let expected = all[&code].1;
        if code == LAESOE || code == complement {
            assert_eq!(*v, None, "{un} is suppressed: no value");
            assert_eq!(f.as_deref(), Some(".."), "{un} shows the marker");
        } else {
            assert!(close(v.expect("shown"), expected), "{un}: {v:?} vs {expected}");
            shown_sum += expected;
        }
    }
    // The total minus what is shown is the sum of two hidden cells, not Læsø's value.
    let hidden = total - shown_sum;
    assert!(
        (hidden - all[&LAESOE].1).abs() > 0.5,
        "the region total minus the shown kommuner must not reveal Læsø ({hidden})"
    );

    // Asked alone, the complement is still suppressed (the choice does not depend on the query).
    let a = s
        .mdx_as(
            &format!(
                "SELECT {{[Measures].[Indbyggere]}} ON 0, {{{}}} ON 1 FROM [Benchmark] WHERE [Tid].[Kalender].[Måned].&[{month}]",
                kommune(complement)
            ),
            1030,
            AARHUS,
        )
        .ok();
    assert_eq!(rows(&a)[0].1, None, "the complement alone is suppressed too");

    // A kommune of another region well above k is shown, with the SQL value.
    let (big, (_, big_v)) = all
        .iter()
        .filter(|(_, (r, v))| *r != NORDJYLLAND && *v >= 10.0 * k as f64)
        .max_by(|a, b| a.1.1.total_cmp(&b.1.1))
        .expect("a large kommune");
    let a = s
        .mdx_as(
            &format!(
                "SELECT {{[Measures].[Indbyggere]}} ON 0, {{{}}} ON 1 FROM [Benchmark] WHERE [Tid].[Kalender].[Måned].&[{month}]",
                kommune(*big)
            ),
            1030,
            AARHUS,
        )
        .ok();
    assert!(close(rows(&a)[0].1.expect("shown"), *big_v));

    // Totals over a set the client chose are suppressed: a subselect of Læsø and the
    // complement's neighbour, and a calculated member aggregating them.
    let other = region[2].0;
    let a = s
        .mdx_as(
            &format!(
                "SELECT {{[Measures].[Indbyggere]}} ON 0, {{[Kommune].[Geografi].[All]}} ON 1 \
                 FROM (SELECT {{{}, {}}} ON 0 FROM [Benchmark]) WHERE [Tid].[Kalender].[Måned].&[{month}]",
                kommune(LAESOE),
                kommune(other)
            ),
            1030,
            AARHUS,
        )
        .ok();
    assert_eq!(
        rows(&a)[0].1,
        None,
        "a total over a subselect is suppressed: {:?}",
        rows(&a)
    );
    let a = s
        .mdx_as(
            &format!(
                "WITH MEMBER [Kommune].[Geografi].[To] AS Aggregate({{{}, {}}}) \
                 SELECT {{[Measures].[Nettodriftsudgifter]}} ON 0, {{[Kommune].[Geografi].[To], {}}} ON 1 \
                 FROM [Benchmark] WHERE [Tid].[Kalender].[Måned].&[{month}]",
                kommune(LAESOE),
                kommune(other),
                kommune(other)
            ),
            1030,
            AARHUS,
        )
        .ok();
    let r = rows(&a);
    assert_eq!(r[0].1, None, "a calculated member over kommuner is suppressed: {r:?}");
    let expected: f64 = s
        .duck()
        .query_row(
            &format!(
                "SELECT sum(nettodriftsudgifter)::DOUBLE FROM {} WHERE kommunekode = {other} AND maaned_id = {month}",
                s.table("benchmark", "noegletal")
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        close(r[1].1.expect("the kommune itself is shown"), expected),
        "{r:?} vs {expected}"
    );

    // The benchmark cube shows every kommune to a kommune's analyst; an individual-level
    // cube only their own.
    let a = s
        .mdx_as(
            "SELECT {} ON 0, [Kommune].[Geografi].[Kommune].Members ON 1 FROM [Benchmark]",
            1030,
            AARHUS,
        )
        .ok();
    assert_eq!(a.axes[1].len(), 98);
    let a = s
        .mdx_as(
            "SELECT {} ON 0, [Kommune].[Geografi].[Kommune].Members ON 1 FROM [Befolkning]",
            1030,
            AARHUS,
        )
        .ok();
    let names: Vec<&str> = a.axes[1].iter().map(|t| t[0].0.as_str()).collect();
    assert_eq!(names, [kommune(751)]);

    // No drillthrough on the benchmark cube.
    let a = s.mdx_as(
        &format!(
            "DRILLTHROUGH SELECT FROM [Benchmark] WHERE ({}, [Tid].[Kalender].[Måned].&[{month}])",
            kommune(LAESOE)
        ),
        1030,
        AARHUS,
    );
    assert!(a.raw.contains("Fault") && a.raw.contains("benchmark"), "{}", a.raw);

    // The comparison group: per user, from the municipality table by the documented default
    // rule (same region and population band, or the band nationwide when that gives < 5).
    let csv = std::fs::read_to_string(common::repo_root().join("data/municipalities.csv")).unwrap();
    let table: Vec<(i64, i64, i64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[2].parse().unwrap(), f[4].parse().unwrap())
        })
        .collect();
    let band = |p: i64| [0, 20_000, 50_000, 100_000].iter().rposition(|&b| p >= b).unwrap();
    let group_of = |code: i64| -> Vec<i64> {
        let &(_, region, pop) = table.iter().find(|t| t.0 == code).unwrap();
        let regional: Vec<i64> = table
            .iter()
            .filter(|t| t.1 == region && band(t.2) == band(pop))
            .map(|t| t.0)
            .collect();
        if regional.len() >= 5 {
            regional
        } else {
            table.iter().filter(|t| band(t.2) == band(pop)).map(|t| t.0).collect()
        }
    };
    for (user, code) in [(("laesoe", "laesoe"), LAESOE), (AARHUS, 751)] {
        let a = s
            .mdx_as(
                "SELECT {} ON 0, [Kommune].[Geografi].[Sammenligningsgruppe] ON 1 FROM [Benchmark]",
                1030,
                user,
            )
            .ok();
        let mut got: Vec<String> = a.axes[1].iter().map(|t| t[0].0.clone()).collect();
        got.sort();
        let mut want: Vec<String> = group_of(code).into_iter().map(kommune).collect();
        want.sort();
        assert_eq!(got, want, "comparison group of {code}");
        assert!(want.len() >= 2);
    }
    // In an individual-level cube the group holds only what the user may see: their own.
    let a = s
        .mdx_as(
            "SELECT {} ON 0, [Kommune].[Geografi].[Sammenligningsgruppe] ON 1 FROM [Befolkning]",
            1030,
            AARHUS,
        )
        .ok();
    let names: Vec<&str> = a.axes[1].iter().map(|t| t[0].0.as_str()).collect();
    assert_eq!(names, [kommune(751)]);

    // The audit log holds one line per statement above (all on non-public cubes): ten as
    // aarhus, one as laesoe, written before each answer.
    let log = std::fs::read_to_string(first.data_dir.join("state").join("audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "query" || v["kind"] == "drillthrough")
        .collect();
    let of = |u: &str| lines.iter().filter(|v| v["user"] == u).collect::<Vec<_>>();
    assert_eq!(of("dev:aarhus").len(), 10, "{log}");
    assert_eq!(of("dev:laesoe").len(), 1, "{log}");
    for v in &lines {
        assert!(
            v["duration_ms"].as_f64().is_some() && v["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
        assert!(v["statement"].as_str().is_some_and(|t| t.contains("SELECT")), "{v}");
    }
    assert!(of("dev:aarhus").iter().all(|v| v["scope"] == "751"));
    let dt: Vec<_> = of("dev:aarhus")
        .into_iter()
        .filter(|v| v["kind"] == "drillthrough")
        .collect();
    assert_eq!(dt.len(), 1);
    assert_eq!(dt[0]["outcome"], "fault");
    assert!(
        of("dev:aarhus")
            .iter()
            .any(|v| v["cube"] == "Benchmark" && v["cells"].as_u64().is_some_and(|c| c > 0))
    );
}

/// Monthly values of `column` for every kommune of Nordjylland in `year`, from the Parquet files.
fn monthly(s: &Server, column: &str, year: i64) -> BTreeMap<(i64, i64), f64> {
    let c = s.duck();
    let sql = format!(
        "SELECT b.kommunekode::BIGINT, b.maaned_id::BIGINT, sum(b.{column})::DOUBLE \
         FROM {} b JOIN {} k ON b.kommunekode = k.kommunekode \
         WHERE k.regionskode = {NORDJYLLAND} AND b.maaned_id BETWEEN {year}01 AND {year}12 GROUP BY 1, 2",
        s.table("benchmark", "noegletal"),
        s.table("faelles", "kommune")
    );
    let mut st = c.prepare(&sql).unwrap();
    st.query_map([], |r| {
        Ok(((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?), r.get::<_, f64>(2)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Complementary suppression across two hierarchies: one cell (a kommune in one month) is
/// below k. Its complement in that month (another kommune) would then be the only suppressed
/// month of that kommune's quarter, and so recoverable from the quarter total, unless
/// suppression continues along Tid, and so on. In the answer (Nordjylland's kommuner × the
/// months of a year), no sibling group along either hierarchy may hold exactly one suppressed
/// cell, and every shown value equals SQL.
#[test]
fn complementary_suppression_holds_across_hierarchies() {
    let first = Server::start();
    let year = last_month(&first) / 100 - 1;
    // A measure that is its own disclosure count, where one cell is strictly the smallest.
    let (measure, data, k, primary) = [("Ansatte", "ansatte"), ("Indbyggere", "indbyggere")]
        .iter()
        .find_map(|(measure, column)| {
            let data = monthly(&first, column, year);
            let mut v: Vec<(f64, (i64, i64))> = data.iter().map(|(c, v)| (*v, *c)).collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            (v.len() > 2 && v[0].0 > 0.0 && v[1].0 > v[0].0).then(|| (*measure, data.clone(), v[1].0 as i64, v[0].1))
        })
        .expect("a benchmark measure with a unique smallest kommune-month in Nordjylland");
    assert_eq!(data.len() % 12, 0, "twelve months per kommune in {year}");
    assert_eq!(
        data.values().filter(|v| (**v as i64) < k).count(),
        1,
        "exactly one cell below k = {k}"
    );
    let tmp = tempfile::tempdir().unwrap();
    definitions_with_k(tmp.path(), k);
    let s = Server::start_in_with_definitions(&first.data_dir, tmp.path());
    let q = format!(
        "SELECT Descendants([Tid].[Kalender].[År].&[{year}], [Tid].[Kalender].[Måned]) ON 0, \
         [Kommune].[Geografi].[Region].&[{NORDJYLLAND}].Children ON 1 \
         FROM [Benchmark] WHERE ([Measures].[{measure}])"
    );
    let a = s.mdx_as(&q, 1030, AARHUS).ok();
    let key = |un: &str| -> i64 { un.rsplit("&[").next().unwrap().trim_end_matches(']').parse().unwrap() };
    let months: Vec<i64> = a.axes[0].iter().map(|t| key(&t[0].0)).collect();
    let kommuner: Vec<i64> = a.axes[1].iter().map(|t| key(&t[0].0)).collect();
    assert_eq!(months.len(), 12);
    let mut suppressed: BTreeSet<(i64, i64)> = BTreeSet::new();
    for (r, &kom) in kommuner.iter().enumerate() {
        for (c, &m) in months.iter().enumerate() {
            let cell = a.cells.get(&((r * months.len() + c) as u64));
            match cell {
                Some((v, _, f)) if v.is_empty() || v.parse::<f64>().is_err() => {
                    assert_eq!(f.as_deref(), Some(".."), "{kom} {m}");
                    suppressed.insert((kom, m));
                }
                Some((v, _, _)) => {
                    let want = data[&(kom, m)];
                    assert!(close(v.parse().unwrap(), want), "{kom} {m}: {v} vs {want}");
                }
                None => panic!("{kom} {m}: no cell"),
            }
        }
    }
    assert!(suppressed.contains(&primary), "{primary:?} in {suppressed:?}");
    // Along Kommune: each month; along Tid: each kommune's quarter.
    for &m in &months {
        let n = kommuner.iter().filter(|&&kom| suppressed.contains(&(kom, m))).count();
        assert_ne!(
            n, 1,
            "month {m}: one suppressed kommune is recoverable from the region ({suppressed:?})"
        );
    }
    for &kom in &kommuner {
        for quarter in 0..4 {
            let n = months
                .iter()
                .filter(|&&m| (m % 100 - 1) / 3 == quarter && suppressed.contains(&(kom, m)))
                .count();
            assert_ne!(
                n,
                1,
                "kommune {kom}, quarter {}: one suppressed month is recoverable from the quarter ({suppressed:?})",
                quarter + 1
            );
        }
    }
    // The cascade reached beyond the primary cell's own row and column.
    assert!(
        suppressed.iter().any(|&(kom, m)| kom != primary.0 && m != primary.1),
        "{suppressed:?}"
    );
}
