//! Aggregates: pre-aggregated copies of a cube's fact table, declared in YAML
//! (`aggregates:` of a cube), built into `<snapshot>/_aggregates/<cube>/<name>/` beside the
//! dataset snapshot, and read by [`crate::cells::CellFetcher`] instead of the fact table when
//! one covers a statement.
//!
//! An aggregate folder holds `data-<hash>.parquet` (one row per row-scope value and level keys; one
//! column per measure, its `filter` applied at build time) and `aggregate.json`
//! ([`AggregateMeta`]: the columns and the row count the planner compares). It is written
//! into a `.tmp-<pid>-…` folder and renamed, so a half-built aggregate is never read; a
//! missing folder means the aggregate is not used. Statements do not read `aggregate.json`:
//! [`built`] keeps each snapshot's aggregate folders in memory once read, [`build`] and
//! [`revalidate`] (the server's reload poll) refresh that.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

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
    /// Rows in the data file (the planner reads the smallest covering aggregate).
    pub rows: u64,
    /// The cube's row-scope column, kept under its own name.
    pub row_scope_column: Option<String>,
    pub levels: Vec<LevelColumn>,
    pub measures: Vec<MeasureColumn>,
    /// The Parquet file in the folder (`data-<hash of the columns>.parquet`; `data.parquet`
    /// for aggregates built before the name carried the hash).
    #[serde(default = "default_file")]
    pub file: String,
    /// Built with a distinct-count measure: the file holds one row per group of every
    /// grouping set (each level, one of its coarser levels or none; with and without the
    /// row-scope column), told apart by [`GROUPING_SET_COLUMN`]. A statement reads only the
    /// rows of exactly its own set and never adds groups up (`CellFetcher`'s grouping-set choice in `cells.rs`).
    #[serde(default)]
    pub grouping_sets: bool,
    /// Grouping-sets aggregates: the [`GROUPING_SET_COLUMN`] value of every set built.
    #[serde(default)]
    pub sets: Vec<u64>,
    /// Grouping-sets aggregates: per key column (row-scope column first, then `levels`), the
    /// first key column with the same expression (itself if none). DuckDB groups equal
    /// expressions together, as when the Kommune level's key is the row-scope column.
    #[serde(default)]
    pub same_as: Vec<usize>,
}

impl AggregateMeta {
    /// The [`GROUPING_SET_COLUMN`] value of the set grouping the key columns `grouped`
    /// (row-scope column first, then `levels`), when that set was built.
    pub fn grouping_set(&self, grouped: &[bool]) -> Option<u64> {
        if grouped.len() != self.same_as.len() {
            return None;
        }
        let gid = set_id(grouped, &self.same_as);
        self.sets.contains(&gid).then_some(gid)
    }
}

/// Bit `i` set when key column `i` is not grouped; a column counts as grouped when any
/// column with the same expression is.
fn set_id(grouped: &[bool], same_as: &[usize]) -> u64 {
    let mut closed = grouped.to_vec();
    for (i, &j) in same_as.iter().enumerate() {
        if grouped[i] {
            closed[j] = true;
        }
    }
    (0..grouped.len())
        .filter(|&i| !closed[same_as[i]])
        .fold(0u64, |g, i| g | (1 << i))
}

/// The column of a grouping-sets aggregate naming a row's set: bit `i` is set when key
/// column `i` (the row-scope column first, then `levels`) is not grouped.
pub const GROUPING_SET_COLUMN: &str = "gset";

fn default_file() -> String {
    "data.parquet".into()
}

/// FNV-1a, 64 bits: a stable short name for an aggregate's content definition.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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
        self.dir.join(&self.meta.file)
    }
}

