//! The client against an axum stub that plays scripted answers and records what it received.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::*;
use sluice_core::spec::Verdict;

#[derive(Clone)]
struct Reply {
    status: u16,
    body: &'static str,
    delay: Duration,
}

fn ok(body: &'static str) -> Reply {
    Reply {
        status: 200,
        body,
        delay: Duration::ZERO,
    }
}

#[derive(Clone, Default)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
    form: BTreeMap<String, String>,
}

struct Stub {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: tokio::task::JoinHandle<()>,
}

/// Serves `replies` in order (the last one repeats).
async fn stub(replies: Vec<Reply>) -> Stub {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let queue = Arc::new(Mutex::new(replies));
    let handler = {
        let seen = seen.clone();
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            let queue = queue.clone();
            async move {
                let form = url::form_urlencoded::parse(&body).into_owned().collect();
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                seen.lock().expect("lock").push(Seen {
                    path: uri.path().to_string(),
                    headers,
                    form,
                });
                let reply = {
                    let mut q = queue.lock().expect("lock");
                    if q.len() > 1 {
                        q.remove(0)
                    } else {
                        q[0].clone()
                    }
                };
                tokio::time::sleep(reply.delay).await;
                (
                    StatusCode::from_u16(reply.status).expect("status"),
                    reply.body,
                )
            }
        }
    };
    let app = axum::Router::new()
        .route("/api/v1/query", post(handler.clone()))
        .route("/api/v1/query_range", post(handler.clone()))
        .route("/prefix/api/v1/query", post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Stub {
        url,
        seen,
        _task: task,
    }
}

fn fast(address: &str) -> PrometheusConfig {
    let mut c = PrometheusConfig::new(address);
    c.backoff = Duration::from_millis(10);
    c.timeout = Duration::from_secs(5);
    c
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("time")
}

const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[
  {"metric":{"envoy_cluster_name":"a"},"value":[1700000000.5,"99.5"]},
  {"metric":{},"value":[1700000000.5,"NaN"]},
  {"metric":{"x":"y"},"value":[1700000000.5,"+Inf"]}]}}"#;
const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[
  {"metric":{"le":"0.5"},"values":[[1700000000,"1"],[1700000001,"-Inf"]]}]}}"#;
const SCALAR: &str =
    r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}"#;
const STRING: &str =
    r#"{"status":"success","data":{"resultType":"string","result":[1700000000,"hi"]}}"#;
const BAD_DATA: &str =
    r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \")\""}"#;

#[tokio::test]
async fn parses_vector_matrix_scalar_string() {
    let s = stub(vec![
        ok(VECTOR),
        ok(MATRIX),
        ok(SCALAR),
        ok(STRING),
        ok(MATRIX),
    ])
    .await;
    let p = PrometheusSource::new(fast(&s.url)).expect("source");
    let QueryValue::Vector(v) = p.query("up", now()).await.expect("vector") else {
        panic!("not a vector")
    };
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].value, 99.5);
    assert_eq!(v[0].labels["envoy_cluster_name"], "a");
    assert_eq!(v[0].at, 1_700_000_000.5);
    assert!(v[1].value.is_nan());
    assert_eq!(v[2].value, f64::INFINITY);
    let QueryValue::Matrix(m) = p.query("up[1m]", now()).await.expect("matrix") else {
        panic!("not a matrix")
    };
    assert_eq!(
        m[0].points,
        vec![(1_700_000_000.0, 1.0), (1_700_000_001.0, f64::NEG_INFINITY)]
    );
    assert_eq!(
        p.query("42", now()).await.expect("scalar"),
        QueryValue::Scalar {
            at: 1_700_000_000.0,
            value: 42.0
        }
    );
    assert!(matches!(
        p.query("\"hi\"", now()).await.expect("string"),
        QueryValue::String { .. }
    ));
    let range = TimeRange {
        start: now() - chrono::Duration::seconds(60),
        end: now(),
        step: Duration::from_secs(2),
    };
    let series = p.query_range("up", range).await.expect("range");
    assert_eq!(series.len(), 1);

    let seen = s.seen.lock().expect("lock").clone();
    assert_eq!(seen[0].path, "/api/v1/query");
    assert_eq!(seen[0].form["query"], "up");
    assert_eq!(seen[0].form["time"], "1700000000.000");
    assert_eq!(seen[0].form["timeout"], "5s");
    let last = seen.last().expect("range request");
    assert_eq!(last.path, "/api/v1/query_range");
    assert_eq!(last.form["start"], "1699999940.000");
    assert_eq!(last.form["step"], "2");
}

