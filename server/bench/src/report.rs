//! Running the benchmark and writing its Markdown report.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Check, Harness, Kind, Scope, percentile, region_of, same, time_runs, workload};

#[derive(Debug, Clone)]
pub struct Options {
    /// Timed runs per statement and mode (at least).
    pub runs: usize,
    /// Cold and SQL runs continue, pair by pair, until they took this long together (or
    /// [`MAX_RUNS`] pairs): a statement of 30 ms gets dozens of samples, whose median a
    /// neighbour's busy second moves far less than it moves the median of 5.
    pub min_time: Duration,
    /// The kommune of the single-municipality pass.
    pub kommune: u16,
    /// Simulated Excel sessions of the concurrency mode (0 = skip).
    pub sessions: usize,
    /// Workload replays per session.
    pub rounds: usize,
}

/// The most cold and SQL runs per statement that [`Options::min_time`] asks for.
pub const MAX_RUNS: usize = 50;

/// One statement in one scope.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub scope: String,
    pub cold: Vec<Duration>,
    pub warm: Vec<Duration>,
    /// Result cache off, aggregates on (empty when aggregates are switched off).
    pub aggregates: Vec<Duration>,
    /// Whether any of the statement's SQL read an aggregate.
    pub used_aggregate: bool,
    pub sql: Vec<Duration>,
    /// What was compared ("12 values", "40 rows", "–").
    pub checked: String,
}

