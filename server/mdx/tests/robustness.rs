//! No panics, bounded work and consistent error positions on hostile or mangled input.

mod common;

use datakube_mdx::{MAX_TREE_HEIGHT, ParseError, parse_expression, parse_statement};

/// Line and column (1-based, chars) of a byte offset, computed independently of the lexer.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

fn check_error(src: &str, e: &ParseError) {
    assert!(
        e.offset <= src.len(),
        "offset {} beyond input of {} bytes: {e}\n{src}",
        e.offset,
        src.len()
    );
    assert!(src.is_char_boundary(e.offset), "offset not on a char boundary: {e}");
    assert_eq!(
        (e.line, e.column),
        line_col(src, e.offset),
        "line/column disagree with offset: {e}\n{src}"
    );
    assert!(!e.message.is_empty());
}

/// Parse, and for successes check the round trip; for failures check the error position.
fn exercise(src: &str) {
    match parse_statement(src) {
        Ok(st) => {
            let printed = st.to_string();
            let again = parse_statement(&printed).unwrap_or_else(|e| panic!("{e}\n{src}\n---\n{printed}"));
            assert!(st.eq_ignore_spans(&again), "{src}\n---\n{printed}");
        }
        Err(e) => check_error(src, &e),
    }
    if let Err(e) = parse_expression(src) {
        check_error(src, &e);
    }
}

fn seeds() -> Vec<String> {
    let mut s: Vec<String> = common::excel_statements();
    s.dedup();
    s.truncate(4);
    s.extend(
        [
            "WITH MEMBER [Measures].[X] AS 'IIF([a] = ''b'', 1, 2)', FORMAT_STRING = \"#,0\" SET [S] AS {[a].&[1]&[2]} \
             SELECT NON EMPTY [S] DIMENSION PROPERTIES MEMBER_CAPTION ON 0 FROM (SELECT {[x].[y]} ON 0 FROM [C]) \
             WHERE ([Tid].[År].&[2024]) CELL PROPERTIES VALUE",
            "SELECT CASE WHEN a IS NULL THEN -1 ELSE NOT b XOR c END ON 0, {a : b} * EXISTING {c} AS s ON 1 FROM c -- x\n",
            "DRILLTHROUGH MAXROWS 5 SELECT FROM [C] /* c */ RETURN [$D].[A], Key([$D].[B])",
            "CREATE SESSION HIDDEN MEMBER CURRENTCUBE.[Measures].[H] AS 1.5e-3 ^ 2; ",
        ]
        .map(String::from),
    );
    s
}

const INSERTS: &[char] = &[
    '(', ')', '[', ']', '{', '}', '\'', '"', ',', '.', '&', '-', '/', '*', ':', ';', ' ', '\n', 'ø', '1', 'e', '@',
];

#[test]
fn mutated_statements_never_panic_and_errors_are_in_bounds() {
    let mut n = 0usize;
    for seed in seeds() {
        let chars: Vec<(usize, char)> = seed.char_indices().collect();
        for &(i, c) in &chars {
            // Truncation.
            exercise(&seed[..i]);
            // Deletion of one char.
            let mut del = seed.clone();
            del.replace_range(i..i + c.len_utf8(), "");
            exercise(&del);
            // Insertion of a structural char.
            for (k, ins) in INSERTS.iter().enumerate() {
                if (i + k) % 3 != 0 {
                    continue; // a deterministic third of the combinations keeps the test fast
                }
                let mut s = seed.clone();
                s.insert(i, *ins);
                exercise(&s);
                n += 1;
            }
            // Duplication of a 7-char window.
            let end = chars
                .iter()
                .map(|&(j, _)| j)
                .find(|&j| j >= i + 7)
                .unwrap_or(seed.len());
            let mut dup = seed.clone();
            dup.insert_str(i, &seed[i..end]);
            exercise(&dup);
            n += 3;
        }
    }
    println!("{n} mutated inputs exercised");
    assert!(n > 1000);
}

