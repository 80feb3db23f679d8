//! Evaluation of MDX expressions: sets over the member trees, scalars per cell.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use datakube_mdx::ast::{BinaryOp, Expr, IsTarget, Literal, UnaryOp};

use crate::cellcalc::CellCalc;
use crate::cells::CellFetcher;
use crate::error::{QueryError, Result};
use crate::space::{HierIdx, MEASURES, MemberRef, Object, QueryMeasureKind, Space, Tuple, VISUAL_TOTAL_SOLVE_ORDER};

/// A value an expression can have.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Member(MemberRef),
    Tuple(Tuple),
    Set(Vec<Tuple>),
    Level { h: HierIdx, number: u16 },
    Hierarchy(HierIdx),
    Scalar(Scalar),
}

/// A cell or expression value. `Empty` is MDX's empty (NULL).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Empty,
    Num(f64),
    Str(String),
    Bool(bool),
}

impl Scalar {
    pub fn as_num(&self) -> Option<f64> {
        match self {
            Scalar::Num(n) => Some(*n),
            Scalar::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Scalar::Str(s) => s.trim().parse().ok(),
            Scalar::Empty => None,
        }
    }
    fn truthy(&self) -> bool {
        match self {
            Scalar::Empty => false,
            Scalar::Num(n) => *n != 0.0,
            Scalar::Bool(b) => *b,
            Scalar::Str(s) => !s.is_empty() && !s.eq_ignore_ascii_case("false"),
        }
    }
}

/// Where stored-measure values come from; `None` from [`CellSource::stored`] means "not
/// fetched yet" (the caller collects the request and evaluates again after a batch).
pub trait CellSource {
    fn stored(&mut self, measure: u32, coord: &[u32]) -> Option<Scalar>;
}

/// Result of evaluating a cell: a value, or pending stored values.
pub enum CellResult {
    Ready(Scalar),
    Pending,
}

/// What set evaluation may see beyond the space: named sets, and members a subselect allows.
pub struct Env<'s, 'a> {
    pub space: &'s Space<'a>,
    pub named_sets: HashMap<String, Vec<Tuple>>,
    /// Per hierarchy, the members visible under the subselects (None = all).
    pub allowed: Vec<Option<HashSet<u32>>>,
    /// Cell values for set functions that need them (Filter, TopCount, Order, NonEmpty …).
    pub fetcher: Option<RefCell<CellFetcher<'s, 'a>>>,
    /// Fetchers for value-based set functions evaluated while `fetcher` is busy computing a
    /// cell (Filter or TopCount inside a calculated member), one per nesting depth.
    pub nested: Vec<RefCell<CellFetcher<'s, 'a>>>,
    /// Sets named inline with `AS` during evaluation, and the current tuple of each while
    /// `Generate` iterates it.
    aliases: RefCell<HashMap<String, Vec<Tuple>>>,
    current: RefCell<HashMap<String, Tuple>>,
    /// `WITH CELL CALCULATION`s, in definition order.
    pub cell_calcs: Vec<CellCalc>,
}

const MAX_CALC_DEPTH: usize = 64;

/// What computes a cell (see [`Env::cell_calculations`]).
enum Computes<'e> {
    /// A calculated measure's or member's formula.
    Formula(&'e Expr),
    /// A visual total of `VisualTotals`.
    Visual(MemberRef),
    /// Cell calculation `i` of [`Env::cell_calcs`].
    Cells(usize),
}

struct CellCalcRef<'e> {
    solve_order: i64,
    /// Among equal solve orders: 0 cell calculation, 1 measure, 2 member, 3 visual total.
    kind: u8,
    tie: usize,
    what: Computes<'e>,
}

impl CellCalcRef<'_> {
    fn rank(&self) -> (std::cmp::Reverse<i64>, u8, usize) {
        (std::cmp::Reverse(self.solve_order), self.kind, self.tie)
    }
}

fn unsupported(what: &str, e: &Expr) -> QueryError {
    let sp = e.span();
    QueryError::Unsupported(format!(
        "{what} (line {}, column {}) is not supported yet",
        sp.line, sp.column
    ))
}

fn lc(s: &str) -> String {
    s.to_ascii_lowercase()
}

impl<'s, 'a> Env<'s, 'a> {
    pub fn new(space: &'s Space<'a>) -> Self {
        Env {
            space,
            fetcher: None,
            nested: Vec::new(),
            aliases: RefCell::new(HashMap::new()),
            current: RefCell::new(HashMap::new()),
            cell_calcs: Vec::new(),
            named_sets: HashMap::new(),
            allowed: vec![None; space.hierarchy_count()],
        }
    }

    pub(crate) fn visible(&self, m: MemberRef) -> bool {
        if self.space.is_calc(m) {
            return true;
        }
        match &self.allowed[m.h] {
            None => true,
            Some(set) => set.contains(&m.id),
        }
    }

    fn children(&self, m: MemberRef) -> Vec<MemberRef> {
        let m = self.space.real(m);
        if m.h == MEASURES || self.space.is_calc(m) {
            return Vec::new();
        }
        self.space
            .hier(m.h)
            .members
            .get(m.id)
            .children
            .iter()
            .map(|&id| MemberRef { h: m.h, id })
            .filter(|c| self.visible(*c))
            .collect()
    }

    fn level_of(&self, m: MemberRef) -> u16 {
        self.space.member_level(m)
    }

    fn parent(&self, m: MemberRef) -> Option<MemberRef> {
        self.space.member_parent(m)
    }

    fn hierarchy_members(&self, h: HierIdx, all_measures: bool) -> Vec<Tuple> {
        if h == MEASURES {
            return self
                .space
                .measures
                .iter()
                .enumerate()
                .filter(|(i, m)| m.visible && (all_measures || *i < self.space.cube.measures.len()))
                .map(|(i, _)| vec![MemberRef { h, id: i as u32 }])
                .collect();
        }
        let hm = &self.space.hier(h).members;
        // Without an All member, member 0 is an internal root MDX never sees.
        let first = if hm.has_all { 0 } else { 1 };
        let mut ids: Vec<u32> = (first..hm.members.len() as u32).collect();
        ids.sort_by_key(|&id| hm.get(id).ordinal);
        if all_measures {
            // AllMembers: the calculated members too.
            ids.extend(self.space.calc_ids(h));
        }
        ids.into_iter()
            .map(|id| MemberRef { h, id })
            .filter(|m| self.visible(*m))
            .map(|m| vec![m])
            .collect()
    }

    fn level_members(&self, h: HierIdx, number: u16) -> Vec<Tuple> {
        if h == MEASURES {
            return self.hierarchy_members(h, false);
        }
        self.space
            .hier(h)
            .members
            .level_members(number as usize)
            .iter()
            .map(|&id| MemberRef { h, id })
            .filter(|m| self.visible(*m))
            .map(|m| vec![m])
            .collect()
    }

    /// Evaluate a name or expression to a value (member, set, level, ...), without cells.
    pub fn eval(&self, e: &Expr, coord: Option<&[u32]>) -> Result<Val> {
        match e {
            Expr::Identifier(name) => {
                if name.segments.len() > 1 {
                    // Named sets with a qualified name (`[Kommune].[Geografi].[Sammenligningsgruppe]`).
                    let key = lc(&name.segments.iter().map(|s| s.text()).collect::<Vec<_>>().join("."));
                    if let Some(set) = self.named_sets.get(&key) {
                        return Ok(Val::Set(set.clone()));
                    }
                }
                if name.segments.len() == 1 {
                    let key = lc(&name.segments[0].text());
                    if let Some(set) = self.named_sets.get(&key) {
                        return Ok(Val::Set(set.clone()));
                    }
                    if let Some(set) = self.aliases.borrow().get(&key) {
                        return Ok(Val::Set(set.clone()));
                    }
                }
                let resolved = match self.space.resolve(name) {
                    Err(err) if self.space.ignore_missing_members && self.names_missing_member(name) => {
                        tracing::debug!(%err, "missing member ignored");
                        return Ok(Val::Set(Vec::new()));
                    }
                    other => other?,
                };
                Ok(match resolved {
                    Object::Member(m) => Val::Member(m),
                    Object::Level { h, number } => Val::Level { h, number },
                    Object::Hierarchy(h) => Val::Hierarchy(h),
                    Object::MeasuresHierarchy => Val::Hierarchy(MEASURES),
                })
            }
            Expr::Nested { expr, .. } => self.eval(expr, coord),
            Expr::Literal { value, .. } => Ok(Val::Scalar(match value {
                Literal::Number(n) => Scalar::Num(n.parse().map_err(|_| QueryError::Type(format!("bad number {n}")))?),
                Literal::String(s) => Scalar::Str(s.clone()),
                Literal::Null => Scalar::Empty,
            })),
            Expr::Tuple { items, .. } => {
                let mut t = Vec::new();
                for it in items {
                    match self.eval(it, coord)? {
                        Val::Member(m) => t.push(m),
                        Val::Tuple(tt) => t.extend(tt),
                        Val::Hierarchy(h) => t.push(self.default_member(h)),
                        // A tuple of sets, as subselect axes are written: ({a,b},{c}).
                        Val::Set(_) => return Ok(Val::Set(self.eval_set(e, coord)?)),
                        other => {
                            return Err(QueryError::Type(format!(
                                "a tuple item must be a member, got {}",
                                describe(&other)
                            )));
                        }
                    }
                }
                check_distinct_hierarchies(&t, self.space)?;
                Ok(Val::Tuple(t))
            }
            Expr::Set { .. }
            | Expr::Function { .. }
            | Expr::Binary {
                op: BinaryOp::Mul | BinaryOp::Add | BinaryOp::Sub,
                ..
            }
            | Expr::Range { .. }
            | Expr::Alias { .. } => match e {
                Expr::Function { name, args, .. } if self.is_member_function(&name.value) => {
                    self.member_function(&name.value, args, coord, e)
                }
                _ => Ok(Val::Set(self.eval_set(e, coord)?)),
            },
            Expr::Property { object, name, .. } => self.property(object, &name.value, coord, e),
            // Numbers computed from literals (Lead(-1), Lag(2 * 3)).
            Expr::Unary {
                op: UnaryOp::Minus | UnaryOp::Plus,
                ..
            }
            | Expr::Binary {
                op: BinaryOp::Div | BinaryOp::Pow,
                ..
            } if const_number(e).is_some() => Ok(Val::Scalar(Scalar::Num(const_number(e).unwrap_or_default()))),
            Expr::Method { object, name, args, .. } => {
                let mut all = vec![(**object).clone()];
                all.extend(args.iter().cloned());
                if self.is_member_function(&name.value) {
                    self.member_function(&name.value, &all, coord, e)
                } else {
                    Ok(Val::Set(self.set_function(&name.value, &all, coord, e)?))
                }
            }
            _ => Err(unsupported("this expression in a member or set context", e)),
        }
    }

    /// Whether an unresolvable name is a member reference under a hierarchy that exists
    /// (only those are ignored under MdxMissingMemberMode=Ignore; an unknown dimension,
    /// hierarchy or measure stays an error).
    fn names_missing_member(&self, name: &datakube_mdx::ast::ObjectName) -> bool {
        if name.segments.len() < 2 || name.segments[0].text().eq_ignore_ascii_case("Measures") {
            return false;
        }
        (1..name.segments.len()).any(|k| {
            let prefix = datakube_mdx::ast::ObjectName {
                segments: name.segments[..k].to_vec(),
                span: name.span,
            };
            matches!(
                self.space.resolve(&prefix),
                Ok(Object::Hierarchy(_) | Object::Level { .. } | Object::Member(_))
            )
        })
    }

    fn default_member(&self, h: HierIdx) -> MemberRef {
        if h == MEASURES {
            MemberRef {
                h,
                id: self.space.default_measure,
            }
        } else {
            MemberRef {
                h,
                id: self.space.hier(h).default,
            }
        }
    }

    fn is_member_function(&self, name: &str) -> bool {
        matches!(
            lc(name).as_str(),
            "parent"
                | "firstchild"
                | "lastchild"
                | "prevmember"
                | "nextmember"
                | "lag"
                | "lead"
                | "currentmember"
                | "defaultmember"
                | "strtomember"
                | "ancestor"
                | "cousin"
                | "firstsibling"
                | "lastsibling"
                | "openingperiod"
                | "closingperiod"
                | "parallelperiod"
                | "item"
                | "dimensions"
                | "levels"
                | "strtotuple"
                | "properties"
        )
    }

    /// The time hierarchy of the cube (first hierarchy of a time dimension), for Ytd, Mtd,
    /// OpeningPeriod … without an explicit member.
    fn time_hierarchy(&self) -> Result<HierIdx> {
        (1..self.space.hierarchy_count())
            .find(|&h| self.space.hier(h).dim.is_time())
            .ok_or_else(|| QueryError::Type(format!("cube [{}] has no time dimension", self.space.cube.name)))
    }

    /// The optional level argument (first) of the period functions: its hierarchy and level,
    /// or the time hierarchy and no level when it is left out.
    fn period_level_arg(&self, args: &[Expr], coord: Option<&[u32]>, fname: &str) -> Result<(HierIdx, Option<u16>)> {
        match args.first().filter(|a| !matches!(a, Expr::Omitted { .. })) {
            Some(a) => match self.eval(a, coord)? {
                Val::Level { h, number } => Ok((h, Some(number))),
                other => Err(QueryError::Type(format!(
                    "{fname}: expected a level, got {}",
                    describe(&other)
                ))),
            },
            None => Ok((self.time_hierarchy()?, None)),
        }
    }

    fn current_of(&self, h: HierIdx, coord: Option<&[u32]>) -> MemberRef {
        match coord {
            Some(c) => MemberRef { h, id: c[h] },
            None => self.default_member(h),
        }
    }

    /// The ancestor of `m` on level `number` (itself when it is on that level).
    fn ancestor_at(&self, m: MemberRef, number: u16) -> Option<MemberRef> {
        let mut x = m;
        while self.level_of(x) > number {
            x = self.parent(x)?;
        }
        (self.level_of(x) == number).then_some(x)
    }

    /// Whether `a` is `b` or one of its ancestors.
    fn is_ancestor_or_self(&self, a: MemberRef, b: MemberRef) -> bool {
        let (a, b) = (self.space.real(a), self.space.real(b));
        if a.h != b.h {
            return false;
        }
        let mut x = Some(b);
        while let Some(y) = x {
            if y == a {
                return true;
            }
            x = self.parent(y);
        }
        false
    }

