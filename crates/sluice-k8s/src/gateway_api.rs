//! The Gateway API translation: a [`TrafficPlan`] as a `gateway.networking.k8s.io/v1`
//! HTTPRoute or GRPCRoute.
//!
//! Pure functions from spec + plan to JSON objects, like [`crate::istio`]: the controller applies
//! exactly these (for Rollouts with `spec.routing.gatewayAPI`) and `sluice plan -o httproute` /
//! `-o grpcroute` print them for any Rollout, so a move from Istio can be previewed.
//!
//! The route is `<name>`; its backends are the Services `<name>-primary` and `<name>-canary` on
//! `spec.service.port` (the ones sluice creates). Parents: `routing.gatewayAPI.parentRefs`, else
//! the Service `<name>` itself (GAMMA: a mesh route for the traffic sent to that Service).
//!
//! Plan routes map one to one onto rules, in order, named like the VirtualService's routes
//! (`match-<i>`, `default`): match routes carry `matches`; Gateway API ranks a rule with header
//! matches above one without, so the default rule takes only what no match selects, as in the
//! plan. Each of the plan's matches is one route match (ORed), its headers ANDed. A `prefix`
//! header match becomes an anchored `RegularExpression` (the API has no prefix type); a cookie
//! is matched through the `cookie` header like everywhere else. Mirroring is the
//! `RequestMirror` filter with its `percent`. Every weighted backend is kept (weight 0
//! included) so successive steps differ only in their weights.

use serde_json::{Map, Value, json};

use sluice_core::rollout_plan::RolloutPlan;
use sluice_core::spec::{HttpMatch, Rollout, RouteKind, StringMatch};
use sluice_core::traffic::{Destination, TrafficPlan, WeightedDestination};

use crate::istio::{MANAGED_BY, canary_host, primary_host};

pub const API_GROUP: &str = "gateway.networking.k8s.io";
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";

fn name(rollout: &Rollout) -> &str {
    rollout.metadata.name.as_deref().unwrap_or("")
}

/// The route kind a Rollout's Gateway API routing writes (HTTPRoute when none is declared).
pub fn route_kind(rollout: &Rollout) -> RouteKind {
    rollout
        .spec
        .routing
        .gateway_api
        .as_ref()
        .map(|g| g.route_kind)
        .unwrap_or_default()
}

/// `HTTPRoute` / `GRPCRoute`.
pub fn kind_name(kind: RouteKind) -> &'static str {
    match kind {
        RouteKind::Http => "HTTPRoute",
        RouteKind::Grpc => "GRPCRoute",
    }
}

fn metadata(rollout: &Rollout) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), Value::String(name(rollout).to_string()));
    if let Some(ns) = &rollout.metadata.namespace {
        m.insert("namespace".into(), Value::String(ns.clone()));
    }
    m.insert("labels".into(), json!({ MANAGED_BY.0: MANAGED_BY.1 }));
    Value::Object(m)
}

/// `parentRefs` of the spec, or the Rollout's own Service (GAMMA) when none are given.
fn parent_refs(rollout: &Rollout) -> Value {
    let declared = rollout
        .spec
        .routing
        .gateway_api
        .as_ref()
        .map(|g| g.parent_refs.as_slice())
        .unwrap_or_default();
    if declared.is_empty() {
        return json!([{
            "group": "",
            "kind": "Service",
            "name": name(rollout),
            "port": rollout.spec.service.port,
        }]);
    }
    serde_json::to_value(declared).unwrap_or_else(|_| json!([]))
}

pub(crate) fn backend(rollout: &Rollout, d: Destination) -> Value {
    let host = match d {
        Destination::Stable => primary_host(rollout),
        Destination::Canary => canary_host(rollout),
    };
    json!({ "name": host, "port": rollout.spec.service.port })
}

/// One weighted backendRef; a sticky canary's answers carry the cookie through a
/// `ResponseHeaderModifier` filter on that backend.
pub(crate) fn weighted_backend(rollout: &Rollout, d: &WeightedDestination) -> Value {
    let mut b = backend(rollout, d.destination);
    b["weight"] = json!(d.weight);
    if let Some(c) = &d.set_cookie {
        b["filters"] = json!([{
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": c.header_value()}]},
        }]);
    }
    b
}

