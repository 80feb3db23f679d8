//! Parses the recorded Excel session and the Mondrian FoodMart conformance queries, and checks
//! that printing round-trips (`parse(print(parse(s))) == parse(s)`, ignoring spans).

mod common;

use datakube_mdx::parse_statement;

fn round_trip(name: &str, src: &str) -> Result<(), String> {
    let ast = parse_statement(src).map_err(|e| format!("{name}: {e}\n{src}"))?;
    let printed = ast.to_string();
    let again =
        parse_statement(&printed).map_err(|e| format!("{name}: printed form does not parse: {e}\n{printed}"))?;
    if !ast.eq_ignore_spans(&again) {
        return Err(format!("{name}: round trip changed the tree\n{src}\n---\n{printed}"));
    }
    if again.to_string() != printed {
        return Err(format!("{name}: printing is not idempotent\n{printed}"));
    }
    Ok(())
}

#[test]
fn excel_trace_statements_all_parse_and_round_trip() {
    let statements = common::excel_statements();
    assert!(!statements.is_empty(), "no <Statement> found in the Excel trace");
    let failures: Vec<String> = statements
        .iter()
        .enumerate()
        .filter_map(|(i, s)| round_trip(&format!("statement {i}"), s).err())
        .collect();
    println!(
        "Excel trace: {} of {} statements parse and round-trip",
        statements.len() - failures.len(),
        statements.len()
    );
    assert!(
        failures.is_empty(),
        "{} Excel statements failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn foodmart_queries_parse_and_round_trip() {
    let queries = common::foodmart_queries();
    assert!(
        queries.len() >= 100,
        "expected the FoodMart corpus, found {} queries",
        queries.len()
    );
    let failures: Vec<String> = queries.iter().filter_map(|(n, q)| round_trip(n, q).err()).collect();
    println!(
        "FoodMart: {} of {} queries parse and round-trip",
        queries.len() - failures.len(),
        queries.len()
    );
    assert!(
        failures.is_empty(),
        "{} FoodMart queries failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
