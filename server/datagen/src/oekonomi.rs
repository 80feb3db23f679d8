//! `oekonomi`: posting lines per kommune × month over funktion × dranst × art, Regnskab
//! and Budget.
//!
//! Row count ≈ 100 million × scale (85 % Regnskab, 15 % Budget), spread over kommuner by
//! population share and evenly over months (at least 24 + 6 lines per kommune-month). Each
//! line picks an account combination with probability ∝ √amount × an art factor (many
//! small invoices, few salary and refund lines) and a log-normal raw amount; the amounts
//! of a kommune-month are then scaled so that each (dranst group, sign) sums to its target:
//! net operating spending (dranst 1+2, Regnskab) ≈ 57,500 kr per synthetic inhabitant per
//! year at 2020 prices (+2 %/year), independent of the row count.

use anyhow::Result;

use crate::kontoplan::{ANLAEG_PARTS, ARTER, DRANST, FUNKTIONER, HOVEDARTER, HOVEDFUNKTIONER, HOVEDKONTI};
use crate::{Gen, M0, ManifestExtra, YEARS, q, values};

/// Rows of `postering` at scale 1.
pub(crate) const LINES_AT_SCALE_1: f64 = 100_000_000.0;
/// Buckets of the combination lookup table.
const LUT: u64 = 65536;
/// Net operating spending per inhabitant per year, 2020 prices.
const NET_DRIFT_PER_INHABITANT: f64 = 57_500.0;

struct Combo {
    funktion: &'static str,
    dranst: i32,
    art: &'static str,
    share: f64,
    anlaeg: bool,
}

fn combos() -> Vec<Combo> {
    let mut out = Vec::new();
    for f in FUNKTIONER {
        let mut add = |parts: &[(i32, &'static str, f64)], gross: f64, anlaeg: bool| {
            let pos: f64 = parts.iter().filter(|p| p.2 > 0.0).map(|p| p.2).sum();
            let norm = if pos > 0.0 {
                pos
            } else {
                parts.iter().map(|p| p.2.abs()).sum()
            };
            for &(dranst, art, frac) in parts {
                out.push(Combo {
                    funktion: f.kode,
                    dranst,
                    art,
                    share: gross * frac / norm,
                    anlaeg,
                });
            }
        };
        add(&f.template.parts(), f.drift, false);
        if f.anlaeg > 0.0 {
            add(ANLAEG_PARTS, f.anlaeg, true);
        }
    }
    // Scale operating amounts to the target net spending.
    let net: f64 = out.iter().filter(|c| !c.anlaeg).map(|c| c.share).sum();
    let k = NET_DRIFT_PER_INHABITANT / net;
    for c in out.iter_mut().filter(|c| !c.anlaeg) {
        c.share *= k;
    }
    out.sort_by(|a, b| (a.funktion, a.dranst, a.art).cmp(&(b.funktion, b.dranst, b.art)));
    out
}

fn setup(g: &mut Gen) -> Result<()> {
    if !g.first_time("oekonomi_setup") {
        return Ok(());
    }
    let combos = combos();
    let art_factor = |art: &str| ARTER.iter().find(|a| a.0 == art).map(|a| a.4).unwrap_or(1.0);
    // Total share per (group, sign), computed here so no floating-point sum happens in SQL.
    let group_total = |anlaeg: bool, pos: bool| -> f64 {
        combos
            .iter()
            .filter(|c| c.anlaeg == anlaeg && (c.share > 0.0) == pos)
            .map(|c| c.share)
            .sum()
    };
    let mut weights = Vec::new();
    let rows = combos.iter().enumerate().map(|(i, c)| {
        let w = (c.share.abs().sqrt() * art_factor(c.art) * 1000.0).round() as i64;
        weights.push(w);
        vec![
            i.to_string(),
            q(c.funktion),
            c.dranst.to_string(),
            q(c.art),
            format!("{:.6}", c.share),
            q(if c.anlaeg { "A" } else { "D" }),
            (c.share > 0.0).to_string(),
            format!("{:.6}", w as f64 / 1000.0),
            format!("{:.6}", group_total(c.anlaeg, c.share > 0.0).abs()),
        ]
    });
    let rows: Vec<Vec<String>> = rows.collect();
    let total: i64 = weights.iter().sum();
    let mut cum = 0i64;
    let cdf = weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let lo = cum as f64 / total as f64;
            cum += w;
            vec![i.to_string(), format!("{lo:.12}")]
        })
        .collect::<Vec<_>>();
    g.exec(&format!(
        "CREATE TEMP TABLE combo(cid INTEGER, funktion_kode VARCHAR, dranst_kode INTEGER, art_kode VARCHAR,
                                 share DOUBLE, grp VARCHAR, pos BOOLEAN, q DOUBLE, grp_total DOUBLE);
         INSERT INTO combo VALUES {};
         CREATE TEMP TABLE combo_cdf(cid INTEGER, lo DOUBLE);
         INSERT INTO combo_cdf VALUES {};
         -- lookup table: a hash bucket of a line picks the account combination (resolution 1/65536)
         CREATE TEMP TABLE combo_lut AS
         SELECT r.b, c.cid FROM range({LUT}) r(b) ASOF JOIN combo_cdf c ON (r.b + 0.5) / {LUT} >= c.lo;
         CREATE TEMP TABLE oek_aarstotal(aar INTEGER, kommunekode INTEGER, beloebstype_kode VARCHAR, beloeb DECIMAL(18,2));
         CREATE TEMP TABLE oek_km(maaned_id INTEGER, kommunekode INTEGER, netto DECIMAL(18,2));",
        values(rows),
        values(cdf)
    ))?;
    Ok(())
}

