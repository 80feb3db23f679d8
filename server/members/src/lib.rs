//! `datakube-members`: the members of every hierarchy, loaded from the dimension tables
//! through DuckDB and kept in memory as trees.
//!
//! Answers what the XMLA and MDX layers ask of members: lookup by unique name or key,
//! children, parent, members of a level, cardinalities (for MDSCHEMA_* and DisplayInfo).
//! Member keys are kept typed ([`Key`]) so that the planner can put them into SQL as
//! literals; captions never are.

pub mod access;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use datakube_engine::duckdb::types::ValueRef;
use datakube_engine::storage::Snapshots;
use datakube_engine::{Engine, sql_ident, sql_string};
use datakube_model::{Catalog, Cube, Hierarchy, Lang, Naming, Source};

/// Most members one hierarchy may have (a guard against a wrongly chosen key column).
pub const MAX_MEMBERS_PER_HIERARCHY: usize = 2_000_000;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("cube {cube}, hierarchy {hierarchy}: {message}")]
    Load {
        cube: String,
        hierarchy: String,
        message: String,
    },
}

/// A member key as stored in the data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Null,
    Int(i64),
    Str(String),
}

impl Key {
    /// The key as SQL literal (integers bare, strings quoted and escaped).
    pub fn sql_literal(&self) -> String {
        match self {
            Key::Null => "NULL".into(),
            Key::Int(i) => i.to_string(),
            Key::Str(s) => sql_string(s),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Null => Ok(()),
            Key::Int(i) => write!(f, "{i}"),
            Key::Str(s) => f.write_str(s),
        }
    }
}

/// A property value of a member.
#[derive(Debug, Clone, PartialEq)]
pub enum PropValue {
    Null,
    Int(i64),
    Double(f64),
    Str(String),
}

pub type MemberId = u32;

#[derive(Debug, Clone)]
pub struct Member {
    /// 0 for the All member, 1 for the top level, ...
    pub level: u16,
    pub key: Key,
    pub name: String,
    /// English caption when the data has one.
    pub name_en: Option<String>,
    pub unique_name: String,
    pub parent: Option<MemberId>,
    pub children: Vec<MemberId>,
    /// Position in hierarchy order (depth first, siblings in sort order).
    pub ordinal: u32,
    /// Values of the level's member properties, in the level's property order.
    pub properties: Vec<PropValue>,
}

impl Member {
    pub fn caption(&self, lang: Lang) -> &str {
        match (lang, &self.name_en) {
            (Lang::En, Some(en)) => en,
            _ => &self.name,
        }
    }
}

/// The members of one hierarchy of one cube.
#[derive(Debug)]
pub struct HierarchyMembers {
    pub unique_name: String,
    /// Member 0 is the All member: the root of the tree, also when `has_all` is false.
    pub members: Vec<Member>,
    /// Member ids per level (index 0: the All level, always `[0]`), in hierarchy order.
    /// Level numbers are the same with and without an All member: 1 is the top level.
    pub levels: Vec<Vec<MemberId>>,
    /// `false` (Mondrian's `hasAll="false"`): member 0 is an internal root that MDX must not
    /// see: `.Members` and `.AllMembers` start at level 1, `[H].[All]` does not resolve
    /// (member 0 is not in the unique-name index), and the default member is the first
    /// member of level 1 (see [`HierarchyMembers::first_member`]).
    pub has_all: bool,
    by_unique_name: HashMap<String, MemberId>,
    /// Per member: the kommunekode it belongs to, when a level's key or property column is the
    /// cube's row-scope column (`kommunekode`); `None` for members above that level (regions,
    /// All) and in hierarchies without one. Drives [`MemberStore::scoped`].
    pub scope_codes: Vec<Option<i64>>,
    /// In a scoped copy restricted by an allowed set: the keys of the granted members (the
    /// allowed ones and their descendants, not the ancestors kept for navigation), for the
    /// fact-table predicate. `None`: not restricted by an allowed set.
    pub granted_keys: Option<Vec<Key>>,
    /// A parent-child hierarchy (facts may belong to a member at any depth).
    pub parent_child: bool,
    /// Every row of the dimension table has its own, non-NULL `primary_key` (checked when the
    /// members were loaded, on the same snapshot the queries read). Then a join of the fact
    /// table on it can read the table itself: it cannot repeat a fact row, so it needs no
    /// `SELECT DISTINCT` of the key columns first (that costs a hash aggregate per statement).
    pub primary_key_unique: bool,
}

