//! The fixed workload: what Excel sends when an analyst builds a pivot table (shapes from
//! `/work/shared/traces/excel365-session.jsonl`: Discover for the field list, `DrilldownLevel`
//! / `DrilldownMember` under `Hierarchize` with `DIMENSION PROPERTIES` and `CELL PROPERTIES`,
//! label filters as subselects, value filters as `TopCount`), each MDX statement with a
//! hand-written SQL query that gives the same numbers. `{K}` and `{R}` in a statement are the
//! scope's focus kommune and region; `{scope}` in SQL is the row scope on the fact alias `f`,
//! `{dataset.table}` a Parquet table.

use anyhow::bail;

use crate::{CATALOG, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An MDX SELECT or DRILLTHROUGH (`Execute`).
    Execute,
    /// A Discover request: (request type, CUBE_NAME restriction).
    Discover(&'static str, Option<&'static str>),
}

/// How a statement's answer is compared with its SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The same non-empty numbers.
    Values,
    /// The same number of rows (DRILLTHROUGH).
    Rows,
    /// No SQL (Discover).
    None,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub name: &'static str,
    pub kind: Kind,
    pub mdx: &'static str,
    pub sql: Option<&'static str>,
    pub check: Check,
}

impl Statement {
    pub fn text(&self, scope: &Scope) -> String {
        self.mdx
            .replace("{K}", &scope.focus_kommune.to_string())
            .replace("{R}", &scope.focus_region.to_string())
    }