    /// Position of `m` among its parent's children.
    fn child_position(&self, m: MemberRef) -> Option<usize> {
        let m = self.space.real(m);
        let p = self.parent(m)?;
        self.space
            .hier(m.h)
            .members
            .get(p.id)
            .children
            .iter()
            .position(|&c| c == m.id)
    }

    /// The member of `ancestor`'s subtree in the same relative position as `m` has under its
    /// own ancestor on `ancestor`'s level (SSAS Cousin).
    fn cousin(&self, m: MemberRef, ancestor: MemberRef) -> Option<MemberRef> {
        let ancestor = self.space.real(ancestor);
        if ancestor.h == MEASURES || self.space.is_calc(ancestor) {
            return None;
        }
        let target = self.level_of(ancestor);
        let mut path = Vec::new();
        let mut x = m;
        while self.level_of(x) > target {
            path.push(self.child_position(x)?);
            x = self.parent(x)?;
        }
        let mut y = ancestor;
        for &pos in path.iter().rev() {
            let kids = &self.space.hier(y.h).members.get(y.id).children;
            y = MemberRef {
                h: y.h,
                id: *kids.get(pos)?,
            };
        }
        Some(y)
    }

    /// A level argument: a level, or a number of levels up from `from` (Ancestor(m, 1)).
    fn level_arg(&self, a: &Expr, coord: Option<&[u32]>, from: MemberRef, fname: &str) -> Result<(u16, bool)> {
        match self.eval(a, coord)? {
            Val::Level { h, number } if h == from.h => Ok((number, true)),
            Val::Level { .. } => Err(QueryError::Type(format!(
                "{fname}: the level is not of the member's hierarchy"
            ))),
            Val::Scalar(s) => {
                let d = s.as_num().unwrap_or(0.0).max(0.0) as u16;
                Ok((self.level_of(from).saturating_sub(d), false))
            }
            other => Err(QueryError::Type(format!(
                "{fname}: expected a level or a distance, got {}",
                describe(&other)
            ))),
        }
    }

    fn number_arg(&self, args: &[Expr], i: usize, coord: Option<&[u32]>, default: f64) -> Result<f64> {
        match args.get(i).filter(|a| !matches!(a, Expr::Omitted { .. })) {
            None => Ok(default),
            Some(a) => match self.eval(a, coord)? {
                Val::Scalar(s) => Ok(s.as_num().unwrap_or(default)),
                other => Err(QueryError::Type(format!("expected a number, got {}", describe(&other)))),
            },
        }
    }

    /// Functions of the `member_function` family that do not start from a member.
    fn special_member_function(&self, n: &str, args: &[Expr], coord: Option<&[u32]>, e: &Expr) -> Result<Option<Val>> {
        let nothing = Val::Set(Vec::new());
        Ok(Some(match n {
            "dimensions" => {
                let a = args.first().ok_or_else(|| unsupported("Dimensions()", e))?;
                match self.eval(a, coord)? {
                    Val::Scalar(Scalar::Str(name)) => {
                        let name_expr = datakube_mdx::parse_expression(&format!("[{}]", name.replace(']', "]]")))
                            .map_err(|err| QueryError::Syntax(err.to_string()))?;
                        match self.eval(&name_expr, coord)? {
                            Val::Member(m) => Val::Hierarchy(m.h),
                            other => other,
                        }
                    }
                    Val::Scalar(s) => {
                        let i = s.as_num().unwrap_or(-1.0);
                        if i < 0.0 || i as usize >= self.space.hierarchy_count() {
                            return Err(QueryError::Type(format!("Dimensions({i}): no such dimension")));
                        }
                        Val::Hierarchy(i as usize)
                    }
                    other => {
                        return Err(QueryError::Type(format!(
                            "Dimensions: expected a number or name, got {}",
                            describe(&other)
                        )));
                    }
                }
            }
            "levels" => {
                let h = match args.first().map(|a| self.eval(a, coord)).transpose()? {
                    Some(Val::Hierarchy(h)) => h,
                    Some(Val::Member(m)) => m.h,
                    _ => return Err(QueryError::Type("Levels: expected a hierarchy".into())),
                };
                let a = args.get(1).ok_or_else(|| unsupported("Levels()", e))?;
                match self.eval(a, coord)? {
                    Val::Scalar(Scalar::Str(name)) if h != MEASURES => {
                        let l = self
                            .space
                            .hier(h)
                            .hierarchy
                            .levels
                            .iter()
                            .find(|l| l.name.eq_ignore_ascii_case(&name));
                        match l {
                            Some(l) => Val::Level {
                                h,
                                number: l.number as u16,
                            },
                            None => return Err(QueryError::Name(format!("Levels(\"{name}\"): no such level"))),
                        }
                    }
                    Val::Scalar(s) => {
                        let i = s.as_num().unwrap_or(-1.0);
                        let root = if h == MEASURES { 0 } else { self.space.first_level(h) };
                        let number = i as i64 + root as i64;
                        let max = if h == MEASURES {
                            0
                        } else {
                            self.space.hier(h).members.levels.len() as i64 - 1
                        };
                        if i < 0.0 || number > max {
                            return Err(QueryError::Type(format!("Levels({i}): no such level")));
                        }
                        Val::Level {
                            h,
                            number: number as u16,
                        }
                    }
                    other => {
                        return Err(QueryError::Type(format!(
                            "Levels: expected a number or name, got {}",
                            describe(&other)
                        )));
                    }
                }
            }
            "item" => {
                let target = args.first().ok_or_else(|| unsupported("Item()", e))?;
                let idx = self.number_arg(args, 1, coord, 0.0)?;
                match self.eval(target, coord)? {
                    Val::Set(s) => match s.get(idx.max(0.0) as usize).filter(|_| idx >= 0.0) {
                        Some(t) if t.len() == 1 => Val::Member(t[0]),
                        Some(t) => Val::Tuple(t.clone()),
                        None => nothing,
                    },
                    Val::Tuple(t) => match t.get(idx.max(0.0) as usize).filter(|_| idx >= 0.0) {
                        Some(m) => Val::Member(*m),
                        None => nothing,
                    },
                    Val::Member(m) if idx == 0.0 => Val::Member(m),
                    _ => nothing,
                }
            }
            "properties" => {
                let m = self.arg_member(args, 0, coord, "Properties")?;
                let pname = match args.get(1).map(|a| self.eval(a, coord)).transpose()? {
                    Some(Val::Scalar(Scalar::Str(s))) => s,
                    _ => return Err(QueryError::Type("Properties needs a property name".into())),
                };
                let typed = Self::flag(args, "TYPED");
                Val::Scalar(self.member_property(m, &pname, typed)?)
            }
            "strtotuple" => {
                let s = match args.first().map(|a| self.eval(a, coord)).transpose()? {
                    Some(Val::Scalar(Scalar::Str(s))) => s,
                    _ => return Err(QueryError::Type("StrToTuple needs a string".into())),
                };
                let parsed = datakube_mdx::parse_expression(&s).map_err(|err| QueryError::Syntax(err.to_string()))?;
                self.eval(&parsed, coord)?
            }
            "openingperiod" | "closingperiod" => {
                let (h, level) = self.period_level_arg(args, coord, n)?;
                let m = match args.get(1) {
                    Some(_) => self.arg_member(args, 1, coord, n)?,
                    None => self.current_of(h, coord),
                };
                let level = level.unwrap_or(self.level_of(m) + 1);
                if level < self.level_of(m) {
                    return Ok(Some(nothing));
                }
                let mut x = m;
                while self.level_of(x) < level {
                    let kids = self.children(x);
                    let next = if n == "openingperiod" {
                        kids.first()
                    } else {
                        kids.last()
                    };
                    match next {
                        Some(&c) => x = c,
                        None => return Ok(Some(nothing)),
                    }
                }
                Val::Member(x)
            }
            "parallelperiod" => {
                let (h, level) = self.period_level_arg(args, coord, "ParallelPeriod")?;
                let lag = self.number_arg(args, 1, coord, 1.0)? as i64;
                let m = match args.get(2) {
                    Some(_) => self.arg_member(args, 2, coord, n)?,
                    None => self.current_of(h, coord),
                };
                let level = level.unwrap_or(self.level_of(m).saturating_sub(1));
                let Some(anc) = self.ancestor_at(m, level) else {
                    return Ok(Some(nothing));
                };
                let Some(other) = self.lag_member(anc, lag) else {
                    return Ok(Some(nothing));
                };
                match self.cousin(m, other) {
                    Some(c) => Val::Member(c),
                    None => nothing,
                }
            }
            _ => return Ok(None),
        }))
    }

    /// The member `delta` positions before `m` on its level (Lag); negative goes forward.
    fn lag_member(&self, m: MemberRef, delta: i64) -> Option<MemberRef> {
        let m = self.space.real(m);
        if m.h == MEASURES || self.space.is_calc(m) {
            return None;
        }
        let hm = &self.space.hier(m.h).members;
        let lvl = hm.level_members(hm.get(m.id).level as usize);
        let pos = lvl.iter().position(|&x| x == m.id)? as i64 - delta;
        (pos >= 0 && (pos as usize) < lvl.len()).then(|| MemberRef {
            h: m.h,
            id: lvl[pos as usize],
        })
    }

    fn member_function(&self, name: &str, args: &[Expr], coord: Option<&[u32]>, e: &Expr) -> Result<Val> {
        let n = lc(name);
        if let Some(v) = self.special_member_function(&n, args, coord, e)? {
            return Ok(v);
        }
        if n == "strtomember" {
            let s = match args.first().map(|a| self.eval(a, coord)).transpose()? {
                Some(Val::Scalar(Scalar::Str(s))) => s,
                _ => return Err(QueryError::Type("StrToMember needs a string".into())),
            };
            let parsed = datakube_mdx::parse_expression(&s).map_err(|err| QueryError::Syntax(err.to_string()))?;
            return self.eval(&parsed, coord);
        }
        let target = args.first().ok_or_else(|| unsupported(name, e))?;
        let v = self.eval(target, coord)?;
        let m = match (n.as_str(), v) {
            ("currentmember", Val::Hierarchy(h)) => return Ok(Val::Member(self.current_of(h, coord))),
            ("defaultmember", Val::Hierarchy(h)) => return Ok(Val::Member(self.default_member(h))),
            ("currentmember", Val::Level { h, .. }) => return Ok(Val::Member(self.current_of(h, coord))),
            ("defaultmember", Val::Level { h, .. }) => return Ok(Val::Member(self.default_member(h))),
            (
                "parent" | "firstchild" | "lastchild" | "prevmember" | "nextmember" | "lag" | "lead" | "firstsibling"
                | "lastsibling",
                Val::Set(s),
            ) if s.is_empty() => return Ok(Val::Set(Vec::new())),
            (_, Val::Member(m)) => m,
            // A hierarchy where a member is needed: its current member.
            (_, Val::Hierarchy(h)) => self.current_of(h, coord),
            (_, other) => {
                return Err(QueryError::Type(format!(
                    "{name} needs a member, got {}",
                    describe(&other)
                )));
            }
        };
        let hm = |m: MemberRef| &self.space.hier(m.h).members;
        let sibling = |m: MemberRef, delta: i64| -> Option<MemberRef> {
            let m = self.space.real(m);
            if m.h == MEASURES || self.space.is_calc(m) {
                return None;
            }
            let lvl = hm(m).level_members(hm(m).get(m.id).level as usize);
            let pos = lvl.iter().position(|&x| x == m.id)? as i64 + delta;
            (pos >= 0 && (pos as usize) < lvl.len()).then(|| MemberRef {
                h: m.h,
                id: lvl[pos as usize],
            })
        };
        let offset = || -> Result<i64> {
            match args.get(1).map(|a| self.eval(a, coord)).transpose()? {
                Some(Val::Scalar(s)) => Ok(s.as_num().unwrap_or(0.0) as i64),
                _ => Ok(1),
            }
        };
        let r = match n.as_str() {
            "parent" => self.parent(m),
            "firstchild" => self.children(m).first().copied(),
            "lastchild" => self.children(m).last().copied(),
            "prevmember" => sibling(m, -1),
            "nextmember" => sibling(m, 1),
            "lag" => sibling(m, -offset()?),
            "lead" => sibling(m, offset()?),
            "firstsibling" | "lastsibling" => match self.parent(m) {
                Some(p) => {
                    let kids = self.children(p);
                    if n == "firstsibling" {
                        kids.first().copied()
                    } else {
                        kids.last().copied()
                    }
                }
                // Top level: the first/last member of the level.
                None => {
                    let lvl = self.level_members(m.h, self.level_of(m));
                    if n == "firstsibling" {
                        lvl.first().map(|t| t[0])
                    } else {
                        lvl.last().map(|t| t[0])
                    }
                }
            },
            "ancestor" => {
                let a = args
                    .get(1)
                    .ok_or_else(|| QueryError::Type("Ancestor needs a level or distance".into()))?;
                let (level, _) = self.level_arg(a, coord, m, "Ancestor")?;
                self.ancestor_at(m, level)
            }
            "cousin" => {
                let anc = self.arg_member(args, 1, coord, "Cousin")?;
                if anc.h != m.h {
                    return Err(QueryError::Type("Cousin: both members must be of one hierarchy".into()));
                }
                self.cousin(m, anc)
            }
            _ => return Err(unsupported(name, e)),
        };
        // A member that does not exist is the null member: an empty set in set context.
        Ok(r.map(Val::Member).unwrap_or(Val::Set(Vec::new())))
    }

