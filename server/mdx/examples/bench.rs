//! Rough parse/print throughput on a large generated statement: `cargo run --release --example bench`.
use std::time::Instant;

fn main() {
    let members: Vec<String> = (0..50_000).map(|i| format!("[Kunde].[Kommune].&[{i:04}]")).collect();
    let src = format!(
        "WITH MEMBER [Measures].[X] AS '[Measures].[Omsetning] * 1.25', FORMAT_STRING = '#,0' \
         SELECT NON EMPTY {{{}}} DIMENSION PROPERTIES PARENT_UNIQUE_NAME ON COLUMNS, \
         NON EMPTY Hierarchize({{DrilldownLevel({{[Tid].[År].[All]}},,,INCLUDE_CALC_MEMBERS)}}) ON ROWS \
         FROM (SELECT ({{[Tid].[År].&[2024]}}) ON 0 FROM [Økonomi]) WHERE ([Measures].[X])",
        members.join(", ")
    );
    let mut st = datakube_mdx::parse_statement(&src).expect("parses");
    let t = Instant::now();
    for _ in 0..5 {
        st = datakube_mdx::parse_statement(&src).expect("parses");
    }
    let parse = t.elapsed() / 5;
    let t = Instant::now();
    let printed = st.to_string();
    let print = t.elapsed();
    println!(
        "{} bytes: parse {:?}, print {:?} ({} bytes)",
        src.len(),
        parse,
        print,
        printed.len()
    );
}
