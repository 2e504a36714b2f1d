//! Webhooks against a real HTTP receiver on 127.0.0.1, driven through `exec::tick` (engine +
//! `HttpWebhooks`) with fake router / workloads / analyzer.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::Duration;
use sluice_core::engine::Command;
use sluice_core::spec::{Phase, Reason, RolloutStatus, Verdict, WebhookKind};
use sluice_notify::webhooks::{HttpWebhooks, Retry};
use sluice_testkit::fakes::*;
use sluice_testkit::plan_of;
use sluice_testkit::tick_delivered as tick;

fn spec_yaml(base: &str, hooks: &[(&str, &str)], failure_limit: u32) -> String {
    let mut webhooks = String::new();
    for (kind, path) in hooks {
        webhooks.push_str(&format!(
            "    - {{name: {path}, type: {kind}, url: \"{base}/{path}\", timeout: 2s, metadata: {{team: reviews}}}}\n"
        ));
    }
    format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  upstreams: {{stable: "127.0.0.1:1", canary: "127.0.0.1:2"}}
  service: {{port: 9080}}
  strategy: {{canary: {{steps: [10, 50]}}}}
  analysis: {{interval: 30s, failureLimit: {failure_limit}}}
  webhooks:
{webhooks}"#
    )
}

fn webhooks() -> Arc<HttpWebhooks> {
    install_crypto();
    Arc::new(HttpWebhooks::new(None).unwrap())
}

#[tokio::test]
async fn gates_hold_and_release_the_rollout() {
    let rx = Receiver::start().await;
    let r = rollout(&spec_yaml(
        &rx.base,
        &[
            ("confirm-rollout", "confirm-rollout"),
            ("confirm-traffic-increase", "confirm-increase"),
            ("confirm-promotion", "confirm-promotion"),
        ],
        2,
    ));
    let fakes = Fakes::new(Verdict::Pass);
    let ex = fakes.executors(webhooks());
    let mut now = t0();
    rx.answer("/confirm-rollout", 503);
    rx.answer("/confirm-increase", 409);
    rx.answer("/confirm-promotion", 500);

    // Held before any traffic moves; asked once per tick, the refusal visible in status.
    let mut s = RolloutStatus::default();
    for n in 1..=3 {
        let out = tick(&ex, &r, &plan_of(&r), &s, None, now).await;
        assert!(out.error.is_none());
        s = out.status;
        assert_eq!(s.phase, Phase::Progressing);
        assert_eq!(s.reason, Some(Reason::AwaitingWebhook));
        let gate = s.pending_gate.as_ref().unwrap();
        assert_eq!(gate.kind, WebhookKind::ConfirmRollout);
        assert!(
            gate.last_error.as_deref().unwrap().contains("HTTP 503"),
            "{gate:?}"
        );
        assert_eq!(rx.hits("/confirm-rollout").len(), n);
        now += Duration::seconds(30);
    }
    assert_eq!(fakes.router.max_weight(), 0);

    // Released: the first step's traffic moves in the same tick.
    rx.answer("/confirm-rollout", 200);
    s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
    assert_eq!(s.canary_weight, 10);
    assert_eq!(s.reason, None);
    assert!(
        fakes
            .recorder
            .reasons()
            .contains(&"StepStarted".to_string())
    );

    // The step passes analysis, then waits on confirm-traffic-increase at 10%.
    for _ in 0..2 {
        now += Duration::seconds(30);
        s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
        assert_eq!(s.canary_weight, 10, "{s:?}");
        assert_eq!(
            s.pending_gate.as_ref().unwrap().kind,
            WebhookKind::ConfirmTrafficIncrease
        );
    }
    assert_eq!(fakes.router.max_weight(), 10);
    rx.answer("/confirm-increase", 200);
    now += Duration::seconds(30);
    s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
    assert_eq!(s.canary_weight, 50);

    // Last step passed: held at confirm-promotion, not promoted.
    now += Duration::seconds(30);
    s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
    assert_ne!(s.phase, Phase::Promoting);
    assert_ne!(s.phase, Phase::Succeeded);
    assert_eq!(
        s.pending_gate.as_ref().unwrap().kind,
        WebhookKind::ConfirmPromotion
    );
    assert_eq!(fakes.workloads.stable.lock().unwrap().as_str(), "v1");
    rx.answer("/confirm-promotion", 204);
    now += Duration::seconds(30);
    s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
    assert_eq!(s.phase, Phase::Promoting, "{s:?}");
    // Stable now runs v2 (the fake promotes at once): the next tick completes it.
    s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
    assert_eq!(s.phase, Phase::Succeeded, "{s:?}");
    assert_eq!(s.stable_revision.as_deref(), Some("v2"));

    // The payload receivers see.
    let hit = rx.hits("/confirm-promotion").last().cloned().unwrap();
    let b = &hit.body;
    assert_eq!(b["name"], "reviews");
    assert_eq!(b["namespace"], "bookinfo");
    assert_eq!(b["type"], "confirm-promotion");
    assert_eq!(b["canaryWeight"], 50);
    assert_eq!(b["step"], 1);
    assert_eq!(b["steps"], 2);
    assert_eq!(b["stableRevision"], "v1");
    assert_eq!(b["canaryRevision"], "v2");
    assert_eq!(b["metadata"]["team"], "reviews");
    assert!(b["phase"].is_string());
}

