//! DRILLTHROUGH ("Show Details"): the rows behind one cell, from the cube's drillthrough
//! source, restricted by the cell's members and always by the caller's row scope.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use datakube_engine::duckdb::types::{TimeUnit, ValueRef};
use datakube_engine::{sql_ident, sql_string};
use datakube_mdx::ast::Drillthrough;
use datakube_xmla::rowset::{Column, Rowset, Value, XsdType};

use crate::cells::RowScope;
use crate::error::{QueryError, Result};
use crate::eval::{Env, Val};
use crate::exec::QueryContext;
use crate::space::{MEASURES, Space};

/// Most rows a drillthrough returns when the statement gives no MAXROWS.
pub const DEFAULT_MAX_ROWS: u64 = 10_000;
/// Most rows a drillthrough may return at all.
pub const MAX_ROWS: u64 = 1_000_000;

/// Column names come from the cube definitions (a small, fixed set); the rowset writer wants
/// `'static` names, so each distinct name is stored once.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(n) = set.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

fn xsd_of(duck_type: &str) -> XsdType {
    let t = duck_type.to_ascii_uppercase();
    if t.contains("INT") {
        XsdType::Long
    } else if t.starts_with("DOUBLE") || t.starts_with("FLOAT") || t.starts_with("DECIMAL") || t.starts_with("REAL") {
        XsdType::Double
    } else if t == "BOOLEAN" {
        XsdType::Boolean
    } else if t == "DATE" || t.starts_with("TIMESTAMP") {
        XsdType::DateTime
    } else {
        XsdType::String
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Microseconds since 1970-01-01 as xsd:dateTime (`2024-03-01T00:00:00`); the fraction of a
/// second is dropped.
fn date_time(micros: i64) -> String {
    datakube_auth::util::datetime(micros.div_euclid(1_000_000))
}

/// Column names and DuckDB types.
type Schema = Vec<(String, String)>;

/// The columns and DuckDB types of a drillthrough source, read once per snapshot folder (a
/// snapshot never changes once written; a new one has another path).
fn source_schema(conn: &datakube_engine::duckdb::Connection, glob: &std::path::Path) -> Result<Arc<Schema>> {
    static SCHEMAS: LazyLock<Mutex<HashMap<PathBuf, Arc<Schema>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));
    if let Some(s) = SCHEMAS.lock().unwrap_or_else(|p| p.into_inner()).get(glob) {
        return Ok(s.clone());
    }
    let described =
        Arc::new(datakube_engine::parquet_schema(conn, glob).map_err(|e| QueryError::Execution(e.to_string()))?);
    let mut m = SCHEMAS.lock().unwrap_or_else(|p| p.into_inner());
    if m.len() >= 256 {
        m.clear();
    }
    m.insert(glob.to_path_buf(), described.clone());
    Ok(described)
}