#[tokio::test]
async fn prometheus_error_body_is_a_query_error_and_not_retried() {
    let s = stub(vec![Reply {
        status: 400,
        body: BAD_DATA,
        delay: Duration::ZERO,
    }])
    .await;
    let p = PrometheusSource::new(fast(&s.url)).expect("source");
    let e = p.query("sum(", now()).await.expect_err("error");
    match &e {
        SourceError::Query {
            status,
            error_type,
            error,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(error_type, "bad_data");
            assert!(error.contains("parse error"), "{error}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        s.seen.lock().expect("lock").len(),
        1,
        "4xx must not be retried"
    );
}

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let unavailable = Reply {
        status: 503,
        body: r#"{"status":"error","errorType":"unavailable","error":"starting"}"#,
        delay: Duration::ZERO,
    };
    let s = stub(vec![unavailable.clone(), unavailable, ok(SCALAR)]).await;
    let p = PrometheusSource::new(fast(&s.url)).expect("source");
    assert!(p.query("42", now()).await.is_ok());
    assert_eq!(s.seen.lock().expect("lock").len(), 3);
}

#[tokio::test]
async fn retries_are_bounded_and_the_last_status_is_reported() {
    let s = stub(vec![Reply {
        status: 502,
        body: "<html>\n<h1>Bad Gateway</h1></html>",
        delay: Duration::ZERO,
    }])
    .await;
    let p = PrometheusSource::new(fast(&s.url)).expect("source");
    let e = p.query("up", now()).await.expect_err("error");
    assert!(
        matches!(&e, SourceError::HttpStatus { status: 502, body, .. } if body == "<html>"),
        "{e:?}"
    );
    assert_eq!(
        s.seen.lock().expect("lock").len(),
        DEFAULT_ATTEMPTS as usize
    );
}

#[tokio::test]
async fn bad_json_and_wrong_shapes_are_bad_responses() {
    let s = stub(vec![
        ok("not json"),
        ok(r#"{"status":"success"}"#),
        ok(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":"x"}]}}"#),
        ok(SCALAR),
    ])
    .await;
    let p = PrometheusSource::new(fast(&s.url)).expect("source");
    for _ in 0..3 {
        let e = p.query("up", now()).await.expect_err("error");
        assert!(matches!(e, SourceError::BadResponse { .. }), "{e:?}");
    }
    let range = TimeRange {
        start: now(),
        end: now(),
        step: Duration::from_secs(1),
    };
    let e = p
        .query_range("up", range)
        .await
        .expect_err("scalar for range");
    assert!(e.to_string().contains("instead of a matrix"), "{e}");
}

#[tokio::test]
async fn timeout_is_typed_and_not_retried() {
    let s = stub(vec![Reply {
        status: 200,
        body: SCALAR,
        delay: Duration::from_secs(3),
    }])
    .await;
    let mut cfg = fast(&s.url);
    cfg.timeout = Duration::from_millis(200);
    let p = PrometheusSource::new(cfg).expect("source");
    let e = p.query("up", now()).await.expect_err("timeout");
    assert!(matches!(e, SourceError::Timeout { .. }), "{e:?}");
    assert_eq!(s.seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn unreachable_after_retries() {
    // Bind then drop: nothing listens on the port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let p = PrometheusSource::new(fast(&format!("http://127.0.0.1:{port}"))).expect("source");
    let e = p.query("up", now()).await.expect_err("unreachable");
    match e {
        SourceError::Unreachable { attempts, .. } => assert_eq!(attempts, DEFAULT_ATTEMPTS),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn sends_credentials_and_headers_but_never_shows_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cr3t-token\n").expect("write");
    let s = stub(vec![Reply {
        status: 401,
        body: "unauthorized",
        delay: Duration::ZERO,
    }])
    .await;
    let mut cfg = fast(&format!("{}/prefix", s.url));
    cfg.bearer_token_file = Some(token.clone());
    cfg.headers
        .insert("X-Scope-OrgID".into(), "tenant-1".into());
    let p = PrometheusSource::new(cfg).expect("source");
    let e = p.query("up", now()).await.expect_err("401");
    let seen = s.seen.lock().expect("lock").clone();
    assert_eq!(seen[0].path, "/prefix/api/v1/query");
    let header = |name: &str| {
        seen[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("authorization").as_deref(),
        Some("Bearer s3cr3t-token")
    );
    assert_eq!(header("x-scope-orgid").as_deref(), Some("tenant-1"));
    let shown = format!("{e} {e:?} {p:?}");
    assert!(matches!(e, SourceError::HttpStatus { status: 401, .. }));
    assert!(!shown.contains("s3cr3t"), "{shown}");

    // Basic auth from the address: used, stripped from what is shown.
    let s = stub(vec![ok(SCALAR)]).await;
    let with_user = s.url.replace("http://", "http://alice:pa%40ss@");
    let p = PrometheusSource::new(fast(&with_user)).expect("source");
    assert!(!format!("{p:?}").contains("pa%40ss"));
    p.query("1", now()).await.expect("ok");
    let seen = s.seen.lock().expect("lock").clone();
    let auth = seen[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    // base64("alice:pa@ss")
    assert_eq!(auth.as_deref(), Some("Basic YWxpY2U6cGFAc3M="));

    // Missing password file: a configuration error naming the file, not a panic.
    let mut cfg = fast(&s.url);
    cfg.basic_auth = Some(("bob".into(), dir.path().join("missing")));
    let e = PrometheusSource::new(cfg)
        .expect("source")
        .query("1", now())
        .await
        .expect_err("missing file");
    assert!(
        matches!(&e, SourceError::Config(m) if m.contains("missing")),
        "{e}"
    );
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (input, out) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), out);
    }
}

#[test]
fn rejects_bad_addresses_without_echoing_secrets() {
    let e = PrometheusSource::new(PrometheusConfig::new("ftp://u:hunter2@x")).expect_err("scheme");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(PrometheusSource::new(PrometheusConfig::new("not a url")).is_err());
    let mut cfg = PrometheusConfig::new("http://x");
    cfg.headers.insert("Bad Header".into(), "v".into());
    assert!(PrometheusSource::new(cfg).is_err());
}

/// A rollout with one custom query metric, and (optionally) its own Prometheus address.
fn rollout_asking(name: &str, address: Option<&str>) -> sluice_core::spec::Rollout {
    let provider = address
        .map(|a| format!("    provider: {{prometheus: {{address: '{a}'}}}}\n"))
        .unwrap_or_default();
    serde_yaml::from_str(&format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {{name: {name}}}\nspec:\n  \
         upstreams: {{stable: '127.0.0.1:1', canary: '127.0.0.1:2'}}\n  service: {{port: 80}}\n  \
         strategy: {{canary: {{steps: [10]}}}}\n  analysis:\n{provider}    metrics:\n      - \
         {{name: q, query: 'probe_{name}', thresholds: {{min: 1}}}}\n"
    ))
    .expect("rollout")
}

const ONE: &str = r#"{"status":"success","data":{"resultType":"vector","result":[
  {"metric":{},"value":[1700000000.5,"1"]}]}}"#;

fn queries_seen(stub: &Stub) -> Vec<String> {
    stub.seen
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|s| s.form.get("query").cloned())
        .collect()
}

