//! `sluice wait`, `sluice status` and the command verbs, run as the real binary against the
//! app served on a real socket (127.0.0.1, free port) over the in-memory backend, whose engine
//! ticks in real time. Exit codes are the contract CI relies on (docs/ci.md).

// Helpers outside #[test] fns panic on purpose: the panic is the test's failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use sluice_api::{ApiState, router};
use sluice_testkit::memory::{Health, MemoryBackend};
use sluice_testkit::web::{TOKEN, canary};

use crate::exit;

struct Server {
    url: String,
    backend: Arc<MemoryBackend>,
}

/// One rollout `default/web` (stable v1, analysis every 300ms), served with a 100ms ticker.
async fn serve(manual: bool, health: Health) -> Server {
    let backend = MemoryBackend::new(256);
    backend.insert(canary("default", "web", manual, "300ms", &[10, 50]), "v1");
    backend.set_health("default", "web", health);
    backend.spawn_ticker(Duration::from_millis(100));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(ApiState::new(backend.clone(), Some(TOKEN.into())));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { url, backend }
}

struct Run {
    code: u8,
    stdout: String,
    stderr: String,
}

async fn sluice(server: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_SERVER", server)
        .env_remove("SLUICE_TOKEN")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("sluice finished within 60s")
        .expect("sluice runs");
    Run {
        code: out.status.code().expect("exit code") as u8,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const FAST: [&str; 2] = ["--interval", "100ms"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_succeeded_returns_0() {
    let s = serve(false, Health::Healthy).await;
    s.backend.deploy("default", "web", "v2");
    let r = sluice(
        &s.url,
        &[
            "wait",
            "web",
            "--for",
            "succeeded",
            "--revision",
            "v2",
            "--timeout",
            "30s",
            FAST[0],
            FAST[1],
        ],
    )
    .await;
    assert_eq!(r.code, exit::OK, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Succeeded"), "{}", r.stdout);
    // Progress was reported on the way.
    assert!(r.stderr.contains("Progressing"), "{}", r.stderr);
    assert_eq!(
        s.backend
            .status("default", "web")
            .unwrap()
            .stable_revision
            .as_deref(),
        Some("v2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_on_a_rollback_returns_2() {
    let s = serve(false, Health::Failing).await;
    s.backend.deploy("default", "web", "v2");
    let r = sluice(
        &s.url,
        &[
            "wait",
            "default/web",
            "--for",
            "succeeded",
            "--revision",
            "v2",
            "--timeout",
            "30s",
            FAST[0],
            FAST[1],
        ],
    )
    .await;
    assert_eq!(r.code, exit::ROLLED_BACK, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("failed"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_times_out_with_4() {
    // The manual gate never opens by itself.
    let s = serve(true, Health::Healthy).await;
    s.backend.deploy("default", "web", "v2");
    let r = sluice(
        &s.url,
        &[
            "wait",
            "web",
            "--for",
            "succeeded",
            "--timeout",
            "2s",
            FAST[0],
            FAST[1],
        ],
    )
    .await;
    assert_eq!(r.code, exit::TIMEOUT, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
}

/// The CI flow of docs/ci.md: wait for the gate, promote, wait for success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_flow_gate_promote_succeed() {
    let s = serve(true, Health::Healthy).await;
    s.backend.deploy("default", "web", "v2");
    let r = sluice(
        &s.url,
        &[
            "wait",
            "web",
            "--for",
            "paused",
            "--revision",
            "v2",
            "--timeout",
            "30s",
            FAST[0],
            FAST[1],
        ],
    )
    .await;
    assert_eq!(r.code, exit::OK, "{}{}", r.stdout, r.stderr);

    let r = sluice(&s.url, &["status", "web"]).await;
    assert_eq!(r.code, exit::OK);
    assert!(
        r.stdout.contains("Paused (awaiting promotion)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("stable 50% / canary 50%"), "{}", r.stdout);

    // A command without a token is a usage error; a wrong token is refused and changes nothing.
    let r = sluice(&s.url, &["promote", "web"]).await;
    assert_eq!(r.code, exit::USAGE, "{}", r.stderr);
    let r = sluice(&s.url, &["promote", "web", "--token", "wrong"]).await;
    assert_eq!(r.code, exit::UNREACHABLE, "{}", r.stderr);
    assert!(r.stderr.contains("invalid API token"), "{}", r.stderr);

    let promote = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["promote", "web", "--reason", "checks passed"])
        .env("SLUICE_SERVER", &s.url)
        .env("SLUICE_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    assert_eq!(
        promote.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&promote.stderr)
    );

    let r = sluice(
        &s.url,
        &[
            "wait",
            "web",
            "--for",
            "succeeded",
            "--revision",
            "v2",
            "--timeout",
            "30s",
            FAST[0],
            FAST[1],
        ],
    )
    .await;
    assert_eq!(r.code, exit::OK, "{}{}", r.stdout, r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_refused_unknown_unreachable() {
    let s = serve(true, Health::Healthy).await;
    s.backend.deploy("default", "web", "v2");
    let r = sluice(
        &s.url,
        &[
            "wait",
            "web",
            "--for",
            "paused",
            "--timeout",
            "30s",
            FAST[0],
            FAST[1],
        ],
    )
    .await;
    assert_eq!(r.code, exit::OK, "{}", r.stderr);

    // 409: retry does not apply to a paused rollout.
    let r = sluice(&s.url, &["retry", "web", "--token", TOKEN]).await;
    assert_eq!(r.code, exit::REFUSED, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot retry") && r.stderr.contains("Paused"),
        "{}",
        r.stderr
    );

    let r = sluice(&s.url, &["abort", "web", "--token", TOKEN]).await;
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    let r = sluice(
        &s.url,
        &[
            "wait",
            "web",
            "--for",
            "succeeded",
            "--timeout",
            "30s",
            FAST[0],
            FAST[1],
        ],
    )
    .await;
    assert_eq!(r.code, exit::ABORTED, "{}{}", r.stdout, r.stderr);

    let r = sluice(&s.url, &["status", "other/web"]).await;
    assert_eq!(r.code, exit::UNREACHABLE, "{}", r.stderr);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);

    // Nothing listens on a port we just released.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let r = sluice(&dead, &["status", "web"]).await;
    assert_eq!(r.code, exit::UNREACHABLE, "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach"), "{}", r.stderr);

    let r = sluice(&s.url, &["wait", "web", "--for", "sideways"]).await;
    assert_eq!(r.code, exit::USAGE, "{}", r.stderr);

    let r = sluice(&s.url, &["status"]).await;
    assert_eq!(r.code, exit::OK);
    assert!(r.stdout.starts_with("ROLLOUT"), "{}", r.stdout);
    assert!(
        r.stdout.contains("default/web  Failed (aborted)"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_prints_each_change() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let s = serve(false, Health::Healthy).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["status", "web", "--watch", "--interval", "100ms"])
        .env("SLUICE_SERVER", &s.url)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("default/web: Idle"), "{first}");
    s.backend.deploy("default", "web", "v2");
    // One line per change, ending with the promotion.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = vec![first];
    while !seen.last().unwrap().contains("Succeeded") {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("a change within 30s")
            .unwrap()
            .expect("watch keeps running");
        seen.push(line);
    }
    assert!(seen.iter().any(|l| l.contains("Progressing")), "{seen:?}");
    child.kill().await.unwrap();
}
