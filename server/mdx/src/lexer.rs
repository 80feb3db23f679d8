//! Tokenizer for MDX.
//!
//! [`tokenize`] turns source text into [`Token`]s, each with a [`Span`] (byte range plus the
//! 1-based line and character column of its first character). Comments and whitespace are
//! skipped. The token list always ends with a [`TokenKind::Eof`] token.

use crate::ParseError;
use crate::ast::Span;
use std::fmt;

/// Words with a special meaning in MDX. Matching is case-insensitive. Whether a keyword may
/// still be used as a name depends on the position (see the parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Keyword {
    And,
    As,
    Axis,
    Calculation,
    Case,
    Cell,
    Chapters,
    Columns,
    Create,
    Dimension,
    Drillthrough,
    Drop,
    Else,
    Empty,
    End,
    Existing,
    Firstrowset,
    From,
    Is,
    Maxrows,
    Member,
    Non,
    Not,
    Null,
    On,
    Or,
    Pages,
    Properties,
    Return,
    Rows,
    Sections,
    Select,
    Session,
    Set,
    Then,
    When,
    Where,
    With,
    Xor,
}

const KEYWORDS: &[(&str, Keyword)] = &[
    ("AND", Keyword::And),
    ("AS", Keyword::As),
    ("AXIS", Keyword::Axis),
    ("CALCULATION", Keyword::Calculation),
    ("CASE", Keyword::Case),
    ("CELL", Keyword::Cell),
    ("CHAPTERS", Keyword::Chapters),
    ("COLUMNS", Keyword::Columns),
    ("CREATE", Keyword::Create),
    ("DIMENSION", Keyword::Dimension),
    ("DRILLTHROUGH", Keyword::Drillthrough),
    ("DROP", Keyword::Drop),
    ("ELSE", Keyword::Else),
    ("EMPTY", Keyword::Empty),
    ("END", Keyword::End),
    ("EXISTING", Keyword::Existing),
    ("FIRSTROWSET", Keyword::Firstrowset),
    ("FROM", Keyword::From),
    ("IS", Keyword::Is),
    ("MAXROWS", Keyword::Maxrows),
    ("MEMBER", Keyword::Member),
    ("NON", Keyword::Non),
    ("NOT", Keyword::Not),
    ("NULL", Keyword::Null),
    ("ON", Keyword::On),
    ("OR", Keyword::Or),
    ("PAGES", Keyword::Pages),
    ("PROPERTIES", Keyword::Properties),
    ("RETURN", Keyword::Return),
    ("ROWS", Keyword::Rows),
    ("SECTIONS", Keyword::Sections),
    ("SELECT", Keyword::Select),
    ("SESSION", Keyword::Session),
    ("SET", Keyword::Set),
    ("THEN", Keyword::Then),
    ("WHEN", Keyword::When),
    ("WHERE", Keyword::Where),
    ("WITH", Keyword::With),
    ("XOR", Keyword::Xor),
];

impl Keyword {
    /// Look up a word (case-insensitively).
    pub fn lookup(word: &str) -> Option<Keyword> {
        if word.len() > 12 || !word.is_ascii() {
            return None;
        }
        KEYWORDS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(word))
            .map(|(_, kw)| *kw)
    }

    /// Canonical upper-case spelling.
    pub fn as_str(self) -> &'static str {
        KEYWORDS
            .iter()
            .find(|(_, kw)| *kw == self)
            .map(|(k, _)| *k)
            .unwrap_or("?")
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind (and payload) of a token.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// An unquoted word: identifier or keyword. `value` is as written.
    Word {
        value: String,
        keyword: Option<Keyword>,
    },
    /// A bracketed identifier `[...]`; `]]` already unescaped.
    QuotedIdent(String),
    /// A key reference `&[...]` or `&abc`.
    Key(String),
    /// A numeric literal as written.
    Number(String),
    /// A string literal; doubled quotes already unescaped. `single` is true for `'...'`.
    String {
        value: String,
        single: bool,
    },
    /// A parameter `@name`.
    Parameter(String),
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Lt,
    Gt,
    Eq,
    NotEq,
    LtEq,
    GtEq,
    Colon,
    Comma,
    Dot,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Semicolon,
    /// `||` (string concatenation).
    Concat,
    /// End of input.
    Eof,
}

impl TokenKind {
    /// The keyword, if this token is a keyword.
    pub fn keyword(&self) -> Option<Keyword> {
        match self {
            TokenKind::Word { keyword, .. } => *keyword,
            _ => None,
        }
    }

