//! CLI glue for analysis: `analyze FILE` and `bench judge` (logic in `sluice_analysis::report` and `sluice_lab::bench::judge`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// A file of Rollouts (YAML, one or more documents).
    pub file: PathBuf,
    /// Prometheus to ask instead of each rollout's provider address.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Scrape interval of that Prometheus (sets the judge's step and rate windows).
    #[arg(long, default_value = "15s", value_parser = sluice_core::duration::parse)]
    pub scrape_interval: Duration,
}

/// Exit 0 when every check passed, 1 when any failed or was inconclusive, 2 on a bad file.
pub fn analyze(args: AnalyzeArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let run = sluice_analysis::report::analyze(
        &args.file,
        args.prometheus,
        args.scrape_interval,
        &mut out,
    );
    match rt.block_on(run) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchJudgeArgs {
    /// Simulated runs per scenario.
    #[arg(long, default_value_t = 1000)]
    pub runs: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Allowed relative degradation of the error rate (0.1 = 10% worse is tolerated).
    #[arg(long, default_value_t = 0.1)]
    pub margin: f64,
    /// The smallest degradation to catch: `2x` or `+0.5pp` (the spec's `compare.detect`).
    #[arg(long, default_value = "2x")]
    pub detect: String,
    /// 1 − the declared false-Fail rate.
    #[arg(long, default_value_t = 0.99)]
    pub confidence: f64,
    /// 1 − the declared false-Pass rate at `--detect`.
    #[arg(long, default_value_t = 0.95)]
    pub power: f64,
    /// One JSON object: `{"fixed_horizon_requests": N, "judges": [...]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn bench_judge(args: &BenchJudgeArgs) -> anyhow::Result<()> {
    sluice_lab::bench::judge::bench_judge(
        &sluice_lab::bench::judge::BenchArgs {
            runs: args.runs,
            seed: args.seed,
            margin: args.margin,
            confidence: args.confidence,
            power: args.power,
            detect: args.detect.clone(),
            json: args.json,
        },
        &mut std::io::stdout().lock(),
    )?;
    Ok(())
}
