//! `datakube-datagen`: deterministic synthetic FLIS-style datasets written as Parquet
//! snapshots (layout and columns: `docs/datasets.md`).
//!
//! All rows are produced by DuckDB SQL (`range()`, joins, hash-based pseudo-random numbers
//! derived from the seed and entity ids), never row by row in Rust and never with
//! `random()`, so the same seed and scale give byte-identical Parquet files.
//!
//! Each dataset is written into `snapshots/.tmp-<pid>-<nanos>/`, then renamed to
//! `snapshots/<id>` where `<id>` is a content hash of its Parquet files, and only then is
//! `CURRENT` replaced (write, fsync, rename). A run that dies half-way leaves the previous
//! `CURRENT` untouched.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datakube_engine::duckdb::Connection;
use datakube_engine::sql_string;
use serde::Serialize;
use sha2::{Digest, Sha256};

mod befolkning;
mod benchmark;
mod beskaeftigelse;
mod faelles;
mod kontoplan;
mod oekonomi;
mod personale;
pub mod progress;
mod skole;

pub use progress::{NoProgress, Progress, TerminalProgress};

/// Scale of the demo data set (`persons ≈ population × scale`).
pub const DEFAULT_SCALE: f64 = 0.02;
/// Seed used when none is given.
pub const DEFAULT_SEED: u64 = 20240101;

/// Version written into every manifest.
pub const GENERATOR_VERSION: &str = concat!("datakube-datagen ", env!("CARGO_PKG_VERSION"));

const DATASETS: &[&str] = &[
    "faelles",
    "befolkning",
    "oekonomi",
    "personale",
    "beskaeftigelse",
    "skole",
    "benchmark",
];

/// First and last month of all data: 2016-01 … 2025-12, as month index `year * 12 + month - 1`.
pub(crate) const M0: i64 = 2016 * 12;
pub(crate) const M1: i64 = 2025 * 12 + 11;
/// Reference month 2020-01, where the population matches DST's 1 January 2020 figures × scale.
pub(crate) const MREF: i64 = 2020 * 12;
pub(crate) const YEARS: std::ops::RangeInclusive<i32> = 2016..=2025;

static MUNICIPALITIES_CSV: &str = include_str!("../../../data/municipalities.csv");

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// `<data-dir>`; datasets go to `<data-dir>/datasets/<dataset>/`.
    pub data_dir: PathBuf,
    pub seed: u64,
    /// Persons ≈ population × scale; `oekonomi.postering` ≈ 100 million × scale rows.
    pub scale: f64,
    pub engine: datakube_engine::EngineConfig,
    /// Datasets to generate; `None` = all of [`dataset_names`].
    pub datasets: Option<Vec<String>>,
}

impl GenerateOptions {
    /// Options with the default seed and scale.
    pub fn new(data_dir: impl Into<PathBuf>) -> GenerateOptions {
        GenerateOptions {
            data_dir: data_dir.into(),
            seed: DEFAULT_SEED,
            scale: DEFAULT_SCALE,
            engine: datakube_engine::EngineConfig::default(),
            datasets: None,
        }
    }
}

/// What [`generate`] produced.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateReport {
    pub datasets: Vec<DatasetReport>,
}

impl GenerateReport {
    pub fn total_rows(&self) -> u64 {
        self.datasets.iter().map(DatasetReport::total_rows).sum()
    }
}

/// One generated dataset.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    pub name: String,
    pub snapshot_id: String,
    /// Rows per table.
    pub rows: BTreeMap<String, u64>,
    /// Wall-clock seconds spent on this dataset (including shared preparation it needed).
    pub seconds: f64,
    /// The snapshot existed already (same content) and was reused.
    pub reused: bool,
}

impl DatasetReport {
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// The dataset names, in generation order.
pub fn dataset_names() -> &'static [&'static str] {
    DATASETS
}

/// True when every dataset has a `CURRENT` that names an existing snapshot with a manifest.
pub fn is_generated(data_dir: &Path) -> bool {
    DATASETS.iter().all(|ds| current_snapshot(data_dir, ds).is_some())
}

