//! The real `Controller` (kube-runtime watches, reflector, leader election, the fenced write
//! client) against the in-memory API server, which streams watch events like the real one.
//! Real time, short waits: each test polls for the state it expects.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, WatchEvent, WatchParams};
use serde_json::Value;
use sluice_core::spec::{Rollout, Verdict};
use sluice_k8s::controller::{Clients, Controller, Options};
use sluice_k8s::gate::LeaderGateLayer;
use sluice_testkit::fakes::{FakeAnalyzer, NoWebhooks};
use sluice_testkit::kube_api::{FakeApi, fixtures};

const NS: &str = "bookinfo";

fn controller(api: &FakeApi) -> Controller {
    let opts = Options {
        namespaces: vec![],
        lease_namespace: "sluice-system".into(),
        lease_name: "sluice-controller".into(),
        identity: "replica-a".into(),
        analyzer: Arc::new(FakeAnalyzer::new(Verdict::Pass)),
        webhooks: Arc::new(NoWebhooks),
        telemetry: None,
    };
    let api = api.clone();
    Controller::with_clients(opts, move |fence| Clients {
        read: api.client(),
        write: kube::client::ClientBuilder::new(api.clone(), "default")
            .with_layer(&LeaderGateLayer::new(fence))
            .build(),
    })
}

/// Polls `f` every 20 ms for up to 10 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn rollout(api: &FakeApi) -> Option<Rollout> {
    api.get("sluice.dev", "rollouts", NS, "reviews")
        .map(|v| serde_json::from_value(v).expect("rollout parses"))
}

fn ready_false_reason(api: &FakeApi) -> Option<String> {
    rollout(api)?
        .status?
        .conditions
        .into_iter()
        .find(|c| c.kind == "Ready" && c.status == "False")
        .map(|c| c.reason)
}

fn events_with_reason(api: &FakeApi, reason: &str) -> usize {
    api.log()
        .into_iter()
        .filter(|l| l.group == "events.k8s.io" && (l.verb == "create" || l.verb == "patch"))
        .filter(|l| l.body["reason"] == reason)
        .count()
}

#[tokio::test]
async fn watches_stream_changes_and_an_expired_resource_version_is_gone() {
    sluice_testkit::fakes::install_crypto();
    let api = FakeApi::new();
    api.seed("sluice.dev", "rollouts", fixtures::reviews_rollout(NS));
    let rollouts: Api<Rollout> = Api::namespaced(api.client(), NS);
    let listed = rollouts.list(&Default::default()).await.expect("list");
    let rv = listed.metadata.resource_version.expect("list rv");

    let mut events = rollouts
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
        r["spec"]["strategy"]["canary"]["steps"] = serde_json::json!([20, 60]);
    });
    match events.next().await {
        Some(Ok(WatchEvent::Modified(r))) => {
            assert_eq!(
                r.spec.strategy.canary.and_then(|c| c.steps),
                Some(vec![20, 60])
            );
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    // After compaction, a watch from the old resourceVersion is told 410 Gone.
    api.compact();
    let mut stale = rollouts
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    match stale.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

/// Missing target → `Ready=False`/`TargetNotFound` and one Event (not one per retry); the
/// Deployment appears → the Deployment watch wakes the controller and the rollout initializes.
#[tokio::test]
async fn a_missing_target_is_reported_once_and_its_arrival_starts_the_rollout() {
    sluice_testkit::fakes::install_crypto();
    let api = FakeApi::new();
    api.seed("sluice.dev", "rollouts", fixtures::reviews_rollout(NS));
    let c = controller(&api);
    let readiness = c.readiness();
    let run = tokio::spawn(c.run());

    eventually("readiness after the caches synced", || {
        readiness.check(std::time::Instant::now()).is_ok()
    })
    .await;
    eventually("Ready=False TargetNotFound", || {
        ready_false_reason(&api).as_deref() == Some("TargetNotFound")
    })
    .await;
    // Let the controller retry a few times: still one Event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events_with_reason(&api, "TargetNotFound"), 1);

    api.seed(
        "apps",
        "deployments",
        fixtures::reviews_deployment(NS, "reviews:v1", 2),
    );
    api.roll_out_deployments();
    eventually("the rollout initialized on the new target", || {
        rollout(&api)
            .and_then(|r| r.status)
            .is_some_and(|s| s.stable_revision.is_some())
    })
    .await;
    eventually("the Ready=False condition cleared", || {
        ready_false_reason(&api).is_none()
    })
    .await;
    let r: Value = api
        .get("sluice.dev", "rollouts", NS, "reviews")
        .expect("rollout");
    assert!(
        r["metadata"]["finalizers"]
            .to_string()
            .contains("sluice.dev"),
        "{r}"
    );
    run.abort();
}
