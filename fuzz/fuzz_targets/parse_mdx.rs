//! Fuzz the MDX parser: no panics, error positions inside the input, and every statement that
//! parses prints to MDX that parses back to the same tree.
//!
//! Run with `cargo +nightly fuzz run parse -- -dict=mdx.dict` from `server/mdx/fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn check_error(src: &str, e: &datakube_mdx::ParseError) {
    assert!(e.offset <= src.len(), "error offset out of bounds: {e}");
    assert!(src.is_char_boundary(e.offset), "error offset not on a char boundary: {e}");
    assert!(e.line >= 1 && e.column >= 1);
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    match datakube_mdx::parse_statement(src) {
        Ok(st) => {
            let printed = st.to_string();
            let again = datakube_mdx::parse_statement(&printed)
                .unwrap_or_else(|e| panic!("printed statement does not parse: {e}\n{printed}"));
            assert!(st.eq_ignore_spans(&again), "round trip changed the tree:\n{src}\n---\n{printed}");
        }
        Err(e) => check_error(src, &e),
    }
    match datakube_mdx::parse_expression(src) {
        Ok(ex) => {
            let printed = ex.to_string();
            let again = datakube_mdx::parse_expression(&printed)
                .unwrap_or_else(|e| panic!("printed expression does not parse: {e}\n{printed}"));
            assert!(ex.eq_ignore_spans(&again), "round trip changed the tree:\n{src}\n---\n{printed}");
        }
        Err(e) => check_error(src, &e),
    }
});
