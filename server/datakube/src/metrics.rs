//! Prometheus metrics in the text exposition format (version 0.0.4), served at `/metrics`.
//!
//! A small registry written here rather than a metrics crate: a handful of histograms and
//! counters with fixed label sets, rendered on scrape. Labels never carry client text: a
//! request type or cube the server does not know becomes `other`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// Upper bounds (seconds) of the latency buckets.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Hits and misses of one cache, for `datakube_cache_*` (the result cache of the query
/// engine provides these; see [`Metrics::set_cache_stats`]).
#[derive(Debug, Clone, Default)]
pub struct CacheStats {
    pub cache: String,
    pub hits: u64,
    pub misses: u64,
}

/// Called at every scrape for the current cache statistics.
pub type CacheStatsProvider = Box<dyn Fn() -> Vec<CacheStats> + Send + Sync>;

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BUCKETS.len()];
        }
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                self.counts.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    /// (request type, cube) → latency.
    xmla: BTreeMap<(String, String), Histogram>,
    /// (request type, cube) → requests answered with a fault.
    xmla_faults: BTreeMap<(String, String), u64>,
    /// cube → SQL statement durations.
    sql: BTreeMap<String, Histogram>,
    auth_failures: u64,
    /// (what, outcome) → reloads of the runtime (`what`: definitions, data, admin).
    reloads: BTreeMap<(String, String), u64>,
    last_reload_success: f64,
    last_reload_failure: f64,
}

/// What the server reports at scrape time besides the counters (filled by the caller).
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub sessions: usize,
    pub ready: bool,
    /// Whether the definitions on disk were applied at the last attempt.
    pub definitions_valid: bool,
    /// dataset → snapshot id served.
    pub snapshots: BTreeMap<String, String>,
    /// dataset → (unix time of the last successful refresh, refreshes by outcome).
    pub refreshes: BTreeMap<String, (f64, BTreeMap<String, u64>)>,
}

pub struct Metrics {
    inner: Mutex<Inner>,
    cache_stats: Mutex<Option<CacheStatsProvider>>,
    /// The cube names labels may carry (lower case → name), from the runtime in use.
    cubes: Mutex<BTreeMap<String, String>>,
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics {
            inner: Mutex::new(Inner::default()),
            cache_stats: Mutex::new(None),
            cubes: Mutex::new(BTreeMap::new()),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hook for the query engine's result cache: `provider` is asked at every scrape.
    /// Not called yet: the result cache (perf worker) wires its hits/misses here.
    #[allow(dead_code)]
    pub fn set_cache_stats(&self, provider: CacheStatsProvider) {
        *self.cache_stats.lock().unwrap_or_else(|p| p.into_inner()) = Some(provider);
    }

    /// The cubes that may appear as labels (called when a runtime is swapped in).
    pub fn set_cubes(&self, names: &[String]) {
        *self.cubes.lock().unwrap_or_else(|p| p.into_inner()) =
            names.iter().map(|n| (n.to_lowercase(), n.clone())).collect();
    }

    fn cube_label(&self, cube: &str) -> String {
        if cube.is_empty() {
            return String::new();
        }
        self.cubes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cube.to_lowercase())
            .cloned()
            .unwrap_or_else(|| "other".into())
    }

    pub fn observe_sql(&self, cube: &str, seconds: f64) {
        let cube = self.cube_label(cube);
        self.inner().sql.entry(cube).or_default().observe(seconds);
    }

    pub fn reload(&self, what: &str, ok: bool) {
        let mut i = self.inner();
        *i.reloads
            .entry((what.to_string(), if ok { "ok" } else { "failed" }.to_string()))
            .or_default() += 1;
        if ok {
            i.last_reload_success = unix_now();
        } else {
            i.last_reload_failure = unix_now();
        }
    }

