//! The result cache: whole answers of MDX SELECT and DRILLTHROUGH statements, kept in memory
//! (moka, bounded by an estimate of the bytes each answer holds).
//!
//! The key is everything an answer depends on: the data version of the runtime (dataset
//! snapshot ids) and its definitions' load time, the effective security scope
//! ([`Access`], built from the verified principal only: row scope, allowed sets, benchmark
//! access, granted cubes), the language, the statement (whitespace outside names and strings
//! collapsed), the properties that change the answer, and the session's calculated members.
//! Two principals with different scopes never share an entry.
//!
//! When a request arrives with a data version other than the current one, the old version is
//! retired and the whole cache is emptied at once (`invalidate_all`); requests still running
//! on a retired version neither read nor write the cache. Statements whose answer depends on
//! the clock (`Now()`, `Date()`) are never cached.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use datakube_xmla::service::{CacheStats, ExecuteResult};

use crate::security::Access;

/// Retired data versions remembered (requests still running on them bypass the cache).
const RETIRED_VERSIONS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Data version and definitions' load time of the runtime.
    pub version: String,
    pub access: Access,
    pub lcid: u32,
    pub statement: String,
    /// Lower-cased names and values of the properties that change an answer.
    pub props: Vec<(String, String)>,
    /// The session's `CREATE` statements, in order.
    pub session: Vec<String>,
}

pub struct ResultCache {
    cache: moka::sync::Cache<Arc<CacheKey>, Arc<ExecuteResult>>,
    hits: AtomicU64,
    misses: AtomicU64,
    versions: Mutex<Versions>,
}

#[derive(Default)]
struct Versions {
    current: Option<String>,
    retired: VecDeque<String>,
}

impl ResultCache {
    /// A cache holding at most about `max_bytes` of answers.
    pub fn new(max_bytes: u64) -> ResultCache {
        ResultCache {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_k: &Arc<CacheKey>, v: &Arc<ExecuteResult>| {
                    u32::try_from(approx_bytes(v)).unwrap_or(u32::MAX)
                })
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            versions: Mutex::new(Versions::default()),
        }
    }

    /// Whether `version` may use the cache; a new version retires the current one and
    /// empties the cache.
    fn admit(&self, version: &str) -> bool {
        let mut v = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        match &v.current {
            Some(c) if c == version => true,
            _ if v.retired.iter().any(|r| r == version) => false,
            _ => {
                if let Some(old) = v.current.replace(version.to_string()) {
                    v.retired.push_back(old);
                    if v.retired.len() > RETIRED_VERSIONS {
                        v.retired.pop_front();
                    }
                    self.cache.invalidate_all();
                }
                true
            }
        }
    }

    /// The cached answer for `key`, counting a hit or a miss; `None` also when the key's
    /// version is retired.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<ExecuteResult>> {
        if !self.admit(&key.version) {
            return None;
        }
        match self.cache.get(key) {
            Some(v) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(v)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The cached answer for `key`, or `run`'s, stored. Concurrent requests for the same key
    /// wait for one run instead of all running it (sessions of one kommune opening the same
    /// workbook). Faults are not cached.
    pub fn get_or_run<E: Send + Sync + 'static + Clone>(
        &self,
        key: CacheKey,
        run: impl FnOnce() -> Result<ExecuteResult, E>,
    ) -> Result<Arc<ExecuteResult>, E> {
        if !self.admit(&key.version) {
            return run().map(Arc::new);
        }
        let mut ran = false;
        let r = self.cache.try_get_with(Arc::new(key), || {
            ran = true;
            run().map(Arc::new)
        });
        if ran {
            self.misses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        r.map_err(|e| (*e).clone())
    }

    pub fn insert(&self, key: CacheKey, value: Arc<ExecuteResult>) {
        if self.admit(&key.version) {
            self.cache.insert(Arc::new(key), value);
        }
    }

    /// Drop every entry at once (a new runtime was loaded).
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    pub fn stats(&self) -> CacheStats {
        self.cache.run_pending_tasks();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
        }
    }
}

