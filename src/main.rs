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
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the Rollout CustomResourceDefinition generated from the Rust types.
    Crd,
    /// Run the Kubernetes controller (Rollouts drive Deployments and Istio VirtualServices).
    Controller(sluice::k8s::controller::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Controller(args) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            // TODO(lead): replace `Unwired` with the analysis and webhook executors.
            let unwired = std::sync::Arc::new(sluice::k8s::unwired::Unwired);
            let run = async {
                sluice::k8s::controller::run(
                    args.into_options(unwired.clone(), unwired),
                    Default::default(),
                )
                .await
            };
            match tokio::runtime::Runtime::new().map(|rt| rt.block_on(run)) {
                Ok(Ok(())) => ExitCode::SUCCESS,
                Ok(Err(e)) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    ExitCode::FAILURE
                }
            }
        }
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
