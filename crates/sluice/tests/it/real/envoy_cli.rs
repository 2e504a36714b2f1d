//! The Envoy-side subcommands as a user runs them: `sluice envoy-bootstrap` output passes
//! `envoy --mode validate`, `sluice demo-app` serves, counts and takes faults at run time.

use std::process::{Command, Stdio};
use std::time::Duration;

use sluice_testkit::procs::{free_port, poll_until};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

#[tokio::test]
async fn envoy_bootstrap_writes_a_config_envoy_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("envoy.yaml");
    let status = Command::new(SLUICE)
        .args([
            "envoy-bootstrap",
            "--listen-port",
            "10000",
            "--admin-port",
            "9901",
        ])
        .args(["--xds", "files", "--xds-dir"])
        .arg(dir.path().join("xds"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run sluice");
    assert!(status.success());
    assert!(dir.path().join("xds/cds.json").is_file());
    assert!(dir.path().join("xds/rds.json").is_file());
    sluice_testkit::procs::envoy::validate(&out)
        .await
        .expect("bootstrap passes envoy --mode validate");
    let text = std::fs::read_to_string(&out).expect("bootstrap");
    assert!(text.contains("stats_flush_interval: 1s"), "{text}");

    // The default: ADS from `sluice standalone`'s --xds-listen.
    let ads = dir.path().join("envoy-ads.yaml");
    let status = Command::new(SLUICE)
        .args([
            "envoy-bootstrap",
            "--listen-port",
            "10000",
            "--admin-port",
            "9901",
        ])
        .args(["--xds-address", "127.0.0.1:18001", "-o"])
        .arg(&ads)
        .status()
        .expect("run sluice");
    assert!(status.success());
    sluice_testkit::procs::envoy::validate(&ads)
        .await
        .expect("ADS bootstrap passes envoy --mode validate");
    let text = std::fs::read_to_string(&ads).expect("bootstrap");
    assert!(text.contains("port_value: 18001"), "{text}");

    // Mixed flags are refused with what to do.
    let out = Command::new(SLUICE)
        .args([
            "envoy-bootstrap",
            "--listen-port",
            "1",
            "--admin-port",
            "2",
            "--xds-dir",
            "/tmp/x",
        ])
        .output()
        .expect("run sluice");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--xds-dir is for --xds files"), "{err}");
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_app_serves_counts_and_takes_faults() {
    let port = free_port().expect("port");
    let child = Command::new(SLUICE)
        .args([
            "demo-app",
            "--version",
            "v3",
            "--error-rate",
            "1",
            "--latency-ms",
            "5",
        ])
        .args(["--port", &port.to_string()])
        .env("SLUICE_DEMO_CONTROL_TOKEN", "t0ken")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo-app");
    let _guard = Kill(child);
    sluice_testkit::fakes::install_crypto();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let base = format!("http://127.0.0.1:{port}");
    let up = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    assert!(up, "demo-app not ready");
    let r = client
        .get(format!("{base}/reviews/0"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 500, "--error-rate 1 fails every request");
    let denied = client
        .post(format!("{base}/control"))
        .body(r#"{"errorRate":0}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(denied.status(), 401);
    let ok = client
        .post(format!("{base}/control"))
        .bearer_auth("t0ken")
        .body(r#"{"errorRate":0}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), 200);
    let r = client.get(format!("{base}/")).send().await.expect("get");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["version"], "v3");
    let stats: serde_json::Value = client
        .get(format!("{base}/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (stats["requests"].as_u64(), stats["errors"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(stats["latencyMs"], 5);
}
