//! Virtual cubes: FoodMart's [Warehouse and Sales] (the fact rows of Sales and Warehouse in one
//! cube) through the real server, against hand-written DuckDB SQL over the same Parquet files:
//! measures of both base cubes by a shared dimension, a calculated measure mixing them, and
//! dimensions only one base cube has (the other cube's measures are empty below All).

mod common;
use common::copy_dir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Answer, Server, close};

fn parquet(dir: &Path, table: &str) -> String {
    let p = dir
        .join(datakube_tests::foodmart::SUBDIR)
        .join(format!("{table}.parquet"));
    format!("read_parquet({})", datakube_engine::sql_string(&p.to_string_lossy()))
}

/// `(label, value)` rows of a hand-written statement.
fn rows(s: &Server, sql: &str) -> BTreeMap<String, f64> {
    let c = s.duck();
    let mut st = c.prepare(sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Cell value of row `r`, column `c` of a two-axis answer with `cols` columns.
fn cell(a: &Answer, cols: usize, r: usize, c: usize) -> Option<f64> {
    a.value((r * cols + c) as u64)
}

fn start() -> (tempfile::TempDir, Server, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    datakube_tests::foodmart::write_parquet(tmp.path()).expect("FoodMart Parquet");
    let defs = common::repo_root().join("tests/fixtures/foodmart/cube-definitions");
    let server = Server::start_in_with_definitions(tmp.path(), &defs);
    let dir = tmp.path().to_path_buf();
    (tmp, server, dir)
}

#[test]
fn virtual_cube_mixes_base_cubes_like_hand_written_sql() {
    let (_tmp, s, dir) = start();
    let sales = parquet(&dir, "sales_fact_1997");
    let inv = parquet(&dir, "inventory_fact_1997");
    let time = parquet(&dir, "time_by_day");

    // 1. Measures of both base cubes and a calculation over both, by the shared Time dimension.
    let a = s
        .mdx_in(
            "FoodMart",
            "SELECT {[Measures].[Store Sales], [Measures].[Sales Count], [Measures].[Units Shipped], \
             [Measures].[Profit Per Unit Shipped]} ON 0, [Time].[1997].Children ON 1 FROM [Warehouse and Sales]",
            1033,
            common::ADMIN,
        )
        .ok();
    let by_quarter = |fact: &str, expr: &str| {
        rows(
            &s,
            &format!(
                "SELECT t.quarter, ({expr})::DOUBLE FROM {fact} AS f JOIN {time} AS t USING (time_id) \
                 WHERE t.the_year = 1997 GROUP BY 1"
            ),
        )
    };
    let store_sales = by_quarter(&sales, "sum(f.store_sales)");
    let sales_count = by_quarter(&sales, "count(f.product_id)");
    let profit = by_quarter(&sales, "sum(f.store_sales) - sum(f.store_cost)");
    let shipped = by_quarter(&inv, "sum(f.units_shipped)");
    let quarters: Vec<String> = a.axes[1].iter().map(|t| t[0].1.clone()).collect();
    assert_eq!(quarters, ["Q1", "Q2", "Q3", "Q4"], "rows: {:?}", a.axes[1]);
    for (r, q) in quarters.iter().enumerate() {
        let v = |c| cell(&a, 4, r, c).unwrap_or_else(|| panic!("{q} column {c} is empty"));
        assert!(
            close(v(0), store_sales[q]),
            "{q} Store Sales {} vs {}",
            v(0),
            store_sales[q]
        );
        assert_eq!(v(1), sales_count[q], "{q} Sales Count counts only Sales rows");
        assert!(close(v(2), shipped[q]), "{q} Units Shipped {} vs {}", v(2), shipped[q]);
        let ppu = profit[q] / shipped[q];
        assert!(close(v(3), ppu), "{q} Profit Per Unit Shipped {} vs {ppu}", v(3));
    }

    // 2. A dimension of Sales only: Warehouse measures exist at its All member, are empty below.
    let a = s
        .mdx_in(
            "FoodMart",
            "SELECT {[Measures].[Unit Sales], [Measures].[Units Shipped]} ON 0, \
             {[Gender].[All Gender], [Gender].[All Gender].Children} ON 1 FROM [Warehouse and Sales]",
            1033,
            common::ADMIN,
        )
        .ok();
    let customer = parquet(&dir, "customer");
    let unit_sales = rows(
        &s,
        &format!(
            "SELECT c.gender, sum(f.unit_sales)::DOUBLE FROM {sales} AS f JOIN {customer} AS c USING (customer_id) \
             JOIN {time} AS t USING (time_id) WHERE t.the_year = 1997 GROUP BY 1"
        ),
    );
    let total_sales: f64 = unit_sales.values().sum();
    let total_shipped: f64 = shipped.values().sum();
    let genders: Vec<String> = a.axes[1].iter().map(|t| t[0].1.clone()).collect();
    assert_eq!(genders, ["All Gender", "F", "M"], "rows: {:?}", a.axes[1]);
    assert!(close(cell(&a, 2, 0, 0).unwrap(), total_sales));
    assert!(
        close(cell(&a, 2, 0, 1).unwrap(), total_shipped),
        "Units Shipped at All Gender"
    );
    for (r, g) in ["F", "M"].iter().enumerate() {
        assert!(
            close(cell(&a, 2, r + 1, 0).unwrap(), unit_sales[*g]),
            "Unit Sales of {g}"
        );
        assert_eq!(
            cell(&a, 2, r + 1, 1),
            None,
            "Units Shipped below All Gender is empty ({g})"
        );
    }

    // 3. A dimension of Warehouse only: Sales measures (a count too) are empty below its All.
    let a = s
        .mdx_in(
            "FoodMart",
            "SELECT {[Measures].[Units Shipped], [Measures].[Sales Count]} ON 0, \
             [Warehouse].[Country].Members ON 1 FROM [Warehouse and Sales]",
            1033,
            common::ADMIN,
        )
        .ok();
    let warehouse = parquet(&dir, "warehouse");
    let by_country = rows(
        &s,
        &format!(
            "SELECT w.warehouse_country, sum(f.units_shipped)::DOUBLE FROM {inv} AS f \
             JOIN {warehouse} AS w USING (warehouse_id) JOIN {time} AS t USING (time_id) \
             WHERE t.the_year = 1997 GROUP BY 1"
        ),
    );
    let countries: Vec<String> = a.axes[1].iter().map(|t| t[0].1.clone()).collect();
    assert!(
        by_country.keys().all(|c| countries.contains(c)),
        "{countries:?} vs {by_country:?}"
    );
    for (r, c) in countries.iter().enumerate() {
        match by_country.get(c) {
            Some(v) => assert!(close(cell(&a, 2, r, 0).unwrap(), *v), "Units Shipped of {c}"),
            None => assert_eq!(cell(&a, 2, r, 0), None, "{c} has no inventory rows in 1997"),
        }
        assert_eq!(
            cell(&a, 2, r, 1),
            None,
            "Sales Count below All Warehouses is empty ({c})"
        );
    }

    // 4. A calculated measure of a base cube comes with what it refers to: Profit Growth uses
    //    Profit and the hidden Profit last Period, which the virtual cube does not list.
    let a = s
        .mdx_in(
            "FoodMart",
            "SELECT {[Measures].[Profit Growth]} ON 0, {[Time].[1997].[Q2]} ON 1 FROM [Warehouse and Sales]",
            1033,
            common::ADMIN,
        )
        .ok();
    let growth = (profit["Q2"] - profit["Q1"]) / profit["Q1"];
    assert!(
        close(a.value(0).unwrap(), growth),
        "Profit Growth of Q2 {:?} vs {growth}",
        a.value(0)
    );
    let a = s
        .mdx_in(
            "FoodMart",
            "SELECT [Measures].Members ON 0 FROM [Warehouse and Sales]",
            1033,
            common::ADMIN,
        )
        .ok();
    let listed: Vec<&str> = a.axes[0].iter().map(|t| t[0].1.as_str()).collect();
    assert!(
        listed.contains(&"Profit Per Unit Shipped") || listed.contains(&"Store Sales"),
        "{listed:?}"
    );
    assert!(
        !listed.contains(&"Profit last Period"),
        "hidden measures are not listed: {listed:?}"
    );
}

const KOMMUNEN_SAMLET: &str = "cube:
  name: Kommunen samlet
  caption: {da: Kommunen samlet, en: The municipality in one}
  virtual: {cubes: [Befolkning, Økonomi]}
  security: {class: individual, row_scope_column: kommunekode}
  dimensions:
    - shared: Kommune
    - shared: Tid
  measures:
    - {name: Tilflyttede, from: Befolkning}
    - {name: Antal borgere, from: Befolkning}
    - {name: Regnskab, from: Økonomi}
    - name: Regnskab pr. borger
      caption: {da: Regnskab pr. borger, en: Accounts per resident}
      expression: \"[Measures].[Regnskab] / [Measures].[Antal borgere]\"
";

/// A virtual cube over two individual-level FLIS cubes keeps the row scope on both base
/// cubes' rows, and a semi-additive measure (Antal borgere, last month of the year) stays
/// semi-additive.
#[test]
fn virtual_cube_over_individual_cubes_keeps_the_row_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let defs = tmp.path().join("defs");
    copy_dir(&common::repo_root().join("cube-definitions"), &defs);
    std::fs::write(defs.join("kommunen_samlet.yaml"), KOMMUNEN_SAMLET).unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_full(&data, &defs, &[]);

    let a = s
        .mdx_as(
            "SELECT {[Measures].[Tilflyttede], [Measures].[Antal borgere], [Measures].[Regnskab], \
             [Measures].[Regnskab pr. borger]} ON 0, [Tid].[Kalender].[År].Members ON 1 FROM [Kommunen samlet]",
            1033,
            ("aarhus", "aarhus"),
        )
        .ok();
    let bestand = s.table("befolkning", "bestand");
    let postering = s.table("oekonomi", "postering");
    let moved = rows(
        &s,
        &format!("SELECT aar::VARCHAR, sum(tilflyttede)::DOUBLE FROM {bestand} WHERE kommunekode = 751 GROUP BY 1"),
    );
    let residents = rows(
        &s,
        &format!(
            "SELECT aar::VARCHAR, arg_max(v, maaned_id)::DOUBLE FROM (SELECT aar, maaned_id, sum(antal_borgere) AS v \
             FROM {bestand} WHERE kommunekode = 751 GROUP BY 1, 2) GROUP BY 1"
        ),
    );
    let accounts = rows(
        &s,
        &format!(
            "SELECT aar::VARCHAR, sum(beloeb)::DOUBLE FROM {postering} WHERE kommunekode = 751 \
             AND beloebstype_kode = 'R' GROUP BY 1"
        ),
    );
    let years: Vec<String> = a.axes[1].iter().map(|t| t[0].1.clone()).collect();
    assert!(
        !years.is_empty() && residents.keys().all(|y| years.contains(y)),
        "{years:?}"
    );
    let mut checked = 0;
    for (r, y) in years.iter().enumerate() {
        let want = [moved.get(y), residents.get(y), accounts.get(y)];
        for (c, w) in want.iter().enumerate() {
            match w {
                Some(w) => assert!(
                    close(cell(&a, 4, r, c).unwrap_or(f64::NAN), **w),
                    "{y} column {c}: {:?} vs {w}",
                    cell(&a, 4, r, c)
                ),
                None => assert_eq!(cell(&a, 4, r, c), None, "{y} column {c}"),
            }
        }
        if let (Some(acc), Some(res)) = (accounts.get(y), residents.get(y)) {
            assert!(close(cell(&a, 4, r, 3).unwrap(), acc / res), "{y} Regnskab pr. borger");
            checked += 1;
        }
    }
    assert!(checked > 0, "some year has both accounts and residents");
    // The SQL carries the row scope on the union (both base cubes' rows).
    let admin = s
        .mdx_as(
            "SELECT {[Measures].[Regnskab]} ON 0 FROM [Kommunen samlet]",
            1033,
            common::ADMIN,
        )
        .ok();
    let all: f64 = rows(
        &s,
        &format!("SELECT 'x', sum(beloeb)::DOUBLE FROM {postering} WHERE beloebstype_kode = 'R'"),
    )["x"];
    let t = s.mdx_as(
        "SELECT {[Measures].[Regnskab]} ON 0 FROM [Kommunen samlet]",
        1033,
        ("aarhus", "aarhus"),
    );
    let own: f64 = accounts.values().sum();
    assert!(close(admin.value(0).unwrap(), all), "admin sees every kommune");
    assert!(close(t.ok().value(0).unwrap(), own), "aarhus sees Aarhus only");
    assert!(own < all, "the demo data has other kommuner too");
}