#[tokio::test]
async fn a_failing_pre_rollout_aborts_before_any_traffic_moves() {
    let rx = Receiver::start().await;
    let r = rollout(&spec_yaml(
        &rx.base,
        &[("pre-rollout", "smoke"), ("rollback", "rollback")],
        2,
    ));
    rx.answer("/smoke", 500);
    let fakes = Fakes::new(Verdict::Pass);
    let ex = fakes.executors(webhooks());
    let out = tick(&ex, &r, &plan_of(&r), &RolloutStatus::default(), None, t0()).await;
    let s = out.status;
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(s.reason, Some(Reason::PreRolloutFailed));
    assert!(
        s.message.as_deref().unwrap().contains("smoke: HTTP 500"),
        "{s:?}"
    );
    assert_eq!(fakes.router.max_weight(), 0, "{:?}", fakes.router.weights());
    assert!(!fakes.router.weights().is_empty());
    assert_eq!(rx.hits("/smoke").len(), 1);
    assert_eq!(rx.hits("/rollback").len(), 1);
    // Failed stays failed, with no more calls.
    let s2 = tick(
        &ex,
        &r,
        &plan_of(&r),
        &s,
        None,
        t0() + Duration::seconds(30),
    )
    .await
    .status;
    assert_eq!(s2.phase, Phase::Failed);
    assert_eq!(rx.hits("/smoke").len(), 1);
    assert_eq!(rx.hits("/rollback").len(), 1);
}

#[tokio::test]
async fn an_unreachable_pre_rollout_also_aborts() {
    let port = closed_port();
    let r = rollout(&spec_yaml(
        &format!("http://127.0.0.1:{port}"),
        &[("pre-rollout", "smoke")],
        2,
    ));
    let fakes = Fakes::new(Verdict::Pass);
    let ex = fakes.executors(webhooks());
    let s = tick(&ex, &r, &plan_of(&r), &RolloutStatus::default(), None, t0())
        .await
        .status;
    assert_eq!(s.reason, Some(Reason::PreRolloutFailed));
    assert!(
        s.message.as_deref().unwrap().contains("connection failed"),
        "{s:?}"
    );
    assert_eq!(fakes.router.max_weight(), 0);
}

