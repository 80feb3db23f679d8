//! Disclosure control (diskretionering) for benchmark cubes.
//!
//! A benchmark cube shows every kommune, aggregated. A cell is **suppressed** (no value; the
//! marker of `security.yaml` as its formatted value) when
//!
//! 1. *primary*: its disclosure count — the measure its `disclosure_count` names, counting the
//!    individuals behind it, at the same coordinates — is below `min_cell_count` (k);
//! 2. *complementary*: along some hierarchy, the cell's member and its siblings (the children
//!    of its parent, at the same other coordinates) hold exactly one suppressed cell, and this
//!    cell has the smallest count of the others. Repeated across hierarchies until no group
//!    holds exactly one suppressed cell, over the whole sibling grid of the answer's cells
//!    (every combination of their members' siblings), so the choice depends only on the data,
//!    never on what the query shows: every answer suppresses the same complements, and no
//!    parent total minus shown siblings reveals a suppressed cell along any hierarchy;
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

/// The most cells disclosure control checks for one answer (the sibling grids of its cells).
pub const MAX_GRID: usize = 250_000;

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

    // The grid: for each cell and each guard, every coordinate whose members are siblings of
    // the cell's (children of the same parents, hierarchy by hierarchy). Grids are closed
    // under "replace one member by a sibling", so every sibling group of a grid coordinate
    // lies in the same grid, and what is suppressed in it depends only on its data, never on
    // which of its cells the query shows.
    let sibs = |h: HierIdx, id: u32| -> Vec<u32> {
        match space.member_parent(MemberRef { h, id }) {
            Some(p) if !space.is_calc(p) => space.hier(h).members.get(p.id).children.clone(),
            _ => vec![id],
        }
    };
    let mut index: HashMap<Vec<u32>, usize> = HashMap::new();
    let mut grid: Vec<Vec<u32>> = Vec::new();
    let mut boxes_seen: std::collections::HashSet<Vec<u32>> = std::collections::HashSet::new();
    for (i, c) in cells.iter().enumerate() {
        if out[i] {
            continue;
        }
        for d in guards(c[MEASURES]) {
            let mut x = c.clone();
            x[MEASURES] = d;
            // A box is named by the cell with every member replaced by its first sibling.
            let choices: Vec<Vec<u32>> = (0..x.len())
                .map(|h| if h == MEASURES { vec![x[h]] } else { sibs(h, x[h]) })
                .collect();
            let name: Vec<u32> = choices.iter().map(|v| v[0]).collect();
            if !boxes_seen.insert(name) {
                continue;
            }
            let size: usize = choices.iter().map(Vec::len).product();
            if grid.len() + size > MAX_GRID {
                return Err(QueryError::Execution(format!(
                    "disclosure control would have to check more than {MAX_GRID} cells for this answer; \
                     show fewer members side by side (e.g. filter Tid or Kommune)"
                )));
            }
            let mut cur = vec![0usize; choices.len()];
            loop {
                let y: Vec<u32> = cur.iter().enumerate().map(|(h, &j)| choices[h][j]).collect();
                if !index.contains_key(&y) {
                    index.insert(y.clone(), grid.len());
                    grid.push(y);
                }
                let mut h = 0;
                while h < cur.len() {
                    cur[h] += 1;
                    if cur[h] < choices[h].len() {
                        break;
                    }
                    cur[h] = 0;
                    h += 1;
                }
                if h == cur.len() {
                    break;
                }
            }
        }
    }
    let values = eval_many(env, fetcher, &grid)?;

    // 1. Primary suppression.
    let mut sup: Vec<bool> = values.iter().map(|v| is_small(v, k)).collect();
    // 2. Complementary suppression, to a fixpoint across hierarchies: while some sibling group
    //    (along any hierarchy) holds exactly one suppressed cell, its parent total minus the
    //    others would reveal it, so the non-suppressed sibling with the smallest count (then the
    //    lowest ordinal) is suppressed too. A complement chosen along one hierarchy can start a
    //    group along another; the loop ends because every round suppresses at least one more
    //    cell of a finite grid.
    let mut groups: Vec<(HierIdx, Vec<usize>)> = Vec::new();
    for h in 1..grid.first().map_or(0, Vec::len) {
        let mut by_rest: HashMap<Vec<u32>, Vec<usize>> = HashMap::new();
        for (g, y) in grid.iter().enumerate() {
            let mut rest = y.clone();
            rest[h] = space
                .member_parent(MemberRef { h, id: y[h] })
                .map_or(u32::MAX, |p| p.id);
            if rest[h] == u32::MAX {
                continue;
            }
            by_rest.entry(rest).or_default().push(g);
        }
        groups.extend(by_rest.into_values().filter(|v| v.len() > 1).map(|v| (h, v)));
    }
    let ordinal = |g: usize, h: HierIdx| space.hier(h).members.get(grid[g][h]).ordinal;
    loop {
        let mut changed = false;
        for (h, group) in &groups {
            let h = *h;
            if group.iter().filter(|&&g| sup[g]).count() != 1 {
                continue;
            }
            let best = group
                .iter()
                .filter(|&&g| !sup[g])
                .filter_map(|&g| match values[g] {
                    Scalar::Num(n) => Some((n, ordinal(g, h), g)),
                    _ => None,
                })
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            if let Some((_, _, g)) = best {
                sup[g] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (i, c) in cells.iter().enumerate() {
        if out[i] {
            continue;
        }
        out[i] = guards(c[MEASURES]).into_iter().any(|d| {
            let mut x = c.clone();
            x[MEASURES] = d;
            index.get(&x).is_some_and(|&g| sup[g])
        });
    }
    Ok(out)
}
