//! The audit log for administrators: read the JSON lines of `datakube_auth::audit`, filter by
//! user, kind and date, and export as CSV.

use std::path::Path;

use serde_json::Value;

/// The columns of the CSV export and the table, in order (the fields of `AuditEvent`).
pub const COLUMNS: &[&str] = &[
    "time",
    "kind",
    "user",
    "organisation",
    "scope",
    "method",
    "client_app",
    "peer",
    "cube",
    "statement",
    "cells",
    "rows",
    "duration_ms",
    "outcome",
    "detail",
    "acting_for",
];

/// What to show: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Part of the user (subject), case-insensitive.
    pub user: String,
    /// The exact kind (`login`, `query`, …).
    pub kind: String,
    /// First and last day (`YYYY-MM-DD`, inclusive), compared with the line's UTC date.
    pub from: String,
    pub to: String,
}

impl Filter {
    pub fn matches(&self, line: &Value) -> bool {
        let field = |k: &str| line.get(k).and_then(Value::as_str).unwrap_or_default();
        let day = field("time").get(..10).unwrap_or_default();
        (self.user.is_empty() || field("user").to_lowercase().contains(&self.user.to_lowercase()))
            && (self.kind.is_empty() || field("kind") == self.kind)
            && (self.from.is_empty() || day >= self.from.as_str())
            && (self.to.is_empty() || day <= self.to.as_str())
    }
}

/// One line's value of `column` as text (lists joined by `,`).
pub fn cell(line: &Value, column: &str) -> String {
    match line.get(column) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// The lines of the log at `path` (oldest first) and the number of lines that were not JSON.
pub fn read(path: &Path) -> std::io::Result<(Vec<Value>, usize)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut bad = 0;
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) if v.is_object() => Some(v),
            _ => {
                bad += 1;
                None
            }
        })
        .collect();
    Ok((lines, bad))
}

/// The kinds present, sorted (for the filter's choices).
pub fn kinds(lines: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = lines
        .iter()
        .filter_map(|l| l.get("kind").and_then(Value::as_str).map(str::to_string))
        .collect();
    k.sort();
    k.dedup();
    k
}

/// CSV (RFC 4180, CRLF line ends) of `lines` with a header row. A text cell starting with
/// `=`, `+`, `-`, `@`, tab or CR gets a leading `'`, so a spreadsheet does not run it as a
/// formula (statements and user names are text the users chose).
pub fn csv(lines: &[&Value]) -> String {
    let mut out = String::new();
    out.push_str(&COLUMNS.join(","));
    out.push_str("\r\n");
    for l in lines {
        let row: Vec<String> = COLUMNS
            .iter()
            .map(|c| {
                let is_text = matches!(l.get(*c), Some(Value::String(_)) | Some(Value::Array(_)));
                csv_field(&cell(l, c), is_text)
            })
            .collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_field(v: &str, text: bool) -> String {
    let mut v = v.to_string();
    if text && v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        v.insert(0, '\'');
    }
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filter_and_csv() {
        let a = json!({"time":"2026-01-02T10:00:00.000Z","kind":"login","user":"anna","organisation":["55133018"],"outcome":"ok"});
        let b = json!({"time":"2026-01-03T10:00:00.000Z","kind":"query","user":"lars","cube":"Befolkning",
            "statement":"=HYPERLINK(\"x\")\nSELECT","cells":4,"duration_ms":1.5,"outcome":"ok"});
        let f = Filter {
            user: "ANN".into(),
            ..Default::default()
        };
        assert!(f.matches(&a) && !f.matches(&b));
        let f = Filter {
            from: "2026-01-03".into(),
            ..Default::default()
        };
        assert!(!f.matches(&a) && f.matches(&b));
        let f = Filter {
            to: "2026-01-02".into(),
            kind: "login".into(),
            ..Default::default()
        };
        assert!(f.matches(&a) && !f.matches(&b));
        let text = csv(&[&a, &b]);
        let rows: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(rows[0], COLUMNS.join(","));
        assert!(
            rows[1].starts_with("2026-01-02T10:00:00.000Z,login,anna,55133018,"),
            "{}",
            rows[1]
        );
        // The formula is neutralised and the quote and newline are escaped.
        assert!(text.contains("\"'=HYPERLINK(\"\"x\"\")\nSELECT\",4,,1.5,ok"), "{text}");
    }
}
