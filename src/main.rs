//! The `sluice` command line.

mod cli;

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
    /// Write the Envoy bootstrap pointing Envoy at sluice's file-based xDS directory.
    EnvoyBootstrap(cli::envoy::BootstrapArgs),
    /// Run a demo backend (Bookinfo-reviews-like) that counts the requests it serves.
    DemoApp(cli::envoy::DemoAppArgs),
    /// Benchmarks against real processes.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Decision -> a real Envoy serving the new routes (p50/p99 over many swaps).
    RouteApply(cli::envoy::RouteApplyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match cli.command {
        Cmd::Crd => crd(),
        Cmd::EnvoyBootstrap(args) => cli::envoy::envoy_bootstrap(&args),
        Cmd::DemoApp(args) => block_on(cli::envoy::demo_app(args)),
        Cmd::Bench(BenchCmd::RouteApply(args)) => {
            block_on(async move { cli::envoy::bench_route_apply(&args).await })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn crd() -> anyhow::Result<()> {
    use kube::CustomResourceExt;
    print!("{}", serde_yaml::to_string(&sluice::spec::Rollout::crd())?);
    Ok(())
}
