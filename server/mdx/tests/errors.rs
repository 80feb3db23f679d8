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
    check(
        src,
        "FROM",
        "expected ')' or ',' to close the argument list of TopCount, found 'FROM'",
    );
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
        "expected SELECT, WITH, DRILLTHROUGH, CREATE, DROP or REFRESH CUBE at start of statement",
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

/// One row per distinct error situation: the source, the text the error must point at, and a
/// part of the message that says what was expected.
const SITUATIONS: &[(&str, &str, &str)] = &[
    // 1. unclosed argument list (the example from the issue)
    (
        "SELECT\n  {[Measures].[Unit Sales]} ON COLUMNS,\n  Crossjoin(a ON ROWS\nFROM [Sales]",
        "ON ROWS",
        "expected ')' or ',' to close the argument list of Crossjoin, found 'ON'",
    ),
    // 2. unclosed method argument list
    (
        "SELECT [Time].CurrentMember.Lag(1 ON 0 FROM c",
        "ON",
        "expected ')' or ',' to close the argument list of .Lag, found 'ON'",
    ),
    // 3. unclosed set
    (
        "SELECT\n  {[a], [b] ON 0\nFROM c",
        "ON",
        "expected '}' or ',' in set, found 'ON'",
    ),
    // 4. unclosed tuple
    (
        "SELECT {} ON 0 FROM c\nWHERE ([a], [b]",
        "",
        "expected ')' or ',' in parenthesised expression or tuple, found end of input",
    ),
    // 5. axis without ON
    (
        "SELECT {[a]} COLUMNS FROM c",
        "COLUMNS",
        "expected ON or DIMENSION PROPERTIES after axis expression, found 'COLUMNS'",
    ),
    // 6. bad axis name
    (
        "SELECT {[a]} ON COLUMN FROM c",
        "COLUMN",
        "expected COLUMNS, ROWS, PAGES, CHAPTERS, SECTIONS, AXIS(n) or axis number after ON, found 'COLUMN'",
    ),
    // 7. missing FROM
    (
        "SELECT {[a]} ON 0\n[Sales]",
        "[Sales]",
        "expected ',' or FROM after axis, found '[Sales]'",
    ),
    // 8. nothing after FROM
    (
        "SELECT {[a]} ON 0 FROM WHERE [x]",
        "WHERE",
        "expected cube name or '(' after FROM, found 'WHERE'",
    ),
    // 9. unclosed subselect
    (
        "SELECT {[a]} ON 0 FROM (SELECT {[b]} ON 0 FROM [c]\n[d])",
        "[d]",
        "expected ')' to close subselect, found '[d]'",
    ),
    // 10. subselect that is not a SELECT
    (
        "SELECT {[a]} ON 0 FROM ([c])",
        "[c])",
        "expected SELECT in subselect, found '[c]'",
    ),
    // 11. calculated member without AS
    (
        "WITH MEMBER [Measures].[x] [Measures].[y] * 2\nSELECT FROM c",
        "[Measures].[y]",
        "expected AS after calculated member name, found '[Measures]'",
    ),
    // 12. property without '='
    (
        "WITH MEMBER [Measures].[x] AS 1, FORMAT_STRING 'Percent'\nSELECT FROM c",
        "'Percent'",
        "expected '=' after property name, found string \"Percent\"",
    ),
    // 13. CELL CALCULATION without FOR
    (
        "WITH CELL CALCULATION [c] AS '1' SELECT FROM c",
        "AS '1'",
        "expected FOR after cell calculation name, found 'AS'",
    ),
    // 14. CASE without THEN
    (
        "SELECT {} ON 0 FROM c WHERE CASE WHEN a 1 END",
        "1 END",
        "expected THEN after WHEN condition, found '1'",
    ),
    // 15. CASE without END
    (
        "SELECT {} ON 0 FROM c WHERE CASE WHEN a THEN 1 ELSE 2",
        "",
        "expected END to close CASE expression, found end of input",
    ),
    // 16. operator without right operand
    ("SELECT {[a]} * ON 0 FROM c", "ON", "expected expression, found 'ON'"),
    // 17. dot followed by nothing usable
    (
        "SELECT {[Store]., [x]} ON 0 FROM c",
        ", [x]",
        "expected name, key or property or method after '.', found ','",
    ),
    // 18. NON without EMPTY
    (
        "SELECT NON {[a]} ON 0 FROM c",
        "{[a]}",
        "expected EMPTY after NON, found '{'",
    ),
    // 19. DRILLTHROUGH without SELECT
    (
        "DRILLTHROUGH MAXROWS 10 [x]",
        "[x]",
        "expected SELECT, MAXROWS or FIRSTROWSET after DRILLTHROUGH, found '[x]'",
    ),
    // 20. REFRESH without CUBE
    (
        "REFRESH [Sales]",
        "[Sales]",
        "expected CUBE after REFRESH, found '[Sales]'",
    ),
    // 21. DIMENSION without PROPERTIES
    (
        "SELECT {[a]} DIMENSION MEMBER_CAPTION ON 0 FROM c",
        "MEMBER_CAPTION",
        "expected PROPERTIES after DIMENSION, found 'MEMBER_CAPTION'",
    ),
    // 22. IS without operand
    (
        "SELECT {} ON 0 FROM c WHERE [a] IS )",
        ")",
        "expected expression, found ')'",
    ),
    // 23. a single '|'
    (
        "SELECT {} ON 0 FROM c WHERE 'a' | 'b'",
        "| 'b'",
        "unexpected character '|'",
    ),
    // 24. axis number out of range
    (
        "SELECT {} ON AXIS(128) FROM c",
        "128",
        "invalid axis number '128' (expected an integer 0..127)",
    ),
    // 25. error inside a quoted formula points into the source
    (
        "WITH SET [s] AS\n  'Filter([a].Members, [m] > )'\nSELECT [s] ON 0 FROM c",
        ")'",
        "expected expression, found ')'",
    ),
];

