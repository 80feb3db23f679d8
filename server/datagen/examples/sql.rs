//! Development helper: run SQL from stdin in DuckDB and print the results as text.
use std::io::Read;

fn main() -> anyhow::Result<()> {
    let mut sql = String::new();
    std::io::stdin().read_to_string(&mut sql)?;
    let conn = datakube_engine::open_connection(&Default::default())?;
    let stmts: Vec<&str> = sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()).collect();
    for s in stmts {
        let mut st = conn.prepare(s)?;
        let mut rows = st.query([])?;
        let names: Vec<String> = rows.as_ref().unwrap().column_names();
        println!("{}", names.join("\t"));
        while let Some(r) = rows.next()? {
            let mut out = Vec::new();
            for i in 0..names.len() {
                let v: datakube_engine::duckdb::types::Value = r.get(i)?;
                out.push(format!("{v:?}"));
            }
            println!("{}", out.join("\t"));
        }
        println!();
    }
    Ok(())
}
