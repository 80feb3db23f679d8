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

/// Population bands of the default comparison groups (inhabitants, lower bounds).
pub const POPULATION_BANDS: [u32; 4] = [0, 20_000, 50_000, 100_000];

fn band(population: u32) -> usize {
    POPULATION_BANDS.iter().rposition(|&b| population >= b).unwrap_or(0)
}

/// The comparison group of kommune `code`: the first of `groups` (name, kommuner) holding it;
/// otherwise the default: the kommuner of its region in its population band (under 20,000;
/// 20,000–49,999; 50,000–99,999; 100,000 and more), or, when that gives fewer than five, the
/// kommuner of its band in the whole country. Always includes `code` itself; sorted.
pub fn comparison_group(code: Kommunekode, groups: &[(String, Vec<u16>)]) -> Vec<Kommunekode> {
    if let Some((_, g)) = groups.iter().find(|(_, g)| g.contains(&code.0)) {
        let mut v: Vec<Kommunekode> = g.iter().map(|&k| Kommunekode(k)).collect();
        v.sort();
        v.dedup();
        return v;
    }
    let Some(me) = by_code(code) else {
        return vec![code];
    };
    let b = band(me.population);
    let regional: Vec<Kommunekode> = all()
        .iter()
        .filter(|k| k.region_code == me.region_code && band(k.population) == b)
        .map(|k| k.code)
        .collect();
    if regional.len() >= 5 {
        return regional;
    }
    all()
        .iter()
        .filter(|k| band(k.population) == b)
        .map(|k| k.code)
        .collect()
}

#[cfg(test)]
mod group_tests {
    use super::*;

    #[test]
    fn default_groups_by_band_and_region() {
        // Læsø (1,786) is in the smallest band; Nordjylland has too few small kommuner, so the
        // group is every kommune under 20,000 inhabitants.
        let g = comparison_group(Kommunekode(825), &[]);
        assert!(g.contains(&Kommunekode(825)));
        let expected: Vec<Kommunekode> = all().iter().filter(|k| k.population < 20_000).map(|k| k.code).collect();
        let regional = all()
            .iter()
            .filter(|k| k.population < 20_000 && k.region_code == 1081)
            .count();
        if regional < 5 {
            assert_eq!(g, expected);
        }
        // Every kommune's group holds itself, and all members share its band.
        for k in all() {
            let g = comparison_group(k.code, &[]);
            assert!(g.contains(&k.code), "{}", k.name);
            assert!(
                g.len() >= 5
                    || all()
                        .iter()
                        .filter(|x| band(x.population) == band(k.population))
                        .count()
                        < 5
            );
            assert!(
                g.iter()
                    .all(|c| band(by_code(*c).unwrap().population) == band(k.population))
            );
        }
        // An explicit group wins.
        let groups = vec![("Østjylland".to_string(), vec![751, 730, 741])];
        assert_eq!(
            comparison_group(Kommunekode(751), &groups),
            [Kommunekode(730), Kommunekode(741), Kommunekode(751)]
        );
    }
}
