//! `datakube aggregates suggest`: aggregates proposed from what users really ran.
//!
//! The query lines of the audit log (kind `query`, outcome `ok`: cube, statement, scope) are
//! counted per distinct (cube, statement, scope) and replayed once each through the query
//! engine ([`crate::exec::explain`], the pinned snapshots, the logged row scope, aggregates
//! as they are). Every SQL statement that read the fact table gives a level signature: its
//! grouping plus the levels its subselects and WHERE sets filter on, the deepest per
//! hierarchy. Statements with a measure no aggregate may hold (distinct count, average,
//! semi-additive) or a parent-child level are left out, as the planner would never read an
//! aggregate for them. Signatures are weighted by how often the statement was logged × how
//! long the fact-table statement took in the replay; those an aggregate declared in the
//! definitions already covers are dropped (built ones are read in the replay, so their
//! statements do not read the fact table at all). Signatures are merged, most costly first,
//! into a suggestion that covers them when the merged aggregate's row count (distinct row
//! scope and level keys over the fact table, counted by DuckDB) stays within the limits.
//!
//! The output is YAML: a mapping from cube name to a list of aggregates in the definitions'
//! format, with comments on the rows, statements and time each one answers. Nothing personal
//! goes into it (levels, measures and, in comments, statement texts, which name members).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use datakube_engine::Engine;
use datakube_engine::storage::Snapshots;
use datakube_members::MemberStore;
use datakube_model::{Aggregator, Catalog, Cube, MeasureKind};

use crate::aggregates::slug;
use crate::exec::QueryContext;
use crate::security::Access;

/// One distinct statement of the audit log.
#[derive(Debug, Clone)]
pub struct LoggedStatement {
    pub cube: String,
    pub statement: String,
    /// `None`: all rows; otherwise the kommunekoder of the row scope.
    pub scope: Option<Vec<i64>>,
    /// How many `ok` query lines named it.
    pub count: u64,
    /// Where it was first logged (`file:line`).
    pub first_seen: String,
}

/// Read the query lines of audit logs (JSON lines as `datakube serve` writes them). A file
/// that cannot be read or a line that is not an audit event is an error naming `file:line`.
pub fn read_audit_logs(paths: &[PathBuf]) -> Result<Vec<LoggedStatement>, String> {
    let mut out: Vec<LoggedStatement> = Vec::new();
    let mut index: HashMap<(String, String, Option<Vec<i64>>), usize> = HashMap::new();
    for path in paths {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read the audit log: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", path.display(), n + 1);
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{at}: not a JSON audit line: {e}"))?;
            let field = |name: &str| v.get(name).and_then(|x| x.as_str());
            let (Some(kind), Some(outcome)) = (field("kind"), field("outcome")) else {
                return Err(format!("{at}: not an audit event (no \"kind\" or \"outcome\")"));
            };
            if kind != "query" || outcome != "ok" {
                continue;
            }
            // Lines without a cube (DMV statements, a statement that failed to name one) or
            // that are no MDX SELECT (session CREATE) have nothing to aggregate.
            let (Some(cube), Some(statement)) = (field("cube"), field("statement")) else {
                continue;
            };
            let head = statement.trim_start().get(..6).unwrap_or("").to_ascii_uppercase();
            if cube.is_empty()
                || !(head == "SELECT" || head.starts_with("WITH"))
                || statement.to_ascii_uppercase().contains("$SYSTEM")
            {
                continue;
            }
            let scope = match field("scope").unwrap_or("all") {
                "all" => None,
                s => Some(
                    s.split(',')
                        .map(|k| k.trim().parse::<i64>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| format!("{at}: scope \"{s}\" is neither \"all\" nor kommunekoder"))?,
                ),
            };
            let key = (cube.to_string(), statement.to_string(), scope.clone());
            match index.get(&key) {
                Some(&i) => out[i].count += 1,
                None => {
                    index.insert(key, out.len());
                    out.push(LoggedStatement {
                        cube: cube.to_string(),
                        statement: statement.to_string(),
                        scope,
                        count: 1,
                        first_seen: at,
                    });
                }
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Suggestions printed per cube.
    pub top: usize,
    /// Largest aggregate (rows) two signatures are merged into.
    pub max_rows: u64,
    /// A suggestion must have at most fact rows ÷ this many rows (else it saves little).
    pub min_reduction: u64,
    /// Distinct statements replayed, most logged first.
    pub max_statements: usize,
    /// Only this cube.
    pub cube: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            top: 5,
            max_rows: 1_000_000,
            min_reduction: 10,
            max_statements: 500,
            cube: None,
        }
    }
}

