//! The YAML file format, exactly as written: one type per kind of block. These types are
//! deserialized with serde (unknown keys are errors) and are the source of the JSON Schema
//! (`cube-definitions/schema.json`). Meaning (references, columns, duplicates) is checked
//! afterwards and turned into the resolved [`crate::Catalog`].
//!
//! The doc comments below become the descriptions editors show on hover.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A cube-definition file holds exactly one of `catalog:`, `dimension:` (a shared dimension)
/// or `cube:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DefinitionFile {
    /// The catalog (database) all cubes belong to. Exactly one file per folder has it.
    Catalog(CatalogDef),
    /// A shared dimension, defined once and used by several cubes (`shared: <name>`).
    Dimension(DimensionDef),
    /// A cube: its fact source, dimensions, measures and security.
    Cube(Box<CubeDef>),
    /// Who may see what: roles granted by identity-provider claims or KOMBIT privileges,
    /// service accounts, disclosure marker, comparison groups. At most one file per folder.
    Security(AccessRulesDef),
}

/// Roles and how identities get them (see docs/security.md). Unknown users get nothing.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRulesDef {
    /// Which OIDC claims carry what (SAML uses the OIOSAML 3 attributes).
    #[serde(default)]
    pub claims: ClaimsDef,
    /// Roles: what a user gets when a claim value or privilege grants the role.
    #[serde(default)]
    pub roles: Vec<RoleDef>,
    /// Clients of the client-credentials grant (BI vendors' servers), by client id.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountDef>,
    /// How suppressed benchmark cells look.
    #[serde(default)]
    pub disclosure: DisclosureDef,
    /// Named comparison groups for `[Kommune].[Geografi].[Sammenligningsgruppe]`. Without
    /// any, each kommune's group is the kommuner of its region in its population band.
    #[serde(default)]
    pub comparison_groups: Vec<ComparisonGroupDef>,
}

/// OIDC claim names.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimsDef {
    /// The stable subject id (default `sub`).
    pub subject: String,
    /// The display name (default `name`).
    pub name: String,
    /// The organisation's CVR number, a string or a list (default `organisation_cvr`).
    pub cvr: String,
    /// A kommunekode, a number or a list (default `kommunekode`).
    pub kommunekode: String,
    /// Role or group names (default `roles`), matched against each role's `claims`.
    pub roles: String,
}

impl Default for ClaimsDef {
    fn default() -> Self {
        ClaimsDef {
            subject: "sub".into(),
            name: "name".into(),
            cvr: "organisation_cvr".into(),
            kommunekode: "kommunekode".into(),
            roles: "roles".into(),
        }
    }
}

/// One role. Roles are additive: a user holding several gets the union.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// Role name (`admin` is reserved for administrators).
    pub name: String,
    pub caption: Option<CaptionDef>,
    pub description: Option<DescriptionDef>,
    /// OIDC role/group claim values that grant the role.
    #[serde(default)]
    pub claims: Vec<String>,
    /// Brugersystemrolle URIs (OIO-BPP `Privilege`) that grant the role, within the
    /// privilege group's organisation.
    #[serde(default)]
    pub privileges: Vec<String>,
    /// What rows the role reaches.
    pub access: AccessDef,
    /// Cubes granted by name; absent = every cube.
    pub cubes: Option<Vec<String>>,
    /// KOMBIT constraints (dataafgrænsninger) that become allowed sets on a dimension.
    #[serde(default)]
    pub restrictions: Vec<RestrictionDef>,
}

/// What rows a role reaches.
///
/// - `own_municipality`: individual-level rows of the user's own kommune(r) (from the CVR of
///   the organisation or privilege group), and benchmark cubes.
/// - `benchmark`: benchmark cubes only (all kommuner, aggregated, disclosure-controlled).
/// - `all`: every row of every kommune (national users, administrators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessDef {
    OwnMunicipality,
    Benchmark,
    All,
}

