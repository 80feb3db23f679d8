//! Syntax errors name the line, column and what was expected.

use datakube_mdx::{ParseError, parse_expression, parse_statement};

fn err(src: &str) -> ParseError {
    match parse_statement(src) {
        Ok(st) => panic!("expected an error for {src:?}, got {st}"),
        Err(e) => e,
    }
}

fn at(src: &str, needle: &str) -> (usize, usize) {
    let off = src.find(needle).unwrap_or_else(|| panic!("{needle:?} not in {src:?}"));
    let line = src[..off].matches('\n').count() + 1;
    let col = src[..off].rsplit('\n').next().unwrap().chars().count() + 1;
    (line, col)
}

#[track_caller]
fn check(src: &str, needle: &str, message: &str) {
    let e = err(src);
    let (line, column) = at(src, needle);
    assert_eq!((e.line, e.column), (line, column), "{e}");
    assert_eq!(e.offset, src.find(needle).unwrap(), "{e}");
    assert!(
        e.message.contains(message),
        "message {:?} should contain {message:?}",
        e.message
    );
    assert_eq!(e.to_string(), format!("line {line}, column {column}: {}", e.message));
}

#[track_caller]
fn check_end(src: &str, message: &str) {
    let e = err(src);
    let (line, column) = (
        src.matches('\n').count() + 1,
        src.rsplit('\n').next().unwrap().chars().count() + 1,
    );
    assert_eq!((e.line, e.column, e.offset), (line, column, src.len()), "{e}");
    assert!(
        e.message.contains(message),
        "message {:?} should contain {message:?}",
        e.message
    );
}

#[test]
fn missing_close_paren_in_function() {
    let src = "SELECT {[Measures].[Sales]} ON COLUMNS,\n  TopCount([Store].Members, 10\nFROM [Sales]";
    check(src, "FROM", "expected ')' or ',' after function argument, found 'FROM'");
    assert_eq!(err(src).expected, ["')'", "','"]);
}

#[test]
fn position_on_third_line() {
    let src = "SELECT\n  {[Measures].[Sales]} ON COLUMNS\n  [Store].Members ON ROWS\nFROM [Sales]";
    check(src, "[Store]", "expected ',' or FROM after axis, found '[Store]'");
}

#[test]
fn columns_count_chars_not_bytes() {
    let src = "SELECT {[Kommune].[Bærum], [Kommune].[Ås]} ON 0 FRM [Sales]";
    check(src, "FRM", "found 'FRM'");
}

#[test]
fn misc_messages() {
    check("SELECT {a, } ON 0 FROM c", "}", "expected expression, found '}'");
    check("SELECT {a b} ON 0 FROM c", "b}", "expected '}' or ','");
    check("SELECT (a, b ON 0 FROM c", "ON", "expected ')' or ','");
    check(
        "SELECT a ON FOO FROM c",
        "FOO",
        "expected COLUMNS, ROWS, PAGES, CHAPTERS, SECTIONS, AXIS(n) or axis number",
    );
    check_end(
        "SELECT a ON 0 FROM",
        "expected cube name or '(' after FROM, found end of input",
    );
    check_end("SELECT a ON 0 FROM c WHERE", "expected expression, found end of input");
    check(
        "SELECT a ON 0 FROM c extra",
        "extra",
        "expected end of input after statement, found 'extra'",
    );
    check(
        "WITH MEMBER [M].[x] 1 SELECT FROM c",
        "1",
        "expected AS after calculated member name",
    );
    check(
        "WITH SELECT FROM c",
        "SELECT",
        "expected MEMBER, SET or CELL CALCULATION in WITH clause",
    );
    check("SELECT NON a ON 0 FROM c", "a ON", "expected EMPTY after NON");
    check(
        "SELECT CASE a END ON 0 FROM c",
        "END",
        "expected WHEN in CASE expression",
    );
    check(
        "SELECT CASE WHEN a THEN b ON 0 FROM c",
        "ON",
        "expected WHEN, ELSE or END",
    );
    check("SELECT a ON AXIS(x) FROM c", "x)", "expected axis number");
    check("SELECT a ON 999 FROM c", "999", "invalid axis number");
    check(
        "DRILLTHROUGH MAXROWS x SELECT FROM c",
        "x",
        "expected integer after MAXROWS",
    );
    check("DROP CUBE x", "CUBE", "expected MEMBER or SET after DROP");
    check(
        "SELECT x DIMENSION PROPERTIES ON COLUMNS FROM c",
        "ON COLUMNS",
        "expected dimension property name, found 'ON'",
    );
    check(
        "FOO",
        "FOO",
        "expected SELECT, WITH, DRILLTHROUGH, CREATE or DROP at start of statement",
    );
    check("SELECT a.&[1] ON 0 FROM c WHERE (1).&[2]", "&[2]", "key reference");
    check("SELECT [a].(1) ON 0 FROM c", "(1)", "after '.'");
    check_end("SELECT FROM c WHERE a +", "found end of input");
    check_end("SELECT FROM c WHERE a + -- comment\n  ", "found end of input");
}

