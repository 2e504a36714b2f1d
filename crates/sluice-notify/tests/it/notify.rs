//! Notifications through `exec::tick` with the `NotifyingRecorder`, posted to a real
//! receiver on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::Duration;
use serde_json::Value;
use sluice_core::spec::{Notification, NotificationKind, Phase, RolloutStatus, Verdict};
use sluice_notify::Telemetry;
use sluice_notify::notify::{Notifier, NotifyConfig, NotifyingRecorder, Topic, classify};
use sluice_notify::webhooks::HttpWebhooks;
use sluice_telemetry::Metrics;
use sluice_testkit::fakes::*;
use sluice_testkit::plan_of;

/// The subset of Slack's Block Kit rules an incoming webhook enforces on what we send.
fn assert_slack_shape(msg: &Value) {
    let text = msg["text"]
        .as_str()
        .expect("text is the notification fallback");
    assert!(!text.is_empty() && text.len() <= 40_000);
    let blocks = msg["blocks"].as_array().expect("blocks array");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "section" => {
                assert!(["mrkdwn", "plain_text"].contains(&b["text"]["type"].as_str().unwrap()));
                assert!(b["text"]["text"].as_str().unwrap().len() <= 3000);
            }
            "context" => {
                let els = b["elements"].as_array().unwrap();
                assert!(!els.is_empty() && els.len() <= 10);
                for e in els {
                    assert_eq!(e["type"], "mrkdwn");
                    assert!(e["text"].is_string());
                }
            }
            other => panic!("unexpected block type {other}"),
        }
    }
}

