//! The cube as the query sees it: hierarchy 0 is `[Measures]`, then every hierarchy of every
//! dimension in field-list order. MDX names resolve to [`Object`]s here.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use datakube_mdx::ast::{Expr, ObjectName, Segment};
use datakube_members::{HierarchyMembers, MemberStore};
use datakube_model::{Cube, Dimension, Hierarchy, Lang, MeasureKind, StoredMeasure};

use crate::error::{QueryError, Result};

/// Index of a hierarchy in the [`Space`]; 0 is `[Measures]`.
pub type HierIdx = usize;
/// A member: its hierarchy and its id there (for `[Measures]`, the measure index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberRef {
    pub h: HierIdx,
    pub id: u32,
}

pub type Tuple = Vec<MemberRef>;

pub const MEASURES: HierIdx = 0;

/// Member ids from here up denote calculated members of a hierarchy (`WITH MEMBER
/// [Store].[X] AS …`): id `CALC_BASE + i` is `HierCtx::calcs[i]`.
pub const CALC_BASE: u32 = 0x8000_0000;

/// Member ids from here up (inside the calculated range) denote visual totals that
/// `VisualTotals` made while a set was evaluated: id `VISUAL_BASE + i` is entry `i` of the
/// space's visual-total registry ([`Space::visual`]).
pub const VISUAL_BASE: u32 = 0xC000_0000;

/// Solve order of a visual total, as in SSAS (-4096, "visual totals calculation"): below every
/// calculated member and measure (default 0), so a calculated measure such as a ratio is
/// computed from the visual totals of its operands, not totalled itself.
pub const VISUAL_TOTAL_SOLVE_ORDER: i64 = -4096;

/// Most visual totals one statement may make (VisualTotals inside a per-cell calculation makes
/// the same ones again; those are shared, so only distinct ones count).
pub const MAX_VISUAL_TOTALS: usize = 100_000;

/// A member `VisualTotals` put in place of a member followed by its descendants: the real
/// member's unique name, level and parent, the pattern's caption, and as value the total of
/// only the members it covers in the set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisualTotal {
    pub h: HierIdx,
    /// The real member it stands for.
    pub of: u32,
    pub caption: String,
    /// The members it totals, in set order: real members and other visual totals (ids).
    pub parts: Vec<u32>,
    /// The real members whose fact rows it covers (visual parts replaced by their leaves).
    pub leaves: Vec<u32>,
}

/// A calculated member of a hierarchy other than `[Measures]`.
#[derive(Debug, Clone)]
pub struct CalcMember {
    pub name: String,
    pub unique_name: String,
    /// The member it hangs under (`None`: a top-level member of a hierarchy without All).
    pub parent: Option<u32>,
    /// Level number: one below the parent.
    pub level: u16,
    pub expr: Expr,
    pub format_string: Option<String>,
    pub solve_order: i64,
}

/// A measure of the query: a cube measure or one defined in `WITH MEMBER [Measures].[…]`.
#[derive(Debug, Clone)]
pub struct QueryMeasure {
    pub name: String,
    pub unique_name: String,
    pub caption: String,
    pub format_string: Option<String>,
    pub kind: QueryMeasureKind,
    pub visible: bool,
    /// SOLVE_ORDER of a calculated measure (0 for stored ones).
    pub solve_order: i64,
}

impl QueryMeasure {
    pub fn is_calculated(&self) -> bool {
        matches!(self.kind, QueryMeasureKind::Calculated(_))
    }
}

#[derive(Debug, Clone)]
pub enum QueryMeasureKind {
    Stored(StoredMeasure),
    Calculated(Expr),
}

/// A hierarchy other than Measures.
pub struct HierCtx<'a> {
    pub dim: &'a Dimension,
    pub hierarchy: &'a Hierarchy,
    pub members: Arc<HierarchyMembers>,
    /// Member id of the default member.
    pub default: u32,
    /// (level number, key text) → member id.
    key_index: HashMap<(u16, String), u32>,
    /// Calculated members defined by the query (ids from [`CALC_BASE`]).
    pub calcs: Vec<CalcMember>,
}

impl HierCtx<'_> {
    pub fn by_key(&self, level: u16, key: &str) -> Option<u32> {
        self.key_index.get(&(level, key.to_string())).copied()
    }
}

