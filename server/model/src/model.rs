//! The resolved catalog: what the XMLA layer and the planner work with. Everything here has
//! been validated; shared dimensions are resolved into each cube that uses them.
//!
//! Name lookups are case-insensitive, as MDX is.

use std::fmt;
use std::path::PathBuf;

use crate::diagnostic::Diagnostic;
pub use crate::format::{Aggregator, FilterValue, LevelType, Naming, PropertyType};

/// Caption language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    /// Danish, the default.
    #[default]
    Da,
    En,
}

impl Lang {
    /// The language for an XMLA `LocaleIdentifier` (LCID): Danish (1030) gives Danish,
    /// every other locale English.
    pub fn from_lcid(lcid: u32) -> Lang {
        if lcid & 0x3ff == 0x06 { Lang::Da } else { Lang::En }
    }
}

/// A caption in Danish and English.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caption {
    pub da: String,
    pub en: String,
}

impl Caption {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Da => &self.da,
            Lang::En => &self.en,
        }
    }
}

/// A description in Danish, optionally English (falls back to Danish).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Description {
    pub da: String,
    pub en: Option<String>,
}

impl Description {
    pub fn get(&self, lang: Lang) -> &str {
        match (lang, &self.en) {
            (Lang::En, Some(en)) => en,
            _ => &self.da,
        }
    }
}

/// Where rows come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A table of a dataset: the current snapshot's `<table>/**/*.parquet`.
    Dataset { dataset: String, table: String },
    /// A glob of Parquet files (relative paths are relative to the data directory).
    Path { glob: String },
}

impl fmt::Display for Source {
    /// `oekonomi/postering` or the glob.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Dataset { dataset, table } => write!(f, "{dataset}/{table}"),
            Source::Path { glob } => f.write_str(glob),
        }
    }
}

/// Column names and types of sources, for validation. `datakube` implements it over the
/// Parquet files of the current snapshots.
pub trait SchemaProvider {
    /// `(column name, DuckDB type)` of every column, or why the source cannot be read
    /// (unknown dataset or table, no files, ...).
    fn columns(&self, source: &Source) -> Result<Vec<(String, String)>, String>;

    /// Sources known to exist, used for "did you mean" hints on unknown sources. Optional.
    fn known_sources(&self) -> Vec<Source> {
        Vec::new()
    }
}

fn same(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// `[name]`; names never contain brackets (validation rejects them).
pub(crate) fn bracket(name: &str) -> String {
    format!("[{name}]")
}

/// The catalog (database) with all cubes.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub name: String,
    pub caption: Caption,
    pub description: Option<Description>,
    /// How unique names are formed (also recorded on every hierarchy).
    pub naming: Naming,
    pub cubes: Vec<Cube>,
    /// Shared dimensions as defined (all hierarchies, no foreign key).
    pub shared_dimensions: Vec<Dimension>,
    /// The definition files read, in load order.
    pub files: Vec<PathBuf>,
    /// Warnings found while loading (errors prevent loading).
    pub warnings: Vec<Diagnostic>,
    /// Roles, service accounts, disclosure marker, comparison groups (`security:` file).
    pub security: SecurityConfig,
}

/// The `security:` file, checked. Without one, no identity-provider user gets any role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    pub claims: ClaimNames,
    pub roles: Vec<Role>,
    pub service_accounts: Vec<ServiceAccount>,
    /// Formatted value of a suppressed benchmark cell.
    pub disclosure_marker: String,
    pub comparison_groups: Vec<ComparisonGroup>,
    /// The file it came from.
    pub file: Option<PathBuf>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        let c = crate::format::ClaimsDef::default();
        SecurityConfig {
            claims: ClaimNames {
                subject: c.subject,
                name: c.name,
                cvr: c.cvr,
                kommunekode: c.kommunekode,
                roles: c.roles,
            },
            roles: Vec::new(),
            service_accounts: Vec::new(),
            disclosure_marker: crate::format::DisclosureDef::default().marker,
            comparison_groups: Vec::new(),
            file: None,
        }
    }
}

impl SecurityConfig {
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| same(&r.name, name))
    }
}

/// OIDC claim names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub subject: String,
    pub name: String,
    pub cvr: String,
    pub kommunekode: String,
    pub roles: String,
}

/// What rows a role reaches (see [`crate::format::AccessDef`]).
pub use crate::format::AccessDef as RoleAccess;

/// A role of the `security:` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub caption: Caption,
    pub claims: Vec<String>,
    pub privileges: Vec<String>,
    pub access: RoleAccess,
    /// Cube names granted; `None` = every cube.
    pub cubes: Option<Vec<String>>,
    /// (constraint name, dimension name).
    pub restrictions: Vec<(String, String)>,
}

