//! The leak matrix of issue 5: for five municipal analysts (the development users aarhus,
//! laesoe, koebenhavn, odense and aalborg), hundreds of generated statements each over the
//! individual-level FLIS cubes (pivots with crossjoins, slicers, NON EMPTY, subselects naming
//! foreign kommuner, `WITH MEMBER` calculated measures, calculated members with `Aggregate`
//! over sets holding foreign kommuner, `StrToMember` of foreign members, DRILLTHROUGH,
//! MDSCHEMA_MEMBERS discovers with and without TREE_OP, DMVs and MDSCHEMA_CUBES). For every
//! answer:
//! - every cell equals a value computed here with hand-written DuckDB SQL over the same
//!   Parquet files with `WHERE kommunekode = <the user's kommune>` (no server code);
//! - every member (axes, discover and DMV rows) is checked against the dimension tables, read
//!   with SQL: no kommune but the user's, no region without it, no member of a per-kommune
//!   dimension (Distrikt, Skole, Organisation: the `kommunekode` of its dimension table row)
//!   of another kommune;
//! - every drillthrough row carries the user's kommunekode, and the rows are those SQL finds;
//! - naming a foreign member behaves as a missing member: a fault whose text is the one a
//!   member that does not exist gives (`MdxMissingMemberMode=Ignore`: left out).
//!
//! Negative controls prove the checkers can fail: run on the administrator's answers (who
//! sees every kommune) with a kommune user's expectations, they must report foreign members,
//! foreign drillthrough rows and differing cells.
//!
//! Environment: `LEAK_SEED` (default below, printed), `LEAK_PIVOTS` (generated MDX pivots per
//! user, default 160; about 115 statements of the other kinds come on top), `LEAK_ONLY=user:n` (only pivot n
//! of one user), `LEAK_VERBOSE=1` (print every statement).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::{Answer, Server};
use datakube_engine::duckdb::{Connection, types::ValueRef};
use datakube_model::format::{Aggregator, FilterValue};
use datakube_model::{Cube, MeasureKind, SecurityClass, Source, load_catalog};

const DEFAULT_SEED: u64 = 20_250_505;
/// Generated MDX pivots per user; the other statement kinds (about 115) come on top.
const DEFAULT_PIVOTS: usize = 160;

/// The kommune analysts of the development identity (auth/src/dev.rs), password = user name.
const USERS: [(&str, i64); 5] = [
    ("aarhus", 751),
    ("laesoe", 825),
    ("koebenhavn", 101),
    ("odense", 461),
    ("aalborg", 851),
];

/// Most cells a generated query may have (before NON EMPTY); larger shapes are redrawn.
const MAX_CELLS: usize = 1500;
const MAX_AXIS_TUPLES: usize = 400;

/// The member index of the `WITH MEMBER [H].[Aggregat] AS Aggregate(…)` of a query.
const CALC: usize = usize::MAX;
const CALC_NAME: &str = "Aggregat";

// ---------------------------------------------------------------------------------------
// A small PRNG (SplitMix64): reproducible, no dependency.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut r = Rng(seed);
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The cubes as this test understands them, read from the YAML through datakube_model and
// from the Parquet files through hand-written SQL.

struct Level {
    unique: String,
    /// Column of the wide table holding this level's key.
    col: String,
}

struct Member {
    /// 0 is the All level (parent-child: the depth).
    level: usize,
    key: String,
    lit: String,
    unique: String,
    parent: usize,
    children: Vec<usize>,
    /// The kommunekode of the member's dimension-table row (the key of a Kommune member, the
    /// `kommunekode` column of a school, district or organisational unit).
    owner: Option<i64>,
}

struct Hier {
    unique: String,
    /// Empty for parent-child hierarchies (not used for cells).
    levels: Vec<Level>,
    /// Index 0 is the All member.
    members: Vec<Member>,
    /// Members per level; index 0 holds only the All member.
    by_level: Vec<Vec<usize>>,
    parent_child: bool,
    /// Some member belongs to a kommune: the hierarchy is per kommune (or is the Kommune one).
    coded: bool,
    /// Fact-table foreign key (parent-child cells).
    fk: String,
}

impl Hier {
    fn is_ancestor_or_self(&self, a: usize, mut m: usize) -> bool {
        loop {
            if a == m {
                return true;
            }
            if m == 0 {
                return false;
            }
            m = self.members[m].parent;
        }
    }
    /// Ancestor-or-self of `m` at `level`.
    fn ancestor_at(&self, mut m: usize, level: usize) -> usize {
        while self.members[m].level > level {
            m = self.members[m].parent;
        }
        m
    }
    fn descendants_at(&self, m: usize, level: usize) -> Vec<usize> {
        let ml = self.members[m].level;
        if ml == level {
            return vec![m];
        }
        self.by_level[level]
            .iter()
            .copied()
            .filter(|&d| self.ancestor_at(d, ml) == m)
            .collect()
    }
    /// All descendants of `m` (not `m`).
    fn descendants(&self, m: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack: Vec<usize> = self.members[m].children.clone();
        while let Some(k) = stack.pop() {
            out.push(k);
            stack.extend(self.members[k].children.iter().copied());
        }
        out
    }
    /// The members a user of kommune `k` may see (`None`: everything), as documented in
    /// docs/security.md: members of the kommune and their descendants, their ancestors for
    /// navigation, the All member; hierarchies without kommune members are not restricted.
    fn visible(&self, k: Option<i64>) -> Vec<bool> {
        let n = self.members.len();
        let Some(k) = k.filter(|_| self.coded) else {
            return vec![true; n];
        };
        let mut vis = vec![false; n];
        for m in 0..n {
            if self.members[m].owner == Some(k) {
                vis[m] = true;
                for d in self.descendants(m) {
                    vis[d] = true;
                }
                let mut p = m;
                while p != 0 {
                    p = self.members[p].parent;
                    vis[p] = true;
                }
            }
        }
        vis[0] = true;
        vis
    }
}

struct Stored {
    agg: Aggregator,
    /// Wide-table column of the measure's fact column (`None` for count without a column).
    col: Option<String>,
    /// SQL predicate of the measure's `filter`.
    filter: Option<String>,
    /// Fact column (parent-child cells read the fact table directly).
    fact_col: Option<String>,
}

#[derive(Clone, Debug)]
enum Ex {
    Stored(usize),
    Const(f64),
    Add(Box<Ex>, Box<Ex>),
    Sub(Box<Ex>, Box<Ex>),
    Mul(Box<Ex>, Box<Ex>),
    Div(Box<Ex>, Box<Ex>),
    /// `IIF(a = 0, NULL, b)`.
    IifZeroNull(Box<Ex>, Box<Ex>),
}

#[derive(Clone)]
struct Qm {
    unique: String,
    ex: Ex,
}

struct CubeInfo {
    name: String,
    table: String,
    /// The fact table as `read_parquet(…)`.
    fact: String,
    hiers: Vec<Hier>,
    stored: Vec<Stored>,
    /// Measures a query may name: visible stored ones and the calculated ones this test can
    /// evaluate.
    measures: Vec<Qm>,
    individual: bool,
    /// The drillthrough source (`read_parquet(…)`) and its columns.
    drillthrough: Option<(String, Vec<String>)>,
}

impl CubeInfo {
    fn hier(&self, unique: &str) -> Option<usize> {
        self.hiers.iter().position(|h| h.unique.eq_ignore_ascii_case(unique))
    }
}

fn source_sql(s: &Server, src: &Source) -> String {
    match src {
        Source::Dataset { dataset, table } => s.table(dataset, table),
        Source::Path { glob } => format!(
            "read_parquet({}, hive_partitioning = true)",
            datakube_engine::sql_string(&s.data_dir.join(glob).to_string_lossy())
        ),
    }
}

fn ident(s: &str) -> String {
    datakube_engine::sql_ident(s)
}

fn filter_lit(v: &FilterValue) -> String {
    match v {
        FilterValue::String(s) => datakube_engine::sql_string(s),
        FilterValue::Integer(i) => i.to_string(),
        FilterValue::Number(n) => format!("{n}"),
        FilterValue::Boolean(b) => b.to_string(),
    }
}

/// The calculated measures of the YAML this test can evaluate, translated by hand. The
/// expression text must match exactly (whitespace aside), so a changed definition is noticed.
fn translate_calculated(expr: &str, stored_index: &dyn Fn(&str) -> Option<usize>) -> Option<Ex> {
    let e: String = expr.split_whitespace().collect::<Vec<_>>().join(" ");
    let measure = |t: &str| -> Option<Ex> {
        let name = t.trim().strip_prefix("[Measures].[")?.strip_suffix(']')?;
        stored_index(name).map(Ex::Stored)
    };
    if let Some(rest) = e.strip_prefix("IIF(").and_then(|r| r.strip_suffix(')')) {
        let (cond, rest) = rest.split_once(" = 0, NULL, ")?;
        let (a, b) = rest.split_once(" / ")?;
        if cond.trim() != b.trim() {
            return None;
        }
        let (c, a, b) = (measure(cond)?, measure(a)?, measure(b)?);
        return Some(Ex::IifZeroNull(
            Box::new(c),
            Box::new(Ex::Div(Box::new(a), Box::new(b))),
        ));
    }
    let (a, b) = e.split_once(" - ")?;
    Some(Ex::Sub(Box::new(measure(a)?), Box::new(measure(b)?)))
}

fn key_and_lit(v: ValueRef<'_>, what: &str) -> (String, String) {
    match v {
        ValueRef::Null => panic!("NULL key in {what}"),
        ValueRef::Text(t) => {
            let t = String::from_utf8_lossy(t).to_string();
            (t.clone(), datakube_engine::sql_string(&t))
        }
        ValueRef::TinyInt(v) => (v.to_string(), v.to_string()),
        ValueRef::SmallInt(v) => (v.to_string(), v.to_string()),
        ValueRef::Int(v) => (v.to_string(), v.to_string()),
        ValueRef::BigInt(v) => (v.to_string(), v.to_string()),
        ValueRef::UInt(v) => (v.to_string(), v.to_string()),
        other => panic!("key type of {what} not handled: {other:?}"),
    }
}

fn opt_i64(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Null => None,
        ValueRef::TinyInt(v) => Some(v.into()),
        ValueRef::SmallInt(v) => Some(v.into()),
        ValueRef::Int(v) => Some(v.into()),
        ValueRef::BigInt(v) => Some(v),
        ValueRef::UInt(v) => Some(v.into()),
        ValueRef::Text(t) => String::from_utf8_lossy(t).trim().parse().ok(),
        other => panic!("kommunekode type not handled: {other:?}"),
    }
}

