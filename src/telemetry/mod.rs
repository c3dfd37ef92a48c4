//! Logging set-up: `tracing` to stderr, as text or JSON lines.

use tracing_subscriber::EnvFilter;

use crate::config::flags::LogLevel;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`
/// (useful to raise one module's verbosity while debugging).
pub fn init_logging(level: LogLevel, json: bool) {
    let default = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error | LogLevel::Fatal => "error",
    };
    // Dependencies are chatty at debug; keep them one step quieter. lapin logs
    // every message the broker returns (unroutable) with its whole payload as
    // a byte list — a log flood and a data leak; the publisher logs the
    // failure itself, without the payload.
    let directive = format!(
        "{default},hyper=info,h2=info,tower=info,lapin=warn,lapin::returned_messages=error,rdkafka=info"
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
