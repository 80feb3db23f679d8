//! The query engine behind the XMLA `Execute` method.

use datakube_engine::Engine;
use datakube_model::Lang;
use datakube_xmla::discover::Fault;
use datakube_xmla::response::{codes, empty_root};
use datakube_xmla::service::{CacheStats, ExecuteRequest, ExecuteResult, Executor};

use crate::cache::{CacheKey, ResultCache};

use datakube_mdx::ast::{Definition, ObjectName, Statement};

use crate::exec::{QueryContext, execute};

pub struct QueryExecutor {
    pub engine: Engine,
    /// Whole answers (see [`crate::cache`]); `None` = every statement runs.
    pub cache: Option<ResultCache>,
}

/// Properties that change an answer (everything else a client sends does not).
const ANSWER_PROPERTIES: &[&str] = &["Format", "Content", "MdxMissingMemberMode", "Cube"];

impl QueryExecutor {
    /// Statements read the snapshots of the runtime they run on (`Runtime::snapshots`).
    pub fn new(engine: Engine) -> QueryExecutor {
        QueryExecutor { engine, cache: None }
    }

    /// With a result cache of about `max_bytes` (0 = none).
    pub fn with_cache(mut self, max_bytes: u64) -> QueryExecutor {
        self.cache = (max_bytes > 0).then(|| ResultCache::new(max_bytes));
        self
    }

    fn cache_key(&self, req: &ExecuteRequest, access: &crate::security::Access, lcid: u32) -> Option<CacheKey> {
        self.cache.as_ref()?;
        let statement = crate::cache::normalise(req.statement)?;
        Some(CacheKey {
            version: format!("{}|{}", req.runtime.data_version, req.runtime.schema_updated),
            access: access.clone(),
            lcid,
            statement,
            props: ANSWER_PROPERTIES
                .iter()
                .filter_map(|p| {
                    req.props
                        .get(p)
                        .map(|v| (p.to_ascii_lowercase(), v.to_ascii_lowercase()))
                })
                .collect(),
            session: req.session.borrow().definitions.iter().map(|d| d.mdx.clone()).collect(),
        })
    }

    fn execute_uncached(&self, req: &ExecuteRequest) -> Result<ExecuteResult, Fault> {
        let (runtime, principal, statement, props, lang, cancel) = (
            req.runtime,
            req.principal,
            req.statement,
            req.props,
            req.lang,
            req.cancel,
        );
        let trimmed = statement.trim_start();
        let upper: String = trimmed.chars().take(64).collect::<String>().to_ascii_uppercase();
        if upper.starts_with("REFRESH CUBE") {
            return Ok(empty_root().into());
        }
        let lcid = match lang {
            Lang::Da => 1030,
            Lang::En => 1033,
        };
        let ctx = QueryContext {
            catalog: &runtime.catalog,
            members: &runtime.members,
            engine: &self.engine,
            snapshots: &runtime.snapshots,
            lang,
            lcid,
            access: crate::security::Access::from_principal(principal, &runtime.catalog.security.disclosure_marker),
            last_data_update: &runtime.data_updated,
            last_schema_update: &runtime.schema_updated,
            default_cube: props.get("Cube"),
            // MdxMissingMemberMode=Ignore: unknown members are left out instead of failing.
            ignore_missing_members: props
                .get("MdxMissingMemberMode")
                .is_some_and(|m| m.eq_ignore_ascii_case("Ignore")),
            session_definitions: session_definitions(&req.session.borrow()),
            cancel: Some(cancel),
        };
        if upper.starts_with("CREATE") || upper.starts_with("DROP") {
            return session_statement(&ctx, req, statement).map(|()| empty_root().into());
        }
        if upper.starts_with("DRILLTHROUGH") {
            let stmt = datakube_mdx::parse_statement(statement)
                .map_err(|e| Fault::new(codes::MDX_SYNTAX, format!("MDX syntax error at {e}")))?;
            let datakube_mdx::ast::Statement::Drillthrough(d) = stmt else {
                return Err(Fault::new(codes::MDX_SYNTAX, "expected a DRILLTHROUGH statement"));
            };
            return crate::drillthrough::execute_drillthrough(&ctx, &d)
                .map(ExecuteResult::from)
                .map_err(|e| Fault::new(e.code(), e.to_string()));
        }
        let format = props.get("Format").unwrap_or("Native");
        let tabular = format.eq_ignore_ascii_case("Tabular");
        let with_schema = !props.get("Content").is_some_and(|c| c.eq_ignore_ascii_case("Data"));
        match execute(&ctx, statement) {
            Ok(cs) if tabular => crate::tabular::flatten(&cs)
                .map(ExecuteResult::from)
                .map_err(|e| Fault::new(e.code(), e.to_string())),
            Ok(cells) => Ok(ExecuteResult::CellSet { cells, with_schema }),
            Err(e) => Err(Fault::new(e.code(), e.to_string())),
        }
    }
}