/// One proposed aggregate.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub cube: String,
    pub name: String,
    /// `[Dimension].[Hierarchy].[Level]`, in the cube's dimension order.
    pub levels: Vec<String>,
    pub measures: Vec<String>,
    /// Rows the aggregate would have (DuckDB's count over the pinned snapshot).
    pub rows: u64,
    pub fact_rows: u64,
    /// Logged executions of the fact-table statements it answers, and their statements.
    pub executions: u64,
    pub statements: Vec<String>,
    /// count × replayed time of those fact-table statements, in ms.
    pub cost_ms: f64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub suggestions: Vec<Suggestion>,
    /// Distinct statements replayed.
    pub replayed: usize,
    /// Statements that could not be replayed: (where first logged, why).
    pub failed: Vec<(String, String)>,
    /// Fact-table statements left out: their measures or levels cannot be pre-aggregated.
    pub not_aggregatable: usize,
    /// Fact-table statements an aggregate declared in the definitions already covers.
    pub covered_by_declared: usize,
    /// Statements that read a built aggregate in the replay.
    pub read_aggregate: usize,
    /// Notes on signatures not suggested (too large).
    pub notes: Vec<String>,
}

/// A level signature: hierarchy index in the cube (dimension, hierarchy) → level depth (1 = top).
type Signature = BTreeMap<(usize, usize), usize>;

#[derive(Debug, Clone, Default)]
struct Candidate {
    levels: Signature,
    measures: BTreeSet<usize>,
    executions: u64,
    statements: BTreeSet<String>,
    cost_ms: f64,
}

fn find_hierarchy(cube: &Cube, unique: &str) -> Option<(usize, usize)> {
    cube.dimensions.iter().enumerate().find_map(|(d, dim)| {
        dim.hierarchies
            .iter()
            .position(|h| h.unique_name == unique)
            .map(|h| (d, h))
    })
}

fn additive(cube: &Cube, m: usize) -> bool {
    matches!(&cube.measures[m].kind, MeasureKind::Stored(s)
        if matches!(s.aggregator, Aggregator::Sum | Aggregator::Count | Aggregator::Min | Aggregator::Max))
}

/// Model names of a signature's levels.
fn level_names(cube: &Cube, sig: &Signature) -> Vec<(String, String, String)> {
    sig.iter()
        .map(|(&(d, h), &depth)| {
            let dim = &cube.dimensions[d];
            let hier = &dim.hierarchies[h];
            (dim.name.clone(), hier.name.clone(), hier.levels[depth - 1].name.clone())
        })
        .collect()
}

/// Whether an aggregate at `big` holds every level of `small` (that level or a finer one of
/// the same hierarchy).
fn covers(big: &Signature, small: &Signature) -> bool {
    small.iter().all(|(h, d)| big.get(h).is_some_and(|b| b >= d))
}

fn union(a: &Signature, b: &Signature) -> Signature {
    let mut out = a.clone();
    for (h, d) in b {
        let e = out.entry(*h).or_insert(*d);
        *e = (*e).max(*d);
    }
    out
}