#[test]
fn end_of_input_points_past_last_token() {
    let src = "SELECT a ON 0 FROM";
    let e = err(src);
    assert_eq!((e.line, e.column, e.offset), (1, src.len() + 1, src.len()));
    assert!(e.message.contains("found end of input"), "{e}");
}

#[test]
fn unterminated_tokens_point_at_the_opening() {
    check(
        "SELECT {[Measures].[Sales} ON 0 FROM c",
        "[Sales",
        "unterminated bracketed identifier",
    );
    check("SELECT {'abc} ON 0 FROM c", "'abc", "unterminated string");
    check("SELECT {\"abc} ON 0 FROM c", "\"abc", "unterminated string");
    check("SELECT a ON 0 /* comment FROM c", "/*", "unterminated comment");
    check("SELECT a.&[12 ON 0 FROM c", "[12", "unterminated bracketed key");
    check("SELECT a.& ON 0 FROM c", "&", "expected '[' or a key value after '&'");
    check("SELECT a ON 0 FROM c WHERE #", "#", "unexpected character '#'");
}

#[test]
fn errors_inside_quoted_formulas_point_into_the_source() {
    let src = "WITH MEMBER [M].[x] AS 'IIF(a = ''b'', 1 2)'\nSELECT FROM c";
    check(src, "2)'", "expected ')' or ','");
    let src = "WITH MEMBER [M].[x] AS 'Sum(a, b'\nSELECT FROM c";
    let e = err(src);
    assert!(e.message.contains("end of quoted formula"), "{e}");
    assert_eq!(e.offset, src.find("'\n").unwrap());
    check(
        "WITH MEMBER [M].[x] AS '[a'\nSELECT FROM c",
        "[a",
        "unterminated bracketed identifier",
    );
}

#[test]
fn expression_entry_point() {
    let e = parse_expression("[Measures].[A] +").unwrap_err();
    assert!(e.message.contains("expected expression, found end of input"), "{e}");
    let e = parse_expression("a b").unwrap_err();
    assert_eq!(e.column, 3);
    assert!(e.message.contains("after expression"), "{e}");
    assert!(parse_expression("").is_err());
}

#[test]
fn nesting_limit_gives_clean_error() {
    let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
    let e = parse_expression(&deep).unwrap_err();
    assert!(e.message.contains("nested too deeply"), "{e}");
    assert!(e.offset < deep.len());
    // 200 levels are fine.
    let ok = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    parse_expression(&ok).unwrap();
    let deep_sub = format!("SELECT FROM {}[c]{}", "(SELECT FROM ".repeat(300), ")".repeat(300));
    assert!(err(&deep_sub).message.contains("nested too deeply"));
}
