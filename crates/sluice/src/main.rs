//! The `sluice` command line.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_core::engine::Command;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Progressive delivery: canary, dark launch and A/B rollouts gated on Prometheus",
    after_help = "Exit codes of status/wait/promote/...: 0 ok, 1 error, 2 rolled back, 3 aborted, \
                  4 timed out, 5 server unreachable / token refused / no such rollout, \
                  6 awaited state can no longer come, 7 command refused (409), 64 usage. \
                  See docs/ci.md."
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
    log_format: LogFormatArg,
    /// Global notification sinks (see docs/observability.md).
    #[command(flatten)]
    notify: cli::notify::NotifyArgs,
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
enum LogFormatArg {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, with the current span's fields.
    Json,
}

impl From<LogFormatArg> for sluice_telemetry::LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Human => Self::Human,
            LogFormatArg::Json => Self::Json,
        }
    }
}

/// Which CRD `sluice crd` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CrdKind {
    Rollout,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a CustomResourceDefinition generated from the Rust types: the Rollout's (default),
    /// `analysis-template` or `cluster-analysis-template` (deploy/crds/ holds each).
    Crd {
        #[arg(value_enum, default_value = "rollout")]
        kind: CrdKind,
    },
    /// Run every metric of the Rollouts in FILE once, now, and print queries, values, thresholds
    /// and verdicts. Exit 0 when every check passed, 1 otherwise, 2 on a bad file.
    Analyze(cli::analysis::AnalyzeArgs),
    /// Replay a past window of Prometheus data through the Rollouts in FILE (same plan, engine
    /// and judges, simulated time) and print what sluice would have decided, and when.
    Backtest(cli::analysis::BacktestArgs),
    /// Show one rollout (NAME or NAMESPACE/NAME), or every rollout.
    Status(cli::control::StatusArgs),
    /// Wait until a rollout succeeds, pauses (e.g. at the manual gate) or is promoted.
    Wait(cli::control::WaitArgs),
    /// At the manual gate, promote; while progressing or paused, pass the current step now.
    Promote(cli::control::CommandArgs),
    /// Hold a rollout where it is.
    Pause(cli::control::CommandArgs),
    /// Continue a paused rollout.
    Resume(cli::control::CommandArgs),
    /// Roll back now: all traffic to stable.
    Abort(cli::control::CommandArgs),
    /// After a failure, run the same revision again from the first step.
    Retry(cli::control::CommandArgs),
    /// After a promotion, put the previous stable revision back.
    Undo(cli::control::CommandArgs),
    /// Run the Kubernetes controller (Rollouts drive Deployments and Istio VirtualServices).
    Controller(cli::kube::ControllerArgs),
    /// Run rollouts from a directory of files against a real Envoy (no Kubernetes).
    Standalone(cli::standalone::StandaloneArgs),
    /// The one-command demo: real Envoy + Prometheus + demo backends + sluice; a canary
    /// promoted, a dark launch, an A/B test with its verdict, a failing canary rolled back.
    Demo(cli::standalone::DemoArgs),
    /// Write the Envoy bootstrap pointing Envoy at sluice's file-based xDS directory.
    EnvoyBootstrap(cli::envoy::BootstrapArgs),
    /// Run a demo backend (Bookinfo-reviews-like) that counts the requests it serves.
    DemoApp(cli::envoy::DemoAppArgs),
    /// Benchmarks against real processes, and simulations.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Check Rollout files (every document, every problem); exit 1 when any is invalid.
    Validate {
        /// Files, or directories searched recursively for *.yaml / *.yml.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Show every step a Rollout will go through, before anything runs.
    Plan {
        file: std::path::PathBuf,
        /// table: readable steps; virtualservice: the exact Istio VirtualService of each step
        /// (a YAML stream); httproute / grpcroute: the Gateway API route of each step, for any
        /// Rollout; json: steps, traffic plans, VirtualServices, HTTPRoutes and GRPCRoutes.
        #[arg(short, long, value_enum, default_value_t = cli::plan::Output::Table)]
        output: cli::plan::Output,
        /// A route you own (VirtualService, HTTPRoute or GRPCRoute YAML) that the Rollout names
        /// in routing.istio.virtualServiceRef / routing.gatewayAPI.routeRef: print, for every
        /// step, the diff of what sluice would write into it (instead of `-o`).
        #[arg(long, value_name = "FILE")]
        route: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Decision -> a real Envoy serving the new routes (p50/p99 over many swaps).
    RouteApply(cli::envoy::RouteApplyArgs),
    /// Fault injected into a real canary -> rollback decision -> no request reaches it.
    Rollback(cli::standalone::RollbackArgs),
    /// Simulate the error-rate judges: false Fails on A/A traffic, requests to detect 1% → 2%.
    Judge(cli::analysis::BenchJudgeArgs),
    /// N rollouts progressing at once (real Envoy, Prometheus, `sluice standalone` as a child):
    /// memory, CPU, command → served, Prometheus queries/s, store growth, time to first step.
    Fleet(cli::standalone::FleetArgs),
    /// API requests/s, requests per reconcile and memory of N Rollouts, idle and progressing
    /// (the real controller against an in-memory Kubernetes API server).
    Kube(cli::kube::BenchKubeArgs),
}

fn main() -> ExitCode {
    // clap's own exit code for bad arguments (2) would collide with `wait`'s "rolled back".
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { cli::exit::USAGE } else { 0 });
        }
    };
    if let Err(e) = sluice_telemetry::logging::init(
        cli.log_format.into(),
        std::env::var("RUST_LOG").ok().as_deref(),
    ) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    // Two rustls back ends are compiled in (kube: ring, reqwest: aws-lc-rs); kube clients need
    // one chosen for the process (MACHINE_NOTES). Installed once, here; no library does it.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("error: a rustls crypto provider was already installed");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Cmd::Controller(args) => report(block_on(cli::kube::controller(args, &cli.notify))),
        Cmd::Crd { kind } => match sluice_core::yaml::to_string(&match kind {
            CrdKind::Rollout => sluice_core::crd::rollout_crd(),
            CrdKind::AnalysisTemplate => sluice_core::crd::analysis_template_crd(),
            CrdKind::ClusterAnalysisTemplate => sluice_core::crd::cluster_analysis_template_crd(),
        }) {
            Ok(y) => {
                print!("{y}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Status(a) => ExitCode::from(cli::control::status(a)),
        Cmd::Wait(a) => ExitCode::from(cli::control::wait(a)),
        Cmd::Promote(a) => ExitCode::from(cli::control::command(Command::Promote, a)),
        Cmd::Pause(a) => ExitCode::from(cli::control::command(Command::Pause, a)),
        Cmd::Resume(a) => ExitCode::from(cli::control::command(Command::Resume, a)),
        Cmd::Abort(a) => ExitCode::from(cli::control::command(Command::Abort, a)),
        Cmd::Retry(a) => ExitCode::from(cli::control::command(Command::Retry, a)),
        Cmd::Undo(a) => ExitCode::from(cli::control::command(Command::Undo, a)),
        Cmd::Validate { files } => cli::plan::validate(&files),
        Cmd::Plan {
            file,
            output,
            route,
        } => cli::plan::plan(&file, output, route.as_deref()),
        Cmd::Analyze(args) => cli::analysis::analyze(args),
        Cmd::Backtest(args) => cli::analysis::backtest(args),
        Cmd::Bench(BenchCmd::Judge(args)) => report(cli::analysis::bench_judge(&args)),
        Cmd::Standalone(args) => report(block_on(cli::standalone::standalone(args, &cli.notify))),
        Cmd::Demo(args) => report(block_on(cli::standalone::demo(args))),
        Cmd::EnvoyBootstrap(args) => report(cli::envoy::envoy_bootstrap(&args)),
        Cmd::DemoApp(args) => report(block_on(cli::envoy::demo_app(args))),
        Cmd::Bench(BenchCmd::RouteApply(args)) => report(block_on(async move {
            cli::envoy::bench_route_apply(&args).await
        })),
        Cmd::Bench(BenchCmd::Kube(args)) => report(block_on(cli::kube::bench_kube(args))),
        Cmd::Bench(BenchCmd::Rollback(args)) => {
            report(block_on(cli::standalone::bench_rollback(args)))
        }
        Cmd::Bench(BenchCmd::Fleet(args)) => report(block_on(cli::standalone::bench_fleet(args))),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
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
