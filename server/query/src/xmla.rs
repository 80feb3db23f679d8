//! The query engine behind the XMLA `Execute` method.

use std::path::PathBuf;

use datakube_engine::Engine;
use datakube_model::Lang;
use datakube_xmla::discover::Fault;
use datakube_xmla::response::{codes, empty_root};
use datakube_xmla::service::{ExecuteRequest, ExecuteResult, Executor};

use datakube_auth::{Principal, RowScope as PrincipalScope};

use crate::cells::RowScope;
use crate::exec::{QueryContext, execute};

pub struct QueryExecutor {
    pub engine: Engine,
    pub data_dir: PathBuf,
}

impl Executor for QueryExecutor {
    fn execute(&self, req: &ExecuteRequest) -> Result<ExecuteResult, Fault> {
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
            data_dir: &self.data_dir,
            lang,
            lcid,
            scope: row_scope(principal),
            last_data_update: &runtime.data_updated,
            last_schema_update: &runtime.schema_updated,
            default_cube: props.get("Cube"),
            // MdxMissingMemberMode=Ignore: unknown members are left out instead of failing.
            ignore_missing_members: props
                .get("MdxMissingMemberMode")
                .is_some_and(|m| m.eq_ignore_ascii_case("Ignore")),
            cancel: Some(cancel),
        };
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

/// The SQL row scope of a verified principal. (Benchmark cubes get their own rules with the
/// disclosure-control work; until then every cube uses the principal's scope.)
pub fn row_scope(principal: &Principal) -> RowScope {
    match &principal.scope {
        PrincipalScope::All => RowScope::All,
        PrincipalScope::Municipalities(k) => RowScope::Kommuner(k.iter().map(|k| i64::from(k.0)).collect()),
    }
}