pub struct Space<'a> {
    pub cube: &'a Cube,
    pub lang: Lang,
    /// Index 0 is unused (Measures); 1.. are dimension hierarchies.
    pub hiers: Vec<Option<HierCtx<'a>>>,
    pub measures: Vec<QueryMeasure>,
    pub default_measure: u32,
    /// `MdxMissingMemberMode=Ignore`.
    pub ignore_missing_members: bool,
    /// What MDX `CustomData()` returns (the connection property, from an impersonating
    /// service account only).
    pub custom_data: Option<String>,
    /// Visual totals made during evaluation (ids from [`VISUAL_BASE`]). Set evaluation sees the
    /// space immutably, so the registry is interior-mutable and append-only: an id, once
    /// handed out, denotes the same visual total for the rest of the statement.
    visuals: RefCell<Vec<Rc<VisualTotal>>>,
    visual_ids: RefCell<HashMap<Rc<VisualTotal>, u32>>,
}

/// What a calculated member computes, and how it is shown.
#[derive(Debug, Clone)]
pub struct CalcDef {
    pub expr: Expr,
    pub format_string: Option<String>,
    pub solve_order: i64,
}

/// What a name denotes.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Member(MemberRef),
    Level {
        h: HierIdx,
        number: u16,
    },
    Hierarchy(HierIdx),
    /// `[Measures]` as a dimension/hierarchy.
    MeasuresHierarchy,
}