#[tokio::test]
async fn the_rollback_webhook_fires_exactly_once_per_rollback() {
    let rx = Receiver::start().await;
    let r = rollout(&spec_yaml(
        &rx.base,
        &[
            ("rollback", "rollback"),
            ("event", "event"),
            ("post-rollout", "post"),
        ],
        1,
    ));
    let fakes = Fakes::new(Verdict::Fail);
    let ex = fakes.executors(webhooks());
    let mut now = t0();
    let mut s = RolloutStatus::default();
    for _ in 0..5 {
        s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
        now += Duration::seconds(30);
    }
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(s.reason, Some(Reason::AnalysisFailed));
    let rb = rx.hits("/rollback");
    assert_eq!(rb.len(), 1);
    assert_eq!(rb[0].body["type"], "rollback");
    assert_eq!(rb[0].body["phase"], "Failed");
    assert_eq!(rb[0].body["reason"], "analysisFailed");
    assert_eq!(rb[0].body["canaryWeight"], 0);

    // A second revision fails too: one more call, not more.
    *fakes.workloads.revision.lock().unwrap() = "v3".into();
    for _ in 0..5 {
        s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
        now += Duration::seconds(30);
    }
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(s.canary_revision.as_deref(), Some("v3"));
    assert_eq!(rx.hits("/rollback").len(), 2);

    // An abort is a rollback too.
    *fakes.workloads.revision.lock().unwrap() = "v4".into();
    *fakes.analyzer.verdict.lock().unwrap() = Verdict::Pass;
    s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
    assert_eq!(s.phase, Phase::Progressing);
    s = tick(&ex, &r, &plan_of(&r), &s, Some(Command::Abort), now)
        .await
        .status;
    assert_eq!(s.reason, Some(Reason::Aborted));
    s = tick(&ex, &r, &plan_of(&r), &s, None, now + Duration::seconds(30))
        .await
        .status;
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(rx.hits("/rollback").len(), 3);

    // `event` webhooks saw every transition; post-rollout never fired.
    let phases: Vec<String> = rx
        .hits("/event")
        .iter()
        .map(|h| h.body["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        phases.iter().filter(|p| *p == "Failed").count(),
        3,
        "{phases:?}"
    );
    assert!(phases.iter().any(|p| p == "Progressing"));
    assert!(rx.hits("/post").is_empty());
}

#[tokio::test]
async fn rollout_webhooks_are_checks_and_post_rollout_fires_on_success() {
    let rx = Receiver::start().await;
    let r = rollout(&spec_yaml(
        &rx.base,
        &[("rollout", "load-test"), ("post-rollout", "post")],
        1,
    ));
    rx.answer("/load-test", 502);
    let fakes = Fakes::new(Verdict::Pass);
    let ex = fakes.executors(webhooks());
    let mut now = t0();
    let mut s = tick(&ex, &r, &plan_of(&r), &RolloutStatus::default(), None, now)
        .await
        .status;
    assert_eq!(s.canary_weight, 10);
    now += Duration::seconds(30);
    s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
    // The metric passed, the load-test webhook did not: a failed check, rolled back.
    assert_eq!(s.phase, Phase::Failed);
    let check = s
        .last_verdicts
        .iter()
        .find(|c| c.metric == "webhook:load-test")
        .unwrap();
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(check.reason.contains("HTTP 502"), "{check:?}");

    // Healthy this time: walks to the end and post-rollout fires once.
    rx.answer("/load-test", 200);
    s = tick(&ex, &r, &plan_of(&r), &s, Some(Command::Retry), now)
        .await
        .status;
    for _ in 0..6 {
        now += Duration::seconds(30);
        s = tick(&ex, &r, &plan_of(&r), &s, None, now).await.status;
    }
    assert_eq!(s.phase, Phase::Succeeded, "{s:?}");
    assert_eq!(rx.hits("/post").len(), 1);
    assert!(rx.hits("/load-test").len() >= 3);
}

#[tokio::test]
async fn webhook_timeouts_and_tokens() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cr3t-token\n").unwrap();
    let yaml = format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews}}
spec:
  upstreams: {{stable: "127.0.0.1:1", canary: "127.0.0.1:2"}}
  service: {{port: 9080}}
  strategy: {{canary: {{steps: [10]}}}}
  webhooks:
    - {{name: authed, type: confirm-rollout, url: "{}/authed", tokenFromFile: "{}"}}
    - {{name: missing-token, type: confirm-traffic-increase, url: "{}/x", tokenFromEnv: SLUICE_TEST_UNSET_TOKEN}}
"#,
        rx.base,
        token.display(),
        rx.base
    );
    let r = rollout(&yaml);
    let hooks = webhooks();
    use sluice_core::exec::Webhooks;
    let s = RolloutStatus::default();
    let a = hooks
        .call(&r, &s, WebhookKind::ConfirmRollout)
        .await
        .unwrap();
    assert!(a.passed, "{a:?}");
    assert_eq!(
        rx.hits("/authed")[0].authorization.as_deref(),
        Some("Bearer s3cr3t-token")
    );
    let b = hooks
        .call(&r, &s, WebhookKind::ConfirmTrafficIncrease)
        .await
        .unwrap();
    assert!(!b.passed);
    assert!(b.message.contains("SLUICE_TEST_UNSET_TOKEN"), "{b:?}");
    assert!(rx.hits("/x").is_empty(), "no call without its token");
    assert!(hooks.call(&r, &s, WebhookKind::Rollback).await.is_none());

    // A URL that does not parse fails the gate with a message (validation also reports it).
    let mut bad = r.clone();
    bad.spec.webhooks[0].url = "not a url".into();
    let c = hooks
        .call(&bad, &s, WebhookKind::ConfirmRollout)
        .await
        .unwrap();
    assert!(!c.passed);
    assert!(c.message.starts_with("authed: request failed:"), "{c:?}");

    // A webhook slower than its timeout fails the gate with a timeout message.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = slow.local_addr().unwrap();
    // Accept and never answer.
    let _hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        loop {
            if let Ok((c, _)) = slow.accept().await {
                conns.push(c);
            }
        }
    });
    let r = rollout(&format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews}}