impl HierarchyMembers {
    pub fn all(&self) -> &Member {
        &self.members[0]
    }
    /// The member MDX sees first: the All member, or without one the first top-level member
    /// (member 0 when the hierarchy is empty).
    pub fn first_member(&self) -> MemberId {
        if self.has_all {
            0
        } else {
            self.level_members(1).first().copied().unwrap_or(0)
        }
    }
    pub fn get(&self, id: MemberId) -> &Member {
        &self.members[id as usize]
    }
    /// Look up by unique name (case-insensitive, as MDX is).
    pub fn by_unique_name(&self, unique_name: &str) -> Option<MemberId> {
        self.by_unique_name.get(&unique_name.to_lowercase()).copied()
    }
    /// Members of level `number` (0 = All).
    pub fn level_members(&self, number: usize) -> &[MemberId] {
        self.levels.get(number).map(Vec::as_slice).unwrap_or(&[])
    }
    /// Number of members including the All member.
    pub fn cardinality(&self) -> usize {
        self.members.len()
    }
    /// The member with `key` on level `number`.
    pub fn by_key(&self, number: usize, key: &str) -> Option<MemberId> {
        self.level_members(number)
            .iter()
            .copied()
            .find(|&id| self.get(id).key.to_string() == key)
    }
}

/// All members of all cubes.
#[derive(Debug, Default)]
pub struct MemberStore {
    /// (cube name lower-case, hierarchy unique name lower-case) → members.
    hierarchies: HashMap<(String, String), Arc<HierarchyMembers>>,
    /// Scoped copies, by (address of the full hierarchy, scope). Bounded: cleared when full.
    scoped: std::sync::Mutex<HashMap<(usize, String, MemberScope), Arc<HierarchyMembers>>>,
}

/// Most scoped copies kept (about one per kommune and hierarchy, plus multi-kommune users).
const MAX_SCOPED_COPIES: usize = 4096;

impl MemberStore {
    /// The members of `hierarchy_unique_name` in `cube` (of dimension `dimension`) that
    /// `scope` lets see: the full hierarchy when nothing restricts it, otherwise a renumbered
    /// copy without the forbidden members (cached).
    pub fn scoped(
        &self,
        cube: &str,
        dimension: &str,
        hierarchy_unique_name: &str,
        scope: &MemberScope,
    ) -> Option<Arc<HierarchyMembers>> {
        let full = self.hierarchy(cube, hierarchy_unique_name)?;
        if scope.is_unrestricted() {
            return Some(full.clone());
        }
        let key = (Arc::as_ptr(full) as usize, dimension.to_lowercase(), scope.clone());
        let mut cache = self.scoped.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache.get(&key) {
            return Some(hit.clone());
        }
        let copy = match full.scoped(dimension, scope) {
            Some(c) => Arc::new(c),
            None => full.clone(),
        };
        if cache.len() >= MAX_SCOPED_COPIES {
            cache.clear();
        }
        cache.insert(key, copy.clone());
        Some(copy)
    }

    pub fn hierarchy(&self, cube: &str, hierarchy_unique_name: &str) -> Option<&Arc<HierarchyMembers>> {
        self.hierarchies
            .get(&(cube.to_lowercase(), hierarchy_unique_name.to_lowercase()))
    }