impl Executor for QueryExecutor {
    fn execute(&self, req: &ExecuteRequest) -> Result<ExecuteResult, Fault> {
        let upper: String = req
            .statement
            .trim_start()
            .chars()
            .take(16)
            .collect::<String>()
            .to_ascii_uppercase();
        let cacheable = ["SELECT", "WITH", "DRILLTHROUGH"].iter().any(|k| upper.starts_with(k));
        let (Some(cache), true) = (&self.cache, cacheable) else {
            return self.execute_uncached(req);
        };
        let access =
            crate::security::Access::from_principal(req.principal, &req.runtime.catalog.security.disclosure_marker);
        let lcid = match req.lang {
            Lang::Da => 1030,
            Lang::En => 1033,
        };
        let Some(key) = self.cache_key(req, &access, lcid) else {
            return self.execute_uncached(req);
        };
        cache
            .get_or_run(key, || self.execute_uncached(req))
            .map(|r| (*r).clone())
    }

    fn on_runtime_replaced(&self) {
        if let Some(c) = &self.cache {
            c.clear();
        }
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(ResultCache::stats)
    }
}

/// The session's calculated members and sets, parsed: (cube, definition without the cube).
fn session_definitions(state: &datakube_xmla::session::SessionState) -> Vec<(String, Definition)> {
    let mut out = Vec::new();
    for d in &state.definitions {
        // Stored as checked `CREATE` statements; a failure here would be a bug, so it is logged.
        match datakube_mdx::parse_statement(&d.mdx) {
            Ok(Statement::Create(c)) => {
                out.extend(c.definitions.into_iter().map(|def| (d.cube.clone(), without_cube(def))));
            }
            other => tracing::warn!(?other, "a stored session definition does not parse"),
        }
    }
    out
}

fn definition_name(d: &Definition) -> &ObjectName {
    match d {
        Definition::Member(m) => &m.name,
        Definition::Set(s) => &s.name,
        Definition::CellCalculation(c) => &c.name,
    }
}

/// The definition with its leading cube name (`[Sales].` or `CURRENTCUBE.`) removed.
fn without_cube(mut d: Definition) -> Definition {
    let name = match &mut d {
        Definition::Member(m) => &mut m.name,
        Definition::Set(s) => &mut s.name,
        Definition::CellCalculation(c) => &mut c.name,
    };
    if name.segments.len() > 1 {
        name.segments.remove(0);
    }
    d
}

fn definition_key(d: &Definition) -> String {
    let kind = match d {
        Definition::Member(_) => "member",
        Definition::Set(_) => "set",
        Definition::CellCalculation(_) => "cell",
    };
    format!("{kind}:{}", definition_name(d)).to_lowercase()
}

