//! The Istio translation: a [`TrafficPlan`] as a `networking.istio.io/v1` VirtualService, plus
//! the DestinationRules of the two hosts it routes to.
//!
//! Pure functions from spec + plan to JSON objects: the Kubernetes controller applies exactly
//! these objects and `sluice plan -o virtualservice` prints them, so what a user previews is
//! what gets written.
//!
//! Naming (Flagger's convention): the VirtualService is `<name>`; the stable version is the
//! Service `<name>-primary`, the new version `<name>-canary`, both on `spec.service.port`.
//! Hosts default to `[<name>]`, gateways to `[mesh]` (Istio's default when none is given).
//! Plan routes map one to one onto `http` routes, in order: match routes first, the default
//! route last; every weighted destination is kept (weight 0 included) so that successive
//! steps differ only in their weights.

use serde_json::{Map, Value, json};

use sluice_core::rollout_plan::RolloutPlan;
use sluice_core::spec::{HttpMatch, Rollout, StringMatch};
use sluice_core::traffic::{Destination, TrafficPlan, WeightedDestination};

pub const API_VERSION: &str = "networking.istio.io/v1";
/// Label put on every object sluice generates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "sluice");

/// `<name>-primary`: the Service in front of the stable version.
pub fn primary_host(rollout: &Rollout) -> String {
    format!("{}-primary", name(rollout))
}

/// `<name>-canary`: the Service in front of the new version.
pub fn canary_host(rollout: &Rollout) -> String {
    format!("{}-canary", name(rollout))
}

fn name(rollout: &Rollout) -> &str {
    rollout.metadata.name.as_deref().unwrap_or("")
}

fn metadata(rollout: &Rollout, object_name: String) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), Value::String(object_name));
    if let Some(ns) = &rollout.metadata.namespace {
        m.insert("namespace".into(), Value::String(ns.clone()));
    }
    m.insert("labels".into(), json!({ MANAGED_BY.0: MANAGED_BY.1 }));
    Value::Object(m)
}

pub(crate) fn destination(rollout: &Rollout, d: Destination) -> Value {
    let host = match d {
        Destination::Stable => primary_host(rollout),
        Destination::Canary => canary_host(rollout),
    };
    json!({ "host": host, "port": { "number": rollout.spec.service.port } })
}

/// One weighted `route` entry; a sticky canary's answers carry the cookie through
/// `headers.response.add`.
pub(crate) fn route_destination(rollout: &Rollout, d: &WeightedDestination) -> Value {
    let mut v = json!({
        "destination": destination(rollout, d.destination),
        "weight": d.weight,
    });
    if let Some(c) = &d.set_cookie {
        v["headers"] = json!({"response": {"add": {"set-cookie": c.header_value()}}});
    }
    v
}

fn string_match(m: &StringMatch) -> Value {
    // Validation guarantees exactly one is set; keep whatever is (never panic on bad input).
    let mut out = Map::new();
    for (k, v) in [
        ("exact", &m.exact),
        ("prefix", &m.prefix),
        ("regex", &m.regex),
    ] {
        if let Some(v) = v {
            out.insert(k.into(), Value::String(v.clone()));
        }
    }
    Value::Object(out)
}

pub(crate) fn http_match(m: &HttpMatch) -> Value {
    let headers: Map<String, Value> = m
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), string_match(v)))
        .collect();
    json!({ "headers": headers })
}

/// The VirtualService that makes Istio route exactly like `plan`.
pub fn virtual_service(rollout: &Rollout, plan: &TrafficPlan) -> Value {
    let svc = &rollout.spec.service;
    let hosts = if svc.hosts.is_empty() {
        vec![name(rollout).to_string()]
    } else {
        svc.hosts.clone()
    };
    let gateways = if svc.gateways.is_empty() {
        vec!["mesh".to_string()]
    } else {
        svc.gateways.clone()
    };
    let last = plan.routes.len().saturating_sub(1);
    let http: Vec<Value> = plan
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut route = Map::new();
            // Names show up in Envoy stats and access logs: which rule took a request.
            let route_name = if i == last && r.matches.is_empty() {
                "default".to_string()
            } else {
                format!("match-{i}")
            };
            route.insert("name".into(), Value::String(route_name));
            if !r.matches.is_empty() {
                route.insert(
                    "match".into(),
                    Value::Array(r.matches.iter().map(http_match).collect()),
                );
            }
            route.insert(
                "route".into(),
                Value::Array(
                    r.destinations
                        .iter()
                        .map(|d| route_destination(rollout, d))
                        .collect(),
                ),
            );
            if let Some(m) = &r.mirror {
                route.insert("mirror".into(), destination(rollout, m.destination));
                route.insert(
                    "mirrorPercentage".into(),
                    json!({ "value": f64::from(m.percent) }),
                );
            }
            Value::Object(route)
        })
        .collect();
    json!({
        "apiVersion": API_VERSION,
        "kind": "VirtualService",
        "metadata": metadata(rollout, name(rollout).to_string()),
        "spec": {
            "hosts": hosts,
            "gateways": gateways,
            "http": http,
        }
    })
}

