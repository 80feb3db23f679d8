//! The data-quality declaration of a dataset: its current snapshot's `manifest.json`
//! (docs/datasets.md): when the snapshot was made, the period it covers, completeness per
//! municipality and known issues.

use std::collections::BTreeMap;
use std::path::Path;

/// What the portal shows of a manifest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Quality {
    pub dataset: String,
    pub snapshot_id: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub generated_at: String,
    /// First and last period with data (`2016-01`, `2025-12`).
    pub period_from: String,
    pub period_to: String,
    /// Share of expected periods with rows, per kommunekode (0..=1).
    pub completeness: BTreeMap<u16, f64>,
    pub known_issues: Vec<String>,
}

impl Quality {
    /// The lowest completeness of any municipality.
    pub fn min_completeness(&self) -> Option<f64> {
        self.completeness.values().copied().reduce(f64::min)
    }

    /// Municipalities with less than complete data.
    pub fn incomplete(&self) -> usize {
        self.completeness.values().filter(|v| **v < 1.0).count()
    }

    /// Whole days between the snapshot and `now_unix` (None if the date is unreadable).
    pub fn age_days(&self, now_unix: u64) -> Option<i64> {
        let made = unix_of(&self.generated_at)?;
        Some((now_unix as i64 - made).div_euclid(86_400))
    }
}

/// The manifest of the current snapshot of `dataset`, or why there is none.
pub fn read(data_dir: &Path, dataset: &str) -> Result<Quality, String> {
    let (id, dir) = datakube_engine::storage::current_snapshot(data_dir, dataset).map_err(|e| e.to_string())?;
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text, dataset, &id).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parse a manifest's text (unknown fields are ignored; missing ones stay empty).
pub fn parse(text: &str, dataset: &str, snapshot_id: &str) -> Result<Quality, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap_or_default().to_string();
    let completeness = v
        .get("completeness")
        .and_then(|c| c.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, x)| Some((k.trim().parse::<u16>().ok()?, x.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let known_issues = v
        .get("known_issues")
        .and_then(|k| k.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    Ok(Quality {
        dataset: v.get("dataset").and_then(|x| x.as_str()).unwrap_or(dataset).to_string(),
        snapshot_id: v
            .get("snapshot_id")
            .and_then(|x| x.as_str())
            .unwrap_or(snapshot_id)
            .to_string(),
        generated_at: s("/generated_at"),
        period_from: s("/period/from"),
        period_to: s("/period/to"),
        completeness,
        known_issues,
    })
}

/// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SS…` (UTC).
pub fn unix_of(t: &str) -> Option<i64> {
    let num = |a: usize, b: usize| t.get(a..b)?.parse::<i64>().ok();
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (
        num(11, 13).unwrap_or(0),
        num(14, 16).unwrap_or(0),
        num(17, 19).unwrap_or(0),
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (proleptic Gregorian), 1970-01-01 = 0.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_age() {
        assert_eq!(unix_of("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_of("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(unix_of("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(unix_of("garbage"), None);
        let q = Quality {
            generated_at: "2024-02-29T12:00:00Z".into(),
            ..Default::default()
        };
        assert_eq!(q.age_days(1_709_208_000 + 3 * 86_400 + 5), Some(3));
    }

    #[test]
    fn parses_a_manifest() {
        let q = parse(
            r#"{"dataset":"skole","snapshot_id":"abc","generated_at":"2026-01-02T03:04:05Z",
                "period":{"from":"2016/17","to":"2024/25"},"completeness":{"101":1.0,"825":0.75,"x":1},
                "known_issues":["one","two"],"tables":{}}"#,
            "skole",
            "abc",
        )
        .unwrap();
        assert_eq!(q.period_to, "2024/25");
        assert_eq!(q.completeness.len(), 2);
        assert_eq!(q.min_completeness(), Some(0.75));
        assert_eq!(q.incomplete(), 1);
        assert_eq!(q.known_issues, vec!["one", "two"]);
        assert!(parse("{", "x", "y").unwrap_err().contains("JSON"));
    }
}
