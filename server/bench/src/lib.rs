//! The datakube benchmark (issue 6): an Excel-shaped workload over the FLIS cubes, answered by
//! the XMLA service in-process (SOAP in, MDDataSet out: the server minus TLS and HTTP), each
//! statement checked against and timed beside a hand-written DuckDB SQL query on the same
//! engine (same connection settings), in the same run.
//!
//! [`Harness`] is also what the cache tests use: it loads the model like `serve` does, can
//! switch the result cache on and off, and can load a new runtime after the data changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use datakube_auth::{Kommunekode, Principal, RowScope};
use datakube_engine::{Engine, EngineConfig, sql_string};
use datakube_query::xmla::QueryExecutor;
use datakube_xmla::service::{CacheStats, ExecuteRequest, ExecuteResult, Executor, Runtime, XmlaService};

pub mod report;
pub mod workload;

pub use workload::{Check, Kind, Statement, workload};

/// The catalog name of the FLIS cubes.
pub const CATALOG: &str = "FLIS";

/// Executes with or without the result cache, switched per phase of the benchmark.
struct Switch {
    cached: QueryExecutor,
    plain: QueryExecutor,
    use_cache: Arc<AtomicBool>,
}

impl Executor for Switch {
    fn execute(&self, req: &ExecuteRequest) -> Result<ExecuteResult, datakube_xmla::discover::Fault> {
        if self.use_cache.load(Ordering::Relaxed) {
            self.cached.execute(req)
        } else {
            self.plain.execute(req)
        }
    }
    fn on_runtime_replaced(&self) {
        self.cached.on_runtime_replaced();
    }
    fn cache_stats(&self) -> Option<CacheStats> {
        self.cached.cache_stats()
    }
}

/// The XMLA service over a data directory, in-process.
pub struct Harness {
    pub data_dir: std::path::PathBuf,
    pub definitions: std::path::PathBuf,
    pub engine: Engine,
    pub service: XmlaService,
    use_cache: Arc<AtomicBool>,
}

/// What one statement answered: the non-empty cell values (MDX), the rows (DRILLTHROUGH,
/// Discover), or the fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub values: Vec<f64>,
    pub rows: usize,
}

impl Harness {
    /// Load definitions and members like `serve`; `cache_bytes` sizes the result cache.
    pub fn open(
        data_dir: &std::path::Path,
        definitions: &std::path::Path,
        engine: &EngineConfig,
        cache_bytes: u64,
    ) -> anyhow::Result<Harness> {
        let engine = Engine::open(engine).context("opening DuckDB")?;
        let runtime = load_runtime(&engine, data_dir, definitions)?;
        let use_cache = Arc::new(AtomicBool::new(true));
        let switch = Switch {
            cached: QueryExecutor::new(engine.clone()).with_cache(cache_bytes),
            plain: QueryExecutor::new(engine.clone()),
            use_cache: use_cache.clone(),
        };
        let service = XmlaService::new(runtime, Default::default(), Box::new(switch));
        Ok(Harness {
            data_dir: data_dir.to_path_buf(),
            definitions: definitions.to_path_buf(),
            engine,
            service,
            use_cache,
        })
    }

    /// Answer from the result cache (true) or always run the statement (false).
    pub fn set_cache(&self, on: bool) {
        self.use_cache.store(on, Ordering::Relaxed);
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.service.cache_stats().unwrap_or_default()
    }

