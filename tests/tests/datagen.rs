//! End-to-end tests of `datakube generate` (crate `datakube-datagen`).
//!
//! One generation at a small scale is shared by all tests; every check is hand-written SQL
//! over the generated Parquet files (or plain Rust over the files), never a call into the
//! generator's internals, so the tests check the contract in docs/datasets.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use datakube_datagen::{GenerateOptions, NoProgress, dataset_names, generate, is_generated};
use datakube_engine::duckdb::Connection;
use datakube_engine::{EngineConfig, open_connection, sql_string};
use sha2::{Digest, Sha256};

const SCALE: f64 = 0.005;
const SEED: u64 = datakube_datagen::DEFAULT_SEED;

/// Fact tables: (dataset, table).
const FACTS: &[(&str, &str)] = &[
    ("befolkning", "bestand"),
    ("oekonomi", "postering"),
    ("personale", "fravaer"),
    ("beskaeftigelse", "ydelse_uge"),
    ("skole", "elev_fag"),
    ("benchmark", "noegletal"),
];

fn repo_root() -> PathBuf {
    std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A scratch directory under the target dir, one per test process; directories of
/// processes that are gone are removed first.
fn scratch(name: &str) -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("datagen-tests");
    std::fs::create_dir_all(&base).unwrap();
    static CLEANED: OnceLock<()> = OnceLock::new();
    CLEANED.get_or_init(|| {
        for e in std::fs::read_dir(&base).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if let Some(pid) = n.split('-').next().and_then(|p| p.parse::<u32>().ok())
                && pid != std::process::id()
                && !Path::new("/proc").join(pid.to_string()).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
    let dir = base.join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run_generate(dir: &Path, seed: u64) {
    let opts = GenerateOptions {
        data_dir: dir.to_path_buf(),
        seed,
        scale: SCALE,
        engine: EngineConfig::default(),
        datasets: None,
    };
    let report = generate(&opts, &NoProgress).expect("generate succeeds");
    assert_eq!(report.datasets.len(), dataset_names().len());
}

/// The shared generation (scale 0.005, default seed).
fn data() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("shared");
        run_generate(&dir, SEED);
        dir
    })
}

fn snapshot_dir(data_dir: &Path, dataset: &str) -> PathBuf {
    let base = data_dir.join("datasets").join(dataset);
    let id = std::fs::read_to_string(base.join("CURRENT")).expect("CURRENT exists");
    base.join("snapshots").join(id.trim())
}

/// `read_parquet(...)` over one table of the current snapshot.
fn table(dataset: &str, table: &str) -> String {
    let dir = snapshot_dir(data(), dataset).join(table);
    let glob = if dir.join("data_0.parquet").exists() {
        dir.join("data_0.parquet")
    } else {
        dir.join("*/*.parquet")
    };
    format!(
        "read_parquet({}, hive_partitioning = true)",
        sql_string(&glob.to_string_lossy())
    )
}

fn conn() -> Connection {
    open_connection(&EngineConfig {
        threads: 2,
        ..Default::default()
    })
    .unwrap()
}

fn query_i64(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get::<_, i64>(0))
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
}

fn query_rows(c: &Connection, sql: &str) -> Vec<Vec<String>> {
    let mut st = c.prepare(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let mut rows = st.query([]).unwrap();
    let n = rows.as_ref().unwrap().column_count();
    let mut out = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        out.push((0..n).map(|i| r.get::<_, String>(i).unwrap()).collect());
    }
    out
}

