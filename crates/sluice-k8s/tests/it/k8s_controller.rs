//! The controller's reconcile against an in-memory API server (`k8s_support`): several rounds
//! per test, the way the kube-runtime Controller would call it after each change.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use http::Method;
use serde_json::{Value, json};
use sluice_core::spec::{Phase, Rollout, RolloutStatus, Verdict};
use sluice_k8s::api_calls;
use sluice_k8s::reconcile::{Context, reconcile};
use sluice_k8s::recorder::Live;
use sluice_testkit::fakes::{FakeAnalyzer, NoWebhooks};
use sluice_testkit::kube_api::{FakeApi, fixtures};

const NS: &str = "bookinfo";

/// The reviews world (Deployment + Rollout) in the in-memory API server, a reconcile context
/// with a scripted analyzer and a hand-moved clock. Shared with the Gateway API tests.
pub(crate) struct Harness {
    pub(crate) api: FakeApi,
    pub(crate) ctx: Arc<Context>,
    pub(crate) analyzer: Arc<FakeAnalyzer>,
    now: Arc<Mutex<DateTime<Utc>>>,
}

fn deployment(image: &str, replicas: i64) -> Value {
    fixtures::reviews_deployment(NS, image, replicas)
}

fn rollout() -> Value {
    fixtures::reviews_rollout(NS)
}

impl Harness {
    pub(crate) fn new() -> Self {
        Self::with_rollout(|_| {})
    }

    /// The same world with the Rollout edited before it is stored.
    pub(crate) fn with_rollout(edit: impl FnOnce(&mut Value)) -> Self {
        sluice_testkit::fakes::install_crypto();
        let api = FakeApi::new();
        api.seed("apps", "deployments", deployment("reviews:v1", 2));
        let mut r = rollout();
        edit(&mut r);
        api.seed("sluice.dev", "rollouts", r);
        api.roll_out_deployments();
        let analyzer = Arc::new(FakeAnalyzer::new(Verdict::Pass));
        let now = Arc::new(Mutex::new(
            DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
                .expect("time")
                .with_timezone(&Utc),
        ));
        let clock_now = now.clone();
        let ctx = Arc::new(Context::new(
            api.client(),
            analyzer.clone(),
            Arc::new(NoWebhooks),
            Arc::new(Live::default()),
            Arc::new(move || *clock_now.lock().expect("lock")),
        ));
        Harness {
            api,
            ctx,
            analyzer,
            now,
        }
    }

    pub(crate) fn rollout(&self) -> Option<Rollout> {
        self.api
            .get("sluice.dev", "rollouts", NS, "reviews")
            .map(|v| serde_json::from_value(v).expect("rollout parses"))
    }

    pub(crate) fn status(&self) -> RolloutStatus {
        self.rollout().and_then(|r| r.status).unwrap_or_default()
    }

    pub(crate) async fn reconcile(&self) -> Result<(), sluice_k8s::Error> {
        let r = self.rollout().expect("rollout exists");
        reconcile(Arc::new(r), self.ctx.clone()).await.map(|_| ())
    }

    pub(crate) async fn ok(&self) {
        if let Err(e) = self.reconcile().await {
            panic!("reconcile failed: {e}");
        }
    }

    pub(crate) fn advance(&self, secs: i64) {
        *self.now.lock().expect("lock") += Duration::seconds(secs);
    }

    fn deployment(&self, name: &str) -> Option<Value> {
        self.api.get("apps", "deployments", NS, name)
    }

    fn replicas(&self, name: &str) -> i64 {
        self.deployment(name).expect("deployment")["spec"]["replicas"]
            .as_i64()
            .expect("replicas")
    }

    fn virtual_service_opt(&self) -> Option<Value> {
        self.api
            .get("networking.istio.io", "virtualservices", NS, "reviews")
    }

    fn virtual_service(&self) -> Value {
        self.virtual_service_opt().expect("VirtualService exists")
    }

    /// Weight of `host` in the VirtualService's default (last) route.
    fn weight(&self, host: &str) -> i64 {
        let vs = self.virtual_service();
        let http = vs["spec"]["http"].as_array().expect("http routes");
        let last = http.last().expect("default route");
        last["route"]
            .as_array()
            .expect("route")
            .iter()
            .filter(|d| d["destination"]["host"] == host)
            .map(|d| d["weight"].as_i64().unwrap_or(0))
            .sum()
    }

    /// Finalizer, initialization, primary Ready, target scaled to zero.
    pub(crate) async fn initialized(&self) {
        self.ok().await; // adds the finalizer
        self.ok().await; // creates primary, services, VS at 100% primary
        self.api.roll_out_deployments();
        self.ok().await; // primary Ready: target scaled to zero
        self.api.roll_out_deployments();
    }

    pub(crate) fn new_revision(&self, image: &str) {
        self.api.edit("apps", "deployments", NS, "reviews", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        });
    }

    /// Every request the reconciles made is granted by the RBAC list in code.
    pub(crate) fn assert_rbac_covers_requests(&self) {
        for req in self.api.log() {
            assert!(
                api_calls::allowed(&req.group, &req.resource, &req.verb),
                "request not covered by k8s::api_calls::CALLS (and so not by the ClusterRole): {} {} ({}/{} {})",
                req.method,
                req.path,
                req.group,
                req.resource,
                req.verb
            );
        }
    }
}

