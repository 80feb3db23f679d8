//! `beskaeftigelse`: DREAM-like weekly benefit register, one benefit code per person per
//! week.
//!
//! Recipients are synthetic residents aged 18–66 while resident. Each person has a
//! benefit propensity (high / medium / low) that sets the mean gap between spells and the
//! number of spells (16 / 6 / 2); the spells are consecutive and never overlap, each with a
//! benefit drawn by age band and sex and a type-specific length (sygedagpenge weeks,
//! fleksjob years). Førtidspension is a person attribute (12 % get it at some age 30–64, until
//! 67) that ends the other spells. Calibrated to ≈ 11–12 % of the population on some benefit
//! in an average week. Every kommune has one long-term recipient so no kommune-week is empty
//! even at tiny scales.

use anyhow::Result;

use crate::befolkning::ensure_persons;
use crate::{Gen, M0, M1, ManifestExtra, YEARS, q, values};

/// (code, name, English name, group, group name, group English name, mean weeks, min, max).
type Ydelse = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    i64,
    i64,
);
const YDELSER: &[Ydelse] = &[
    (
        "111",
        "Arbejdsløshedsdagpenge",
        "Unemployment benefit",
        "ADAG",
        "A-dagpenge",
        "Unemployment insurance benefit",
        18.0,
        2,
        104,
    ),
    (
        "314",
        "Ledighedsydelse",
        "Flexi-job unemployment allowance",
        "LED",
        "Ledighedsydelse",
        "Flexi-job unemployment allowance",
        20.0,
        2,
        100,
    ),
    (
        "317",
        "Uddannelseshjælp",
        "Education assistance",
        "UDH",
        "Uddannelseshjælp",
        "Education assistance",
        40.0,
        4,
        200,
    ),
    (
        "318",
        "Kontanthjælp",
        "Cash benefit",
        "KTH",
        "Kontanthjælp",
        "Cash benefit",
        50.0,
        4,
        260,
    ),
    (
        "319",
        "Integrationsydelse",
        "Integration benefit",
        "INT",
        "Integrationsydelse",
        "Integration benefit",
        70.0,
        8,
        260,
    ),
    (
        "320",
        "Revalidering",
        "Vocational rehabilitation",
        "REV",
        "Revalidering",
        "Vocational rehabilitation",
        50.0,
        10,
        150,
    ),
    (
        "321",
        "Ressourceforløb",
        "Resource programme",
        "RFL",
        "Ressourceforløb",
        "Resource programme",
        90.0,
        26,
        260,
    ),
    (
        "322",
        "Jobafklaringsforløb",
        "Job clarification programme",
        "JAF",
        "Jobafklaring",
        "Job clarification",
        50.0,
        10,
        150,
    ),
    (
        "351",
        "Fleksløntilskud",
        "Flexi-job wage subsidy",
        "FLX",
        "Fleksjob",
        "Flexi-job",
        250.0,
        52,
        1000,
    ),
    (
        "411",
        "Førtidspension",
        "Disability pension",
        "FTP",
        "Førtidspension",
        "Disability pension",
        2000.0,
        2000,
        2000,
    ),
    (
        "651",
        "SU",
        "State education grant",
        "SU",
        "SU",
        "State education grant",
        100.0,
        26,
        300,
    ),
    (
        "881",
        "Barselsdagpenge",
        "Maternity/paternity benefit",
        "BAR",
        "Barsel",
        "Parental leave",
        26.0,
        14,
        46,
    ),
    (
        "890",
        "Sygedagpenge",
        "Sickness benefit",
        "SDP",
        "Sygedagpenge",
        "Sickness benefit",
        9.0,
        1,
        52,
    ),
];

