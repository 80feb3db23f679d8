//! The `datakube` binary: command line, configuration and logging; it wires the libraries
//! together and turns their errors into messages. No protocol or query logic lives here.

mod auth;
mod config;
mod metrics;
mod portal;
mod refresh;
mod reload;
mod schemas;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use datakube_engine::{Engine, EngineConfig};

#[derive(Parser, Debug)]
#[command(
    name = "datakube",
    version,
    about = "XMLA/MDX server for Danish municipal data cubes (FLIS)"
)]
struct Cli {
    /// Where datasets, snapshots and the TLS certificate live.
    #[arg(long, global = true, env = "DATAKUBE_DATA_DIR", default_value = "datakube-data")]
    data_dir: PathBuf,
    /// Folder of cube definitions (YAML).
    #[arg(
        long,
        global = true,
        env = "DATAKUBE_CUBE_DEFINITIONS",
        default_value = "cube-definitions"
    )]
    cube_definitions: PathBuf,
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, global = true, env = "DATAKUBE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Never read aggregates: every statement reads the fact table (serve, explain, bench).
    #[arg(long, global = true, env = "DATAKUBE_NO_AGGREGATES")]
    no_aggregates: bool,
    /// Configuration file (TOML; keys are the long options). Command line and environment
    /// take precedence over it. See docs/configuration.md.
    #[arg(long, global = true, env = "DATAKUBE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// Parsed once per process: the size of `serve`'s options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Serve XMLA over HTTPS (the default). Generates demo data on first start.
    Serve(ServeArgs),
    /// Generate the synthetic FLIS datasets as Parquet.
    Generate(GenerateArgs),
    /// Check cube definitions; prints file:line:column for every problem.
    Validate(ValidateArgs),
    /// Print the JSON Schema of the cube-definition format.
    Schema,
    /// Run an MDX SELECT against the data directory and print how it was answered: the
    /// resolved calculations, restrictions and axes, and every SQL statement with its timing.
    Explain(ExplainArgs),
    /// Benchmark: generate (or reuse) the datasets, then run the Excel-shaped workload
    /// in-process, each statement checked against hand-written DuckDB SQL and timed cold,
    /// warm (result cache) and beside that SQL; then N concurrent sessions. See docs/benchmarks.md.
    Bench(BenchArgs),
    /// Aggregates declared in the cube definitions (`aggregates:` of a cube).
    #[command(subcommand)]
    Aggregates(AggregatesCommand),
    /// Load a new snapshot of one dataset (generated, or imported with --from), validate it
    /// against the cube definitions and make it current atomically; running servers switch
    /// to it. The previous snapshot keeps serving if this fails or is killed.
    Refresh(RefreshArgs),
    /// Print docs/configuration.md (every option, its variable and default).
    #[command(hide = true)]
    ConfigReference,
}

#[derive(Subcommand, Debug, Clone)]
enum AggregatesCommand {
    /// Build (or rebuild) the aggregates beside the current dataset snapshots.
    Build(AggregatesBuildArgs),
    /// Propose aggregates from the query audit log: replays the statements users ran and
    /// prints YAML to paste under a cube's `aggregates:`.
    Suggest(AggregatesSuggestArgs),
}

#[derive(Args, Debug, Clone)]
struct AggregatesSuggestArgs {
    /// Audit log(s) to read, JSON lines (repeatable; default: $DATAKUBE_AUDIT_LOG, else
    /// audit.jsonl in $DATAKUBE_STATE_DIR or <data-dir>/state, as `serve` writes it).
    #[arg(long = "audit-log")]
    audit_logs: Vec<PathBuf>,
    /// Only this cube.
    #[arg(long)]
    cube: Option<String>,
    /// Suggestions per cube.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Largest aggregate (rows) two level combinations are merged into; an aggregate must
    /// also stay under a tenth of the fact table's rows.
    #[arg(long, default_value_t = 1_000_000)]
    max_rows: u64,
    /// Distinct statements replayed, the most frequently logged first.
    #[arg(long, default_value_t = 500)]
    max_statements: usize,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug, Clone)]
struct AggregatesBuildArgs {
    /// Only the aggregates of this cube (default: every cube).
    #[arg(long)]
    cube: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug, Clone)]
struct BenchArgs {
    /// Scale of the datasets generated when the data directory has none (1: Økonomi ≥ 100
    /// million rows). Existing datasets are reused whatever their scale.
    #[arg(long, default_value_t = 0.1)]
    scale: f64,
    /// Timed runs per statement and mode (at least).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Cold and hand-written SQL runs of a statement continue, in turns, until together
    /// they took this many seconds (at most 50 each): short statements get enough samples
    /// for a stable median on a shared machine.
    #[arg(long, default_value_t = 3.0)]
    min_seconds: f64,
    /// Kommune of the single-municipality pass (and the drill-downs).
    #[arg(long, default_value_t = 751)]
    kommune: u16,
    /// Simulated concurrent Excel sessions (0 = skip the concurrency mode).
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Workload replays per session.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Only check every statement against its SQL (no timing); exit 0 when all agree.
    #[arg(long)]
    verify: bool,
    /// Write the Markdown report here (default: standard output only).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug, Clone)]
struct RefreshArgs {
    /// The dataset to refresh (e.g. befolkning).
    #[arg(long)]
    dataset: String,
    /// Import this folder (manifest.json and one folder of Parquet files per table) instead
    /// of generating synthetic data.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Seed for generated data (a different seed gives different numbers).
    #[arg(long, default_value_t = datakube_datagen::DEFAULT_SEED)]
    seed: u64,
    /// Scale for generated data (default: that of the current snapshot).
    #[arg(long)]
    scale: Option<f64>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug, Clone)]