fn declared_signature(cube: &Cube, agg: &datakube_model::Aggregate) -> Option<(Signature, BTreeSet<usize>)> {
    let mut sig = Signature::new();
    for (dname, hname, lname) in &agg.levels {
        let d = cube.dimensions.iter().position(|x| x.name == *dname)?;
        let h = cube.dimensions[d].hierarchies.iter().position(|x| x.name == *hname)?;
        let depth = cube.dimensions[d].hierarchies[h]
            .levels
            .iter()
            .position(|l| l.name == *lname)?
            + 1;
        sig.insert((d, h), depth);
    }
    let measures = agg
        .measures
        .iter()
        .filter_map(|m| cube.measures.iter().position(|x| x.name == *m))
        .collect();
    Some((sig, measures))
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

/// Replay `logged` on the pinned `snapshots` and propose aggregates.
pub fn suggest(
    engine: &Engine,
    snapshots: &Snapshots,
    catalog: &Catalog,
    members: &MemberStore,
    logged: &[LoggedStatement],
    opts: &Options,
) -> Result<Report, String> {
    let mut report = Report::default();
    let mut todo: Vec<&LoggedStatement> = logged
        .iter()
        .filter(|l| opts.cube.as_ref().is_none_or(|c| c.eq_ignore_ascii_case(&l.cube)))
        .collect();
    todo.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.first_seen.cmp(&b.first_seen)));
    todo.truncate(opts.max_statements);
    // cube name → signature → candidate.
    let mut found: BTreeMap<String, BTreeMap<Signature, Candidate>> = BTreeMap::new();
    for l in todo {
        let Some(cube) = catalog.cube(&l.cube) else {
            report
                .failed
                .push((l.first_seen.clone(), format!("no cube [{}] in the definitions", l.cube)));
            continue;
        };
        let ctx = QueryContext {
            catalog,
            members,
            engine,
            snapshots,
            lang: datakube_model::Lang::Da,
            lcid: 1030,
            access: match &l.scope {
                None => Access::all(),
                Some(k) => Access::kommuner(k),
            },
            last_data_update: "",
            last_schema_update: "",
            default_cube: None,
            ignore_missing_members: false,
            session_definitions: Vec::new(),
            cancel: None,
        };
        let trace = match crate::exec::explain(&ctx, &l.statement) {
            Ok(t) => t,
            Err(e) => {
                report.failed.push((l.first_seen.clone(), e.to_string()));
                continue;
            }
        };
        report.replayed += 1;
        let restricted: Vec<((usize, usize), usize)> = trace
            .restricted_levels
            .iter()
            .filter_map(|(h, level)| {
                let (d, hi) = find_hierarchy(cube, h)?;
                let depth = cube.dimensions[d].hierarchies[hi]
                    .levels
                    .iter()
                    .position(|x| x.name == *level)?
                    + 1;
                Some(((d, hi), depth))
            })
            .collect();
        for q in &trace.statements {
            if q.source != "fact table" {
                report.read_aggregate += 1;
                continue;
            }
            let measures: Option<BTreeSet<usize>> = q
                .measures
                .iter()
                .map(|u| cube.measures.iter().position(|m| m.unique_name == *u))
                .collect::<Option<_>>()
                .filter(|ms: &BTreeSet<usize>| !ms.is_empty() && ms.iter().all(|&m| additive(cube, m)));
            let mut sig = Signature::new();
            let mut ok = measures.is_some();
            for (h, level) in q.grouping.iter().chain(&q.filtered) {
                match find_hierarchy(cube, h).and_then(|(d, hi)| {
                    let hier = &cube.dimensions[d].hierarchies[hi];
                    let depth = hier.levels.iter().position(|x| x.name == *level)? + 1;
                    (!hier.is_parent_child()).then_some(((d, hi), depth))
                }) {
                    Some((k, depth)) => {
                        let e = sig.entry(k).or_insert(depth);
                        *e = (*e).max(depth);
                    }
                    None => ok = false,
                }
            }
            for &(k, depth) in &restricted {
                if cube.dimensions[k.0].hierarchies[k.1].is_parent_child() {
                    ok = false;
                }
                let e = sig.entry(k).or_insert(depth);
                *e = (*e).max(depth);
            }
            let (true, Some(measures)) = (ok, measures) else {
                report.not_aggregatable += 1;
                continue;
            };
            let declared = cube.aggregates.iter().filter_map(|a| declared_signature(cube, a));
            if declared
                .into_iter()
                .any(|(s, m)| covers(&s, &sig) && measures.is_subset(&m))
            {
                report.covered_by_declared += 1;
                continue;
            }
            let c = found
                .entry(cube.name.clone())
                .or_default()
                .entry(sig.clone())
                .or_insert_with(|| Candidate {
                    levels: sig,
                    ..Default::default()
                });
            c.measures.extend(measures);
            c.executions += l.count;
            c.statements.insert(l.statement.clone());
            c.cost_ms += l.count as f64 * q.elapsed.as_secs_f64() * 1000.0;
        }
    }

    for (cube_name, sigs) in found {
        let cube = catalog.cube(&cube_name).ok_or("cube vanished")?;
        let fact_rows = crate::aggregates::fact_rows(engine, snapshots, cube)?;
        let limit = opts.max_rows.min(fact_rows / opts.min_reduction.max(1));
        let mut estimates: HashMap<Signature, Result<u64, String>> = HashMap::new();
        let mut estimate = |sig: &Signature| -> Result<u64, String> {
            estimates
                .entry(sig.clone())
                .or_insert_with(|| crate::aggregates::estimate_rows(engine, snapshots, cube, &level_names(cube, sig)))
                .clone()
        };
        let mut cands: Vec<Candidate> = sigs.into_values().collect();
        cands.sort_by(|a, b| b.cost_ms.total_cmp(&a.cost_ms));
        let mut chosen: Vec<(Candidate, u64)> = Vec::new();
        for c in cands {
            let mut placed = false;
            for (s, rows) in chosen.iter_mut() {
                let merged = union(&s.levels, &c.levels);
                let fits = if merged == s.levels {
                    Some(*rows)
                } else {
                    estimate(&merged).ok().filter(|&r| r <= limit)
                };
                if let Some(r) = fits {
                    s.levels = merged;
                    s.measures.extend(c.measures.iter().copied());
                    s.executions += c.executions;
                    s.statements.extend(c.statements.iter().cloned());
                    s.cost_ms += c.cost_ms;
                    *rows = r;
                    placed = true;
                    break;
                }
            }
            if placed {
                continue;
            }
            let names = level_names(cube, &c.levels)
                .iter()
                .map(|l| l.2.clone())
                .collect::<Vec<_>>();
            match estimate(&c.levels) {
                Ok(r) if r <= fact_rows / 2 => chosen.push((c, r)),
                Ok(r) => report.notes.push(format!(
                    "[{cube_name}] {}: {r} rows, not much smaller than the fact table ({fact_rows}); not suggested",
                    names.join(" × ")
                )),
                Err(e) => report.notes.push(format!(
                    "[{cube_name}] {}: cannot be aggregated: {e}",
                    names.join(" × ")
                )),
            }
        }
        chosen.sort_by(|a, b| b.0.cost_ms.total_cmp(&a.0.cost_ms));
        chosen.truncate(opts.top);
        let mut taken: BTreeSet<String> = cube.aggregates.iter().map(|a| a.name.clone()).collect();
        for (c, rows) in chosen {
            let levels = level_names(cube, &c.levels);
            let base = levels.iter().map(|l| slug(&l.2)).collect::<Vec<_>>().join("_");
            let base = if base.is_empty() { "total".to_string() } else { base };
            let mut name = base.clone();
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{base}_{n}");
                n += 1;
            }
            taken.insert(name.clone());
            report.suggestions.push(Suggestion {
                cube: cube_name.clone(),
                name,
                levels: levels.iter().map(|(d, h, l)| format!("[{d}].[{h}].[{l}]")).collect(),
                measures: c.measures.iter().map(|&m| cube.measures[m].name.clone()).collect(),
                rows,
                fact_rows,
                executions: c.executions,
                statements: c.statements.into_iter().collect(),
                cost_ms: c.cost_ms,
            });
        }
    }
    Ok(report)
}

