//! Command line flags and their `SIDEBUS_*` environment forms. Names follow
//! daprd's so existing scripts and manifests keep working.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::secret::Secret;

/// sidebus: a per-pod pub/sub sidecar that speaks Dapr's pub/sub API.
#[derive(Debug, Parser)]
#[command(
    name = "sidebus",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `run`, accepted without the subcommand.
    #[command(flatten)]
    pub run: Settings,
}

/// Subcommands.
// Parsed once at start-up, so the size difference between variants costs
// nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar (the default).
    Run(Settings),
    /// Check every resource file without any I/O beyond reading them; list
    /// every error and exit 78 when any is wrong.
    Validate(ValidateArgs),
}

/// Flags of `sidebus validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Folders with Component / Subscription / Resiliency YAML (repeatable).
    #[arg(
        long = "resources-path",
        visible_alias = "components-path",
        env = "SIDEBUS_RESOURCES_PATH",
        value_delimiter = ','
    )]
    pub resources_path: Vec<PathBuf>,
    /// App id used to evaluate scopes and templates.
    #[arg(long = "app-id", env = "SIDEBUS_APP_ID", default_value = "")]
    pub app_id: String,
}

/// Protocol of the app channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppProtocol {
    /// HTTP/1.1 POSTs to the app's routes.
    Http,
    /// gRPC `AppCallback` service.
    Grpc,
}

impl AppProtocol {
    /// The protocol's name as the metadata API reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            AppProtocol::Http => "http",
            AppProtocol::Grpc => "grpc",
        }
    }
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Everything, including per-event traces.
    Debug,
    /// Start-up, shutdown and notable events (default).
    Info,
    /// Only problems.
    Warn,
    /// Only failures.
    Error,
    /// Only fatal failures (daprd's name; same as error here).
    Fatal,
}

/// Flags of `sidebus run`.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// The app's id: CloudEvent `source`, default consumer group, scopes.
    #[arg(long = "app-id", env = "SIDEBUS_APP_ID", default_value = "sidebus")]
    pub app_id: String,
    /// Port the app listens on; no app channel when absent.
    #[arg(long = "app-port", env = "SIDEBUS_APP_PORT")]
    pub app_port: Option<u16>,
    /// Protocol the app speaks on its port.
    #[arg(
        long = "app-protocol",
        env = "SIDEBUS_APP_PROTOCOL",
        value_enum,
        default_value = "http"
    )]
    pub app_protocol: AppProtocol,
    /// Address of the app (daprd's `--app-channel-address`).
    #[arg(
        long = "app-channel-address",
        env = "SIDEBUS_APP_CHANNEL_ADDRESS",
        default_value = "127.0.0.1"
    )]
    pub app_channel_address: String,
    /// HTTP API port.
    #[arg(
        long = "dapr-http-port",
        env = "SIDEBUS_HTTP_PORT",
        default_value_t = 3500
    )]
    pub http_port: u16,
    /// gRPC API port.
    #[arg(
        long = "dapr-grpc-port",
        env = "SIDEBUS_GRPC_PORT",
        default_value_t = 50001
    )]
    pub grpc_port: u16,
    /// Metrics and admin port (`/metrics`, `/livez`, `/readyz`).
    #[arg(
        long = "metrics-port",
        env = "SIDEBUS_METRICS_PORT",
        default_value_t = 9090
    )]
    pub metrics_port: u16,
    /// Folders with Component / Subscription / Resiliency YAML (repeatable).
    /// Without one, a component named `pubsub` of the default type is created.
    #[arg(
        long = "resources-path",
        visible_alias = "components-path",
        env = "SIDEBUS_RESOURCES_PATH",
        value_delimiter = ','
    )]
    pub resources_path: Vec<PathBuf>,
    /// Dapr Configuration file (tracing, features); read when given.
    #[arg(long = "config", env = "SIDEBUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Largest number of deliveries to the app in flight at once, across all
    /// subscriptions; -1 = unlimited.
    #[arg(long = "app-max-concurrency", env = "SIDEBUS_APP_MAX_CONCURRENCY", default_value_t = -1, allow_negative_numbers = true)]
    pub app_max_concurrency: i64,
    /// Addresses the APIs listen on, comma separated (loopback by default).
    #[arg(
        long = "dapr-listen-addresses",
        env = "SIDEBUS_LISTEN_ADDRESSES",
        value_delimiter = ',',
        default_value = "127.0.0.1"
    )]
    pub listen_addresses: Vec<String>,
    /// Addresses the admin port listens on (Kubernetes probes need the pod
    /// address, e.g. `0.0.0.0`, while the APIs stay on loopback).
    #[arg(
        long = "admin-listen-addresses",
        env = "SIDEBUS_ADMIN_LISTEN_ADDRESSES",
        value_delimiter = ',',
        default_value = "127.0.0.1"
    )]
    pub admin_listen_addresses: Vec<String>,
    /// Log verbosity.
    #[arg(
        long = "log-level",
        env = "SIDEBUS_LOG_LEVEL",
        value_enum,
        default_value = "info"
    )]
    pub log_level: LogLevel,
    /// Log as JSON lines.
    #[arg(long = "log-as-json", env = "SIDEBUS_LOG_AS_JSON")]
    pub log_as_json: bool,
    /// Seconds to finish in-flight work on shutdown.
    #[arg(
        long = "dapr-graceful-shutdown-seconds",
        env = "SIDEBUS_GRACEFUL_SHUTDOWN_SECONDS",
        default_value_t = 5
    )]
    pub graceful_shutdown_seconds: u64,
    /// Largest request body, e.g. `4Mi`, `512Ki`, `1048576`.
    #[arg(long = "max-body-size", env = "SIDEBUS_MAX_BODY_SIZE", default_value = "4Mi", value_parser = parse_size)]
    pub max_body_size: usize,
    /// Folder of the embedded broker's data.
    #[arg(
        long = "data-dir",
        env = "SIDEBUS_DATA_DIR",
        default_value = ".sidebus-data"
    )]
    pub data_dir: PathBuf,
    /// API token every API call must carry (`dapr-api-token`); daprd's env name.
    #[arg(long = "api-token", env = "DAPR_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<Secret>,
    /// Token sent to the app with every delivery; daprd's env name.
    #[arg(long = "app-api-token", env = "APP_API_TOKEN", hide_env_values = true)]
    pub app_api_token: Option<Secret>,
}

