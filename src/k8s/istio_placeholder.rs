//! TEMPORARY stand-in for `crate::router::istio` (owned by the `api` helper) until it lands in
//! main; same signatures. Remove in favour of theirs.

use serde_json::{Value, json};

use crate::spec::Rollout;
use crate::traffic::{Destination, TrafficPlan};

fn host(rollout: &Rollout, d: Destination) -> String {
    let name = rollout.metadata.name.clone().unwrap_or_default();
    match d {
        Destination::Stable => format!("{name}-primary"),
        Destination::Canary => format!("{name}-canary"),
    }
}

pub fn virtual_service(rollout: &Rollout, plan: &TrafficPlan) -> Value {
    let name = rollout.metadata.name.clone().unwrap_or_default();
    let svc = &rollout.spec.service;
    let hosts = if svc.hosts.is_empty() {
        vec![name.clone()]
    } else {
        svc.hosts.clone()
    };
    let gateways = if svc.gateways.is_empty() {
        vec!["mesh".to_string()]
    } else {
        svc.gateways.clone()
    };
    let http: Vec<Value> = plan
        .routes
        .iter()
        .map(|r| {
            let mut route = json!({
                "route": r.destinations.iter().map(|d| json!({
                    "destination": {"host": host(rollout, d.destination), "port": {"number": svc.port}},
                    "weight": d.weight,
                })).collect::<Vec<_>>()
            });
            if !r.matches.is_empty() {
                route["match"] = Value::Array(
                    r.matches
                        .iter()
                        .map(|m| json!({"headers": m.headers}))
                        .collect(),
                );
            }
            if let Some(m) = &r.mirror {
                route["mirror"] =
                    json!({"host": host(rollout, m.destination), "port": {"number": svc.port}});
                route["mirrorPercentage"] = json!({"value": m.percent});
            }
            route
        })
        .collect();
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": rollout.metadata.namespace},
        "spec": {"hosts": hosts, "gateways": gateways, "http": http}
    })
}

pub fn destination_rules(rollout: &Rollout) -> Vec<Value> {
    [Destination::Stable, Destination::Canary]
        .into_iter()
        .map(|d| {
            let h = host(rollout, d);
            json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": h, "namespace": rollout.metadata.namespace},
                "spec": {"host": h}
            })
        })
        .collect()
}