fn sha256_of_parquet_files(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn all_datasets_are_generated_with_manifests() {
    let dir = data();
    assert!(is_generated(dir));
    for ds in dataset_names() {
        let snap = snapshot_dir(dir, ds);
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(snap.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["dataset"].as_str(), Some(*ds));
        assert_eq!(
            manifest["snapshot_id"].as_str(),
            Some(snap.file_name().unwrap().to_str().unwrap())
        );
        assert_eq!(manifest["seed"].as_u64(), Some(SEED));
        assert_eq!(manifest["scale"].as_f64(), Some(SCALE));
        assert!(
            manifest["generated_at"]
                .as_str()
                .is_some_and(|s| s.len() == 20 && s.ends_with('Z'))
        );
        assert!(manifest["known_issues"].is_array());
        assert!(manifest["period"]["from"].is_string() && manifest["period"]["to"].is_string());
        // rows in the manifest = rows in the files
        let c = conn();
        let tables = manifest["tables"].as_object().unwrap();
        assert!(!tables.is_empty());
        for (name, t) in tables {
            let rows = t["rows"].as_i64().unwrap();
            assert_eq!(
                query_i64(&c, &format!("SELECT count(*) FROM {}", table(ds, name))),
                rows,
                "{ds}.{name}"
            );
            let partitioned = FACTS.contains(&(*ds, name.as_str()));
            assert_eq!(
                t["partitioned_by"].as_str(),
                partitioned.then_some("aar"),
                "{ds}.{name}"
            );
            assert_eq!(
                t["files"].as_i64(),
                Some(if partitioned { 10 } else { 1 }),
                "{ds}.{name}"
            );
        }
        // synthetic data is complete for every kommune
        let completeness = manifest["completeness"].as_object().unwrap();
        assert_eq!(completeness.len(), 98, "{ds}");
        assert!(
            completeness.values().all(|v| v.as_f64() == Some(1.0)),
            "{ds}: {completeness:?}"
        );
    }
    // no temporary snapshot directories are left behind
    for ds in dataset_names() {
        let snaps = dir.join("datasets").join(ds).join("snapshots");
        let names: Vec<String> = std::fs::read_dir(snaps)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{ds}: {names:?}");
    }
}

/// 1. Exactly 98 municipalities in faelles.kommune and in every fact table.
#[test]
fn ninety_eight_municipalities_everywhere() {
    let c = conn();
    let kommune = table("faelles", "kommune");
    assert_eq!(query_i64(&c, &format!("SELECT count(*) FROM {kommune}")), 98);
    assert_eq!(
        query_i64(&c, &format!("SELECT count(DISTINCT kommunekode) FROM {kommune}")),
        98
    );
    for (ds, t) in FACTS {
        let fact = table(ds, t);
        assert_eq!(
            query_i64(&c, &format!("SELECT count(DISTINCT kommunekode) FROM {fact}")),
            98,
            "{ds}.{t}"
        );
        let unknown = query_i64(
            &c,
            &format!(
                "SELECT count(*) FROM (SELECT DISTINCT kommunekode FROM {fact}) f ANTI JOIN {kommune} k USING (kommunekode)"
            ),
        );
        assert_eq!(unknown, 0, "{ds}.{t} has kommunekoder that are not in faelles.kommune");
    }
}

/// 2. Population per municipality at 2020-01 within 5 % of DST 1 Jan 2020 × scale.
#[test]
fn population_2020_matches_dst_times_scale() {
    let c = conn();
    let csv = repo_root().join("data/municipalities.csv");
    let sql = format!(
        "WITH dst AS (SELECT kommunekode, indbyggere_2020 * {SCALE} AS expected
                      FROM read_csv({}, header = true)),
              gen AS (SELECT kommunekode, sum(antal_borgere) AS n FROM {} WHERE maaned_id = 202001 GROUP BY 1)
         SELECT dst.kommunekode::VARCHAR, expected::VARCHAR, coalesce(n, 0)::VARCHAR
         FROM dst LEFT JOIN gen USING (kommunekode) ORDER BY 1",
        sql_string(&csv.to_string_lossy()),
        table("befolkning", "bestand")
    );
    let rows = query_rows(&c, &sql);
    assert_eq!(rows.len(), 98);
    for r in &rows {
        let expected: f64 = r[1].parse().unwrap();
        let n: f64 = r[2].parse().unwrap();
        assert!(
            (n - expected).abs() <= 0.05 * expected + 0.5,
            "kommune {}: {n} residents, expected ≈ {expected}",
            r[0]
        );
    }
    // tiny Læsø is there too
    assert!(
        rows.iter()
            .any(|r| r[0] == "825" && r[2].parse::<f64>().unwrap() >= 5.0)
    );
}

