//! The HTTP API through `oneshot` (no socket), over the in-memory backend running the real
//! engine.

// Helpers outside #[test] fns panic on purpose: the panic is the test's failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::Value;
use sluice_api::routes::{Op, routes};
use sluice_api::{ApiState, TOKEN_ENV, router};
use sluice_core::engine::command_allowed;
use sluice_core::spec::{Phase, Reason};
use sluice_testkit::memory::MemoryBackend;
use sluice_testkit::web::{TOKEN, backend, drive};
use tower::ServiceExt;

fn app(b: &Arc<MemoryBackend>) -> Router {
    router(ApiState::new(b.clone(), Some(TOKEN.to_string())))
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, json)
}

async fn post(app: &Router, verb: &str, body: &str) -> (StatusCode, Value) {
    let bearer = format!("Bearer {TOKEN}");
    call(
        app,
        Method::POST,
        &format!("/api/v1/rollouts/default/web/{verb}"),
        Some(&bearer),
        body,
    )
    .await
}

/// Drive `default/web` to the manual promotion gate.
async fn at_gate(b: &Arc<MemoryBackend>) -> DateTime<Utc> {
    let mut now = Utc::now();
    b.deploy("default", "web", "v2");
    drive(b, &mut now, "default", "web", |s| {
        s.reason == Some(Reason::AwaitingPromotion)
    })
    .await;
    now
}

#[tokio::test]
async fn list_get_analysis_events() {
    let b = backend();
    at_gate(&b).await;
    let app = app(&b);

    let (st, list) = call(&app, Method::GET, "/api/v1/rollouts", None, "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list[0]["name"], "web");
    assert_eq!(list[0]["namespace"], "default");

    let (st, one) = call(&app, Method::GET, "/api/v1/rollouts/default/web", None, "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one["status"]["phase"], "Paused");
    assert_eq!(one["status"]["reason"], "awaitingPromotion");
    assert_eq!(one["status"]["canaryWeight"], 50);
    assert_eq!(
        one["stages"],
        serde_json::json!(["canary 10%", "canary 50%"])
    );
    assert_eq!(one["traffic"]["routes"][0]["destinations"][1]["weight"], 50);
    // Which commands apply, in the engine's words.
    let cmds = one["commands"].as_array().unwrap();
    let state = |c: &str| cmds.iter().find(|x| x["command"] == c).unwrap().clone();
    assert_eq!(cmds.len(), 6);
    assert_eq!(state("promote")["allowed"], true);
    assert_eq!(state("abort")["allowed"], true);
    assert_eq!(state("retry")["allowed"], false);
    assert!(
        state("retry")["reason"]
            .as_str()
            .unwrap()
            .contains("cannot retry")
    );

    let (st, checks) = call(
        &app,
        Method::GET,
        "/api/v1/rollouts/default/web/analysis",
        None,
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let checks = checks.as_array().unwrap();
    // Two stages, one passing analysis each, two metrics per analysis.
    assert_eq!(checks.len(), 4, "{checks:?}");
    assert!(
        checks
            .iter()
            .all(|c| c["verdict"] == "Pass" && c["value"].is_number())
    );
    assert!(
        checks
            .iter()
            .any(|c| c["metric"] == "success-rate" && c["min"] == 99.0)
    );

    let (st, events) = call(
        &app,
        Method::GET,
        "/api/v1/rollouts/default/web/events",
        None,
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let reasons: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"StepStarted"), "{reasons:?}");
    assert_eq!(reasons.last(), Some(&"Paused"));
}

#[tokio::test]
async fn every_verb_takes_effect() {
    let b = backend();
    let app = app(&b);
    let mut now = Utc::now();
    b.deploy("default", "web", "v2");
    drive(&b, &mut now, "default", "web", |s| {
        s.phase == Phase::Progressing
    })
    .await;

    let (st, body) = post(&app, "pause", "").await;
    assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["command"], "pause");
    let s = drive(&b, &mut now, "default", "web", |s| s.phase == Phase::Paused).await;
    assert_eq!(s.reason, Some(Reason::PausedByUser));

    let (st, _) = post(&app, "resume", r#"{"reason":"looked fine"}"#).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    drive(&b, &mut now, "default", "web", |s| {
        s.phase == Phase::Progressing
    })
    .await;

    drive(&b, &mut now, "default", "web", |s| {
        s.reason == Some(Reason::AwaitingPromotion)
    })
    .await;
    let (st, _) = post(&app, "promote", "{}").await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let s = drive(&b, &mut now, "default", "web", |s| {
        s.phase == Phase::Succeeded
    })
    .await;
    assert_eq!(s.stable_revision.as_deref(), Some("v2"));

    let (st, _) = post(&app, "undo", "").await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let s = drive(&b, &mut now, "default", "web", |s| s.phase == Phase::Failed).await;
    assert_eq!(s.reason, Some(Reason::Undone));
    assert_eq!(s.stable_revision.as_deref(), Some("v1"));

    let (st, _) = post(&app, "retry", "").await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let s = drive(&b, &mut now, "default", "web", |s| {
        s.phase == Phase::Progressing
    })
    .await;
    assert_eq!(s.canary_revision.as_deref(), Some("v2"));

    let (st, _) = post(&app, "abort", "").await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let s = drive(&b, &mut now, "default", "web", |s| s.phase == Phase::Failed).await;
    assert_eq!(s.reason, Some(Reason::Aborted));
    assert_eq!(s.canary_weight, 0);
}