impl Role {
    pub fn is_admin(&self) -> bool {
        self.name.eq_ignore_ascii_case("admin")
    }
}

/// A client-credentials client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub client_id: String,
    pub roles: Vec<String>,
    pub kommuner: Vec<u16>,
    pub impersonate: bool,
}

/// A named comparison group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComparisonGroup {
    pub name: String,
    pub kommuner: Vec<u16>,
}

impl Catalog {
    pub fn cube(&self, name: &str) -> Option<&Cube> {
        self.cubes.iter().find(|c| same(&c.name, name))
    }

    pub fn shared_dimension(&self, name: &str) -> Option<&Dimension> {
        self.shared_dimensions.iter().find(|d| same(&d.name, name))
    }
}

/// A cube.
#[derive(Debug, Clone)]
pub struct Cube {
    pub name: String,
    pub caption: Caption,
    pub description: Option<Description>,
    /// The fact table; for a virtual cube the first base cube's (read the facts of any cube
    /// through `datakube_members::fact_relation`, never through this field alone).
    pub source: Source,
    /// Set for a virtual cube: the base cubes whose fact rows it reads.
    pub virtual_cube: Option<VirtualCube>,
    pub security: Security,
    /// Dimensions in field-list order (without `[Measures]`).
    pub dimensions: Vec<Dimension>,
    /// Measures in field-list order, stored and calculated.
    pub measures: Vec<Measure>,
    pub drillthrough: Option<Drillthrough>,
    /// Declared aggregates (validated: levels exist, measures are sum/count/min/max).
    pub aggregates: Vec<Aggregate>,
    /// The file the cube is defined in.
    pub file: PathBuf,
}

impl Cube {
    /// `[Befolkning]`.
    pub fn unique_name(&self) -> String {
        bracket(&self.name)
    }

    pub fn dimension(&self, name: &str) -> Option<&Dimension> {
        self.dimensions.iter().find(|d| same(&d.name, name))
    }

    pub fn measure(&self, name: &str) -> Option<&Measure> {
        self.measures.iter().find(|m| same(&m.name, name))
    }

    /// `hierarchy("Kommune", "Geografi")`.
    pub fn hierarchy(&self, dimension: &str, hierarchy: &str) -> Option<&Hierarchy> {
        self.dimension(dimension)?.hierarchy(hierarchy)
    }

    /// `level("Tid", "Kalender", "Måned")`.
    pub fn level(&self, dimension: &str, hierarchy: &str, level: &str) -> Option<&Level> {
        self.hierarchy(dimension, hierarchy)?.level(level)
    }

    /// The first visible measure (the cube's default measure).
    pub fn default_measure(&self) -> Option<&Measure> {
        self.measures.iter().find(|m| m.visible)
    }

    /// Each cube has one measure group, named after the cube.
    pub fn measure_group_name(&self) -> &str {
        &self.name
    }

    pub fn is_benchmark(&self) -> bool {
        matches!(self.security.class, SecurityClass::Benchmark { .. })
    }

    /// A cube without personal data: no row scope applies.
    pub fn is_public(&self) -> bool {
        self.security.class == SecurityClass::Public
    }

    pub fn is_virtual(&self) -> bool {
        self.virtual_cube.is_some()
    }

    /// Every source whose rows are facts of this cube: its own, or its base cubes'.
    pub fn fact_sources(&self) -> Vec<&Source> {
        match &self.virtual_cube {
            Some(v) => v.parts.iter().map(|p| &p.source).collect(),
            None => vec![&self.source],
        }
    }

    /// How the fact table is shown in traces: `oekonomi/postering`, or
    /// `virtual: Sales (foodmart/sales.parquet) + Warehouse (...)`.
    pub fn fact_label(&self) -> String {
        match &self.virtual_cube {
            Some(v) => {
                let parts: Vec<String> = v.parts.iter().map(|p| format!("{} ({})", p.cube, p.source)).collect();
                format!("virtual: {}", parts.join(" + "))
            }
            None => self.source.to_string(),
        }
    }
}

/// The column of a virtual cube's fact relation naming the base cube of each row.
pub const BASE_CUBE_COLUMN: &str = "__cube";

/// A virtual cube resolved: its fact relation is the union (by column name) of one projection
/// per base cube, each tagged with the base cube's name in [`BASE_CUBE_COLUMN`]. A column a
/// base cube does not project is NULL on its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualCube {
    pub parts: Vec<VirtualPart>,
}

