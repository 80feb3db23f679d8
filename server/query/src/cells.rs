//! Fetching stored-measure values: the cells a query needs are grouped by the levels their
//! coordinates sit on; each group becomes one SQL statement over the fact table.
//!
//! Every statement carries the row scope (`WHERE <row scope column> IN (...)` or `all rows`
//! in the printed plan), the subselect/slicer restrictions, and filters on member keys.
//! Keys go in as literals made from typed keys ([`datakube_members::Key::sql_literal`]);
//! identifiers come only from the cube definitions.

use datakube_engine::storage::Snapshots;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use datakube_engine::{Engine, sql_ident, sql_string};
use datakube_model::{Aggregator, FilterValue};

use crate::error::{QueryError, Result};
use crate::eval::{CellSource, Scalar};
use crate::space::{HierCtx, HierIdx, MemberRef, QueryMeasureKind, Space, VISUAL_BASE};

pub use datakube_members::access::RowScope;

/// Restrictions on the whole query (subselects, set slicers): for a hierarchy, fact rows must
/// belong to one of these members (given as (level, member id)).
pub type Restrictions = BTreeMap<HierIdx, Vec<u32>>;

/// Largest IN-list written for member keys; beyond it the filter is left out (the
/// grouping still separates the cells).
const MAX_IN_LIST: usize = 20_000;

/// Most groups a batch may compute for levels whose member filter a merged statement drops
/// (see [`CellFetcher::fetch_pending`]); a batch beyond it gets its own statement.
const MERGE_GROUP_LIMIT: usize = 50_000;

/// One level combination and its cells.
type Batch = (Vec<u16>, Vec<(u32, Coord)>);

/// The distinct measures of some cells, sorted.
fn distinct_measures<'c>(cells: impl IntoIterator<Item = &'c (u32, Coord)>) -> Vec<u32> {
    let mut v: Vec<u32> = cells.into_iter().map(|(m, _)| *m).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// One planned SQL statement: printable, for tests and `EXPLAIN`-style logs.
#[derive(Debug, Clone)]
pub struct CellQuery {
    pub cube: String,
    /// Grouping columns: (hierarchy unique name, level name).
    pub grouping: Vec<(String, String)>,
    /// With more than one level combination: the `GROUPING SETS`, each a list of levels.
    pub grouping_sets: Vec<Vec<String>>,
    /// Levels filtered to one member without a grouping column (a slicer's year).
    pub filtered: Vec<(String, String)>,
    pub measures: Vec<String>,
    pub row_scope: RowScope,
    /// What the statement reads: `fact table` or `aggregate <name>`.
    pub source: String,
    pub sql: String,
    /// What the server computes from the statement's rows (semi-additive measures: the sums
    /// per grouping set and time key, then the last or average over time).
    pub then: Option<String>,
    /// Rows the statement returned and how long it took (set once it has run).
    pub rows: usize,
    pub elapsed: std::time::Duration,
}

impl fmt::Display for CellQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "CellQuery cube=[{}]", self.cube)?;
        let g: Vec<String> = self.grouping.iter().map(|(h, l)| format!("{h}.[{l}]")).collect();
        writeln!(
            f,
            "  group by: {}",
            if g.is_empty() {
                "(grand total)".into()
            } else {
                g.join(", ")
            }
        )?;
        if !self.filtered.is_empty() {
            let l: Vec<String> = self.filtered.iter().map(|(h, l)| format!("{h}.[{l}]")).collect();
            writeln!(f, "  one member of: {}", l.join(", "))?;
        }
        if !self.grouping_sets.is_empty() {
            let sets: Vec<String> = self
                .grouping_sets
                .iter()
                .map(|s| format!("({})", s.join(", ")))
                .collect();
            writeln!(f, "  grouping sets: {}", sets.join(", "))?;
        }
        writeln!(f, "  measures: {}", self.measures.join(", "))?;
        match &self.row_scope {
            RowScope::All => writeln!(f, "  row scope: all rows")?,
            RowScope::Kommuner(k) => writeln!(f, "  row scope: kommunekode in {k:?}")?,
        }
        writeln!(f, "  source: {}", self.source)?;
        if !self.elapsed.is_zero() {
            writeln!(
                f,
                "  ran: {} rows in {:.1} ms",
                self.rows,
                self.elapsed.as_secs_f64() * 1000.0
            )?;
        }
        if let Some(t) = &self.then {
            writeln!(f, "  then (in the server): {t}")?;
        }
        write!(f, "  sql: {}", self.sql)
    }
}

/// Coordinates without the measure (hierarchies 1..).
type Coord = Vec<u32>;

/// Cells fetched by one statement: the level of each hierarchy, the parent-child members
/// pinned, the visual totals pinned (hierarchy, id), and the semi-additive measure (if any).
type BatchKey = (Vec<u16>, Vec<u32>, Vec<(HierIdx, u32)>, Option<u32>);

pub struct CellFetcher<'s, 'a> {
    space: &'s Space<'a>,
    engine: &'s Engine,
    data_dir: &'s Snapshots,
    scope: RowScope,
    restrictions: Restrictions,
    /// Values fetched so far; shared with the fetchers made by [`CellFetcher::fresh`], so a
    /// value filter inside a calculated member reuses what the query already read.
    cache: std::rc::Rc<std::cell::RefCell<HashMap<(u32, Coord), Scalar>>>,
    pending: HashSet<(u32, Coord)>,
    /// Every statement run, in order (for logs and tests).
    pub executed: Vec<CellQuery>,
    cancel: Option<&'s datakube_engine::CancelToken>,
}

impl<'s, 'a> CellFetcher<'s, 'a> {
    pub fn new(
        space: &'s Space<'a>,
        engine: &'s Engine,
        data_dir: &'s Snapshots,
        scope: RowScope,
        restrictions: Restrictions,
        cancel: Option<&'s datakube_engine::CancelToken>,
    ) -> Self {
        CellFetcher {
            space,
            engine,
            data_dir,
            // Cubes without personal data (class public) have no row scope.
            scope: if space.cube.is_public() { RowScope::All } else { scope },
            restrictions,
            cache: Default::default(),
            pending: HashSet::new(),
            executed: Vec::new(),
            cancel,
        }
    }

    /// A fetcher with the same scope and restrictions and an empty cache, for values needed
    /// while this one is busy (a value filter inside a calculated member).
    pub fn fresh(&self) -> CellFetcher<'s, 'a> {
        let mut f = CellFetcher::new(
            self.space,
            self.engine,
            self.data_dir,
            self.scope.clone(),
            self.restrictions.clone(),
            self.cancel,
        );
        f.cache = self.cache.clone();
        f
    }

