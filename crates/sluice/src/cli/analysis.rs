//! CLI glue for analysis: `analyze FILE`, `backtest FILE` and `bench judge` (logic in
//! `sluice_analysis::report`, `sluice_analysis::backtest` and `sluice_lab::bench::judge`).

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

#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// A file of Rollouts (templates next to it are resolved, as `sluice validate` does).
    pub file: PathBuf,
    /// The Prometheus that holds the window's history (every query goes there).
    #[arg(long)]
    pub prometheus: String,
    /// Start of the window: the new version is deployed then (RFC 3339, e.g.
    /// `2026-11-30T14:00:00Z`, or Unix seconds).
    #[arg(long, value_parser = parse_time)]
    pub from: chrono::DateTime<chrono::Utc>,
    /// End of the window: a rollout still undecided then is reported as such.
    #[arg(long, value_parser = parse_time)]
    pub to: chrono::DateTime<chrono::Utc>,
    /// Scrape interval of that Prometheus (sets the judge's step and rate windows).
    #[arg(long, default_value = "15s", value_parser = sluice_core::duration::parse)]
    pub scrape_interval: Duration,
    /// `table` (default) or `json` (a list, one object per rollout).
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: BacktestOutput,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BacktestOutput {
    Table,
    Json,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(secs) = s.parse::<i64>() {
        return chrono::DateTime::from_timestamp(secs, 0).ok_or_else(|| format!("{s}: not a time"));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{s}: not RFC 3339 (e.g. 2026-11-30T14:00:00Z) nor Unix seconds: {e}"))
}

/// Exit 0 when the replay ran (whatever it decided; the output says what), 2 on a bad file,
/// window or address.
pub fn backtest(args: BacktestArgs) -> ExitCode {
    let rollouts = match sluice_core::validate::load_resolved(std::slice::from_ref(&args.file)) {
        Ok(r) => r,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            return ExitCode::from(2);
        }
    };
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
    let analyzer = match sluice_analysis::PrometheusAnalyzer::new(
        sluice_analysis::AddressPolicy::Override(args.prometheus.clone()),
    ) {
        Ok(a) => a.with_options(sluice_analysis::RunOptions {
            scrape_interval: args.scrape_interval,
        }),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let analyzer: std::sync::Arc<dyn sluice_core::exec::Analyzer> = std::sync::Arc::new(analyzer);
    let mut all = Vec::new();
    for (_, r) in &rollouts {
        match rt.block_on(sluice_analysis::backtest::run(
            r,
            analyzer.clone(),
            args.from,
            args.to,
        )) {
            Ok(b) => all.push(b),
            Err(e) => {
                eprintln!("error: {}: {e}", r.key());
                return ExitCode::from(2);
            }
        }
    }
    match args.output {
        BacktestOutput::Table => {
            for b in &all {
                print!("{}", sluice_analysis::backtest::table(b));
            }
        }
        BacktestOutput::Json => match serde_json::to_string_pretty(&all) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    }
    ExitCode::SUCCESS
}