/// The directory of the current snapshot of `dataset`, if there is a complete one.
pub fn current_snapshot(data_dir: &Path, dataset: &str) -> Option<PathBuf> {
    let base = data_dir.join("datasets").join(dataset);
    let id = fs::read_to_string(base.join("CURRENT")).ok()?;
    let id = id.trim();
    if id.is_empty() || id.starts_with('.') || id.contains('/') {
        return None;
    }
    let dir = base.join("snapshots").join(id);
    dir.join("manifest.json").is_file().then_some(dir)
}

/// Generate the selected datasets (all by default) into `opts.data_dir`.
pub fn generate(opts: &GenerateOptions, progress: &dyn Progress) -> Result<GenerateReport> {
    generate_into(opts, progress, true)
}

/// Like [`generate`], but leave `CURRENT` alone: each new snapshot is complete and renamed
/// into `snapshots/<id>`, and the caller (`datakube refresh`) validates it before switching
/// `CURRENT` with `datakube_engine::storage::switch_current`.
pub fn generate_staged(opts: &GenerateOptions, progress: &dyn Progress) -> Result<GenerateReport> {
    generate_into(opts, progress, false)
}

fn generate_into(opts: &GenerateOptions, progress: &dyn Progress, make_current: bool) -> Result<GenerateReport> {
    if !(opts.scale.is_finite() && opts.scale > 0.0 && opts.scale <= 5.0) {
        bail!("scale must be > 0 and ≤ 5, got {}", opts.scale);
    }
    let selected: Vec<&'static str> = match &opts.datasets {
        None => DATASETS.to_vec(),
        Some(list) => {
            for name in list {
                if !DATASETS.contains(&name.as_str()) {
                    bail!("unknown dataset {name:?}; known: {}", DATASETS.join(", "));
                }
            }
            DATASETS
                .iter()
                .copied()
                .filter(|d| list.iter().any(|n| n == d))
                .collect()
        }
    };
    fs::create_dir_all(opts.data_dir.join("datasets"))
        .with_context(|| format!("creating {}", opts.data_dir.join("datasets").display()))?;

    let mut engine = opts.engine.clone();
    // DuckDB spills large sorts here (not into the working directory); removed at the end
    // (and by the next run if this one is killed).
    remove_stale_dirs(&opts.data_dir, ".duckdb-tmp-");
    let spill_dir = opts.data_dir.join(format!(".duckdb-tmp-{}", std::process::id()));
    if engine.temp_directory.is_none() {
        engine.temp_directory = Some(spill_dir.clone());
    }
    let result = (|| {
        let conn = datakube_engine::open_connection(&engine).context("opening DuckDB")?;
        let mut g = Gen::new(&conn, opts.seed, opts.scale, progress)?;
        g.make_current = make_current;
        let total: u64 = selected.iter().map(|d| g.steps_for(d, &selected)).sum();
        progress.begin("generate", total);
        let mut reports = Vec::new();
        for ds in &selected {
            match g.dataset(&opts.data_dir, ds) {
                Ok(r) => reports.push(r),
                Err(e) => {
                    progress.finish();
                    return Err(e);
                }
            }
        }
        progress.finish();
        Ok(GenerateReport { datasets: reports })
    })();
    let _ = fs::remove_dir_all(&spill_dir);
    result
}

/// Per-table bookkeeping for the manifest.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TableInfo {
    rows: u64,
    files: u64,
    partitioned_by: Option<String>,
}

/// A snapshot directory being written.
pub(crate) struct Snapshot {
    root: PathBuf,
    tables: BTreeMap<String, TableInfo>,
}

/// The generator state: one DuckDB connection with the base tables and macros.
pub(crate) struct Gen<'a> {
    pub conn: &'a Connection,
    pub scale: f64,
    pub seed: u64,
    progress: &'a dyn Progress,
    /// Names of in-memory tables already built (persons, summaries, …).
    built: std::collections::BTreeSet<&'static str>,
    /// The dataset being written, or `None` when a generator runs only for its summaries.
    snap: Option<Snapshot>,
    dataset: &'static str,
    /// Switch `CURRENT` to each finished snapshot (off for `generate_staged`).
    make_current: bool,
}