#[test]
fn pathological_inputs() {
    let big = 200_000;
    let inputs = vec![
        "(".repeat(big),
        "{".repeat(big),
        "-".repeat(big),
        "- ".repeat(big),
        "NOT ".repeat(big),
        "EXISTING ".repeat(big),
        "a.".repeat(big),
        format!("SELECT {} FROM c", "a ON 0,".repeat(big / 8)),
        format!("SELECT FROM {}", "(SELECT FROM ".repeat(big / 16)),
        format!("WITH {} SELECT FROM c", "MEMBER [M].[x] AS 1 ".repeat(big / 32)),
        "[".repeat(big),
        "'".repeat(big + 1),
        "/*".repeat(big),
        "&".repeat(big),
        "\u{0}\u{1}\u{7f}\u{feff}".to_string(),
        "CASE WHEN ".repeat(big / 16),
        "F(".repeat(big / 4),
        "x IS ".repeat(big / 8),
    ];
    for src in inputs {
        exercise(&src);
    }
}

#[test]
fn long_operator_chains_are_bounded() {
    // Long but legal chains parse...
    let ok = vec!["1"; MAX_TREE_HEIGHT - 10].join(" + ");
    let e = parse_expression(&ok).unwrap();
    // ...and a tree of that height can be printed, compared, cloned and dropped on a 2 MiB stack.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let printed = e.to_string();
            let again = parse_expression(&printed).unwrap();
            assert!(again.eq_ignore_spans(&e));
            let _ = format!("{e:?}");
            drop(e);
        })
        .unwrap()
        .join()
        .unwrap();
    // Longer chains are rejected cleanly instead of building an arbitrarily tall tree.
    for op in [" + ", " * ", " : ", " AND ", " ^ "] {
        let long = vec!["x"; 100_000].join(op);
        let err = parse_expression(&long).unwrap_err();
        assert!(err.message.contains("too complex"), "{err}");
        check_error(&long, &err);
    }
    let props = format!("[a]{}", ".Parent".repeat(100_000));
    assert!(parse_expression(&props).unwrap_err().message.contains("too complex"));
    let is = format!("a{}", " IS NULL".repeat(100_000));
    assert!(parse_expression(&is).unwrap_err().message.contains("too complex"));
    // Flat lists are not limited.
    let wide = format!("{{{}}}", vec!["[a].[b]"; 100_000].join(", "));
    parse_expression(&wide).unwrap();
}

#[test]
fn maximum_nesting_fits_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            for depth in [250, 255, 256, 257, 300, 10_000] {
                for (open, close) in [
                    ("(", ")"),
                    ("{", "}"),
                    ("F(", ")"),
                    ("- ", ""),
                    ("NOT ", ""),
                    ("x.Lag(", ")"),
                ] {
                    let src = format!("{}1{}", open.repeat(depth), close.repeat(depth));
                    match parse_expression(&src) {
                        Ok(e) => {
                            let printed = e.to_string();
                            assert!(parse_expression(&printed).unwrap().eq_ignore_spans(&e));
                            let _ = format!("{e:?}");
                        }
                        Err(e) => {
                            assert!(e.message.contains("nested too deeply"), "{e}");
                            check_error(&src, &e);
                        }
                    }
                }
                let sub = format!("SELECT FROM {}[c]{}", "(SELECT FROM ".repeat(depth), ")".repeat(depth));
                if let Ok(st) = parse_statement(&sub) {
                    let _ = st.to_string();
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn arbitrary_bytes_as_utf8() {
    // A cheap deterministic pseudo-random generator (xorshift) over a small MDX-ish alphabet.
    let alphabet: Vec<char> = "()[]{}'\",.&-/*:;+=<>^@ \n\tabcxyzæøå019eSELECTFROMWHEREONNOTISCASEWHENEND"
        .chars()
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 60) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        exercise(&s);
    }
}
