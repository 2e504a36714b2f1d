//! Routes the user owns (`routing.istio.virtualServiceRef`, `routing.gatewayAPI.routeRef`):
//! the controller against the in-memory API server moves the traffic of one named rule
//! through a whole canary, an abort and the finalizer, and the route ends up JSON-equal to
//! what the user wrote; a user's edit that lands between sluice's read and write (a real 409
//! Conflict on the guarded replace) is kept.

use http::Method;
use serde_json::{Value, json};
use sluice_core::spec::Phase;
use sluice_k8s::owned_route::ORIGINAL_RULES_ANNOTATION;

use crate::k8s_controller::Harness;

const NS: &str = "bookinfo";

/// One router's view: where the route lives and how the Rollout names it.
struct Case {
    group: &'static str,
    resource: &'static str,
    rules: &'static str,
    route: Value,
    routing: Value,
}

/// A VirtualService with retries, a timeout, a header filter and an unrelated second rule.
fn istio() -> Case {
    Case {
        group: "networking.istio.io",
        resource: "virtualservices",
        rules: "http",
        route: json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews-vs", "namespace": NS, "labels": {"team": "books"}},
            "spec": {
                "hosts": ["reviews.example.com"],
                "gateways": ["public"],
                "http": [
                    {"name": "admin", "match": [{"uri": {"prefix": "/admin"}}],
                     "route": [{"destination": {"host": "admin", "port": {"number": 8080}}}]},
                    {"name": "main",
                     "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx"},
                     "timeout": "10s",
                     "headers": {"request": {"set": {"x-env": "prod"}}},
                     "route": [{"destination": {"host": "reviews", "port": {"number": 9080}}}]},
                ],
            },
        }),
        routing: json!({"istio": {"virtualServiceRef": {"name": "reviews-vs", "ruleName": "main"}}}),
    }
}

/// An HTTPRoute with a timeout, a header filter and an unrelated second rule (retries are not
/// in the standard channel).
fn gateway() -> Case {
    Case {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        rules: "rules",
        route: json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "parentRefs": [{"name": "public", "namespace": "infra"}],
                "hostnames": ["reviews.example.com"],
                "rules": [
                    {"name": "admin",
                     "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                     "backendRefs": [{"name": "admin", "port": 8080}]},
                    {"name": "main",
                     "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                     "timeouts": {"request": "10s"},
                     "filters": [{"type": "RequestHeaderModifier",
                                  "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}]}}],
                     "backendRefs": [{"name": "reviews", "port": 9080}]},
                ],
            },
        }),
        routing: json!({"gatewayAPI": {"routeRef": {"name": "web", "ruleName": "main"}}}),
    }
}

impl Case {
    fn name(&self) -> &str {
        self.route["metadata"]["name"].as_str().expect("name")
    }

    fn harness(&self) -> Harness {
        let routing = self.routing.clone();
        let h = Harness::with_rollout(|r| r["spec"]["routing"] = routing);
        h.api.seed(self.group, self.resource, self.route.clone());
        h
    }

    fn current(&self, h: &Harness) -> Value {
        h.api
            .get(self.group, self.resource, NS, self.name())
            .expect("the user's route is never deleted")
    }

    fn rule(&self, h: &Harness, name: &str) -> Value {
        let route = self.current(h);
        route["spec"][self.rules]
            .as_array()
            .expect("rules")
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("rule {name} in {route:#}"))
    }

    /// Weight of sluice's Service `host` in the rule `main`.
    fn weight(&self, h: &Harness, host: &str) -> i64 {
        let rule = self.rule(h, "main");
        let (list, name): (&str, &str) = if self.rules == "http" {
            ("route", "/destination/host")
        } else {
            ("backendRefs", "/name")
        };
        rule[list]
            .as_array()
            .expect("destinations")
            .iter()
            .filter(|d| d.pointer(name) == Some(&json!(host)))
            .map(|d| d["weight"].as_i64().unwrap_or(0))
            .sum()
    }

    /// What the user wrote and what must come back: the spec, labels and annotations.
    fn users_part(route: &Value) -> Value {
        json!({
            "spec": route["spec"],
            "labels": route["metadata"]["labels"],
            "annotations": route["metadata"]["annotations"],
        })
    }

    /// The route outside rule `main` is as the user left it.
    fn assert_rest_untouched(&self, h: &Harness, expected: &Value) {
        let now = self.current(h);
        let others = |v: &Value| -> Vec<Value> {
            v["spec"][self.rules]
                .as_array()
                .expect("rules")
                .iter()
                .filter(|r| r["name"] != "main")
                .cloned()
                .collect()
        };
        assert_eq!(others(&now), others(expected));
        let mut spec = now["spec"].clone();
        let mut want = expected["spec"].clone();
        spec.as_object_mut().expect("spec").remove(self.rules);
        want.as_object_mut().expect("spec").remove(self.rules);
        assert_eq!(spec, want);
    }
}