    fn symbol(&self) -> Option<&'static str> {
        Some(match self {
            TokenKind::Plus => "+",
            TokenKind::Minus => "-",
            TokenKind::Star => "*",
            TokenKind::Slash => "/",
            TokenKind::Caret => "^",
            TokenKind::Lt => "<",
            TokenKind::Gt => ">",
            TokenKind::Eq => "=",
            TokenKind::NotEq => "<>",
            TokenKind::LtEq => "<=",
            TokenKind::GtEq => ">=",
            TokenKind::Colon => ":",
            TokenKind::Comma => ",",
            TokenKind::Dot => ".",
            TokenKind::LParen => "(",
            TokenKind::RParen => ")",
            TokenKind::LBrace => "{",
            TokenKind::RBrace => "}",
            TokenKind::Semicolon => ";",
            TokenKind::Concat => "||",
            _ => return None,
        })
    }
}

/// Short description for error messages, e.g. `'FROM'`, `','`, `end of input`.
impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.symbol() {
            return write!(f, "'{s}'");
        }
        match self {
            TokenKind::Word { value, .. } => write!(f, "'{}'", shorten(value)),
            TokenKind::QuotedIdent(v) => write!(f, "'[{}]'", shorten(v)),
            TokenKind::Key(v) => write!(f, "'&[{}]'", shorten(v)),
            TokenKind::Number(v) => write!(f, "'{}'", shorten(v)),
            TokenKind::String { value, .. } => write!(f, "string \"{}\"", shorten(value)),
            TokenKind::Parameter(v) => write!(f, "'@{}'", shorten(v)),
            TokenKind::Eof => f.write_str("end of input"),
            _ => Ok(()),
        }
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        let mut t: String = s.chars().take(37).collect();
        t.push_str("...");
        t
    } else {
        s.to_string()
    }
}

/// A token with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Tokenize a complete source text.
pub fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    tokenize_at(src, 0, 1, 1)
}

/// Tokenize `src`, reporting positions as if it started at byte `base`, line `line` and
/// column `column` of an enclosing text (used for formulas written as strings).
pub(crate) fn tokenize_at(src: &str, base: usize, line: usize, column: usize) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer {
        src,
        pos: 0,
        base,
        line,
        col: column,
        tokens: Vec::new(),
    };
    lx.run()?;
    Ok(lx.tokens)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    base: usize,
    line: usize,
    col: usize,
    tokens: Vec<Token>,
}