/// Folder-safe form of a cube name: `Økonomi` → `oekonomi`, `Beskæftigelse` →
/// `beskaeftigelse`; other characters but ASCII letters and digits become `_`.
pub(crate) fn slug(name: &str) -> String {
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

/// The built aggregates of `cube` in its dataset's pinned snapshot (declared and present on
/// disk). Served from memory: the `aggregate.json` files of a snapshot's aggregate folder are
/// read once (the first statement after a snapshot is pinned) and kept until [`build`] in
/// this process writes one, or [`revalidate`] (the server's reload poll) sees the folder
/// change on disk (`datakube aggregates build` from another process, an aggregate removed).
/// A new snapshot (`datakube refresh`) has a folder of its own, so its aggregates are read
/// afresh; nothing on the query path touches the disk after that.
pub fn built(snapshots: &Snapshots, cube: &Cube) -> Vec<Built> {
    let Some(dir) = aggregates_dir(snapshots, cube) else {
        return Vec::new();
    };
    let all = cached(&dir);
    cube.aggregates
        .iter()
        .filter_map(|a| {
            all.iter()
                .find(|b| b.meta.cube == cube.name && b.meta.name == a.name)
                .cloned()
        })
        .collect()
}

/// One aggregate folder as read: the fingerprint it was read at and what it held.
struct Cached {
    fingerprint: Fingerprint,
    built: Arc<Vec<Built>>,
}

/// Name, size and modification time of every `aggregate.json` in an aggregate folder.
type Fingerprint = Vec<(String, u64, std::time::SystemTime)>;

/// `<snapshot>/_aggregates/<cube>` → what it holds.
static CACHE: LazyLock<Mutex<HashMap<PathBuf, Cached>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn cache() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Cached>> {
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            if let Ok(m) = std::fs::metadata(e.path().join("aggregate.json")) {
                out.push((name, m.len(), m.modified().unwrap_or(std::time::UNIX_EPOCH)));
            }
        }
    }
    out.sort();
    out
}

/// Read every built aggregate in `dir` (a cube's aggregate folder of one snapshot).
fn read_folder(dir: &Path) -> Cached {
    let fingerprint = fingerprint(dir);
    let built = fingerprint
        .iter()
        .filter_map(|(name, _, _)| {
            let d = dir.join(name);
            let text = std::fs::read_to_string(d.join("aggregate.json")).ok()?;
            let meta: AggregateMeta = serde_json::from_str(&text).ok()?;
            (meta.name == *name).then_some(Built { dir: d, meta })
        })
        .collect();
    Cached {
        fingerprint,
        built: Arc::new(built),
    }
}

/// Bumped by every [`invalidate`]: a folder read while one happened is not kept (it may
/// predate the change).
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn cached(dir: &Path) -> Arc<Vec<Built>> {
    if let Some(c) = cache().get(dir) {
        return c.built.clone();
    }
    // Read outside the lock; two first statements may both read, the last one stays.
    let generation = GENERATION.load(Ordering::SeqCst);
    let c = read_folder(dir);
    let built = c.built.clone();
    let mut m = cache();
    if GENERATION.load(Ordering::SeqCst) == generation {
        m.insert(dir.to_path_buf(), c);
    }
    built
}

/// Forget what was read of `dir` (after writing an aggregate there).
fn invalidate(dir: &Path) {
    let mut m = cache();
    GENERATION.fetch_add(1, Ordering::SeqCst);
    m.remove(dir);
}

/// Check every aggregate folder read so far against the disk: a folder whose
/// `aggregate.json` files changed (built, rebuilt or removed by another process) is read
/// again at its next statement, and folders of snapshots no live [`Snapshots`] pins any more
/// are forgotten. The server's reload poll calls this; statements never do.
pub fn revalidate() {
    let dirs: Vec<(PathBuf, Fingerprint)> = cache()
        .iter()
        .map(|(d, c)| (d.clone(), c.fingerprint.clone()))
        .collect();
    for (dir, old) in dirs {
        let pinned = dir
            .parent()
            .and_then(Path::parent)
            .is_some_and(datakube_engine::storage::is_in_use);
        if !pinned || fingerprint(&dir) != old {
            tracing::debug!("aggregates of {} read again at the next statement", dir.display());
            invalidate(&dir);
        }
    }
}