/// At the manual gate nothing changes by itself, and promote/pause/abort would all apply: any
/// command that slipped through would show after the next tick.
#[tokio::test]
async fn auth_failures_change_nothing() {
    let b = backend();
    let mut now = at_gate(&b).await;
    let before = b.status("default", "web").unwrap();
    let events_before = b.events_len("default", "web");

    let no_token = router(ApiState::new(b.clone(), None));
    let app = app(&b);
    for verb in ["promote", "pause", "resume", "abort", "retry", "undo"] {
        let uri = format!("/api/v1/rollouts/default/web/{verb}");
        let (st, body) = call(&app, Method::POST, &uri, None, "").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{verb}: {body}");
        assert_eq!(body["error"], "unauthorized");
        let (st, _) = call(&app, Method::POST, &uri, Some("Bearer wrong"), "").await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{verb}");
        let (st, _) = call(
            &app,
            Method::POST,
            &uri,
            Some(&format!("Basic {TOKEN}")),
            "",
        )
        .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{verb}");
        let (st, _) = call(
            &app,
            Method::POST,
            &uri,
            Some(&format!("Bearer {TOKEN}x")),
            "",
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{verb}");
        // Secure by default: without a configured token even the right one is refused.
        let (st, body) = call(
            &no_token,
            Method::POST,
            &uri,
            Some(&format!("Bearer {TOKEN}")),
            "",
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{verb}");
        assert!(
            body["message"].as_str().unwrap().contains(TOKEN_ENV),
            "{body}"
        );
    }
    for _ in 0..3 {
        now += chrono::Duration::seconds(1);
        b.tick_all(now).await;
    }
    assert_eq!(b.status("default", "web").unwrap(), before);
    assert_eq!(b.events_len("default", "web"), events_before);
}

#[tokio::test]
async fn unknown_and_malformed_names() {
    let b = backend();
    let app = app(&b);
    let (st, body) = call(&app, Method::GET, "/api/v1/rollouts/default/nope", None, "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("default/nope"));
    for path in ["analysis", "events"] {
        let (st, _) = call(
            &app,
            Method::GET,
            &format!("/api/v1/rollouts/other/web/{path}"),
            None,
            "",
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    let (st, _) = post_to(&app, "/api/v1/rollouts/default/nope/promote", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, body) = call(
        &app,
        Method::GET,
        "/api/v1/rollouts/default/Bad_Name",
        None,
        "",
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "name");
    let (st, body) = post_to(&app, "/api/v1/rollouts/No%20Such/web/pause", "").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "namespace");

    let (st, body) = call(&app, Method::GET, "/api/v1/nothing-here", None, "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (st, _) = post_to(&app, "/api/v1/rollouts/default/web/explode", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

async fn post_to(app: &Router, uri: &str, body: &str) -> (StatusCode, Value) {
    call(
        app,
        Method::POST,
        uri,
        Some(&format!("Bearer {TOKEN}")),
        body,
    )
    .await
}

#[tokio::test]
async fn malformed_bodies_are_400_and_change_nothing() {
    let b = backend();
    let mut now = at_gate(&b).await;
    let before = b.status("default", "web").unwrap();
    let app = app(&b);
    for (body, field) in [
        ("{not json", None),
        (r#"{"reason": 5}"#, Some("reason")),
        (r#"{"reason": "x", "force": true}"#, None),
        ("[1,2]", None),
    ] {
        let (st, resp) = post(&app, "promote", body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert_eq!(resp["error"], "bad_request");
        assert!(
            resp["message"]
                .as_str()
                .unwrap()
                .contains("invalid request body")
        );
        if let Some(f) = field {
            assert_eq!(resp["field"], f, "{body}");
        }
    }
    now += chrono::Duration::seconds(1);
    b.tick_all(now).await;
    assert_eq!(b.status("default", "web").unwrap(), before);
}

#[tokio::test]
async fn refused_commands_are_409() {
    let b = backend();
    let app = app(&b);
    let mut now = Utc::now();
    b.deploy("default", "web", "v2");
    drive(&b, &mut now, "default", "web", |s| {
        s.phase == Phase::Progressing
    })
    .await;
    for verb in ["retry", "undo", "resume"] {
        let (st, body) = post(&app, verb, "").await;
        assert_eq!(st, StatusCode::CONFLICT, "{verb}");
        assert_eq!(body["error"], "conflict");
        // The engine's own words, whatever they are.
        let status = b.status("default", "web").unwrap();
        let why = command_allowed(&status, verb.parse().unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(body["message"], why.as_str());
        assert!(why.contains(verb), "{why}");
    }
    assert_eq!(
        b.status("default", "web").unwrap().phase,
        Phase::Progressing
    );
}

/// Reads SSE frames until one contains `needle`, with a deadline.
async fn read_until(body: &mut Body, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(5);
    while !seen.contains(needle) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within 5s; got {seen:?}"));
        match frame {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    seen.push_str(&String::from_utf8_lossy(d));
                }
            }
            other => panic!("stream ended before {needle:?}: {other:?}; got {seen:?}"),
        }
    }
    seen
}

#[tokio::test]
async fn sse_emits_changes() {
    let b = backend();
    let resp = app(&b)
        .oneshot(
            Request::get("/api/v1/events/stream")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body();
    b.deploy("default", "web", "v2");
    b.tick_all(Utc::now()).await;
    let seen = read_until(&mut body, "\"phase\":\"Progressing\"").await;
    assert!(seen.contains("event: change"), "{seen}");
    assert!(seen.contains("\"name\":\"web\""), "{seen}");
}

#[tokio::test]
async fn sse_drops_a_lagging_client() {
    // Room for 2 changes only; the client reads nothing while 20+ changes happen.
    let b = MemoryBackend::new(2);
    b.insert(
        sluice_testkit::web::rollout("default", "web", true, "1s"),
        "v1",
    );
    let resp = app(&b)
        .oneshot(
            Request::get("/api/v1/events/stream")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut now = Utc::now();
    b.deploy("default", "web", "v2");
    drive(&b, &mut now, "default", "web", |s| {
        s.reason == Some(Reason::AwaitingPromotion)
    })
    .await;
    let seen = read_until(&mut body, "event: lagged").await;
    // The stream ends right after the lagged notice: the client is disconnected.
    let end = tokio::time::timeout(StdDuration::from_secs(5), body.frame())
        .await
        .unwrap();
    assert!(
        end.is_none(),
        "stream should end after lagged, got {end:?} ({seen})"
    );
}

#[tokio::test]
async fn sse_clients_are_bounded() {
    let b = backend();
    let app = router(ApiState::new(b.clone(), None).with_max_streams(1));
    let open = || {
        app.clone().oneshot(
            Request::get("/api/v1/events/stream")
                .body(Body::empty())
                .unwrap(),
        )
    };
    let first = open().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = open().await.unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The slot frees when the first client goes away.
    drop(first);
    assert_eq!(open().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn openapi_lists_every_route_and_every_route_is_served() {
    let b = backend();
    at_gate(&b).await;
    let app = app(&b);
    let (st, doc) = call(&app, Method::GET, "/api/openapi.json", None, "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    let table = routes();
    let mut documented = 0;
    for def in &table {
        let op = &doc["paths"][def.path][def.method.as_str().to_ascii_lowercase()];
        assert_eq!(
            op["operationId"],
            def.operation_id.as_str(),
            "{} {}",
            def.method,
            def.path
        );
        documented += 1;
        assert_eq!(op["security"].is_array(), def.auth, "{}", def.path);
        // The router answers the documented method and path (not the fallback).
        if def.op == Op::EventStream {
            continue; // endless body; covered by the SSE tests
        }
        let uri = def
            .path
            .replace("{namespace}", "default")
            .replace("{name}", "web");
        let auth = format!("Bearer {TOKEN}");
        let (st, body) = call(&app, def.method.clone(), &uri, Some(&auth), "").await;
        assert_ne!(st, StatusCode::NOT_FOUND, "{} {uri}: {body}", def.method);
        assert_ne!(st, StatusCode::METHOD_NOT_ALLOWED, "{} {uri}", def.method);
    }
    let ops: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        ops, documented,
        "the document has routes the table does not"
    );
    // Response types come from the code's schemas.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "RolloutResponse",
        "CommandState",
        "RolloutStatus",
        "CheckResult",
        "EventRecord",
        "ErrorBody",
        "TrafficPlan",
    ] {
        assert!(schemas.contains_key(name), "missing schema {name}");
    }
    assert!(schemas["RolloutStatus"]["properties"]["canaryWeight"].is_object());
}

#[tokio::test]
async fn health_ready_metrics() {
    let b = backend();
    let plain = app(&b);
    let (st, body) = call(&plain, Method::GET, "/healthz", None, "").await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, Some("ok\n")));
    let (st, _) = call(&plain, Method::GET, "/readyz", None, "").await;
    assert_eq!(st, StatusCode::OK);
    let with_metrics = router(
        ApiState::new(b.clone(), Some(TOKEN.into()))
            .with_metrics(Arc::new(|| "sluice_up 1\n# EOF\n".to_string())),
    );
    let (st, body) = call(&with_metrics, Method::GET, "/metrics", None, "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body.as_str(), Some("sluice_up 1\n# EOF\n"));
}

/// The telemetry registry plugs into `/metrics` as it is.
#[tokio::test]
async fn metrics_serves_the_telemetry_registry() {
    let b = backend();
    at_gate(&b).await;
    let metrics = Arc::new(sluice_telemetry::metrics::Metrics::new());
    let rollout = sluice_testkit::web::rollout("default", "web", true, "1s");
    metrics.observe_status(&rollout, &b.status("default", "web").unwrap());
    let app = router(ApiState::new(b.clone(), None).with_metrics(metrics.encoder()));
    let resp = app
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        sluice_telemetry::metrics::CONTENT_TYPE
    );
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("sluice_"), "{text}");
    assert!(text.contains("name=\"web\""), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[tokio::test]
async fn ui_is_served_without_external_resources() {
    let app = app(&backend());
    for (uri, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        assert!(
            resp.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(resp.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let text = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        // The SVG namespace is a name, not a resource; anything else would be a fetch.
        let text = text.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{uri} loads something external"
        );
    }
}

#[tokio::test]
async fn credentials_in_urls_never_leave_the_api() {
    let b = MemoryBackend::new(64);
    let mut r = sluice_testkit::web::rollout("shop", "checkout", false, "1s");
    r.spec.analysis.provider = Some(
        serde_json::from_value(serde_json::json!(
            {"prometheus": {"address": "http://reader:hunter2@prom:9090"}}
        ))
        .unwrap(),
    );
    b.insert(r, "v1");
    let app = app(&b);
    for uri in [
        "/api/v1/rollouts",
        "/api/v1/rollouts/shop/checkout",
        "/api/v1/rollouts/shop/checkout/events",
    ] {
        let (st, body) = call(&app, Method::GET, uri, None, "").await;
        assert_eq!(st, StatusCode::OK, "{uri}");
        let text = body.to_string();
        assert!(
            !text.contains("hunter2"),
            "{uri} leaked the password: {text}"
        );
        if uri.ends_with("checkout") {
            assert_eq!(
                body["spec"]["analysis"]["provider"]["prometheus"]["address"],
                "http://***@prom:9090"
            );
        }
    }
}