fn same(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

impl<'a> Space<'a> {
    /// Every member (no security applies: tests and public cubes).
    pub fn new(cube: &'a Cube, members: &'a MemberStore, lang: Lang) -> Result<Space<'a>> {
        Space::scoped(cube, members, lang, &datakube_members::MemberScope::all())
    }

    /// The members `scope` lets see: forbidden members do not exist in this space.
    pub fn scoped(
        cube: &'a Cube,
        members: &'a MemberStore,
        lang: Lang,
        scope: &datakube_members::MemberScope,
    ) -> Result<Space<'a>> {
        let mut hiers: Vec<Option<HierCtx<'a>>> = vec![None];
        for dim in &cube.dimensions {
            for h in &dim.hierarchies {
                let m = members
                    .scoped(&cube.name, &dim.name, &h.unique_name, scope)
                    .ok_or_else(|| QueryError::Execution(format!("the members of {} are not loaded", h.unique_name)))?;
                let mut key_index = HashMap::new();
                for (id, mem) in m.members.iter().enumerate() {
                    key_index.insert((mem.level, mem.key.to_string()), id as u32);
                }
                let default = h
                    .default_member
                    .as_deref()
                    .and_then(|u| m.by_unique_name(u))
                    .unwrap_or_else(|| m.first_member());
                hiers.push(Some(HierCtx {
                    dim,
                    hierarchy: h,
                    members: m,
                    default,
                    key_index,
                    calcs: Vec::new(),
                }));
            }
        }
        let measures: Vec<QueryMeasure> = cube
            .measures
            .iter()
            .map(|m| QueryMeasure {
                name: m.name.clone(),
                unique_name: m.unique_name.clone(),
                caption: m.caption.get(lang).to_string(),
                format_string: m.format_string.clone(),
                kind: match &m.kind {
                    MeasureKind::Stored(s) => QueryMeasureKind::Stored(s.clone()),
                    MeasureKind::Calculated(c) => QueryMeasureKind::Calculated(c.expr.clone()),
                },
                visible: m.visible,
                solve_order: 0,
            })
            .collect();
        let default_measure = cube.measures.iter().position(|m| m.visible).unwrap_or(0) as u32;
        Ok(Space {
            cube,
            lang,
            hiers,
            measures,
            default_measure,
            ignore_missing_members: false,
            custom_data: None,
            visuals: RefCell::new(Vec::new()),
            visual_ids: RefCell::new(HashMap::new()),
        })
    }

    pub fn hier(&self, h: HierIdx) -> &HierCtx<'a> {
        self.hiers[h].as_ref().expect("hierarchy index 0 is Measures")
    }

    pub fn hierarchy_count(&self) -> usize {
        self.hiers.len()
    }

    pub fn hierarchy_unique_name(&self, h: HierIdx) -> String {
        if h == MEASURES {
            "[Measures]".into()
        } else {
            self.hier(h).hierarchy.unique_name.clone()
        }
    }

    /// The default coordinate: each hierarchy's default member and the default measure.
    pub fn default_coordinate(&self) -> Vec<u32> {
        (0..self.hiers.len())
            .map(|h| {
                if h == MEASURES {
                    self.default_measure
                } else {
                    self.hier(h).default
                }
            })
            .collect()
    }

    /// Define a calculated measure (WITH MEMBER [Measures].[X] AS …); returns its index.
    pub fn add_calculated_measure(
        &mut self,
        name: &str,
        expr: Expr,
        format_string: Option<String>,
        solve_order: i64,
    ) -> u32 {
        if let Some(i) = self.measures.iter().position(|m| same(&m.name, name)) {
            self.measures[i].kind = QueryMeasureKind::Calculated(expr);
            self.measures[i].format_string = format_string;
            self.measures[i].solve_order = solve_order;
            return i as u32;
        }
        self.measures.push(QueryMeasure {
            name: name.to_string(),
            unique_name: format!("[Measures].[{}]", name.replace(']', "]]")),
            caption: name.to_string(),
            format_string,
            kind: QueryMeasureKind::Calculated(expr),
            visible: true,
            solve_order,
        });
        (self.measures.len() - 1) as u32
    }

    /// Define a calculated member of hierarchy `h` under `parent` (`WITH MEMBER [Store].[USA].[X]`);
    /// returns its member id. Its unique name is the name as written: under the hierarchy
    /// (`[Store].[X]`, parent the All member) or under the member written (`[Store].[USA].[X]`).
    /// A second definition with the same unique name replaces the first.
    pub fn add_calculated_member(
        &mut self,
        h: HierIdx,
        parent: Option<u32>,
        under_member: bool,
        name: &str,
        def: CalcDef,
    ) -> u32 {
        let level = match parent {
            Some(p) => self.member_level(MemberRef { h, id: p }) + 1,
            None => 1,
        };
        let prefix = match parent {
            Some(p) if under_member => self.member_unique_name(MemberRef { h, id: p }),
            _ => self.hierarchy_unique_name(h),
        };
        let unique_name = format!("{prefix}.[{}]", name.replace(']', "]]"));
        let hc = self.hiers[h].as_mut().expect("not Measures");
        let cm = CalcMember {
            name: name.to_string(),
            unique_name,
            parent,
            level,
            expr: def.expr,
            format_string: def.format_string,
            solve_order: def.solve_order,
        };
        if let Some(i) = hc.calcs.iter().position(|c| same(&c.unique_name, &cm.unique_name)) {
            hc.calcs[i] = cm;
            return CALC_BASE + i as u32;
        }
        hc.calcs.push(cm);
        CALC_BASE + (hc.calcs.len() - 1) as u32
    }

    /// The level number MDX calls 0 (LNum 0, `Levels(0)`): the All level, or the top level
    /// of a hierarchy without an All member.
    pub fn first_level(&self, h: HierIdx) -> u16 {
        if h == MEASURES || self.hier(h).members.has_all {
            0
        } else {
            1
        }
    }

    /// Whether `m` is not a member of the member tree of a hierarchy other than Measures: a
    /// calculated member or a visual total.
    pub fn is_calc(&self, m: MemberRef) -> bool {
        m.h != MEASURES && m.id >= CALC_BASE
    }

    /// The calculated member `m` (`WITH MEMBER`), if it is one (not for visual totals).
    pub fn calc_member(&self, m: MemberRef) -> Option<&CalcMember> {
        if m.h == MEASURES || m.id < CALC_BASE || m.id >= VISUAL_BASE {
            return None;
        }
        self.hier(m.h).calcs.get((m.id - CALC_BASE) as usize)
    }

    /// Whether `m` is a visual total made by `VisualTotals`.
    pub fn is_visual(&self, m: MemberRef) -> bool {
        m.h != MEASURES && m.id >= VISUAL_BASE
    }

    /// The visual total `m`, if it is one.
    pub fn visual(&self, m: MemberRef) -> Option<Rc<VisualTotal>> {
        if !self.is_visual(m) {
            return None;
        }
        self.visuals.borrow().get((m.id - VISUAL_BASE) as usize).cloned()
    }

    /// The member `m` stands for: the real member of a visual total, else `m` itself.
    pub fn real(&self, m: MemberRef) -> MemberRef {
        match self.visual(m) {
            Some(v) => MemberRef { h: m.h, id: v.of },
            None => m,
        }
    }

    /// Register the visual total of `of` over `parts` (ids of real members or visual totals of
    /// hierarchy `h`); the same definition twice gives the same id.
    pub fn add_visual_total(&self, h: HierIdx, of: u32, caption: String, parts: Vec<u32>) -> Result<u32> {
        let mut leaves: Vec<u32> = Vec::new();
        for &p in &parts {
            match self.visual(MemberRef { h, id: p }) {
                Some(v) => leaves.extend(&v.leaves),
                None => leaves.push(p),
            }
        }
        let mut seen = std::collections::HashSet::new();
        leaves.retain(|id| seen.insert(*id));
        let vt = Rc::new(VisualTotal {
            h,
            of,
            caption,
            parts,
            leaves,
        });
        if let Some(&id) = self.visual_ids.borrow().get(&vt) {
            return Ok(id);
        }
        let mut all = self.visuals.borrow_mut();
        if all.len() >= MAX_VISUAL_TOTALS {
            return Err(QueryError::Execution(format!(
                "VisualTotals: the statement makes more than {MAX_VISUAL_TOTALS} visual totals"
            )));
        }
        let id = VISUAL_BASE + all.len() as u32;
        all.push(vt.clone());
        self.visual_ids.borrow_mut().insert(vt, id);
        Ok(id)
    }

    /// Level number of a member (0 for the All member and for measures).
    pub fn member_level(&self, m: MemberRef) -> u16 {
        let m = self.real(m);
        if m.h == MEASURES {
            0
        } else if let Some(c) = self.calc_member(m) {
            c.level
        } else {
            self.hier(m.h).members.get(m.id).level
        }
    }

    pub fn member_parent(&self, m: MemberRef) -> Option<MemberRef> {
        let m = self.real(m);
        if m.h == MEASURES {
            return None;
        }
        let p = if let Some(c) = self.calc_member(m) {
            c.parent
        } else {
            self.hier(m.h).members.get(m.id).parent
        };
        // Without an All member, the internal root is no one's parent.
        p.filter(|&id| id != 0 || self.hier(m.h).members.has_all)
            .map(|id| MemberRef { h: m.h, id })
    }

    /// The unique name; a visual total keeps its real member's (as in SSAS).
    pub fn member_unique_name(&self, m: MemberRef) -> String {
        let m = self.real(m);
        if m.h == MEASURES {
            self.measures[m.id as usize].unique_name.clone()
        } else if let Some(c) = self.calc_member(m) {
            c.unique_name.clone()
        } else {
            self.hier(m.h).members.get(m.id).unique_name.clone()
        }
    }

    /// The member's name (not its caption).
    pub fn member_name(&self, m: MemberRef) -> String {
        let m = self.real(m);
        if m.h == MEASURES {
            self.measures[m.id as usize].name.clone()
        } else if let Some(c) = self.calc_member(m) {
            c.name.clone()
        } else {
            self.hier(m.h).members.get(m.id).name.clone()
        }
    }

    /// The caption; a visual total's comes from the VisualTotals pattern.
    pub fn member_caption(&self, m: MemberRef) -> String {
        if let Some(v) = self.visual(m) {
            return v.caption.clone();
        }
        if m.h == MEASURES {
            self.measures[m.id as usize].caption.clone()
        } else if let Some(c) = self.calc_member(m) {
            c.name.clone()
        } else {
            self.hier(m.h).members.get(m.id).caption(self.lang).to_string()
        }
    }

    /// Ids of the hierarchy's calculated members.
    pub fn calc_ids(&self, h: HierIdx) -> impl Iterator<Item = u32> + '_ {
        let n = if h == MEASURES { 0 } else { self.hier(h).calcs.len() };
        (0..n as u32).map(|i| CALC_BASE + i)
    }

    fn find_dimension_hierarchies(&self, name: &str) -> Vec<HierIdx> {
        (1..self.hiers.len())
            .filter(|&h| same(&self.hier(h).dim.name, name))
            .collect()
    }

    /// Resolve a compound name.
    pub fn resolve(&self, name: &ObjectName) -> Result<Object> {
        let segs = &name.segments;
        let text = |i: usize| segs[i].text();
        let is_name = |i: usize| matches!(segs[i], Segment::Name { .. });
        if segs.is_empty() {
            return Err(QueryError::Name("empty name".into()));
        }
        let printed = print_name(name);
        let not_found = || {
            QueryError::Name(format!(
                "'{printed}' (line {}, column {}) is not a member, level or hierarchy of cube [{}]",
                name.span.line, name.span.column, self.cube.name
            ))
        };
        // [Measures], [Measures].[X] and [Measures].[MeasuresLevel].[X]
        if is_name(0) && same(&text(0), "Measures") {
            let measures_level = segs.len() == 3 && is_name(1) && same(&text(1), "MeasuresLevel");
            return match segs.len() {
                1 => Ok(Object::MeasuresHierarchy),
                2 | 3 if is_name(segs.len() - 1) && (segs.len() == 2 || measures_level) => {
                    let n = text(segs.len() - 1);
                    self.measures
                        .iter()
                        .position(|m| same(&m.name, &n))
                        .map(|i| {
                            Object::Member(MemberRef {
                                h: MEASURES,
                                id: i as u32,
                            })
                        })
                        .ok_or_else(|| {
                            QueryError::Name(format!(
                                "the measure [{n}] (line {}, column {}) does not exist in cube [{}]; measures: {}",
                                name.span.line,
                                name.span.column,
                                self.cube.name,
                                self.measures
                                    .iter()
                                    .map(|m| format!("[{}]", m.name))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        })
                }
                _ => Err(not_found()),
            };
        }
        // The dimension, then the hierarchy (or the dimension's default hierarchy).
        let dims = self.find_dimension_hierarchies(&text(0));
        if dims.is_empty() {
            if let Some(found) = self.resolve_without_dimension(name) {
                return Ok(found);
            }
            return Err(QueryError::Name(format!(
                "'{printed}' (line {}, column {}): cube [{}] has no dimension [{}]; dimensions: {}",
                name.span.line,
                name.span.column,
                self.cube.name,
                text(0),
                self.cube
                    .dimensions
                    .iter()
                    .map(|d| format!("[{}]", d.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if segs.len() == 1 {
            return Ok(Object::Hierarchy(dims[0]));
        }
        let (h, rest) = match dims
            .iter()
            .find(|&&h| is_name(1) && same(&self.hier(h).hierarchy.name, &text(1)))
        {
            Some(&h) => (h, 2),
            None => (dims[0], 1),
        };
        if rest == segs.len() {
            return Ok(Object::Hierarchy(h));
        }
        self.resolve_in(name, h, rest)
    }

    /// Names that do not start with a dimension, as Mondrian and SSAS accept them when they
    /// are unambiguous: a name-path hierarchy (`[Time.Weekly]`), a measure (`[Sales Count]`),
    /// a level (`[Store City].Members`), or a member of any hierarchy (`[Bag Stuffers]`,
    /// `[USA].[CA]`); the first match in field-list order wins.
    fn resolve_without_dimension(&self, name: &ObjectName) -> Option<Object> {
        let segs = &name.segments;
        let Segment::Name { text: first, .. } = &segs[0] else {
            return None;
        };
        let hierarchies = 1..self.hiers.len();
        let bracketed = format!("[{first}]");
        if let Some(h) = hierarchies
            .clone()
            .find(|&h| same(&self.hier(h).hierarchy.unique_name, &bracketed))
        {
            return if segs.len() == 1 {
                Some(Object::Hierarchy(h))
            } else {
                self.resolve_in(name, h, 1).ok()
            };
        }
        if segs.len() == 1
            && let Some(i) = self.measures.iter().position(|m| same(&m.name, first))
        {
            return Some(Object::Member(MemberRef {
                h: MEASURES,
                id: i as u32,
            }));
        }
        if let Some(h) = hierarchies
            .clone()
            .find(|&h| self.hier(h).hierarchy.levels.iter().any(|l| same(&l.name, first)))
        {
            return self.resolve_in(name, h, 0).ok();
        }
        hierarchies
            .filter_map(|h| self.resolve_in(name, h, 0).ok())
            .find(|o| matches!(o, Object::Member(_)))
    }

    /// The rest of a name from segment `i` on, inside hierarchy `h`: a level, the All member,
    /// keys or a path of member names.
    fn resolve_in(&self, name: &ObjectName, h: HierIdx, rest: usize) -> Result<Object> {
        let segs = &name.segments;
        let text = |i: usize| segs[i].text();
        let is_name = |i: usize| matches!(segs[i], Segment::Name { .. });
        let printed = print_name(name);
        let not_found = || {
            QueryError::Name(format!(
                "'{printed}' (line {}, column {}) is not a member, level or hierarchy of cube [{}]",
                name.span.line, name.span.column, self.cube.name
            ))
        };
        let hc = self.hier(h);
        // A level name, the All member, a key or a member name path.
        let mut i = rest;
        let mut current: Option<u32> = None; // member id
        if is_name(i) {
            let t = text(i);
            if let Some(l) = hc.hierarchy.levels.iter().find(|l| same(&l.name, &t)) {
                let number = l.number as u16;
                if i + 1 == segs.len() {
                    return Ok(Object::Level { h, number });
                }
                // [Level].&[key] or [Level].[name]
                i += 1;
                let id = match &segs[i] {
                    Segment::Key { text, .. } => hc.by_key(number, text),
                    Segment::CompositeKey { parts, .. } => {
                        hc.by_key(number, parts.last().map(String::as_str).unwrap_or(""))
                    }
                    Segment::Name { text, .. } => hc
                        .members
                        .level_members(number as usize)
                        .iter()
                        .copied()
                        .find(|&id| same(&hc.members.get(id).name, text)),
                };
                current = Some(id.ok_or_else(not_found)?);
                i += 1;
            } else if same(&t, "(All)") && i + 1 == segs.len() && hc.members.has_all {
                return Ok(Object::Level { h, number: 0 });
            } else if hc.members.has_all
                && (same(&t, &hc.hierarchy.all_member.name) || same(&t, &hc.members.all().name))
            {
                current = Some(0);
                i += 1;
            }
        }
        while i < segs.len() {
            let next = match &segs[i] {
                Segment::Key { .. } | Segment::CompositeKey { .. } if current.is_none() => {
                    // [H].&[key]: the key on any level (the deepest level first).
                    let key = segs[i].text();
                    let key = key.rsplit('&').next().unwrap_or(&key).to_string();
                    (1..=hc.members.levels.len() as u16)
                        .rev()
                        .find_map(|lv| hc.by_key(lv, &key))
                }
                Segment::Key { .. } if current.is_some_and(|c| c >= CALC_BASE) => None,
                Segment::Key { text, .. } => {
                    let parent = current.unwrap_or(0);
                    hc.members
                        .get(parent)
                        .children
                        .iter()
                        .copied()
                        .find(|&c| hc.members.get(c).key.to_string() == *text)
                }
                Segment::CompositeKey { .. } => None,
                Segment::Name { .. } if current.is_some_and(|c| c >= CALC_BASE) => None,
                Segment::Name { text, .. } => {
                    let parent = current.unwrap_or(0);
                    let by_child = hc
                        .members
                        .get(parent)
                        .children
                        .iter()
                        .copied()
                        .find(|&c| same(&hc.members.get(c).name, text))
                        .or_else(|| {
                            // A calculated member defined under this parent (or under the root).
                            hc.calcs
                                .iter()
                                .position(|c| {
                                    same(&c.name, text) && (c.parent == current || (current.is_none() && c.level <= 1))
                                })
                                .map(|i| CALC_BASE + i as u32)
                        });
                    match (by_child, current) {
                        (Some(c), _) => Some(c),
                        // [H].[name] directly: search all members by name (first in hierarchy order).
                        (None, None) => hc
                            .members
                            .members
                            .iter()
                            .position(|m| m.level > 0 && same(&m.name, text))
                            .map(|p| p as u32),
                        (None, Some(_)) => None,
                    }
                }
            };
            current = Some(next.ok_or_else(not_found)?);
            i += 1;
        }
        match current {
            Some(id) => Ok(Object::Member(MemberRef { h, id })),
            None => Err(not_found()),
        }
    }
}

/// A name as written, for messages.
pub fn print_name(name: &ObjectName) -> String {
    name.segments
        .iter()
        .map(|s| match s {
            Segment::Name { text, .. } => format!("[{}]", text.replace(']', "]]")),
            Segment::Key { text, .. } => format!("&[{}]", text.replace(']', "]]")),
            Segment::CompositeKey { parts, .. } => parts.iter().map(|p| format!("&[{p}]")).collect(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datakube_engine::{Engine, EngineConfig, open_connection, sql_string};
    use datakube_mdx::ast::Expr;

    /// A name-path catalog over a tiny fact table: Store (Portland in two states, so City has
    /// repeating keys), Time without an All member, one measure.
    fn fixture() -> (tempfile::TempDir, datakube_model::Catalog, MemberStore) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&EngineConfig::default()).unwrap();
        let fact = dir.path().join("fact.parquet");
        conn.execute_batch(&format!(
            "COPY (SELECT * FROM (VALUES
                ('USA', 'OR', 'Portland', 1, 'Store 1', 1997, 19971, 'Q1', 5.0),
                ('USA', 'ME', 'Portland', 2, 'Store 2', 1997, 19972, 'Q2', 7.0),
                ('USA', 'OR', 'Salem', 3, 'Store 3', 1998, 19981, 'Q1', 11.0))
              t(country, state, city, store_id, store_name, yr, q_key, q, amount))
             TO {} (FORMAT parquet)",
            sql_string(&fact.to_string_lossy())
        ))
        .unwrap();
        let cap = |n: &str| format!("{{da: {n}, en: {n}}}");
        let level = |n: &str, key: &str, extra: &str| {
            format!(
                "        - name: {n}\n          caption: {}\n          key_column: {key}\n{extra}",
                cap(n)
            )
        };
        let yaml = format!(
            "cube:
  name: Sales
  caption: {}
  source: {{path: fact.parquet}}
  security: {{class: public}}
  dimensions:
    - name: Store
      caption: {}
      hierarchies:
      - name: Store
        caption: {}
        all_member: {{name: All Stores}}
        levels:
{}{}{}{}    - name: Time
      caption: {}
      hierarchies:
      - name: Time
        caption: {}
        has_all: false
        levels:
{}{}  measures:
    - name: Amount
      caption: {}
      column: amount
      aggregator: sum
",
            cap("Sales"),
            cap("Store"),
            cap("Store"),
            level("Store Country", "country", ""),
            level("Store State", "state", ""),
            level("Store City", "city", "          unique_members: false\n"),
            level("Store Name", "store_id", "          name_column: store_name\n"),
            cap("Time"),
            cap("Time"),
            level("Year", "yr", "          type: years\n"),
            level(
                "Quarter",
                "q_key",
                "          name_column: q\n          type: quarters\n"
            ),
            cap("Amount"),
        );
        let defs = dir.path().join("defs");
        std::fs::create_dir_all(&defs).unwrap();
        std::fs::write(
            defs.join("catalog.yaml"),
            "catalog: {name: T, caption: {da: T, en: T}, naming: name_path}\n",
        )
        .unwrap();
        std::fs::write(defs.join("sales.yaml"), yaml).unwrap();
        let catalog = datakube_model::load_catalog(&defs, None).unwrap_or_else(|d| panic!("{d:?}"));
        let engine = Engine::open(&EngineConfig::default()).unwrap();
        let members = MemberStore::load(
            &engine,
            &datakube_engine::storage::Snapshots::current(dir.path()).unwrap(),
            &catalog,
        )
        .unwrap();
        (dir, catalog, members)
    }

    fn resolve(sp: &Space, mdx: &str) -> Result<Object> {
        match datakube_mdx::parse_expression(mdx).unwrap() {
            Expr::Identifier(n) => sp.resolve(&n),
            other => panic!("not a name: {other:?}"),
        }
    }

    fn member_name(sp: &Space, mdx: &str) -> String {
        match resolve(sp, mdx) {
            Ok(Object::Member(m)) if m.h == MEASURES => sp.measures[m.id as usize].unique_name.clone(),
            Ok(Object::Member(m)) => sp.hier(m.h).members.get(m.id).unique_name.clone(),
            other => panic!("{mdx}: {other:?}"),
        }
    }

    #[test]
    fn name_path_names_resolve() {
        let (_dir, catalog, members) = fixture();
        let sp = Space::new(&catalog.cubes[0], &members, Lang::En).unwrap();
        let (store, time) = (1, 2);
        assert_eq!(sp.hierarchy_unique_name(store), "[Store]");
        // Repeating city keys: one member per parent.
        assert_eq!(
            member_name(&sp, "[Store].[USA].[OR].[Portland]"),
            "[Store].[USA].[OR].[Portland]"
        );
        assert_eq!(
            member_name(&sp, "[Store].[USA].[ME].[Portland]"),
            "[Store].[USA].[ME].[Portland]"
        );
        assert_eq!(sp.hier(store).members.level_members(3).len(), 3);
        assert_eq!(
            member_name(&sp, "[Store].[All Stores].[USA].[OR]"),
            "[Store].[USA].[OR]"
        );
        assert_eq!(member_name(&sp, "[Store].[All Stores]"), "[Store].[All Stores]");
        assert_eq!(
            member_name(&sp, "[Store].[Store City].[Salem]"),
            "[Store].[USA].[OR].[Salem]"
        );
        assert_eq!(
            member_name(&sp, "[Store].[Store 2]"),
            "[Store].[USA].[ME].[Portland].[Store 2]"
        );
        // Without the dimension: members, levels, measures.
        assert_eq!(member_name(&sp, "[Store 3]"), "[Store].[USA].[OR].[Salem].[Store 3]");
        assert_eq!(member_name(&sp, "[USA].[ME]"), "[Store].[USA].[ME]");
        assert_eq!(
            resolve(&sp, "[Store City]").unwrap(),
            Object::Level { h: store, number: 3 }
        );
        assert_eq!(member_name(&sp, "[Amount]"), "[Measures].[Amount]");
        assert_eq!(member_name(&sp, "Measures.[Amount]"), "[Measures].[Amount]");
        assert_eq!(
            member_name(&sp, "[Measures].[MeasuresLevel].[Amount]"),
            "[Measures].[Amount]"
        );
        assert_eq!(resolve(&sp, "Store").unwrap(), Object::Hierarchy(store));
        assert_eq!(resolve(&sp, "[Time].[Time]").unwrap(), Object::Hierarchy(time));
        assert!(resolve(&sp, "[Nowhere]").is_err());
    }

    #[test]
    fn visual_totals_are_registered_once_and_stand_for_their_member() {
        let (_dir, catalog, members) = fixture();
        let sp = Space::new(&catalog.cubes[0], &members, Lang::En).unwrap();
        let member = |mdx: &str| match resolve(&sp, mdx) {
            Ok(Object::Member(m)) => m,
            other => panic!("{mdx}: {other:?}"),
        };
        let (usa, or, salem, me) = (
            member("[Store].[USA]"),
            member("[Store].[USA].[OR]"),
            member("[Store].[USA].[OR].[Salem]"),
            member("[Store].[USA].[ME]"),
        );
        let h = usa.h;
        let v_or = sp.add_visual_total(h, or.id, "OR - v".into(), vec![salem.id]).unwrap();
        let v_usa = sp.add_visual_total(h, usa.id, "USA".into(), vec![v_or, me.id]).unwrap();
        assert!(v_or >= VISUAL_BASE && v_usa != v_or);
        // The same definition is the same member; another caption is another one.
        assert_eq!(
            sp.add_visual_total(h, or.id, "OR - v".into(), vec![salem.id]).unwrap(),
            v_or
        );
        assert_ne!(
            sp.add_visual_total(h, or.id, "OR".into(), vec![salem.id]).unwrap(),
            v_or
        );
        let (v_or, v_usa) = (MemberRef { h, id: v_or }, MemberRef { h, id: v_usa });
        // Leaves: visual parts replaced by what they cover.
        assert_eq!(sp.visual(v_usa).unwrap().leaves, vec![salem.id, me.id]);
        assert_eq!(sp.real(v_or), or);
        assert_eq!(sp.member_unique_name(v_or), "[Store].[USA].[OR]");
        assert_eq!(sp.member_name(v_or), "OR");
        assert_eq!(sp.member_caption(v_or), "OR - v");
        assert_eq!(sp.member_parent(v_or), Some(usa));
        assert_eq!(sp.member_level(v_or), sp.member_level(or));
        assert!(sp.is_calc(v_or) && sp.is_visual(v_or) && sp.calc_member(v_or).is_none());
        assert!(!sp.is_visual(or) && sp.visual(or).is_none());
    }

    #[test]
    fn a_hierarchy_without_all_member() {
        let (_dir, catalog, members) = fixture();
        let sp = Space::new(&catalog.cubes[0], &members, Lang::En).unwrap();
        let t = sp.hier(2);
        assert!(!t.members.has_all && sp.hier(1).members.has_all);
        // Member 0 is still the root (level 0); the default member is the first year.
        assert_eq!(t.members.level_members(0), &[0]);
        assert_eq!(t.members.get(t.default).unique_name, "[Time].[1997]");
        assert_eq!(t.default, t.members.first_member());
        assert_eq!(member_name(&sp, "[Time].[1998].[Q1]"), "[Time].[1998].[Q1]");
        assert!(resolve(&sp, "[Time].[All]").is_err());
        assert!(resolve(&sp, "[Time].[(All)]").is_err());
        assert!(t.members.by_unique_name(&t.members.all().unique_name).is_none());
        // Quarter keys are unique (year and quarter), names repeat.
        assert_eq!(t.members.level_members(2).len(), 3);
    }
}
