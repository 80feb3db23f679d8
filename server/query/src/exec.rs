//! Executing an MDX SELECT: names → sets → cells (SQL in batches) → a `CellSet`.

use datakube_engine::storage::Snapshots;
use std::collections::{HashMap, HashSet};

use datakube_engine::Engine;
use datakube_mdx::ast::{CubeSource, Definition, Expr, ObjectName, Select, Statement};
use datakube_members::{MemberStore, PropValue};
use datakube_model::{Aggregator, Catalog, Lang};
use datakube_xmla::cellset::{self, Axis, AxisMember, AxisProperty, Cell, CellProperty, CellSet, CellValue};

use crate::cells::{CellFetcher, Restrictions, RowScope};
use crate::error::{QueryError, Result};
use crate::eval::{CellResult, Env, Scalar, Val};
use crate::format::format_value;
use crate::plan::{LogicalPlan, PlanAxis};
use crate::space::{HierIdx, MEASURES, MemberRef, QueryMeasureKind, Space, Tuple, print_name};

/// Largest number of cells one statement may produce.
pub const MAX_CELLS: usize = 2_000_000;
/// Rounds of "evaluate, fetch what is missing" before giving up (nested calculations).
const MAX_ROUNDS: usize = 16;
/// Depth of value filters inside calculated members inside value filters ….
const MAX_NESTED_FETCHERS: usize = 4;

pub struct QueryContext<'a> {
    pub catalog: &'a Catalog,
    pub members: &'a MemberStore,
    pub engine: &'a Engine,
    /// The snapshots the model was loaded from: every SQL reads these, never `CURRENT`.
    pub snapshots: &'a Snapshots,
    pub lang: Lang,
    /// LCID reported as the LANGUAGE cell property.
    pub lcid: u32,
    /// What the caller may see (from the verified identity only; see [`crate::security`]).
    pub access: crate::security::Access,
    pub last_data_update: &'a str,
    pub last_schema_update: &'a str,
    /// The cube to use when a statement omits it (MSOLAP does on refresh).
    pub default_cube: Option<&'a str>,
    /// `MdxMissingMemberMode=Ignore`: a reference to a member that does not exist is an
    /// empty set (left out of sets, empty in values) instead of an error.
    pub ignore_missing_members: bool,
    /// Calculated members and named sets of the session: (cube, definition without the cube).
    pub session_definitions: Vec<(String, Definition)>,
    /// Set when the client sends Cancel for this command.
    pub cancel: Option<&'a datakube_engine::CancelToken>,
}

/// Parse and execute one MDX SELECT.
pub fn execute(ctx: &QueryContext, statement: &str) -> Result<CellSet> {
    let stmt = datakube_mdx::parse_statement(statement).map_err(|e| QueryError::Syntax(e.to_string()))?;
    match stmt {
        Statement::Select(sel) => execute_select(ctx, &sel, &mut Trace::default()),
        Statement::Drillthrough(_) => Err(QueryError::Unsupported("DRILLTHROUGH is not supported yet".into())),
        Statement::Create(_) | Statement::Drop(_) => {
            Err(QueryError::Unsupported("CREATE and DROP are not supported yet".into()))
        }
        Statement::Refresh(_) => Err(QueryError::Unsupported("REFRESH CUBE is not supported yet".into())),
    }
}

/// What a statement did, step by step: for `datakube explain` and tests that assert on the
/// plan. Filled while the statement executes (value filters need data to decide the axes).
#[derive(Debug, Default)]
pub struct Trace {
    pub cube: String,
    pub source: String,
    pub row_scope: String,
    pub calculations: Vec<String>,
    pub restrictions: Vec<String>,
    /// The resolved plan (`LogicalPlan::describe`).
    pub plan: String,
    pub slicer: Vec<String>,
    /// Per axis: name, set expression, NON EMPTY, tuples before and after NON EMPTY, first tuples.
    pub axes: Vec<AxisTrace>,
    pub cells: usize,
    pub rounds: usize,
    pub statements: Vec<crate::cells::CellQuery>,
    /// (hierarchy unique name, level name): the deepest level each subselect or WHERE set
    /// limits the fact rows to (none for a restriction that keeps the All member). Every
    /// statement of the query filters on these levels besides its grouping, so an aggregate
    /// must hold them to answer it (`datakube aggregates suggest`).
    pub restricted_levels: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct AxisTrace {
    pub name: String,
    pub expr: String,
    pub non_empty: bool,
    pub tuples: usize,
    pub kept: usize,
    pub first: Vec<String>,
}

impl std::fmt::Display for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "cube: [{}]  (facts: {})", self.cube, self.source)?;
        writeln!(f, "row scope: {}", self.row_scope)?;
        for c in &self.calculations {
            writeln!(f, "calculated: {c}")?;
        }
        for r in &self.restrictions {
            writeln!(f, "restriction: {r}")?;
        }
        writeln!(
            f,
            "slicer: {}",
            if self.slicer.is_empty() {
                "(default members)".to_string()
            } else {
                self.slicer.join(", ")
            }
        )?;
        write!(f, "{}", self.plan)?;
        for a in &self.axes {
            writeln!(
                f,
                "axis {}: {}{}",
                a.name,
                if a.non_empty { "NON EMPTY " } else { "" },
                a.expr
            )?;
            writeln!(
                f,
                "  {} tuples{}; first: {}",
                a.tuples,
                if a.non_empty {
                    format!(", {} after NON EMPTY", a.kept)
                } else {
                    String::new()
                },
                a.first.join(" | ")
            )?;
        }
        writeln!(
            f,
            "cells: {} evaluated in {} round(s) of SQL; {} statement(s):",
            self.cells,
            self.rounds,
            self.statements.len()
        )?;
        for (i, q) in self.statements.iter().enumerate() {
            writeln!(f, "#{} {q}", i + 1)?;
        }
        Ok(())
    }
}

