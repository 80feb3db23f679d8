//! Aggregates: pre-aggregated copies of a cube's fact table, declared in YAML
//! (`aggregates:` of a cube), built into `<snapshot>/_aggregates/<cube>/<name>/` beside the
//! dataset snapshot, and read by [`crate::cells::CellFetcher`] instead of the fact table when
//! one covers a statement.
//!
//! An aggregate folder holds `data.parquet` (one row per row-scope value and level keys; one
//! column per measure, its `filter` applied at build time) and `aggregate.json`
//! ([`AggregateMeta`]: the columns and the row count the planner compares). It is written
//! into a `.tmp-<pid>-…` folder and renamed, so a half-built aggregate is never read; a
//! missing folder means the aggregate is not used.

use std::path::PathBuf;

use datakube_engine::storage::Snapshots;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use datakube_engine::{Engine, sql_ident, sql_string};
use datakube_model::{Aggregate, Aggregator, Cube, MeasureKind, Source};
use serde::{Deserialize, Serialize};

/// 0: not decided yet (read `DATAKUBE_NO_AGGREGATES`), 1: on, 2: off.
static ENABLED: AtomicU8 = AtomicU8::new(0);
static READS: AtomicU64 = AtomicU64::new(0);

/// Whether statements may read aggregates (process-wide; on unless `DATAKUBE_NO_AGGREGATES`
/// is set to something other than `0`/`false`, or [`set_enabled`]`(false)`).
pub fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let off = std::env::var("DATAKUBE_NO_AGGREGATES")
                .is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"));
            ENABLED.store(if off { 2 } else { 1 }, Ordering::Relaxed);
            !off
        }
    }
}

/// Switch aggregates on or off for this process (`--no-aggregates`, the benchmark's columns).
pub fn set_enabled(on: bool) {
    ENABLED.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// How many statements have read an aggregate in this process.
pub fn reads() -> u64 {
    READS.load(Ordering::Relaxed)
}

pub(crate) fn count_read() {
    READS.fetch_add(1, Ordering::Relaxed);
}

/// `aggregate.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AggregateMeta {
    pub cube: String,
    pub name: String,
    /// Rows in `data.parquet` (the planner reads the smallest covering aggregate).
    pub rows: u64,
    /// The cube's row-scope column, kept under its own name.
    pub row_scope_column: Option<String>,
    pub levels: Vec<LevelColumn>,
    pub measures: Vec<MeasureColumn>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LevelColumn {
    /// `[Kommune].[Geografi]`.
    pub hierarchy: String,
    pub level: String,
    pub column: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeasureColumn {
    pub measure: String,
    /// `sum`, `count`, `min`, `max` as built.
    pub aggregator: String,
    pub column: String,
}

impl AggregateMeta {
    pub fn level_column(&self, hierarchy: &str, level: &str) -> Option<&str> {
        self.levels
            .iter()
            .find(|l| l.hierarchy == hierarchy && l.level == level)
            .map(|l| l.column.as_str())
    }

    pub fn measure(&self, name: &str) -> Option<&MeasureColumn> {
        self.measures.iter().find(|m| m.measure == name)
    }
}

/// A built aggregate found on disk.
#[derive(Debug, Clone)]
pub struct Built {
    pub dir: PathBuf,
    pub meta: AggregateMeta,
}

impl Built {
    pub fn parquet(&self) -> PathBuf {
        self.dir.join("data.parquet")
    }
}

/// Folder-safe form of a cube name: `Økonomi` → `oekonomi`, `Beskæftigelse` →
/// `beskaeftigelse`; other characters but ASCII letters and digits become `_`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'æ' => out.push_str("ae"),
            'ø' => out.push_str("oe"),
            'å' => out.push_str("aa"),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => out.push('_'),
        }
    }
    out
}

/// Where the aggregates of `cube` live in its dataset's current snapshot (`None` for cubes
/// whose fact table is not a dataset table).
pub fn aggregates_dir(snapshots: &Snapshots, cube: &Cube) -> Option<PathBuf> {
    // A virtual cube never has aggregates (validation refuses them): it reads its base cubes.
    let Source::Dataset { dataset, .. } = &cube.source else {
        return None;
    };
    if cube.is_virtual() {
        return None;
    }
    let snap = snapshots.dir(dataset)?;
    Some(snap.join("_aggregates").join(slug(&cube.name)))
}

