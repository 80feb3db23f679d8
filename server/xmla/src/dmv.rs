//! DMV statements: the SQL-like `SELECT … FROM $SYSTEM.<rowset>` that Power Query's Analysis
//! Services connector (Power BI Import, Excel "Get Data"), DAX Studio and SSMS send through XMLA
//! `Execute` instead of a Discover.
//!
//! The dialect is SSAS's (its data-mining SELECT), cut to what clients send:
//!
//! ```text
//! SELECT [DISTINCT] [TOP n] * | column [, column …]
//! FROM $SYSTEM.rowset | SYSTEMRESTRICTSCHEMA($SYSTEM.rowset, restriction = value [, …])
//! [WHERE condition] [ORDER BY column | ordinal [ASC | DESC] [, …]] [;]
//! ```
//!
//! - Names are bare (`CUBE_NAME`) or bracketed (`[CUBE_NAME]`, `[$System].[MDSCHEMA_CUBES]`),
//!   case-insensitive; the answer uses the rowset's own spelling. Comments `--`, `//`, `/* */`.
//! - A condition is `column op value` (op `=`, `<>`, `!=`, `<`, `<=`, `>`, `>=`; value `'text'`,
//!   a number, `TRUE`/`FALSE` or `@Param` from the request's `<Parameters>`, whose name matches
//!   case-insensitively with or without `@`), `LEN(column) op n`, `column IS [NOT] NULL` or a
//!   bare boolean column (`[MEASURE_IS_VISIBLE]`), combined with `AND`, `OR`, `NOT` and
//!   parentheses. The value is read as the column's schema type (`[CUBE_SOURCE] = '1'` is a
//!   number). Text compares case-insensitively. A NULL (absent) cell equals nothing, so `<>`
//!   holds for it and `<`/`>` do not; `LEN` of NULL is 0.
//! - `SYSTEMRESTRICTSCHEMA` passes XMLA restrictions as a Discover would (`TREE_OP` etc.).
//!
//! The rows come from the Discover code ([`discover::rows`]) and are then filtered, sorted and
//! projected, so a DMV answers exactly what the Discover of the same rowset does. Top-level
//! `column = value` conditions on restriction columns are also passed down as restrictions so
//! that large rowsets (members) are not built whole; the WHERE is still applied to the rows.
//! Errors name the problem and its line and column in the statement.

use std::cmp::Ordering;

use crate::discover::{self, Context, Fault};
use crate::response::codes;
use crate::rowset::{Column, Value, XsdType, write_rowset};
use crate::rowsets::{self, ROWSETS, RowsetDef};
use crate::soap::{Discover, Properties, Restriction};

/// Whether `statement` is a DMV: a SELECT whose FROM names `$SYSTEM.<rowset>` (optionally inside
/// `SYSTEMRESTRICTSCHEMA(…)`), bare or bracketed, in any case. MDX never has that FROM.
pub fn is_dmv(statement: &str) -> bool {
    // Lexing stops at the first malformed token; a FROM before it still counts.
    let (toks, _) = lex(statement);
    if !toks.first().is_some_and(|t| t.is_word("SELECT")) {
        return false;
    }
    toks.iter().enumerate().any(|(n, t)| {
        if !t.is_word("FROM") {
            return false;
        }
        let mut rest = &toks[n + 1..];
        if rest.len() >= 2 && rest[0].is_word("SYSTEMRESTRICTSCHEMA") && rest[1].tok == Tok::Sym("(") {
            rest = &rest[2..];
        }
        rest.len() >= 2 && rest[0].is_system() && rest[1].tok == Tok::Sym(".")
    })
}

