//! Problems found while loading cube definitions, each with its file position.

use std::fmt;
use std::path::PathBuf;

/// How bad a [`Diagnostic`] is. Errors stop the catalog from loading; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem in a definition file.
///
/// `line` and `column` are 1-based (columns count characters, not bytes). Both are 0 when the
/// problem has no position inside a file (for example "no catalog file in the folder").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `cube-definitions/okonomi.yaml:12:7: error: unknown column 'belob' in oekonomi/postering`
    /// followed by `\n  hint: ...` when there is a hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": {}: {}", self.severity, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Levenshtein distance over chars, case-insensitive.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// "did you mean 'x'?" when a candidate is close; otherwise `None`.
pub(crate) fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, candidates).map(|c| format!("did you mean '{c}'?"))
}

/// A hint naming the closest candidate (if any) and listing all valid ones.
pub(crate) fn hint_with_list(word: &str, candidates: &[&str], what: &str) -> String {
    let list = candidates.join(", ");
    match did_you_mean(word, candidates.iter().copied()) {
        Some(d) => format!("{d} valid {what}: {list}"),
        None => format!("valid {what}: {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("belob", "beloeb"), 1);
        assert_eq!(edit_distance("Kommune", "kommune"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kvartal", "maaned"), 6);
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("colum", ["name", "column", "caption"]), Some("column"));
        assert_eq!(closest("xyz", ["name", "column"]), None);
        assert_eq!(
            did_you_mean("summ", ["sum", "count"]).as_deref(),
            Some("did you mean 'sum'?")
        );
    }

    #[test]
    fn display() {
        let d = Diagnostic {
            file: "cube-definitions/okonomi.yaml".into(),
            line: 12,
            column: 7,
            severity: Severity::Error,
            message: "unknown column 'belob' in oekonomi/postering".into(),
            hint: Some("did you mean 'beloeb'?".into()),
        };
        assert_eq!(
            d.to_string(),
            "cube-definitions/okonomi.yaml:12:7: error: unknown column 'belob' in oekonomi/postering\n  hint: did you mean 'beloeb'?"
        );
        let d = Diagnostic {
            line: 0,
            column: 0,
            hint: None,
            ..d
        };
        assert_eq!(
            d.to_string(),
            "cube-definitions/okonomi.yaml: error: unknown column 'belob' in oekonomi/postering"
        );
    }
}
