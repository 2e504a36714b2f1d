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
    /// Run every metric of the Rollouts in FILE once, now, and print queries, values, thresholds
    /// and verdicts. Exit 0 when every check passed, 1 otherwise, 2 on a bad file.
    Analyze {
        file: std::path::PathBuf,
        /// Prometheus to ask instead of each rollout's provider address.
        #[arg(long)]
        prometheus: Option<String>,
        /// Scrape interval of that Prometheus (sets the judge's step and rate windows).
        #[arg(long, default_value = "15s", value_parser = parse_duration)]
        scrape_interval: std::time::Duration,
    },
    /// Benchmarks and simulations.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Simulate the error-rate judges: false positives on A/A traffic, requests to detect 1% → 2%.
    Judge {
        #[arg(long, default_value_t = 1000)]
        runs: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Allowed relative degradation of the error rate (0.1 = 10% worse is tolerated).
        #[arg(long, default_value_t = 0.1)]
        margin: f64,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    sluice::duration::parse(s)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Cmd::Analyze {
            file,
            prometheus,
            scrape_interval,
        } => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut out = std::io::stdout().lock();
            match rt.block_on(sluice::analysis::cli::analyze(
                &file,
                prometheus,
                scrape_interval,
                &mut out,
            )) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Bench {
            what: BenchCmd::Judge { runs, seed, margin },
        } => match sluice::analysis::cli::bench_judge(
            runs,
            seed,
            margin,
            &mut std::io::stdout().lock(),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
