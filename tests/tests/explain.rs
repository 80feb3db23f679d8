//! `datakube explain` prints how a SELECT was answered; the plan text is asserted on, and
//! its numbers are checked against hand-written SQL.

mod common;

use common::Server;

fn explain(s: &Server, mdx: &str, extra: &[&str]) -> (String, i32) {
    let out = std::process::Command::new(common::datakube_bin())
        .arg("--data-dir")
        .arg(&s.data_dir)
        .arg("--cube-definitions")
        .arg(common::repo_root().join("cube-definitions"))
        .arg("explain")
        .args(extra)
        .arg(mdx)
        .output()
        .expect("run datakube explain");
    (
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn explain_prints_axes_calculations_row_scope_and_sql() {
    let s = Server::start();
    let mdx = "WITH MEMBER [Measures].[Dobbelt] AS [Measures].[Antal borgere] * 2 \
SELECT {[Measures].[Antal borgere], [Measures].[Dobbelt]} ON COLUMNS, \
NON EMPTY [Kommune].[Geografi].[Region].Members ON ROWS FROM [Befolkning] WHERE ([Tid].[Kalender].[År].&[2024])";
    let (text, code) = explain(&s, mdx, &["--kommune", "751"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("cube: [Befolkning]"), "{text}");
    assert!(text.contains("row scope: kommunekode in [751]"), "{text}");
    assert!(text.contains("calculated: MEMBER [Measures].[Dobbelt]"), "{text}");
    assert!(text.contains("slicer: [Tid].[Kalender].[År].&[2024]"), "{text}");
    // For Aarhus's analyst the other regions are not members at all (member scope): one region.
    assert!(text.contains("1 tuples, 1 after NON EMPTY"), "{text}");
    assert!(text.contains("[Kommune].[Geografi].[Region].&[1082]"), "{text}");
    // Every statement carries the row scope, and there is one per level combination.
    let sql: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("sql: ")).collect();
    assert!(!sql.is_empty(), "{text}");
    for l in &sql {
        assert!(l.contains("\"kommunekode\" IN (751)"), "row scope missing: {l}");
    }
    assert!(text.contains("ran: "), "{text}");
    // Unknown names fail with exit code 2 and the message.
    let (text, code) = explain(&s, "SELECT [Nope].Members ON 0 FROM [Befolkning]", &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("[Nope]"), "{text}");
}