    /// Restrict hierarchy `h` to the members `ids` (a subselect or a set slicer). Values
    /// fetched before no longer hold, so the cache is emptied.
    pub fn set_restriction(&mut self, h: HierIdx, ids: Vec<u32>) {
        self.restrictions.insert(h, ids);
        self.cache.borrow_mut().clear();
        self.pending.clear();
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Run SQL for every pending cell.
    ///
    /// Cells are batched by the level of each hierarchy (one batch per level combination).
    /// Batches that read the same source (fact table or one aggregate) and the same
    /// semi-additive measure (or none) are merged into one statement with `GROUPING SETS`,
    /// so a pivot with totals scans its fact table once, unless merging would group a level
    /// with many members that the batch alone filters (see [`MERGE_GROUP_LIMIT`]).
    /// Parent-child hierarchies and visual totals keep one statement per batch.
    pub fn fetch_pending(&mut self) -> Result<()> {
        let pending: Vec<(u32, Coord)> = self.pending.drain().collect();
        // Group: (signature of levels, semi-additive measure or none) → cells.
        let mut groups: BTreeMap<BatchKey, Vec<(u32, Coord)>> = BTreeMap::new();
        for (m, c) in pending {
            // A visual total (VisualTotals) is no level: its statement filters on the members
            // it covers, one statement per visual total.
            let sig: Vec<u16> = c
                .iter()
                .enumerate()
                .map(|(i, &id)| {
                    if id >= VISUAL_BASE {
                        0
                    } else {
                        self.space.hier(i + 1).members.get(id).level
                    }
                })
                .collect();
            let visual: Vec<(HierIdx, u32)> = c
                .iter()
                .enumerate()
                .filter(|(_, id)| **id >= VISUAL_BASE)
                .map(|(i, &id)| (i + 1, id))
                .collect();
            // Parent-child hierarchies cannot group by one column: one batch per member.
            let pc: Vec<u32> = c
                .iter()
                .enumerate()
                .filter(|(i, _)| self.space.hier(i + 1).hierarchy.is_parent_child() && sig[*i] > 0)
                .map(|(_, &id)| id)
                .collect();
            let semi = match &self.space.measures[m as usize].kind {
                QueryMeasureKind::Stored(s) if s.aggregator.is_semi_additive() => Some(m),
                _ => None,
            };
            groups.entry((sig, pc, visual, semi)).or_default().push((m, c));
        }
        // Statements: (semi-additive measure, source) → statements, each a list of batches.
        type Class = (Option<u32>, Option<String>);
        let mut classes: BTreeMap<Class, Vec<Vec<Batch>>> = BTreeMap::new();
        let mut sources: HashMap<String, crate::aggregates::Built> = HashMap::new();
        for ((sig, pc, visual, semi), cells) in groups {
            let measure_ids = distinct_measures(&cells);
            let agg = self.choose_aggregate(&sig, &visual, &measure_ids);
            // A grouping-sets aggregate answers one set per statement (its rows of that set).
            if !pc.is_empty() || !visual.is_empty() || agg.as_ref().is_some_and(|a| a.meta.grouping_sets) {
                self.run_statement(&[(sig, cells)], &visual, semi, agg.as_ref())?;
                continue;
            }
            let name = agg.map(|a| {
                let n = a.meta.name.clone();
                sources.insert(n.clone(), a);
                n
            });
            let stmts = classes.entry((semi, name)).or_default();
            match stmts.iter_mut().find(|s| self.mergeable(s, &sig)) {
                Some(s) => s.push((sig, cells)),
                None => stmts.push(vec![(sig, cells)]),
            }
        }
        for ((semi, name), stmts) in classes {
            let agg = name.and_then(|n| sources.get(&n).cloned());
            for batches in stmts {
                self.run_statement(&batches, &[], semi, agg.as_ref())?;
            }
        }
        Ok(())
    }

    /// Whether batch `sig` may join the statement `batches`: a hierarchy not on the same
    /// level in every batch loses its member filter in the merged statement (an OR of
    /// IN-lists costs DuckDB more than the groups it saves), so every group of such levels is
    /// computed; the product of those levels' member counts must stay under
    /// [`MERGE_GROUP_LIMIT`] for every batch.
    ///
    /// A merged statement joins a grouped hierarchy's dimension table for all its sets, so
    /// the set at that hierarchy's All level counts only fact rows whose key the dimension
    /// has (the datasets' contract: every fact key is in its dimension). In a virtual cube
    /// the other base cube's rows have no key there by design: it never merges a set at All
    /// with one below All of the same hierarchy.
    fn mergeable(&self, batches: &[Batch], sig: &[u16]) -> bool {
        let sigs: Vec<&[u16]> = batches.iter().map(|(s, _)| s.as_slice()).chain([sig]).collect();
        if self.space.cube.is_virtual()
            && (0..sig.len()).any(|i| sigs.iter().any(|s| s[i] == 0) && sigs.iter().any(|s| s[i] > 0))
        {
            return false;
        }
        sigs.iter().all(|s| {
            let mut groups: usize = 1;
            for (i, &level) in s.iter().enumerate() {
                if level > 0 && sigs.iter().any(|o| o[i] != level) {
                    let n = self
                        .space
                        .hier(i + 1)
                        .members
                        .level_members(level as usize)
                        .len()
                        .max(1);
                    groups = groups.saturating_mul(n);
                }
            }
            groups <= MERGE_GROUP_LIMIT
        })
    }

    /// The built aggregate with the fewest rows that holds every measure (stored sum, count,
    /// min, max), every grouped level, every restricted and allowed-set level, and the row
    /// scope; `None` when there is none or aggregates are off. Semi-additive measures, visual
    /// totals and parent-child hierarchies always read the fact table.
    ///
    /// A semi-additive measure reads an aggregate that keeps its time dimension's key (the
    /// sums per time key are what the fact table's first step computes). A distinct count
    /// reads a grouping-sets aggregate only when one of its sets is exactly the statement's
    /// grouping ([`Self::grouping_set_id`]), since distinct counts do not add up.
    fn choose_aggregate(
        &self,
        sig: &[u16],
        visual: &[(HierIdx, u32)],
        measure_ids: &[u32],
    ) -> Option<crate::aggregates::Built> {
        let sp = self.space;
        if sp.cube.aggregates.is_empty() || !visual.is_empty() || !crate::aggregates::enabled() {
            return None;
        }
        let has_level = |meta: &crate::aggregates::AggregateMeta, h: HierIdx, level: u16| -> bool {
            let hc = sp.hier(h);
            !hc.hierarchy.is_parent_child()
                && level >= 1
                && hc
                    .hierarchy
                    .levels
                    .get(level as usize - 1)
                    .is_some_and(|l| meta.level_column(&hc.hierarchy.unique_name, &l.name).is_some())
        };
        let covers = |meta: &crate::aggregates::AggregateMeta| -> bool {
            let measures_ok = measure_ids.iter().all(|&m| {
                let qm = &sp.measures[m as usize];
                let QueryMeasureKind::Stored(s) = &qm.kind else {
                    return false;
                };
                let want = match s.aggregator {
                    Aggregator::Sum => "sum",
                    Aggregator::Count => "count",
                    Aggregator::Min => "min",
                    Aggregator::Max => "max",
                    Aggregator::DistinctCount if meta.grouping_sets => "distinct_count",
                    Aggregator::LastNonEmpty | Aggregator::AverageOverTime
                        if time_key_column(sp, meta, s).is_some() =>
                    {
                        s.aggregator.as_str()
                    }
                    _ => return false,
                };
                meta.measure(&qm.name).is_some_and(|c| c.aggregator == want)
            });
            let sets_ok = !meta.grouping_sets || self.grouping_set_id(meta, sig).is_some();
            let levels_ok = sig
                .iter()
                .enumerate()
                .all(|(i, &level)| level == 0 || has_level(meta, i + 1, level));
            let restrictions_ok = self.restrictions.iter().all(|(&h, ids)| {
                let hm = &sp.hier(h).members;
                ids.iter().any(|&id| hm.get(id).level == 0)
                    || ids.iter().all(|&id| has_level(meta, h, hm.get(id).level))
            });
            let granted_ok = (1..sp.hierarchy_count()).all(|h| {
                let hc = sp.hier(h);
                hc.members.granted_keys.is_none() || has_level(meta, h, hc.hierarchy.levels.len() as u16)
            });
            let scope_ok = match &self.scope {
                RowScope::All => true,
                RowScope::Kommuner(_) => {
                    sp.cube.security.row_scope_column.is_some()
                        && meta.row_scope_column == sp.cube.security.row_scope_column
                }
            };
            measures_ok && levels_ok && restrictions_ok && granted_ok && scope_ok && sets_ok
        };
        crate::aggregates::built(self.data_dir, sp.cube)
            .into_iter()
            .filter(|b| covers(&b.meta))
            .min_by_key(|b| b.meta.rows)
    }

    /// The grouping set of `meta` (a grouping-sets aggregate) that is exactly the grouping
    /// of batch `sig`, as its [`crate::aggregates::GROUPING_SET_COLUMN`] value; `None` when
    /// no set is. Per hierarchy the set holds the batch's level (and its coarser levels'
    /// keys); a hierarchy the batch does not group but a subselect restricts to one member
    /// holds that member's level; the row-scope column is in the set when the statement is
    /// scoped to one kommune. Anything else (several members of an ungrouped hierarchy,
    /// several kommuner, allowed sets, a restriction below the grouped level) would add up
    /// distinct counts of several rows, which is wrong.
    fn grouping_set_id(&self, meta: &crate::aggregates::AggregateMeta, sig: &[u16]) -> Option<u64> {
        let sp = self.space;
        if (1..sp.hierarchy_count()).any(|h| sp.hier(h).members.granted_keys.is_some()) {
            return None;
        }
        // Hierarchy unique name → the depth its keys are grouped to.
        let mut depth: HashMap<&str, usize> = HashMap::new();
        for h in 1..sp.hierarchy_count() {
            let hc = sp.hier(h);
            let mut j = sig[h - 1] as usize;
            if let Some(ids) = self.restrictions.get(&h) {
                let levels: Vec<usize> = ids.iter().map(|&id| hc.members.get(id).level as usize).collect();
                if !levels.contains(&0) {
                    let deepest = levels.iter().copied().max().unwrap_or(0);
                    if j == 0 {
                        if ids.len() != 1 {
                            return None;
                        }
                        j = deepest;
                    } else if deepest > j {
                        return None;
                    }
                }
            }
            if j > 0 {
                let level = hc.hierarchy.levels.get(j - 1)?;
                meta.level_column(&hc.hierarchy.unique_name, &level.name)?;
                depth.insert(hc.hierarchy.unique_name.as_str(), j);
            }
        }
        // Which key columns the set groups: the row-scope column first, then the levels.
        let mut grouped: Vec<bool> = Vec::new();
        if meta.row_scope_column.is_some() {
            grouped.push(match &self.scope {
                RowScope::All => false,
                RowScope::Kommuner(k) if k.len() <= 1 && meta.row_scope_column == sp.cube.security.row_scope_column => {
                    true
                }
                RowScope::Kommuner(_) => return None,
            });
        } else if matches!(self.scope, RowScope::Kommuner(_)) {
            return None;
        }
        for lc in &meta.levels {
            let h = (1..sp.hierarchy_count()).find(|&h| sp.hier(h).hierarchy.unique_name == lc.hierarchy)?;
            let d = sp.hier(h).hierarchy.levels.iter().position(|l| l.name == lc.level)? + 1;
            grouped.push(depth.get(lc.hierarchy.as_str()).is_some_and(|&j| d <= j));
        }
        meta.grouping_set(&grouped)
    }

    /// One SQL statement for the cells of `batches` (each a level combination with its
    /// cells); more than one batch become `GROUPING SETS`. `visual` and parent-child members
    /// come only with a single batch.
    fn run_statement(
        &mut self,
        batches: &[Batch],
        visual: &[(HierIdx, u32)],
        semi: Option<u32>,
        agg: Option<&crate::aggregates::Built>,
    ) -> Result<()> {
        let sp = self.space;
        let cube = sp.cube;
        let measure_ids = distinct_measures(batches.iter().flat_map(|(_, cells)| cells));
        let agg_meta = agg.map(|a| &a.meta);
        let fact = match agg {
            Some(a) => format!("read_parquet({})", sql_string(&a.parquet().to_string_lossy())),
            None => datakube_members::fact_relation(self.data_dir, cube).map_err(QueryError::Execution)?,
        };
        let fact_cols = match agg {
            Some(_) => Default::default(),
            None => fact_columns(self.engine, &fact),
        };
        let mut joins: Vec<String> = Vec::new();
        let mut joined: HashSet<HierIdx> = HashSet::new();
        let mut where_: Vec<String> = Vec::new();

        // The row scope, always first.
        match &self.scope {
            RowScope::All => {}
            RowScope::Kommuner(k) => {
                let list: Vec<String> = k.iter().map(i64::to_string).collect();
                let col =
                    cube.security.row_scope_column.as_deref().ok_or_else(|| {
                        QueryError::Execution(format!("cube [{}] has no row-scope column", cube.name))
                    })?;
                where_.push(format!(
                    "f.{} IN ({})",
                    sql_ident(col),
                    if list.is_empty() {
                        "NULL".into()
                    } else {
                        list.join(", ")
                    }
                ));
            }
        }

        // A grouping-sets aggregate: the rows of the statement's own set only.
        if let Some(meta) = agg_meta.filter(|m| m.grouping_sets) {
            let gid = self.grouping_set_id(meta, &batches[0].0).ok_or_else(|| {
                QueryError::Execution(format!(
                    "aggregate {} has no grouping set for this statement",
                    meta.name
                ))
            })?;
            where_.push(format!(
                "f.{} = {gid}",
                sql_ident(crate::aggregates::GROUPING_SET_COLUMN)
            ));
        }

        let mut key_expr = |h: HierIdx, level: u16, joins: &mut Vec<String>| -> Result<String> {
            key_expression(sp, self.data_dir, h, level, joins, &mut joined, agg_meta, &fact_cols)
        };

        // Allowed sets (member security): rows of granted members only, so that totals are
        // visual totals of what the principal may see.
        for h in 1..sp.hierarchy_count() {
            let hc = sp.hier(h);
            let Some(keys) = &hc.members.granted_keys else { continue };
            if keys.is_empty() {
                where_.push("FALSE".into());
                continue;
            }
            let e = if hc.members.parent_child {
                format!("f.{}", sql_ident(&leaf_key_column(sp, h)))
            } else {
                key_expr(h, hc.hierarchy.levels.len() as u16, &mut joins)?
            };
            where_.push(in_list(&e, keys.iter().map(|k| k.sql_literal()).collect()));
        }

        // A semi-additive measure is summed per time key first (one plain GROUP BY over the
        // fact table); the levels of its time dimension are then read from the dimension
        // table joined to that small result (`s.t`, `d<h>.<key>`), see the SQL below.
        let time_dim: Option<&str> = semi.and_then(|m| match &sp.measures[m as usize].kind {
            QueryMeasureKind::Stored(st) => st.time_dimension.as_deref(),
            QueryMeasureKind::Calculated(_) => None,
        });
        let mut stage2_joins: Vec<String> = Vec::new();
        let mut time_key = |h: HierIdx, level: u16| -> Result<Option<String>> {
            let hc = sp.hier(h);
            let hier = hc.hierarchy;
            let Some(source) = &hier.source else { return Ok(None) };
            if agg.is_some() || time_dim != Some(hc.dim.name.as_str()) || hier.is_parent_child() {
                return Ok(None);
            }
            if level as usize == hier.levels.len() && hier.joins_on_leaf_key() {
                return Ok(Some("s.t".into()));
            }
            let alias = format!("d{h}");
            if !stage2_joins
                .iter()
                .any(|j| j.ends_with(&format!("AS {alias} ON s.t = {alias}.{}", sql_ident(&hier.primary_key))))
            {
                let glob = datakube_members::source_glob(self.data_dir, source).map_err(QueryError::Execution)?;
                stage2_joins.push(format!(
                    "JOIN {} AS {alias} ON s.t = {alias}.{}",
                    dimension_table(hc, &glob),
                    sql_ident(&hier.primary_key)
                ));
            }
            Ok(Some(format!(
                "{alias}.{}",
                sql_ident(&hier.levels[level as usize - 1].key_column)
            )))
        };

        // Grouping columns (one per hierarchy and level), the grouping set of each batch, and
        // the member filters: a hierarchy on the same level in every batch keeps the rows of
        // the members asked for; on different levels only the partition filter of their
        // ancestors (see [`pruning_filters`]); at its All level in some batch, none. The
        // grouping still separates the cells.
        let mut group_exprs: Vec<(HierIdx, u16, String)> = Vec::new();
        let mut filtered: Vec<(String, String)> = Vec::new();
        // Per grouping column: read after the time key's sums (semi-additive), not per fact row.
        let mut stage2: Vec<bool> = Vec::new();
        let mut sets: Vec<Vec<usize>> = vec![Vec::new(); batches.len()];
        let first = &batches[0];
        for h in 1..sp.hierarchy_count() {
            let i = h - 1;
            let hc = sp.hier(h);
            if hc.hierarchy.is_parent_child() {
                // Single batch: the pinned member's subtree, no grouping column.
                if first.0[i] > 0 {
                    let keys = subtree_keys(sp, h, first.1[0].1[i]);
                    let fk = leaf_key_column(sp, h);
                    where_.push(format!("f.{} IN ({})", sql_ident(&fk), keys.join(", ")));
                }
                continue;
            }
            let mut levels: Vec<u16> = batches.iter().map(|(s, _)| s[i]).filter(|&l| l > 0).collect();
            levels.sort_unstable();
            levels.dedup();
            let everywhere = !levels.is_empty() && batches.iter().all(|(s, _)| s[i] > 0);
            let mut ids: Vec<u32> = Vec::new();
            if everywhere {
                ids = batches
                    .iter()
                    .flat_map(|(_, cells)| cells.iter().map(|(_, c)| c[i]))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
            }
            // One member in every cell (a slicer's year): a filter, no grouping column; the
            // cells' coordinate already holds it.
            let single = everywhere && ids.len() == 1;
            if single {
                filtered.push((
                    sp.hierarchy_unique_name(h),
                    hc.hierarchy.levels[levels[0] as usize - 1].name.clone(),
                ));
            } else {
                for &level in &levels {
                    let (e, late) = match time_key(h, level)? {
                        Some(e) => (e, true),
                        None => (key_expr(h, level, &mut joins)?, false),
                    };
                    let gi = group_exprs.len();
                    group_exprs.push((h, level, e));
                    stage2.push(late);
                    for (b, (s, _)) in batches.iter().enumerate() {
                        if s[i] == level {
                            sets[b].push(gi);
                        }
                    }
                }
            }
            if !everywhere {
                continue;
            }
            // The members' filter; left out when they are all of their level's members (the
            // row scope and allowed sets already limit the rows; other keys' groups are
            // dropped when read back).
            if let [level] = levels[..] {
                let whole_level = ids.len() == hc.members.level_members(level as usize).len();
                if ids.len() <= MAX_IN_LIST && !whole_level && !covered_by_pruning(sp, h, level, &ids, &fact_cols) {
                    let lits: Vec<String> = ids.iter().map(|&id| hc.members.get(id).key.sql_literal()).collect();
                    let e = key_expr(h, level, &mut joins)?;
                    MembersFilter::keys(e, lits).apply(&mut where_, &mut joins);
                }
            }
            where_.extend(pruning_filters(sp, h, &ids, &fact_cols));
        }
        // Subselect and set-slicer restrictions, then the members visual totals cover.
        for (&h, ids) in &self.restrictions {
            if let Some(w) = members_filter(sp, self.data_dir, h, ids, &mut joins, &mut joined, agg_meta, &fact_cols)? {
                where_.extend(pruning_filters(sp, h, ids, &fact_cols));
                w.apply(&mut where_, &mut joins);
            }
        }
        for &(h, id) in visual {
            let vt = sp
                .visual(MemberRef { h, id })
                .ok_or_else(|| QueryError::Execution("VisualTotals: unknown visual total".into()))?;
            // (Never the All member: a visual total covers descendants.)
            if let Some(w) = members_filter(
                sp,
                self.data_dir,
                h,
                &vt.leaves,
                &mut joins,
                &mut joined,
                agg_meta,
                &fact_cols,
            )? {
                w.apply(&mut where_, &mut joins);
            }
        }

        // A filter every measure of the statement shares (Regnskab's `beloebstype_kode`)
        // goes into WHERE, where DuckDB applies it while scanning. Not for counts: a group
        // whose rows all fail the filter counts 0 there, while in WHERE it would vanish.
        let hoisted = if agg.is_none() {
            shared_filter(sp, &measure_ids)
        } else {
            None
        };
        if let Some(f) = hoisted {
            where_.push(in_list(
                &format!("f.{}", sql_ident(&f.column)),
                f.values.iter().map(filter_literal).collect(),
            ));
        }

        // The same condition twice (an axis' members and a subselect of the same members)
        // costs DuckDB a second test per row.
        let mut seen: HashSet<String> = HashSet::new();
        where_.retain(|w| seen.insert(w.trim_start_matches('(').trim_end_matches(')').to_string()));

        // Measures.
        let from = from_clause(&fact, &joins);
        let where_sql = if where_.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", where_.join(" AND "))
        };
        let multi = batches.len() > 1;
        // Whether the statement counts its rows to tell an empty grand total from a total of
        // counts that are 0. A grouped row exists only for fact rows, so with grouping
        // columns the total (the set without any) is non-empty exactly when a grouped row
        // came back; only a statement without grouping columns needs `count(*)`. Beside
        // COUNT(DISTINCT) the count cost DuckDB 1.5.6 a sixth of the statement (Personer by
        // Ydelsesgruppe for 751 at scale 1: 438 ms with it, 358 ms without).
        let counted = group_exprs.is_empty();
        let g_cols: Vec<String> = group_exprs
            .iter()
            .enumerate()
            .map(|(i, (_, _, e))| format!("{e} AS g{i}"))
            .collect();
        let g_names: Vec<String> = (0..group_exprs.len()).map(|i| format!("g{i}")).collect();
        // Which grouping set a row belongs to: bit i set when g{i} is not grouped.
        let gid_sql = group_exprs
            .iter()
            .enumerate()
            .map(|(i, (_, _, e))| format!("GROUPING({e}) * {}", 1u64 << i))
            .collect::<Vec<_>>()
            .join(" + ");
        let grouping_sets = |extra: Option<&str>| -> String {
            let sets_sql: Vec<String> = sets
                .iter()
                .map(|s| {
                    let mut cols: Vec<&str> = s.iter().map(|&gi| group_exprs[gi].2.as_str()).collect();
                    cols.extend(extra);
                    format!("({})", cols.join(", "))
                })
                .collect();
            format!(" GROUP BY GROUPING SETS ({})", sets_sql.join(", "))
        };
        // Semi-additive measures whose time levels all come from the time key (the fact key is
        // the time hierarchy's leaf key): only the first step runs in DuckDB; the sums per
        // grouping set and time key, and the last (or average) over time, are computed here
        // from its small result (months × groups). The same steps as SQL cost DuckDB 5–8 ms
        // of joins and hash tables on a dozen rows (see [`RustSemi`]).
        let mut rust_semi: Option<RustSemi> = None;
        let sql = match semi {
            None => {
                let aggs: Vec<String> = measure_ids
                    .iter()
                    .enumerate()
                    .map(|(i, &m)| {
                        let a = match agg_meta {
                            Some(meta) => aggregate_from_aggregate(sp, meta, m)?,
                            None => aggregate_sql(sp, m, hoisted.is_none())?,
                        };
                        Ok(format!("CAST({a} AS DOUBLE) AS m{i}"))
                    })
                    .collect::<Result<_>>()?;
                let mut select = g_cols.clone();
                if multi {
                    select.push(format!("{gid_sql} AS gid"));
                }
                select.extend(aggs);
                // A cell without fact rows is empty. Only the grand total (no grouping
                // column) gives a row over no rows, where counts are 0; see `counted`.
                if counted {
                    select.push("count(*) AS n".into());
                }
                format!(
                    "SELECT {} FROM {from}{where_sql}{}",
                    select.join(", "),
                    if multi {
                        grouping_sets(None)
                    } else if g_names.is_empty() {
                        String::new()
                    } else {
                        format!(" GROUP BY {}", g_names.join(", "))
                    }
                )
            }
            Some(m) => {
                let QueryMeasureKind::Stored(s) = &sp.measures[m as usize].kind else {
                    unreachable!("semi-additive is stored")
                };
                let tdim = s.time_dimension.as_deref().unwrap_or("");
                let tcol = match agg_meta {
                    Some(meta) => time_key_column(sp, meta, s).map(str::to_string),
                    None => cube.dimension(tdim).and_then(|d| d.foreign_key.clone()),
                }
                .ok_or_else(|| {
                    QueryError::Execution(format!(
                        "measure {}: time dimension {tdim} has no key column",
                        s.column.as_deref().unwrap_or("")
                    ))
                })?;
                // With grouping sets the time key is grouped in every set, also where a
                // set's own level is the time key's (months): `COALESCE(t, NULL)` is another
                // expression for DuckDB, so GROUPING() still tells the sets apart.
                let inner_agg = match agg_meta {
                    Some(meta) => aggregate_from_aggregate(sp, meta, m)?,
                    None => inner_aggregate_sql(s, hoisted.is_none())?,
                };
                let outer = match s.aggregator {
                    Aggregator::LastNonEmpty => "arg_max(v, t) FILTER (WHERE v IS NOT NULL)",
                    _ => "avg(v)",
                };
                // 1. Per fact row: the measure summed per time key and per grouping column of
                //    the other hierarchies (one plain GROUP BY, the costly part).
                let mut s1_select: Vec<String> = Vec::new();
                let mut s1_group: Vec<String> = Vec::new();
                for (gi, (_, _, e)) in group_exprs.iter().enumerate() {
                    if !stage2[gi] {
                        s1_select.push(format!("{e} AS i{gi}"));
                        s1_group.push(format!("i{gi}"));
                    }
                }
                s1_select.push(format!("f.{} AS t", sql_ident(&tcol)));
                s1_select.push(format!("{inner_agg} AS v"));
                s1_group.push("t".into());
                let s1 = format!(
                    "SELECT {} FROM {from}{where_sql} GROUP BY {}",
                    s1_select.join(", "),
                    s1_group.join(", ")
                );
                if group_exprs
                    .iter()
                    .enumerate()
                    .all(|(gi, (h, _, _))| !stage2[gi] || sp.hier(*h).hierarchy.joins_on_leaf_key())
                {
                    let mut sel = s1_select.clone();
                    sel.pop();
                    sel.push(format!("CAST({inner_agg} AS DOUBLE) AS v"));
                    rust_semi = Some(RustSemi {
                        sql: format!(
                            "SELECT {} FROM {from}{where_sql} GROUP BY {}",
                            sel.join(", "),
                            s1_group.join(", ")
                        ),
                        first_step: (0..group_exprs.len()).filter(|&gi| !stage2[gi]).collect(),
                        last: s.aggregator == Aggregator::LastNonEmpty,
                    });
                }
                // 2. Per grouping set and time key: the sums over the other members; the time
                //    levels come from the dimension joined on the time key. With grouping sets
                //    the time key is in every set, also where a set's own level is the time
                //    key (months): as `COALESCE(s.t, NULL)` it is another expression for
                //    DuckDB, so GROUPING() still tells the sets apart.
                let s2_expr = |gi: usize| -> String {
                    if stage2[gi] {
                        group_exprs[gi].2.clone()
                    } else {
                        format!("s.i{gi}")
                    }
                };
                let t2 = if multi { "COALESCE(s.t, NULL)" } else { "s.t" };
                let mut s2_select: Vec<String> = (0..group_exprs.len())
                    .map(|gi| format!("{} AS g{gi}", s2_expr(gi)))
                    .collect();
                if multi {
                    let gid: Vec<String> = (0..group_exprs.len())
                        .map(|gi| format!("GROUPING({}) * {}", s2_expr(gi), 1u64 << gi))
                        .collect();
                    s2_select.push(format!("{} AS gid", gid.join(" + ")));
                }
                s2_select.push(format!("{t2} AS t"));
                s2_select.push("SUM(s.v) AS v".into());
                let s2_group = if multi {
                    let sets_sql: Vec<String> = sets
                        .iter()
                        .map(|set| {
                            let mut cols: Vec<String> = set.iter().map(|&gi| s2_expr(gi)).collect();
                            cols.push(t2.into());
                            format!("({})", cols.join(", "))
                        })
                        .collect();
                    format!("GROUPING SETS ({})", sets_sql.join(", "))
                } else {
                    let mut g: Vec<String> = (0..group_exprs.len()).map(s2_expr).collect();
                    g.push(t2.into());
                    g.join(", ")
                };
                let s2 = format!(
                    "SELECT {} FROM ({s1}) AS s{} GROUP BY {s2_group}",
                    s2_select.join(", "),
                    if stage2_joins.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", stage2_joins.join(" "))
                    }
                );
                // 3. Over time, per group.
                let mut outer_group = g_names.clone();
                let mut outer_select = g_names.clone();
                if multi {
                    outer_group.push("gid".into());
                    outer_select.push("gid".into());
                }
                outer_select.push(format!("CAST({outer} AS DOUBLE) AS m0"));
                outer_select.push("count(*) AS n".into());
                format!(
                    "SELECT {} FROM ({s2}){}",
                    outer_select.join(", "),
                    if outer_group.is_empty() {
                        String::new()
                    } else {
                        format!(" GROUP BY {}", outer_group.join(", "))
                    }
                )
            }
        };
        let plan = CellQuery {
            cube: cube.name.clone(),
            grouping: group_exprs
                .iter()
                .map(|(h, l, _)| {
                    (
                        sp.hierarchy_unique_name(*h),
                        sp.hier(*h).hierarchy.levels[*l as usize - 1].name.clone(),
                    )
                })
                .collect(),
            grouping_sets: if multi {
                sets.iter()
                    .map(|s| {
                        s.iter()
                            .map(|&gi| {
                                let (h, l, _) = &group_exprs[gi];
                                format!(
                                    "{}.[{}]",
                                    sp.hierarchy_unique_name(*h),
                                    sp.hier(*h).hierarchy.levels[*l as usize - 1].name
                                )
                            })
                            .collect()
                    })
                    .collect()
            } else {
                Vec::new()
            },
            filtered,
            measures: measure_ids
                .iter()
                .map(|&m| sp.measures[m as usize].unique_name.clone())
                .collect(),
            row_scope: self.scope.clone(),
            source: match agg {
                Some(a) => format!("aggregate {}", a.meta.name),
                None => "fact table".into(),
            },
            sql: match &rust_semi {
                Some(r) => r.sql.clone(),
                None => sql.clone(),
            },
            then: rust_semi.as_ref().map(|r| {
                format!(
                    "sum v per grouping set and time key t, then per group the {}",
                    if r.last {
                        "value at the last t with a sum (last_non_empty)"
                    } else {
                        "average of the sums over t (average_over_time)"
                    }
                )
            }),
            rows: 0,
            elapsed: std::time::Duration::ZERO,
        };
        let started = std::time::Instant::now();
        tracing::debug!(target: "datakube::sql", "{plan}");
        if agg.is_some() {
            crate::aggregates::count_read();
        }

