//! `personale`: organisation (forvaltning → afdeling → enhed), employees and monthly
//! absence.
//!
//! Positions ≈ 9 % of the synthetic population per kommune (at least 5), each filled by a
//! sequence of employees (tenure ≈ 7.5 years on average, short vacancies). One row per
//! employee × month × absence reason; reason '00' when there is no absence that month.
//! Sick days are right-skewed (a log-normal "frailty" per employee, a few long-term
//! sick months), ≈ 12 days per full-time employee per year. Days are multiples of ½ and
//! FTE fractions multiples of ⅛, so sums are exact in floating point.

use anyhow::Result;

use crate::skole::SKOLE_NAVNE;
use crate::{Gen, M0, M1, ManifestExtra, YEARS, q, values};

/// (forvaltning, fallback forvaltning when the kommune has fewer, afdelinger).
/// Afdeling: (name, unit name prefix, staff weight, staff mix, units per 10,000 inhabitants).
type Afdeling = (&'static str, &'static str, f64, &'static str, f64);
const FORVALTNINGER: &[(&str, usize, &[Afdeling])] = &[
    (
        "Børne- og Ungeforvaltningen",
        1,
        &[
            ("Skoler", "", 25.0, "skole", 0.0),
            ("Dagtilbud", "Børnehuset", 20.0, "dagtilbud", 1.2),
            ("Familie og Rådgivning", "Familieteam", 4.0, "social", 0.3),
            ("PPR og Sundhedspleje", "Sundhedsplejen", 2.0, "social", 0.15),
        ],
    ),
    (
        "Social- og Sundhedsforvaltningen",
        2,
        &[
            ("Hjemmepleje", "Hjemmeplejen", 12.0, "pleje", 0.4),
            ("Plejecentre", "Plejecenter", 13.0, "pleje", 0.35),
            ("Sundhed og Forebyggelse", "Sundhedscenter", 3.0, "pleje", 0.15),
            ("Handicap og Psykiatri", "Bostedet", 8.0, "social", 0.3),
        ],
    ),
    (
        "Økonomi- og Personaleforvaltningen",
        3,
        &[
            ("Økonomi og Analyse", "Økonomi", 2.0, "adm", 0.05),
            ("HR og Løn", "HR", 1.5, "adm", 0.05),
            ("Digitalisering og IT", "IT", 1.5, "adm", 0.05),
            ("Borgerservice", "Borgerservice", 1.5, "adm", 0.1),
        ],
    ),
    (
        "Teknik- og Miljøforvaltningen",
        3,
        &[
            ("Vej og Park", "Driftsområde", 3.0, "teknik", 0.15),
            ("Byggeri og Plan", "Byggesag", 1.0, "adm", 0.05),
            ("Natur og Miljø", "Natur", 1.0, "adm", 0.05),
            ("Ejendomme", "Ejendomsservice", 1.5, "teknik", 0.1),
        ],
    ),
    (
        "Beskæftigelses- og Integrationsforvaltningen",
        2,
        &[
            ("Jobcenter", "Jobcenter", 3.0, "adm", 0.1),
            ("Ydelsesservice", "Ydelser", 1.0, "adm", 0.05),
            ("Integration", "Integration", 0.7, "adm", 0.05),
        ],
    ),
    (
        "Kultur- og Fritidsforvaltningen",
        1,
        &[
            ("Biblioteker", "Bibliotek", 1.2, "kultur", 0.2),
            ("Idræt og Fritid", "Idrætscenter", 1.0, "teknik", 0.2),
            ("Kulturhuse", "Kulturhus", 0.6, "kultur", 0.1),
        ],
    ),
];

const STEDER: &[&str] = &[
    "Nord",
    "Syd",
    "Øst",
    "Vest",
    "Centrum",
    "Midt",
    "Bakken",
    "Engen",
    "Skoven",
    "Søen",
    "Parken",
    "Åen",
    "Heden",
    "Fjorden",
    "Stranden",
    "Lunden",
    "Kilden",
    "Møllen",
    "Vangen",
    "Toften",
    "Højen",
    "Dalen",
    "Bækken",
    "Mosen",
    "Lyngen",
    "Agerbo",
    "Solgården",
    "Rosenhaven",
    "Kastanjen",
    "Egely",
];

/// Staff mix → (personalegruppe, weight).
const MIX: &[(&str, &[(&str, f64)])] = &[
    (
        "skole",
        &[("LAER", 70.0), ("PAED", 15.0), ("LED", 5.0), ("ADM", 5.0), ("TEK", 5.0)],
    ),
    (
        "dagtilbud",
        &[("PAED", 55.0), ("PMH", 35.0), ("LED", 5.0), ("ADM", 2.0), ("TEK", 3.0)],
    ),
    (
        "pleje",
        &[("SSH", 45.0), ("SSA", 33.0), ("SYG", 12.0), ("LED", 5.0), ("ADM", 5.0)],
    ),
    (
        "social",
        &[
            ("AKA", 35.0),
            ("PAED", 35.0),
            ("SSA", 10.0),
            ("LED", 7.0),
            ("ADM", 13.0),
        ],
    ),
    ("adm", &[("ADM", 55.0), ("AKA", 35.0), ("LED", 10.0)]),
    ("teknik", &[("TEK", 65.0), ("ADM", 15.0), ("AKA", 12.0), ("LED", 8.0)]),
    ("kultur", &[("ADM", 35.0), ("AKA", 35.0), ("TEK", 20.0), ("LED", 10.0)]),
];

const PERSONALEGRUPPER: &[(&str, &str, &str)] = &[
    ("ADM", "Administrative medarbejdere", "Administrative staff"),
    ("AKA", "Akademikere", "Academics"),
    ("LAER", "Lærere", "Teachers"),
    ("LED", "Ledere", "Managers"),
    ("PAED", "Pædagoger", "Pedagogues"),
    ("PMH", "Pædagogmedhjælpere", "Pedagogical assistants"),
    (
        "SSA",
        "Social- og sundhedsassistenter",
        "Social and health care assistants",
    ),
    ("SSH", "Social- og sundhedshjælpere", "Social and health care helpers"),
    ("SYG", "Sygeplejersker", "Nurses"),
    (
        "TEK",
        "Teknisk service og håndværkere",
        "Technical service and craftsmen",
    ),
];

pub(crate) const FRAVAERSAARSAGER: &[(&str, &str, &str)] = &[
    ("00", "Intet fravær", "No absence"),
    ("01", "Egen sygdom", "Own illness"),
    ("02", "Barns sygdom", "Child's illness"),
    ("03", "Omsorgsdage", "Care days"),
    ("04", "Barsel", "Maternity/paternity leave"),
    ("05", "Arbejdsskade", "Work injury"),
    ("06", "§ 56-fravær", "Section 56 absence"),
    ("07", "Kursus og uddannelse", "Courses and training"),
    ("08", "Seniordage", "Senior days"),
];

fn setup(g: &mut Gen) -> Result<()> {
    if !g.first_time("personale_setup") {
        return Ok(());
    }
    let mut afd = Vec::new();
    for (fi, (fname, fallback, afdelinger)) in FORVALTNINGER.iter().enumerate() {
        for (ai, (aname, prefix, weight, mix, per10k)) in afdelinger.iter().enumerate() {
            afd.push(vec![
                (fi + 1).to_string(),
                q(fname),
                fallback.to_string(),
                (ai + 1).to_string(),
                q(aname),
                q(prefix),
                format!("{weight}"),
                q(mix),
                format!("{per10k}"),
            ]);
        }
    }
    let mut mix_rows = Vec::new();
    for (mix, parts) in MIX {
        let total: f64 = parts.iter().map(|p| p.1).sum();
        let mut cum = 0.0;
        for (grp, w) in parts.iter() {
            mix_rows.push(vec![q(mix), q(grp), format!("{:.9}", cum / total)]);
            cum += w;
        }
    }
    let steder = STEDER.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
    let skoler = SKOLE_NAVNE.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
    let nsteder = STEDER.len();
    let nskoler = SKOLE_NAVNE.len();
    g.exec(&format!(
        "CREATE TEMP TABLE afd_tpl(f INTEGER, forvaltning VARCHAR, fallback INTEGER, a INTEGER, afdeling VARCHAR,
                                   prefix VARCHAR, weight DOUBLE, mix VARCHAR, per10k DOUBLE);
         INSERT INTO afd_tpl VALUES {};
         CREATE TEMP TABLE mix_cdf(mix VARCHAR, personalegruppe_kode VARCHAR, lo DOUBLE);
         INSERT INTO mix_cdf VALUES {};
         -- number of forvaltninger by size
         CREATE TEMP TABLE org_k AS
         SELECT kommunekode, indbyggere_2020, popsyn,
                CASE WHEN indbyggere_2020 < 20000 THEN 3 WHEN indbyggere_2020 < 50000 THEN 4
                     WHEN indbyggere_2020 < 100000 THEN 5 ELSE 6 END AS nf,
                greatest(5, round(0.09 * popsyn))::BIGINT AS npos
         FROM kom;
         CREATE TEMP TABLE org_afd AS
         SELECT k.kommunekode, k.nf, t.*, CASE WHEN t.f <= k.nf THEN t.f ELSE t.fallback END AS parent_f,
                CASE WHEN t.afdeling = 'Skoler' THEN s.n_skoler
                     ELSE least(60, greatest(1, round(k.indbyggere_2020 / 10000.0 * t.per10k)))::INTEGER END AS ne
         FROM org_k k CROSS JOIN afd_tpl t JOIN skole_k s USING (kommunekode);
         CREATE TEMP TABLE org_enh AS
         SELECT kommunekode, f, a, e, weight / ne * (0.7 + 0.6 * ru2(kommunekode, f * 10000 + a * 100 + e, 401)) AS w,
                mix,
                CASE WHEN afdeling = 'Skoler'
                     THEN [{skoler}][(e - 1) % {nskoler} + 1]
                          || CASE WHEN e > {nskoler} THEN ' afd. ' || ((e - 1) // {nskoler} + 1) ELSE '' END
                     WHEN ne = 1 THEN prefix
                     ELSE prefix || ' ' || [{steder}][(e - 1) % {nsteder} + 1]
                          || CASE WHEN e > {nsteder} THEN ' ' || ((e - 1) // {nsteder} + 1) ELSE '' END END AS navn
         FROM (SELECT *, unnest(range(1, ne + 1)) AS e FROM org_afd);
         CREATE TEMP TABLE org_cdf AS
         SELECT kommunekode, f, a, e, mix, (sum(wi) OVER (PARTITION BY kommunekode ORDER BY f, a, e) - wi)::DOUBLE
                / sum(wi) OVER (PARTITION BY kommunekode) AS lo
         FROM (SELECT *, round(w * 1000000)::BIGINT AS wi FROM org_enh);",
        values(afd),
        values(mix_rows)
    ))?;
    // Positions → units → employees (spells of tenure).
    g.exec(&format!(
        "CREATE TEMP TABLE pos AS
         SELECT p.kommunekode, p.n, (p.kommunekode * 10000 + c.f * 1000 + c.a * 100 + c.e)::INTEGER AS org_enhed_id,
                c.mix
         FROM (SELECT kommunekode, unnest(range(npos)) AS n FROM org_k) p
         ASOF JOIN org_cdf c ON p.kommunekode = c.kommunekode AND ru2(p.kommunekode, p.n, 402) >= c.lo;
         CREATE TEMP TABLE pos_grp AS
         SELECT p.*, m.personalegruppe_kode
         FROM (SELECT *, ru2(kommunekode, n, 403) AS u FROM pos) p
         ASOF JOIN mix_cdf m ON p.mix = m.mix AND p.u >= m.lo;
         CREATE TEMP TABLE emp AS
         WITH spells AS (
             SELECT kommunekode, n, pk, org_enhed_id, personalegruppe_kode, j,
                    1 + floor((rexp2(pk, j, 404) + CASE WHEN j = 0 THEN rexp(pk, 409) ELSE 0 END) * 90)::BIGINT AS len,
                    floor(rexp2(pk, j, 405) * 1.5)::BIGINT AS gap
             FROM (SELECT *, kommunekode::BIGINT * 10000000 + n AS pk, unnest(range(6)) AS j FROM pos_grp)
         ),
         started0 AS (
             SELECT *,
                    {M0} - floor(ru(pk, 406) * first_value(len) OVER (PARTITION BY pk ORDER BY j))::BIGINT
                      + coalesce(sum(len + gap) OVER (PARTITION BY pk ORDER BY j
                                                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS start_mi0
             FROM spells
         ),
         started AS (SELECT * EXCLUDE (start_mi0), start_mi0::BIGINT AS start_mi FROM started0)
         SELECT 'M' || lpad((row_number() OVER (ORDER BY kommunekode, n, j))::VARCHAR, 7, '0') AS medarbejder_id,
                row_number() OVER (ORDER BY kommunekode, n, j) AS eseq,
                kommunekode, n, j, org_enhed_id, personalegruppe_kode, start_mi, start_mi + len - 1 AS end_mi,
                [1.0, 1.0, 1.0, 1.0, 1.0, 0.875, 0.875, 0.75, 0.625, 0.5][1 + floor(ru2(pk, j, 407) * 10)::INTEGER] AS aarsvaerk,
                exp(1.2 * rn2(pk, j, 408) - 0.72) AS frailty
         FROM started
         WHERE start_mi <= {M1} AND start_mi + len - 1 >= {M0};
         CREATE TEMP TABLE pers_km(maaned_id INTEGER, kommunekode INTEGER, ansatte BIGINT,
                                   sygefravaersdage DOUBLE, mulige_arbejdsdage DOUBLE);"
    ))?;
    Ok(())
}

/// Build (and write when writing) the absence rows of every year, and the summary
/// `pers_km` per kommune-month for the benchmark.
pub(crate) fn facts(g: &mut Gen) -> Result<()> {
    crate::skole::ensure_schools(g)?;
    setup(g)?;
    let seed = g.seed;
    for y in YEARS {
        let (a, b) = (y as i64 * 12, y as i64 * 12 + 11);
        g.exec(&format!(
            "CREATE OR REPLACE TEMP TABLE cur_fr AS
             WITH em AS (
                 SELECT e.eseq, e.medarbejder_id, e.kommunekode, e.org_enhed_id, e.personalegruppe_kode, e.aarsvaerk,
                        e.frailty, m.mi, m.maaned_id, m.arbejdsdage,
                        -- four 16-bit uniforms per hash
                        hash(e.eseq, m.mi, {seed}::UBIGINT, 1) AS h1, hash(e.eseq, m.mi, {seed}::UBIGINT, 2) AS h2,
                        hash(e.eseq, m.mi, {seed}::UBIGINT, 3) AS h3, hash(e.eseq, m.mi, {seed}::UBIGINT, 4) AS h4
                 FROM (SELECT *, unnest(range(greatest(start_mi, {a}), least(end_mi, {b}) + 1)) AS mi FROM emp
                       WHERE start_mi <= {b} AND end_mi >= {a}) e
                 JOIN mon m USING (mi)
             ),
             days AS (
                 SELECT *,
                        CASE WHEN u16(h1, 0) < 0.006 * pow(frailty, 1.5) THEN arbejdsdage::DOUBLE
                             WHEN u16(h1, 1) < 1 - exp(-0.5 * frailty)
                             THEN least(arbejdsdage, 0.5 * (1 + floor(-ln(u16(h1, 2)) * 3.2 * sqrt(frailty))))
                             ELSE 0 END AS d01,
                        CASE WHEN u16(h1, 3) < 0.07 THEN 0.5 * (1 + floor(u16(h2, 0) * 4)) ELSE 0 END AS d02,
                        CASE WHEN u16(h2, 1) < 0.03 THEN 1.0 ELSE 0 END AS d03,
                        CASE WHEN u16(h2, 2) < 0.004 THEN arbejdsdage::DOUBLE ELSE 0 END AS d04,
                        CASE WHEN u16(h2, 3) < 0.002 THEN 1 + floor(u16(h3, 0) * 10) ELSE 0 END AS d05,
                        CASE WHEN u16(h3, 1) < 0.003 THEN 1 + floor(u16(h3, 2) * 3) ELSE 0 END AS d06,
                        CASE WHEN u16(h3, 3) < 0.05 THEN 1 + floor(u16(h4, 0) * 3) ELSE 0 END AS d07,
                        CASE WHEN u16(h4, 1) < 0.02 THEN 1.0 ELSE 0 END AS d08
                 FROM em
             ),
             listed AS (
                 SELECT *, list_filter([{{'k': 1, 'd': d01}}, {{'k': 2, 'd': d02}}, {{'k': 3, 'd': d03}},
                                        {{'k': 4, 'd': d04}}, {{'k': 5, 'd': d05}}, {{'k': 6, 'd': d06}},
                                        {{'k': 7, 'd': d07}}, {{'k': 8, 'd': d08}}], x -> x.d > 0) AS l
                 FROM days
             ),
             rows AS (
                 SELECT *, unnest(CASE WHEN len(l) = 0 THEN [{{'k': 0, 'd': 0.0}}] ELSE l END) AS r,
                        unnest(range(greatest(len(l), 1))) AS idx
                 FROM listed
             )
             SELECT {y}::INTEGER AS aar, maaned_id, kommunekode, medarbejder_id, org_enhed_id, personalegruppe_kode,
                    '0' || r.k AS fravaersaarsag_kode, r.d::DOUBLE AS fravaersdage,
                    CASE WHEN idx = 0 THEN aarsvaerk END::DOUBLE AS aarsvaerk, arbejdsdage,
                    ((kommunekode::BIGINT * 1000 + (mi - {M0})) * 10000000 + eseq) * 10 + r.k AS __k
             FROM rows;
             INSERT INTO pers_km
             SELECT maaned_id, kommunekode, count(aarsvaerk),
                    sum(fravaersdage) FILTER (WHERE fravaersaarsag_kode = '01'),
                    sum(aarsvaerk * arbejdsdage)
             FROM cur_fr GROUP BY ALL;"
        ))?;
        g.write_part("fravaer", y, "SELECT * EXCLUDE (arbejdsdage) FROM cur_fr", "__k")?;
    }
    g.exec("DROP TABLE cur_fr")?;
    g.first_time("personale_summary");
    Ok(())
}

pub(crate) fn ensure_summary(g: &mut Gen) -> Result<()> {
    if g.is_built("personale_summary") {
        return Ok(());
    }
    g.without_writing(facts)
}

pub(crate) fn generate(g: &mut Gen) -> Result<ManifestExtra> {
    facts(g)?;
    g.write_dim(
        "organisation",
        "SELECT * FROM (
             SELECT DISTINCT (kommunekode * 10000 + parent_f * 1000)::INTEGER AS org_enhed_id,
                    NULL::INTEGER AS overordnet_id, kommunekode,
                    (SELECT forvaltning FROM afd_tpl t WHERE t.f = o.parent_f LIMIT 1) AS org_enhed_navn,
                    'forvaltning' AS niveau
             FROM org_afd o
             UNION ALL
             SELECT (kommunekode * 10000 + f * 1000 + a * 100)::INTEGER, (kommunekode * 10000 + parent_f * 1000)::INTEGER,
                    kommunekode, afdeling, 'afdeling'
             FROM org_afd
             UNION ALL
             SELECT (kommunekode * 10000 + f * 1000 + a * 100 + e)::INTEGER, (kommunekode * 10000 + f * 1000 + a * 100)::INTEGER,
                    kommunekode, navn, 'enhed'
             FROM org_enh)",
        "org_enhed_id",
    )?;
    let pg = PERSONALEGRUPPER.iter().map(|p| vec![q(p.0), q(p.1), q(p.2)]);
    g.write_dim(
        "personalegruppe",
        &format!(
            "SELECT * FROM (VALUES {}) t(personalegruppe_kode, personalegruppe_navn, personalegruppe_navn_en)",
            values(pg)
        ),
        "personalegruppe_kode",
    )?;
    let fa = FRAVAERSAARSAGER.iter().map(|p| vec![q(p.0), q(p.1), q(p.2)]);
    g.write_dim(
        "fravaersaarsag",
        &format!(
            "SELECT * FROM (VALUES {}) t(fravaersaarsag_kode, fravaersaarsag_navn, fravaersaarsag_navn_en)",
            values(fa)
        ),
        "fravaersaarsag_kode",
    )?;
    let completeness = g.completeness(
        "SELECT kommunekode, maaned_id AS period FROM pers_km WHERE ansatte > 0",
        120,
    )?;
    Ok(ManifestExtra {
        period: ("2016-01".into(), "2025-12".into()),
        completeness,
        known_issues: vec![
            "Synthetic employees: one position per ≈ 11 synthetic inhabitants; employee ids are M + 7 digits.".into(),
            "Absence days are calendar working days (Monday–Friday, public holidays not removed).".into(),
        ],
    })
}
