//! The controller with `spec.routing.gatewayAPI`: the same reconcile against the in-memory API
//! server, writing an HTTPRoute (or GRPCRoute) instead of the VirtualService and
//! DestinationRules, through a whole canary, a rollback and the finalizer.

use http::Method;
use serde_json::{Value, json};
use sluice_core::spec::{Phase, Verdict};

use crate::k8s_controller::Harness;

const NS: &str = "bookinfo";
const GROUP: &str = "gateway.networking.k8s.io";

impl Harness {
    fn route(&self, resource: &str) -> Option<Value> {
        self.api.get(GROUP, resource, NS, "reviews")
    }

    /// Weight of `backend` in the HTTPRoute's default (last) rule.
    fn backend_weight(&self, backend: &str) -> i64 {
        let route = self.route("httproutes").expect("HTTPRoute exists");
        let rules = route["spec"]["rules"].as_array().expect("rules");
        rules.last().expect("default rule")["backendRefs"]
            .as_array()
            .expect("backendRefs")
            .iter()
            .filter(|b| b["name"] == backend)
            .map(|b| b["weight"].as_i64().unwrap_or(0))
            .sum()
    }

    fn no_istio_objects(&self) {
        for l in self.api.log() {
            assert_ne!(
                l.group, "networking.istio.io",
                "a Gateway API Rollout touched Istio: {} {}",
                l.method, l.path
            );
        }
    }
}

/// The shared harness with `spec.routing` set to `routing`.
fn harness(routing: Value) -> Harness {
    Harness::with_rollout(|r| r["spec"]["routing"] = routing)
}

fn gateway_routing() -> Value {
    json!({"gatewayAPI": {
        "parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "https"}],
        "hostnames": ["reviews.example.com"],
    }})
}

#[tokio::test]
async fn a_canary_moves_the_httproute_weights_then_promotes() {
    let h = harness(gateway_routing());
    h.initialized().await;
    let route = h.route("httproutes").expect("HTTPRoute created");
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"name": "public", "namespace": "infra", "sectionName": "https"}])
    );
    assert_eq!(route["spec"]["hostnames"], json!(["reviews.example.com"]));
    assert_eq!(route["metadata"]["ownerReferences"][0]["kind"], "Rollout");
    assert_eq!(h.backend_weight("reviews-primary"), 100);
    assert_eq!(h.backend_weight("reviews-canary"), 0);

    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.backend_weight("reviews-canary"), 10, "first step");
    assert_eq!(h.backend_weight("reviews-primary"), 90);
    h.advance(61);
    h.ok().await;
    assert_eq!(
        h.backend_weight("reviews-canary"),
        50,
        "passed analysis: next step"
    );
    h.advance(61);
    h.ok().await;
    assert_eq!(h.status().phase, Phase::Promoting);
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.status().phase, Phase::Succeeded);
    assert_eq!(h.backend_weight("reviews-primary"), 100);
    assert_eq!(h.backend_weight("reviews-canary"), 0);

    // Every route write is a forced server-side apply by `sluice`.
    let writes: Vec<_> = h
        .api
        .log()
        .into_iter()
        .filter(|l| l.resource == "httproutes")
        .collect();
    assert!(writes.len() >= 4, "{}", writes.len());
    for w in &writes {
        assert_eq!(w.method, Method::PATCH);
        assert!(w.content_type.starts_with("application/apply-patch"));
        assert!(w.query.contains("fieldManager=sluice"), "{}", w.query);
        assert!(w.query.contains("force=true"));
    }
    assert!(h.route("grpcroutes").is_none());
    h.no_istio_objects();
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn failing_analysis_puts_the_route_back_on_primary_and_deletion_removes_it() {
    let h = harness(gateway_routing());
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.backend_weight("reviews-canary"), 10);
    h.analyzer.set(Verdict::Fail);
    h.advance(61);
    h.ok().await;
    assert_eq!(h.status().phase, Phase::Failed);
    assert_eq!(h.backend_weight("reviews-primary"), 100);
    assert_eq!(h.backend_weight("reviews-canary"), 0);

    h.api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
        r["metadata"]["deletionTimestamp"] = json!("2026-11-25T10:05:00Z");
    });
    for _ in 0..6 {
        if h.rollout().is_none() {
            break;
        }
        let _ = h.reconcile().await;
        h.api.roll_out_deployments();
    }
    assert!(h.rollout().is_none(), "finalizer finished");
    assert!(h.route("httproutes").is_none(), "HTTPRoute removed");
    h.no_istio_objects();
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn a_grpc_route_and_the_mesh_service_as_default_parent() {
    let h = harness(json!({"gatewayAPI": {"routeKind": "GRPCRoute"}}));
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    let route = h.route("grpcroutes").expect("GRPCRoute created");
    assert_eq!(route["kind"], "GRPCRoute");
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"group": "", "kind": "Service", "name": "reviews", "port": 9080}])
    );
    let rule = &route["spec"]["rules"][0];
    assert_eq!(rule["backendRefs"][1]["name"], "reviews-canary");
    assert_eq!(rule["backendRefs"][1]["weight"], 10);
    assert!(h.route("httproutes").is_none());
    h.no_istio_objects();
    h.assert_rbac_covers_requests();
}

/// The Istio Rollouts next to it keep their VirtualService: the router is chosen per Rollout.
#[tokio::test]
async fn without_gateway_api_routing_the_virtual_service_is_written() {
    let h = harness(json!({}));
    h.initialized().await;
    assert!(
        h.api
            .get("networking.istio.io", "virtualservices", NS, "reviews")
            .is_some()
    );
    assert!(h.route("httproutes").is_none());
}

/// The Gateway API CRDs not installed: a named cause on the Rollout (`Ready=False`,
/// `GatewayAPIMissing`, group/version and resource in the message) and one Warning Event, not
/// one per retry, no route attempted; once the CRDs are there the next reconcile routes, and
/// discovery is not asked again on later reconciles.
#[tokio::test]
async fn missing_gateway_api_crds_are_a_named_cause_until_they_are_installed() {
    let h = harness(gateway_routing());
    h.api.unserve(GROUP);
    h.ok().await; // the finalizer
    for _ in 0..3 {
        let err = h.reconcile().await.expect_err("blocked");
        assert!(matches!(err, sluice_k8s::Error::ApiMissing(_)), "{err}");
    }
    let ready = h.ready_condition().expect("Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "GatewayAPIMissing")
    );
    assert!(
        ready
            .message
            .contains("gateway.networking.k8s.io/v1 httproutes"),
        "{}",
        ready.message
    );
    assert_eq!(h.status().message.as_deref(), Some(ready.message.as_str()));
    assert_eq!(h.events_with_reason("GatewayAPIMissing"), 1);
    assert!(
        h.api
            .log()
            .iter()
            .all(|l| !(l.resource == "httproutes" && l.verb == "patch")),
        "no route attempted while the API is missing"
    );

    h.api.serve_group(GROUP);
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert!(h.ready_condition().is_none(), "the cause cleared");
    assert_eq!(h.backend_weight("reviews-primary"), 100);
    h.api.clear_log();
    h.ok().await;
    let discovery = h
        .api
        .log()
        .iter()
        .filter(|l| l.resource.is_empty() && l.group == GROUP)
        .count();
    assert_eq!(discovery, 0, "the served route kind is remembered");
    h.assert_rbac_covers_requests();
    h.no_istio_objects();
}
