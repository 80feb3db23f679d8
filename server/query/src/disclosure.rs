//! Disclosure control (diskretionering) for benchmark cubes.
//!
//! A benchmark cube shows every kommune, aggregated. A cell is **suppressed** (no value; the
//! marker of `security.yaml` as its formatted value) when
//!
//! 1. *primary*: its disclosure count — the measure its `disclosure_count` names, counting the
//!    individuals behind it, at the same coordinates — is below `min_cell_count` (k);
//! 2. *complementary*: along some hierarchy, the cell's member and its siblings (the children
//!    of its parent, at the same other coordinates) hold exactly one primary-suppressed cell,
//!    and this cell has the smallest count of the others. The choice depends only on the data,
//!    never on what the query shows, so every answer suppresses the same complement and the
//!    parent total minus the shown siblings never reveals the primary cell;
//! 3. *composite*: it aggregates a set the client chose — a calculated member or visual total
//!    on a dimension, or an ancestor of members a subselect or WHERE set restricts to — since
//!    such a total minus shown cells could reveal a suppressed one.
//!
//! Calculated measures without their own `disclosure_count` use the smallest count of every
//! disclosure measure of the cube.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::cells::CellFetcher;
use crate::error::{QueryError, Result};
use crate::eval::{CellResult, Env, Scalar};
use crate::space::{HierIdx, MEASURES, MemberRef, QueryMeasureKind};

const MAX_ROUNDS: usize = 16;

/// Values of many cells, fetched in batched rounds.
fn eval_many(env: &Env, fetcher: &RefCell<CellFetcher>, coords: &[Vec<u32>]) -> Result<Vec<Scalar>> {
    let mut out: Vec<Option<Scalar>> = vec![None; coords.len()];
    for round in 0..=MAX_ROUNDS {
        let mut pending = false;
        for (i, c) in coords.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            match env.cell(c, &mut *fetcher.borrow_mut())? {
                CellResult::Ready(x) => out[i] = Some(x),
                CellResult::Pending => pending = true,
            }
        }
        if !pending {
            return Ok(out.into_iter().map(|v| v.unwrap_or(Scalar::Empty)).collect());
        }
        if round == MAX_ROUNDS {
            break;
        }
        fetcher.borrow_mut().fetch_pending()?;
    }
    Err(QueryError::Execution(
        "disclosure control needs more than 16 rounds of data fetching".into(),
    ))
}

/// A count below k (an empty count is no individual: nothing to protect, and known empty).
fn is_small(v: &Scalar, k: u32) -> bool {
    matches!(v, Scalar::Num(x) if *x < f64::from(k))
}

/// Which of `cells` (coordinates of non-empty cells) to suppress.
pub fn suppressed(
    env: &Env,
    fetcher: &RefCell<CellFetcher>,
    cells: &[Vec<u32>],
    restricted: &HashMap<HierIdx, Vec<u32>>,
    k: u32,
) -> Result<Vec<bool>> {
    let space = env.space;
    // Disclosure measures: per measure index, the count measures that guard it.
    let index_of = |name: &str| space.measures.iter().position(|m| m.name.eq_ignore_ascii_case(name));
    let mut all_counts: Vec<u32> = space
        .cube
        .measures
        .iter()
        .filter_map(|m| m.disclosure_count.as_deref().and_then(index_of))
        .map(|i| i as u32)
        .collect();
    all_counts.sort_unstable();
    all_counts.dedup();
    if all_counts.is_empty() {
        // A benchmark cube without counts cannot show anything safely.
        return Ok(vec![true; cells.len()]);
    }
    let guards = |measure: u32| -> Vec<u32> {
        let m = &space.measures[measure as usize];
        let own = space
            .cube
            .measures
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(&m.name))
            .and_then(|d| d.disclosure_count.as_deref())
            .and_then(index_of);
        match (own, &m.kind) {
            (Some(i), _) => vec![i as u32],
            (None, QueryMeasureKind::Stored(_)) | (None, QueryMeasureKind::Calculated(_)) => all_counts.clone(),
        }
    };

    let mut out = vec![false; cells.len()];
    // 3. Composite cells.
    let inside = |h: HierIdx, id: u32, allowed: &[u32]| {
        let mut m = Some(MemberRef { h, id });
        while let Some(x) = m {
            if allowed.contains(&x.id) {
                return true;
            }
            m = space.member_parent(x);
        }
        false
    };
    for (i, c) in cells.iter().enumerate() {
        let calc = (1..c.len()).any(|h| space.is_calc(MemberRef { h, id: c[h] }));
        let over_subset = restricted.iter().any(|(&h, allowed)| !inside(h, c[h], allowed));
        out[i] = calc || over_subset;
    }

    // 1. Primary: counts at the cells' own coordinates.
    let mut needed: HashMap<Vec<u32>, usize> = HashMap::new();
    let mut order: Vec<Vec<u32>> = Vec::new();
    let mut want = |c: Vec<u32>, needed: &mut HashMap<Vec<u32>, usize>| {
        if !needed.contains_key(&c) {
            needed.insert(c.clone(), order.len());
            order.push(c);
        }
    };
    for (i, c) in cells.iter().enumerate() {
        if out[i] {
            continue;
        }
        for d in guards(c[MEASURES]) {
            let mut x = c.clone();
            x[MEASURES] = d;
            want(x.clone(), &mut needed);
            // 2. The sibling groups along every hierarchy.
            for h in 1..c.len() {
                let m = MemberRef { h, id: c[h] };
                let Some(p) = space.member_parent(m) else { continue };
                if space.is_calc(p) {
                    continue;
                }
                for &s in &space.hier(h).members.get(p.id).children {
                    let mut y = x.clone();
                    y[h] = s;
                    want(y, &mut needed);
                }
            }
        }
    }
    let values = eval_many(env, fetcher, &order)?;
    let count = |c: &[u32]| needed.get(c).map(|&i| &values[i]).unwrap_or(&Scalar::Empty);

    // The complement of each group: the non-primary sibling with the smallest count, when the
    // group has exactly one primary cell.
    let mut complements: HashMap<(Vec<u32>, HierIdx), Option<u32>> = HashMap::new();
    for (i, c) in cells.iter().enumerate() {
        if out[i] {
            continue;
        }
        'guards: for d in guards(c[MEASURES]) {
            let mut x = c.clone();
            x[MEASURES] = d;
            if is_small(count(&x), k) {
                out[i] = true;
                break;
            }
            for h in 1..c.len() {
                let m = MemberRef { h, id: c[h] };
                let Some(p) = space.member_parent(m) else { continue };
                if space.is_calc(p) {
                    continue;
                }
                let mut group = x.clone();
                group[h] = p.id;
                let complement = complements.entry((group, h)).or_insert_with(|| {
                    let siblings = &space.hier(h).members.get(p.id).children;
                    let mut primaries = 0;
                    let mut best: Option<(f64, u32, u32)> = None;
                    for &s in siblings {
                        let mut y = x.clone();
                        y[h] = s;
                        match count(&y) {
                            v if is_small(v, k) => primaries += 1,
                            Scalar::Num(n) => {
                                let ord = space.hier(h).members.get(s).ordinal;
                                if best.is_none_or(|(bn, bo, _)| (*n, ord) < (bn, bo)) {
                                    best = Some((*n, ord, s));
                                }
                            }
                            _ => {}
                        }
                    }
                    if primaries == 1 { best.map(|(_, _, s)| s) } else { None }
                });
                if *complement == Some(c[h]) {
                    out[i] = true;
                    break 'guards;
                }
            }
        }
    }
    Ok(out)
}