    /// Load a new runtime from the data directory as it is now (what a refresh does) and
    /// replace the running one.
    pub fn reload(&self) -> anyhow::Result<()> {
        let rt = load_runtime(&self.engine, &self.data_dir, &self.definitions)?;
        *self.service.runtime.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rt);
        self.service.on_runtime_replaced();
        Ok(())
    }

    /// Send one XMLA request body and read the answer.
    pub fn run(&self, stmt: &Statement, scope: &Scope) -> anyhow::Result<Answer> {
        let body = stmt.envelope(scope);
        let xml = self.service.handle_soap(body.as_bytes(), &scope.principal);
        parse_answer(&xml).with_context(|| format!("statement {}", stmt.name))
    }

    /// Only the server's part of [`Self::run`]: the XMLA request body in, the answer's bytes
    /// out (what the benchmark times; reading the answer is the client's work).
    pub fn serve(&self, stmt: &Statement, scope: &Scope) -> anyhow::Result<usize> {
        let body = stmt.envelope(scope);
        let xml = self.service.handle_soap(body.as_bytes(), &scope.principal);
        anyhow::ensure!(!xml.is_empty(), "statement {}: empty answer", stmt.name);
        Ok(xml.len())
    }

    /// The numbers of the hand-written SQL (non-null values of every column, row by row) and
    /// its row count; for a statement checked by rows, every value is read but not kept.
    pub fn sql(&self, stmt: &Statement, scope: &Scope) -> anyhow::Result<Option<Answer>> {
        let Some(sql) = stmt.sql(scope, &|dataset, table| self.table(dataset, table))? else {
            return Ok(None);
        };
        let conn = self.engine.connection()?;
        let mut st = conn
            .prepare(&sql)
            .with_context(|| format!("SQL of {}: {sql}", stmt.name))?;
        let mut rows = st.query([])?;
        let mut values = Vec::new();
        let mut n = 0;
        while let Some(r) = rows.next()? {
            n += 1;
            let cols = r.as_ref().column_count();
            if stmt.check == Check::Values {
                for i in 0..cols {
                    if let Some(v) = r.get::<_, Option<f64>>(i)? {
                        values.push(v);
                    }
                }
            } else {
                // Rows (drillthrough): a client reads every value it was handed, as the
                // server does to write them.
                for i in 0..cols {
                    std::hint::black_box(r.get_ref(i)?);
                }
            }
        }
        Ok(Some(Answer { values, rows: n }))
    }

    /// `read_parquet(<current snapshot of dataset>/<table>/**/*.parquet)`.
    pub fn table(&self, dataset: &str, table: &str) -> anyhow::Result<String> {
        let glob = datakube_engine::storage::table_glob(&self.data_dir, dataset, table)?;
        Ok(format!(
            "read_parquet({}, hive_partitioning = true)",
            sql_string(&glob.to_string_lossy())
        ))
    }

    /// Run the statement and its SQL and compare: the same non-empty values (sorted, relative
    /// difference ≤ 1e-9) or the same row count.
    pub fn check(&self, stmt: &Statement, scope: &Scope) -> anyhow::Result<Option<(Answer, Answer)>> {
        let got = self.run(stmt, scope)?;
        let Some(want) = self.sql(stmt, scope)? else {
            return Ok(None);
        };
        same(stmt, &got, &want)?;
        Ok(Some((got, want)))
    }
}

/// Compare an answer with the SQL's.
pub fn same(stmt: &Statement, got: &Answer, want: &Answer) -> anyhow::Result<()> {
    match stmt.check {
        Check::Rows => {
            if got.rows != want.rows {
                bail!("{}: {} rows, the SQL gives {}", stmt.name, got.rows, want.rows);
            }
        }
        Check::Values => {
            let mut a = got.values.clone();
            let mut b = want.values.clone();
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
            if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| !close(*x, *y)) {
                bail!(
                    "{}: values differ from the SQL's: {} values {:?}… against {} values {:?}…",
                    stmt.name,
                    a.len(),
                    &a[..a.len().min(6)],
                    b.len(),
                    &b[..b.len().min(6)]
                );
            }
            if a.is_empty() {
                bail!("{}: no values (a check on nothing proves nothing)", stmt.name);
            }
        }
        Check::None => {}
    }
    Ok(())
}

fn load_runtime(engine: &Engine, data_dir: &std::path::Path, definitions: &std::path::Path) -> anyhow::Result<Runtime> {
    let catalog = datakube_model::load_catalog(definitions, None).map_err(|d| {
        anyhow::anyhow!(
            "cube definitions in {}: {}",
            definitions.display(),
            d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; ")
        )
    })?;
    let snapshots = datakube_engine::storage::Snapshots::current(data_dir).context("pinning the snapshots")?;
    let members = datakube_members::MemberStore::load(engine, &snapshots, &catalog).context("loading members")?;
    Ok(Runtime {
        catalog,
        members,
        schema_updated: "2026-01-01T00:00:00".into(),
        data_updated: "2026-01-01T00:00:00".into(),
        data_version: datakube_xmla::service::data_version(&snapshots),
        snapshots,
    })
}

