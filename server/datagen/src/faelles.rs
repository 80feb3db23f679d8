//! `faelles`: shared dimensions (kommune, maaned, uge, alder, koen).

use std::collections::BTreeMap;

use anyhow::Result;

use crate::{Gen, ManifestExtra};

pub(crate) const ALDERSGRUPPER: &[(i32, i32, &str)] = &[
    (0, 5, "0-5"),
    (6, 16, "6-16"),
    (17, 24, "17-24"),
    (25, 44, "25-44"),
    (45, 64, "45-64"),
    (65, 79, "65-79"),
    (80, 110, "80+"),
];

pub(crate) fn generate(g: &mut Gen) -> Result<ManifestExtra> {
    g.write_dim(
        "kommune",
        "SELECT kommunekode, navn AS kommune_navn, regionskode, region AS region_navn,
                CASE regionskode WHEN 1081 THEN 'North Denmark Region' WHEN 1082 THEN 'Central Denmark Region'
                     WHEN 1083 THEN 'Region of Southern Denmark' WHEN 1084 THEN 'Capital Region of Denmark'
                     WHEN 1085 THEN 'Region Zealand' END AS region_navn_en,
                cvr, indbyggere_2020 AS indbyggere
         FROM kom",
        "kommunekode",
    )?;
    g.write_dim(
        "maaned",
        "SELECT maaned_id, dato, aar, (aar * 10 + (maaned - 1) // 3 + 1)::INTEGER AS kvartal_id,
                ((maaned - 1) // 3 + 1)::INTEGER AS kvartal,
                aar || ' K' || ((maaned - 1) // 3 + 1) AS kvartal_navn,
                aar || ' Q' || ((maaned - 1) // 3 + 1) AS kvartal_navn_en,
                maaned,
                ['januar','februar','marts','april','maj','juni','juli','august','september','oktober',
                 'november','december'][maaned] || ' ' || aar AS maaned_navn,
                ['January','February','March','April','May','June','July','August','September','October',
                 'November','December'][maaned] || ' ' || aar AS maaned_navn_en
         FROM mon",
        "maaned_id",
    )?;
    g.write_dim(
        "uge",
        "SELECT uge_id, aar, uge, uge_start,
                aar || ' uge ' || lpad(uge::VARCHAR, 2, '0') AS uge_navn,
                aar || ' week ' || lpad(uge::VARCHAR, 2, '0') AS uge_navn_en
         FROM wk",
        "uge_id",
    )?;
    let groups = ALDERSGRUPPER
        .iter()
        .enumerate()
        .map(|(i, (lo, hi, name))| {
            format!(
                "WHEN alder BETWEEN {lo} AND {hi} THEN {{'g': '{name}', 's': {}}}",
                i + 1
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    g.write_dim(
        "alder",
        &format!(
            "SELECT alder, grp.g AS aldersgruppe, grp.s::INTEGER AS aldersgruppe_sort
             FROM (SELECT range::INTEGER AS alder, CASE {groups} END AS grp FROM range(0, 111))"
        ),
        "alder",
    )?;
    g.write_dim(
        "koen",
        "SELECT * FROM (VALUES ('M', 'Mand', 'Male'), ('K', 'Kvinde', 'Female')) t(koen_kode, koen_navn, koen_navn_en)",
        "koen_kode DESC",
    )?;
    let completeness: BTreeMap<String, f64> = g.completeness("SELECT kommunekode, 1 AS period FROM kom", 1)?;
    Ok(ManifestExtra {
        period: ("2016-01".into(), "2025-12".into()),
        completeness,
        known_issues: vec![],
    })
}
