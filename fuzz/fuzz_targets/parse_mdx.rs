//! Fuzz the MDX parser: it never panics, error positions lie inside the input and agree with
//! line/column, and every statement, command or expression that parses prints to MDX that
//! parses back to the same tree (ignoring spans).
//!
//! Run with `scripts/fuzz` (see docs/conformance.md, "Parser fuzzing").
#![no_main]

use datakube_mdx::{ParseError, format_statements, parse_expression, parse_statement, parse_statements};
use libfuzzer_sys::fuzz_target;

fn check_error(src: &str, e: &ParseError) {
    assert!(e.offset <= src.len(), "error offset out of bounds: {e}");
    assert!(
        src.is_char_boundary(e.offset),
        "error offset not on a char boundary: {e}"
    );
    let before = &src[..e.offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "line/column disagree with the offset: {e}"
    );
    assert!(!e.message.is_empty());
}

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    let src = src.as_ref();
    match parse_statement(src) {
        Ok(st) => {
            let printed = st.to_string();
            let again = parse_statement(&printed)
                .unwrap_or_else(|e| panic!("printed statement does not parse: {e}\n{src}\n---\n{printed}"));
            assert!(
                st.eq_ignore_spans(&again),
                "round trip changed the tree:\n{src}\n---\n{printed}"
            );
            assert_eq!(again.to_string(), printed, "printing is not idempotent");
        }
        Err(e) => check_error(src, &e),
    }
    match parse_statements(src) {
        Ok(list) => {
            let printed = format_statements(&list);
            let again = parse_statements(&printed)
                .unwrap_or_else(|e| panic!("printed command does not parse: {e}\n{src}\n---\n{printed}"));
            assert_eq!(list.len(), again.len());
            for (a, b) in list.iter().zip(&again) {
                assert!(
                    a.eq_ignore_spans(b),
                    "round trip changed the tree:\n{src}\n---\n{printed}"
                );
            }
        }
        Err(e) => check_error(src, &e),
    }
    match parse_expression(src) {
        Ok(ex) => {
            let printed = ex.to_string();
            let again = parse_expression(&printed)
                .unwrap_or_else(|e| panic!("printed expression does not parse: {e}\n{src}\n---\n{printed}"));
            assert!(
                ex.eq_ignore_spans(&again),
                "round trip changed the tree:\n{src}\n---\n{printed}"
            );
        }
        Err(e) => check_error(src, &e),
    }
});
