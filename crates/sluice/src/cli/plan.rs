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
    // Templates resolved: a missing template or argument is a problem like any other.
    match sluice_core::validate::load_resolved(files) {
        Ok(rollouts) => {
            for (file, r) in &rollouts {
                for w in sluice_core::validate::warnings(r) {
                    eprintln!("warning: {}: {w}", file.display());
                }
            }
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

/// The user's route file for `--route`: one YAML document.
fn read_route(path: &std::path::Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let route: serde_json::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if !route.is_object() {
        return Err(format!("{}: not a route object", path.display()));
    }
    Ok(route)
}

pub fn plan(file: &std::path::Path, output: Output, route: Option<&std::path::Path>) -> ExitCode {
    let rollouts = match sluice_core::validate::load_resolved(&[file.to_path_buf()]) {
        Ok(r) => r.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            return ExitCode::FAILURE;
        }
    };
    // `load_file` ran the rules; the plan is those rules plus the conversion, so a file it
    // accepted always parses. Report it like any other problem should that ever change.
    let mut planned = Vec::new();
    for r in rollouts {
        match sluice_core::rollout_plan::RolloutPlan::try_from(&r.spec) {
            Ok(plan) => planned.push((r, plan)),
            Err(e) => {
                for p in &e.0 {
                    eprintln!("{}: {p}", file.display());
                }
                return ExitCode::FAILURE;
            }
        }
    }
    let rendered: Result<String, String> = match (route, output) {
        (Some(path), _) => read_route(path).and_then(|route| {
            planned
                .iter()
                .map(|(r, p)| sluice_k8s::owned_route::plan_diff(r, p, &route))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.concat())
        }),
        (None, output) => render(&planned, output),
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

fn render(
    planned: &[(
        sluice_core::spec::Rollout,
        sluice_core::rollout_plan::RolloutPlan,
    )],
    output: Output,
) -> Result<String, String> {
    match output {
        Output::Table => Ok(planned
            .iter()
            .map(|(r, p)| sluice_core::plan::table(r, p))
            .collect::<Vec<_>>()
            .join("\n")),
        Output::VirtualService => planned
            .iter()
            .map(|(r, p)| sluice_k8s::istio::plan_yaml(r, p))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.concat())
            .map_err(|e| e.to_string()),
        Output::HttpRoute | Output::GrpcRoute => {
            let kind = if matches!(output, Output::HttpRoute) {
                sluice_core::spec::RouteKind::Http
            } else {
                sluice_core::spec::RouteKind::Grpc
            };
            planned
                .iter()
                .map(|(r, p)| sluice_k8s::gateway_api::plan_yaml(r, p, kind))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.concat())
                .map_err(|e| e.to_string())
        }
        Output::Json => {
            let all: Vec<_> = planned
                .iter()
                .map(|(r, p)| sluice_k8s::istio::plan_json(r, p))
                .collect();
            serde_json::to_string_pretty(&all)
                .map(|s| s + "\n")
                .map_err(|e| e.to_string())
        }
    }
}