/// A constraint of a privilege group that restricts the members of a dimension.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictionDef {
    /// Constraint name, e.g. `http://sts.kombit.dk/constraints/orgenhed/1`. Its value is a
    /// comma-separated list of member keys.
    pub constraint: String,
    /// The dimension whose members the keys allow, e.g. `Organisation`.
    pub dimension: String,
}

/// A service account (client-credentials client).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountDef {
    /// The OAuth client id the token carries.
    pub client_id: String,
    /// Roles granted (names from `roles`).
    pub roles: Vec<String>,
    /// Kommuner whose rows `own_municipality` roles reach for this account.
    #[serde(default)]
    pub kommuner: Vec<u16>,
    /// May send `EffectiveUserName`, `CustomData` and `Roles` (audited).
    #[serde(default)]
    pub impersonate: bool,
}

/// How suppressed cells look.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DisclosureDef {
    /// The formatted value of a suppressed cell (its value is empty). Default `..`, as
    /// Danmarks Statistik prints it.
    pub marker: String,
}

impl Default for DisclosureDef {
    fn default() -> Self {
        DisclosureDef { marker: "..".into() }
    }
}

/// A named group of kommuner to compare with.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComparisonGroupDef {
    pub name: String,
    /// Kommunekoder in the group; a user's group is the first that holds their kommune.
    pub kommuner: Vec<u16>,
}

/// The catalog shown as the database in Excel (`FLIS`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogDef {
    /// Catalog name, e.g. `FLIS`.
    pub name: String,
    #[schemars(required)]
    pub caption: Option<CaptionDef>,
    pub description: Option<DescriptionDef>,
    /// How unique names of hierarchies, levels and members are formed (default `key`).
    #[serde(default)]
    pub naming: Naming,
}

/// How unique names are formed.
///
/// - `key` (default, SSAS 2005+ style): hierarchies `[Dim].[Hier]`, levels
///   `[Dim].[Hier].[Level]`, members `[Dim].[Hier].[Level].&[key]`.
/// - `name_path` (Mondrian / SSAS 2000 style, for catalogs such as FoodMart): the first
///   hierarchy of a dimension is `[Dim]`, others `[Dim.Hier]`; levels `[Dim].[Level]`; members
///   the path of names from the top: `[Store].[USA].[CA]`, the All member `[Store].[All Stores]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Naming {
    #[default]
    Key,
    NamePath,
}

/// A caption in Danish (the default) and English. Both are required.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptionDef {
    /// Danish caption (default language).
    #[schemars(required)]
    pub da: Option<String>,
    /// English caption.
    #[schemars(required)]
    pub en: Option<String>,
}

/// A longer description. English falls back to Danish when absent.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescriptionDef {
    pub da: String,
    pub en: Option<String>,
}

/// Where rows come from: a table of a dataset (`{dataset: oekonomi, table: postering}`) or
/// Parquet files (`{path: "some/glob/*.parquet"}`, relative to the data directory).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    pub dataset: Option<String>,
    pub table: Option<String>,
    pub path: Option<String>,
}