#[derive(Clone, Copy)]
struct Mark {
    pos: usize,
    line: usize,
    col: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            line: self.line,
            col: self.col,
        }
    }

    fn span_from(&self, m: Mark) -> Span {
        Span {
            start: self.base + m.pos,
            end: self.base + self.pos,
            line: m.line,
            column: m.col,
        }
    }

    fn error(&self, m: Mark, message: String, expected: Vec<String>) -> ParseError {
        ParseError {
            line: m.line,
            column: m.col,
            offset: self.base + m.pos,
            message,
            expected,
        }
    }

    fn push(&mut self, kind: TokenKind, m: Mark) {
        let span = self.span_from(m);
        self.tokens.push(Token { kind, span });
    }

    /// Whether a `.` here could start a number like `.5` (rather than a member access).
    fn dot_may_start_number(&self) -> bool {
        match self.tokens.last().map(|t| &t.kind) {
            None => true,
            // `CELL CALCULATION c FOR .5 AS ...`: FOR is a contextual word, not a keyword.
            Some(TokenKind::Word { value, keyword: None }) if value.eq_ignore_ascii_case("FOR") => true,
            Some(
                TokenKind::Word { keyword: None, .. }
                | TokenKind::QuotedIdent(_)
                | TokenKind::Key(_)
                | TokenKind::Number(_)
                | TokenKind::String { .. }
                | TokenKind::Parameter(_)
                | TokenKind::RParen
                | TokenKind::RBrace,
            ) => false,
            Some(_) => true,
        }
    }

    fn run(&mut self) -> Result<(), ParseError> {
        loop {
            self.skip_trivia()?;
            let m = self.mark();
            let Some(c) = self.peek() else {
                self.push(TokenKind::Eof, m);
                return Ok(());
            };
            match c {
                '[' => {
                    let v = self.bracketed(m, "identifier")?;
                    self.push(TokenKind::QuotedIdent(v), m);
                }
                '&' => {
                    self.bump();
                    match self.peek() {
                        Some('[') => {
                            let v = self.bracketed(self.mark(), "key")?;
                            self.push(TokenKind::Key(v), m);
                        }
                        Some(c) if is_ident_continue(c) || c == '-' => {
                            let start = self.pos;
                            self.bump();
                            while self.peek().is_some_and(is_ident_continue) {
                                self.bump();
                            }
                            let v = self.src[start..self.pos].to_string();
                            self.push(TokenKind::Key(v), m);
                        }
                        _ => {
                            return Err(self.error(
                                m,
                                "expected '[' or a key value after '&'".into(),
                                vec!["'['".into(), "key".into()],
                            ));
                        }
                    }
                }
                '"' | '\'' => {
                    let v = self.string(m, c)?;
                    self.push(
                        TokenKind::String {
                            value: v,
                            single: c == '\'',
                        },
                        m,
                    );
                }
                '@' => {
                    self.bump();
                    let start = self.pos;
                    while self.peek().is_some_and(is_ident_continue) {
                        self.bump();
                    }
                    if start == self.pos {
                        return Err(self.error(m, "expected parameter name after '@'".into(), vec!["name".into()]));
                    }
                    let v = self.src[start..self.pos].to_string();
                    self.push(TokenKind::Parameter(v), m);
                }
                c if c.is_ascii_digit() => self.number(m),
                '.' if self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) && self.dot_may_start_number() => {
                    self.number(m)
                }
                c if is_ident_start(c) => {
                    let start = self.pos;
                    while self.peek().is_some_and(is_ident_continue) {
                        self.bump();
                    }
                    let v = &self.src[start..self.pos];
                    let keyword = Keyword::lookup(v);
                    self.push(
                        TokenKind::Word {
                            value: v.to_string(),
                            keyword,
                        },
                        m,
                    );
                }
                _ => {
                    self.bump();
                    let kind = match c {
                        '+' => TokenKind::Plus,
                        '-' => TokenKind::Minus,
                        '*' => TokenKind::Star,
                        '/' => TokenKind::Slash,
                        '^' => TokenKind::Caret,
                        '=' => TokenKind::Eq,
                        ':' => TokenKind::Colon,
                        ',' => TokenKind::Comma,
                        '.' => TokenKind::Dot,
                        '(' => TokenKind::LParen,
                        ')' => TokenKind::RParen,
                        '{' => TokenKind::LBrace,
                        '}' => TokenKind::RBrace,
                        ';' => TokenKind::Semicolon,
                        '|' if self.peek() == Some('|') => {
                            self.bump();
                            TokenKind::Concat
                        }
                        '<' => match self.peek() {
                            Some('>') => {
                                self.bump();
                                TokenKind::NotEq
                            }
                            Some('=') => {
                                self.bump();
                                TokenKind::LtEq
                            }
                            _ => TokenKind::Lt,
                        },
                        '>' => {
                            if self.peek() == Some('=') {
                                self.bump();
                                TokenKind::GtEq
                            } else {
                                TokenKind::Gt
                            }
                        }
                        _ => {
                            let shown = if c.is_control() {
                                format!("{:?}", c)
                            } else {
                                format!("'{c}'")
                            };
                            return Err(self.error(m, format!("unexpected character {shown}"), vec![]));
                        }
                    };
                    self.push(kind, m);
                }
            }
        }
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() || c == '\u{feff}' => {
                    self.bump();
                }
                Some('-') if self.peek_at(1) == Some('-') => self.skip_line(),
                Some('/') if self.peek_at(1) == Some('/') => self.skip_line(),
                Some('/') if self.peek_at(1) == Some('*') => {
                    let m = self.mark();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(self.error(
                                    m,
                                    "unterminated comment: '/*' has no matching '*/'".into(),
                                    vec!["'*/'".into()],
                                ));
                            }
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            _ => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    /// `[...]` with `]]` escapes; the cursor is on `[`. `m` is where errors point.
    fn bracketed(&mut self, m: Mark, what: &str) -> Result<String, ParseError> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.error(
                        m,
                        format!("unterminated bracketed {what}: '[' has no matching ']'"),
                        vec!["']'".into()],
                    ));
                }
                Some(']') => {
                    if self.peek() == Some(']') {
                        self.bump();
                        out.push(']');
                    } else {
                        return Ok(out);
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn string(&mut self, m: Mark, q: char) -> Result<String, ParseError> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.error(
                        m,
                        format!("unterminated string: {q} has no matching closing {q}"),
                        vec![format!("{q}")],
                    ));
                }
                Some(c) if c == q => {
                    if self.peek() == Some(q) {
                        self.bump();
                        out.push(q);
                    } else {
                        return Ok(out);
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn number(&mut self, m: Mark) {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let exp_digits = match self.peek_at(1) {
                Some(c) if c.is_ascii_digit() => true,
                Some('+' | '-') => self.peek_at(2).is_some_and(|c| c.is_ascii_digit()),
                _ => false,
            };
            if exp_digits {
                self.bump();
                if matches!(self.peek(), Some('+' | '-')) {
                    self.bump();
                }
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
        }
        let v = self.src[start..self.pos].to_string();
        self.push(TokenKind::Number(v), m);
    }
}

/// First character of an unquoted identifier.
pub fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Subsequent characters of an unquoted identifier.
pub fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Whether `s` can be written without brackets (a non-keyword identifier).
pub fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_ident_start(c) => chars.all(is_ident_continue),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        tokenize(src).unwrap().into_iter().map(|t| t.kind).collect()
    }

    fn word(v: &str) -> TokenKind {
        TokenKind::Word {
            value: v.into(),
            keyword: Keyword::lookup(v),
        }
    }

    #[test]
    fn identifiers_keys_and_keywords() {
        assert_eq!(
            kinds("[Kommune].[a]]b].&[751]&752 Bærum sElEcT _x1$"),
            vec![
                TokenKind::QuotedIdent("Kommune".into()),
                TokenKind::Dot,
                TokenKind::QuotedIdent("a]b".into()),
                TokenKind::Dot,
                TokenKind::Key("751".into()),
                TokenKind::Key("752".into()),
                word("Bærum"),
                TokenKind::Word {
                    value: "sElEcT".into(),
                    keyword: Some(Keyword::Select)
                },
                word("_x1$"),
                TokenKind::Eof,
            ]
        );
        assert_eq!(Keyword::lookup("drillthrough"), Some(Keyword::Drillthrough));
        assert_eq!(Keyword::lookup("Members"), None);
    }

    #[test]
    fn numbers_strings_and_parameters() {
        assert_eq!(
            kinds("1 2.5 3e4 5E-2 6e+1, .7 8e 'it''s' \"a\"\"b\" @p"),
            vec![
                TokenKind::Number("1".into()),
                TokenKind::Number("2.5".into()),
                TokenKind::Number("3e4".into()),
                TokenKind::Number("5E-2".into()),
                TokenKind::Number("6e+1".into()),
                TokenKind::Comma,
                TokenKind::Number(".7".into()),
                TokenKind::Number("8".into()),
                word("e"),
                TokenKind::String {
                    value: "it's".into(),
                    single: true
                },
                TokenKind::String {
                    value: "a\"b".into(),
                    single: false
                },
                TokenKind::Parameter("p".into()),
                TokenKind::Eof,
            ]
        );
        // A dot after a name or number is member access, never the start of a number.
        assert_eq!(kinds("[a].5")[1], TokenKind::Dot);
    }

    #[test]
    fn operators_and_comments() {
        assert_eq!(
            kinds("+ - * / ^ < > = <> <= >= : , . ( ) { } ; || -- line\n // line\n /* block\n */ x"),
            vec![
                TokenKind::Plus,
                TokenKind::Minus,
                TokenKind::Star,
                TokenKind::Slash,
                TokenKind::Caret,
                TokenKind::Lt,
                TokenKind::Gt,
                TokenKind::Eq,
                TokenKind::NotEq,
                TokenKind::LtEq,
                TokenKind::GtEq,
                TokenKind::Colon,
                TokenKind::Comma,
                TokenKind::Dot,
                TokenKind::LParen,
                TokenKind::RParen,
                TokenKind::LBrace,
                TokenKind::RBrace,
                TokenKind::Semicolon,
                TokenKind::Concat,
                word("x"),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn spans_have_byte_ranges_and_char_columns() {
        let src = "æ [ø]\n  &[1]";
        let toks = tokenize(src).unwrap();
        let spans: Vec<_> = toks
            .iter()
            .map(|t| (t.span.start, t.span.end, t.span.line, t.span.column))
            .collect();
        assert_eq!(spans, vec![(0, 2, 1, 1), (3, 7, 1, 3), (10, 14, 2, 3), (14, 14, 2, 7)]);
    }

    #[test]
    fn unterminated_tokens_report_the_opening() {
        let e = tokenize("x\n  [abc").unwrap_err();
        assert_eq!((e.line, e.column, e.offset), (2, 3, 4));
        let e = tokenize("x 'abc").unwrap_err();
        assert_eq!((e.line, e.column), (1, 3));
        let e = tokenize("/* x").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        assert!(e.message.contains("unterminated comment"));
    }
}