#[tokio::test]
async fn a_rollouts_own_prometheus_is_asked_and_the_default_only_serves_rollouts_without_one() {
    let own = stub(vec![ok(ONE)]).await;
    let default = stub(vec![ok(ONE)]).await;
    let analyzer = crate::PrometheusAnalyzer::new(crate::AddressPolicy::SpecOrDefault(Some(
        default.url.clone(),
    )))
    .expect("analyzer");
    let with_own = rollout_asking("with-own", Some(&own.url));
    let without = rollout_asking("without", None);
    for r in [&with_own, &without] {
        let checks = sluice_core::exec::Analyzer::analyze(&analyzer, r, now()).await;
        assert_eq!(
            checks[0].verdict,
            Verdict::Pass,
            "{}: {:?}",
            r.key(),
            checks
        );
    }
    assert_eq!(queries_seen(&own), ["probe_with-own"]);
    assert_eq!(queries_seen(&default), ["probe_without"]);
}

#[tokio::test]
async fn an_explicit_override_sends_every_rollout_to_one_prometheus() {
    let own = stub(vec![ok(ONE)]).await;
    let other = stub(vec![ok(ONE)]).await;
    let analyzer =
        crate::PrometheusAnalyzer::new(crate::AddressPolicy::Override(other.url.clone()))
            .expect("analyzer");
    let with_own = rollout_asking("with-own", Some(&own.url));
    let checks = sluice_core::exec::Analyzer::analyze(&analyzer, &with_own, now()).await;
    assert_eq!(checks[0].verdict, Verdict::Pass, "{checks:?}");
    assert!(queries_seen(&own).is_empty());
    assert_eq!(queries_seen(&other), ["probe_with-own"]);
}