#[tokio::test]
async fn first_sight_creates_primary_services_and_an_all_primary_route() {
    let h = Harness::new();
    h.ok().await;
    let r = h.rollout().expect("rollout");
    assert_eq!(
        r.metadata.finalizers,
        Some(vec!["sluice.dev/cleanup".to_string()])
    );
    h.ok().await;
    let primary = h.deployment("reviews-primary").expect("primary created");
    assert_eq!(primary["spec"]["replicas"], 2);
    assert_eq!(
        primary["spec"]["selector"]["matchLabels"],
        json!({"app": "reviews-primary"})
    );
    assert_eq!(
        primary["spec"]["template"]["spec"]["containers"][0]["image"],
        "reviews:v1"
    );
    assert_eq!(primary["metadata"]["ownerReferences"][0]["kind"], "Rollout");
    for svc in ["reviews-primary", "reviews-canary", "reviews"] {
        assert!(
            h.api.get("", "services", NS, svc).is_some(),
            "service {svc}"
        );
    }
    assert_eq!(h.weight("reviews-primary"), 100);
    assert_eq!(h.weight("reviews-canary"), 0);
    let st = h.status();
    assert_eq!(st.phase, Phase::Idle);
    assert_eq!(st.observed_generation, Some(1));
    // Primary not Ready yet: the user's pods keep serving.
    assert_eq!(h.replicas("reviews"), 2);
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(
        h.replicas("reviews"),
        0,
        "target scaled to zero once primary is Ready"
    );
    // Server-side apply with field manager sluice for what sluice owns.
    let vs_apply = h
        .api
        .log()
        .into_iter()
        .find(|l| l.resource == "virtualservices" && l.verb == "patch")
        .expect("VS written");
    assert_eq!(vs_apply.method, Method::PATCH);
    assert!(vs_apply.content_type.starts_with("application/apply-patch"));
    assert!(
        vs_apply.query.contains("fieldManager=sluice"),
        "{}",
        vs_apply.query
    );
    assert!(vs_apply.query.contains("force=true"));
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn new_revision_scales_the_canary_up_with_a_zero_route_until_ready() {
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    let st = h.status();
    assert_eq!(st.phase, Phase::Progressing);
    assert!(st.canary_revision.is_some());
    assert_eq!(h.replicas("reviews"), 2, "canary scaled like the primary");
    // Not Ready yet (its new generation is not rolled out): no traffic.
    assert_eq!(h.weight("reviews-canary"), 0);
    assert_eq!(h.weight("reviews-primary"), 100);
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.weight("reviews-canary"), 10, "first step once Ready");
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn passing_analysis_moves_to_the_next_weight_then_promotes_after_primary_is_ready() {
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.weight("reviews-canary"), 10);
    h.advance(61);
    h.ok().await;
    assert_eq!(h.weight("reviews-canary"), 50, "passed analysis: next step");
    assert_eq!(h.status().step_index, 1);
    let st = h.status();
    assert_eq!(st.last_verdicts[0].verdict, Verdict::Pass);

    h.advance(61);
    h.ok().await;
    let st = h.status();
    assert_eq!(st.phase, Phase::Promoting);
    let primary = h.deployment("reviews-primary").expect("primary");
    assert_eq!(
        primary["spec"]["template"]["spec"]["containers"][0]["image"], "reviews:v2",
        "template copied to primary"
    );
    // The primary has not rolled out the new template: traffic stays on the canary.
    assert_eq!(h.weight("reviews-canary"), 50);
    h.ok().await;
    let st = h.status();
    assert_eq!(st.phase, Phase::Promoting);
    assert_eq!(
        st.reason,
        Some(sluice_core::spec::Reason::WaitingForReady),
        "reported"
    );
    assert_eq!(h.weight("reviews-canary"), 50);

    h.api.roll_out_deployments();
    h.ok().await;
    let st = h.status();
    assert_eq!(st.phase, Phase::Succeeded);
    assert_eq!(h.weight("reviews-primary"), 100);
    assert_eq!(
        h.replicas("reviews"),
        0,
        "target scaled to zero after success"
    );
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn failing_analysis_restores_primary_and_scales_the_canary_down() {
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.weight("reviews-canary"), 10);
    h.analyzer.set(Verdict::Fail);
    h.advance(61);
    h.ok().await;
    let st = h.status();
    assert_eq!(st.phase, Phase::Failed);
    assert_eq!(h.weight("reviews-primary"), 100);
    assert_eq!(h.weight("reviews-canary"), 0);
    assert_eq!(h.replicas("reviews"), 0, "canary scaled down");
    let primary = h.deployment("reviews-primary").expect("primary");
    assert_eq!(
        primary["spec"]["template"]["spec"]["containers"][0]["image"], "reviews:v1",
        "primary untouched"
    );
    let healthy = st
        .conditions
        .iter()
        .find(|c| c.kind == "Healthy")
        .expect("Healthy condition");
    assert_eq!(
        (healthy.status.as_str(), healthy.reason.as_str()),
        ("False", "AnalysisFailed")
    );
    // A Warning Kubernetes Event says why.
    let rolled_back = h
        .api
        .log()
        .into_iter()
        .filter(|l| l.group == "events.k8s.io" && l.verb == "create")
        .find(|l| l.body["reason"] == "RolledBack")
        .expect("RolledBack event");
    assert_eq!(rolled_back.body["type"], "Warning");
    assert_eq!(rolled_back.body["regarding"]["kind"], "Rollout");
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn a_conflict_on_write_is_retried_not_lost() {
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.api.clear_log();
    h.api
        .inject(Method::PATCH, "/rollouts/reviews/status", 409, 1);
    h.api.inject(Method::PATCH, "/deployments/reviews", 409, 1);
    h.ok().await;
    let st = h.status();
    assert_eq!(st.phase, Phase::Progressing, "status written after a 409");
    assert_eq!(h.replicas("reviews"), 2, "scale written after a 409");
    let status_writes: Vec<u16> = h
        .api
        .log()
        .iter()
        .filter(|l| l.resource == "rollouts/status")
        .map(|l| l.status)
        .collect();
    assert_eq!(status_writes, vec![409, 200]);

    // A conflict that never ends fails the reconcile (it is requeued) instead of pretending.
    h.api
        .inject(Method::PATCH, "/rollouts/reviews/status", 409, 100);
    h.api.roll_out_deployments();
    assert!(h.reconcile().await.is_err());
}

#[tokio::test]
async fn command_annotation_is_run_once_acknowledged_and_cleared() {
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.weight("reviews-canary"), 10);
    h.api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
        r["metadata"]["annotations"] = json!({"sluice.dev/command": "promote@n1"});
    });
    // The clearing meets a conflict once (someone else touched the object): retried.
    h.api.inject(Method::PATCH, "/rollouts/reviews", 409, 1);
    h.ok().await;
    assert_eq!(h.weight("reviews-canary"), 50, "promote passed the step");
    let r = h.rollout().expect("rollout");
    let ann = r.metadata.annotations.unwrap_or_default();
    assert_eq!(ann.get("sluice.dev/command"), None);
    assert_eq!(
        ann.get("sluice.dev/command-ack").map(String::as_str),
        Some("promote@n1")
    );
    let st = h.status();
    assert!(st.conditions.iter().any(|c| c.kind == "CommandProcessed"
        && c.message == "promote@n1"
        && c.reason == "Accepted"));

    // Same value again (e.g. the clear was lost in a crash): not run twice.
    h.api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
        r["metadata"]["annotations"]["sluice.dev/command"] = json!("promote@n1");
    });
    h.ok().await;
    assert_eq!(h.status().step_index, 1, "not promoted twice");
    let r = h.rollout().expect("rollout");
    assert_eq!(
        r.metadata
            .annotations
            .unwrap_or_default()
            .get("sluice.dev/command"),
        None
    );

    // Abort from kubectl.
    h.api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
        r["metadata"]["annotations"]["sluice.dev/command"] = json!("abort@n2");
    });
    h.ok().await;
    assert_eq!(h.status().phase, Phase::Failed);
    assert_eq!(h.weight("reviews-primary"), 100);
}