async fn delete_and_finalize(h: &Harness) {
    h.api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
        r["metadata"]["deletionTimestamp"] = json!("2026-11-25T11:00:00Z");
    });
    for _ in 0..6 {
        if h.rollout().is_none() {
            break;
        }
        let _ = h.reconcile().await;
        h.api.roll_out_deployments();
    }
    assert!(h.rollout().is_none(), "finalizer finished");
}

/// Canary v2 promoted, canary v3 aborted, the Rollout deleted: the route is what the user
/// wrote, and sluice wrote only through resourceVersion-guarded replaces of it.
async fn canary_abort_finalize(case: Case) {
    let h = case.harness();
    let written = case.current(&h);
    h.initialized().await;
    assert_eq!(case.weight(&h, "reviews-primary"), 100);
    let rule = case.rule(&h, "main");
    let original = &written["spec"][case.rules][1];
    for (field, value) in original.as_object().expect("rule") {
        if !["route", "backendRefs"].contains(&field.as_str()) {
            assert_eq!(&rule[field], value, "{field} of the user's rule kept");
        }
    }
    case.assert_rest_untouched(&h, &written);
    let saved = case.current(&h)["metadata"]["annotations"][ORIGINAL_RULES_ANNOTATION]
        .as_str()
        .map(|s| serde_json::from_str::<Value>(s).expect("JSON"))
        .expect("original rule kept on the route");
    assert_eq!(&saved["main"], original);
    assert!(
        h.api
            .get(case.group, case.resource, NS, "reviews")
            .is_none(),
        "no route of sluice's own"
    );

    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(case.weight(&h, "reviews-canary"), 10);
    assert_eq!(case.weight(&h, "reviews-primary"), 90);
    h.advance(61);
    h.ok().await;
    assert_eq!(case.weight(&h, "reviews-canary"), 50);
    h.advance(61);
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.status().phase, Phase::Succeeded);
    assert_eq!(case.weight(&h, "reviews-primary"), 100);

    h.new_revision("reviews:v3");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(case.weight(&h, "reviews-canary"), 10);
    h.api.edit("sluice.dev", "rollouts", NS, "reviews", |r| {
        r["metadata"]["annotations"] = json!({"sluice.dev/command": "abort@n1"});
    });
    h.ok().await;
    assert_eq!(h.status().phase, Phase::Failed);
    assert_eq!(case.weight(&h, "reviews-primary"), 100);
    assert_eq!(case.weight(&h, "reviews-canary"), 0);
    case.assert_rest_untouched(&h, &written);

    delete_and_finalize(&h).await;
    assert_eq!(
        Case::users_part(&case.current(&h)),
        Case::users_part(&written),
        "the route is back to what the user wrote"
    );
    let writes: Vec<_> = h
        .api
        .log()
        .into_iter()
        .filter(|l| l.resource == case.resource && l.verb != "get")
        .collect();
    assert!(writes.len() >= 6, "{}", writes.len());
    for w in &writes {
        assert_eq!(w.verb, "update", "{} {}", w.method, w.path);
        assert!(
            w.body["metadata"]["resourceVersion"].is_string(),
            "guarded by resourceVersion"
        );
    }
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn a_virtual_service_the_user_owns_goes_through_canary_abort_and_finalize_unchanged() {
    canary_abort_finalize(istio()).await;
}

#[tokio::test]
async fn an_httproute_the_user_owns_goes_through_canary_abort_and_finalize_unchanged() {
    canary_abort_finalize(gateway()).await;
}

