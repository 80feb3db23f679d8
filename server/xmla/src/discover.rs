//! Discover: every schema rowset, filled from the cube model and the member store.
//!
//! Captions follow the request's language. Restrictions that name a column filter on it
//! (several `<Value>`s mean "any of"); restrictions that are not columns are handled by the
//! rowset (`TREE_OP`, `PROPERTY_TYPE`, …) or, for visibility/source flags, accepted. An
//! unknown restriction name or rowset is a fault naming it.

use datakube_members::{HierarchyMembers, MemberStore};
use datakube_model::{Aggregator, Catalog, Cube, Hierarchy, Lang, LevelType, MeasureKind, PropertyType, SecurityClass};

use crate::response::codes;
use crate::rowset::Value;
use crate::rowsets::{self, ROWSETS, RowsetDef};
use crate::soap::Discover;

/// Server facts reported by DISCOVER_PROPERTIES and DISCOVER_DATASOURCES.
#[derive(Debug, Clone)]
pub struct ServerProps {
    pub server_name: String,
    pub provider_version: String,
    pub dbms_version: String,
    pub data_source_url: String,
}

impl Default for ServerProps {
    fn default() -> Self {
        ServerProps {
            server_name: "datakube".into(),
            // SSAS 2022 numbers: with these Excel uses subselects for filters (not VisualTotals sets).
            provider_version: "16.0.0.0".into(),
            dbms_version: "16.0.43.20".into(),
            data_source_url: "https://localhost:8443/xmla".into(),
        }
    }
}

/// What a Discover needs besides the request.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub members: &'a MemberStore,
    pub lang: Lang,
    /// The catalog of the session or request (`Catalog` property), if any.
    pub current_catalog: Option<&'a str>,
    pub server: &'a ServerProps,
    /// When the cube definitions were loaded (xsd:dateTime).
    pub schema_updated: &'a str,
    /// When the data was last refreshed (xsd:dateTime).
    pub data_updated: &'a str,
    /// What the verified principal may see: cubes it may not open are absent, and so are
    /// members outside its scope.
    pub access: &'a datakube_members::access::Access,
}

impl<'a> Context<'a> {
    /// The cubes the principal may open, in catalog order.
    pub fn cubes(&self) -> impl Iterator<Item = &'a Cube> + '_ {
        self.catalog.cubes.iter().filter(|c| self.access.may_open(c))
    }
}

/// A fault to send: code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: u32,
    pub message: String,
}

impl Fault {
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
        }
    }
}

type Rows = Vec<Vec<Value>>;

/// Answer a Discover with a rowset `<root>`.
pub fn discover(req: &Discover, ctx: &Context) -> Result<String, Fault> {
    let (def, rows) = rows(req, ctx)?;
    let content = crate::rowset::Content::from_property(req.properties.get("Content"));
    Ok(crate::rowset::write_rowset_content(def.columns, &rows, content))
}

