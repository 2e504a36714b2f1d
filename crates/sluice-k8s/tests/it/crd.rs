//! deploy/crds/rollout.yaml is generated from the Rust types plus the CEL rules
//! (`sluice_core::crd::rollout_crd`); it must not drift, and its rules must refuse what the
//! controller refuses.

use kube::CustomResourceExt;
use serde_json::{Value, json};

#[test]
fn checked_in_crd_matches_the_types() {
    let generated =
        sluice_core::yaml::to_string(&sluice_core::crd::rollout_crd()).expect("serialize CRD");
    let path = sluice_testkit::files::root().join("deploy/crds/rollout.yaml");
    let checked_in = std::fs::read_to_string(&path).expect("read deploy/crds/rollout.yaml");
    assert!(
        checked_in == generated,
        "deploy/crds/rollout.yaml is out of date with src/spec.rs; regenerate it with\n\n    \
         cargo run -- crd > deploy/crds/rollout.yaml\n\nand commit the result"
    );
}

#[test]
fn checked_in_template_crds_match_the_types() {
    for (file, crd, scope) in [
        (
            "analysistemplate.yaml",
            sluice_core::crd::analysis_template_crd(),
            "Namespaced",
        ),
        (
            "clusteranalysistemplate.yaml",
            sluice_core::crd::cluster_analysis_template_crd(),
            "Cluster",
        ),
    ] {
        let generated = sluice_core::yaml::to_string(&crd).expect("serialize CRD");
        let path = sluice_testkit::files::root().join("deploy/crds").join(file);
        let checked_in = std::fs::read_to_string(&path).expect("read the template CRD");
        assert!(
            checked_in == generated,
            "deploy/crds/{file} is out of date; regenerate it with `sluice crd KIND`"
        );
        assert_eq!(crd["spec"]["scope"], scope);
        // `thresholds.max: "{{ args.maxMs }}"` must get past the API server's schema; the
        // resolution checks the number once the argument is in.
        let max = crd
            .pointer(
                "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/metrics/\
                 items/properties/thresholds/properties/max",
            )
            .expect("thresholds.max");
        assert_eq!(max["x-kubernetes-preserve-unknown-fields"], true, "{max}");
        assert!(max.get("type").is_none(), "{max}");
    }
}

#[test]
fn crd_has_the_promised_shape() {
    let crd = sluice_core::spec::Rollout::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("rollouts.sluice.dev"));
    assert_eq!(crd.spec.names.short_names, Some(vec!["sro".to_string()]));
    let v = &crd.spec.versions[0];
    assert!(
        v.subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Phase", "Step", "Canary Weight", "Age"]);
}

#[test]
fn validation_walks_the_generated_schema() {
    // `sluice validate` checks files against the schema embedded from deploy/crds/rollout.yaml
    // (the core builds without kube); it must be the schema the types generate.
    let crd = sluice_core::crd::rollout_crd();
    let generated = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema")
        .expect("generated schema");
    assert_eq!(sluice_core::validate::embedded_crd_schema(), generated);
}

/// The CRD as `kubectl apply -f deploy/crds/rollout.yaml` installs it.
fn checked_in_schema() -> Value {
    let path = sluice_testkit::files::root().join("deploy/crds/rollout.yaml");
    let crd: Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("read CRD")).expect("YAML");
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .cloned()
        .expect("schema")
}