    /// Load the members of every hierarchy of every cube.
    pub fn load(engine: &Engine, snapshots: &Snapshots, catalog: &Catalog) -> Result<MemberStore, MemberError> {
        let mut store = MemberStore::default();
        // Hierarchies shared by several cubes (same definition, same source) are loaded once.
        let mut loaded: HashMap<String, Arc<HierarchyMembers>> = HashMap::new();
        for cube in &catalog.cubes {
            for dim in &cube.dimensions {
                for h in &dim.hierarchies {
                    let source = h.source.as_ref().unwrap_or(&cube.source);
                    let sig = format!("{source}|{h:?}|{:?}", cube.security.row_scope_column);
                    let members = match loaded.get(&sig) {
                        Some(m) => m.clone(),
                        None => {
                            let m = Arc::new(load_hierarchy(engine, snapshots, cube, h, source)?);
                            loaded.insert(sig, m.clone());
                            m
                        }
                    };
                    store
                        .hierarchies
                        .insert((cube.name.to_lowercase(), h.unique_name.to_lowercase()), members);
                }
            }
        }
        Ok(store)
    }
}

/// The Parquet glob of a source: a dataset table in its pinned snapshot (never `CURRENT` at
/// query time), or a path glob (relative to the data directory).
pub fn source_glob(snapshots: &Snapshots, source: &Source) -> Result<PathBuf, String> {
    match source {
        Source::Dataset { dataset, table } => snapshots.table_glob(dataset, table).map_err(|e| e.to_string()),
        Source::Path { glob } => {
            let p = PathBuf::from(glob);
            Ok(if p.is_absolute() {
                p
            } else {
                snapshots.data_dir().join(p)
            })
        }
    }
}

/// The fact relation of a cube, as SQL to follow `FROM` (callers add the alias `f`): an
/// ordinary cube's `read_parquet(<glob>, hive_partitioning = true)`; a virtual cube's
/// `(SELECT ... UNION ALL BY NAME SELECT ...)`, one projection per base cube tagged with its
/// name in `__cube` ([`datakube_model::BASE_CUBE_COLUMN`]); a column a base cube does not
/// project is NULL on its rows. Identifiers and names come only from the definitions.
pub fn fact_relation(snapshots: &Snapshots, cube: &Cube) -> Result<String, String> {
    let Some(v) = &cube.virtual_cube else {
        let glob = source_glob(snapshots, &cube.source)?;
        return Ok(format!(
            "read_parquet({}, hive_partitioning = true)",
            sql_string(&glob.to_string_lossy())
        ));
    };
    let mut selects = Vec::new();
    for part in &v.parts {
        let glob = source_glob(snapshots, &part.source)?;
        let mut cols = vec![format!(
            "{} AS {}",
            sql_string(&part.cube),
            sql_ident(datakube_model::BASE_CUBE_COLUMN)
        )];
        cols.extend(
            part.columns
                .iter()
                .map(|(col, name)| format!("{} AS {}", sql_ident(col), sql_ident(name))),
        );
        selects.push(format!(
            "SELECT {} FROM read_parquet({}, hive_partitioning = true)",
            cols.join(", "),
            sql_string(&glob.to_string_lossy())
        ));
    }
    if selects.is_empty() {
        return Err(format!("virtual cube [{}] has no base cubes", cube.name));
    }
    Ok(format!("({})", selects.join(" UNION ALL BY NAME ")))
}

/// A DuckDB value as a member key (integers as numbers, the rest as text).
pub fn key_of(v: ValueRef<'_>) -> Key {
    match v {
        ValueRef::Null => Key::Null,
        ValueRef::TinyInt(i) => Key::Int(i.into()),
        ValueRef::SmallInt(i) => Key::Int(i.into()),
        ValueRef::Int(i) => Key::Int(i.into()),
        ValueRef::BigInt(i) => Key::Int(i),
        ValueRef::UTinyInt(i) => Key::Int(i.into()),
        ValueRef::USmallInt(i) => Key::Int(i.into()),
        ValueRef::UInt(i) => Key::Int(i.into()),
        ValueRef::Text(t) => Key::Str(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Boolean(b) => Key::Str(b.to_string()),
        // 20319.0 prints as 20319, 0.5 as 0.5.
        ValueRef::Double(d) => Key::Str(d.to_string()),
        ValueRef::Float(d) => Key::Str(d.to_string()),
        other => Key::Str(format!("{other:?}")),
    }
}

fn text_of(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        other => Some(key_of(other).to_string()),
    }
}