/// Issue 15: an `abort` annotated while the reconcile waits on a 30 s-slow analysis lands
/// within a second, not after the analysis.
#[tokio::test]
async fn an_abort_annotated_during_a_slow_analysis_cuts_it_short() {
    use std::sync::atomic::Ordering::SeqCst;
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.weight("reviews-canary"), 10);
    h.advance(61);
    h.analyzer.set_delay(std::time::Duration::from_secs(30));
    let annotate = async {
        while h.analyzer.started.load(SeqCst) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        h.api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
            r["metadata"]["annotations"] = json!({"sluice.dev/command": "abort@n9"});
        });
        std::time::Instant::now()
    };
    let run = tokio::time::timeout(std::time::Duration::from_secs(5), h.reconcile());
    let (result, sent) = tokio::join!(run, annotate);
    let took = sent.elapsed();
    result
        .expect("the reconcile waited for the analysis")
        .expect("reconcile");
    assert!(
        took < std::time::Duration::from_secs(1),
        "abort took {took:?}"
    );
    assert_eq!(h.analyzer.finished.load(SeqCst), 0);
    let st = h.status();
    assert_eq!(st.phase, Phase::Failed);
    assert_eq!(h.weight("reviews-primary"), 100);
    assert!(st.conditions.iter().any(|c| c.kind == "CommandProcessed"
        && c.message == "abort@n9"
        && c.reason == "Accepted"));
    let ann = h
        .rollout()
        .expect("rollout")
        .metadata
        .annotations
        .unwrap_or_default();
    assert_eq!(ann.get("sluice.dev/command"), None, "cleared");
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn deletion_runs_the_finalizer() {
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.weight("reviews-canary"), 10);
    // Mid-rollout deletion: scale the target to zero first to see it come back up.
    h.api.edit("apps", "deployments", NS, "reviews", |d| {
        d["spec"]["replicas"] = json!(0);
    });
    h.api.roll_out_deployments();
    h.api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
        r["metadata"]["deletionTimestamp"] = json!("2026-11-25T10:05:00Z");
    });
    // First round: 100% primary; the target still holds v2, which never passed its steps.
    let err = h.reconcile().await.expect_err("waits for the target");
    assert!(matches!(err, sluice_k8s::Error::Waiting(_)), "{err}");
    assert_eq!(h.weight("reviews-primary"), 100);
    assert!(
        h.deployment("reviews-primary").is_some(),
        "nothing removed yet"
    );
    // Then, round by round: the target gets the stable template back, is scaled up and
    // becomes Ready; only then does the apex Service select its pods.
    let target_image = |h: &Harness| {
        h.deployment("reviews").expect("target")["spec"]["template"]["spec"]["containers"][0]
            ["image"]
            .clone()
    };
    for _ in 0..5 {
        let apex = h.api.get("", "services", NS, "reviews").expect("apex");
        if apex["spec"]["selector"] == json!({"app": "reviews"}) {
            assert_eq!(
                target_image(&h),
                "reviews:v1",
                "the apex never selects unpromoted pods"
            );
        }
        if h.rollout().is_none() {
            break;
        }
        h.api.roll_out_deployments();
        let _ = h.reconcile().await;
    }
    assert_eq!(
        target_image(&h),
        "reviews:v1",
        "the target runs the stable template again"
    );
    assert!(h.rollout().is_none(), "finalizer removed, object gone");
    assert!(h.deployment("reviews-primary").is_none());
    assert!(h.virtual_service_opt().is_none());
    assert!(
        h.api
            .get(
                "networking.istio.io",
                "destinationrules",
                NS,
                "reviews-primary"
            )
            .is_none()
    );
    for svc in ["reviews-primary", "reviews-canary"] {
        assert!(
            h.api.get("", "services", NS, svc).is_none(),
            "{svc} removed"
        );
    }
    let apex = h.api.get("", "services", NS, "reviews").expect("apex kept");
    assert_eq!(
        apex["spec"]["selector"],
        json!({"app": "reviews"}),
        "apex back on the user's pods"
    );
    assert_eq!(h.replicas("reviews"), 2, "user's Deployment scaled back up");
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn writes_are_refused_without_the_lease_and_the_lease_is_exclusive() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, Patch, PatchParams};
    use sluice_k8s::gate::LeaderGateLayer;
    use sluice_k8s::leader::{LeaseConfig, try_acquire_or_renew};

    let h = Harness::new();
    let fence = sluice_k8s::leader::Fence::new();
    let gated = kube::client::ClientBuilder::new(h.api.clone(), "default")
        .with_layer(&LeaderGateLayer::new(fence.clone()))
        .build();
    let rollouts: Api<Rollout> = Api::namespaced(gated, NS);
    let patch = json!({"metadata": {"labels": {"x": "y"}}});
    h.api.clear_log();
    assert!(rollouts.get("reviews").await.is_ok(), "reads pass");
    let err = rollouts
        .patch("reviews", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("write refused while not leader");
    assert!(err.to_string().contains("not the leader"), "{err}");
    assert!(
        h.api.log().iter().all(|l| l.verb == "get"),
        "the refused write never reached the API server"
    );
    fence.renewed(
        tokio::time::Instant::now(),
        std::time::Duration::from_secs(15),
    );
    assert!(
        rollouts
            .patch("reviews", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .is_ok()
    );
    fence.revoke();
    assert!(
        rollouts
            .patch("reviews", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .is_err(),
        "losing the lease stops writes at once"
    );

    let leases: Api<Lease> = Api::namespaced(h.api.client(), "sluice-system");
    let a = LeaseConfig::new("sluice-controller", "a");
    let b = LeaseConfig::new("sluice-controller", "b");
    assert!(try_acquire_or_renew(&leases, &a).await.expect("a"));
    assert!(!try_acquire_or_renew(&leases, &b).await.expect("b waits"));
    assert!(try_acquire_or_renew(&leases, &a).await.expect("a renews"));
    // a stops renewing: after expiry b takes over, and a sees it lost.
    h.api.edit(
        "coordination.k8s.io",
        "leases",
        "sluice-system",
        "sluice-controller",
        |l| {
            l["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z");
        },
    );
    // Two replicas racing for the expired lease: the one whose replace carries a stale
    // resourceVersion gets 409 and does not lead.
    h.api
        .inject(Method::PUT, "/leases/sluice-controller", 409, 1);
    assert!(
        !try_acquire_or_renew(&leases, &b)
            .await
            .expect("b lost the race")
    );
    assert!(
        try_acquire_or_renew(&leases, &b)
            .await
            .expect("b takes over")
    );
    assert!(!try_acquire_or_renew(&leases, &a).await.expect("a lost it"));
    let lease = h
        .api
        .get(
            "coordination.k8s.io",
            "leases",
            "sluice-system",
            "sluice-controller",
        )
        .expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // b shuts down and hands over: a leads at once, without waiting for expiry.
    sluice_k8s::leader::release(&leases, &a)
        .await
        .expect("not ours: no-op");
    assert!(
        !try_acquire_or_renew(&leases, &a)
            .await
            .expect("b still holds it")
    );
    sluice_k8s::leader::release(&leases, &b)
        .await
        .expect("release");
    assert!(
        try_acquire_or_renew(&leases, &a)
            .await
            .expect("a takes over at once")
    );
}

#[tokio::test]
async fn web_api_backend_reads_rollouts_and_sends_commands_through_the_annotation() {
    use sluice_core::backend::{Backend, BackendError};
    use sluice_core::engine::Command;
    use sluice_k8s::backend::KubeBackend;

    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    let backend = KubeBackend::new(h.api.client(), vec![], h.ctx.live.clone());
    let mut changes = backend.subscribe();

    let list = backend.list().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status.canary_weight, 10);
    assert_eq!(list[0].stages, vec!["canary 10%", "canary 50%"]);
    assert_eq!(
        list[0].traffic.as_ref().map(|t| t.canary_weight()),
        Some(10)
    );
    let events = backend.events(NS, "reviews").await.expect("events");
    assert!(
        events.iter().any(|e| e.reason == "StepStarted"),
        "{events:?}"
    );
    assert!(matches!(
        backend.get(NS, "ratings").await,
        Err(BackendError::NotFound(_))
    ));

    // Not allowed in this phase: 409, nothing written.
    assert!(matches!(
        backend.command(NS, "reviews", Command::Retry).await,
        Err(BackendError::Conflict(_))
    ));
    backend
        .command(NS, "reviews", Command::Promote)
        .await
        .expect("promote accepted");
    let r = h.rollout().expect("rollout");
    let value = r
        .metadata
        .annotations
        .unwrap_or_default()
        .get("sluice.dev/command")
        .cloned()
        .expect("annotation written");
    assert!(value.starts_with("promote@"), "{value}");
    h.ok().await;
    assert_eq!(h.weight("reviews-canary"), 50, "the controller ran it");
    let change = changes.try_recv().expect("a change was published");
    assert_eq!(
        (change.namespace.as_str(), change.name.as_str()),
        (NS, "reviews")
    );

    h.advance(61);
    h.ok().await; // an analysis ran: status.lastVerdicts is filled

    // Another replica (nothing in memory) reads history from Kubernetes Events.
    h.api.seed(
        "",
        "events",
        json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": "reviews.1", "namespace": NS},
               "involvedObject": {"kind": "Rollout", "name": "reviews", "namespace": NS},
               "reason": "RolledBack", "message": "success-rate 80 < 99", "type": "Warning",
               "lastTimestamp": "2026-11-25T10:01:00Z"}),
    );
    let other = KubeBackend::new(h.api.client(), vec![NS.into()], Arc::new(Live::default()));
    h.api.clear_log();
    let events = other.events(NS, "reviews").await.expect("events");
    assert_eq!(events.len(), 1);
    assert!(events[0].warning && events[0].reason == "RolledBack");
    let list_call = h
        .api
        .log()
        .into_iter()
        .find(|l| l.resource == "events")
        .expect("events listed");
    assert!(
        list_call.query.contains("fieldSelector="),
        "{}",
        list_call.query
    );
    let analysis = other.analysis(NS, "reviews").await.expect("analysis");
    assert!(!analysis.is_empty());
    assert_eq!(
        analysis,
        h.status().last_verdicts,
        "falls back to status.lastVerdicts"
    );
    assert!(matches!(
        other.get("elsewhere", "reviews").await,
        Err(BackendError::NotFound(_))
    ));
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn undo_puts_the_previous_template_back_on_the_primary() {
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    for _ in 0..2 {
        h.advance(61);
        h.ok().await;
    }
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.status().phase, Phase::Succeeded);
    let image = |h: &Harness| {
        h.deployment("reviews-primary").expect("primary")["spec"]["template"]["spec"]["containers"]
            [0]["image"]
            .clone()
    };
    assert_eq!(image(&h), "reviews:v2");
    h.api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
        r["metadata"]["annotations"] = json!({"sluice.dev/command": "undo@u1"});
    });
    h.ok().await;
    assert_eq!(image(&h), "reviews:v1", "previous template restored");
    assert_eq!(h.status().reason, Some(sluice_core::spec::Reason::Undone));
    assert_eq!(h.weight("reviews-primary"), 100);
}

