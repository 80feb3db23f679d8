//! A positioned YAML node tree, used to turn a path such as `cube/measures/3/column` into a
//! line:column after serde has produced the typed definitions.
//!
//! The tree is built from the event stream of the same parser that serde-saphyr deserializes
//! with (`granit-parser`, re-exported by serde-saphyr), so positions always agree with the
//! positions in deserialization errors.

use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column (columns count characters), plus the byte offset in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
    pub byte: usize,
}

impl Pos {
    /// The position for "somewhere in this file" when nothing better is known.
    pub const START: Pos = Pos {
        line: 1,
        column: 1,
        byte: 0,
    };

    fn from_span(span: &Span) -> Pos {
        let m = span.start;
        Pos {
            line: m.line(),
            column: m.col() + 1,
            byte: m.byte_offset().unwrap_or(0),
        }
    }
}

#[derive(Debug)]
pub(crate) enum NodeKind {
    Scalar {
        value: String,
        style: ScalarStyle,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// An alias (`*name`); its target is not followed.
    Alias,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

/// One step of a path into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root, e.g. `cube/measures/3/column`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct YPath(pub Vec<Seg>);

impl YPath {
    pub fn root() -> YPath {
        YPath(Vec::new())
    }
    /// This path extended by a mapping key.
    pub fn k(&self, key: &str) -> YPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_string()));
        YPath(v)
    }
    /// This path extended by a sequence index.
    pub fn i(&self, index: usize) -> YPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(index));
        YPath(v)
    }
}

impl fmt::Display for YPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, s) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str("/")?;
            }
            match s {
                Seg::Key(k) => f.write_str(k)?,
                Seg::Index(i) => write!(f, "{i}")?,
            }
        }
        Ok(())
    }
}

/// A parsed document: its root node (if any) and the text it came from.
pub(crate) struct Doc<'t> {
    pub text: &'t str,
    pub root: Option<Node>,
}