struct ExplainArgs {
    /// The MDX SELECT statement.
    mdx: String,
    /// Row scope of the plan: a kommunekode (default: all rows, as an administrator).
    #[arg(long)]
    kommune: Option<u16>,
    /// Caption language: da or en.
    #[arg(long, default_value = "da")]
    lang: String,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug, Clone)]
struct EngineArgs {
    /// DuckDB worker threads (0 = all cores).
    #[arg(long, env = "DATAKUBE_THREADS", default_value_t = 0)]
    threads: usize,
    /// DuckDB memory limit, e.g. 4GB (empty = DuckDB's default, 80 % of RAM).
    #[arg(long, env = "DATAKUBE_MEMORY_LIMIT", default_value = "")]
    memory_limit: String,
    /// Pooled DuckDB connections serving concurrent queries.
    #[arg(long, env = "DATAKUBE_POOL_SIZE", default_value_t = 8)]
    pool_size: u32,
}

impl EngineArgs {
    fn config(&self) -> EngineConfig {
        EngineConfig {
            threads: self.threads,
            memory_limit: self.memory_limit.clone(),
            pool_size: self.pool_size,
            temp_directory: None,
        }
    }
}

#[derive(Args, Debug, Clone)]
struct GenerateArgs {
    /// Size: 0.02 is the demo (well under a minute); 1 makes Økonomi ≥ 100 million rows.
    #[arg(long, default_value_t = datakube_datagen::DEFAULT_SCALE)]
    scale: f64,
    /// Seed of the pseudo-random numbers: the same seed and scale give identical files.
    #[arg(long, default_value_t = datakube_datagen::DEFAULT_SEED)]
    seed: u64,
    /// Only these datasets (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    datasets: Option<Vec<String>>,
    #[command(flatten)]
    engine: EngineArgs,
}