#[tokio::test]
async fn a_missing_target_is_an_error_that_names_it() {
    let h = Harness::new();
    h.ok().await; // finalizer
    h.api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
        r["spec"]["targetRef"]["name"] = json!("reviewz");
    });
    for _ in 0..3 {
        let err = h.reconcile().await.expect_err("no target");
        assert!(err.to_string().contains("bookinfo/reviewz"), "{err}");
    }
    assert!(h.deployment("reviews-primary").is_none(), "nothing created");
    // Where the user looks: the condition, the message, one Event (not one per retry).
    let ready = h.ready_condition().expect("Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "TargetNotFound")
    );
    assert!(
        ready.message.contains("bookinfo/reviewz"),
        "{}",
        ready.message
    );
    assert_eq!(h.events_with_reason("TargetNotFound"), 1);
    // The Deployment appears: the rollout starts and the condition goes.
    let mut d = deployment("reviews:v1", 2);
    d["metadata"]["name"] = json!("reviewz");
    h.api.seed("apps", "deployments", d);
    h.api.roll_out_deployments();
    h.ok().await;
    assert!(h.ready_condition().is_none(), "{:?}", h.status().conditions);
    assert!(
        h.deployment("reviews-primary").is_some(),
        "the primary is made from reviewz"
    );
}

