//! `befolkning`: synthetic residents (CPR-like) and the monthly stock/flow fact.
//!
//! Construction (all in SQL, per kommune with P = round(indbyggere_2020 × scale)):
//! * kind 0: exactly P persons resident at the end of 2020-01. Age at 2020-01 from a
//!   Danish-like age distribution (stratified so even Læsø gets a realistic spread); the
//!   entry (birth, move in, or "initial" before 2016) is drawn backwards with an age-dependent
//!   move-in hazard, the exit (death or move out, or none) forwards with death and move-out
//!   hazards.
//! * kind 1: persons who leave between 2016-01 and 2020-01.
//! * kind 2: persons who arrive (born or move in) between 2020-02 and 2025-12.
//!
//! One core person per kommune is pinned (born June 2010, resident throughout) so that every
//! kommune has a pupil in every school year even at tiny scales.
//!
//! A person is in the stock of month m when entry ≤ m < exit; flows are counted in the
//! month they happen, so stock(m) − stock(m−1) = tilflyttede + fødte − fraflyttede − døde.

use anyhow::{Result, bail};

use crate::{Gen, M0, M1, MREF, ManifestExtra, YEARS};

/// Relative weight of each one-year age at 2020-01 (ages 0…100), ≈ DST FOLK1A shape:
/// ~17 % aged 0–14 and ~20 % aged 67+.
fn age_weight(a: i32) -> i64 {
    match a {
        0..=14 => 1150,
        15..=24 => 1250,
        25..=34 => 1300,
        35..=44 => 1200,
        45..=59 => 1350,
        60..=66 => 1250,
        67..=74 => 1300,
        75..=79 => 950,
        80..=84 => 600,
        85..=89 => 330,
        90..=94 => 120,
        _ => 25,
    }
}

/// Scaling of the number of leavers before 2020 and arrivals after 2020, tuned so the
/// national population grows ≈ 0.4 %/year before and ≈ 0.6 %/year after 2020.
const ADJ_PRE: f64 = 0.975;
const ADJ_POST: f64 = 1.09;

/// Bit fields of the packed bestand counts: stock in bits 0–19, then 8 bits per flow.
const IND: u64 = 1 << 20;
const BORN: u64 = 1 << 28;
const UD: u64 = 1 << 36;
const DIED: u64 = 1 << 44;

