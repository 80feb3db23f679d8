//! Allowed sets end to end: a KOMBIT identity whose privilege carries an `orgenhed`
//! constraint is mapped through the shipped `security.yaml` and queries the Personale cube
//! through the XMLA service over real Parquet. What it may see is computed independently:
//! the organisation units below the granted unit, from the organisation table with a
//! recursive SQL query, and every number with hand-written SQL over the fact table.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{Answer, close, xml_escape};
use datakube_auth::{AuthMethod, Constraint, Identity, IdentityMapper, Principal, PrivilegeGroup};

const AARHUS: i64 = 751;
const AARHUS_CVR: &str = "55133018";
const ORGENHED: &str = "http://sts.kombit.dk/constraints/orgenhed/1";
const EGEN_KOMMUNE: &str = "http://datakube.dk/roles/usersystemrole/flis_egen_kommune/1";

struct Setup {
    _data: common::inprocess::Data,
    dir: PathBuf,
    svc: datakube_xmla::service::XmlaService,
    catalog: datakube_model::Catalog,
}

fn setup() -> Setup {
    let data = common::inprocess::generate();
    Setup {
        dir: data.dir.clone(),
        svc: data.service(),
        catalog: data.catalog.clone(),
        _data: data,
    }
}

fn table(dir: &Path, dataset: &str, t: &str) -> String {
    common::inprocess::table(dir, dataset, t)
}

fn execute(mdx: &str) -> String {
    format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<Command><Statement>{}</Statement></Command><Properties><PropertyList><Catalog>FLIS</Catalog><LocaleIdentifier>1033</LocaleIdentifier>\
</PropertyList></Properties></Execute></soap:Body></soap:Envelope>",
        xml_escape(mdx)
    )
}