#[tokio::test]
async fn without_any_address_every_check_is_inconclusive_with_the_reason() {
    let analyzer = crate::PrometheusAnalyzer::new(crate::AddressPolicy::SpecOrDefault(None))
        .expect("analyzer");
    let checks =
        sluice_core::exec::Analyzer::analyze(&analyzer, &rollout_asking("x", None), now()).await;
    assert_eq!(checks[0].verdict, Verdict::Inconclusive);
    assert!(
        checks[0].reason.contains("provider.prometheus.address"),
        "{checks:?}"
    );
}

/// Issue 15: a 30 MB answer took the process from 35 to 428 MB. Over the cap it is an error
/// (never a pass), read no further than the cap, with or without a Content-Length.
#[tokio::test]
async fn an_answer_over_the_byte_cap_is_refused_without_reading_it_all() {
    let one = r#"{"metric":{"pod":"p"},"value":[1700000000,"1"]},"#;
    let mut big = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    while big.len() < 30 * 1024 * 1024 {
        big.push_str(one);
    }
    big.pop();
    big.push_str("]}}");
    let s = stub(vec![ok(Box::leak(big.into_boxed_str()))]).await;
    let p = PrometheusSource::new(fast(&s.url)).expect("source");
    let e = p.query("up", now()).await.expect_err("too big");
    assert!(
        e.to_string()
            .contains(&format!("larger than {MAX_ANSWER_BYTES} bytes")),
        "{e}"
    );

    // Chunked, without a length: the reader stops at the cap and hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = sent.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut c, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if c.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = "x".repeat(64 * 1024);
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        for _ in 0..(30 * 16) {
            if c.write_all(framed.as_bytes()).await.is_err() {
                return;
            }
            counted.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    let mut cfg = fast(&url);
    cfg.max_attempts = 1;
    let p = PrometheusSource::new(cfg).expect("source");
    let e = p.query("up", now()).await.expect_err("too big");
    assert!(e.to_string().contains("larger than"), "{e}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n < 12 * 1024 * 1024, "the server got to write {n} bytes");
}

#[tokio::test]
async fn an_answer_with_too_many_series_is_refused() {
    let one = r#"{"metric":{"pod":"p"},"value":[1700000000,"1"]}"#;
    let result = vec![one; MAX_SERIES + 1].join(",");
    let body =
        format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{result}]}}}}"#);
    let s = stub(vec![ok(Box::leak(body.into_boxed_str()))]).await;
    let p = PrometheusSource::new(fast(&s.url)).expect("source");
    let e = p.query("up", now()).await.expect_err("too many");
    assert!(
        e.to_string().contains(&format!(
            "{} series in the answer, more than {MAX_SERIES}",
            MAX_SERIES + 1
        )),
        "{e}"
    );
    let result = vec![one; MAX_SERIES].join(",");
    let body =
        format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{result}]}}}}"#);
    let s = stub(vec![ok(Box::leak(body.into_boxed_str()))]).await;
    let p = PrometheusSource::new(fast(&s.url)).expect("source");
    assert!(p.query("up", now()).await.is_ok());
}
