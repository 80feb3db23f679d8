//! Evaluation of MDX expressions: sets over the member trees, scalars per cell.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use datakube_mdx::ast::{BinaryOp, Expr, IsTarget, Literal, UnaryOp};

use crate::cells::CellFetcher;
use crate::error::{QueryError, Result};
use crate::space::{HierIdx, MEASURES, MemberRef, Object, QueryMeasureKind, Space, Tuple};

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
    /// Sets named inline with `AS` during evaluation, and the current tuple of each while
    /// `Generate` iterates it.
    aliases: RefCell<HashMap<String, Vec<Tuple>>>,
    current: RefCell<HashMap<String, Tuple>>,
}

const MAX_CALC_DEPTH: usize = 64;

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
            aliases: RefCell::new(HashMap::new()),
            current: RefCell::new(HashMap::new()),
            named_sets: HashMap::new(),
            allowed: vec![None; space.hierarchy_count()],
        }
    }

    fn visible(&self, m: MemberRef) -> bool {
        match &self.allowed[m.h] {
            None => true,
            Some(set) => set.contains(&m.id),
        }
    }

    fn children(&self, m: MemberRef) -> Vec<MemberRef> {
        if m.h == MEASURES {
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
        if m.h == MEASURES {
            0
        } else {
            self.space.hier(m.h).members.get(m.id).level
        }
    }

    fn parent(&self, m: MemberRef) -> Option<MemberRef> {
        if m.h == MEASURES {
            return None;
        }
        self.space
            .hier(m.h)
            .members
            .get(m.id)
            .parent
            .map(|id| MemberRef { h: m.h, id })
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
        let mut ids: Vec<u32> = (0..hm.members.len() as u32).collect();
        ids.sort_by_key(|&id| hm.get(id).ordinal);
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
                if name.segments.len() == 1 {
                    let key = lc(&name.segments[0].text());
                    if let Some(set) = self.named_sets.get(&key) {
                        return Ok(Val::Set(set.clone()));
                    }
                    if let Some(set) = self.aliases.borrow().get(&key) {
                        return Ok(Val::Set(set.clone()));
                    }
                }
                Ok(match self.space.resolve(name)? {
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
        )
    }

    fn member_function(&self, name: &str, args: &[Expr], coord: Option<&[u32]>, e: &Expr) -> Result<Val> {
        let n = lc(name);
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
            ("currentmember", Val::Hierarchy(h)) => {
                let c = coord.ok_or_else(|| QueryError::Unsupported("CurrentMember outside of a cell".into()))?;
                return Ok(Val::Member(MemberRef { h, id: c[h] }));
            }
            ("defaultmember", Val::Hierarchy(h)) => return Ok(Val::Member(self.default_member(h))),
            (_, Val::Member(m)) => m,
            (_, other) => {
                return Err(QueryError::Type(format!(
                    "{name} needs a member, got {}",
                    describe(&other)
                )));
            }
        };
        let hm = |m: MemberRef| &self.space.hier(m.h).members;
        let sibling = |m: MemberRef, delta: i64| -> Option<MemberRef> {
            if m.h == MEASURES {
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
        let v = self.eval(object, coord)?;
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
            (_, other) => Err(QueryError::Unsupported(format!(
                "the property or function .{name} on {} (line {}, column {}) is not supported yet",
                describe(&other),
                e.span().line,
                e.span().column
            ))),
        }
    }

    fn member_text(&self, m: MemberRef, what: &str) -> String {
        if m.h == MEASURES {
            let q = &self.space.measures[m.id as usize];
            return match what {
                "uniquename" | "member_unique_name" => q.unique_name.clone(),
                "caption" | "member_caption" => q.caption.clone(),
                _ => q.name.clone(),
            };
        }
        let mem = self.space.hier(m.h).members.get(m.id);
        match what {
            "uniquename" | "member_unique_name" => mem.unique_name.clone(),
            "caption" | "member_caption" => mem.caption(self.space.lang).to_string(),
            _ => mem.name.clone(),
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
            Expr::Function { name, args, .. } => self.set_function(&name.value, args, coord, e),
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
                    (Val::Member(a), Val::Member(b)) if a.h == b.h && a.h != MEASURES => (a, b),
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
            "except" => {
                // Left first: it may name sets (AS) that the right side uses.
                let l = self.arg_set(args, 0, coord, name)?;
                let r: HashSet<Tuple> = self.arg_set(args, 1, coord, name)?.into_iter().collect();
                Ok(l.into_iter().filter(|t| !r.contains(t)).collect())
            }
            "intersect" => {
                // Left first: it may name sets (AS) that the right side uses.
                let l = self.arg_set(args, 0, coord, name)?;
                let r: HashSet<Tuple> = self.arg_set(args, 1, coord, name)?.into_iter().collect();
                Ok(l.into_iter().filter(|t| r.contains(t)).collect())
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
                let vals = self.values_for(&set, Some(expr), coord)?;
                let mut idx: Vec<usize> = (0..set.len()).collect();
                let cmp = |a: &usize, b: &usize| match (&vals[*a], &vals[*b]) {
                    (Scalar::Str(x), Scalar::Str(y)) => x.cmp(y),
                    (x, y) => x
                        .as_num()
                        .unwrap_or(f64::NEG_INFINITY)
                        .partial_cmp(&y.as_num().unwrap_or(f64::NEG_INFINITY))
                        .unwrap_or(std::cmp::Ordering::Equal),
                };
                if desc {
                    idx.sort_by(|a, b| cmp(b, a));
                } else {
                    idx.sort_by(cmp);
                }
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
        let mut f = fetcher.try_borrow_mut().map_err(|_| {
            QueryError::Unsupported("a value filter inside a calculated member is not supported yet".into())
        })?;
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
        let hm = &self.space.hier(m.h).members;
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
            let already = set.get(i + 1).is_some_and(|next| self.parent(next[pos]) == Some(m));
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
        let m = &self.space.measures[coord[MEASURES] as usize];
        match &m.kind {
            QueryMeasureKind::Stored(_) => Ok(match src.stored(coord[MEASURES], coord) {
                Some(v) => CellResult::Ready(v),
                None => CellResult::Pending,
            }),
            QueryMeasureKind::Calculated(expr) => self.scalar(expr, coord, src, depth + 1),
        }
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
                let l = get!(self.scalar(left, coord, src, depth));
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
                    let a = self.eval(expr, Some(coord))?;
                    let b = self.eval(other, Some(coord))?;
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
                    "sum" | "aggregate" | "count" | "avg" | "min" | "max" => {
                        let set = self.arg_set(args, 0, Some(coord), &name.value)?;
                        if n == "count" {
                            return Ok(Ready(Scalar::Num(set.len() as f64)));
                        }
                        let mut vals = Vec::new();
                        for t in &set {
                            let mut c = coord.to_vec();
                            for m in t {
                                c[m.h] = m.id;
                            }
                            let v = match args.get(1) {
                                Some(x) => get!(self.scalar(x, &c, src, depth)),
                                None => get!(self.cell_depth(&c, src, depth)),
                            };
                            if let Some(x) = v.as_num() {
                                vals.push(x);
                            }
                        }
                        if vals.is_empty() {
                            return Ok(Ready(Scalar::Empty));
                        }
                        Ok(Ready(Scalar::Num(match n.as_str() {
                            "avg" => vals.iter().sum::<f64>() / vals.len() as f64,
                            "min" => vals.iter().cloned().fold(f64::INFINITY, f64::min),
                            "max" => vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                            _ => vals.iter().sum(),
                        })))
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