/// `prefix` as an anchored regular expression (RE2 and Rust syntax alike).
fn prefix_regex(prefix: &str) -> String {
    let mut out = String::from("^");
    for c in prefix.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push_str(".*");
    out
}

fn header_match(header: &str, m: &StringMatch) -> Value {
    // Validation guarantees exactly one is set; take the first that is (never panic).
    let (kind, value) = match (&m.exact, &m.prefix, &m.regex) {
        (Some(e), _, _) => ("Exact", e.clone()),
        (_, Some(p), _) => ("RegularExpression", prefix_regex(p)),
        (_, _, Some(r)) => ("RegularExpression", r.clone()),
        _ => ("Exact", String::new()),
    };
    json!({ "name": header, "type": kind, "value": value })
}

pub(crate) fn route_match(m: &HttpMatch) -> Value {
    let headers: Vec<Value> = m.headers.iter().map(|(k, v)| header_match(k, v)).collect();
    json!({ "headers": headers })
}

fn rules(rollout: &Rollout, plan: &TrafficPlan) -> Vec<Value> {
    let last = plan.routes.len().saturating_sub(1);
    plan.routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut rule = Map::new();
            let rule_name = if i == last && r.matches.is_empty() {
                "default".to_string()
            } else {
                format!("match-{i}")
            };
            rule.insert("name".into(), Value::String(rule_name));
            if !r.matches.is_empty() {
                rule.insert(
                    "matches".into(),
                    Value::Array(r.matches.iter().map(route_match).collect()),
                );
            }
            if let Some(m) = &r.mirror {
                rule.insert(
                    "filters".into(),
                    json!([{
                        "type": "RequestMirror",
                        "requestMirror": {
                            "backendRef": backend(rollout, m.destination),
                            "percent": m.percent,
                        },
                    }]),
                );
            }
            rule.insert(
                "backendRefs".into(),
                Value::Array(
                    r.destinations
                        .iter()
                        .map(|d| weighted_backend(rollout, d))
                        .collect(),
                ),
            );
            Value::Object(rule)
        })
        .collect()
}

fn route(rollout: &Rollout, plan: &TrafficPlan, kind: RouteKind) -> Value {
    let mut spec = Map::new();
    spec.insert("parentRefs".into(), parent_refs(rollout));
    if let Some(g) = &rollout.spec.routing.gateway_api
        && !g.hostnames.is_empty()
    {
        spec.insert("hostnames".into(), json!(g.hostnames));
    }
    spec.insert("rules".into(), Value::Array(rules(rollout, plan)));
    json!({
        "apiVersion": API_VERSION,
        "kind": kind_name(kind),
        "metadata": metadata(rollout),
        "spec": spec,
    })
}

/// The HTTPRoute that routes exactly like `plan`.
pub fn http_route(rollout: &Rollout, plan: &TrafficPlan) -> Value {
    route(rollout, plan, RouteKind::Http)
}

/// The GRPCRoute that routes exactly like `plan` (gRPC requests are HTTP/2 requests: the same
/// header matches, weights and mirror apply).
pub fn grpc_route(rollout: &Rollout, plan: &TrafficPlan) -> Value {
    route(rollout, plan, RouteKind::Grpc)
}

/// The route the controller applies for a Rollout with `routing.gatewayAPI`: its `routeKind`.
pub fn declared_route(rollout: &Rollout, plan: &TrafficPlan) -> Value {
    route(rollout, plan, route_kind(rollout))
}

