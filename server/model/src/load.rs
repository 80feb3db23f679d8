//! Reading a folder of definition files: YAML → [`DefinitionFile`]s → checks → [`Catalog`].
//!
//! Every problem becomes a [`Diagnostic`] with its file position; loading goes on after a
//! problem so that one run reports all of them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_saphyr::MessageFormatter;

use crate::diagnostic::{Diagnostic, Severity, did_you_mean, hint_with_list};
use crate::format::*;
use crate::mdx::{self, MeasureRef};
use crate::model::{self, *};
use crate::yaml::{Doc, Pos, YPath};

mod virtual_cube;

/// The keys a definition file can start with.
const FILE_KINDS: [&str; 4] = ["catalog", "dimension", "cube", "security"];

/// Grouping sets an aggregate with a distinct-count measure may store (each is a group-by
/// of its own over the fact table at build time).
pub const MAX_DISTINCT_SETS: usize = 64;

/// Folder names and file names starting with `.` are skipped.
fn discover(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            discover(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            out.push(p);
        }
    }
    Ok(())
}

/// For a file argument: the nearest folder at or above it with a `catalog.yaml`/`catalog.yml`
/// (so a cube file is checked together with its shared dimensions), else its own folder.
fn catalog_root(path: &Path) -> PathBuf {
    if !path.is_file() {
        return path.to_path_buf();
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut dir = Some(parent.as_path());
    for _ in 0..4 {
        let Some(d) = dir else { break };
        if d.join("catalog.yaml").is_file() || d.join("catalog.yml").is_file() {
            return d.to_path_buf();
        }
        dir = d.parent().filter(|p| !p.as_os_str().is_empty());
    }
    parent
}

fn no_pos(file: &Path, message: String, hint: Option<String>) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        severity: Severity::Error,
        message,
        hint,
    }
}

/// Reads every `*.yaml`/`*.yml` under `path` (recursively) and builds the catalog. `path` may
/// also be one definition file: then the catalog folder it belongs to is loaded.
///
/// With a [`SchemaProvider`], every column named in the definitions is checked against the
/// real columns of its source. Returns all errors and warnings when there is any error;
/// otherwise the catalog, with any warnings in [`Catalog::warnings`].
pub fn load_catalog(path: &Path, schemas: Option<&dyn SchemaProvider>) -> Result<Catalog, Vec<Diagnostic>> {
    let root = catalog_root(path);
    let mut files = Vec::new();
    if let Err(e) = discover(&root, &mut files) {
        return Err(vec![no_pos(&root, format!("cannot read the folder: {e}"), None)]);
    }
    let mut r = Resolver {
        schemas,
        naming: Naming::Key,
        tables: HashMap::new(),
        diags: Vec::new(),
    };
    let mut texts = Vec::new();
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(t) => texts.push((f.clone(), t)),
            Err(e) => r.diags.push(no_pos(f, format!("cannot read the file: {e}"), None)),
        }
    }
    let mut parsed = Vec::new();
    for (f, text) in &texts {
        match serde_saphyr::from_str::<DefinitionFile>(text) {
            Ok(def) => parsed.push((
                Src {
                    path: f,
                    doc: Doc::parse(text),
                },
                def,
            )),
            Err(e) => r.diags.push(yaml_error(f, &e)),
        }
    }
    let catalog = r.catalog(&root, &parsed, files);
    let mut diags = r.diags;
    diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    diags.dedup();
    match catalog {
        Some(mut c) if !diags.iter().any(Diagnostic::is_error) => {
            c.warnings = diags;
            Ok(c)
        }
        _ => Err(diags),
    }
}

/// A deserialization error (YAML syntax, unknown key, wrong type) as a diagnostic.
fn yaml_error(file: &Path, err: &serde_saphyr::Error) -> Diagnostic {
    use serde_saphyr::Error as E;
    let inner = err.without_snippet();
    let (line, column) = inner
        .location()
        .or_else(|| err.location())
        .map(|l| (l.line() as usize, l.column() as usize))
        .filter(|&(l, _)| l > 0)
        .unwrap_or((1, 1));
    let (message, hint) = match inner {
        E::SerdeUnknownField { field, expected, .. } => (
            format!("unknown key '{field}'"),
            Some(hint_with_list(field, expected, "keys")),
        ),
        E::SerdeUnknownVariant { variant, expected, .. } if expected.as_slice() == FILE_KINDS => (
            format!("unknown top-level key '{variant}'"),
            Some(hint_with_list(variant, expected, "top-level keys (one per file)")),
        ),
        E::SerdeUnknownVariant { variant, expected, .. } => (
            format!("unknown value '{variant}'"),
            Some(hint_with_list(variant, expected, "values")),
        ),
        E::SerdeMissingField { field, .. } => (format!("missing key '{field}'"), None),
        E::SerdeInvalidType {
            unexpected, expected, ..
        } => (format!("wrong type: expected {expected}, found {unexpected}"), None),
        E::Unexpected { expected, .. } => {
            let what = match *expected {
                "sequence start" => "a list",
                "mapping start" | "empty mapping start" => "a mapping (key: value lines or {key: value})",
                "string scalar" | "scalar" | "value" => "a single value",
                other => other,
            };
            let hint = (what == "a single value")
                .then(|| "quote text that starts with [ or {, e.g. expression: \"[Measures].[A] / 2\"".to_string());
            (format!("wrong type: expected {what}"), hint)
        }
        E::Eof { .. } => (
            "the file is empty".to_string(),
            Some("a definition file starts with one of catalog:, dimension: or cube:".to_string()),
        ),
        other => {
            let m = serde_saphyr::UserMessageFormatter.format_message(other).into_owned();
            (m, None)
        }
    };
    Diagnostic {
        file: file.to_path_buf(),
        line,
        column,
        severity: Severity::Error,
        message,
        hint,
    }
}

/// One successfully deserialized file with its position tree.
struct Src<'t> {
    path: &'t Path,
    doc: Doc<'t>,
}

/// Columns of one source.
struct Table {
    source: Source,
    columns: Vec<(String, String)>,
}

impl Table {
    /// The DuckDB type of a column (exact name, then case-insensitive).
    fn get(&self, name: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(c, _)| c == name)
            .or_else(|| self.columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)))
            .map(|(_, t)| t.as_str())
    }
}

/// A shared dimension with what is needed to check it again inside each cube.
struct SharedDim<'p> {
    src: &'p Src<'p>,
    path: YPath,
    def: &'p DimensionDef,
    dim: Dimension,
}

/// The fields a dimension is built from, in a shared file or inline in a cube.
struct DimInput<'d> {
    name: &'d str,
    caption: &'d Option<CaptionDef>,
    description: &'d Option<DescriptionDef>,
    source: &'d Option<SourceDef>,
    hierarchies: &'d [HierarchyDef],
}

/// Names already used in one scope, for case-insensitive duplicate checks.
#[derive(Default)]
struct Names(HashMap<String, usize>);