        // Run and map rows back to coordinates.
        if self.cancel.is_some_and(|c| c.is_cancelled()) {
            return Err(QueryError::Cancelled);
        }
        let conn = self
            .engine
            .connection()
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        let _running = self.cancel.map(|c| c.register(&conn));
        let failed = |e: datakube_engine::duckdb::Error| {
            if self.cancel.is_some_and(|c| c.is_cancelled()) {
                QueryError::Cancelled
            } else {
                QueryError::Execution(e.to_string())
            }
        };
        if let Some(rs) = &rust_semi {
            let got = rs
                .run(&conn, sp, batches, &sets, &group_exprs, &stage2)
                .map_err(failed)?;
            return self.store(plan, started, batches, semi, &measure_ids, got);
        }
        let mut stmt = conn.prepare(&sql).map_err(failed)?;
        let mut rows = stmt.query([]).map_err(failed)?;
        // The gid of each batch's grouping set.
        let masks: Vec<u64> = sets
            .iter()
            .map(|s| {
                (0..group_exprs.len())
                    .filter(|gi| !s.contains(gi))
                    .map(|gi| 1u64 << gi)
                    .sum()
            })
            .collect();
        let n_meas = if semi.is_some() { 1 } else { measure_ids.len() };
        let first_value = group_exprs.len() + usize::from(multi);
        let mut got: HashMap<Coord, Vec<Option<f64>>> = HashMap::new();
        // The grand total's row, kept when the rows were not all filtered out (`counted`).
        let mut total: Option<(Coord, Vec<Option<f64>>)> = None;
        let mut grouped_rows = false;
        while let Some(r) = rows.next().map_err(failed)? {
            if counted && r.get::<_, i64>(first_value + n_meas).map_err(failed)? == 0 {
                continue;
            }
            let b = if multi {
                let gid: i64 = r.get(group_exprs.len()).map_err(failed)?;
                match masks.iter().position(|&mk| mk as i64 == gid) {
                    Some(b) => b,
                    None => continue,
                }
            } else {
                0
            };
            let grand_total = sets[b].is_empty();
            grouped_rows |= !grand_total;
            let Some(coord) = set_coord(&batches[b].1[0].1, &sets[b], &group_exprs, |gi| {
                let (h, level, _) = &group_exprs[gi];
                let key = r.get_ref(gi).map(key_text).ok()?;
                sp.hier(*h).by_key(*level, &key)
            }) else {
                continue;
            };
            let vals: Vec<Option<f64>> = (0..n_meas)
                .map(|i| r.get::<_, Option<f64>>(first_value + i).ok().flatten())
                .collect();
            if grand_total {
                total = Some((coord, vals));
            } else {
                got.insert(coord, vals);
            }
        }
        if let Some((coord, vals)) = total.filter(|_| counted || grouped_rows) {
            got.insert(coord, vals);
        }
        self.store(plan, started, batches, semi, &measure_ids, got)
    }

    /// Put a statement's values (per coordinate, one per measure) into the cell cache and
    /// its plan, with rows and time, into the executed list.
    fn store(
        &mut self,
        mut plan: CellQuery,
        started: std::time::Instant,
        batches: &[Batch],
        semi: Option<u32>,
        measure_ids: &[u32],
        got: HashMap<Coord, Vec<Option<f64>>>,
    ) -> Result<()> {
        plan.rows = got.len();
        plan.elapsed = started.elapsed().max(std::time::Duration::from_nanos(1));
        for (m, c) in batches.iter().flat_map(|(_, cells)| cells) {
            let mi = if semi.is_some() {
                0
            } else {
                measure_ids.iter().position(|x| x == m).unwrap_or(0)
            };
            let v = got
                .get(c)
                .and_then(|vals| vals[mi])
                .map(Scalar::Num)
                .unwrap_or(Scalar::Empty);
            self.cache.borrow_mut().insert((*m, c.clone()), v);
        }
        self.executed.push(plan);
        Ok(())
    }
}