/// Build the posting lines of every year (writing them when the dataset is being written)
/// and the summaries `oek_aarstotal` and `oek_km` (net operating spending per kommune-month).
pub(crate) fn facts(g: &mut Gen) -> Result<()> {
    setup(g)?;
    let (scale, seed) = (g.scale, g.seed);
    for y in YEARS {
        let (a, b) = (y as i64 * 12, y as i64 * 12 + 11);
        g.exec(&format!(
            "CREATE OR REPLACE TEMP TABLE cur_post AS
             WITH km AS (
                 SELECT k.kommunekode, k.popsyn, m.mi, t.typ,
                        greatest(CASE t.typ WHEN 'R' THEN 24 ELSE 6 END,
                                 round({LINES_AT_SCALE_1} * {scale} * CASE t.typ WHEN 'R' THEN 0.85 ELSE 0.15 END
                                       * k.popshare / 120))::BIGINT AS n
                 FROM kom k, range({a}, {b} + 1) m(mi), (VALUES ('R'), ('B')) t(typ)
             ),
             lines AS (
                 SELECT kommunekode, popsyn, mi, typ, unnest(range(n)) AS i FROM km
             ),
             keyed AS (
                 SELECT *, ((kommunekode::BIGINT * 1000 + (mi - {M0})) * 2 + (typ = 'B')::INTEGER) * 10000000 + i AS lkey
                 FROM lines
             ),
             raw AS MATERIALIZED (
                 SELECT l.kommunekode, l.popsyn, l.mi, l.typ, c.cid, c.dranst_kode, c.grp, c.pos, c.grp_total,
                        -- integer raw amounts: their sums are exact whatever the thread order
                        greatest(1, round(abs(c.share) / c.q * exp(rn(l.lkey, 102)) * 100))::BIGINT AS raw
                 FROM keyed l
                 JOIN combo_lut b ON b.b = hash(l.lkey, 101, {seed}::UBIGINT) % {LUT}
                 JOIN combo c ON c.cid = b.cid
             ),
             sums AS (
                 SELECT kommunekode, mi, typ, grp, pos, sum(raw) AS raw_sum FROM raw GROUP BY ALL
             ),
             summed AS (
                 SELECT * FROM raw JOIN sums USING (kommunekode, mi, typ, grp, pos)
             ),
             target AS (
                 SELECT *,
                        popsyn * grp_total / 12 * pow(1.02, {y} - 2020) *
                        CASE WHEN typ = 'R' AND grp = 'D'
                                  THEN [0.93, 0.97, 1.0, 1.0, 1.0, 1.02, 0.86, 0.95, 1.02, 1.02, 1.03, 1.20][mi % 12 + 1]
                                       * (0.94 + 0.12 * ru(kommunekode, 107))
                                       * (1 + 0.03 * (ru2(kommunekode, mi, 103) - 0.5))
                             WHEN typ = 'R' THEN exp(0.9 * rn2(kommunekode, mi, 104) - 0.405)
                             WHEN grp = 'D' THEN (0.94 + 0.12 * ru(kommunekode, 107))
                                                 * (1 + 0.04 * (ru2(kommunekode, {y}, 105) - 0.35))
                             ELSE 1 + 0.2 * (ru2(kommunekode, {y}, 106) - 0.4) END AS target
                 FROM summed
             )
             SELECT {y}::INTEGER AS aar, mi_id(mi) AS maaned_id, kommunekode, cid, dranst_kode, typ,
                    (CASE WHEN pos THEN 1 ELSE -1 END * round(raw::DOUBLE * target / raw_sum::DOUBLE, 2))::DECIMAL(18,2) AS beloeb
             FROM target;
             INSERT INTO oek_aarstotal SELECT aar, kommunekode, typ, sum(beloeb)::DECIMAL(18,2) FROM cur_post GROUP BY ALL;
             INSERT INTO oek_km SELECT maaned_id, kommunekode,
                                       coalesce(sum(beloeb) FILTER (WHERE typ = 'R' AND dranst_kode IN (1, 2)), 0)::DECIMAL(18,2)
                                FROM cur_post GROUP BY ALL;"
        ))?;
        g.write_part(
            "postering",
            y,
            "SELECT p.aar, p.maaned_id, p.kommunekode, c.funktion_kode, c.dranst_kode, c.art_kode,
                    p.typ AS beloebstype_kode, p.beloeb,
                    ((p.kommunekode::BIGINT * 1000000 + p.maaned_id) * 1000 + p.cid) * 2 + (p.typ = 'R')::INTEGER AS __k
             FROM cur_post p JOIN combo c USING (cid)",
            "__k, beloeb",
        )?;
    }
    g.exec("DROP TABLE cur_post")?;
    g.first_time("oekonomi_summary");
    Ok(())
}