/// 3. Økonomi: monthly postings sum to the yearly totals exactly; all 120 months present.
#[test]
fn oekonomi_postings_add_up_to_yearly_totals() {
    let c = conn();
    let post = table("oekonomi", "postering");
    let total = table("oekonomi", "aarstotal");
    let mismatches = query_i64(
        &c,
        &format!(
            "WITH p AS (SELECT aar, kommunekode, beloebstype_kode, sum(beloeb) AS s FROM {post} GROUP BY ALL)
             SELECT count(*) FROM p FULL JOIN {total} t USING (aar, kommunekode, beloebstype_kode)
             WHERE p.s IS DISTINCT FROM t.beloeb"
        ),
    );
    assert_eq!(mismatches, 0);
    // also per kommune and year over both amount types
    let mismatches = query_i64(
        &c,
        &format!(
            "WITH p AS (SELECT aar, kommunekode, sum(beloeb) AS s FROM {post} GROUP BY ALL),
                  t AS (SELECT aar, kommunekode, sum(beloeb) AS s FROM {total} GROUP BY ALL)
             SELECT count(*) FROM p FULL JOIN t USING (aar, kommunekode) WHERE p.s IS DISTINCT FROM t.s"
        ),
    );
    assert_eq!(mismatches, 0);
    assert_eq!(query_i64(&c, &format!("SELECT count(*) FROM {total}")), 98 * 10 * 2);
    let types: Vec<String> = query_rows(&c, &format!("SELECT DISTINCT typeof(beloeb) FROM {post}"))
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(types, vec!["DECIMAL(18,2)".to_string()]);
    assert_eq!(
        query_i64(&c, &format!("SELECT count(DISTINCT maaned_id) FROM {post}")),
        120
    );
    let incomplete = query_i64(
        &c,
        &format!(
            "SELECT count(*) FROM (SELECT kommunekode, beloebstype_kode, count(DISTINCT maaned_id) AS n FROM {post}
                                   GROUP BY ALL) WHERE n <> 120"
        ),
    );
    assert_eq!(
        incomplete, 0,
        "every kommune has Regnskab and Budget postings in all 120 months"
    );
    // ≈ 100 million × scale rows
    let rows = query_i64(&c, &format!("SELECT count(*) FROM {post}"));
    assert!(rows as f64 >= 0.95e8 * SCALE, "{rows} rows");
    // net operating spending per synthetic inhabitant is realistic (55–60 k kr in 2020)
    let per_inhabitant = query_i64(
        &c,
        &format!(
            "SELECT (sum(beloeb) / (SELECT sum(indbyggere) * {SCALE} FROM {}))::BIGINT FROM {post}
             WHERE aar = 2020 AND beloebstype_kode = 'R' AND dranst_kode IN (1, 2)",
            table("faelles", "kommune")
        ),
    );
    assert!(
        (52_000..=63_000).contains(&per_inhabitant),
        "{per_inhabitant} kr per inhabitant"
    );
    // at least 40 real functions spanning hovedkonto 0–6
    assert!(query_i64(&c, &format!("SELECT count(DISTINCT funktion_kode) FROM {post}")) >= 40);
    assert_eq!(
        query_i64(
            &c,
            &format!("SELECT count(DISTINCT left(funktion_kode, 1)) FROM {post}")
        ),
        7
    );
}

/// A CPR number's first six digits DDMMYY form a real calendar date for some century.
fn is_valid_cpr_date(ddmmyy: &str) -> bool {
    let d: u32 = ddmmyy[0..2].parse().unwrap();
    let m: u32 = ddmmyy[2..4].parse().unwrap();
    let y: u32 = ddmmyy[4..6].parse().unwrap();
    let leap = |year: u32| (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    [1800, 1900, 2000].iter().any(|c| {
        let year = c + y;
        let days = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap(year) => 29,
            2 => 28,
            _ => return false,
        };
        (1..=days).contains(&d)
    })
}

#[test]
fn cpr_date_check_itself() {
    assert!(is_valid_cpr_date("010190"));
    assert!(is_valid_cpr_date("290200")); // 2000 is a leap year
    assert!(is_valid_cpr_date("311299"));
    assert!(!is_valid_cpr_date("300290"));
    assert!(!is_valid_cpr_date("310490"));
    assert!(!is_valid_cpr_date("000190"));
    assert!(!is_valid_cpr_date("011390"));
}

/// 4. No person id anywhere is a valid CPR number.
#[test]
fn no_person_id_is_a_valid_cpr_number() {
    let c = conn();
    let sql = format!(
        "SELECT DISTINCT id FROM (SELECT person_id AS id FROM {} UNION ALL SELECT person_id FROM {}
                                  UNION ALL SELECT elev_id FROM {})",
        table("befolkning", "person"),
        table("beskaeftigelse", "ydelse_uge"),
        table("skole", "elev_fag")
    );
    let ids: Vec<String> = query_rows(&c, &sql).into_iter().map(|r| r[0].clone()).collect();
    assert!(ids.len() > 1000, "{} ids", ids.len());
    for id in &ids {
        let b = id.as_bytes();
        assert!(
            b.len() == 11 && b[6] == b'-' && b.iter().enumerate().all(|(i, c)| i == 6 || c.is_ascii_digit()),
            "{id:?} is not of the form DDMMYY-SSSS"
        );
        assert!(!is_valid_cpr_date(&id[0..6]), "{id} would be a valid CPR number");
    }
    // person ids are unique in the resident table
    let person = table("befolkning", "person");
    assert_eq!(
        query_i64(
            &c,
            &format!("SELECT count(*) - count(DISTINCT person_id) FROM {person}")
        ),
        0,
        "duplicate person ids"
    );
    // DREAM-like: one benefit code per person per week
    let ydelse = table("beskaeftigelse", "ydelse_uge");
    assert_eq!(
        query_i64(
            &c,
            &format!("SELECT count(*) - count(DISTINCT (uge_id, person_id)) FROM {ydelse}")
        ),
        0,
        "a person has two benefits in the same week"
    );
    // employee ids are M + 7 digits
    let bad = query_i64(
        &c,
        &format!(
            "SELECT count(*) FROM {} WHERE NOT regexp_full_match(medarbejder_id, 'M[0-9]{{7}}')",
            table("personale", "fravaer")
        ),
    );
    assert_eq!(bad, 0);
}