/// Build the in-memory `persons` table (shared by befolkning, beskaeftigelse, skole and
/// benchmark).
pub(crate) fn ensure_persons(g: &mut Gen) -> Result<()> {
    if !g.first_time("persons") {
        return Ok(());
    }
    let weights = (0..=100)
        .map(|a| format!("({a}, {})", age_weight(a)))
        .collect::<Vec<_>>()
        .join(", ");
    g.exec(&format!(
        "CREATE TEMP TABLE agew AS
         SELECT alder, w,
                least(0.6, CASE WHEN alder = 0 THEN 0.003 ELSE 0.0002 + 0.05 * exp(0.103 * (alder - 80)) END) AS hd,
                CASE WHEN alder < 18 THEN 0.04 WHEN alder < 25 THEN 0.13 WHEN alder < 35 THEN 0.09
                     WHEN alder < 50 THEN 0.04 WHEN alder < 67 THEN 0.025 ELSE 0.015 END AS ho,
                1.05 * CASE WHEN alder < 18 THEN 0.04 WHEN alder < 25 THEN 0.13 WHEN alder < 35 THEN 0.09
                     WHEN alder < 50 THEN 0.04 WHEN alder < 67 THEN 0.025 ELSE 0.015 END AS hi
         FROM (VALUES {weights}) t(alder, w);
         -- cumulative distributions on integer weights (exact, order-independent sums)
         CREATE TEMP TABLE cdf_age AS
         SELECT alder, (sum(w) OVER (ORDER BY alder) - w)::DOUBLE / sum(w) OVER () AS lo FROM agew;
         CREATE TEMP TABLE cdf_exit AS
         SELECT alder, (sum(wi) OVER (ORDER BY alder) - wi)::DOUBLE / sum(wi) OVER () AS lo
         FROM (SELECT alder, round(w * (hd + ho) * 1000000)::BIGINT AS wi FROM agew);
         CREATE TEMP TABLE cdf_in AS
         SELECT alder, (sum(wi) OVER (ORDER BY alder) - wi)::DOUBLE / sum(wi) OVER () AS lo
         FROM (SELECT alder, round(w * hi * 1000000)::BIGINT AS wi FROM agew WHERE alder >= 1);
         CREATE TEMP TABLE rates AS
         SELECT sum(w * (hd + ho)) / sum(w) AS r_out,
                sum(w * hi) FILTER (WHERE alder >= 1) / sum(w) AS r_in,
                sum(w) FILTER (WHERE alder = 0) / sum(w) AS r_birth
         FROM (SELECT alder, w::DOUBLE AS w, hd, ho, hi FROM agew);"
    ))?;
    let pre_months = (MREF - M0 + 1) as f64; // exits in 2016-01 … 2020-01
    let post_months = (M1 - MREF) as f64; // arrivals in 2020-02 … 2025-12
    g.exec(&format!(
        "CREATE TEMP TABLE persons_raw AS
         WITH counts AS (
             SELECT kommunekode, regionskode, indbyggere_2020, p AS n0,
                    round(p * r_out * {pre_months} / 12 * {ADJ_PRE})::BIGINT AS n1,
                    round(p * (r_in + r_birth) * {post_months} / 12 * {ADJ_POST})::BIGINT AS n2,
                    r_in, r_birth
             FROM kom, rates
         ),
         k0 AS (
             SELECT kommunekode, regionskode, indbyggere_2020, n0 AS cnt, unnest(range(n0)) AS n FROM counts
         ),
         k0a AS (
             SELECT *, kommunekode::BIGINT * 1000000000 + n AS pkey FROM k0
         ),
         -- One core person per kommune (at the ≈ 10 % age quantile) is pinned: born June 2010,
         -- resident throughout, so every kommune has a pupil in every school year even at
         -- tiny scales.
         core AS (
             SELECT k.pkey, k.kommunekode, k.regionskode, k.indbyggere_2020, 0 AS kind,
                    CASE WHEN k.pinned THEN 9 ELSE c.alder END AS age_a, {MREF}::BIGINT AS anchor, k.pinned
             FROM (SELECT *, (n + ru(pkey, 1)) / cnt AS ua, n = floor(cnt * 0.105) AS pinned FROM k0a) k
             ASOF JOIN cdf_age c ON k.ua >= c.lo
         ),
         k1 AS (
             SELECT kommunekode, regionskode, indbyggere_2020, n1 AS cnt, unnest(range(n1)) AS n FROM counts
         ),
         pre AS (
             SELECT k.pkey, k.kommunekode, k.regionskode, k.indbyggere_2020, 1 AS kind, c.alder AS age_a,
                    ({M0} + floor(ru(k.pkey, 20) * {pre_months}))::BIGINT AS anchor, false AS pinned
             FROM (SELECT *, kommunekode::BIGINT * 1000000000 + 100000000 + n AS pkey,
                          (n + ru(kommunekode::BIGINT * 1000000000 + 100000000 + n, 1)) / cnt AS ua FROM k1) k
             ASOF JOIN cdf_exit c ON k.ua >= c.lo
         ),
         k2 AS (
             SELECT kommunekode, regionskode, indbyggere_2020, n2 AS cnt, r_birth / (r_in + r_birth) AS pb,
                    unnest(range(n2)) AS n FROM counts
         ),
         k2a AS (
             SELECT *, kommunekode::BIGINT * 1000000000 + 200000000 + n AS pkey FROM k2
         ),
         post AS (
             SELECT k.pkey, k.kommunekode, k.regionskode, k.indbyggere_2020, 2 AS kind,
                    CASE WHEN ru(k.pkey, 21) < k.pb THEN 0 ELSE c.alder END AS age_a,
                    ({MREF} + 1 + floor(ru(k.pkey, 20) * {post_months}))::BIGINT AS anchor, false AS pinned
             FROM (SELECT *, (n + ru(pkey, 1)) / cnt AS ua FROM k2a) k ASOF JOIN cdf_in c ON k.ua >= c.lo
         ),
         allp AS (SELECT * FROM core UNION ALL SELECT * FROM pre UNION ALL SELECT * FROM post),
         timed AS (
             SELECT a.*, h.hd, h.ho, h.hi,
                    CASE WHEN pinned THEN 2010 * 12 + 5
                         WHEN kind = 2 AND age_a = 0 THEN anchor
                         ELSE anchor - age_a * 12 - floor(ru(pkey, 2) * 12)::BIGINT END AS birth_mi
             FROM allp a JOIN agew h ON h.alder = a.age_a
         ),
         -- Forward exits (kinds 0 and 2) are competing risks in years from the anchor: death
         -- with a Gompertz hazard 0.05·e^(0.103·(age − 80)) that grows as the person ages
         -- (inverted in closed form), a small background and infant risk, and moving out
         -- with the age's move-out hazard.
         risks AS (
             SELECT *,
                    least(ln(1 + 0.103 * rexp(pkey, 4) / (0.05 * exp(0.103 * (age_a - 80)))) / 0.103,
                          rexp(pkey, 18) / 0.0002,
                          CASE WHEN age_a = 0 AND rexp(pkey, 22) / 0.003 < 1 THEN rexp(pkey, 22) / 0.003 END) AS t_death,
                    rexp(pkey, 19) / ho AS t_move
             FROM timed
         ),
         entered AS (
             SELECT *,
                    CASE WHEN kind = 2 THEN anchor
                         WHEN pinned OR anchor - floor(rexp(pkey, 3) / hi * 12)::BIGINT <= birth_mi THEN birth_mi
                         ELSE anchor - floor(rexp(pkey, 3) / hi * 12)::BIGINT END AS entry_mi,
                    CASE WHEN kind = 1 THEN anchor
                         WHEN pinned THEN NULL
                         WHEN anchor + floor(least(t_death, t_move) * 12)::BIGINT + 1 <= {M1}
                         THEN anchor + floor(least(t_death, t_move) * 12)::BIGINT + 1 END AS exit_mi,
                    CASE WHEN kind = 1 THEN ru(pkey, 5) < hd / (hd + ho) ELSE t_death < t_move END AS dies
             FROM risks
         )
         SELECT pkey, kommunekode::INTEGER AS kommunekode, kind, birth_mi, entry_mi, exit_mi,
                CASE WHEN entry_mi < {M0} THEN 'initial' WHEN entry_mi = birth_mi THEN 'foedsel'
                     ELSE 'tilflytning' END AS entry_reason,
                CASE WHEN exit_mi IS NULL THEN NULL WHEN dies THEN 'doed'
                     ELSE 'fraflytning' END AS exit_reason,
                (1 + floor(ru(pkey, 15) * 28))::INTEGER AS bday,
                (1 + floor(ru(pkey, 16) * 28))::INTEGER AS eday,
                CASE WHEN ru(pkey, 7) < CASE WHEN age_a >= 80 THEN 0.62 ELSE 0.5 END THEN 'K' ELSE 'M' END AS koen_kode,
                CASE WHEN ru(pkey, 8) < pi THEN 'I' WHEN ru(pkey, 8) < pi + pe THEN 'E' ELSE 'D' END AS herkomst_kode,
                (kommunekode * 100 + 1 + floor(pow(ru(pkey, 6), 1.3)
                    * greatest(1, least(25, ceil(indbyggere_2020 / 15000.0)))))::INTEGER AS distrikt_id,
                CASE WHEN ru(pkey, 9) < 0.72 THEN 22 + floor(ru(pkey, 10) * 20) ELSE 999 END::INTEGER AS m_age,
                CASE WHEN ru(pkey, 9) < 0.72 AND ru(pkey, 11) < 0.28
                     THEN 22 + floor(ru(pkey, 10) * 20) + 2 + floor(ru(pkey, 12) * 25) ELSE 999 END::INTEGER AS div_age,
                CASE WHEN ru(pkey, 9) < 0.72 AND ru(pkey, 11) >= 0.28 AND ru(pkey, 13) < 0.7
                     THEN 58 + floor(ru(pkey, 14) * 32) ELSE 999 END::INTEGER AS wid_age
         FROM (
             SELECT *,
                    (CASE WHEN regionskode = 1084 THEN 0.15 ELSE 0.085 END)
                      * (CASE WHEN age_a < 18 THEN 0.4 WHEN age_a < 40 THEN 1.4 WHEN age_a < 67 THEN 1.0 ELSE 0.4 END) AS pi,
                    (CASE WHEN regionskode = 1084 THEN 0.06 ELSE 0.03 END)
                      * (CASE WHEN age_a < 18 THEN 2.2 WHEN age_a < 40 THEN 1.0 WHEN age_a < 67 THEN 0.4 ELSE 0.1 END) AS pe
             FROM entered
         );
         -- Person ids 00MMYY-SSSS: MM = birth month (+12 per 10,000 persons born in the same
         -- month and two-digit year), YY = birth year mod 100, SSSS = serial. Day 00 makes
         -- them invalid as CPR numbers.
         CREATE TEMP TABLE persons AS
         SELECT *,
                CASE koen_kode WHEN 'K' THEN 0 ELSE 1 END AS koen_i,
                CASE herkomst_kode WHEN 'D' THEN 0 WHEN 'E' THEN 1 ELSE 2 END AS herk_i,
                CASE entry_reason WHEN 'initial' THEN 0 WHEN 'foedsel' THEN 1 ELSE 2 END AS entry_r,
                CASE exit_reason WHEN 'fraflytning' THEN 1 WHEN 'doed' THEN 2 END AS exit_r,
                -- the parts of a bestand cell key and count that do not depend on the month
                distrikt_id::BIGINT * 4096 + CASE koen_kode WHEN 'K' THEN 0 ELSE 16 END
                  + CASE herkomst_kode WHEN 'D' THEN 0 WHEN 'E' THEN 4 ELSE 8 END AS kstat,
                CASE entry_reason WHEN 'tilflytning' THEN {IND} WHEN 'foedsel' THEN {BORN} ELSE 0 END AS v_entry,
                CASE exit_reason WHEN 'fraflytning' THEN {UD} WHEN 'doed' THEN {DIED} ELSE 1 END AS v_exit,
                coalesce(exit_mi, 999999) AS exit_c,
                '00' || lpad((birth_mi % 12 + 1 + 12 * (seq // 10000))::VARCHAR, 2, '0')
                     || lpad(((birth_mi // 12) % 100)::VARCHAR, 2, '0')
                     || '-' || lpad((seq % 10000)::VARCHAR, 4, '0') AS person_id,
                seq
         FROM (SELECT *, row_number() OVER (PARTITION BY birth_mi % 1200 ORDER BY ru(pkey, 17), pkey) - 1 AS seq
               FROM persons_raw);
         DROP TABLE persons_raw;
         CREATE MACRO civ(a, m, d, w) AS CASE WHEN a < m THEN 'U' WHEN a >= d THEN 'F' WHEN a >= w THEN 'E' ELSE 'G' END;
         CREATE MACRO civ_i(a, m, d, w) AS CASE WHEN a < m THEN 3 WHEN a >= d THEN 1 WHEN a >= w THEN 0 ELSE 2 END;"
    ))?;
    let max_seq = g.query_i64("SELECT coalesce(max(seq), 0) FROM persons")?;
    if max_seq >= 80000 {
        bail!("scale {} is too large for the synthetic person-id scheme", g.scale);
    }
    Ok(())
}

pub(crate) fn generate(g: &mut Gen) -> Result<ManifestExtra> {
    ensure_persons(g)?;
    g.step("personer");
    g.exec("CREATE TEMP TABLE bef_km(mi BIGINT, kommunekode INTEGER, indbyggere BIGINT, n1666 BIGINT)")?;
    for y in YEARS {
        let (a, b) = (y as i64 * 12, y as i64 * 12 + 11);
        // One packed BIGINT per cell (month, distrikt, alder, køn, herkomst, civilstand) whose
        // order is the output order, and one packed sum of the five counts (stock in bits
        // 0–19, flows in 8-bit fields from bit 20; < 2^53, so the DOUBLE sum is exact in any
        // order). Grouping and sorting on these is much cheaper than on seven columns with
        // strings and five filtered counts.
        g.exec(&format!(
            "CREATE OR REPLACE TEMP TABLE cur_best AS
             SELECT (mi - {M0}) * 409600000 + kstat + age * 32 + civ_i(age, m_age, div_age, wid_age) AS k,
                    sum((CASE WHEN mi = exit_c THEN v_exit ELSE 1 END
                         + CASE WHEN mi = entry_mi THEN v_entry ELSE 0 END)::DOUBLE)::BIGINT AS s
             FROM (SELECT mi, (mi - birth_mi) // 12 AS age, kstat, m_age, div_age, wid_age, exit_c, v_exit, entry_mi, v_entry
                   FROM (SELECT *, unnest(range(greatest(entry_mi, {a}), least(exit_c, {b}) + 1)) AS mi
                         FROM persons WHERE entry_mi <= {b} AND exit_c >= {a}))
             GROUP BY k;
             INSERT INTO bef_km
             SELECT k // 409600000 + {M0}, (k // 4096) % 100000 // 100, sum(s % {IND}),
                    sum(s % {IND}) FILTER (WHERE (k // 32) % 128 BETWEEN 16 AND 66)
             FROM cur_best GROUP BY ALL;",
        ))?;
        let sql = format!(
            "SELECT {y}::INTEGER AS aar, mi_id(k // 409600000 + {M0}) AS maaned_id,
                    ((k // 4096) % 100000 // 100)::INTEGER AS kommunekode,
                    ((k // 4096) % 100000)::INTEGER AS distrikt_id,
                    ((k // 32) % 128)::INTEGER AS alder,
                    CASE WHEN (k // 16) % 2 = 0 THEN 'K' ELSE 'M' END AS koen_kode,
                    CASE (k // 4) % 4 WHEN 0 THEN 'D' WHEN 1 THEN 'E' ELSE 'I' END AS herkomst_kode,
                    CASE k % 4 WHEN 0 THEN 'E' WHEN 1 THEN 'F' WHEN 2 THEN 'G' ELSE 'U' END AS civilstand_kode,
                    s % {IND} AS antal_borgere, s // {IND} % 256 AS tilflyttede, s // {UD} % 256 AS fraflyttede,
                    s // {BORN} % 256 AS foedte, s // {DIED} % 256 AS doede
             FROM (SELECT * FROM cur_best ORDER BY (k // 4096) % 100000, k)",
        );
        // already ordered by the subquery (sorting two BIGINTs is cheaper than sorting rows):
        // distrikt (so kommune) first, then month and the rest (see docs/datasets.md)
        g.write_part("bestand", y, &sql, "")?;
    }
    g.exec("DROP TABLE cur_best")?;
    g.first_time("bef_km");
    g.write_dim(
        "person",
        &format!(
            "SELECT person_id, kommunekode, distrikt_id,
                    make_date((birth_mi // 12)::BIGINT, (birth_mi % 12 + 1)::BIGINT, bday::BIGINT) AS foedselsdato,
                    (({M1} - birth_mi) // 12)::INTEGER AS alder, koen_kode, herkomst_kode,
                    civ(({M1} - birth_mi) // 12, m_age, div_age, wid_age) AS civilstand_kode,
                    CASE WHEN entry_mi = birth_mi
                         THEN make_date((birth_mi // 12)::BIGINT, (birth_mi % 12 + 1)::BIGINT, bday::BIGINT)
                         ELSE make_date((entry_mi // 12)::BIGINT, (entry_mi % 12 + 1)::BIGINT, eday::BIGINT) END
                      AS tilflytningsdato
             FROM persons WHERE entry_mi <= {M1} AND exit_mi IS NULL"
        ),
        "person_id",
    )?;
    g.write_dim(
        "distrikt",
        "SELECT (k.kommunekode * 100 + d)::INTEGER AS distrikt_id, k.kommunekode,
                CASE WHEN n = 1 THEN k.navn
                     WHEN d <= 10 THEN k.navn || ' ' || ['Centrum','Nord','Syd','Øst','Vest','Midt','Nordøst',
                                                         'Nordvest','Sydøst','Sydvest'][d]
                     ELSE k.navn || ' distrikt ' || d END AS distrikt_navn
         FROM (SELECT *, greatest(1, least(25, ceil(indbyggere_2020 / 15000.0)))::INTEGER AS n FROM kom) k,
              LATERAL (SELECT unnest(range(1, n + 1)) AS d)",
        "distrikt_id",
    )?;
    g.write_dim(
        "herkomst",
        "SELECT * FROM (VALUES ('D', 'Personer med dansk oprindelse', 'Persons of Danish origin'),
                               ('I', 'Indvandrere', 'Immigrants'),
                               ('E', 'Efterkommere', 'Descendants of immigrants'))
                 t(herkomst_kode, herkomst_navn, herkomst_navn_en)",
        "herkomst_kode",
    )?;
    g.write_dim(
        "civilstand",
        "SELECT * FROM (VALUES ('U', 'Ugift', 'Never married'), ('G', 'Gift/registreret partnerskab', 'Married/registered partnership'),
                               ('E', 'Enke/enkemand', 'Widowed'), ('F', 'Fraskilt', 'Divorced'))
                 t(civilstand_kode, civilstand_navn, civilstand_navn_en)",
        "civilstand_kode",
    )?;
    let completeness = g.completeness(
        &format!(
            "SELECT DISTINCT p.kommunekode, m.mi AS period FROM persons p JOIN range({M0}, {M1} + 1) m(mi)
               ON p.entry_mi <= m.mi AND coalesce(p.exit_mi, 999999) > m.mi"
        ),
        M1 - M0 + 1,
    )?;
    Ok(ManifestExtra {
        period: ("2016-01".into(), "2025-12".into()),
        completeness,
        known_issues: vec![
            "Synthetic data: no real persons. Person ids have day 00 and are never valid CPR numbers.".into(),
            "Moves are not linked between municipalities: a move out of one kommune is not a move into another."
                .into(),
            "Population at 2020-01 equals DST's 1 January 2020 figures × scale; other months follow synthetic birth, death and move rates."
                .into(),
        ],
    })
}
