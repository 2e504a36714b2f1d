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
        /// (a YAML stream); json: steps, traffic plans and VirtualServices.
        #[arg(short, long, value_enum, default_value_t = PlanOutput::Table)]
        output: PlanOutput,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PlanOutput {
    Table,
    #[value(name = "virtualservice", alias = "vs")]
    VirtualService,
    Json,
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
        Cmd::Validate { files } => validate(&files),
        Cmd::Plan { file, output } => plan(&file, output),
    }
}

/// Problems go to stdout, one per line (`<file>: <path>: <message>`), for editors and CI logs.
fn validate(files: &[std::path::PathBuf]) -> ExitCode {
    match sluice::validate::load_files(files) {
        Ok(rollouts) => {
            eprintln!("ok: {} rollout(s) valid", rollouts.len());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            eprintln!("{} problem(s) found", problems.len());
            ExitCode::FAILURE
        }
    }
}

fn plan(file: &std::path::Path, output: PlanOutput) -> ExitCode {
    let rollouts = match sluice::validate::load_file(file) {
        Ok(r) => r,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            return ExitCode::FAILURE;
        }
    };
    let rendered: Result<String, String> = match output {
        PlanOutput::Table => Ok(rollouts
            .iter()
            .map(sluice::plan::table)
            .collect::<Vec<_>>()
            .join("\n")),
        PlanOutput::VirtualService => rollouts
            .iter()
            .map(sluice::plan::virtual_services)
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.concat())
            .map_err(|e| e.to_string()),
        PlanOutput::Json => {
            let all: Vec<_> = rollouts.iter().map(sluice::plan::json).collect();
            serde_json::to_string_pretty(&all)
                .map(|s| s + "\n")
                .map_err(|e| e.to_string())
        }
    };
    match rendered {
        Ok(s) => {
            print!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