fn same(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

fn description(d: &Option<DescriptionDef>) -> Option<Description> {
    d.as_ref().map(|d| Description {
        da: d.da.clone(),
        en: d.en.clone(),
    })
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Family {
    Integer,
    Float,
    Text,
    Date,
    Bool,
    Other,
}

/// The broad kind of a DuckDB type name.
fn family(duck_type: &str) -> Family {
    let t = duck_type.trim().to_ascii_uppercase();
    let base = t.split('(').next().unwrap_or("").trim();
    match base {
        "TINYINT" | "SMALLINT" | "INTEGER" | "INT" | "BIGINT" | "HUGEINT" | "UTINYINT" | "USMALLINT" | "UINTEGER"
        | "UBIGINT" | "UHUGEINT" | "INT1" | "INT2" | "INT4" | "INT8" => Family::Integer,
        "DOUBLE" | "FLOAT" | "REAL" | "DECIMAL" | "NUMERIC" => Family::Float,
        "VARCHAR" | "TEXT" | "STRING" | "CHAR" | "BPCHAR" => Family::Text,
        "DATE"
        | "TIMESTAMP"
        | "TIMESTAMP WITH TIME ZONE"
        | "TIMESTAMPTZ"
        | "TIMESTAMP_NS"
        | "TIMESTAMP_MS"
        | "TIMESTAMP_S" => Family::Date,
        "BOOLEAN" | "BOOL" => Family::Bool,
        _ => Family::Other,
    }
}

fn is_numeric(f: Family) -> bool {
    matches!(f, Family::Integer | Family::Float)
}

struct Resolver<'a> {
    schemas: Option<&'a dyn SchemaProvider>,
    /// The catalog's naming, known before dimensions are built.
    naming: Naming,
    tables: HashMap<Source, Result<Rc<Table>, String>>,
    diags: Vec<Diagnostic>,
}

impl<'a> Resolver<'a> {
    // ----- reporting -------------------------------------------------------------------------

    fn report(&mut self, src: &Src, pos: Pos, severity: Severity, message: String, hint: Option<String>) {
        self.diags.push(Diagnostic {
            file: src.path.to_path_buf(),
            line: pos.line,
            column: pos.column,
            severity,
            message,
            hint,
        });
    }

    /// An error at the value of `path` (or the nearest enclosing node).
    fn err(&mut self, src: &Src, path: &YPath, message: impl Into<String>, hint: Option<String>) {
        let pos = src.doc.pos(path);
        self.report(src, pos, Severity::Error, message.into(), hint);
    }

    /// An error at the key of the last segment of `path`.
    fn err_key(&mut self, src: &Src, path: &YPath, message: impl Into<String>, hint: Option<String>) {
        let pos = src.doc.key_pos(path);
        self.report(src, pos, Severity::Error, message.into(), hint);
    }

    fn warn(&mut self, src: &Src, path: &YPath, message: impl Into<String>, hint: Option<String>) {
        let pos = src.doc.pos(path);
        self.report(src, pos, Severity::Warning, message.into(), hint);
    }

    // ----- small checks ----------------------------------------------------------------------

    /// Names become MDX identifiers in brackets: no brackets, no outer spaces, not empty.
    fn name(&mut self, src: &Src, path: &YPath, name: &str, what: &str) {
        let problem = if name.trim().is_empty() {
            Some("is empty")
        } else if name.contains('[') || name.contains(']') {
            Some("contains '[' or ']'")
        } else if name.trim() != name {
            Some("starts or ends with a space")
        } else if name.chars().any(char::is_control) {
            Some("contains a control character")
        } else {
            None
        };
        if let Some(p) = problem {
            self.err(
                src,
                path,
                format!("{what} name '{name}' {p}"),
                Some("names are used in MDX as [name]".into()),
            );
        }
    }

    /// Reports `name` if it was already used in `seen`; remembers it otherwise.
    /// `what` names the kind ("level"), `scope` where names must be unique ("hierarchy 'Geografi'").
    /// A cube's measures: at least one (else an error with `hint`), each with a valid name,
    /// unique in the cube.
    pub(crate) fn measure_names(&mut self, src: &Src, mp_all: &YPath, c: &CubeDef, hint: &str) {
        if c.measures.is_empty() {
            self.err(
                src,
                mp_all,
                format!("cube '{}' has no measures", c.name),
                Some(hint.into()),
            );
        }
        let mut names = Names::default();
        for (i, m) in c.measures.iter().enumerate() {
            let mp = mp_all.i(i);
            self.name(src, &mp.k("name"), &m.name, "measure");
            self.unique(
                &mut names,
                src,
                &mp.k("name"),
                &m.name,
                "measure",
                &format!("cube '{}'", c.name),
            );
        }
    }

    fn unique(&mut self, seen: &mut Names, src: &Src, path: &YPath, name: &str, what: &str, scope: &str) {
        let key = name.to_lowercase();
        match seen.0.get(&key) {
            Some(&line) => {
                let hint = format!("already defined on line {line}; names are case-insensitive, as in MDX");
                self.err(src, path, format!("duplicate {what} '{name}' in {scope}"), Some(hint));
            }
            None => {
                seen.0.insert(key, src.doc.pos(path).line);
            }
        }
    }

    fn caption(&mut self, src: &Src, owner: &YPath, def: &Option<CaptionDef>, what: &str, fallback: &str) -> Caption {
        let Some(c) = def else {
            self.err(
                src,
                owner,
                format!("{what} has no caption"),
                Some("add caption: {da: <Danish>, en: <English>}".into()),
            );
            return Caption {
                da: fallback.into(),
                en: fallback.into(),
            };
        };
        let cp = owner.k("caption");
        let mut text = |lang: &str, language: &str, v: &Option<String>| match v {
            Some(s) if !s.trim().is_empty() => s.clone(),
            _ => {
                self.err(
                    src,
                    &cp,
                    format!("caption of {what} has no {language} text ('{lang}')"),
                    Some("captions need both da (Danish) and en (English)".into()),
                );
                fallback.to_string()
            }
        };
        let da = text("da", "Danish", &c.da);
        let en = text("en", "English", &c.en);
        Caption { da, en }
    }

    fn source(&mut self, src: &Src, path: &YPath, def: &SourceDef) -> Option<Source> {
        match (&def.dataset, &def.table, &def.path) {
            (Some(d), Some(t), None) => Some(Source::Dataset {
                dataset: d.clone(),
                table: t.clone(),
            }),
            (None, None, Some(g)) => Some(Source::Path { glob: g.clone() }),
            (_, _, Some(_)) => {
                self.err(
                    src,
                    path,
                    "a source has either 'path' or 'dataset' and 'table', not both",
                    None,
                );
                None
            }
            (Some(_), None, None) => {
                self.err(src, path, "source has 'dataset' but no 'table'", None);
                None
            }
            (None, Some(_), None) => {
                self.err(src, path, "source has 'table' but no 'dataset'", None);
                None
            }
            (None, None, None) => {
                self.err(
                    src,
                    path,
                    "empty source",
                    Some("write {dataset: <dataset>, table: <table>} or {path: <glob>}".into()),
                );
                None
            }
        }
    }

    /// The columns of a source, via the schema provider (cached). `None` without a provider
    /// or when the source cannot be read (reported at `path`).
    fn table(&mut self, src: &Src, path: &YPath, source: &Source) -> Option<Rc<Table>> {
        let provider = self.schemas?;
        let entry = self
            .tables
            .entry(source.clone())
            .or_insert_with(|| {
                provider.columns(source).map(|columns| {
                    Rc::new(Table {
                        source: source.clone(),
                        columns,
                    })
                })
            })
            .clone();
        match entry {
            Ok(t) => Some(t),
            Err(msg) => {
                let known: Vec<String> = provider.known_sources().iter().map(ToString::to_string).collect();
                let hint = did_you_mean(&source.to_string(), known.iter().map(String::as_str));
                self.err(src, path, format!("cannot read source {source}: {msg}"), hint);
                None
            }
        }
    }

    /// Checks that `column` exists in `table`; returns its type.
    fn column(&mut self, src: &Src, path: &YPath, column: &str, table: Option<&Table>) -> Option<String> {
        let t = table?;
        if let Some(ty) = t.get(column) {
            return Some(ty.to_string());
        }
        let hint = did_you_mean(column, t.columns.iter().map(|(c, _)| c.as_str()));
        self.err(src, path, format!("unknown column '{column}' in {}", t.source), hint);
        None
    }

    /// Parses an MDX expression; a syntax error is reported at its position in the file.
    fn expression(&mut self, src: &Src, path: &YPath, text: &str) -> Option<datakube_mdx::ast::Expr> {
        match datakube_mdx::parse_expression(text) {
            Ok(e) => Some(e),
            Err(e) => {
                let pos = self.pos_in_scalar(src, path, text, e.offset);
                let listed = e.expected.iter().all(|x| e.message.contains(x.as_str()));
                let hint =
                    (!e.expected.is_empty() && !listed).then(|| format!("expected one of: {}", e.expected.join(", ")));
                self.report(
                    src,
                    pos,
                    Severity::Error,
                    format!("cannot parse MDX expression: {}", e.message),
                    hint,
                );
                None
            }
        }
    }

    /// The file position of byte `offset` of the string value at `path`.
    fn pos_in_scalar(&self, src: &Src, path: &YPath, text: &str, offset: usize) -> Pos {
        let chars = text.char_indices().take_while(|&(b, _)| b < offset).count();
        match src.doc.node(path) {
            Some(node) => src.doc.scalar_offset_pos(node, chars),
            None => src.doc.pos(path),
        }
    }

    // ----- catalog ---------------------------------------------------------------------------

    fn catalog(&mut self, root: &Path, parsed: &[(Src, DefinitionFile)], files: Vec<PathBuf>) -> Option<Catalog> {
        let mut catalog: Option<(&Src, &CatalogDef)> = None;
        for (src, def) in parsed {
            if let DefinitionFile::Catalog(c) = def {
                match catalog {
                    None => catalog = Some((src, c)),
                    Some((first, _)) => {
                        let hint = format!("the catalog is already defined in {}", first.path.display());
                        self.err_key(
                            src,
                            &YPath::root().k("catalog"),
                            "a second catalog definition",
                            Some(hint),
                        );
                    }
                }
            }
        }
        let (name, caption, desc) = match catalog {
            Some((src, c)) => {
                let p = YPath::root().k("catalog");
                self.name(src, &p.k("name"), &c.name, "catalog");
                let caption = self.caption(src, &p, &c.caption, &format!("catalog '{}'", c.name), &c.name);
                self.naming = c.naming;
                (c.name.clone(), caption, description(&c.description))
            }
            None => {
                let any_file_failed = self.diags.iter().any(Diagnostic::is_error);
                if !any_file_failed {
                    self.diags.push(no_pos(
                        root,
                        "no catalog definition in this folder".into(),
                        Some("add catalog.yaml with catalog: {name: FLIS, caption: {da: ..., en: ...}}".into()),
                    ));
                }
                return None;
            }
        };

        // Shared dimensions.
        let mut shared: Vec<SharedDim> = Vec::new();
        let mut dim_files: HashMap<String, &Path> = HashMap::new();
        for (src, def) in parsed {
            let DefinitionFile::Dimension(d) = def else { continue };
            let p = YPath::root().k("dimension");
            let key = d.name.to_lowercase();
            if let Some(first) = dim_files.get(&key) {
                let hint = format!("already defined in {}", first.display());
                self.err(
                    src,
                    &p.k("name"),
                    format!("duplicate shared dimension '{}'", d.name),
                    Some(hint),
                );
                continue;
            }
            dim_files.insert(key, src.path);
            let input = DimInput {
                name: &d.name,
                caption: &d.caption,
                description: &d.description,
                source: &d.source,
                hierarchies: &d.hierarchies,
            };
            let mut dim = self.dimension(src, &p, &input, None);
            dim.shared = true;
            shared.push(SharedDim {
                src,
                path: p,
                def: d,
                dim,
            });
        }

        // Cubes.
        let mut cubes = Vec::new();
        let mut cube_files: HashMap<String, &Path> = HashMap::new();
        let mut virtual_defs: Vec<(&Src, &CubeDef, &VirtualDef)> = Vec::new();
        for (src, def) in parsed {
            let DefinitionFile::Cube(c) = def else { continue };
            let key = c.name.to_lowercase();
            if let Some(first) = cube_files.get(&key) {
                let hint = format!("already defined in {}", first.display());
                self.err(
                    src,
                    &YPath::root().k("cube").k("name"),
                    format!("duplicate cube '{}'", c.name),
                    Some(hint),
                );
                continue;
            }
            cube_files.insert(key, src.path);
            if let Some(v) = &c.virtual_cube {
                virtual_defs.push((src, c, v));
                continue;
            }
            cubes.push(self.cube(src, c, &shared));
        }
        // Virtual cubes, over the ordinary cubes just resolved.
        let virtual_names: Vec<&str> = virtual_defs.iter().map(|(_, c, _)| c.name.as_str()).collect();
        let ordinary = cubes.len();
        for (src, c, v) in &virtual_defs {
            let vc = self.virtual_cube(src, c, v, &shared, &cubes[..ordinary], &virtual_names);
            cubes.push(vc);
        }

        let security = self.access_rules(parsed, &cubes);

        Some(Catalog {
            name,
            caption,
            description: desc,
            naming: self.naming,
            cubes,
            shared_dimensions: shared.into_iter().map(|s| s.dim).collect(),
            files,
            warnings: Vec::new(),
            security,
        })
    }

    // ----- security --------------------------------------------------------------------------

    fn access_rules(&mut self, parsed: &[(Src, DefinitionFile)], cubes: &[Cube]) -> SecurityConfig {
        let mut found: Option<(&Src, &AccessRulesDef)> = None;
        for (src, def) in parsed {
            let DefinitionFile::Security(s) = def else { continue };
            if let Some((first, _)) = found {
                let hint = format!("security is already defined in {}", first.path.display());
                self.err_key(
                    src,
                    &YPath::root().k("security"),
                    "a second security definition",
                    Some(hint),
                );
                continue;
            }
            found = Some((src, s));
        }
        let Some((src, def)) = found else {
            return SecurityConfig::default();
        };
        let p = YPath::root().k("security");
        let mut roles: Vec<Role> = Vec::new();
        for (i, r) in def.roles.iter().enumerate() {
            let rp = p.k("roles").i(i);
            self.name(src, &rp.k("name"), &r.name, "role");
            if roles.iter().any(|x| same(&x.name, &r.name)) {
                self.err(src, &rp.k("name"), format!("duplicate role '{}'", r.name), None);
                continue;
            }
            let caption = match &r.caption {
                Some(_) => self.caption(src, &rp, &r.caption, &format!("role '{}'", r.name), &r.name),
                None => Caption {
                    da: r.name.clone(),
                    en: r.name.clone(),
                },
            };
            if let Some(cs) = &r.cubes {
                for (j, c) in cs.iter().enumerate() {
                    if !cubes.iter().any(|x| same(&x.name, c)) {
                        let known: Vec<&str> = cubes.iter().map(|x| x.name.as_str()).collect();
                        self.err(
                            src,
                            &rp.k("cubes").i(j),
                            format!("role '{}' grants unknown cube '{c}'", r.name),
                            Some(format!("cubes: {}", known.join(", "))),
                        );
                    }
                }
            }
            for (j, x) in r.restrictions.iter().enumerate() {
                let has = cubes
                    .iter()
                    .any(|c| c.dimensions.iter().any(|d| same(&d.name, &x.dimension)));
                if !has {
                    self.err(
                        src,
                        &rp.k("restrictions").i(j).k("dimension"),
                        format!("no cube has a dimension '{}'", x.dimension),
                        None,
                    );
                }
                if x.constraint.trim().is_empty() {
                    self.err(
                        src,
                        &rp.k("restrictions").i(j).k("constraint"),
                        "empty constraint name",
                        None,
                    );
                }
            }
            roles.push(Role {
                name: r.name.clone(),
                caption,
                claims: r.claims.clone(),
                privileges: r.privileges.clone(),
                access: r.access,
                cubes: r.cubes.clone(),
                restrictions: r
                    .restrictions
                    .iter()
                    .map(|x| (x.constraint.clone(), x.dimension.clone()))
                    .collect(),
            });
        }
        let mut accounts: Vec<ServiceAccount> = Vec::new();
        for (i, a) in def.service_accounts.iter().enumerate() {
            let ap = p.k("service_accounts").i(i);
            if a.client_id.trim().is_empty() {
                self.err(src, &ap.k("client_id"), "empty client_id", None);
            }
            if accounts.iter().any(|x| x.client_id == a.client_id) {
                self.err(
                    src,
                    &ap.k("client_id"),
                    format!("duplicate service account '{}'", a.client_id),
                    None,
                );
            }
            for (j, r) in a.roles.iter().enumerate() {
                if !roles.iter().any(|x| same(&x.name, r)) {
                    let known: Vec<&str> = roles.iter().map(|x| x.name.as_str()).collect();
                    self.err(
                        src,
                        &ap.k("roles").i(j),
                        format!("service account '{}' has unknown role '{r}'", a.client_id),
                        Some(format!("roles: {}", known.join(", "))),
                    );
                }
            }
            for (j, k) in a.kommuner.iter().enumerate() {
                if !(101..=860).contains(k) {
                    self.err(
                        src,
                        &ap.k("kommuner").i(j),
                        format!("{k} is not a kommunekode (101–860)"),
                        None,
                    );
                }
            }
            accounts.push(ServiceAccount {
                client_id: a.client_id.clone(),
                roles: a.roles.clone(),
                kommuner: a.kommuner.clone(),
                impersonate: a.impersonate,
            });
        }
        let mut groups: Vec<ComparisonGroup> = Vec::new();
        for (i, g) in def.comparison_groups.iter().enumerate() {
            let gp = p.k("comparison_groups").i(i);
            self.name(src, &gp.k("name"), &g.name, "comparison group");
            if groups.iter().any(|x| same(&x.name, &g.name)) {
                self.err(
                    src,
                    &gp.k("name"),
                    format!("duplicate comparison group '{}'", g.name),
                    None,
                );
            }
            if g.kommuner.is_empty() {
                self.err(
                    src,
                    &gp.k("kommuner"),
                    format!("comparison group '{}' is empty", g.name),
                    None,
                );
            }
            for (j, k) in g.kommuner.iter().enumerate() {
                if !(101..=860).contains(k) {
                    self.err(
                        src,
                        &gp.k("kommuner").i(j),
                        format!("{k} is not a kommunekode (101–860)"),
                        None,
                    );
                }
            }
            groups.push(ComparisonGroup {
                name: g.name.clone(),
                kommuner: g.kommuner.clone(),
            });
        }
        let c = &def.claims;
        SecurityConfig {
            claims: ClaimNames {
                subject: c.subject.clone(),
                name: c.name.clone(),
                cvr: c.cvr.clone(),
                kommunekode: c.kommunekode.clone(),
                roles: c.roles.clone(),
            },
            roles,
            service_accounts: accounts,
            disclosure_marker: def.disclosure.marker.clone(),
            comparison_groups: groups,
            file: Some(src.path.to_path_buf()),
        }
    }

    // ----- dimensions ------------------------------------------------------------------------

    /// Builds a dimension; hierarchies without their own source read `fact` (when known).
    fn dimension(&mut self, src: &Src, p: &YPath, d: &DimInput, fact: Option<&Table>) -> Dimension {
        self.name(src, &p.k("name"), d.name, "dimension");
        if same(d.name, "Measures") {
            self.err(
                src,
                &p.k("name"),
                "'Measures' is reserved for the measures dimension",
                None,
            );
        }
        let what = format!("dimension '{}'", d.name);
        let caption = self.caption(src, p, d.caption, &what, d.name);
        let dim_source = d
            .source
            .as_ref()
            .and_then(|s| self.source(src, &p.k("source"), s).map(|x| (x, p.k("source"))));
        if d.hierarchies.is_empty() {
            self.err(src, &p.k("hierarchies"), format!("{what} has no hierarchies"), None);
        }
        let mut names = Names::default();
        let mut hierarchies = Vec::new();
        for (i, h) in d.hierarchies.iter().enumerate() {
            let hp = p.k("hierarchies").i(i);
            self.unique(&mut names, src, &hp.k("name"), &h.name, "hierarchy", &what);
            hierarchies.push(self.hierarchy(src, &hp, d, h, dim_source.as_ref(), fact));
        }
        let time = hierarchies
            .iter()
            .flat_map(|h| &h.levels)
            .any(|l| l.level_type != LevelType::Regular);
        Dimension {
            name: d.name.to_string(),
            caption,
            description: description(d.description),
            kind: if time {
                DimensionKind::Time
            } else {
                DimensionKind::Regular
            },
            hierarchies,
            shared: false,
            foreign_key: None,
            file: src.path.to_path_buf(),
        }
    }

    fn hierarchy(
        &mut self,
        src: &Src,
        hp: &YPath,
        d: &DimInput,
        h: &HierarchyDef,
        dim_source: Option<&(Source, YPath)>,
        fact: Option<&Table>,
    ) -> Hierarchy {
        self.name(src, &hp.k("name"), &h.name, "hierarchy");
        let what = format!("hierarchy '{}'", h.name);
        let caption = self.caption(src, hp, &h.caption, &what, &h.name);
        let dim = d.name;
        let first = d.hierarchies.first().is_some_and(|f| std::ptr::eq(f, h));
        let unique_name = match self.naming {
            Naming::Key => format!("{}.{}", model::bracket(dim), model::bracket(&h.name)),
            Naming::NamePath if first => model::bracket(dim),
            Naming::NamePath => model::bracket(&format!("{dim}.{}", h.name)),
        };
        if !h.has_all && h.all_member.is_some() {
            self.err_key(
                src,
                &hp.k("all_member"),
                format!("{what} has has_all: false, so it has no All member to name"),
                Some("remove all_member or has_all".into()),
            );
        }
        if h.parent_column.is_some() && !h.has_all {
            self.err_key(
                src,
                &hp.k("has_all"),
                "a parent-child hierarchy always has an All member",
                None,
            );
        }
        if h.parent_column.is_some() && h.primary_key.is_some() {
            self.err_key(
                src,
                &hp.k("primary_key"),
                "a parent-child hierarchy joins on its level's key_column; primary_key has no meaning",
                None,
            );
        }

        let source = match &h.source {
            Some(s) => self.source(src, &hp.k("source"), s).map(|x| (x, hp.k("source"))),
            None => dim_source.cloned(),
        };

        if h.levels.is_empty() {
            self.err(src, &hp.k("levels"), format!("{what} has no levels"), None);
        }
        if h.parent_column.is_some() && h.levels.len() != 1 {
            self.err_key(
                src,
                &hp.k("parent_column"),
                format!(
                    "a parent-child hierarchy has exactly one level, {what} has {}",
                    h.levels.len()
                ),
                Some("the level's key_column is the child key; parent_column holds the parent's key".into()),
            );
        }

        let mut names = Names::default();
        let mut levels = Vec::new();
        let mut last_time: Option<(LevelType, &str)> = None;
        for (i, l) in h.levels.iter().enumerate() {
            let lp = hp.k("levels").i(i);
            self.name(src, &lp.k("name"), &l.name, "level");
            if same(&l.name, "(All)") {
                self.err(src, &lp.k("name"), "'(All)' is reserved for the All level", None);
            }
            self.unique(&mut names, src, &lp.k("name"), &l.name, "level", &what);
            let lwhat = format!("level '{}'", l.name);
            let lcaption = self.caption(src, &lp, &l.caption, &lwhat, &l.name);
            if l.level_type != LevelType::Regular {
                if h.parent_column.is_some() {
                    self.err(src, &lp.k("type"), "a parent-child level cannot be a time level", None);
                }
                let out_of_order = last_time.filter(|(prev, _)| time_rank(l.level_type) <= time_rank(*prev));
                if let Some((prev, prev_name)) = out_of_order {
                    self.err(
                        src,
                        &lp.k("type"),
                        format!(
                            "time levels out of order: '{}' ({}) comes after '{prev_name}' ({})",
                            l.name,
                            level_type_name(l.level_type),
                            level_type_name(prev)
                        ),
                        Some("time levels go from the top down: years, quarters, months, weeks, days".into()),
                    );
                }
                last_time = Some((l.level_type, &l.name));
            }
            let mut pnames = Names::default();
            let mut properties = Vec::new();
            for (k, pdef) in l.properties.iter().enumerate() {
                let pp = lp.k("properties").i(k);
                self.name(src, &pp.k("name"), &pdef.name, "property");
                self.unique(&mut pnames, src, &pp.k("name"), &pdef.name, "property", &lwhat);
                let pcaption = self.caption(
                    src,
                    &pp,
                    &pdef.caption,
                    &format!("property '{}'", pdef.name),
                    &pdef.name,
                );
                properties.push(MemberProperty {
                    name: pdef.name.clone(),
                    caption: pcaption,
                    description: description(&pdef.description),
                    column: pdef.column.clone(),
                    data_type: pdef.data_type,
                    column_type: None,
                });
            }
            levels.push(Level {
                name: l.name.clone(),
                caption: lcaption,
                description: description(&l.description),
                unique_name: format!("{unique_name}.{}", model::bracket(&l.name)),
                number: i + 1,
                key_column: l.key_column.clone(),
                key_type: None,
                name_column: l.name_column.clone().unwrap_or_else(|| l.key_column.clone()),
                name_column_en: l.name_column_en.clone(),
                sort_column: l.sort_column.clone().unwrap_or_else(|| l.key_column.clone()),
                level_type: l.level_type,
                unique_members: l.unique_members,
                properties,
            });
        }

        let all_member = match &h.all_member {
            Some(a) => {
                let ap = hp.k("all_member");
                self.name(src, &ap.k("name"), &a.name, "All member");
                let caption = match &a.caption {
                    Some(_) => self.caption(src, &ap, &a.caption, "the All member", &a.name),
                    None => Caption {
                        da: a.name.clone(),
                        en: a.name.clone(),
                    },
                };
                AllMember {
                    name: a.name.clone(),
                    caption,
                    unique_name: format!("{unique_name}.{}", model::bracket(&a.name)),
                }
            }
            None => AllMember {
                name: "All".into(),
                caption: Caption {
                    da: "Alle".into(),
                    en: "All".into(),
                },
                unique_name: format!("{unique_name}.[All]"),
            },
        };
        if let Some(dm) = &h.default_member {
            self.expression(src, &hp.k("default_member"), dm);
        }

        let mut hierarchy = Hierarchy {
            name: h.name.clone(),
            caption,
            description: description(&h.description),
            unique_name,
            display_folder: h.display_folder.clone(),
            source: source.as_ref().map(|(s, _)| s.clone()),
            naming: self.naming,
            primary_key: h
                .primary_key
                .clone()
                .or_else(|| h.levels.last().map(|l| l.key_column.clone()))
                .unwrap_or_default(),
            has_all: h.has_all,
            all_member,
            default_member: h.default_member.clone(),
            parent_column: h.parent_column.clone(),
            levels,
        };
        let table = match &source {
            Some((s, sp)) => self.table(src, sp, s),
            None => fact.map(|f| {
                Rc::new(Table {
                    source: f.source.clone(),
                    columns: f.columns.clone(),
                })
            }),
        };
        if let Some(t) = table {
            self.hierarchy_columns(src, hp, h, &mut hierarchy, &t);
        }
        hierarchy
    }

    /// Checks every column a hierarchy names against `table` and records the column types.
    fn hierarchy_columns(&mut self, src: &Src, hp: &YPath, def: &HierarchyDef, h: &mut Hierarchy, table: &Table) {
        let t = Some(table);
        if let Some(pc) = &def.parent_column {
            self.column(src, &hp.k("parent_column"), pc, t);
        }
        if let Some(pk) = &def.primary_key {
            self.column(src, &hp.k("primary_key"), pk, t);
        }
        for (i, (ldef, level)) in def.levels.iter().zip(h.levels.iter_mut()).enumerate() {
            let lp = hp.k("levels").i(i);
            level.key_type = self.column(src, &lp.k("key_column"), &ldef.key_column, t);
            for (key, col) in [
                ("name_column", &ldef.name_column),
                ("name_column_en", &ldef.name_column_en),
                ("sort_column", &ldef.sort_column),
            ] {
                if let Some(c) = col {
                    self.column(src, &lp.k(key), c, t);
                }
            }
            for (k, (pdef, prop)) in ldef.properties.iter().zip(level.properties.iter_mut()).enumerate() {
                let pp = lp.k("properties").i(k);
                prop.column_type = self.column(src, &pp.k("column"), &pdef.column, t);
                if let Some(ty) = &prop.column_type {
                    let f = family(ty);
                    let ok = match pdef.data_type {
                        PropertyType::String => f == Family::Text,
                        PropertyType::Integer => f == Family::Integer,
                        PropertyType::Number => is_numeric(f),
                        PropertyType::Boolean => f == Family::Bool,
                        PropertyType::Date => f == Family::Date,
                    } || f == Family::Other;
                    if !ok {
                        let suggestion = match f {
                            Family::Integer => "integer",
                            Family::Float => "number",
                            Family::Text => "string",
                            Family::Date => "date",
                            Family::Bool => "boolean",
                            Family::Other => "string",
                        };
                        self.warn(
                            src,
                            &pp.k("type"),
                            format!(
                                "property '{}' is declared {} but column '{}' is {ty}",
                                pdef.name,
                                property_type_name(pdef.data_type),
                                pdef.column
                            ),
                            Some(format!("use type: {suggestion}")),
                        );
                    }
                }
            }
        }
    }

    // ----- cubes -----------------------------------------------------------------------------

    fn cube(&mut self, src: &Src, c: &CubeDef, shared: &[SharedDim]) -> Cube {
        let p = YPath::root().k("cube");
        self.name(src, &p.k("name"), &c.name, "cube");
        let what = format!("cube '{}'", c.name);
        let caption = self.caption(src, &p, &c.caption, &what, &c.name);
        let source = match &c.source {
            Some(s) => self.source(src, &p.k("source"), s),
            None => {
                self.err(
                    src,
                    &p,
                    format!("{what} has no source"),
                    Some("add source: {dataset: <dataset>, table: <table>}, or virtual: {cubes: [...]}".into()),
                );
                None
            }
        };
        let fact = source.as_ref().and_then(|s| self.table(src, &p.k("source"), s));
        let fact = fact.as_deref();

        let security = self.security(src, &p, c, fact);
        let dimensions = self.cube_dimensions(src, &p, c, shared, fact);
        let measures = self.measures(src, &p, c, &dimensions, &security, fact);
        let drillthrough = self.drillthrough(src, &p, c, source.as_ref(), &security, fact);
        let aggregates = self.aggregates(src, &p, c, &dimensions, &measures);

        Cube {
            name: c.name.clone(),
            caption,
            description: description(&c.description),
            source: source.unwrap_or(Source::Path { glob: String::new() }),
            virtual_cube: None,
            security,
            dimensions,
            measures,
            drillthrough,
            aggregates,
            file: src.path.to_path_buf(),
        }
    }

    fn security(&mut self, src: &Src, p: &YPath, c: &CubeDef, fact: Option<&Table>) -> Security {
        let sp = p.k("security");
        let s = &c.security;
        let class = match (s.class, s.min_cell_count) {
            (SecurityClassDef::Individual | SecurityClassDef::Public, Some(_)) => {
                self.err_key(
                    src,
                    &sp.k("min_cell_count"),
                    "min_cell_count only applies to benchmark cubes",
                    Some("individual cubes show the user's own municipality without suppression".into()),
                );
                if s.class == SecurityClassDef::Public {
                    SecurityClass::Public
                } else {
                    SecurityClass::Individual
                }
            }
            (SecurityClassDef::Individual, None) => SecurityClass::Individual,
            (SecurityClassDef::Public, None) => SecurityClass::Public,
            (SecurityClassDef::Benchmark, n) => {
                let n = n.unwrap_or(5);
                if n == 0 {
                    self.err(src, &sp.k("min_cell_count"), "min_cell_count must be at least 1", None);
                }
                SecurityClass::Benchmark { min_cell_count: n }
            }
        };
        match (&s.row_scope_column, class) {
            (Some(_), SecurityClass::Public) => {
                self.err_key(
                    src,
                    &sp.k("row_scope_column"),
                    "a public cube has no row scope",
                    Some(
                        "public is only for cubes without personal data; use class: individual to restrict rows".into(),
                    ),
                );
            }
            (None, SecurityClass::Individual | SecurityClass::Benchmark { .. }) => {
                self.err(
                    src,
                    &sp,
                    "security needs a row_scope_column (the fact column with each row's kommunekode)",
                    Some("only cubes without personal data may use class: public, which has no row scope".into()),
                );
            }
            (Some(col), _) => {
                if let Some(t) = fact.filter(|t| t.get(col).is_none()) {
                    let hint = did_you_mean(col, t.columns.iter().map(|(c, _)| c.as_str()))
                        .or_else(|| Some("the column holding each row's kommunekode".into()));
                    self.err(
                        src,
                        &sp.k("row_scope_column"),
                        format!("row_scope_column '{col}' is not a column of {}", t.source),
                        hint,
                    );
                }
            }
            (None, SecurityClass::Public) => {}
        }
        Security {
            class,
            row_scope_column: if class == SecurityClass::Public {
                None
            } else {
                s.row_scope_column.clone()
            },
        }
    }

    fn cube_dimensions(
        &mut self,
        src: &Src,
        p: &YPath,
        c: &CubeDef,
        shared: &[SharedDim],
        fact: Option<&Table>,
    ) -> Vec<Dimension> {
        let mut names = Names::default();
        let mut dims = Vec::new();
        for (j, cd) in c.dimensions.iter().enumerate() {
            let dp = p.k("dimensions").i(j);
            if cd.from.is_some() {
                self.err_key(
                    src,
                    &dp.k("from"),
                    "'from' only applies to dimensions of virtual cubes",
                    None,
                );
            }
            let dim = if let Some(sname) = &cd.shared {
                for (key, present) in [
                    ("name", cd.name.is_some()),
                    ("caption", cd.caption.is_some()),
                    ("description", cd.description.is_some()),
                    ("source", cd.source.is_some()),
                    ("hierarchies", cd.hierarchies.is_some()),
                ] {
                    if present {
                        self.err_key(
                            src,
                            &dp.k(key),
                            format!("'{key}' cannot be used with 'shared'"),
                            Some(
                                "a shared dimension is defined in its own file; pick hierarchies with use_hierarchies"
                                    .into(),
                            ),
                        );
                    }
                }
                let Some(sd) = shared.iter().find(|s| same(&s.dim.name, sname)) else {
                    let known: Vec<&str> = shared.iter().map(|s| s.dim.name.as_str()).collect();
                    let hint = if known.is_empty() {
                        "no shared dimensions are defined (files starting with dimension:)".to_string()
                    } else {
                        hint_with_list(sname, &known, "shared dimensions")
                    };
                    self.err(
                        src,
                        &dp.k("shared"),
                        format!("unknown shared dimension '{sname}'"),
                        Some(hint),
                    );
                    continue;
                };
                self.unique(
                    &mut names,
                    src,
                    &dp.k("shared"),
                    &sd.dim.name,
                    "dimension",
                    &format!("cube '{}'", c.name),
                );
                let mut dim = sd.dim.clone();
                let mut picked: Vec<usize> = (0..sd.dim.hierarchies.len()).collect();
                if let Some(uh) = &cd.use_hierarchies {
                    let up = dp.k("use_hierarchies");
                    if uh.is_empty() {
                        self.err(src, &up, "use_hierarchies is empty", None);
                    }
                    picked.clear();
                    for (k, hname) in uh.iter().enumerate() {
                        match sd.dim.hierarchies.iter().position(|h| same(&h.name, hname)) {
                            Some(ix) if picked.contains(&ix) => {
                                self.err(src, &up.i(k), format!("hierarchy '{hname}' is listed twice"), None)
                            }
                            Some(ix) => picked.push(ix),
                            None => {
                                let known: Vec<&str> = sd.dim.hierarchies.iter().map(|h| h.name.as_str()).collect();
                                self.err(
                                    src,
                                    &up.i(k),
                                    format!("dimension '{}' has no hierarchy '{hname}'", sd.dim.name),
                                    Some(hint_with_list(hname, &known, "hierarchies")),
                                );
                            }
                        }
                    }
                    if picked.is_empty() {
                        picked = (0..sd.dim.hierarchies.len()).collect();
                    }
                }
                dim.hierarchies = picked.iter().map(|&ix| sd.dim.hierarchies[ix].clone()).collect();
                // Hierarchies without a table read the fact table of this cube.
                if let Some(f) = fact {
                    for (h, &ix) in dim.hierarchies.iter_mut().zip(&picked) {
                        if h.source.is_none() {
                            let hp = sd.path.k("hierarchies").i(ix);
                            self.hierarchy_columns(sd.src, &hp, &sd.def.hierarchies[ix], h, f);
                        }
                    }
                }
                dim
            } else if let Some(name) = &cd.name {
                if cd.use_hierarchies.is_some() {
                    self.err_key(
                        src,
                        &dp.k("use_hierarchies"),
                        "use_hierarchies only applies to shared dimensions",
                        None,
                    );
                }
                self.unique(
                    &mut names,
                    src,
                    &dp.k("name"),
                    name,
                    "dimension",
                    &format!("cube '{}'", c.name),
                );
                let empty = Vec::new();
                let hierarchies = match &cd.hierarchies {
                    Some(h) => h,
                    None => {
                        self.err(src, &dp, format!("dimension '{name}' has no hierarchies"), None);
                        &empty
                    }
                };
                let input = DimInput {
                    name,
                    caption: &cd.caption,
                    description: &cd.description,
                    source: &cd.source,
                    hierarchies,
                };
                self.dimension(src, &dp, &input, fact)
            } else {
                self.err(
                    src,
                    &dp,
                    "a cube dimension needs either 'shared: <name>' or its own 'name' and 'hierarchies'",
                    None,
                );
                continue;
            };
            let dim = self.foreign_key(src, &dp, cd, dim, fact);
            dims.push(dim);
        }
        dims
    }

    fn foreign_key(
        &mut self,
        src: &Src,
        dp: &YPath,
        cd: &CubeDimensionDef,
        mut dim: Dimension,
        fact: Option<&Table>,
    ) -> Dimension {
        let joined: Vec<&Hierarchy> = dim.hierarchies.iter().filter(|h| h.source.is_some()).collect();
        match (&cd.foreign_key, joined.first()) {
            (Some(fk), Some(_)) => {
                let fk_type = self.column(src, &dp.k("foreign_key"), fk, fact);
                if let Some(ft) = fk_type {
                    for h in &joined {
                        let Some(kt) = h.levels.last().and_then(|l| l.key_type.as_ref()) else {
                            continue;
                        };
                        let (a, b) = (family(&ft), family(kt));
                        if (a == Family::Text) != (b == Family::Text) && a != Family::Other && b != Family::Other {
                            self.warn(
                                src,
                                &dp.k("foreign_key"),
                                format!(
                                    "foreign_key '{fk}' is {ft} but the key '{}' of hierarchy '{}' is {kt}",
                                    h.primary_key, h.name
                                ),
                                None,
                            );
                        }
                    }
                }
                dim.foreign_key = Some(fk.clone());
            }
            (Some(_), None) => {
                self.err_key(
                    src,
                    &dp.k("foreign_key"),
                    format!(
                        "foreign_key has no meaning here: dimension '{}' reads its columns from the fact table",
                        dim.name
                    ),
                    Some("remove foreign_key".into()),
                );
            }
            (None, Some(h)) => {
                let pk = h.primary_key.clone();
                let hint = match fact {
                    Some(t) if t.get(&pk).is_some() => format!("add foreign_key: {pk}"),
                    _ => format!(
                        "name the fact column that matches {pk} of {}",
                        h.source.as_ref().map(ToString::to_string).unwrap_or_default()
                    ),
                };
                self.err(
                    src,
                    dp,
                    format!(
                        "dimension '{}' needs a foreign_key (the fact column joined to '{pk}')",
                        dim.name
                    ),
                    Some(hint),
                );
            }
            (None, None) => {}
        }
        dim
    }

    // ----- measures --------------------------------------------------------------------------

    fn measures(
        &mut self,
        src: &Src,
        p: &YPath,
        c: &CubeDef,
        dims: &[Dimension],
        security: &Security,
        fact: Option<&Table>,
    ) -> Vec<Measure> {
        let mp_all = p.k("measures");
        self.measure_names(src, &mp_all, c, "add at least one measure under measures:");
        let all_names: Vec<&str> = c.measures.iter().map(|m| m.name.as_str()).collect();

        let mut measures = Vec::new();
        for (i, m) in c.measures.iter().enumerate() {
            let mp = mp_all.i(i);
            let what = format!("measure '{}'", m.name);
            let caption = self.caption(src, &mp, &m.caption, &what, &m.name);
            if m.from.is_some() {
                self.err_key(
                    src,
                    &mp.k("from"),
                    "'from' only applies to measures of virtual cubes",
                    None,
                );
            }
            let kind = match &m.expression {
                Some(text) => self.calculated(src, &mp, m, text, &what, &all_names),
                None => Some(MeasureKind::Stored(self.stored_measure(src, &mp, m, &what, dims, fact))),
            };
            measures.push((
                i,
                Measure {
                    name: m.name.clone(),
                    caption,
                    description: description(&m.description),
                    unique_name: format!("[Measures].{}", model::bracket(&m.name)),
                    kind: kind.unwrap_or(MeasureKind::Stored(StoredMeasure {
                        column: None,
                        column_type: None,
                        aggregator: Aggregator::Sum,
                        time_dimension: None,
                        filter: None,
                        base_cube: None,
                    })),
                    format_string: m.format_string.clone(),
                    display_folder: m.display_folder.clone(),
                    visible: m.visible,
                    disclosure_count: m.disclosure_count.clone(),
                },
            ));
        }

        self.measure_cycles(src, &mp_all, &measures);

        // Disclosure counts.
        let benchmark = matches!(security.class, SecurityClass::Benchmark { .. });
        for (i, m) in &measures {
            let mp = mp_all.i(*i);
            match &m.disclosure_count {
                Some(dc) => match measures.iter().find(|(_, x)| same(&x.name, dc)) {
                    Some((_, target)) if target.is_calculated() => self.err(
                        src,
                        &mp.k("disclosure_count"),
                        format!("disclosure_count '{dc}' is a calculated measure"),
                        Some("name a stored measure that counts individuals".into()),
                    ),
                    Some(_) => {}
                    None => self.err(
                        src,
                        &mp.k("disclosure_count"),
                        format!("disclosure_count names unknown measure '{dc}'"),
                        did_you_mean(dc, all_names.iter().copied()),
                    ),
                },
                None if benchmark && m.visible => self.err(
                    src,
                    &mp,
                    format!(
                        "measure '{}' of benchmark cube '{}' has no disclosure_count",
                        m.name, c.name
                    ),
                    Some(
                        "name the measure counting the individuals behind it, e.g. disclosure_count: Indbyggere".into(),
                    ),
                ),
                None => {}
            }
        }
        measures.into_iter().map(|(_, m)| m).collect()
    }

    /// A calculated measure: the expression parsed, its measure references resolved against
    /// `all_names` (the measures of the cube).
    fn calculated(
        &mut self,
        src: &Src,
        mp: &YPath,
        m: &MeasureDef,
        text: &str,
        what: &str,
        all_names: &[&str],
    ) -> Option<MeasureKind> {
        for (key, present) in [
            ("column", m.column.is_some()),
            ("aggregator", m.aggregator.is_some()),
            ("time_dimension", m.time_dimension.is_some()),
            ("filter", m.filter.is_some()),
        ] {
            if present {
                self.err_key(
                    src,
                    &mp.k(key),
                    format!("'{key}' has no meaning on a calculated measure"),
                    Some("a measure has either an expression or a column and an aggregator".into()),
                );
            }
        }
        let ep = mp.k("expression");
        self.expression(src, &ep, text).map(|expr| {
            let refs = mdx::measure_refs(&expr);
            let mut references: Vec<String> = Vec::new();
            for MeasureRef { name, offset } in refs {
                match all_names.iter().find(|n| same(n, &name)) {
                    Some(n) => {
                        if !references.iter().any(|r| same(r, n)) {
                            references.push(n.to_string());
                        }
                    }
                    None => {
                        let pos = self.pos_in_scalar(src, &ep, text, offset);
                        let hint = did_you_mean(&name, all_names.iter().copied())
                            .unwrap_or_else(|| format!("measures of this cube: {}", all_names.join(", ")));
                        self.report(
                            src,
                            pos,
                            Severity::Error,
                            format!("unknown measure [Measures].[{name}] in the expression of {what}"),
                            Some(hint),
                        );
                    }
                }
            }
            MeasureKind::Calculated(CalculatedMeasure {
                expression: text.to_string(),
                expr,
                references,
            })
        })
    }

    fn stored_measure(
        &mut self,
        src: &Src,
        mp: &YPath,
        m: &MeasureDef,
        what: &str,
        dims: &[Dimension],
        fact: Option<&Table>,
    ) -> StoredMeasure {
        let aggregator = match m.aggregator {
            Some(a) => a,
            None => {
                self.err(
                    src,
                    mp,
                    format!("{what} needs an aggregator (or an expression)"),
                    Some(
                        "aggregators: sum, count, distinct_count, min, max, avg, last_non_empty, average_over_time"
                            .into(),
                    ),
                );
                Aggregator::Sum
            }
        };
        let mut column_type = None;
        match &m.column {
            Some(col) => {
                column_type = self.column(src, &mp.k("column"), col, fact);
                if let Some(ty) = &column_type {
                    let numeric_needed = matches!(
                        aggregator,
                        Aggregator::Sum | Aggregator::Avg | Aggregator::LastNonEmpty | Aggregator::AverageOverTime
                    );
                    let f = family(ty);
                    if numeric_needed && !is_numeric(f) && f != Family::Other {
                        self.err(
                            src,
                            &mp.k("aggregator"),
                            format!("{} needs a numeric column; '{col}' is {ty}", aggregator.as_str()),
                            Some("use count, distinct_count, min or max".into()),
                        );
                    }
                }
            }
            None if aggregator != Aggregator::Count && m.aggregator.is_some() => {
                self.err(
                    src,
                    mp,
                    format!("{what} needs a column"),
                    Some("only count works without a column (it counts rows)".into()),
                );
            }
            None => {}
        }
        let time_dimension = match (&m.time_dimension, aggregator.is_semi_additive()) {
            (Some(td), true) => {
                match dims.iter().find(|d| same(&d.name, td)) {
                    Some(d) if !d.is_time() => self.err(
                        src,
                        &mp.k("time_dimension"),
                        format!("dimension '{}' is not a time dimension", d.name),
                        Some("a time dimension has levels of type years, quarters, months, weeks or days".into()),
                    ),
                    Some(_) => {}
                    None => {
                        let known: Vec<&str> = dims.iter().filter(|d| d.is_time()).map(|d| d.name.as_str()).collect();
                        let hint = if known.is_empty() {
                            "the cube has no time dimension".to_string()
                        } else {
                            hint_with_list(td, &known, "time dimensions")
                        };
                        self.err(
                            src,
                            &mp.k("time_dimension"),
                            format!("the cube has no dimension '{td}'"),
                            Some(hint),
                        );
                    }
                }
                Some(
                    dims.iter()
                        .find(|d| same(&d.name, td))
                        .map(|d| d.name.clone())
                        .unwrap_or_else(|| td.clone()),
                )
            }
            (None, true) => {
                let guess = dims
                    .iter()
                    .find(|d| d.is_time())
                    .map(|d| format!("add time_dimension: {}", d.name));
                self.err(
                    src,
                    mp,
                    format!("{what} is {} and needs a time_dimension", aggregator.as_str()),
                    guess.or_else(|| Some("the cube has no time dimension".into())),
                );
                None
            }
            (Some(_), false) => {
                self.err_key(
                    src,
                    &mp.k("time_dimension"),
                    format!(
                        "time_dimension only applies to last_non_empty and average_over_time, not {}",
                        aggregator.as_str()
                    ),
                    None,
                );
                None
            }
            (None, false) => None,
        };
        let filter = m.filter.as_ref().map(|f| {
            let fp = mp.k("filter");
            let ty = self.column(src, &fp.k("column"), &f.column, fact);
            if f.values.is_empty() {
                self.err(src, &fp.k("values"), "filter has no values", None);
            }
            if let Some(ty) = ty {
                let fam = family(&ty);
                for (k, v) in f.values.iter().enumerate() {
                    let ok = match v {
                        FilterValue::String(_) => !is_numeric(fam),
                        FilterValue::Integer(_) | FilterValue::Number(_) => fam != Family::Text,
                        FilterValue::Boolean(_) => matches!(fam, Family::Bool | Family::Other),
                    } || fam == Family::Other;
                    if !ok {
                        let hint = match v {
                            FilterValue::String(_) => "write the value as a number".to_string(),
                            _ => format!("write the value in quotes: '{}'", value_text(v)),
                        };
                        self.err(
                            src,
                            &fp.k("values").i(k),
                            format!("filter value {v} does not match column '{}' of type {ty}", f.column),
                            Some(hint),
                        );
                    }
                }
            }
            MeasureFilter {
                column: f.column.clone(),
                values: f.values.clone(),
            }
        });
        StoredMeasure {
            column: m.column.clone(),
            column_type,
            aggregator,
            time_dimension,
            filter,
            base_cube: None,
        }
    }

    /// Calculated measures that depend on themselves.
    fn measure_cycles(&mut self, src: &Src, mp_all: &YPath, measures: &[(usize, Measure)]) {
        let refs: HashMap<String, Vec<String>> = measures
            .iter()
            .filter_map(|(_, m)| match &m.kind {
                MeasureKind::Calculated(c) => Some((
                    m.name.to_lowercase(),
                    c.references.iter().map(|r| r.to_lowercase()).collect(),
                )),
                _ => None,
            })
            .collect();
        for (i, m) in measures {
            let start = m.name.to_lowercase();
            if !refs.contains_key(&start) {
                continue;
            }
            // Depth-first search for a path back to `start`, remembering the path for the message.
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![m.name.clone()])];
            let mut seen = HashSet::new();
            let mut cycle = None;
            while let Some((cur, path)) = stack.pop() {
                for next in refs.get(&cur).into_iter().flatten() {
                    let display = measures
                        .iter()
                        .find(|(_, x)| x.name.to_lowercase() == *next)
                        .map(|(_, x)| x.name.clone());
                    let mut p = path.clone();
                    p.push(display.unwrap_or_else(|| next.clone()));
                    if *next == start {
                        cycle = Some(p);
                        break;
                    }
                    if seen.insert(next.clone()) {
                        stack.push((next.clone(), p));
                    }
                }
                if cycle.is_some() {
                    break;
                }
            }
            if let Some(path) = cycle {
                self.err(
                    src,
                    &mp_all.i(*i).k("expression"),
                    format!(
                        "calculated measure '{}' depends on itself: {}",
                        m.name,
                        path.join(" → ")
                    ),
                    None,
                );
            }
        }
    }

    // ----- aggregates ------------------------------------------------------------------------

    fn aggregates(
        &mut self,
        src: &Src,
        p: &YPath,
        c: &CubeDef,
        dimensions: &[Dimension],
        measures: &[Measure],
    ) -> Vec<Aggregate> {
        let mut out = Vec::new();
        let mut names = Names::default();
        for (i, a) in c.aggregates.iter().enumerate() {
            let ap = p.k("aggregates").i(i);
            self.unique(
                &mut names,
                src,
                &ap.k("name"),
                &a.name,
                "aggregate",
                &format!("cube '{}'", c.name),
            );
            if a.name.is_empty()
                || !a
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            {
                self.err(
                    src,
                    &ap.k("name"),
                    format!("aggregate name '{}' is not lowercase letters, digits and '_'", a.name),
                    Some("the name becomes a folder beside the dataset snapshot".into()),
                );
            }
            let mut levels: Vec<(String, String, String)> = Vec::new();
            for (k, l) in a.levels.iter().enumerate() {
                let lp = ap.k("levels").i(k);
                let parts = split_unique_name(l);
                let found = match parts.as_deref() {
                    Some([d, h, lv]) => dimensions.iter().find(|x| same(&x.name, d)).and_then(|dim| {
                        let hier = dim.hierarchies.iter().find(|x| same(&x.name, h))?;
                        let level = hier.levels.iter().find(|x| same(&x.name, lv))?;
                        Some((dim, hier, level))
                    }),
                    _ => None,
                };
                let Some((dim, hier, level)) = found else {
                    self.err(
                        src,
                        &lp,
                        format!("aggregate '{}': unknown level {l}", a.name),
                        Some("write a level as [Dimension].[Hierarchy].[Level] of this cube".into()),
                    );
                    continue;
                };
                if hier.is_parent_child() {
                    self.err(
                        src,
                        &lp,
                        format!("aggregate '{}': {l} is a parent-child hierarchy", a.name),
                        Some("aggregates keep level keys; parent-child members have none per level".into()),
                    );
                    continue;
                }
                if levels.iter().any(|(d, h, _)| same(d, &dim.name) && same(h, &hier.name)) {
                    self.err(
                        src,
                        &lp,
                        format!(
                            "aggregate '{}': hierarchy [{}].[{}] is listed twice",
                            a.name, dim.name, hier.name
                        ),
                        Some("coarser levels of a hierarchy are kept with the finest one listed".into()),
                    );
                    continue;
                }
                levels.push((dim.name.clone(), hier.name.clone(), level.name.clone()));
            }
            // The listed level that carries the fact table's key of dimension `d` (its
            // hierarchy's finest level, joined on that key): what a semi-additive measure is
            // kept per.
            let keeps_time_key = |d: &str| {
                levels.iter().any(|(dn, hn, ln)| {
                    same(dn, d)
                        && dimensions.iter().find(|x| same(&x.name, dn)).is_some_and(|dim| {
                            dim.hierarchies.iter().find(|x| same(&x.name, hn)).is_some_and(|h| {
                                h.levels.last().is_some_and(|l| same(&l.name, ln))
                                    && (h.joins_on_leaf_key() || h.source.is_none())
                            })
                        })
                })
            };
            let mut kept = Vec::new();
            let mut distinct = false;
            let mut semi = false;
            for (k, name) in a.measures.iter().enumerate() {
                let mp = ap.k("measures").i(k);
                let Some(m) = measures.iter().find(|m| same(&m.name, name)) else {
                    self.err(
                        src,
                        &mp,
                        format!("aggregate '{}': unknown measure '{name}'", a.name),
                        None,
                    );
                    continue;
                };
                let why = match &m.kind {
                    MeasureKind::Calculated(_) => {
                        Some("is calculated; list the stored measures it is computed from".to_string())
                    }
                    MeasureKind::Stored(s) => match s.aggregator {
                        Aggregator::Sum | Aggregator::Count | Aggregator::Min | Aggregator::Max => None,
                        // Counted per grouping set at build time (see `aggregates::build`).
                        Aggregator::DistinctCount => {
                            distinct = true;
                            None
                        }
                        // Summed per time key, so the time dimension's finest level must be
                        // kept: summing over time is what would be wrong.
                        Aggregator::LastNonEmpty | Aggregator::AverageOverTime => {
                            let t = s.time_dimension.as_deref().unwrap_or_default();
                            if keeps_time_key(t) {
                                semi = true;
                                None
                            } else {
                                Some(format!(
                                    "is semi-additive ({}) over {t}: the aggregate must keep {t}'s finest level (the fact table's key), or it would sum over time",
                                    s.aggregator.as_str()
                                ))
                            }
                        }
                        Aggregator::Avg => {
                            Some("is an average: averages of pre-aggregated rows are not the average".to_string())
                        }
                    },
                };
                if let Some(why) = why {
                    self.err(
                        src,
                        &mp,
                        format!("aggregate '{}': measure '{name}' {why}", a.name),
                        Some("aggregates hold sum, count, distinct_count, min, max and (per time key) semi-additive measures".into()),
                    );
                    continue;
                }
                kept.push(m.name.clone());
            }
            if distinct && semi {
                self.err(
                    src,
                    &ap.k("measures"),
                    format!("aggregate '{}' mixes distinct-count and semi-additive measures", a.name),
                    Some("declare them in two aggregates: one keeps every grouping set, the other the time key".into()),
                );
                continue;
            }
            if distinct {
                let sets = self.distinct_sets(dimensions, &levels);
                if sets > MAX_DISTINCT_SETS {
                    self.err(
                        src,
                        &ap.k("levels"),
                        format!(
                            "aggregate '{}' has a distinct-count measure and {sets} grouping sets (at most {MAX_DISTINCT_SETS})",
                            a.name
                        ),
                        Some("a distinct count is stored for every combination of the levels and their coarser levels; list fewer or coarser levels".into()),
                    );
                    continue;
                }
            }
            if kept.is_empty() && !a.measures.is_empty() {
                continue;
            }
            out.push(Aggregate {
                name: a.name.clone(),
                levels,
                measures: kept,
            });
        }
        out
    }

    /// Grouping sets an aggregate with a distinct-count measure stores: each listed level or
    /// one of its coarser levels or none, times with and without the row-scope column.
    fn distinct_sets(&self, dimensions: &[Dimension], levels: &[(String, String, String)]) -> usize {
        levels
            .iter()
            .map(|(d, h, l)| {
                dimensions
                    .iter()
                    .find(|x| same(&x.name, d))
                    .and_then(|dim| dim.hierarchies.iter().find(|x| same(&x.name, h)))
                    .and_then(|hier| hier.levels.iter().position(|x| same(&x.name, l)))
                    .map_or(1, |p| p + 2)
            })
            .fold(2usize, |n, k| n.saturating_mul(k))
    }

    // ----- drillthrough ----------------------------------------------------------------------

    fn drillthrough(
        &mut self,
        src: &Src,
        p: &YPath,
        c: &CubeDef,
        fact_source: Option<&Source>,
        security: &Security,
        fact: Option<&Table>,
    ) -> Option<Drillthrough> {
        let d = c.drillthrough.as_ref()?;
        let dp = p.k("drillthrough");
        if matches!(security.class, SecurityClass::Benchmark { .. }) {
            self.err_key(
                src,
                &dp,
                "benchmark cubes have no drillthrough",
                Some("individual rows would bypass disclosure control".into()),
            );
        }
        let (source, table) = match &d.source {
            Some(s) => {
                let source = self.source(src, &dp.k("source"), s)?;
                let table = self.table(src, &dp.k("source"), &source);
                (source, table)
            }
            None => (
                fact_source?.clone(),
                fact.map(|f| {
                    Rc::new(Table {
                        source: f.source.clone(),
                        columns: f.columns.clone(),
                    })
                }),
            ),
        };
        if d.columns.is_empty() {
            self.err(src, &dp.k("columns"), "drillthrough has no columns", None);
        }
        let mut seen = Names::default();
        for (k, col) in d.columns.iter().enumerate() {
            let cp = dp.k("columns").i(k);
            self.unique(&mut seen, src, &cp, col, "column", "drillthrough");
            self.column(src, &cp, col, table.as_deref());
        }
        let scope_col = security.row_scope_column.as_deref();
        if let (Some(t), Some(col)) = (
            table.as_ref().filter(|_| d.source.is_some()),
            scope_col.filter(|c| table.as_ref().is_some_and(|t| t.get(c).is_none())),
        ) {
            self.err(
                src,
                &dp.k("source"),
                format!("drillthrough source {} has no row_scope_column '{col}'", t.source),
                Some("drillthrough rows are restricted to the user's municipality by that column".into()),
            );
        }
        Some(Drillthrough {
            source,
            columns: d.columns.clone(),
        })
    }
}