fn prop_of(v: ValueRef<'_>) -> PropValue {
    match v {
        ValueRef::Null => PropValue::Null,
        ValueRef::Double(d) => PropValue::Double(d),
        ValueRef::Float(d) => PropValue::Double(d.into()),
        ValueRef::Text(t) => PropValue::Str(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Boolean(b) => PropValue::Str(b.to_string()),
        other => match key_of(other) {
            Key::Int(i) => PropValue::Int(i),
            Key::Str(s) => PropValue::Str(s),
            Key::Null => PropValue::Null,
        },
    }
}

fn bracket_escape(s: &str) -> String {
    s.replace(']', "]]")
}

/// `naming: name_path`: the parent's unique name and `[name]`; top-level members hang
/// directly under the hierarchy (`[Store].[USA]`, not `[Store].[All Stores].[USA]`).
fn name_path(h: &Hierarchy, parent: &Member, name: &str) -> String {
    let base = if parent.level == 0 {
        &h.unique_name
    } else {
        &parent.unique_name
    };
    format!("{base}.[{}]", bracket_escape(name))
}

fn load_hierarchy(
    engine: &Engine,
    snapshots: &Snapshots,
    cube: &Cube,
    h: &Hierarchy,
    source: &Source,
) -> Result<HierarchyMembers, MemberError> {
    let err = |message: String| MemberError::Load {
        cube: cube.name.clone(),
        hierarchy: h.unique_name.clone(),
        message,
    };
    let glob = source_glob(snapshots, source).map_err(err)?;
    let from = format!(
        "read_parquet({}, hive_partitioning = true)",
        sql_string(&glob.to_string_lossy())
    );
    let conn = engine.connection().map_err(|e| err(e.to_string()))?;

    let all = Member {
        level: 0,
        key: Key::Null,
        name: h.all_member.caption.da.clone(),
        name_en: Some(h.all_member.caption.en.clone()),
        unique_name: h.all_member.unique_name.clone(),
        parent: None,
        children: Vec::new(),
        ordinal: 0,
        properties: Vec::new(),
    };
    let mut members = vec![all];
    let mut levels: Vec<Vec<MemberId>> = vec![vec![0]];

    if let Some(parent_col) = &h.parent_column {
        // Parent-child: one row per member; depth comes from the parent chain.
        let l = &h.levels[0];
        let mut cols = vec![
            sql_ident(&l.key_column),
            sql_ident(parent_col),
            sql_ident(&l.name_column),
        ];
        cols.push(
            l.name_column_en
                .as_deref()
                .map(sql_ident)
                .unwrap_or_else(|| "NULL".into()),
        );
        cols.push(sql_ident(&l.sort_column));
        cols.extend(l.properties.iter().map(|p| sql_ident(&p.column)));
        let sql = format!(
            "SELECT DISTINCT {} FROM {from} ORDER BY {}, {}",
            cols.join(", "),
            sql_ident(&l.sort_column),
            sql_ident(&l.key_column)
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| err(format!("{e}")))?;
        let mut rows = stmt.query([]).map_err(|e| err(format!("{e}")))?;
        // (key, parent key, name, English name, properties)
        type Row = (Key, Key, String, Option<String>, Vec<PropValue>);
        let mut raw: Vec<Row> = Vec::new();
        while let Some(r) = rows.next().map_err(|e| err(format!("{e}")))? {
            let props = (0..l.properties.len())
                .map(|i| r.get_ref(5 + i).map(prop_of).unwrap_or(PropValue::Null))
                .collect();
            raw.push((
                r.get_ref(0).map(key_of).unwrap_or(Key::Null),
                r.get_ref(1).map(key_of).unwrap_or(Key::Null),
                r.get_ref(2).ok().and_then(text_of).unwrap_or_default(),
                r.get_ref(3).ok().and_then(text_of),
                props,
            ));
            if raw.len() > MAX_MEMBERS_PER_HIERARCHY {
                return Err(err(format!("more than {MAX_MEMBERS_PER_HIERARCHY} members")));
            }
        }
        let index: HashMap<Key, usize> = raw.iter().enumerate().map(|(i, r)| (r.0.clone(), i)).collect();
        let mut children_of: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
        for (i, r) in raw.iter().enumerate() {
            let parent = if r.1 == Key::Null || r.1 == r.0 {
                None
            } else {
                index.get(&r.1).copied()
            };
            children_of.entry(parent).or_default().push(i);
        }
        // Depth-first from the roots; a cycle or an orphan never reached is reported.
        let mut stack: Vec<(usize, MemberId, u16)> = children_of
            .get(&None)
            .map(|v| v.iter().rev().map(|&i| (i, 0, 1)).collect())
            .unwrap_or_default();
        let mut placed = 0usize;
        while let Some((i, parent_id, depth)) = stack.pop() {
            let (key, _, name, name_en, props) = &raw[i];
            let id = members.len() as MemberId;
            let unique_name = match h.naming {
                Naming::Key => format!("{}.&[{}]", h.unique_name, bracket_escape(&key.to_string())),
                Naming::NamePath => name_path(h, &members[parent_id as usize], name),
            };
            members.push(Member {
                level: depth,
                key: key.clone(),
                name: name.clone(),
                name_en: name_en.clone(),
                unique_name,
                parent: Some(parent_id),
                children: Vec::new(),
                ordinal: id,
                properties: props.clone(),
            });
            members[parent_id as usize].children.push(id);
            if levels.len() <= depth as usize {
                levels.push(Vec::new());
            }
            levels[depth as usize].push(id);
            placed += 1;
            if let Some(kids) = children_of.get(&Some(i)) {
                for &k in kids.iter().rev() {
                    stack.push((k, id, depth + 1));
                }
            }
        }
        if placed != raw.len() {
            return Err(err(format!(
                "{} of {} members are not reachable from a top member (a parent cycle or a missing parent)",
                raw.len() - placed,
                raw.len()
            )));
        }
    } else {
        // Regular: the distinct level columns, ordered level by level.
        let mut cols = Vec::new();
        let mut order = Vec::new();
        for l in &h.levels {
            cols.push(sql_ident(&l.key_column));
            cols.push(sql_ident(&l.name_column));
            cols.push(
                l.name_column_en
                    .as_deref()
                    .map(sql_ident)
                    .unwrap_or_else(|| "NULL".into()),
            );
            cols.extend(l.properties.iter().map(|p| sql_ident(&p.column)));
            order.push(sql_ident(&l.sort_column));
            order.push(sql_ident(&l.key_column));
        }
        // Mondrian-style catalogs sort the NULL member (`#null`) first, as Mondrian does.
        let nulls = match h.naming {
            Naming::Key => "",
            Naming::NamePath => " NULLS FIRST",
        };
        let order_by: Vec<String> = order.iter().map(|o| format!("{o}{nulls}")).collect();
        let sql = format!(
            "SELECT DISTINCT {}, {} FROM {from} ORDER BY {}",
            cols.join(", "),
            order.join(", "),
            order_by.join(", ")
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| err(format!("{e}")))?;
        let mut rows = stmt.query([]).map_err(|e| err(format!("{e}")))?;
        // The current path of member ids while walking the ordered rows.
        let mut path: Vec<MemberId> = Vec::new();
        // Per level: (parent, key) → member. The parent is part of the key only on levels
        // whose keys repeat under different parents (`unique_members: false`); on the others
        // it is 0, and a key under two parents is an error.
        let mut by_level_key: Vec<HashMap<(MemberId, Key), MemberId>> = vec![HashMap::new(); h.levels.len()];
        while let Some(r) = rows.next().map_err(|e| err(format!("{e}")))? {
            let mut c = 0;
            let mut parent: MemberId = 0;
            path.clear();
            for (li, l) in h.levels.iter().enumerate() {
                let key = r.get_ref(c).map(key_of).unwrap_or(Key::Null);
                let name = r
                    .get_ref(c + 1)
                    .ok()
                    .and_then(text_of)
                    .unwrap_or_else(|| match (h.naming, &key) {
                        // Mondrian's name for the member of a NULL key.
                        (Naming::NamePath, Key::Null) => "#null".to_string(),
                        _ => key.to_string(),
                    });
                let name_en = r.get_ref(c + 2).ok().and_then(text_of);
                let props: Vec<PropValue> = (0..l.properties.len())
                    .map(|i| r.get_ref(c + 3 + i).map(prop_of).unwrap_or(PropValue::Null))
                    .collect();
                c += 3 + l.properties.len();
                let scope = if l.unique_members { 0 } else { parent };
                let id = match by_level_key[li].get(&(scope, key.clone())) {
                    Some(&id) => {
                        if members[id as usize].parent != Some(parent) {
                            return Err(err(format!(
                                "key {key} of level {} has more than one parent; make the key unique within the hierarchy or set unique_members: false",
                                l.name
                            )));
                        }
                        id
                    }
                    None => {
                        let id = members.len() as MemberId;
                        if members.len() > MAX_MEMBERS_PER_HIERARCHY {
                            return Err(err(format!("more than {MAX_MEMBERS_PER_HIERARCHY} members")));
                        }
                        let unique_name = match h.naming {
                            Naming::Key => format!("{}.&[{}]", l.unique_name, bracket_escape(&key.to_string())),
                            Naming::NamePath => name_path(h, &members[parent as usize], &name),
                        };
                        members.push(Member {
                            level: (li + 1) as u16,
                            key: key.clone(),
                            name,
                            name_en,
                            unique_name,
                            parent: Some(parent),
                            children: Vec::new(),
                            ordinal: 0,
                            properties: props,
                        });
                        members[parent as usize].children.push(id);
                        by_level_key[li].insert((scope, key), id);
                        id
                    }
                };
                path.push(id);
                parent = id;
            }
        }
        // Levels and ordinals in hierarchy (depth-first) order.
        levels = vec![Vec::new(); h.levels.len() + 1];
        let mut stack = vec![0 as MemberId];
        let mut ordinal = 0u32;
        while let Some(id) = stack.pop() {
            members[id as usize].ordinal = ordinal;
            ordinal += 1;
            levels[members[id as usize].level as usize].push(id);
            for &k in members[id as usize].children.iter().rev() {
                stack.push(k);
            }
        }
    }
    // Without an All member the root is not reachable by name. With name paths two members
    // may share a unique name (same name under one parent); the first in hierarchy order wins.
    let mut by_unique_name: HashMap<String, MemberId> = HashMap::new();
    let mut in_order: Vec<MemberId> = (0..members.len() as MemberId).collect();
    in_order.sort_by_key(|&i| members[i as usize].ordinal);
    for i in in_order {
        if i == 0 && !h.has_all {
            continue;
        }
        by_unique_name
            .entry(members[i as usize].unique_name.to_lowercase())
            .or_insert(i);
    }
    tracing::debug!(cube = %cube.name, hierarchy = %h.unique_name, members = members.len(), "members loaded");
    let scope_codes = scope_codes(cube, h, &members);
    // Only a hierarchy with its own table is joined; one read from the fact table (no
    // `source`) is not, and counting its keys would scan the whole fact table.
    let primary_key_unique = if h.source.is_none() || h.primary_key.is_empty() {
        false
    } else {
        let pk = sql_ident(&h.primary_key);
        conn.query_row(
            &format!("SELECT count(*) = count(DISTINCT {pk}) FROM {from}"),
            [],
            |r| r.get::<_, bool>(0),
        )
        .map_err(|e| err(format!("checking that {pk} is unique: {e}")))?
    };
    Ok(HierarchyMembers {
        unique_name: h.unique_name.clone(),
        members,
        levels,
        has_all: h.has_all,
        by_unique_name,
        scope_codes,
        granted_keys: None,
        parent_child: h.parent_column.is_some(),
        primary_key_unique,
    })
}

/// The kommunekode of each member: its key, when its level's key column is the cube's
/// row-scope column, or the value of a property read from that column.
fn scope_codes(cube: &Cube, h: &Hierarchy, members: &[Member]) -> Vec<Option<i64>> {
    let Some(col) = cube.security.row_scope_column.as_deref() else {
        return vec![None; members.len()];
    };
    let level_def = |level: u16| {
        if h.parent_column.is_some() {
            h.levels.first()
        } else {
            h.levels.get(usize::from(level).checked_sub(1)?)
        }
    };
    members
        .iter()
        .map(|m| {
            if m.level == 0 {
                return None;
            }
            let l = level_def(m.level)?;
            if l.key_column.eq_ignore_ascii_case(col) {
                return match &m.key {
                    Key::Int(i) => Some(*i),
                    Key::Str(s) => s.trim().parse().ok(),
                    Key::Null => None,
                };
            }
            let i = l.properties.iter().position(|p| p.column.eq_ignore_ascii_case(col))?;
            match m.properties.get(i)? {
                PropValue::Int(i) => Some(*i),
                PropValue::Double(d) => Some(*d as i64),
                PropValue::Str(s) => s.trim().parse().ok(),
                PropValue::Null => None,
            }
        })
        .collect()
}

/// What members one principal may see (from the verified identity only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MemberScope {
    /// Kommunekoder whose members are visible; `None` = every kommune.
    pub kommuner: Option<Vec<i64>>,
    /// Allowed sets on dimensions, by dimension name.
    pub restrictions: Vec<AllowedSet>,
}