/// Unit id → (parent id, kommunekode) from the organisation table.
fn units(dir: &Path) -> BTreeMap<i64, (Option<i64>, i64)> {
    let c = datakube_engine::open_connection(&datakube_engine::EngineConfig::default()).unwrap();
    let sql = format!(
        "SELECT org_enhed_id::BIGINT, overordnet_id::BIGINT, kommunekode::BIGINT FROM {}",
        table(dir, "personale", "organisation")
    );
    let mut st = c.prepare(&sql).unwrap();
    st.query_map([], |r| {
        Ok((r.get::<_, i64>(0)?, (r.get::<_, Option<i64>>(1)?, r.get::<_, i64>(2)?)))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Fraværsdage per unit (only the unit's own rows) within Aarhus, restricted to `granted`.
fn days_by_unit(dir: &Path, granted: &BTreeSet<i64>) -> BTreeMap<i64, f64> {
    let c = datakube_engine::open_connection(&datakube_engine::EngineConfig::default()).unwrap();
    let list: Vec<String> = granted.iter().map(|k| k.to_string()).collect();
    let sql = format!(
        "SELECT org_enhed_id::BIGINT, sum(fravaersdage)::DOUBLE FROM {} \
         WHERE kommunekode = {AARHUS} AND org_enhed_id IN ({}) GROUP BY 1",
        table(dir, "personale", "fravaer"),
        list.join(",")
    );
    let mut st = c.prepare(&sql).unwrap();
    st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn subtree(units: &BTreeMap<i64, (Option<i64>, i64)>, root: i64) -> BTreeSet<i64> {
    let mut out = BTreeSet::from([root]);
    loop {
        let more: Vec<i64> = units
            .iter()
            .filter(|(id, (p, _))| p.is_some_and(|p| out.contains(&p)) && !out.contains(id))
            .map(|(id, _)| *id)
            .collect();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

fn ancestors(units: &BTreeMap<i64, (Option<i64>, i64)>, id: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut p = units[&id].0;
    while let Some(x) = p {
        out.push(x);
        p = units[&x].0;
    }
    out
}

fn principal(s: &Setup, unit: i64) -> Principal {
    let mapper = datakube_auth::roles::RoleMapper::new(s.catalog.security.clone());
    let identity = Identity {
        subject: "saml:mette".into(),
        display_name: "Mette".into(),
        method: AuthMethod::Saml,
        organisations: vec![AARHUS_CVR.into()],
        privileges: vec![PrivilegeGroup {
            cvr: AARHUS_CVR.into(),
            privileges: vec![EGEN_KOMMUNE.into()],
            constraints: vec![Constraint {
                name: ORGENHED.into(),
                value: unit.to_string(),
            }],
        }],
        ..Identity::default()
    };
    mapper.map(&identity).expect("the analyst role maps")
}

/// The key of `&[key]` at the end of a unique name.
fn key_of(unique: &str) -> i64 {
    let k = unique.rsplit("&[").next().unwrap().trim_end_matches(']');
    k.parse().unwrap_or_else(|_| panic!("no key in {unique}"))
}

#[test]
fn an_orgenhed_constraint_limits_members_cells_and_drillthrough() {
    let s = setup();
    let units = units(&s.dir);
    // A unit in Aarhus with children and with siblings: the granted subtree is a proper part.
    let unit = units
        .iter()
        .filter(|(id, (p, k))| *k == AARHUS && p.is_some() && subtree(&units, **id).len() > 1)
        .map(|(id, _)| *id)
        .find(|id| {
            let parent = units[id].0;
            units.values().filter(|(p, _)| *p == parent).count() > 1
        })
        .expect("an Aarhus unit with children and siblings");
    let granted = subtree(&units, unit);
    let visible: BTreeSet<i64> = granted.iter().copied().chain(ancestors(&units, unit)).collect();
    let p = principal(&s, unit);
    assert_eq!(p.restrictions.len(), 1, "{p:?}");

    // 1. Members: exactly the granted subtree and its ancestors (for navigation), all of Aarhus.
    let out = s.svc.handle_soap(
        execute(
            "SELECT {[Measures].[Fraværsdage]} ON 0, \
             [Organisation].[Organisation].Members ON 1 FROM [Personale]",
        )
        .as_bytes(),
        &p,
    );
    let a = Answer::parse(&out).ok();
    // Every member but the All member.
    let rows: Vec<(usize, String)> = a.axes[1]
        .iter()
        .map(|t| t[0].0.clone())
        .enumerate()
        .filter(|(_, u)| u.contains("&["))
        .collect();
    assert_eq!(rows.len() + 1, a.axes[1].len(), "one All member besides the units");
    let shown: BTreeSet<i64> = rows.iter().map(|(_, u)| key_of(u)).collect();
    assert_eq!(shown, visible, "members shown for a grant on unit {unit}");

    // 2. Cells: each member's value is the sum over its granted descendants only (an ancestor
    //    shows a visual total of the granted part).
    let by_unit = days_by_unit(&s.dir, &granted);
    let mut checked = 0;
    for (i, u) in &rows {
        let id = key_of(u);
        let expected: f64 = subtree(&units, id)
            .intersection(&granted)
            .map(|g| by_unit.get(g).copied().unwrap_or(0.0))
            .sum();
        let got = a.value(*i as u64).unwrap_or(0.0);
        assert!(close(got, expected), "{u}: got {got}, SQL says {expected}");
        checked += 1;
    }
    assert!(checked >= 2);
    let total_granted: f64 = by_unit.values().sum();
    assert!(total_granted > 0.0, "the granted unit has absence rows at this scale");

    // 3. The All member is the total of the granted units, not of Aarhus.
    let out = s.svc.handle_soap(
        execute("SELECT {[Measures].[Fraværsdage]} ON 0 FROM [Personale]").as_bytes(),
        &p,
    );
    let all = Answer::parse(&out).ok().value(0).unwrap_or(0.0);
    assert!(
        close(all, total_granted),
        "All = {all}, SQL over the granted units = {total_granted}"
    );

    // 4. A sibling unit outside the grant does not exist for this user: the same fault as a
    //    unit that exists nowhere.
    let sibling = units
        .iter()
        .find(|(id, (par, _))| *par == units[&unit].0 && **id != unit)
        .map(|(id, _)| *id)
        .unwrap();
    let fault_of = |key: i64| {
        let out = s.svc.handle_soap(
            execute(&format!(
                "SELECT {{[Measures].[Fraværsdage]}} ON 0 FROM [Personale] \
                 WHERE ([Organisation].[Organisation].&[{key}])"
            ))
            .as_bytes(),
            &p,
        );
        Answer::parse(&out).fault.expect("a missing-member fault")
    };
    let (code_sibling, msg_sibling) = fault_of(sibling);
    let (code_none, msg_none) = fault_of(99_999_999);
    assert_eq!(code_sibling, code_none);
    assert_eq!(
        msg_sibling.replace(&sibling.to_string(), "N"),
        msg_none.replace("99999999", "N"),
        "a forbidden unit faults exactly like a missing one"
    );

    // 5. Drillthrough returns only rows of granted units: on the granted unit, and on the
    //    All member (where only the allowed set limits the rows).
    let expected_rows: i64 = {
        let c = datakube_engine::open_connection(&datakube_engine::EngineConfig::default()).unwrap();
        let list: Vec<String> = granted.iter().map(|k| k.to_string()).collect();
        c.query_row(
            &format!(
                "SELECT count(*) FROM {} WHERE kommunekode = {AARHUS} AND org_enhed_id IN ({})",
                table(&s.dir, "personale", "fravaer"),
                list.join(",")
            ),
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(expected_rows > 0);
    for slicer in [format!(", [Organisation].[Organisation].&[{unit}]"), String::new()] {
        let out = s.svc.handle_soap(
            execute(&format!(
                "DRILLTHROUGH MAXROWS 1000000 SELECT FROM [Personale] WHERE ([Measures].[Fraværsdage]{slicer})"
            ))
            .as_bytes(),
            &p,
        );
        assert!(!out.contains("Fault"), "{out}");
        let units_seen: BTreeSet<i64> = out
            .split("<org_enhed_id>")
            .skip(1)
            .map(|r| r.split('<').next().unwrap().trim().parse::<i64>().unwrap())
            .collect();
        assert!(
            units_seen.is_subset(&granted),
            "drillthrough ({slicer:?}) shows units {:?} outside the grant",
            units_seen.difference(&granted).collect::<Vec<_>>()
        );
        assert_eq!(
            out.matches("<row>").count() as i64,
            expected_rows,
            "drillthrough rows of the granted units ({slicer:?})"
        );
    }

    // 6. Without the constraint the same user sees all of Aarhus (the control: the test above
    //    would pass vacuously if the restriction did nothing).
    let mut free = p.clone();
    free.restrictions.clear();
    let out = s.svc.handle_soap(
        execute("SELECT {[Measures].[Fraværsdage]} ON 0 FROM [Personale]").as_bytes(),
        &free,
    );
    let all_aarhus = Answer::parse(&out).ok().value(0).unwrap_or(0.0);
    assert!(
        all_aarhus > total_granted,
        "Aarhus {all_aarhus} > granted {total_granted}"
    );
}

/// An audit log that cannot be written (the fault is real: `/dev/full` refuses every write
/// with ENOSPC) withholds answers on personal data, and only those: the public answer and the
/// server stay up.
#[test]
fn an_unwritable_audit_log_withholds_individual_answers() {
    if !Path::new("/dev/full").exists() {
        panic!("/dev/full is needed to inject the write fault");
    }
    let mut s = setup();
    let log = datakube_auth::audit::AuditLog::open(Path::new("/dev/full"), 1 << 20, 1).unwrap();
    s.svc.audit = Some(std::sync::Arc::new(log));
    let p = principal(&s, 0);
    let mut analyst = p.clone();
    analyst.restrictions.clear();
    let out = s.svc.handle_soap(
        execute("SELECT {[Measures].[Fraværsdage]} ON 0 FROM [Personale]").as_bytes(),
        &analyst,
    );
    let (_, message) = Answer::parse(&out).fault.expect("the answer is withheld");
    assert!(message.contains("audit log cannot be written"), "{message}");
    assert!(!out.contains("<CellData><Cell"), "no cells leave: {out}");
    // Discover is not a query on personal data: it still answers.
    let discover = "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
<Discover xmlns=\"urn:schemas-microsoft-com:xml-analysis\"><RequestType>MDSCHEMA_CUBES</RequestType>\
<Restrictions/><Properties><PropertyList><Catalog>FLIS</Catalog></PropertyList></Properties></Discover></soap:Body></soap:Envelope>";
    let out = s.svc.handle_soap(discover.as_bytes(), &analyst);
    assert!(out.contains("<CUBE_NAME>Personale</CUBE_NAME>"), "{out}");
}
