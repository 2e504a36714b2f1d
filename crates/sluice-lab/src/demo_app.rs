//! A Bookinfo-`reviews`-like demo backend (`sluice demo-app`), also startable in-process.
//!
//! Every request except the endpoints below answers JSON naming its version (and the header
//! `x-demo-version`), after the configured latency, with HTTP 500 at the configured error
//! rate. The service counts what it served, so tests and the demo see where requests really
//! went, independently of Envoy's own stats:
//!
//! - `GET /stats`: JSON counters (`requests`, `errors`, `mirrored`, ...);
//! - `GET /metrics`: the same counters in Prometheus text format;
//! - `POST /control` `{"errorRate": 0.5, "latencyMs": 100}`: change faults at run time (the
//!   rollback benchmark injects failures this way); needs `Authorization: Bearer TOKEN` when
//!   the app was started with a control token;
//! - `GET /healthz`.
//!
//! Mirrored copies (Envoy's `request_mirror_policies`) arrive with `-shadow` appended to the
//! Host; they are counted in `requests` and separately in `mirrored`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, oneshot};

#[derive(Clone, Debug, PartialEq)]
pub struct DemoConfig {
    pub version: String,
    /// 0.0..=1.0: share of requests answered with HTTP 500.
    pub error_rate: f64,
    /// Added to every request before it answers.
    pub latency_ms: u64,
    /// Required as a bearer token by `POST /control` when set.
    pub control_token: Option<String>,
}

impl DemoConfig {
    pub fn new(version: &str) -> Self {
        DemoConfig {
            version: version.to_string(),
            error_rate: 0.0,
            latency_ms: 0,
            control_token: None,
        }
    }
}

/// Counters as `/stats` returns them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoStats {
    pub version: String,
    /// Every request served (including mirrored copies).
    pub requests: u64,
    /// Requests answered with 5xx.
    pub errors: u64,
    /// Mirrored copies (Host ending in `-shadow`).
    pub mirrored: u64,
    pub error_rate: f64,
    pub latency_ms: u64,
}

/// Body of `POST /control`; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("error rate {0} outside 0..=1")]
    ErrorRate(f64),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

struct Shared {
    version: String,
    faults: RwLock<(f64, u64)>,
    token: Option<String>,
    requests: AtomicU64,
    errors: AtomicU64,
    mirrored: AtomicU64,
}

impl Shared {
    async fn stats(&self) -> DemoStats {
        let (error_rate, latency_ms) = *self.faults.read().await;
        DemoStats {
            version: self.version.clone(),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            mirrored: self.mirrored.load(Ordering::Relaxed),
            error_rate,
            latency_ms,
        }
    }
}

/// A running demo app; stops when dropped.
pub struct DemoHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl DemoHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// `127.0.0.1:PORT`, as a Rollout's `upstreams` wants it.
    pub fn upstream(&self) -> String {
        self.addr.to_string()
    }
    pub async fn stats(&self) -> DemoStats {
        self.shared.stats().await
    }
    pub async fn set_faults(&self, faults: &Faults) -> Result<DemoStats, DemoError> {
        apply_faults(&self.shared, faults).await?;
        Ok(self.shared.stats().await)
    }
    /// Stop serving and wait for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for DemoHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

async fn apply_faults(shared: &Shared, f: &Faults) -> Result<(), DemoError> {
    if let Some(r) = f.error_rate
        && !(0.0..=1.0).contains(&r)
    {
        return Err(DemoError::ErrorRate(r));
    }
    let mut w = shared.faults.write().await;
    if let Some(r) = f.error_rate {
        w.0 = r;
    }
    if let Some(l) = f.latency_ms {
        w.1 = l;
    }
    Ok(())
}