/// The coordinate of a statement row in grouping set `set`: the batch's coordinate `base`
/// with each grouped hierarchy's member from `member_of(grouping column)`; `None` when a key
/// is not a member (a row the cells do not ask for).
fn set_coord(
    base: &Coord,
    set: &[usize],
    group_exprs: &[(HierIdx, u16, String)],
    mut member_of: impl FnMut(usize) -> Option<u32>,
) -> Option<Coord> {
    let mut coord = base.clone();
    for &gi in set {
        coord[group_exprs[gi].0 - 1] = member_of(gi)?;
    }
    Some(coord)
}

/// `<fact> AS f` and its joins, the FROM of a statement over the fact table or an aggregate.
pub(crate) fn from_clause(fact: &str, joins: &[String]) -> String {
    if joins.is_empty() {
        format!("{fact} AS f")
    } else {
        format!("{fact} AS f {}", joins.join(" "))
    }
}

/// The second and third steps of a semi-additive statement, computed from the first step's
/// rows (`i<gi>` per grouping column read from the fact table, the time key `t`, the sum
/// `v`): per grouping set and time key the sum of `v` over the other groups (NULL when all
/// are NULL); per group the value at the last time key with a sum (`last_non_empty`) or the
/// average of the sums (`average_over_time`). A time level's key comes from the time key's
/// leaf member and its ancestors in the member store. Time keys order as numbers when they
/// are integers, otherwise as text, as `arg_max` orders them.
struct RustSemi {
    sql: String,
    /// The grouping columns of the first step, in its column order.
    first_step: Vec<usize>,
    last: bool,
}

