//! The HTTP server's limits (issue 15), each just over its value: a clear refusal, fast.
//! These run the real server loop on 127.0.0.1 with raw TCP clients.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use sluice_api::server::{MAX_BODY_BYTES, MAX_HEADER_BYTES, serve_with};
use sluice_api::{ApiState, router};
use sluice_testkit::web::{TOKEN, backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(header_read: Duration, hosts: &[String]) -> std::net::SocketAddr {
    let app = router(ApiState::new(backend(), Some(TOKEN.to_string())).with_allowed_hosts(hosts));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_with(
        listener,
        app,
        std::future::pending(),
        header_read,
    ));
    addr
}

/// Sends `request` and reads until the server closes or 5 s pass.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before the whole request is written.
    let _ = c.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn get(path: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn a_foreign_host_is_refused_loopback_and_added_names_are_served() {
    let addr = server(Duration::from_secs(10), &["sluice.example.com".into()]).await;
    let port = addr.port();
    let evil = exchange(
        addr,
        &get("/api/v1/rollouts", "rebind.attacker.test:7474", ""),
    )
    .await;
    assert!(evil.starts_with("HTTP/1.1 421"), "{evil}");
    assert!(
        evil.contains("DNS rebinding") && evil.contains("--allowed-host"),
        "{evil}"
    );
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "sluice.example.com".to_string(),
    ] {
        let ok = exchange(addr, &get("/api/v1/rollouts", &host, "")).await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{host}: {ok}");
    }
    // Probes and metrics answer by any name (kubelets use the pod IP).
    let probe = exchange(addr, &get("/healthz", "10.1.2.3:7474", "")).await;
    assert!(probe.starts_with("HTTP/1.1 200"), "{probe}");
    // `*` turns the check off.
    let any = server(Duration::from_secs(10), &["*".into()]).await;
    let ok = exchange(any, &get("/api/v1/rollouts", "whatever.test", "")).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn a_request_head_over_the_limit_gets_431() {
    let addr = server(Duration::from_secs(10), &[]).await;
    let big = format!("X-Pad: {}\r\n", "a".repeat(MAX_HEADER_BYTES));
    let start = Instant::now();
    let resp = exchange(addr, &get("/api/v1/rollouts", "127.0.0.1", &big)).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert!(start.elapsed() < Duration::from_secs(2));
    // Just under passes.
    let fits = format!("X-Pad: {}\r\n", "a".repeat(MAX_HEADER_BYTES / 2));
    let resp = exchange(addr, &get("/api/v1/rollouts", "127.0.0.1", &fits)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let addr = server(Duration::from_secs(10), &[]).await;
    let body = format!("{{\"reason\": \"{}\"}}", "a".repeat(MAX_BODY_BYTES));
    let req = format!(
        "POST /api/v1/rollouts/default/web/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = exchange(addr, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed_after_the_header_read_timeout() {
    let addr = server(Duration::from_millis(300), &[]).await;
    // Connects and sends nothing.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the server kept a silent connection open");
    assert_eq!(n.unwrap_or(0), 0);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Trickles a head, a byte at a time, slower than the timeout allows.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let head = b"GET /api/v1/rollouts HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for b in head {
        if slow.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), slow.read_to_end(&mut out)).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // Keep-alive: after one answer, an idle connection is closed too.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "idle for {:?}",
        start.elapsed()
    );
}