/// The key columns of an aggregate of `cube` at `levels` ((dimension, hierarchy, level)):
/// the row-scope column, then each level's key and its coarser levels' keys, with the
/// dimension joins they need (fact table alias `f`).
struct KeySelect {
    select: Vec<String>,
    /// The key expressions of `select`, in its order.
    exprs: Vec<String>,
    /// Per listed level: the indexes into `exprs` of its hierarchy's keys, coarsest first.
    chains: Vec<Vec<usize>>,
    joins: Vec<String>,
    levels: Vec<LevelColumn>,
}

fn key_select(
    engine: &Engine,
    snapshots: &Snapshots,
    cube: &Cube,
    agg_levels: &[(String, String, String)],
) -> Result<KeySelect, String> {
    let mut select: Vec<String> = Vec::new();
    let mut exprs: Vec<String> = Vec::new();
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut joins: Vec<String> = Vec::new();
    let mut levels: Vec<LevelColumn> = Vec::new();
    let rsc = cube.security.row_scope_column.clone();
    if let Some(c) = &rsc {
        select.push(format!("f.{} AS {}", sql_ident(c), sql_ident(c)));
        exprs.push(format!("f.{}", sql_ident(c)));
    }
    for (n, (dname, hname, lname)) in agg_levels.iter().enumerate() {
        chains.push(Vec::new());
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
            if let Some(c) = chains.last_mut() {
                c.push(exprs.len());
            }
            exprs.push(e);
            levels.push(LevelColumn {
                hierarchy: hier.unique_name.clone(),
                level: lvl.name.clone(),
                column,
            });
        }
    }
    Ok(KeySelect {
        select,
        exprs,
        chains,
        joins,
        levels,
    })
}

/// Rows an aggregate of `cube` at `levels` would have: the distinct row-scope values and
/// level keys over the fact table of the pinned snapshot, counted by DuckDB (a full scan).
pub fn estimate_rows(
    engine: &Engine,
    snapshots: &Snapshots,
    cube: &Cube,
    levels: &[(String, String, String)],
) -> Result<u64, String> {
    let fact = datakube_members::fact_relation(snapshots, cube)?;
    let k = key_select(engine, snapshots, cube, levels)?;
    let sql = if k.select.is_empty() {
        "SELECT 1".to_string()
    } else {
        format!(
            "SELECT count(*) FROM (SELECT DISTINCT {} FROM {fact} AS f{})",
            k.select.join(", "),
            if k.joins.is_empty() {
                String::new()
            } else {
                format!(" {}", k.joins.join(" "))
            }
        )
    };
    let n: i64 = engine
        .connection()
        .map_err(|e| e.to_string())?
        .query_row(&sql, [], |r| r.get(0))
        .map_err(|e| format!("{e} (in {sql})"))?;
    Ok(n.max(0) as u64)
}