/// `CREATE [SESSION] MEMBER/SET [Cube].[…] AS …` and `DROP MEMBER/SET [Cube].[…]`: kept in the
/// session (bounded there), checked against the cube first.
fn session_statement(ctx: &QueryContext, req: &ExecuteRequest, statement: &str) -> Result<(), Fault> {
    // One command may hold several `;`-separated CREATE/DROP/REFRESH statements.
    let statements = datakube_mdx::parse_statements(statement)
        .map_err(|e| Fault::new(codes::MDX_SYNTAX, format!("MDX syntax error at {e}")))?;
    if req.session.borrow().id.is_empty() {
        return Err(Fault::new(
            codes::SESSION,
            "CREATE and DROP keep calculations in a session: start one with BeginSession first",
        ));
    }
    let cube_of = |name: &ObjectName| -> Result<String, Fault> {
        let first = name.segments.first().map(|s| s.text()).unwrap_or_default();
        let cube_name = if first.eq_ignore_ascii_case("CURRENTCUBE") {
            ctx.default_cube.map(str::to_string).ok_or_else(|| {
                Fault::new(
                    codes::MDX_SYNTAX,
                    "CURRENTCUBE needs the Cube property; name the cube instead: [Cube].[Measures].[X]",
                )
            })?
        } else {
            first
        };
        ctx.catalog
            .cube(&cube_name)
            .map(|c| c.name.clone())
            .ok_or_else(|| Fault::new(codes::MDX_NAME, format!("the cube [{cube_name}] does not exist; a session definition starts with the cube: [Cube].[Measures].[X]")))
    };
    for stmt in statements {
        session_one(ctx, req, stmt, &cube_of)?;
    }
    Ok(())
}

fn session_one(
    ctx: &QueryContext,
    req: &ExecuteRequest,
    stmt: Statement,
    cube_of: &dyn Fn(&ObjectName) -> Result<String, Fault>,
) -> Result<(), Fault> {
    match stmt {
        Statement::Refresh(_) => Ok(()),
        Statement::Create(c) => {
            let mut state = req.session.borrow_mut();
            for def in c.definitions {
                if matches!(def, Definition::CellCalculation(_)) {
                    return Err(Fault::new(
                        codes::MDX_UNSUPPORTED,
                        "CREATE CELL CALCULATION is not supported",
                    ));
                }
                let cube = cube_of(definition_name(&def))?;
                let inner = without_cube(def.clone());
                // Check the name against the cube (a member's parent must exist).
                if let Definition::Member(m) = &inner {
                    let c = ctx.catalog.cube(&cube).expect("checked above");
                    let access = ctx
                        .access
                        .for_cube(c)
                        .map_err(|e| Fault::new(codes::MDX_NAME, e.to_string()))?;
                    let mut space = crate::space::Space::scoped(c, ctx.members, ctx.lang, &access.members)
                        .map_err(|e| Fault::new(e.code(), e.to_string()))?;
                    crate::exec::define_member(&mut space, m).map_err(|e| Fault::new(e.code(), e.to_string()))?;
                }
                let single = datakube_mdx::ast::Create {
                    session: true,
                    definitions: vec![def],
                    span: c.span,
                };
                state
                    .define(datakube_xmla::session::SessionDefinition {
                        cube,
                        key: definition_key(&inner),
                        mdx: Statement::Create(Box::new(single)).to_string(),
                    })
                    .map_err(|m| Fault::new(codes::SESSION, m))?;
            }
            Ok(())
        }
        Statement::Drop(d) => {
            let mut state = req.session.borrow_mut();
            let kind = match d.kind {
                datakube_mdx::ast::DropKind::Member => "member",
                datakube_mdx::ast::DropKind::Set => "set",
            };
            for name in &d.names {
                let cube = cube_of(name)?;
                let mut rest = name.clone();
                rest.segments.remove(0);
                let key = format!("{kind}:{rest}").to_lowercase();
                if !state.undefine(&cube, &key) {
                    return Err(Fault::new(
                        codes::MDX_NAME,
                        format!("DROP {}: the session has no such {kind} in cube [{cube}]", name),
                    ));
                }
            }
            Ok(())
        }
        _ => Err(Fault::new(codes::MDX_SYNTAX, "expected CREATE or DROP")),
    }
}