#[tokio::test]
async fn a_target_selected_only_by_match_expressions_is_reported() {
    let h = Harness::new();
    h.ok().await; // finalizer
    h.api.edit("apps", "deployments", NS, "reviews", |d| {
        d["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["reviews"]}]});
    });
    assert!(h.reconcile().await.is_err());
    let ready = h.ready_condition().expect("Ready condition");
    assert_eq!(ready.reason, "UnsupportedSelector");
    assert!(ready.message.contains("matchLabels"), "{}", ready.message);
    assert_eq!(h.events_with_reason("UnsupportedSelector"), 1);
}

#[tokio::test]
async fn a_cluster_without_istio_networking_v1_is_reported_by_name() {
    let h = Harness::new();
    h.ok().await; // finalizer
    h.api
        .inject(Method::PATCH, "/destinationrules/reviews-primary", 404, 100);
    for _ in 0..2 {
        assert!(h.reconcile().await.is_err());
    }
    let ready = h.ready_condition().expect("Ready condition");
    assert_eq!(ready.reason, "IstioAPIMissing");
    assert!(
        ready.message.contains("networking.istio.io/v1"),
        "{}",
        ready.message
    );
    assert_eq!(h.events_with_reason("IstioAPIMissing"), 1);
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn a_reconcile_with_nothing_new_writes_nothing() {
    let h = Harness::new();
    h.initialized().await;
    h.ok().await;
    h.api.clear_log();
    h.ok().await;
    let writes: Vec<String> = h
        .api
        .log()
        .into_iter()
        // Server-side applies of unchanged objects are no-ops on a real API server.
        .filter(|l| l.verb != "get" && !l.content_type.starts_with("application/apply-patch"))
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "no status write, no scaling, no event"
    );
}

impl Harness {
    fn edit_rollout(&self, f: impl FnOnce(&mut Value)) {
        self.api.edit("sluice.dev", "rollouts", NS, "reviews", f);
    }

    pub(crate) fn ready_condition(&self) -> Option<sluice_core::spec::Condition> {
        self.status()
            .conditions
            .into_iter()
            .find(|c| c.kind == "Ready")
    }

    /// Warning Events with `reason` sent (created, or repeated as a series patch).
    pub(crate) fn events_with_reason(&self, reason: &str) -> usize {
        self.api
            .log()
            .into_iter()
            .filter(|l| l.group == "events.k8s.io" && (l.verb == "create" || l.verb == "patch"))
            .filter(|l| l.body["reason"] == reason)
            .count()
    }
}

#[tokio::test]
async fn an_invalid_spec_is_refused_with_its_field_path_and_nothing_is_created() {
    // `sluice validate` refuses steps that do not increase; so must the controller.
    let h = Harness::new();
    h.edit_rollout(|r| r["spec"]["strategy"]["canary"]["steps"] = json!([50, 20]));
    h.ok().await; // finalizer
    h.ok().await;
    h.ok().await;
    let ready = h.ready_condition().expect("Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(
        ready.message.contains("spec.strategy.canary.steps[1]"),
        "the first problem's field path: {}",
        ready.message
    );
    assert!(h.status().message.unwrap_or_default().contains("steps[1]"));
    assert!(
        h.deployment("reviews-primary").is_none(),
        "no primary for an invalid spec"
    );
    assert!(
        h.virtual_service_opt().is_none(),
        "no routing for an invalid spec"
    );
    assert_eq!(h.replicas("reviews"), 2, "the user's Deployment untouched");
    assert_eq!(
        h.events_with_reason("InvalidSpec"),
        1,
        "one Warning Event per generation, not per retry"
    );
    h.assert_rbac_covers_requests();

    // Another invalid edit (a new generation) says so once more.
    h.edit_rollout(|r| r["spec"]["strategy"]["canary"]["steps"] = json!([50, 150]));
    h.ok().await;
    h.ok().await;
    assert_eq!(h.events_with_reason("InvalidSpec"), 2);
    assert!(
        h.ready_condition()
            .expect("Ready")
            .message
            .contains("steps[1]")
    );

    // Fixing the spec clears the condition and the rollout initializes.
    h.edit_rollout(|r| r["spec"]["strategy"]["canary"]["steps"] = json!([10, 50]));
    h.ok().await;
    assert!(h.ready_condition().is_none(), "{:?}", h.status().conditions);
    assert!(h.deployment("reviews-primary").is_some());
    assert_eq!(h.weight("reviews-primary"), 100);
}

#[tokio::test]
async fn an_invalid_edit_mid_rollout_leaves_traffic_where_it_is() {
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    let weight_before = h.weight("reviews-canary");
    let phase_before = h.status().phase;
    assert_eq!(phase_before, Phase::Progressing);
    // A type error is refused by the API server's schema; a rule only sluice knows is not.
    h.edit_rollout(|r| r["spec"]["strategy"]["canary"]["steps"] = json!([10, 10]));
    for _ in 0..3 {
        h.advance(120);
        h.ok().await;
    }
    assert_eq!(
        h.weight("reviews-canary"),
        weight_before,
        "no engine step on an invalid spec"
    );
    let st = h.status();
    assert_eq!(st.phase, phase_before);
    assert_eq!(h.ready_condition().expect("Ready").reason, "InvalidSpec");
    assert_eq!(h.events_with_reason("InvalidSpec"), 1);
}

#[tokio::test]
async fn a_stale_copy_of_a_deleted_rollout_changes_nothing() {
    let h = Harness::new();
    h.initialized().await;
    h.edit_rollout(|r| r["metadata"]["deletionTimestamp"] = json!("2026-11-25T10:05:00Z"));
    // First round: traffic to primary, the target scaled back up; cleanup waits for it.
    assert!(h.reconcile().await.is_err());
    h.api.roll_out_deployments();
    // What the reflector cache may still hold when the finalizer has already run.
    let stale = h.rollout().expect("rollout");
    h.ok().await;
    assert!(h.rollout().is_none(), "finalizer ran, object gone");
    let finalized = |h: &Harness| {
        h.api
            .log()
            .into_iter()
            .filter(|l| l.group == "events.k8s.io" && l.body["reason"] == "Finalized")
            .count()
    };
    assert_eq!(finalized(&h), 1);
    h.api.clear_log();

    // A reconcile queued by a related object's event, acting on the cached copy.
    reconcile(Arc::new(stale), h.ctx.clone())
        .await
        .expect("nothing to do is not an error");
    let requests: Vec<String> = h
        .api
        .log()
        .into_iter()
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    assert!(
        requests.is_empty(),
        "no request after the finalizer is gone, not even a read: {requests:?}"
    );
    assert!(
        h.virtual_service_opt().is_none(),
        "the VirtualService is not re-created"
    );
    assert_eq!(finalized(&h), 0, "Finalized is not sent again");
}

#[tokio::test]
async fn deleting_a_rollout_that_never_ran_creates_no_routing() {
    let h = Harness::new();
    h.ok().await; // the finalizer only
    h.edit_rollout(|r| r["metadata"]["deletionTimestamp"] = json!("2026-11-25T10:05:00Z"));
    h.ok().await;
    assert!(h.rollout().is_none());
    assert!(
        h.virtual_service_opt().is_none(),
        "no VirtualService pointing at a primary that never existed"
    );
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn every_write_names_sluice_as_its_field_manager() {
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    for _ in 0..4 {
        h.ok().await;
        h.api.roll_out_deployments();
        h.advance(70);
    }
    h.edit_rollout(|r| r["metadata"]["deletionTimestamp"] = json!("2026-11-25T10:05:00Z"));
    for _ in 0..10 {
        if h.rollout().is_none() {
            break;
        }
        let _ = h.reconcile().await;
        h.api.roll_out_deployments();
    }
    assert!(h.rollout().is_none(), "cleanup finished");
    let writes: Vec<_> = h
        .api
        .log()
        .into_iter()
        .filter(|l| !matches!(l.verb.as_str(), "get" | "list" | "watch" | "delete"))
        // kube-runtime's own writes: its event recorder and its finalizer helper.
        .filter(|l| l.group != "events.k8s.io")
        .filter(|l| {
            !(l.resource == "rollouts" && l.content_type.starts_with("application/json-patch"))
        })
        .collect();
    assert!(writes.len() > 10, "the lifecycle wrote: {}", writes.len());
    for w in writes {
        assert!(
            w.query.split('&').any(|kv| kv == "fieldManager=sluice"),
            "{} {}?{} has no fieldManager=sluice",
            w.method,
            w.path,
            w.query
        );
    }
}

/// A leader that stops renewing — frozen by SIGSTOP, on a stalled node, or starved — sends no
/// write once its lease could have expired, although nothing told it that it lost the lease
/// (its election loop never ran again). Paused clock: the replica renews once, then time passes.
#[tokio::test(start_paused = true)]
async fn a_leader_that_missed_its_renewals_sends_nothing() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, Patch, PatchParams};
    use sluice_k8s::gate::LeaderGateLayer;
    use sluice_k8s::leader::{Fence, LeaseConfig, renew_fenced, safety_margin};

    let h = Harness::new();
    let fence = Fence::new();
    let gated = kube::client::ClientBuilder::new(h.api.clone(), "default")
        .with_layer(&LeaderGateLayer::new(fence.clone()))
        .build();
    let rollouts: Api<Rollout> = Api::namespaced(gated, NS);
    let leases: Api<Lease> = Api::namespaced(h.api.client(), "sluice-system");
    let cfg = LeaseConfig::new("sluice-controller", "a");
    assert!(renew_fenced(&leases, &cfg, &fence).await.expect("a leads"));
    let patch = json!({"metadata": {"labels": {"x": "y"}}});
    let (params, merge) = (PatchParams::default(), Patch::Merge(&patch));
    let write = || rollouts.patch("reviews", &params, &merge);
    assert!(write().await.is_ok(), "a fresh lease writes");

    // Frozen past the lease minus the margin: the next write is refused at the gate.
    tokio::time::advance(cfg.duration - safety_margin(cfg.duration)).await;
    h.api.clear_log();
    let err = write()
        .await
        .expect_err("no write after the lease could have expired");
    assert!(err.to_string().contains("not the leader"), "{err}");
    assert!(
        h.api.log().iter().all(|l| l.verb == "get"),
        "nothing but reads reached the API server: {:?}",
        h.api.log()
    );
    // Renewing again (the lease was still ours) opens it again.
    assert!(renew_fenced(&leases, &cfg, &fence).await.expect("renewed"));
    assert!(write().await.is_ok());
}