pub fn execute_drillthrough(ctx: &QueryContext, d: &Drillthrough) -> Result<Rowset> {
    let (cube_name, _) = crate::exec::cube_and_subselects(&d.select);
    let cname = cube_name.segments.last().map(|s| s.text()).unwrap_or_default();
    let cube = ctx
        .catalog
        .cube(&cname)
        .ok_or_else(|| QueryError::Name(format!("the cube [{cname}] does not exist")))?;
    if cube.is_benchmark() {
        return Err(QueryError::Unsupported(format!(
            "drillthrough is not allowed on the benchmark cube [{}]: it holds aggregated figures only",
            cube.name
        )));
    }
    let dt = cube.drillthrough.as_ref().ok_or_else(|| {
        QueryError::Unsupported(format!(
            "the cube [{}] has no drillthrough (Show Details) defined",
            cube.name
        ))
    })?;
    let access = ctx.access.for_cube(cube)?;
    let space = Space::scoped(cube, ctx.members, ctx.lang, &access.members)?;
    let env = Env::new(&space);
    let glob = datakube_members::source_glob(ctx.snapshots, &dt.source).map_err(QueryError::Execution)?;
    let from = format!(
        "read_parquet({}, hive_partitioning = true)",
        sql_string(&glob.to_string_lossy())
    );
    let conn = ctx
        .engine
        .connection()
        .map_err(|e| QueryError::Execution(e.to_string()))?;
    // The source's columns, to know which member filters apply to it.
    let described = source_schema(&conn, &glob)?;
    let has = |c: &str| described.iter().any(|(n, _)| n == c);

    let mut filters: Vec<String> = Vec::new();
    match &access.rows {
        RowScope::All => {}
        RowScope::Kommuner(k) => {
            let Some(col) = cube.security.row_scope_column.as_deref() else {
                return Err(QueryError::Execution(format!(
                    "cube [{}] has no row-scope column; refusing to show rows",
                    cube.name
                )));
            };
            if !has(col) {
                return Err(QueryError::Execution(format!(
                    "the drillthrough source of [{}] has no row-scope column {col}; refusing to show rows",
                    cube.name
                )));
            }
            let list: Vec<String> = k.iter().map(i64::to_string).collect();
            filters.push(format!(
                "{} IN ({})",
                sql_ident(col),
                if list.is_empty() {
                    "NULL".into()
                } else {
                    list.join(", ")
                }
            ));
        }
    }
    // Allowed sets (member security): only rows of granted members.
    for h in 1..space.hierarchy_count() {
        let hc = space.hier(h);
        let Some(keys) = &hc.members.granted_keys else { continue };
        let fk = hc
            .dim
            .foreign_key
            .clone()
            .unwrap_or_else(|| hc.hierarchy.primary_key.clone());
        if !has(&fk) || !(hc.members.parent_child || hc.hierarchy.joins_on_leaf_key()) {
            return Err(QueryError::Execution(format!(
                "the drillthrough source of [{}] cannot be restricted to the allowed members of {}; refusing to show rows",
                cube.name, hc.hierarchy.unique_name
            )));
        }
        if keys.is_empty() {
            filters.push("FALSE".into());
        } else {
            let lits: Vec<String> = keys.iter().map(|k| k.sql_literal()).collect();
            filters.push(format!("{} IN ({})", sql_ident(&fk), lits.join(", ")));
        }
    }
    if let Some(w) = &d.select.where_clause {
        let tuple = match env.eval(w, None)? {
            Val::Member(m) => vec![m],
            Val::Tuple(t) => t,
            Val::Set(s) if s.len() == 1 => s[0].clone(),
            _ => {
                return Err(QueryError::Type(
                    "DRILLTHROUGH needs a single cell: a tuple in the WHERE clause".into(),
                ));
            }
        };
        for m in tuple {
            if m.h == MEASURES {
                continue;
            }
            if space.is_calc(m) {
                return Err(QueryError::Type(format!(
                    "DRILLTHROUGH: {} is a calculated member; name a cell of stored members",
                    space.member_unique_name(m)
                )));
            }
            let hc = space.hier(m.h);
            let mem = hc.members.get(m.id);
            if mem.level == 0 {
                continue;
            }
            let hier = hc.hierarchy;
            // A parent-child member stands for its subtree: its key and its descendants' on
            // the foreign key (member levels there are depths, not level definitions).
            if hc.members.parent_child {
                let fk = hc.dim.foreign_key.clone().unwrap_or_else(|| hier.primary_key.clone());
                if has(&fk) {
                    let keys = crate::cells::subtree_keys(&space, m.h, m.id);
                    filters.push(format!("{} IN ({})", sql_ident(&fk), keys.join(", ")));
                } else {
                    tracing::debug!("drillthrough: {} does not apply to the detail rows", hier.unique_name);
                }
                continue;
            }
            // The member's level key column, or the leaf key (foreign key name) for leaves.
            let leaf = mem.level as usize == hier.levels.len();
            let col = if leaf {
                hc.dim
                    .foreign_key
                    .clone()
                    .unwrap_or_else(|| hier.levels[mem.level as usize - 1].key_column.clone())
            } else {
                hier.levels[mem.level as usize - 1].key_column.clone()
            };
            if has(&col) {
                filters.push(format!("{} = {}", sql_ident(&col), mem.key.sql_literal()));
            } else {
                tracing::debug!(
                    "drillthrough: {} does not apply to the detail rows (no column {col})",
                    hier.unique_name
                );
            }
        }
    }
    // RETURN names columns of the detail source (`[$Befolkning].[person_id]`, `Key(...)`,
    // `Name(...)`, `Caption(...)`: the last name segment); without RETURN, the cube's list.
    let returned: Vec<String> = d
        .returns
        .iter()
        .map(|e| {
            let inner = match e {
                datakube_mdx::ast::Expr::Function { args, .. } if args.len() == 1 => &args[0],
                other => other,
            };
            match inner {
                datakube_mdx::ast::Expr::Identifier(n) => {
                    n.segments.last().map(|s| s.text()).filter(|c| has(c)).ok_or_else(|| {
                        QueryError::Name(format!(
                            "RETURN {} (line {}, column {}): the detail rows have no such column; columns: {}",
                            crate::space::print_name(n),
                            n.span.line,
                            n.span.column,
                            dt.columns.join(", ")
                        ))
                    })
                }
                other => Err(QueryError::Unsupported(format!(
                    "RETURN item at line {}, column {} must name a column",
                    other.span().line,
                    other.span().column
                ))),
            }
        })
        .collect::<Result<_>>()?;
    let columns: Vec<&String> = if returned.is_empty() {
        dt.columns.iter().filter(|c| has(c)).collect()
    } else {
        returned.iter().collect()
    };
    let max = d.max_rows.unwrap_or(DEFAULT_MAX_ROWS).min(MAX_ROWS);
    let skip = d.first_rowset.unwrap_or(0);
    // No ORDER BY: with DuckDB's `preserve_insertion_order` (on, the default) rows come in
    // file and row-group order, the same on every run over a snapshot, so FIRSTROWSET pages
    // neither repeat nor skip rows; sorting every matching row to keep 1000 cost a quarter
    // of the statement (Befolkning at scale 1, 751: 64 ms against 53 ms).
    let sql = format!(
        "SELECT {} FROM {from}{} LIMIT {max} OFFSET {skip}",
        columns.iter().map(|c| sql_ident(c)).collect::<Vec<_>>().join(", "),
        if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        }
    );
    tracing::debug!(target: "datakube::sql", "drillthrough: {sql}");
    let cols: Vec<Column> = columns
        .iter()
        .map(|c| {
            let ty = described
                .iter()
                .find(|(n, _)| n == *c)
                .map(|(_, t)| xsd_of(t))
                .unwrap_or(XsdType::String);
            datakube_xmla::rowset::opt(intern(&datakube_xmla::mddataset::xml_encode_name(c)), ty)
        })
        .collect();
    let mut stmt = conn.prepare(&sql).map_err(|e| QueryError::Execution(e.to_string()))?;
    let mut rows = stmt.query([]).map_err(|e| QueryError::Execution(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(|e| QueryError::Execution(e.to_string()))? {
        let mut row = Vec::with_capacity(cols.len());
        for i in 0..cols.len() {
            row.push(match r.get_ref(i).map_err(|e| QueryError::Execution(e.to_string()))? {
                ValueRef::Null => Value::Null,
                ValueRef::Boolean(b) => Value::Bool(b),
                ValueRef::TinyInt(x) => Value::Int(x.into()),
                ValueRef::SmallInt(x) => Value::Int(x.into()),
                ValueRef::Int(x) => Value::Int(x.into()),
                ValueRef::BigInt(x) => Value::Int(x),
                ValueRef::Double(x) => Value::Double(x),
                ValueRef::Float(x) => Value::Double(x.into()),
                ValueRef::Text(t) => Value::Str(String::from_utf8_lossy(t).into_owned()),
                ValueRef::UTinyInt(x) => Value::Int(x.into()),
                ValueRef::USmallInt(x) => Value::Int(x.into()),
                ValueRef::UInt(x) => Value::Int(x.into()),
                ValueRef::UBigInt(x) => i64::try_from(x).map_or(Value::Double(x as f64), Value::Int),
                ValueRef::HugeInt(x) => i64::try_from(x).map_or(Value::Double(x as f64), Value::Int),
                ValueRef::Decimal(d) => d.to_string().parse().map_or(Value::Null, Value::Double),
                // xsd:dateTime, as SSAS gives dates in detail rows.
                ValueRef::Date32(days) => Value::Str(date_time(i64::from(days) * MICROS_PER_DAY)),
                ValueRef::Timestamp(unit, v) => Value::Str(date_time(match unit {
                    TimeUnit::Second => v.saturating_mul(1_000_000),
                    TimeUnit::Millisecond => v.saturating_mul(1_000),
                    TimeUnit::Microsecond => v,
                    TimeUnit::Nanosecond => v / 1_000,
                })),
                other => Value::Str(crate::cells::key_text(other)),
            });
        }
        out.push(row);
    }
    Ok(Rowset::new(cols, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_xsd_date_times() {
        assert_eq!(date_time(0), "1970-01-01T00:00:00");
        // 2024-02-29 is day 19782; one second before midnight.
        assert_eq!(
            date_time(19_782 * MICROS_PER_DAY + 86_399_000_000),
            "2024-02-29T23:59:59"
        );
        assert_eq!(date_time(-MICROS_PER_DAY), "1969-12-31T00:00:00");
        assert_eq!(date_time(10_969 * MICROS_PER_DAY), "2000-01-13T00:00:00");
    }
}