impl RustSemi {
    fn run(
        &self,
        conn: &datakube_engine::duckdb::Connection,
        sp: &Space,
        batches: &[Batch],
        sets: &[Vec<usize>],
        group_exprs: &[(HierIdx, u16, String)],
        stage2: &[bool],
    ) -> std::result::Result<HashMap<Coord, Vec<Option<f64>>>, datakube_engine::duckdb::Error> {
        let mut stmt = conn.prepare(&self.sql)?;
        let mut rows = stmt.query([])?;
        let n = self.first_step.len();
        let mut acc: Vec<HashMap<Coord, BTreeMap<datakube_members::Key, Option<f64>>>> =
            vec![HashMap::new(); batches.len()];
        let ancestor = |h: HierIdx, mut id: u32, level: u16| -> Option<u32> {
            let hm = &sp.hier(h).members;
            loop {
                let m = hm.get(id);
                if m.level == level {
                    return Some(id);
                }
                if m.level < level {
                    return None;
                }
                id = m.parent?;
            }
        };
        while let Some(r) = rows.next()? {
            let keys: Vec<String> = (0..n)
                .map(|k| r.get_ref(k).map(key_text))
                .collect::<std::result::Result<_, _>>()?;
            let t_ref = r.get_ref(n)?;
            let t_text = key_text(t_ref);
            let t = datakube_members::key_of(t_ref);
            let v: Option<f64> = r.get(n + 1)?;
            for (b, set) in sets.iter().enumerate() {
                let Some(coord) = set_coord(&batches[b].1[0].1, set, group_exprs, |gi| {
                    let (h, level, _) = &group_exprs[gi];
                    let hc = sp.hier(*h);
                    if stage2[gi] {
                        hc.by_key(hc.hierarchy.levels.len() as u16, &t_text)
                            .and_then(|leaf| ancestor(*h, leaf, *level))
                    } else {
                        self.first_step
                            .iter()
                            .position(|&x| x == gi)
                            .and_then(|k| hc.by_key(*level, &keys[k]))
                    }
                }) else {
                    continue;
                };
                let e = acc[b].entry(coord).or_default().entry(t.clone()).or_insert(None);
                if let Some(x) = v {
                    *e = Some(e.unwrap_or(0.0) + x);
                }
            }
        }
        let mut got = HashMap::new();
        for per_batch in acc {
            for (coord, by_time) in per_batch {
                let value = if self.last {
                    by_time.values().rev().find_map(|v| *v)
                } else {
                    let sums: Vec<f64> = by_time.values().flatten().copied().collect();
                    (!sums.is_empty()).then(|| sums.iter().sum::<f64>() / sums.len() as f64)
                };
                got.insert(coord, vec![value]);
            }
        }
        Ok(got)
    }
}