/// DestinationRules for `<name>-primary` and `<name>-canary`: the objects users attach
/// connection and TLS policy to; sluice owns them so both hosts always have one.
pub fn destination_rules(rollout: &Rollout) -> Vec<Value> {
    [primary_host(rollout), canary_host(rollout)]
        .into_iter()
        .map(|host| {
            json!({
                "apiVersion": API_VERSION,
                "kind": "DestinationRule",
                "metadata": metadata(rollout, host.clone()),
                "spec": { "host": host },
            })
        })
        .collect()
}

/// `sluice plan -o virtualservice`: the VirtualService of every step and of the promoted
/// state, as one YAML stream.
pub fn plan_yaml(rollout: &Rollout, plan: &RolloutPlan) -> Result<String, serde_yaml::Error> {
    sluice_core::plan::objects_yaml(rollout, plan, virtual_service)
}

/// `sluice plan -o json`: the steps with their traffic plans, VirtualServices, HTTPRoutes and
/// GRPCRoutes (every router's object, whichever the Rollout declares).
pub fn plan_json(rollout: &Rollout, plan: &RolloutPlan) -> Value {
    sluice_core::plan::json(
        rollout,
        plan,
        &[
            ("virtualService", virtual_service),
            ("httpRoute", crate::gateway_api::http_route),
            ("grpcRoute", crate::gateway_api::grpc_route),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::spec::{RolloutSpec, ServiceSpec};

    fn rollout(hosts: &[&str]) -> Rollout {
        let mut r = Rollout::new(
            "reviews",
            RolloutSpec {
                target_ref: None,
                upstreams: None,
                revision: None,
                service: ServiceSpec {
                    port: 9080,
                    hosts: hosts.iter().map(|h| h.to_string()).collect(),
                    gateways: Vec::new(),
                },
                routing: Default::default(),
                strategy: Default::default(),
                analysis: Default::default(),
                schedule: None,
                promotion: Default::default(),
                progress_deadline: Default::default(),
                webhooks: Vec::new(),
                skip_analysis: false,
                notifications: Vec::new(),
            },
        );
        r.metadata.namespace = Some("bookinfo".into());
        r
    }

    #[test]
    fn weighted_plan_becomes_one_weighted_route() {
        let vs = virtual_service(&rollout(&[]), &TrafficPlan::weighted(25));
        assert_eq!(vs["metadata"]["name"], "reviews");
        assert_eq!(vs["metadata"]["namespace"], "bookinfo");
        assert_eq!(vs["spec"]["hosts"], json!(["reviews"]));
        assert_eq!(vs["spec"]["gateways"], json!(["mesh"]));
        let route = &vs["spec"]["http"][0]["route"];
        assert_eq!(route[0]["destination"]["host"], "reviews-primary");
        assert_eq!(route[0]["destination"]["port"]["number"], 9080);
        assert_eq!(route[0]["weight"], 75);
        assert_eq!(route[1]["destination"]["host"], "reviews-canary");
        assert_eq!(route[1]["weight"], 25);
    }

    #[test]
    fn matched_plan_puts_match_route_first_and_mirrors_default() {
        let m = HttpMatch {
            headers: [(
                "cookie".to_string(),
                StringMatch {
                    regex: Some("^(.*?;)?(user=jason)(;.*)?$".into()),
                    ..Default::default()
                },
            )]
            .into(),
        };
        let vs = virtual_service(
            &rollout(&["reviews.example.com"]),
            &TrafficPlan::matched(&[m], Some(20)),
        );
        let http = &vs["spec"]["http"];
        assert_eq!(vs["spec"]["hosts"], json!(["reviews.example.com"]));
        assert_eq!(
            http[0]["match"][0]["headers"]["cookie"]["regex"],
            "^(.*?;)?(user=jason)(;.*)?$"
        );
        assert_eq!(http[0]["route"][0]["destination"]["host"], "reviews-canary");
        assert!(http[1].get("match").is_none());
        assert_eq!(http[1]["mirror"]["host"], "reviews-canary");
        assert_eq!(http[1]["mirrorPercentage"]["value"], 20.0);
    }

    #[test]
    fn destination_rules_for_both_hosts() {
        let drs = destination_rules(&rollout(&[]));
        let hosts: Vec<&str> = drs
            .iter()
            .filter_map(|d| d["spec"]["host"].as_str())
            .collect();
        assert_eq!(hosts, ["reviews-primary", "reviews-canary"]);
        assert_eq!(drs[0]["metadata"]["name"], "reviews-primary");
    }
}