/// Rows of the fact table of `cube` in the pinned snapshot.
pub fn fact_rows(engine: &Engine, snapshots: &Snapshots, cube: &Cube) -> Result<u64, String> {
    let fact = datakube_members::fact_relation(snapshots, cube)?;
    let n: i64 = engine
        .connection()
        .map_err(|e| e.to_string())?
        .query_row(&format!("SELECT count(*) FROM {fact}"), [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    Ok(n.max(0) as u64)
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
    let rsc = cube.security.row_scope_column.clone();
    let KeySelect {
        mut select,
        exprs,
        chains,
        joins,
        levels,
    } = key_select(engine, snapshots, cube, &agg.levels)?;
    let keys = select.len();
    let mut measures = Vec::new();
    let mut grouping_sets = false;
    // Per measure: aggregator, input column (`*` for a row count), its filter condition.
    let mut inputs: Vec<(Aggregator, String, Option<String>)> = Vec::new();
    for (i, name) in agg.measures.iter().enumerate() {
        let m = cube.measure(name).ok_or_else(|| format!("no measure {name}"))?;
        let MeasureKind::Stored(s) = &m.kind else {
            return Err(format!("measure {name} is calculated"));
        };
        let a = match s.aggregator {
            Aggregator::Sum | Aggregator::Count | Aggregator::Min | Aggregator::Max => s.aggregator,
            Aggregator::DistinctCount => {
                grouping_sets = true;
                s.aggregator
            }
            // Validation made sure the time dimension's key is a level of the aggregate:
            // this is the sum per time key (and the other keys), as the fact table's
            // first step computes it.
            Aggregator::LastNonEmpty | Aggregator::AverageOverTime => Aggregator::Sum,
            other => return Err(format!("measure {name} is {}", other.as_str())),
        };
        let col = s
            .column
            .as_deref()
            .map(|c| format!("f.{}", sql_ident(c)))
            .unwrap_or_else(|| "*".into());
        let cond = s.filter.as_ref().map(crate::cells::measure_filter_sql);
        inputs.push((a, col, cond));
        measures.push(MeasureColumn {
            measure: m.name.clone(),
            aggregator: s.aggregator.as_str().into(),
            column: format!("m{i}"),
        });
    }
    let call = |a: Aggregator, col: &str, cond: &Option<String>| -> String {
        let filter = cond
            .as_ref()
            .map(|c| format!(" FILTER (WHERE {c})"))
            .unwrap_or_default();
        match a {
            Aggregator::Count => format!("COUNT({col}){filter}"),
            Aggregator::Min => format!("MIN({col}){filter}"),
            Aggregator::Max => format!("MAX({col}){filter}"),
            Aggregator::DistinctCount => format!("COUNT(DISTINCT {col}){filter}"),
            _ => format!("SUM({col}){filter}"),
        }
    };
    let from = crate::cells::from_clause(&fact, &joins);
    // Key columns with the same expression (the Kommune level's key is the row-scope
    // column) are grouped as one.
    let same_as: Vec<usize> = exprs
        .iter()
        .map(|e| exprs.iter().position(|x| x == e).unwrap_or_default())
        .collect();
    let mut set_ids: Vec<u64> = Vec::new();
    let query = if grouping_sets {
        // Every set: per listed level, a prefix of its hierarchy's keys (none, the coarsest,
        // …, all); the row-scope column in or out.
        let mut sets: Vec<Vec<usize>> = vec![Vec::new()];
        if rsc.is_some() {
            sets.push(vec![0]);
        }
        for chain in &chains {
            sets = sets
                .iter()
                .flat_map(|set| {
                    (0..=chain.len()).map(move |j| {
                        let mut s = set.clone();
                        s.extend(&chain[..j]);
                        s
                    })
                })
                .collect();
        }
        // Sets equal once equal expressions count as one are listed once: GROUPING SETS
        // repeats the rows of a set listed twice.
        let mut distinct_sets: Vec<Vec<usize>> = Vec::new();
        for set in sets {
            let mut grouped = vec![false; exprs.len()];
            for &i in &set {
                grouped[i] = true;
            }
            let id = set_id(&grouped, &same_as);
            if !set_ids.contains(&id) {
                set_ids.push(id);
                let mut cols: Vec<usize> = set.iter().map(|&i| same_as[i]).collect();
                cols.sort_unstable();
                cols.dedup();
                distinct_sets.push(cols);
            }
        }
        set_ids.sort_unstable();
        // Two steps, because DuckDB counts distinct values per grouping set slowly (178 s
        // against 6 s for Personer at scale 0.1): (1) one GROUP BY over the fact rows by every
        // key and every distinct-counted value (each measure's filter applied: a value
        // outside it is NULL, which COUNT(DISTINCT) skips), other measures pre-aggregated;
        // (2) the grouping sets over that much smaller result, `gset` from GROUPING() bits.
        let uniq: Vec<usize> = (0..exprs.len()).filter(|&i| same_as[i] == i).collect();
        let mut s1: Vec<String> = uniq.iter().map(|&j| format!("{} AS c{j}", exprs[j])).collect();
        let mut s1_group = s1.len();
        for (i, (a, col, cond)) in inputs.iter().enumerate() {
            if *a == Aggregator::DistinctCount {
                s1.push(match cond {
                    Some(c) => format!("CASE WHEN {c} THEN {col} END AS v{i}"),
                    None => format!("{col} AS v{i}"),
                });
                s1_group += 1;
            }
        }
        for (i, (a, col, cond)) in inputs.iter().enumerate() {
            if *a != Aggregator::DistinctCount {
                s1.push(format!("{} AS v{i}", call(*a, col, cond)));
            }
        }
        let names: Vec<String> = rsc
            .iter()
            .map(|c| sql_ident(c))
            .chain(levels.iter().map(|l| l.column.clone()))
            .collect();
        let mut s2: Vec<String> = (0..exprs.len())
            .map(|i| format!("c{} AS {}", same_as[i], names[i]))
            .collect();
        for (i, (a, _, _)) in inputs.iter().enumerate() {
            s2.push(match a {
                Aggregator::DistinctCount => format!("COUNT(DISTINCT v{i}) AS m{i}"),
                Aggregator::Min => format!("MIN(v{i}) AS m{i}"),
                Aggregator::Max => format!("MAX(v{i}) AS m{i}"),
                Aggregator::Count => format!("CAST(SUM(v{i}) AS BIGINT) AS m{i}"),
                _ => format!("SUM(v{i}) AS m{i}"),
            });
        }
        let gid: Vec<String> = (0..exprs.len())
            .map(|i| format!("GROUPING(c{}) * {}", same_as[i], 1u64 << i))
            .collect();
        s2.push(format!(
            "{} AS {}",
            if gid.is_empty() { "0".into() } else { gid.join(" + ") },
            sql_ident(GROUPING_SET_COLUMN)
        ));
        let sets_sql: Vec<String> = distinct_sets
            .iter()
            .map(|s| format!("({})", s.iter().map(|j| format!("c{j}")).collect::<Vec<_>>().join(", ")))
            .collect();
        format!(
            "SELECT {} FROM (SELECT {} FROM {from}{}) GROUP BY GROUPING SETS ({})",
            s2.join(", "),
            s1.join(", "),
            if s1_group == 0 {
                String::new()
            } else {
                format!(
                    " GROUP BY {}",
                    (1..=s1_group).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
                )
            },
            sets_sql.join(", ")
        )
    } else {
        for (i, (a, col, cond)) in inputs.iter().enumerate() {
            select.push(format!("{} AS m{i}", call(*a, col, cond)));
        }
        format!(
            "SELECT {} FROM {from}{}",
            select.join(", "),
            if keys == 0 {
                String::new()
            } else {
                format!(
                    " GROUP BY {}",
                    (1..=keys).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
                )
            }
        )
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), agg.name));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    // The data file is named after what the aggregate holds: a rebuild with other levels,
    // measures or filters gets another name, so a server that still has the old
    // `aggregate.json` in memory fails to find the file (and says so) rather than reading
    // columns that mean something else. An unchanged rebuild keeps the name.
    let file = format!("data-{:016x}.parquet", fnv1a(query.as_bytes()));
    let out = tmp.join(&file);
    let sql = format!(
        "COPY ({query}) TO {} (FORMAT parquet)",
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
            file: file.clone(),
            grouping_sets,
            sets: set_ids.clone(),
            same_as: if grouping_sets { same_as.clone() } else { Vec::new() },
        };
        let json = serde_json::to_string_pretty(&meta).map_err(|e| e.to_string())?;
        std::fs::write(tmp.join("aggregate.json"), json).map_err(|e| e.to_string())?;
        for f in [file.as_str(), "aggregate.json"] {
            if let Ok(file) = std::fs::File::open(tmp.join(f)) {
                let _ = file.sync_all();
            }
        }
        let fin = dir.join(&agg.name);
        let old = dir.join(format!(".old-{}-{}", std::process::id(), agg.name));
        if fin.exists() {
            std::fs::rename(&fin, &old).map_err(|e| e.to_string())?;
        }
        let renamed = std::fs::rename(&tmp, &fin).map_err(|e| e.to_string());
        invalidate(&dir);
        renamed?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(meta)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