/// Every `x-kubernetes-validations` rule with the schema node it sits on.
fn rules_in(node: &Value, path: &str, out: &mut Vec<(String, Value, String)>) {
    if let Some(list) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for r in list {
            out.push((
                path.to_string(),
                node.clone(),
                r["rule"].as_str().expect("a rule is a string").into(),
            ));
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            rules_in(v, &format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = node.get("items") {
        rules_in(items, &format!("{path}[]"), out);
    }
}

#[test]
fn the_crd_carries_the_rules_and_each_fits_the_api_servers_cost_budget() {
    let mut rules = Vec::new();
    rules_in(&checked_in_schema(), "", &mut rules);
    let paths: Vec<&str> = rules.iter().map(|(p, ..)| p.as_str()).collect();
    for want in [
        ".spec",
        ".spec.strategy",
        ".spec.strategy.canary",
        ".spec.strategy.canary.steps",
        ".spec.strategy.darkLaunch",
        ".spec.strategy.darkLaunch.thenCanary.steps",
        ".spec.strategy.abTest",
        ".spec.analysis",
    ] {
        assert!(paths.contains(&want), "no rule at {want}: {paths:?}");
    }
    // kube-cel's estimate of the API server's cost model (a heuristic): every rule fits the
    // per-expression budget with the list bounds the CRD declares...
    for (path, node, rule) in &rules {
        let compiled = kube_cel::compile_schema(node);
        let warnings = kube_cel::estimate_rule_cost(rule, &compiled);
        assert!(warnings.is_empty(), "{path}: {rule}: {warnings:?}");
    }
    // ...and would not without them (the estimate is not blind to what it checks).
    let (_, steps, rule) = rules
        .iter()
        .find(|(p, _, r)| p == ".spec.strategy.canary.steps" && r.contains("exists_one"))
        .expect("the strictly-increasing rule");
    let mut unbounded = steps.clone();
    unbounded.as_object_mut().unwrap().remove("maxItems");
    let warnings = kube_cel::estimate_rule_cost(rule, &kube_cel::compile_schema(&unbounded));
    assert!(
        !warnings.is_empty(),
        "an unbounded list should not fit the budget"
    );
}

fn k8s_rollout(spec_edit: impl FnOnce(&mut Value)) -> Value {
    let mut r = sluice_testkit::kube_api::fixtures::reviews_rollout("default");
    spec_edit(&mut r["spec"]);
    r
}

/// CEL's verdict (as the API server would give it) and the controller's (the parse the
/// reconciler runs) on the same Rollout.
fn verdicts(rollout: &Value) -> (Result<(), Vec<String>>, Result<(), Vec<String>>) {
    let cel = kube_cel::Validator::new()
        .validate(&checked_in_schema(), rollout, None)
        .map_err(|errors| errors.into_iter().map(|e| e.message).collect());
    let typed: sluice_core::spec::Rollout =
        serde_json::from_value(rollout.clone()).expect("the schema's shape");
    let controller = sluice_k8s::reconcile::parse_rollout(&typed).map(|_| ());
    (cel, controller)
}

#[test]
fn kubernetes_refuses_up_front_what_the_controller_refuses() {
    // (what is wrong, the edit, a word the CEL message must contain)
    type Case = (&'static str, fn(&mut Value), &'static str);
    let cases: &[Case] = &[
        (
            "steps go down",
            |s| s["strategy"]["canary"]["steps"] = json!([50, 20]),
            "strictly increase",
        ),
        (
            "steps repeat",
            |s| s["strategy"]["canary"]["steps"] = json!([10, 10]),
            "strictly increase",
        ),
        (
            "weight 0",
            |s| s["strategy"]["canary"]["steps"] = json!([0, 10]),
            "1..100",
        ),
        (
            "weight 150",
            |s| s["strategy"]["canary"]["steps"] = json!([10, 150]),
            "1..100",
        ),
        (
            "no steps",
            |s| s["strategy"]["canary"]["steps"] = json!([]),
            "at least one",
        ),
        (
            "steps and stepWeight",
            |s| s["strategy"]["canary"]["stepWeight"] = json!(10),
            "not both",
        ),
        (
            "maxWeight below stepWeight",
            |s| s["strategy"]["canary"] = json!({"stepWeight": 30, "maxWeight": 20}),
            "at least stepWeight",
        ),
        (
            "stepWeight 0",
            |s| s["strategy"]["canary"] = json!({"stepWeight": 0}),
            "1..100",
        ),
        ("no strategy", |s| s["strategy"] = json!({}), "exactly one"),
        (
            "two strategies",
            |s| {
                s["strategy"]["abTest"] =
                    json!({"match": [{"headers": {"x-user": {"exact": "b"}}}], "iterations": 2})
            },
            "exactly one",
        ),
        (
            "mirror 120%",
            |s| s["strategy"] = json!({"darkLaunch": {"match": [{"headers": {"x-user": {"exact": "b"}}}], "mirrorPercent": 120}}),
            "0..100",
        ),
        (
            "dark launch 0 iterations",
            |s| s["strategy"] = json!({"darkLaunch": {"match": [{"headers": {"x-user": {"exact": "b"}}}], "iterations": 0}}),
            "at least 1",
        ),
        (
            "then-canary steps go down",
            |s| s["strategy"] = json!({"darkLaunch": {"match": [{"headers": {"x-user": {"exact": "b"}}}], "thenCanary": {"steps": [50, 20]}}}),
            "strictly increase",
        ),
        (
            "A/B 0 iterations",
            |s| s["strategy"] = json!({"abTest": {"match": [{"headers": {"x-user": {"exact": "b"}}}], "iterations": 0}}),
            "at least 1",
        ),
        (
            "failureLimit 0",
            |s| s["analysis"]["failureLimit"] = json!(0),
            "failureLimit",
        ),
        (
            "inconclusiveLimit 0",
            |s| s["analysis"]["inconclusiveLimit"] = json!(0),
            "inconclusiveLimit",
        ),
        (
            "Gateway API routing with Istio hosts",
            |s| {
                s["routing"] = json!({"gatewayAPI": {"parentRefs": [{"name": "public"}]}});
                s["service"]["hosts"] = json!(["reviews.example.com"]);
            },
            "routing.gatewayAPI.hostnames",
        ),
        (
            "both routers",
            |s| s["routing"] = json!({"istio": {}, "gatewayAPI": {}}),
            "not both",
        ),
        (
            "an owned VirtualService with Istio hosts",
            |s| {
                s["routing"] =
                    json!({"istio": {"virtualServiceRef": {"name": "vs", "ruleName": "main"}}});
                s["service"]["gateways"] = json!(["public"]);
            },
            "VirtualService's own",
        ),
        (
            "an owned HTTPRoute with parentRefs",
            |s| {
                s["routing"] = json!({"gatewayAPI": {
                    "routeRef": {"name": "web", "ruleName": "main"},
                    "parentRefs": [{"name": "public"}],
                }})
            },
            "your route's own",
        ),
        (
            "an owned rule named like sluice's",
            |s| {
                s["routing"] =
                    json!({"gatewayAPI": {"routeRef": {"name": "web", "ruleName": "sluice-x"}}})
            },
            "rules sluice inserts",
        ),
        (
            "an owned route named like sluice's",
            |s| {
                s["routing"] =
                    json!({"istio": {"virtualServiceRef": {"name": "vs", "ruleName": "sluice-x"}}})
            },
            "routes sluice inserts",
        ),
        (
            "upstreams instead of targetRef",
            |s| {
                s.as_object_mut().unwrap().remove("targetRef");
                s["upstreams"] = json!({"stable": "127.0.0.1:1", "canary": "127.0.0.1:2"});
            },
            "targetRef",
        ),
    ];
    for (what, edit, word) in cases {
        let (cel, controller) = verdicts(&k8s_rollout(edit));
        let messages = cel.expect_err(what);
        assert!(
            messages.iter().any(|m| m.contains(word)),
            "{what}: no CEL message with {word:?}: {messages:?}"
        );
        assert!(controller.is_err(), "{what}: the controller would run it");
    }
}

#[test]
fn valid_rollouts_pass_every_rule() {
    let mut valid = vec![k8s_rollout(|_| {})];
    for f in sluice_testkit::files::example_files() {
        for r in sluice_testkit::files::load(&f) {
            if r.spec.target_ref.is_some() {
                valid.push(serde_json::to_value(&r).expect("json"));
            }
        }
    }
    assert!(
        valid.len() >= 4,
        "expected the Kubernetes examples in rollouts/"
    );
    for r in &valid {
        let (cel, controller) = verdicts(r);
        assert_eq!(cel, Ok(()), "{}", r["metadata"]["name"]);
        assert_eq!(controller, Ok(()), "{}", r["metadata"]["name"]);
    }
}