    fn property(&self, object: &Expr, name: &str, coord: Option<&[u32]>, e: &Expr) -> Result<Val> {
        let n = lc(name);
        if self.is_member_function(&n) {
            return self.member_function(&n, std::slice::from_ref(object), coord, e);
        }
        if n == "current" {
            if let Expr::Identifier(o) = object
                && let Some(t) = self.current.borrow().get(&lc(&o.segments[0].text()))
            {
                return Ok(if t.len() == 1 {
                    Val::Member(t[0])
                } else {
                    Val::Tuple(t.clone())
                });
            }
            return Err(QueryError::Type(format!(
                "{name}: no iteration over this set is in progress"
            )));
        }
        let v = match self.eval(object, coord)? {
            // A hierarchy where a member function is asked: its current member (SSAS).
            Val::Hierarchy(h)
                if matches!(
                    n.as_str(),
                    "children" | "siblings" | "firstchild" | "lastchild" | "level" | "ordinal" | "key" | "member_key"
                ) =>
            {
                Val::Member(self.current_of(h, coord))
            }
            other => other,
        };
        match (n.as_str(), v) {
            ("members" | "allmembers", Val::Level { h, number }) => Ok(Val::Set(self.level_members(h, number))),
            ("members", Val::Hierarchy(h)) => Ok(Val::Set(self.hierarchy_members(h, false))),
            ("allmembers", Val::Hierarchy(h)) => Ok(Val::Set(self.hierarchy_members(h, true))),
            ("children", Val::Member(m)) => Ok(Val::Set(self.children(m).into_iter().map(|c| vec![c]).collect())),
            ("level", Val::Member(m)) => Ok(Val::Level {
                h: m.h,
                number: self.level_of(m),
            }),
            ("hierarchy" | "dimension", Val::Member(m)) => Ok(Val::Hierarchy(m.h)),
            ("count", Val::Set(s)) => Ok(Val::Scalar(Scalar::Num(s.len() as f64))),
            (
                "name" | "caption" | "uniquename" | "member_caption" | "member_name" | "member_unique_name",
                Val::Member(m),
            ) => Ok(Val::Scalar(Scalar::Str(self.member_text(m, &n)))),
            ("key" | "member_key", Val::Member(m)) => Ok(Val::Scalar(self.member_key(m))),
            // The null member (Parent of a top member, PrevMember of the first): empty values.
            (
                "name" | "caption" | "uniquename" | "member_caption" | "member_name" | "member_unique_name" | "key"
                | "member_key" | "ordinal",
                Val::Set(s),
            ) if s.is_empty() => Ok(Val::Scalar(Scalar::Empty)),
            ("name" | "caption" | "uniquename", Val::Level { h, number }) => {
                Ok(Val::Scalar(Scalar::Str(self.level_text(h, number, &n))))
            }
            ("ordinal", Val::Level { h, number }) => {
                let root = if h == MEASURES { 0 } else { self.space.first_level(h) };
                Ok(Val::Scalar(Scalar::Num((number - root) as f64)))
            }
            ("name" | "caption" | "uniquename", Val::Hierarchy(h)) => {
                let u = self.space.hierarchy_unique_name(h);
                Ok(Val::Scalar(Scalar::Str(match n.as_str() {
                    "uniquename" => u,
                    _ if h == MEASURES => "Measures".into(),
                    "caption" => self.space.hier(h).hierarchy.caption.get(self.space.lang).to_string(),
                    _ => self.space.hier(h).hierarchy.name.clone(),
                })))
            }
            ("dimension" | "hierarchy", Val::Hierarchy(h)) => Ok(Val::Hierarchy(h)),
            ("hierarchy" | "dimension", Val::Level { h, .. }) => Ok(Val::Hierarchy(h)),
            ("count", Val::Level { h, number }) => {
                Ok(Val::Scalar(Scalar::Num(self.level_members(h, number).len() as f64)))
            }
            ("siblings", Val::Member(_)) => Ok(Val::Set(self.set_function(
                "siblings",
                std::slice::from_ref(object),
                coord,
                e,
            )?)),
            ("count", Val::Hierarchy(h)) => {
                let cnt = if h == MEASURES {
                    1
                } else {
                    self.space.hier(h).members.levels.len() - self.space.first_level(h) as usize
                };
                Ok(Val::Scalar(Scalar::Num(cnt as f64)))
            }
            ("ordinal", Val::Member(m)) => {
                let m = self.space.real(m);
                Ok(Val::Scalar(Scalar::Num(if m.h == MEASURES || self.space.is_calc(m) {
                    0.0
                } else {
                    self.space.hier(m.h).members.get(m.id).ordinal as f64
                })))
            }
            (_, other) => Err(QueryError::Unsupported(format!(
                "the property or function .{name} on {} (line {}, column {}) is not supported yet",
                describe(&other),
                e.span().line,
                e.span().column
            ))),
        }
    }

    /// `Properties("name")`: a level's member property or an intrinsic one (KEY, NAME, CAPTION,
    /// UNIQUE_NAME, LEVEL_NUMBER …). Untyped answers are strings, as in SSAS.
    fn member_property(&self, m: MemberRef, pname: &str, typed: bool) -> Result<Scalar> {
        let up = pname.to_ascii_uppercase();
        let text = |s: String| Scalar::Str(s);
        let v = match up.as_str() {
            "NAME" | "MEMBER_NAME" => text(self.space.member_name(m)),
            "CAPTION" | "MEMBER_CAPTION" => text(self.space.member_caption(m)),
            "UNIQUE_NAME" | "MEMBER_UNIQUE_NAME" => text(self.space.member_unique_name(m)),
            "LEVEL_NUMBER" => Scalar::Num(self.level_of(m) as f64),
            "KEY" | "MEMBER_KEY" => self.member_key(m),
            _ => {
                let m = self.space.real(m);
                if m.h == MEASURES || self.space.is_calc(m) {
                    return Err(QueryError::Name(format!("the member has no property {pname}")));
                }
                let hc = self.space.hier(m.h);
                let mem = hc.members.get(m.id);
                let level = if mem.level == 0 {
                    None
                } else if hc.hierarchy.is_parent_child() {
                    hc.hierarchy.levels.first()
                } else {
                    hc.hierarchy.levels.get(mem.level as usize - 1)
                };
                let idx = level.and_then(|l| l.properties.iter().position(|p| p.name.eq_ignore_ascii_case(pname)));
                let exists = hc.hierarchy.levels.iter().any(|l| l.property(pname).is_some());
                match idx.and_then(|i| mem.properties.get(i)) {
                    Some(datakube_members::PropValue::Int(i)) => Scalar::Num(*i as f64),
                    Some(datakube_members::PropValue::Double(d)) => Scalar::Num(*d),
                    Some(datakube_members::PropValue::Str(s)) => Scalar::Str(s.clone()),
                    Some(datakube_members::PropValue::Null) | None if exists => Scalar::Empty,
                    _ => {
                        return Err(QueryError::Name(format!(
                            "the hierarchy {} has no member property {pname}",
                            hc.hierarchy.unique_name
                        )));
                    }
                }
            }
        };
        Ok(match (typed, v) {
            (false, Scalar::Num(n)) => Scalar::Str(text_of(&Scalar::Num(n))),
            (_, v) => v,
        })
    }

    /// A member's key as a value (number or text); the name for measures and calculated members.
    fn member_key(&self, m: MemberRef) -> Scalar {
        let m = self.space.real(m);
        if m.h == MEASURES || self.space.is_calc(m) {
            return Scalar::Str(self.space.member_name(m));
        }
        match &self.space.hier(m.h).members.get(m.id).key {
            datakube_members::Key::Int(i) => Scalar::Num(*i as f64),
            datakube_members::Key::Str(s) => Scalar::Str(s.clone()),
            datakube_members::Key::Null => Scalar::Empty,
        }
    }

    fn level_text(&self, h: HierIdx, number: u16, what: &str) -> String {
        if h == MEASURES {
            return match what {
                "uniquename" => "[Measures].[MeasuresLevel]".into(),
                _ => "MeasuresLevel".into(),
            };
        }
        let hc = self.space.hier(h);
        if number == 0 || number as usize > hc.hierarchy.levels.len() {
            return match what {
                "uniquename" => format!("{}.[(All)]", hc.hierarchy.unique_name),
                _ => "(All)".into(),
            };
        }
        let l = &hc.hierarchy.levels[number as usize - 1];
        match what {
            "uniquename" => l.unique_name.clone(),
            "caption" => l.caption.get(self.space.lang).to_string(),
            _ => l.name.clone(),
        }
    }

    fn member_text(&self, m: MemberRef, what: &str) -> String {
        match what {
            "uniquename" | "member_unique_name" => self.space.member_unique_name(m),
            "caption" | "member_caption" => self.space.member_caption(m),
            _ => self.space.member_name(m),
        }
    }

    /// Evaluate an expression as a set of tuples.
    pub fn eval_set(&self, e: &Expr, coord: Option<&[u32]>) -> Result<Vec<Tuple>> {
        match e {
            Expr::Set { items, .. } => {
                let mut out = Vec::new();
                for it in items {
                    out.extend(self.eval_set(it, coord)?);
                }
                Ok(out)
            }
            Expr::Tuple { items, .. } if items.iter().any(|i| matches!(self.eval(i, coord), Ok(Val::Set(_)))) => {
                // ({a},{b}) in a subselect: the crossjoin of the sets.
                let mut acc: Vec<Tuple> = vec![Vec::new()];
                for it in items {
                    acc = crossjoin(&acc, &self.eval_set(it, coord)?, self.space)?;
                }
                Ok(acc)
            }
            Expr::Function { name, args, .. } if !self.is_member_function(&name.value) => {
                self.set_function(&name.value, args, coord, e)
            }
            Expr::Binary {
                left,
                op: BinaryOp::Mul,
                right,
                ..
            } => crossjoin(&self.eval_set(left, coord)?, &self.eval_set(right, coord)?, self.space),
            Expr::Binary {
                left,
                op: BinaryOp::Add,
                right,
                ..
            } => {
                let mut l = self.eval_set(left, coord)?;
                let r = self.eval_set(right, coord)?;
                let seen: HashSet<Tuple> = l.iter().cloned().collect();
                l.extend(r.into_iter().filter(|t| !seen.contains(t)));
                Ok(l)
            }
            Expr::Binary {
                left,
                op: BinaryOp::Sub,
                right,
                ..
            } => {
                let r: HashSet<Tuple> = self.eval_set(right, coord)?.into_iter().collect();
                Ok(self
                    .eval_set(left, coord)?
                    .into_iter()
                    .filter(|t| !r.contains(t))
                    .collect())
            }
            Expr::Range { start, end, .. } => {
                let (a, b) = match (self.eval(start, coord)?, self.eval(end, coord)?) {
                    (Val::Member(a), Val::Member(b)) => (self.space.real(a), self.space.real(b)),
                    _ => {
                        return Err(QueryError::Type(
                            "a range a:b needs two members of one hierarchy".into(),
                        ));
                    }
                };
                let (a, b) = match (a, b) {
                    (a, b) if a.h == b.h && a.h != MEASURES && !self.space.is_calc(a) && !self.space.is_calc(b) => {
                        (a, b)
                    }
                    _ => {
                        return Err(QueryError::Type(
                            "a range a:b needs two members of one hierarchy".into(),
                        ));
                    }
                };
                let hm = &self.space.hier(a.h).members;
                let lvl = hm.level_members(hm.get(a.id).level as usize);
                let (pa, pb) = (lvl.iter().position(|&x| x == a.id), lvl.iter().position(|&x| x == b.id));
                match (pa, pb) {
                    (Some(pa), Some(pb)) => {
                        let (lo, hi) = (pa.min(pb), pa.max(pb));
                        Ok(lvl[lo..=hi].iter().map(|&id| vec![MemberRef { h: a.h, id }]).collect())
                    }
                    _ => Err(QueryError::Type(
                        "the members of a range must be on the same level".into(),
                    )),
                }
            }
            Expr::Unary {
                op: UnaryOp::Minus,
                expr,
                ..
            } => {
                // -{set}: every member of the set's hierarchy except those (Excel's collapse).
                let inner = self.eval_set(expr, coord)?;
                let Some(h) = inner.first().and_then(|t| (t.len() == 1).then_some(t[0].h)) else {
                    return Ok(Vec::new());
                };
                let drop: HashSet<Tuple> = inner.into_iter().collect();
                Ok(self
                    .hierarchy_members(h, true)
                    .into_iter()
                    .filter(|t| !drop.contains(t))
                    .collect())
            }
            Expr::Alias { expr, alias, .. } => {
                let set = self.eval_set(expr, coord)?;
                self.aliases.borrow_mut().insert(lc(&alias.value), set.clone());
                Ok(set)
            }
            _ => match self.eval(e, coord)? {
                Val::Set(s) => Ok(s),
                Val::Member(m) => Ok(vec![vec![m]]),
                Val::Tuple(t) => Ok(vec![t]),
                Val::Level { h, number } => Ok(self.level_members(h, number)),
                Val::Hierarchy(h) => Ok(vec![vec![self.default_member(h)]]),
                Val::Scalar(_) => Err(QueryError::Type(format!(
                    "expected a set at line {}, column {}, found a value",
                    e.span().line,
                    e.span().column
                ))),
            },
        }
    }

    fn arg_set(&self, args: &[Expr], i: usize, coord: Option<&[u32]>, fname: &str) -> Result<Vec<Tuple>> {
        match args.get(i) {
            Some(Expr::Omitted { .. }) | None => Err(QueryError::Type(format!(
                "{fname}: argument {} (a set) is missing",
                i + 1
            ))),
            Some(a) => self.eval_set(a, coord),
        }
    }

    fn flag(args: &[Expr], name: &str) -> bool {
        args.iter().any(|a| matches!(a, Expr::Identifier(n) if n.segments.len() == 1 && n.segments[0].text().eq_ignore_ascii_case(name)))
    }

