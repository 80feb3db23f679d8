//! `datakube-engine`: the only crate that talks to DuckDB.
//!
//! DuckDB runs in-process. Every connection is opened through [`Engine`] or
//! [`open_connection`], which apply the same safety settings: extensions are never
//! downloaded or auto-loaded at run time (parquet, json, icu and core_functions are
//! statically linked into the DuckDB library we ship), and threads and memory are bounded.

pub mod storage;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use duckdb;
use duckdb::Connection;

/// Settings for DuckDB connections.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// DuckDB worker threads per database (`SET threads`); 0 = DuckDB's default (all cores).
    pub threads: usize,
    /// DuckDB memory limit, e.g. `"4GB"`; empty = DuckDB's default (80 % of RAM).
    pub memory_limit: String,
    /// Number of pooled connections serving concurrent queries.
    pub pool_size: u32,
    /// Directory DuckDB may spill to; `None` = DuckDB's default.
    pub temp_directory: Option<std::path::PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            threads: 0,
            memory_limit: String::new(),
            pool_size: 8,
            temp_directory: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("DuckDB: {0}")]
    DuckDb(#[from] duckdb::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("invalid engine setting {name} = {value:?}: {reason}")]
    Setting {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Statements every connection runs first. Extension auto-install/auto-load are off so
/// that nothing is ever downloaded at run time (the machine may be offline). The perfect
/// hash aggregate is off: DuckDB 1.5.6 trusts Parquet/hive statistics for it and fails valid
/// GROUP BYs on our data ("aggregate group … exceeded total groups 64"; DuckDB 2.0 does not),
/// found by the differential test. Parquet footers are cached (`parquet_metadata_cache`):
/// every statement otherwise reads and decodes the footers of all files it touches again,
/// 15–20 % of a 20–30 ms statement at scale 1 (Befolkning for one kommune: 23.0 ms without,
/// 19.7 ms with). Snapshot files are never rewritten in place (a refresh writes a new
/// snapshot folder, aggregates are named by content), and DuckDB checks a cached footer
/// against the file's modification time anyway.
fn safety_sql(cfg: &EngineConfig) -> Result<String, EngineError> {
    let mut sql = String::from(
        "SET autoinstall_known_extensions = false;\n\
         SET autoload_known_extensions = false;\n\
         SET perfect_ht_threshold = 0;\n\
         SET parquet_metadata_cache = true;\n",
    );
    if cfg.threads > 0 {
        sql.push_str(&format!("SET threads = {};\n", cfg.threads));
    }
    if !cfg.memory_limit.is_empty() {
        let ok = cfg
            .memory_limit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == ' ');
        if !ok {
            return Err(EngineError::Setting {
                name: "memory_limit",
                value: cfg.memory_limit.clone(),
                reason: "expected a size such as 4GB or 512MiB".into(),
            });
        }
        sql.push_str(&format!("SET memory_limit = '{}';\n", cfg.memory_limit));
    }
    if let Some(dir) = &cfg.temp_directory {
        sql.push_str(&format!(
            "SET temp_directory = {};\n",
            sql_string(&dir.to_string_lossy())
        ));
    }
    Ok(sql)
}

/// Quote `s` as a SQL string literal (single quotes doubled). For paths and other
/// server-side values; client text goes in as parameters instead.
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Quote `s` as a SQL identifier.
pub fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Open a standalone in-memory connection with the safety settings applied
/// (used by `datakube generate` and by tools that need one connection).
pub fn open_connection(cfg: &EngineConfig) -> Result<Connection, EngineError> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(&safety_sql(cfg)?)?;
    Ok(conn)
}

/// The DuckDB version string, e.g. `v1.5.6`.
pub fn duckdb_version(conn: &Connection) -> Result<String, EngineError> {
    Ok(conn.query_row("SELECT version()", [], |r| r.get(0))?)
}

#[derive(Debug)]
/// Opens pooled connections to the one database (an implementation detail of [`Engine`]).
pub struct Manager {
    db: std::sync::Mutex<Connection>,
    init: String,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = duckdb::Error;
    fn connect(&self) -> Result<Connection, duckdb::Error> {
        let c = self.db.lock().unwrap_or_else(|p| p.into_inner()).try_clone()?;
        c.execute_batch(&self.init)?;
        Ok(c)
    }
    fn is_valid(&self, conn: &mut Connection) -> Result<(), duckdb::Error> {
        conn.execute_batch("SELECT 1")
    }
    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}

/// One in-memory DuckDB database (it reads Parquet files; it stores nothing itself) and a
/// pool of connections to it. Cloning is cheap.
#[derive(Clone)]
pub struct Engine {
    pool: Arc<r2d2::Pool<Manager>>,
    version: Arc<str>,
}

/// A pooled connection; returned to the pool on drop.
pub type PooledConnection = r2d2::PooledConnection<Manager>;

impl Engine {
    pub fn open(cfg: &EngineConfig) -> Result<Engine, EngineError> {
        let db = open_connection(cfg)?;
        let version = duckdb_version(&db)?;
        let init = safety_sql(cfg)?;
        let pool = r2d2::Pool::builder()
            .max_size(cfg.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(30))
            .build(Manager {
                db: std::sync::Mutex::new(db),
                init,
            })?;
        Ok(Engine {
            pool: Arc::new(pool),
            version: version.into(),
        })
    }

