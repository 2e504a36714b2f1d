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
    replica(api, "replica-a")
}

fn replica(api: &FakeApi, identity: &str) -> Controller {
    let opts = Options {
        namespaces: vec![],
        lease_namespace: "sluice-system".into(),
        lease_name: "sluice-controller".into(),
        identity: identity.into(),
        analyzer: Arc::new(FakeAnalyzer::new(Verdict::Pass)),
        webhooks: Arc::new(NoWebhooks),
        telemetry: None,
        client_limits: Default::default(),
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

fn lease_holder(api: &FakeApi) -> Option<String> {
    api.get(
        "coordination.k8s.io",
        "leases",
        "sluice-system",
        "sluice-controller",
    )?["spec"]["holderIdentity"]
        .as_str()
        .map(String::from)
}

/// Two replicas behind one Service: the follower's API shows the same traffic as the leader's
/// (both read the status), and its event stream (SSE) sees the leader's changes as they happen.
#[tokio::test]
async fn two_replicas_serve_the_same_live_view() {
    use sluice_core::backend::Backend;

    sluice_testkit::fakes::install_crypto();
    let api = FakeApi::new();
    api.seed(
        "apps",
        "deployments",
        fixtures::reviews_deployment(NS, "reviews:v1", 2),
    );
    api.seed("sluice.dev", "rollouts", fixtures::reviews_rollout(NS));
    api.roll_out_deployments();
    let (a, b) = (replica(&api, "replica-a"), replica(&api, "replica-b"));
    let backends = [("replica-a", a.backend()), ("replica-b", b.backend())];
    let runs = [tokio::spawn(a.run()), tokio::spawn(b.run())];

    eventually("one replica leads", || lease_holder(&api).is_some()).await;
    let leader = lease_holder(&api).expect("holder");
    let (_, follower) = backends
        .iter()
        .find(|(id, _)| *id != leader)
        .expect("a follower");
    let (_, leading) = backends
        .iter()
        .find(|(id, _)| *id == leader)
        .expect("leader");
    eventually("initialized by the leader", || {
        rollout(&api)
            .and_then(|r| r.status)
            .is_some_and(|s| s.applied_traffic.is_some())
    })
    .await;

    let mut stream = follower.subscribe();
    // A new revision: the leader starts a rollout and writes the status.
    api.edit("apps", "deployments", NS, "reviews", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = serde_json::json!("reviews:v2");
    });
    api.roll_out_deployments();
    let change = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.recv().await {
                Ok(c) if c.name == "reviews" && c.phase != sluice_core::spec::Phase::Idle => {
                    break c;
                }
                Ok(_) => {}
                Err(e) => panic!("follower stream: {e}"),
            }
        }
    })
    .await
    .expect("the follower's stream sees the leader's change");
    assert_eq!(change.namespace, NS);

    // Both read the status: the same traffic split and state on either replica.
    let mut same = false;
    for _ in 0..500 {
        let (f, l) = (
            follower.get(NS, "reviews").await,
            leading.get(NS, "reviews").await,
        );
        if let (Ok(f), Ok(l)) = (f, l)
            && f.traffic.is_some()
            && f.traffic == l.traffic
            && f.status == l.status
        {
            same = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(same, "the follower's view differs from the leader's");
    for run in runs {
        run.abort();
    }
}

/// The Rollout CRD missing (or RBAC refusing the list): the watch fails, `/readyz` says so
/// instead of "ok"; once the list works again the caches sync and `/readyz` turns ready.
#[tokio::test]
async fn a_failing_rollout_watch_makes_readyz_false_until_it_recovers() {
    sluice_testkit::fakes::install_crypto();
    let api = FakeApi::new();
    // The API server answers 404 to the first two lists of Rollouts, as it does without the CRD.
    api.inject(
        http::Method::GET,
        "/apis/sluice.dev/v1alpha1/rollouts",
        404,
        2,
    );
    let c = controller(&api);
    let readiness = c.readiness();
    let run = tokio::spawn(c.run());
    eventually("/readyz names the failing watch", || {
        readiness
            .check(std::time::Instant::now())
            .is_err_and(|e| e.contains("watching Rollouts/Deployments fails"))
    })
    .await;
    api.seed("sluice.dev", "rollouts", fixtures::reviews_rollout(NS));
    eventually("/readyz after the list recovered", || {
        // A recovered watch still reports its last failure for a while (FAILING_WINDOW):
        // look past it.
        readiness
            .check(std::time::Instant::now() + sluice_k8s::controller::Readiness::FAILING_WINDOW)
            .is_ok()
    })
    .await;
    run.abort();
}

/// Plays the Deployment controller and the kubelet: every Deployment's pods become Ready soon
/// after each change (until the returned task is aborted).
fn kubelet(api: &FakeApi) -> tokio::task::JoinHandle<()> {
    let api = api.clone();
    tokio::spawn(async move {
        loop {
            api.roll_out_deployments();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    })
}

fn status(api: &FakeApi) -> Option<sluice_core::spec::RolloutStatus> {
    rollout(api)?.status
}

/// Whether a Deployment as stored ran `image` on all its replicas, Ready.
fn runs_ready(d: &Value, image: &str) -> bool {
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    d["spec"]["template"]["spec"]["containers"][0]["image"] == image
        && want > 0
        && d["status"]["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64()
        && d["status"]["readyReplicas"].as_i64() >= Some(want)
}

/// Issue 12: a Rollout deleted while its canary is at a step. Through the real wiring (the
/// Rollout and Deployment watches queue reconciles as they please): the apex Service
/// `reviews` never selects the target's pods while they run the unpromoted template (checked
/// on every change the API server recorded, in order), and once the finalizer is removed the
/// controller sends nothing more about this Rollout.
#[tokio::test]
async fn a_rollout_deleted_mid_canary_never_serves_the_canary_and_goes_quiet() {
    sluice_testkit::fakes::install_crypto();
    let api = FakeApi::new();
    api.seed(
        "apps",
        "deployments",
        fixtures::reviews_deployment(NS, "reviews:v1", 2),
    );
    api.seed("sluice.dev", "rollouts", fixtures::reviews_rollout(NS));
    let pods = kubelet(&api);
    let run = tokio::spawn(controller(&api).run());
    eventually("initialized: v1 stable, target scaled to zero", || {
        status(&api).is_some_and(|s| s.stable_revision.is_some())
            && api
                .get("apps", "deployments", NS, "reviews")
                .is_some_and(|d| d["spec"]["replicas"] == 0)
    })
    .await;

    api.edit("apps", "deployments", NS, "reviews", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = serde_json::json!("reviews:v2");
    });
    eventually("the canary (v2) at its first step, 10%", || {
        status(&api).is_some_and(|s| {
            s.canary_weight == 10 && s.applied_traffic.is_some_and(|t| t.canary_weight() == 10)
        })
    })
    .await;

    let rollouts: Api<Rollout> = Api::namespaced(api.client(), NS);
    rollouts
        .delete("reviews", &Default::default())
        .await
        .expect("delete");
    eventually("the finalizer removed and the Rollout gone", || {
        rollout(&api).is_none()
    })
    .await;
    // A user's edit of the target afterwards is a Deployment event the controller watches:
    // nothing may act on the deleted Rollout because of it.
    api.edit("apps", "deployments", NS, "reviews", |d| {
        d["metadata"]["annotations"] = serde_json::json!({"team": "reviews"});
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    let log = api.log();
    let removed = log
        .iter()
        .rposition(|l| {
            l.resource == "rollouts"
                && l.verb == "patch"
                && l.body.to_string().contains("finalizers")
        })
        .expect("the finalizer was removed by a patch");
    let after: Vec<String> = log[removed + 1..]
        .iter()
        .filter(|l| !matches!(l.verb.as_str(), "watch" | "list") && l.resource != "leases")
        .map(|l| format!("{} {} {} → {}", l.verb, l.resource, l.path, l.status))
        .collect();
    assert!(
        after.is_empty(),
        "requests after the finalizer was removed: {after:#?}"
    );

    // Every state the apex Service was in, against the target's state at that moment.
    let mut target = Value::Null;
    let mut apex_on_target = 0;
    for c in api.history() {
        match (c.resource.as_str(), c.name.as_str()) {
            ("deployments", "reviews") => target = c.object,
            ("services", "reviews")
                if c.kind != "DELETED"
                    && c.object["spec"]["selector"] == serde_json::json!({"app": "reviews"}) =>
            {
                apex_on_target += 1;
                assert!(
                    runs_ready(&target, "reviews:v1"),
                    "the apex selects the target's pods (rv {}) while the target is {}",
                    c.rv,
                    target
                );
            }
            _ => {}
        }
    }
    assert!(
        apex_on_target > 0,
        "the apex never went back to the target's pods"
    );
    assert!(
        runs_ready(
            &api.get("apps", "deployments", NS, "reviews")
                .expect("target"),
            "reviews:v1"
        ),
        "the target runs the stable template at full scale"
    );
    for (resource, name) in [
        ("deployments", "reviews-primary"),
        ("services", "reviews-primary"),
        ("services", "reviews-canary"),
    ] {
        let group = if resource == "deployments" {
            "apps"
        } else {
            ""
        };
        assert!(api.get(group, resource, NS, name).is_none(), "{name} left");
    }
    pods.abort();
    run.abort();
}

/// Requests the controller sent from log entry `from` on, apart from its watches (long-lived
/// streams, opened once) and the leader election's Lease renewals.
fn requests_since(api: &FakeApi, from: usize) -> Vec<String> {
    api.log()[from..]
        .iter()
        .filter(|l| l.verb != "watch" && l.resource != "leases")
        .map(|l| format!("{} {} {} → {}", l.verb, l.resource, l.path, l.status))
        .collect()
}

/// Issue 16 item 5: an idle rollout costs no API request between its own changes. The
/// reconcile reads the Deployments, Services and Istio objects from the watch caches, the web
/// API reads Rollouts from there too, and sluice's own status write does not wake the
/// reconcile again. Counted on the in-memory API server over five analysis intervals (1 s),
/// while the web API is asked for the list and the rollout on every interval.
#[tokio::test]
async fn an_idle_rollout_costs_no_api_request_between_its_changes() {
    use sluice_core::backend::Backend;

    sluice_testkit::fakes::install_crypto();
    let api = FakeApi::new();
    api.seed(
        "apps",
        "deployments",
        fixtures::reviews_deployment(NS, "reviews:v1", 2),
    );
    let mut r = fixtures::reviews_rollout(NS);
    r["spec"]["analysis"]["interval"] = serde_json::json!("1s");
    api.seed("sluice.dev", "rollouts", r);
    let pods = kubelet(&api);
    let c = controller(&api);
    let backend = c.backend();
    let run = tokio::spawn(c.run());
    eventually("initialized: v1 stable, target scaled to zero", || {
        status(&api).is_some_and(|s| s.stable_revision.is_some())
            && api
                .get("apps", "deployments", NS, "reviews")
                .is_some_and(|d| d["spec"]["replicas"] == 0)
    })
    .await;
    // Let the last writes of the initialization settle (the scale-down's watch event).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = api.log().len();
    for _ in 0..5 {
        assert_eq!(backend.list().await.expect("list").len(), 1);
        let view = backend.get(NS, "reviews").await.expect("get");
        assert!(view.traffic.is_some());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let idle = requests_since(&api, start);
    assert!(idle.is_empty(), "an idle rollout's requests: {idle:#?}");

    // The count is not blind: a new revision is a change, and it costs requests.
    api.edit("apps", "deployments", NS, "reviews", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = serde_json::json!("reviews:v2");
    });
    eventually("the canary at its first step", || {
        status(&api).is_some_and(|s| s.canary_weight == 10)
    })
    .await;
    assert!(!requests_since(&api, start).is_empty());
    pods.abort();
    run.abort();
}

/// `--kube-qps 20 --kube-burst 2`: two requests go at once, the next four wait their turn
/// (50 ms apart), none fails.
#[tokio::test]
async fn the_client_rate_limit_spaces_requests_beyond_the_burst() {
    use sluice_k8s::throttle::{ClientLimits, ThrottleLayer};

    sluice_testkit::fakes::install_crypto();
    let api = FakeApi::new();
    api.seed("sluice.dev", "rollouts", fixtures::reviews_rollout(NS));
    let client = kube::client::ClientBuilder::new(api.clone(), "default")
        .with_layer(&ThrottleLayer::new(ClientLimits {
            qps: 20.0,
            burst: 2,
        }))
        .build();
    let rollouts: Api<Rollout> = Api::namespaced(client, NS);
    let t0 = std::time::Instant::now();
    for _ in 0..2 {
        rollouts.get("reviews").await.expect("get");
    }
    assert!(t0.elapsed() < Duration::from_millis(40), "the burst waited");
    for _ in 0..4 {
        rollouts.get("reviews").await.expect("get");
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(190),
        "6 requests at 20/s with a burst of 2 took {took:?}"
    );
    assert_eq!(api.log().len(), 6);
}