/// No churn: once a rollout is initialized and idle, ten intervals of reconciles write nothing
/// (no apply of unchanged Services, DestinationRules or VirtualService, no status write).
#[tokio::test]
async fn an_idle_rollout_makes_no_write_in_ten_intervals() {
    let h = Harness::new();
    h.initialized().await;
    h.ok().await;
    h.api.clear_log();
    for _ in 0..10 {
        h.advance(60);
        h.ok().await;
    }
    let writes: Vec<String> = h
        .api
        .log()
        .into_iter()
        .filter(|l| !matches!(l.verb.as_str(), "get" | "list" | "watch"))
        .map(|l| format!("{} {} {}", l.verb, l.resource, l.path))
        .collect();
    assert!(writes.is_empty(), "idle reconciles wrote: {writes:#?}");
    // Reads remain (docs/kubernetes.md quotes the figure): GETs of the Rollout's objects, not
    // yet served from watch caches. A regression guard, not a goal.
    let requests = h.api.log().len();
    assert!(
        requests <= 10 * 11,
        "{requests} requests in 10 idle reconciles"
    );
}

/// The rollback's canary scale-down is forbidden (RBAC, an admission webhook): the rollback
/// still stands — Failed, all traffic on primary, `RolledBack` sent once — and the scale-down
/// stays pending (condition `EffectsApplied=False`), retried until it goes through.
#[tokio::test]
async fn a_forbidden_canary_scale_down_does_not_undo_the_rollback() {
    use sluice_core::spec::WorkloadAction;
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.weight("reviews-canary"), 10);
    let canary_replicas = h.replicas("reviews");
    assert!(canary_replicas > 0);

    h.analyzer.set(Verdict::Fail);
    h.api.inject(Method::PATCH, "/deployments/reviews", 403, 3);
    h.advance(61);
    assert!(
        h.reconcile().await.is_err(),
        "the refused scale-down is an error"
    );
    let st = h.status();
    assert_eq!(st.phase, Phase::Failed, "{st:?}");
    assert_eq!(h.weight("reviews-primary"), 100);
    assert_eq!(h.weight("reviews-canary"), 0);
    assert_eq!(
        st.applied_traffic.as_ref().map(|p| p.canary_weight()),
        Some(0),
        "the status says what is served"
    );
    let pending: Vec<_> = st.pending_effects.iter().map(|p| p.action).collect();
    assert_eq!(pending, [WorkloadAction::ScaleDownCanary]);
    let cond = st
        .conditions
        .iter()
        .find(|c| c.kind == "EffectsApplied")
        .expect("EffectsApplied condition");
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "EffectPending")
    );
    assert!(cond.message.contains("scale down canary"), "{cond:?}");
    assert_eq!(
        h.replicas("reviews"),
        canary_replicas,
        "not scaled down yet"
    );

    // Still forbidden twice more: retried, nothing else happens.
    for _ in 0..2 {
        h.advance(10);
        assert!(h.reconcile().await.is_err());
        assert_eq!(h.status().phase, Phase::Failed);
    }
    h.advance(10);
    h.ok().await;
    assert_eq!(h.replicas("reviews"), 0, "scaled down once allowed");
    let st = h.status();
    assert!(st.pending_effects.is_empty(), "{:?}", st.pending_effects);
    assert!(st.conditions.iter().all(|c| c.kind != "EffectsApplied"));
    let forbidden = h
        .api
        .log()
        .into_iter()
        .filter(|l| l.path.ends_with("/deployments/reviews") && l.method == Method::PATCH)
        .filter(|l| l.status == 403)
        .count();
    assert_eq!(forbidden, 3, "the scale-down was retried");
    assert_eq!(
        h.events_with_reason("RolledBack"),
        1,
        "RolledBack recorded once"
    );
    assert_eq!(
        h.events_with_reason("EffectPending"),
        1,
        "one warning, not one per retry"
    );
    h.assert_rbac_covers_requests();
}

