//! A real Prometheus (Debian's `prometheus`) scrapes sluice's `/metrics` output served with
//! its OpenMetrics content type: the target is healthy, counters keep their type, values
//! arrive. Prometheus listens on a free port of 127.0.0.1 and is killed on drop.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_core::spec::WebhookKind;
use sluice_telemetry::Metrics;
use sluice_telemetry::metrics::CONTENT_TYPE;

struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    sluice_testkit::fakes::closed_port()
}

fn start_prometheus(target: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: sluice\n    static_configs: [{{targets: ['{target}']}}]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("prometheus not found ({e}): run scripts/install-deps.sh"));
    Prometheus {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// Polls `f` until it returns Some, or panics with `what` after the deadline.
async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    let resp = client.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_sluice_metrics() {
    sluice_testkit::fakes::install_crypto();
    let metrics = Arc::new(Metrics::new());
    metrics.set_leader(true);
    metrics.observe_webhook(WebhookKind::Rollback, "success", 0.02);
    metrics.observe_tick(0.003);
    let encode = metrics.encoder();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let encode = Arc::clone(&encode);
            async move { ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], encode()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let prom = start_prometheus(&target);
    let client = reqwest::Client::new();
    let deadline = Duration::from_secs(60);

    // The target is scraped without errors.
    let targets_url = format!("{}/api/v1/targets", prom.base);
    let health = eventually("a scrape of the sluice target", deadline, || async {
        let v = get_json(&client, &targets_url).await?;
        let t = v["data"]["activeTargets"].as_array()?.first()?.clone();
        let health = t["health"].as_str()?.to_string();
        (health != "unknown").then_some((health, t["lastError"].as_str()?.to_string()))
    })
    .await;
    assert_eq!(health, ("up".to_string(), String::new()));

    // Values arrive, with their `_total` / `_bucket` names.
    for (query, want) in [
        ("sluice_leader", "1"),
        (
            r#"sluice_webhook_calls_total{type="rollback",outcome="success"}"#,
            "1",
        ),
        ("sluice_tick_duration_seconds_count", "1"),
    ] {
        let url = format!(
            "{}/api/v1/query?query={}",
            prom.base,
            url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        );
        let got = eventually(query, deadline, || async {
            let v = get_json(&client, &url).await?;
            v["data"]["result"].as_array()?.first()?["value"][1]
                .as_str()
                .map(str::to_string)
        })
        .await;
        assert_eq!(got, want, "{query}");
    }

    // Parsed as OpenMetrics: the counter family keeps its type.
    let meta_url = format!("{}/api/v1/metadata?metric=sluice_webhook_calls", prom.base);
    let kind = eventually("metadata", deadline, || async {
        let v = get_json(&client, &meta_url).await?;
        v["data"]["sluice_webhook_calls"].as_array()?.first()?["type"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    assert_eq!(kind, "counter");
    server.abort();
}