impl JsonSchema for SourceDef {
    fn schema_name() -> Cow<'static, str> {
        "SourceDef".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Where rows come from: a table of a dataset or a glob of Parquet files.",
            "oneOf": [
                {
                    "type": "object",
                    "properties": {
                        "dataset": { "type": "string", "description": "Dataset name, e.g. `oekonomi`." },
                        "table": { "type": "string", "description": "Table in the dataset, e.g. `postering`." }
                    },
                    "required": ["dataset", "table"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": {
                        "path": { "type": "string", "description": "Glob of Parquet files, relative to the data directory." }
                    },
                    "required": ["path"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// A dimension: named hierarchies of levels over a dimension table (or over fact columns when
/// no source is given).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DimensionDef {
    /// Dimension name as used in MDX: `Kommune` → `[Kommune]`.
    pub name: String,
    #[schemars(required)]
    pub caption: Option<CaptionDef>,
    pub description: Option<DescriptionDef>,
    /// Dimension table for all hierarchies (a hierarchy may name its own). Without any source
    /// the level columns are read from the cube's fact table (a degenerate dimension).
    pub source: Option<SourceDef>,
    /// At least one hierarchy; the first is the default hierarchy.
    pub hierarchies: Vec<HierarchyDef>,
}

/// A hierarchy: ordered levels from the top (`Region`) to the leaves (`Kommune`), or a
/// parent-child hierarchy (`parent_column` and exactly one level).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HierarchyDef {
    /// Hierarchy name: `Geografi` → `[Kommune].[Geografi]`.
    pub name: String,
    #[schemars(required)]
    pub caption: Option<CaptionDef>,
    pub description: Option<DescriptionDef>,
    /// Folder in Excel's field list.
    pub display_folder: Option<String>,
    /// Dimension table of this hierarchy, when it differs from the dimension's `source`.
    pub source: Option<SourceDef>,
    /// The member above all others (default name `All`, caption Alle/All).
    pub all_member: Option<AllMemberDef>,
    /// `false`: the hierarchy has no All member visible to MDX; its default member is the
    /// first member of the top level (Mondrian's `hasAll="false"`). Default `true`.
    #[serde(default = "yes")]
    pub has_all: bool,
    /// Column of `source` joined to the cube's `foreign_key`, when it is not the key column of
    /// the last level (a day key under a month level, say). Default: the last level's key.
    pub primary_key: Option<String>,
    /// MDX unique name of the default member; default: the All member.
    pub default_member: Option<String>,
    /// Makes this a parent-child hierarchy: the column holding the parent's key (NULL at the
    /// top). The single level's `key_column` is the child key.
    pub parent_column: Option<String>,
    /// Levels from the top down. The key column of the last level is joined to the cube's
    /// `foreign_key`.
    pub levels: Vec<LevelDef>,
}

/// The All member of a hierarchy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllMemberDef {
    /// Member name: `[Kommune].[Geografi].[<name>]`.
    pub name: String,
    pub caption: Option<CaptionDef>,
}

/// A level of a hierarchy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelDef {
    /// Level name: `Kommune` → `[Kommune].[Geografi].[Kommune]`.
    pub name: String,
    #[schemars(required)]
    pub caption: Option<CaptionDef>,
    pub description: Option<DescriptionDef>,
    /// Column with the member key: `&[751]` in `[Kommune].[Geografi].[Kommune].&[751]`.
    pub key_column: String,
    /// Column with the member caption (Danish); default: the key column.
    pub name_column: Option<String>,
    /// Column with the English member caption; default: `name_column`.
    pub name_column_en: Option<String>,
    /// Column members are sorted by; default: the key column.
    pub sort_column: Option<String>,
    /// Level type; time levels must come in the order years, quarters, months, weeks, days.
    #[serde(rename = "type", default)]
    pub level_type: LevelType,
    /// Member keys are unique across the whole level, not only under one parent.
    #[serde(default)]
    pub unique_members: bool,
    /// Member properties (attributes shown with each member).
    #[serde(default)]
    pub properties: Vec<PropertyDef>,
}

/// The kind of a level; all but `regular` make the dimension a time dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LevelType {
    #[default]
    Regular,
    Years,
    Quarters,
    Months,
    Weeks,
    Days,
}

/// A member property: a column shown next to each member of a level.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertyDef {
    /// Property name, e.g. `CVR`.
    pub name: String,
    #[schemars(required)]
    pub caption: Option<CaptionDef>,
    pub description: Option<DescriptionDef>,
    /// Column holding the value.
    pub column: String,
    /// Value type (default `string`).
    #[serde(rename = "type", default)]
    pub data_type: PropertyType,
}

/// Type of a member property value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    #[default]
    String,
    Integer,
    Number,
    Boolean,
    Date,
}

