//! The result cache (issue 6): a repeated statement is answered from the cache, principals
//! with different scopes never share an answer, and a new data snapshot makes every cached
//! answer vanish. The service runs in-process (`datakube_bench::Harness`: the XMLA service
//! with the query executor, as `serve` wires it); expected numbers come from hand-written
//! DuckDB SQL over the same Parquet files (the workload's SQL in `server/bench`).

use datakube_bench::{Harness, Scope, workload};
use datakube_engine::EngineConfig;

fn generate(dir: &std::path::Path, seed: u64, datasets: Option<Vec<String>>) {
    let opts = datakube_datagen::GenerateOptions {
        data_dir: dir.to_path_buf(),
        seed,
        scale: 0.002,
        engine: EngineConfig::default(),
        datasets,
    };
    datakube_datagen::generate(&opts, &datakube_datagen::progress::NoProgress).expect("generate");
}

fn harness(dir: &std::path::Path) -> Harness {
    let defs = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../cube-definitions");
    Harness::open(dir, &defs, &EngineConfig::default(), 64 << 20).expect("harness")
}

fn statement(name: &str) -> datakube_bench::Statement {
    workload()
        .into_iter()
        .find(|s| s.name.starts_with(name))
        .expect("workload statement")
}

#[test]
fn repeated_statement_is_served_from_cache_and_scopes_never_share() {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), datakube_datagen::DEFAULT_SEED, None);
    let h = harness(tmp.path());
    let stmt = statement("Regnskab, Budget, Afvigelse by Region");
    let admin = Scope::admin(751, 1082);
    let aarhus = Scope::kommune(751, 1082);

    let (first, _) = h.check(&stmt, &admin).unwrap().expect("has SQL");
    let s = h.cache_stats();
    assert_eq!((s.hits, s.misses, s.entries), (0, 1, 1), "{s:?}");

    // The same statement with other whitespace: a hit, the same numbers as the SQL.
    let mut spaced = stmt.clone();
    let text = format!("  {}\n", stmt.mdx.replace(", ", ",\n    "));
    spaced.mdx = Box::leak(text.into_boxed_str());
    let (again, _) = h.check(&spaced, &admin).unwrap().unwrap();
    assert_eq!(first, again);
    let s = h.cache_stats();
    assert_eq!((s.hits, s.misses), (1, 1), "{s:?}");
    assert!(s.bytes > 0);

    // Aarhus's analyst: the admin's answer is not shared (a miss), and the numbers are
    // Aarhus's own (checked against SQL with the row scope).
    let (scoped, _) = h.check(&stmt, &aarhus).unwrap().unwrap();
    assert_ne!(scoped.values, first.values, "a kommune sees less than all rows");
    let s = h.cache_stats();
    assert_eq!((s.hits, s.misses, s.entries), (1, 2, 2), "{s:?}");
    let (scoped_again, _) = h.check(&stmt, &aarhus).unwrap().unwrap();
    assert_eq!(scoped, scoped_again);
    assert_eq!(h.cache_stats().hits, 2);

    // Without the cache every statement runs (no hits counted).
    h.set_cache(false);
    h.check(&stmt, &admin).unwrap().unwrap();
    assert_eq!(h.cache_stats().hits, 2);
}

#[test]
fn a_new_snapshot_invalidates_cached_answers() {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), datakube_datagen::DEFAULT_SEED, None);
    let h = harness(tmp.path());
    let stmt = statement("Regnskab, Budget, Afvigelse by Region");
    let admin = Scope::admin(751, 1082);

    let (old, old_sql) = h.check(&stmt, &admin).unwrap().unwrap();
    let version = h.service.runtime().data_version.clone();
    assert!(version.contains("oekonomi="), "{version}");

    // A new Økonomi snapshot (another seed): CURRENT moves, the numbers change.
    generate(
        tmp.path(),
        datakube_datagen::DEFAULT_SEED + 1,
        Some(vec!["oekonomi".into()]),
    );
    let new_sql = h.sql(&stmt, &admin).unwrap().unwrap();
    assert_ne!(new_sql.values, old_sql.values, "the new snapshot has other numbers");

    // The running runtime still answers from the cache what it answered before.
    let cached = h.run(&stmt, &admin).unwrap();
    assert_eq!(cached, old);
    assert_eq!(h.cache_stats().hits, 1);

    // A new runtime (what a refresh loads): a new data version, the cache is empty, and the
    // answer is the new snapshot's.
    h.reload().unwrap();
    assert_ne!(h.service.runtime().data_version, version);
    assert_eq!(h.cache_stats().entries, 0);
    let fresh = h.run(&stmt, &admin).unwrap();
    datakube_bench::same(&stmt, &fresh, &new_sql).unwrap();
    let s = h.cache_stats();
    assert_eq!((s.hits, s.misses), (1, 2), "{s:?}");
}