#[derive(Debug, Clone, Default)]
pub struct Concurrency {
    pub sessions: usize,
    pub requests: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub wall: Duration,
    pub latencies: Vec<Duration>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub rows: Vec<Row>,
    pub concurrency: Option<Concurrency>,
    pub cache: datakube_xmla::service::CacheStats,
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Run the workload as an administrator and as an analyst of `opts.kommune`: check every
/// statement against its SQL, then time it cold (result cache and aggregates off), with
/// aggregates (cache off; checked against the SQL again), warm (cache on) and the SQL; then
/// the concurrency mode. Aggregates stay off throughout when they were off at the start.
pub fn run(h: &Harness, opts: &Options, log: &dyn Fn(&str)) -> anyhow::Result<Report> {
    use datakube_query::aggregates;
    let with_aggregates = aggregates::enabled();
    let region = region_of(h, opts.kommune)?;
    let scopes = [Scope::admin(opts.kommune, region), Scope::kommune(opts.kommune, region)];
    let mut rows = Vec::new();
    for scope in &scopes {
        for stmt in workload() {
            h.set_cache(false);
            aggregates::set_enabled(false);
            // Check first (also warms the operating system's file cache for every mode alike).
            let checked = match h.check(&stmt, scope)? {
                None => {
                    h.run(&stmt, scope)?;
                    "–".to_string()
                }
                Some((got, _)) => match stmt.check {
                    Check::Rows => format!("{} rows", got.rows),
                    _ => format!("{} values", got.values.len()),
                },
            };
            // Cold and the hand-written SQL alternate run by run, so that a slower or faster
            // spell of a shared machine falls on both alike.
            let mut cold = Vec::new();
            let mut sql = Vec::new();
            let started = Instant::now();
            while cold.len() < opts.runs || (started.elapsed() < opts.min_time && cold.len() < MAX_RUNS) {
                cold.extend(time_runs(1, || h.serve(&stmt, scope).map(drop))?);
                if stmt.sql.is_some() {
                    sql.extend(time_runs(1, || h.sql(&stmt, scope).map(drop))?);
                }
            }
            let (agg, used_aggregate) = if with_aggregates {
                aggregates::set_enabled(true);
                let before = aggregates::reads();
                h.check(&stmt, scope)?;
                let used = aggregates::reads() > before;
                (time_runs(opts.runs, || h.serve(&stmt, scope).map(drop))?, used)
            } else {
                (Vec::new(), false)
            };
            h.set_cache(true);
            h.run(&stmt, scope)?;
            let warm = time_runs(opts.runs, || h.serve(&stmt, scope).map(drop))?;
            let row = Row {
                name: stmt.name.to_string(),
                scope: scope.label.clone(),
                cold,
                warm,
                aggregates: agg,
                used_aggregate,
                sql,
                checked,
            };
            log(&format!(
                "{:<62} {:<13} cold p50 {:>8} ms  aggregates p50 {:>8} ms{}  warm p50 {:>6} ms  sql p50 {:>8} ms  ({})",
                row.name,
                row.scope,
                ms(percentile(&row.cold, 50.0)),
                if row.aggregates.is_empty() {
                    "–".into()
                } else {
                    ms(percentile(&row.aggregates, 50.0))
                },
                if row.used_aggregate { "*" } else { " " },
                ms(percentile(&row.warm, 50.0)),
                if row.sql.is_empty() {
                    "–".into()
                } else {
                    ms(percentile(&row.sql, 50.0))
                },
                row.checked
            ));
            rows.push(row);
        }
    }
    aggregates::set_enabled(with_aggregates);
    let concurrency = if opts.sessions > 0 {
        h.set_cache(true);
        Some(concurrency(h, opts)?)
    } else {
        None
    };
    Ok(Report {
        rows,
        concurrency,
        cache: h.cache_stats(),
    })
}

/// The kommuner the simulated sessions belong to (every fifth session is an administrator).
const SESSION_KOMMUNER: &[u16] = &[751, 101, 461, 851, 825, 147, 157, 173, 615, 710];

/// N sessions, each on its own thread, replay the workload `rounds` times with the result
/// cache on; sessions of the same kommune share cached answers, different kommuner do not.
pub fn concurrency(h: &Harness, opts: &Options) -> anyhow::Result<Concurrency> {
    let mut scopes = Vec::new();
    for i in 0..opts.sessions {
        let k = SESSION_KOMMUNER[i % SESSION_KOMMUNER.len()];
        let r = region_of(h, k)?;
        scopes.push(if i % 5 == 0 {
            Scope::admin(k, r)
        } else {
            Scope::kommune(k, r)
        });
    }
    let statements = Arc::new(workload());
    let started = Instant::now();
    let results: Vec<(Vec<Duration>, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = scopes
            .iter()
            .map(|scope| {
                let statements = statements.clone();
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut errors = Vec::new();
                    for _ in 0..opts.rounds {
                        for stmt in statements.iter() {
                            let t = Instant::now();
                            match h.run(stmt, scope) {
                                Ok(_) => lat.push(t.elapsed()),
                                Err(e) => errors.push(format!("{e:#}")),
                            }
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| (Vec::new(), vec!["a session thread panicked".into()]))
            })
            .collect()
    });
    let wall = started.elapsed();
    let mut c = Concurrency {
        sessions: opts.sessions,
        wall,
        ..Default::default()
    };
    for (lat, errs) in results {
        c.requests += lat.len() + errs.len();
        c.errors += errs.len();
        if c.first_error.is_none() {
            c.first_error = errs.into_iter().next();
        }
        c.latencies.extend(lat);
    }
    Ok(c)
}

impl Report {
    /// Worst cold/SQL ratio (p50) over the statements with SQL.
    pub fn worst_ratio(&self) -> Option<(f64, &Row)> {
        self.rows
            .iter()
            .filter(|r| !r.sql.is_empty())
            .map(|r| (ratio(r), r))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| # | statement | scope | cold p50 / p95 ms (runs) | warm (cache) p50 / p95 ms | aggregates | SQL p50 / p95 ms | cold ÷ SQL (p50) | checked |"
        );
        let _ = writeln!(s, "|---:|---|---|---:|---:|---:|---:|---:|---|");
        for (i, r) in self.rows.iter().enumerate() {
            let sql = if r.sql.is_empty() {
                "–".to_string()
            } else {
                format!("{} / {}", ms(percentile(&r.sql, 50.0)), ms(percentile(&r.sql, 95.0)))
            };
            let ratio = if r.sql.is_empty() {
                "–".to_string()
            } else {
                format!("{:.2}", ratio(r))
            };
            let agg = if r.aggregates.is_empty() {
                "–".to_string()
            } else {
                format!(
                    "{} / {}{}",
                    ms(percentile(&r.aggregates, 50.0)),
                    ms(percentile(&r.aggregates, 95.0)),
                    if r.used_aggregate { " (agg)" } else { "" }
                )
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} / {} ({}) | {} / {} | {agg} | {sql} | {ratio} | {} |",
                i + 1,
                r.name,
                r.scope,
                ms(percentile(&r.cold, 50.0)),
                ms(percentile(&r.cold, 95.0)),
                r.cold.len(),
                ms(percentile(&r.warm, 50.0)),
                ms(percentile(&r.warm, 95.0)),
                r.checked
            );
        }
        if let Some((w, r)) = self.worst_ratio() {
            let _ = writeln!(s, "\nWorst cold ÷ SQL ratio: **{w:.2}** ({}, {}).", r.name, r.scope);
        }
        let worst_warm = self
            .rows
            .iter()
            .map(|r| percentile(&r.warm, 95.0))
            .max()
            .unwrap_or_default();
        let _ = writeln!(s, "Slowest warm (cache) p95: **{} ms**.", ms(worst_warm));
        if let Some(worst_agg) = self
            .rows
            .iter()
            .filter(|r| !r.aggregates.is_empty())
            .map(|r| percentile(&r.aggregates, 95.0))
            .max()
        {
            let used = self.rows.iter().filter(|r| r.used_aggregate).count();
            let _ = writeln!(
                s,
                "Slowest with aggregates (cache off) p95: **{} ms**; {used} of {} statements read an aggregate (marked agg).",
                ms(worst_agg),
                self.rows.len()
            );
        }
        if let Some(c) = &self.concurrency {
            let _ = writeln!(
                s,
                "\nConcurrency: {} sessions, {} requests in {:.1} s = **{:.1} requests/s**; latency p50 {} ms, p95 **{} ms**, p99 {} ms; errors: **{}**{}.",
                c.sessions,
                c.requests,
                c.wall.as_secs_f64(),
                c.requests as f64 / c.wall.as_secs_f64().max(1e-9),
                ms(percentile(&c.latencies, 50.0)),
                ms(percentile(&c.latencies, 95.0)),
                ms(percentile(&c.latencies, 99.0)),
                c.errors,
                c.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            s,
            "\nResult cache at the end: {} hits, {} misses, {} entries, {} KiB.",
            self.cache.hits,
            self.cache.misses,
            self.cache.entries,
            self.cache.bytes / 1024
        );
        s
    }
}

fn ratio(r: &Row) -> f64 {
    percentile(&r.cold, 50.0).as_secs_f64() / percentile(&r.sql, 50.0).as_secs_f64().max(1e-9)
}

/// Check every statement of the workload (both scopes) against its SQL, without timing.
pub fn verify(h: &Harness, kommune: u16) -> anyhow::Result<usize> {
    let region = region_of(h, kommune)?;
    let mut n = 0;
    for scope in [Scope::admin(kommune, region), Scope::kommune(kommune, region)] {
        for stmt in workload() {
            if let Some((got, want)) = h.check(&stmt, &scope)? {
                same(&stmt, &got, &want)?;
                n += 1;
            } else if matches!(stmt.kind, Kind::Discover(..)) {
                h.run(&stmt, &scope)?;
            }
        }
    }
    Ok(n)
}