/// Columns of a fact relation (hive partition columns included), described once per
/// relation (which names its snapshot's files); empty when they cannot be read (then nothing
/// is pruned).
fn fact_columns(engine: &Engine, fact: &str) -> std::sync::Arc<HashSet<String>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static KNOWN: OnceLock<Mutex<HashMap<String, Arc<HashSet<String>>>>> = OnceLock::new();
    let known = KNOWN.get_or_init(Default::default);
    if let Some(c) = known.lock().unwrap_or_else(|p| p.into_inner()).get(fact) {
        return c.clone();
    }
    let sql = format!("SELECT * FROM {fact} LIMIT 0");
    let cols: HashSet<String> = engine
        .connection()
        .ok()
        .and_then(|conn| {
            let mut st = conn.prepare(&sql).ok()?;
            drop(st.query([]).ok()?);
            Some(st.column_names().into_iter().collect())
        })
        .unwrap_or_default();
    let cols = Arc::new(cols);
    let mut k = known.lock().unwrap_or_else(|p| p.into_inner());
    if k.len() > 1024 {
        k.clear();
    }
    k.insert(fact.to_string(), cols.clone());
    cols
}

/// Partition pruning. The datasets' contract (docs/datasets.md): a fact column named like a
/// dimension level's key column (`aar`, the hive partition column) holds that level's key. The
/// rows of members `ids` of hierarchy `h` therefore have, at each coarser level whose key column
/// the fact table has, one of their ancestors' keys: filtering on it lets DuckDB skip the files
/// of other years when only months, quarters or weeks are asked for. Nothing when a member sits
/// above such a level (or is the All member), or the hierarchy is parent-child.
fn pruning_filters(sp: &Space, h: HierIdx, ids: &[u32], fact_cols: &HashSet<String>) -> Vec<String> {
    let hc = sp.hier(h);
    if fact_cols.is_empty() || hc.hierarchy.is_parent_child() || hc.hierarchy.source.is_none() || ids.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (li, lvl) in hc.hierarchy.levels.iter().enumerate() {
        let level = (li + 1) as u16;
        if !fact_cols.contains(&lvl.key_column) {
            continue;
        }
        let mut keys: Vec<String> = Vec::new();
        let mut all_on_level = true;
        let mut ok = true;
        for &id in ids {
            let mut m = hc.members.get(id);
            if m.level < level {
                ok = false;
                break;
            }
            all_on_level &= m.level == level;
            while m.level > level {
                match m.parent {
                    Some(p) => m = hc.members.get(p),
                    None => break,
                }
            }
            if m.level != level {
                ok = false;
                break;
            }
            keys.push(m.key.sql_literal());
        }
        // Members on this level are already filtered on this very column (see
        // [`key_expression`]).
        if !ok || all_on_level {
            continue;
        }
        keys.sort_unstable();
        keys.dedup();
        if keys.len() <= MAX_IN_LIST {
            out.push(in_list(&format!("f.{}", sql_ident(&lvl.key_column)), keys));
        }
    }
    out
}

/// Whether the members `ids` (all on `level` of hierarchy `h`) are exactly the members of
/// their level under the ancestors that [`pruning_filters`] filters the fact table by: then
/// their own IN-list tests every row again for nothing (the four quarters of 2024 under
/// `aar = 2024`).
fn covered_by_pruning(sp: &Space, h: HierIdx, level: u16, ids: &[u32], fact_cols: &HashSet<String>) -> bool {
    let hc = sp.hier(h);
    if fact_cols.is_empty() || hc.hierarchy.is_parent_child() || hc.hierarchy.source.is_none() {
        return false;
    }
    let ancestor = |mut id: u32, at: u16| -> Option<u32> {
        loop {
            let m = hc.members.get(id);
            if m.level == at {
                return Some(id);
            }
            if m.level < at {
                return None;
            }
            id = m.parent?;
        }
    };
    (1..level).any(|l| {
        if !fact_cols.contains(&hc.hierarchy.levels[l as usize - 1].key_column) {
            return false;
        }
        let Some(mut above) = ids.iter().map(|&id| ancestor(id, l)).collect::<Option<Vec<u32>>>() else {
            return false;
        };
        above.sort_unstable();
        above.dedup();
        above.len() <= MAX_IN_LIST
            && hc
                .members
                .level_members(level as usize)
                .iter()
                .filter(|&&m| ancestor(m, l).is_some_and(|a| above.binary_search(&a).is_ok()))
                .count()
                == ids.len()
    })
}

/// A filter keeping the fact rows of some members.
enum MembersFilter {
    /// A condition for WHERE.
    Where(String),
    /// The rows whose key `expr` is one of `keys` (SQL literals made by the server from the
    /// member store, in member order, distinct, no NULL).
    Keys { expr: String, keys: Vec<String> },
}