/// One base cube of a virtual cube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualPart {
    /// The base cube's name (the value of [`BASE_CUBE_COLUMN`] on its rows).
    pub cube: String,
    /// Its fact table.
    pub source: Source,
    /// `(column of the base fact table, column name in the virtual cube)`: dimension keys,
    /// measure and filter columns, the row-scope column.
    pub columns: Vec<(String, String)>,
}

/// Whether a dimension is about time (any level has a time level type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DimensionKind {
    Regular,
    Time,
}

/// A dimension. In a cube it holds only the hierarchies the cube uses, and the fact column
/// joined to it.
#[derive(Debug, Clone)]
pub struct Dimension {
    pub name: String,
    pub caption: Caption,
    pub description: Option<Description>,
    pub kind: DimensionKind,
    /// At least one; the first is the default hierarchy.
    pub hierarchies: Vec<Hierarchy>,
    /// Defined in its own file and usable by several cubes.
    pub shared: bool,
    /// In a cube: the fact column joined to each hierarchy's `primary_key`. `None` for
    /// dimensions read from the fact table itself, and in [`Catalog::shared_dimensions`].
    pub foreign_key: Option<String>,
    /// The file the dimension is defined in.
    pub file: PathBuf,
}

impl Dimension {
    /// `[Kommune]`.
    pub fn unique_name(&self) -> String {
        bracket(&self.name)
    }

    pub fn hierarchy(&self, name: &str) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| same(&h.name, name))
    }

    pub fn default_hierarchy(&self) -> &Hierarchy {
        &self.hierarchies[0]
    }

    pub fn is_time(&self) -> bool {
        self.kind == DimensionKind::Time
    }
}

/// The All member of a hierarchy.
#[derive(Debug, Clone)]
pub struct AllMember {
    /// `All` unless configured.
    pub name: String,
    pub caption: Caption,
    /// `[Kommune].[Geografi].[All]`.
    pub unique_name: String,
}

/// A hierarchy.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub name: String,
    pub caption: Caption,
    pub description: Option<Description>,
    /// `[Kommune].[Geografi]` (with `naming: name_path`: `[Time]` for a dimension's first
    /// hierarchy, `[Time.Weekly]` for the others).
    pub unique_name: String,
    /// How the unique names of this hierarchy's levels and members are formed.
    pub naming: Naming,
    pub display_folder: Option<String>,
    /// The dimension table; `None` when the columns are in the fact table.
    pub source: Option<Source>,
    /// The column of `source` joined to the cube's foreign key: by default the key column of
    /// the last level (for parent-child hierarchies, the child key), or the configured one.
    pub primary_key: String,
    /// `false` when the All member is hidden from MDX (Mondrian's `hasAll="false"`): the
    /// members still hang under an internal root, but `.Members`, levels and the default member
    /// leave it out.
    pub has_all: bool,
    pub all_member: AllMember,
    /// MDX unique name of the default member as written; `None` means the All member (or,
    /// without an All member, the first member of the top level).
    pub default_member: Option<String>,
    /// Set for parent-child hierarchies (which then have exactly one level).
    pub parent_column: Option<String>,
    /// Levels from the top down, without the All level.
    pub levels: Vec<Level>,
}

impl Hierarchy {
    pub fn level(&self, name: &str) -> Option<&Level> {
        self.levels.iter().find(|l| same(&l.name, name))
    }

    pub fn is_parent_child(&self) -> bool {
        self.parent_column.is_some()
    }

    /// The default member's unique name: the configured one or the All member. (Without an
    /// All member and without a configured default this is the hidden root's name; the member
    /// store knows the first top-level member.)
    pub fn default_member_unique_name(&self) -> &str {
        self.default_member.as_deref().unwrap_or(&self.all_member.unique_name)
    }

    /// Whether the join key is the last level's key column (the fact key identifies a
    /// leaf member directly).
    pub fn joins_on_leaf_key(&self) -> bool {
        self.levels.last().is_some_and(|l| l.key_column == self.primary_key)
    }
}

/// A level.
#[derive(Debug, Clone)]
pub struct Level {
    pub name: String,
    pub caption: Caption,
    pub description: Option<Description>,
    /// `[Kommune].[Geografi].[Kommune]` (with `naming: name_path`: `[Store].[Store City]`).
    pub unique_name: String,
    /// 1 for the top level (the All level is 0).
    pub number: usize,
    pub key_column: String,
    /// DuckDB type of the key column, when a schema provider was given.
    pub key_type: Option<String>,
    /// Member caption column (Danish); defaults to the key column.
    pub name_column: String,
    /// English member caption column; `None` means use `name_column`.
    pub name_column_en: Option<String>,
    /// Defaults to the key column.
    pub sort_column: String,
    pub level_type: LevelType,
    pub unique_members: bool,
    pub properties: Vec<MemberProperty>,
}