    /// A connection from the pool (blocks up to 30 s when all are busy).
    pub fn connection(&self) -> Result<PooledConnection, EngineError> {
        Ok(self.pool.get()?)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Column names and DuckDB types of the Parquet files matched by `glob`.
    pub fn parquet_schema(&self, glob: &Path) -> Result<Vec<(String, String)>, EngineError> {
        let conn = self.connection()?;
        parquet_schema(&conn, glob)
    }
}

/// Column names and DuckDB types of the Parquet files matched by `glob`
/// (hive partition columns included).
pub fn parquet_schema(conn: &Connection, glob: &Path) -> Result<Vec<(String, String)>, EngineError> {
    let sql = format!(
        "DESCRIBE SELECT * FROM read_parquet({}, hive_partitioning = true)",
        sql_string(&glob.to_string_lossy())
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_parquet_file_is_read_again_despite_the_footer_cache() {
        let conn = open_connection(&EngineConfig::default()).unwrap();
        let on: String = conn
            .query_row("SELECT current_setting('parquet_metadata_cache')::VARCHAR", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(on, "true");
        let dir = std::env::temp_dir().join(format!("datakube-engine-rewrite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = sql_string(&dir.join("t.parquet").to_string_lossy());
        for rows in [1i64, 2, 3000] {
            conn.execute_batch(&format!(
                "COPY (SELECT {rows} AS x FROM range({rows})) TO {p} (FORMAT parquet)"
            ))
            .unwrap();
            let (max, n): (i64, i64) = conn
                .query_row(&format!("SELECT max(x), count(*) FROM read_parquet({p})"), [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!((max, n), (rows, rows));
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn extensions_are_never_downloaded() {
        let conn = open_connection(&EngineConfig::default()).unwrap();
        let v: String = conn
            .query_row(
                "SELECT current_setting('autoinstall_known_extensions')::VARCHAR",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, "false");
        // Parquet is compiled in: writing and reading a file needs no extension download.
        let dir = tempfile_dir();
        let p = dir.join("t.parquet");
        conn.execute_batch(&format!(
            "COPY (SELECT 42 AS x) TO {} (FORMAT parquet)",
            sql_string(&p.to_string_lossy())
        ))
        .unwrap();
        let schema = parquet_schema(&conn, &p).unwrap();
        assert_eq!(schema, vec![("x".to_string(), "INTEGER".to_string())]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn pool_serves_concurrent_queries() {
        let engine = Engine::open(&EngineConfig {
            pool_size: 4,
            ..Default::default()
        })
        .unwrap();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let e = engine.clone();
                std::thread::spawn(move || {
                    let c = e.connection().unwrap();
                    let v: i64 = c
                        .query_row("SELECT sum(range) FROM range(?)", [i * 1000], |r| r.get(0))
                        .unwrap_or(0);
                    v
                })
            })
            .collect();
        let got: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for (i, v) in got.iter().enumerate() {
            let n = (i * 1000) as i64;
            assert_eq!(*v, if n == 0 { 0 } else { n * (n - 1) / 2 });
        }
    }

    #[test]
    fn bad_memory_limit_is_refused() {
        let cfg = EngineConfig {
            memory_limit: "1GB'; DROP".into(),
            ..Default::default()
        };
        assert!(matches!(open_connection(&cfg), Err(EngineError::Setting { .. })));
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("datakube-engine-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

/// Cancels a command: every DuckDB query registered with the token is interrupted, and code
/// that checks [`CancelToken::is_cancelled`] stops before starting more work.
#[derive(Default)]
pub struct CancelToken {
    cancelled: std::sync::atomic::AtomicBool,
    running: std::sync::Mutex<Vec<(u64, Arc<duckdb::InterruptHandle>)>>,
    next: std::sync::atomic::AtomicU64,
}

/// Keeps a query registered with a [`CancelToken`] until dropped.
pub struct Running<'t> {
    token: &'t CancelToken,
    id: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.token
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(id, _)| *id != self.id);
    }
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    /// Register `conn`'s running query; interrupting happens through its handle.
    pub fn register(&self, conn: &Connection) -> Running<'_> {
        use std::sync::atomic::Ordering;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let handle = conn.interrupt_handle();
        if self.is_cancelled() {
            handle.interrupt();
        }
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, handle));
        Running { token: self, id }
    }
    pub fn cancel(&self) {
        self.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
        for (_, h) in self.running.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            h.interrupt();
        }
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod cancel_tests {
    use super::*;

    #[test]
    fn cancel_interrupts_a_running_query() {
        let engine = Engine::open(&EngineConfig {
            pool_size: 2,
            ..Default::default()
        })
        .unwrap();
        let token = Arc::new(CancelToken::new());
        let (t2, e2) = (token.clone(), engine.clone());
        let worker = std::thread::spawn(move || {
            let conn = e2.connection().unwrap();
            let _running = t2.register(&conn);
            // Would run for hours unless interrupted.
            conn.query_row(
                "SELECT count(*) FROM range(1000000000000) a WHERE hash(a.range) = 7",
                [],
                |r| r.get::<_, i64>(0),
            )
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        token.cancel();
        let result = worker.join().unwrap();
        let err = result.expect_err("the query was interrupted");
        assert!(err.to_string().to_lowercase().contains("interrupt"), "{err}");
        assert!(token.is_cancelled());
    }
}
