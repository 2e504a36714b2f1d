//! `sluice validate` and `sluice plan`: load Rollout files through [`sluice_core::validate`], print
//! problems as `<file>: <path>: <message>`, or render [`sluice_core::plan`].

use std::process::ExitCode;

/// What `sluice plan -o` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Table,
    #[value(name = "virtualservice", alias = "vs")]
    VirtualService,
    /// Gateway API HTTPRoutes (whatever router the Rollout declares: a preview of a move).
    #[value(name = "httproute")]
    HttpRoute,
    #[value(name = "grpcroute")]
    GrpcRoute,
    Json,
}

/// Problems go to stdout, one per line (`<file>: <path>: <message>`), for editors and CI logs.
pub fn validate(files: &[std::path::PathBuf]) -> ExitCode {
    match sluice_core::validate::load_files(files) {
        Ok(rollouts) => {
            eprintln!("ok: {} rollout(s) valid", rollouts.len());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            eprintln!(
                "{} problem(s) found",
                sluice_core::validate::count(&problems)
            );
            ExitCode::FAILURE
        }
    }
}

pub fn plan(file: &std::path::Path, output: Output) -> ExitCode {
    let rollouts = match sluice_core::validate::load_file(file) {
        Ok(r) => r,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            return ExitCode::FAILURE;
        }
    };
    let rendered: Result<String, String> = match output {
        Output::Table => Ok(rollouts
            .iter()
            .map(sluice_core::plan::table)
            .collect::<Vec<_>>()
            .join("\n")),
        Output::VirtualService => rollouts
            .iter()
            .map(sluice_k8s::istio::plan_yaml)
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.concat())
            .map_err(|e| e.to_string()),
        Output::HttpRoute | Output::GrpcRoute => {
            let kind = if matches!(output, Output::HttpRoute) {
                sluice_core::spec::RouteKind::Http
            } else {
                sluice_core::spec::RouteKind::Grpc
            };
            rollouts
                .iter()
                .map(|r| sluice_k8s::gateway_api::plan_yaml(r, kind))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.concat())
                .map_err(|e| e.to_string())
        }
        Output::Json => {
            let all: Vec<_> = rollouts.iter().map(sluice_k8s::istio::plan_json).collect();
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
