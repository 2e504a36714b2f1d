//! Validation of Kubernetes objects as an API server would receive them, with no API server:
//! [`problems`] checks a set of objects (one rendering of deploy/ or of the Helm chart) and
//! returns every problem with the object and field it concerns.
//!
//! - Built-in kinds go through k8s-openapi's types and back: a value of the wrong type does not
//!   parse, and a field the type does not know (a typo, a field of another version) is dropped
//!   on the way back and reported as unknown, like `kubectl apply`'s strict field validation.
//! - The CRD must be the one generated from the Rust types; Rollouts are checked against the
//!   CRD schema of the same rendering (or the generated one) and by sluice's own validation.
//! - Istio VirtualServices and DestinationRules against Istio's CRD schemas
//!   (tests/fixtures/istio/).
//! - Any other kind is a problem: a new kind needs a validator here first.
//! - References between the objects: the ServiceAccount a Deployment runs as and a binding
//!   names, the ClusterRole a binding grants, a Deployment's selector against its pod labels, a
//!   Service's selector and named target ports against a Deployment's pods.
//!
//! The raw files of deploy/ are checked here; `real::k8s_rendered` checks the output of the
//! real `helm template` and `kubectl kustomize`.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sluice_core::validate::{FieldPath, schema};

fn root() -> std::path::PathBuf {
    sluice_testkit::files::root()
}

