//! deploy/ as a platform engineer will apply it: every manifest parses, kinds and apiVersions
//! are the ones the cluster serves, the kustomization and the Helm chart reference what
//! exists, the RBAC rules are exactly the API calls the controller makes
//! (`sluice_k8s::api_calls::CALLS`), and example Rollouts validate against the CRD's
//! openAPIV3Schema generated from the Rust types.
//!
//! Its Helm "rendering" is a crude stand-in that works without tools; `real::k8s_rendered`
//! renders with the real `helm` and `kubectl kustomize` and validates every object strictly
//! (`k8s_objects`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use sluice_core::spec::Rollout;
use sluice_k8s::api_calls::CALLS;

fn root() -> PathBuf {
    sluice_testkit::files::root()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out.sort();
}

fn docs(text: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{what}: invalid YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// Enough of Helm to parse templates: `toYaml` blocks become `{}`, other actions a word.
fn render_helm(text: &str) -> String {
    let re = regex::Regex::new(r"\{\{-?([^}]*)\}\}").expect("regex");
    re.replace_all(text, |c: &regex::Captures| {
        if c[1].contains("toYaml") {
            " {}".to_string()
        } else {
            "release".to_string()
        }
    })
    .into_owned()
}

fn expected_api_version(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "CustomResourceDefinition" => "apiextensions.k8s.io/v1",
        "ClusterRole" | "ClusterRoleBinding" => "rbac.authorization.k8s.io/v1",
        "Deployment" => "apps/v1",
        "Service" | "ServiceAccount" | "Namespace" => "v1",
        "Kustomization" => "kustomize.config.k8s.io/v1beta1",
        "Rollout" => "sluice.dev/v1alpha1",
        _ => return None,
    })
}

fn check_kind(doc: &Value, what: &str) {
    let kind = doc["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no kind"));
    let want =
        expected_api_version(kind).unwrap_or_else(|| panic!("{what}: unexpected kind {kind}"));
    assert_eq!(doc["apiVersion"], want, "{what}: apiVersion of {kind}");
}

/// Every manifest under deploy/ (Helm templates rendered first).
fn manifests() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    yaml_files(&root().join("deploy"), &mut files);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name == "Chart.yaml" || name == "values.yaml" {
            continue;
        }
        let text = if f.components().any(|c| c.as_os_str() == "templates") {
            render_helm(&text)
        } else {
            text
        };
        for d in docs(&text, &f.display().to_string()) {
            out.push((f.clone(), d));
        }
    }
    out
}

#[test]
fn every_manifest_parses_with_known_kinds() {
    let all = manifests();
    let kinds: BTreeSet<String> = all
        .iter()
        .map(|(f, d)| {
            check_kind(d, &f.display().to_string());
            d["kind"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    for k in [
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
        "Kustomization",
        "Rollout",
    ] {
        assert!(kinds.contains(k), "deploy/ has no {k}");
    }
    for (f, d) in &all {
        if d["kind"] == "Deployment" {
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            assert!(
                c["livenessProbe"].is_object(),
                "{}: liveness probe",
                f.display()
            );
            assert!(
                c["readinessProbe"].is_object(),
                "{}: readiness probe",
                f.display()
            );
            assert!(
                c["resources"]["requests"].is_object()
                    || f.components().any(|c| c.as_os_str() == "templates"),
                "{}: resource requests",
                f.display()
            );
        }
    }
}

#[test]
fn kustomization_and_chart_reference_what_exists() {
    let k: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("deploy/kustomization.yaml")).expect("kustomization"),
    )
    .expect("yaml");
    for r in k["resources"].as_array().expect("resources") {
        let p = root().join("deploy").join(r.as_str().expect("path"));
        assert!(p.exists(), "kustomization resource {} missing", p.display());
    }
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("deploy/helm/sluice/Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("yaml");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "sluice");
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("deploy/helm/sluice/values.yaml")).expect("values"),
    )
    .expect("yaml");
    assert!(values["image"]["repository"].is_string());
    // The CRD everywhere is the one generated from the Rust types.
    for (file, crd) in [
        ("rollout.yaml", sluice_core::crd::rollout_crd()),
        (
            "analysistemplate.yaml",
            sluice_core::crd::analysis_template_crd(),
        ),
        (
            "clusteranalysistemplate.yaml",
            sluice_core::crd::cluster_analysis_template_crd(),
        ),
    ] {
        let generated = sluice_core::yaml::to_string(&crd).expect("crd");
        for p in [
            format!("deploy/crds/{file}"),
            format!("deploy/helm/sluice/crds/{file}"),
        ] {
            let on_disk = std::fs::read_to_string(root().join(&p)).expect("crd file");
            assert_eq!(
                on_disk, generated,
                "{p} drifted: regenerate with `sluice crd [KIND] > {p}`"
            );
        }
        assert!(
            k["resources"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r == &format!("crds/{file}"))),
            "deploy/kustomization.yaml does not install crds/{file}"
        );
    }
}