#[test]
fn distinct_error_situations_name_line_column_and_what_was_expected() {
    assert!(SITUATIONS.len() >= 15);
    for (src, needle, message) in SITUATIONS {
        if needle.is_empty() {
            check_end(src, message);
            let e = err(src);
            assert!(e.to_string().ends_with(message), "{e}");
        } else {
            check(src, needle, message);
            let e = err(src);
            let (line, column) = at(src, needle);
            assert_eq!(e.to_string(), format!("line {line}, column {column}: {message}"));
        }
        assert!(!err(src).expected.is_empty() || message.contains("unexpected") || message.contains("invalid"));
    }
}

#[test]
fn the_issue_example_reads_exactly() {
    let src = "SELECT\n  {[Measures].[Unit Sales]} ON COLUMNS,\n  Crossjoin(a ON ROWS\nFROM [Sales]";
    assert_eq!(
        err(src).to_string(),
        "line 3, column 15: expected ')' or ',' to close the argument list of Crossjoin, found 'ON'"
    );
}

#[test]
fn several_statements_only_for_script_commands() {
    use datakube_mdx::parse_statements;
    let e = parse_statements("CREATE SET [c].[s] AS {};\nSELECT FROM c").unwrap_err();
    assert_eq!((e.line, e.column), (2, 1), "{e}");
    assert!(e.message.contains("a SELECT statement must be alone"), "{e}");
    let e = parse_statements("DROP SET [c].[s] [c].[t]").unwrap_err();
    assert!(
        e.message.contains("expected ';' or end of input after statement"),
        "{e}"
    );
    let e = parse_statements(" ; ;").unwrap_err();
    assert!(e.message.contains("at start of statement, found end of input"), "{e}");
}

#[test]
fn nesting_100k_deep_is_an_error_not_a_stack_overflow() {
    // Run on a small stack to prove the limit, not a big main-thread stack, prevents overflow.
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let n = 100_000;
            for (open, close) in [("(", ")"), ("{", "}"), ("Head(", ")"), ("a.Item(", ")")] {
                let src = format!("{}1{}", open.repeat(n), close.repeat(n));
                let e = parse_expression(&src).unwrap_err();
                assert!(e.message.contains("nested too deeply"), "{e}");
                let st = format!("SELECT {} ON 0 FROM c", src);
                let e = parse_statement(&st).unwrap_err();
                assert!(e.message.contains("nested too deeply"), "{e}");
                // Unclosed too.
                let e = parse_expression(&open.repeat(n)).unwrap_err();
                assert!(e.message.contains("nested too deeply"), "{e}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