impl<'a> Gen<'a> {
    fn new(conn: &'a Connection, seed: u64, scale: f64, progress: &'a dyn Progress) -> Result<Gen<'a>> {
        let g = Gen {
            conn,
            scale,
            seed,
            progress,
            built: Default::default(),
            snap: None,
            dataset: "",
            make_current: true,
        };
        g.setup()?;
        Ok(g)
    }

    /// Run SQL statements.
    pub fn exec(&self, sql: &str) -> Result<()> {
        self.conn
            .execute_batch(sql)
            .with_context(|| format!("SQL failed:\n{}", abbreviate(sql)))
    }

    pub fn query_i64(&self, sql: &str) -> Result<i64> {
        self.conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .with_context(|| format!("SQL failed:\n{}", abbreviate(sql)))
    }

    /// Tell the progress reporter that a step of the current dataset is done.
    pub fn step(&self, what: &str) {
        self.progress.advance(&format!("{}/{}", self.dataset, what));
    }

    /// Mark `name` as built; returns false if it already was.
    pub fn first_time(&mut self, name: &'static str) -> bool {
        self.built.insert(name)
    }

    pub fn is_built(&self, name: &str) -> bool {
        self.built.contains(name)
    }

    /// Write a dimension table: `<table>/data_0.parquet`.
    pub fn write_dim(&mut self, table: &str, select: &str, order_by: &str) -> Result<u64> {
        let rel = format!("{table}/data_0.parquet");
        let rows = self.copy(&rel, select, order_by)?;
        if let Some(s) = &mut self.snap {
            s.tables.insert(
                table.to_string(),
                TableInfo {
                    rows,
                    files: 1,
                    partitioned_by: None,
                },
            );
        }
        self.step(table);
        Ok(rows)
    }

    /// Write one year partition of a fact table: `<table>/aar=<year>/data_0.parquet`.
    pub fn write_part(&mut self, table: &str, year: i32, select: &str, order_by: &str) -> Result<u64> {
        let rel = format!("{table}/aar={year}/data_0.parquet");
        let rows = self.copy(&rel, select, order_by)?;
        if let Some(s) = &mut self.snap {
            let t = s.tables.entry(table.to_string()).or_insert(TableInfo {
                rows: 0,
                files: 0,
                partitioned_by: Some("aar".into()),
            });
            t.rows += rows;
            t.files += 1;
        }
        self.step(&format!("{table} aar={year}"));
        Ok(rows)
    }

    fn copy(&self, rel: &str, select: &str, order_by: &str) -> Result<u64> {
        let Some(s) = &self.snap else { return Ok(0) };
        let path = s.root.join(rel);
        fs::create_dir_all(path.parent().expect("file has a parent"))?;
        // `__k` is a packed sort key that is not written; an empty `order_by` means the
        // select is ordered already.
        let cols = if order_by.starts_with("__k") {
            "* EXCLUDE (__k)"
        } else {
            "*"
        };
        let query = if order_by.is_empty() {
            select.to_string()
        } else {
            format!("SELECT {cols} FROM ({select}) ORDER BY {order_by}")
        };
        let sql = format!(
            "COPY ({query}) TO {} (FORMAT parquet)",
            sql_string(&path.to_string_lossy())
        );
        let n = self
            .conn
            .execute(&sql, [])
            .with_context(|| format!("writing {rel}:\n{}", abbreviate(&sql)))?;
        Ok(n as u64)
    }

    /// Number of progress steps `dataset` takes when `selected` are generated.
    fn steps_for(&self, dataset: &str, selected: &[&str]) -> u64 {
        let years = YEARS.count() as u64;
        let base = match dataset {
            "faelles" => 5,
            "befolkning" => 1 + years + 4,
            "oekonomi" => years + 5,
            "personale" => years + 3,
            "beskaeftigelse" => 1 + years + 1,
            "skole" => years + 3,
            "benchmark" => {
                let mut n = years;
                if !selected.contains(&"oekonomi") {
                    n += years;
                }
                if !selected.contains(&"personale") {
                    n += years;
                }
                if !selected.contains(&"beskaeftigelse") {
                    n += 1 + years;
                }
                n
            }
            _ => 0,
        };
        base + 1 // + the snapshot step
    }

    /// Generate one dataset into a new snapshot and make it current.
    fn dataset(&mut self, data_dir: &Path, name: &'static str) -> Result<DatasetReport> {
        let started = Instant::now();
        let base = data_dir.join("datasets").join(name);
        let snapshots = base.join("snapshots");
        fs::create_dir_all(&snapshots)?;
        remove_stale_tmp_dirs(&snapshots);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = snapshots.join(format!(".tmp-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&tmp)?;
        self.dataset = name;
        self.snap = Some(Snapshot {
            root: tmp.clone(),
            tables: BTreeMap::new(),
        });

        let result = self.run_dataset(name).and_then(|extra| {
            let snap = self.snap.take().expect("snapshot in progress");
            self.finish_snapshot(&base, name, snap, extra)
        });
        self.snap = None;
        match result {
            Ok((id, rows, reused)) => {
                self.progress.advance(&format!("{name}/snapshot {id}"));
                Ok(DatasetReport {
                    name: name.to_string(),
                    snapshot_id: id,
                    rows,
                    seconds: started.elapsed().as_secs_f64(),
                    reused,
                })
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e.context(format!("generating dataset {name}")))
            }
        }
    }

    /// Write all tables of `name`; returns dataset-specific manifest fields.
    fn run_dataset(&mut self, name: &str) -> Result<ManifestExtra> {
        match name {
            "faelles" => faelles::generate(self),
            "befolkning" => befolkning::generate(self),
            "oekonomi" => oekonomi::generate(self),
            "personale" => personale::generate(self),
            "beskaeftigelse" => beskaeftigelse::generate(self),
            "skole" => skole::generate(self),
            "benchmark" => benchmark::generate(self),
            other => bail!("unknown dataset {other}"),
        }
    }

    /// Run `f` with writing switched off (to build summaries another dataset needs).
    pub fn without_writing<T>(&mut self, f: impl FnOnce(&mut Gen<'a>) -> Result<T>) -> Result<T> {
        let snap = self.snap.take();
        let r = f(self);
        self.snap = snap;
        r
    }

    /// Completeness per kommune: distinct periods present in `table` (an in-memory table or
    /// query with columns `kommunekode` and `period`) divided by `expected`.
    pub fn completeness(&self, query: &str, expected: i64) -> Result<BTreeMap<String, f64>> {
        let sql = format!(
            "SELECT k.kommunekode, count(DISTINCT q.period) FROM kom k LEFT JOIN ({query}) q USING (kommunekode) \
             GROUP BY k.kommunekode ORDER BY k.kommunekode"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i32>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (k, n) = row?;
            let frac = (n as f64 / expected as f64).min(1.0);
            out.insert(k.to_string(), (frac * 10000.0).round() / 10000.0);
        }
        Ok(out)
    }

    fn finish_snapshot(
        &self,
        base: &Path,
        name: &str,
        snap: Snapshot,
        extra: ManifestExtra,
    ) -> Result<(String, BTreeMap<String, u64>, bool)> {
        let id = snapshot_id(&snap.root)?;
        let rows: BTreeMap<String, u64> = snap.tables.iter().map(|(k, v)| (k.clone(), v.rows)).collect();
        let manifest = Manifest {
            dataset: name.to_string(),
            snapshot_id: id.clone(),
            generator: GENERATOR_VERSION.to_string(),
            duckdb: datakube_engine::duckdb_version(self.conn).unwrap_or_default(),
            seed: self.seed,
            scale: self.scale,
            generated_at: rfc3339_now(),
            tables: snap.tables.clone(),
            period: Period {
                from: extra.period.0,
                to: extra.period.1,
            },
            completeness: extra.completeness,
            known_issues: extra.known_issues,
        };
        let json = serde_json::to_string_pretty(&manifest)?;
        write_synced(&snap.root.join("manifest.json"), json.as_bytes())?;
        sync_tree(&snap.root)?;

        let final_dir = base.join("snapshots").join(&id);
        let mut reused = final_dir.join("manifest.json").is_file();
        if reused {
            fs::remove_dir_all(&snap.root)?;
        } else {
            if final_dir.exists() {
                // Not a complete snapshot (no manifest; copied in by hand?): replace it.
                fs::remove_dir_all(&final_dir)?;
            }
            if let Err(e) = fs::rename(&snap.root, &final_dir) {
                // Another run may have renamed an identical snapshot into place meanwhile.
                if !final_dir.join("manifest.json").is_file() {
                    return Err(e)
                        .with_context(|| format!("renaming {} to {}", snap.root.display(), final_dir.display()));
                }
                fs::remove_dir_all(&snap.root)?;
                reused = true;
            }
            sync_dir(&base.join("snapshots"));
        }
        if self.make_current {
            let tmp = base.join("CURRENT.tmp");
            write_synced(&tmp, format!("{id}\n").as_bytes())?;
            fs::rename(&tmp, base.join("CURRENT"))?;
            sync_dir(base);
        }
        Ok((id, rows, reused))
    }

    /// Base tables and macros shared by all datasets.
    fn setup(&self) -> Result<()> {
        let seed = self.seed;
        // Uniform numbers in (0, 1) from a hash of the seed, keys and a salt; normal and
        // exponential variates derived from them.
        self.exec(&format!(
            "SET preserve_insertion_order = true;
             CREATE MACRO ru(k, s) AS ((hash(k, s, {seed}::UBIGINT) % 1000000007)::DOUBLE + 0.5) / 1000000007.0;
             CREATE MACRO ru2(k1, k2, s) AS ((hash(k1, k2, s, {seed}::UBIGINT) % 1000000007)::DOUBLE + 0.5) / 1000000007.0;
             CREATE MACRO rn(k, s) AS sqrt(-2.0 * ln(ru(k, s))) * cos(2.0 * pi() * ru(k, s + 7919));
             CREATE MACRO rn2(k1, k2, s) AS sqrt(-2.0 * ln(ru2(k1, k2, s))) * cos(2.0 * pi() * ru2(k1, k2, s + 7919));
             CREATE MACRO rexp(k, s) AS -ln(ru(k, s));
             -- the k-th (0–3) 16-bit uniform in (0, 1) from a 64-bit hash
             CREATE MACRO u16(h, k) AS ((h >> (16 * k)) & 65535)::DOUBLE / 65536.0 + 1.0 / 131072.0;
             CREATE MACRO rexp2(k1, k2, s) AS -ln(ru2(k1, k2, s));
             CREATE MACRO mi_id(mi) AS ((mi // 12) * 100 + mi % 12 + 1)::INTEGER;
             CREATE MACRO mi_date(mi) AS make_date((mi // 12)::BIGINT, (mi % 12 + 1)::BIGINT, 1);"
        ))?;
        // Municipalities (embedded CSV) with scaled population.
        let mut values = Vec::new();
        for (i, line) in MUNICIPALITIES_CSV.lines().enumerate() {
            if i == 0 || line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.trim().split(',').collect();
            if f.len() != 6 {
                bail!("municipalities.csv line {}: expected 6 fields", i + 1);
            }
            let num = |s: &str| -> Result<i64> { s.parse::<i64>().with_context(|| format!("line {}: {s:?}", i + 1)) };
            values.push(format!(
                "({}, {}, {}, {}, {}, {})",
                num(f[0])?,
                sql_string(f[1]),
                num(f[2])?,
                sql_string(f[3]),
                num(f[4])?,
                sql_string(f[5])
            ));
        }
        if values.len() != 98 {
            bail!("municipalities.csv has {} municipalities, expected 98", values.len());
        }
        let scale = self.scale;
        self.exec(&format!(
            "CREATE TABLE kom_csv(kommunekode INTEGER, navn VARCHAR, regionskode INTEGER, region VARCHAR,
                                  indbyggere_2020 INTEGER, cvr VARCHAR);
             INSERT INTO kom_csv VALUES {};
             CREATE TABLE kom AS
             SELECT kommunekode, navn, regionskode, region, indbyggere_2020, cvr,
                    indbyggere_2020::DOUBLE / sum(indbyggere_2020) OVER () AS popshare,
                    greatest(1, round(indbyggere_2020 * {scale}))::BIGINT AS p,
                    indbyggere_2020 * {scale} AS popsyn
             FROM kom_csv ORDER BY kommunekode;
             CREATE TABLE mon AS
             SELECT mi, mi_id(mi) AS maaned_id, (mi // 12)::INTEGER AS aar, (mi % 12 + 1)::INTEGER AS maaned,
                    mi_date(mi) AS dato,
                    len(list_filter(range(mi_date(mi)::TIMESTAMP, mi_date(mi + 1)::TIMESTAMP, INTERVAL 1 DAY),
                                    d -> isodow(d) <= 5))::INTEGER AS arbejdsdage
             FROM range({M0}, {M1} + 1) t(mi);
             CREATE TABLE wk AS
             SELECT w, (DATE '2016-01-04' + 7 * w::INTEGER) AS uge_start,
                    isoyear(DATE '2016-01-04' + 7 * w::INTEGER)::INTEGER AS aar,
                    week(DATE '2016-01-04' + 7 * w::INTEGER)::INTEGER AS uge,
                    (isoyear(DATE '2016-01-04' + 7 * w::INTEGER) * 100 + week(DATE '2016-01-04' + 7 * w::INTEGER))::INTEGER AS uge_id,
                    (year(DATE '2016-01-04' + 7 * w::INTEGER) * 12 + month(DATE '2016-01-04' + 7 * w::INTEGER) - 1) AS mi
             FROM range(0, 521) t(w);",
            values.join(", ")
        ))?;
        let last: i64 = self.query_i64("SELECT max(uge_id) FROM wk")?;
        if last != 202552 {
            bail!("week table ends at {last}, expected 202552");
        }
        Ok(())
    }
}

/// Dataset-specific manifest fields.
pub(crate) struct ManifestExtra {
    pub period: (String, String),
    pub completeness: BTreeMap<String, f64>,
    pub known_issues: Vec<String>,
}

#[derive(Serialize)]
struct Period {
    from: String,
    to: String,
}

#[derive(Serialize)]
struct Manifest {
    dataset: String,
    snapshot_id: String,
    generator: String,
    duckdb: String,
    seed: u64,
    scale: f64,
    generated_at: String,
    tables: BTreeMap<String, TableInfo>,
    period: Period,
    completeness: BTreeMap<String, f64>,
    known_issues: Vec<String>,
}

/// First 16 hex characters of SHA-256 over (relative path, bytes) of all Parquet files,
/// in path order (the id of a snapshot folder; also used for imported snapshots).
pub fn snapshot_id(root: &Path) -> Result<String> {
    let mut files = Vec::new();
    collect_files(root, root, &mut files)?;
    files.retain(|(rel, _)| rel.ends_with(".parquet"));
    files.sort();
    let mut h = Sha256::new();
    for (rel, path) in &files {
        h.update(rel.as_bytes());
        h.update([0u8]);
        h.update(fs::read(path)?);
    }
    Ok(hex::encode(h.finalize())[..16].to_string())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>();
            out.push((rel.join("/"), path));
        }
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// fsync every file and directory under `root`.
pub fn sync_tree(root: &Path) -> Result<()> {
    let mut files = Vec::new();
    collect_files(root, root, &mut files)?;
    for (_, p) in files {
        fs::File::open(&p)?.sync_all()?;
        if let Some(parent) = p.parent() {
            sync_dir(parent);
        }
    }
    sync_dir(root);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Remove `.tmp-<pid>-*` snapshot directories whose process is gone (Linux; elsewhere
/// nothing is removed).
fn remove_stale_tmp_dirs(snapshots: &Path) {
    remove_stale_dirs(snapshots, ".tmp-");
}

/// Remove directories `<prefix><pid>…` in `dir` whose process is gone (Linux only).
fn remove_stale_dirs(dir: &Path, prefix: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next() else { continue };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn abbreviate(sql: &str) -> String {
    if sql.len() <= 2000 {
        sql.to_string()
    } else {
        let mut end = 2000;
        while !sql.is_char_boundary(end) {
            end -= 1;
        }
        format!("{} …", &sql[..end])
    }
}

/// A SQL `VALUES` list from rows of already-quoted SQL literals.
pub(crate) fn values(rows: impl IntoIterator<Item = Vec<String>>) -> String {
    rows.into_iter()
        .map(|r| format!("({})", r.join(", ")))
        .collect::<Vec<_>>()
        .join(",\n")
}

/// Quote a string literal.
pub(crate) fn q(s: &str) -> String {
    sql_string(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_the_right_shape() {
        let s = rfc3339_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
        assert!(s.as_str() > "2024-01-01", "{s}");
    }

    #[test]
    fn embedded_csv_has_98_municipalities() {
        assert_eq!(
            MUNICIPALITIES_CSV
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .count(),
            98
        );
    }

    #[test]
    fn unknown_dataset_is_rejected() {
        let dir = std::env::temp_dir().join(format!("datagen-unknown-{}", std::process::id()));
        let mut o = GenerateOptions::new(&dir);
        o.datasets = Some(vec!["nope".into()]);
        let err = generate(&o, &NoProgress).unwrap_err().to_string();
        assert!(err.contains("unknown dataset"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