/// The non-empty documents of a multi-document YAML text.
pub fn objects(text: &str, what: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{what}: invalid YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// `Kind namespace/name`, for messages.
pub fn id(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or("<no kind>");
    let name = obj["metadata"]["name"].as_str().unwrap_or("<no name>");
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Every problem of `objs`, each prefixed with the object it concerns. Empty: all valid.
pub fn problems(objs: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let crd_schema = rollout_schema(objs);
    for obj in objs {
        let found = match (obj["apiVersion"].as_str(), obj["kind"].as_str()) {
            (Some("apps/v1"), Some("Deployment")) => strict::<Deployment>(obj),
            (Some("v1"), Some("Service")) => strict::<Service>(obj),
            (Some("v1"), Some("ServiceAccount")) => strict::<ServiceAccount>(obj),
            (Some("v1"), Some("Namespace")) => strict::<Namespace>(obj),
            (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
                strict::<ClusterRole>(obj)
            }
            (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
                strict::<ClusterRoleBinding>(obj)
            }
            (Some("apiextensions.k8s.io/v1"), Some("CustomResourceDefinition")) => {
                let mut p = strict::<CustomResourceDefinition>(obj);
                let generated = match obj["metadata"]["name"].as_str() {
                    Some("rollouts.sluice.dev") => Some(generated_crd()),
                    Some("analysistemplates.sluice.dev") => {
                        Some(sluice_core::crd::analysis_template_crd())
                    }
                    Some("clusteranalysistemplates.sluice.dev") => {
                        Some(sluice_core::crd::cluster_analysis_template_crd())
                    }
                    _ => None,
                };
                if generated.is_some_and(|g| !same(obj, &g)) {
                    p.push(
                        "differs from the CRD generated from the Rust types (`sluice crd`)".into(),
                    );
                }
                p
            }
            (Some("sluice.dev/v1alpha1"), Some("Rollout")) => rollout_problems(obj, &crd_schema),
            (
                Some("networking.istio.io/v1"),
                Some(kind @ ("VirtualService" | "DestinationRule")),
            ) => istio_problems(obj, kind),
            (api, kind) => vec![format!(
                "no validator for apiVersion {api:?} kind {kind:?} (add one in k8s_objects.rs)"
            )],
        };
        out.extend(found.into_iter().map(|p| format!("{}: {p}", id(obj))));
    }
    out.extend(references(objs));
    out
}

/// Parses `obj` as `K` and serializes it back: a parse error, or every field that did not
/// survive the trip (unknown to `K`) or came back different.
fn strict<K: DeserializeOwned + Serialize>(obj: &Value) -> Vec<String> {
    match serde_path_to_error::deserialize::<_, K>(obj) {
        Err(e) => vec![format!(".{}: does not parse: {}", e.path(), e.inner())],
        Ok(typed) => {
            let back = serde_json::to_value(&typed).expect("serialize a k8s-openapi object");
            let mut out = Vec::new();
            dropped(obj, &back, "", &mut out);
            out
        }
    }
}

fn dropped(orig: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(bv) => dropped(v, bv, &p, out),
                    None if v.is_null() => {}
                    None => out.push(format!("{p}: unknown field")),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) if o.len() == b.len() => {
            for (i, (x, y)) in o.iter().zip(b).enumerate() {
                dropped(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (o, b) if !same(o, b) => out.push(format!("{path}: {o} reads back as {b}")),
        _ => {}
    }
}

/// Equal as the API server sees JSON: numbers by value (`0` and `0.0` are the same number;
/// kustomize writes the CRD's `minimum: 0.0` as `0`).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn generated_crd() -> Value {
    sluice_core::crd::rollout_crd()
}

/// The Rollout schema: from the CRD in the same set of objects if there is one (what the API
/// server would use), else the generated CRD.
fn rollout_schema(objs: &[Value]) -> Value {
    let crd = objs
        .iter()
        .find(|o| {
            o["kind"] == "CustomResourceDefinition"
                && o["metadata"]["name"] == "rollouts.sluice.dev"
        })
        .cloned()
        .unwrap_or_else(generated_crd);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn rollout_problems(obj: &Value, crd_schema: &Value) -> Vec<String> {
    let mut out = body_problems(obj, crd_schema);
    let text = serde_json::to_string(obj).expect("json");
    if let Err(found) = sluice_core::validate::load_str(&text, "rollout") {
        out.extend(found.iter().map(|p| format!("{}: {}", p.path, p.message)));
    }
    out
}

fn istio_problems(obj: &Value, kind: &str) -> Vec<String> {
    let file = match kind {
        "VirtualService" => "virtualservice-v1.openapi.json",
        _ => "destinationrule-v1.openapi.json",
    };
    let path = root().join("tests/fixtures/istio").join(file);
    let istio_schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read schema")).expect("json");
    body_problems(obj, &istio_schema)
}

/// A custom object against its CRD's openAPIV3Schema, which covers `spec` and `status`
/// (apiVersion, kind and metadata are the API server's own).
fn body_problems(obj: &Value, crd_schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if !obj["metadata"]["name"].is_string() {
        out.push("metadata.name missing".into());
    }
    let mut body = json!({});
    for part in ["spec", "status"] {
        if let Some(v) = obj.get(part) {
            body[part] = v.clone();
        }
    }
    out.extend(
        schema::check(&body, crd_schema, &FieldPath::default())
            .into_iter()
            .map(|m| format!("{}: {}", m.path, m.message)),
    );
    out
}

fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}

/// `labels` (a JSON object) contains every pair of `selector`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// References between the objects, checked the way the cluster would resolve them.
fn references(objs: &[Value]) -> Vec<String> {
    let of = |kind: &'static str| objs.iter().filter(move |o| o["kind"] == kind);
    let service_accounts: BTreeSet<(String, String)> = of("ServiceAccount")
        .map(|o| {
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            (namespace(o).to_string(), name.to_string())
        })
        .collect();
    let cluster_roles: BTreeSet<&str> = of("ClusterRole")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let mut out = Vec::new();
    for d in of("Deployment") {
        let pod = &d["spec"]["template"];
        if !selects(
            &d["spec"]["selector"]["matchLabels"],
            &pod["metadata"]["labels"],
        ) {
            out.push(format!(
                "{}: spec.selector.matchLabels does not select the pod template's labels",
                id(d)
            ));
        }
        let sa = pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default");
        if !service_accounts.contains(&(namespace(d).to_string(), sa.to_string())) {
            out.push(format!(
                "{}: runs as ServiceAccount {sa}, which is not among these objects",
                id(d)
            ));
        }
    }
    for b in of("ClusterRoleBinding") {
        let role = &b["roleRef"];
        if role["kind"] != "ClusterRole"
            || !cluster_roles.contains(role["name"].as_str().unwrap_or(""))
        {
            out.push(format!(
                "{}: roleRef {role} is not among these objects",
                id(b)
            ));
        }
        for s in b["subjects"].as_array().into_iter().flatten() {
            let key = (
                s["namespace"].as_str().unwrap_or_default().to_string(),
                s["name"].as_str().unwrap_or_default().to_string(),
            );
            if s["kind"] != "ServiceAccount" || !service_accounts.contains(&key) {
                out.push(format!("{}: subject {s} is not among these objects", id(b)));
            }
        }
    }
    for svc in of("Service") {
        let selector = &svc["spec"]["selector"];
        let Some(d) = of("Deployment").find(|d| {
            namespace(d) == namespace(svc)
                && selects(selector, &d["spec"]["template"]["metadata"]["labels"])
        }) else {
            out.push(format!(
                "{}: selector {selector} selects no Deployment's pods",
                id(svc)
            ));
            continue;
        };
        let named: BTreeSet<&str> = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .filter_map(|p| p["name"].as_str())
            .collect();
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(t) = p["targetPort"].as_str()
                && !named.contains(t)
            {
                out.push(format!(
                    "{}: targetPort {t} is not a port of {}'s containers",
                    id(svc),
                    id(d)
                ));
            }
        }
    }
    out
}

/// The objects of the plain manifests of deploy/ (what the kustomization lists) and its
/// example Rollout: every file, no rendering.
fn raw_deploy_objects() -> Vec<Value> {
    let mut out = Vec::new();
    for dir in ["crds", "controller", "rbac", "e2e"] {
        let files = sluice_core::validate::yaml_files(&root().join("deploy").join(dir))
            .expect("read deploy/");
        for f in files {
            out.extend(objects(&read(&f), &f.display().to_string()));
        }
    }
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_plain_manifests_of_deploy_are_valid_objects() {
    let objs = raw_deploy_objects();
    let kinds: BTreeSet<&str> = objs.iter().filter_map(|o| o["kind"].as_str()).collect();
    for k in [
        "CustomResourceDefinition",
        "Deployment",
        "Service",
        "ClusterRoleBinding",
        "Rollout",
    ] {
        assert!(kinds.contains(k), "no {k} found under deploy/");
    }
    let p = problems(&objs);
    assert!(p.is_empty(), "{p:#?}");
}

#[test]
fn example_rollouts_are_valid_objects() {
    let mut objs = Vec::new();
    for f in sluice_testkit::files::example_files() {
        objs.extend(objects(&read(&f), &f.display().to_string()));
    }
    assert!(objs.len() >= 4, "only {} example Rollouts", objs.len());
    let p = problems(&objs);
    assert!(p.is_empty(), "{p:#?}");
}

#[test]
fn generated_istio_objects_are_valid_objects() {
    let r = &sluice_testkit::files::load(&root().join("rollouts/reviews-canary.yaml"))[0];
    let plan = &sluice_core::plan::steps(&sluice_testkit::plan_of(r))[1].traffic;
    let mut objs = vec![sluice_k8s::istio::virtual_service(r, plan)];
    objs.extend(sluice_k8s::istio::destination_rules(r));
    let p = problems(&objs);
    assert!(p.is_empty(), "{p:#?}");
}

/// Not vacuous: each broken object below is reported, at the field that is wrong.
#[test]
fn the_validation_reports_broken_objects() {
    let good = raw_deploy_objects();
    assert!(problems(&good).is_empty());
    let find = |objs: &mut Vec<Value>, kind: &str| -> usize {
        objs.iter()
            .position(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    type Mutation = Box<dyn Fn(&mut Vec<Value>)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "Deployment sluice-system/sluice-controller: .spec.template.spec.containers[0].imagePullPolice: unknown field",
            Box::new(move |o| {
                let i = find(o, "Deployment");
                o[i]["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] =
                    json!("Always");
            }),
        ),
        (
            "Deployment sluice-system/sluice-controller: .spec.replicas: does not parse: invalid type: string \"two\"",
            Box::new(move |o| {
                let i = find(o, "Deployment");
                o[i]["spec"]["replicas"] = json!("two");
            }),
        ),
        (
            "Service sluice-system/sluice-controller: .spec.ports[0].port",
            Box::new(move |o| {
                let i = find(o, "Service");
                o[i]["spec"]["ports"][0]["port"] = json!("eighty");
            }),
        ),
        (
            "Deployment sluice-system/sluice-controller: spec.selector.matchLabels does not select",
            Box::new(move |o| {
                let i = find(o, "Deployment");
                o[i]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = json!("other");
            }),
        ),
        (
            "Deployment sluice-system/sluice-controller: runs as ServiceAccount",
            Box::new(move |o| {
                let i = find(o, "ServiceAccount");
                o.remove(i);
            }),
        ),
        (
            "ClusterRoleBinding sluice-controller: roleRef",
            Box::new(move |o| {
                let i = find(o, "ClusterRoleBinding");
                o[i]["roleRef"]["name"] = json!("sluice-controler");
            }),
        ),
        (
            "Service sluice-system/sluice-controller: targetPort probez",
            Box::new(move |o| {
                let i = find(o, "Service");
                o[i]["spec"]["ports"][0]["targetPort"] = json!("probez");
            }),
        ),
        (
            "Service sluice-system/sluice-controller: selector",
            Box::new(move |o| {
                let i = find(o, "Service");
                o[i]["spec"]["selector"] = json!({"app": "nothing"});
            }),
        ),
        (
            "CustomResourceDefinition rollouts.sluice.dev: differs from the CRD generated",
            Box::new(move |o| {
                let i = o
                    .iter()
                    .position(|x| x["metadata"]["name"] == "rollouts.sluice.dev")
                    .expect("the Rollout CRD");
                o[i]["spec"]["names"]["shortNames"] = json!(["ro"]);
            }),
        ),
        (
            "CustomResourceDefinition analysistemplates.sluice.dev: differs from the CRD generated",
            Box::new(move |o| {
                let i = o
                    .iter()
                    .position(|x| x["metadata"]["name"] == "analysistemplates.sluice.dev")
                    .expect("the AnalysisTemplate CRD");
                o[i]["spec"]["scope"] = json!("Cluster");
            }),
        ),
        (
            "Rollout bookinfo/reviews: spec.strategy.canary.stepz",
            Box::new(move |o| {
                let i = find(o, "Rollout");
                o[i]["spec"]["strategy"]["canary"]["stepz"] = json!([1]);
            }),
        ),
        (
            "Rollout bookinfo/reviews: spec.analysis.interval",
            Box::new(move |o| {
                let i = find(o, "Rollout");
                o[i]["spec"]["analysis"]["interval"] = json!("soon");
            }),
        ),
        (
            "Ingress sluice-system/web: no validator",
            Box::new(|o| {
                o.push(
                    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": "web", "namespace": "sluice-system"}}),
                );
            }),
        ),
        (
            "VirtualService bookinfo/reviews: spec.http[0].route[0].weight",
            Box::new(|o| {
                o.push(
                    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": "reviews", "namespace": "bookinfo"},
                    "spec": {"hosts": ["reviews"], "http": [{"route": [
                        {"destination": {"host": "reviews-primary"}, "weight": "100"}]}]}}),
                );
            }),
        ),
    ];
    for (want, mutate) in cases {
        let mut objs = good.clone();
        mutate(&mut objs);
        let p = problems(&objs);
        assert!(
            p.iter().any(|m| m.starts_with(want)),
            "expected a problem starting with {want:?}, got {p:#?}"
        );
    }
}
