//! `skole`: pupils × school year × subject, with absence days and 9th-grade exam grades.
//!
//! Pupils are the synthetic residents (`befolkning`) living in the kommune on 1 August of
//! the school year, in klassetrin = school year − birth year − 6 ∈ 0…9 (≈ 11 % of the
//! population), so pupil ids are person ids. Schools per kommune ∝ population (at most one
//! per 8,000 inhabitants, at least ~150 pupils per school at small scales). Grades on the
//! 7-point scale (−3, 00, 02, 4, 7, 10, 12) for 9th grade exam subjects only.

use anyhow::Result;

use crate::befolkning::ensure_persons;
use crate::{Gen, ManifestExtra, YEARS, q, values};

pub(crate) const SKOLE_NAVNE: &[&str] = &[
    "Nordskolen",
    "Sydskolen",
    "Østskolen",
    "Vestskolen",
    "Centralskolen",
    "Bakkeskolen",
    "Engskolen",
    "Skovskolen",
    "Søskolen",
    "Byskolen",
    "Parkskolen",
    "Åskolen",
    "Hedeskolen",
    "Fjordskolen",
    "Strandskolen",
    "Lindeskolen",
    "Rosenvængets Skole",
    "Kildeskolen",
    "Møllevangskolen",
    "Højvangskolen",
    "Toftevangskolen",
    "Søndervangskolen",
    "Nørre Skole",
    "Vester Skole",
    "Klostermarksskolen",
    "Kirkebakkeskolen",
    "Ådalsskolen",
    "Bøgeskovskolen",
    "Egeskovskolen",
    "Rønneskolen",
    "Solhøjskolen",
    "Tingvejskolen",
    "Fællesskolen",
    "Mariehøjskolen",
    "Vestervangskolen",
    "Langagerskolen",
    "Holmebækskolen",
    "Stensballeskolen",
    "Grønvangskolen",
    "Lykkebækskolen",
];

/// (code, name, English name, exam subject in 9th grade, klassetrin from, to, weekly lessons).
const FAG: &[(&str, &str, &str, bool, i32, i32, f64)] = &[
    ("DAN", "Dansk", "Danish", true, 0, 9, 8.0),
    ("MAT", "Matematik", "Mathematics", true, 0, 9, 5.0),
    ("ENG", "Engelsk", "English", true, 1, 9, 2.5),
    ("TYS", "Tysk", "German", true, 5, 9, 3.0),
    ("HIS", "Historie", "History", true, 3, 9, 2.0),
    ("KRI", "Kristendomskundskab", "Christian studies", true, 1, 9, 1.0),
    ("NAT", "Natur/teknologi", "Science and technology", false, 1, 6, 2.0),
    ("FYS", "Fysik/kemi", "Physics and chemistry", true, 7, 9, 2.0),
    ("BIO", "Biologi", "Biology", true, 7, 9, 2.0),
    ("GEO", "Geografi", "Geography", true, 7, 9, 1.5),
    ("SAM", "Samfundsfag", "Social studies", true, 8, 9, 2.0),
    ("IDR", "Idræt", "Physical education", false, 0, 9, 2.5),
    ("MUS", "Musik", "Music", false, 1, 6, 1.5),
    ("BIL", "Billedkunst", "Visual arts", false, 1, 5, 1.5),
    ("HDS", "Håndværk og design", "Crafts and design", false, 4, 7, 2.0),
    ("MAD", "Madkundskab", "Food knowledge", false, 4, 7, 1.5),
];

