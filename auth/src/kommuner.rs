//! The 98 municipalities with their CVR numbers: how an organisation CVR from the identity
//! provider becomes a row scope.

use std::sync::OnceLock;

use crate::Kommunekode;

static CSV: &str = include_str!("../../data/municipalities.csv");

/// One municipality of `data/municipalities.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kommune {
    pub code: Kommunekode,
    pub name: String,
    pub region_code: u16,
    pub region: String,
    pub population: u32,
    pub cvr: String,
}

/// Every municipality, in kommunekode order.
pub fn all() -> &'static [Kommune] {
    static ALL: OnceLock<Vec<Kommune>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut v: Vec<Kommune> = CSV
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(',').map(str::trim).collect();
                // The file is part of the build and checked by a test below.
                Kommune {
                    code: Kommunekode(f[0].parse().expect("kommunekode")),
                    name: f[1].to_string(),
                    region_code: f[2].parse().expect("regionskode"),
                    region: f[3].to_string(),
                    population: f[4].parse().expect("indbyggere"),
                    cvr: f[5].to_string(),
                }
            })
            .collect();
        v.sort_by_key(|k| k.code);
        v
    })
}

/// The municipality whose CVR number this is (`None` for any other organisation).
pub fn by_cvr(cvr: &str) -> Option<&'static Kommune> {
    let cvr = cvr.trim();
    all().iter().find(|k| k.cvr == cvr)
}

/// The municipality with this kommunekode.
pub fn by_code(code: Kommunekode) -> Option<&'static Kommune> {
    all().iter().find(|k| k.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ninety_eight_municipalities_with_distinct_cvrs() {
        assert_eq!(all().len(), 98);
        let mut cvrs: Vec<&str> = all().iter().map(|k| k.cvr.as_str()).collect();
        cvrs.sort();
        cvrs.dedup();
        assert_eq!(cvrs.len(), 98);
        assert!(
            all()
                .iter()
                .all(|k| k.cvr.len() == 8 && k.cvr.bytes().all(|b| b.is_ascii_digit()))
        );
    }

    #[test]
    fn cvr_maps_to_kommune() {
        // From the domain notes: 29189846 → 791 Viborg; 64942212 → 101 København.
        assert_eq!(by_cvr("29189846").map(|k| k.code), Some(Kommunekode(791)));
        assert_eq!(by_cvr(" 64942212 ").map(|k| k.name.as_str()), Some("København"));
        assert_eq!(by_cvr("12345678"), None);
        assert_eq!(by_code(Kommunekode(825)).map(|k| k.name.as_str()), Some("Læsø"));
    }
}