/// No Event leaves for a status that was not persisted: the status write fails, nothing is
/// announced; the next reconcile decides again and announces it once.
#[tokio::test]
async fn no_event_is_sent_for_a_status_that_was_not_written() {
    let h = Harness::new();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    h.analyzer.set(Verdict::Fail);
    h.api
        .inject(Method::PATCH, "/rollouts/reviews/status", 500, 1);
    h.advance(61);
    assert!(h.reconcile().await.is_err());
    assert_ne!(h.status().phase, Phase::Failed, "not persisted");
    assert_eq!(
        h.events_with_reason("RolledBack"),
        0,
        "announced before it was written"
    );
    // The next reconciles decide again from the persisted status (the canary was already
    // scaled down, so it first waits for it) and announce the rollback once it is written.
    for _ in 0..6 {
        if h.status().phase == Phase::Failed {
            break;
        }
        h.api.roll_out_deployments();
        h.advance(61);
        h.ok().await;
    }
    assert_eq!(h.status().phase, Phase::Failed);
    assert_eq!(h.events_with_reason("RolledBack"), 1);
}

fn errors_template(query_label: &str) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "errors", "namespace": NS},
        "spec": {
            "args": [{"name": "service"}, {"name": "maxPercent", "type": "number", "default": 1}],
            "metrics": [{
                "name": "errors",
                "query": format!("sum(rate(errors{{{query_label}=\"{{{{ args.service }}}}\"}}[{{{{ interval }}}}]))"),
                "thresholds": {"max": "{{ args.maxPercent }}"}
            }]
        }
    })
}