/// An allowed set on one dimension: members with one of `keys` (`*` suffix: prefix) or
/// belonging to one of `whole_kommuner`, their descendants, and (for navigation) ancestors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AllowedSet {
    pub dimension: String,
    pub keys: Vec<String>,
    pub whole_kommuner: Vec<i64>,
}

impl MemberScope {
    /// Everything visible.
    pub fn all() -> MemberScope {
        MemberScope::default()
    }
    pub fn is_unrestricted(&self) -> bool {
        self.kommuner.is_none() && self.restrictions.is_empty()
    }
}

impl HierarchyMembers {
    /// The members `granted` (closed under descendants) and their ancestors: the visible ones.
    fn visible_from(&self, granted: &[bool]) -> Vec<bool> {
        let mut visible = granted.to_vec();
        for (id, g) in granted.iter().enumerate() {
            if *g {
                let mut p = self.members[id].parent;
                while let Some(pid) = p {
                    if visible[pid as usize] {
                        break;
                    }
                    visible[pid as usize] = true;
                    p = self.members[pid as usize].parent;
                }
            }
        }
        visible[0] = true;
        visible
    }

    /// Close `seed` under descendants (members are numbered parents first only in hierarchy
    /// order, so walk the tree).
    fn with_descendants(&self, seed: &mut [bool]) {
        let mut stack: Vec<MemberId> = vec![0];
        let mut inherited = vec![false; self.members.len()];
        while let Some(id) = stack.pop() {
            let i = id as usize;
            if inherited[i] {
                seed[i] = true;
            }
            let pass = seed[i];
            for &c in &self.members[i].children {
                if pass {
                    inherited[c as usize] = true;
                }
                stack.push(c);
            }
        }
    }

