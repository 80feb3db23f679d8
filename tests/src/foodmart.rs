//! The FoodMart data set (crate `foodmart-data`, the CSV tables of Mondrian's test suite) as
//! Parquet for the conformance fixture `tests/fixtures/foodmart/cube-definitions`.
//!
//! Fact tables are written as they are, with two derived measure columns where Mondrian uses
//! an SQL measure expression (`promotion_sales`, `warehouse_profit`). Dimension tables are
//! denormalised where Mondrian joins tables (product ⋈ product_class; employee ⋈ store ⋈
//! position). Levels whose names repeat under different parents (a brand in many
//! subcategories, the quarter `Q1` in every year) get a key column holding the path of names
//! (`*_key`), so that a key identifies one member; their captions stay Mondrian's columns.

use std::path::Path;

use datakube_engine::{EngineConfig, open_connection, sql_string};

/// Bumped whenever the files written change, so cached copies are rewritten.
pub const LAYOUT_VERSION: &str = "foodmart-parquet 1";

/// The folder under the data directory holding the Parquet files.
pub const SUBDIR: &str = "foodmart";

/// The DuckDB type of a `foodmart-data` column type: decimals become DOUBLE, small
/// integers INTEGER, timestamps stay timestamps (dates are cast where joins need them).
fn duck_type(sql_type: &str) -> &'static str {
    let base = sql_type.split('(').next().unwrap_or("").trim().to_ascii_uppercase();
    match base.as_str() {
        "INTEGER" | "SMALLINT" => "INTEGER",
        "BIGINT" => "BIGINT",
        "DECIMAL" | "DOUBLE" | "REAL" | "FLOAT" => "DOUBLE",
        "BOOLEAN" => "BOOLEAN",
        "DATE" => "DATE",
        "TIMESTAMP" => "TIMESTAMP",
        _ => "VARCHAR",
    }
}

/// The tables read from the CSV files.
const TABLES: [&str; 13] = [
    "sales_fact_1997",
    "inventory_fact_1997",
    "salary",
    "store",
    "time_by_day",
    "product",
    "product_class",
    "promotion",
    "customer",
    "warehouse",
    "employee",
    "position",
    "department",
];

/// The Parquet files: (file name, SELECT over the loaded tables).
const OUTPUTS: [(&str, &str); 12] = [
    (
        "sales_fact_1997",
        "SELECT *, CASE WHEN promotion_id = 0 THEN 0 ELSE store_sales END AS promotion_sales FROM sales_fact_1997",
    ),
    (
        "inventory_fact_1997",
        "SELECT *, warehouse_sales - warehouse_cost AS warehouse_profit FROM inventory_fact_1997",
    ),
    (
        "salary",
        "SELECT CAST(pay_date AS DATE) AS pay_date, * EXCLUDE (pay_date) FROM salary",
    ),
    ("store", "SELECT * FROM store"),
    (
        "time_by_day",
        "SELECT time_id, CAST(the_date AS DATE) AS the_date, the_day, the_month, the_year, day_of_month,
                week_of_year, month_of_year, quarter, fiscal_period,
                the_year * 10 + CAST(substr(quarter, 2) AS INTEGER) AS quarter_key,
                the_year * 100 + month_of_year AS month_key,
                the_year * 100 + week_of_year AS week_key,
                (the_year * 100 + week_of_year) * 100 + day_of_month AS day_key
         FROM time_by_day",
    ),
    (
        "product",
        "SELECT p.*, c.product_subcategory, c.product_category, c.product_department, c.product_family,
                concat_ws('|', c.product_family, c.product_department) AS product_department_key,
                concat_ws('|', c.product_family, c.product_department, c.product_category) AS product_category_key,
                concat_ws('|', c.product_family, c.product_department, c.product_category, c.product_subcategory)
                    AS product_subcategory_key,
                concat_ws('|', c.product_family, c.product_department, c.product_category, c.product_subcategory,
                    p.brand_name) AS brand_name_key
         FROM product p JOIN product_class c USING (product_class_id)",
    ),
    ("promotion", "SELECT * FROM promotion"),
    (
        "customer",
        "SELECT *, fname || ' ' || lname AS fullname,
                concat_ws('|', country, state_province, city) AS city_key
         FROM customer",
    ),
    ("warehouse", "SELECT * FROM warehouse"),
    (
        "employee",
        "SELECT e.* EXCLUDE (supervisor_id), NULLIF(e.supervisor_id, 0) AS supervisor_id, p.pay_type,
                s.store_name, s.store_city, s.store_state, s.store_country, s.store_type, s.store_manager,
                s.store_sqft, s.grocery_sqft, s.frozen_sqft, s.meat_sqft, s.coffee_bar, s.store_street_address
         FROM employee e JOIN store s USING (store_id) LEFT JOIN position p USING (position_id)",
    ),
    ("department", "SELECT * FROM department"),
    ("position", "SELECT * FROM position"),
];

/// Writes the Parquet files into `<data_dir>/foodmart/` unless a complete copy of this layout
/// version is there. Returns whether files were written.
pub fn write_parquet(data_dir: &Path) -> Result<bool, String> {
    let out = data_dir.join(SUBDIR);
    let marker = out.join("VERSION");
    if std::fs::read_to_string(&marker).is_ok_and(|v| v.trim() == LAYOUT_VERSION) {
        return Ok(false);
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-foodmart-")
        .tempdir_in(data_dir)
        .map_err(|e| e.to_string())?;
    let conn = open_connection(&EngineConfig::default()).map_err(|e| e.to_string())?;
    for name in TABLES {
        let t = foodmart_data::find(name).ok_or_else(|| format!("foodmart-data has no table {name}"))?;
        let csv = tmp.path().join(format!("{name}.csv"));
        std::fs::write(&csv, t.csv).map_err(|e| e.to_string())?;
        let columns: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    sql_string(&c.name.to_ascii_lowercase()),
                    sql_string(duck_type(c.sql_type))
                )
            })
            .collect();
        conn.execute_batch(&format!(
            "CREATE TABLE {name} AS SELECT * FROM read_csv({}, header = true, delim = ',', quote = '\"', \
             nullstr = '', timestampformat = '%Y-%m-%d %H:%M:%S.%g', columns = {{{}}})",
            sql_string(&csv.to_string_lossy()),
            columns.join(", ")
        ))
        .map_err(|e| format!("loading {name}: {e}"))?;
        std::fs::remove_file(&csv).map_err(|e| e.to_string())?;
    }
    for (file, select) in OUTPUTS {
        let path = tmp.path().join(format!("{file}.parquet"));
        conn.execute_batch(&format!(
            "COPY ({select}) TO {} (FORMAT parquet)",
            sql_string(&path.to_string_lossy())
        ))
        .map_err(|e| format!("writing {file}: {e}"))?;
    }
    std::fs::write(tmp.path().join("VERSION"), format!("{LAYOUT_VERSION}\n")).map_err(|e| e.to_string())?;
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(true)
}