/// `[A].[B].[C]` → `["A", "B", "C"]`; `None` when not bracketed names separated by dots.
fn split_unique_name(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    loop {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        out.push(inner[..end].to_string());
        rest = &inner[end + 1..];
        if rest.is_empty() {
            return Some(out);
        }
        rest = rest.strip_prefix('.')?;
    }
}

fn value_text(v: &FilterValue) -> String {
    match v {
        FilterValue::String(s) => s.clone(),
        FilterValue::Integer(i) => i.to_string(),
        FilterValue::Number(n) => n.to_string(),
        FilterValue::Boolean(b) => b.to_string(),
    }
}

fn time_rank(t: LevelType) -> u8 {
    match t {
        LevelType::Regular => 0,
        LevelType::Years => 1,
        LevelType::Quarters => 2,
        LevelType::Months => 3,
        LevelType::Weeks => 4,
        LevelType::Days => 5,
    }
}

fn level_type_name(t: LevelType) -> &'static str {
    match t {
        LevelType::Regular => "regular",
        LevelType::Years => "years",
        LevelType::Quarters => "quarters",
        LevelType::Months => "months",
        LevelType::Weeks => "weeks",
        LevelType::Days => "days",
    }
}

fn property_type_name(t: PropertyType) -> &'static str {
    match t {
        PropertyType::String => "string",
        PropertyType::Integer => "integer",
        PropertyType::Number => "number",
        PropertyType::Boolean => "boolean",
        PropertyType::Date => "date",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few tables from docs/datasets.md.
    struct Stub;

    impl SchemaProvider for Stub {
        fn columns(&self, source: &Source) -> Result<Vec<(String, String)>, String> {
            let cols: &[(&str, &str)] = match source.to_string().as_str() {
                "faelles/kommune" => &[
                    ("kommunekode", "INTEGER"),
                    ("kommune_navn", "VARCHAR"),
                    ("regionskode", "INTEGER"),
                    ("cvr", "VARCHAR"),
                    ("indbyggere", "INTEGER"),
                ],
                "skole/elev_fag" => &[
                    ("aar", "INTEGER"),
                    ("skoleaar", "VARCHAR"),
                    ("kommunekode", "INTEGER"),
                    ("elev_id", "VARCHAR"),
                    ("karakter", "DOUBLE"),
                    ("dranst_kode", "INTEGER"),
                ],
                other => return Err(format!("no such table {other}")),
            };
            Ok(cols.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect())
        }
    }

    const CATALOG: &str = "catalog: {name: FLIS, caption: {da: FLIS, en: FLIS}}\n";
    const KOMMUNE: &str = "\
dimension:
  name: Kommune
  caption: {da: Kommune, en: Municipality}
  source: {dataset: faelles, table: kommune}
  hierarchies:
    - name: Geografi
      caption: {da: Geografi, en: Geography}
      levels:
        - name: Kommune
          caption: {da: Kommune, en: Municipality}
          key_column: kommunekode
";

    fn cube(body: &str) -> String {
        format!(
            "cube:
  name: Skole
  caption: {{da: Skole, en: School}}
  source: {{dataset: skole, table: elev_fag}}
  security: {{class: individual, row_scope_column: kommunekode}}
{body}"
        )
    }

    const MEASURE: &str = "  measures:
    - name: Elever
      caption: {da: Elever, en: Pupils}
      column: elev_id
      aggregator: distinct_count
";

    fn load(files: &[(&str, &str)]) -> Result<Catalog, Vec<Diagnostic>> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        load_catalog(dir.path(), Some(&Stub)).map_err(|diags| {
            diags
                .into_iter()
                .map(|mut d| {
                    d.file = d.file.strip_prefix(dir.path()).unwrap().to_path_buf();
                    d
                })
                .collect()
        })
    }

    fn errors(files: &[(&str, &str)]) -> Vec<String> {
        match load(files) {
            Ok(_) => panic!("expected errors"),
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn virtual_cube_columns_keep_dimension_keys_apart() {
        // B joins Kommune through another column, and has a measure column named like A's
        // key of a dimension B lacks: that key must stay NULL on B's rows.
        let a = "cube:
  name: A
  caption: {da: A, en: A}
  source: {path: a.parquet}
  security: {class: public}
  dimensions:
    - shared: Kommune
      foreign_key: kommunekode
    - name: Skole
      caption: {da: Skole, en: School}
      source: {path: s.parquet}
      foreign_key: skole_id
      hierarchies:
        - name: Skole
          caption: {da: Skole, en: School}
          levels:
            - {name: Skole, caption: {da: Skole, en: School}, key_column: skole_id}
  measures:
    - {name: Elever, caption: {da: Elever, en: Pupils}, column: elev_id, aggregator: count}
";
        let b = "cube:
  name: B
  caption: {da: B, en: B}
  source: {path: b.parquet}
  security: {class: public}
  dimensions:
    - shared: Kommune
      foreign_key: kode
  measures:
    - {name: Pladser, caption: {da: Pladser, en: Places}, column: skole_id, aggregator: sum}
    - {name: Dobbelt, caption: {da: Dobbelt, en: Double}, expression: \"[Measures].[Pladser] * 2\"}
";
        let v = "cube:
  name: V
  caption: {da: V, en: V}
  virtual: {cubes: [A, B]}
  security: {class: public}
  dimensions:
    - shared: Kommune
    - {name: Skole, from: A}
  measures:
    - {name: Elever, from: A}
    - {name: Dobbelt, from: B}
";
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("catalog.yaml", CATALOG),
            ("k.yaml", KOMMUNE),
            ("a.yaml", a),
            ("b.yaml", b),
            ("v.yaml", v),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let c = load_catalog(dir.path(), None).unwrap_or_else(|d| panic!("{d:?}"));
        let v = c.cube("V").unwrap();
        let parts = &v.virtual_cube.as_ref().unwrap().parts;
        let cols = |i: usize| -> Vec<(&str, &str)> {
            parts[i].columns.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
        };
        assert_eq!(
            cols(0),
            [
                ("kommunekode", "kommunekode"),
                ("skole_id", "skole_id"),
                ("elev_id", "elev_id")
            ]
        );
        assert_eq!(cols(1), [("kode", "kommunekode"), ("skole_id", "skole_id_2")]);
        assert_eq!(v.dimension("Skole").unwrap().foreign_key.as_deref(), Some("skole_id"));
        // Dobbelt brings the stored measure it refers to, hidden, reading B's rows only.
        let p = v.measure("Pladser").unwrap();
        assert!(!p.visible);
        let MeasureKind::Stored(s) = &p.kind else {
            panic!("stored")
        };
        assert_eq!(
            (s.column.as_deref(), s.base_cube.as_deref()),
            (Some("skole_id_2"), Some("B"))
        );
        assert!(v.is_virtual() && v.aggregates.is_empty() && v.drillthrough.is_none());
    }

    #[test]
    fn minimal_catalog_loads() {
        let c = load(&[
            ("catalog.yaml", CATALOG),
            ("k.yaml", KOMMUNE),
            ("s.yaml", &cube(MEASURE)),
        ])
        .unwrap();
        assert_eq!(c.cubes[0].measures[0].unique_name, "[Measures].[Elever]");
        assert_eq!(
            c.shared_dimensions[0].hierarchies[0].all_member.unique_name,
            "[Kommune].[Geografi].[All]"
        );
        assert_eq!(c.cube("SKOLE").unwrap().default_measure().unwrap().name, "Elever");
    }

    /// A two-hierarchy time dimension on the fact table, for the naming and has_all tests.
    const TID: &str = "\
dimension:
  name: Tid
  caption: {da: Tid, en: Time}
  hierarchies:
    - name: Tid
      caption: {da: Tid, en: Time}
      has_all: false
      levels:
        - name: År
          caption: {da: År, en: Year}
          key_column: aar
          type: years
    - name: Skoleår
      caption: {da: Skoleår, en: School year}
      levels:
        - name: Skoleår
          caption: {da: Skoleår, en: School year}
          key_column: skoleaar
";

    #[test]
    fn name_path_naming_and_has_all() {
        let catalog = "catalog: {name: F, caption: {da: F, en: F}, naming: name_path}\n";
        let c = load(&[
            ("catalog.yaml", catalog),
            ("t.yaml", TID),
            ("s.yaml", &cube(&format!("  dimensions:\n    - shared: Tid\n{MEASURE}"))),
        ])
        .unwrap();
        assert_eq!(c.naming, Naming::NamePath);
        let d = &c.cubes[0].dimensions[0];
        let (first, second) = (&d.hierarchies[0], &d.hierarchies[1]);
        assert_eq!(first.unique_name, "[Tid]");
        assert_eq!(first.levels[0].unique_name, "[Tid].[År]");
        assert!(!first.has_all);
        assert_eq!(second.unique_name, "[Tid.Skoleår]");
        assert_eq!(second.levels[0].unique_name, "[Tid.Skoleår].[Skoleår]");
        assert_eq!(second.all_member.unique_name, "[Tid.Skoleår].[All]");
        assert!(second.has_all && second.naming == Naming::NamePath);
        assert!(first.joins_on_leaf_key());

        // The default stays SSAS-style.
        let c = load(&[
            ("catalog.yaml", CATALOG),
            ("t.yaml", TID),
            ("s.yaml", &cube(&format!("  dimensions:\n    - shared: Tid\n{MEASURE}"))),
        ])
        .unwrap();
        let h = &c.cubes[0].dimensions[0].hierarchies[1];
        assert_eq!(h.unique_name, "[Tid].[Skoleår]");
        assert_eq!(h.levels[0].unique_name, "[Tid].[Skoleår].[Skoleår]");
        assert_eq!(h.naming, Naming::Key);
    }

    #[test]
    fn has_all_false_rules_and_primary_key() {
        let bad = TID.replace(
            "      has_all: false\n",
            "      has_all: false\n      all_member: {name: Alle}\n      primary_key: nope\n",
        );
        let e = errors(&[
            ("catalog.yaml", CATALOG),
            ("t.yaml", &bad),
            ("s.yaml", &cube(&format!("  dimensions:\n    - shared: Tid\n{MEASURE}"))),
        ]);
        assert!(
            e.iter().any(
                |x| x.starts_with("t.yaml:8:7: error: hierarchy 'Tid' has has_all: false, so it has no All member")
            ),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|x| x.contains("error: unknown column 'nope' in skole/elev_fag")),
            "{e:?}"
        );
    }

    #[test]
    fn public_security_has_no_row_scope() {
        let public = cube(MEASURE).replace("{class: individual, row_scope_column: kommunekode}", "{class: public}");
        let c = load(&[("catalog.yaml", CATALOG), ("s.yaml", &public)]).unwrap();
        assert!(c.cubes[0].is_public());
        assert_eq!(c.cubes[0].security.row_scope_column, None);

        let with_scope = cube(MEASURE).replace("class: individual", "class: public");
        let e = errors(&[("catalog.yaml", CATALOG), ("s.yaml", &with_scope)]);
        assert!(
            e[0].starts_with("s.yaml:5:29: error: a public cube has no row scope"),
            "{e:?}"
        );
        let no_scope = cube(MEASURE).replace(", row_scope_column: kommunekode", "");
        let e = errors(&[("catalog.yaml", CATALOG), ("s.yaml", &no_scope)]);
        assert!(e[0].contains("error: security needs a row_scope_column"), "{e:?}");
    }

    #[test]
    fn no_catalog_file() {
        let e = errors(&[("s.yaml", &cube(MEASURE))]);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("error: no catalog definition in this folder"), "{e:?}");
        assert!(!e[0].contains(":1:1"), "no position: {e:?}");
    }

    #[test]
    fn two_catalogs() {
        let e = errors(&[("a.yaml", CATALOG), ("b.yaml", CATALOG)]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "b.yaml:1:1: error: a second catalog definition\n  hint: the catalog is already defined in "
            )
        );
        assert!(e[0].ends_with("a.yaml"), "{e:?}");
    }

    #[test]
    fn scalar_types_and_filter_values() {
        let text = cube(
            "  measures:
    - name: 2020
      caption: {da: '2020', en: '2020'}
      column: karakter
      aggregator: avg
      filter: {column: dranst_kode, values: [1, 2]}
",
        );
        let c = load(&[("catalog.yaml", CATALOG), ("s.yaml", &text)]).unwrap();
        let m = &c.cubes[0].measures[0];
        assert_eq!(m.name, "2020");
        let MeasureKind::Stored(s) = &m.kind else { panic!() };
        assert_eq!(
            s.filter.as_ref().unwrap().values,
            [FilterValue::Integer(1), FilterValue::Integer(2)]
        );
        let v: Vec<FilterValue> = serde_saphyr::from_str("[R, '7', 2.5, true, -3]").unwrap();
        assert_eq!(
            v,
            [
                FilterValue::String("R".into()),
                FilterValue::String("7".into()),
                FilterValue::Number(2.5),
                FilterValue::Boolean(true),
                FilterValue::Integer(-3)
            ]
        );
    }

    #[test]
    fn degenerate_dimension_columns_are_checked_against_the_fact_table() {
        let text = cube(&format!(
            "  dimensions:
    - name: Skoleår
      caption: {{da: Skoleår, en: School year}}
      hierarchies:
        - name: Skoleår
          caption: {{da: Skoleår, en: School year}}
          levels:
            - name: Skoleår
              caption: {{da: Skoleår, en: School year}}
              key_column: aar
              name_column: skole_aar
              type: years
{MEASURE}"
        ));
        let e = errors(&[("catalog.yaml", CATALOG), ("s.yaml", &text)]);
        assert_eq!(
            e,
            ["s.yaml:16:28: error: unknown column 'skole_aar' in skole/elev_fag\n  hint: did you mean 'skoleaar'?"]
        );
    }

    #[test]
    fn shared_degenerate_dimension_is_checked_in_each_cube() {
        let dim = "\
dimension:
  name: Karakter
  caption: {da: Karakter, en: Grade}
  hierarchies:
    - name: Karakter
      caption: {da: Karakter, en: Grade}
      levels:
        - name: Karakter
          caption: {da: Karakter, en: Grade}
          key_column: karakterer
";
        let text = cube(&format!("  dimensions:\n    - shared: Karakter\n{MEASURE}"));
        let e = errors(&[("catalog.yaml", CATALOG), ("d.yaml", dim), ("s.yaml", &text)]);
        assert_eq!(
            e,
            ["d.yaml:10:23: error: unknown column 'karakterer' in skole/elev_fag\n  hint: did you mean 'karakter'?"]
        );
    }

    #[test]
    fn shared_reference_rules() {
        let text = cube(&format!(
            "  dimensions:
    - shared: Kommune
      foreign_key: kommunekode
      use_hierarchies: [Geografi, Geography]
      hierarchies: []
    - shared: kommune
      foreign_key: kommunekode
{MEASURE}"
        ));
        let e = errors(&[("catalog.yaml", CATALOG), ("k.yaml", KOMMUNE), ("s.yaml", &text)]);
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(
            e[0].starts_with("s.yaml:9:35: error: dimension 'Kommune' has no hierarchy 'Geography'"),
            "{e:#?}"
        );
        assert!(e[0].contains("did you mean 'Geografi'?"), "{e:#?}");
        assert!(
            e[1].starts_with("s.yaml:10:7: error: 'hierarchies' cannot be used with 'shared'"),
            "{e:#?}"
        );
        assert!(
            e[2].starts_with("s.yaml:11:15: error: duplicate dimension 'Kommune' in cube 'Skole'"),
            "{e:#?}"
        );
    }

    #[test]
    fn missing_foreign_key_suggests_the_matching_column() {
        let text = cube(&format!("  dimensions:\n    - shared: Kommune\n{MEASURE}"));
        let e = errors(&[("catalog.yaml", CATALOG), ("k.yaml", KOMMUNE), ("s.yaml", &text)]);
        assert_eq!(
            e,
            [
                "s.yaml:7:7: error: dimension 'Kommune' needs a foreign_key (the fact column joined to 'kommunekode')\n  hint: add foreign_key: kommunekode"
            ]
        );
    }

    #[test]
    fn property_type_mismatch_is_a_warning() {
        let dim = KOMMUNE.to_string()
            + "          properties:
            - name: CVR
              caption: {da: CVR, en: CVR}
              column: cvr
              type: integer
";
        let c = load(&[("catalog.yaml", CATALOG), ("k.yaml", &dim), ("s.yaml", &cube(MEASURE))]).unwrap();
        let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains(":16:21: warning: property 'CVR' is declared integer but column 'cvr' is VARCHAR"),
            "{w:?}"
        );
        assert!(w[0].ends_with("hint: use type: string"), "{w:?}");
    }

    #[test]
    fn expression_errors_in_quoted_strings_and_default_members() {
        let dim = KOMMUNE.replace(
            "      caption: {da: Geografi, en: Geography}\n",
            "      caption: {da: Geografi, en: Geography}\n      default_member: \"[Kommune].[Geografi].&[751\"\n",
        );
        let text = cube(
            "  measures:
    - name: Elever
      caption: {da: Elever, en: Pupils}
      column: elev_id
      aggregator: distinct_count
    - name: Dobbelt
      caption: {da: Dobbelt, en: Double}
      expression: '[Measures].[Elever] * * 2'
",
        );
        let e = errors(&[("catalog.yaml", CATALOG), ("k.yaml", &dim), ("s.yaml", &text)]);
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e[0].starts_with("k.yaml:8:46: error: cannot parse MDX expression: unterminated bracketed key"),
            "{e:#?}"
        );
        assert!(
            e[1].starts_with("s.yaml:13:42: error: cannot parse MDX expression: expected expression, found '*'"),
            "{e:#?}"
        );
    }

    #[test]
    fn path_sources_go_through_the_provider() {
        let text = cube(MEASURE).replace("{dataset: skole, table: elev_fag}", "{path: \"x/*.parquet\"}");
        let e = errors(&[("catalog.yaml", CATALOG), ("s.yaml", &text)]);
        assert_eq!(
            e,
            ["s.yaml:4:11: error: cannot read source x/*.parquet: no such table x/*.parquet"]
        );
        let text = cube(MEASURE).replace("{dataset: skole, table: elev_fag}", "{dataset: skole, path: x}");
        let e = errors(&[("catalog.yaml", CATALOG), ("s.yaml", &text)]);
        assert!(
            e[0].starts_with("s.yaml:4:11: error: a source has either 'path' or 'dataset' and 'table'"),
            "{e:?}"
        );
    }

    #[test]
    fn a_file_path_finds_its_catalog_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dimensions")).unwrap();
        std::fs::write(dir.path().join("catalog.yaml"), CATALOG).unwrap();
        std::fs::write(dir.path().join("dimensions/k.yaml"), KOMMUNE).unwrap();
        assert_eq!(catalog_root(&dir.path().join("dimensions/k.yaml")), dir.path());
        assert_eq!(catalog_root(dir.path()), dir.path());
    }

    #[test]
    fn duplicate_shared_dimensions_and_reserved_names() {
        let measures_dim = KOMMUNE.replace("name: Kommune\n  caption", "name: measures\n  caption");
        let e = errors(&[
            ("catalog.yaml", CATALOG),
            ("a.yaml", KOMMUNE),
            ("b.yaml", KOMMUNE),
            ("m.yaml", &measures_dim),
        ]);
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e[0].starts_with("b.yaml:2:9: error: duplicate shared dimension 'Kommune'"),
            "{e:#?}"
        );
        assert!(e[1].starts_with("m.yaml:2:9: error: 'Measures' is reserved"), "{e:#?}");
    }

    #[test]
    fn type_families() {
        assert_eq!(family("DECIMAL(18,2)"), Family::Float);
        assert_eq!(family("BIGINT"), Family::Integer);
        assert_eq!(family("varchar"), Family::Text);
        assert_eq!(family("DATE"), Family::Date);
        assert_eq!(family("STRUCT(a INTEGER)"), Family::Other);
    }
}