impl Default for GenerateArgs {
    fn default() -> Self {
        GenerateArgs {
            scale: datakube_datagen::DEFAULT_SCALE,
            seed: datakube_datagen::DEFAULT_SEED,
            datasets: None,
            engine: EngineArgs {
                threads: 0,
                memory_limit: String::new(),
                pool_size: 8,
            },
        }
    }
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "DATAKUBE_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// PEM certificate chain (default: a self-signed certificate in <data-dir>/tls).
    #[arg(long, env = "DATAKUBE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key belonging to --tls-cert.
    #[arg(long, env = "DATAKUBE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow the built-in development identity on a non-loopback address (demos only: its
    /// users and passwords are public).
    #[arg(long, env = "DATAKUBE_DEV_IDENTITY_ON_NETWORK")]
    allow_dev_identity_on_network: bool,
    /// Issuer URL of the OpenID Connect provider (discovery at
    /// <issuer>/.well-known/openid-configuration). Without it the development identity is used.
    #[arg(long, env = "DATAKUBE_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// This server's client id at the provider (browser login; the audience of ID tokens).
    #[arg(long, env = "DATAKUBE_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// The client secret (prefer the environment variable: command lines are visible to
    /// other users of the machine).
    #[arg(long, env = "DATAKUBE_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
    /// Audience(s) accepted in bearer access tokens (comma-separated), e.g. the resource
    /// indicator the provider puts in tokens for this server.
    #[arg(long, env = "DATAKUBE_OIDC_AUDIENCE", value_delimiter = ',')]
    oidc_audience: Vec<String>,
    /// Scopes requested at browser login besides `openid` (comma-separated).
    #[arg(long, env = "DATAKUBE_OIDC_SCOPES", value_delimiter = ',', default_value = "profile")]
    oidc_scopes: Vec<String>,
    /// Claim with the user's stable id.
    #[arg(long, env = "DATAKUBE_OIDC_CLAIM_SUBJECT", default_value = "sub")]
    oidc_claim_subject: String,
    /// Claim with the display name.
    #[arg(long, env = "DATAKUBE_OIDC_CLAIM_NAME", default_value = "name")]
    oidc_claim_name: String,
    /// Claim with the organisation's CVR number(s) (a municipality's CVR gives its rows).
    #[arg(long, env = "DATAKUBE_OIDC_CLAIM_CVR", default_value = "organisation_cvr")]
    oidc_claim_cvr: String,
    /// Claim with kommunekoder asserted directly.
    #[arg(long, env = "DATAKUBE_OIDC_CLAIM_KOMMUNEKODE", default_value = "kommunekode")]
    oidc_claim_kommunekode: String,
    /// Claim with roles or groups (a dotted path reaches nested claims: realm_access.roles).
    #[arg(long, env = "DATAKUBE_OIDC_CLAIM_ROLES", default_value = "roles")]
    oidc_claim_roles: String,
    /// Tolerated clock difference to the identity provider for exp/nbf/iat.
    #[arg(long, env = "DATAKUBE_CLOCK_SKEW_SECONDS", default_value_t = 60)]
    clock_skew_seconds: u64,
    /// Shortest time between two JWKS fetches triggered by tokens with an unknown key id.
    #[arg(long, env = "DATAKUBE_JWKS_MIN_REFETCH_SECONDS", default_value_t = 30)]
    jwks_min_refetch_seconds: u64,
    /// A client-credentials service account: CLIENT_ID:ROLE[+ROLE…][:impersonate][:kommune=751+825]
    /// (repeatable; interim until roles come from security.yaml).
    #[arg(long = "service-account", env = "DATAKUBE_SERVICE_ACCOUNTS", value_delimiter = ' ')]
    service_accounts: Vec<datakube_auth::mapper::ServiceAccount>,
    /// Where tokens, remembered identities and the audit log live (default <data-dir>/state).
    #[arg(long, env = "DATAKUBE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The audit log, JSON lines (default <state-dir>/audit.jsonl).
    #[arg(long, env = "DATAKUBE_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
    /// The audit log is rotated past this size (bytes), keeping --audit-log-keep old files.
    #[arg(long, env = "DATAKUBE_AUDIT_LOG_MAX_BYTES", default_value_t = 100 * 1024 * 1024)]
    audit_log_max_bytes: u64,
    #[arg(long, env = "DATAKUBE_AUDIT_LOG_KEEP", default_value_t = 10)]
    audit_log_keep: usize,
    /// The server's external base URL, e.g. https://datakube.example.dk (login redirects and
    /// links); default https://localhost:<port> on loopback.
    #[arg(long, env = "DATAKUBE_PUBLIC_URL")]
    public_url: Option<String>,
    /// SAML (KOMBIT Context Handler): this service provider's entityID. SAML is on when this,
    /// --saml-idp-metadata, --saml-sp-key and --saml-sp-cert are all given.
    #[arg(long, env = "DATAKUBE_SAML_ENTITY_ID")]
    saml_entity_id: Option<String>,
    /// SAML: the identity provider's metadata XML file (its signing certificate).
    #[arg(long, env = "DATAKUBE_SAML_IDP_METADATA")]
    saml_idp_metadata: Option<PathBuf>,
    /// SAML: this service provider's private key (PEM), for signed AuthnRequests and decryption.
    #[arg(long, env = "DATAKUBE_SAML_SP_KEY")]
    saml_sp_key: Option<PathBuf>,
    /// SAML: this service provider's certificate (PEM), published in /saml/metadata.
    #[arg(long, env = "DATAKUBE_SAML_SP_CERT")]
    saml_sp_cert: Option<PathBuf>,
    /// Do not generate the demo datasets on first start (for catalogs that read other data).
    #[arg(long, env = "DATAKUBE_NO_DEMO_DATA")]
    no_demo_data: bool,
    /// Scale of the demo data generated on first start.
    #[arg(long, env = "DATAKUBE_DEMO_SCALE", default_value_t = datakube_datagen::DEFAULT_SCALE)]
    demo_scale: f64,
    /// Memory for cached query answers, in MiB (keyed by data snapshot, security scope and
    /// statement; 0 turns the cache off).
    #[arg(long, env = "DATAKUBE_RESULT_CACHE_MB", default_value_t = 256)]
    result_cache_mb: u64,
    /// Seconds between checks for changed cube definitions and new dataset snapshots
    /// (`datakube refresh`); a change is validated and swapped in whole, or refused. The same
    /// poll notices aggregates built or removed beside the running server.
    #[arg(long, env = "DATAKUBE_RELOAD_POLL_SECONDS", default_value_t = 5)]
    reload_poll_seconds: u64,
    /// Old snapshots kept per dataset besides the current one (for other replicas on shared
    /// storage that may still read them); older ones are deleted once no query uses them.
    #[arg(long, env = "DATAKUBE_KEEP_SNAPSHOTS", default_value_t = 1)]
    keep_snapshots: usize,
    /// A folder watched for new snapshots: a sub-folder with manifest.json (naming the
    /// dataset), one folder of Parquet files per table and a READY file is imported like
    /// `datakube refresh --from`, then moved to .done/ (or .failed/ with ERROR.txt). Give it
    /// to one replica only.
    #[arg(long, env = "DATAKUBE_REFRESH_INBOX")]
    refresh_inbox: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            listen: "127.0.0.1:8443".parse().expect("literal address"),
            tls_cert: None,
            tls_key: None,
            demo_scale: datakube_datagen::DEFAULT_SCALE,
            allow_dev_identity_on_network: false,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_audience: Vec::new(),
            oidc_scopes: vec!["profile".into()],
            oidc_claim_subject: "sub".into(),
            oidc_claim_name: "name".into(),
            oidc_claim_cvr: "organisation_cvr".into(),
            oidc_claim_kommunekode: "kommunekode".into(),
            oidc_claim_roles: "roles".into(),
            clock_skew_seconds: 60,
            jwks_min_refetch_seconds: 30,
            service_accounts: Vec::new(),
            state_dir: None,
            audit_log: None,
            audit_log_max_bytes: 100 * 1024 * 1024,
            audit_log_keep: 10,
            public_url: None,
            saml_entity_id: None,
            saml_idp_metadata: None,
            saml_sp_key: None,
            saml_sp_cert: None,
            no_demo_data: false,
            result_cache_mb: 256,
            reload_poll_seconds: 5,
            keep_snapshots: 1,
            refresh_inbox: None,
            engine: GenerateArgs::default().engine,
        }
    }
}

