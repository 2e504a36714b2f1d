//! Every generated Istio object must be one the API server accepts: checked against Istio's
//! own CRD schemas (tests/fixtures/istio/) with sluice's schema checker
//! (`sluice_core::validate::schema`, the same code that checks Rollouts).

use serde_json::{Value, json};
use sluice_core::validate::{FieldPath, schema};

fn schema_of(file: &str) -> Value {
    let path = sluice_testkit::files::root()
        .join("tests/fixtures/istio")
        .join(file);
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
    for f in sluice_testkit::files::example_files() {
        for r in sluice_testkit::files::load(&f) {
            for step in sluice_core::plan::steps(&sluice_testkit::plan_of(&r)) {
                let vs = sluice_k8s::istio::virtual_service(&r, &step.traffic);
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
    for f in sluice_testkit::files::example_files() {
        for r in sluice_testkit::files::load(&f) {
            let drs = sluice_k8s::istio::destination_rules(&r);
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
    let r = &sluice_testkit::files::load(
        &sluice_testkit::files::root().join("rollouts/reviews-dark-launch.yaml"),
    )[0];
    let plan = &sluice_core::plan::steps(&sluice_testkit::plan_of(r))[0].traffic;
    let good = sluice_k8s::istio::virtual_service(r, plan);
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

mod generated {
    //! Random valid Rollouts: validation accepts them, and every VirtualService of every step
    //! matches Istio's schema with weights adding up to 100.

    use proptest::prelude::*;

    fn header_match() -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec!["x-user", "end-user", "cookie", "x-beta"]);
        let m = prop_oneof![
            "[a-z0-9]{1,8}".prop_map(|v| format!("exact: \"{v}\"")),
            "[a-z0-9]{1,8}".prop_map(|v| format!("prefix: \"{v}\"")),
            "[a-z0-9]{1,8}".prop_map(|v| format!("regex: \"^(.*?;)?({v})(;.*)?$\"")),
        ];
        (name, m).prop_map(|(n, m)| format!("        - headers: {{{n}: {{{m}}}}}\n"))
    }

    fn canary() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::btree_set(1u32..=100, 1..6).prop_map(|s| {
                let v: Vec<String> = s.iter().map(ToString::to_string).collect();
                format!("{{steps: [{}]}}", v.join(", "))
            }),
            (1u32..=50, 50u32..=100)
                .prop_map(|(step, max)| format!("{{stepWeight: {step}, maxWeight: {max}}}")),
        ]
    }

    fn strategy() -> impl Strategy<Value = String> {
        let matches = || prop::collection::vec(header_match(), 1..3).prop_map(|v| v.concat());
        prop_oneof![
            canary().prop_map(|c| format!("    canary: {c}\n")),
            (matches(), 0u32..=100, prop::option::of(canary())).prop_map(|(m, p, c)| {
                let then = c
                    .map(|c| format!("      thenCanary: {c}\n"))
                    .unwrap_or_default();
                format!("    darkLaunch:\n      match:\n{m}      mirrorPercent: {p}\n{then}")
            }),
            (matches(), 1u32..20).prop_map(|(m, n)| format!(
                "    abTest:\n      match:\n{m}      iterations: {n}\n"
            )),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_generated_step_is_a_valid_virtual_service(
            strategy in strategy(),
            port in 1u16..,
            gateway in prop::option::of("[a-z]{1,8}/[a-z]{1,8}"),
        ) {
            let gateways = gateway.map(|g| format!("    gateways: [\"{g}\", mesh]\n")).unwrap_or_default();
            let text = format!(
                "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {{name: svc, namespace: ns}}\n\
                 spec:\n  targetRef: {{name: svc}}\n  service:\n    port: {port}\n{gateways}  strategy:\n{strategy}"
            );
            let rollouts = sluice_core::validate::load_str(&text, "gen").map_err(|p| {
                TestCaseError::fail(format!("{p:#?}\n{text}"))
            })?;
            let vs_schema = super::schema_of("virtualservice-v1.openapi.json");
            for step in sluice_core::plan::steps(&sluice_testkit::plan_of(&rollouts[0])) {
                let vs = sluice_k8s::istio::virtual_service(&rollouts[0], &step.traffic);
                let p = super::problems(&vs, "VirtualService", &vs_schema);
                prop_assert!(p.is_empty(), "{p:#?}\n{text}");
                for route in vs["spec"]["http"].as_array().into_iter().flatten() {
                    let sum: u64 = route["route"].as_array().into_iter().flatten()
                        .filter_map(|d| d["weight"].as_u64()).sum();
                    prop_assert_eq!(sum, 100);
                }
            }
        }
    }
}

/// A VirtualService the user owns (tests/fixtures/owned-routes/), edited by sluice at every
/// step of every example (match routes inserted, weights, mirror), still matches the schema.
#[test]
fn a_users_virtual_service_edited_at_every_step_matches_istio_schema() {
    use sluice_k8s::owned_route::{Dialect, apply};
    let vs_schema = schema_of("virtualservice-v1.openapi.json");
    let path = sluice_testkit::files::root().join("tests/fixtures/owned-routes/reviews-vs.yaml");
    let user: Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("read")).expect("yaml");
    assert!(problems(&user, "VirtualService", &vs_schema).is_empty());
    let mut inserted = 0;
    for f in sluice_testkit::files::example_files() {
        for r in sluice_testkit::files::load(&f) {
            for step in sluice_core::plan::steps(&sluice_testkit::plan_of(&r)) {
                let vs = apply(Dialect::Istio, &r, &user, "main", &step.traffic).expect("apply");
                let p = problems(&vs, "VirtualService", &vs_schema);
                assert!(p.is_empty(), "{} {}: {p:#?}", f.display(), step.label);
                inserted += vs["spec"]["http"].as_array().map_or(0, Vec::len) - 2;
            }
        }
    }
    assert!(inserted >= 3, "no match route was inserted ({inserted})");
}