/// A cube.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CubeDef {
    /// Cube name: `FROM [Befolkning]`.
    pub name: String,
    #[schemars(required)]
    pub caption: Option<CaptionDef>,
    pub description: Option<DescriptionDef>,
    /// The fact table. A cube has either `source` or `virtual`.
    pub source: Option<SourceDef>,
    /// A virtual cube: the fact tables of other cubes of the catalogue combined into one
    /// (Mondrian's `VirtualCube`). Its dimensions and measures name those of the base cubes.
    #[serde(rename = "virtual")]
    pub virtual_cube: Option<VirtualDef>,
    /// Who may see what. A virtual cube has the class of its base cubes.
    pub security: SecurityDef,
    /// Dimensions in field-list order: references to shared dimensions (`shared:`) or
    /// dimensions defined here (`name:`, `hierarchies:`).
    #[serde(default)]
    pub dimensions: Vec<CubeDimensionDef>,
    /// At least one measure.
    #[serde(default)]
    pub measures: Vec<MeasureDef>,
    /// Columns returned by "Show Details" (drillthrough). Not allowed on benchmark cubes.
    pub drillthrough: Option<DrillthroughDef>,
    /// Pre-aggregated copies of the fact table (`datakube aggregates build`), read instead of
    /// the fact table when they cover a query.
    #[serde(default)]
    pub aggregates: Vec<AggregateDef>,
}

/// The base cubes of a virtual cube.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualDef {
    /// Names of ordinary (not virtual) cubes of the catalogue whose fact rows the virtual cube
    /// reads. A measure taken from one of them (`from:`) aggregates only that cube's rows; a
    /// dimension a base cube lacks leaves that cube's measures empty below its All member.
    pub cubes: Vec<String>,
}

/// An aggregate: the fact table summed to these levels, per row-scope value (the cube's
/// `row_scope_column` is always kept). A query on these levels or coarser ones of the same
/// hierarchies reads it instead of the fact table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateDef {
    /// Aggregate name: lowercase letters, digits and `_` (it names a folder).
    pub name: String,
    /// Levels kept, as unique names `[Dimension].[Hierarchy].[Level]`, at most one per
    /// hierarchy; coarser levels of the same hierarchy are kept with them.
    pub levels: Vec<String>,
    /// Stored measures kept: only `sum`, `count`, `min` and `max` measures (a distinct count,
    /// an average or a semi-additive measure cannot be combined from pre-aggregated rows).
    pub measures: Vec<String>,
}

/// A dimension of a cube: either `shared: <name>` (defined in its own file) or a dimension
/// defined in place (`name`, `caption`, `source`, `hierarchies`). Both need `foreign_key`
/// unless the dimension reads its columns from the fact table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CubeDimensionDef {
    /// Name of a shared dimension (a file with `dimension:`). In a virtual cube it is joined
    /// to every base cube that uses it, through that cube's own `foreign_key`.
    pub shared: Option<String>,
    /// Virtual cubes only, with `name`: the base cube whose (not shared) dimension `name` is
    /// taken over, e.g. `{name: Customers, from: Sales}`.
    pub from: Option<String>,
    /// Only these hierarchies of the shared dimension (default: all).
    pub use_hierarchies: Option<Vec<String>>,
    /// Fact column joined to the dimension key (the key column of the lowest level).
    pub foreign_key: Option<String>,
    /// Name of a dimension defined here.
    pub name: Option<String>,
    pub caption: Option<CaptionDef>,
    pub description: Option<DescriptionDef>,
    /// Dimension table of a dimension defined here.
    pub source: Option<SourceDef>,
    /// Hierarchies of a dimension defined here.
    pub hierarchies: Option<Vec<HierarchyDef>>,
}