#[derive(Args, Debug, Clone)]
struct ValidateArgs {
    /// Folder or file of cube definitions (default: --cube-definitions).
    path: Option<PathBuf>,
    /// Skip checking columns against the Parquet files in --data-dir.
    #[arg(long)]
    no_data: bool,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = config::config_path(&args)
        && let Err(e) = config::apply(&path)
    {
        eprintln!("datakube: error: {e:#}");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if cli.no_aggregates {
        datakube_query::aggregates::set_enabled(false);
    }
    let result = match cli.command.clone_command() {
        None => serve(&cli, &ServeArgs::default_from_env()),
        Some(Command::Serve(a)) => serve(&cli, &a),
        Some(Command::Generate(a)) => generate(&cli, &a).map(|_| ExitCode::SUCCESS),
        Some(Command::Validate(a)) => validate(&cli, &a),
        Some(Command::Schema) => {
            println!("{}", datakube_model::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Explain(a)) => explain(&cli, &a),
        Some(Command::Bench(a)) => bench(&cli, &a),
        Some(Command::Aggregates(AggregatesCommand::Build(a))) => aggregates_build(&cli, &a),
        Some(Command::Aggregates(AggregatesCommand::Suggest(a))) => aggregates_suggest(&cli, &a),
        Some(Command::Refresh(a)) => refresh::refresh(&refresh::RefreshRequest {
            data_dir: &cli.data_dir,
            definitions: &cli.cube_definitions,
            dataset: &a.dataset,
            from: a.from.as_deref(),
            seed: a.seed,
            scale: a.scale,
            engine: a.engine.config(),
        })
        .map(|id| {
            println!("{}: snapshot {id} is current", a.dataset);
            ExitCode::SUCCESS
        }),
        Some(Command::ConfigReference) => {
            print!("{}", config::markdown());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("datakube: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

trait CloneCommand {
    fn clone_command(&self) -> Option<Command>;
}
impl CloneCommand for Option<Command> {
    fn clone_command(&self) -> Option<Command> {
        match self {
            None => None,
            Some(Command::Serve(a)) => Some(Command::Serve(a.clone())),
            Some(Command::Generate(a)) => Some(Command::Generate(a.clone())),
            Some(Command::Validate(a)) => Some(Command::Validate(a.clone())),
            Some(Command::Schema) => Some(Command::Schema),
            Some(Command::Explain(a)) => Some(Command::Explain(a.clone())),
            Some(Command::Bench(a)) => Some(Command::Bench(a.clone())),
            Some(Command::Aggregates(a)) => Some(Command::Aggregates(a.clone())),
            Some(Command::Refresh(a)) => Some(Command::Refresh(a.clone())),
            Some(Command::ConfigReference) => Some(Command::ConfigReference),
        }
    }
}

impl ServeArgs {
    /// `datakube` without a subcommand: `serve` with its defaults, honouring the environment.
    fn default_from_env() -> ServeArgs {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Only::try_parse_from(["datakube"]).map(|o| o.serve).unwrap_or_default()
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DATAKUBE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn generate(cli: &Cli, a: &GenerateArgs) -> anyhow::Result<datakube_datagen::GenerateReport> {
    let opts = datakube_datagen::GenerateOptions {
        data_dir: cli.data_dir.clone(),
        seed: a.seed,
        scale: a.scale,
        engine: a.engine.config(),
        datasets: a.datasets.clone(),
    };
    let started = std::time::Instant::now();
    tracing::info!(
        scale = a.scale,
        seed = a.seed,
        "generating synthetic datasets in {}",
        cli.data_dir.display()
    );
    let report = datakube_datagen::generate(&opts, &datakube_datagen::progress::TerminalProgress::new())?;
    for d in &report.datasets {
        tracing::info!(dataset = %d.name, snapshot = %d.snapshot_id, rows = d.total_rows(), "dataset ready");
    }
    tracing::info!("generated in {:.1} s", started.elapsed().as_secs_f64());
    // The aggregates of the cubes whose fact tables were just generated.
    let generated: Vec<&str> = report.datasets.iter().map(|d| d.name.as_str()).collect();
    match datakube_model::load_catalog(&cli.cube_definitions, None) {
        Ok(catalog) => {
            let engine = Engine::open(&a.engine.config()).context("opening DuckDB")?;
            build_aggregates(cli, &engine, &catalog, |c| match &c.source {
                datakube_model::Source::Dataset { dataset, .. } => generated.contains(&dataset.as_str()),
                datakube_model::Source::Path { .. } => false,
            })?;
        }
        Err(_) => tracing::warn!(
            "aggregates not built: the cube definitions in {} have errors (run `datakube validate`)",
            cli.cube_definitions.display()
        ),
    }
    Ok(report)
}

fn aggregates_build(cli: &Cli, a: &AggregatesBuildArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::open(&a.engine.config()).context("opening DuckDB")?;
    let snapshots = datakube_engine::storage::Snapshots::current(&cli.data_dir).context("pinning the snapshots")?;
    let catalog = load_catalog(cli, &engine, &snapshots)?;
    if let Some(n) = &a.cube
        && !catalog.cubes.iter().any(|c| c.name.eq_ignore_ascii_case(n))
    {
        anyhow::bail!("no cube named {n} in {}", cli.cube_definitions.display());
    }
    build_aggregates(cli, &engine, &catalog, |c| {
        a.cube.as_ref().is_none_or(|n| n.eq_ignore_ascii_case(&c.name))
    })?;
    Ok(ExitCode::SUCCESS)
}

fn aggregates_suggest(cli: &Cli, a: &AggregatesSuggestArgs) -> anyhow::Result<ExitCode> {
    let logs = if a.audit_logs.is_empty() {
        let default = match (
            std::env::var_os("DATAKUBE_AUDIT_LOG"),
            std::env::var_os("DATAKUBE_STATE_DIR"),
        ) {
            (Some(p), _) => PathBuf::from(p),
            (None, Some(d)) => PathBuf::from(d).join("audit.jsonl"),
            (None, None) => cli.data_dir.join("state").join("audit.jsonl"),
        };
        vec![default]
    } else {
        a.audit_logs.clone()
    };
    let logged = datakube_query::suggest::read_audit_logs(&logs).map_err(|e| anyhow::anyhow!(e))?;
    let engine = Engine::open(&a.engine.config()).context("opening DuckDB")?;
    let snapshots = datakube_engine::storage::Snapshots::current(&cli.data_dir).context("pinning the snapshots")?;
    let catalog = load_catalog(cli, &engine, &snapshots)?;
    if let Some(n) = &a.cube
        && !catalog.cubes.iter().any(|c| c.name.eq_ignore_ascii_case(n))
    {
        anyhow::bail!("no cube named {n} in {}", cli.cube_definitions.display());
    }
    let members = datakube_members::MemberStore::load(&engine, &snapshots, &catalog).context("loading members")?;
    let opts = datakube_query::suggest::Options {
        top: a.top,
        max_rows: a.max_rows,
        max_statements: a.max_statements,
        cube: a.cube.clone(),
        ..Default::default()
    };
    let report = datakube_query::suggest::suggest(&engine, &snapshots, &catalog, &members, &logged, &opts)
        .map_err(|e| anyhow::anyhow!(e))?;
    let sources: Vec<&std::path::Path> = logs.iter().map(PathBuf::as_path).collect();
    print!("{}", datakube_query::suggest::render_yaml(&report, &sources));
    Ok(ExitCode::SUCCESS)
}

/// Build the declared aggregates of the cubes `which` accepts, with progress.
fn build_aggregates(
    cli: &Cli,
    engine: &Engine,
    catalog: &datakube_model::Catalog,
    which: impl Fn(&datakube_model::Cube) -> bool,
) -> anyhow::Result<()> {
    use datakube_datagen::progress::Progress;
    let todo: Vec<(&datakube_model::Cube, &datakube_model::Aggregate)> = catalog
        .cubes
        .iter()
        .filter(|c| which(c))
        .flat_map(|c| c.aggregates.iter().map(move |a| (c, a)))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let snapshots = datakube_engine::storage::Snapshots::current(&cli.data_dir).context("pinning the snapshots")?;
    let progress = datakube_datagen::progress::TerminalProgress::new();
    progress.begin("aggregates", todo.len() as u64);
    let mut result = Ok(());
    for (cube, agg) in todo {
        match datakube_query::aggregates::build(engine, &snapshots, cube, agg) {
            Ok(meta) => progress.advance(&format!("{}/{} ({} rows)", cube.name, agg.name, meta.rows)),
            Err(e) => {
                result = Err(anyhow::anyhow!("aggregate {} of cube [{}]: {e}", agg.name, cube.name));
                break;
            }
        }
    }
    progress.finish();
    result
}

fn validate(cli: &Cli, a: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let path = a.path.clone().unwrap_or_else(|| cli.cube_definitions.clone());
    let engine;
    let provider = if a.no_data || !datakube_datagen::is_generated(&cli.data_dir) {
        if !a.no_data {
            eprintln!(
                "note: no datasets in {}; columns are not checked against Parquet (run `datakube generate` first)",
                cli.data_dir.display()
            );
        }
        None
    } else {
        engine = Engine::open(&EngineConfig {
            pool_size: 1,
            ..Default::default()
        })?;
        Some(schemas::ParquetSchemas::new(
            engine,
            datakube_engine::storage::Snapshots::current(&cli.data_dir)?,
        ))
    };
    match datakube_model::load_catalog(
        &path,
        provider.as_ref().map(|p| p as &dyn datakube_model::SchemaProvider),
    ) {
        Ok(catalog) => {
            for w in &catalog.warnings {
                println!("{w}");
            }
            println!(
                "{}: {} cubes valid ({}), {} warning(s)",
                path.display(),
                catalog.cubes.len(),
                cube_names(&catalog).join(", "),
                catalog.warnings.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            for d in &diags {
                println!("{d}");
            }
            let errors = diags
                .iter()
                .filter(|d| d.severity == datakube_model::Severity::Error)
                .count();
            println!(
                "{}: {errors} error(s), {} warning(s)",
                path.display(),
                diags.len() - errors
            );
            Ok(ExitCode::from(if errors > 0 { 2 } else { 0 }))
        }
    }
}

/// The cube definitions, checked against the Parquet files; every problem is printed as
/// `file:line:column` before the error.
fn load_catalog(
    cli: &Cli,
    engine: &Engine,
    snapshots: &datakube_engine::storage::Snapshots,
) -> anyhow::Result<datakube_model::Catalog> {
    let provider = schemas::ParquetSchemas::new(engine.clone(), snapshots.clone());
    match datakube_model::load_catalog(&cli.cube_definitions, Some(&provider)) {
        Ok(c) => Ok(c),
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            anyhow::bail!(
                "the cube definitions in {} have errors (listed above); fix them or run `datakube validate`",
                cli.cube_definitions.display()
            );
        }
    }
}

fn explain(cli: &Cli, a: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::open(&a.engine.config()).context("opening DuckDB")?;
    let snapshots = datakube_engine::storage::Snapshots::current(&cli.data_dir)?;
    let catalog = load_catalog(cli, &engine, &snapshots)?;
    let members = datakube_members::MemberStore::load(&engine, &snapshots, &catalog).context("loading members")?;
    let lang = if a.lang.eq_ignore_ascii_case("en") {
        datakube_model::Lang::En
    } else {
        datakube_model::Lang::Da
    };
    let ctx = datakube_query::exec::QueryContext {
        catalog: &catalog,
        members: &members,
        engine: &engine,
        snapshots: &snapshots,
        lang,
        lcid: if lang == datakube_model::Lang::Da { 1030 } else { 1033 },
        access: match a.kommune {
            Some(k) => datakube_query::security::Access::kommuner(&[i64::from(k)]),
            None => datakube_query::security::Access::all(),
        },
        last_data_update: "",
        last_schema_update: "",
        default_cube: None,
        ignore_missing_members: false,
        session_definitions: Vec::new(),
        cancel: None,
    };
    match datakube_query::exec::explain(&ctx, &a.mdx) {
        Ok(trace) => {
            println!("{}", a.mdx.trim());
            println!("{trace}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("datakube: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn bench(cli: &Cli, a: &BenchArgs) -> anyhow::Result<ExitCode> {
    if !datakube_datagen::is_generated(&cli.data_dir) {
        generate(
            cli,
            &GenerateArgs {
                scale: a.scale,
                engine: a.engine.clone(),
                ..GenerateArgs::default()
            },
        )?;
    } else if datakube_query::aggregates::enabled() {
        // Datasets generated before their aggregates were declared: build the missing ones.
        let engine = Engine::open(&a.engine.config()).context("opening DuckDB")?;
        let snapshots = datakube_engine::storage::Snapshots::current(&cli.data_dir).context("pinning the snapshots")?;
        let catalog = load_catalog(cli, &engine, &snapshots)?;
        let missing: Vec<String> = catalog
            .cubes
            .iter()
            .filter(|c| datakube_query::aggregates::built(&snapshots, c).len() < c.aggregates.len())
            .map(|c| c.name.clone())
            .collect();
        build_aggregates(cli, &engine, &catalog, |c| missing.contains(&c.name))?;
    }
    let h = datakube_bench::Harness::open(&cli.data_dir, &cli.cube_definitions, &a.engine.config(), 256 << 20)?;
    if a.verify {
        let n = datakube_bench::report::verify(&h, a.kommune)?;
        println!("{n} statements agree with their hand-written SQL");
        return Ok(ExitCode::SUCCESS);
    }
    let opts = datakube_bench::report::Options {
        runs: a.runs.max(1),
        min_time: std::time::Duration::from_secs_f64(a.min_seconds.clamp(0.0, 3600.0)),
        kommune: a.kommune,
        sessions: a.sessions,
        rounds: a.rounds.max(1),
    };
    let report = datakube_bench::report::run(&h, &opts, &|line| eprintln!("{line}"))?;
    let md = report.markdown();
    println!("{md}");
    if let Some(out) = &a.out {
        std::fs::write(out, &md).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cube_names(catalog: &datakube_model::Catalog) -> Vec<String> {
    catalog.cubes.iter().map(|c| c.name.clone()).collect()
}

fn serve(cli: &Cli, a: &ServeArgs) -> anyhow::Result<ExitCode> {
    // Without an identity provider the development identity is in use. Its users and
    // passwords are public, so it stays on loopback unless explicitly forced.
    let development = a.oidc_issuer.is_none() && a.saml_entity_id.is_none();
    if development && !a.listen.ip().is_loopback() && !a.allow_dev_identity_on_network {
        anyhow::bail!(
            "refusing to serve the development identity (public demo passwords) on {}; listen on 127.0.0.1, \
             configure an identity provider, or pass --allow-dev-identity-on-network for a demo",
            a.listen
        );
    }
    // Listen first: while data is generated and the runtime loads, /health answers 200 and
    // /ready (like every other path) 503, so orchestrators neither kill nor route to us.
    let tls_source = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => datakube_http::tls::TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => datakube_http::tls::TlsSource::SelfSigned {
            dir: cli.data_dir.join("tls"),
        },
    };
    let (tls, cert_file) = datakube_http::tls::server_config(&tls_source)?;
    let engine = Engine::open(&a.engine.config()).context("opening DuckDB")?;
    // /health and /version report the catalog as the definitions name it (read without data).
    let declared = datakube_model::load_catalog(&cli.cube_definitions, None).ok();
    let info = datakube_http::ServerInfo {
        name: "datakube",
        version: env!("CARGO_PKG_VERSION"),
        duckdb: engine.version().to_string(),
        catalog: declared.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
        cubes: declared.as_ref().map(cube_names).unwrap_or_default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(a.listen))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", a.listen))?;
    let addr = listener.local_addr()?;
    let starting = Arc::new(reload::Starting::default());
    let stop = Arc::new(tokio::sync::Notify::new());
    {
        let (stop, starting) = (stop.clone(), starting.clone());
        rt.spawn(async move {
            datakube_http::shutdown_signal().await;
            if !starting.is_started() {
                tracing::warn!("stopped while starting");
                std::process::exit(1);
            }
            stop.notify_one();
        });
    }
    let server = datakube_http::Server {
        listen: addr,
        tls,
        info,
        handler: starting.clone(),
    };
    let server_task = {
        let stop = stop.clone();
        rt.spawn(async move { server.run(listener, async move { stop.notified().await }).await })
    };

    if !a.no_demo_data && !datakube_datagen::is_generated(&cli.data_dir) {
        tracing::info!(
            "first start: no datasets in {}; generating the demo data",
            cli.data_dir.display()
        );
        generate(
            cli,
            &GenerateArgs {
                scale: a.demo_scale,
                engine: a.engine.clone(),
                ..GenerateArgs::default()
            },
        )?;
    }
    // The first runtime is built exactly as every reload builds one (snapshots pinned,
    // definitions validated against them, members loaded).
    let runtime = match reload::build_runtime(&engine, &cli.data_dir, &cli.cube_definitions) {
        Ok(rt) => rt,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            anyhow::bail!(
                "the cube definitions in {} (or the data in {}) have errors (listed above); fix them or run `datakube validate`",
                cli.cube_definitions.display(),
                cli.data_dir.display()
            );
        }
    };
    let catalog = runtime.catalog.clone();
    let host = if a.listen.ip().is_loopback() {
        "localhost".to_string()
    } else {
        a.listen.ip().to_string()
    };
    let server_props = datakube_xmla::discover::ServerProps {
        data_source_url: format!("https://{host}:{}/xmla", a.listen.port()),
        ..Default::default()
    };
    let mut service = datakube_xmla::service::XmlaService::new(
        runtime,
        server_props,
        Box::new(
            datakube_query::xmla::QueryExecutor::new(engine.clone())
                .with_cache(a.result_cache_mb.saturating_mul(1024 * 1024)),
        ),
    );
    let metrics = metrics::Metrics::new();
    {
        let m = metrics.clone();
        datakube_query::observe::set_sql_observer(Box::new(move |cube, d| m.observe_sql(cube, d.as_secs_f64())));
    }
    service.observer = Some(metrics.clone());
    let state_dir = a.state_dir.clone().unwrap_or_else(|| cli.data_dir.join("state"));
    let auth = auth::AuthSetup::open(a, &state_dir, development, &catalog.security)?;
    service.impersonation = Some(auth.impersonation.clone());
    service.audit = Some(auth.audit.clone());
    let service = Arc::new(service);
    {
        let svc = Arc::downgrade(&service);
        metrics.set_cache_stats(Box::new(move || {
            svc.upgrade()
                .and_then(|s| s.cache_stats())
                .map(|c| {
                    vec![metrics::CacheStats {
                        cache: "result".into(),
                        hits: c.hits,
                        misses: c.misses,
                    }]
                })
                .unwrap_or_default()
        }));
    }
    let reloader = reload::Reloader::new(
        service.clone(),
        engine.clone(),
        cli.data_dir.clone(),
        cli.cube_definitions.clone(),
        a.keep_snapshots,
        a.refresh_inbox.clone().map(|d| (d, a.engine.config())),
        metrics.clone(),
    );
    if a.reload_poll_seconds > 0 {
        reloader.spawn_poller(std::time::Duration::from_secs(a.reload_poll_seconds));
    }
    // The portal's administration pages read and trigger reloads through this.
    let admin: Arc<dyn datakube_portal::admin::Admin> = reloader.clone();
    let public_url = a.public_url.clone().unwrap_or_else(|| default_public_url(addr));
    let wired = rt.block_on(auth.wire(a, &public_url))?;
    let ops = Arc::new(reload::OpsHandler {
        reloader: reloader.clone(),
        auth: wired.authenticator.clone(),
    });
    let xmla = Arc::new(datakube_xmla::service::XmlaHandler {
        service: service.clone(),
        auth: wired.authenticator,
        audit: Some(auth.audit.clone()),
    });
    // Exact operations paths win over the portal's /admin/ pages (longest route first).
    let mut router = datakube_http::Router::new(xmla.clone())
        .route("/metrics", ops.clone())
        .route("/ready", ops.clone())
        .route("/admin/status", ops.clone())
        .route("/admin/reload", ops);
    for p in datakube_auth::web::PATHS {
        router = router.route(p, Arc::new(wired.web.clone()));
    }
    let mut router = router.route("/tokens/", Arc::new(wired.web.clone()));
    if let Some(saml) = saml_web(a, &public_url, &auth, &wired.web)? {
        router = router.route("/saml/", Arc::new(saml));
    }
    let router = portal::routes(
        router,
        xmla,
        service,
        &wired.web,
        admin,
        auth.audit.path(),
        &public_url,
        &cli.data_dir,
    );
    starting.start(Arc::new(router));
    print_banner(addr, &cert_file, &catalog, &public_url, &auth, development);
    rt.block_on(server_task)??;
    Ok(ExitCode::SUCCESS)
}

fn default_public_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_loopback() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    };
    format!("https://{host}:{}", addr.port())
}

fn print_banner(
    addr: SocketAddr,
    cert: &Path,
    catalog: &datakube_model::Catalog,
    public_url: &str,
    auth: &auth::AuthSetup,
    development: bool,
) {
    let host = if addr.ip().is_loopback() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    };
    let url = format!("https://{host}:{}/xmla", addr.port());
    eprintln!();
    eprintln!(
        "  datakube {} serving catalog {} ({} cubes)",
        env!("CARGO_PKG_VERSION"),
        catalog.name,
        catalog.cubes.len()
    );
    eprintln!("  Excel: Data > Get Data > From Database > From Analysis Services, server name:");
    eprintln!("      {url}");
    eprintln!("  Health: curl -k https://{host}:{}/health", addr.port());
    eprintln!("  TLS certificate: {}", cert.display());
    eprintln!("  Log in and create a personal access token (the password for Excel): {public_url}/login");
    eprintln!("  Audit log: {}", auth.audit.path().display());
    if development {
        eprintln!("  DEVELOPMENT IDENTITY (not for production) — user/password:");
        for d in datakube_auth::DEV_USERS {
            let scope = d
                .kommune
                .map(|k| format!("kommune {k}"))
                .unwrap_or_else(|| "all kommuner".into());
            eprintln!("      {} / {}   {}; {scope}", d.user, d.password, d.name);
        }
    }
    eprintln!();
}

/// The SAML service provider (`/saml/metadata`, `/saml/login`, `/saml/acs`) when configured;
/// a verified login ends like every browser login (`AuthWeb::complete_login`).
fn saml_web(
    a: &ServeArgs,
    public_url: &str,
    auth: &auth::AuthSetup,
    web: &datakube_auth::web::AuthWeb,
) -> anyhow::Result<Option<datakube_auth::saml::SamlWeb>> {
    use datakube_auth::saml::{LoginComplete, SamlConfig, SamlSp, SamlWeb};
    let (Some(entity), Some(md), Some(key), Some(cert)) =
        (&a.saml_entity_id, &a.saml_idp_metadata, &a.saml_sp_key, &a.saml_sp_cert)
    else {
        if a.saml_entity_id.is_some() || a.saml_idp_metadata.is_some() {
            anyhow::bail!("SAML needs all of --saml-entity-id, --saml-idp-metadata, --saml-sp-key and --saml-sp-cert");
        }
        return Ok(None);
    };
    let cfg = SamlConfig::from_files(entity, public_url, md, key, cert).map_err(|e| anyhow::anyhow!("SAML: {e}"))?;
    let sp = Arc::new(SamlSp::new(cfg).map_err(|e| anyhow::anyhow!("SAML: {e}"))?);
    let web = web.clone();
    let on_login: LoginComplete = Arc::new(move |identity, _return_to| {
        let web = web.clone();
        Box::pin(async move { web.complete_login(identity, "") })
    });
    Ok(Some(SamlWeb::new(sp, Some(auth.audit.clone()), on_login)))
}