#[tokio::test]
async fn a_rollout_runs_its_templates_metrics_and_records_a_template_edit() {
    let h = Harness::with_rollout(|r| {
        r["spec"]["analysis"]["templates"] = json!([
            {"name": "errors", "args": {"service": "reviews", "maxPercent": 2}},
            {"name": "latency", "clusterScope": true}
        ]);
    });
    // Neither template exists yet: refused with the field path, nothing created, looked at
    // again later (creating a template does not touch the Rollout).
    h.ok().await;
    h.ok().await;
    let ready = h.ready_condition().expect("Ready condition");
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready.message.contains(
            "spec.analysis.templates[0].name: AnalysisTemplate bookinfo/errors not found"
        ),
        "{}",
        ready.message
    );
    assert!(h.deployment("reviews-primary").is_none());

    h.api
        .seed("sluice.dev", "analysistemplates", errors_template("svc"));
    h.api.seed(
        "sluice.dev",
        "clusteranalysistemplates",
        json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "ClusterAnalysisTemplate",
            "metadata": {"name": "latency"},
            "spec": {"metrics": [{"name": "p99", "builtin": "request-duration", "thresholds": {"max": 500}}]}
        }),
    );
    let rv = |h: &Harness| {
        h.api
            .get("sluice.dev", "analysistemplates", NS, "errors")
            .expect("template")["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_string()
    };
    let first = rv(&h);
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    h.advance(61);
    h.ok().await;
    let seen = h.analyzer.metrics.lock().expect("lock").clone();
    let last = seen.last().expect("an analysis ran");
    let names: Vec<&str> = last.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["errors", "p99"]);
    assert_eq!(
        last[0].query.as_deref(),
        Some(r#"sum(rate(errors{svc="reviews"}[{{ interval }}]))"#)
    );
    assert_eq!(last[0].thresholds.max, Some(2.0));
    assert!(
        h.status()
            .analysis_templates
            .contains(&format!("AnalysisTemplate errors@{first}")),
        "{:?}",
        h.status().analysis_templates
    );

    // The team edits the template: the next check uses it, and the history names the version.
    h.api
        .edit("sluice.dev", "analysistemplates", NS, "errors", |t| {
            t["spec"] = errors_template("service")["spec"].clone();
        });
    let second = rv(&h);
    assert_ne!(first, second);
    h.advance(61);
    h.ok().await;
    let last = h
        .analyzer
        .metrics
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("analysis");
    assert_eq!(
        last[0].query.as_deref(),
        Some(r#"sum(rate(errors{service="reviews"}[{{ interval }}]))"#)
    );
    // The history the API and UI show (Kubernetes Events of one reason become a series).
    let changed = h
        .ctx
        .live
        .events(&format!("{NS}/reviews"))
        .into_iter()
        .filter(|e| e.reason == "AnalysisTemplateChanged")
        .map(|e| e.message)
        .collect::<Vec<_>>();
    assert_eq!(h.events_with_reason("AnalysisTemplateChanged"), 2);
    assert!(
        changed.iter().any(|n| n.contains(&format!(
            "AnalysisTemplate errors@{second} (was AnalysisTemplate errors@{first})"
        ))),
        "{changed:?}"
    );
    h.assert_rbac_covers_requests();
}