/// The built aggregates of `cube` in the current snapshot (declared and present on disk).
pub fn built(snapshots: &Snapshots, cube: &Cube) -> Vec<Built> {
    let Some(dir) = aggregates_dir(snapshots, cube) else {
        return Vec::new();
    };
    cube.aggregates
        .iter()
        .filter_map(|a| {
            let d = dir.join(&a.name);
            let text = std::fs::read_to_string(d.join("aggregate.json")).ok()?;
            let meta: AggregateMeta = serde_json::from_str(&text).ok()?;
            (meta.cube == cube.name && meta.name == a.name).then_some(Built { dir: d, meta })
        })
        .collect()
}

/// Build (or rebuild) one aggregate of `cube` from the current snapshot of its dataset.
pub fn build(engine: &Engine, snapshots: &Snapshots, cube: &Cube, agg: &Aggregate) -> Result<AggregateMeta, String> {
    if cube.is_virtual() {
        return Err(format!(
            "cube [{}] is virtual: aggregates are built for its base cubes",
            cube.name
        ));
    }
    let dir = aggregates_dir(snapshots, cube)
        .ok_or_else(|| format!("cube [{}]: aggregates need a dataset fact table", cube.name))?;
    let fact = datakube_members::fact_relation(snapshots, cube)?;
    let mut select: Vec<String> = Vec::new();
    let mut joins: Vec<String> = Vec::new();
    let mut levels: Vec<LevelColumn> = Vec::new();
    let rsc = cube.security.row_scope_column.clone();
    if let Some(c) = &rsc {
        select.push(format!("f.{} AS {}", sql_ident(c), sql_ident(c)));
    }
    for (n, (dname, hname, lname)) in agg.levels.iter().enumerate() {
        let dim = cube.dimension(dname).ok_or_else(|| format!("no dimension {dname}"))?;
        let hier = dim
            .hierarchy(hname)
            .ok_or_else(|| format!("no hierarchy {dname}.{hname}"))?;
        let depth = hier
            .levels
            .iter()
            .position(|l| l.name == *lname)
            .ok_or_else(|| format!("no level {dname}.{hname}.{lname}"))?
            + 1;
        let fk = dim.foreign_key.clone().unwrap_or_else(|| hier.primary_key.clone());
        let mut joined = false;
        for (i, lvl) in hier.levels.iter().take(depth).enumerate() {
            let e = match &hier.source {
                None => format!("f.{}", sql_ident(&lvl.key_column)),
                Some(_) if i + 1 == hier.levels.len() && hier.joins_on_leaf_key() => {
                    format!("f.{}", sql_ident(&fk))
                }
                Some(src) => {
                    if !joined {
                        joined = true;
                        let glob = datakube_members::source_glob(snapshots, src)?;
                        let mut cols = vec![sql_ident(&hier.primary_key)];
                        for l in &hier.levels {
                            if !cols.contains(&sql_ident(&l.key_column)) {
                                cols.push(sql_ident(&l.key_column));
                            }
                        }
                        // The join must not repeat fact rows (it would inflate totals that
                        // the fact table, not joined there, gives right).
                        let check = format!(
                            "SELECT count(*) - count(DISTINCT {pk}) FROM (SELECT DISTINCT {} FROM read_parquet({}, hive_partitioning = true))",
                            cols.join(", "),
                            sql_string(&glob.to_string_lossy()),
                            pk = sql_ident(&hier.primary_key)
                        );
                        let repeated: i64 = engine
                            .connection()
                            .map_err(|e| e.to_string())?
                            .query_row(&check, [], |r| r.get(0))
                            .map_err(|e| e.to_string())?;
                        if repeated > 0 {
                            return Err(format!(
                                "hierarchy {}: {repeated} key(s) {} of {} have more than one parent",
                                hier.unique_name,
                                hier.primary_key,
                                glob.display()
                            ));
                        }
                        // LEFT: fact rows without a dimension row still count where this
                        // hierarchy is not asked for, as they do on the fact table.
                        joins.push(format!(
                            "LEFT JOIN (SELECT DISTINCT {} FROM read_parquet({}, hive_partitioning = true)) AS a{n} ON f.{} = a{n}.{}",
                            cols.join(", "),
                            sql_string(&glob.to_string_lossy()),
                            sql_ident(&fk),
                            sql_ident(&hier.primary_key)
                        ));
                    }
                    format!("a{n}.{}", sql_ident(&lvl.key_column))
                }
            };
            let column = format!("k{}", levels.len());
            select.push(format!("{e} AS {column}"));
            levels.push(LevelColumn {
                hierarchy: hier.unique_name.clone(),
                level: lvl.name.clone(),
                column,
            });
        }
    }
    let keys = select.len();
    let mut measures = Vec::new();
    for (i, name) in agg.measures.iter().enumerate() {
        let m = cube.measure(name).ok_or_else(|| format!("no measure {name}"))?;
        let MeasureKind::Stored(s) = &m.kind else {
            return Err(format!("measure {name} is calculated"));
        };
        let (f, a) = match s.aggregator {
            Aggregator::Sum => ("SUM", "sum"),
            Aggregator::Count => ("COUNT", "count"),
            Aggregator::Min => ("MIN", "min"),
            Aggregator::Max => ("MAX", "max"),
            other => return Err(format!("measure {name} is {}", other.as_str())),
        };
        let col = s
            .column
            .as_deref()
            .map(|c| format!("f.{}", sql_ident(c)))
            .unwrap_or_else(|| "*".into());
        let filter = s
            .filter
            .as_ref()
            .map(|fl| {
                format!(
                    " FILTER (WHERE f.{} IN ({}))",
                    sql_ident(&fl.column),
                    fl.values
                        .iter()
                        .map(crate::cells::filter_literal)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .unwrap_or_default();
        let column = format!("m{i}");
        select.push(format!("{f}({col}){filter} AS {column}"));
        measures.push(MeasureColumn {
            measure: m.name.clone(),
            aggregator: a.into(),
            column,
        });
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), agg.name));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let out = tmp.join("data.parquet");
    let group: Vec<String> = (1..=keys).map(|i| i.to_string()).collect();
    let sql = format!(
        "COPY (SELECT {} FROM {fact} AS f{}{}) TO {} (FORMAT parquet)",
        select.join(", "),
        if joins.is_empty() {
            String::new()
        } else {
            format!(" {}", joins.join(" "))
        },
        if group.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", group.join(", "))
        },
        sql_string(&out.to_string_lossy())
    );
    let result = (|| -> Result<AggregateMeta, String> {
        let conn = engine.connection().map_err(|e| e.to_string())?;
        conn.execute_batch(&sql).map_err(|e| format!("{e} (in {sql})"))?;
        let rows: i64 = conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM read_parquet({})",
                    sql_string(&out.to_string_lossy())
                ),
                [],
                |r| r.get(0),
            )
            .map_err(|e| e.to_string())?;
        let meta = AggregateMeta {
            cube: cube.name.clone(),
            name: agg.name.clone(),
            rows: rows.max(0) as u64,
            row_scope_column: rsc.clone(),
            levels,
            measures,
        };
        let json = serde_json::to_string_pretty(&meta).map_err(|e| e.to_string())?;
        std::fs::write(tmp.join("aggregate.json"), json).map_err(|e| e.to_string())?;
        for f in ["data.parquet", "aggregate.json"] {
            if let Ok(file) = std::fs::File::open(tmp.join(f)) {
                let _ = file.sync_all();
            }
        }
        let fin = dir.join(&agg.name);
        let old = dir.join(format!(".old-{}-{}", std::process::id(), agg.name));
        if fin.exists() {
            std::fs::rename(&fin, &old).map_err(|e| e.to_string())?;
        }
        std::fs::rename(&tmp, &fin).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(meta)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