    fn set_function(&self, name: &str, args: &[Expr], coord: Option<&[u32]>, e: &Expr) -> Result<Vec<Tuple>> {
        let n = lc(name);
        match n.as_str() {
            "hierarchize" => {
                let mut set = self.arg_set(args, 0, coord, name)?;
                let post = Self::flag(args, "POST");
                set.sort_by_cached_key(|t| t.iter().map(|m| self.order_key(*m, post)).collect::<Vec<_>>());
                Ok(set)
            }
            "addcalculatedmembers" | "distinct" if n == "addcalculatedmembers" => self.arg_set(args, 0, coord, name),
            "distinct" => {
                let mut seen = HashSet::new();
                Ok(self
                    .arg_set(args, 0, coord, name)?
                    .into_iter()
                    .filter(|t| seen.insert(t.clone()))
                    .collect())
            }
            "crossjoin" | "nonemptycrossjoin" => {
                let mut acc: Vec<Tuple> = vec![Vec::new()];
                for i in 0..args.len() {
                    acc = crossjoin(&acc, &self.arg_set(args, i, coord, name)?, self.space)?;
                }
                Ok(acc)
            }
            "union" => {
                let all = Self::flag(args, "ALL");
                let mut out: Vec<Tuple> = Vec::new();
                let mut seen = HashSet::new();
                for (i, a) in args.iter().enumerate() {
                    if matches!(a, Expr::Identifier(nm) if nm.segments.len() == 1 && nm.segments[0].text().eq_ignore_ascii_case("ALL"))
                    {
                        continue;
                    }
                    for t in self.arg_set(args, i, coord, name)? {
                        if all || seen.insert(t.clone()) {
                            out.push(t);
                        }
                    }
                }
                Ok(out)
            }
            // A visual total is the member it stands for here (as in Mondrian), and Intersect
            // keeps the visual total of either side: Excel's `Intersect(DrilldownMember(…),
            // [XL_Row_Dim_0])` over a VisualTotals set shows the visual totals.
            "except" => {
                // Left first: it may name sets (AS) that the right side uses.
                let l = self.arg_set(args, 0, coord, name)?;
                let r: HashSet<Tuple> = self
                    .arg_set(args, 1, coord, name)?
                    .iter()
                    .map(|t| self.real_tuple(t))
                    .collect();
                Ok(l.into_iter().filter(|t| !r.contains(&self.real_tuple(t))).collect())
            }
            "intersect" => {
                // Left first: it may name sets (AS) that the right side uses.
                let l = self.arg_set(args, 0, coord, name)?;
                let mut r: HashMap<Tuple, Tuple> = HashMap::new();
                for t in self.arg_set(args, 1, coord, name)? {
                    r.entry(self.real_tuple(&t)).or_insert(t);
                }
                let all = args.len() > 2 && Self::flag(&args[2..], "ALL");
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                for t in l {
                    let key = self.real_tuple(&t);
                    let Some(rt) = r.get(&key) else { continue };
                    if !all && !seen.insert(key) {
                        continue;
                    }
                    let visual = |x: &Tuple| x.iter().any(|m| self.space.is_visual(*m));
                    out.push(if !visual(&t) && visual(rt) { rt.clone() } else { t });
                }
                Ok(out)
            }
            "visualtotals" => self.visual_totals(args, coord, name),
            "subset" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let start = self.number_arg(args, 1, coord, 0.0)?.max(0.0) as usize;
                let count = self.number_arg(args, 2, coord, f64::MAX)?.max(0.0);
                let count = if count >= usize::MAX as f64 {
                    usize::MAX
                } else {
                    count as usize
                };
                Ok(set.into_iter().skip(start).take(count).collect())
            }
            "unorder" => self.arg_set(args, 0, coord, name),
            "strtoset" => {
                let s = match args.first().map(|a| self.eval(a, coord)).transpose()? {
                    Some(Val::Scalar(Scalar::Str(s))) => s,
                    _ => return Err(QueryError::Type("StrToSet needs a string".into())),
                };
                let parsed = datakube_mdx::parse_expression(&s).map_err(|err| QueryError::Syntax(err.to_string()))?;
                self.eval_set(&parsed, coord)
            }
            "extract" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let mut hs = Vec::new();
                for a in &args[1..] {
                    match self.eval(a, coord)? {
                        Val::Hierarchy(h) => hs.push(h),
                        Val::Member(m) => hs.push(m.h),
                        other => {
                            return Err(QueryError::Type(format!(
                                "Extract: expected a hierarchy, got {}",
                                describe(&other)
                            )));
                        }
                    }
                }
                let mut seen = HashSet::new();
                Ok(set
                    .into_iter()
                    .map(|t| {
                        hs.iter()
                            .filter_map(|h| t.iter().find(|m| m.h == *h).copied())
                            .collect::<Tuple>()
                    })
                    .filter(|t| !t.is_empty() && seen.insert(t.clone()))
                    .collect())
            }
            "exists" => {
                let l = self.arg_set(args, 0, coord, name)?;
                let r = self.arg_set(args, 1, coord, name)?;
                let related =
                    |a: MemberRef, b: MemberRef| self.is_ancestor_or_self(a, b) || self.is_ancestor_or_self(b, a);
                Ok(l.into_iter()
                    .filter(|t| {
                        r.iter().any(|u| {
                            t.iter()
                                .all(|a| u.iter().filter(|b| b.h == a.h).all(|b| related(*a, *b)))
                        })
                    })
                    .collect())
            }
            "siblings" => {
                let m = self.arg_member(args, 0, coord, name)?;
                Ok(match self.parent(m) {
                    Some(p) => self.children(p).into_iter().map(|c| vec![c]).collect(),
                    None => self.level_members(m.h, self.level_of(m)),
                })
            }
            "ancestors" => {
                let m = self.arg_member(args, 0, coord, name)?;
                let a = args
                    .get(1)
                    .ok_or_else(|| QueryError::Type("Ancestors needs a level or distance".into()))?;
                let (level, _) = self.level_arg(a, coord, m, "Ancestors")?;
                Ok(self.ancestor_at(m, level).map(|x| vec![vec![x]]).unwrap_or_default())
            }
            "periodstodate" | "ytd" | "qtd" | "mtd" | "wtd" => {
                let (h, level) = if n == "periodstodate" {
                    self.period_level_arg(args, coord, "PeriodsToDate")?
                } else {
                    (self.time_hierarchy()?, None)
                };
                let member_arg = if n == "periodstodate" { 1 } else { 0 };
                let m = match args.get(member_arg).filter(|a| !matches!(a, Expr::Omitted { .. })) {
                    Some(_) => self.arg_member(args, member_arg, coord, name)?,
                    None => self.current_of(h, coord),
                };
                let level = match level {
                    Some(l) => l,
                    None if n == "periodstodate" => self.level_of(m).saturating_sub(1),
                    None => {
                        use datakube_model::LevelType as T;
                        let want = match n.as_str() {
                            "ytd" => T::Years,
                            "qtd" => T::Quarters,
                            "mtd" => T::Months,
                            _ => T::Weeks,
                        };
                        let hier = self.space.hier(m.h).hierarchy;
                        match hier.levels.iter().find(|l| l.level_type == want) {
                            Some(l) => l.number as u16,
                            None => {
                                return Err(QueryError::Type(format!(
                                    "{name}: the hierarchy {} has no level of type {want:?}",
                                    hier.unique_name
                                )));
                            }
                        }
                    }
                };
                let Some(anc) = self.ancestor_at(m, level) else {
                    return Ok(Vec::new());
                };
                let lvl = self.level_of(m);
                let mut first = anc;
                while self.level_of(first) < lvl {
                    match self.children(first).first() {
                        Some(&c) => first = c,
                        None => return Ok(Vec::new()),
                    }
                }
                let members = self.level_members(m.h, lvl);
                let (Some(a), Some(b)) = (
                    members.iter().position(|t| t[0] == first),
                    members.iter().position(|t| t[0] == m),
                ) else {
                    return Ok(Vec::new());
                };
                Ok(if a <= b { members[a..=b].to_vec() } else { Vec::new() })
            }
            "lastperiods" => {
                let count = self.number_arg(args, 0, coord, 1.0)? as i64;
                let m = match args.get(1) {
                    Some(_) => self.arg_member(args, 1, coord, name)?,
                    None => self.current_of(self.time_hierarchy()?, coord),
                };
                if count == 0 {
                    return Ok(Vec::new());
                }
                let other = if count > 0 {
                    self.lag_member(m, count - 1)
                } else {
                    self.lag_member(m, count + 1)
                };
                let members = self.level_members(m.h, self.level_of(m));
                let pos = |x: MemberRef| members.iter().position(|t| t[0] == x);
                let (Some(a), Some(b)) = (
                    pos(m),
                    other
                        .and_then(pos)
                        .or(Some(if count > 0 { 0 } else { members.len() - 1 })),
                ) else {
                    return Ok(Vec::new());
                };
                let (lo, hi) = (a.min(b), a.max(b));
                Ok(members[lo..=hi].to_vec())
            }
            "toppercent" | "bottompercent" | "topsum" | "bottomsum" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let target = self.number_arg(args, 1, coord, 0.0)?;
                let expr = args
                    .get(2)
                    .ok_or_else(|| QueryError::Type(format!("{name} needs a value expression")))?;
                let vals = self.values_for(&set, Some(expr), coord)?;
                let nums: Vec<f64> = vals.iter().map(|v| v.as_num().unwrap_or(0.0)).collect();
                let mut idx: Vec<usize> = (0..set.len()).collect();
                let top = n.starts_with("top");
                idx.sort_by(|a, b| {
                    let o = nums[*a].partial_cmp(&nums[*b]).unwrap_or(std::cmp::Ordering::Equal);
                    if top { o.reverse() } else { o }
                });
                let limit = if n.ends_with("percent") {
                    nums.iter().sum::<f64>() * target / 100.0
                } else {
                    target
                };
                let mut out = Vec::new();
                let mut acc = 0.0;
                // At least one tuple; then until the running total reaches the limit.
                for i in idx {
                    acc += nums[i];
                    out.push(set[i].clone());
                    if acc >= limit {
                        break;
                    }
                }
                Ok(out)
            }
            "toggledrillstate" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let targets: HashSet<MemberRef> = self.arg_set(args, 1, coord, name)?.into_iter().flatten().collect();
                let mut out = Vec::new();
                let mut i = 0;
                while i < set.len() {
                    let t = &set[i];
                    out.push(t.clone());
                    let Some(pos) = t.iter().position(|m| targets.contains(m)) else {
                        i += 1;
                        continue;
                    };
                    let m = t[pos];
                    let drilled = set.get(i + 1).is_some_and(|nx| self.parent(nx[pos]) == Some(m));
                    if drilled {
                        // Drill up: skip the descendants that follow.
                        i += 1;
                        while i < set.len() && self.is_ancestor_or_self(m, set[i][pos]) && set[i][pos] != m {
                            i += 1;
                        }
                        continue;
                    }
                    for c in self.children(m) {
                        let mut nt = t.clone();
                        nt[pos] = c;
                        out.push(nt);
                    }
                    i += 1;
                }
                Ok(out)
            }
            "drilluplevel" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let Some(first) = set.first() else {
                    return Ok(set);
                };
                let (pos, level) = match args.get(1).filter(|a| !matches!(a, Expr::Omitted { .. })) {
                    Some(a) => match self.eval(a, coord)? {
                        Val::Level { h, number } => (first.iter().position(|m| m.h == h).unwrap_or(0), number),
                        other => {
                            return Err(QueryError::Type(format!(
                                "DrillupLevel: expected a level, got {}",
                                describe(&other)
                            )));
                        }
                    },
                    None => {
                        let max = set.iter().map(|t| self.level_of(t[0])).max().unwrap_or(0);
                        (0, max.saturating_sub(1))
                    }
                };
                Ok(set.into_iter().filter(|t| self.level_of(t[pos]) <= level).collect())
            }
            "drillupmember" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let targets: Vec<MemberRef> = self.arg_set(args, 1, coord, name)?.into_iter().flatten().collect();
                let present: HashSet<MemberRef> = set.iter().flatten().copied().collect();
                Ok(set
                    .into_iter()
                    .filter(|t| {
                        !t.iter().any(|m| {
                            targets
                                .iter()
                                .any(|a| a != m && present.contains(a) && self.is_ancestor_or_self(*a, *m))
                        })
                    })
                    .collect())
            }
            "drilldownleveltop" | "drilldownlevelbottom" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let count = self.number_arg(args, 1, coord, 0.0)?.max(0.0) as usize;
                let Some(first) = set.first() else {
                    return Ok(set);
                };
                let (pos, level) = match args.get(2).filter(|a| !matches!(a, Expr::Omitted { .. })) {
                    Some(a) => match self.eval(a, coord)? {
                        Val::Level { h, number } => (first.iter().position(|m| m.h == h).unwrap_or(0), Some(number)),
                        _ => (0, None),
                    },
                    None => (0, None),
                };
                let level = level.unwrap_or_else(|| set.iter().map(|t| self.level_of(t[pos])).max().unwrap_or(0));
                let mut out = Vec::new();
                for t in &set {
                    out.push(t.clone());
                    if self.level_of(t[pos]) != level {
                        continue;
                    }
                    let kids: Vec<Tuple> = self
                        .children(t[pos])
                        .into_iter()
                        .map(|c| {
                            let mut nt = t.clone();
                            nt[pos] = c;
                            nt
                        })
                        .collect();
                    let vals = self.values_for(&kids, args.get(3), coord)?;
                    let mut idx: Vec<usize> = (0..kids.len()).collect();
                    let key = |i: &usize| vals[*i].as_num().unwrap_or(f64::NEG_INFINITY);
                    idx.sort_by(|a, b| {
                        let o = key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal);
                        if n == "drilldownleveltop" { o.reverse() } else { o }
                    });
                    out.extend(idx.into_iter().take(count).map(|i| kids[i].clone()));
                }
                Ok(out)
            }
            "head" | "tail" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let count = match args.get(1) {
                    Some(a) if !matches!(a, Expr::Omitted { .. }) => match self.eval(a, coord)? {
                        Val::Scalar(s) => s.as_num().unwrap_or(1.0).max(0.0) as usize,
                        _ => 1,
                    },
                    _ => 1,
                };
                Ok(if n == "head" {
                    set.into_iter().take(count).collect()
                } else {
                    set[set.len().saturating_sub(count)..].to_vec()
                })
            }
            "members" | "allmembers" => match args.first().map(|a| self.eval(a, coord)).transpose()? {
                Some(Val::Level { h, number }) => Ok(self.level_members(h, number)),
                Some(Val::Hierarchy(h)) => Ok(self.hierarchy_members(h, n == "allmembers")),
                _ => Err(QueryError::Type(format!("{name} needs a level or hierarchy"))),
            },
            "ascendants" => {
                let m = self.arg_member(args, 0, coord, name)?;
                let mut out = vec![vec![m]];
                let mut p = self.parent(m);
                while let Some(pm) = p {
                    out.push(vec![pm]);
                    p = self.parent(pm);
                }
                Ok(out)
            }
            "descendants" => self.descendants(args, coord, name),
            "filter" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let cond = args
                    .get(1)
                    .ok_or_else(|| QueryError::Type("Filter needs a condition".into()))?;
                let vals = self.values_for(&set, Some(cond), coord)?;
                Ok(set
                    .into_iter()
                    .zip(vals)
                    .filter(|(_, v)| v.truthy())
                    .map(|(t, _)| t)
                    .collect())
            }
            "nonempty" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let vals = self.values_for(&set, None, coord)?;
                Ok(set
                    .into_iter()
                    .zip(vals)
                    .filter(|(_, v)| *v != Scalar::Empty)
                    .map(|(t, _)| t)
                    .collect())
            }
            "topcount" | "bottomcount" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let count = match args.get(1).map(|a| self.eval(a, coord)).transpose()? {
                    Some(Val::Scalar(s)) => s.as_num().unwrap_or(0.0).max(0.0) as usize,
                    _ => return Err(QueryError::Type(format!("{name} needs a count"))),
                };
                let Some(expr) = args.get(2) else {
                    return Ok(set.into_iter().take(count).collect());
                };
                let vals = self.values_for(&set, Some(expr), coord)?;
                let mut idx: Vec<usize> = (0..set.len()).collect();
                let key = |i: &usize| vals[*i].as_num().unwrap_or(f64::NEG_INFINITY);
                if n == "topcount" {
                    idx.sort_by(|a, b| key(b).partial_cmp(&key(a)).unwrap_or(std::cmp::Ordering::Equal));
                } else {
                    idx.sort_by(|a, b| key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal));
                }
                Ok(idx.into_iter().take(count).map(|i| set[i].clone()).collect())
            }
            "order" => {
                let set = self.arg_set(args, 0, coord, name)?;
                let expr = args
                    .get(1)
                    .ok_or_else(|| QueryError::Type("Order needs a value expression".into()))?;
                let desc = Self::flag(args, "DESC") || Self::flag(args, "BDESC");
                let breaking = Self::flag(args, "BASC") || Self::flag(args, "BDESC");
                let vals = self.values_for(&set, Some(expr), coord)?;
                let cmp_vals = |x: &Scalar, y: &Scalar| match (x, y) {
                    (Scalar::Str(a), Scalar::Str(b)) => a.cmp(b),
                    (x, y) => x
                        .as_num()
                        .unwrap_or(f64::NEG_INFINITY)
                        .partial_cmp(&y.as_num().unwrap_or(f64::NEG_INFINITY))
                        .unwrap_or(std::cmp::Ordering::Equal),
                };
                let mut idx: Vec<usize> = (0..set.len()).collect();
                let flat = breaking
                    || set.iter().all(|t| {
                        t.first().map(|m| self.parent(*m))
                            == set.first().and_then(|f| f.first()).map(|m| self.parent(*m))
                    });
                if flat {
                    // Stable: ties keep their order.
                    idx.sort_by(|a, b| {
                        let o = cmp_vals(&vals[*a], &vals[*b]);
                        if desc { o.reverse() } else { o }
                    });
                    return Ok(idx.into_iter().map(|i| set[i].clone()).collect());
                }
                // ASC/DESC keep the hierarchy: members are compared through their ancestors
                // (each ancestor's value first), and a parent comes before its children.
                let mut chains: Vec<Vec<MemberRef>> = Vec::with_capacity(set.len());
                let mut anc_tuples: Vec<Tuple> = Vec::new();
                let mut anc_index: HashMap<Tuple, usize> = HashMap::new();
                for t in &set {
                    let mut chain = Vec::new();
                    let mut x = t.first().copied();
                    while let Some(m) = x {
                        if self.level_of(m) == 0 && m.h != MEASURES && self.space.first_level(m.h) == 0 {
                            break;
                        }
                        chain.push(m);
                        x = self.parent(m);
                    }
                    chain.reverse();
                    for &m in &chain {
                        let mut at = t.clone();
                        at[0] = m;
                        if !anc_index.contains_key(&at) {
                            anc_index.insert(at.clone(), anc_tuples.len());
                            anc_tuples.push(at);
                        }
                    }
                    chains.push(chain);
                }
                let anc_vals = self.values_for(&anc_tuples, Some(expr), coord)?;
                let key_of = |ti: usize, depth: usize| {
                    let mut at = set[ti].clone();
                    at[0] = chains[ti][depth];
                    anc_index[&at]
                };
                idx.sort_by(|&a, &b| {
                    let (ca, cb) = (&chains[a], &chains[b]);
                    for d in 0..ca.len().min(cb.len()) {
                        if ca[d] == cb[d] {
                            continue;
                        }
                        let o = cmp_vals(&anc_vals[key_of(a, d)], &anc_vals[key_of(b, d)]);
                        let o = if desc { o.reverse() } else { o };
                        return o.then_with(|| self.order_key(ca[d], false).cmp(&self.order_key(cb[d], false)));
                    }
                    ca.len().cmp(&cb.len())
                });
                Ok(idx.into_iter().map(|i| set[i].clone()).collect())
            }
            "generate" => {
                let alias = match args.first() {
                    Some(Expr::Alias { alias, .. }) => Some(lc(&alias.value)),
                    Some(Expr::Identifier(o)) if o.segments.len() == 1 => Some(lc(&o.segments[0].text())),
                    _ => None,
                };
                let set = self.arg_set(args, 0, coord, name)?;
                let body = args
                    .get(1)
                    .ok_or_else(|| QueryError::Type("Generate needs a second set".into()))?;
                let all = Self::flag(args, "ALL");
                let base = coord
                    .map(<[u32]>::to_vec)
                    .unwrap_or_else(|| self.space.default_coordinate());
                let mut out = Vec::new();
                let mut seen = HashSet::new();
                for t in set {
                    let mut c = base.clone();
                    for m in &t {
                        c[m.h] = m.id;
                    }
                    if let Some(a) = &alias {
                        self.current.borrow_mut().insert(a.clone(), t.clone());
                    }
                    for r in self.eval_set(body, Some(&c))? {
                        if all || seen.insert(r.clone()) {
                            out.push(r);
                        }
                    }
                }
                if let Some(a) = &alias {
                    self.current.borrow_mut().remove(a);
                }
                Ok(out)
            }
            "drilldownlevel" => self.drilldown_level(args, coord, name),
            "drilldownmember" => self.drilldown_member(args, coord, name),
            _ => Err(QueryError::Unsupported(format!(
                "the function {name} (line {}, column {}) is not supported yet",
                e.span().line,
                e.span().column
            ))),
        }
    }

    /// Values of `expr` (or of the current measure) for each tuple of `set`, fetching what is
    /// missing in batches: one round of SQL for all tuples, not one per tuple.
    fn values_for(&self, set: &[Tuple], expr: Option<&Expr>, coord: Option<&[u32]>) -> Result<Vec<Scalar>> {
        let fetcher = self
            .fetcher
            .as_ref()
            .ok_or_else(|| QueryError::Unsupported("value-based set functions need cell data here".into()))?;
        let mut f = match fetcher.try_borrow_mut() {
            Ok(f) => f,
            Err(_) => self
                .nested
                .iter()
                .find_map(|n| n.try_borrow_mut().ok())
                .ok_or_else(|| {
                    QueryError::Unsupported("value filters nested this deep inside calculated members".into())
                })?,
        };
        let base = coord
            .map(<[u32]>::to_vec)
            .unwrap_or_else(|| self.space.default_coordinate());
        let coords: Vec<Vec<u32>> = set
            .iter()
            .map(|t| {
                let mut c = base.clone();
                for m in t {
                    c[m.h] = m.id;
                }
                c
            })
            .collect();
        let mut out: Vec<Option<Scalar>> = vec![None; set.len()];
        for _round in 0..16 {
            let mut pending = false;
            for (i, c) in coords.iter().enumerate() {
                if out[i].is_some() {
                    continue;
                }
                let r = match expr {
                    Some(e) => self.scalar(e, c, &mut *f, 0)?,
                    None => self.cell(c, &mut *f)?,
                };
                match r {
                    CellResult::Ready(v) => out[i] = Some(v),
                    CellResult::Pending => pending = true,
                }
            }
            if !pending {
                return Ok(out.into_iter().map(|v| v.unwrap_or(Scalar::Empty)).collect());
            }
            f.fetch_pending()?;
        }
        Err(QueryError::Execution(
            "a value filter needs more than 16 rounds of data fetching".into(),
        ))
    }

    fn arg_member(&self, args: &[Expr], i: usize, coord: Option<&[u32]>, fname: &str) -> Result<MemberRef> {
        match args.get(i).map(|a| self.eval(a, coord)).transpose()? {
            Some(Val::Member(m)) => Ok(m),
            Some(Val::Set(s)) if s.len() == 1 && s[0].len() == 1 => Ok(s[0][0]),
            _ => Err(QueryError::Type(format!(
                "{fname}: argument {} must be a member",
                i + 1
            ))),
        }
    }

    /// Sort key within a hierarchy: pre-order, or post-order (children before parents).
    fn order_key(&self, m: MemberRef, post: bool) -> (u32, i64) {
        if m.h == MEASURES {
            return (m.id, 0);
        }
        let m = self.space.real(m);
        let hm = &self.space.hier(m.h).members;
        if let Some(c) = self.space.calc_member(m) {
            // After the last descendant of its parent.
            let mut last = c.parent.unwrap_or(0);
            while let Some(&c) = hm.get(last).children.last() {
                last = c;
            }
            return (hm.get(last).ordinal, 1 + (m.id - crate::space::CALC_BASE) as i64);
        }
        let mem = hm.get(m.id);
        if !post {
            return (mem.ordinal, 0);
        }
        let mut last = m.id;
        while let Some(&c) = hm.get(last).children.last() {
            last = c;
        }
        (hm.get(last).ordinal, -(mem.level as i64))
    }

    fn descendants(&self, args: &[Expr], coord: Option<&[u32]>, name: &str) -> Result<Vec<Tuple>> {
        let roots = self.arg_set(args, 0, coord, name)?;
        let flag = args.iter().skip(1).find_map(|a| match a {
            Expr::Identifier(n) if n.segments.len() == 1 => {
                let t = n.segments[0].text().to_ascii_uppercase();
                [
                    "SELF",
                    "AFTER",
                    "BEFORE",
                    "BEFORE_AND_AFTER",
                    "SELF_AND_AFTER",
                    "SELF_AND_BEFORE",
                    "SELF_BEFORE_AFTER",
                    "LEAVES",
                ]
                .contains(&t.as_str())
                .then_some(t)
            }
            _ => None,
        });
        let flag = flag.unwrap_or_else(|| "SELF".into());
        let mut out = Vec::new();
        for t in roots {
            let [m] = t.as_slice() else {
                return Err(QueryError::Type("Descendants needs members".into()));
            };
            let m = *m;
            let base = self.level_of(m);
            let target = match args.get(1) {
                None | Some(Expr::Omitted { .. }) => None,
                Some(a) => match self.eval(a, coord) {
                    Ok(Val::Level { number, .. }) => Some(number),
                    Ok(Val::Scalar(s)) => Some(base + s.as_num().unwrap_or(0.0) as u16),
                    _ => None,
                },
            };
            // Depth-first, pre-order.
            let mut stack = vec![m];
            let mut all = Vec::new();
            while let Some(x) = stack.pop() {
                all.push(x);
                for c in self.children(x).into_iter().rev() {
                    stack.push(c);
                }
            }
            for x in all {
                let lv = self.level_of(x);
                let keep = match (target, flag.as_str()) {
                    (_, "LEAVES") => self.children(x).is_empty() && target.is_none_or(|t| lv <= t),
                    (None, "SELF") => true,
                    (None, _) => x != m,
                    (Some(t), "SELF") => lv == t,
                    (Some(t), "AFTER") => lv > t,
                    (Some(t), "BEFORE") => lv < t,
                    (Some(t), "BEFORE_AND_AFTER") => lv != t,
                    (Some(t), "SELF_AND_AFTER") => lv >= t,
                    (Some(t), "SELF_AND_BEFORE") => lv <= t,
                    (Some(_), _) => true,
                };
                if keep {
                    out.push(vec![x]);
                }
            }
        }
        Ok(out)
    }

    fn drilldown_level(&self, args: &[Expr], coord: Option<&[u32]>, name: &str) -> Result<Vec<Tuple>> {
        let set = self.arg_set(args, 0, coord, name)?;
        if set.is_empty() {
            return Ok(set);
        }
        let mut pos = 0usize;
        let mut level: Option<u16> = None;
        if let Some(a) = args.get(1).filter(|a| !matches!(a, Expr::Omitted { .. })) {
            match self.eval(a, coord)? {
                Val::Level { h, number } => {
                    pos = set[0].iter().position(|m| m.h == h).ok_or_else(|| {
                        QueryError::Type("DrilldownLevel: the level's hierarchy is not in the set".into())
                    })?;
                    level = Some(number);
                }
                other => {
                    return Err(QueryError::Type(format!(
                        "DrilldownLevel: argument 2 must be a level, got {}",
                        describe(&other)
                    )));
                }
            }
        }
        if let Some(a) = args.get(2).filter(|a| !matches!(a, Expr::Omitted { .. }))
            && let Val::Scalar(s) = self.eval(a, coord)?
        {
            pos = s.as_num().unwrap_or(0.0).max(0.0) as usize;
        }
        if pos >= set[0].len() {
            return Err(QueryError::Type("DrilldownLevel: index beyond the tuple".into()));
        }
        let target = level.unwrap_or_else(|| set.iter().map(|t| self.level_of(t[pos])).max().unwrap_or(0));
        let mut out = Vec::with_capacity(set.len() * 2);
        for (i, t) in set.iter().enumerate() {
            out.push(t.clone());
            let m = t[pos];
            if self.level_of(m) != target {
                continue;
            }
            // Followed by one of its descendants: already drilled (Mondrian and SSAS agree).
            let already = set
                .get(i + 1)
                .is_some_and(|next| next[pos] != m && self.is_ancestor_or_self(m, next[pos]));
            if already {
                continue;
            }
            for c in self.children(m) {
                let mut nt = t.clone();
                nt[pos] = c;
                out.push(nt);
            }
        }
        Ok(out)
    }

    fn drilldown_member(&self, args: &[Expr], coord: Option<&[u32]>, name: &str) -> Result<Vec<Tuple>> {
        let set = self.arg_set(args, 0, coord, name)?;
        let targets: HashSet<MemberRef> = self.arg_set(args, 1, coord, name)?.into_iter().flatten().collect();
        let recursive = Self::flag(args, "RECURSIVE");
        let mut target_h: Option<HierIdx> = None;
        for a in args.iter().skip(2) {
            if let Expr::Identifier(n) = a {
                if n.segments.len() == 1
                    && ["RECURSIVE", "INCLUDE_CALC_MEMBERS"]
                        .iter()
                        .any(|f| n.segments[0].text().eq_ignore_ascii_case(f))
                {
                    continue;
                }
                if let Ok(Val::Hierarchy(h)) = self.eval(a, coord) {
                    target_h = Some(h);
                }
            }
        }
        let mut out = Vec::with_capacity(set.len() * 2);
        fn expand(
            env: &Env,
            t: &Tuple,
            pos: usize,
            targets: &HashSet<MemberRef>,
            recursive: bool,
            out: &mut Vec<Tuple>,
            depth: usize,
        ) {
            out.push(t.clone());
            if depth > 64 || !targets.contains(&t[pos]) {
                return;
            }
            for c in env.children(t[pos]) {
                let mut nt = t.clone();
                nt[pos] = c;
                if recursive {
                    expand(env, &nt, pos, targets, recursive, out, depth + 1);
                } else {
                    out.push(nt);
                }
            }
        }
        // With a target hierarchy (Excel's collapse form), the second set picks tuples by their
        // own hierarchy's member, and the target hierarchy's member is drilled.
        let target_of_set = targets.iter().next().map(|m| m.h);
        if let (Some(th), Some(sh)) = (target_h, target_of_set)
            && th != sh
        {
            for (i, t) in set.iter().enumerate() {
                out.push(t.clone());
                let (Some(mp), Some(dp)) = (t.iter().position(|m| m.h == sh), t.iter().position(|m| m.h == th)) else {
                    continue;
                };
                let already = set.get(i + 1).is_some_and(|next| self.parent(next[dp]) == Some(t[dp]));
                if targets.contains(&t[mp]) && !already {
                    for c in self.children(t[dp]) {
                        let mut nt = t.clone();
                        nt[dp] = c;
                        out.push(nt);
                    }
                }
            }
            return Ok(out);
        }
        for (i, t) in set.iter().enumerate() {
            let pos = match target_h {
                Some(h) => t.iter().position(|m| m.h == h),
                None => t.iter().position(|m| targets.contains(m)),
            };
            let Some(pos) = pos else {
                out.push(t.clone());
                continue;
            };
            let already = set
                .get(i + 1)
                .is_some_and(|next| self.parent(next[pos]) == Some(t[pos]));
            if already {
                out.push(t.clone());
                continue;
            }
            expand(self, t, pos, &targets, recursive, &mut out, 0);
        }
        Ok(out)
    }

    /// The tuple with every visual total replaced by the member it stands for.
    fn real_tuple(&self, t: &Tuple) -> Tuple {
        t.iter().map(|m| self.space.real(*m)).collect()
    }

    /// Whether `b` is a member of the tree strictly below `a` (calculated members are not).
    fn strictly_below(&self, a: MemberRef, b: MemberRef) -> bool {
        let (a, b) = (self.space.real(a), self.space.real(b));
        a != b && !self.space.is_calc(b) && self.is_ancestor_or_self(a, b)
    }

    /// `VisualTotals(set[, pattern])`, as SSAS documents it: a member directly followed by one
    /// of its descendants becomes a visual total of the descendants that follow it without a
    /// break (a visual total among them counts for its own descendants). In hierarchized order
    /// that is the total of the nearest descendants present; in another order SSAS counts what
    /// follows (`VisualTotals({USA, WA, CA, Seattle})` totals WA, CA and Seattle for USA), and
    /// so does this. The visual total keeps the member's unique name; its caption is the
    /// pattern with `*` replaced by the member's caption (`**` is a literal `*`).
    fn visual_totals(&self, args: &[Expr], coord: Option<&[u32]>, name: &str) -> Result<Vec<Tuple>> {
        if args.len() > 2 {
            return Err(QueryError::Type(format!(
                "{name} takes a set and an optional pattern, not {} arguments",
                args.len()
            )));
        }
        let set = self.arg_set(args, 0, coord, name)?;
        let pattern = match args.get(1).filter(|a| !matches!(a, Expr::Omitted { .. })) {
            None => None,
            Some(a) => match self.eval(a, coord)? {
                Val::Scalar(Scalar::Str(p)) => Some(p),
                other => {
                    return Err(QueryError::Type(format!(
                        "{name}: argument 2 (the pattern) must be a string, got {}",
                        describe(&other)
                    )));
                }
            },
        };
        let mut members: Vec<MemberRef> = Vec::with_capacity(set.len());
        for t in &set {
            let [m] = t.as_slice() else {
                return Err(QueryError::Type(format!(
                    "{name}: the set must hold members of one hierarchy, not tuples of {}",
                    t.len()
                )));
            };
            if m.h == MEASURES || members.first().is_some_and(|f| f.h != m.h) {
                return Err(QueryError::Type(format!(
                    "{name}: the set must hold members of one hierarchy other than [Measures]"
                )));
            }
            members.push(self.space.real(*m));
        }
        let n = members.len();
        let mut out = members.clone();
        // From the end, so the visual totals a member covers exist before it is made.
        for i in (0..n).rev() {
            let m = members[i];
            if self.space.is_calc(m) || !out.get(i + 1).is_some_and(|&next| self.strictly_below(m, next)) {
                continue;
            }
            let mut parts = Vec::new();
            let mut j = i + 1;
            while j < n && self.strictly_below(m, out[j]) {
                let d = out[j];
                parts.push(d.id);
                j += 1;
                if self.space.is_visual(d) {
                    // Its own descendants are in it already.
                    while j < n && self.strictly_below(d, out[j]) {
                        j += 1;
                    }
                }
            }
            let caption = self.space.member_caption(m);
            let caption = match &pattern {
                Some(p) => substitute_pattern(p, &caption),
                None => caption,
            };
            let id = self.space.add_visual_total(m.h, m.id, caption, parts)?;
            out[i] = MemberRef { h: m.h, id };
        }
        Ok(out.into_iter().map(|m| vec![m]).collect())
    }

    /// The value of a cell at `coord` (one member id per hierarchy; measure index at 0).
    pub fn cell(&self, coord: &[u32], src: &mut dyn CellSource) -> Result<CellResult> {
        self.cell_depth(coord, src, 0)
    }

    fn cell_depth(&self, coord: &[u32], src: &mut dyn CellSource, depth: usize) -> Result<CellResult> {
        if depth > MAX_CALC_DEPTH {
            return Err(QueryError::Execution(
                "calculated members refer to each other in a cycle".into(),
            ));
        }
        let mut calcs = if self.plain_cell(coord) {
            Vec::new()
        } else {
            self.cell_calculations(coord)
        };
        if calcs.is_empty() {
            return Ok(match src.stored(coord[MEASURES], coord) {
                Some(v) => CellResult::Ready(v),
                None => CellResult::Pending,
            });
        }
        calcs.sort_by_key(|c| c.rank());
        for c in calcs {
            match c.what {
                Computes::Formula(expr) => return self.scalar(expr, coord, src, depth + 1),
                Computes::Visual(m) => return self.visual_total_cell(m, coord, src, depth + 1),
                Computes::Cells(i) => {
                    if let Some(r) = self.cell_calculation(i, coord, src, depth + 1)? {
                        return Ok(r);
                    }
                }
            }
        }
        // Only cell calculations applied, and none of their conditions held.
        Ok(match src.stored(coord[MEASURES], coord) {
            Some(v) => CellResult::Ready(v),
            None => CellResult::Pending,
        })
    }

    /// Whether nothing but the stored measure can compute the cell (the common case, checked
    /// without allocating).
    fn plain_cell(&self, coord: &[u32]) -> bool {
        self.cell_calcs.is_empty()
            && !self.space.measures[coord[MEASURES] as usize].is_calculated()
            && coord[1..].iter().all(|&id| id < crate::space::CALC_BASE)
    }

    /// What may compute the cell at `coord`: a calculated measure, calculated members, visual
    /// totals and the cell calculations whose subcube holds the cell. The one with the highest
    /// solve order computes it; with equal solve orders a cell calculation (the later one
    /// first) wins, then the measure, then the earlier hierarchy's member.
    fn cell_calculations(&self, coord: &[u32]) -> Vec<CellCalcRef<'_>> {
        let mut out = Vec::new();
        let m = &self.space.measures[coord[MEASURES] as usize];
        if let QueryMeasureKind::Calculated(expr) = &m.kind {
            out.push(CellCalcRef {
                solve_order: m.solve_order,
                kind: 1,
                tie: 0,
                what: Computes::Formula(expr),
            });
        }
        for (h, &id) in coord.iter().enumerate().skip(1) {
            let r = MemberRef { h, id };
            if let Some(c) = self.space.calc_member(r) {
                out.push(CellCalcRef {
                    solve_order: c.solve_order,
                    kind: 2,
                    tie: h,
                    what: Computes::Formula(&c.expr),
                });
            } else if self.space.is_visual(r) {
                out.push(CellCalcRef {
                    solve_order: VISUAL_TOTAL_SOLVE_ORDER,
                    kind: 3,
                    tie: h,
                    what: Computes::Visual(r),
                });
            }
        }
        // A cell calculation's subcube names real members; a visual total is in it when its
        // member is.
        let real_coord: std::borrow::Cow<[u32]> = if coord.iter().any(|&id| id >= crate::space::VISUAL_BASE) {
            (0..coord.len())
                .map(|h| self.space.real(MemberRef { h, id: coord[h] }).id)
                .collect::<Vec<u32>>()
                .into()
        } else {
            coord.into()
        };
        for (i, c) in self.cell_calcs.iter().enumerate() {
            if c.applies_to(&real_coord) {
                out.push(CellCalcRef {
                    solve_order: c.solve_order,
                    kind: 0,
                    tie: usize::MAX - i,
                    what: Computes::Cells(i),
                });
            }
        }
        out
    }

    /// Cell calculation `i` at `coord`: `None` when its CONDITION is false. While its CONDITION
    /// and formula are evaluated the calculation itself is off (SSAS evaluates them at the
    /// previous calculation pass), so `[Measures].CurrentMember * 2` reads the cell as it is
    /// without this calculation.
    fn cell_calculation(
        &self,
        i: usize,
        coord: &[u32],
        src: &mut dyn CellSource,
        depth: usize,
    ) -> Result<Option<CellResult>> {
        let c = &self.cell_calcs[i];
        c.active.set(false);
        let r = (|| {
            if let Some(cond) = &c.condition {
                match self.scalar(cond, coord, src, depth)? {
                    CellResult::Pending => return Ok(Some(CellResult::Pending)),
                    CellResult::Ready(v) if !v.truthy() => return Ok(None),
                    CellResult::Ready(_) => {}
                }
            }
            self.scalar(&c.expr, coord, src, depth).map(Some)
        })();
        c.active.set(true);
        r
    }

    /// The value of a visual total at `coord` for the cell's measure: sums, counts, minima and
    /// maxima combine the values of the members it totals (visual totals among them roll up
    /// from their own parts); distinct counts, averages and semi-additive measures do not
    /// combine, so their value is read from the fact rows of the members it covers (one SQL
    /// per visual total, `CellFetcher` filters on them).
    fn visual_total_cell(
        &self,
        m: MemberRef,
        coord: &[u32],
        src: &mut dyn CellSource,
        depth: usize,
    ) -> Result<CellResult> {
        use datakube_model::Aggregator as A;
        let Some(vt) = self.space.visual(m) else {
            return Err(QueryError::Execution("VisualTotals: unknown visual total".into()));
        };
        let measure = &self.space.measures[coord[MEASURES] as usize];
        let combine = match &measure.kind {
            QueryMeasureKind::Stored(s) => match s.aggregator {
                A::Sum | A::Count => Some("sum"),
                A::Min => Some("min"),
                A::Max => Some("max"),
                A::DistinctCount | A::Avg | A::LastNonEmpty | A::AverageOverTime => None,
            },
            // Only here when its solve order is below the visual total's: totalled as Aggregate does.
            QueryMeasureKind::Calculated(_) => Some("sum"),
        };
        let Some(how) = combine else {
            let other_calc = coord
                .iter()
                .enumerate()
                .skip(1)
                .any(|(h, &id)| self.space.calc_member(MemberRef { h, id }).is_some());
            if other_calc {
                return Err(QueryError::Unsupported(format!(
                    "VisualTotals: the measure [{}] is not additive and the cell also has a calculated member with a solve order below {VISUAL_TOTAL_SOLVE_ORDER}",
                    measure.name
                )));
            }
            return Ok(match src.stored(coord[MEASURES], coord) {
                Some(v) => CellResult::Ready(v),
                None => CellResult::Pending,
            });
        };
        let parts: Vec<Tuple> = vt.parts.iter().map(|&id| vec![MemberRef { h: m.h, id }]).collect();
        let Some(vals) = self.set_values(&parts, None, coord, src, depth)? else {
            return Ok(CellResult::Pending);
        };
        let nums: Vec<f64> = vals.iter().filter_map(Scalar::as_num).collect();
        if nums.is_empty() {
            return Ok(CellResult::Ready(Scalar::Empty));
        }
        Ok(CellResult::Ready(Scalar::Num(match how {
            "min" => nums.iter().cloned().fold(f64::INFINITY, f64::min),
            "max" => nums.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            _ => nums.iter().sum(),
        })))
    }

    /// The format string of a cell: from the calculation that computes it (a cell
    /// calculation's FORMAT_STRING, a calculated member's), else the measure's. A cell
    /// calculation whose CONDITION is false at the cell does not compute it, so its
    /// FORMAT_STRING does not apply there either (the values are fetched by now, so the
    /// condition is ready; should it not be, the calculation is taken as applying).
    pub fn cell_format(&self, coord: &[u32], src: &mut dyn CellSource) -> Option<String> {
        let m = &self.space.measures[coord[MEASURES] as usize];
        if self.plain_cell(coord) {
            return m.format_string.clone();
        }
        let mut calcs = self.cell_calculations(coord);
        calcs.sort_by_key(|c| c.rank());
        for c in &calcs {
            let own = match &c.what {
                Computes::Cells(i) => {
                    let cc = &self.cell_calcs[*i];
                    if let Some(cond) = &cc.condition {
                        cc.active.set(false);
                        let holds = self.scalar(cond, coord, src, 0);
                        cc.active.set(true);
                        if matches!(holds, Ok(CellResult::Ready(ref v)) if !v.truthy()) {
                            continue;
                        }
                    }
                    cc.format_string.clone()
                }
                Computes::Formula(_) if c.kind == 1 => m.format_string.clone(),
                Computes::Formula(_) => self
                    .space
                    .calc_member(MemberRef {
                        h: c.tie,
                        id: coord[c.tie],
                    })
                    .and_then(|cm| cm.format_string.clone()),
                Computes::Visual(_) => None,
            };
            return own.or_else(|| m.format_string.clone());
        }
        m.format_string.clone()
    }

    /// Evaluate a value expression in the context of a cell.
    pub fn scalar(&self, e: &Expr, coord: &[u32], src: &mut dyn CellSource, depth: usize) -> Result<CellResult> {
        use CellResult::*;
        macro_rules! get {
            ($x:expr) => {
                match $x? {
                    Ready(v) => v,
                    Pending => return Ok(Pending),
                }
            };
        }
        match e {
            Expr::Literal { .. } => match self.eval(e, Some(coord))? {
                Val::Scalar(s) => Ok(Ready(s)),
                _ => unreachable!("literals are scalars"),
            },
            Expr::Nested { expr, .. } => self.scalar(expr, coord, src, depth),
            Expr::Identifier(_) | Expr::Tuple { .. } => match self.eval(e, Some(coord))? {
                Val::Member(m) => {
                    let mut c = coord.to_vec();
                    c[m.h] = m.id;
                    self.cell_depth(&c, src, depth)
                }
                Val::Tuple(t) => {
                    let mut c = coord.to_vec();
                    for m in t {
                        c[m.h] = m.id;
                    }
                    self.cell_depth(&c, src, depth)
                }
                Val::Scalar(s) => Ok(Ready(s)),
                // The null member (a missing member ignored, PrevMember of the first): empty.
                Val::Set(s) if s.is_empty() => Ok(Ready(Scalar::Empty)),
                other => Err(QueryError::Type(format!(
                    "expected a value, found {}",
                    describe(&other)
                ))),
            },
            Expr::Unary { op, expr, .. } => {
                let v = get!(self.scalar(expr, coord, src, depth));
                Ok(Ready(match op {
                    UnaryOp::Minus => v.as_num().map(|n| Scalar::Num(-n)).unwrap_or(Scalar::Empty),
                    UnaryOp::Plus => v,
                    UnaryOp::Not => Scalar::Bool(!v.truthy()),
                    UnaryOp::Existing => return Err(unsupported("EXISTING", e)),
                }))
            }
            Expr::Binary { left, op, right, .. } => {
                let l = match self.scalar(left, coord, src, depth)? {
                    Ready(v) => v,
                    Pending => {
                        // Ask for the right side's values in the same round.
                        self.scalar(right, coord, src, depth)?;
                        return Ok(Pending);
                    }
                };
                if matches!(op, BinaryOp::And) && !l.truthy() {
                    return Ok(Ready(Scalar::Bool(false)));
                }
                if matches!(op, BinaryOp::Or) && l.truthy() {
                    return Ok(Ready(Scalar::Bool(true)));
                }
                let r = get!(self.scalar(right, coord, src, depth));
                Ok(Ready(binary(*op, &l, &r)))
            }
            Expr::Is { expr, target, .. } => match target {
                IsTarget::Null | IsTarget::Empty => {
                    let v = get!(self.scalar(expr, coord, src, depth));
                    Ok(Ready(Scalar::Bool(v == Scalar::Empty)))
                }
                IsTarget::Expr(other) => {
                    // A visual total IS the member it stands for.
                    let real = |v: Val| match v {
                        Val::Member(m) => Val::Member(self.space.real(m)),
                        other => other,
                    };
                    let a = real(self.eval(expr, Some(coord))?);
                    let b = real(self.eval(other, Some(coord))?);
                    Ok(Ready(Scalar::Bool(a == b)))
                }
            },
            Expr::Case {
                operand,
                whens,
                else_result,
                ..
            } => {
                let op = match operand {
                    Some(o) => Some(get!(self.scalar(o, coord, src, depth))),
                    None => None,
                };
                for w in whens {
                    let c = get!(self.scalar(&w.condition, coord, src, depth));
                    let hit = match &op {
                        Some(o) => binary(BinaryOp::Eq, o, &c).truthy(),
                        None => c.truthy(),
                    };
                    if hit {
                        return self.scalar(&w.result, coord, src, depth);
                    }
                }
                match else_result {
                    Some(x) => self.scalar(x, coord, src, depth),
                    None => Ok(Ready(Scalar::Empty)),
                }
            }
            Expr::Function { name, args, .. } => {
                let n = lc(&name.value);
                match n.as_str() {
                    "iif" => {
                        if args.len() != 3 {
                            return Err(QueryError::Type("IIf takes three arguments".into()));
                        }
                        let c = get!(self.scalar(&args[0], coord, src, depth));
                        self.scalar(if c.truthy() { &args[1] } else { &args[2] }, coord, src, depth)
                    }
                    "coalesceempty" => {
                        for a in args {
                            let v = get!(self.scalar(a, coord, src, depth));
                            if v != Scalar::Empty {
                                return Ok(Ready(v));
                            }
                        }
                        Ok(Ready(Scalar::Empty))
                    }
                    "isempty" => {
                        let v = get!(self.scalar(
                            args.first().ok_or_else(|| unsupported("IsEmpty()", e))?,
                            coord,
                            src,
                            depth
                        ));
                        Ok(Ready(Scalar::Bool(v == Scalar::Empty)))
                    }
                    "abs" | "int" | "round" | "cdbl" | "cint" => {
                        let v = get!(self.scalar(
                            args.first().ok_or_else(|| unsupported(&name.value, e))?,
                            coord,
                            src,
                            depth
                        ));
                        let digits = match args.get(1) {
                            Some(a) => get!(self.scalar(a, coord, src, depth)).as_num().unwrap_or(0.0),
                            None => 0.0,
                        };
                        Ok(Ready(match v.as_num() {
                            None => Scalar::Empty,
                            Some(x) => Scalar::Num(match n.as_str() {
                                "abs" => x.abs(),
                                "int" => x.floor(),
                                "round" | "cint" => {
                                    let f = 10f64.powi(digits as i32);
                                    (x * f).round() / f
                                }
                                _ => x,
                            }),
                        }))
                    }
                    "left" | "right" | "mid" | "len" | "instr" | "ucase" | "lcase" | "trim" | "cstr" => {
                        let mut vals = Vec::with_capacity(args.len());
                        for a in args {
                            vals.push(get!(self.scalar(a, coord, src, depth)));
                        }
                        Ok(Ready(string_function(&n, &vals)?))
                    }
                    "isleaf" => {
                        let m = self.arg_member(args, 0, Some(coord), "IsLeaf")?;
                        Ok(Ready(Scalar::Bool(self.children(m).is_empty())))
                    }
                    "isancestor" | "issibling" => {
                        let a = self.arg_member(args, 0, Some(coord), &name.value)?;
                        let b = self.arg_member(args, 1, Some(coord), &name.value)?;
                        Ok(Ready(Scalar::Bool(if n == "isancestor" {
                            a != b && self.is_ancestor_or_self(a, b)
                        } else {
                            a.h == b.h
                                && a != b
                                && self.parent(a) == self.parent(b)
                                && self.level_of(a) == self.level_of(b)
                        })))
                    }
                    "membertostr" | "tupletostr" | "settostr" => {
                        let v = self.eval(args.first().ok_or_else(|| unsupported(&name.value, e))?, Some(coord))?;
                        let tuple_text = |t: &Tuple| {
                            let parts: Vec<String> = t.iter().map(|m| self.space.member_unique_name(*m)).collect();
                            if parts.len() == 1 {
                                parts[0].clone()
                            } else {
                                format!("({})", parts.join(", "))
                            }
                        };
                        Ok(Ready(Scalar::Str(match v {
                            Val::Member(m) => self.space.member_unique_name(m),
                            Val::Tuple(t) => tuple_text(&t),
                            Val::Set(s) => format!("{{{}}}", s.iter().map(tuple_text).collect::<Vec<_>>().join(", ")),
                            other => return Err(QueryError::Type(format!("{}: got {}", name.value, describe(&other)))),
                        })))
                    }
                    "strtovalue" => {
                        let v = get!(self.scalar(
                            args.first().ok_or_else(|| unsupported("StrToValue()", e))?,
                            coord,
                            src,
                            depth
                        ));
                        let parsed = datakube_mdx::parse_expression(&text_of(&v))
                            .map_err(|err| QueryError::Syntax(err.to_string()))?;
                        self.scalar(&parsed, coord, src, depth + 1)
                    }
                    "format" | "format_string" => {
                        let v = get!(self.scalar(
                            args.first().ok_or_else(|| unsupported("Format()", e))?,
                            coord,
                            src,
                            depth
                        ));
                        let f = match args.get(1) {
                            Some(a) => Some(text_of(&get!(self.scalar(a, coord, src, depth)))),
                            None => None,
                        };
                        Ok(Ready(match v.as_num() {
                            Some(x) if !matches!(v, Scalar::Str(_)) => {
                                Scalar::Str(crate::format::format_value(x, f.as_deref(), self.space.lang))
                            }
                            _ => Scalar::Str(text_of(&v)),
                        }))
                    }
                    "sgn" | "sqr" | "sqrt" | "exp" | "log" | "log10" | "val" | "cbool" | "fix" => {
                        let v = get!(self.scalar(
                            args.first().ok_or_else(|| unsupported(&name.value, e))?,
                            coord,
                            src,
                            depth
                        ));
                        let Some(x) = v.as_num() else {
                            return Ok(Ready(if n == "val" { Scalar::Num(0.0) } else { Scalar::Empty }));
                        };
                        Ok(Ready(match n.as_str() {
                            "sgn" => Scalar::Num(x.signum() * if x == 0.0 { 0.0 } else { 1.0 }),
                            "sqr" | "sqrt" => Scalar::Num(x.sqrt()),
                            "exp" => Scalar::Num(x.exp()),
                            "log" => Scalar::Num(x.ln()),
                            "log10" => Scalar::Num(x.log10()),
                            "cbool" => Scalar::Bool(x != 0.0),
                            "fix" => Scalar::Num(x.trunc()),
                            _ => Scalar::Num(x),
                        }))
                    }
                    "customdata" => Ok(Ready(match &self.space.custom_data {
                        Some(c) => Scalar::Str(c.clone()),
                        None => Scalar::Empty,
                    })),
                    "now" | "date" => {
                        let secs = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs_f64())
                            .unwrap_or(0.0);
                        // OLE automation date: days since 1899-12-30.
                        let days = secs / 86400.0 + 25569.0;
                        Ok(Ready(Scalar::Num(if n == "date" { days.floor() } else { days })))
                    }
                    "dateserial" => {
                        let mut v = [0.0; 3];
                        for (i, slot) in v.iter_mut().enumerate() {
                            let a = args
                                .get(i)
                                .ok_or_else(|| QueryError::Type("DateSerial(year, month, day)".into()))?;
                            *slot = get!(self.scalar(a, coord, src, depth)).as_num().unwrap_or(0.0);
                        }
                        Ok(Ready(Scalar::Num(ole_date(v[0] as i64, v[1] as i64, v[2] as i64))))
                    }
                    "year" | "month" | "day" | "weekday" => {
                        let v = get!(self.scalar(
                            args.first().ok_or_else(|| unsupported(&name.value, e))?,
                            coord,
                            src,
                            depth
                        ));
                        let Some(d) = v.as_num().or_else(|| parse_iso_date(&text_of(&v))) else {
                            return Ok(Ready(Scalar::Empty));
                        };
                        let (y, m, dd) = civil_from_ole(d.floor() as i64);
                        Ok(Ready(Scalar::Num(match n.as_str() {
                            "year" => y as f64,
                            "month" => m as f64,
                            "day" => dd as f64,
                            // 1 = Sunday, as VBA.
                            _ => ((d.floor() as i64 - 1).rem_euclid(7) + 1) as f64,
                        })))
                    }
                    "sum" | "aggregate" | "count" | "avg" | "min" | "max" | "median" | "var" | "variance" | "varp"
                    | "variancep" | "stdev" | "stddev" | "stdevp" | "stddevp" | "distinctcount" | "correlation"
                    | "covariance" | "covariancen" | "rank" => {
                        self.aggregate_function(&n, &name.value, args, coord, src, depth)
                    }
                    _ => match self.eval(e, Some(coord))? {
                        Val::Scalar(s) => Ok(Ready(s)),
                        Val::Member(m) => {
                            let mut c = coord.to_vec();
                            c[m.h] = m.id;
                            self.cell_depth(&c, src, depth)
                        }
                        other => Err(QueryError::Type(format!(
                            "expected a value, found {}",
                            describe(&other)
                        ))),
                    },
                }
            }
            Expr::Property { object, name, .. } if lc(&name.value) == "value" => self.scalar(object, coord, src, depth),
            Expr::Property { .. } | Expr::Method { .. } => match self.eval(e, Some(coord))? {
                Val::Scalar(s) => Ok(Ready(s)),
                Val::Member(m) => {
                    let mut c = coord.to_vec();
                    c[m.h] = m.id;
                    self.cell_depth(&c, src, depth)
                }
                other => Err(QueryError::Type(format!(
                    "expected a value, found {}",
                    describe(&other)
                ))),
            },
            _ => Err(unsupported("this expression in a value context", e)),
        }
    }
}