impl MembersFilter {
    /// The rows whose key `expr` is one of `lits` (the members' key literals in member order,
    /// as an axis and a subselect on the same members both list them).
    fn keys(expr: String, lits: Vec<String>) -> MembersFilter {
        if lits.iter().any(|l| l == "NULL") {
            return MembersFilter::Where(in_list(&expr, lits));
        }
        let mut seen = HashSet::new();
        let keys = lits.into_iter().filter(|l| seen.insert(l.clone())).collect();
        MembersFilter::Keys { expr, keys }
    }

    /// Adds the filter to the statement. Several keys become a join on a VALUES list rather
    /// than `IN (…)`: DuckDB 1.5.6 turns the join into a filter on the scan of the
    /// kommune-sorted Parquet files that costs less than its IN-list (the label filter on six
    /// kommuner over all rows at scale 1, medians of 21 runs: 80.5 ms as IN, 69.3 ms as a join,
    /// 70.7 ms for the hand-written join on the kommune table). One key stays `IN (k)`. Nothing
    /// is added when the statement already has the same filter (an axis and a subselect on the
    /// same members).
    fn apply(self, where_: &mut Vec<String>, joins: &mut Vec<String>) {
        match self {
            MembersFilter::Where(w) => where_.push(w),
            MembersFilter::Keys { expr, keys } if keys.len() < 2 => where_.push(in_list(&expr, keys)),
            MembersFilter::Keys { expr, keys } => {
                let rows: Vec<String> = keys.iter().map(|k| format!("({k})")).collect();
                let values = format!("JOIN (VALUES {}) AS ", rows.join(", "));
                let on = format!(" ON {expr} = ");
                if joins.iter().any(|j| j.starts_with(&values) && j.contains(&on)) {
                    return;
                }
                let alias = format!("k{}", joins.len());
                joins.push(format!("{values}{alias}(k){on}{alias}.k"));
            }
        }
    }
}

/// The fact rows of any of the members `ids` of hierarchy `h` (members of several levels);
/// `None` when the All member is among them.
#[allow(clippy::too_many_arguments)]
fn members_filter(
    sp: &Space,
    data_dir: &Snapshots,
    h: HierIdx,
    ids: &[u32],
    joins: &mut Vec<String>,
    joined: &mut HashSet<HierIdx>,
    agg: Option<&crate::aggregates::AggregateMeta>,
    fact_cols: &HashSet<String>,
) -> Result<Option<MembersFilter>> {
    let hc = sp.hier(h);
    if hc.hierarchy.is_parent_child() {
        let mut keys = Vec::new();
        for &id in ids {
            keys.extend(subtree_keys(sp, h, id));
        }
        return Ok(Some(MembersFilter::Where(format!(
            "f.{} IN ({})",
            sql_ident(&leaf_key_column(sp, h)),
            keys.join(", ")
        ))));
    }
    let mut by_level: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    for id in ids {
        let m = hc.members.get(id);
        if m.level == 0 {
            return Ok(None);
        }
        by_level.entry(m.level).or_default().push(m.key.sql_literal());
    }
    if let [(&level, lits)] = by_level.iter().collect::<Vec<_>>()[..] {
        let expr = key_expression(sp, data_dir, h, level, joins, joined, agg, fact_cols)?;
        return Ok(Some(MembersFilter::keys(expr, lits.clone())));
    }
    let mut ors = Vec::new();
    for (level, lits) in by_level {
        let e = key_expression(sp, data_dir, h, level, joins, joined, agg, fact_cols)?;
        ors.push(in_list(&e, lits));
    }
    Ok((!ors.is_empty()).then(|| MembersFilter::Where(format!("({})", ors.join(" OR ")))))
}

/// A grouping key read back from DuckDB, as the member store writes keys.
pub fn key_text(v: datakube_engine::duckdb::types::ValueRef<'_>) -> String {
    // The member store's text of the same key (`Space::by_key` looks members up by it).
    match datakube_members::key_of(v) {
        datakube_members::Key::Str(s) => s,
        k => k.to_string(),
    }
}

impl CellSource for CellFetcher<'_, '_> {
    fn stored(&mut self, measure: u32, coord: &[u32]) -> Option<Scalar> {
        let key = (measure, coord[1..].to_vec());
        let hit = self.cache.borrow().get(&key).cloned();
        match hit {
            Some(v) => Some(v),
            None => {
                self.pending.insert(key);
                None
            }
        }
    }
}

/// The fact column joined to hierarchy `h` (its leaf key in the fact table).
fn leaf_key_column(sp: &Space, h: HierIdx) -> String {
    let hc = sp.hier(h);
    hc.dim
        .foreign_key
        .clone()
        .unwrap_or_else(|| hc.hierarchy.primary_key.clone())
}

/// `e IN (literals)`, with a NULL key matched by `IS NULL` (IN never matches NULL).
fn in_list(e: &str, mut lits: Vec<String>) -> String {
    let had_null = lits.len() != {
        lits.retain(|l| l != "NULL");
        lits.len()
    };
    match (lits.is_empty(), had_null) {
        (true, _) => format!("{e} IS NULL"),
        (false, false) => format!("{e} IN ({})", lits.join(", ")),
        (false, true) => format!("({e} IN ({}) OR {e} IS NULL)", lits.join(", ")),
    }
}

/// Keys (as SQL literals) of a member and all its descendants (parent-child hierarchies).
pub(crate) fn subtree_keys(sp: &Space, h: HierIdx, id: u32) -> Vec<String> {
    let hm = &sp.hier(h).members;
    let mut out = Vec::new();
    let mut stack = vec![id];
    while let Some(x) = stack.pop() {
        let m = hm.get(x);
        if m.level > 0 {
            out.push(m.key.sql_literal());
        }
        stack.extend(&m.children);
    }
    if out.is_empty() {
        out.push("NULL".into());
    }
    out
}

/// SQL for the key of `level` of hierarchy `h`, per fact row; adds the dimension join when
/// the level's key is not in the fact table. A fact column named like the level's key column
/// holds that key (docs/datasets.md), so it is read directly: no join, and a filter on it
/// prunes partitions.
/// The dimension table a fact table joins on its primary key: the Parquet files themselves
/// when the members' load found that key unique (the join cannot repeat a fact row), else the
/// distinct key columns (the primary key, then each level's key), so a table with repeated
/// keys still gives each fact row once.
fn dimension_table(hc: &HierCtx, glob: &std::path::Path) -> String {
    let files = format!(
        "read_parquet({}, hive_partitioning = true)",
        sql_string(&glob.to_string_lossy())
    );
    if hc.members.primary_key_unique {
        files
    } else {
        let hier = hc.hierarchy;
        let mut cols = vec![sql_ident(&hier.primary_key)];
        for l in &hier.levels {
            if !cols.contains(&sql_ident(&l.key_column)) {
                cols.push(sql_ident(&l.key_column));
            }
        }
        format!("(SELECT DISTINCT {} FROM {files})", cols.join(", "))
    }
}

#[allow(clippy::too_many_arguments)]
fn key_expression(
    sp: &Space,
    data_dir: &Snapshots,
    h: HierIdx,
    level: u16,
    joins: &mut Vec<String>,
    joined: &mut HashSet<HierIdx>,
    agg: Option<&crate::aggregates::AggregateMeta>,
    fact_cols: &HashSet<String>,
) -> Result<String> {
    let hc = sp.hier(h);
    let hier = hc.hierarchy;
    let lvl = &hier.levels[level as usize - 1];
    if let Some(meta) = agg {
        // An aggregate keeps each level's key in its own column (checked when it was chosen).
        let col = meta.level_column(&hier.unique_name, &lvl.name).ok_or_else(|| {
            QueryError::Execution(format!(
                "aggregate {} has no level {}.[{}]",
                meta.name, hier.unique_name, lvl.name
            ))
        })?;
        return Ok(format!("f.{}", sql_ident(col)));
    }
    let Some(source) = &hier.source else {
        return Ok(format!("f.{}", sql_ident(&lvl.key_column)));
    };
    let fk = leaf_key_column(sp, h);
    if level as usize == hier.levels.len() && hier.joins_on_leaf_key() {
        return Ok(format!("f.{}", sql_ident(&fk)));
    }
    if fact_cols.contains(&lvl.key_column) {
        return Ok(format!("f.{}", sql_ident(&lvl.key_column)));
    }
    if joined.insert(h) {
        let glob = datakube_members::source_glob(data_dir, source).map_err(QueryError::Execution)?;
        joins.push(format!(
            "JOIN {} AS h{h} ON f.{} = h{h}.{}",
            dimension_table(hc, &glob),
            sql_ident(&fk),
            sql_ident(&hier.primary_key)
        ));
    }
    Ok(format!("h{h}.{}", sql_ident(&lvl.key_column)))
}