impl Default for Settings {
    /// The documented defaults: an empty command line parsed with every `env`
    /// binding removed, so a `DAPR_API_TOKEN` or `SIDEBUS_*` variable in the
    /// process environment never leaks into code (or tests) that asks for
    /// the defaults. The real start-up parses with the environment through
    /// [`Cli`].
    fn default() -> Self {
        use clap::FromArgMatches;
        let cmd = Settings::augment_args(clap::Command::new("sidebus")).mut_args(|a| a.env(None));
        // Every flag is optional or has a default, so an empty command line
        // always parses; the unit tests below prove it.
        match cmd
            .try_get_matches_from(["sidebus"])
            .and_then(|m| Settings::from_arg_matches(&m))
        {
            Ok(settings) => settings,
            Err(err) => unreachable!("default flags must parse: {err}"),
        }
    }
}

/// Parses sizes as daprd does: plain bytes or a `Ki`/`Mi`/`Gi` (or `K`/`M`/`G`,
/// `KB`/`MB`/`GB`) suffix.
pub fn parse_size(raw: &str) -> Result<usize, String> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{raw}' is not a size (e.g. 4Mi, 512Ki, 1048576)"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "K" | "Ki" | "KB" | "KiB" | "k" => 1 << 10,
        "M" | "Mi" | "MB" | "MiB" => 1 << 20,
        "G" | "Gi" | "GB" | "GiB" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' in '{raw}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size '{raw}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4Mi").unwrap(), 4 << 20);
        assert_eq!(parse_size("512Ki").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("4Xi").is_err());
        assert!(parse_size("Mi").is_err());
    }

    #[test]
    fn run_is_the_default_subcommand() {
        let cli = Cli::try_parse_from(["sidebus", "--app-port", "6002", "--app-id", "a"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.app_port, Some(6002));
        assert_eq!(cli.run.app_id, "a");
        let cli = Cli::try_parse_from([
            "sidebus",
            "run",
            "--components-path",
            "x",
            "--resources-path",
            "y",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Run(s)) => assert_eq!(s.resources_path.len(), 2),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults_are_loopback_and_daprd_ports() {
        let s = Settings::default();
        assert_eq!(s.http_port, 3500);
        assert_eq!(s.grpc_port, 50001);
        assert_eq!(s.listen_addresses, vec!["127.0.0.1".to_string()]);
        assert_eq!(s.max_body_size, 4 << 20);
        assert_eq!(s.app_max_concurrency, -1);
    }

    /// Every field of `Settings::default()` is the declared default: the
    /// same as parsing an empty command line when no variable is set.
    #[test]
    fn default_is_every_declared_default() {
        let s = Settings::default();
        assert_eq!(s.app_id, "sidebus");
        assert_eq!(s.app_port, None);
        assert_eq!(s.app_protocol, AppProtocol::Http);
        assert_eq!(s.app_channel_address, "127.0.0.1");
        assert_eq!(s.http_port, 3500);
        assert_eq!(s.grpc_port, 50001);
        assert_eq!(s.metrics_port, 9090);
        assert!(s.resources_path.is_empty());
        assert_eq!(s.config, None);
        assert_eq!(s.app_max_concurrency, -1);
        assert_eq!(s.listen_addresses, vec!["127.0.0.1".to_string()]);
        assert_eq!(s.admin_listen_addresses, vec!["127.0.0.1".to_string()]);
        assert_eq!(s.log_level, LogLevel::Info);
        assert!(!s.log_as_json);
        assert_eq!(s.graceful_shutdown_seconds, 5);
        assert_eq!(s.max_body_size, 4 << 20);
        assert_eq!(s.data_dir, PathBuf::from(".sidebus-data"));
        assert_eq!(s.api_token, None);
        assert_eq!(s.app_api_token, None);
    }

    /// A token (or any `SIDEBUS_*` value) in the process environment does
    /// not change the defaults, while the real command line still reads it.
    #[test]
    fn default_ignores_the_environment() {
        // Only this test in the crate sets these variables; other tests
        // read `Settings::default()`, which no longer looks at them.
        std::env::set_var("DAPR_API_TOKEN", "from-the-shell");
        std::env::set_var("APP_API_TOKEN", "from-the-shell");
        std::env::set_var("SIDEBUS_HTTP_PORT", "4711");
        let defaults = Settings::default();
        let parsed = Cli::try_parse_from(["sidebus"]).map(|c| c.run);
        std::env::remove_var("DAPR_API_TOKEN");
        std::env::remove_var("APP_API_TOKEN");
        std::env::remove_var("SIDEBUS_HTTP_PORT");
        assert_eq!(defaults.api_token, None);
        assert_eq!(defaults.app_api_token, None);
        assert_eq!(defaults.http_port, 3500);
        let parsed = parsed.expect("the environment's values parse");
        assert_eq!(
            parsed.api_token.as_ref().map(|t| t.expose()),
            Some("from-the-shell")
        );
        assert_eq!(parsed.http_port, 4711);
    }
}