impl Level {
    pub fn property(&self, name: &str) -> Option<&MemberProperty> {
        self.properties.iter().find(|p| same(&p.name, name))
    }

    /// The member caption column for a language.
    pub fn name_column_for(&self, lang: Lang) -> &str {
        match (lang, &self.name_column_en) {
            (Lang::En, Some(en)) => en,
            _ => &self.name_column,
        }
    }
}

/// A member property.
#[derive(Debug, Clone)]
pub struct MemberProperty {
    pub name: String,
    pub caption: Caption,
    pub description: Option<Description>,
    pub column: String,
    pub data_type: PropertyType,
    /// DuckDB type of the column, when a schema provider was given.
    pub column_type: Option<String>,
}

/// A measure.
#[derive(Debug, Clone)]
pub struct Measure {
    pub name: String,
    pub caption: Caption,
    pub description: Option<Description>,
    /// `[Measures].[Antal borgere]`.
    pub unique_name: String,
    pub kind: MeasureKind,
    pub format_string: Option<String>,
    pub display_folder: Option<String>,
    pub visible: bool,
    /// The measure counting the individuals behind this one (disclosure control).
    pub disclosure_count: Option<String>,
}

impl Measure {
    pub fn is_calculated(&self) -> bool {
        matches!(self.kind, MeasureKind::Calculated(_))
    }
}

/// Stored (aggregated from a fact column) or calculated (an MDX expression).
#[derive(Debug, Clone)]
pub enum MeasureKind {
    Stored(StoredMeasure),
    Calculated(CalculatedMeasure),
}

/// A measure aggregated from the fact table.
#[derive(Debug, Clone)]
pub struct StoredMeasure {
    /// `None` only for `count` without a column (counts rows).
    pub column: Option<String>,
    /// DuckDB type of the column, when a schema provider was given.
    pub column_type: Option<String>,
    pub aggregator: Aggregator,
    /// The time dimension of a semi-additive measure (`last_non_empty`, `average_over_time`);
    /// always set for those, `None` for the others.
    pub time_dimension: Option<String>,
    pub filter: Option<MeasureFilter>,
    /// In a virtual cube: the base cube whose rows alone this measure aggregates.
    pub base_cube: Option<String>,
}

/// Only fact rows where `column` is one of `values` are aggregated.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureFilter {
    pub column: String,
    pub values: Vec<FilterValue>,
}

/// A calculated measure.
#[derive(Debug, Clone)]
pub struct CalculatedMeasure {
    /// The expression as written.
    pub expression: String,
    /// The parsed expression.
    pub expr: datakube_mdx::ast::Expr,
    /// Names of the measures the expression refers to (`[Measures].[X]`), in order of
    /// appearance, without repeats.
    pub references: Vec<String>,
}

/// Access rules of a cube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    pub class: SecurityClass,
    /// Fact column with the municipality of each row; `None` exactly for public cubes.
    pub row_scope_column: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityClass {
    /// Rows of the user's own municipality only, at any grain.
    Individual,
    /// All municipalities, aggregated; cells from fewer than `min_cell_count` individuals are
    /// suppressed.
    Benchmark { min_cell_count: u32 },
    /// No personal data: every user sees every row; no row scope.
    Public,
}

/// A declared aggregate (see [`crate::format::AggregateDef`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub name: String,
    /// (dimension, hierarchy, level) names as in the model, one per hierarchy.
    pub levels: Vec<(String, String, String)>,
    /// Stored measures by name.
    pub measures: Vec<String>,
}

/// Drillthrough ("Show Details").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drillthrough {
    pub source: Source,
    pub columns: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lang_from_lcid() {
        assert_eq!(Lang::from_lcid(1030), Lang::Da);
        assert_eq!(Lang::from_lcid(1033), Lang::En);
        assert_eq!(Lang::from_lcid(2057), Lang::En);
    }

    #[test]
    fn captions() {
        let c = Caption {
            da: "Kommune".into(),
            en: "Municipality".into(),
        };
        assert_eq!(c.get(Lang::Da), "Kommune");
        assert_eq!(c.get(Lang::En), "Municipality");
        let d = Description {
            da: "Kun dansk".into(),
            en: None,
        };
        assert_eq!(d.get(Lang::En), "Kun dansk");
    }

    #[test]
    fn source_display() {
        let s = Source::Dataset {
            dataset: "oekonomi".into(),
            table: "postering".into(),
        };
        assert_eq!(s.to_string(), "oekonomi/postering");
    }
}
