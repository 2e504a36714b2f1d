//! The route table: the router is built from it and the OpenAPI document is generated from
//! it, so the two cannot drift apart.

use axum::http::Method;

use sluice_core::engine::Command;

/// What a route does; `handlers::method_router` maps each to its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ListRollouts,
    GetRollout,
    GetAnalysis,
    GetEvents,
    ListProblems,
    Command(Command),
    EventStream,
    OpenApi,
    Healthz,
    Readyz,
    Metrics,
}

#[derive(Clone, Debug)]
pub struct RouteDef {
    pub method: Method,
    /// axum path syntax, which is also OpenAPI's: `/api/v1/rollouts/{namespace}/{name}`.
    pub path: &'static str,
    pub op: Op,
    pub operation_id: String,
    pub summary: String,
    /// Needs `Authorization: Bearer <token>`.
    pub auth: bool,
}

const ROLLOUT: &str = "/api/v1/rollouts/{namespace}/{name}";

fn def(method: Method, path: &'static str, op: Op, id: &str, summary: &str) -> RouteDef {
    RouteDef {
        method,
        path,
        op,
        operation_id: id.to_string(),
        summary: summary.to_string(),
        auth: false,
    }
}

/// Every route of the HTTP API (the UI's static files are not part of the API).
pub fn routes() -> Vec<RouteDef> {
    let mut out = vec![
        def(
            Method::GET,
            "/api/v1/rollouts",
            Op::ListRollouts,
            "listRollouts",
            "Every rollout with its spec, status, applied traffic and stage labels",
        ),
        def(
            Method::GET,
            ROLLOUT,
            Op::GetRollout,
            "getRollout",
            "One rollout: spec, phase, step, weights, revisions, traffic, stages",
        ),
        def(
            Method::GET,
            "/api/v1/rollouts/{namespace}/{name}/analysis",
            Op::GetAnalysis,
            "getAnalysis",
            "Every analysis check of the rollout, oldest first",
        ),
        def(
            Method::GET,
            "/api/v1/rollouts/{namespace}/{name}/events",
            Op::GetEvents,
            "getEvents",
            "The rollout's event history, oldest first",
        ),
        def(
            Method::GET,
            "/api/v1/problems",
            Op::ListProblems,
            "listProblems",
            "Rollout files that could not be loaded, every problem with its file, document, \
             field path and (for YAML syntax) line and column; their rollouts keep their last \
             good spec",
        ),
    ];
    for cmd in Command::ALL {
        out.push(RouteDef {
            method: Method::POST,
            path: command_path(cmd),
            op: Op::Command(cmd),
            operation_id: format!("{}Rollout", cmd.as_str()),
            summary: command_summary(cmd).to_string(),
            auth: true,
        });
    }
    out.extend([
        def(
            Method::GET,
            "/api/v1/events/stream",
            Op::EventStream,
            "streamEvents",
            "Server-Sent Events: one `change` event per rollout change; a client that falls \
             behind gets a `lagged` event and is disconnected (reconnect and refetch); 503 when \
             too many streams are open",
        ),
        def(
            Method::GET,
            "/api/openapi.json",
            Op::OpenApi,
            "openapi",
            "This document",
        ),
        def(
            Method::GET,
            "/healthz",
            Op::Healthz,
            "healthz",
            "Liveness: the process serves HTTP",
        ),
        def(
            Method::GET,
            "/readyz",
            Op::Readyz,
            "readyz",
            "Readiness: the rollout backend answers",
        ),
        def(
            Method::GET,
            "/metrics",
            Op::Metrics,
            "metrics",
            "Prometheus metrics (text exposition format)",
        ),
    ]);
    out
}

// Literal paths: axum needs `&'static str` and one route per verb keeps the table explicit.
fn command_path(cmd: Command) -> &'static str {
    match cmd {
        Command::Promote => "/api/v1/rollouts/{namespace}/{name}/promote",
        Command::Pause => "/api/v1/rollouts/{namespace}/{name}/pause",
        Command::Resume => "/api/v1/rollouts/{namespace}/{name}/resume",
        Command::Abort => "/api/v1/rollouts/{namespace}/{name}/abort",
        Command::Retry => "/api/v1/rollouts/{namespace}/{name}/retry",
        Command::Undo => "/api/v1/rollouts/{namespace}/{name}/undo",
    }
}

fn command_summary(cmd: Command) -> &'static str {
    match cmd {
        Command::Promote => {
            "At the manual gate, promote; while progressing or paused, pass the current step now"
        }
        Command::Pause => "Hold the rollout where it is (traffic stays)",
        Command::Resume => "Continue a paused rollout",
        Command::Abort => "Roll back now: all traffic to stable",
        Command::Retry => "After a failure, run the same revision again from the first step",
        Command::Undo => "After a promotion, put the previous stable revision back",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids_are_unique_and_commands_match_their_verb() {
        let rs = routes();
        let mut keys: Vec<_> = rs.iter().map(|r| (r.method.clone(), r.path)).collect();
        keys.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        keys.dedup();
        assert_eq!(keys.len(), rs.len());
        for r in &rs {
            if let Op::Command(c) = r.op {
                assert!(r.path.starts_with(ROLLOUT));
                assert!(r.path.ends_with(&format!("/{}", c.as_str())));
                assert!(r.auth);
            } else {
                assert!(!r.auth, "{} should not need a token", r.path);
            }
        }
    }
}