/// Start serving on `addr` (port 0 picks a free one) in this process.
pub async fn start(config: DemoConfig, addr: SocketAddr) -> Result<DemoHandle, DemoError> {
    if !(0.0..=1.0).contains(&config.error_rate) {
        return Err(DemoError::ErrorRate(config.error_rate));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| DemoError::Bind { addr, source })?;
    let shared = Arc::new(Shared {
        version: config.version.clone(),
        faults: RwLock::new((config.error_rate, config.latency_ms)),
        token: config.control_token.clone().filter(|t| !t.is_empty()),
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        mirrored: AtomicU64::new(0),
    });
    let (tx, rx) = oneshot::channel::<()>();
    let app = app(shared.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(DemoHandle {
        addr: bound,
        shared,
        stop: Some(tx),
        task,
    })
}

fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/control", post(control))
        .fallback(serve)
        .with_state(shared)
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(s.stats().await).into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let st = s.stats().await;
    let v = st.version.replace(['\\', '"', '\n'], "_");
    let body = format!(
        "# HELP demo_requests_total Requests served (mirrored copies included).\n\
         # TYPE demo_requests_total counter\n\
         demo_requests_total{{version=\"{v}\"}} {}\n\
         # HELP demo_errors_total Requests answered with 5xx.\n\
         # TYPE demo_errors_total counter\n\
         demo_errors_total{{version=\"{v}\"}} {}\n\
         # HELP demo_mirrored_requests_total Mirrored copies received.\n\
         # TYPE demo_mirrored_requests_total counter\n\
         demo_mirrored_requests_total{{version=\"{v}\"}} {}\n",
        st.requests, st.errors, st.mirrored
    );
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn control(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(token) = &s.token {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.as_bytes()).into();
        if !ok {
            return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
        }
    }
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("body: {e}\n")).into_response();
        }
    };
    match apply_faults(&s, &faults).await {
        Ok(()) => axum::Json(s.stats().await).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn serve(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (error_rate, latency_ms) = *s.faults.read().await;
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    s.requests.fetch_add(1, Ordering::Relaxed);
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let host_name = host.split(':').next().unwrap_or("");
    if host_name.ends_with("-shadow") {
        s.mirrored.fetch_add(1, Ordering::Relaxed);
    }
    let fail = error_rate > 0.0 && rand::random::<f64>() < error_rate;
    let version = HeaderValue::from_str(&s.version).unwrap_or(HeaderValue::from_static("?"));
    if fail {
        s.errors.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::json!({"service": "reviews", "version": s.version, "error": "injected fault"});
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("x-demo-version", version)],
            axum::Json(body),
        )
            .into_response();
    }
    let stars = match s.version.as_str() {
        "v1" => None,
        "v2" => Some("black"),
        _ => Some("red"),
    };
    let body = serde_json::json!({
        "service": "reviews",
        "version": s.version,
        "reviews": [
            {"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare.", "stars": stars.map(|c| serde_json::json!({"rating": 5, "color": c}))},
            {"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining.", "stars": stars.map(|c| serde_json::json!({"rating": 4, "color": c}))},
        ],
    });
    ([("x-demo-version", version)], axum::Json(body)).into_response()
}

/// `sluice demo-app`: serve on 127.0.0.1:`port` until Ctrl-C / SIGTERM.
pub async fn run(config: DemoConfig, port: u16) -> Result<(), DemoError> {
    let handle = start(config, SocketAddr::from(([127, 0, 0, 1], port))).await?;
    eprintln!(
        "demo-app {} listening on http://{}",
        handle.shared.version,
        handle.addr()
    );
    wait_for_signal().await;
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn shared(token: Option<&str>) -> Arc<Shared> {
        Arc::new(Shared {
            version: "v2".into(),
            faults: RwLock::new((0.0, 0)),
            token: token.map(str::to_string),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            mirrored: AtomicU64::new(0),
        })
    }

    async fn call(s: &Arc<Shared>, req: Request<Body>) -> (StatusCode, String) {
        let resp = app(s.clone()).oneshot(req).await.expect("infallible");
        let code = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        (code, body)
    }

    #[tokio::test]
    async fn counts_requests_errors_and_mirrored_copies() {
        let s = shared(None);
        let (code, body) = call(&s, Request::get("/reviews/1").body(Body::empty()).unwrap()).await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("\"version\":\"v2\""), "{body}");
        let shadow = Request::get("/")
            .header("host", "reviews-shadow:8080")
            .body(Body::empty())
            .unwrap();
        call(&s, shadow).await;
        apply_faults(
            &s,
            &Faults {
                error_rate: Some(1.0),
                latency_ms: None,
            },
        )
        .await
        .unwrap();
        let (code, _) = call(&s, Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        let st = s.stats().await;
        assert_eq!((st.requests, st.mirrored, st.errors), (3, 1, 1));
        let (_, metrics) = call(&s, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        assert!(
            metrics.contains("demo_requests_total{version=\"v2\"} 3"),
            "{metrics}"
        );
        // The stats endpoints themselves are not counted.
        assert_eq!(s.stats().await.requests, 3);
    }

    #[tokio::test]
    async fn control_needs_the_token_and_validates_the_rate() {
        let s = shared(Some("secret"));
        let req = |auth: Option<&str>, body: &str| {
            let mut r = Request::post("/control");
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.body(Body::from(body.to_string())).unwrap()
        };
        let (code, _) = call(&s, req(None, r#"{"errorRate":0.5}"#)).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, _) = call(&s, req(Some("Bearer nope"), r#"{"errorRate":0.5}"#)).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, body) = call(&s, req(Some("Bearer secret"), r#"{"errorRate":1.5}"#)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        let (code, body) = call(&s, req(Some("Bearer secret"), r#"{"errrorRate":0.5}"#)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        let (code, body) = call(
            &s,
            req(Some("Bearer secret"), r#"{"errorRate":0.25,"latencyMs":7}"#),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let st = s.stats().await;
        assert_eq!((st.error_rate, st.latency_ms), (0.25, 7));
    }

    #[tokio::test]
    async fn in_process_handle_serves_on_a_free_port() {
        let h = start(DemoConfig::new("v3"), SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        assert_ne!(h.port(), 0);
        let mut conn = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).await.unwrap();
        assert!(out.contains("x-demo-version: v3"), "{out}");
        assert_eq!(h.stats().await.requests, 1);
        h.shutdown().await;
    }
}