    /// A copy holding only the members with `keep[id]` (which must include every ancestor of a
    /// kept member), renumbered; `granted` records the keys of granted members.
    fn retain(&self, keep: &[bool], granted_keys: Option<Vec<Key>>) -> HierarchyMembers {
        let mut new_id = vec![u32::MAX; self.members.len()];
        let mut members = Vec::new();
        let mut scope_codes = Vec::new();
        for (id, m) in self.members.iter().enumerate() {
            if keep[id] {
                new_id[id] = members.len() as MemberId;
                members.push(m.clone());
                scope_codes.push(self.scope_codes.get(id).copied().flatten());
            }
        }
        for m in &mut members {
            m.parent = m.parent.map(|p| new_id[p as usize]);
            m.children = m
                .children
                .iter()
                .filter(|&&c| keep[c as usize])
                .map(|&c| new_id[c as usize])
                .collect();
        }
        let levels = self
            .levels
            .iter()
            .map(|l| {
                l.iter()
                    .filter(|&&id| keep[id as usize])
                    .map(|&id| new_id[id as usize])
                    .collect()
            })
            .collect();
        let by_unique_name = self
            .by_unique_name
            .iter()
            .filter(|(_, id)| keep[**id as usize])
            .map(|(k, id)| (k.clone(), new_id[*id as usize]))
            .collect();
        HierarchyMembers {
            unique_name: self.unique_name.clone(),
            members,
            levels,
            has_all: self.has_all,
            by_unique_name,
            scope_codes,
            granted_keys,
            parent_child: self.parent_child,
            primary_key_unique: self.primary_key_unique,
        }
    }