/// 5. Same seed → byte-identical Parquet files; different seed → different files.
#[test]
fn generation_is_deterministic() {
    let first = data();
    let again = scratch("again");
    run_generate(&again, SEED);
    let other = scratch("other-seed");
    run_generate(&other, SEED + 1);
    for ds in dataset_names() {
        let a = sha256_of_parquet_files(&snapshot_dir(first, ds));
        let b = sha256_of_parquet_files(&snapshot_dir(&again, ds));
        assert!(!a.is_empty());
        assert_eq!(a, b, "{ds}: same seed gave different files");
        assert_eq!(
            snapshot_dir(first, ds).file_name(),
            snapshot_dir(&again, ds).file_name()
        );
        let o = sha256_of_parquet_files(&snapshot_dir(&other, ds));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            o.keys().collect::<Vec<_>>(),
            "{ds}: same files"
        );
        if *ds != "faelles" {
            // the shared dimensions do not depend on the seed; everything else does
            let differing = a.iter().filter(|(k, v)| o.get(*k) != Some(v)).count();
            assert!(differing > 0, "{ds}: a different seed gave identical files");
            for (dsx, t) in FACTS.iter().filter(|(d, _)| d == ds) {
                let changed = a
                    .iter()
                    .filter(|(k, v)| k.starts_with(&format!("{t}/")) && o.get(*k) != Some(v))
                    .count();
                assert_eq!(changed, 10, "{dsx}.{t}: every year partition changes with the seed");
            }
        }
    }
    // generating again into the same directory reuses the snapshots
    let opts = GenerateOptions {
        data_dir: again.clone(),
        seed: SEED,
        scale: SCALE,
        engine: EngineConfig::default(),
        datasets: Some(vec!["faelles".into(), "oekonomi".into()]),
    };
    let report = generate(&opts, &NoProgress).unwrap();
    assert!(report.datasets.iter().all(|d| d.reused), "{report:?}");
    for ds in ["faelles", "oekonomi"] {
        let snaps = std::fs::read_dir(again.join("datasets").join(ds).join("snapshots"))
            .unwrap()
            .count();
        assert_eq!(snaps, 1, "{ds}: identical snapshot should be reused");
    }
    let _ = std::fs::remove_dir_all(&again);
    let _ = std::fs::remove_dir_all(&other);
}

/// 6. Stock-flow identity per kommune: stock(m) − stock(m−1) = in + born − out − dead.
#[test]
fn population_stock_and_flows_agree() {
    let c = conn();
    let sql = format!(
        "WITH t AS (SELECT kommunekode, maaned_id, sum(antal_borgere) AS stock,
                           sum(tilflyttede + foedte - fraflyttede - doede) AS net,
                           sum(tilflyttede + foedte + fraflyttede + doede) AS moves
                    FROM {} GROUP BY ALL),
              d AS (SELECT *, stock - lag(stock) OVER (PARTITION BY kommunekode ORDER BY maaned_id) AS diff FROM t)
         SELECT (count(*) FILTER (WHERE maaned_id > 201601 AND diff <> net))::VARCHAR,
                (count(*) FILTER (WHERE maaned_id > 201601))::VARCHAR,
                sum(moves)::BIGINT::VARCHAR
         FROM d",
        table("befolkning", "bestand")
    );
    let r = query_rows(&c, &sql);
    let (violations, checked, moves): (i64, i64, i64) = (
        r[0][0].parse().unwrap(),
        r[0][1].parse().unwrap(),
        r[0][2].parse().unwrap(),
    );
    assert_eq!(checked, 98 * 119);
    assert_eq!(violations, 0);
    assert!(moves > 1000, "flows are not trivially zero: {moves}");
    // yearly rates are in a realistic range (births ≈ 1.1 %, deaths ≈ 1.0 %, moves in ≈ 5 %)
    let rates = query_rows(
        &c,
        &format!(
            "SELECT (sum(foedte) / (sum(antal_borgere) / 12))::VARCHAR, (sum(doede) / (sum(antal_borgere) / 12))::VARCHAR,
                    (sum(tilflyttede) / (sum(antal_borgere) / 12))::VARCHAR
             FROM {} WHERE aar BETWEEN 2017 AND 2024",
            table("befolkning", "bestand")
        ),
    );
    let f = |i: usize| rates[0][i].parse::<f64>().unwrap();
    assert!((0.007..0.015).contains(&f(0)), "births {}", f(0));
    assert!((0.007..0.015).contains(&f(1)), "deaths {}", f(1));
    assert!((0.02..0.10).contains(&f(2)), "moves in {}", f(2));
}