/// A YAML string (JSON's double-quoted form is YAML's too).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The report as YAML: `"<cube>":` → the suggested aggregates, indented as under a cube's
/// `aggregates:` in the shipped definitions (four spaces), with comments.
pub fn render_yaml(report: &Report, sources: &[&Path]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# datakube aggregates suggest: {} suggestion(s) from {}\n",
        report.suggestions.len(),
        sources
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!(
        "# {} distinct statement(s) replayed, {} failed; fact-table statements: {} already covered by a declared aggregate, {} not aggregatable (distinct count, average, semi-additive, parent-child); {} read a built aggregate\n",
        report.replayed,
        report.failed.len(),
        report.covered_by_declared,
        report.not_aggregatable,
        report.read_aggregate
    ));
    for (at, why) in report.failed.iter().take(10) {
        out.push_str(&format!("# not replayed: {at}: {}\n", one_line(why, 160)));
    }
    for n in &report.notes {
        out.push_str(&format!("# {}\n", one_line(n, 200)));
    }
    out.push_str("# Paste a cube's entries under its `aggregates:` in the cube definitions, then run\n");
    out.push_str("# `datakube aggregates build --cube <name>`.\n");
    if report.suggestions.is_empty() {
        out.push_str("{}\n");
        return out;
    }
    let mut cube = "";
    for s in &report.suggestions {
        if s.cube != cube {
            cube = &s.cube;
            out.push_str(&format!("{}:\n", q(cube)));
        }
        out.push_str(&format!(
            "    # ≈ {} rows (fact table {} rows); answers {} logged execution(s) of {} statement(s) that took {:.1} ms on the fact table\n",
            s.rows,
            s.fact_rows,
            s.executions,
            s.statements.len(),
            s.cost_ms
        ));
        for st in s.statements.iter().take(5) {
            out.push_str(&format!("    #   {}\n", one_line(st, 150)));
        }
        out.push_str(&format!("    - name: {}\n", s.name));
        out.push_str(&format!(
            "      levels: [{}]\n",
            s.levels.iter().map(|l| q(l)).collect::<Vec<_>>().join(", ")
        ));
        out.push_str(&format!(
            "      measures: [{}]\n",
            s.measures.iter().map(|m| q(m)).collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(pairs: &[((usize, usize), usize)]) -> Signature {
        pairs.iter().copied().collect()
    }

    #[test]
    fn a_finer_level_of_the_same_hierarchy_covers_a_coarser_one() {
        let big = sig(&[((0, 0), 3), ((5, 0), 1)]);
        assert!(covers(&big, &sig(&[((0, 0), 2)])));
        assert!(covers(&big, &sig(&[])));
        assert!(!covers(&big, &sig(&[((0, 0), 4)])));
        assert!(!covers(&big, &sig(&[((3, 0), 1)])));
        assert_eq!(
            union(&sig(&[((0, 0), 2), ((1, 0), 1)]), &sig(&[((0, 0), 3)])),
            sig(&[((0, 0), 3), ((1, 0), 1)])
        );
    }

    #[test]
    fn names_are_folder_safe_and_statements_one_line() {
        assert_eq!(slug("Måned"), "maaned");
        assert_eq!(slug("Køn og Æble"), "koen_og_aeble");
        assert_eq!(one_line("SELECT\n  a   ON 0\tFROM [X]", 100), "SELECT a ON 0 FROM [X]");
        assert_eq!(one_line("abcdef", 3), "abc…");
        // YAML double-quoted scalars are JSON strings.
        assert_eq!(q("[Tid].[Kalender].[År] \"x\""), "\"[Tid].[Kalender].[År] \\\"x\\\"\"");
    }

    #[test]
    fn an_empty_report_is_an_empty_mapping_with_its_counts() {
        let r = Report {
            replayed: 2,
            failed: vec![("a.jsonl:3".into(), "no cube [X]".into())],
            ..Default::default()
        };
        let y = render_yaml(&r, &[Path::new("a.jsonl")]);
        assert!(y.ends_with("{}\n"), "{y}");
        assert!(y.contains("2 distinct statement(s) replayed, 1 failed"), "{y}");
        assert!(y.contains("# not replayed: a.jsonl:3: no cube [X]"), "{y}");
        assert!(y.lines().all(|l| l.starts_with('#') || l == "{}"), "{y}");
    }
}
