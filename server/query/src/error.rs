use datakube_xmla::response::codes;

/// Why a statement could not be answered. Each carries the code of the SOAP fault it becomes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("MDX syntax error at {0}")]
    Syntax(String),
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Type(String),
    #[error("query failed: {0}")]
    Execution(String),
    #[error("the command was cancelled by the client")]
    Cancelled,
}

impl QueryError {
    pub fn code(&self) -> u32 {
        match self {
            QueryError::Syntax(_) => codes::MDX_SYNTAX,
            QueryError::Name(_) => codes::MDX_NAME,
            QueryError::Unsupported(_) | QueryError::Type(_) => codes::MDX_UNSUPPORTED,
            QueryError::Execution(_) => codes::QUERY_FAILED,
            QueryError::Cancelled => codes::CANCELLED,
        }
    }
}

pub type Result<T> = std::result::Result<T, QueryError>;