/// The rowset a Discover names and its rows, restrictions applied, before they are written
/// (DMV statements filter, sort and project them further: `dmv.rs`).
pub(crate) fn rows(req: &Discover, ctx: &Context) -> Result<(&'static RowsetDef, Vec<Vec<Value>>), Fault> {
    let def = rowsets::find(&req.request_type).ok_or_else(|| {
        Fault::new(
            codes::UNSUPPORTED_ROWSET,
            format!(
                "the schema rowset '{}' is not supported; supported: {}",
                req.request_type,
                ROWSETS.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    for r in &req.restrictions {
        if !def.restrictions.iter().any(|(n, _)| n.eq_ignore_ascii_case(&r.name)) {
            return Err(Fault::new(
                codes::BAD_RESTRICTION,
                format!(
                    "{} has no restriction '{}'; its restrictions are: {}",
                    def.name,
                    r.name,
                    def.restrictions.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    // Restrictions on the catalog: a different catalog matches nothing.
    let catalog_ok = ["CATALOG_NAME", "TABLE_CATALOG"]
        .iter()
        .flat_map(|n| req.restriction(n))
        .all(|v| v.is_empty() || v.eq_ignore_ascii_case(&ctx.catalog.name));
    let rows = match def.name {
        "DISCOVER_DATASOURCES" => datasources(ctx),
        "DISCOVER_PROPERTIES" => properties(req, ctx),
        "DISCOVER_SCHEMA_ROWSETS" => schema_rowsets(),
        "DISCOVER_ENUMERATORS" => enumerators(),
        "DISCOVER_KEYWORDS" => KEYWORDS.iter().map(|k| vec![Value::from(*k)]).collect(),
        "DISCOVER_LITERALS" => literals(),
        _ if !catalog_ok => Vec::new(),
        "DBSCHEMA_CATALOGS" => catalogs(ctx),
        "DBSCHEMA_TABLES" => tables(ctx),
        "DBSCHEMA_COLUMNS" => columns(ctx),
        "MDSCHEMA_CUBES" => cubes(ctx),
        "MDSCHEMA_DIMENSIONS" => dimensions(ctx),
        "MDSCHEMA_HIERARCHIES" => hierarchies(ctx),
        "MDSCHEMA_LEVELS" => levels(ctx),
        "MDSCHEMA_MEASURES" => measures(req, ctx)?,
        "MDSCHEMA_MEASUREGROUPS" => measure_groups(ctx),
        "MDSCHEMA_MEASUREGROUP_DIMENSIONS" => measure_group_dimensions(ctx),
        "MDSCHEMA_PROPERTIES" => member_and_cell_properties(req, ctx)?,
        "MDSCHEMA_MEMBERS" => members(req, ctx)?,
        "MDSCHEMA_SETS" | "MDSCHEMA_KPIS" | "MDSCHEMA_ACTIONS" => Vec::new(),
        "MDSCHEMA_FUNCTIONS" => functions(ctx.lang),
        other => {
            return Err(Fault::new(
                codes::UNSUPPORTED_ROWSET,
                format!("the schema rowset '{other}' is not supported"),
            ));
        }
    };
    Ok((def, filter(def, req, rows)))
}

/// Keep rows matching every restriction that names a column of the rowset.
fn filter(def: &RowsetDef, req: &Discover, rows: Rows) -> Rows {
    // Restrictions that are flags or handled by the rowset itself, not column filters.
    const NOT_FILTERS: &[&str] = &[
        "TREE_OP",
        "CUBE_SOURCE",
        "DIMENSION_VISIBILITY",
        "HIERARCHY_VISIBILITY",
        "LEVEL_VISIBILITY",
        "MEASURE_VISIBILITY",
        "PROPERTY_VISIBILITY",
        "PROPERTY_TYPE",
        "MEMBER_UNIQUE_NAME",
        "CATALOG_NAME",
        "TABLE_CATALOG",
        "PropertyName",
    ];
    let mut active: Vec<(usize, &[String])> = Vec::new();
    for r in &req.restrictions {
        let values = r.values.as_slice();
        if values.is_empty()
            || values.iter().all(|v| v.is_empty())
            || NOT_FILTERS.iter().any(|n| n.eq_ignore_ascii_case(&r.name))
        {
            continue;
        }
        if let Some(i) = def.columns.iter().position(|c| c.name.eq_ignore_ascii_case(&r.name)) {
            active.push((i, values));
        }
    }
    if active.is_empty() {
        return rows;
    }
    rows.into_iter()
        .filter(|row| {
            active.iter().all(|(i, values)| {
                let cell = match &row[*i] {
                    Value::Str(s) => s.clone(),
                    Value::Int(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Double(d) => d.to_string(),
                    Value::Null | Value::Restrictions(_) => return false,
                };
                values.iter().any(|v| v.eq_ignore_ascii_case(&cell))
            })
        })
        .collect()
}

fn s(x: impl Into<String>) -> Value {
    Value::Str(x.into())
}
fn i(x: impl Into<i64>) -> Value {
    Value::Int(x.into())
}
fn b(x: bool) -> Value {
    Value::Bool(x)
}
const N: Value = Value::Null;

fn datasources(ctx: &Context) -> Rows {
    vec![vec![
        s(&ctx.server.server_name),
        s("datakube: FLIS-cuber for kommuner / FLIS cubes for Danish municipalities"),
        s(&ctx.server.data_source_url),
        s(format!("Provider=MSOLAP;Data Source={}", ctx.server.data_source_url)),
        s("datakube"),
        s("MDP"),
        s("Authenticated"),
    ]]
}

/// DISCOVER_PROPERTIES: the properties we know; only the requested ones when restricted.
fn properties(req: &Discover, ctx: &Context) -> Rows {
    let catalog = ctx.current_catalog.unwrap_or(&ctx.catalog.name).to_string();
    let lcid = match ctx.lang {
        Lang::Da => "1030",
        Lang::En => "1033",
    };
    let req_prop = |n: &str| req.properties.get(n).unwrap_or("").to_string();
    // (name, type, access, value)
    let all: Vec<(&str, &str, &str, String)> = vec![
        ("ServerName", "string", "Read", ctx.server.server_name.clone()),
        ("ProviderName", "string", "Read", "datakube".into()),
        ("ProviderVersion", "string", "Read", ctx.server.provider_version.clone()),
        ("DBMSVersion", "string", "Read", ctx.server.dbms_version.clone()),
        ("Catalog", "string", "ReadWrite", catalog),
        ("LocaleIdentifier", "unsignedInt", "ReadWrite", lcid.into()),
        ("Format", "string", "Write", "Native".into()),
        ("AxisFormat", "string", "Write", "TupleFormat".into()),
        ("Content", "string", "Write", "SchemaData".into()),
        // 63: subselects of any shape, with calculated members (SSAS 2014+).
        ("MdpropMdxSubqueries", "int", "Read", "63".into()),
        ("MdpropMdxDrillFunctions", "int", "Read", "7".into()),
        ("MdpropMdxNamedSets", "int", "Read", "15".into()),
        ("MdpropMdxDdlExtensions", "int", "Read", "23".into()),
        ("MdpropMdxObjQualification", "int", "Read", "61".into()),
        ("MdpropMdxSlicer", "int", "Read", "2".into()),
        ("MdpropMdxFormulas", "int", "Read", "3".into()),
        ("MdpropMdxNonMeasureExpressions", "int", "Read", "1".into()),
        ("DbpropMsmdSubqueries", "int", "ReadWrite", "2".into()),
        ("DbpropMsmdOptimizeResponse", "long", "ReadWrite", "9".into()),
        (
            "DbpropMsmdActivityID",
            "string",
            "ReadWrite",
            req_prop("DbpropMsmdActivityID"),
        ),
        (
            "DbpropMsmdCurrentActivityID",
            "string",
            "ReadWrite",
            req_prop("DbpropMsmdCurrentActivityID"),
        ),
        (
            "DbpropMsmdRequestID",
            "string",
            "ReadWrite",
            req_prop("DbpropMsmdRequestID"),
        ),
        ("ApplicationContext", "string", "ReadWrite", String::new()),
        ("DbpropMsmdMDXCompatibility", "int", "ReadWrite", "1".into()),
        ("MdxMissingMemberMode", "string", "ReadWrite", "Error".into()),
        ("SafetyOptions", "int", "ReadWrite", "2".into()),
        ("Timeout", "unsignedInt", "ReadWrite", "0".into()),
        ("StateSupport", "string", "Read", "Sessions".into()),
        ("ProviderType", "string", "Read", "MDP".into()),
        ("DataSourceInfo", "string", "ReadWrite", String::new()),
        ("BeginRange", "int", "Write", "-1".into()),
        ("EndRange", "int", "Write", "-1".into()),
    ];
    let wanted = req.restriction("PropertyName");
    all.into_iter()
        .filter(|(n, ..)| wanted.is_empty() || wanted.iter().any(|w| w.eq_ignore_ascii_case(n)))
        .map(|(n, t, a, v)| {
            vec![
                s(n),
                s(n),
                s(t),
                s(a),
                b(false),
                if v.is_empty() { s("") } else { s(v) },
            ]
        })
        .collect()
}

fn schema_rowsets() -> Rows {
    ROWSETS
        .iter()
        .map(|r| {
            vec![
                s(r.name),
                s(r.guid),
                Value::Restrictions(
                    r.restrictions
                        .iter()
                        .map(|(n, t)| (n.to_string(), t.to_string()))
                        .collect(),
                ),
                s(r.description),
                i(r.restrictions_mask()),
            ]
        })
        .collect()
}

fn enumerators() -> Rows {
    let e = |enum_name: &str, desc: &str, element: &str, value: &str| {
        vec![s(enum_name), s(desc), s("string"), s(element), N, s(value)]
    };
    vec![
        e("ProviderType", "Provider types", "MDP", "MDP"),
        e(
            "AuthenticationMode",
            "Authentication modes",
            "Authenticated",
            "Authenticated",
        ),
        e("PropertyAccessType", "Property access", "Read", "Read"),
        e("PropertyAccessType", "Property access", "Write", "Write"),
        e("PropertyAccessType", "Property access", "ReadWrite", "ReadWrite"),
        e("StateSupport", "Session support", "Sessions", "Sessions"),
        e("Format", "Result formats", "Native", "Native"),
        e("Format", "Result formats", "Multidimensional", "Multidimensional"),
        e("Format", "Result formats", "Tabular", "Tabular"),
        e("AxisFormat", "Axis formats", "TupleFormat", "TupleFormat"),
        e("Content", "Content", "SchemaData", "SchemaData"),
        e("Content", "Content", "Schema", "Schema"),
        e("Content", "Content", "Data", "Data"),
        e("Content", "Content", "None", "None"),
    ]
}

const KEYWORDS: &[&str] = &[
    "AND",
    "AS",
    "ASC",
    "AXIS",
    "BASC",
    "BDESC",
    "CALCULATION",
    "CASE",
    "CELL",
    "CHAPTERS",
    "COLUMNS",
    "CREATE",
    "CURRENTCUBE",
    "DESC",
    "DIMENSION",
    "DRILLTHROUGH",
    "DROP",
    "ELSE",
    "EMPTY",
    "END",
    "FIRSTROWSET",
    "FROM",
    "IS",
    "MAXROWS",
    "MEMBER",
    "NON",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "PAGES",
    "PROPERTIES",
    "RETURN",
    "ROWS",
    "SECTIONS",
    "SELECT",
    "SESSION",
    "SET",
    "THEN",
    "WHEN",
    "WHERE",
    "WITH",
    "XOR",
];

fn literals() -> Rows {
    // LITERAL_NAME, VALUE, INVALID_CHARS, INVALID_STARTING_CHARS, MAX_LENGTH, NAME_ENUM_VALUE
    vec![
        vec![s("DBLITERAL_CATALOG_NAME"), N, s("."), s("0123456789"), i(24), i(2)],
        vec![s("DBLITERAL_CATALOG_SEPARATOR"), s("."), N, N, i(0), i(3)],
        vec![s("DBLITERAL_COLUMN_ALIAS"), N, s("'\"[]"), s("0123456789"), i(-1), i(5)],
        vec![s("DBLITERAL_COLUMN_NAME"), N, s("."), s("0123456789"), i(-1), i(6)],
        vec![
            s("DBLITERAL_CORRELATION_NAME"),
            N,
            s("'\"[]"),
            s("0123456789"),
            i(-1),
            i(7),
        ],
        vec![s("DBLITERAL_CUBE_NAME"), N, s("."), s("0123456789"), i(-1), i(21)],
        vec![s("DBLITERAL_DIMENSION_NAME"), N, s("."), s("0123456789"), i(-1), i(22)],
        vec![s("DBLITERAL_HIERARCHY_NAME"), N, s("."), s("0123456789"), i(-1), i(23)],
        vec![s("DBLITERAL_LEVEL_NAME"), N, s("."), s("0123456789"), i(-1), i(24)],
        vec![s("DBLITERAL_MEMBER_NAME"), N, s("."), s("0123456789"), i(-1), i(25)],
        vec![s("DBLITERAL_PROPERTY_NAME"), N, s("."), s("0123456789"), i(-1), i(26)],
        vec![s("DBLITERAL_QUOTE_PREFIX"), s("["), N, N, i(1), i(15)],
        vec![s("DBLITERAL_QUOTE_SUFFIX"), s("]"), N, N, i(1), i(28)],
    ]
}

fn catalogs(ctx: &Context) -> Rows {
    let c = ctx.catalog;
    vec![vec![
        s(&c.name),
        c.description.as_ref().map(|d| s(d.get(ctx.lang))).unwrap_or(N),
        N,
        s(ctx.schema_updated),
        i(1100),
        i(0),
        N,
        s(&c.name),
    ]]
}

fn tables(ctx: &Context) -> Rows {
    let mut rows = Vec::new();
    for cube in ctx.cubes() {
        rows.push(vec![
            s(&ctx.catalog.name),
            N,
            s(&cube.name),
            s("SYSTEM TABLE"),
            N,
            cube.description.as_ref().map(|d| s(d.get(ctx.lang))).unwrap_or(N),
            N,
            N,
            s(ctx.schema_updated),
            s("MEASURE_GROUP"),
            s(&cube.name),
        ]);
        for d in &cube.dimensions {
            rows.push(vec![
                s(&ctx.catalog.name),
                N,
                s(format!("${}.${}", cube.name, d.name)),
                s("SYSTEM TABLE"),
                N,
                d.description.as_ref().map(|x| s(x.get(ctx.lang))).unwrap_or(N),
                N,
                N,
                s(ctx.schema_updated),
                s("CUBE_DIMENSION"),
                s(&cube.name),
            ]);
        }
    }
    rows
}

fn columns(ctx: &Context) -> Rows {
    let mut rows = Vec::new();
    let mut push = |table: String, name: String, ordinal: i64, data_type: i64, olap: &str| {
        let mut r = vec![
            s(&ctx.catalog.name),
            N,
            s(table),
            s(name),
            N,
            N,
            i(ordinal),
            N,
            N,
            i(0),
            b(true),
            i(data_type),
        ];
        r.extend(std::iter::repeat_n(N, 16));
        r.push(s(olap));
        rows.push(r);
    };
    for cube in ctx.cubes() {
        for (n, m) in cube.measures.iter().enumerate() {
            push(
                cube.name.clone(),
                m.name.clone(),
                n as i64 + 1,
                measure_data_type(&m.kind),
                "MEASURE",
            );
        }
        for d in &cube.dimensions {
            let mut ordinal = 1;
            for h in &d.hierarchies {
                for l in &h.levels {
                    push(
                        format!("${}.${}", cube.name, d.name),
                        l.name.clone(),
                        ordinal,
                        130,
                        "ATTRIBUTE",
                    );
                    ordinal += 1;
                }
            }
        }
    }
    rows
}

fn cube_rows_filter<'a>(ctx: &'a Context) -> impl Iterator<Item = &'a Cube> {
    ctx.cubes()
}

fn cubes(ctx: &Context) -> Rows {
    cube_rows_filter(ctx)
        .map(|c| {
            vec![
                s(&ctx.catalog.name),
                N,
                s(&c.name),
                s("CUBE"),
                N,
                N,
                s(ctx.schema_updated),
                N,
                s(ctx.data_updated),
                N,
                c.description.as_ref().map(|d| s(d.get(ctx.lang))).unwrap_or(N),
                b(c.drillthrough.is_some() && c.security.class == SecurityClass::Individual),
                b(false),
                b(false),
                b(false),
                s(c.caption.get(ctx.lang)),
                N,
                i(1),
                i(0),
            ]
        })
        .collect()
}

/// MD_DIMTYPE_*: 1 time, 2 measure, 3 other.
fn dimension_type(is_time: bool) -> i64 {
    if is_time { 1 } else { 3 }
}

/// The members of `h` the principal may see.
fn hmembers(ctx: &Context, cube: &Cube, h: &Hierarchy) -> Option<std::sync::Arc<HierarchyMembers>> {
    let scope = ctx.access.for_cube(cube).ok()?.members;
    let dim = cube
        .dimensions
        .iter()
        .find(|d| d.hierarchies.iter().any(|x| std::ptr::eq(x, h)))?;
    ctx.members.scoped(&cube.name, &dim.name, &h.unique_name, &scope)
}

fn visible_measures(cube: &Cube) -> usize {
    cube.measures.iter().filter(|m| m.visible).count()
}

fn dimensions(ctx: &Context) -> Rows {
    let mut rows = Vec::new();
    for c in ctx.cubes() {
        let mk = |name: &str,
                  unique: String,
                  caption: &str,
                  ordinal: usize,
                  ty: i64,
                  card: usize,
                  default_h: String,
                  desc: Value| {
            vec![
                s(&ctx.catalog.name),
                N,
                s(&c.name),
                s(name),
                s(unique),
                N,
                s(caption),
                i(ordinal as i64),
                i(ty),
                i(card as i64),
                s(default_h),
                desc,
                b(false),
                b(false),
                i(1),
                N,
                b(true),
                i(1),
            ]
        };
        rows.push(mk(
            "Measures",
            "[Measures]".into(),
            measures_caption(ctx.lang),
            0,
            2,
            visible_measures(c),
            "[Measures]".into(),
            N,
        ));
        for (n, d) in c.dimensions.iter().enumerate() {
            let card = d
                .hierarchies
                .iter()
                .filter_map(|h| hmembers(ctx, c, h))
                .map(|m| m.cardinality())
                .max()
                .unwrap_or(0);
            rows.push(mk(
                &d.name,
                d.unique_name(),
                d.caption.get(ctx.lang),
                n + 1,
                dimension_type(d.is_time()),
                card,
                d.default_hierarchy().unique_name.clone(),
                d.description.as_ref().map(|x| s(x.get(ctx.lang))).unwrap_or(N),
            ));
        }
    }
    rows
}

fn measures_caption(lang: Lang) -> &'static str {
    match lang {
        Lang::Da => "Værdier",
        Lang::En => "Measures",
    }
}

fn hierarchies(ctx: &Context) -> Rows {
    let mut rows = Vec::new();
    for c in ctx.cubes() {
        let default_measure = c.default_measure().map(|m| m.unique_name.clone()).unwrap_or_default();
        rows.push(vec![
            s(&ctx.catalog.name),
            N,
            s(&c.name),
            s("[Measures]"),
            s("Measures"),
            s("[Measures]"),
            N,
            s(measures_caption(ctx.lang)),
            i(2),
            i(visible_measures(c) as i64),
            s(default_measure),
            N,
            N,
            i(0),
            b(false),
            b(false),
            i(1),
            b(true),
            i(0),
            b(true),
            b(true),
            i(6),
            N,
            i(0),
            i(1),
            s("Natural"),
            i(1),
        ]);
        for (dn, d) in c.dimensions.iter().enumerate() {
            for (hn, h) in d.hierarchies.iter().enumerate() {
                let loaded_arc = hmembers(ctx, c, h);
                let loaded = loaded_arc.as_deref();
                // Without an All member the tree's root is internal: not counted, not the default.
                let card = loaded.map(|m| m.cardinality() - usize::from(!h.has_all)).unwrap_or(0);
                let default_member = match (&h.default_member, h.has_all, loaded) {
                    (None, false, Some(m)) => m.get(m.first_member()).unique_name.clone(),
                    _ => h.default_member_unique_name().to_string(),
                };
                let (structure, structure_type, origin) = if h.is_parent_child() {
                    (2, "Unnatural", 3)
                } else if h.levels.len() > 1 {
                    (0, "Natural", 1)
                } else {
                    (0, "Natural", 2)
                };
                rows.push(vec![
                    s(&ctx.catalog.name),
                    N,
                    s(&c.name),
                    s(d.unique_name()),
                    s(&h.name),
                    s(&h.unique_name),
                    N,
                    s(h.caption.get(ctx.lang)),
                    i(dimension_type(d.is_time())),
                    i(card as i64),
                    s(&default_member),
                    if h.has_all { s(&h.all_member.unique_name) } else { N },
                    h.description.as_ref().map(|x| s(x.get(ctx.lang))).unwrap_or(N),
                    i(structure),
                    b(false),
                    b(false),
                    i(1),
                    b(true),
                    i((dn * 100 + hn) as i64),
                    b(d.shared),
                    b(true),
                    i(origin),
                    h.display_folder.as_ref().map(|f| s(f.as_str())).unwrap_or(N),
                    i(0),
                    i(1),
                    s(structure_type),
                    i(1),
                ]);
            }
        }
    }
    rows
}

/// MDLEVEL_TYPE_*.
fn level_type(t: LevelType) -> i64 {
    match t {
        LevelType::Regular => 0,
        LevelType::Years => 0x14,
        LevelType::Quarters => 0x44,
        LevelType::Months => 0x84,
        LevelType::Weeks => 0x104,
        LevelType::Days => 0x204,
    }
}

fn levels(ctx: &Context) -> Rows {
    let mut rows = Vec::new();
    for c in ctx.cubes() {
        let level_row = |dim: String,
                         hier: &str,
                         name: &str,
                         unique: &str,
                         caption: &str,
                         number: usize,
                         card: usize,
                         ty: i64,
                         desc: Value,
                         dbtype: i64| {
            vec![
                s(&ctx.catalog.name),
                N,
                s(&c.name),
                s(dim),
                s(hier),
                s(name),
                s(unique),
                N,
                s(caption),
                i(number as i64),
                i(card as i64),
                i(ty),
                desc,
                i(0),
                i(0),
                b(true),
                N,
                i(dbtype),
                N,
                N,
                N,
                N,
                N,
                i(1),
                i(1),
                i(1),
            ]
        };
        rows.push(level_row(
            "[Measures]".into(),
            "[Measures]",
            "MeasuresLevel",
            "[Measures].[MeasuresLevel]",
            "MeasuresLevel",
            0,
            visible_measures(c),
            0,
            N,
            130,
        ));
        for d in &c.dimensions {
            for h in &d.hierarchies {
                let hm_arc = hmembers(ctx, c, h);
                let hm = hm_arc.as_deref();
                let all_unique = format!("{}.[(All)]", h.unique_name);
                rows.push(level_row(
                    d.unique_name(),
                    &h.unique_name,
                    "(All)",
                    &all_unique,
                    "(All)",
                    0,
                    1,
                    1,
                    N,
                    3,
                ));
                for l in &h.levels {
                    let card = if h.is_parent_child() {
                        hm.map(|m| m.cardinality().saturating_sub(1)).unwrap_or(0)
                    } else {
                        hm.map(|m| m.level_members(l.number).len()).unwrap_or(0)
                    };
                    let dbtype = match l.key_type.as_deref() {
                        Some(t) if t.contains("INT") => 3,
                        _ => 130,
                    };
                    rows.push(level_row(
                        d.unique_name(),
                        &h.unique_name,
                        &l.name,
                        &l.unique_name,
                        l.caption.get(ctx.lang),
                        l.number,
                        card,
                        level_type(l.level_type),
                        l.description.as_ref().map(|x| s(x.get(ctx.lang))).unwrap_or(N),
                        dbtype,
                    ));
                }
            }
        }
    }
    rows
}

/// MDMEASURE_AGGR_*.
fn aggregator_code(kind: &MeasureKind) -> i64 {
    match kind {
        MeasureKind::Calculated(_) => 127,
        MeasureKind::Stored(m) => match m.aggregator {
            Aggregator::Sum => 1,
            Aggregator::Count => 2,
            Aggregator::Min => 3,
            Aggregator::Max => 4,
            Aggregator::Avg => 5,
            Aggregator::DistinctCount => 8,
            Aggregator::AverageOverTime => 10,
            Aggregator::LastNonEmpty => 14,
        },
    }
}

/// DBTYPE of a measure's values: 20 (I8) for counts, 5 (R8) otherwise.
fn measure_data_type(kind: &MeasureKind) -> i64 {
    match kind {
        MeasureKind::Stored(m) if matches!(m.aggregator, Aggregator::Count | Aggregator::DistinctCount) => 20,
        _ => 5,
    }
}

/// MDSCHEMA_*_VISIBILITY: 1 visible (the default), 2 not visible, 3 both.
fn visibility(req: &Discover, name: &str) -> Result<(bool, bool), Fault> {
    let mut visible = false;
    let mut hidden = false;
    let values = req.restriction(name);
    if values.is_empty() {
        return Ok((true, false));
    }
    for v in values {
        let n: u32 = v
            .trim()
            .parse()
            .map_err(|_| Fault::new(codes::BAD_RESTRICTION, format!("{name} must be 1, 2 or 3, got '{v}'")))?;
        visible |= n & 1 != 0;
        hidden |= n & 2 != 0;
    }
    Ok((visible, hidden))
}

fn measures(req: &Discover, ctx: &Context) -> Result<Rows, Fault> {
    let (want_visible, want_hidden) = visibility(req, "MEASURE_VISIBILITY")?;
    let mut rows = Vec::new();
    for c in ctx.cubes() {
        for m in c
            .measures
            .iter()
            .filter(|m| if m.visible { want_visible } else { want_hidden })
        {
            let expression = match &m.kind {
                MeasureKind::Calculated(cm) => s(&cm.expression),
                MeasureKind::Stored(_) => N,
            };
            rows.push(vec![
                s(&ctx.catalog.name),
                N,
                s(&c.name),
                s(&m.name),
                s(&m.unique_name),
                s(m.caption.get(ctx.lang)),
                N,
                i(aggregator_code(&m.kind)),
                i(measure_data_type(&m.kind)),
                i(16),
                i(-1),
                N,
                m.description.as_ref().map(|x| s(x.get(ctx.lang))).unwrap_or(N),
                expression,
                b(m.visible),
                N,
                s(&m.name),
                s(m.caption.get(ctx.lang)),
                s(c.measure_group_name()),
                m.display_folder.as_ref().map(|f| s(f.as_str())).unwrap_or(N),
                m.format_string.as_ref().map(|f| s(f.as_str())).unwrap_or(N),
            ]);
        }
    }
    Ok(rows)
}

fn measure_groups(ctx: &Context) -> Rows {
    ctx.catalog
        .cubes
        .iter()
        .map(|c| {
            vec![
                s(&ctx.catalog.name),
                N,
                s(&c.name),
                s(c.measure_group_name()),
                c.description.as_ref().map(|d| s(d.get(ctx.lang))).unwrap_or(N),
                b(false),
                s(c.caption.get(ctx.lang)),
            ]
        })
        .collect()
}

fn measure_group_dimensions(ctx: &Context) -> Rows {
    let mut rows = Vec::new();
    for c in ctx.cubes() {
        for d in &c.dimensions {
            let h = d.default_hierarchy();
            let granularity = h.levels.last().map(|l| l.unique_name.clone()).unwrap_or_default();
            rows.push(vec![
                s(&ctx.catalog.name),
                N,
                s(&c.name),
                s(c.measure_group_name()),
                s("ONE"),
                s(d.unique_name()),
                s("MANY"),
                b(true),
                b(false),
                s(granularity),
            ]);
        }
    }
    rows
}

/// The cell properties we support (PROPERTY_TYPE 2), in SSAS order.
pub const CELL_PROPERTIES: &[(&str, i64)] = &[
    ("BACK_COLOR", 19),
    ("CELL_ORDINAL", 19),
    ("FORE_COLOR", 19),
    ("FORMATTED_VALUE", 130),
    ("FORMAT_STRING", 130),
    ("VALUE", 12),
    ("LANGUAGE", 19),
];

fn member_and_cell_properties(req: &Discover, ctx: &Context) -> Result<Rows, Fault> {
    let types = req.restriction("PROPERTY_TYPE");
    let wants = |t: &str| types.is_empty() || types.iter().any(|v| v.trim() == t);
    let mut rows = Vec::new();
    let empty_row = || vec![N; 24];
    if wants("2") && !types.is_empty() {
        for (name, dt) in CELL_PROPERTIES {
            let mut r = empty_row();
            r[0] = s(&ctx.catalog.name);
            r[7] = i(2);
            r[8] = s(*name);
            r[9] = s(*name);
            r[10] = i(*dt);
            r[23] = b(true);
            rows.push(r);
        }
    }
    if wants("1") {
        for c in ctx.cubes() {
            for d in &c.dimensions {
                for h in &d.hierarchies {
                    for l in &h.levels {
                        for p in &l.properties {
                            let mut r = empty_row();
                            r[0] = s(&ctx.catalog.name);
                            r[2] = s(&c.name);
                            r[3] = s(d.unique_name());
                            r[4] = s(&h.unique_name);
                            r[5] = s(&l.unique_name);
                            r[7] = i(1);
                            r[8] = s(&p.name);
                            r[9] = s(p.caption.get(ctx.lang));
                            r[10] = i(match p.data_type {
                                PropertyType::String => 130,
                                PropertyType::Integer => 20,
                                PropertyType::Number => 5,
                                PropertyType::Boolean => 11,
                                PropertyType::Date => 7,
                            });
                            r[15] = p.description.as_ref().map(|x| s(x.get(ctx.lang))).unwrap_or(N);
                            r[16] = i(0);
                            r[19] = i(1);
                            r[23] = b(true);
                            rows.push(r);
                        }
                    }
                }
            }
        }
    }
    Ok(rows)
}

/// MDSCHEMA_MEMBERS with TREE_OP: 1 children, 2 siblings, 4 parent, 8 self, 16 descendants, 32 ancestors.
fn members(req: &Discover, ctx: &Context) -> Result<Rows, Fault> {
    let tree_op: Option<u32> = match req.restriction("TREE_OP").first() {
        Some(v) => Some(
            v.trim()
                .parse()
                .map_err(|_| Fault::new(codes::BAD_RESTRICTION, format!("TREE_OP must be a number, got '{v}'")))?,
        ),
        None => None,
    };
    let wanted_unique = req.restriction("MEMBER_UNIQUE_NAME");
    let level_numbers: Vec<usize> = req
        .restriction("LEVEL_NUMBER")
        .iter()
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let mut rows = Vec::new();
    for c in ctx.cubes() {
        for d in &c.dimensions {
            for h in &d.hierarchies {
                let Some(hm) = hmembers(ctx, c, h) else { continue };
                let mut ids: Vec<u32> = Vec::new();
                if wanted_unique.is_empty() {
                    if tree_op.is_some() {
                        return Err(Fault::new(
                            codes::BAD_RESTRICTION,
                            "TREE_OP needs a MEMBER_UNIQUE_NAME restriction",
                        ));
                    }
                    for (n, lvl) in hm.levels.iter().enumerate() {
                        if level_numbers.is_empty() || level_numbers.contains(&n) {
                            ids.extend(lvl);
                        }
                    }
                } else {
                    for u in wanted_unique {
                        let Some(id) = hm.by_unique_name(u) else { continue };
                        let op = tree_op.unwrap_or(8);
                        let m = hm.get(id);
                        if op & 32 != 0 {
                            let mut anc = Vec::new();
                            let mut p = m.parent;
                            while let Some(pid) = p {
                                anc.push(pid);
                                p = hm.get(pid).parent;
                            }
                            anc.reverse();
                            ids.extend(anc);
                        }
                        if op & 4 != 0 {
                            ids.extend(m.parent);
                        }
                        if op & 2 != 0
                            && let Some(p) = m.parent
                        {
                            ids.extend(hm.get(p).children.iter().filter(|&&k| k != id));
                        }
                        if op & 8 != 0 {
                            ids.push(id);
                        }
                        if op & 1 != 0 {
                            ids.extend(&m.children);
                        }
                        if op & 16 != 0 {
                            let mut stack: Vec<u32> = m.children.iter().rev().copied().collect();
                            while let Some(k) = stack.pop() {
                                ids.push(k);
                                stack.extend(hm.get(k).children.iter().rev());
                            }
                        }
                    }
                }
                for id in ids {
                    let m = hm.get(id);
                    let level_unique = if m.level == 0 {
                        format!("{}.[(All)]", h.unique_name)
                    } else if h.is_parent_child() {
                        h.levels[0].unique_name.clone()
                    } else {
                        h.levels[m.level as usize - 1].unique_name.clone()
                    };
                    let parent = m.parent.map(|p| hm.get(p));
                    rows.push(vec![
                        s(&ctx.catalog.name),
                        N,
                        s(&c.name),
                        s(d.unique_name()),
                        s(&h.unique_name),
                        s(level_unique),
                        i(m.level as i64),
                        i(m.ordinal as i64),
                        s(&m.name),
                        s(&m.unique_name),
                        i(if m.level == 0 { 2 } else { 1 }),
                        N,
                        s(m.caption(ctx.lang)),
                        i(m.children.len() as i64),
                        parent.map(|p| i(p.level as i64)).unwrap_or(N),
                        parent.map(|p| s(&p.unique_name)).unwrap_or(N),
                        i(if parent.is_some() { 1 } else { 0 }),
                        N,
                        N,
                        s(m.key.to_string()),
                        b(false),
                        b(true),
                        N,
                    ]);
                }
            }
        }
    }
    Ok(rows)
}

/// What a function returns: the RETURN_TYPE VARTYPE and, for MDX functions, the
/// INTERFACE_NAME group SSAS files it under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Returns {
    Set,
    Member,
    /// A number (VT_R8).
    Numeric,
    /// A whole number (VT_I4).
    Integer,
    String,
    Logical,
}

impl Returns {
    /// The VARTYPE: VT_I4 3, VT_R8 5, VT_BSTR 8, VT_BOOL 11, VT_VARIANT 12 (sets and members).
    fn vartype(self) -> i64 {
        match self {
            Returns::Integer => 3,
            Returns::Numeric => 5,
            Returns::String => 8,
            Returns::Logical => 11,
            Returns::Set | Returns::Member => 12,
        }
    }

    fn group(self) -> &'static str {
        match self {
            Returns::Set => "SET",
            Returns::Member => "MEMBER",
            Returns::Numeric | Returns::Integer => "NUMERIC",
            Returns::String => "STRING",
            Returns::Logical => "LOGICAL",
        }
    }
}

/// Where a function comes from: MDX itself (ORIGIN 1), or the VBA library that SSAS also
/// exposes (ORIGIN 2, LIBRARY_NAME `VBA`, INTERFACE_NAME the VBA module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Mdx,
    Vba(&'static str),
}

/// One row of MDSCHEMA_FUNCTIONS.
struct Function {
    name: &'static str,
    /// PARAMETER_LIST: MDX argument kinds (`[ ]` optional), or VB-style `Name As Type` for VBA.
    params: &'static str,
    returns: Returns,
    origin: Origin,
    /// OBJECT: for functions written as a property (`<member>.Children`), the object kind.
    object: Option<&'static str>,
    en: &'static str,
    da: &'static str,
}

const fn mdx(
    name: &'static str,
    params: &'static str,
    returns: Returns,
    object: Option<&'static str>,
    en: &'static str,
    da: &'static str,
) -> Function {
    Function {
        name,
        params,
        returns,
        origin: Origin::Mdx,
        object,
        en,
        da,
    }
}

const fn vba(
    module: &'static str,
    name: &'static str,
    params: &'static str,
    returns: Returns,
    en: &'static str,
    da: &'static str,
) -> Function {
    Function {
        name,
        params,
        returns,
        origin: Origin::Vba(module),
        object: None,
        en,
        da,
    }
}

const MEMBER: Option<&str> = Some("Member");
const HIERARCHY: Option<&str> = Some("Hierarchy");
const LEVEL: Option<&str> = Some("Level");

/// The functions the query engine evaluates (server/query/src/eval.rs; a test keeps the two
/// in step), with descriptions in English and Danish. Property-style functions that apply
/// to two kinds of object (`Members`, `AllMembers`) have a row per kind, as in SSAS.
const FUNCTIONS: &[Function] = {
    use Returns::*;
    &[
        mdx(
            "AddCalculatedMembers",
            "Set",
            Set,
            None,
            "Returns a set with the calculated members of its levels added.",
            "Returnerer sættet med de beregnede medlemmer fra dets niveauer tilføjet.",
        ),
        mdx(
            "Aggregate",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Aggregates a numeric expression, or the current measure, over a set.",
            "Aggregerer et numerisk udtryk eller den aktuelle måling over et sæt.",
        ),
        mdx(
            "AllMembers",
            "Hierarchy",
            Set,
            HIERARCHY,
            "Returns every member of a hierarchy, calculated members included.",
            "Returnerer alle medlemmer af et hierarki, også de beregnede.",
        ),
        mdx(
            "AllMembers",
            "Level",
            Set,
            LEVEL,
            "Returns every member of a level, calculated members included.",
            "Returnerer alle medlemmer på et niveau, også de beregnede.",
        ),
        mdx(
            "Ascendants",
            "Member",
            Set,
            None,
            "Returns a member together with all its ancestors up to the top of its hierarchy.",
            "Returnerer et medlem sammen med alle dets forfædre op til toppen af hierarkiet.",
        ),
        mdx(
            "Avg",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the average of a numeric expression over a set; empty values are not counted.",
            "Returnerer gennemsnittet af et numerisk udtryk over et sæt; tomme værdier tælles ikke med.",
        ),
        mdx(
            "BottomCount",
            "Set, Count[, Numeric_Expression]",
            Set,
            None,
            "Returns the given number of tuples with the lowest values, lowest first.",
            "Returnerer det angivne antal tupler med de laveste værdier, laveste først.",
        ),
        mdx(
            "Children",
            "Member",
            Set,
            MEMBER,
            "Returns the members one level below a member (its children).",
            "Returnerer medlemmerne ét niveau under et medlem (dets børn).",
        ),
        mdx(
            "CoalesceEmpty",
            "Expression, Expression[, Expression...]",
            Numeric,
            None,
            "Returns the first of its arguments that is not empty.",
            "Returnerer det første af argumenterne, der ikke er tomt.",
        ),
        mdx(
            "Count",
            "Set",
            Integer,
            None,
            "Returns the number of tuples in a set.",
            "Returnerer antallet af tupler i et sæt.",
        ),
        mdx(
            "CrossJoin",
            "Set, Set[, Set...]",
            Set,
            None,
            "Returns every combination of the tuples of two or more sets.",
            "Returnerer alle kombinationer af tuplerne i to eller flere sæt.",
        ),
        mdx(
            "CurrentMember",
            "Hierarchy",
            Member,
            HIERARCHY,
            "Returns the member of a hierarchy that the current cell or iteration is at.",
            "Returnerer det medlem af et hierarki, som den aktuelle celle eller gennemløbning står på.",
        ),
        mdx(
            "DefaultMember",
            "Hierarchy",
            Member,
            HIERARCHY,
            "Returns the default member of a hierarchy.",
            "Returnerer et hierarkis standardmedlem.",
        ),
        mdx(
            "Descendants",
            "Member[, Level|Distance[, Flag]]",
            Set,
            None,
            "Returns the descendants of a member at a level or distance below it, chosen by a flag.",
            "Returnerer et medlems efterkommere på et niveau eller i en afstand under det, valgt med et flag.",
        ),
        mdx(
            "Distinct",
            "Set",
            Set,
            None,
            "Returns a set without repeated tuples, keeping the first of each.",
            "Returnerer et sæt uden gentagne tupler; den første af hver beholdes.",
        ),
        mdx(
            "DrilldownLevel",
            "Set[, Level[, Index]][, INCLUDE_CALC_MEMBERS]",
            Set,
            None,
            "Expands the members of a set one level down, each followed by its children.",
            "Folder et sæts medlemmer ét niveau ud, så hvert medlem følges af sine børn.",
        ),
        mdx(
            "DrilldownMember",
            "Set, Set[, RECURSIVE][, Hierarchy][, INCLUDE_CALC_MEMBERS]",
            Set,
            None,
            "Expands the members of the first set that appear in the second set, each followed by its children.",
            "Folder de medlemmer af det første sæt ud, som også findes i det andet, så hvert følges af sine børn.",
        ),
        mdx(
            "Except",
            "Set, Set",
            Set,
            None,
            "Returns the tuples of the first set that are not in the second.",
            "Returnerer de tupler i det første sæt, som ikke findes i det andet.",
        ),
        mdx(
            "Filter",
            "Set, Logical_Expression",
            Set,
            None,
            "Returns the tuples of a set for which a condition is true.",
            "Returnerer de tupler i et sæt, hvor en betingelse er opfyldt.",
        ),
        mdx(
            "FirstChild",
            "Member",
            Member,
            MEMBER,
            "Returns the first child of a member.",
            "Returnerer et medlems første barn.",
        ),
        mdx(
            "Generate",
            "Set, Set[, ALL]",
            Set,
            None,
            "Evaluates the second set once for each tuple of the first and joins the results.",
            "Beregner det andet sæt én gang for hver tupel i det første og samler resultaterne.",
        ),
        mdx(
            "Head",
            "Set[, Count]",
            Set,
            None,
            "Returns the first tuples of a set (one unless a count is given).",
            "Returnerer de første tupler i et sæt (én, medmindre et antal angives).",
        ),
        mdx(
            "Hierarchize",
            "Set[, POST]",
            Set,
            None,
            "Puts a set in hierarchy order: parents before their children, or after them with POST.",
            "Sætter et sæt i hierarkisk rækkefølge: forældre før deres børn, eller efter dem med POST.",
        ),
        mdx(
            "IIf",
            "Logical_Expression, Expression, Expression",
            Numeric,
            None,
            "Returns the second argument when the condition is true, otherwise the third.",
            "Returnerer det andet argument, når betingelsen er opfyldt, ellers det tredje.",
        ),
        vba(
            "Strings",
            "InStr",
            "[Start As Long, ]String1 As String, String2 As String",
            Integer,
            "Returns the position where one string first occurs in another, or 0 if it does not.",
            "Returnerer positionen, hvor en streng først forekommer i en anden, eller 0, hvis den ikke gør.",
        ),
        mdx(
            "Intersect",
            "Set, Set",
            Set,
            None,
            "Returns the tuples that are in both sets.",
            "Returnerer de tupler, der findes i begge sæt.",
        ),
        mdx(
            "IsEmpty",
            "Expression",
            Logical,
            None,
            "Tells whether an expression has no value.",
            "Angiver, om et udtryk er uden værdi.",
        ),
        mdx(
            "Lag",
            "Member, Index",
            Member,
            MEMBER,
            "Returns the member the given number of places before a member on its level.",
            "Returnerer medlemmet det angivne antal pladser før et medlem på samme niveau.",
        ),
        mdx(
            "LastChild",
            "Member",
            Member,
            MEMBER,
            "Returns the last child of a member.",
            "Returnerer et medlems sidste barn.",
        ),
        mdx(
            "Lead",
            "Member, Index",
            Member,
            MEMBER,
            "Returns the member the given number of places after a member on its level.",
            "Returnerer medlemmet det angivne antal pladser efter et medlem på samme niveau.",
        ),
        vba(
            "Strings",
            "Left",
            "String As String, Length As Long",
            String,
            "Returns the given number of characters from the start of a string.",
            "Returnerer det angivne antal tegn fra begyndelsen af en streng.",
        ),
        vba(
            "Strings",
            "Len",
            "String As String",
            Integer,
            "Returns the number of characters in a string.",
            "Returnerer antallet af tegn i en streng.",
        ),
        mdx(
            "Max",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the largest value of a numeric expression over a set.",
            "Returnerer den største værdi af et numerisk udtryk over et sæt.",
        ),
        mdx(
            "Members",
            "Hierarchy",
            Set,
            HIERARCHY,
            "Returns the members of a hierarchy, without calculated members.",
            "Returnerer et hierarkis medlemmer uden de beregnede.",
        ),
        mdx(
            "Members",
            "Level",
            Set,
            LEVEL,
            "Returns the members of a level, without calculated members.",
            "Returnerer medlemmerne på et niveau uden de beregnede.",
        ),
        vba(
            "Strings",
            "Mid",
            "String As String, Start As Long[, Length As Long]",
            String,
            "Returns the part of a string that begins at a position, optionally of a given length.",
            "Returnerer den del af en streng, der begynder ved en position, eventuelt med en given længde.",
        ),
        mdx(
            "Min",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the smallest value of a numeric expression over a set.",
            "Returnerer den mindste værdi af et numerisk udtryk over et sæt.",
        ),
        mdx(
            "NextMember",
            "Member",
            Member,
            MEMBER,
            "Returns the member after a member on the same level.",
            "Returnerer medlemmet efter et medlem på samme niveau.",
        ),
        mdx(
            "NonEmpty",
            "Set",
            Set,
            None,
            "Returns the tuples of a set that have a value.",
            "Returnerer de tupler i et sæt, der har en værdi.",
        ),
        mdx(
            "Order",
            "Set, Expression[, ASC|DESC|BASC|BDESC]",
            Set,
            None,
            "Sorts a set by an expression, keeping the hierarchy (ASC, DESC) or ignoring it (BASC, BDESC).",
            "Sorterer et sæt efter et udtryk, med hierarkiet bevaret (ASC, DESC) eller brudt (BASC, BDESC).",
        ),
        mdx(
            "Parent",
            "Member",
            Member,
            MEMBER,
            "Returns the member one level above a member (its parent).",
            "Returnerer medlemmet ét niveau over et medlem (dets forælder).",
        ),
        mdx(
            "PrevMember",
            "Member",
            Member,
            MEMBER,
            "Returns the member before a member on the same level.",
            "Returnerer medlemmet før et medlem på samme niveau.",
        ),
        vba(
            "Strings",
            "Right",
            "String As String, Length As Long",
            String,
            "Returns the given number of characters from the end of a string.",
            "Returnerer det angivne antal tegn fra slutningen af en streng.",
        ),
        vba(
            "Math",
            "Round",
            "Number As Double[, NumDigitsAfterDecimal As Long]",
            Numeric,
            "Rounds a number to the given number of decimals (none unless given).",
            "Afrunder et tal til det angivne antal decimaler (ingen, medmindre det angives).",
        ),
        mdx(
            "StrToMember",
            "String",
            Member,
            None,
            "Returns the member that a string with its MDX name refers to.",
            "Returnerer det medlem, som en streng med dets MDX-navn henviser til.",
        ),
        mdx(
            "Sum",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the sum of a numeric expression over a set.",
            "Returnerer summen af et numerisk udtryk over et sæt.",
        ),
        mdx(
            "Tail",
            "Set[, Count]",
            Set,
            None,
            "Returns the last tuples of a set (one unless a count is given).",
            "Returnerer de sidste tupler i et sæt (én, medmindre et antal angives).",
        ),
        mdx(
            "TopCount",
            "Set, Count[, Numeric_Expression]",
            Set,
            None,
            "Returns the given number of tuples with the highest values, highest first.",
            "Returnerer det angivne antal tupler med de højeste værdier, højeste først.",
        ),
        mdx(
            "Union",
            "Set, Set[, ALL]",
            Set,
            None,
            "Returns the tuples of both sets; repeated tuples are dropped unless ALL is given.",
            "Returnerer tuplerne fra begge sæt; gentagne tupler udelades, medmindre ALL angives.",
        ),
        mdx(
            "VisualTotals",
            "Set[, Pattern]",
            Set,
            None,
            "Returns the set with each member that is followed by its descendants replaced by a visual total of those descendants only; the optional pattern names the totals (* is the member's caption).",
            "Returnerer sættet, hvor hvert medlem, der efterfølges af sine efterkommere, er erstattet af en visuel total af kun disse efterkommere; det valgfrie mønster navngiver totalerne (* er medlemmets titel).",
        ),
        mdx(
            "Median",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the median of a numeric expression over a set; empty cells are left out.",
            "Returnerer medianen af et numerisk udtryk over et sæt; tomme celler udelades.",
        ),
        mdx(
            "Var",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the sample variance of a numeric expression over a set.",
            "Returnerer stikprøvevariansen af et numerisk udtryk over et sæt.",
        ),
        mdx(
            "Variance",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the sample variance of a numeric expression over a set (alias of Var).",
            "Returnerer stikprøvevariansen af et numerisk udtryk over et sæt (samme som Var).",
        ),
        mdx(
            "VarP",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the population variance of a numeric expression over a set.",
            "Returnerer populationsvariansen af et numerisk udtryk over et sæt.",
        ),
        mdx(
            "VarianceP",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the population variance of a numeric expression over a set (alias of VarP).",
            "Returnerer populationsvariansen af et numerisk udtryk over et sæt (samme som VarP).",
        ),
        mdx(
            "Stdev",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the sample standard deviation of a numeric expression over a set.",
            "Returnerer stikprøvens standardafvigelse for et numerisk udtryk over et sæt.",
        ),
        mdx(
            "StdDev",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the sample standard deviation over a set (alias of Stdev).",
            "Returnerer stikprøvens standardafvigelse over et sæt (samme som Stdev).",
        ),
        mdx(
            "StdevP",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the population standard deviation of a numeric expression over a set.",
            "Returnerer populationens standardafvigelse for et numerisk udtryk over et sæt.",
        ),
        mdx(
            "StddevP",
            "Set[, Numeric_Expression]",
            Numeric,
            None,
            "Returns the population standard deviation over a set (alias of StdevP).",
            "Returnerer populationens standardafvigelse over et sæt (samme som StdevP).",
        ),
        mdx(
            "DistinctCount",
            "Set",
            Integer,
            None,
            "Counts the distinct tuples of a set whose cells are not empty.",
            "Tæller de forskellige tupler i et sæt, hvis celler ikke er tomme.",
        ),
        mdx(
            "Correlation",
            "Set, Numeric_Expression_y[, Numeric_Expression_x]",
            Numeric,
            None,
            "Returns the correlation coefficient of two numeric expressions over a set.",
            "Returnerer korrelationskoefficienten mellem to numeriske udtryk over et sæt.",
        ),
        mdx(
            "Covariance",
            "Set, Numeric_Expression_y[, Numeric_Expression_x]",
            Numeric,
            None,
            "Returns the population covariance of two numeric expressions over a set.",
            "Returnerer populationskovariansen mellem to numeriske udtryk over et sæt.",
        ),
        mdx(
            "CovarianceN",
            "Set, Numeric_Expression_y[, Numeric_Expression_x]",
            Numeric,
            None,
            "Returns the sample covariance of two numeric expressions over a set.",
            "Returnerer stikprøvekovariansen mellem to numeriske udtryk over et sæt.",
        ),
        mdx(
            "Rank",
            "Tuple, Set[, Numeric_Expression]",
            Integer,
            None,
            "Returns the 1-based position of a tuple in a set, or its rank by a numeric expression.",
            "Returnerer en tupels position (fra 1) i et sæt eller dens rang efter et numerisk udtryk.",
        ),
        mdx(
            "Ancestor",
            "Member, Level|Distance",
            Member,
            None,
            "Returns the ancestor of a member on a level or a given number of levels up.",
            "Returnerer et medlems forfader på et niveau eller et givet antal niveauer oppe.",
        ),
        mdx(
            "Ancestors",
            "Member, Level|Distance",
            Set,
            None,
            "Returns the set with the ancestor of a member on a level or distance.",
            "Returnerer sættet med et medlems forfader på et niveau eller i en afstand.",
        ),
        mdx(
            "Cousin",
            "Member, Ancestor_Member",
            Member,
            None,
            "Returns the member in the same relative position under another ancestor.",
            "Returnerer medlemmet på samme relative plads under en anden forfader.",
        ),
        mdx(
            "FirstSibling",
            "Member",
            Member,
            MEMBER,
            "Returns the first child of the member's parent.",
            "Returnerer det første barn af medlemmets forælder.",
        ),
        mdx(
            "LastSibling",
            "Member",
            Member,
            MEMBER,
            "Returns the last child of the member's parent.",
            "Returnerer det sidste barn af medlemmets forælder.",
        ),
        mdx(
            "Siblings",
            "Member",
            Set,
            MEMBER,
            "Returns the member and its siblings: the children of its parent.",
            "Returnerer medlemmet og dets søskende: forælderens børn.",
        ),
        mdx(
            "OpeningPeriod",
            "[Level[, Member]]",
            Member,
            None,
            "Returns the first descendant of a member on a level (by default of the time dimension).",
            "Returnerer et medlems første efterkommer på et niveau (som standard i tidsdimensionen).",
        ),
        mdx(
            "ClosingPeriod",
            "[Level[, Member]]",
            Member,
            None,
            "Returns the last descendant of a member on a level (by default of the time dimension).",
            "Returnerer et medlems sidste efterkommer på et niveau (som standard i tidsdimensionen).",
        ),
        mdx(
            "ParallelPeriod",
            "[Level[, Index[, Member]]]",
            Member,
            None,
            "Returns the member in the same relative position in an earlier period.",
            "Returnerer medlemmet på samme relative plads i en tidligere periode.",
        ),
        mdx(
            "PeriodsToDate",
            "[Level[, Member]]",
            Set,
            None,
            "Returns the members of a level from the start of the enclosing period up to a member.",
            "Returnerer et niveaus medlemmer fra starten af den overordnede periode til et medlem.",
        ),
        mdx(
            "Ytd",
            "[Member]",
            Set,
            None,
            "Returns the periods from the start of the year up to a member.",
            "Returnerer perioderne fra årets start til et medlem.",
        ),
        mdx(
            "Qtd",
            "[Member]",
            Set,
            None,
            "Returns the periods from the start of the quarter up to a member.",
            "Returnerer perioderne fra kvartalets start til et medlem.",
        ),
        mdx(
            "Mtd",
            "[Member]",
            Set,
            None,
            "Returns the periods from the start of the month up to a member.",
            "Returnerer perioderne fra månedens start til et medlem.",
        ),
        mdx(
            "Wtd",
            "[Member]",
            Set,
            None,
            "Returns the periods from the start of the week up to a member.",
            "Returnerer perioderne fra ugens start til et medlem.",
        ),
        mdx(
            "LastPeriods",
            "Index[, Member]",
            Set,
            None,
            "Returns the given number of members up to and including a member on its level.",
            "Returnerer det angivne antal medlemmer til og med et medlem på dets niveau.",
        ),
        mdx(
            "Subset",
            "Set, Start[, Count]",
            Set,
            None,
            "Returns the tuples of a set from a 0-based position on.",
            "Returnerer et sæts tupler fra en position (fra 0) og frem.",
        ),
        mdx(
            "Extract",
            "Set, Hierarchy[, Hierarchy ...]",
            Set,
            None,
            "Returns the distinct tuples of the given hierarchies from a set of tuples.",
            "Returnerer de forskellige tupler af de angivne hierarkier fra et sæt af tupler.",
        ),
        mdx(
            "Exists",
            "Set, Set[, Measure_Group_Name]",
            Set,
            None,
            "Returns the tuples of the first set that exist together with the tuples of the second.",
            "Returnerer de tupler i det første sæt, der findes sammen med tuplerne i det andet.",
        ),
        mdx(
            "StrToSet",
            "String",
            Set,
            None,
            "Returns the set an MDX string names.",
            "Returnerer det sæt, en MDX-streng angiver.",
        ),
        mdx(
            "StrToTuple",
            "String",
            Member,
            None,
            "Returns the tuple an MDX string names.",
            "Returnerer den tupel, en MDX-streng angiver.",
        ),
        mdx(
            "CustomData",
            "()",
            String,
            None,
            "Returns the CustomData connection property (set by a service account allowed to impersonate).",
            "Returnerer forbindelsesegenskaben CustomData (sat af en tjenestekonto, der må optræde på vegne af andre).",
        ),
        mdx(
            "StrToValue",
            "String",
            Numeric,
            None,
            "Returns the value of an MDX expression given as a string.",
            "Returnerer værdien af et MDX-udtryk angivet som streng.",
        ),
        mdx(
            "Item",
            "Set|Tuple, Index",
            Member,
            None,
            "Returns the tuple at a 0-based position in a set, or the member at a position in a tuple.",
            "Returnerer tuplen på en position (fra 0) i et sæt eller medlemmet på en position i en tupel.",
        ),
        mdx(
            "Dimensions",
            "Index|String",
            Member,
            None,
            "Returns the hierarchy at a 0-based position in the cube ([Measures] first) or by name.",
            "Returnerer hierarkiet på en position (fra 0) i kuben ([Measures] først) eller efter navn.",
        ),
        mdx(
            "Levels",
            "Hierarchy, Index|String",
            Member,
            None,
            "Returns the level at a 0-based depth of a hierarchy, or by name.",
            "Returnerer niveauet i en dybde (fra 0) af et hierarki eller efter navn.",
        ),
        mdx(
            "Properties",
            "Member, String[, TYPED]",
            String,
            None,
            "Returns the value of a member property; TYPED keeps its type.",
            "Returnerer værdien af en medlemsegenskab; TYPED bevarer dens type.",
        ),
        mdx(
            "TopPercent",
            "Set, Percentage, Numeric_Expression",
            Set,
            None,
            "Returns the largest tuples whose values add up to at least the given percentage of the total.",
            "Returnerer de største tupler, hvis værdier tilsammen udgør mindst den angivne procentdel af totalen.",
        ),
        mdx(
            "BottomPercent",
            "Set, Percentage, Numeric_Expression",
            Set,
            None,
            "Returns the smallest tuples whose values add up to at least the given percentage of the total.",
            "Returnerer de mindste tupler, hvis værdier tilsammen udgør mindst den angivne procentdel af totalen.",
        ),
        mdx(
            "TopSum",
            "Set, Value, Numeric_Expression",
            Set,
            None,
            "Returns the largest tuples whose values add up to at least the given value.",
            "Returnerer de største tupler, hvis værdier tilsammen udgør mindst den angivne værdi.",
        ),
        mdx(
            "BottomSum",
            "Set, Value, Numeric_Expression",
            Set,
            None,
            "Returns the smallest tuples whose values add up to at least the given value.",
            "Returnerer de mindste tupler, hvis værdier tilsammen udgør mindst den angivne værdi.",
        ),
        mdx(
            "ToggleDrillState",
            "Set, Set",
            Set,
            None,
            "Drills down the members of the second set that are not drilled, and drills up those that are.",
            "Folder de medlemmer af det andet sæt ud, der ikke er foldet ud, og folder de udfoldede sammen.",
        ),
        mdx(
            "DrillupLevel",
            "Set[, Level]",
            Set,
            None,
            "Removes the members below a level (by default the lowest level in the set).",
            "Fjerner medlemmerne under et niveau (som standard sættets laveste niveau).",
        ),
        mdx(
            "DrillupMember",
            "Set, Set",
            Set,
            None,
            "Removes the descendants of the members of the second set.",
            "Fjerner efterkommerne af medlemmerne i det andet sæt.",
        ),
        mdx(
            "DrilldownLevelTop",
            "Set, Count[, Level[, Numeric_Expression]]",
            Set,
            None,
            "Drills down a level, keeping only the largest children.",
            "Folder et niveau ud og beholder kun de største børn.",
        ),
        mdx(
            "DrilldownLevelBottom",
            "Set, Count[, Level[, Numeric_Expression]]",
            Set,
            None,
            "Drills down a level, keeping only the smallest children.",
            "Folder et niveau ud og beholder kun de mindste børn.",
        ),
        mdx(
            "Unorder",
            "Set",
            Set,
            None,
            "Returns the set unchanged; the order may be ignored.",
            "Returnerer sættet uændret; rækkefølgen kan ignoreres.",
        ),
        mdx(
            "NonEmptyCrossJoin",
            "Set[, Set ...]",
            Set,
            None,
            "Returns the crossjoin of sets (empty tuples are removed by NON EMPTY).",
            "Returnerer krydsproduktet af sæt (tomme tupler fjernes af NON EMPTY).",
        ),
        mdx(
            "IsLeaf",
            "Member",
            Logical,
            None,
            "Tells whether a member has no children.",
            "Angiver, om et medlem ikke har nogen børn.",
        ),
        mdx(
            "IsAncestor",
            "Member, Member",
            Logical,
            None,
            "Tells whether the first member is an ancestor of the second.",
            "Angiver, om det første medlem er forfader til det andet.",
        ),
        mdx(
            "IsSibling",
            "Member, Member",
            Logical,
            None,
            "Tells whether two members have the same parent.",
            "Angiver, om to medlemmer har samme forælder.",
        ),
        mdx(
            "MemberToStr",
            "Member",
            String,
            None,
            "Returns the unique name of a member.",
            "Returnerer et medlems unikke navn.",
        ),
        mdx(
            "TupleToStr",
            "Tuple",
            String,
            None,
            "Returns a tuple as MDX text.",
            "Returnerer en tupel som MDX-tekst.",
        ),
        mdx(
            "SetToStr",
            "Set",
            String,
            None,
            "Returns a set as MDX text.",
            "Returnerer et sæt som MDX-tekst.",
        ),
        mdx(
            "Name",
            "Member|Level|Hierarchy",
            String,
            None,
            "Returns the name of a member, level or hierarchy.",
            "Returnerer navnet på et medlem, niveau eller hierarki.",
        ),
        mdx(
            "UniqueName",
            "Member|Level|Hierarchy",
            String,
            None,
            "Returns the unique name of a member, level or hierarchy.",
            "Returnerer det unikke navn på et medlem, niveau eller hierarki.",
        ),
        mdx(
            "Ordinal",
            "Level",
            Integer,
            None,
            "Returns the 0-based depth of a level.",
            "Returnerer et niveaus dybde (fra 0).",
        ),
        vba(
            "Strings",
            "Format",
            "Expression As Variant, Format As String",
            String,
            "Formats a value with a format string.",
            "Formaterer en værdi med en formatstreng.",
        ),
        vba(
            "Math",
            "Sgn",
            "Number As Double",
            Integer,
            "Returns -1, 0 or 1 for the sign of a number.",
            "Returnerer -1, 0 eller 1 efter et tals fortegn.",
        ),
        vba(
            "Math",
            "Sqr",
            "Number As Double",
            Numeric,
            "Returns the square root of a number.",
            "Returnerer kvadratroden af et tal.",
        ),
        vba(
            "Math",
            "Exp",
            "Number As Double",
            Numeric,
            "Returns e raised to a power.",
            "Returnerer e opløftet til en potens.",
        ),
        vba(
            "Math",
            "Log",
            "Number As Double",
            Numeric,
            "Returns the natural logarithm of a number.",
            "Returnerer den naturlige logaritme af et tal.",
        ),
        vba(
            "Conversion",
            "Val",
            "String As String",
            Numeric,
            "Returns the number at the start of a string.",
            "Returnerer tallet i begyndelsen af en streng.",
        ),
        vba(
            "Conversion",
            "CBool",
            "Expression As Variant",
            Logical,
            "Converts a value to a truth value.",
            "Konverterer en værdi til en sandhedsværdi.",
        ),
        vba(
            "Conversion",
            "Fix",
            "Number As Double",
            Numeric,
            "Returns the integer part of a number (toward zero).",
            "Returnerer et tals heltalsdel (mod nul).",
        ),
        vba(
            "DateTime",
            "Now",
            "()",
            Numeric,
            "Returns the current date and time.",
            "Returnerer den aktuelle dato og tid.",
        ),
        vba(
            "DateTime",
            "Date",
            "()",
            Numeric,
            "Returns the current date.",
            "Returnerer dags dato.",
        ),
        vba(
            "DateTime",
            "DateSerial",
            "Year As Integer, Month As Integer, Day As Integer",
            Numeric,
            "Returns the date of a year, month and day.",
            "Returnerer datoen for et år, en måned og en dag.",
        ),
        vba(
            "DateTime",
            "Year",
            "Date As Date",
            Integer,
            "Returns the year of a date.",
            "Returnerer årstallet i en dato.",
        ),
        vba(
            "DateTime",
            "Month",
            "Date As Date",
            Integer,
            "Returns the month (1-12) of a date.",
            "Returnerer måneden (1-12) i en dato.",
        ),
        vba(
            "DateTime",
            "Day",
            "Date As Date",
            Integer,
            "Returns the day of the month of a date.",
            "Returnerer dagen i måneden for en dato.",
        ),
        vba(
            "DateTime",
            "Weekday",
            "Date As Date",
            Integer,
            "Returns the day of the week (1 = Sunday) of a date.",
            "Returnerer ugedagen (1 = søndag) for en dato.",
        ),
    ]
};

/// MDSCHEMA_FUNCTIONS in the order the rowset is defined to have: ORIGIN, INTERFACE_NAME,
/// FUNCTION_NAME.
fn functions(lang: Lang) -> Rows {
    let mut list: Vec<&Function> = FUNCTIONS.iter().collect();
    let key = |f: &Function| match f.origin {
        Origin::Mdx => (1, f.returns.group()),
        Origin::Vba(module) => (2, module),
    };
    list.sort_by(|a, b| key(a).cmp(&key(b)).then(a.name.cmp(b.name)));
    list.into_iter()
        .map(|f| {
            let (origin, interface) = key(f);
            let library = match f.origin {
                Origin::Mdx => N,
                Origin::Vba(_) => s("VBA"),
            };
            let description = match lang {
                Lang::Da => f.da,
                Lang::En => f.en,
            };
            vec![
                s(f.name),
                s(description),
                s(f.params),
                i(f.returns.vartype()),
                i(origin),
                s(interface),
                library,
                N,
                N,
                N,
                f.object.map_or(N, s),
                s(f.name),
            ]
        })
        .collect()
}