/// The user edits the route right between sluice's read and its write: the write meets 409,
/// sluice reads again and applies again, and the user's edit stays — through the rest of the
/// rollout and the finalizer.
async fn a_concurrent_edit_is_kept(case: Case) {
    let h = case.harness();
    h.initialized().await;
    h.new_revision("reviews:v2");
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(case.weight(&h, "reviews-canary"), 10);

    let rules = case.rules;
    let path = format!("/{}/{}", case.resource, case.name());
    h.api.edit_before_next(Method::PUT, &path, move |route| {
        // A new rule of the user's, and a change to a field of the owned rule sluice does not
        // own.
        let list = route["spec"][rules].as_array_mut().expect("rules");
        list.insert(
            0,
            json!({"name": "docs", "backendRefs": [{"name": "docs", "port": 80}]}),
        );
        if rules == "http" {
            list[0] = json!({"name": "docs", "route": [{"destination": {"host": "docs"}}]});
        }
        for r in list.iter_mut() {
            if r["name"] == "main" {
                r[if rules == "http" {
                    "timeout"
                } else {
                    "timeouts"
                }] = if rules == "http" {
                    json!("20s")
                } else {
                    json!({"request": "20s"})
                };
            }
        }
    });
    h.advance(61);
    h.ok().await;
    let conflicts = h
        .api
        .log()
        .into_iter()
        .filter(|l| l.resource == case.resource && l.verb == "update" && l.status == 409)
        .count();
    assert_eq!(conflicts, 1, "the guarded write met the user's edit");
    assert_eq!(
        case.weight(&h, "reviews-canary"),
        50,
        "and was applied again"
    );
    assert_eq!(
        case.rule(&h, "docs")["name"],
        "docs",
        "the user's new rule is kept"
    );
    let timeout = if rules == "http" {
        case.rule(&h, "main")["timeout"].clone()
    } else {
        case.rule(&h, "main")["timeouts"]["request"].clone()
    };
    assert_eq!(timeout, "20s", "the user's change to the rule is kept");
    let after_edit = case.current(&h);

    h.advance(61);
    h.ok().await;
    h.api.roll_out_deployments();
    h.ok().await;
    assert_eq!(h.status().phase, Phase::Succeeded);
    delete_and_finalize(&h).await;
    // What the user wrote, with their edit: the original destinations, their timeout, their
    // new rule.
    let mut expected = case.route.clone();
    let edited_rules: Vec<Value> = after_edit["spec"][rules]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            if r["name"] == "main" {
                let mut m = r.clone();
                let field = if rules == "http" {
                    "route"
                } else {
                    "backendRefs"
                };
                m[field] = case.route["spec"][rules][1][field].clone();
                m
            } else {
                r.clone()
            }
        })
        .collect();
    expected["spec"][rules] = Value::Array(edited_rules);
    assert_eq!(
        Case::users_part(&case.current(&h)),
        Case::users_part(&expected)
    );
    h.assert_rbac_covers_requests();
}

#[tokio::test]
async fn a_users_edit_of_their_virtual_service_between_read_and_write_is_kept() {
    a_concurrent_edit_is_kept(istio()).await;
}

#[tokio::test]
async fn a_users_edit_of_their_httproute_between_read_and_write_is_kept() {
    a_concurrent_edit_is_kept(gateway()).await;
}

#[tokio::test]
async fn a_rule_that_is_not_there_blocks_the_rollout_with_a_clear_condition() {
    let mut case = istio();
    case.routing =
        json!({"istio": {"virtualServiceRef": {"name": "reviews-vs", "ruleName": "mian"}}});
    let h = case.harness();
    h.ok().await;
    let _ = h.reconcile().await;
    let st = h.status();
    let ready = st
        .conditions
        .iter()
        .find(|c| c.kind == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, "RouteRuleUnusable");
    assert!(
        ready.message.contains("no rule named \"mian\"") && ready.message.contains("admin, main"),
        "{}",
        ready.message
    );
    assert_eq!(
        Case::users_part(&case.current(&h)),
        Case::users_part(&case.route),
        "nothing written"
    );

    let mut missing = gateway();
    missing.routing = json!({"gatewayAPI": {"routeRef": {"name": "webb", "ruleName": "main"}}});
    let h = missing.harness();
    h.ok().await;
    let _ = h.reconcile().await;
    let ready = h
        .status()
        .conditions
        .into_iter()
        .find(|c| c.kind == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.reason, "RouteNotFound");
    assert!(
        ready
            .message
            .contains("HTTPRoute bookinfo/webb named in spec.routing.gatewayAPI.routeRef.name"),
        "{}",
        ready.message
    );
}
