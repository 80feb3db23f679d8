//! `benchmark`: key figures per kommune × month for all 98 kommuner, computed from the
//! other synthetic datasets so the numbers agree with them:
//! * `indbyggere`: residents at the end of the month (as `befolkning.bestand`);
//! * `nettodriftsudgifter`: Regnskab, dranst 1+2 of `oekonomi.postering`;
//! * `sygefravaersdage`, `mulige_arbejdsdage` (FTE × weekdays), `ansatte`: `personale.fravaer`;
//! * `ledige`: average weekly recipients of A-dagpenge (111) and kontanthjælp (318) in the
//!   weeks whose Monday falls in the month (`beskaeftigelse.ydelse_uge`);
//! * `arbejdsstyrke`: residents aged 16–66 × a kommune-specific participation rate (76–84 %).

use anyhow::Result;

use crate::befolkning::ensure_persons;
use crate::{Gen, ManifestExtra, YEARS};

pub(crate) fn generate(g: &mut Gen) -> Result<ManifestExtra> {
    ensure_persons(g)?;
    crate::oekonomi::ensure_summary(g)?;
    crate::personale::ensure_summary(g)?;
    crate::beskaeftigelse::ensure_summary(g)?;
    g.exec(
        "CREATE TEMP TABLE nw AS SELECT mi, count(*) AS n_w FROM wk GROUP BY mi;
         CREATE TEMP TABLE bench_all(kommunekode INTEGER, maaned_id INTEGER, indbyggere BIGINT);",
    )?;
    for y in YEARS {
        let (a, b) = (y as i64 * 12, y as i64 * 12 + 11);
        // residents per kommune-month: from befolkning when it ran, else from the persons
        let pop = if g.is_built("bef_km") {
            format!("SELECT * FROM bef_km WHERE mi BETWEEN {a} AND {b}")
        } else {
            format!(
                "SELECT m.mi, p.kommunekode, count(*) AS indbyggere,
                        count(*) FILTER (WHERE (m.mi - p.birth_mi) // 12 BETWEEN 16 AND 66) AS n1666
                 FROM persons p JOIN range({a}, {b} + 1) m(mi)
                   ON p.entry_mi <= m.mi AND coalesce(p.exit_mi, 999999) > m.mi
                 GROUP BY ALL"
            )
        };
        let sql = format!(
            "WITH pop AS ({pop}),
             led AS (SELECT mi, kommunekode, sum(ledige_uger) AS lu FROM besk_km WHERE mi BETWEEN {a} AND {b} GROUP BY ALL)
             SELECT {y}::INTEGER AS aar, m.maaned_id, k.kommunekode,
                    coalesce(pop.indbyggere, 0)::BIGINT AS indbyggere,
                    coalesce(o.netto, 0)::DECIMAL(18,2) AS nettodriftsudgifter,
                    coalesce(pk.sygefravaersdage, 0)::DOUBLE AS sygefravaersdage,
                    coalesce(pk.mulige_arbejdsdage, 0)::DOUBLE AS mulige_arbejdsdage,
                    coalesce(pk.ansatte, 0)::BIGINT AS ansatte,
                    coalesce(round(led.lu / nw.n_w), 0)::BIGINT AS ledige,
                    round(coalesce(pop.n1666, 0) * (0.76 + 0.08 * ru(k.kommunekode, 501)))::BIGINT AS arbejdsstyrke
             FROM kom k CROSS JOIN (SELECT * FROM mon WHERE aar = {y}) m
             LEFT JOIN pop ON pop.kommunekode = k.kommunekode AND pop.mi = m.mi
             LEFT JOIN oek_km o ON o.kommunekode = k.kommunekode AND o.maaned_id = m.maaned_id
             LEFT JOIN pers_km pk ON pk.kommunekode = k.kommunekode AND pk.maaned_id = m.maaned_id
             LEFT JOIN led ON led.kommunekode = k.kommunekode AND led.mi = m.mi
             LEFT JOIN nw ON nw.mi = m.mi"
        );
        g.exec(&format!(
            "INSERT INTO bench_all SELECT kommunekode, maaned_id, indbyggere FROM ({sql}) WHERE indbyggere > 0"
        ))?;
        g.write_part("noegletal", y, &sql, "maaned_id, kommunekode")?;
    }
    let completeness = g.completeness("SELECT kommunekode, maaned_id AS period FROM bench_all", 120)?;
    Ok(ManifestExtra {
        period: ("2016-01".into(), "2025-12".into()),
        completeness,
        known_issues: vec![
            "Key figures are derived from the synthetic datasets of the same seed and scale (counts scale with `scale`)."
                .into(),
        ],
    })
}