/// A measure's `filter` as a condition on the fact row, for a `FILTER (WHERE …)` clause:
/// one value as `=`. DuckDB 1.5.6 keeps `IN (x)` as a list test there (Regnskab and Budget
/// by region at scale 1: 402–450 ms with `=`, 472–510 ms with `IN`). In WHERE the optimizer
/// rewrites `IN (x)` itself, and a written `=` on a joined key made the join slower
/// (first pivot for kommune 751: 208–291 ms with `IN (751)`, 320–340 ms with `= 751`), so
/// WHERE keeps the IN-lists.
pub(crate) fn measure_filter_sql(f: &datakube_model::MeasureFilter) -> String {
    let col = format!("f.{}", sql_ident(&f.column));
    match &f.values[..] {
        [v] => format!("{col} = {}", filter_literal(v)),
        vs => in_list(&col, vs.iter().map(filter_literal).collect()),
    }
}

pub(crate) fn filter_literal(v: &FilterValue) -> String {
    match v {
        FilterValue::String(s) => sql_string(s),
        FilterValue::Integer(i) => i.to_string(),
        FilterValue::Number(n) => format!("{n}"),
        FilterValue::Boolean(b) => b.to_string(),
    }
}

/// The SQL aggregate of a stored measure; its filter as `FILTER (WHERE ...)` unless
/// `with_filter` is false (the statement filters in WHERE, see [`shared_filter`]).
fn inner_aggregate_sql(s: &datakube_model::StoredMeasure, with_filter: bool) -> Result<String> {
    let col = s.column.as_deref().map(|c| format!("f.{}", sql_ident(c)));
    // A virtual cube's measure reads only its base cube's rows; then the measure's own filter
    // (unless the statement has it in WHERE).
    let mut conds: Vec<String> = Vec::new();
    if let Some(base) = &s.base_cube {
        conds.push(format!(
            "f.{} = {}",
            sql_ident(datakube_model::BASE_CUBE_COLUMN),
            sql_string(base)
        ));
    }
    if let Some(f) = s.filter.as_ref().filter(|_| with_filter) {
        conds.push(measure_filter_sql(f));
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" FILTER (WHERE {})", conds.join(" AND "))
    };
    let c = col.clone().unwrap_or_else(|| "*".into());
    let agg = match s.aggregator {
        Aggregator::Sum | Aggregator::LastNonEmpty | Aggregator::AverageOverTime => format!("SUM({c}){filter}"),
        Aggregator::Count => format!("COUNT({c}){filter}"),
        Aggregator::DistinctCount => format!("COUNT(DISTINCT {c}){filter}"),
        Aggregator::Min => format!("MIN({c}){filter}"),
        Aggregator::Max => format!("MAX({c}){filter}"),
        Aggregator::Avg => format!("AVG({c}){filter}"),
    };
    // Where a group holds no row of the measure's base cube the cell is empty, not a count of 0.
    Ok(match &s.base_cube {
        Some(base) => format!(
            "CASE WHEN bool_or(f.{} = {}) THEN {agg} END",
            sql_ident(datakube_model::BASE_CUBE_COLUMN),
            sql_string(base)
        ),
        None => agg,
    })
}

/// The column of aggregate `meta` holding the fact table's key of the time dimension of
/// semi-additive measure `s`: the finest level of one of that dimension's hierarchies, joined
/// on that key.
fn time_key_column<'a>(
    sp: &Space,
    meta: &'a crate::aggregates::AggregateMeta,
    s: &datakube_model::StoredMeasure,
) -> Option<&'a str> {
    let dim = sp.cube.dimension(s.time_dimension.as_deref()?)?;
    let fk = dim.foreign_key.as_deref()?;
    dim.hierarchies.iter().find_map(|h| {
        let leaf = h.levels.last()?;
        let keyed = h.joins_on_leaf_key() || (h.source.is_none() && leaf.key_column == fk);
        if keyed {
            meta.level_column(&h.unique_name, &leaf.name)
        } else {
            None
        }
    })
}

/// A measure combined from an aggregate's pre-aggregated column: counts and sums add up,
/// minima and maxima of minima and maxima; a distinct count is read from exactly one row
/// per group (grouping-sets aggregates), a semi-additive measure's sums per time key add up
/// over the other keys.
fn aggregate_from_aggregate(sp: &Space, meta: &crate::aggregates::AggregateMeta, m: u32) -> Result<String> {
    let qm = &sp.measures[m as usize];
    let c = meta
        .measure(&qm.name)
        .ok_or_else(|| QueryError::Execution(format!("aggregate {} has no measure {}", meta.name, qm.name)))?;
    let f = match c.aggregator.as_str() {
        "min" => "MIN",
        "max" => "MAX",
        _ => "SUM",
    };
    Ok(format!("{f}(f.{})", sql_ident(&c.column)))
}

/// The measure filter every measure of a statement has, when all are stored, none counts,
/// and all filters are equal; then the statement filters in WHERE.
fn shared_filter<'m>(sp: &'m Space, measure_ids: &[u32]) -> Option<&'m datakube_model::MeasureFilter> {
    let mut shared: Option<&datakube_model::MeasureFilter> = None;
    for &m in measure_ids {
        let QueryMeasureKind::Stored(s) = &sp.measures[m as usize].kind else {
            return None;
        };
        if matches!(s.aggregator, Aggregator::Count | Aggregator::DistinctCount) {
            return None;
        }
        let f = s.filter.as_ref()?;
        match shared {
            None => shared = Some(f),
            Some(g) if g == f => {}
            Some(_) => return None,
        }
    }
    shared
}

fn aggregate_sql(sp: &Space, m: u32, with_filter: bool) -> Result<String> {
    match &sp.measures[m as usize].kind {
        QueryMeasureKind::Stored(s) => inner_aggregate_sql(s, with_filter),
        QueryMeasureKind::Calculated(_) => Err(QueryError::Execution(
            "calculated measures are not aggregated in SQL".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datakube_engine::duckdb::types::ValueRef;

    #[test]
    fn grouping_keys_read_back_as_the_member_store_writes_them() {
        // A level keyed by a DOUBLE or BOOLEAN column: the cell rows must find the members
        // loaded from the same column (the driver's Debug text, `Double(2.5)`, would not).
        for (v, text) in [
            (ValueRef::Double(2.5), "2.5"),
            (ValueRef::Double(20319.0), "20319"),
            (ValueRef::Boolean(true), "true"),
            (ValueRef::BigInt(-7), "-7"),
            (ValueRef::Text(b"K"), "K"),
            (ValueRef::Null, ""),
        ] {
            assert_eq!(key_text(v), text);
            assert_eq!(key_text(v), datakube_members::key_of(v).to_string());
        }
    }

    /// The rows `f` keeps under the filters `keys` would add, counted by DuckDB.
    fn kept(lits: &[&str], twice: bool) -> (i64, usize, usize) {
        let conn = datakube_engine::duckdb::Connection::open_in_memory().unwrap();
        let (mut where_, mut joins) = (Vec::new(), Vec::new());
        for _ in 0..if twice { 2 } else { 1 } {
            let lits = lits.iter().map(|l| l.to_string()).collect();
            MembersFilter::keys("f.k".into(), lits).apply(&mut where_, &mut joins);
        }
        let from = from_clause("(SELECT * FROM (VALUES (1), (2), (2), (3), (NULL)) AS t(k))", &joins);
        let sql = if where_.is_empty() {
            format!("SELECT count(*) FROM {from}")
        } else {
            format!("SELECT count(*) FROM {from} WHERE {}", where_.join(" AND "))
        };
        let n = conn.query_row(&sql, [], |r| r.get(0)).unwrap();
        (n, where_.len(), joins.len())
    }

    #[test]
    fn a_members_filter_keeps_the_rows_of_its_keys_once() {
        // Several keys: one join, the same rows as `IN`, also when the keys repeat or the
        // same filter is added twice (an axis and a subselect on the same members).
        assert_eq!(kept(&["2", "3"], false), (3, 0, 1));
        assert_eq!(kept(&["2", "3", "2"], true), (3, 0, 1));
        // One key: a WHERE condition.
        assert_eq!(kept(&["1"], false), (1, 1, 0));
        // A NULL key: IN never matches NULL, so WHERE with IS NULL.
        assert_eq!(kept(&["1", "NULL"], false), (2, 1, 0));
        // A key no row has.
        assert_eq!(kept(&["7", "8"], false), (0, 0, 1));
    }
}