fn rbac_rules(path: &str) -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(root().join(path)).expect("rbac file");
    let text = if path.contains("templates") {
        render_helm(&text)
    } else {
        text
    };
    let mut out = BTreeSet::new();
    for d in docs(&text, path) {
        if d["kind"] != "ClusterRole" {
            continue;
        }
        for rule in d["rules"].as_array().expect("rules") {
            for g in rule["apiGroups"].as_array().expect("apiGroups") {
                for r in rule["resources"].as_array().expect("resources") {
                    for v in rule["verbs"].as_array().expect("verbs") {
                        let s = |x: &Value| x.as_str().expect("string").to_string();
                        assert_ne!(s(v), "*", "{path}: no wildcard verbs");
                        assert_ne!(s(r), "*", "{path}: no wildcard resources");
                        out.insert((s(g), s(r), s(v)));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn rbac_grants_exactly_the_calls_the_controller_makes() {
    let used: BTreeSet<(String, String, String)> = CALLS
        .iter()
        .flat_map(|c| {
            c.verbs
                .iter()
                .map(move |v| (c.group.to_string(), c.resource.to_string(), v.to_string()))
        })
        .collect();
    for path in [
        "deploy/rbac/clusterrole.yaml",
        "deploy/helm/sluice/templates/clusterrole.yaml",
    ] {
        let granted = rbac_rules(path);
        let missing: Vec<_> = used.difference(&granted).collect();
        let extra: Vec<_> = granted.difference(&used).collect();
        assert!(missing.is_empty(), "{path} lacks {missing:?}");
        assert!(extra.is_empty(), "{path} grants more than used: {extra:?}");
    }
}

// ------------------------------------------------------------------ schema validation

/// A structural-schema validator covering what CRD schemas use: type, properties, required,
/// items, additionalProperties, enum, nullable, minimum/maximum, int-or-string, preserve-unknown.
fn validate(schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if v.is_null() {
        if schema["nullable"] != true {
            errs.push(format!("{path}: null not allowed"));
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(v.is_i64() || v.is_u64() || v.is_string()) {
            errs.push(format!("{path}: must be an integer or a string"));
        }
        return;
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        errs.push(format!("{path}: {v} not one of {e:?}"));
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                errs.push(format!("{path}: must be an object"));
                return;
            };
            for r in schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap_or_default();
                if !obj.contains_key(r) {
                    errs.push(format!("{path}.{r}: required"));
                }
            }
            for (k, val) in obj {
                let p = format!("{path}.{k}");
                if let Some(s) = schema["properties"].get(k) {
                    validate(s, val, &p, errs);
                } else if schema["additionalProperties"].is_object() {
                    validate(&schema["additionalProperties"], val, &p, errs);
                } else if schema["x-kubernetes-preserve-unknown-fields"] != true {
                    errs.push(format!("{p}: unknown field"));
                }
            }
        }
        Some("array") => match v.as_array() {
            Some(a) => {
                for (i, item) in a.iter().enumerate() {
                    validate(&schema["items"], item, &format!("{path}[{i}]"), errs);
                }
            }
            None => errs.push(format!("{path}: must be an array")),
        },
        Some("string") if !v.is_string() => errs.push(format!("{path}: must be a string")),
        Some("boolean") if !v.is_boolean() => errs.push(format!("{path}: must be a boolean")),
        Some("number") if !v.is_number() => errs.push(format!("{path}: must be a number")),
        Some("integer") => match v.as_i64() {
            Some(n) => {
                if schema["minimum"].as_f64().is_some_and(|m| (n as f64) < m) {
                    errs.push(format!("{path}: below minimum"));
                }
                if schema["maximum"].as_f64().is_some_and(|m| (n as f64) > m) {
                    errs.push(format!("{path}: above maximum"));
                }
            }
            None => errs.push(format!("{path}: must be an integer")),
        },
        _ => {}
    }
}

fn rollout_schema() -> Value {
    let crd = sluice_core::crd::rollout_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn validate_rollout(doc: &Value) -> Vec<String> {
    let schema = rollout_schema();
    let mut errs = Vec::new();
    for r in schema["required"].as_array().into_iter().flatten() {
        if doc.get(r.as_str().unwrap_or_default()).is_none() {
            errs.push(format!("{r}: required"));
        }
    }
    for part in ["spec", "status"] {
        if let Some(v) = doc.get(part) {
            validate(&schema["properties"][part], v, part, &mut errs);
        }
    }
    errs
}

#[test]
fn example_rollouts_validate_against_the_crd_schema() {
    let mut files = Vec::new();
    yaml_files(&root().join("rollouts"), &mut files);
    yaml_files(&root().join("deploy/e2e"), &mut files);
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for d in docs(&text, &f.display().to_string()) {
            if d["kind"] != "Rollout" {
                continue;
            }
            let errs = validate_rollout(&d);
            assert!(errs.is_empty(), "{}: {errs:?}", f.display());
            let _: Rollout = serde_json::from_value(d.clone())
                .unwrap_or_else(|e| panic!("{}: does not parse as a Rollout: {e}", f.display()));
            checked += 1;
        }
    }
    assert!(checked > 0, "no example Rollout found to validate");
}

#[test]
fn the_schema_check_rejects_bad_rollouts() {
    let good: Value = serde_yaml::from_str(
        "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  targetRef: {name: r}\n  service: {port: 80}\n  strategy: {canary: {steps: [10, 50]}}\n",
    )
    .expect("yaml");
    assert_eq!(validate_rollout(&good), Vec::<String>::new());
    let mut typo = good.clone();
    typo["spec"]["strategy"]["canary"]["stepz"] = serde_json::json!([1]);
    assert!(
        validate_rollout(&typo)
            .iter()
            .any(|e| e.contains("stepz: unknown field"))
    );
    let mut wrong_type = good.clone();
    wrong_type["spec"]["service"]["port"] = serde_json::json!("eighty");
    assert!(
        validate_rollout(&wrong_type)
            .iter()
            .any(|e| e.contains("spec.service.port"))
    );
    let mut missing = good;
    missing["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("service");
    assert!(
        validate_rollout(&missing)
            .iter()
            .any(|e| e.contains("spec.service: required"))
    );
}