#[tokio::test]
async fn a_slack_message_is_posted_on_rollback() {
    install_crypto();
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let slack_file = dir.path().join("slack-url");
    std::fs::write(&slack_file, format!("{}/services/T0/B0/secret\n", rx.base)).unwrap();
    let json_file = dir.path().join("json-url");
    std::fs::write(&json_file, format!("{}/sink", rx.base)).unwrap();

    let config = NotifyConfig {
        sinks: vec![Notification {
            kind: NotificationKind::Slack,
            url_from_env: None,
            url_from_file: Some(slack_file.display().to_string()),
        }],
        ui_base_url: Some("https://sluice.example.com/".into()),
    };
    let tel = Telemetry::new(&config).unwrap();
    // Per-rollout JSON sink on top of the global Slack one.
    let r = rollout(&format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  upstreams: {{stable: "127.0.0.1:1", canary: "127.0.0.1:2"}}
  service: {{port: 9080}}
  strategy: {{canary: {{steps: [10, 50]}}}}
  analysis: {{interval: 30s, failureLimit: 1}}
  notifications:
    - {{type: json, urlFromFile: "{}"}}
"#,
        json_file.display()
    ));
    let fakes = Fakes::new(Verdict::Fail);
    let ex = tel.wrap(fakes.executors(Arc::new(HttpWebhooks::new(None).unwrap())));
    let mut s = RolloutStatus::default();
    let mut now = t0();
    for _ in 0..3 {
        s = sluice_testkit::observed_tick_delivered(
            &ex,
            &tel.metrics,
            &r,
            &plan_of(&r),
            &s,
            None,
            now,
        )
        .await
        .status;
        now += Duration::seconds(30);
    }
    assert_eq!(s.phase, Phase::Failed);

    let slack = rx.hits("/services/T0/B0/secret");
    let topics: Vec<&str> = slack
        .iter()
        .map(|h| h.body["text"].as_str().unwrap())
        .collect();
    // started, step 1, rolled back: in that order, nothing else.
    assert_eq!(slack.len(), 3, "{topics:#?}");
    assert!(topics[0].contains("Rollout started"), "{topics:?}");
    assert!(topics[1].contains("Step"), "{topics:?}");
    let rb = &slack[2].body;
    assert_slack_shape(rb);
    let text = rb["text"].as_str().unwrap();
    assert!(text.contains("Rolled back bookinfo/reviews"), "{text}");
    assert!(text.contains("success-rate: fake Fail"), "{text}");
    let context = rb["blocks"][1]["elements"][0]["text"].as_str().unwrap();
    assert!(context.contains("reason analysisFailed"), "{context}");
    assert!(
        context.contains("<https://sluice.example.com/#/rollouts/bookinfo/reviews|open in sluice>"),
        "{context}"
    );
    for h in &slack {
        assert_slack_shape(&h.body);
    }

    // The JSON sink got the same three, with machine-readable fields.
    let sink = rx.hits("/sink");
    assert_eq!(sink.len(), 3);
    let last = &sink[2].body;
    assert_eq!(last["topic"], "rolledBack");
    assert_eq!(last["event"], "RolledBack");
    assert_eq!(last["reason"], "analysisFailed");
    assert_eq!(last["phase"], "Failed");
    assert_eq!(last["namespace"], "bookinfo");
    assert_eq!(last["canaryWeight"], 0);
    assert_eq!(
        last["url"],
        "https://sluice.example.com/#/rollouts/bookinfo/reviews"
    );

    let m = tel.metrics.encode();
    assert!(
        m.contains(r#"sluice_notifications_total{sink="slack",outcome="success"} 3"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sluice_notifications_total{sink="json",outcome="success"} 3"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sluice_rollout_events_total{namespace="bookinfo",name="reviews",reason="RolledBack"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn promotion_and_pause_notify_and_bad_sinks_are_reported() {
    install_crypto();
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("u");
    std::fs::write(&f, format!("{}/hook", rx.base)).unwrap();
    let metrics = Arc::new(Metrics::new());
    let notifier = Arc::new(
        Notifier::new(
            &NotifyConfig {
                sinks: vec![Notification {
                    kind: NotificationKind::Json,
                    url_from_env: None,
                    url_from_file: Some(f.display().to_string()),
                }],
                ui_base_url: None,
            },
            Some(metrics.clone()),
        )
        .unwrap(),
    );
    let r = rollout(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: ratings}
spec:
  upstreams: {stable: "127.0.0.1:1", canary: "127.0.0.1:2"}
  service: {port: 9080}
  strategy: {canary: {steps: [50]}}
  analysis: {interval: 30s}
  notifications:
    - {type: slack, urlFromEnv: SLUICE_TEST_NO_SUCH_VAR}
"#,
    );
    let fakes = Fakes::new(Verdict::Pass);
    let mut ex = fakes.executors(Arc::new(HttpWebhooks::new(None).unwrap()));
    ex.recorder = Arc::new(NotifyingRecorder {
        inner: ex.recorder.clone(),
        notifier,
        metrics: metrics.clone(),
    });
    let mut now = t0();
    let mut s =
        sluice_testkit::tick_delivered(&ex, &r, &plan_of(&r), &RolloutStatus::default(), None, now)
            .await
            .status;
    s = sluice_testkit::tick_delivered(
        &ex,
        &r,
        &plan_of(&r),
        &s,
        Some(sluice_core::engine::Command::Pause),
        now,
    )
    .await
    .status;
    assert_eq!(s.phase, Phase::Paused);
    s = sluice_testkit::tick_delivered(
        &ex,
        &r,
        &plan_of(&r),
        &s,
        Some(sluice_core::engine::Command::Resume),
        now,
    )
    .await
    .status;
    for _ in 0..4 {
        now += Duration::seconds(30);
        s = sluice_testkit::tick_delivered(&ex, &r, &plan_of(&r), &s, None, now)
            .await
            .status;
    }
    assert_eq!(s.phase, Phase::Succeeded);
    let topics: Vec<String> = rx
        .hits("/hook")
        .iter()
        .map(|h| h.body["topic"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(topics, ["started", "step", "paused", "resumed", "promoted"]);
    let m = metrics.encode();
    assert!(
        m.contains(r#"sluice_notifications_total{sink="slack",outcome="config_error"} 5"#),
        "{m}"
    );
}

#[test]
fn only_notifying_events_are_classified() {
    use sluice_core::engine::{Event, EventReason as R};
    let ev = |reason: R| Event::new(reason, "x");
    for (reason, topic) in [
        (R::RolloutStarted, Topic::Started),
        (R::Progressing, Topic::Resumed),
        (R::StepStarted, Topic::Step),
        (R::Promoted, Topic::Step),
        (R::Paused, Topic::Paused),
        (R::GateHeld, Topic::Paused),
        (R::Succeeded, Topic::Promoted),
        (R::RolledBack, Topic::RolledBack),
        (R::Undone, Topic::RolledBack),
        (R::AnalysisFailed, Topic::Failed),
        (R::RouterRefused, Topic::RouterRefused),
        (R::ShadowCheckFailed, Topic::WouldHaveFailed),
    ] {
        assert_eq!(classify(&ev(reason)), Some(topic), "{reason}");
    }
    for quiet in [
        R::Initialized,
        R::GateOpened,
        R::StepAdvanced,
        R::CommandRejected,
        R::Idle,
        R::EffectPending,
    ] {
        assert_eq!(classify(&ev(quiet)), None, "{quiet}");
    }
}

/// The engine names a new rollout `RolloutStarted` and a resume `Progressing`: the topics
/// come from the reason alone, not from the wording of the message.
#[tokio::test]
async fn a_start_and_a_resume_are_told_apart_by_reason() {
    use sluice_core::engine::{Command, EventReason};
    let r = rollout(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: ratings}
spec:
  upstreams: {stable: "127.0.0.1:1", canary: "127.0.0.1:2"}
  service: {port: 9080}
  strategy: {canary: {steps: [50]}}
"#,
    );
    let fakes = Fakes::new(Verdict::Pass);
    let ex = fakes.executors(Arc::new(NoWebhooks));
    let plan = plan_of(&r);
    let now = t0();
    let mut s = RolloutStatus::default();
    for cmd in [None, Some(Command::Pause), Some(Command::Resume)] {
        s = sluice_testkit::tick_delivered(&ex, &r, &plan, &s, cmd, now)
            .await
            .status;
    }
    let events = fakes.recorder.events.lock().unwrap().clone();
    let started: Vec<_> = events
        .iter()
        .filter(|e| e.reason == EventReason::RolloutStarted)
        .collect();
    assert_eq!(started.len(), 1, "{events:?}");
    assert!(started[0].message.starts_with("rolling out v2"));
    let resumed: Vec<_> = events
        .iter()
        .filter(|e| e.reason == EventReason::Progressing)
        .collect();
    assert_eq!(resumed.len(), 1, "{events:?}");
    assert_eq!(resumed[0].message, "resumed by user");
}

#[test]
fn a_missing_global_secret_fails_start_up() {
    let err = Notifier::new(
        &NotifyConfig {
            sinks: vec![Notification {
                kind: NotificationKind::Slack,
                url_from_env: None,
                url_from_file: Some("/nonexistent/slack-url".into()),
            }],
            ui_base_url: None,
        },
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/slack-url"), "{err}");
}