impl<'t> Doc<'t> {
    /// Builds the node tree. Syntax errors were already reported by the deserializer, so on a
    /// parser error the tree simply stops growing (lookups then fall back to outer nodes).
    pub fn parse(text: &'t str) -> Doc<'t> {
        let mut parser = Parser::new_from_str(text);
        let mut events = Vec::new();
        while let Some(Ok((ev, span))) = parser.next_event() {
            let pos = Pos::from_span(&span);
            let simple = match ev {
                Event::Scalar(value, style, _, _) => Ev::Scalar(value.into_owned(), style),
                Event::SequenceStart(..) => Ev::SeqStart,
                Event::SequenceEnd => Ev::End,
                Event::MappingStart(..) => Ev::MapStart,
                Event::MappingEnd => Ev::End,
                Event::Alias(_) => Ev::Alias,
                Event::DocumentEnd => break,
                _ => continue,
            };
            events.push((simple, pos));
        }
        let mut it = events.into_iter().peekable();
        let root = build(&mut it);
        Doc { text, root }
    }

    /// The deepest node along `path` and whether the whole path was found.
    fn walk(&self, path: &YPath) -> Option<(&Node, Option<&Node>, bool)> {
        let mut node = self.root.as_ref()?;
        let mut key_node = None;
        for seg in &path.0 {
            let next = match (seg, &node.kind) {
                (Seg::Key(k), NodeKind::Map(entries)) => entries
                    .iter()
                    .find(|(key, _)| matches!(&key.kind, NodeKind::Scalar { value, .. } if value == k))
                    .map(|(key, value)| (Some(key), value)),
                (Seg::Index(i), NodeKind::Seq(items)) => items.get(*i).map(|v| (None, v)),
                _ => None,
            };
            match next {
                Some((k, v)) => {
                    key_node = k;
                    node = v;
                }
                None => return Some((node, key_node, false)),
            }
        }
        Some((node, key_node, true))
    }

    /// The node at `path`, if the whole path exists.
    pub fn node(&self, path: &YPath) -> Option<&Node> {
        match self.walk(path) {
            Some((n, _, true)) => Some(n),
            _ => None,
        }
    }

    /// Position of the value at `path`; falls back to the nearest enclosing node that exists.
    pub fn pos(&self, path: &YPath) -> Pos {
        self.walk(path).map(|(n, _, _)| n.pos).unwrap_or(Pos::START)
    }

    /// Position of the key of the last path segment (`column:` rather than its value); for a
    /// sequence item or a missing key, the position of the value / nearest enclosing node.
    pub fn key_pos(&self, path: &YPath) -> Pos {
        match self.walk(path) {
            Some((_, Some(k), true)) => k.pos,
            Some((n, _, _)) => n.pos,
            None => Pos::START,
        }
    }

    /// The file position of char `char_index` of the scalar value at `node`, found by walking
    /// the source text alongside the value: indentation, line folding, quotes and escapes in
    /// the source are skipped where they do not match the value.
    pub fn scalar_offset_pos(&self, node: &Node, char_index: usize) -> Pos {
        let NodeKind::Scalar { value, style } = &node.kind else {
            return node.pos;
        };
        let src = self.text.get(node.pos.byte..).unwrap_or("");
        let mut s = src.char_indices().peekable();
        let (mut line, mut column) = (node.pos.line, node.pos.column);
        let advance = |c: char, line: &mut usize, column: &mut usize| {
            if c == '\n' {
                *line += 1;
                *column = 1;
            } else {
                *column += 1;
            }
        };
        for v in value.chars().take(char_index) {
            while let Some(&(_, c)) = s.peek() {
                if c == v {
                    s.next();
                    advance(c, &mut line, &mut column);
                    break;
                }
                if c == '\\' && *style == ScalarStyle::DoubleQuoted {
                    // An escape sequence in the source stands for one value char.
                    s.next();
                    advance(c, &mut line, &mut column);
                    let Some((_, e)) = s.next() else { break };
                    advance(e, &mut line, &mut column);
                    let hex = match e {
                        'x' => 2,
                        'u' => 4,
                        'U' => 8,
                        '\n' => continue, // line continuation, no value char
                        _ => 0,
                    };
                    for _ in 0..hex {
                        if let Some((_, h)) = s.next() {
                            advance(h, &mut line, &mut column);
                        }
                    }
                    break;
                }
                s.next();
                advance(c, &mut line, &mut column);
            }
        }
        // Skip source layout (newline + indentation) between the last matched char and the
        // target char, so the position lands on the char itself.
        if let Some(target) = value.chars().nth(char_index) {
            while let Some(&(_, c)) = s.peek() {
                if c == target || !(c == '\n' || c == ' ' || c == '\r' || c == '\t') {
                    break;
                }
                s.next();
                advance(c, &mut line, &mut column);
            }
        }
        let byte = node.pos.byte + s.peek().map(|&(b, _)| b).unwrap_or(src.len());
        Pos { line, column, byte }
    }
}

enum Ev {
    Scalar(String, ScalarStyle),
    SeqStart,
    MapStart,
    End,
    Alias,
}

fn build<I: Iterator<Item = (Ev, Pos)>>(it: &mut std::iter::Peekable<I>) -> Option<Node> {
    let (ev, pos) = it.next()?;
    let kind = match ev {
        Ev::Scalar(value, style) => NodeKind::Scalar { value, style },
        Ev::Alias => NodeKind::Alias,
        Ev::End => return None,
        Ev::SeqStart => {
            let mut items = Vec::new();
            while let Some((e, _)) = it.peek() {
                if matches!(e, Ev::End) {
                    it.next();
                    break;
                }
                match build(it) {
                    Some(n) => items.push(n),
                    None => break,
                }
            }
            NodeKind::Seq(items)
        }
        Ev::MapStart => {
            let mut entries = Vec::new();
            while let Some((e, _)) = it.peek() {
                if matches!(e, Ev::End) {
                    it.next();
                    break;
                }
                let Some(k) = build(it) else { break };
                let Some(v) = build(it) else { break };
                entries.push((k, v));
            }
            NodeKind::Map(entries)
        }
    };
    Some(Node { pos, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "cube:\n  name: Økonomi\n  measures:\n    - name: A\n      column: beloeb\n    - name: B\n      expression: |\n        [Measures].[A]\n          - [Measures].[X]\n    - name: C\n      expression: \"[Measures].[A] \\t/ 2\"\n    - name: D\n      expression: >-\n        [Measures].[A]\n        * 2\n";

    fn p(parts: &[&str]) -> YPath {
        let mut y = YPath::root();
        for s in parts {
            y = match s.parse::<usize>() {
                Ok(i) => y.i(i),
                Err(_) => y.k(s),
            };
        }
        y
    }

    #[test]
    fn positions() {
        let doc = Doc::parse(SRC);
        assert_eq!(
            doc.pos(&p(&["cube", "name"])),
            Pos {
                line: 2,
                column: 9,
                byte: 14
            }
        );
        let col = doc.pos(&p(&["cube", "measures", "0", "column"]));
        assert_eq!((col.line, col.column), (5, 15));
        let key = doc.key_pos(&p(&["cube", "measures", "0", "column"]));
        assert_eq!((key.line, key.column), (5, 7));
        // A missing key falls back to the enclosing mapping.
        let missing = doc.pos(&p(&["cube", "measures", "1", "caption"]));
        assert_eq!((missing.line, missing.column), (6, 7));
        assert_eq!(p(&["cube", "measures", "1"]).to_string(), "cube/measures/1");
    }

    #[test]
    fn offsets_in_block_and_quoted_scalars() {
        let doc = Doc::parse(SRC);
        let lit = doc.node(&p(&["cube", "measures", "1", "expression"])).unwrap();
        // "[Measures].[A]\n  - [Measures].[X]\n": char 17 is '-' on the second line.
        let pos = doc.scalar_offset_pos(lit, 17);
        assert_eq!((pos.line, pos.column), (9, 11));
        let pos = doc.scalar_offset_pos(lit, 0);
        assert_eq!((pos.line, pos.column), (8, 9));
        let dq = doc.node(&p(&["cube", "measures", "2", "expression"])).unwrap();
        // value "[Measures].[A] \t/ 2": char 16 is '/', after an escaped tab in the source.
        let pos = doc.scalar_offset_pos(dq, 16);
        assert_eq!((pos.line, pos.column), (11, 37));
        let folded = doc.node(&p(&["cube", "measures", "3", "expression"])).unwrap();
        // value "[Measures].[A] * 2": char 15 is '*' at the start of the next source line.
        let pos = doc.scalar_offset_pos(folded, 15);
        assert_eq!((pos.line, pos.column), (15, 9));
    }
}