    /// The SOAP request body.
    pub fn envelope(&self, scope: &Scope) -> String {
        let props = format!(
            "<Properties><PropertyList><Catalog>{CATALOG}</Catalog><LocaleIdentifier>1030</LocaleIdentifier><Format>Multidimensional</Format></PropertyList></Properties>"
        );
        let body = match self.kind {
            Kind::Execute => format!(
                "<Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\"><Command><Statement>{}</Statement></Command>{props}</Execute>",
                xml_escape(&self.text(scope))
            ),
            Kind::Discover(rt, cube) => format!(
                "<Discover xmlns=\"urn:schemas-microsoft-com:xml-analysis\"><RequestType>{rt}</RequestType><Restrictions><RestrictionList><CATALOG_NAME>{CATALOG}</CATALOG_NAME>{}</RestrictionList></Restrictions>{props}</Discover>",
                cube.map(|c| format!("<CUBE_NAME>{}</CUBE_NAME>", xml_escape(c)))
                    .unwrap_or_default()
            ),
        };
        format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{body}</soap:Body></soap:Envelope>"
        )
    }

    /// The hand-written SQL for this scope, tables resolved by `table(dataset, table)`.
    pub fn sql(
        &self,
        scope: &Scope,
        table: &dyn Fn(&str, &str) -> anyhow::Result<String>,
    ) -> anyhow::Result<Option<String>> {
        let Some(sql) = self.sql else { return Ok(None) };
        let mut out = sql
            .replace(
                "{scope}",
                &match scope.kommune {
                    None => "TRUE".to_string(),
                    Some(k) => format!("f.kommunekode IN ({k})"),
                },
            )
            .replace("{K}", &scope.focus_kommune.to_string())
            .replace("{R}", &scope.focus_region.to_string());
        while let Some(start) = out.find("{t:") {
            let Some(len) = out[start..].find('}') else {
                bail!("{}: unclosed table placeholder", self.name)
            };
            let spec = &out[start + 3..start + len];
            let Some((ds, t)) = spec.split_once('.') else {
                bail!("{}: bad table {spec}", self.name)
            };
            let r = table(ds, t)?;
            out.replace_range(start..start + len + 1, &r);
        }
        Ok(Some(out))
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The statements, in the order an analyst's session sends them.
pub fn workload() -> Vec<Statement> {
    vec![
        Statement {
            name: "field list: cubes",
            kind: Kind::Discover("MDSCHEMA_CUBES", None),
            mdx: "",
            sql: None,
            check: Check::None,
        },
        Statement {
            name: "field list: dimensions",
            kind: Kind::Discover("MDSCHEMA_DIMENSIONS", Some("Økonomi")),
            mdx: "",
            sql: None,
            check: Check::None,
        },
        Statement {
            name: "field list: hierarchies",
            kind: Kind::Discover("MDSCHEMA_HIERARCHIES", Some("Økonomi")),
            mdx: "",
            sql: None,
            check: Check::None,
        },
        Statement {
            name: "field list: levels",
            kind: Kind::Discover("MDSCHEMA_LEVELS", Some("Økonomi")),
            mdx: "",
            sql: None,
            check: Check::None,
        },
        Statement {
            name: "field list: measures",
            kind: Kind::Discover("MDSCHEMA_MEASURES", Some("Økonomi")),
            mdx: "",
            sql: None,
            check: Check::None,
        },
        Statement {
            name: "first pivot: Regnskab by Region",
            kind: Kind::Execute,
            mdx: "SELECT NON EMPTY Hierarchize({DrilldownLevel({[Kommune].[Geografi].[All]},,,INCLUDE_CALC_MEMBERS)}) DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON COLUMNS FROM [Økonomi] WHERE ([Measures].[Regnskab]) CELL PROPERTIES VALUE, FORMAT_STRING, BACK_COLOR, FORE_COLOR",
            sql: Some(
                "SELECT SUM(f.beloeb) FROM {t:oekonomi.postering} f JOIN {t:faelles.kommune} k ON f.kommunekode = k.kommunekode \
                 WHERE {scope} AND f.beloebstype_kode = 'R' GROUP BY GROUPING SETS ((), (k.regionskode))",
            ),
            check: Check::Values,
        },
        Statement {
            name: "drill Region → Kommune (2024)",
            kind: Kind::Execute,
            mdx: "SELECT NON EMPTY Hierarchize(DrilldownMember({{DrilldownLevel({[Kommune].[Geografi].[All]},,,INCLUDE_CALC_MEMBERS)}}, {[Kommune].[Geografi].[Region].&[{R}]},,,INCLUDE_CALC_MEMBERS)) DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON COLUMNS FROM [Økonomi] WHERE ([Measures].[Regnskab], [Tid].[Kalender].[År].&[2024]) CELL PROPERTIES VALUE, FORMAT_STRING, BACK_COLOR, FORE_COLOR",
            sql: Some(
                "SELECT SUM(f.beloeb) FROM {t:oekonomi.postering} f JOIN {t:faelles.kommune} k ON f.kommunekode = k.kommunekode \
                 WHERE {scope} AND f.beloebstype_kode = 'R' AND f.aar = 2024 GROUP BY GROUPING SETS ((), (k.regionskode)) \
                 UNION ALL SELECT SUM(f.beloeb) FROM {t:oekonomi.postering} f JOIN {t:faelles.kommune} k ON f.kommunekode = k.kommunekode \
                 WHERE {scope} AND f.beloebstype_kode = 'R' AND f.aar = 2024 AND k.regionskode = {R} GROUP BY f.kommunekode",
            ),
            check: Check::Values,
        },
        Statement {
            name: "Kommune × Hovedkonto crossjoin (2024)",
            kind: Kind::Execute,
            mdx: "SELECT {[Measures].[Regnskab]} ON COLUMNS, NON EMPTY CrossJoin([Kommune].[Geografi].[Kommune].Members, [Konto].[Funktion].[Hovedkonto].Members) DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON ROWS FROM [Økonomi] WHERE ([Tid].[Kalender].[År].&[2024]) CELL PROPERTIES VALUE, FORMAT_STRING",
            sql: Some(
                "SELECT SUM(f.beloeb) FROM {t:oekonomi.postering} f JOIN {t:oekonomi.konto} c ON f.funktion_kode = c.funktion_kode \
                 WHERE {scope} AND f.beloebstype_kode = 'R' AND f.aar = 2024 GROUP BY f.kommunekode, c.hovedkonto_kode",
            ),
            check: Check::Values,
        },
        Statement {
            name: "label filter (subselect): kommuner 'A…'",
            kind: Kind::Execute,
            mdx: "SELECT {[Measures].[Regnskab]} ON COLUMNS, NON EMPTY [Kommune].[Geografi].[Kommune].Members DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON ROWS FROM (SELECT Filter([Kommune].[Geografi].[Kommune].Members, Left([Kommune].[Geografi].CurrentMember.Member_Caption, 1) = \"A\") ON COLUMNS FROM [Økonomi]) WHERE ([Tid].[Kalender].[År].&[2024]) CELL PROPERTIES VALUE, FORMAT_STRING",
            sql: Some(
                "SELECT SUM(f.beloeb) FROM {t:oekonomi.postering} f JOIN {t:faelles.kommune} k ON f.kommunekode = k.kommunekode \
                 WHERE {scope} AND f.beloebstype_kode = 'R' AND f.aar = 2024 AND k.kommune_navn LIKE 'A%' GROUP BY f.kommunekode",
            ),
            check: Check::Values,
        },
        Statement {
            name: "value filter: Top 10 kommuner (2024)",
            kind: Kind::Execute,
            mdx: "SELECT {[Measures].[Regnskab]} ON COLUMNS, TopCount([Kommune].[Geografi].[Kommune].Members, 10, [Measures].[Regnskab]) DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON ROWS FROM [Økonomi] WHERE ([Tid].[Kalender].[År].&[2024]) CELL PROPERTIES VALUE, FORMAT_STRING",
            sql: Some(
                "SELECT s FROM (SELECT SUM(f.beloeb) AS s FROM {t:oekonomi.postering} f \
                 WHERE {scope} AND f.beloebstype_kode = 'R' AND f.aar = 2024 GROUP BY f.kommunekode) ORDER BY s DESC NULLS LAST LIMIT 10",
            ),
            check: Check::Values,
        },
        Statement {
            name: "Konto drill 3 levels × År",
            kind: Kind::Execute,
            mdx: "SELECT NON EMPTY [Tid].[Kalender].[År].Members ON COLUMNS, NON EMPTY Hierarchize(DrilldownMember(DrilldownMember({DrilldownLevel({[Konto].[Funktion].[All]},,,INCLUDE_CALC_MEMBERS)}, {[Konto].[Funktion].[Hovedkonto].&[5]},,,INCLUDE_CALC_MEMBERS), {[Konto].[Funktion].[Hovedfunktion].&[5.25]},,,INCLUDE_CALC_MEMBERS)) DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON ROWS FROM [Økonomi] WHERE ([Measures].[Regnskab]) CELL PROPERTIES VALUE, FORMAT_STRING",
            sql: Some(
                "SELECT SUM(f.beloeb) FROM {t:oekonomi.postering} f JOIN {t:oekonomi.konto} c ON f.funktion_kode = c.funktion_kode \
                 WHERE {scope} AND f.beloebstype_kode = 'R' GROUP BY GROUPING SETS ((f.aar), (f.aar, c.hovedkonto_kode)) \
                 UNION ALL SELECT SUM(f.beloeb) FROM {t:oekonomi.postering} f JOIN {t:oekonomi.konto} c ON f.funktion_kode = c.funktion_kode \
                 WHERE {scope} AND f.beloebstype_kode = 'R' AND c.hovedkonto_kode = '5' GROUP BY f.aar, c.hovedfunktion_kode \
                 UNION ALL SELECT SUM(f.beloeb) FROM {t:oekonomi.postering} f JOIN {t:oekonomi.konto} c ON f.funktion_kode = c.funktion_kode \
                 WHERE {scope} AND f.beloebstype_kode = 'R' AND c.hovedfunktion_kode = '5.25' GROUP BY f.aar, c.funktion_kode",
            ),
            check: Check::Values,
        },
        Statement {
            name: "Regnskab, Budget, Afvigelse by Region (2024)",
            kind: Kind::Execute,
            mdx: "SELECT {[Measures].[Regnskab], [Measures].[Budget], [Measures].[Afvigelse]} ON COLUMNS, NON EMPTY [Kommune].[Geografi].[Region].Members DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON ROWS FROM [Økonomi] WHERE ([Tid].[Kalender].[År].&[2024]) CELL PROPERTIES VALUE, FORMAT_STRING",
            sql: Some(
                "SELECT r, b, r - b FROM (SELECT SUM(f.beloeb) FILTER (WHERE f.beloebstype_kode = 'R') AS r, \
                 SUM(f.beloeb) FILTER (WHERE f.beloebstype_kode = 'B') AS b FROM {t:oekonomi.postering} f \
                 JOIN {t:faelles.kommune} k ON f.kommunekode = k.kommunekode WHERE {scope} AND f.aar = 2024 GROUP BY k.regionskode)",
            ),
            check: Check::Values,
        },
        Statement {
            name: "semi-additive: Antal borgere by Måned (2024)",
            kind: Kind::Execute,
            mdx: "SELECT {[Measures].[Antal borgere]} ON COLUMNS, NON EMPTY {[Tid].[Kalender].[År].&[2024], Descendants([Tid].[Kalender].[År].&[2024], [Tid].[Kalender].[Måned])} DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON ROWS FROM [Befolkning] CELL PROPERTIES VALUE, FORMAT_STRING",
            sql: Some(
                "WITH m AS (SELECT f.maaned_id, SUM(f.antal_borgere) AS v FROM {t:befolkning.bestand} f \
                 WHERE {scope} AND f.aar = 2024 GROUP BY f.maaned_id) \
                 SELECT v FROM m UNION ALL SELECT arg_max(v, maaned_id) FROM m",
            ),
            check: Check::Values,
        },
        Statement {
            name: "flows: Tilflyttede, Fraflyttede by Herkomst × Kvartal (2024)",
            kind: Kind::Execute,
            mdx: "SELECT {[Measures].[Tilflyttede], [Measures].[Fraflyttede]} ON COLUMNS, NON EMPTY CrossJoin([Herkomst].[Herkomst].[Herkomst].Members, Descendants([Tid].[Kalender].[År].&[2024], [Tid].[Kalender].[Kvartal])) DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON ROWS FROM [Befolkning] CELL PROPERTIES VALUE, FORMAT_STRING",
            sql: Some(
                "SELECT SUM(f.tilflyttede), SUM(f.fraflyttede) FROM {t:befolkning.bestand} f JOIN {t:faelles.maaned} t ON f.maaned_id = t.maaned_id \
                 WHERE {scope} AND f.aar = 2024 GROUP BY f.herkomst_kode, t.kvartal_id",
            ),
            check: Check::Values,
        },
        Statement {
            name: "distinct count: Personer by Ydelsesgruppe (2024)",
            kind: Kind::Execute,
            mdx: "SELECT {[Measures].[Personer]} ON COLUMNS, NON EMPTY Hierarchize({DrilldownLevel({[Ydelse].[Ydelse].[All]},,,INCLUDE_CALC_MEMBERS)}) DIMENSION PROPERTIES PARENT_UNIQUE_NAME,HIERARCHY_UNIQUE_NAME ON ROWS FROM [Beskæftigelse] WHERE ([Tid].[Uge].[År].&[2024]) CELL PROPERTIES VALUE, FORMAT_STRING",
            sql: Some(
                "SELECT COUNT(DISTINCT f.person_id) FROM {t:beskaeftigelse.ydelse_uge} f JOIN {t:beskaeftigelse.ydelse} y ON f.ydelse_kode = y.ydelse_kode \
                 WHERE {scope} AND f.aar = 2024 GROUP BY GROUPING SETS ((), (y.ydelsesgruppe_kode))",
            ),
            check: Check::Values,
        },
        Statement {
            name: "drillthrough: residents of one kommune, Herkomst, Køn",
            kind: Kind::Execute,
            mdx: "DRILLTHROUGH MAXROWS 1000 SELECT FROM [Befolkning] WHERE ([Measures].[Antal borgere], [Kommune].[Geografi].[Kommune].&[{K}], [Herkomst].[Herkomst].[Herkomst].&[I], [Køn].[Køn].[Køn].&[K])",
            sql: Some(
                "SELECT f.* FROM {t:befolkning.person} f \
                 WHERE {scope} AND f.kommunekode = {K} AND f.herkomst_kode = 'I' AND f.koen_kode = 'K' LIMIT 1000",
            ),
            check: Check::Rows,
        },
    ]
}
