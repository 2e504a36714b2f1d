//! Every generated Istio object must be one the API server accepts: checked against Istio's
//! own CRD schemas (tests/fixtures/istio/) with sluice's schema checker
//! (`sluice::validate::schema`, the same code that checks Rollouts).

mod common;

use serde_json::{Value, json};
use sluice::validate::{FieldPath, schema};

fn schema_of(file: &str) -> Value {
    let path = common::root().join("tests/fixtures/istio").join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read schema")).expect("json")
}

/// Problems of a generated object: envelope, then `spec` against the CRD schema (which covers
/// `spec` and `status`; apiVersion/kind/metadata are the API server's own).
fn problems(obj: &Value, kind: &str, schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if obj["apiVersion"] != "networking.istio.io/v1" {
        out.push(format!("apiVersion {}", obj["apiVersion"]));
    }
    if obj["kind"] != kind {
        out.push(format!("kind {}", obj["kind"]));
    }
    if !obj["metadata"]["name"].is_string() {
        out.push("metadata.name missing".into());
    }
    let body = json!({ "spec": obj["spec"] });
    out.extend(
        schema::check(&body, schema, &FieldPath::default())
            .into_iter()
            .map(|m| format!("{}: {}", m.path, m.message)),
    );
    out
}

#[test]
fn virtual_services_of_every_step_match_istio_schema() {
    let vs_schema = schema_of("virtualservice-v1.openapi.json");
    let mut checked = 0;
    for f in common::example_files() {
        for r in common::load(&f) {
            for step in sluice::plan::steps(&r) {
                let vs = sluice::router::istio::virtual_service(&r, &step.traffic);
                let p = problems(&vs, "VirtualService", &vs_schema);
                assert!(p.is_empty(), "{} {}: {p:#?}", f.display(), step.label);
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} VirtualServices checked");
}

#[test]
fn destination_rules_match_istio_schema() {
    let dr_schema = schema_of("destinationrule-v1.openapi.json");
    for f in common::example_files() {
        for r in common::load(&f) {
            let drs = sluice::router::istio::destination_rules(&r);
            assert_eq!(drs.len(), 2);
            for dr in drs {
                let p = problems(&dr, "DestinationRule", &dr_schema);
                assert!(p.is_empty(), "{}: {p:#?}", f.display());
            }
        }
    }
}

/// The check is not vacuous: objects Istio would reject are rejected.
#[test]
fn schema_check_rejects_broken_virtual_services() {
    let vs_schema = schema_of("virtualservice-v1.openapi.json");
    let r = &common::load(&common::root().join("rollouts/reviews-dark-launch.yaml"))[0];
    let plan = &sluice::plan::steps(r)[0].traffic;
    let good = sluice::router::istio::virtual_service(r, plan);
    assert!(problems(&good, "VirtualService", &vs_schema).is_empty());

    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "spec.http[1].mirrorPercent",
            Box::new(|v| v["spec"]["http"][1]["mirrorPercent"] = json!("20%")),
        ),
        (
            "spec.http[0].route[0].wieght",
            Box::new(|v| v["spec"]["http"][0]["route"][0]["wieght"] = json!(100)),
        ),
        (
            "spec.http[0].route[0].weight",
            Box::new(|v| v["spec"]["http"][0]["route"][0]["weight"] = json!("100")),
        ),
        (
            "spec.http[0].match[0].headers.cookie",
            Box::new(|v| {
                v["spec"]["http"][0]["match"][0]["headers"]["cookie"]["exact"] = json!("x")
            }),
        ),
        (
            "spec.http[1].route[0].destination.host",
            Box::new(|v| {
                if let Some(d) = v["spec"]["http"][1]["route"][0]["destination"].as_object_mut() {
                    d.remove("host");
                }
            }),
        ),
    ];
    for (path, mutate) in cases {
        let mut bad = good.clone();
        mutate(&mut bad);
        let p = problems(&bad, "VirtualService", &vs_schema);
        assert!(
            p.iter().any(|m| m.starts_with(path)),
            "expected a problem at {path}, got {p:#?}"
        );
    }
}
