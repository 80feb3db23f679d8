//! datakube-mdx: lexer, parser, AST and printer for MDX (Multidimensional Expressions).
//!
//! Entry points: [`parse_statement`] for a whole statement (`SELECT`, `DRILLTHROUGH`,
//! `CREATE`, `DROP`, `REFRESH CUBE`), [`parse_statements`] for a `;`-separated command, and [`parse_expression`] for a single expression such as the formula of a
//! calculated measure. The tree is in [`ast`]; every node prints back as MDX through `Display`.
//!
//! ```
//! use datakube_mdx::{ast::Statement, parse_expression, parse_statement};
//!
//! let st = parse_statement("select {[Measures].[Sales]} on columns from [Sales]").unwrap();
//! assert_eq!(st.to_string(), "SELECT\n  {[Measures].[Sales]} ON COLUMNS\nFROM [Sales]");
//! assert!(matches!(st, Statement::Select(_)));
//!
//! let e = parse_expression("([Measures].[Sales] - [Measures].[Cost]) / [Measures].[Sales]").unwrap();
//! assert!(e.eq_ignore_spans(&parse_expression(&e.to_string()).unwrap()));
//!
//! let err = parse_statement("SELECT {[Measures].[Sales] ON COLUMNS\nFROM [Sales]").unwrap_err();
//! assert_eq!(err.to_string(), "line 1, column 28: expected '}' or ',' in set, found 'ON'");
//! assert_eq!((err.line, err.column, err.offset), (1, 28, 27));
//! ```
//!
//! Robustness: the parser never panics, does no backtracking (one token of lookahead, a few
//! tokens in a handful of places), limits nesting to [`MAX_NESTING`] levels and expression trees to
//! [`MAX_TREE_HEIGHT`], returning a [`ParseError`] instead of overflowing the stack.

pub mod ast;
mod display;
pub mod lexer;
mod parser;

pub use parser::{MAX_NESTING, MAX_TREE_HEIGHT, is_dot_property};

use std::fmt;

/// A syntax error with its position in the source text.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in chars.
    pub column: usize,
    /// Byte offset into the source.
    pub offset: usize,
    /// Human readable message, e.g. `expected ')' but found ','`.
    pub message: String,
    /// What the parser would have accepted at this position (may be empty).
    pub expected: Vec<String>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parse a single MDX expression (value, member, tuple or set expression).
///
/// A trailing `;` is allowed. Example: `([Measures].[Sales] - [Measures].[Cost]) / [Measures].[Sales]`.
pub fn parse_expression(src: &str) -> Result<ast::Expr, ParseError> {
    parser::Parser::new(src)?.parse_standalone_expression()
}

/// Parse one MDX statement; a trailing `;` is allowed.
///
/// Supported: `[WITH ...] SELECT ... FROM ... [WHERE ...] [CELL PROPERTIES ...]` (with
/// subselects), `DRILLTHROUGH`, `CREATE [SESSION] MEMBER|SET|CELL CALCULATION`,
/// `DROP MEMBER|SET` and `REFRESH CUBE`. For several statements in one command see
/// [`parse_statements`].
pub fn parse_statement(src: &str) -> Result<ast::Statement, ParseError> {
    parser::Parser::new(src)?.parse_standalone_statement()
}

/// Parse a command that may hold several statements separated by `;` (as in one XMLA
/// `Execute`), e.g. `CREATE MEMBER [Sales].[Measures].[A] AS 1; CREATE SET [Sales].[S] AS {}`.
///
/// As in SSAS, only `CREATE`, `DROP` and `REFRESH CUBE` statements can be combined; a `SELECT`
/// or `DRILLTHROUGH` must be the only statement (an error otherwise). Empty statements (`;;`)
/// are skipped; at least one statement is required. [`format_statements`] prints the list back.
pub fn parse_statements(src: &str) -> Result<Vec<ast::Statement>, ParseError> {
    parser::Parser::new(src)?.parse_standalone_statements()
}

/// Print statements as one command, separated by `;` and a line break (the inverse of
/// [`parse_statements`]).
pub fn format_statements(statements: &[ast::Statement]) -> String {
    statements.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(";\n")
}
