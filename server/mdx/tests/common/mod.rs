//! Helpers shared by the integration tests: loading the shared MDX corpora.
#![allow(dead_code)]

use std::path::PathBuf;

use datakube_mdx::ast::*;

/// Root of the shared test data: `shared/` beside the repository (`../shared` relative to the
/// repository root, as in CI's checkout), unless `DATAKUBE_SHARED_DIR` is set.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("DATAKUBE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(
                std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../../shared")
        })
}

/// Decode the XML entities `&lt; &gt; &amp; &quot; &apos; &#N; &#xN;` once.
pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 12) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let decoded = match ent {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32)
            }
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text between `<tag>` (possibly with attributes) and `</tag>`, for every occurrence.
pub fn elements(xml: &str, tag: &str) -> Vec<String> {
    let open_plain = format!("<{tag}>");
    let open_attr = format!("<{tag} ");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    loop {
        let start = match (rest.find(&open_plain), rest.find(&open_attr)) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        let Some(gt) = rest[start..].find('>') else { break };
        let body_start = start + gt + 1;
        let Some(len) = rest[body_start..].find(&close) else {
            break;
        };
        out.push(rest[body_start..body_start + len].to_string());
        rest = &rest[body_start + len + close.len()..];
    }
    out
}

/// All MDX statements sent by Excel in the recorded session (`<Statement>` of each request).
pub fn excel_statements() -> Vec<String> {
    let path = shared_dir().join("traces/excel365-session.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read Excel trace {} ({e}); set DATAKUBE_SHARED_DIR",
            path.display()
        )
    });
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("trace line is JSON");
        if let Some(xml) = v.get("request_xml").and_then(|x| x.as_str()) {
            for st in elements(xml, "Statement") {
                let st = xml_unescape(&st);
                if !st.trim().is_empty() {
                    out.push(st);
                }
            }
        }
    }
    out
}

/// `(file name, query)` for every FoodMart conformance query. The files escape `<`/`>` twice
/// (`&amp;gt;`), so entities are decoded until the text no longer changes.
pub fn foodmart_queries() -> Vec<(String, String)> {
    let dir = shared_dir().join("conformance/mondrian-foodmart/queries");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {} ({e}); set DATAKUBE_SHARED_DIR", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let xml = std::fs::read_to_string(&f).expect("read query file");
        for q in elements(&xml, "mdxQuery") {
            let mut q = q;
            loop {
                let d = xml_unescape(&q);
                if d == q {
                    break;
                }
                q = d;
            }
            out.push((f.file_name().unwrap().to_string_lossy().into_owned(), q));
        }
    }
    out
}

// ----- removing parentheses the printer added ---------------------------------------------------

pub fn denest(e: &mut Expr) {
    while let Expr::Nested { expr, .. } = e {
        let inner = std::mem::replace(&mut **expr, Expr::Omitted { span: Span::EMPTY });
        *e = inner;
    }
    match e {
        Expr::Unary { expr, .. } | Expr::Alias { expr, .. } | Expr::Property { object: expr, .. } => denest(expr),
        Expr::Binary { left, right, .. }
        | Expr::Range {
            start: left,
            end: right,
            ..
        } => {
            denest(left);
            denest(right);
        }
        Expr::Is { expr, target, .. } => {
            denest(expr);
            if let IsTarget::Expr(t) = target {
                denest(t);
            }
        }
        Expr::Function { args, .. } => args.iter_mut().for_each(denest),
        Expr::Method { object, args, .. } => {
            denest(object);
            args.iter_mut().for_each(denest);
        }
        Expr::Tuple { items, .. } | Expr::Set { items, .. } => items.iter_mut().for_each(denest),
        Expr::Case {
            operand,
            whens,
            else_result,
            ..
        } => {
            if let Some(o) = operand {
                denest(o);
            }
            for w in whens {
                denest(&mut w.condition);
                denest(&mut w.result);
            }
            if let Some(e) = else_result {
                denest(e);
            }
        }
        _ => {}
    }
}

pub fn denest_definition(d: &mut Definition) {
    let (exprs, props): (Vec<&mut Expr>, &mut Vec<DefinitionProperty>) = match d {
        Definition::Member(m) => (vec![&mut m.expr], &mut m.properties),
        Definition::Set(s) => (vec![&mut s.expr], &mut s.properties),
        Definition::CellCalculation(c) => (vec![&mut c.for_expr, &mut c.expr], &mut c.properties),
    };
    exprs.into_iter().for_each(denest);
    props.iter_mut().for_each(|p| denest(&mut p.value));
}

pub fn denest_select(s: &mut Select) {
    s.with.iter_mut().for_each(denest_definition);
    s.axes.iter_mut().for_each(|a| denest(&mut a.expr));
    if let CubeSource::Subselect { select, .. } = &mut s.from {
        denest_select(select);
    }
    if let Some(w) = &mut s.where_clause {
        denest(w);
    }
}

pub fn denest_statement(st: &mut Statement) {
    match st {
        Statement::Select(s) => denest_select(s),
        Statement::Drillthrough(d) => {
            denest_select(&mut d.select);
            d.returns.iter_mut().for_each(denest);
        }
        Statement::Create(c) => c.definitions.iter_mut().for_each(denest_definition),
        Statement::Drop(_) | Statement::Refresh(_) => {}
    }
}