/// Execute a SELECT and describe how it was answered.
pub fn explain(ctx: &QueryContext, statement: &str) -> Result<Trace> {
    let stmt = datakube_mdx::parse_statement(statement).map_err(|e| QueryError::Syntax(e.to_string()))?;
    let Statement::Select(sel) = stmt else {
        return Err(QueryError::Unsupported("explain takes a SELECT statement".into()));
    };
    let mut trace = Trace::default();
    execute_select(ctx, &sel, &mut trace)?;
    Ok(trace)
}

/// The cube a FROM clause names, and the subselects from outermost to innermost.
pub(crate) fn cube_and_subselects(sel: &Select) -> (&ObjectName, Vec<&Select>) {
    let mut subs = Vec::new();
    let mut from = &sel.from;
    loop {
        match from {
            CubeSource::Cube(name) => return (name, subs),
            CubeSource::Subselect { select, .. } => {
                subs.push(select.as_ref());
                from = &select.from;
            }
        }
    }
}

pub(crate) fn definition_solve_order(props: &[datakube_mdx::ast::DefinitionProperty]) -> Result<i64> {
    let Some(p) = props.iter().find(|p| p.name.value.eq_ignore_ascii_case("SOLVE_ORDER")) else {
        return Ok(0);
    };
    let bad = || {
        QueryError::Type(format!(
            "SOLVE_ORDER (line {}, column {}) must be a whole number",
            p.span.line, p.span.column
        ))
    };
    match &p.value {
        Expr::Literal {
            value: datakube_mdx::ast::Literal::Number(n),
            ..
        } => n.parse::<i64>().map_err(|_| bad()),
        Expr::Unary {
            op: datakube_mdx::ast::UnaryOp::Minus,
            expr,
            ..
        } => match expr.as_ref() {
            Expr::Literal {
                value: datakube_mdx::ast::Literal::Number(n),
                ..
            } => n.parse::<i64>().map(|v| -v).map_err(|_| bad()),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// `WITH MEMBER`: a calculated measure, or a calculated member of another hierarchy under
/// the member (or the hierarchy's root) its name starts with.
pub(crate) fn define_member(space: &mut Space, m: &datakube_mdx::ast::MemberDefinition) -> Result<()> {
    let segs = &m.name.segments;
    let format = definition_format(&m.properties);
    let solve_order = definition_solve_order(&m.properties)?;
    if segs.len() == 2 && segs[0].text().eq_ignore_ascii_case("Measures") {
        space.add_calculated_measure(&segs[1].text(), m.expr.clone(), format, solve_order);
        return Ok(());
    }
    let bad = |why: &str| {
        QueryError::Name(format!(
            "cannot define the calculated member {} (line {}, column {}): {why}",
            print_name(&m.name),
            m.name.span.line,
            m.name.span.column
        ))
    };
    if segs.len() < 2 {
        return Err(bad("the name must start with a hierarchy, e.g. [Measures].[Name]"));
    }
    let prefix = ObjectName {
        segments: segs[..segs.len() - 1].to_vec(),
        span: m.name.span,
    };
    let (h, parent, under_member) = match space.resolve(&prefix) {
        Ok(crate::space::Object::Hierarchy(h)) => {
            // Under the All member; a hierarchy without one gets a top-level member.
            (h, space.hier(h).members.has_all.then_some(0), false)
        }
        Ok(crate::space::Object::Member(p)) if p.h != MEASURES => (p.h, Some(p.id), true),
        Ok(_) => return Err(bad("its parent must be a hierarchy or a member")),
        Err(e) => return Err(bad(&e.to_string())),
    };
    let name = segs[segs.len() - 1].text();
    space.add_calculated_member(
        h,
        parent,
        under_member,
        &name,
        crate::space::CalcDef {
            expr: m.expr.clone(),
            format_string: format,
            solve_order,
        },
    );
    Ok(())
}

pub(crate) fn definition_format(props: &[datakube_mdx::ast::DefinitionProperty]) -> Option<String> {
    props
        .iter()
        .find(|p| p.name.value.eq_ignore_ascii_case("FORMAT_STRING"))
        .and_then(|p| match &p.value {
            Expr::Literal {
                value: datakube_mdx::ast::Literal::String(s),
                ..
            } => Some(s.clone()),
            _ => None,
        })
}

pub fn execute_select(ctx: &QueryContext, sel: &Select, trace: &mut Trace) -> Result<CellSet> {
    let (cube_name, subselects) = cube_and_subselects(sel);
    let cname = cube_name.segments.last().map(|s| s.text()).unwrap_or_default();
    let cname = if cname.is_empty() {
        ctx.default_cube.unwrap_or_default().to_string()
    } else {
        cname
    };
    let cube = ctx.catalog.cube(&cname).ok_or_else(|| {
        QueryError::Name(format!(
            "the cube [{cname}] (line {}, column {}) does not exist in catalog {}; cubes: {}",
            cube_name.span.line,
            cube_name.span.column,
            ctx.catalog.name,
            ctx.catalog
                .cubes
                .iter()
                .map(|c| format!("[{}]", c.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let (access, space) = scoped_space(ctx, cube)?;
    let mut space = space;
    trace.cube = cube.name.clone();
    trace.source = cube.fact_label();
    trace.row_scope = match &access.rows {
        _ if cube.is_public() => "none (public cube: no personal data)".into(),
        RowScope::All if cube.is_benchmark() => {
            "all kommuner (benchmark cube: aggregated, disclosure-controlled)".into()
        }
        RowScope::All => "all rows".into(),
        RowScope::Kommuner(k) => format!(
            "{} in {k:?}",
            cube.security
                .row_scope_column
                .as_deref()
                .unwrap_or("(no row-scope column)")
        ),
    };
    for d in &sel.with {
        trace.calculations.push(match d {
            Definition::Member(m) => format!("MEMBER {} AS {}", print_name(&m.name), m.expr),
            Definition::Set(s) => format!("SET {} AS {}", print_name(&s.name), s.expr),
            Definition::CellCalculation(c) => format!("CELL CALCULATION {}", print_name(&c.name)),
        });
    }

    // WITH: calculated measures first (sets may refer to them), then sets in order.
    // Session definitions for this cube first; the query's WITH may redefine them.
    let session: Vec<&Definition> = ctx
        .session_definitions
        .iter()
        .filter(|(c, _)| c.eq_ignore_ascii_case(&cube.name))
        .map(|(_, d)| d)
        .collect();
    for d in session.iter().copied().chain(sel.with.iter()) {
        if let Definition::Member(m) = d {
            define_member(&mut space, m)?;
        }
    }
    let mut env = Env::new(&space);
    env.fetcher = Some(cell_fetcher(ctx, &space, &access));
    comparison_group(&mut env, ctx);
    for d in session.iter().copied().chain(sel.with.iter()) {
        if let Definition::Set(s) = d {
            let tuples = env.eval_set(&s.expr, None)?;
            let key = s
                .name
                .segments
                .iter()
                .map(|x| x.text())
                .collect::<Vec<_>>()
                .join(".")
                .to_ascii_lowercase();
            env.named_sets.insert(key, tuples);
        }
    }
    // Cell calculations: their FOR subcubes may use the named sets.
    for d in session.iter().copied().chain(sel.with.iter()) {
        if let Definition::CellCalculation(c) = d {
            let calc = crate::cellcalc::compile(
                &env,
                c,
                definition_solve_order(&c.properties)?,
                definition_format(&c.properties),
            )?;
            env.cell_calcs.push(calc);
        }
    }

    // Subselects restrict the space (visible members and fact rows), innermost first: an
    // outer subselect is evaluated inside the inner one's restriction.
    let mut subselect_hiers: HashSet<HierIdx> = HashSet::new();
    // Members each restricted hierarchy is limited to (for disclosure control).
    let mut restricted: HashMap<HierIdx, Vec<u32>> = HashMap::new();
    for sub in subselects.iter().rev() {
        let mut sets: Vec<Vec<Tuple>> = Vec::new();
        for a in &sub.axes {
            sets.push(env.eval_set(&a.expr, None)?);
        }
        if let Some(w) = &sub.where_clause {
            sets.push(env.eval_set(w, None)?);
        }
        for tuples in sets {
            let mut per_h: HashMap<HierIdx, Vec<u32>> = HashMap::new();
            for t in &tuples {
                for m in t {
                    if m.h != MEASURES {
                        per_h.entry(m.h).or_default().push(m.id);
                    }
                }
            }
            for (h, ids) in per_h {
                subselect_hiers.insert(h);
                trace.restrictions.push(format!(
                    "subselect: {} limited to {} member(s)",
                    space.hierarchy_unique_name(h),
                    ids.len()
                ));
                note_restriction(&mut restricted, h, &ids);
                restrict(&mut env, h, ids);
            }
        }
    }

    // WHERE: a tuple sets coordinates; a set of several members of one hierarchy restricts.
    let mut base = space.default_coordinate();
    let mut slicer_hiers: HashSet<HierIdx> = HashSet::new();
    if let Some(w) = &sel.where_clause {
        let tuples = match env.eval(w, None)? {
            Val::Member(m) => vec![vec![m]],
            Val::Tuple(t) => vec![t],
            Val::Set(s) => s,
            Val::Hierarchy(h) => vec![vec![MemberRef { h, id: base[h] }]],
            other => {
                return Err(QueryError::Type(format!(
                    "the WHERE clause must be a tuple or set, not {}",
                    crate::eval::describe(&other)
                )));
            }
        };
        if tuples.len() == 1 {
            for m in &tuples[0] {
                base[m.h] = m.id;
                slicer_hiers.insert(m.h);
                trace.slicer.push(space.member_unique_name(*m));
            }
        } else if !tuples.is_empty() {
            let mut per_h: HashMap<HierIdx, Vec<u32>> = HashMap::new();
            for t in &tuples {
                for m in t {
                    if m.h == MEASURES {
                        return Err(QueryError::Unsupported(
                            "a set of measures in the WHERE clause is not supported".into(),
                        ));
                    }
                    per_h.entry(m.h).or_default().push(m.id);
                }
            }
            for (h, ids) in per_h {
                trace.restrictions.push(format!(
                    "WHERE set: {} limited to {} member(s)",
                    space.hierarchy_unique_name(h),
                    ids.len()
                ));
                note_restriction(&mut restricted, h, &ids);
                restrict(&mut env, h, ids);
            }
        }
    }

    add_nested_fetchers(&mut env);

    // Axes, in ordinal order, without gaps.
    let mut axes_src: Vec<&datakube_mdx::ast::Axis> = sel.axes.iter().collect();
    axes_src.sort_by_key(|a| a.name.ordinal());
    for (i, a) in axes_src.iter().enumerate() {
        if a.name.ordinal() as usize != i {
            return Err(QueryError::Type(format!(
                "axis {} is used but axis {i} is missing (line {}, column {}); axes must be numbered from 0 without gaps",
                a.name.ordinal(),
                a.span.line,
                a.span.column
            )));
        }
    }
    let mut axis_tuples: Vec<Vec<Tuple>> = Vec::new();
    let mut axis_hiers: Vec<Vec<HierIdx>> = Vec::new();
    let mut used: HashMap<HierIdx, usize> = HashMap::new();
    for (i, a) in axes_src.iter().enumerate() {
        let mut tuples = env.eval_set(&a.expr, Some(&base))?;
        // A subselect is the space the query sees: members written explicitly on an axis that
        // lie outside it are left out (SSAS does the same; found by the differential test).
        if !subselect_hiers.is_empty() {
            tuples.retain(|t| t.iter().all(|m| !subselect_hiers.contains(&m.h) || env.visible(*m)));
        }
        let hiers: Vec<HierIdx> = tuples
            .first()
            .map(|t| t.iter().map(|m| m.h).collect())
            .unwrap_or_default();
        for t in &tuples {
            if t.iter().map(|m| m.h).ne(hiers.iter().copied()) {
                return Err(QueryError::Type(format!(
                    "the tuples on axis {i} do not all have the same hierarchies in the same order (line {}, column {})",
                    a.span.line, a.span.column
                )));
            }
        }
        for &h in &hiers {
            if let Some(prev) = used.insert(h, i) {
                return Err(QueryError::Type(format!(
                    "the hierarchy {} appears on axis {prev} and axis {i}",
                    space.hierarchy_unique_name(h)
                )));
            }
            if slicer_hiers.contains(&h) {
                return Err(QueryError::Type(format!(
                    "the hierarchy {} appears on axis {i} and in the WHERE clause",
                    space.hierarchy_unique_name(h)
                )));
            }
        }
        axis_tuples.push(tuples);
        axis_hiers.push(hiers);
    }

    // The resolved query, independent of MDX from here on.
    let cell_properties: Vec<CellProperty> = if sel.cell_properties.is_empty() {
        CellProperty::DEFAULT.to_vec()
    } else {
        sel.cell_properties
            .iter()
            .filter_map(|p| CellProperty::from_name(&p.value))
            .collect()
    };
    let plan = LogicalPlan {
        cube: cube.name.clone(),
        axes: axes_src
            .iter()
            .zip(axis_tuples)
            .zip(axis_hiers)
            .map(|((a, tuples), hierarchies)| PlanAxis {
                name: a.name.to_string(),
                hierarchies,
                tuples,
                non_empty: a.non_empty,
                properties: a.dimension_properties.clone(),
                source: a.expr.to_string(),
            })
            .collect(),
        base,
        restricted,
        cell_properties,
    };
    trace.plan = plan.describe(&space);
    execute_plan(ctx, &env, &access, &plan, trace)
}

/// The cube's space as `ctx`'s principal may see it, and the rules for the cube.
fn scoped_space<'a>(
    ctx: &QueryContext<'a>,
    cube: &'a datakube_model::Cube,
) -> Result<(datakube_members::access::CubeAccess, Space<'a>)> {
    let access = ctx.access.for_cube(cube)?;
    let mut space = Space::scoped(cube, ctx.members, ctx.lang, &access.members)?;
    space.ignore_missing_members = ctx.ignore_missing_members;
    space.custom_data = ctx.access.custom_data.clone();
    Ok((access, space))
}

/// The statement's cell fetcher: the principal's row scope, no restrictions yet.
fn cell_fetcher<'s, 'a>(
    ctx: &'s QueryContext,
    space: &'s Space<'a>,
    access: &datakube_members::access::CubeAccess,
) -> std::cell::RefCell<CellFetcher<'s, 'a>> {
    std::cell::RefCell::new(CellFetcher::new(
        space,
        ctx.engine,
        ctx.snapshots,
        access.rows.clone(),
        Restrictions::new(),
        ctx.cancel,
    ))
}

/// Value filters inside calculated members fetch through their own fetchers (same scope and
/// restrictions), since the main one is busy computing the cell.
fn add_nested_fetchers(env: &mut Env) {
    if let Some(f) = env.fetcher.as_ref() {
        let fresh: Vec<_> = (0..MAX_NESTED_FETCHERS)
            .map(|_| std::cell::RefCell::new(f.borrow().fresh()))
            .collect();
        env.nested = fresh;
    }
}

/// Execute a query another front end resolved: `build` gets the cube's space (scoped to the
/// principal; names resolve there) and returns the plan, whose restrictions then limit the
/// fact rows and visible members as subselects do. This is the entry point a DAX front end
/// uses; the MDX one builds its plan in [`execute_select`].
pub fn execute_built(
    ctx: &QueryContext,
    cube: &str,
    build: impl FnOnce(&Space) -> Result<LogicalPlan>,
    trace: &mut Trace,
) -> Result<CellSet> {
    let cube = ctx.catalog.cube(cube).ok_or_else(|| {
        QueryError::Name(format!(
            "the cube [{cube}] does not exist in catalog {}",
            ctx.catalog.name
        ))
    })?;
    let (access, space) = scoped_space(ctx, cube)?;
    let plan = build(&space)?;
    let mut env = Env::new(&space);
    env.fetcher = Some(cell_fetcher(ctx, &space, &access));
    let mut restricted: Vec<_> = plan.restricted.iter().collect();
    restricted.sort_by_key(|(h, _)| **h);
    for (h, ids) in restricted {
        restrict(&mut env, *h, ids.clone());
    }
    add_nested_fetchers(&mut env);
    trace.cube = cube.name.clone();
    trace.plan = plan.describe(&space);
    execute_plan(ctx, &env, &access, &plan, trace)
}

/// Compute the cells of a resolved query: batched SQL through `env`'s fetcher, NON EMPTY,
/// disclosure control on benchmark cubes, formats; the axes and the slicer for the writer.
pub fn execute_plan(
    ctx: &QueryContext,
    env: &Env,
    access: &datakube_members::access::CubeAccess,
    plan: &LogicalPlan,
    trace: &mut Trace,
) -> Result<CellSet> {
    let space = env.space;
    let cube = space.cube;
    let base = &plan.base;
    let restricted = &plan.restricted;
    let mut restricted_levels: Vec<(String, String)> = restricted
        .iter()
        .filter(|(h, ids)| {
            let hm = &space.hier(**h).members;
            !ids.is_empty()
                && ids
                    .iter()
                    .all(|&id| id < crate::space::CALC_BASE && hm.get(id).level > 0)
        })
        .filter_map(|(&h, ids)| {
            let hc = space.hier(h);
            let level = ids.iter().map(|&id| hc.members.get(id).level).max()?;
            let name = hc.hierarchy.levels.get(level as usize - 1)?.name.clone();
            Some((space.hierarchy_unique_name(h), name))
        })
        .collect();
    restricted_levels.sort();
    trace.restricted_levels = restricted_levels;
    let axis_tuples: Vec<&Vec<Tuple>> = plan.axes.iter().map(|a| &a.tuples).collect();
    let used: HashSet<HierIdx> = plan.axes.iter().flat_map(|a| a.hierarchies.iter().copied()).collect();

    // Cells.
    let lengths: Vec<usize> = axis_tuples.iter().map(|t| t.len()).collect();
    let total: usize = lengths
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .unwrap_or(usize::MAX);
    if total > MAX_CELLS {
        return Err(QueryError::Execution(format!(
            "the query asks for {total} cells, more than the limit of {MAX_CELLS}; filter or use NON EMPTY on a smaller set"
        )));
    }
    let coord_of = |ordinal: usize| -> Vec<u32> {
        let mut c = base.clone();
        let mut rest = ordinal;
        for (k, tuples) in axis_tuples.iter().enumerate() {
            let len = lengths[k];
            let pos = rest % len;
            rest /= len;
            for m in &tuples[pos] {
                c[m.h] = m.id;
            }
        }
        c
    };
    let fetcher_cell = env
        .fetcher
        .as_ref()
        .ok_or_else(|| QueryError::Execution("the plan has no cell fetcher".into()))?;
    let mut values: Vec<Option<Scalar>> = vec![None; total];
    let mut round = 0;
    loop {
        let mut pending = false;
        for (i, v) in values.iter_mut().enumerate() {
            if v.is_some() {
                continue;
            }
            match env.cell(&coord_of(i), &mut *fetcher_cell.borrow_mut())? {
                CellResult::Ready(x) => *v = Some(x),
                CellResult::Pending => pending = true,
            }
        }
        if !pending {
            break;
        }
        round += 1;
        if round > MAX_ROUNDS {
            return Err(QueryError::Execution(
                "calculations need more than 16 rounds of data fetching".into(),
            ));
        }
        fetcher_cell.borrow_mut().fetch_pending()?;
    }
    trace.cells = total;
    trace.rounds = round;
    let values: Vec<Scalar> = values.into_iter().map(|v| v.unwrap_or(Scalar::Empty)).collect();

    // Benchmark cubes: disclosure control (see `disclosure`).
    let mut suppressed = vec![false; total];
    if let Some(k) = access.min_cell_count {
        let filled: Vec<usize> = (0..total).filter(|&i| values[i] != Scalar::Empty).collect();
        let coords: Vec<Vec<u32>> = filled.iter().map(|&i| coord_of(i)).collect();
        let flags = crate::disclosure::suppressed(env, fetcher_cell, &coords, restricted, k)?;
        for (&i, f) in filled.iter().zip(flags) {
            suppressed[i] = f;
        }
        trace.restrictions.push(format!(
            "disclosure control: {} of {} cells suppressed (k = {k})",
            suppressed.iter().filter(|s| **s).count(),
            filled.len()
        ));
    }

    // NON EMPTY: drop tuples whose cells are all empty.
    let mut keep: Vec<Vec<bool>> = lengths.iter().map(|&n| vec![true; n]).collect();
    for (k, a) in plan.axes.iter().enumerate() {
        if !a.non_empty {
            continue;
        }
        let mut any = vec![false; lengths[k]];
        for (i, v) in values.iter().enumerate() {
            if *v != Scalar::Empty {
                let stride: usize = lengths[..k].iter().product();
                any[(i / stride) % lengths[k]] = true;
            }
        }
        keep[k] = any;
    }
    let kept_index: Vec<Vec<usize>> = keep
        .iter()
        .map(|flags| flags.iter().enumerate().filter(|(_, f)| **f).map(|(i, _)| i).collect())
        .collect();
    let new_lengths: Vec<usize> = kept_index.iter().map(Vec::len).collect();
    for (k, a) in plan.axes.iter().enumerate() {
        trace.axes.push(AxisTrace {
            name: a.name.clone(),
            expr: a.source.clone(),
            non_empty: a.non_empty,
            tuples: lengths[k],
            kept: new_lengths[k],
            first: kept_index[k]
                .iter()
                .take(5)
                .map(|&i| {
                    axis_tuples[k][i]
                        .iter()
                        .map(|m| space.member_unique_name(*m))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect(),
        });
    }

    // Axes for the writer.
    let mut axes = Vec::new();
    for (k, a) in plan.axes.iter().enumerate() {
        let tuples: Vec<Tuple> = kept_index[k].iter().map(|&i| axis_tuples[k][i].clone()).collect();
        axes.push(build_axis(env, &a.hierarchies, &tuples, &a.properties)?);
    }
    // Slicer: every hierarchy not on an axis, at its WHERE or default member.
    let slicer_h: Vec<HierIdx> = (0..space.hierarchy_count()).filter(|h| !used.contains(h)).collect();
    let slicer_tuple: Tuple = slicer_h.iter().map(|&h| MemberRef { h, id: base[h] }).collect();
    let slicer = build_axis(env, &slicer_h, &[slicer_tuple], &[])?;

    // Cells, re-numbered over the kept tuples.
    let cell_props = plan.cell_properties.clone();
    let mut cells = Vec::new();
    let new_total: usize = new_lengths.iter().product();
    for new_ord in 0..new_total {
        let mut rest = new_ord;
        let mut old = 0usize;
        let mut stride = 1usize;
        for k in 0..lengths.len() {
            let pos = rest % new_lengths[k];
            rest /= new_lengths[k];
            old += kept_index[k][pos] * stride;
            stride *= lengths[k];
        }
        let v = &values[old];
        if *v == Scalar::Empty {
            continue;
        }
        if suppressed[old] {
            cells.push(Cell {
                ordinal: new_ord as u64,
                value: CellValue::Suppressed,
                formatted: Some(access.marker.clone()),
                format_string: None,
            });
            continue;
        }
        let coord = coord_of(old);
        let measure = &space.measures[coord[MEASURES] as usize];
        let calc_wins = (1..coord.len()).any(|h| space.calc_member(MemberRef { h, id: coord[h] }).is_some())
            || env.cell_calcs.iter().any(|c| c.applies_to(&coord));
        let integral = !calc_wins
            && matches!(&measure.kind, QueryMeasureKind::Stored(s) if matches!(s.aggregator, Aggregator::Count | Aggregator::DistinctCount));
        let fmt_owned = env.cell_format(&coord, &mut *fetcher_cell.borrow_mut());
        let fmt = fmt_owned.as_deref();
        let (value, formatted) = match v {
            Scalar::Num(x) if integral && x.fract() == 0.0 && x.abs() < 9.0e15 => {
                let i = *x as i64;
                let cv = if i32::try_from(i).is_ok() {
                    CellValue::Int(i as i32)
                } else {
                    CellValue::Long(i)
                };
                (cv, format_value(*x, fmt, ctx.lang))
            }
            Scalar::Num(x) => (CellValue::Double(*x), format_value(*x, fmt, ctx.lang)),
            Scalar::Str(s) => (CellValue::Str(s.clone()), s.clone()),
            Scalar::Bool(b) => (CellValue::Bool(*b), b.to_string()),
            Scalar::Empty => unreachable!("empty cells are skipped"),
        };
        cells.push(Cell {
            ordinal: new_ord as u64,
            value,
            formatted: Some(formatted),
            format_string: fmt.map(str::to_string),
        });
    }
    trace.statements.extend(fetcher_cell.borrow().executed.iter().cloned());
    for n in &env.nested {
        trace.statements.extend(n.borrow().executed.iter().cloned());
    }
    crate::observe::statements(fetcher_cell.borrow().executed.iter());
    for n in &env.nested {
        crate::observe::statements(n.borrow().executed.iter());
    }
    tracing::debug!(
        statements = fetcher_cell.borrow().executed.len(),
        cells = cells.len(),
        "MDX answered"
    );
    Ok(CellSet {
        cube_name: cube.name.clone(),
        last_data_update: ctx.last_data_update.to_string(),
        last_schema_update: ctx.last_schema_update.to_string(),
        axes,
        slicer,
        cell_properties: cell_props,
        language: ctx.lcid,
        cells,
    })
}

/// Record that `h` is limited to `ids` (nested limits intersect).
fn note_restriction(restricted: &mut HashMap<HierIdx, Vec<u32>>, h: HierIdx, ids: &[u32]) {
    match restricted.get_mut(&h) {
        Some(prev) => prev.retain(|x| ids.contains(x)),
        None => {
            restricted.insert(h, ids.to_vec());
        }
    }
}

/// Restrict hierarchy `h` to `ids`: SQL filters on those members, and only they, their
/// ancestors and their descendants stay visible to set functions.
fn restrict(env: &mut Env, h: HierIdx, ids: Vec<u32>) {
    let hm = env.space.hier(h).members.clone();
    // Calculated members restrict nothing in the data.
    let ids: Vec<u32> = ids.into_iter().filter(|&id| id < crate::space::CALC_BASE).collect();
    if ids.is_empty() {
        return;
    }
    let mut visible: HashSet<u32> = HashSet::new();
    for &id in &ids {
        let mut p = Some(id);
        while let Some(x) = p {
            visible.insert(x);
            p = hm.get(x).parent;
        }
        let mut stack = vec![id];
        while let Some(x) = stack.pop() {
            visible.insert(x);
            stack.extend(&hm.get(x).children);
        }
    }
    let merged = match env.allowed[h].take() {
        Some(prev) => prev.intersection(&visible).copied().collect(),
        None => visible,
    };
    env.allowed[h] = Some(merged);
    if let Some(f) = env.fetcher.as_ref() {
        f.borrow_mut().set_restriction(h, ids);
    }
}

const INTRINSIC: &[&str] = &[
    "PARENT_UNIQUE_NAME",
    "HIERARCHY_UNIQUE_NAME",
    "MEMBER_TYPE",
    "MEMBER_NAME",
    "MEMBER_KEY",
    "KEY",
    "CHILDREN_CARDINALITY",
    "PARENT_LEVEL",
    "PARENT_COUNT",
    "MEMBER_ORDINAL",
    "LEVEL_NUMBER",
    "DESCRIPTION",
];
const STANDARD: &[&str] = &[
    "MEMBER_UNIQUE_NAME",
    "MEMBER_CAPTION",
    "LEVEL_UNIQUE_NAME",
    "DISPLAY_INFO",
];

/// A requested property: intrinsic (for every hierarchy) or a level's member property.
enum Prop {
    Intrinsic(String),
    User {
        h: HierIdx,
        level: u16,
        index: usize,
        name: String,
    },
}

fn build_axis(env: &Env, hiers: &[HierIdx], tuples: &[Tuple], requested: &[ObjectName]) -> Result<Axis> {
    let sp = env.space;
    // Which properties, per hierarchy.
    let mut props: Vec<Prop> = Vec::new();
    for r in requested {
        let last = r.segments.last().map(|s| s.text()).unwrap_or_default();
        let upper = last.to_ascii_uppercase();
        if r.segments.len() == 1 {
            if STANDARD.contains(&upper.as_str()) {
                continue;
            }
            if INTRINSIC.contains(&upper.as_str()) {
                props.push(Prop::Intrinsic(upper));
                continue;
            }
        }
        // [Dim].[Hier].[Level].[Prop] (or Excel's [H].[H].[L]MEMBER_CAPTION form, reduced by the parser).
        let mut found = false;
        if r.segments.len() >= 2 {
            let level_name = ObjectName {
                segments: r.segments[..r.segments.len() - 1].to_vec(),
                span: r.span,
            };
            if let Ok(crate::space::Object::Level { h, number }) = sp.resolve(&level_name) {
                if INTRINSIC.contains(&upper.as_str()) || STANDARD.contains(&upper.as_str()) {
                    if INTRINSIC.contains(&upper.as_str()) {
                        props.push(Prop::Intrinsic(upper.clone()));
                    }
                    found = true;
                } else if number > 0 {
                    let l = &sp.hier(h).hierarchy.levels[number as usize - 1];
                    if let Some(index) = l.properties.iter().position(|p| p.name.eq_ignore_ascii_case(&last)) {
                        props.push(Prop::User {
                            h,
                            level: number,
                            index,
                            name: l.properties[index].name.clone(),
                        });
                        found = true;
                    }
                }
            }
        }
        if !found {
            return Err(QueryError::Name(format!(
                "unknown DIMENSION PROPERTIES item {} (line {}, column {})",
                print_name(r),
                r.span.line,
                r.span.column
            )));
        }
    }
    // Declare per hierarchy in axis order.
    let mut declared: Vec<AxisProperty> = Vec::new();
    let mut per_h: Vec<Vec<usize>> = vec![Vec::new(); hiers.len()];
    for (hi, &h) in hiers.iter().enumerate() {
        let hname = sp.hierarchy_unique_name(h);
        for (pi, p) in props.iter().enumerate() {
            let ap = match p {
                Prop::Intrinsic(n) => AxisProperty {
                    hierarchy: hname.clone(),
                    name: format!("{hname}.[{n}]"),
                    element: n.clone(),
                    xsd_type: match n.as_str() {
                        "MEMBER_TYPE"
                        | "CHILDREN_CARDINALITY"
                        | "PARENT_LEVEL"
                        | "PARENT_COUNT"
                        | "MEMBER_ORDINAL"
                        | "LEVEL_NUMBER" => "xsd:int".into(),
                        _ => "xsd:string".into(),
                    },
                },
                Prop::User {
                    h: ph,
                    level,
                    index,
                    name,
                } if *ph == h => {
                    let l = &sp.hier(h).hierarchy.levels[*level as usize - 1];
                    let _ = index;
                    AxisProperty {
                        hierarchy: hname.clone(),
                        name: format!("{}.[{}]", l.unique_name, name),
                        element: name.clone(),
                        xsd_type: "xsd:string".into(),
                    }
                }
                Prop::User { .. } => continue,
            };
            if !declared.iter().any(|d| d.name == ap.name) {
                declared.push(ap);
                per_h[hi].push(pi);
            }
        }
    }
    let mut out_tuples = Vec::with_capacity(tuples.len());
    for (ti, t) in tuples.iter().enumerate() {
        let mut members = Vec::with_capacity(t.len());
        for (pos, m) in t.iter().enumerate() {
            let next = tuples.get(ti + 1).map(|n| n[pos]);
            let prev = if ti > 0 { Some(tuples[ti - 1][pos]) } else { None };
            members.push(axis_member(env, *m, next, prev, &per_h[pos], &props));
        }
        out_tuples.push(members);
    }
    Ok(Axis {
        hierarchies: hiers.iter().map(|&h| sp.hierarchy_unique_name(h)).collect(),
        properties: declared,
        tuples: out_tuples,
    })
}

fn axis_member(
    env: &Env,
    m: MemberRef,
    next: Option<MemberRef>,
    prev: Option<MemberRef>,
    props: &[usize],
    all_props: &[Prop],
) -> AxisMember {
    let sp = env.space;
    if m.h == MEASURES {
        let q = &sp.measures[m.id as usize];
        let values = props
            .iter()
            .map(|&pi| match &all_props[pi] {
                Prop::Intrinsic(n) => match n.as_str() {
                    "HIERARCHY_UNIQUE_NAME" => Some("[Measures]".to_string()),
                    "MEMBER_TYPE" => Some("3".into()),
                    "MEMBER_NAME" => Some(q.name.clone()),
                    "CHILDREN_CARDINALITY" | "LEVEL_NUMBER" => Some("0".into()),
                    _ => None,
                },
                Prop::User { .. } => None,
            })
            .collect();
        let same_parent = prev.is_some_and(|p| p.h == MEASURES);
        return AxisMember {
            hierarchy: "[Measures]".into(),
            unique_name: q.unique_name.clone(),
            caption: q.caption.clone(),
            level_unique_name: "[Measures].[MeasuresLevel]".into(),
            level_number: 0,
            display_info: cellset::display_info(0, false, same_parent),
            properties: values,
        };
    }
    if sp.is_visual(m) {
        // The real member's row with the pattern's caption, typed as a calculated member.
        let mut am = axis_member(env, sp.real(m), next, prev, props, all_props);
        am.caption = sp.member_caption(m);
        for (v, &pi) in am.properties.iter_mut().zip(props) {
            if matches!(&all_props[pi], Prop::Intrinsic(n) if n == "MEMBER_TYPE") {
                *v = Some("4".into());
            }
        }
        return am;
    }
    let hc = sp.hier(m.h);
    let hm = &hc.members;
    if let Some(c) = sp.calc_member(m) {
        let level_unique = match c.level {
            0 => format!("{}.[(All)]", hc.hierarchy.unique_name),
            n => hc
                .hierarchy
                .levels
                .get(n as usize - 1)
                .or(hc.hierarchy.levels.last())
                .map(|l| l.unique_name.clone())
                .unwrap_or_default(),
        };
        let same_parent = prev.is_some_and(|p| p.h == m.h && sp.member_parent(p).map(|x| x.id) == c.parent);
        let values = props
            .iter()
            .map(|&pi| match &all_props[pi] {
                Prop::Intrinsic(n) => match n.as_str() {
                    "PARENT_UNIQUE_NAME" => c.parent.map(|p| sp.member_unique_name(MemberRef { h: m.h, id: p })),
                    "HIERARCHY_UNIQUE_NAME" => Some(hc.hierarchy.unique_name.clone()),
                    "MEMBER_TYPE" => Some("4".into()),
                    "MEMBER_NAME" => Some(c.name.clone()),
                    "CHILDREN_CARDINALITY" => Some("0".into()),
                    "PARENT_LEVEL" => c
                        .parent
                        .map(|p| sp.member_level(MemberRef { h: m.h, id: p }).to_string()),
                    "PARENT_COUNT" => Some(if c.parent.is_some() { "1".into() } else { "0".into() }),
                    "LEVEL_NUMBER" => Some((c.level - sp.first_level(m.h)).to_string()),
                    _ => None,
                },
                Prop::User { .. } => None,
            })
            .collect();
        return AxisMember {
            hierarchy: hc.hierarchy.unique_name.clone(),
            unique_name: c.unique_name.clone(),
            caption: c.name.clone(),
            level_unique_name: level_unique,
            level_number: (c.level - sp.first_level(m.h)) as u32,
            display_info: cellset::display_info(0, false, same_parent),
            properties: values,
        };
    }
    let mem = hm.get(m.id);
    let level_unique = if mem.level == 0 {
        format!("{}.[(All)]", hc.hierarchy.unique_name)
    } else if hc.hierarchy.is_parent_child() {
        hc.hierarchy.levels[0].unique_name.clone()
    } else {
        hc.hierarchy.levels[mem.level as usize - 1].unique_name.clone()
    };
    let drilled = next.is_some_and(|n| n.h == m.h && sp.member_parent(n) == Some(m));
    // The parent MDX sees (none for top-level members of a hierarchy without All), and level
    // numbers counted from the first level MDX sees.
    let parent = sp.member_parent(m).map(|p| p.id);
    let lnum = mem.level - sp.first_level(m.h);
    let same_parent =
        prev.is_some_and(|p| p.h == m.h && sp.member_parent(p).map(|x| x.id) == parent && parent.is_some());
    let values = props
        .iter()
        .map(|&pi| match &all_props[pi] {
            Prop::Intrinsic(n) => match n.as_str() {
                "PARENT_UNIQUE_NAME" => parent.map(|p| hm.get(p).unique_name.clone()),
                "HIERARCHY_UNIQUE_NAME" => Some(hc.hierarchy.unique_name.clone()),
                "MEMBER_TYPE" => Some(if mem.level == 0 { "2".into() } else { "1".into() }),
                "MEMBER_NAME" => Some(mem.name.clone()),
                "MEMBER_KEY" | "KEY" => Some(mem.key.to_string()).filter(|s| !s.is_empty()),
                "CHILDREN_CARDINALITY" => Some(mem.children.len().to_string()),
                "PARENT_LEVEL" => parent.map(|_| (lnum - 1).to_string()),
                "PARENT_COUNT" => Some(if parent.is_some() { "1".into() } else { "0".into() }),
                "MEMBER_ORDINAL" => Some(mem.ordinal.to_string()),
                "LEVEL_NUMBER" => Some(lnum.to_string()),
                _ => None,
            },
            Prop::User { level, index, .. } if *level == mem.level => match mem.properties.get(*index) {
                Some(PropValue::Int(i)) => Some(i.to_string()),
                Some(PropValue::Double(d)) => Some(d.to_string()),
                Some(PropValue::Str(s)) => Some(s.clone()),
                _ => None,
            },
            Prop::User { .. } => None,
        })
        .collect();
    AxisMember {
        hierarchy: hc.hierarchy.unique_name.clone(),
        unique_name: mem.unique_name.clone(),
        caption: mem.caption(sp.lang).to_string(),
        level_unique_name: level_unique,
        level_number: lnum as u32,
        display_info: cellset::display_info(mem.children.len(), drilled, same_parent),
        properties: values,
    }
}

/// The named set `[Kommune].[Geografi].[Sammenligningsgruppe]`: the kommuner of the user's
/// comparison group (docs/security.md) that exist in this cube for the user — all of them in a
/// benchmark cube, only the user's own in an individual-level cube.
fn comparison_group(env: &mut Env, ctx: &QueryContext) {
    let space = env.space;
    let Some(home) = ctx.access.home_kommune else { return };
    let Some(h) = (1..space.hierarchy_count()).find(|&h| {
        space
            .hier(h)
            .hierarchy
            .unique_name
            .eq_ignore_ascii_case("[Kommune].[Geografi]")
    }) else {
        return;
    };
    let hc = space.hier(h);
    let Some(level) = hc
        .hierarchy
        .levels
        .iter()
        .position(|l| l.name.eq_ignore_ascii_case("Kommune"))
        .map(|i| i as u16 + 1)
    else {
        return;
    };
    let groups: Vec<(String, Vec<u16>)> = ctx
        .catalog
        .security
        .comparison_groups
        .iter()
        .map(|g| (g.name.clone(), g.kommuner.clone()))
        .collect();
    let Ok(code) = u16::try_from(home) else { return };
    let tuples: Vec<Tuple> = datakube_auth::kommuner::comparison_group(datakube_auth::Kommunekode(code), &groups)
        .into_iter()
        .filter_map(|k| hc.by_key(level, &k.0.to_string()))
        .map(|id| vec![MemberRef { h, id }])
        .collect();
    env.named_sets
        .insert("kommune.geografi.sammenligningsgruppe".into(), tuples.clone());
    env.named_sets.insert("sammenligningsgruppe".into(), tuples);
}