impl Env<'_, '_> {
    /// Values of `expr` (or of the cell) at each tuple of `set` inside a cell: every tuple is
    /// evaluated so that all missing stored values are requested in one round.
    fn set_values(
        &self,
        set: &[Tuple],
        expr: Option<&Expr>,
        coord: &[u32],
        src: &mut dyn CellSource,
        depth: usize,
    ) -> Result<Option<Vec<Scalar>>> {
        let mut out = Vec::with_capacity(set.len());
        let mut pending = false;
        for t in set {
            let mut c = coord.to_vec();
            for m in t {
                c[m.h] = m.id;
            }
            let r = match expr {
                Some(x) => self.scalar(x, &c, src, depth)?,
                None => self.cell_depth(&c, src, depth)?,
            };
            match r {
                CellResult::Ready(v) => out.push(v),
                CellResult::Pending => pending = true,
            }
        }
        Ok((!pending).then_some(out))
    }

    /// Sum, Avg, Min, Max, Median, Var(P), Stdev(P), Count, DistinctCount, Correlation,
    /// Covariance(N), Rank, Aggregate over a set, with SSAS's treatment of empty cells: they
    /// are left out (Count counts them unless EXCLUDEEMPTY).
    fn aggregate_function(
        &self,
        n: &str,
        fname: &str,
        args: &[Expr],
        coord: &[u32],
        src: &mut dyn CellSource,
        depth: usize,
    ) -> Result<CellResult> {
        use CellResult::*;
        if n == "rank" {
            let target = match args.first().map(|a| self.eval(a, Some(coord))).transpose()? {
                Some(Val::Member(m)) => vec![m],
                Some(Val::Tuple(t)) => t,
                Some(Val::Set(s)) if s.len() == 1 => s[0].clone(),
                _ => return Err(QueryError::Type("Rank: argument 1 must be a tuple or member".into())),
            };
            let set = self.arg_set(args, 1, Some(coord), fname)?;
            let same = |t: &Tuple| t.len() == target.len() && target.iter().all(|m| t.contains(m));
            let Some(pos) = set.iter().position(same) else {
                return Ok(Ready(Scalar::Num(0.0)));
            };
            let Some(expr) = args.get(2) else {
                return Ok(Ready(Scalar::Num((pos + 1) as f64)));
            };
            let Some(vals) = self.set_values(&set, Some(expr), coord, src, depth)? else {
                return Ok(Pending);
            };
            let mine = vals[pos].as_num();
            let Some(mine) = mine else {
                return Ok(Ready(Scalar::Empty));
            };
            let higher = vals.iter().filter(|v| v.as_num().is_some_and(|x| x > mine)).count();
            return Ok(Ready(Scalar::Num((higher + 1) as f64)));
        }
        let set = self.arg_set(args, 0, Some(coord), fname)?;
        let flag_exclude = Self::flag(args, "EXCLUDEEMPTY");
        if n == "count" && !flag_exclude {
            return Ok(Ready(Scalar::Num(set.len() as f64)));
        }
        if n == "distinctcount" {
            let mut seen = HashSet::new();
            let uniq: Vec<Tuple> = set.into_iter().filter(|t| seen.insert(t.clone())).collect();
            let Some(vals) = self.set_values(&uniq, None, coord, src, depth)? else {
                return Ok(Pending);
            };
            return Ok(Ready(Scalar::Num(
                vals.iter().filter(|v| **v != Scalar::Empty).count() as f64
            )));
        }
        let value_arg = |i: usize| {
            args.get(i)
                .filter(|a| !matches!(a, Expr::Omitted { .. }) && !is_flag(a))
        };
        if matches!(n, "correlation" | "covariance" | "covariancen") {
            let y = value_arg(1).ok_or_else(|| QueryError::Type(format!("{fname} needs a numeric expression")))?;
            let ys = self.set_values(&set, Some(y), coord, src, depth)?;
            let xs = self.set_values(&set, value_arg(2), coord, src, depth)?;
            let (Some(ys), Some(xs)) = (ys, xs) else {
                return Ok(Pending);
            };
            let pairs: Vec<(f64, f64)> = xs
                .iter()
                .zip(&ys)
                .filter_map(|(x, y)| Some((x.as_num()?, y.as_num()?)))
                .collect();
            if pairs.is_empty() {
                return Ok(Ready(Scalar::Empty));
            }
            let k = pairs.len() as f64;
            let mx = pairs.iter().map(|p| p.0).sum::<f64>() / k;
            let my = pairs.iter().map(|p| p.1).sum::<f64>() / k;
            let sxy: f64 = pairs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
            let sxx: f64 = pairs.iter().map(|p| (p.0 - mx).powi(2)).sum();
            let syy: f64 = pairs.iter().map(|p| (p.1 - my).powi(2)).sum();
            return Ok(Ready(Scalar::Num(match n {
                "correlation" => sxy / (sxx * syy).sqrt(),
                "covariance" => sxy / k,
                _ => sxy / (k - 1.0),
            })));
        }
        if n == "aggregate" {
            // Aggregate follows the current measure's aggregator; distinct counts cannot be
            // added up from members, so they are refused rather than answered wrongly.
            let m = &self.space.measures[coord[MEASURES] as usize];
            if let QueryMeasureKind::Stored(sm) = &m.kind {
                use datakube_model::Aggregator as A;
                if matches!(sm.aggregator, A::DistinctCount | A::LastNonEmpty | A::AverageOverTime) {
                    return Err(QueryError::Unsupported(format!(
                        "Aggregate over the {:?} measure [{}] is not supported; use a subselect",
                        sm.aggregator, m.name
                    )));
                }
            }
        }
        let Some(vals) = self.set_values(&set, value_arg(1), coord, src, depth)? else {
            return Ok(Pending);
        };
        let nums: Vec<f64> = vals.iter().filter_map(Scalar::as_num).collect();
        if n == "count" {
            return Ok(Ready(Scalar::Num(nums.len() as f64)));
        }
        if nums.is_empty() {
            return Ok(Ready(Scalar::Empty));
        }
        let k = nums.len() as f64;
        let mean = nums.iter().sum::<f64>() / k;
        let ss = || nums.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
        let agg = match n {
            "aggregate" => {
                let m = &self.space.measures[coord[MEASURES] as usize];
                match &m.kind {
                    QueryMeasureKind::Stored(sm) => match sm.aggregator {
                        datakube_model::Aggregator::Min => "min",
                        datakube_model::Aggregator::Max => "max",
                        _ => "sum",
                    },
                    QueryMeasureKind::Calculated(_) => "sum",
                }
            }
            other => other,
        };
        Ok(Ready(match agg {
            "avg" => Scalar::Num(mean),
            "min" => Scalar::Num(nums.iter().cloned().fold(f64::INFINITY, f64::min)),
            "max" => Scalar::Num(nums.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
            "median" => {
                let mut v = nums.clone();
                v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
                let mid = v.len() / 2;
                Scalar::Num(if v.len() % 2 == 1 {
                    v[mid]
                } else {
                    (v[mid - 1] + v[mid]) / 2.0
                })
            }
            "var" | "variance" | "stdev" | "stddev" if nums.len() < 2 => Scalar::Empty,
            "var" | "variance" => Scalar::Num(ss() / (k - 1.0)),
            "varp" | "variancep" => Scalar::Num(ss() / k),
            "stdev" | "stddev" => Scalar::Num((ss() / (k - 1.0)).sqrt()),
            "stdevp" | "stddevp" => Scalar::Num((ss() / k).sqrt()),
            _ => Scalar::Num(nums.iter().sum()),
        }))
    }
}

/// A VisualTotals caption: `*` is the member's caption, `**` a literal asterisk.
fn substitute_pattern(pattern: &str, caption: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + caption.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '*' {
            out.push(c);
        } else if chars.peek() == Some(&'*') {
            chars.next();
            out.push('*');
        } else {
            out.push_str(caption);
        }
    }
    out
}