    /// The members `scope` lets see in this hierarchy of dimension `dimension`; `None` when
    /// the scope does not restrict it.
    pub fn scoped(&self, dimension: &str, scope: &MemberScope) -> Option<HierarchyMembers> {
        let n = self.members.len();
        let coded = self.scope_codes.iter().any(Option::is_some);
        let mut keep: Option<Vec<bool>> = None;
        if let (Some(ks), true) = (&scope.kommuner, coded) {
            let mut granted: Vec<bool> = self
                .scope_codes
                .iter()
                .map(|c| c.is_some_and(|c| ks.contains(&c)))
                .collect();
            self.with_descendants(&mut granted);
            keep = Some(self.visible_from(&granted));
        }
        let mut granted_keys = None;
        for r in scope
            .restrictions
            .iter()
            .filter(|r| r.dimension.eq_ignore_ascii_case(dimension))
        {
            let matches = |m: &Member| {
                let key = m.key.to_string();
                r.keys.iter().any(|k| match k.strip_suffix('*') {
                    Some(prefix) => key.starts_with(prefix),
                    None => *k == key,
                })
            };
            let mut granted: Vec<bool> = (0..n)
                .map(|id| {
                    id != 0
                        && (matches(&self.members[id])
                            || self.scope_codes[id].is_some_and(|c| r.whole_kommuner.contains(&c)))
                })
                .collect();
            self.with_descendants(&mut granted);
            if let Some(k) = &keep {
                for (g, v) in granted.iter_mut().zip(k) {
                    *g &= *v;
                }
            }
            let leaf = self.levels.len().saturating_sub(1);
            granted_keys = Some(
                (0..n)
                    .filter(|&id| granted[id] && (self.parent_child || usize::from(self.members[id].level) == leaf))
                    .map(|id| self.members[id].key.clone())
                    .collect(),
            );
            let visible = self.visible_from(&granted);
            keep = Some(match keep {
                Some(k) => k.iter().zip(&visible).map(|(a, b)| *a && *b).collect(),
                None => visible,
            });
        }
        keep.map(|k| self.retain(&k, granted_keys))
    }
}