fn load_cube(s: &Server, conn: &Connection, cube: &Cube, idx: usize) -> CubeInfo {
    let fact = source_sql(s, &cube.source);
    let scope_name = cube.security.row_scope_column.clone();
    let scope_col = match &scope_name {
        Some(c) => format!("f.{}", ident(c)),
        None => "NULL".to_string(),
    };
    let mut select: Vec<String> = vec![format!("{scope_col} AS scope")];
    let mut joins: Vec<String> = Vec::new();
    let mut hiers = Vec::new();
    let mut time_cols: HashMap<String, String> = HashMap::new();
    for (di, d) in cube.dimensions.iter().enumerate() {
        if let Some(fk) = &d.foreign_key {
            time_cols.insert(d.name.clone(), fk.clone());
        }
        for (hi, h) in d.hierarchies.iter().enumerate() {
            let is_scope = |c: &str| scope_name.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(c));
            if h.is_parent_child() {
                // Parent-child: (key, parent, kommunekode) rows of the dimension table.
                let src = source_sql(s, h.source.as_ref().expect("parent-child with a table"));
                let l = &h.levels[0];
                let parent = h.parent_column.as_ref().unwrap();
                let owner = l
                    .properties
                    .iter()
                    .find(|p| is_scope(&p.column))
                    .map(|p| ident(&p.column))
                    .unwrap_or_else(|| "NULL".into());
                let sql = format!(
                    "SELECT DISTINCT {}, {}, {owner} FROM {src} ORDER BY 1",
                    ident(&l.key_column),
                    ident(parent)
                );
                let mut st = conn.prepare(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
                let mut rows = st.query([]).unwrap();
                let mut raw: Vec<(String, String, Option<String>, Option<i64>)> = Vec::new();
                while let Some(r) = rows.next().unwrap() {
                    let (key, lit) = key_and_lit(r.get_ref(0).unwrap(), &h.unique_name);
                    let parent = match r.get_ref(1).unwrap() {
                        ValueRef::Null => None,
                        v => Some(key_and_lit(v, &h.unique_name).0),
                    };
                    raw.push((key, lit, parent, opt_i64(r.get_ref(2).unwrap())));
                }
                let index: HashMap<&str, usize> = raw.iter().enumerate().map(|(i, r)| (r.0.as_str(), i)).collect();
                let mut members = vec![Member {
                    level: 0,
                    key: String::new(),
                    lit: String::new(),
                    unique: h.all_member.unique_name.clone(),
                    parent: 0,
                    children: Vec::new(),
                    owner: None,
                }];
                for r in &raw {
                    members.push(Member {
                        level: 0,
                        key: r.0.clone(),
                        lit: r.1.clone(),
                        unique: format!("{}.&[{}]", h.unique_name, r.0),
                        parent: 0,
                        children: Vec::new(),
                        owner: r.3,
                    });
                }
                for (i, r) in raw.iter().enumerate() {
                    let p = match &r.2 {
                        Some(p) if *p != r.0 => index.get(p.as_str()).map(|&j| j + 1).unwrap_or(0),
                        _ => 0,
                    };
                    members[i + 1].parent = p;
                    members[p].children.push(i + 1);
                }
                // Depths.
                let mut by_level: Vec<Vec<usize>> = vec![vec![0]];
                let mut stack = vec![(0usize, 0usize)];
                while let Some((m, depth)) = stack.pop() {
                    members[m].level = depth;
                    if by_level.len() <= depth {
                        by_level.push(Vec::new());
                    }
                    by_level[depth].push(m);
                    for &c in &members[m].children {
                        stack.push((c, depth + 1));
                    }
                }
                let coded = members.iter().any(|m| m.owner.is_some());
                hiers.push(Hier {
                    unique: h.unique_name.clone(),
                    levels: Vec::new(),
                    members,
                    by_level,
                    parent_child: true,
                    coded,
                    fk: d.foreign_key.clone().unwrap_or_default(),
                });
                continue;
            }
            let alias = format!("d{di}_{hi}");
            let (col_owner, member_src) = match &h.source {
                Some(src) => {
                    let fk = d
                        .foreign_key
                        .as_ref()
                        .expect("dimension with a table has a foreign key");
                    let sql = source_sql(s, src);
                    joins.push(format!(
                        "LEFT JOIN {sql} {alias} ON f.{} = {alias}.{}",
                        ident(fk),
                        ident(&h.primary_key)
                    ));
                    (alias.clone(), sql)
                }
                None => ("f".to_string(), fact.clone()),
            };
            let hn = hiers.len();
            let mut levels = Vec::new();
            for (li, l) in h.levels.iter().enumerate() {
                let col = format!("h{hn}_l{}", li + 1);
                select.push(format!("{col_owner}.{} AS {col}", ident(&l.key_column)));
                levels.push(Level {
                    unique: l.unique_name.clone(),
                    col,
                });
            }
            // The level whose members belong to a kommune: its key is the kommunekode, or it
            // has a property read from the kommunekode column.
            let owner_level: Option<(usize, String)> = h.levels.iter().enumerate().find_map(|(li, l)| {
                if is_scope(&l.key_column) {
                    Some((li, ident(&l.key_column)))
                } else {
                    l.properties
                        .iter()
                        .find(|p| is_scope(&p.column))
                        .map(|p| (li, ident(&p.column)))
                }
            });
            // Members: the distinct level keys of the hierarchy's table.
            let key_cols: Vec<String> = h.levels.iter().map(|l| ident(&l.key_column)).collect();
            let owner_sel = owner_level
                .as_ref()
                .map(|(_, c)| c.clone())
                .unwrap_or_else(|| "NULL".into());
            let sql = format!(
                "SELECT DISTINCT {}, {owner_sel} FROM {member_src} ORDER BY ALL",
                key_cols.join(", ")
            );
            let mut members = vec![Member {
                level: 0,
                key: String::new(),
                lit: String::new(),
                unique: h.all_member.unique_name.clone(),
                parent: 0,
                children: Vec::new(),
                owner: None,
            }];
            let mut by_level: Vec<Vec<usize>> = vec![Vec::new(); h.levels.len() + 1];
            by_level[0].push(0);
            let mut index: HashMap<(usize, String), usize> = HashMap::new();
            let mut st = conn.prepare(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
            let mut rows = st.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                let mut parent = 0;
                let owner = opt_i64(r.get_ref(h.levels.len()).unwrap());
                for (li, l) in h.levels.iter().enumerate() {
                    let (key, lit) = key_and_lit(r.get_ref(li).unwrap(), &l.unique_name);
                    let member_owner = owner_level.as_ref().filter(|(ol, _)| *ol == li).and(owner);
                    let id = *index.entry((li + 1, key.clone())).or_insert_with(|| {
                        members.push(Member {
                            level: li + 1,
                            unique: format!("{}.&[{key}]", l.unique_name),
                            key: key.clone(),
                            lit,
                            parent,
                            children: Vec::new(),
                            owner: member_owner,
                        });
                        let id = members.len() - 1;
                        members[parent].children.push(id);
                        by_level[li + 1].push(id);
                        id
                    });
                    assert_eq!(members[id].parent, parent, "{} has two parents", members[id].unique);
                    assert_eq!(
                        members[id].owner, member_owner,
                        "{} belongs to two kommuner",
                        members[id].unique
                    );
                    parent = id;
                }
            }
            let coded = members.iter().any(|m| m.owner.is_some());
            hiers.push(Hier {
                unique: h.unique_name.clone(),
                levels,
                members,
                by_level,
                parent_child: false,
                coded,
                fk: d.foreign_key.clone().unwrap_or_default(),
            });
        }
    }
    // Measure columns.
    let mut cols: HashMap<String, String> = HashMap::new();
    let mut col_of = |c: &str, select: &mut Vec<String>| -> String {
        let n = cols.len();
        cols.entry(c.to_string())
            .or_insert_with(|| {
                let a = format!("c{n}");
                select.push(format!("f.{} AS {a}", ident(c)));
                a
            })
            .clone()
    };
    let mut stored = Vec::new();
    let mut stored_names: Vec<String> = Vec::new();
    let mut time_col: Option<String> = None;
    for m in &cube.measures {
        let MeasureKind::Stored(sm) = &m.kind else { continue };
        let col = sm.column.as_deref().map(|c| col_of(c, &mut select));
        let filter = sm.filter.as_ref().map(|f| {
            let c = col_of(&f.column, &mut select);
            format!(
                "{c} IN ({})",
                f.values.iter().map(filter_lit).collect::<Vec<_>>().join(", ")
            )
        });
        if let Some(td) = &sm.time_dimension {
            let fk = time_cols.get(td).expect("time dimension foreign key").clone();
            if let Some(prev) = &time_col {
                assert_eq!(prev, &fk, "one time dimension per cube");
            }
            time_col = Some(fk);
        }
        stored_names.push(m.name.clone());
        stored.push(Stored {
            agg: sm.aggregator,
            col,
            filter,
            fact_col: sm.column.clone(),
        });
    }
    if let Some(t) = &time_col {
        select.push(format!("f.{} AS t_leaf", ident(t)));
    }
    let table = format!("w{idx}");
    let sql = format!(
        "CREATE OR REPLACE TABLE {table} AS SELECT {} FROM {fact} f {}",
        select.join(", "),
        joins.join(" ")
    );
    conn.execute_batch(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let stored_index = |n: &str| stored_names.iter().position(|s| s.eq_ignore_ascii_case(n));
    let mut measures = Vec::new();
    for m in &cube.measures {
        match &m.kind {
            MeasureKind::Stored(_) if m.visible => measures.push(Qm {
                unique: m.unique_name.clone(),
                ex: Ex::Stored(stored_index(&m.name).unwrap()),
            }),
            MeasureKind::Stored(_) => {}
            MeasureKind::Calculated(c) => {
                if let Some(ex) = translate_calculated(&c.expression, &stored_index).filter(|_| m.visible) {
                    measures.push(Qm {
                        unique: m.unique_name.clone(),
                        ex,
                    })
                }
            }
        }
    }
    CubeInfo {
        name: cube.name.clone(),
        table,
        fact,
        hiers,
        stored,
        measures,
        individual: cube.security.class == SecurityClass::Individual,
        drillthrough: cube
            .drillthrough
            .as_ref()
            .map(|d| (source_sql(s, &d.source), d.columns.clone())),
    }
}

// ---------------------------------------------------------------------------------------
// Who owns a member: the leak checker. Built from the dimension tables (SQL), independent of
// the server's member scope.

#[derive(Clone, Debug)]
enum Owner {
    /// A member of one kommune (a kommune, school, district, organisational unit).
    Kommune(i64),
    /// A member above kommune members (a region, an organisational unit over several
    /// kommuner' units): the kommuner below it.
    Covers(BTreeSet<i64>),
    /// A member of a per-kommune dimension that belongs to no kommune.
    Nobody,
}

/// A statement around a member's unique name.
type Form<'a> = Box<dyn Fn(&str) -> String + 'a>;

/// Per individual cube (lower-case name): member unique name (lower-case) → owner, for the
/// hierarchies that have kommune members.
struct Owners {
    by_cube: HashMap<String, HashMap<String, Owner>>,
}

#[derive(Default, Clone)]
struct LeakCheck {
    members_checked: usize,
    leaks: Vec<String>,
}

impl Owners {
    fn build(cubes: &[CubeInfo]) -> Owners {
        let mut by_cube = HashMap::new();
        for c in cubes.iter().filter(|c| c.individual) {
            let mut map = HashMap::new();
            for h in c.hiers.iter().filter(|h| h.coded) {
                for (i, m) in h.members.iter().enumerate().skip(1) {
                    let owner = match m.owner {
                        Some(k) => Owner::Kommune(k),
                        None => {
                            let below: BTreeSet<i64> =
                                h.descendants(i).iter().filter_map(|&d| h.members[d].owner).collect();
                            if below.is_empty() {
                                Owner::Nobody
                            } else {
                                Owner::Covers(below)
                            }
                        }
                    };
                    map.insert(m.unique.to_lowercase(), owner);
                }
            }
            by_cube.insert(c.name.to_lowercase(), map);
        }
        Owners { by_cube }
    }

    /// Check one member shown to a user of kommune `k` in `cube`: a leak when it belongs to
    /// another kommune (or to none), or is a region or unit without the user's kommune below.
    fn check(&self, cube: &str, unique: &str, k: i64, what: &str, out: &mut LeakCheck) {
        let Some(map) = self.by_cube.get(&cube.to_lowercase()) else {
            return;
        };
        out.members_checked += 1;
        let leak = match map.get(&unique.to_lowercase()) {
            None => None,
            Some(Owner::Kommune(c)) if *c == k => None,
            Some(Owner::Covers(cs)) if cs.contains(&k) => None,
            Some(o) => Some(format!("{what}: [{cube}] {unique} (owner {o:?}) shown to kommune {k}")),
        };
        if let Some(l) = leak {
            out.leaks.push(l);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Values with MDX empty semantics (as SSAS): empty + x = x, empty × x = empty, x ÷ empty and
// x ÷ 0 are ±infinity (empty when x is 0 or empty; 0 ÷ 0 is NaN), IIF(b = 0, …) treats empty
// as 0. (As in tests/tests/differential.rs.)

#[derive(Clone, Copy, Debug, PartialEq)]
enum V {
    Empty,
    Num(f64),
}

impl V {
    fn num(self) -> Option<f64> {
        match self {
            V::Num(x) => Some(x),
            V::Empty => None,
        }
    }
    fn show(self) -> String {
        match self {
            V::Empty => "(empty)".into(),
            V::Num(x) => format!("{x}"),
        }
    }
}

fn eval(ex: &Ex, stored: &dyn Fn(usize) -> V) -> V {
    use V::*;
    match ex {
        Ex::Stored(i) => stored(*i),
        Ex::Const(c) => Num(*c),
        Ex::Add(a, b) | Ex::Sub(a, b) => match (eval(a, stored), eval(b, stored)) {
            (Empty, Empty) => Empty,
            (x, y) => {
                let (x, y) = (x.num().unwrap_or(0.0), y.num().unwrap_or(0.0));
                Num(if matches!(ex, Ex::Add(..)) { x + y } else { x - y })
            }
        },
        Ex::Mul(a, b) => match (eval(a, stored), eval(b, stored)) {
            (Num(x), Num(y)) => Num(x * y),
            _ => Empty,
        },
        Ex::Div(a, b) => match (eval(a, stored), eval(b, stored)) {
            (Num(x), Num(y)) => Num(x / y),
            (Num(x), Empty) if x != 0.0 => Num(x / 0.0),
            _ => Empty,
        },
        Ex::IifZeroNull(c, b) => {
            if eval(c, stored).num().unwrap_or(0.0) == 0.0 {
                Empty
            } else {
                eval(b, stored)
            }
        }
    }
}

fn collect_stored(ex: &Ex, out: &mut BTreeSet<usize>) {
    match ex {
        Ex::Stored(i) => {
            out.insert(*i);
        }
        Ex::Const(_) => {}
        Ex::Add(a, b) | Ex::Sub(a, b) | Ex::Mul(a, b) | Ex::Div(a, b) | Ex::IifZeroNull(a, b) => {
            collect_stored(a, out);
            collect_stored(b, out);
        }
    }
}

fn same_value(e: V, g: V) -> bool {
    match (e, g) {
        (V::Empty, V::Empty) => true,
        (V::Num(a), V::Num(b)) => {
            if a.is_nan() || b.is_nan() {
                a.is_nan() && b.is_nan()
            } else if a.is_infinite() || b.is_infinite() {
                a == b
            } else {
                let d = (a - b).abs();
                d <= 1e-6 || d <= 1e-9 * a.abs().max(b.abs())
            }
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Generated queries.

struct Ctx<'a> {
    conn: &'a Connection,
    cube: &'a CubeInfo,
    /// Global SQL predicates: row scope, subselect.
    global: Vec<String>,
    sqls: Vec<String>,
    sql_time: Duration,
}

/// A cell coordinate: the non-All members, sorted by hierarchy.
type Coord = Vec<(usize, usize)>;

impl Ctx<'_> {
    /// Values of the stored measures `need` at each coordinate, with one GROUP BY per
    /// combination of levels (and one more per semi-additive measure).
    fn fetch(&mut self, coords: &BTreeSet<Coord>, need: &BTreeSet<usize>) -> HashMap<Coord, Vec<V>> {
        let t0 = Instant::now();
        let cube = self.cube;
        let mut groups: HashMap<Vec<(usize, usize)>, Vec<&Coord>> = HashMap::new();
        for c in coords {
            let sig: Vec<(usize, usize)> = c.iter().map(|&(h, m)| (h, cube.hiers[h].members[m].level)).collect();
            groups.entry(sig).or_default().push(c);
        }
        let need: Vec<usize> = need.iter().copied().collect();
        let mut out: HashMap<Coord, Vec<V>> = HashMap::new();
        for (sig, cs) in groups {
            let gcols: Vec<String> = sig
                .iter()
                .map(|&(h, l)| cube.hiers[h].levels[l - 1].col.clone())
                .collect();
            let mut wh = self.global.clone();
            for (i, &(h, _)) in sig.iter().enumerate() {
                let keys: BTreeSet<&str> = cs.iter().map(|c| cube.hiers[h].members[c[i].1].lit.as_str()).collect();
                wh.push(format!(
                    "{} IN ({})",
                    gcols[i],
                    keys.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            let where_sql = if wh.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", wh.join(" AND "))
            };
            let gsel: Vec<String> = gcols.iter().map(|c| format!("CAST({c} AS VARCHAR)")).collect();
            let group_by = if gcols.is_empty() {
                String::new()
            } else {
                format!(" GROUP BY {}", gcols.join(", "))
            };
            // key vector → values per needed measure
            let mut vals: HashMap<Vec<String>, Vec<V>> = HashMap::new();
            let plain: Vec<usize> = need
                .iter()
                .copied()
                .filter(|&i| {
                    !matches!(
                        cube.stored[i].agg,
                        Aggregator::LastNonEmpty | Aggregator::AverageOverTime
                    )
                })
                .collect();
            let mut run = |sql: String, slots: &[usize], vals: &mut HashMap<Vec<String>, Vec<V>>| {
                let mut st = self.conn.prepare(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
                let mut rows = st.query([]).unwrap_or_else(|e| panic!("{e}\n{sql}"));
                while let Some(r) = rows.next().unwrap() {
                    let keys: Vec<String> = (0..gcols.len()).map(|i| r.get::<_, String>(i).unwrap()).collect();
                    let e = vals.entry(keys).or_insert_with(|| vec![V::Empty; need.len()]);
                    for (j, &slot) in slots.iter().enumerate() {
                        let v: Option<f64> = r.get(gcols.len() + j).unwrap();
                        e[slot] = v.map(V::Num).unwrap_or(V::Empty);
                    }
                }
                self.sqls.push(sql);
            };
            if !plain.is_empty() {
                let aggs: Vec<String> = plain.iter().map(|&i| plain_agg(&cube.stored[i])).collect();
                let mut sel = gsel.clone();
                sel.extend(aggs);
                // Without grouping, a grand total over no rows is empty, not 0.
                let having = if gcols.is_empty() { " HAVING count(*) > 0" } else { "" };
                let sql = format!(
                    "SELECT {} FROM {}{where_sql}{group_by}{having}",
                    sel.join(", "),
                    cube.table
                );
                let slots: Vec<usize> = plain
                    .iter()
                    .map(|i| need.iter().position(|n| n == i).unwrap())
                    .collect();
                run(sql, &slots, &mut vals);
            }
            for (slot, &i) in need.iter().enumerate() {
                let m = &cube.stored[i];
                let inner = sum_expr(m);
                let g: Vec<String> = (0..gcols.len()).map(|k| format!("g{k}")).collect();
                let inner_sel: Vec<String> = gcols.iter().enumerate().map(|(k, c)| format!("{c} AS g{k}")).collect();
                let inner_sql = format!(
                    "SELECT {}t_leaf AS t, {inner} AS v FROM {}{where_sql} GROUP BY ALL",
                    inner_sel.iter().map(|s| format!("{s}, ")).collect::<String>(),
                    cube.table
                );
                let outer_keys: String = g.iter().map(|k| format!("CAST({k} AS VARCHAR), ")).collect();
                let sql = match m.agg {
                    // The value of the latest period that has one, per coordinate.
                    Aggregator::LastNonEmpty => format!(
                        "WITH p AS ({inner_sql}) SELECT {outer_keys}CAST(v AS DOUBLE) FROM p WHERE v IS NOT NULL \
                         QUALIFY row_number() OVER ({}ORDER BY t DESC) = 1",
                        if g.is_empty() {
                            String::new()
                        } else {
                            format!("PARTITION BY {} ", g.join(", "))
                        }
                    ),
                    // The mean of the per-period sums over the periods with a value.
                    Aggregator::AverageOverTime => format!(
                        "WITH p AS ({inner_sql}) SELECT {outer_keys}CAST(sum(v) AS DOUBLE) / count(v) FROM p \
                         WHERE v IS NOT NULL{}",
                        if g.is_empty() {
                            " HAVING count(v) > 0".to_string()
                        } else {
                            format!(" GROUP BY {}", g.join(", "))
                        }
                    ),
                    _ => continue,
                };
                run(sql, &[slot], &mut vals);
            }
            for c in cs {
                let keys: Vec<String> = c.iter().map(|&(h, m)| cube.hiers[h].members[m].key.clone()).collect();
                let v = vals.get(&keys).cloned().unwrap_or_else(|| vec![V::Empty; need.len()]);
                out.insert(c.clone(), v);
            }
        }
        self.sql_time += t0.elapsed();
        out
    }
}

fn sum_expr(m: &Stored) -> String {
    let c = m.col.as_deref().unwrap_or("1");
    match &m.filter {
        Some(f) => format!("sum({c}) FILTER (WHERE {f})"),
        None => format!("sum({c})"),
    }
}

fn plain_agg(m: &Stored) -> String {
    let c = m.col.as_deref().unwrap_or("*");
    let f = m
        .filter
        .as_ref()
        .map(|f| format!(" FILTER (WHERE {f})"))
        .unwrap_or_default();
    let a = match m.agg {
        Aggregator::Sum => format!("sum({c})"),
        Aggregator::Count => format!("count({c})"),
        Aggregator::DistinctCount => format!("count(DISTINCT {c})"),
        Aggregator::Min => format!("min({c})"),
        Aggregator::Max => format!("max({c})"),
        Aggregator::Avg => format!("avg({c})"),
        Aggregator::LastNonEmpty | Aggregator::AverageOverTime => unreachable!("semi-additive"),
    };
    format!("CAST({a}{f} AS DOUBLE)")
}

/// The value of measure `qm` at each coordinate. A coordinate holding the query's `Aggregate` member is the combination of the cells of the
/// visible members of its set (sum; min and max for those aggregators).
fn values(ctx: &mut Ctx, q: &Query, cells: &[(Coord, usize)]) -> Vec<V> {
    let mut need = BTreeSet::new();
    for (_, m) in cells {
        collect_stored(&q.qms[*m].ex, &mut need);
    }
    let agg_members: Vec<usize> = q.agg.as_ref().map(|a| a.members.clone()).unwrap_or_default();
    let expand = |c: &Coord| -> Vec<Coord> {
        match c.iter().position(|&(_, m)| m == CALC) {
            None => vec![c.clone()],
            Some(pos) => agg_members
                .iter()
                .map(|&x| {
                    let mut c2 = c.clone();
                    if x == 0 {
                        c2.remove(pos);
                    } else {
                        c2[pos].1 = x;
                    }
                    c2
                })
                .collect(),
        }
    };
    let coords: BTreeSet<Coord> = cells.iter().flat_map(|c| expand(&c.0)).collect();
    let got = ctx.fetch(&coords, &need);
    let need: Vec<usize> = need.into_iter().collect();
    let cube = ctx.cube;
    cells
        .iter()
        .map(|(c, m)| {
            let one = |c: &Coord| {
                let vs = &got[c];
                eval(&q.qms[*m].ex, &|i| vs[need.iter().position(|&n| n == i).unwrap()])
            };
            if !c.iter().any(|&(_, x)| x == CALC) {
                return one(c);
            }
            let nums: Vec<f64> = expand(c).iter().filter_map(|c| one(c).num()).collect();
            if nums.is_empty() {
                return V::Empty;
            }
            let agg = match &q.qms[*m].ex {
                Ex::Stored(i) => cube.stored[*i].agg,
                _ => Aggregator::Sum,
            };
            V::Num(match agg {
                Aggregator::Min => nums.iter().copied().fold(f64::INFINITY, f64::min),
                Aggregator::Max => nums.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                _ => nums.iter().sum(),
            })
        })
        .collect()
}

fn coord_of(tuple: &[El], slicer: &[(usize, usize)]) -> (Coord, Option<usize>) {
    let mut c: Coord = slicer.iter().copied().filter(|&(_, m)| m != 0).collect();
    let mut measure = None;
    for e in tuple {
        match *e {
            El::M(h, m) if m != 0 => c.push((h, m)),
            El::M(..) => {}
            El::Measure(q) => measure = Some(q),
        }
    }
    c.sort();
    (c, measure)
}

// ---------------------------------------------------------------------------------------
// Generated pivots.

#[derive(Clone, Debug)]
enum HSet {
    Level(usize, usize),
    Children(usize, usize),
    /// `{m1, m2, …}`: may name members the user may not see.
    List(usize, Vec<usize>),
    Descendants(usize, usize, usize),
    /// `[H].Members`: every level, the All member included.
    Members(usize),
    /// `{StrToMember("…"), …}`.
    StrTo(usize, Vec<usize>),
    /// `{[H].[Aggregat]}`: the query's calculated member.
    Calc(usize),
}

impl HSet {
    fn hier(&self) -> usize {
        match self {
            HSet::Level(h, _)
            | HSet::Children(h, _)
            | HSet::List(h, _)
            | HSet::Descendants(h, _, _)
            | HSet::Members(h)
            | HSet::StrTo(h, _)
            | HSet::Calc(h) => *h,
        }
    }
}

struct HPart {
    sets: Vec<HSet>,
    crossjoin_fn: bool,
    /// `Filter(…, [Measures].[qm] > threshold)`.
    filter: Option<(usize, f64)>,
    /// `TopCount(…, k, [Measures].[qm])`.
    top: Option<(usize, usize)>,
}

struct AxisSpec {
    measures: Vec<usize>,
    measures_first: bool,
    hpart: Option<HPart>,
    non_empty: bool,
}

/// One element of an axis tuple.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
enum El {
    M(usize, usize),
    Measure(usize),
}

/// `WITH MEMBER [H].[Aggregat] AS Aggregate(<set>)`.
struct Agg {
    set: HSet,
    /// The members of the set the user sees (what the aggregate covers).
    members: Vec<usize>,
}

struct Query {
    cube: usize,
    /// Measures of this query: the cube's, then the WITH members.
    qms: Vec<Qm>,
    withs: Vec<(String, String)>,
    agg: Option<Agg>,
    axes: Vec<AxisSpec>,
    slicer: Vec<(usize, usize)>,
    slicer_measure: Option<usize>,
    sub: Option<(usize, Vec<usize>)>,
    /// Sent with `MdxMissingMemberMode=Ignore`.
    ignore: bool,
    /// Members the statement names that the user may not see.
    forbidden: Vec<String>,
}

#[derive(Default)]
struct Shapes {
    by_cube: BTreeMap<String, usize>,
    kommune_sets: usize,
    per_kommune_sets: usize,
    crossjoins: usize,
    non_empty: usize,
    slicers: usize,
    withs: usize,
    aggregates: usize,
    subselects: usize,
    foreign_subselects: usize,
    strtomember: usize,
    foreign_refs: usize,
    ignore_mode: usize,
    expected_faults: usize,
}

impl Shapes {
    fn add(&mut self, o: &Shapes) {
        for (k, v) in &o.by_cube {
            *self.by_cube.entry(k.clone()).or_default() += v;
        }
        self.kommune_sets += o.kommune_sets;
        self.per_kommune_sets += o.per_kommune_sets;
        self.crossjoins += o.crossjoins;
        self.non_empty += o.non_empty;
        self.slicers += o.slicers;
        self.withs += o.withs;
        self.aggregates += o.aggregates;
        self.subselects += o.subselects;
        self.foreign_subselects += o.foreign_subselects;
        self.strtomember += o.strtomember;
        self.foreign_refs += o.foreign_refs;
        self.ignore_mode += o.ignore_mode;
        self.expected_faults += o.expected_faults;
    }
}

struct Gen<'a> {
    cubes: &'a [CubeInfo],
    /// Per cube, per hierarchy: what the user sees.
    vis: &'a [Vec<Vec<bool>>],
    rng: Rng,
    ignore: bool,
    forbidden: Vec<String>,
}

impl Gen<'_> {
    fn visible(&self, c: usize, h: usize, m: usize) -> bool {
        self.vis[c][h][m]
    }
    /// A member of `level`: visible ones more often than the others.
    fn member_at(&mut self, c: usize, h: usize, level: usize) -> usize {
        let hi = &self.cubes[c].hiers[h];
        let vis: Vec<usize> = hi.by_level[level]
            .iter()
            .copied()
            .filter(|&m| self.visible(c, h, m))
            .collect();
        if !vis.is_empty() && self.rng.chance(0.55) {
            self.rng.pick(&vis)
        } else {
            self.rng.pick(&hi.by_level[level])
        }
    }
    fn note(&mut self, c: usize, h: usize, ms: &[usize]) {
        for &m in ms {
            if !self.visible(c, h, m) {
                let u = self.cubes[c].hiers[h].members[m].unique.clone();
                self.forbidden.push(u);
            }
        }
    }
    /// A list of members of one level; in Ignore mode at least one visible.
    fn list(&mut self, c: usize, h: usize, level: usize, n: usize) -> Vec<usize> {
        let mut ms = Vec::new();
        for _ in 0..n {
            let m = self.member_at(c, h, level);
            if !ms.contains(&m) {
                ms.push(m);
            }
        }
        ms
    }
    /// A non-leaf member for Children/Descendants: visible, unless a fault is wanted.
    fn parent_member(&mut self, c: usize, h: usize) -> Option<usize> {
        let hi = &self.cubes[c].hiers[h];
        let non_leaf: Vec<usize> = (0..hi.members.len())
            .filter(|&m| !hi.members[m].children.is_empty())
            .collect();
        let vis: Vec<usize> = non_leaf.iter().copied().filter(|&m| self.visible(c, h, m)).collect();
        let m = if !self.ignore && self.rng.chance(0.15) {
            self.rng.pick(&non_leaf)
        } else if vis.is_empty() {
            return None;
        } else {
            self.rng.pick(&vis)
        };
        self.note(c, h, &[m]);
        Some(m)
    }

    fn hset(&mut self, c: usize, h: usize) -> HSet {
        let hi = &self.cubes[c].hiers[h];
        let nlev = hi.levels.len();
        let coded = hi.coded;
        loop {
            match self.rng.below(if coded { 14 } else { 10 }) {
                0..=2 => return HSet::Level(h, 1 + self.rng.below(nlev)),
                3 | 4 => {
                    if let Some(m) = self.parent_member(c, h) {
                        return HSet::Children(h, m);
                    }
                }
                5..=7 | 10 | 11 => {
                    let n = 1 + self.rng.below(4);
                    let l = 1 + self.rng.below(nlev);
                    let mut ms = self.list(c, h, l, n);
                    if self.rng.chance(0.1) {
                        ms.push(0);
                    }
                    self.note(c, h, &ms);
                    return HSet::List(h, ms);
                }
                8 => {
                    if let Some(m) = self.parent_member(c, h) {
                        let ml = self.cubes[c].hiers[h].members[m].level;
                        let l = ml + 1 + self.rng.below(nlev - ml);
                        return HSet::Descendants(h, m, l);
                    }
                }
                9 if nlev <= 3 => return HSet::Members(h),
                12 | 13 => {
                    let l = 1 + self.rng.below(nlev);
                    let n = 1 + self.rng.below(3);
                    let ms = self.list(c, h, l, n);
                    self.note(c, h, &ms);
                    return HSet::StrTo(h, ms);
                }
                _ => {}
            }
        }
    }

    fn measure_ex(&mut self, qms: &[Qm]) -> (Ex, String) {
        let a = self.rng.below(qms.len());
        let b = self.rng.below(qms.len());
        let (ea, eb) = (Box::new(qms[a].ex.clone()), Box::new(qms[b].ex.clone()));
        let (ua, ub) = (&qms[a].unique, &qms[b].unique);
        match self.rng.below(6) {
            0 => (Ex::Add(ea, eb), format!("{ua} + {ub}")),
            1 => (Ex::Sub(ea, eb), format!("{ua} - {ub}")),
            2 => (Ex::Mul(ea, eb), format!("{ua} * {ub}")),
            3 => (Ex::Div(ea, eb), format!("{ua} / {ub}")),
            4 => (Ex::Mul(ea, Box::new(Ex::Const(2.0))), format!("{ua} * 2")),
            _ => (Ex::Sub(ea, Box::new(Ex::Const(1.5))), format!("{ua} - 1.5")),
        }
    }

    /// The set of an `Aggregate` member on hierarchy `h`: members of one level.
    fn agg_set(&mut self, c: usize, h: usize) -> Option<HSet> {
        let nlev = self.cubes[c].hiers[h].levels.len();
        Some(match self.rng.below(3) {
            0 => HSet::Level(h, 1 + self.rng.below(nlev)),
            1 => {
                let m = self.parent_member(c, h)?;
                HSet::Children(h, m)
            }
            _ => {
                let l = 1 + self.rng.below(nlev);
                let n = 2 + self.rng.below(4);
                let ms = self.list(c, h, l, n);
                self.note(c, h, &ms);
                HSet::List(h, ms)
            }
        })
    }

    fn query(&mut self, allowed: &[usize]) -> Query {
        let ci = self.rng.pick(allowed);
        let cubes = self.cubes;
        let cube = &cubes[ci];
        let mut hs: Vec<usize> = (0..cube.hiers.len()).filter(|&h| !cube.hiers[h].parent_child).collect();
        self.rng.shuffle(&mut hs);
        // The Kommune hierarchy and the per-kommune ones first, most of the time.
        let coded: Vec<usize> = hs.iter().copied().filter(|&h| cube.hiers[h].coded).collect();
        for h in coded {
            if self.rng.chance(0.6) {
                hs.retain(|&x| x != h);
                hs.insert(0, h);
            }
        }
        // Aggregate over a set: only for measures whose Aggregate is a sum, min or max.
        let additive: Vec<Qm> = cube
            .measures
            .iter()
            .filter(|m| {
                matches!(&m.ex, Ex::Stored(i) if matches!(cube.stored[*i].agg,
                    Aggregator::Sum | Aggregator::Count | Aggregator::Min | Aggregator::Max))
            })
            .cloned()
            .collect();
        let mut agg = None;
        let mut qms = cube.measures.clone();
        let mut withs = Vec::new();
        if !additive.is_empty() && self.rng.chance(0.3) {
            let h = hs.remove(0);
            if let Some(set) = self.agg_set(ci, h) {
                qms = additive;
                agg = Some(Agg {
                    set,
                    members: Vec::new(),
                });
            }
        }
        if agg.is_none() {
            let nw = match self.rng.below(10) {
                0..=5 => 0,
                6..=8 => 1,
                _ => 2,
            };
            for i in 0..nw {
                let (ex, text) = self.measure_ex(&qms);
                let name = format!("[Measures].[Calc {}]", i + 1);
                withs.push((name.clone(), text));
                qms.push(Qm { unique: name, ex });
            }
        }
        let agg_h = agg.as_ref().map(|a: &Agg| a.set.hier());
        let agg_on_axis = agg.is_some() && self.rng.chance(0.7);
        let mut hs = hs.into_iter();
        let naxes = if self.rng.chance(0.6) { 2 } else { 1 };
        let measures_axis = if self.rng.chance(0.6) {
            Some(self.rng.below(naxes))
        } else {
            None
        };
        let mut axes = Vec::new();
        for a in 0..naxes {
            let mut measures = Vec::new();
            if measures_axis == Some(a) {
                let n = (1 + self.rng.below(3)).min(qms.len());
                for w in cube.measures.len()..qms.len() {
                    if self.rng.chance(0.8) {
                        measures.push(w);
                    }
                }
                while measures.len() < n {
                    let m = self.rng.below(qms.len());
                    if !measures.contains(&m) {
                        measures.push(m);
                    }
                }
            }
            let nh = if measures.is_empty() {
                1 + usize::from(self.rng.chance(0.35))
            } else {
                self.rng.below(2) + usize::from(self.rng.chance(0.1))
            };
            let mut sets = Vec::new();
            if a == 0
                && agg_on_axis
                && let Some(h) = agg_h
            {
                sets.push(HSet::Calc(h));
            }
            for _ in 0..nh {
                if let Some(h) = hs.next() {
                    sets.push(self.hset(ci, h));
                }
            }
            let hpart = (!sets.is_empty()).then(|| HPart {
                sets,
                crossjoin_fn: self.rng.chance(0.5),
                filter: None,
                top: None,
            });
            if measures.is_empty() && hpart.is_none() {
                if measures_axis.is_some() {
                    continue;
                }
                measures.push(self.rng.below(qms.len()));
            }
            axes.push(AxisSpec {
                measures,
                measures_first: self.rng.chance(0.5),
                hpart,
                non_empty: self.rng.chance(0.5),
            });
        }
        let rest: Vec<usize> = hs.collect();
        let mut rest = rest.into_iter();
        let mut slicer = Vec::new();
        if let (Some(h), false) = (agg_h, agg_on_axis) {
            slicer.push((h, CALC));
        } else if self.rng.chance(0.4)
            && let Some(h) = rest.next()
        {
            // A member the user sees (a foreign one would only make a fault).
            let hi = &cube.hiers[h];
            let l = 1 + self.rng.below(hi.levels.len());
            let vis: Vec<usize> = hi.by_level[l]
                .iter()
                .copied()
                .filter(|&m| self.visible(ci, h, m))
                .collect();
            if !vis.is_empty() {
                slicer.push((h, self.rng.pick(&vis)));
            }
        }
        let slicer_measure = if axes.iter().all(|a| a.measures.is_empty()) {
            Some(self.rng.below(qms.len()))
        } else {
            None
        };
        let mut sub = None;
        if self.rng.chance(0.3) {
            // On an unused hierarchy, or on one an axis shows (never the Aggregate's).
            let axis_hiers: Vec<usize> = axes
                .iter()
                .filter_map(|a| a.hpart.as_ref())
                .flat_map(|p| p.sets.iter())
                .map(|s| s.hier())
                .filter(|&h| Some(h) != agg_h)
                .collect();
            let h = match rest.next() {
                Some(h) if self.rng.chance(0.5) || axis_hiers.is_empty() => Some(h),
                _ if !axis_hiers.is_empty() => Some(self.rng.pick(&axis_hiers)),
                _ => None,
            };
            if let Some(h) = h {
                let hi = &cube.hiers[h];
                let l = 1 + self.rng.below(hi.levels.len());
                let n = 1 + self.rng.below(3);
                let mut ms = self.list(ci, h, l, n);
                // In Ignore mode the subselect keeps one member the user sees.
                if self.ignore && !ms.iter().any(|&m| self.visible(ci, h, m)) {
                    let vis: Vec<usize> = hi.by_level[l]
                        .iter()
                        .copied()
                        .filter(|&m| self.visible(ci, h, m))
                        .collect();
                    if vis.is_empty() {
                        ms.clear();
                    } else {
                        ms.push(self.rng.pick(&vis));
                    }
                }
                if !ms.is_empty() {
                    self.note(ci, h, &ms);
                    sub = Some((h, ms));
                }
            }
        }
        Query {
            cube: ci,
            qms,
            withs,
            agg,
            axes,
            slicer,
            slicer_measure,
            sub,
            ignore: self.ignore,
            forbidden: std::mem::take(&mut self.forbidden),
        }
    }
}

/// Whether member `m` of hierarchy `h` survives the subselect (exists in the subcube).
fn in_subcube(q: &Query, cube: &CubeInfo, vis: &[Vec<bool>], h: usize, m: usize) -> bool {
    if m == CALC {
        return true;
    }
    match &q.sub {
        Some((sh, ms)) if *sh == h => {
            let hi = &cube.hiers[h];
            ms.iter()
                .filter(|&&s| vis[h][s])
                .any(|&s| hi.is_ancestor_or_self(m, s) || hi.is_ancestor_or_self(s, m))
        }
        _ => true,
    }
}

/// The members of a set as the user sees them (before the subselect).
fn hset_visible(q: &Query, cube: &CubeInfo, vis: &[Vec<bool>], s: &HSet) -> Vec<usize> {
    let h = s.hier();
    let hi = &cube.hiers[h];
    let ms: Vec<usize> = match s {
        HSet::Level(_, l) => hi.by_level[*l].clone(),
        HSet::Children(_, m) => hi.members[*m].children.clone(),
        HSet::List(_, ms) | HSet::StrTo(_, ms) => ms.clone(),
        HSet::Descendants(_, m, l) => hi.descendants_at(*m, *l),
        HSet::Members(_) => (0..hi.members.len()).collect(),
        HSet::Calc(_) => return vec![CALC],
    };
    let _ = q;
    ms.into_iter().filter(|&m| vis[h][m]).collect()
}

fn hset_members(q: &Query, cube: &CubeInfo, vis: &[Vec<bool>], s: &HSet) -> Vec<usize> {
    hset_visible(q, cube, vis, s)
        .into_iter()
        .filter(|&m| in_subcube(q, cube, vis, s.hier(), m))
        .collect()
}

fn hset_mdx(cube: &CubeInfo, s: &HSet) -> String {
    let hi = &cube.hiers[s.hier()];
    match s {
        HSet::Level(_, l) => format!("{}.Members", hi.levels[*l - 1].unique),
        HSet::Children(_, m) => format!("{}.Children", hi.members[*m].unique),
        HSet::List(_, ms) => format!(
            "{{{}}}",
            ms.iter()
                .map(|&m| hi.members[m].unique.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        HSet::Descendants(_, m, l) => format!("Descendants({}, {})", hi.members[*m].unique, hi.levels[*l - 1].unique),
        HSet::Members(_) => format!("{}.Members", hi.unique),
        HSet::StrTo(_, ms) => format!(
            "{{{}}}",
            ms.iter()
                .map(|&m| format!("StrToMember(\"{}\")", hi.members[m].unique))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        HSet::Calc(_) => format!("{{{}.[{CALC_NAME}]}}", hi.unique),
    }
}

fn hpart_tuples(q: &Query, cube: &CubeInfo, vis: &[Vec<bool>], p: &HPart) -> Vec<Vec<El>> {
    let mut out: Vec<Vec<El>> = vec![Vec::new()];
    for s in &p.sets {
        let ms = hset_members(q, cube, vis, s);
        out = out
            .iter()
            .flat_map(|t| {
                ms.iter().map(move |&m| {
                    let mut t = t.clone();
                    t.push(El::M(s.hier(), m));
                    t
                })
            })
            .collect();
    }
    out
}

fn hpart_mdx(q: &Query, cube: &CubeInfo, p: &HPart) -> String {
    let parts: Vec<String> = p.sets.iter().map(|s| hset_mdx(cube, s)).collect();
    let mut s = if parts.len() == 1 {
        parts[0].clone()
    } else if p.crossjoin_fn {
        format!("CrossJoin({})", parts.join(", "))
    } else {
        parts.join(" * ")
    };
    if let Some((m, t)) = p.filter {
        s = format!("Filter({s}, {} > {t})", q.qms[m].unique);
    }
    if let Some((m, k)) = p.top {
        s = format!("TopCount({s}, {k}, {})", q.qms[m].unique);
    }
    s
}

fn measures_mdx(q: &Query, ms: &[usize]) -> String {
    format!(
        "{{{}}}",
        ms.iter()
            .map(|&m| q.qms[m].unique.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn axis_mdx(q: &Query, cube: &CubeInfo, a: &AxisSpec) -> String {
    let set = match (&a.hpart, a.measures.is_empty()) {
        (Some(p), true) => hpart_mdx(q, cube, p),
        (None, _) => measures_mdx(q, &a.measures),
        (Some(p), false) => {
            let (m, h) = (measures_mdx(q, &a.measures), hpart_mdx(q, cube, p));
            if a.measures_first {
                format!("{m} * {h}")
            } else {
                format!("{h} * {m}")
            }
        }
    };
    format!("{}{set}", if a.non_empty { "NON EMPTY " } else { "" })
}

fn axis_tuples(a: &AxisSpec, hpart: &[Vec<El>]) -> Vec<Vec<El>> {
    let ms: Vec<Vec<El>> = a.measures.iter().map(|&m| vec![El::Measure(m)]).collect();
    match (a.hpart.is_some(), ms.is_empty()) {
        (true, true) => hpart.to_vec(),
        (false, _) => ms,
        (true, false) => {
            let (x, y): (&[Vec<El>], &[Vec<El>]) = if a.measures_first { (&ms, hpart) } else { (hpart, &ms) };
            x.iter()
                .flat_map(|t| {
                    y.iter().map(move |u| {
                        let mut t = t.clone();
                        t.extend(u.iter().copied());
                        t
                    })
                })
                .collect()
        }
    }
}

fn el_name(q: &Query, cube: &CubeInfo, e: El) -> String {
    match e {
        El::M(h, CALC) => format!("{}.[{CALC_NAME}]", cube.hiers[h].unique),
        El::M(h, m) => cube.hiers[h].members[m].unique.clone(),
        El::Measure(m) => q.qms[m].unique.clone(),
    }
}

/// Choose Filter thresholds and TopCount counts from the real values so that the boundary is
/// unambiguous; returns the filtered hierarchy tuples of each axis.
fn decide_set_functions(ctx: &mut Ctx, rng: &mut Rng, vis: &[Vec<bool>], q: &mut Query) -> Vec<Vec<Vec<El>>> {
    let cube = ctx.cube;
    let mut result = Vec::new();
    for ai in 0..q.axes.len() {
        let Some(p) = &q.axes[ai].hpart else {
            result.push(Vec::new());
            continue;
        };
        let mut tuples = hpart_tuples(q, cube, vis, p);
        let want_filter = rng.chance(0.15);
        let want_top = rng.chance(0.15);
        let mut filter = None;
        let mut top = None;
        if want_filter && !tuples.is_empty() {
            let m = rng.below(q.qms.len());
            let cells: Vec<(Coord, usize)> = tuples.iter().map(|t| (coord_of(t, &q.slicer).0, m)).collect();
            let vals = values(ctx, q, &cells);
            if vals.iter().all(|v| !v.num().is_some_and(f64::is_nan)) {
                let mut d: Vec<f64> = vals
                    .iter()
                    .map(|v| v.num().unwrap_or(0.0))
                    .filter(|x| x.is_finite())
                    .collect();
                d.sort_by(|a, b| a.partial_cmp(b).unwrap());
                d.dedup();
                let gaps: Vec<usize> = (0..d.len().saturating_sub(1))
                    .filter(|&i| d[i + 1] - d[i] > 1e-6 * d[i].abs().max(d[i + 1].abs()).max(1.0))
                    .collect();
                let t = if gaps.is_empty() {
                    d.first().map(|x| (x - 1.0).floor())
                } else {
                    let i = rng.pick(&gaps);
                    Some((d[i] + d[i + 1]) / 2.0)
                };
                if let Some(t) = t {
                    filter = Some((m, t));
                    tuples = tuples
                        .into_iter()
                        .zip(vals)
                        .filter(|(_, v)| v.num().unwrap_or(0.0) > t)
                        .map(|(t, _)| t)
                        .collect();
                }
            }
        }
        if want_top && tuples.len() > 1 {
            let m = rng.below(q.qms.len());
            let cells: Vec<(Coord, usize)> = tuples.iter().map(|t| (coord_of(t, &q.slicer).0, m)).collect();
            let vals = values(ctx, q, &cells);
            let key = |v: &V| v.num().filter(|x| !x.is_nan()).unwrap_or(f64::NEG_INFINITY);
            let mut idx: Vec<usize> = (0..tuples.len()).collect();
            idx.sort_by(|a, b| key(&vals[*b]).partial_cmp(&key(&vals[*a])).unwrap());
            let ks: Vec<usize> = (1..=tuples.len().min(8))
                .filter(|&k| {
                    let v = key(&vals[idx[k - 1]]);
                    let next = if k < idx.len() {
                        key(&vals[idx[k]])
                    } else {
                        f64::NEG_INFINITY
                    };
                    vals.iter().all(|v| !v.num().is_some_and(f64::is_nan))
                        && v.is_finite()
                        && v > 0.0
                        && v - next > 1e-6 * v.abs().max(1.0)
                })
                .collect();
            if !ks.is_empty() {
                let k = rng.pick(&ks);
                top = Some((m, k));
                tuples = idx[..k].iter().map(|&i| tuples[i].clone()).collect();
            }
        }
        let p = q.axes[ai].hpart.as_mut().unwrap();
        p.filter = filter;
        p.top = top;
        result.push(tuples);
    }
    result
}

fn query_mdx(q: &Query, cube: &CubeInfo) -> String {
    let mut s = String::new();
    if !q.withs.is_empty() || q.agg.is_some() {
        s.push_str("WITH ");
        for (n, e) in &q.withs {
            let _ = write!(s, "MEMBER {n} AS {e} ");
        }
        if let Some(a) = &q.agg {
            let h = &cube.hiers[a.set.hier()];
            let _ = write!(
                s,
                "MEMBER {}.[{CALC_NAME}] AS Aggregate({}) ",
                h.unique,
                hset_mdx(cube, &a.set)
            );
        }
    }
    s.push_str("SELECT ");
    let axes: Vec<String> = q
        .axes
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{} ON {}", axis_mdx(q, cube, a), ["COLUMNS", "ROWS"][i]))
        .collect();
    s.push_str(&axes.join(", "));
    let cube_name = format!("[{}]", cube.name);
    match &q.sub {
        Some((h, ms)) => {
            let hi = &cube.hiers[*h];
            let _ = write!(
                s,
                " FROM (SELECT {{{}}} ON 0 FROM {cube_name})",
                ms.iter()
                    .map(|&m| hi.members[m].unique.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        None => {
            let _ = write!(s, " FROM {cube_name}");
        }
    }
    let mut wh: Vec<String> = q.slicer.iter().map(|&(h, m)| el_name(q, cube, El::M(h, m))).collect();
    if let Some(m) = q.slicer_measure {
        wh.push(q.qms[m].unique.clone());
    }
    if !wh.is_empty() {
        let _ = write!(s, " WHERE ({})", wh.join(", "));
    }
    s
}

/// Per-axis positions of cell `i` of the grid (axis 0 varies fastest).
fn grid_index(pre: &[Vec<Vec<El>>], mut i: usize) -> Vec<usize> {
    let mut r = Vec::with_capacity(pre.len());
    for a in pre {
        let len = a.len().max(1);
        r.push(i % len);
        i /= len;
    }
    r
}

// ---------------------------------------------------------------------------------------
// Requests over XMLA: Execute (MDX, DRILLTHROUGH, DMV) and Discover, many per curl process
// (one kept-alive TLS connection).

#[derive(Clone, Debug)]
enum Req {
    /// MDX or DRILLTHROUGH or a DMV; `ignore`: `MdxMissingMemberMode=Ignore`; `tabular`:
    /// a rowset answer (`Format=Tabular`).
    Execute { text: String, ignore: bool, tabular: bool },
    Discover {
        request_type: String,
        restrictions: Vec<(String, String)>,
    },
}

impl Req {
    fn mdx(text: String, ignore: bool) -> Req {
        Req::Execute {
            text,
            ignore,
            tabular: false,
        }
    }
    fn rowset(text: String) -> Req {
        Req::Execute {
            text,
            ignore: false,
            tabular: true,
        }
    }
    fn body(&self) -> String {
        match self {
            Req::Execute { text, ignore, tabular } => format!(
                "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<Command><Statement>{}</Statement></Command><Properties><PropertyList><Catalog>FLIS</Catalog><LocaleIdentifier>1033</LocaleIdentifier>\
<Format>{}</Format>{}</PropertyList></Properties></Execute></soap:Body></soap:Envelope>",
                common::xml_escape(text),
                if *tabular { "Tabular" } else { "Native" },
                if *ignore {
                    "<MdxMissingMemberMode>Ignore</MdxMissingMemberMode>"
                } else {
                    ""
                }
            ),
            Req::Discover {
                request_type,
                restrictions,
            } => {
                let r: String = restrictions
                    .iter()
                    .map(|(k, v)| format!("<{k}>{}</{k}>", common::xml_escape(v)))
                    .collect();
                format!(
                    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Discover xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<RequestType>{request_type}</RequestType><Restrictions><RestrictionList>{r}</RestrictionList></Restrictions>\
<Properties><PropertyList><Catalog>FLIS</Catalog></PropertyList></Properties></Discover></soap:Body></soap:Envelope>"
                )
            }
        }
    }
    fn show(&self) -> String {
        match self {
            Req::Execute { text, ignore, .. } => {
                format!("{text}{}", if *ignore { "  [MdxMissingMemberMode=Ignore]" } else { "" })
            }
            Req::Discover {
                request_type,
                restrictions,
            } => format!("Discover {request_type} {restrictions:?}"),
        }
    }
}

/// Send `reqs` as `user` over one connection; returns the response bodies.
fn send(s: &Server, user: (&str, &str), reqs: &[Req]) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in reqs.chunks(25) {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = Vec::new();
        for (i, r) in chunk.iter().enumerate() {
            let bf = dir.path().join(format!("q{i}.xml"));
            std::fs::write(&bf, r.body()).unwrap();
            if i > 0 {
                args.push("--next".into());
            }
            args.extend([
                "-sk".into(),
                "--max-time".into(),
                "120".into(),
                "-u".into(),
                format!("{}:{}", user.0, user.1),
                "-H".into(),
                "Content-Type: text/xml".into(),
                "-w".into(),
                "%{http_code}\\n".into(),
                "--data-binary".into(),
                format!("@{}", bf.display()),
                "-o".into(),
                dir.path().join(format!("a{i}.xml")).display().to_string(),
                s.url(),
            ]);
        }
        let o = std::process::Command::new("curl").args(&args).output().expect("curl");
        let codes = String::from_utf8_lossy(&o.stdout).to_string();
        let codes: Vec<&str> = codes.lines().collect();
        for (i, r) in chunk.iter().enumerate() {
            assert_eq!(
                codes.get(i).copied(),
                Some("200"),
                "HTTP status of {}: {codes:?}",
                r.show()
            );
            out.push(std::fs::read_to_string(dir.path().join(format!("a{i}.xml"))).unwrap());
        }
    }
    out
}

/// The fault of a response: (code, text).
fn fault_of(xml: &str) -> Option<(String, String)> {
    if !xml.contains("faultstring") {
        return None;
    }
    let a = Answer::parse(xml);
    a.fault
}

/// Rows of a rowset answer: each row's children as (element, text).
fn rowset_rows(xml: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut r = quick_xml::Reader::from_str(xml);
    let mut row: Option<Vec<(String, String)>> = None;
    let mut current = String::new();
    let mut text = String::new();
    loop {
        match r.read_event().unwrap() {
            quick_xml::events::Event::Start(e) => {
                let n = String::from_utf8_lossy(e.local_name().as_ref()).to_string();
                if n == "row" {
                    row = Some(Vec::new());
                } else {
                    current = n;
                }
                text.clear();
            }
            quick_xml::events::Event::Text(t) => text.push_str(&t.decode().unwrap()),
            quick_xml::events::Event::GeneralRef(g) => text.push_str(common::xml_entity(&g.decode().unwrap())),
            quick_xml::events::Event::End(e) => {
                let n = String::from_utf8_lossy(e.local_name().as_ref()).to_string();
                if n == "row" {
                    out.push(row.take().unwrap());
                } else if let Some(rw) = row.as_mut()
                    && n == current
                {
                    rw.push((n, text.clone()));
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    out
}

fn col<'a>(row: &'a [(String, String)], name: &str) -> Option<&'a str> {
    row.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------
// One user's pass.

#[derive(Default)]
struct Counts {
    statements: usize,
    pivots: usize,
    pc_pivots: usize,
    drillthroughs: usize,
    discovers: usize,
    dmvs: usize,
    cube_lists: usize,
    fault_checks: usize,
    faults_expected_and_seen: usize,
    /// Statements naming a foreign member in a formula no cell needed: empty answers.
    empty_instead_of_fault: usize,
    cells: usize,
    nonempty_cells: usize,
    drill_rows: usize,
    leak: LeakCheck,
    mismatches: Vec<String>,
    shapes: Shapes,
    sql_time: Duration,
    server_time: Duration,
}

/// A statement with what is expected of its answer.
enum Expect {
    /// A missing-member fault (the statement names a member the user may not see) in this
    /// cube.
    Fault(usize),
    Pivot(Box<Prepared>),
    /// Parent-child pivot: expected members of axis 1 with their values per measure.
    PcPivot {
        cube: usize,
        rows: Vec<(String, Vec<V>)>,
    },
    Drill {
        /// Expected person ids (all of them, before MAXROWS).
        ids: BTreeSet<String>,
        max: usize,
        id_col: String,
    },
    /// Member rows (MDSCHEMA_MEMBERS through Discover or a DMV): the expected unique names
    /// (`None`: only the leak check).
    Members(Option<BTreeSet<String>>),
    Cubes(BTreeSet<String>),
}

struct Prepared {
    n: usize,
    q: Query,
    /// Axis tuples before NON EMPTY (after Filter, TopCount and the subselect).
    pre: Vec<Vec<Vec<El>>>,
    keep: Vec<Vec<bool>>,
    grid: Vec<(Coord, usize)>,
    vals: Vec<V>,
    sqls: Vec<String>,
}

struct Pass<'a> {
    s: &'a Server,
    conn: &'a Connection,
    cubes: &'a [CubeInfo],
    owners: &'a Owners,
    user: &'a str,
    k: i64,
    /// Per cube, per hierarchy: visible members.
    vis: Vec<Vec<Vec<bool>>>,
    seed: u64,
    c: Counts,
}

fn user_salt(user: &str) -> u64 {
    user.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Pass<'_> {
    fn individual(&self) -> Vec<usize> {
        (0..self.cubes.len()).filter(|&i| self.cubes[i].individual).collect()
    }

    /// Pivot `n`: drawn until small enough (the draws are part of the seeded sequence).
    fn prepare(&mut self, n: usize) -> (Req, Expect) {
        let cubes = self.cubes;
        let allowed = self.individual();
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let mut rng = Rng::new(
                self.seed ^ user_salt(self.user) ^ (n as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (attempt << 48),
            );
            let ignore = rng.chance(0.3);
            let mut g = Gen {
                cubes,
                vis: &self.vis,
                rng,
                ignore,
                forbidden: Vec::new(),
            };
            let mut q = g.query(&allowed);
            let mut rng = g.rng;
            let cube = &cubes[q.cube];
            let vis = &self.vis[q.cube];
            let mdx = query_mdx(&q, cube);
            if !q.ignore && !q.forbidden.is_empty() {
                self.count_shapes(&q, true);
                let c = q.cube;
                return (Req::mdx(mdx, false), Expect::Fault(c));
            }
            if let Some(a) = q.agg.as_mut() {
                a.members = hset_visible(&q_dummy(), cube, vis, &a.set);
            }
            let rough: usize = q
                .axes
                .iter()
                .map(|a| {
                    let h = a.hpart.as_ref().map_or(1, |p| hpart_tuples(&q, cube, vis, p).len());
                    h * a.measures.len().max(1)
                })
                .product();
            if rough > 4 * MAX_CELLS {
                continue;
            }
            let mut global = vec![format!("scope = {}", self.k)];
            if let Some((h, ms)) = &q.sub {
                let hi = &cube.hiers[*h];
                let l = hi.members[ms[0]].level;
                let lits: Vec<&str> = ms
                    .iter()
                    .filter(|&&m| vis[*h][m])
                    .map(|&m| hi.members[m].lit.as_str())
                    .collect();
                global.push(format!("{} IN ({})", hi.levels[l - 1].col, lits.join(", ")));
            }
            let mut ctx = Ctx {
                conn: self.conn,
                cube,
                global,
                sqls: Vec::new(),
                sql_time: Duration::ZERO,
            };
            let hparts = decide_set_functions(&mut ctx, &mut rng, vis, &mut q);
            let pre: Vec<Vec<Vec<El>>> = q.axes.iter().zip(&hparts).map(|(a, h)| axis_tuples(a, h)).collect();
            let ncells: usize = pre.iter().map(Vec::len).product();
            if ncells > MAX_CELLS || pre.iter().any(|a| a.len() > MAX_AXIS_TUPLES) {
                self.c.sql_time += ctx.sql_time;
                continue;
            }
            let mdx = query_mdx(&q, cube);
            let mut grid: Vec<(Coord, usize)> = Vec::with_capacity(ncells);
            for i in 0..ncells {
                let ix = grid_index(&pre, i);
                let tuple: Vec<El> = pre.iter().zip(&ix).flat_map(|(a, &j)| a[j].iter().copied()).collect();
                let (c, m) = coord_of(&tuple, &q.slicer);
                grid.push((c, m.or(q.slicer_measure).expect("a measure")));
            }
            let vals = values(&mut ctx, &q, &grid);
            let mut keep: Vec<Vec<bool>> = pre.iter().map(|a| vec![true; a.len()]).collect();
            for (ai, a) in q.axes.iter().enumerate() {
                if a.non_empty {
                    keep[ai] = vec![false; pre[ai].len()];
                    for (i, v) in vals.iter().enumerate() {
                        if *v != V::Empty {
                            keep[ai][grid_index(&pre, i)[ai]] = true;
                        }
                    }
                }
            }
            self.c.sql_time += ctx.sql_time;
            self.count_shapes(&q, false);
            let ignore = q.ignore;
            let p = Prepared {
                n,
                q,
                pre,
                keep,
                grid,
                vals,
                sqls: ctx.sqls,
            };
            return (Req::mdx(mdx, ignore), Expect::Pivot(Box::new(p)));
        }
    }

    fn count_shapes(&mut self, q: &Query, fault: bool) {
        let cube = &self.cubes[q.cube];
        let sh = &mut self.c.shapes;
        *sh.by_cube.entry(cube.name.clone()).or_default() += 1;
        for a in &q.axes {
            if let Some(p) = &a.hpart {
                for s in &p.sets {
                    let h = &cube.hiers[s.hier()];
                    if h.unique == "[Kommune].[Geografi]" {
                        sh.kommune_sets += 1;
                    } else if h.coded {
                        sh.per_kommune_sets += 1;
                    }
                    sh.strtomember += usize::from(matches!(s, HSet::StrTo(..)));
                }
                sh.crossjoins += usize::from(p.sets.len() > 1 || !a.measures.is_empty());
            }
            sh.non_empty += usize::from(a.non_empty);
        }
        sh.slicers += usize::from(!q.slicer.is_empty());
        sh.withs += q.withs.len();
        sh.aggregates += usize::from(q.agg.is_some());
        sh.subselects += usize::from(q.sub.is_some());
        if let Some((h, ms)) = &q.sub {
            sh.foreign_subselects += usize::from(ms.iter().any(|&m| !self.vis[q.cube][*h][m]));
        }
        sh.foreign_refs += usize::from(!q.forbidden.is_empty());
        sh.ignore_mode += usize::from(q.ignore);
        sh.expected_faults += usize::from(fault);
    }

    /// Check the members of an MDX answer's axes.
    fn check_axes(&mut self, cube: &str, a: &Answer, what: &str) {
        for ax in &a.axes {
            for t in ax {
                for (u, _) in t {
                    self.owners.check(cube, u, self.k, what, &mut self.c.leak);
                }
            }
        }
    }

    fn mismatch(&mut self, req: &Req, what: String) {
        self.c
            .mismatches
            .push(format!("[{}] {}\n    {what}", self.user, req.show()));
    }

    fn check(&mut self, req: &Req, exp: &Expect, xml: &str) {
        self.c.statements += 1;
        match exp {
            Expect::Fault(c) => {
                let a = Answer::parse(xml);
                // A calculated member's formula is bound when a cell needs it: when no cell
                // does (an axis emptied by a subselect or NON EMPTY), the answer is empty
                // instead of a fault, as for a member that does not exist.
                let values: Vec<&String> = a.cells.values().map(|c| &c.0).filter(|v| !v.is_empty()).collect();
                match (&a.fault, values.is_empty()) {
                    (Some(_), _) => self.c.faults_expected_and_seen += 1,
                    (None, true) => self.c.empty_instead_of_fault += 1,
                    (None, false) => self.mismatch(
                        req,
                        format!("expected a missing-member fault or an empty answer, got values {values:?}"),
                    ),
                }
                let cname = self.cubes[*c].name.clone();
                self.check_axes(&cname, &a, "axis member");
                for r in rowset_rows(xml) {
                    if let Some(k) = col(&r, "kommunekode")
                        && k.trim() != self.k.to_string()
                    {
                        self.c
                            .leak
                            .leaks
                            .push(format!("row with kommunekode {k}: {}", req.show()));
                    }
                }
            }
            Expect::Pivot(p) => self.check_pivot(req, p, xml),
            Expect::PcPivot { cube, rows } => {
                self.c.pc_pivots += 1;
                let a = Answer::parse(xml);
                let cname = self.cubes[*cube].name.clone();
                self.check_axes(&cname, &a, "axis member");
                if let Some(f) = &a.fault {
                    return self.mismatch(req, format!("fault {f:?}"));
                }
                let got: Vec<String> = a
                    .axes
                    .get(1)
                    .map(|ax| ax.iter().map(|t| t[0].0.clone()).collect())
                    .unwrap_or_default();
                let mut g = got.clone();
                g.sort();
                let mut e: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
                e.sort();
                if g != e {
                    return self.mismatch(req, format!("rows {g:?}, expected {e:?}"));
                }
                let ncols = a.axes[0].len();
                for (ri, u) in got.iter().enumerate() {
                    let expv = &rows.iter().find(|r| &r.0 == u).unwrap().1;
                    for (ci, ev) in expv.iter().enumerate().take(ncols) {
                        let ord = (ri * ncols + ci) as u64;
                        let gv = cell_value(&a, ord);
                        self.c.cells += 1;
                        if !same_value(*ev, gv) {
                            self.mismatch(
                                req,
                                format!("{u} column {ci}: expected {}, got {}", ev.show(), gv.show()),
                            );
                        }
                    }
                }
            }
            Expect::Drill { ids, max, id_col } => {
                self.c.drillthroughs += 1;
                if let Some(f) = fault_of(xml) {
                    return self.mismatch(req, format!("fault {f:?}"));
                }
                let rows = rowset_rows(xml);
                let mut got = BTreeSet::new();
                for r in &rows {
                    self.c.drill_rows += 1;
                    match col(r, "kommunekode") {
                        Some(k) if k.trim() == self.k.to_string() => {}
                        other => self.c.leak.leaks.push(format!(
                            "drillthrough row with kommunekode {other:?} shown to kommune {}: {}",
                            self.k,
                            req.show()
                        )),
                    }
                    got.insert(col(r, id_col).unwrap_or_default().to_string());
                }
                let want = ids.len().min(*max);
                if rows.len() != want {
                    self.mismatch(req, format!("{} rows, expected {want}", rows.len()));
                } else if !got.is_subset(ids) {
                    self.mismatch(
                        req,
                        format!(
                            "rows not in the expected set: {:?}",
                            got.difference(ids).take(5).collect::<Vec<_>>()
                        ),
                    );
                }
            }
            Expect::Members(expected) => {
                if matches!(req, Req::Discover { .. }) {
                    self.c.discovers += 1;
                } else {
                    self.c.dmvs += 1;
                }
                if let Some(f) = fault_of(xml) {
                    return self.mismatch(req, format!("fault {f:?}"));
                }
                let rows = rowset_rows(xml);
                let mut got = BTreeSet::new();
                for r in &rows {
                    let cube = col(r, "CUBE_NAME").unwrap_or_default();
                    let u = col(r, "MEMBER_UNIQUE_NAME").unwrap_or_default();
                    self.owners
                        .check(cube, u, self.k, "MDSCHEMA_MEMBERS row", &mut self.c.leak);
                    got.insert(u.to_string());
                }
                if let Some(e) = expected
                    && &got != e
                {
                    let missing: Vec<_> = e.difference(&got).take(5).collect();
                    let extra: Vec<_> = got.difference(e).take(5).collect();
                    self.mismatch(
                        req,
                        format!(
                            "{} members, expected {}; missing {missing:?}, unexpected {extra:?}",
                            got.len(),
                            e.len()
                        ),
                    );
                }
            }
            Expect::Cubes(e) => {
                self.c.cube_lists += 1;
                let got: BTreeSet<String> = rowset_rows(xml)
                    .iter()
                    .filter_map(|r| col(r, "CUBE_NAME").map(str::to_string))
                    .collect();
                if &got != e {
                    self.mismatch(req, format!("cubes {got:?}, expected {e:?}"));
                }
            }
        }
    }

    fn check_pivot(&mut self, req: &Req, p: &Prepared, xml: &str) {
        self.c.pivots += 1;
        let ans = Answer::parse(xml);
        let cubes = self.cubes;
        let cube = &cubes[p.q.cube];
        self.check_axes(&cube.name, &ans, "axis member");
        let q = &p.q;
        if let Some(f) = &ans.fault {
            return self.mismatch(req, format!("engine fault {f:?}"));
        }
        if ans.axes.len() != p.pre.len() {
            return self.mismatch(req, format!("{} axes, expected {}", ans.axes.len(), p.pre.len()));
        }
        let names = |t: &[El]| -> Vec<String> { t.iter().map(|&e| el_name(q, cube, e)).collect() };
        let mut lookup: Vec<HashMap<Vec<String>, usize>> = Vec::new();
        for (ai, a) in p.pre.iter().enumerate() {
            let mut exp: Vec<Vec<String>> = a
                .iter()
                .enumerate()
                .filter(|(i, _)| p.keep[ai][*i])
                .map(|(_, t)| names(t))
                .collect();
            let mut got: Vec<Vec<String>> = ans.axes[ai]
                .iter()
                .map(|t| t.iter().map(|m| m.0.clone()).collect())
                .collect();
            exp.sort();
            got.sort();
            if exp != got {
                let missing: Vec<_> = exp.iter().filter(|t| !got.contains(t)).take(5).collect();
                let extra: Vec<_> = got.iter().filter(|t| !exp.contains(t)).take(5).collect();
                return self.mismatch(
                    req,
                    format!(
                        "axis {ai}: {} tuples, expected {}; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
                        got.len(),
                        exp.len()
                    ),
                );
            }
            lookup.push(a.iter().enumerate().map(|(i, t)| (names(t), i)).collect());
        }
        let lens: Vec<usize> = ans.axes.iter().map(Vec::len).collect();
        let total: usize = lens.iter().product();
        let mut bad = 0;
        for ord in 0..total {
            let mut i = ord;
            let mut flat = 0;
            let mut mul = 1;
            let mut desc = Vec::new();
            for (ai, len) in lens.iter().enumerate() {
                let j = i % len;
                i /= len;
                let key: Vec<String> = ans.axes[ai][j].iter().map(|m| m.0.clone()).collect();
                flat += lookup[ai][&key] * mul;
                mul *= p.pre[ai].len();
                desc.push(key.join(" * "));
            }
            let expected = p.vals[flat];
            let got = cell_value(&ans, ord as u64);
            self.c.cells += 1;
            self.c.nonempty_cells += usize::from(got != V::Empty);
            if !same_value(expected, got) {
                bad += 1;
                if bad <= 3 {
                    self.mismatch(
                        req,
                        format!(
                            "pivot #{} cell {ord} ({}; measure {}): expected {}, got {}\n    SQL: {}",
                            p.n,
                            desc.join(" | "),
                            q.qms[p.grid[flat].1].unique,
                            expected.show(),
                            got.show(),
                            p.sqls.join(";\n    ")
                        ),
                    );
                }
            }
        }
    }
}

fn cell_value(a: &Answer, ord: u64) -> V {
    match a.cells.get(&ord) {
        None => V::Empty,
        Some((v, _, _)) if v.is_empty() => V::Empty,
        Some((v, _, _)) => V::Num(v.parse::<f64>().unwrap_or(f64::NAN)),
    }
}

/// A query with no subselect (to evaluate a set outside the subcube).
fn q_dummy() -> Query {
    Query {
        cube: 0,
        qms: Vec::new(),
        withs: Vec::new(),
        agg: None,
        axes: Vec::new(),
        slicer: Vec::new(),
        slicer_measure: None,
        sub: None,
        ignore: false,
        forbidden: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// The other statement kinds.

fn sql_strings(conn: &Connection, sql: &str) -> Vec<String> {
    let mut st = conn.prepare(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let rows = st
        .query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    rows.map(|r| r.unwrap().unwrap_or_default()).collect()
}

impl Pass<'_> {
    fn rng(&self, what: u64) -> Rng {
        Rng::new(self.seed ^ user_salt(self.user) ^ what.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
    fn visible_names(&self, c: usize, h: usize, pred: &dyn Fn(usize) -> bool) -> BTreeSet<String> {
        let hi = &self.cubes[c].hiers[h];
        (0..hi.members.len())
            .filter(|&m| self.vis[c][h][m] && pred(m))
            .map(|m| hi.members[m].unique.clone())
            .collect()
    }
    /// A member of a hierarchy: visible ones more often.
    fn any_member(&self, rng: &mut Rng, c: usize, h: usize) -> usize {
        let hi = &self.cubes[c].hiers[h];
        let vis: Vec<usize> = (1..hi.members.len()).filter(|&m| self.vis[c][h][m]).collect();
        if !vis.is_empty() && rng.chance(0.5) {
            rng.pick(&vis)
        } else {
            rng.below(hi.members.len())
        }
    }

    /// TREE_OP of MDSCHEMA_MEMBERS over the visible tree (children 1, siblings 2, parent 4,
    /// self 8, descendants 16, ancestors 32).
    fn tree_op(&self, c: usize, h: usize, m: usize, op: u32) -> BTreeSet<String> {
        let hi = &self.cubes[c].hiers[h];
        let v = &self.vis[c][h];
        let mut ids: Vec<usize> = Vec::new();
        if v[m] {
            let mem = &hi.members[m];
            let has_parent = m != 0;
            if op & 1 != 0 {
                ids.extend(mem.children.iter().copied());
            }
            if op & 2 != 0 && has_parent {
                ids.extend(hi.members[mem.parent].children.iter().copied().filter(|&x| x != m));
            }
            if op & 4 != 0 && has_parent {
                ids.push(mem.parent);
            }
            if op & 8 != 0 {
                ids.push(m);
            }
            if op & 16 != 0 {
                ids.extend(hi.descendants(m));
            }
            if op & 32 != 0 {
                let mut p = m;
                while p != 0 {
                    p = hi.members[p].parent;
                    ids.push(p);
                }
            }
        }
        ids.into_iter()
            .filter(|&x| v[x])
            .map(|x| hi.members[x].unique.clone())
            .collect()
    }

    /// MDSCHEMA_MEMBERS as a Discover or as a DMV.
    fn members_statement(&self, rng: &mut Rng, dmv: bool) -> (Req, Expect) {
        let ind = self.individual();
        let c = rng.pick(&ind);
        let cube = &self.cubes[c];
        let coded: Vec<usize> = (0..cube.hiers.len()).filter(|&h| cube.hiers[h].coded).collect();
        let h = if rng.chance(0.8) && !coded.is_empty() {
            rng.pick(&coded)
        } else {
            rng.below(cube.hiers.len())
        };
        let hi = &cube.hiers[h];
        let kind = rng.below(10);
        // (restrictions, expected)
        let mut r: Vec<(String, String)> = vec![("CUBE_NAME".into(), cube.name.clone())];
        let expected: Option<BTreeSet<String>> = match kind {
            0 => {
                // The whole cube: every hierarchy.
                let mut all = BTreeSet::new();
                for h in 0..cube.hiers.len() {
                    all.extend(self.visible_names(c, h, &|_| true));
                }
                Some(all)
            }
            1 | 2 => {
                r.push(("HIERARCHY_UNIQUE_NAME".into(), hi.unique.clone()));
                Some(self.visible_names(c, h, &|_| true))
            }
            3 => {
                let n = rng.below(hi.by_level.len());
                r.push(("HIERARCHY_UNIQUE_NAME".into(), hi.unique.clone()));
                r.push(("LEVEL_NUMBER".into(), n.to_string()));
                Some(self.visible_names(c, h, &|m| hi.members[m].level == n))
            }
            _ => {
                // TREE_OP around the All member, a region or unit, or a member.
                let m = match rng.below(4) {
                    0 => 0,
                    1 => {
                        // A foreign region / upper unit (or the own one).
                        let upper: Vec<usize> = (1..hi.members.len())
                            .filter(|&x| !hi.members[x].children.is_empty())
                            .collect();
                        if upper.is_empty() { 0 } else { rng.pick(&upper) }
                    }
                    _ => self.any_member(rng, c, h),
                };
                let op = match rng.below(8) {
                    0 | 1 => 1,
                    2 | 3 => 16,
                    4 => 2,
                    5 => 4 | 8,
                    6 => 32,
                    _ => 1 | 8 | 16,
                };
                r.push(("HIERARCHY_UNIQUE_NAME".into(), hi.unique.clone()));
                r.push(("MEMBER_UNIQUE_NAME".into(), hi.members[m].unique.clone()));
                r.push(("TREE_OP".into(), op.to_string()));
                Some(self.tree_op(c, h, m, op))
            }
        };
        let req = if dmv {
            let lit = |v: &str| format!("'{}'", v.replace('\'', "''"));
            if r.iter().any(|(k, _)| k == "TREE_OP") || rng.chance(0.3) {
                let args: Vec<String> = r
                    .iter()
                    .map(|(k, v)| {
                        if k == "TREE_OP" || k == "LEVEL_NUMBER" {
                            format!("[{k}] = {v}")
                        } else {
                            format!("[{k}] = {}", lit(v))
                        }
                    })
                    .collect();
                Req::rowset(format!(
                    "SELECT * FROM SYSTEMRESTRICTSCHEMA($system.MDSCHEMA_MEMBERS, {})",
                    args.join(", ")
                ))
            } else {
                let conds: Vec<String> = r
                    .iter()
                    .map(|(k, v)| {
                        if k == "LEVEL_NUMBER" {
                            format!("[{k}] = {v}")
                        } else {
                            format!("[{k}] = {}", lit(v))
                        }
                    })
                    .collect();
                Req::rowset(format!(
                    "SELECT [CUBE_NAME], [HIERARCHY_UNIQUE_NAME], [MEMBER_UNIQUE_NAME], [MEMBER_CAPTION] FROM $system.MDSCHEMA_MEMBERS WHERE {}",
                    conds.join(" AND ")
                ))
            }
        } else {
            let mut rr = vec![("CATALOG_NAME".to_string(), "FLIS".to_string())];
            rr.extend(r);
            Req::Discover {
                request_type: "MDSCHEMA_MEMBERS".into(),
                restrictions: rr,
            }
        };
        (req, Expect::Members(expected))
    }

    /// A DMV naming one member directly: a foreign one answers no row.
    fn dmv_one_member(&self, rng: &mut Rng) -> (Req, Expect) {
        let ind = self.individual();
        let c = rng.pick(&ind);
        let cube = &self.cubes[c];
        let coded: Vec<usize> = (0..cube.hiers.len()).filter(|&h| cube.hiers[h].coded).collect();
        let h = rng.pick(&coded);
        let m = self.any_member(rng, c, h);
        let hi = &cube.hiers[h];
        let expected: BTreeSet<String> = if self.vis[c][h][m] {
            [hi.members[m].unique.clone()].into()
        } else {
            BTreeSet::new()
        };
        (
            Req::rowset(format!(
                "SELECT [CUBE_NAME], [MEMBER_UNIQUE_NAME] FROM $system.MDSCHEMA_MEMBERS WHERE [CUBE_NAME] = '{}' AND [MEMBER_UNIQUE_NAME] = '{}'",
                cube.name, hi.members[m].unique
            )),
            Expect::Members(Some(expected)),
        )
    }

    /// DRILLTHROUGH on a cube with a drillthrough source, with a cell of visible members (or
    /// a foreign one: a missing-member fault).
    fn drillthrough(&self, rng: &mut Rng) -> (Req, Expect) {
        let c = (0..self.cubes.len())
            .find(|&i| self.cubes[i].individual && self.cubes[i].drillthrough.is_some())
            .expect("a cube with drillthrough");
        let cube = &self.cubes[c];
        let (src, cols) = cube.drillthrough.as_ref().unwrap();
        let src_cols = sql_strings(
            self.conn,
            &format!("SELECT column_name FROM (DESCRIBE SELECT * FROM {src})"),
        );
        let mut tuple: Vec<String> = Vec::new();
        let mut filters = vec![format!("kommunekode = {}", self.k)];
        let mut fault = false;
        if rng.chance(0.5) {
            tuple.push(cube.measures[rng.below(cube.measures.len())].unique.clone());
        }
        for (h, hi) in cube.hiers.iter().enumerate() {
            if hi.parent_child || !src_cols.contains(&hi.fk) || !rng.chance(0.4) {
                continue;
            }
            let leaf = hi.levels.len();
            let m = if hi.coded && rng.chance(0.25) {
                // Any member, often another kommune's.
                rng.below(hi.members.len())
            } else {
                let vis: Vec<usize> = hi.by_level[leaf]
                    .iter()
                    .copied()
                    .filter(|&m| self.vis[c][h][m])
                    .collect();
                if vis.is_empty() {
                    continue;
                }
                rng.pick(&vis)
            };
            if !self.vis[c][h][m] {
                fault = true;
            }
            let mem = &hi.members[m];
            if mem.level == leaf {
                filters.push(format!("{} = {}", ident(&hi.fk), mem.lit));
            } else if mem.level != 0 && !hi.coded {
                // Upper levels of other hierarchies have no column in the detail rows.
                continue;
            }
            tuple.push(mem.unique.clone());
        }
        let max = *[5usize, 40, 100_000].get(rng.below(3)).unwrap();
        let id_col = cols[0].clone();
        let ret = if rng.chance(0.4) {
            format!(" RETURN [${}].[{id_col}], [${}].[kommunekode]", cube.name, cube.name)
        } else {
            String::new()
        };
        let text = format!(
            "DRILLTHROUGH MAXROWS {max} SELECT FROM [{}]{}{ret}",
            cube.name,
            if tuple.is_empty() {
                String::new()
            } else {
                format!(" WHERE ({})", tuple.join(", "))
            }
        );
        if fault {
            return (Req::rowset(text), Expect::Fault(c));
        }
        let ids: BTreeSet<String> = sql_strings(
            self.conn,
            &format!(
                "SELECT CAST({} AS VARCHAR) FROM {src} WHERE {}",
                ident(&id_col),
                filters.join(" AND ")
            ),
        )
        .into_iter()
        .collect();
        (Req::rowset(text), Expect::Drill { ids, max, id_col })
    }

    /// Parent-child pivot (Personale's organisation): members and cells from the unit rows.
    fn pc_pivot(&self, rng: &mut Rng, ignore: bool) -> Option<(Req, Expect)> {
        let c = (0..self.cubes.len())
            .find(|&i| self.cubes[i].individual && self.cubes[i].hiers.iter().any(|h| h.parent_child))?;
        let cube = &self.cubes[c];
        let h = cube.hiers.iter().position(|h| h.parent_child).unwrap();
        let hi = &cube.hiers[h];
        let v = &self.vis[c][h];
        // Measures: the sum and the distinct count.
        let sum = cube
            .stored
            .iter()
            .position(|s| s.agg == Aggregator::Sum && s.filter.is_none())?;
        let dc = cube.stored.iter().position(|s| s.agg == Aggregator::DistinctCount)?;
        let mname = |i: usize| {
            cube.measures
                .iter()
                .find(|m| matches!(m.ex, Ex::Stored(j) if j == i))
                .map(|m| m.unique.clone())
        };
        let (sum_name, dc_name) = (mname(sum)?, mname(dc)?);
        let vis_upper: Vec<usize> = (0..hi.members.len())
            .filter(|&m| v[m] && !hi.members[m].children.is_empty())
            .collect();
        let (set, members, fault) = match rng.below(3) {
            0 => (
                format!("{}.Members", hi.unique),
                (0..hi.members.len()).filter(|&m| v[m]).collect::<Vec<_>>(),
                false,
            ),
            1 if !vis_upper.is_empty() => {
                let m = rng.pick(&vis_upper);
                (
                    format!("{}.Children", hi.members[m].unique),
                    hi.members[m].children.iter().copied().filter(|&x| v[x]).collect(),
                    false,
                )
            }
            _ => {
                let ms: Vec<usize> = (0..4)
                    .map(|_| self.any_member(rng, c, h))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let fault = !ignore && ms.iter().any(|&m| !v[m]);
                (
                    format!(
                        "{{{}}}",
                        ms.iter()
                            .map(|&m| hi.members[m].unique.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    ms.into_iter().filter(|&m| v[m]).collect(),
                    fault,
                )
            }
        };
        let text = format!("SELECT {{{sum_name}, {dc_name}}} ON 0, {set} ON 1 FROM [{}]", cube.name);
        if fault {
            return Some((Req::mdx(text, false), Expect::Fault(c)));
        }
        // Per unit of the user's rows: the sum, and the distinct ids.
        let (sc, dcc) = (
            cube.stored[sum].fact_col.clone().unwrap(),
            cube.stored[dc].fact_col.clone().unwrap(),
        );
        let sql = format!(
            "SELECT CAST({} AS VARCHAR), CAST(sum({}) AS DOUBLE) FROM {} WHERE kommunekode = {} GROUP BY 1",
            ident(&hi.fk),
            ident(&sc),
            cube.fact,
            self.k
        );
        let mut st = self.conn.prepare(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        let mut rows = st.query([]).unwrap();
        let mut per_unit: HashMap<String, (Option<f64>, Vec<String>)> = HashMap::new();
        while let Some(r) = rows.next().unwrap() {
            let key: Option<String> = r.get(0).unwrap();
            let s: Option<f64> = r.get(1).unwrap();
            per_unit.insert(key.unwrap_or_default(), (s, Vec::new()));
        }
        // Distinct ids per unit (a second, plain statement: simpler than reading lists).
        let sql2 = format!(
            "SELECT DISTINCT CAST({} AS VARCHAR), CAST({} AS VARCHAR) FROM {} WHERE kommunekode = {}",
            ident(&hi.fk),
            ident(&dcc),
            cube.fact,
            self.k
        );
        let mut st = self.conn.prepare(&sql2).unwrap_or_else(|e| panic!("{e}\n{sql2}"));
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let key: Option<String> = r.get(0).unwrap();
            let id: Option<String> = r.get(1).unwrap();
            if let (Some(e), Some(id)) = (per_unit.get_mut(&key.unwrap_or_default()), id) {
                e.1.push(id);
            }
        }
        let value_of = |m: usize| -> Vec<V> {
            let units: Vec<usize> = if m == 0 {
                (1..hi.members.len()).collect()
            } else {
                let mut u = hi.descendants(m);
                u.push(m);
                u
            };
            let mut total: Option<f64> = None;
            let mut ids: BTreeSet<&str> = BTreeSet::new();
            let mut any = false;
            for u in units {
                if let Some((s, i)) = per_unit.get(&hi.members[u].key) {
                    any = true;
                    if let Some(s) = s {
                        total = Some(total.unwrap_or(0.0) + s);
                    }
                    ids.extend(i.iter().map(String::as_str));
                }
            }
            if m == 0 {
                // The All member: every row of the user's kommune (also rows without a unit).
                any = !per_unit.is_empty();
                total = per_unit.values().filter_map(|x| x.0).reduce(|a, b| a + b);
                ids = per_unit.values().flat_map(|x| x.1.iter().map(String::as_str)).collect();
            }
            if !any {
                return vec![V::Empty, V::Empty];
            }
            vec![total.map(V::Num).unwrap_or(V::Empty), V::Num(ids.len() as f64)]
        };
        let rows: Vec<(String, Vec<V>)> = members
            .iter()
            .map(|&m| (hi.members[m].unique.clone(), value_of(m)))
            .collect();
        Some((Req::mdx(text, ignore), Expect::PcPivot { cube: c, rows }))
    }

    /// Statement pairs: a foreign member and a member that does not exist must give the same
    /// fault (up to the name), so a fault does not reveal that the foreign member exists.
    fn fault_pairs(&self, rng: &mut Rng) -> Vec<(Req, Req, String, String)> {
        let mut out = Vec::new();
        for c in self.individual() {
            let cube = &self.cubes[c];
            for (h, hi) in cube.hiers.iter().enumerate() {
                if !hi.coded {
                    continue;
                }
                let foreign: Vec<usize> = (1..hi.members.len()).filter(|&m| !self.vis[c][h][m]).collect();
                if foreign.is_empty() {
                    continue;
                }
                let m = rng.pick(&foreign);
                let mem = &hi.members[m];
                let fake_key = if mem.key.parse::<i64>().is_ok() {
                    "987654321".to_string()
                } else {
                    "no-such-key".to_string()
                };
                let fake = mem
                    .unique
                    .replace(&format!("&[{}]", mem.key), &format!("&[{fake_key}]"));
                let measure = &cube.measures[0].unique;
                let forms: Vec<Form> = vec![
                    Box::new(|u: &str| format!("SELECT {{{u}}} ON 0 FROM [{}] WHERE ({measure})", cube.name)),
                    Box::new(|u: &str| format!("SELECT FROM [{}] WHERE ({u}, {measure})", cube.name)),
                    Box::new(|u: &str| format!("SELECT {{StrToMember(\"{u}\")}} ON 0 FROM [{}]", cube.name)),
                    Box::new(|u: &str| format!("SELECT {u}.Children ON 0 FROM [{}]", cube.name)),
                    Box::new(|u: &str| {
                        format!(
                            "SELECT {{{measure}}} ON 0 FROM (SELECT {{{u}}} ON 0 FROM [{}])",
                            cube.name
                        )
                    }),
                    Box::new(|u: &str| {
                        format!(
                            "WITH MEMBER [Measures].[X] AS ({u}, {measure}) SELECT {{[Measures].[X]}} ON 0 FROM [{}]",
                            cube.name
                        )
                    }),
                ];
                let f = &forms[rng.below(forms.len())];
                out.push((
                    Req::mdx(f(&mem.unique), false),
                    Req::mdx(f(&fake), false),
                    mem.unique.clone(),
                    fake,
                ));
            }
        }
        out
    }

    fn run(&mut self, pivots: usize, only: Option<usize>) {
        let verbose = std::env::var("LEAK_VERBOSE").is_ok_and(|v| v == "1");
        let mut work: Vec<(Req, Expect)> = Vec::new();
        for n in 0..pivots {
            if only.is_some_and(|o| o != n) {
                continue;
            }
            work.push(self.prepare(n));
        }
        if only.is_none() {
            let mut rng = self.rng(1);
            for i in 0..12 {
                if let Some(x) = self.pc_pivot(&mut rng, i % 3 == 2) {
                    work.push(x);
                }
            }
            let mut rng = self.rng(2);
            for _ in 0..30 {
                work.push(self.drillthrough(&mut rng));
            }
            let mut rng = self.rng(3);
            for _ in 0..25 {
                work.push(self.members_statement(&mut rng, false));
            }
            for _ in 0..20 {
                work.push(self.members_statement(&mut rng, true));
            }
            for _ in 0..8 {
                work.push(self.dmv_one_member(&mut rng));
            }
            // Everything at once: all cubes (Benchmark's kommuner are not individual-level).
            work.push((
                Req::Discover {
                    request_type: "MDSCHEMA_MEMBERS".into(),
                    restrictions: vec![("CATALOG_NAME".into(), "FLIS".into())],
                },
                Expect::Members(None),
            ));
            let all_cubes: BTreeSet<String> = self.cubes.iter().map(|c| c.name.clone()).collect();
            work.push((
                Req::Discover {
                    request_type: "MDSCHEMA_CUBES".into(),
                    restrictions: vec![("CATALOG_NAME".into(), "FLIS".into())],
                },
                Expect::Cubes(all_cubes.clone()),
            ));
            work.push((
                Req::rowset("SELECT [CUBE_NAME] FROM $system.MDSCHEMA_CUBES".into()),
                Expect::Cubes(all_cubes),
            ));
        }
        let reqs: Vec<Req> = work.iter().map(|w| w.0.clone()).collect();
        if verbose {
            for r in &reqs {
                eprintln!("[{}] {}", self.user, r.show());
            }
        }
        let t0 = Instant::now();
        let answers = send(self.s, (self.user, self.user), &reqs);
        self.c.server_time += t0.elapsed();
        for ((req, exp), xml) in work.iter().zip(&answers) {
            self.check(req, exp, xml);
        }
        if only.is_some() {
            return;
        }
        // Fault pairs.
        let mut rng = self.rng(4);
        let pairs = self.fault_pairs(&mut rng);
        let reqs: Vec<Req> = pairs.iter().flat_map(|p| [p.0.clone(), p.1.clone()]).collect();
        let answers = send(self.s, (self.user, self.user), &reqs);
        for (i, (rf, _, foreign, fake)) in pairs.iter().enumerate() {
            self.c.statements += 2;
            self.c.fault_checks += 1;
            // The whole answers must be the same up to the name (a fault, or cells whose
            // errors name the member).
            let (a, b) = (&answers[2 * i], &answers[2 * i + 1]);
            let a_fault = fault_of(a);
            self.c.faults_expected_and_seen += usize::from(a_fault.is_some());
            let same = a
                .replace(foreign.as_str(), fake.as_str())
                .replace(&common::xml_escape(foreign), &common::xml_escape(fake))
                == *b;
            if !same {
                self.mismatch(
                    rf,
                    format!(
                        "the answer for a foreign member differs from the one for a member that does not exist:\n{a}\n{b}"
                    ),
                );
            }
            let parsed = Answer::parse(a);
            let cname = self
                .cubes
                .iter()
                .find(|c| rf.show().contains(&format!("[{}]", c.name)))
                .map(|c| c.name.clone())
                .unwrap_or_default();
            self.check_axes(&cname, &parsed, "axis member");
        }
    }
}

/// CPU time (user + system) of a process from /proc (Linux; clock ticks taken as 100/s).
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<u64> = stat
        .rsplit_once(") ")?
        .1
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    Some(Duration::from_millis((f.get(11)? + f.get(12)?) * 10))
}

/// The negative controls: the checkers, given the administrator's answers (every kommune)
/// and a kommune user's expectations, must report foreign members, rows and cells.
fn negative_controls(s: &Server, conn: &Connection, cubes: &[CubeInfo], owners: &Owners) -> Vec<String> {
    let (user, k) = USERS[0];
    let mut failures = Vec::new();
    let find = |n: &str| cubes.iter().position(|c| c.name == n).unwrap();
    let (bef, skole) = (find("Befolkning"), find("Skole"));
    let reqs = vec![
        Req::mdx(
            "SELECT [Kommune].[Geografi].Members ON 0 FROM [Befolkning]".into(),
            false,
        ),
        Req::Discover {
            request_type: "MDSCHEMA_MEMBERS".into(),
            restrictions: vec![
                ("CATALOG_NAME".into(), "FLIS".into()),
                ("CUBE_NAME".into(), "Skole".into()),
                ("HIERARCHY_UNIQUE_NAME".into(), "[Skole].[Skole]".into()),
            ],
        },
        Req::rowset("DRILLTHROUGH MAXROWS 500 SELECT FROM [Befolkning]".into()),
        Req::mdx(
            "SELECT FROM [Befolkning] WHERE ([Measures].[Tilflyttede])".into(),
            false,
        ),
    ];
    let answers = send(s, common::ADMIN, &reqs);
    // 1. Axis members: every kommune but the user's is foreign.
    let mut lc = LeakCheck::default();
    let a = Answer::parse(&answers[0]);
    for t in &a.axes[0] {
        owners.check("Befolkning", &t[0].0, k, "control", &mut lc);
    }
    let kommuner = cubes[bef].hiers[cubes[bef].hier("[Kommune].[Geografi]").unwrap()].by_level[2].len();
    if lc.leaks.len() < kommuner - 1 {
        failures.push(format!(
            "negative control: the member checker found {} foreign members in the administrator's [Kommune].[Geografi].Members, expected at least {}",
            lc.leaks.len(),
            kommuner - 1
        ));
    }
    // 2. Discover rows: schools of other kommuner.
    let mut lc = LeakCheck::default();
    for r in rowset_rows(&answers[1]) {
        owners.check(
            col(&r, "CUBE_NAME").unwrap_or_default(),
            col(&r, "MEMBER_UNIQUE_NAME").unwrap_or_default(),
            k,
            "control",
            &mut lc,
        );
    }
    let h = cubes[skole].hier("[Skole].[Skole]").unwrap();
    let foreign_schools = cubes[skole].hiers[h]
        .members
        .iter()
        .filter(|m| m.owner.is_some_and(|o| o != k))
        .count();
    if lc.leaks.len() != foreign_schools || foreign_schools == 0 {
        failures.push(format!(
            "negative control: the member checker found {} foreign schools in the administrator's discover, expected {foreign_schools}",
            lc.leaks.len()
        ));
    }
    // 3. Drillthrough rows of other kommuner.
    let rows = rowset_rows(&answers[2]);
    let foreign_rows = rows
        .iter()
        .filter(|r| col(r, "kommunekode") != Some(&k.to_string()))
        .count();
    if rows.is_empty() || foreign_rows == 0 {
        failures.push(format!(
            "negative control: the administrator's drillthrough has {} rows, {foreign_rows} of other kommuner",
            rows.len()
        ));
    }
    // 4. A cell: the administrator's total is not the user's.
    let admin_total = cell_value(&Answer::parse(&answers[3]), 0);
    let scoped = sql_strings(
        conn,
        &format!(
            "SELECT CAST(sum(tilflyttede) AS VARCHAR) FROM {} WHERE kommunekode = {k}",
            s.table("befolkning", "bestand")
        ),
    );
    let scoped = V::Num(scoped[0].parse().unwrap());
    if same_value(scoped, admin_total) {
        failures.push(format!(
            "negative control: the administrator's total {admin_total:?} equals {user}'s SQL total {scoped:?}"
        ));
    }
    failures
}

#[test]
fn no_leaks_across_five_kommuner() {
    let started = Instant::now();
    let seed: u64 = std::env::var("LEAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let pivots: usize = std::env::var("LEAK_PIVOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_PIVOTS);
    let only: Option<(String, usize)> = std::env::var("LEAK_ONLY").ok().and_then(|v| {
        let (u, n) = v.split_once(':')?;
        Some((u.to_string(), n.parse().ok()?))
    });
    eprintln!("leak matrix: LEAK_SEED={seed} LEAK_PIVOTS={pivots}");
    let s = Server::start();
    let server_ready = started.elapsed();
    let catalog = load_catalog(&common::repo_root().join("cube-definitions"), None).expect("catalog loads");
    let conn = s.duck();
    let cubes: Vec<CubeInfo> = catalog
        .cubes
        .iter()
        .enumerate()
        .map(|(i, c)| load_cube(&s, &conn, c, i))
        .collect();
    conn.execute_batch("SET threads = 1").unwrap();
    let owners = Owners::build(&cubes);
    let individual: Vec<&str> = cubes.iter().filter(|c| c.individual).map(|c| c.name.as_str()).collect();
    assert!(individual.len() >= 5, "individual cubes: {individual:?}");
    for c in cubes.iter().filter(|c| c.individual) {
        let coded: Vec<&str> = c.hiers.iter().filter(|h| h.coded).map(|h| h.unique.as_str()).collect();
        eprintln!("leak matrix: [{}]: per-kommune hierarchies {coded:?}", c.name);
    }
    eprintln!("leak matrix: server and model ready after {:.1?}", started.elapsed());

    let controls = negative_controls(&s, &conn, &cubes, &owners);

    let results: Vec<(&str, i64, Counts)> = std::thread::scope(|sc| {
        let handles: Vec<_> = USERS
            .iter()
            .filter(|(u, _)| only.as_ref().is_none_or(|o| o.0 == *u))
            .map(|&(user, k)| {
                let c = conn.try_clone().unwrap();
                let (s, cubes, owners, only) = (&s, &cubes, &owners, &only);
                sc.spawn(move || {
                    let vis = cubes
                        .iter()
                        .map(|cb| {
                            cb.hiers
                                .iter()
                                .map(|h| h.visible(if cb.individual { Some(k) } else { None }))
                                .collect()
                        })
                        .collect();
                    let mut p = Pass {
                        s,
                        conn: &c,
                        cubes,
                        owners,
                        user,
                        k,
                        vis,
                        seed,
                        c: Counts::default(),
                    };
                    p.run(pivots, only.as_ref().map(|o| o.1));
                    (user, k, p.c)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut shapes = Shapes::default();
    let mut total = Counts::default();
    let mut mismatches = Vec::new();
    let mut leaks = Vec::new();
    eprintln!(
        "leak matrix: {:<11} {:>5} {:>6} {:>5} {:>6} {:>6} {:>5} {:>5} {:>6} {:>7} {:>8} {:>6} {:>5} {:>10}",
        "user",
        "kode",
        "stmts",
        "pivot",
        "pc",
        "drill",
        "disc",
        "cubes",
        "faults",
        "cells",
        "members",
        "rows",
        "leaks",
        "mismatches"
    );
    for (user, k, c) in &results {
        eprintln!(
            "leak matrix: {user:<11} {k:>5} {:>6} {:>5} {:>6} {:>6} {:>5} {:>5} {:>6} {:>7} {:>8} {:>6} {:>5} {:>10}",
            c.statements,
            c.pivots,
            c.pc_pivots,
            c.drillthroughs,
            c.discovers + c.dmvs,
            c.cube_lists,
            c.faults_expected_and_seen,
            c.cells,
            c.leak.members_checked,
            c.drill_rows,
            c.leak.leaks.len(),
            c.mismatches.len()
        );
        shapes.add(&c.shapes);
        total.statements += c.statements;
        total.faults_expected_and_seen += c.faults_expected_and_seen;
        total.empty_instead_of_fault += c.empty_instead_of_fault;
        total.cells += c.cells;
        total.nonempty_cells += c.nonempty_cells;
        total.leak.members_checked += c.leak.members_checked;
        total.drill_rows += c.drill_rows;
        total.sql_time += c.sql_time;
        total.server_time += c.server_time;
        mismatches.extend(c.mismatches.iter().cloned());
        leaks.extend(c.leak.leaks.iter().cloned());
    }
    eprintln!(
        "leak matrix: total {} statements, {} cells compared ({} non-empty), {} members checked, {} drillthrough rows checked, {} leaks, {} mismatches",
        total.statements,
        total.cells,
        total.nonempty_cells,
        total.leak.members_checked,
        total.drill_rows,
        leaks.len(),
        mismatches.len()
    );
    eprintln!(
        "leak matrix: statements naming foreign members: {} missing-member faults (as for a member that does not exist), {} empty answers (the formula naming it was never evaluated)",
        total.faults_expected_and_seen, total.empty_instead_of_fault
    );
    eprintln!(
        "leak matrix: pivot shapes: cubes {:?}; Kommune sets {}, per-kommune sets {}, crossjoins {}, NON EMPTY {}, slicers {}, \
         WITH measures {}, Aggregate members {}, subselects {} ({} naming foreign members), StrToMember sets {}, \
         statements naming foreign members {}, Ignore mode {}, expected missing-member faults {}",
        shapes.by_cube,
        shapes.kommune_sets,
        shapes.per_kommune_sets,
        shapes.crossjoins,
        shapes.non_empty,
        shapes.slicers,
        shapes.withs,
        shapes.aggregates,
        shapes.subselects,
        shapes.foreign_subselects,
        shapes.strtomember,
        shapes.foreign_refs,
        shapes.ignore_mode,
        shapes.expected_faults
    );
    eprintln!(
        "leak matrix: {:.1?} in all (server start {server_ready:.1?}; summed over users: server answers {:.1?}, expected SQL {:.1?}); CPU of this test {:.1?}",
        started.elapsed(),
        total.server_time,
        total.sql_time,
        cpu_time("self").unwrap_or_default()
    );
    if let Ok(path) = std::env::var("LEAK_DUMP") {
        let mut all = leaks.iter().map(|l| format!("LEAK: {l}")).collect::<Vec<_>>();
        all.extend(mismatches.iter().map(|m| format!("MISMATCH: {m}")));
        std::fs::write(path, all.join("\n")).unwrap();
    }
    for l in leaks.iter().take(30) {
        eprintln!("LEAK: {l}");
    }
    for m in mismatches.iter().take(40) {
        eprintln!("MISMATCH (seed {seed}): {m}");
    }
    for c in &controls {
        eprintln!("CONTROL FAILED: {c}");
    }
    assert!(controls.is_empty(), "negative controls failed: {controls:?}");
    assert!(leaks.is_empty(), "{} leaks (seed {seed}); see above", leaks.len());
    assert!(
        mismatches.is_empty(),
        "{} mismatches (seed {seed}); see above",
        mismatches.len()
    );
    if only.is_none() {
        for (user, _, c) in &results {
            assert!(c.statements >= 200, "{user}: only {} statements", c.statements);
        }
    }
}
