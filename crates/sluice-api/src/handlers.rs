//! Request handlers: validate, ask the backend, answer JSON.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::routes::{Op, RouteDef};
use super::{ApiError, ApiState, auth};
use sluice_core::backend::{EventRecord, RolloutView};
use sluice_core::engine::Command;
use sluice_core::spec::CheckResult;

/// The handler of one route of the table.
pub(crate) fn method_router(def: &RouteDef) -> MethodRouter<ApiState> {
    // Method from the table, so the router and the OpenAPI document agree by construction.
    let filter = MethodFilter::try_from(def.method.clone()).unwrap_or(MethodFilter::GET);
    match def.op {
        Op::ListRollouts => on(filter, list),
        Op::GetRollout => on(filter, get_one),
        Op::GetAnalysis => on(filter, analysis),
        Op::GetEvents => on(filter, events),
        Op::ListProblems => on(filter, problems),
        Op::Command(cmd) => on(
            filter,
            move |st: State<ApiState>,
                  headers: HeaderMap,
                  path: Result<Path<(String, String)>, PathRejection>,
                  body: Bytes| command(st, headers, path, body, cmd),
        ),
        Op::EventStream => on(filter, super::sse::stream),
        Op::OpenApi => on(filter, openapi),
        Op::Healthz => on(filter, || async { "ok\n" }),
        Op::Readyz => on(filter, readyz),
        Op::Metrics => on(filter, metrics),
    }
}

/// Optional body of a command. An empty body is the same as `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// Why, for the server log (e.g. "CI run 1234 checks passed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Answer of an accepted command (202): it takes effect on the rollout's next tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandAccepted {
    pub namespace: String,
    pub name: String,
    pub command: String,
    pub message: String,
}

/// A rollout as the API answers it: the backend's view plus which commands apply now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RolloutResponse {
    #[serde(flatten)]
    pub view: RolloutView,
    /// Every command, whether it applies in the current state and, if not, why (the engine's
    /// own `command_allowed`, so the UI never guesses).
    pub commands: Vec<CommandState>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandState {
    /// `promote`, `pause`, `resume`, `abort`, `retry` or `undo`.
    pub command: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<RolloutView> for RolloutResponse {
    /// Every rollout the API answers goes through here: credentials in URLs are masked.
    fn from(mut view: RolloutView) -> Self {
        view.spec = view.spec.redacted();
        let commands = Command::ALL
            .into_iter()
            .map(|c| {
                let verdict = sluice_core::engine::command_allowed(&view.status, c);
                CommandState {
                    command: c.as_str().to_string(),
                    allowed: verdict.is_ok(),
                    reason: verdict.err().map(|r| r.to_string()),
                }
            })
            .collect();
        RolloutResponse { view, commands }
    }
}

async fn problems(
    State(st): State<ApiState>,
) -> Result<Json<Vec<sluice_core::backend::FileProblem>>, ApiError> {
    Ok(Json(st.backend.problems().await?))
}

async fn list(State(st): State<ApiState>) -> Result<Json<Vec<RolloutResponse>>, ApiError> {
    let views = st.backend.list().await?;
    Ok(Json(views.into_iter().map(RolloutResponse::from).collect()))
}

async fn get_one(
    State(st): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<RolloutResponse>, ApiError> {
    let (ns, name) = rollout_path(path)?;
    Ok(Json(st.backend.get(&ns, &name).await?.into()))
}

async fn analysis(
    State(st): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Vec<CheckResult>>, ApiError> {
    let (ns, name) = rollout_path(path)?;
    Ok(Json(st.backend.analysis(&ns, &name).await?))
}

async fn events(
    State(st): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Vec<EventRecord>>, ApiError> {
    let (ns, name) = rollout_path(path)?;
    Ok(Json(st.backend.events(&ns, &name).await?))
}

async fn command(
    State(st): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
    cmd: Command,
) -> Result<(StatusCode, Json<CommandAccepted>), ApiError> {
    // Authenticate before anything else: an unauthenticated caller learns nothing, not even
    // whether the rollout exists.
    auth::check(st.token.as_deref(), &headers)?;
    let (ns, name) = rollout_path(path)?;
    let req = parse_body(&body)?;
    st.backend.command(&ns, &name, cmd).await?;
    tracing::info!(
        rollout = %format!("{ns}/{name}"),
        command = cmd.as_str(),
        reason = req.reason.as_deref().unwrap_or(""),
        "command accepted"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(CommandAccepted {
            namespace: ns,
            name,
            command: cmd.as_str().to_string(),
            message: format!("{} queued; it takes effect on the next tick", cmd.as_str()),
        }),
    ))
}

async fn openapi() -> Json<serde_json::Value> {
    Json(super::openapi::document())
}

async fn readyz(State(st): State<ApiState>) -> Response {
    match st.backend.list().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "backend unavailable\n").into_response()
        }
    }
}

async fn metrics(State(st): State<ApiState>) -> Response {
    let body = match &st.metrics {
        Some(render) => render(),
        None => "# no metrics registry is configured in this server\n".to_string(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see /api/openapi.json".into())
}

fn parse_body(body: &[u8]) -> Result<CommandRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CommandRequest::default());
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        ApiError::BadRequest {
            message: format!("invalid request body: {}", e.inner()),
            field,
        }
    })
}

/// Namespace and name from the path, checked as Kubernetes names (DNS-1123), so a typo is a
/// 400 that says which part is wrong and a well-formed unknown name is a 404.
fn rollout_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    let Path((ns, name)) =
        path.map_err(|e| ApiError::bad_request(format!("invalid path: {e}"), None))?;
    check_name(&ns, 63, "namespace")?;
    check_name(&name, 253, "name")?;
    Ok((ns, name))
}

fn check_name(value: &str, max: usize, field: &str) -> Result<(), ApiError> {
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ok_ends = value
        .bytes()
        .next()
        .zip(value.bytes().last())
        .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
    if value.len() <= max && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            format!(
                "invalid {field} {value:?}: expected at most {max} lowercase letters, digits, \
                 '-' or '.', starting and ending with a letter or digit"
            ),
            Some(field),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["default", "a", "web-1", "a.b"] {
            assert!(check_name(ok, 63, "name").is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a b", "ä", &"x".repeat(64)] {
            assert!(check_name(bad, 63, "name").is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_body(b"").unwrap(), CommandRequest::default());
        assert_eq!(parse_body(b" \n").unwrap(), CommandRequest::default());
        assert_eq!(
            parse_body(br#"{"reason":"ci"}"#).unwrap().reason.as_deref(),
            Some("ci")
        );
        let Err(ApiError::BadRequest { field, .. }) = parse_body(br#"{"reason": 3}"#) else {
            panic!("expected 400")
        };
        assert_eq!(field.as_deref(), Some("reason"));
        assert!(parse_body(b"{not json").is_err());
        assert!(parse_body(br#"{"reasn":"x"}"#).is_err());
    }
}
