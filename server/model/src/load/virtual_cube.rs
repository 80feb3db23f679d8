//! Virtual cubes (`virtual: {cubes: [...]}`): dimensions and measures taken from ordinary
//! cubes of the catalogue, resolved into a [`Cube`] whose fact relation is the union of one
//! projection per base cube ([`VirtualCube`]). The query side turns it into SQL
//! (`datakube_members::fact_relation`); here we only decide which base column appears under
//! which name, so that
//!
//! - a dimension key column is NULL on the rows of every base cube that does not have the
//!   dimension (its measures are then empty below the All member, as in Mondrian), and
//! - a stored measure keeps its base cube (`StoredMeasure::base_cube`) and aggregates only
//!   that cube's rows.

use super::*;

/// The columns of the union: one name per column, and per base cube the base column it holds.
struct Projection {
    names: Vec<String>,
    /// Per name, per base cube.
    cols: Vec<Vec<Option<String>>>,
    /// Dimension keys must be NULL wherever their mapping has no column.
    dim: Vec<bool>,
    parts: usize,
}

impl Projection {
    fn new(parts: usize) -> Self {
        Projection {
            // Reserved: the base cube of each row.
            names: vec![BASE_CUBE_COLUMN.to_string()],
            cols: vec![vec![None; parts]],
            dim: vec![true],
            parts,
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.eq_ignore_ascii_case(name))
    }

    fn candidate(base: &str, k: usize) -> String {
        if k == 1 {
            base.to_string()
        } else {
            format!("{base}_{k}")
        }
    }

    /// The name of a dimension key whose base columns are `mapping` (one per base cube).
    fn dim_key(&mut self, base: &str, mapping: Vec<Option<String>>) -> String {
        for k in 1.. {
            let cand = Self::candidate(base, k);
            match self.find(&cand) {
                None => {
                    self.names.push(cand.clone());
                    self.cols.push(mapping);
                    self.dim.push(true);
                    return cand;
                }
                Some(i) if self.dim[i] && self.cols[i] == mapping => return cand,
                Some(_) => {}
            }
        }
        unreachable!("some candidate name is free")
    }

    /// The name under which base cube `part`'s column `col` appears, preferably `want`.
    fn column(&mut self, part: usize, col: &str, want: &str) -> String {
        for k in 1.. {
            let cand = Self::candidate(want, k);
            match self.find(&cand) {
                None => {
                    let mut mapping = vec![None; self.parts];
                    mapping[part] = Some(col.to_string());
                    self.names.push(cand.clone());
                    self.cols.push(mapping);
                    self.dim.push(false);
                    return cand;
                }
                Some(i) if self.cols[i][part].as_deref() == Some(col) => return cand,
                Some(i) if !self.dim[i] && self.cols[i][part].is_none() => {
                    self.cols[i][part] = Some(col.to_string());
                    return cand;
                }
                Some(_) => {}
            }
        }
        unreachable!("some candidate name is free")
    }

    /// `(base column, name)` of base cube `part`.
    fn part_columns(&self, part: usize) -> Vec<(String, String)> {
        self.names
            .iter()
            .zip(&self.cols)
            .filter_map(|(n, m)| m[part].as_ref().map(|c| (c.clone(), n.clone())))
            .collect()
    }
}

