//! The `sidebus` binary: parse flags, then run or validate.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sidebus::broker::registry::Registry;
use sidebus::config::{validate, Cli, Command};
use sidebus::runtime::start;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli.command {
        Some(Command::Validate(args)) => return validate(args),
        Some(Command::Run(settings)) => settings,
        None => cli.run,
    };
    sidebus::telemetry::init_logging(settings.log_level, settings.log_as_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("sidebus: cannot start the async runtime: {err}");
            return ExitCode::from(start::EXIT_FAILURE);
        }
    };
    ExitCode::from(runtime.block_on(sidebus::sidecar::run(settings)))
}

fn validate(args: sidebus::config::flags::ValidateArgs) -> ExitCode {
    sidebus::telemetry::init_logging(sidebus::config::flags::LogLevel::Warn, false);
    let report = validate::validate(&args.resources_path, &args.app_id, &Registry::builtin());
    // The listing goes to stdout when everything is fine, to stderr otherwise,
    // so `sidebus validate ... 2>errors.txt` keeps only the problems.
    let written = if report.errors.is_empty() {
        report.write_to(&mut std::io::stdout())
    } else {
        report.write_to(&mut std::io::stderr())
    };
    if let Err(err) = written {
        eprintln!("sidebus validate: cannot write the report: {err}");
    }
    ExitCode::from(report.exit_code())
}