/// `sluice plan -o httproute` / `-o grpcroute`: the route of every step and of the promoted
/// state, as one YAML stream.
pub fn plan_yaml(
    rollout: &Rollout,
    plan: &RolloutPlan,
    kind: RouteKind,
) -> Result<String, serde_yaml::Error> {
    match kind {
        RouteKind::Http => sluice_core::plan::objects_yaml(rollout, plan, http_route),
        RouteKind::Grpc => sluice_core::plan::objects_yaml(rollout, plan, grpc_route),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::spec::{GatewayApiRouting, ParentRef};

    fn rollout(gateway: Option<GatewayApiRouting>) -> Rollout {
        let mut r: Rollout = serde_yaml::from_str(
            "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\n\
             metadata: {name: reviews, namespace: bookinfo}\n\
             spec: {targetRef: {name: reviews}, service: {port: 9080}, strategy: {canary: {steps: [10]}}}\n",
        )
        .expect("rollout");
        r.spec.routing.gateway_api = gateway;
        r
    }

    #[test]
    fn weighted_plan_is_one_rule_with_weighted_backends_under_the_service_parent() {
        let hr = http_route(&rollout(None), &TrafficPlan::weighted(25));
        assert_eq!(hr["kind"], "HTTPRoute");
        assert_eq!(hr["metadata"]["name"], "reviews");
        assert_eq!(
            hr["spec"]["parentRefs"],
            json!([{"group": "", "kind": "Service", "name": "reviews", "port": 9080}])
        );
        let rule = &hr["spec"]["rules"][0];
        assert_eq!(rule["name"], "default");
        assert!(rule.get("matches").is_none());
        assert_eq!(
            rule["backendRefs"],
            json!([
                {"name": "reviews-primary", "port": 9080, "weight": 75},
                {"name": "reviews-canary", "port": 9080, "weight": 25},
            ])
        );
        assert!(hr["spec"].get("hostnames").is_none());
    }

    #[test]
    fn matches_become_header_matches_and_the_mirror_a_filter() {
        let m: Vec<HttpMatch> = serde_yaml::from_str(
            "- headers: {x-user: {exact: beta}, x-tier: {prefix: gold.}}\n\
             - headers: {cookie: {regex: '^(.*?;)?(user=jason)(;.*)?$'}}\n",
        )
        .expect("matches");
        let g = GatewayApiRouting {
            parent_refs: vec![ParentRef {
                name: "public".into(),
                namespace: Some("infra".into()),
                ..Default::default()
            }],
            hostnames: vec!["reviews.example.com".into()],
            route_kind: RouteKind::Grpc,
            route_ref: None,
        };
        let r = rollout(Some(g));
        let route = declared_route(&r, &TrafficPlan::matched(&m, Some(20)));
        assert_eq!(route["kind"], "GRPCRoute");
        assert_eq!(
            route["spec"]["parentRefs"],
            json!([{"name": "public", "namespace": "infra"}])
        );
        assert_eq!(route["spec"]["hostnames"], json!(["reviews.example.com"]));
        let rules = &route["spec"]["rules"];
        assert_eq!(rules[0]["name"], "match-0");
        assert_eq!(
            rules[0]["matches"],
            json!([
                {"headers": [
                    {"name": "x-tier", "type": "RegularExpression", "value": "^gold\\..*"},
                    {"name": "x-user", "type": "Exact", "value": "beta"},
                ]},
                {"headers": [
                    {"name": "cookie", "type": "RegularExpression", "value": "^(.*?;)?(user=jason)(;.*)?$"},
                ]},
            ])
        );
        assert_eq!(
            rules[0]["backendRefs"],
            json!([{"name": "reviews-canary", "port": 9080, "weight": 100}])
        );
        assert_eq!(rules[1]["name"], "default");
        assert_eq!(
            rules[1]["filters"],
            json!([{"type": "RequestMirror", "requestMirror": {
                "backendRef": {"name": "reviews-canary", "port": 9080}, "percent": 20}}])
        );
        assert_eq!(rules[1]["backendRefs"][0]["weight"], 100);
    }

    #[test]
    fn prefix_regex_escapes_and_still_matches_the_prefix() {
        let re = regex::Regex::new(&prefix_regex("a.b+(c)")).expect("valid regex");
        assert!(re.is_match("a.b+(c)-tail"));
        assert!(!re.is_match("aXb+(c)"));
        assert!(!re.is_match("x-a.b+(c)"));
    }
}