/// OLE automation date (days since 1899-12-30) of a civil date; months and days may overflow
/// as in VBA's DateSerial.
fn ole_date(y: i64, m: i64, d: i64) -> f64 {
    let y = y + (m - 1).div_euclid(12);
    let m = (m - 1).rem_euclid(12) + 1;
    // Days from civil (Howard Hinnant's algorithm), relative to 1970-01-01.
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    (days + 25569 + d - 1) as f64
}

/// (year, month, day) of an OLE automation date.
fn civil_from_ole(ole: i64) -> (i64, i64, i64) {
    let z = ole - 25569 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// `2024-03-31` (optionally followed by a time) as an OLE date.
fn parse_iso_date(s: &str) -> Option<f64> {
    let d = s.get(..10)?;
    let mut it = d.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, dd) = (it.next()??, it.next()??, it.next()??);
    Some(ole_date(y, m, dd))
}

/// The value of an arithmetic expression over number literals, if it is one.
fn const_number(e: &Expr) -> Option<f64> {
    match e {
        Expr::Literal {
            value: Literal::Number(n),
            ..
        } => n.parse().ok(),
        Expr::Nested { expr, .. } => const_number(expr),
        Expr::Unary {
            op: UnaryOp::Minus,
            expr,
            ..
        } => const_number(expr).map(|x| -x),
        Expr::Unary {
            op: UnaryOp::Plus,
            expr,
            ..
        } => const_number(expr),
        Expr::Binary { left, op, right, .. } => {
            let (a, b) = (const_number(left)?, const_number(right)?);
            Some(match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div => a / b,
                BinaryOp::Pow => a.powf(b),
                _ => return None,
            })
        }
        _ => None,
    }
}

