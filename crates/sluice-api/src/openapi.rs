//! The OpenAPI 3.0 document, generated from the route table ([`super::routes::routes`]) and
//! the schemars schemas of the request and response types. Nothing here is maintained by hand
//! except the per-operation response shapes, which `response_for` derives from the operation.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::routes::{Op, RouteDef, routes};
use super::{CommandAccepted, CommandRequest, ErrorBody, RolloutResponse};
use sluice_core::backend::{Change, EventRecord};
use sluice_core::spec::CheckResult;

pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let error = generator.subschema_for::<ErrorBody>().to_value();
    let mut paths = Map::new();
    for def in routes() {
        let entry = paths
            .entry(def.path.to_string())
            .or_insert_with(|| json!({}));
        if let Value::Object(m) = entry {
            m.insert(
                def.method.as_str().to_ascii_lowercase(),
                operation(&def, &mut generator, &error),
            );
        }
    }
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "sluice API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Progressive delivery rollouts: read their state, analysis and events; \
                            promote, pause, resume, abort, retry or undo them. Mutating calls need \
                            `Authorization: Bearer <token>`. Errors are `ErrorBody`."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

fn operation(def: &RouteDef, g: &mut SchemaGenerator, error: &Value) -> Value {
    let mut op = json!({
        "operationId": def.operation_id,
        "summary": def.summary,
        "tags": [tag(def.op)],
    });
    let params: Vec<Value> = path_params(def.path)
        .into_iter()
        .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    let err = |desc: &str| json!({"description": desc, "content": {"application/json": {"schema": error}}});
    let mut responses = Map::new();
    let (status, desc, content) = response_for(def.op, g);
    responses.insert(
        status.to_string(),
        json!({"description": desc, "content": content}),
    );
    if def.path.contains("{name}") {
        responses.insert("400".into(), err("malformed namespace, name or body"));
        responses.insert("404".into(), err("no such rollout"));
    }
    if def.auth {
        op["security"] = json!([{"bearer": []}]);
        op["requestBody"] = json!({
            "required": false,
            "content": {"application/json": {"schema": schema::<CommandRequest>(g)}}
        });
        responses.insert(
            "401".into(),
            err("missing or malformed Authorization header"),
        );
        responses.insert(
            "403".into(),
            err("wrong token, or no token configured on the server"),
        );
        responses.insert(
            "409".into(),
            err("the command does not apply in the rollout's phase"),
        );
    }
    if matches!(def.op, Op::Readyz) {
        responses.insert(
            "503".into(),
            json!({"description": "the backend does not answer"}),
        );
    } else if def.path.starts_with("/api/v1/") {
        responses.insert("503".into(), err("the backend does not answer"));
    }
    if def.path.starts_with("/api/") {
        responses.insert(
            "421".into(),
            err("the Host header names no allowed host (DNS rebinding protection; --allowed-host)"),
        );
    }
    if def.auth {
        responses.insert(
            "413".into(),
            json!({"description": format!("body over {} bytes", crate::server::MAX_BODY_BYTES)}),
        );
    }
    op["responses"] = Value::Object(responses);
    op
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

/// Success status, description and content of each operation.
fn response_for(op: Op, g: &mut SchemaGenerator) -> (u16, &'static str, Value) {
    let json_of = |s: Value| json!({"application/json": {"schema": s}});
    let text = json!({"text/plain": {"schema": {"type": "string"}}});
    match op {
        Op::ListRollouts => (200, "rollouts", json_of(schema::<Vec<RolloutResponse>>(g))),
        Op::GetRollout => (200, "the rollout", json_of(schema::<RolloutResponse>(g))),
        Op::GetAnalysis => (200, "checks", json_of(schema::<Vec<CheckResult>>(g))),
        Op::GetEvents => (200, "events", json_of(schema::<Vec<EventRecord>>(g))),
        Op::ListProblems => (
            200,
            "problems of files that could not be loaded",
            json_of(schema::<Vec<sluice_core::backend::FileProblem>>(g)),
        ),
        Op::Command(_) => (
            202,
            "queued; takes effect on the next tick",
            json_of(schema::<CommandAccepted>(g)),
        ),
        Op::EventStream => (
            200,
            "`event: change` frames whose data is a Change; `event: lagged` before a disconnect",
            json!({"text/event-stream": {"schema": schema::<Change>(g)}}),
        ),
        Op::OpenApi => (
            200,
            "OpenAPI 3.0 document",
            json_of(json!({"type": "object"})),
        ),
        Op::Healthz | Op::Readyz => (200, "ok", text),
        Op::Metrics => (200, "Prometheus text exposition", text),
    }
}

fn tag(op: Op) -> &'static str {
    match op {
        Op::ListRollouts | Op::GetRollout | Op::GetAnalysis | Op::GetEvents => "rollouts",
        Op::ListProblems => "rollouts",
        Op::Command(_) => "commands",
        Op::EventStream => "live",
        Op::OpenApi | Op::Healthz | Op::Readyz | Op::Metrics => "server",
    }
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}
