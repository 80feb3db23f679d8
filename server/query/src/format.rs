//! FORMATTED_VALUE: .NET-style format strings (`#,##0`, `#,##0.00`, `0.0%`, `Standard`,
//! `Percent`, `Currency`, literal text in quotes, `positive;negative;zero` sections) with
//! the separators of the caller's language (Danish `1.234,5`, English `1,234.5`).

use datakube_model::Lang;

fn separators(lang: Lang) -> (char, char) {
    match lang {
        Lang::Da => ('.', ','),
        Lang::En => (',', '.'),
    }
}

fn group_digits(int_part: &str, sep: char) -> String {
    let bytes: Vec<char> = int_part.chars().collect();
    let mut out = String::with_capacity(int_part.len() + int_part.len() / 3);
    for (i, c) in bytes.iter().enumerate() {
        if i > 0 && (bytes.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(*c);
    }
    out
}

/// Format `v` with `decimals` decimals (min..max), optional grouping, in `lang`.
fn number(v: f64, min_dec: usize, max_dec: usize, grouping: bool, lang: Lang) -> String {
    let (gsep, dsep) = separators(lang);
    let s = format!("{:.*}", max_dec, v.abs());
    let (int_part, mut frac) = match s.split_once('.') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (s.clone(), String::new()),
    };
    while frac.len() > min_dec && frac.ends_with('0') {
        frac.pop();
    }
    let int_part = if grouping {
        group_digits(&int_part, gsep)
    } else {
        int_part
    };
    let mut out = String::new();
    if v < 0.0 && (int_part.chars().any(|c| c != '0' && c != gsep) || frac.chars().any(|c| c != '0')) {
        out.push('-');
    }
    out.push_str(&int_part);
    if !frac.is_empty() {
        out.push(dsep);
        out.push_str(&frac);
    }
    out
}

/// The formatted value of `v` under `format` (None: the general format).
pub fn format_value(v: f64, format: Option<&str>, lang: Lang) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "1.#INF".into() } else { "-1.#INF".into() };
    }
    let fmt = format.map(str::trim).unwrap_or("");
    match fmt.to_ascii_lowercase().as_str() {
        "" | "general" | "general number" => return number(v, 0, 10, false, lang),
        "standard" => return number(v, 2, 2, true, lang),
        "fixed" => return number(v, 2, 2, false, lang),
        "percent" => return format!("{}%", number(v * 100.0, 2, 2, true, lang)),
        "currency" => {
            return match lang {
                Lang::Da => format!("{} kr.", number(v, 2, 2, true, lang)),
                Lang::En => format!("DKK {}", number(v, 2, 2, true, lang)),
            };
        }
        _ => {}
    }
    // Sections: positive;negative;zero.
    let sections: Vec<&str> = split_sections(fmt);
    let (section, value, explicit_negative) = match (sections.len(), v) {
        (n, x) if x == 0.0 && n >= 3 => (sections[2], x, false),
        (n, x) if x < 0.0 && n >= 2 => (sections[1], -x, true),
        _ => (sections[0], v, false),
    };
    let _ = explicit_negative;
    custom(value, section, lang)
}

fn split_sections(fmt: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quote = false;
    let mut start = 0;
    for (i, c) in fmt.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ';' if !in_quote => {
                out.push(&fmt[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&fmt[start..]);
    out
}

fn custom(v: f64, section: &str, lang: Lang) -> String {
    // Split into literal prefix, numeric pattern and literal suffix; honour quotes and '%'.
    let mut prefix = String::new();
    let mut suffix = String::new();
    let mut pattern = String::new();
    let mut percent = false;
    let mut in_quote = false;
    let mut seen_pattern = false;
    let mut chars = section.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            in_quote = !in_quote;
            continue;
        }
        if in_quote {
            if seen_pattern {
                suffix.push(c)
            } else {
                prefix.push(c)
            }
            continue;
        }
        match c {
            '#' | '0' | ',' | '.' if !suffix.is_empty() && seen_pattern => suffix.push(c),
            '#' | '0' | ',' | '.' => {
                seen_pattern = true;
                pattern.push(c);
            }
            '%' => {
                percent = true;
                if seen_pattern {
                    suffix.push('%')
                } else {
                    prefix.push('%')
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    if seen_pattern { suffix.push(n) } else { prefix.push(n) }
                }
            }
            other => {
                if seen_pattern {
                    suffix.push(other)
                } else {
                    prefix.push(other)
                }
            }
        }
    }
    let value = if percent { v * 100.0 } else { v };
    if pattern.is_empty() {
        // A section of literal text only (e.g. "-" for zero).
        return format!("{prefix}{suffix}");
    }
    let grouping = pattern.contains(',') && pattern.find(',') < pattern.find('.').or(Some(pattern.len()));
    let (min_dec, max_dec) = match pattern.split_once('.') {
        Some((_, frac)) => (
            frac.chars().filter(|&c| c == '0').count(),
            frac.chars().filter(|&c| c == '0' || c == '#').count(),
        ),
        None => (0, 0),
    };
    format!("{prefix}{}{suffix}", number(value, min_dec, max_dec, grouping, lang))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_both_languages() {
        assert_eq!(format_value(1234567.891, Some("#,##0"), Lang::Da), "1.234.568");
        assert_eq!(format_value(1234567.891, Some("#,##0"), Lang::En), "1,234,568");
        assert_eq!(format_value(1234.5, Some("#,##0.00"), Lang::Da), "1.234,50");
        assert_eq!(format_value(0.1234, Some("0.0%"), Lang::Da), "12,3%");
        assert_eq!(format_value(0.1234, Some("0.0%"), Lang::En), "12.3%");
        assert_eq!(format_value(-1500.0, Some("#,##0 \"kr.\""), Lang::Da), "-1.500 kr.");
        assert_eq!(format_value(-2.0, Some("#,##0;(#,##0)"), Lang::En), "(2)");
        assert_eq!(format_value(0.0, Some("#,##0;-#,##0;\"-\""), Lang::En), "-");
        assert_eq!(format_value(1234.5, Some("Standard"), Lang::En), "1,234.50");
        assert_eq!(format_value(0.25, Some("Percent"), Lang::Da), "25,00%");
        assert_eq!(format_value(2.5, None, Lang::Da), "2,5");
        assert_eq!(format_value(f64::INFINITY, None, Lang::En), "1.#INF");
        assert_eq!(format_value(-0.0001, Some("#,##0"), Lang::En), "0");
    }
}