/// 7. Every Parquet file of a fact table sits under aar=YYYY/ and contains only that year.
#[test]
fn fact_partitions_hold_only_their_year() {
    let c = conn();
    for (ds, t) in FACTS {
        let dir = snapshot_dir(data(), ds).join(t);
        let mut years = BTreeSet::new();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let year: i64 = name
                .strip_prefix("aar=")
                .unwrap_or_else(|| panic!("{ds}.{t}: unexpected entry {name}"))
                .parse()
                .unwrap();
            let files: Vec<String> = std::fs::read_dir(e.path())
                .unwrap()
                .map(|f| f.unwrap().file_name().to_string_lossy().into())
                .collect();
            assert_eq!(files, vec!["data_0.parquet".to_string()], "{ds}.{t} aar={year}");
            let file = sql_string(&e.path().join("data_0.parquet").to_string_lossy());
            let in_file = query_rows(
                &c,
                &format!("SELECT DISTINCT aar::VARCHAR FROM read_parquet({file}, hive_partitioning = false)"),
            );
            assert_eq!(in_file, vec![vec![year.to_string()]], "{ds}.{t}: file under aar={year}");
            // the period columns agree with the partition
            let period_col = match *t {
                "ydelse_uge" => Some("uge_id"),
                "elev_fag" => None,
                _ => Some("maaned_id"),
            };
            if let Some(col) = period_col {
                let bad = query_i64(
                    &c,
                    &format!(
                        "SELECT count(*) FROM read_parquet({file}, hive_partitioning = false) WHERE {col} // 100 <> {year}"
                    ),
                );
                assert_eq!(bad, 0, "{ds}.{t} aar={year}: rows of another year");
            }
            years.insert(year);
        }
        assert_eq!(years, (2016..=2025).collect::<BTreeSet<_>>(), "{ds}.{t}");
    }
}

/// The columns and types of every table are those of docs/datasets.md.
#[test]
fn tables_match_the_documented_contract() {
    let doc = std::fs::read_to_string(repo_root().join("docs/datasets.md")).unwrap();
    let c = conn();
    let mut checked = 0;
    let mut dataset = String::new();
    for line in doc.lines() {
        if let Some(rest) = line.strip_prefix("### `") {
            dataset = rest.split('`').next().unwrap().to_string();
            continue;
        }
        if line.starts_with("## ") {
            dataset.clear();
            continue;
        }
        if !line.starts_with("| `") || dataset.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        let name = cells[1].split('`').nth(1).unwrap().to_string();
        let columns_text = cells[2];
        // backticked `name TYPE` or `name`
        let documented: Vec<(String, Option<String>)> = columns_text
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|s| {
                let mut parts = s.splitn(2, ' ');
                (parts.next().unwrap().to_string(), parts.next().map(|t| t.to_string()))
            })
            .filter(|(n, _)| {
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        let all_varchar = columns_text.contains("(all VARCHAR)") || columns_text.contains("(VARCHAR)");
        let dir = snapshot_dir(data(), &dataset).join(&name);
        let glob = if dir.join("data_0.parquet").exists() {
            dir.join("data_0.parquet")
        } else {
            dir.join("*/*.parquet")
        };
        let actual: Vec<Vec<String>> = query_rows(
            &c,
            &format!(
                "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet({}, hive_partitioning = false))",
                sql_string(&glob.to_string_lossy())
            ),
        );
        let actual_names: Vec<&str> = actual.iter().map(|r| r[0].as_str()).collect();
        let doc_names: Vec<&str> = documented.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(actual_names, doc_names, "{dataset}.{name}: columns");
        for ((col, ty), row) in documented.iter().zip(&actual) {
            let expected = ty.clone().or_else(|| all_varchar.then(|| "VARCHAR".to_string()));
            if let Some(expected) = expected {
                assert_eq!(&row[1], &expected, "{dataset}.{name}.{col}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 27, "all documented tables were checked");
}