/// Answer a DMV statement with a rowset `<root>` holding the selected columns, in SELECT order,
/// with their schema types.
pub fn execute(statement: &str, params: &[(String, String)], ctx: &Context) -> Result<String, Fault> {
    let (toks, lex_error) = lex(statement);
    if let Some((pos, message)) = lex_error {
        return Err(syntax(statement, pos, &message));
    }
    let q = Parser {
        src: statement,
        toks,
        at: 0,
    }
    .query()?;
    let (rowset_name, rowset_pos) = &q.rowset;
    let def = rowsets::find(rowset_name).ok_or_else(|| {
        Fault::new(
            codes::UNSUPPORTED_ROWSET,
            format!(
                "DMV statement error at {}: the schema rowset $SYSTEM.{rowset_name} is not supported; supported: {}",
                at(statement, *rowset_pos),
                ROWSETS.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let b = Binder {
        src: statement,
        def,
        params,
    };

    let select: Vec<usize> = match &q.columns {
        None => (0..def.columns.len()).collect(),
        Some(cols) => {
            let mut select = Vec::with_capacity(cols.len());
            for (name, pos) in cols {
                let i = b.column(name, *pos)?;
                if select.contains(&i) {
                    return Err(b.error(*pos, format!("the column {} is selected twice", def.columns[i].name)));
                }
                select.push(i);
            }
            select
        }
    };
    let mut order = Vec::with_capacity(q.order.len());
    for (key, pos, desc) in &q.order {
        let i = match key {
            OrderKey::Column(name) => b.column(name, *pos)?,
            OrderKey::Ordinal(n) => match n.checked_sub(1).and_then(|k| select.get(k)) {
                Some(&i) => i,
                None => {
                    return Err(b.error(
                        *pos,
                        format!("ORDER BY {n}: the SELECT list has {} columns", select.len()),
                    ));
                }
            },
        };
        order.push((i, *desc));
    }

    let mut restrictions = b.restrictions(&q.restrictions)?;
    let cond = q.filter.as_ref().map(|e| b.bind(e)).transpose()?;
    if let Some(c) = &cond {
        push_down(def, c, &mut restrictions);
    }
    let req = Discover {
        request_type: def.name.to_string(),
        restrictions,
        properties: Properties::default(),
    };
    let (_, rows) = discover::rows(&req, ctx)?;

    let rows: Vec<Vec<Value>> = match &cond {
        Some(c) => rows.into_iter().filter(|r| eval(c, r)).collect(),
        None => rows,
    };
    let rows = if order.is_empty() {
        rows
    } else {
        let mut keyed: Vec<(Vec<Option<Key>>, Vec<Value>)> = rows
            .into_iter()
            .map(|r| (order.iter().map(|(i, _)| cell_key(&r[*i])).collect(), r))
            .collect();
        keyed.sort_by(|(a, _), (b, _)| {
            for (k, (_, desc)) in order.iter().enumerate() {
                let o = cmp_cells(&a[k], &b[k]);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        keyed.into_iter().map(|(_, r)| r).collect()
    };
    let mut out: Vec<Vec<Value>> = Vec::with_capacity(rows.len());
    for r in rows {
        if q.top.is_some_and(|n| out.len() >= n) {
            break;
        }
        let projected: Vec<Value> = select.iter().map(|&i| r[i].clone()).collect();
        if q.distinct && out.contains(&projected) {
            continue;
        }
        out.push(projected);
    }
    let columns: Vec<Column> = select.iter().map(|&i| def.columns[i]).collect();
    Ok(write_rowset(&columns, &out))
}

// ---------------------------------------------------------------------------------------
// Positions and faults
// ---------------------------------------------------------------------------------------

/// `line L, column C` (1-based, in characters) of byte offset `pos` in `src`.
fn at(src: &str, pos: usize) -> String {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let column = before[line_start..].chars().count() + 1;
    format!("line {line}, column {column}")
}

fn syntax(src: &str, pos: usize, message: &str) -> Fault {
    Fault::new(
        codes::MDX_SYNTAX,
        format!("DMV syntax error at {}: {message}", at(src, pos)),
    )
}

// ---------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word: keyword, column name or `$SYSTEM`.
    Word(String),
    /// A `[bracketed]` name (`]]` stands for `]`).
    Name(String),
    /// A `'text'` literal (`''` stands for `'`).
    Text(String),
    /// `"…"`: not part of the dialect; lexed whole so that MDX strings are skipped by `is_dmv`.
    DoubleQuoted,
    /// Digits with an optional fraction, as written.
    Number(String),
    /// `@name`, without the `@`.
    Param(String),
    Sym(&'static str),
    Other(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offsets in the statement.
    start: usize,
    end: usize,
}

impl Token {
    fn is_word(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
    fn is_system(&self) -> bool {
        matches!(&self.tok, Tok::Word(w) | Tok::Name(w) if w.eq_ignore_ascii_case("$system"))
    }
}

const SYMBOLS: &[&str] = &["<>", "!=", "<=", ">=", "=", "<", ">", ",", ".", "(", ")", "*", ";", "-"];

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Text quoted from `start` (the opening quote) to `close`, a doubled `close` standing for
/// itself; returns the text and the offset after the closing quote, or None if unterminated.
fn quoted(src: &str, start: usize, close: char) -> Option<(String, usize)> {
    let mut text = String::new();
    let mut j = start + 1;
    loop {
        let n = src[j..].find(close)?;
        text.push_str(&src[j..j + n]);
        j += n + close.len_utf8();
        if src[j..].starts_with(close) {
            text.push(close);
            j += close.len_utf8();
        } else {
            return Some((text, j));
        }
    }
}

/// The tokens of `src`, and the position and message of the first malformed one (lexing stops
/// there).
fn lex(src: &str) -> (Vec<Token>, Option<(usize, String)>) {
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        let start = i;
        let rest = &src[i..];
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if rest.starts_with("--") || rest.starts_with("//") {
            i = rest.find('\n').map_or(src.len(), |n| i + n);
            continue;
        }
        if let Some(comment) = rest.strip_prefix("/*") {
            match comment.find("*/") {
                Some(n) => i += n + 4,
                None => return (toks, Some((start, "unterminated /* comment".into()))),
            }
            continue;
        }
        let tok = match c {
            '[' | '\'' | '"' => {
                let close = if c == '[' { ']' } else { c };
                let Some((text, end)) = quoted(src, i, close) else {
                    let what = match c {
                        '[' => "unterminated [name]: no closing ]",
                        '\'' => "unterminated 'text': no closing '",
                        _ => "unterminated \"text\": no closing \"",
                    };
                    return (toks, Some((start, what.into())));
                };
                i = end;
                match c {
                    '[' => Tok::Name(text),
                    '\'' => Tok::Text(text),
                    _ => Tok::DoubleQuoted,
                }
            }
            '@' => {
                let n = rest[1..].find(|c: char| !is_word_char(c)).unwrap_or(rest.len() - 1);
                if n == 0 {
                    i += 1;
                    Tok::Other('@')
                } else {
                    i += 1 + n;
                    Tok::Param(rest[1..1 + n].to_string())
                }
            }
            c if c.is_ascii_digit() => {
                let mut n = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
                if rest[n..].starts_with('.') && rest[n + 1..].starts_with(|c: char| c.is_ascii_digit()) {
                    n += 1 + rest[n + 1..]
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(rest.len() - n - 1);
                }
                i += n;
                Tok::Number(rest[..n].to_string())
            }
            c if is_word_start(c) => {
                let n = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
                i += n;
                Tok::Word(rest[..n].to_string())
            }
            _ => match SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
                Some(s) => {
                    i += s.len();
                    Tok::Sym(s)
                }
                None => {
                    i += c.len_utf8();
                    Tok::Other(c)
                }
            },
        };
        toks.push(Token { tok, start, end: i });
    }
    (toks, None)
}

// ---------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------

/// Words that cannot be bare column names.
const RESERVED: &[&str] = &[
    "SELECT", "DISTINCT", "TOP", "FROM", "WHERE", "AND", "OR", "NOT", "ORDER", "BY", "ASC", "DESC", "IS", "NULL",
    "TRUE", "FALSE",
];
/// SQL that the DMV dialect does not have, named in the fault.
const UNSUPPORTED: &[&str] = &[
    "LIKE", "IN", "BETWEEN", "JOIN", "GROUP", "HAVING", "UNION", "AS", "CAST", "CONVERT",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// The operator with its operands swapped (`1 < x` is `x > 1`).
    fn flipped(self) -> Op {
        match self {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            o => o,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(String),
    /// The value and its text as written.
    Number(f64, String),
    Bool(bool),
    Param(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Column(String),
    Len(String),
    Literal(Literal),
    Null,
}

#[derive(Debug, Clone)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        lhs: (Operand, usize),
        op: Op,
        op_pos: usize,
        rhs: (Operand, usize),
    },
    IsNull {
        column: String,
        pos: usize,
        negated: bool,
    },
    /// A bare boolean column.
    Truthy {
        column: String,
        pos: usize,
    },
}

enum OrderKey {
    Column(String),
    /// 1-based position in the SELECT list.
    Ordinal(usize),
}

struct Query {
    distinct: bool,
    top: Option<usize>,
    /// None for `*`.
    columns: Option<Vec<(String, usize)>>,
    rowset: (String, usize),
    /// SYSTEMRESTRICTSCHEMA arguments: name, value, position of the name.
    restrictions: Vec<(String, Literal, usize)>,
    filter: Option<Expr>,
    order: Vec<(OrderKey, usize, bool)>,
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.at)
    }
    /// Where the current token starts (the end of the statement after the last one).
    fn pos(&self) -> usize {
        self.peek().map_or(self.src.len(), |t| t.start)
    }
    /// The current token as written, for messages.
    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("'{}'", &self.src[t.start..t.end]),
            None => "the end of the statement".into(),
        }
    }
    fn error<T>(&self, expected: &str) -> Result<T, Fault> {
        Err(syntax(
            self.src,
            self.pos(),
            &format!("expected {expected}, found {}", self.found()),
        ))
    }
    fn is_word(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| t.is_word(kw))
    }
    fn eat_word(&mut self, kw: &str) -> bool {
        let hit = self.is_word(kw);
        self.at += usize::from(hit);
        hit
    }
    fn expect_word(&mut self, kw: &str) -> Result<(), Fault> {
        if self.eat_word(kw) { Ok(()) } else { self.error(kw) }
    }
    fn is_sym(&self, s: &str) -> bool {
        self.peek().is_some_and(|t| matches!(t.tok, Tok::Sym(x) if x == s))
    }
    fn eat_sym(&mut self, s: &str) -> bool {
        let hit = self.is_sym(s);
        self.at += usize::from(hit);
        hit
    }
    fn expect_sym(&mut self, s: &str) -> Result<(), Fault> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            self.error(&format!("'{s}'"))
        }
    }
    fn unsupported_here(&self) -> Option<Fault> {
        let t = self.peek()?;
        let Tok::Word(w) = &t.tok else { return None };
        UNSUPPORTED.iter().find(|u| u.eq_ignore_ascii_case(w)).map(|u| {
            syntax(
                self.src,
                t.start,
                &format!("{u} is not supported in DMV statements (SELECT [DISTINCT] [TOP n] … FROM $SYSTEM.<rowset> [WHERE …] [ORDER BY …])"),
            )
        })
    }

    /// A column or rowset name: `[bracketed]` or a bare word that is not a keyword.
    fn name(&mut self, what: &str) -> Result<(String, usize), Fault> {
        let Some(t) = self.peek() else { return self.error(what) };
        let out = match &t.tok {
            Tok::Name(n) => (n.clone(), t.start),
            Tok::Word(w) if !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(w)) => (w.clone(), t.start),
            _ => return self.error(what),
        };
        self.at += 1;
        Ok(out)
    }

    fn query(mut self) -> Result<Query, Fault> {
        self.expect_word("SELECT")?;
        let distinct = self.eat_word("DISTINCT");
        let top = if self.eat_word("TOP") {
            match self.peek().map(|t| &t.tok) {
                Some(Tok::Number(n)) if n.parse::<usize>().is_ok() => {
                    let n = n.parse().unwrap_or(0);
                    self.at += 1;
                    Some(n)
                }
                _ => return self.error("a whole number after TOP"),
            }
        } else {
            None
        };
        let columns = if self.eat_sym("*") {
            None
        } else {
            let mut cols = vec![self.name("* or a column name")?];
            while self.eat_sym(",") {
                cols.push(self.name("a column name")?);
            }
            Some(cols)
        };
        if let Some(f) = self.unsupported_here() {
            return Err(f);
        }
        self.expect_word("FROM")?;
        let mut restrictions = Vec::new();
        let rowset = if self.eat_word("SYSTEMRESTRICTSCHEMA") {
            self.expect_sym("(")?;
            let rowset = self.rowset()?;
            while self.eat_sym(",") {
                let (name, pos) = self.name("a restriction name")?;
                self.expect_sym("=")?;
                let value = match self.operand()? {
                    (Operand::Literal(l), _) => l,
                    _ => {
                        return Err(syntax(
                            self.src,
                            pos,
                            &format!("the restriction {name} needs a value: 'text', a number or @Param"),
                        ));
                    }
                };
                restrictions.push((name, value, pos));
            }
            self.expect_sym(")")?;
            rowset
        } else {
            self.rowset()?
        };
        let filter = if self.eat_word("WHERE") {
            Some(self.or_expr()?)
        } else {
            None
        };
        let mut order = Vec::new();
        if self.eat_word("ORDER") {
            self.expect_word("BY")?;
            loop {
                let pos = self.pos();
                let key = match self.peek().map(|t| &t.tok) {
                    Some(Tok::Number(n)) => {
                        let n = n
                            .parse()
                            .map_err(|_| syntax(self.src, pos, "expected a column number"))?;
                        self.at += 1;
                        OrderKey::Ordinal(n)
                    }
                    _ => OrderKey::Column(self.name("a column name or number")?.0),
                };
                let desc = if self.eat_word("DESC") {
                    true
                } else {
                    self.eat_word("ASC");
                    false
                };
                order.push((key, pos, desc));
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        self.eat_sym(";");
        if let Some(f) = self.unsupported_here() {
            return Err(f);
        }
        if self.peek().is_some() {
            let expected = match (&filter, order.is_empty()) {
                (None, true) => "WHERE, ORDER BY or the end of the statement",
                (Some(_), true) => "AND, OR, ORDER BY or the end of the statement",
                (_, false) => "',' or the end of the statement",
            };
            return self.error(expected);
        }
        Ok(Query {
            distinct,
            top,
            columns,
            rowset,
            restrictions,
            filter,
            order,
        })
    }

    /// `$SYSTEM.<rowset>`.
    fn rowset(&mut self) -> Result<(String, usize), Fault> {
        if !self.peek().is_some_and(Token::is_system) {
            return self.error("$SYSTEM.<rowset>");
        }
        self.at += 1;
        self.expect_sym(".")?;
        self.name("a schema rowset name after $SYSTEM.")
    }

    fn or_expr(&mut self) -> Result<Expr, Fault> {
        let mut parts = vec![self.and_expr()?];
        while self.eat_word("OR") {
            parts.push(self.and_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, Fault> {
        let mut parts = vec![self.not_expr()?];
        while self.eat_word("AND") {
            parts.push(self.not_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn not_expr(&mut self) -> Result<Expr, Fault> {
        if self.eat_word("NOT") {
            return Ok(Expr::Not(Box::new(self.not_expr()?)));
        }
        if self.eat_sym("(") {
            let e = self.or_expr()?;
            self.expect_sym(")")?;
            return Ok(e);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, Fault> {
        let (lhs, lpos) = self.operand()?;
        if let Some(f) = self.unsupported_here() {
            return Err(f);
        }
        if self.eat_word("IS") {
            let negated = self.eat_word("NOT");
            self.expect_word("NULL")?;
            return match lhs {
                Operand::Column(column) => Ok(Expr::IsNull {
                    column,
                    pos: lpos,
                    negated,
                }),
                _ => Err(syntax(self.src, lpos, "IS NULL needs a column before it")),
            };
        }
        let op_pos = self.pos();
        let op = match self.peek().map(|t| &t.tok) {
            Some(Tok::Sym("=")) => Some(Op::Eq),
            Some(Tok::Sym("<>" | "!=")) => Some(Op::Ne),
            Some(Tok::Sym("<")) => Some(Op::Lt),
            Some(Tok::Sym("<=")) => Some(Op::Le),
            Some(Tok::Sym(">")) => Some(Op::Gt),
            Some(Tok::Sym(">=")) => Some(Op::Ge),
            _ => None,
        };
        match (op, lhs) {
            (Some(op), lhs) => {
                self.at += 1;
                let rhs = self.operand()?;
                Ok(Expr::Compare {
                    lhs: (lhs, lpos),
                    op,
                    op_pos,
                    rhs,
                })
            }
            (None, Operand::Column(column)) => Ok(Expr::Truthy { column, pos: lpos }),
            (None, _) => self.error("a comparison (=, <>, <, <=, >, >=)"),
        }
    }

    fn operand(&mut self) -> Result<(Operand, usize), Fault> {
        let pos = self.pos();
        let Some(t) = self.peek().cloned() else {
            return self.error("a column or a value");
        };
        let operand = match t.tok {
            Tok::Name(n) => Operand::Column(n),
            Tok::Text(s) => Operand::Literal(Literal::Text(s)),
            Tok::Param(p) => Operand::Literal(Literal::Param(p)),
            Tok::Number(n) => Operand::Literal(Literal::Number(n.parse().unwrap_or(f64::NAN), n)),
            Tok::Sym("-") => {
                self.at += 1;
                match self.peek().map(|t| &t.tok) {
                    Some(Tok::Number(n)) => {
                        let text = format!("-{n}");
                        Operand::Literal(Literal::Number(text.parse().unwrap_or(f64::NAN), text))
                    }
                    _ => return self.error("a number after '-'"),
                }
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("TRUE") => Operand::Literal(Literal::Bool(true)),
            Tok::Word(w) if w.eq_ignore_ascii_case("FALSE") => Operand::Literal(Literal::Bool(false)),
            Tok::Word(w) if w.eq_ignore_ascii_case("NULL") => Operand::Null,
            Tok::Word(w)
                if w.eq_ignore_ascii_case("LEN")
                    && self.toks.get(self.at + 1).is_some_and(|t| t.tok == Tok::Sym("(")) =>
            {
                self.at += 2;
                let (column, _) = self.name("a column name inside LEN( )")?;
                self.expect_sym(")")?;
                return Ok((Operand::Len(column), pos));
            }
            Tok::Word(w) if !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&w)) => {
                if self.toks.get(self.at + 1).is_some_and(|t| t.tok == Tok::Sym("(")) {
                    return Err(syntax(
                        self.src,
                        pos,
                        &format!("the function {w}( ) is not supported in DMV statements; LEN( ) is"),
                    ));
                }
                Operand::Column(w)
            }
            _ => return self.error("a column or a value"),
        };
        self.at += 1;
        Ok((operand, pos))
    }
}

// ---------------------------------------------------------------------------------------
// Binding: names to columns, values to the columns' types
// ---------------------------------------------------------------------------------------

/// A comparable value: text lower-cased (comparisons are case-insensitive), numbers as f64.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Bool(bool),
    Num(f64),
    Text(String),
}

impl Key {
    fn text(&self) -> String {
        match self {
            Key::Bool(b) => b.to_string(),
            Key::Num(n) => crate::format_double(*n),
            Key::Text(s) => s.clone(),
        }
    }
}

fn cell_key(v: &Value) -> Option<Key> {
    match v {
        Value::Null | Value::Restrictions(_) => None,
        Value::Str(s) => Some(Key::Text(s.to_lowercase())),
        Value::Bool(b) => Some(Key::Bool(*b)),
        Value::Int(n) => Some(Key::Num(*n as f64)),
        Value::Double(d) => Some(Key::Num(*d)),
    }
}

fn cmp_keys(a: &Key, b: &Key) -> Ordering {
    match (a, b) {
        (Key::Bool(x), Key::Bool(y)) => x.cmp(y),
        (Key::Num(x), Key::Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Key::Text(x), Key::Text(y)) => x.cmp(y),
        _ => a.text().cmp(&b.text()),
    }
}

/// NULLs first, as SQL Server sorts them ascending.
fn cmp_cells(a: &Option<Key>, b: &Option<Key>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => cmp_keys(x, y),
    }
}

#[derive(Debug)]
enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Compare {
        col: usize,
        /// Compare `LEN(col)` instead of the cell.
        len: bool,
        op: Op,
        key: Key,
        /// The value as a restriction, when it can be passed down to the Discover.
        push: Option<String>,
    },
    IsNull {
        col: usize,
        negated: bool,
    },
    Truthy {
        col: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ColKind {
    Text,
    Number,
    Bool,
    Nested,
}

fn col_kind(t: XsdType) -> ColKind {
    match t {
        XsdType::String | XsdType::DateTime | XsdType::Uuid => ColKind::Text,
        XsdType::Boolean => ColKind::Bool,
        XsdType::Int
        | XsdType::UnsignedInt
        | XsdType::Short
        | XsdType::UnsignedShort
        | XsdType::Long
        | XsdType::UnsignedLong
        | XsdType::Double => ColKind::Number,
        XsdType::Restrictions => ColKind::Nested,
    }
}

struct Binder<'a> {
    src: &'a str,
    def: &'static RowsetDef,
    params: &'a [(String, String)],
}

impl Binder<'_> {
    fn error(&self, pos: usize, message: String) -> Fault {
        Fault::new(
            codes::BAD_RESTRICTION,
            format!("DMV statement error at {}: {message}", at(self.src, pos)),
        )
    }

    fn restriction_names(&self) -> String {
        self.def
            .restrictions
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The index of column `name` in the rowset.
    fn column(&self, name: &str, pos: usize) -> Result<usize, Fault> {
        if let Some(i) = self.def.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)) {
            return Ok(i);
        }
        let def = self.def;
        if let Some((r, _)) = def.restrictions.iter().find(|(r, _)| r.eq_ignore_ascii_case(name)) {
            return Err(self.error(
                pos,
                format!(
                    "{r} is a restriction of {}, not one of its columns; pass it as SYSTEMRESTRICTSCHEMA($SYSTEM.{}, {r} = 'value')",
                    def.name, def.name
                ),
            ));
        }
        Err(self.error(
            pos,
            format!(
                "{} has no column '{name}'; its columns are: {}",
                def.name,
                def.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
            ),
        ))
    }

    /// A literal with `@Param` replaced by the parameter's value (as text).
    fn resolve(&self, lit: &Literal, pos: usize) -> Result<Literal, Fault> {
        let Literal::Param(name) = lit else {
            return Ok(lit.clone());
        };
        let bare = |n: &str| n.trim().trim_start_matches('@').to_string();
        let wanted = bare(name);
        match self
            .params
            .iter()
            .rev()
            .find(|(n, _)| bare(n).eq_ignore_ascii_case(&wanted))
        {
            Some((_, v)) => Ok(Literal::Text(v.clone())),
            None => Err(self.error(
                pos,
                format!(
                    "the parameter @{wanted} has no value; the request's <Parameters> are: {}",
                    if self.params.is_empty() {
                        "(none)".to_string()
                    } else {
                        self.params.iter().map(|(n, _)| bare(n)).collect::<Vec<_>>().join(", ")
                    }
                ),
            )),
        }
    }

    /// SYSTEMRESTRICTSCHEMA arguments as Discover restrictions.
    fn restrictions(&self, args: &[(String, Literal, usize)]) -> Result<Vec<Restriction>, Fault> {
        let mut out: Vec<Restriction> = Vec::new();
        for (name, lit, pos) in args {
            let Some((canonical, _)) = self.def.restrictions.iter().find(|(r, _)| r.eq_ignore_ascii_case(name)) else {
                return Err(self.error(
                    *pos,
                    format!(
                        "{} has no restriction '{name}'; its restrictions are: {}",
                        self.def.name,
                        self.restriction_names()
                    ),
                ));
            };
            let value = match self.resolve(lit, *pos)? {
                Literal::Text(s) => s,
                Literal::Number(_, raw) => raw,
                Literal::Bool(b) => b.to_string(),
                Literal::Param(_) => unreachable!("resolved above"),
            };
            match out.iter_mut().find(|r| r.name == *canonical) {
                Some(r) => r.values.push(value),
                None => out.push(Restriction {
                    name: canonical.to_string(),
                    values: vec![value],
                }),
            }
        }
        Ok(out)
    }

    /// `lit` read as a value of a column of kind `kind`, and its text for a restriction.
    fn key(&self, kind: ColKind, column: &str, lit: &Literal, pos: usize) -> Result<(Key, Option<String>), Fault> {
        let lit = self.resolve(lit, pos)?;
        let shown = match &lit {
            Literal::Text(s) => format!("'{s}'"),
            Literal::Number(_, raw) => raw.clone(),
            Literal::Bool(b) => b.to_string().to_uppercase(),
            Literal::Param(_) => String::new(),
        };
        let integral = |n: f64| (n.is_finite() && n.fract() == 0.0).then(|| format!("{}", n as i64));
        match kind {
            ColKind::Text => Ok(match lit {
                Literal::Text(s) => (Key::Text(s.to_lowercase()), s.is_ascii().then_some(s)),
                Literal::Number(_, raw) => (Key::Text(raw.to_lowercase()), Some(raw)),
                Literal::Bool(b) => (Key::Text(b.to_string()), None),
                Literal::Param(_) => unreachable!("resolved above"),
            }),
            ColKind::Number => {
                let n = match &lit {
                    Literal::Number(n, _) => Some(*n),
                    Literal::Text(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                match n {
                    Some(n) if !n.is_nan() => Ok((Key::Num(n), integral(n))),
                    _ => Err(self.error(pos, format!("{column} holds numbers; {shown} is not a number"))),
                }
            }
            ColKind::Bool => {
                let b = match &lit {
                    Literal::Bool(b) => Some(*b),
                    Literal::Number(n, _) if *n == 0.0 || *n == 1.0 => Some(*n == 1.0),
                    Literal::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" => Some(true),
                        "false" | "0" => Some(false),
                        _ => None,
                    },
                    _ => None,
                };
                match b {
                    Some(b) => Ok((Key::Bool(b), None)),
                    None => Err(self.error(pos, format!("{column} is true or false; {shown} is neither"))),
                }
            }
            ColKind::Nested => Err(self.error(pos, format!("{column} holds nested rows and cannot be compared"))),
        }
    }

    fn bind(&self, e: &Expr) -> Result<Cond, Fault> {
        Ok(match e {
            Expr::And(parts) => Cond::And(parts.iter().map(|p| self.bind(p)).collect::<Result<_, _>>()?),
            Expr::Or(parts) => Cond::Or(parts.iter().map(|p| self.bind(p)).collect::<Result<_, _>>()?),
            Expr::Not(inner) => Cond::Not(Box::new(self.bind(inner)?)),
            Expr::IsNull { column, pos, negated } => Cond::IsNull {
                col: self.column(column, *pos)?,
                negated: *negated,
            },
            Expr::Truthy { column, pos } => {
                let col = self.column(column, *pos)?;
                let c = &self.def.columns[col];
                if col_kind(c.ty) != ColKind::Bool {
                    return Err(self.error(
                        *pos,
                        format!(
                            "{} is not a true/false column; compare it with a value ({} = …)",
                            c.name, c.name
                        ),
                    ));
                }
                Cond::Truthy { col }
            }
            Expr::Compare { lhs, op, op_pos, rhs } => {
                // Column on the left: `'x' = [C]` is `[C] = 'x'`.
                let (lhs, op, rhs) = match (&lhs.0, &rhs.0) {
                    (Operand::Literal(_) | Operand::Null, Operand::Column(_) | Operand::Len(_)) => {
                        (rhs, op.flipped(), lhs)
                    }
                    _ => (lhs, *op, rhs),
                };
                let (column, len) = match &lhs.0 {
                    Operand::Column(c) => (c, false),
                    Operand::Len(c) => (c, true),
                    _ => return Err(self.error(lhs.1, "a comparison needs a column on one side".into())),
                };
                let col = self.column(column, lhs.1)?;
                let c = &self.def.columns[col];
                let lit = match &rhs.0 {
                    Operand::Literal(l) => l,
                    Operand::Null => {
                        return Err(self.error(
                            rhs.1,
                            format!("compare with NULL using {} IS NULL or IS NOT NULL", c.name),
                        ));
                    }
                    Operand::Column(_) | Operand::Len(_) => {
                        return Err(self.error(
                            *op_pos,
                            "comparing two columns is not supported; compare a column with a value".into(),
                        ));
                    }
                };
                let kind = col_kind(c.ty);
                let (key, push) = if len {
                    if kind == ColKind::Nested {
                        return Err(self.error(lhs.1, format!("{} holds nested rows and has no length", c.name)));
                    }
                    (
                        self.key(ColKind::Number, &format!("LEN({})", c.name), lit, rhs.1)?.0,
                        None,
                    )
                } else {
                    self.key(kind, c.name, lit, rhs.1)?
                };
                Cond::Compare {
                    col,
                    len,
                    op,
                    key,
                    push,
                }
            }
        })
    }
}

/// Pass top-level `column = value` conditions on restriction columns down as restrictions (one
/// per name, not over SYSTEMRESTRICTSCHEMA's). The Discover filters as the WHERE does.
fn push_down(def: &RowsetDef, cond: &Cond, restrictions: &mut Vec<Restriction>) {
    let conjuncts: &[Cond] = match cond {
        Cond::And(parts) => parts,
        c => std::slice::from_ref(c),
    };
    for c in conjuncts {
        let Cond::Compare {
            col,
            len: false,
            op: Op::Eq,
            push: Some(value),
            ..
        } = c
        else {
            continue;
        };
        let name = def.columns[*col].name;
        if def.restrictions.iter().any(|(r, _)| *r == name) && !restrictions.iter().any(|r| r.name == name) {
            restrictions.push(Restriction {
                name: name.to_string(),
                values: vec![value.clone()],
            });
        }
    }
}

fn eval(c: &Cond, row: &[Value]) -> bool {
    match c {
        Cond::And(parts) => parts.iter().all(|p| eval(p, row)),
        Cond::Or(parts) => parts.iter().any(|p| eval(p, row)),
        Cond::Not(inner) => !eval(inner, row),
        Cond::IsNull { col, negated } => matches!(row[*col], Value::Null) != *negated,
        Cond::Truthy { col } => matches!(row[*col], Value::Bool(true)),
        Cond::Compare { col, len, op, key, .. } => {
            let cell = if *len {
                let n = match &row[*col] {
                    Value::Null => 0,
                    Value::Str(s) => s.chars().count(),
                    v => cell_key(v).map_or(0, |k| k.text().chars().count()),
                };
                Some(Key::Num(n as f64))
            } else {
                cell_key(&row[*col])
            };
            let Some(cell) = cell else {
                // NULL equals nothing.
                return *op == Op::Ne;
            };
            let o = cmp_keys(&cell, key);
            match op {
                Op::Eq => o == Ordering::Equal,
                Op::Ne => o != Ordering::Equal,
                Op::Lt => o == Ordering::Less,
                Op::Le => o != Ordering::Greater,
                Op::Gt => o == Ordering::Greater,
                Op::Ge => o != Ordering::Less,
            }
        }
    }
}