/// A bare flag argument such as `EXCLUDEEMPTY`, `ALL`, `DESC`.
fn is_flag(e: &Expr) -> bool {
    const FLAGS: &[&str] = &[
        "EXCLUDEEMPTY",
        "INCLUDEEMPTY",
        "ALL",
        "ASC",
        "DESC",
        "BASC",
        "BDESC",
        "RECURSIVE",
        "POST",
        "INCLUDE_CALC_MEMBERS",
    ];
    matches!(e, Expr::Identifier(n) if n.segments.len() == 1 && FLAGS.iter().any(|f| n.segments[0].text().eq_ignore_ascii_case(f)))
}

fn text_of(v: &Scalar) -> String {
    match v {
        Scalar::Empty => String::new(),
        Scalar::Num(n) => {
            if n.fract() == 0.0 && n.abs() < 1e15 {
                format!("{}", *n as i64)
            } else {
                n.to_string()
            }
        }
        Scalar::Str(s) => s.clone(),
        Scalar::Bool(b) => b.to_string(),
    }
}

/// The VBA string functions Excel's filters use (Left, Right, Mid, Len, InStr, UCase, LCase,
/// Trim, CStr); positions count characters, 1-based.
fn string_function(name: &str, args: &[Scalar]) -> Result<Scalar> {
    let arg = |i: usize| {
        args.get(i)
            .ok_or_else(|| QueryError::Type(format!("{name}: argument {} is missing", i + 1)))
    };
    let num = |i: usize| -> Result<usize> { Ok(arg(i)?.as_num().unwrap_or(0.0).max(0.0) as usize) };
    let chars = |s: &str| s.chars().collect::<Vec<char>>();
    Ok(match name {
        "left" => Scalar::Str(chars(&text_of(arg(0)?)).into_iter().take(num(1)?).collect()),
        "right" => {
            let c = chars(&text_of(arg(0)?));
            let n = num(1)?.min(c.len());
            Scalar::Str(c[c.len() - n..].iter().collect())
        }
        "mid" => {
            let c = chars(&text_of(arg(0)?));
            let start = num(1)?.max(1) - 1;
            let len = if args.len() > 2 { num(2)? } else { c.len() };
            Scalar::Str(c.iter().skip(start).take(len).collect())
        }
        "len" => Scalar::Num(text_of(arg(0)?).chars().count() as f64),
        "ucase" => Scalar::Str(text_of(arg(0)?).to_uppercase()),
        "lcase" => Scalar::Str(text_of(arg(0)?).to_lowercase()),
        "trim" => Scalar::Str(text_of(arg(0)?).trim().to_string()),
        "cstr" => Scalar::Str(text_of(arg(0)?)),
        "instr" => {
            // InStr([start,] haystack, needle): 1-based position or 0; case-insensitive as Excel's search box.
            let (start, hay, needle) = if args.len() >= 3 {
                (num(0)?.max(1), text_of(arg(1)?), text_of(arg(2)?))
            } else {
                (1, text_of(arg(0)?), text_of(arg(1)?))
            };
            let hay: Vec<char> = hay.to_lowercase().chars().collect();
            let needle: Vec<char> = needle.to_lowercase().chars().collect();
            let pos = (start - 1..=hay.len().saturating_sub(needle.len()))
                .find(|&i| hay.len() >= needle.len() && hay[i..i + needle.len()] == needle[..]);
            Scalar::Num(pos.map(|p| p + 1).unwrap_or(0) as f64)
        }
        _ => {
            return Err(QueryError::Unsupported(format!(
                "the function {name} is not supported yet"
            )));
        }
    })
}