/// Make sure `oek_km` exists (runs the postings without writing if needed).
pub(crate) fn ensure_summary(g: &mut Gen) -> Result<()> {
    if g.is_built("oekonomi_summary") {
        return Ok(());
    }
    g.without_writing(facts)
}

pub(crate) fn generate(g: &mut Gen) -> Result<ManifestExtra> {
    facts(g)?;
    g.write_dim(
        "aarstotal",
        "SELECT * FROM oek_aarstotal",
        "aar, kommunekode, beloebstype_kode",
    )?;

    let hf = |code: &str| {
        HOVEDFUNKTIONER
            .iter()
            .find(|h| h.0 == code)
            .copied()
            .unwrap_or(("", "", ""))
    };
    let hk = |code: &str| HOVEDKONTI.iter().find(|h| h.0 == code).copied().unwrap_or(("", "", ""));
    let konto = FUNKTIONER.iter().map(|f| {
        let h = hf(&f.kode[..4]);
        let k = hk(&f.kode[..1]);
        let sort: i32 = f.kode.replace('.', "").parse().unwrap_or(0);
        vec![
            q(f.kode),
            q(f.navn),
            q(f.navn_en),
            q(h.0),
            q(h.1),
            q(h.2),
            q(k.0),
            q(k.1),
            q(k.2),
            sort.to_string(),
        ]
    });
    g.write_dim(
        "konto",
        &format!(
            "SELECT * FROM (VALUES {}) t(funktion_kode, funktion_navn, funktion_navn_en, hovedfunktion_kode,
                 hovedfunktion_navn, hovedfunktion_navn_en, hovedkonto_kode, hovedkonto_navn, hovedkonto_navn_en,
                 funktion_sort)",
            values(konto)
        ),
        "funktion_sort",
    )?;
    let dranst = DRANST.iter().map(|d| vec![d.0.to_string(), q(d.1), q(d.2)]);
    g.write_dim(
        "dranst",
        &format!(
            "SELECT * FROM (VALUES {}) t(dranst_kode, dranst_navn, dranst_navn_en)",
            values(dranst)
        ),
        "dranst_kode",
    )?;
    let art = ARTER.iter().map(|a| {
        let h = HOVEDARTER.iter().find(|h| h.0 == a.3).copied().unwrap_or(("", "", ""));
        vec![q(a.0), q(a.1), q(a.2), q(h.0), q(h.1), q(h.2)]
    });
    g.write_dim(
        "art",
        &format!(
            "SELECT * FROM (VALUES {}) t(art_kode, art_navn, art_navn_en, hovedart_kode, hovedart_navn, hovedart_navn_en)",
            values(art)
        ),
        "art_kode",
    )?;
    g.write_dim(
        "beloebstype",
        "SELECT * FROM (VALUES ('B', 'Budget', 'Budget'), ('R', 'Regnskab', 'Actual'))
                 t(beloebstype_kode, beloebstype_navn, beloebstype_navn_en)",
        "beloebstype_kode",
    )?;
    let completeness = g.completeness("SELECT kommunekode, maaned_id AS period FROM oek_km", 120)?;
    Ok(ManifestExtra {
        period: ("2016-01".into(), "2025-12".into()),
        completeness,
        known_issues: vec![
            "Synthetic ledger: amounts are scaled to the synthetic population (indbyggere × scale), ≈ 57,500 kr net operating spending per inhabitant in 2020, +2 %/year."
                .into(),
            "Only hovedkonto 0–6 (operating, refunds, capital); no financing (hovedkonto 7–9), no grupperinger."
                .into(),
        ],
    })
}