spec:
  upstreams: {{stable: "127.0.0.1:1", canary: "127.0.0.1:2"}}
  service: {{port: 9080}}
  strategy: {{canary: {{steps: [10]}}}}
  webhooks:
    - {{name: slow, type: confirm-rollout, url: "http://{addr}/", timeout: 300ms}}
"#
    ));
    let a = hooks
        .call(&r, &s, WebhookKind::ConfirmRollout)
        .await
        .unwrap();
    assert!(!a.passed);
    assert!(a.message.contains("slow: timed out after 300ms"), "{a:?}");
}

#[tokio::test]
async fn notification_hooks_retry_connection_errors_but_gates_do_not() {
    // Nothing listens: a rollback hook is tried `attempts` times, a gate once. The metrics
    // count one call each (the outcome of the call, not of each attempt).
    install_crypto();
    let metrics = Arc::new(sluice_telemetry::Metrics::new());
    let hooks = HttpWebhooks::new(Some(metrics.clone()))
        .unwrap()
        .with_retry(Retry {
            attempts: 3,
            backoff: std::time::Duration::from_millis(10),
        });
    let port = closed_port();
    let r = rollout(&spec_yaml(
        &format!("http://127.0.0.1:{port}"),
        &[("rollback", "rb"), ("confirm-rollout", "gate")],
        1,
    ));
    use sluice_core::exec::Webhooks;
    let s = RolloutStatus::default();
    let start = std::time::Instant::now();
    let a = hooks.call(&r, &s, WebhookKind::Rollback).await.unwrap();
    assert!(!a.passed);
    // Two backoffs (10 + 20 ms) prove the retries happened.
    assert!(start.elapsed() >= std::time::Duration::from_millis(30));
    let g = hooks
        .call(&r, &s, WebhookKind::ConfirmRollout)
        .await
        .unwrap();
    assert!(!g.passed);
    let text = metrics.encode();
    assert!(
        text.contains(r#"sluice_webhook_calls_total{type="rollback",outcome="connect_error"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"sluice_webhook_calls_total{type="confirm-rollout",outcome="connect_error"} 1"#
        ),
        "{text}"
    );
}

#[test]
fn the_webhooks_example_shows_every_webhook_type() {
    let text = std::fs::read_to_string(
        sluice_testkit::files::root().join("rollouts/reviews-canary-webhooks.yaml"),
    )
    .unwrap();
    let r: sluice_core::spec::Rollout =
        serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(&text))
            .unwrap_or_else(|e| panic!("{}: {}", e.path(), e.inner()));
    for kind in WebhookKind::ALL {
        assert!(
            r.spec.webhooks.iter().any(|w| w.kind == kind),
            "no {} webhook in the example",
            kind.as_str()
        );
    }
    for w in &r.spec.webhooks {
        if let Some(t) = &w.timeout {
            sluice_core::duration::parse(t).unwrap();
        }
    }
    assert!(!r.spec.notifications.is_empty());
}

#[test]
fn validation_rejects_secrets_in_webhook_specs() {
    let yaml = r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: reviews}
spec:
  upstreams: {stable: "127.0.0.1:1", canary: "127.0.0.1:2"}
  service: {port: 9080}
  strategy: {canary: {steps: [10]}}
  webhooks:
    - {name: a, type: event, url: "https://user:pw@hooks.example/x"}
    - {name: b, type: event, url: "https://hooks.example/x", tokenFromEnv: T, tokenFromFile: /t}
"#;
    let problems = sluice_core::validate::load_str(yaml, "test.yaml").unwrap_err();
    let found: Vec<(String, String)> = problems
        .iter()
        .map(|p| (p.path.clone(), p.message.clone()))
        .collect();
    assert!(
        found
            .iter()
            .any(|(p, m)| p == "spec.webhooks[0].url" && m.contains("credentials")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(p, m)| p == "spec.webhooks[1].tokenFromEnv" && m.contains("at most one")),
        "{found:?}"
    );
    // The message never repeats the credentials themselves.
    assert!(!found.iter().any(|(_, m)| m.contains("pw@")), "{found:?}");
}