/// Who runs the workload: a principal and the kommune/region its statements name.
#[derive(Debug, Clone)]
pub struct Scope {
    pub label: String,
    pub principal: Principal,
    /// `None` for all rows.
    pub kommune: Option<u16>,
    /// The kommune and region named in drill-downs and drillthrough.
    pub focus_kommune: u16,
    pub focus_region: u16,
}

impl Scope {
    /// An administrator (all rows) focusing on `kommune` in `region`.
    pub fn admin(kommune: u16, region: u16) -> Scope {
        Scope {
            label: "all rows".into(),
            principal: Principal {
                subject: "bench:admin".into(),
                display_name: "Benchmark administrator".into(),
                scope: RowScope::All,
                roles: vec!["admin".into()],
                benchmark: true,
                ..Default::default()
            },
            kommune: None,
            focus_kommune: kommune,
            focus_region: region,
        }
    }

    /// An analyst of one kommune (row scope = that kommune).
    pub fn kommune(kommune: u16, region: u16) -> Scope {
        Scope {
            label: format!("kommune {kommune}"),
            principal: Principal {
                subject: format!("bench:analyst-{kommune}"),
                display_name: format!("Benchmark analyst {kommune}"),
                scope: RowScope::Municipalities(vec![Kommunekode(kommune)]),
                roles: vec!["analytiker".into()],
                home_kommune: Some(Kommunekode(kommune)),
                ..Default::default()
            },
            kommune: Some(kommune),
            focus_kommune: kommune,
            focus_region: region,
        }
    }
}

/// The region of a kommune, from the shared dimension table.
pub fn region_of(h: &Harness, kommune: u16) -> anyhow::Result<u16> {
    let sql = format!(
        "SELECT regionskode FROM {} WHERE kommunekode = {kommune}",
        h.table("faelles", "kommune")?
    );
    let r: i64 = h
        .engine
        .connection()?
        .query_row(&sql, [], |r| r.get(0))
        .with_context(|| format!("kommune {kommune} is not in faelles/kommune"))?;
    Ok(u16::try_from(r)?)
}

/// Read an XMLA answer: fault → error; cell values of `<CellData>`; `<row>` count.
pub fn parse_answer(xml: &str) -> anyhow::Result<Answer> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut in_celldata = false;
    let mut in_value = false;
    let mut values = Vec::new();
    let mut rows = 0;
    let mut fault: Option<String> = None;
    let mut in_fault_text = false;
    loop {
        match r.read_event()? {
            Event::Start(e) => {
                let name = e.local_name();
                match name.as_ref() {
                    b"CellData" => in_celldata = true,
                    b"Value" if in_celldata => in_value = true,
                    b"row" => rows += 1,
                    b"faultstring" => in_fault_text = true,
                    _ => {}
                }
                if name.as_ref() == b"Error" {
                    for a in e.attributes().flatten() {
                        if a.key.local_name().as_ref() == b"Description" {
                            fault = Some(String::from_utf8_lossy(&a.value).into_owned());
                        }
                    }
                }
            }
            Event::Empty(e) if e.local_name().as_ref() == b"Error" => {
                for a in e.attributes().flatten() {
                    if a.key.local_name().as_ref() == b"Description" {
                        fault = Some(String::from_utf8_lossy(&a.value).into_owned());
                    }
                }
            }
            Event::Text(t) => {
                let text = t.xml_content()?.into_owned();
                if in_value {
                    if let Ok(v) = text.trim().parse::<f64>() {
                        values.push(v);
                    }
                } else if in_fault_text && fault.is_none() {
                    fault = Some(text);
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"CellData" => in_celldata = false,
                b"Value" => in_value = false,
                b"faultstring" => in_fault_text = false,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(f) = fault {
        bail!("the server answered a fault: {f}");
    }
    Ok(Answer { values, rows })
}

/// p-th percentile (0–100) of durations, nearest rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut s = samples.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// Time `runs` executions of `f`.
pub fn time_runs(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        out.push(t.elapsed());
    }
    Ok(out)
}