/// An estimate of the memory an answer holds.
pub fn approx_bytes(r: &ExecuteResult) -> u64 {
    const OVERHEAD: u64 = 48;
    let s = |x: &str| x.len() as u64 + OVERHEAD;
    let total = match r {
        ExecuteResult::Root(x) => s(x),
        ExecuteResult::CellSet { cells, .. } => {
            let axes: u64 = cells
                .axes
                .iter()
                .chain(std::iter::once(&cells.slicer))
                .flat_map(|a| a.tuples.iter().flatten())
                .map(|m| {
                    s(&m.hierarchy)
                        + s(&m.unique_name)
                        + s(&m.caption)
                        + s(&m.level_unique_name)
                        + m.properties.iter().map(|p| p.as_deref().map_or(8, s)).sum::<u64>()
                })
                .sum();
            let cells: u64 = cells
                .cells
                .iter()
                .map(|c| 2 * OVERHEAD + c.formatted.as_deref().map_or(0, s) + c.format_string.as_deref().map_or(0, s))
                .sum();
            axes + cells
        }
        ExecuteResult::Rowset(rs) => rs.rows.iter().map(|row| row.len() as u64 * 40).sum::<u64>() + 1024,
    };
    total + 1024
}

/// The statement as a cache key: trimmed, runs of whitespace outside `[names]`, `'strings'`
/// and `"strings"` collapsed to one space; `None` when the answer depends on the clock.
pub fn normalise(statement: &str) -> Option<String> {
    let mut out = String::with_capacity(statement.len());
    let mut close: Option<char> = None;
    let mut space = false;
    let mut word = String::new();
    for ch in statement.trim().chars() {
        if let Some(c) = close {
            out.push(ch);
            if ch == c {
                close = None;
            }
            continue;
        }
        if ch.is_whitespace() {
            space = true;
            continue;
        }
        if ch == '(' && matches!(word.to_ascii_lowercase().as_str(), "now" | "date" | "time") {
            return None;
        }
        if space && !out.is_empty() {
            out.push(' ');
            if ch != '(' {
                word.clear();
            }
        }
        space = false;
        if ch.is_alphanumeric() || ch == '_' {
            word.push(ch);
        } else {
            word.clear();
        }
        match ch {
            '[' => close = Some(']'),
            '\'' => close = Some('\''),
            '"' => close = Some('"'),
            _ => {}
        }
        out.push(ch);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_collapses_whitespace_outside_names() {
        assert_eq!(
            normalise("  SELECT  {[Measures].[Antal  borgere]}\n ON 0\tFROM [Befolkning] ").as_deref(),
            Some("SELECT {[Measures].[Antal  borgere]} ON 0 FROM [Befolkning]")
        );
        assert_eq!(
            normalise("WITH MEMBER x AS 'a  b' SELECT").as_deref(),
            Some("WITH MEMBER x AS 'a  b' SELECT")
        );
        assert_eq!(normalise("WITH MEMBER [Measures].[x] AS Now () SELECT"), None);
        assert_eq!(normalise("WITH MEMBER [Measures].[x] AS vba!date() SELECT"), None);
        assert!(normalise("SELECT [Tid].[Now] ON 0 FROM [X]").is_some());
    }

    fn key(version: &str, access: Access) -> CacheKey {
        CacheKey {
            version: version.into(),
            access,
            lcid: 1030,
            statement: "SELECT".into(),
            props: Vec::new(),
            session: Vec::new(),
        }
    }

    #[test]
    fn scopes_do_not_share_and_new_versions_retire_old_ones() {
        let c = ResultCache::new(1 << 20);
        let v = Arc::new(ExecuteResult::Root("<root/>".into()));
        c.insert(key("a", Access::kommuner(&[751])), v.clone());
        assert!(c.get(&key("a", Access::kommuner(&[751]))).is_some());
        assert!(c.get(&key("a", Access::kommuner(&[101]))).is_none());
        assert!(c.get(&key("a", Access::all())).is_none());
        // Version b arrives: a is retired, everything cached vanishes.
        assert!(c.get(&key("b", Access::kommuner(&[751]))).is_none());
        c.insert(key("a", Access::kommuner(&[751])), v.clone());
        assert!(c.get(&key("a", Access::kommuner(&[751]))).is_none());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries), (1, 3, 0));
    }
}