    /// The whole exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let i = self.inner();
        out.push_str("# HELP datakube_xmla_request_duration_seconds Time to answer an XMLA request (until the answer is decided), by request type and cube.\n");
        out.push_str("# TYPE datakube_xmla_request_duration_seconds histogram\n");
        for ((req, cube), h) in &i.xmla {
            h.render(
                &mut out,
                "datakube_xmla_request_duration_seconds",
                &format!("request=\"{}\",cube=\"{}\"", escape(req), escape(cube)),
            );
        }
        out.push_str("# HELP datakube_xmla_faults_total XMLA requests answered with a fault.\n");
        out.push_str("# TYPE datakube_xmla_faults_total counter\n");
        for ((req, cube), n) in &i.xmla_faults {
            let _ = writeln!(
                out,
                "datakube_xmla_faults_total{{request=\"{}\",cube=\"{}\"}} {n}",
                escape(req),
                escape(cube)
            );
        }
        out.push_str(
            "# HELP datakube_sql_duration_seconds Time of each DuckDB statement run for MDX cells, by cube.\n",
        );
        out.push_str("# TYPE datakube_sql_duration_seconds histogram\n");
        for (cube, h) in &i.sql {
            h.render(
                &mut out,
                "datakube_sql_duration_seconds",
                &format!("cube=\"{}\"", escape(cube)),
            );
        }
        out.push_str("# HELP datakube_auth_failures_total Requests whose credentials were refused.\n");
        out.push_str("# TYPE datakube_auth_failures_total counter\n");
        let _ = writeln!(out, "datakube_auth_failures_total {}", i.auth_failures);
        out.push_str("# HELP datakube_sessions XMLA sessions open.\n# TYPE datakube_sessions gauge\n");
        let _ = writeln!(out, "datakube_sessions {}", g.sessions);
        out.push_str("# HELP datakube_ready Whether a runtime is loaded and its snapshots are on disk.\n# TYPE datakube_ready gauge\n");
        let _ = writeln!(out, "datakube_ready {}", u8::from(g.ready));
        out.push_str("# HELP datakube_definitions_valid Whether the last read of the cube definitions was applied (0: the running ones are older).\n# TYPE datakube_definitions_valid gauge\n");
        let _ = writeln!(out, "datakube_definitions_valid {}", u8::from(g.definitions_valid));
        out.push_str("# HELP datakube_reloads_total Attempts to swap in a new runtime (definitions or data), by trigger and outcome.\n# TYPE datakube_reloads_total counter\n");
        for ((what, outcome), n) in &i.reloads {
            let _ = writeln!(
                out,
                "datakube_reloads_total{{trigger=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(what)
            );
        }
        out.push_str("# HELP datakube_reload_last_success_timestamp_seconds When a runtime was last swapped in.\n# TYPE datakube_reload_last_success_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "datakube_reload_last_success_timestamp_seconds {}",
            i.last_reload_success
        );
        out.push_str("# HELP datakube_reload_last_failure_timestamp_seconds When a reload last failed (0: never).\n# TYPE datakube_reload_last_failure_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "datakube_reload_last_failure_timestamp_seconds {}",
            i.last_reload_failure
        );
        out.push_str(
            "# HELP datakube_snapshot_info The dataset snapshot being served.\n# TYPE datakube_snapshot_info gauge\n",
        );
        for (ds, id) in &g.snapshots {
            let _ = writeln!(
                out,
                "datakube_snapshot_info{{dataset=\"{}\",snapshot=\"{}\"}} 1",
                escape(ds),
                escape(id)
            );
        }
        out.push_str("# HELP datakube_refresh_last_success_timestamp_seconds When `datakube refresh` last switched a dataset to a new snapshot.\n# TYPE datakube_refresh_last_success_timestamp_seconds gauge\n");
        for (ds, (t, _)) in &g.refreshes {
            let _ = writeln!(
                out,
                "datakube_refresh_last_success_timestamp_seconds{{dataset=\"{}\"}} {t}",
                escape(ds)
            );
        }
        out.push_str("# HELP datakube_refreshes Data refreshes in the refresh log, by dataset and outcome.\n# TYPE datakube_refreshes gauge\n");
        for (ds, (_, outcomes)) in &g.refreshes {
            for (o, n) in outcomes {
                let _ = writeln!(
                    out,
                    "datakube_refreshes{{dataset=\"{}\",outcome=\"{}\"}} {n}",
                    escape(ds),
                    escape(o)
                );
            }
        }
        drop(i);
        let caches = self
            .cache_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|f| f())
            .unwrap_or_default();
        out.push_str("# HELP datakube_cache_hits_total Lookups answered from a cache.\n# TYPE datakube_cache_hits_total counter\n");
        for c in &caches {
            let _ = writeln!(
                out,
                "datakube_cache_hits_total{{cache=\"{}\"}} {}",
                escape(&c.cache),
                c.hits
            );
        }
        out.push_str("# HELP datakube_cache_misses_total Lookups a cache could not answer.\n# TYPE datakube_cache_misses_total counter\n");
        for c in &caches {
            let _ = writeln!(
                out,
                "datakube_cache_misses_total{{cache=\"{}\"}} {}",
                escape(&c.cache),
                c.misses
            );
        }
        out
    }
}

/// Label value escaping of the text format.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A request type as a label: a Discover rowset name the protocol knows, `Execute`, or `other`.
fn request_label(request: &str) -> String {
    let known_prefix = ["MDSCHEMA_", "DBSCHEMA_", "DISCOVER_", "DMSCHEMA_"]
        .iter()
        .any(|p| request.starts_with(p));
    let clean = request.len() <= 64 && request.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if request == "Execute" || request == "malformed" || (known_prefix && clean) {
        request.to_string()
    } else {
        "other".into()
    }
}

impl datakube_xmla::service::XmlaObserver for Metrics {
    fn request(&self, request: &str, cube: &str, seconds: f64, fault: bool) {
        let key = (request_label(request), self.cube_label(cube));
        let mut i = self.inner();
        if fault {
            *i.xmla_faults.entry(key.clone()).or_default() += 1;
        }
        i.xmla.entry(key).or_default().observe(seconds);
    }

    fn auth_failure(&self) {
        self.inner().auth_failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datakube_xmla::service::XmlaObserver as _;

    #[test]
    fn histograms_are_cumulative_and_labels_never_carry_unknown_text() {
        let m = Metrics::new();
        m.set_cubes(&["Borger".into()]);
        m.request("MDSCHEMA_CUBES", "borger", 0.003, false);
        m.request("Execute", "Borger", 0.3, true);
        m.request("Execute", "nope\"", 0.3, false);
        m.request("<x>", "", 1.0, false);
        let text = m.render(&Gauges::default());
        assert!(text.contains(
            "datakube_xmla_request_duration_seconds_bucket{request=\"MDSCHEMA_CUBES\",cube=\"Borger\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "datakube_xmla_request_duration_seconds_bucket{request=\"Execute\",cube=\"Borger\",le=\"0.25\"} 0"
        ));
        assert!(text.contains(
            "datakube_xmla_request_duration_seconds_bucket{request=\"Execute\",cube=\"Borger\",le=\"0.5\"} 1"
        ));
        assert!(text.contains("datakube_xmla_request_duration_seconds_count{request=\"Execute\",cube=\"other\"} 1"));
        assert!(text.contains("datakube_xmla_request_duration_seconds_count{request=\"other\",cube=\"\"} 1"));
        assert!(text.contains("datakube_xmla_faults_total{request=\"Execute\",cube=\"Borger\"} 1"));
        assert!(!text.contains("nope"));
    }
}