/// MDX arithmetic and comparison with empty-cell semantics: empty acts as 0 in + and − and
/// comparisons, and makes × and ÷ empty; x ÷ 0 is infinity (as in SSAS).
pub fn binary(op: BinaryOp, l: &Scalar, r: &Scalar) -> Scalar {
    use Scalar::*;
    let num = |s: &Scalar| s.as_num();
    match op {
        BinaryOp::Add | BinaryOp::Sub => {
            if let (Str(a), Str(b), BinaryOp::Add) = (l, r, op) {
                return Str(format!("{a}{b}"));
            }
            match (num(l), num(r)) {
                (None, None) => Empty,
                (a, b) => {
                    let (a, b) = (a.unwrap_or(0.0), b.unwrap_or(0.0));
                    Num(if op == BinaryOp::Add { a + b } else { a - b })
                }
            }
        }
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Pow => match (num(l), num(r)) {
            (Some(a), Some(b)) => Num(match op {
                BinaryOp::Mul => a * b,
                BinaryOp::Div => a / b,
                _ => a.powf(b),
            }),
            (Some(a), None) if op == BinaryOp::Div => {
                if a == 0.0 {
                    Empty
                } else {
                    Num(a / 0.0)
                }
            }
            _ => Empty,
        },
        BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => {
            let ord = match (l, r) {
                (Str(a), Str(b)) => a.cmp(b),
                _ => {
                    let (a, b) = (num(l).unwrap_or(0.0), num(r).unwrap_or(0.0));
                    a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
                }
            };
            use std::cmp::Ordering::*;
            Bool(match op {
                BinaryOp::Eq => ord == Equal,
                BinaryOp::NotEq => ord != Equal,
                BinaryOp::Lt => ord == Less,
                BinaryOp::LtEq => ord != Greater,
                BinaryOp::Gt => ord == Greater,
                _ => ord != Less,
            })
        }
        BinaryOp::And => Bool(l.truthy() && r.truthy()),
        BinaryOp::Or => Bool(l.truthy() || r.truthy()),
        BinaryOp::Xor => Bool(l.truthy() != r.truthy()),
        // `a || b`: string concatenation; an empty operand contributes nothing.
        BinaryOp::Concat => {
            let text = |s: &Scalar| match s {
                Empty => String::new(),
                Num(n) => n.to_string(),
                Str(s) => s.clone(),
                Bool(b) => b.to_string(),
            };
            match (l, r) {
                (Empty, Empty) => Empty,
                _ => Str(format!("{}{}", text(l), text(r))),
            }
        }
    }
}

pub fn describe(v: &Val) -> &'static str {
    match v {
        Val::Member(_) => "a member",
        Val::Tuple(_) => "a tuple",
        Val::Set(_) => "a set",
        Val::Level { .. } => "a level",
        Val::Hierarchy(_) => "a hierarchy",
        Val::Scalar(_) => "a value",
    }
}

fn check_distinct_hierarchies(t: &Tuple, space: &Space) -> Result<()> {
    for (i, a) in t.iter().enumerate() {
        if t[..i].iter().any(|b| b.h == a.h) {
            return Err(QueryError::Type(format!(
                "the hierarchy {} is used more than once in a tuple",
                space.hierarchy_unique_name(a.h)
            )));
        }
    }
    Ok(())
}

/// All combinations of the tuples of `a` and `b` (a's order outermost).
pub fn crossjoin(a: &[Tuple], b: &[Tuple], space: &Space) -> Result<Vec<Tuple>> {
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut t = x.clone();
            t.extend_from_slice(y);
            check_distinct_hierarchies(&t, space)?;
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::substitute_pattern;

    #[test]
    fn visual_totals_patterns() {
        assert_eq!(substitute_pattern("* - visual", "Region Nord"), "Region Nord - visual");
        assert_eq!(substitute_pattern("** Subtotal - *", "Dairy"), "* Subtotal - Dairy");
        assert_eq!(substitute_pattern("Total", "X"), "Total");
        assert_eq!(substitute_pattern("*/*", "æ"), "æ/æ");
        assert_eq!(substitute_pattern("", "X"), "");
    }
}