/// A measure: a fact column with an aggregator, or a calculated MDX `expression`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasureDef {
    /// Measure name: `[Measures].[Antal borgere]`.
    pub name: String,
    /// Required, except on a measure taken `from` a base cube (which keeps the base caption).
    pub caption: Option<CaptionDef>,
    /// Virtual cubes only: the base cube this measure (stored or calculated) is taken from,
    /// e.g. `{name: Store Sales, from: Sales}`. Measures a taken calculation refers to come
    /// along hidden.
    pub from: Option<String>,
    pub description: Option<DescriptionDef>,
    /// Fact column aggregated (optional only for `count`, which then counts rows).
    pub column: Option<String>,
    /// How values are combined.
    pub aggregator: Option<Aggregator>,
    /// For `last_non_empty` and `average_over_time`: the time dimension the measure is
    /// semi-additive over (it is summed over all other dimensions).
    pub time_dimension: Option<String>,
    /// Only fact rows where `column` has one of `values` count, e.g.
    /// `{column: beloebstype_kode, values: [R]}`.
    pub filter: Option<FilterDef>,
    /// MDX expression of a calculated measure, e.g. `[Measures].[Regnskab] - [Measures].[Budget]`.
    pub expression: Option<String>,
    /// Excel format string, e.g. `#,##0`, `0.0%`, `#,##0 "kr."`.
    pub format_string: Option<String>,
    /// Folder in Excel's field list.
    pub display_folder: Option<String>,
    /// Hidden measures can be used in expressions but are not listed (default true).
    #[serde(default = "yes")]
    pub visible: bool,
    /// Name of the measure counting the individuals behind this one (used by disclosure
    /// control; required on every visible measure of a benchmark cube).
    pub disclosure_count: Option<String>,
}

fn yes() -> bool {
    true
}

/// How a stored measure aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregator {
    Sum,
    Count,
    DistinctCount,
    Min,
    Max,
    Avg,
    /// The value of the last time member with data; summed over the other dimensions.
    LastNonEmpty,
    /// The average over the time members (of the lowest time level) of the sums.
    AverageOverTime,
}

impl Aggregator {
    /// Semi-additive aggregators need a `time_dimension`.
    pub fn is_semi_additive(self) -> bool {
        matches!(self, Aggregator::LastNonEmpty | Aggregator::AverageOverTime)
    }

    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregator::Sum => "sum",
            Aggregator::Count => "count",
            Aggregator::DistinctCount => "distinct_count",
            Aggregator::Min => "min",
            Aggregator::Max => "max",
            Aggregator::Avg => "avg",
            Aggregator::LastNonEmpty => "last_non_empty",
            Aggregator::AverageOverTime => "average_over_time",
        }
    }
}

/// A constant filter on a fact column.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterDef {
    /// Fact column.
    pub column: String,
    /// Accepted values (one or more).
    pub values: Vec<FilterValue>,
}

/// A constant: string, integer, number or boolean.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    String(String),
    Integer(i64),
    Number(f64),
    Boolean(bool),
}

impl fmt::Display for FilterValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterValue::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            FilterValue::Integer(i) => write!(f, "{i}"),
            FilterValue::Number(n) => write!(f, "{n}"),
            FilterValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}

impl<'de> Deserialize<'de> for FilterValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FilterValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FilterValue, E> {
                Ok(FilterValue::String(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FilterValue, E> {
                Ok(FilterValue::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FilterValue, E> {
                i64::try_from(v)
                    .map(FilterValue::Integer)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FilterValue, E> {
                Ok(FilterValue::Number(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FilterValue, E> {
                Ok(FilterValue::Boolean(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for FilterValue {
    fn schema_name() -> Cow<'static, str> {
        "FilterValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "integer", "number", "boolean"] })
    }
}

/// Access rules of a cube.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityDef {
    /// `individual`: a user sees only rows of their own municipality, at any grain.
    /// `benchmark`: all municipalities, aggregated, with small cells suppressed.
    /// `public`: only for cubes without personal data; every user sees every row.
    pub class: SecurityClassDef,
    /// Fact column holding the municipality of each row (`kommunekode`). Required for
    /// `individual` and `benchmark`, not allowed for `public`.
    pub row_scope_column: Option<String>,
    /// Benchmark only: cells built from fewer individuals are suppressed (default 5).
    pub min_cell_count: Option<u32>,
}

/// Security class of a cube.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecurityClassDef {
    Individual,
    Benchmark,
    /// No personal data in the cube (demo and conformance data such as FoodMart): no row
    /// scope, every user sees all rows.
    Public,
}

/// Drillthrough ("Show Details"): the rows behind a cell, with these columns.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillthroughDef {
    /// Table the rows come from (default: the fact table). It must have the cube's
    /// `row_scope_column`.
    pub source: Option<SourceDef>,
    /// Columns returned, in order.
    pub columns: Vec<String>,
}