impl Resolver<'_> {
    pub(super) fn virtual_cube(
        &mut self,
        src: &Src,
        c: &CubeDef,
        v: &VirtualDef,
        shared: &[SharedDim],
        ordinary: &[Cube],
        virtual_names: &[&str],
    ) -> Cube {
        let p = YPath::root().k("cube");
        self.name(src, &p.k("name"), &c.name, "cube");
        let what = format!("cube '{}'", c.name);
        let caption = self.caption(src, &p, &c.caption, &what, &c.name);
        let vp = p.k("virtual");
        if c.source.is_some() {
            self.err_key(
                src,
                &p.k("source"),
                "a virtual cube has no source of its own",
                Some("its facts are those of the cubes listed under virtual: cubes".into()),
            );
        }
        if c.drillthrough.is_some() {
            self.err_key(
                src,
                &p.k("drillthrough"),
                "drillthrough is not available on a virtual cube",
                Some("define it on the base cubes".into()),
            );
        }
        if !c.aggregates.is_empty() {
            self.err_key(
                src,
                &p.k("aggregates"),
                "aggregates are never built for a virtual cube",
                Some("declare them on the base cubes".into()),
            );
        }

        // Base cubes.
        let mut bases: Vec<&Cube> = Vec::new();
        if v.cubes.is_empty() {
            self.err(src, &vp.k("cubes"), "a virtual cube needs at least one base cube", None);
        }
        let known: Vec<&str> = ordinary.iter().map(|b| b.name.as_str()).collect();
        for (i, name) in v.cubes.iter().enumerate() {
            let cp = vp.k("cubes").i(i);
            match ordinary.iter().find(|b| same(&b.name, name)) {
                Some(b) if bases.iter().any(|x| same(&x.name, &b.name)) => {
                    self.err(src, &cp, format!("base cube '{name}' is listed twice"), None)
                }
                Some(b) => bases.push(b),
                None if virtual_names.iter().any(|n| same(n, name)) => self.err(
                    src,
                    &cp,
                    format!("cube '{name}' is virtual; a virtual cube is built from ordinary cubes"),
                    Some("list the base cubes of that cube instead".into()),
                ),
                None => self.err(
                    src,
                    &cp,
                    format!("unknown base cube '{name}'"),
                    Some(hint_with_list(name, &known, "cubes")),
                ),
            }
        }
        let base_names: Vec<&str> = bases.iter().map(|b| b.name.as_str()).collect();
        let base_list = base_names.join(", ");
        let base_index = |name: &str| bases.iter().position(|b| same(&b.name, name));

        // Security: the class of the base cubes.
        let security = self.security(src, &p, c, None);
        for b in &bases {
            if b.security.class != security.class {
                self.err(
                    src,
                    &p.k("security").k("class"),
                    format!(
                        "the security class of virtual cube '{}' differs from that of its base cube '{}'",
                        c.name, b.name
                    ),
                    Some("a virtual cube has the security class (and min_cell_count) of its base cubes".into()),
                );
            }
        }

        // Dimensions.
        let mut proj = Projection::new(bases.len());
        let mut names = Names::default();
        let mut dims: Vec<Dimension> = Vec::new();
        // Per dimension: the base cubes that have it.
        let mut dim_parts: Vec<Vec<usize>> = Vec::new();
        for (j, cd) in c.dimensions.iter().enumerate() {
            let dp = p.k("dimensions").i(j);
            for (key, present) in [
                ("caption", cd.caption.is_some()),
                ("description", cd.description.is_some()),
                ("source", cd.source.is_some()),
                ("hierarchies", cd.hierarchies.is_some()),
                ("foreign_key", cd.foreign_key.is_some()),
                ("use_hierarchies", cd.use_hierarchies.is_some()),
            ] {
                if present {
                    self.err_key(
                        src,
                        &dp.k(key),
                        format!("'{key}' is taken from the base cubes in a virtual cube"),
                        Some("name a dimension with shared: <name>, or name: <dimension> and from: <base cube>".into()),
                    );
                }
            }
            let (name_path, users): (YPath, Vec<(usize, &Dimension)>) = match (&cd.shared, &cd.name, &cd.from) {
                (Some(sname), None, None) => {
                    let users: Vec<(usize, &Dimension)> = bases
                        .iter()
                        .enumerate()
                        .filter_map(|(k, b)| {
                            b.dimensions
                                .iter()
                                .find(|d| d.shared && same(&d.name, sname))
                                .map(|d| (k, d))
                        })
                        .collect();
                    if users.is_empty() {
                        if shared.iter().any(|sd| same(&sd.dim.name, sname)) {
                            self.err(
                                src,
                                &dp.k("shared"),
                                format!(
                                    "no base cube of virtual cube '{}' uses shared dimension '{sname}'",
                                    c.name
                                ),
                                Some(format!("base cubes: {base_list}")),
                            );
                        } else {
                            let known: Vec<&str> = shared.iter().map(|s| s.dim.name.as_str()).collect();
                            self.err(
                                src,
                                &dp.k("shared"),
                                format!("unknown shared dimension '{sname}'"),
                                Some(hint_with_list(sname, &known, "shared dimensions")),
                            );
                        }
                        continue;
                    }
                    (dp.k("shared"), users)
                }
                (None, Some(dname), Some(from)) => {
                    let Some(k) = base_index(from) else {
                        self.err(
                            src,
                            &dp.k("from"),
                            format!("'{from}' is not a base cube of virtual cube '{}'", c.name),
                            Some(hint_with_list(from, &base_names, "base cubes")),
                        );
                        continue;
                    };
                    let Some(d) = bases[k].dimension(dname) else {
                        let known: Vec<&str> = bases[k].dimensions.iter().map(|d| d.name.as_str()).collect();
                        self.err(
                            src,
                            &dp.k("name"),
                            format!("base cube '{}' has no dimension '{dname}'", bases[k].name),
                            Some(hint_with_list(dname, &known, "dimensions")),
                        );
                        continue;
                    };
                    (dp.k("name"), vec![(k, d)])
                }
                (None, Some(dname), None) => {
                    self.err(
                        src,
                        &dp,
                        format!("dimension '{dname}' of a virtual cube needs 'from: <base cube>'"),
                        Some("or use shared: <name> for a shared dimension of several base cubes".into()),
                    );
                    continue;
                }
                (Some(_), _, _) => {
                    let key = if cd.name.is_some() { "name" } else { "from" };
                    self.err_key(
                        src,
                        &dp.k(key),
                        format!("'{key}' cannot be used with 'shared'"),
                        Some("shared: <name> takes the dimension from every base cube that uses it".into()),
                    );
                    continue;
                }
                (None, None, _) => {
                    self.err(
                        src,
                        &dp,
                        "a dimension of a virtual cube needs 'shared: <name>', or 'name: <dimension>' with 'from: <base cube>'",
                        None,
                    );
                    continue;
                }
            };
            let first = users[0].1;
            self.unique(&mut names, src, &name_path, &first.name, "dimension", &what);
            if first.hierarchies.iter().any(|h| h.source.is_none()) {
                self.err(
                    src,
                    &name_path,
                    format!(
                        "dimension '{}' reads its columns from the fact table, which a virtual cube does not support",
                        first.name
                    ),
                    Some("give the dimension a table (source) in its definition".into()),
                );
                continue;
            }
            let mut mapping = vec![None; bases.len()];
            for (k, d) in &users {
                mapping[*k] = d.foreign_key.clone();
            }
            let mut dim = first.clone();
            let fk = first.foreign_key.clone().unwrap_or_default();
            dim.foreign_key = Some(proj.dim_key(&fk, mapping));
            dims.push(dim);
            dim_parts.push(users.iter().map(|(k, _)| *k).collect());
        }

        // The row-scope column: every base cube's, under the name the virtual cube declares.
        if let Some(rsc) = &security.row_scope_column {
            for (k, b) in bases.iter().enumerate() {
                let Some(base_rsc) = &b.security.row_scope_column else {
                    continue;
                };
                if proj.column(k, base_rsc, rsc) != *rsc {
                    self.err(
                        src,
                        &p.k("security").k("row_scope_column"),
                        format!("row_scope_column '{rsc}' is already a dimension key of this virtual cube"),
                        Some("pick another name for the row-scope column".into()),
                    );
                }
            }
        }

        // Measures.
        let measures = self.virtual_measures(src, &p, c, &bases, &dims, &dim_parts, &mut proj);

        let parts = bases
            .iter()
            .enumerate()
            .map(|(k, b)| VirtualPart {
                cube: b.name.clone(),
                source: b.source.clone(),
                columns: proj.part_columns(k),
            })
            .collect();
        Cube {
            name: c.name.clone(),
            caption,
            description: description(&c.description),
            source: bases
                .first()
                .map(|b| b.source.clone())
                .unwrap_or(Source::Path { glob: String::new() }),
            virtual_cube: Some(VirtualCube { parts }),
            security,
            dimensions: dims,
            measures,
            drillthrough: None,
            aggregates: Vec::new(),
            file: src.path.to_path_buf(),
        }
    }

    /// The measures of a virtual cube: taken from base cubes (`from:`, with what their
    /// calculations and disclosure counts refer to, hidden) and calculated here.
    #[allow(clippy::too_many_arguments)]
    fn virtual_measures(
        &mut self,
        src: &Src,
        p: &YPath,
        c: &CubeDef,
        bases: &[&Cube],
        dims: &[Dimension],
        dim_parts: &[Vec<usize>],
        proj: &mut Projection,
    ) -> Vec<Measure> {
        let mp_all = p.k("measures");
        self.measure_names(
            src,
            &mp_all,
            c,
            "add measures with name: <measure> and from: <base cube>",
        );
        let base_names: Vec<&str> = bases.iter().map(|b| b.name.as_str()).collect();
        // (definition index, base cube or None for calculated here, measure).
        let mut out: Vec<(usize, Option<usize>, Measure)> = Vec::new();
        let mut own: Vec<usize> = Vec::new();
        for (i, m) in c.measures.iter().enumerate() {
            let mp = mp_all.i(i);
            let Some(from) = &m.from else {
                if m.expression.is_none() {
                    self.err(
                        src,
                        &mp,
                        format!("measure '{}' of a virtual cube needs 'from: <base cube>'", m.name),
                        Some("a virtual cube takes stored measures from its base cubes; only calculated measures (expression) are defined here".into()),
                    );
                } else {
                    own.push(i);
                }
                continue;
            };
            for (key, present) in [
                ("column", m.column.is_some()),
                ("aggregator", m.aggregator.is_some()),
                ("time_dimension", m.time_dimension.is_some()),
                ("filter", m.filter.is_some()),
                ("expression", m.expression.is_some()),
                ("disclosure_count", m.disclosure_count.is_some()),
            ] {
                if present {
                    self.err_key(
                        src,
                        &mp.k(key),
                        format!("'{key}' is taken from the base cube"),
                        Some("a measure with from: keeps its base cube's definition".into()),
                    );
                }
            }
            let Some(k) = bases.iter().position(|b| same(&b.name, from)) else {
                self.err(
                    src,
                    &mp.k("from"),
                    format!("'{from}' is not a base cube of virtual cube '{}'", c.name),
                    Some(hint_with_list(from, &base_names, "base cubes")),
                );
                continue;
            };
            let Some(bm) = bases[k].measure(&m.name) else {
                let known: Vec<&str> = bases[k].measures.iter().map(|x| x.name.as_str()).collect();
                self.err(
                    src,
                    &mp.k("name"),
                    format!("base cube '{}' has no measure '{}'", bases[k].name, m.name),
                    Some(hint_with_list(&m.name, &known, "measures")),
                );
                continue;
            };
            let mut bm = bm.clone();
            if m.caption.is_some() {
                bm.caption = self.caption(src, &mp, &m.caption, &format!("measure '{}'", m.name), &m.name);
            }
            if m.format_string.is_some() {
                bm.format_string = m.format_string.clone();
            }
            if m.display_folder.is_some() {
                bm.display_folder = m.display_folder.clone();
            }
            bm.visible = m.visible;
            out.push((i, Some(k), bm));
        }

        // What the taken calculations and disclosure counts refer to comes along, hidden.
        let mut n = 0;
        while n < out.len() {
            let (i, Some(k), m) = &out[n] else {
                n += 1;
                continue;
            };
            let (i, k) = (*i, *k);
            let mut wanted: Vec<String> = match &m.kind {
                MeasureKind::Calculated(cm) => cm.references.clone(),
                MeasureKind::Stored(_) => Vec::new(),
            };
            wanted.extend(m.disclosure_count.clone());
            let user = m.name.clone();
            for r in wanted {
                let found = out.iter().find(|(_, _, x)| same(&x.name, &r)).map(|(_, k2, _)| *k2);
                match found {
                    Some(Some(k2)) if k2 == k => {}
                    Some(other) => {
                        let whose = match other {
                            Some(k2) => format!("takes from '{}'", bases[k2].name),
                            None => "calculates itself".to_string(),
                        };
                        self.err(
                            src,
                            &mp_all.i(i),
                            format!(
                                "measure '{user}' of base cube '{}' refers to [Measures].[{r}], which this virtual cube {whose}",
                                bases[k].name
                            ),
                            Some(format!("take [{r}] from '{}' as well", bases[k].name)),
                        );
                    }
                    None => {
                        if let Some(bm) = bases[k].measure(&r) {
                            let mut bm = bm.clone();
                            bm.visible = false;
                            out.push((i, Some(k), bm));
                        }
                    }
                }
            }
            n += 1;
        }

        // Stored measures read their base cube's columns under their names in the union.
        for (i, k, m) in &mut out {
            let (Some(k), MeasureKind::Stored(s)) = (*k, &mut m.kind) else {
                continue;
            };
            s.base_cube = Some(bases[k].name.clone());
            if let Some(col) = &s.column {
                s.column = Some(proj.column(k, col, col));
            }
            if let Some(f) = &mut s.filter {
                f.column = proj.column(k, &f.column, &f.column);
            }
            if let Some(td) = &s.time_dimension {
                let has = dims
                    .iter()
                    .zip(dim_parts)
                    .any(|(d, parts)| same(&d.name, td) && parts.contains(&k));
                if !has {
                    self.err(
                        src,
                        &mp_all.i(*i),
                        format!(
                            "measure '{}' is semi-additive over '{td}', which this virtual cube does not take from '{}'",
                            m.name, bases[k].name
                        ),
                        Some(format!("add the dimension '{td}' to the virtual cube")),
                    );
                }
            }
        }

        // Calculated measures defined here.
        let mut all_names: Vec<String> = out.iter().map(|(_, _, m)| m.name.clone()).collect();
        all_names.extend(own.iter().map(|&i| c.measures[i].name.clone()));
        let all: Vec<&str> = all_names.iter().map(String::as_str).collect();
        for i in own {
            let m = &c.measures[i];
            let mp = mp_all.i(i);
            let what = format!("measure '{}'", m.name);
            let caption = self.caption(src, &mp, &m.caption, &what, &m.name);
            let text = m.expression.as_deref().unwrap_or_default();
            let Some(kind) = self.calculated(src, &mp, m, text, &what, &all) else {
                continue;
            };
            if m.disclosure_count.is_some() {
                self.err_key(
                    src,
                    &mp.k("disclosure_count"),
                    "disclosure_count of a calculated measure in a virtual cube is not supported",
                    None,
                );
            }
            out.push((
                i,
                None,
                Measure {
                    name: m.name.clone(),
                    caption,
                    description: description(&m.description),
                    unique_name: format!("[Measures].{}", model::bracket(&m.name)),
                    kind,
                    format_string: m.format_string.clone(),
                    display_folder: m.display_folder.clone(),
                    visible: m.visible,
                    disclosure_count: None,
                },
            ));
        }
        // Field-list order: as written; hidden ones after.
        out.sort_by_key(|(i, k, m)| (!m.visible && k.is_some(), *i));
        let indexed: Vec<(usize, Measure)> = out.into_iter().map(|(i, _, m)| (i, m)).collect();
        self.measure_cycles(src, &mp_all, &indexed);
        indexed.into_iter().map(|(_, m)| m).collect()
    }
}