/// Tables `skole_k` (schools per kommune) and `skoler` (shared with the organisation in
/// `personale`, whose school units carry the same names).
pub(crate) fn ensure_schools(g: &mut Gen) -> Result<()> {
    if !g.first_time("schools") {
        return Ok(());
    }
    let scale = g.scale;
    let names = SKOLE_NAVNE.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
    let n = SKOLE_NAVNE.len();
    g.exec(&format!(
        "CREATE TEMP TABLE skole_k AS
         SELECT kommunekode,
                greatest(1, least(ceil(indbyggere_2020 / 8000.0), round(indbyggere_2020 * {scale} * 0.11 / 150)))::INTEGER
                  AS n_skoler
         FROM kom;
         CREATE TEMP TABLE skoler AS
         SELECT (kommunekode * 100 + s)::INTEGER AS skole_id, kommunekode, s,
                [{names}][(s - 1) % {n} + 1] || CASE WHEN s > {n} THEN ' afd. ' || ((s - 1) // {n} + 1) ELSE '' END
                  AS skole_navn
         FROM (SELECT kommunekode, unnest(range(1, n_skoler + 1))::INTEGER AS s FROM skole_k);"
    ))?;
    Ok(())
}

pub(crate) fn generate(g: &mut Gen) -> Result<ManifestExtra> {
    ensure_persons(g)?;
    ensure_schools(g)?;
    let mut rows = Vec::new();
    for (i, f) in FAG.iter().enumerate() {
        for k in 0..=9 {
            if k < f.4 || k > f.5 {
                continue;
            }
            let total: f64 = FAG.iter().filter(|x| k >= x.4 && k <= x.5).map(|x| x.6).sum();
            rows.push(vec![
                q(f.0),
                i.to_string(),
                k.to_string(),
                format!("{:.9}", f.6 / total),
                f.3.to_string(),
            ]);
        }
    }
    g.exec(&format!(
        "CREATE TEMP TABLE fag_trin(fag_kode VARCHAR, fi INTEGER, klassetrin INTEGER, share DOUBLE, exam BOOLEAN);
         INSERT INTO fag_trin VALUES {};
         CREATE TEMP TABLE skole_ky(kommunekode INTEGER, aar INTEGER);",
        values(rows)
    ))?;
    for y in YEARS {
        let aug = y as i64 * 12 + 7;
        let sql = format!(
            "WITH pupils AS (
                 SELECT p.person_id, p.pkey, p.kommunekode, p.koen_kode,
                        ({y} - p.birth_mi // 12 - 6)::INTEGER AS klassetrin,
                        6 * exp(0.8 * rn2(p.pkey, {y}, 303)) AS d_tot,
                        0.8 * rn(p.pkey, 302) AS ability
                 FROM persons p
                 WHERE p.entry_mi <= {aug} AND coalesce(p.exit_mi, 999999) > {aug}
                   AND {y} - p.birth_mi // 12 - 6 BETWEEN 0 AND 9
             ),
             placed AS (
                 SELECT pu.*, s.skole_id
                 FROM pupils pu JOIN skole_k k USING (kommunekode)
                 JOIN skoler s ON s.kommunekode = pu.kommunekode
                              AND s.s = 1 + floor(pow(ru(pu.pkey, 301), 1.2) * k.n_skoler)
             )
             SELECT {y}::INTEGER AS aar, '{y}/' || lpad((({y} + 1) % 100)::VARCHAR, 2, '0') AS skoleaar,
                    p.kommunekode, p.skole_id, p.klassetrin, f.fag_kode, p.person_id AS elev_id, p.koen_kode,
                    (round(p.d_tot * f.share * 4) / 4)::DOUBLE AS fravaersdage,
                    CASE WHEN p.klassetrin = 9 AND f.exam THEN
                        CASE WHEN z < -2.1 THEN -3 WHEN z < -1.6 THEN 0 WHEN z < -0.95 THEN 2 WHEN z < -0.3 THEN 4
                             WHEN z < 0.5 THEN 7 WHEN z < 1.25 THEN 10 ELSE 12 END END::DOUBLE AS karakter
             FROM placed p JOIN fag_trin f USING (klassetrin),
                  LATERAL (SELECT p.ability + 0.6 * rn2(p.pkey, f.fi, 304) AS z)"
        );
        g.write_part(
            "elev_fag",
            y,
            &sql,
            "kommunekode, skole_id, klassetrin, elev_id, fag_kode",
        )?;
        g.exec(&format!(
            "INSERT INTO skole_ky SELECT DISTINCT kommunekode, {y} FROM persons
             WHERE entry_mi <= {aug} AND coalesce(exit_mi, 999999) > {aug} AND {y} - birth_mi // 12 - 6 BETWEEN 0 AND 9"
        ))?;
    }
    g.write_dim(
        "skole",
        "SELECT skole_id, kommunekode, skole_navn FROM skoler",
        "skole_id",
    )?;
    let fag = FAG.iter().map(|f| vec![q(f.0), q(f.1), q(f.2)]);
    g.write_dim(
        "fag",
        &format!(
            "SELECT * FROM (VALUES {}) t(fag_kode, fag_navn, fag_navn_en)",
            values(fag)
        ),
        "fag_kode",
    )?;
    g.write_dim(
        "klassetrin",
        "SELECT range::INTEGER AS klassetrin, range || '. klasse' AS klassetrin_navn, 'Grade ' || range AS klassetrin_navn_en
         FROM range(0, 10)",
        "klassetrin",
    )?;
    let completeness = g.completeness("SELECT kommunekode, aar AS period FROM skole_ky", YEARS.count() as i64)?;
    Ok(ManifestExtra {
        period: ("2016/17".into(), "2025/26".into()),
        completeness,
        known_issues: vec![
            "All resident children of school age are pupils of a municipal school (no private or special schools)."
                .into(),
            "Absence days are per pupil and school year, split over subjects by lesson share (rounded to ¼ day)."
                .into(),
        ],
    })
}