/// Benefit mix by age band at 2020 ('Y' < 30, 'A' 30–49, 'S' 50+) and sex: (code, weight K, weight M).
/// (code, weight for women, weight for men).
type MixPart = (&'static str, f64, f64);
const MIX: &[(&str, &[MixPart])] = &[
    (
        "Y",
        &[
            ("651", 25.0, 25.0),
            ("317", 8.0, 8.0),
            ("111", 22.0, 22.0),
            ("318", 8.0, 8.0),
            ("890", 20.0, 20.0),
            ("881", 14.0, 3.0),
            ("319", 2.0, 2.0),
            ("322", 1.0, 1.0),
            ("321", 1.0, 1.0),
            ("351", 0.5, 0.5),
            ("314", 0.5, 0.5),
        ],
    ),
    (
        "A",
        &[
            ("111", 28.0, 28.0),
            ("318", 6.0, 6.0),
            ("890", 35.0, 35.0),
            ("881", 12.0, 3.0),
            ("319", 1.5, 1.5),
            ("351", 3.0, 3.0),
            ("321", 1.5, 1.5),
            ("322", 2.5, 2.5),
            ("314", 3.0, 3.0),
            ("320", 0.5, 0.5),
        ],
    ),
    (
        "S",
        &[
            ("111", 26.0, 26.0),
            ("318", 4.0, 4.0),
            ("890", 40.0, 40.0),
            ("351", 4.0, 4.0),
            ("321", 2.0, 2.0),
            ("322", 3.0, 3.0),
            ("314", 5.0, 5.0),
            ("320", 0.3, 0.3),
        ],
    ),
];

/// Mean gap in weeks between spells by propensity class (high, medium, low).
const GAP_HIGH: f64 = 20.0;
const GAP_MEDIUM: f64 = 120.0;
const GAP_LOW: f64 = 1000.0;
const P_HIGH: f64 = 0.12;
const P_MEDIUM: f64 = 0.30;
/// Share of persons who get førtidspension at some age 30–64 (until 67); it ends their
/// other spells.
const P_FTP: f64 = 0.12;
/// Spells per person by class (enough to cover the ten years).
const SLOTS_HIGH: i64 = 16;
const SLOTS_MEDIUM: i64 = 6;
const SLOTS_LOW: i64 = 2;

/// Build the spells table `spells` (one row per benefit spell, weeks indexed from
/// 2016-W01 = 0).
fn ensure_spells(g: &mut Gen) -> Result<()> {
    ensure_persons(g)?;
    if !g.first_time("spells") {
        return Ok(());
    }
    let seed = g.seed;
    let params = YDELSER
        .iter()
        .map(|y| vec![q(y.0), format!("{}", y.6), y.7.to_string(), y.8.to_string()]);
    let mut cdf = Vec::new();
    for (band, parts) in MIX {
        for (sex, col) in [("K", 1), ("M", 2)] {
            let w = |p: &MixPart| if col == 1 { p.1 } else { p.2 };
            let total: f64 = parts.iter().map(w).sum();
            let mut cum = 0.0;
            for p in parts.iter() {
                cdf.push(vec![q(band), q(sex), q(p.0), format!("{:.9}", cum / total)]);
                cum += w(p);
            }
        }
    }
    g.exec(&format!(
        "CREATE TEMP TABLE yd_param(kode VARCHAR, mean DOUBLE, mn BIGINT, mx BIGINT);
         INSERT INTO yd_param VALUES {};
         CREATE TEMP TABLE yd_cdf(band VARCHAR, koen_kode VARCHAR, kode VARCHAR, lo DOUBLE);
         INSERT INTO yd_cdf VALUES {};
         -- lookup table: a hash bucket (1/4096) picks the benefit by age band and sex
         CREATE TEMP TABLE yd_lut AS
         SELECT r.band, r.koen_kode, r.b, c.kode
         FROM (SELECT * FROM (SELECT DISTINCT band, koen_kode FROM yd_cdf), range(4096) t(b)) r
         ASOF JOIN yd_cdf c ON r.band = c.band AND r.koen_kode = c.koen_kode AND (r.b + 0.5) / 4096 >= c.lo;
         CREATE MACRO wk_of(mi) AS ceil(date_diff('day', DATE '2016-01-04', mi_date(mi)) / 7.0)::BIGINT;
         CREATE TEMP TABLE spells AS
         WITH elig AS (
             SELECT pkey, person_id, kommunekode, koen_kode, birth_mi,
                    greatest(0, wk_of(greatest(entry_mi, birth_mi + 216))) AS w_lo,
                    least(520, wk_of(least(coalesce(exit_mi, {M1} + 1), birth_mi + 804, {M1} + 1)) - 1) AS w_hi,
                    CASE WHEN {MREF} - birth_mi < 360 THEN 'Y' WHEN {MREF} - birth_mi < 600 THEN 'A' ELSE 'S' END AS band,
                    CASE WHEN ru(pkey, 201) < {P_HIGH} THEN {GAP_HIGH} WHEN ru(pkey, 201) < {P_HIGH} + {P_MEDIUM} THEN {GAP_MEDIUM}
                         ELSE {GAP_LOW} END AS gap_mean,
                    CASE WHEN ru(pkey, 210) < {P_FTP} THEN wk_of(birth_mi + 12 * (30 + floor(ru(pkey, 211) * 35))::BIGINT) END
                      AS ftp_start,
                    entry_mi < {M0} AND exit_mi IS NULL AND {M0} - birth_mi BETWEEN 300 AND 660 AS forceable
             FROM persons
         ),
         el AS (
             SELECT * EXCLUDE (ftp_start),
                    -- one long-term recipient per kommune (førtidspension through the whole period)
                    CASE WHEN pkey IN (SELECT arg_min(pkey, (ru(pkey, 299), pkey)) FROM elig WHERE forceable
                                       GROUP BY kommunekode) THEN w_lo
                         WHEN ftp_start <= w_hi THEN greatest(w_lo, ftp_start) END AS ftp_w
             FROM elig WHERE w_lo <= w_hi
         ),
         slots AS (
             SELECT el.*, coalesce(ftp_w - 1, w_hi) AS w_end, j, hash(pkey, j, 202, {seed}::UBIGINT) % 4096 AS ub
             FROM (SELECT *, unnest(range(CASE gap_mean WHEN {GAP_HIGH} THEN {SLOTS_HIGH} WHEN {GAP_MEDIUM} THEN {SLOTS_MEDIUM}
                                               ELSE {SLOTS_LOW} END)) AS j FROM el) el
         ),
         typed AS (
             SELECT s.*, c.kode
             FROM slots s JOIN yd_lut c ON s.band = c.band AND s.koen_kode = c.koen_kode AND s.ub = c.b
         ),
         sized AS (
             SELECT t.*,
                    greatest(1, round(greatest(p.mn, least(p.mx, round(p.mn + rexp2(t.pkey, t.j, 203) * (p.mean - p.mn))))
                      * CASE WHEN t.kode = '881' AND t.koen_kode = 'M' THEN 0.25 ELSE 1 END))::BIGINT AS len,
                    floor(rexp2(t.pkey, t.j, 204) * t.gap_mean)::BIGINT AS gap
             FROM typed t JOIN yd_param p ON p.kode = t.kode
         ),
         started AS (
             SELECT *,
                    (-- persons eligible from the start of 2016 begin somewhere in a gap-spell cycle
                     -- before it, so the weekly stock is stationary from the first week
                     CASE WHEN w_lo = 0 THEN -floor(ru(pkey, 205) * (gap_mean + 60))::BIGINT ELSE w_lo END
                      + sum(gap + len) OVER (PARTITION BY pkey ORDER BY j ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                     - len
                    )::BIGINT AS s
             FROM sized
         )
         SELECT pkey, person_id, kommunekode, koen_kode, birth_mi, kode AS ydelse_kode,
                greatest(s, w_lo) AS w_from, least(s + len - 1, w_end) AS w_to,
                CASE WHEN kode = '890' AND ru2(pkey, j, 206) < 0.2 THEN 0.5
                     WHEN kode = '111' AND ru2(pkey, j, 206) < 0.15 THEN 0.5
                     WHEN kode = '111' AND ru2(pkey, j, 206) < 0.2 THEN 0.75
                     WHEN kode = '351' THEN [0.5, 0.625, 0.75][1 + floor(ru2(pkey, j, 206) * 3)::INTEGER]
                     ELSE 1.0 END AS fuldtid
         FROM started
         WHERE greatest(s, w_lo) <= least(s + len - 1, w_end)
         UNION ALL
         SELECT pkey, person_id, kommunekode, koen_kode, birth_mi, '411', ftp_w, w_hi, 1.0
         FROM el WHERE ftp_w IS NOT NULL;
         CREATE TEMP TABLE besk_km(mi BIGINT, kommunekode INTEGER, ledige_uger BIGINT);
         CREATE TEMP TABLE besk_kw(kommunekode INTEGER, w BIGINT);",
        values(params),
        values(cdf),
        MREF = crate::MREF,
    ))?;
    Ok(())
}

/// Build (and write when writing) the weekly rows, and the summary `besk_km` (recipient-weeks
/// of A-dagpenge and kontanthjælp per kommune and month of the week's Monday).
pub(crate) fn facts(g: &mut Gen) -> Result<()> {
    ensure_spells(g)?;
    g.step("forloeb");
    for y in YEARS {
        let (w0, w1): (i64, i64) = (
            g.query_i64(&format!("SELECT min(w) FROM wk WHERE aar = {y}"))?,
            g.query_i64(&format!("SELECT max(w) FROM wk WHERE aar = {y}"))?,
        );
        g.exec(&format!(
            "CREATE OR REPLACE TEMP TABLE cur_yd AS
             SELECT wk.aar, wk.uge_id, s.kommunekode, s.person_id, s.ydelse_kode, s.fuldtid::DOUBLE AS fuldtid,
                    ((wk.mi - s.birth_mi) // 12)::INTEGER AS alder, s.koen_kode, wk.mi, wk.w,
                    -- sort key: kommune, week, person (pkey order = person order, cheaper than text)
                    (s.kommunekode::BIGINT * 1024 + wk.w) * 536870912 + s.pkey % 1000000000 AS __k
             FROM (SELECT *, unnest(range(greatest(w_from, {w0}), least(w_to, {w1}) + 1)) AS w FROM spells
                   WHERE w_from <= {w1} AND w_to >= {w0}) s
             JOIN wk USING (w);
             INSERT INTO besk_km SELECT mi, kommunekode, count(*) FILTER (WHERE ydelse_kode IN ('111', '318'))
                                 FROM cur_yd GROUP BY ALL;
             INSERT INTO besk_kw SELECT DISTINCT kommunekode, w FROM cur_yd;"
        ))?;
        g.write_part(
            "ydelse_uge",
            y,
            "SELECT aar, uge_id, kommunekode, person_id, ydelse_kode, fuldtid, alder, koen_kode, __k FROM cur_yd",
            "__k",
        )?;
    }
    g.exec("DROP TABLE cur_yd")?;
    g.first_time("beskaeftigelse_summary");
    Ok(())
}

pub(crate) fn ensure_summary(g: &mut Gen) -> Result<()> {
    if g.is_built("beskaeftigelse_summary") {
        return Ok(());
    }
    g.without_writing(facts)
}

pub(crate) fn generate(g: &mut Gen) -> Result<ManifestExtra> {
    facts(g)?;
    let yd = YDELSER
        .iter()
        .map(|y| vec![q(y.0), q(y.1), q(y.2), q(y.3), q(y.4), q(y.5)]);
    g.write_dim(
        "ydelse",
        &format!(
            "SELECT * FROM (VALUES {}) t(ydelse_kode, ydelse_navn, ydelse_navn_en, ydelsesgruppe_kode,
                                         ydelsesgruppe_navn, ydelsesgruppe_navn_en)",
            values(yd)
        ),
        "ydelse_kode",
    )?;
    let completeness = g.completeness("SELECT kommunekode, w AS period FROM besk_kw", 521)?;
    Ok(ManifestExtra {
        period: ("2016-W01".into(), "2025-W52".into()),
        completeness,
        known_issues: vec![
            "Synthetic benefit spells; no priority rule is needed because a person's spells never overlap.".into(),
            "Recipients are residents aged 18–66; folkepension and efterløn are not included.".into(),
        ],
    })
}
