//! The `sluice` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Progressive delivery: canary, dark launch and A/B rollouts gated on Prometheus"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Log format: `human` (default) or `json` (one object per line). Level via RUST_LOG.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "SLUICE_LOG_FORMAT"
    )]
    log_format: sluice::telemetry::LogFormat,
    /// Global notification sinks (see docs/observability.md).
    #[command(flatten)]
    notify: sluice::notify::NotifyArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the Rollout CustomResourceDefinition generated from the Rust types.
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = sluice::telemetry::logging::init(cli.log_format) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Cmd::Crd => {
            use kube::CustomResourceExt;
            match serde_yaml::to_string(&sluice::spec::Rollout::crd()) {
                Ok(y) => {
                    print!("{y}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
