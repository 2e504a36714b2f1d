//! deploy/ as the real tools render it: `helm lint --strict`, `helm template` (default values,
//! and every value set: tests/fixtures/helm/values-every-option.yaml) and `kubectl kustomize
//! deploy/`, each rendering's objects checked by [`crate::k8s_objects::problems`] (built-in
//! kinds strictly through k8s-openapi, the Rollout CRD and Rollouts, Istio objects, references
//! between objects), and the two install paths compared.
//!
//! The tools are `helm` 4.1 and `kubectl` 1.34 in `.tools/bin` (`scripts/install-k8s-tools.sh`,
//! which `scripts/test.sh` runs), or the paths in `SLUICE_HELM` / `SLUICE_KUBECTL`. Without them
//! these tests print why and pass, except when `CI` is set: there they fail. Nothing here needs
//! an API server.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::k8s_objects::{id, objects, problems, same};

const RELEASE: &str = "sluice";
const NAMESPACE: &str = "sluice-system";
const EVERY_OPTION: &str = "tests/fixtures/helm/values-every-option.yaml";

fn root() -> PathBuf {
    sluice_testkit::files::root()
}

struct Tools {
    helm: PathBuf,
    kubectl: PathBuf,
}

/// The tools, or `None` (with the reason printed) when they are not installed outside CI.
fn tools() -> Option<Tools> {
    let find = |name: &str, var: &str| {
        std::env::var_os(var).map(PathBuf::from).or_else(|| {
            let p = root().join(".tools/bin").join(name);
            p.is_file().then_some(p)
        })
    };
    if let (Some(helm), Some(kubectl)) = (
        find("helm", "SLUICE_HELM"),
        find("kubectl", "SLUICE_KUBECTL"),
    ) {
        return Some(Tools { helm, kubectl });
    }
    let why = "helm and kubectl are not in .tools/bin (nor SLUICE_HELM / SLUICE_KUBECTL): \
               run scripts/install-k8s-tools.sh";
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{why} (CI must run these tests)");
    eprintln!("skipped: {why}");
    None
}

/// Runs `tool args` in the repository root: stdout, or the exit status and stderr.
fn run(tool: &PathBuf, args: &[&str]) -> Result<String, String> {
    let out = Command::new(tool)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("utf-8 output"))
    } else {
        Err(format!(
            "{} {}: {}\n{stderr}",
            tool.display(),
            args.join(" "),
            out.status
        ))
    }
}

fn helm_template(t: &Tools, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        RELEASE,
        "deploy/helm/sluice",
        "--namespace",
        NAMESPACE,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    let text = run(&t.helm, &args).unwrap_or_else(|e| panic!("{e}"));
    objects(&text, "helm template")
}

fn kustomize(t: &Tools) -> Vec<Value> {
    let text = run(&t.kubectl, &["kustomize", "deploy/"]).unwrap_or_else(|e| panic!("{e}"));
    objects(&text, "kubectl kustomize deploy/")
}

fn kinds(objs: &[Value]) -> BTreeSet<(String, String)> {
    objs.iter()
        .map(|o| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&o["kind"]), s(&o["metadata"]["name"]))
        })
        .collect()
}

fn the<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objs.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

/// Every namespaced object sits in `ns` (cluster-scoped kinds have no namespace).
fn assert_namespaced(objs: &[Value], ns: &str) {
    for o in objs {
        let cluster_scoped = matches!(
            o["kind"].as_str(),
            Some("Namespace" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition")
        );
        let want = if cluster_scoped {
            Value::Null
        } else {
            json!(ns)
        };
        assert_eq!(o["metadata"]["namespace"], want, "{}: namespace", id(o));
    }
}

#[test]
fn helm_lint_strict_passes_with_default_values_and_every_value_set() {
    let Some(t) = tools() else { return };
    for extra in [&[][..], &["--values", EVERY_OPTION][..]] {
        let mut args = vec!["lint", "--strict", "deploy/helm/sluice"];
        args.extend_from_slice(extra);
        let out = run(&t.helm, &args).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{out}"
        );
    }
}

#[test]
fn helm_template_with_default_values_renders_valid_objects() {
    let Some(t) = tools() else { return };
    let objs = helm_template(&t, &[]);
    let p = problems(&objs);
    assert!(p.is_empty(), "{p:#?}");
    let got: BTreeSet<String> = kinds(&objs)
        .into_iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let want: BTreeSet<String> = [
        "CustomResourceDefinition rollouts.sluice.dev",
        "CustomResourceDefinition analysistemplates.sluice.dev",
        "CustomResourceDefinition clusteranalysistemplates.sluice.dev",
        "ServiceAccount sluice-controller",
        "ClusterRole sluice-controller",
        "ClusterRoleBinding sluice-controller",
        "Service sluice-controller",
        "Deployment sluice-controller",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
    assert_namespaced(&objs, NAMESPACE);
    // The image docs/kubernetes.md "Build the image" builds: this crate's version.
    let c = &the(&objs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["image"],
        format!("ghcr.io/sluice-dev/sluice:{}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn helm_template_with_every_value_set_renders_them_into_valid_objects() {
    let Some(t) = tools() else { return };
    let objs = helm_template(&t, &["--values", EVERY_OPTION]);
    let p = problems(&objs);
    assert!(p.is_empty(), "{p:#?}");
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join(EVERY_OPTION)).expect("values file"),
    )
    .expect("yaml");
    let d = the(&objs, "Deployment");
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(d["spec"]["replicas"], values["replicaCount"]);
    assert_eq!(
        c["image"],
        format!(
            "{}:{}",
            values["image"]["repository"].as_str().expect("repository"),
            values["image"]["tag"].as_str().expect("tag")
        )
    );
    assert_eq!(c["imagePullPolicy"], values["image"]["pullPolicy"]);
    assert!(
        c["args"]
            .as_array()
            .expect("args")
            .contains(&json!("--namespaces=bookinfo,payments")),
        "{}",
        c["args"]
    );
    assert_eq!(
        c["env"][2],
        json!({"name": "RUST_LOG", "value": values["logLevel"]})
    );
    assert_eq!(c["resources"], values["resources"]);
    for key in ["nodeSelector", "tolerations", "affinity"] {
        assert_eq!(pod[key], values[key], "{key}");
    }
}

#[test]
fn kubectl_kustomize_renders_every_manifest_of_deploy_into_valid_objects() {
    let Some(t) = tools() else { return };
    let objs = kustomize(&t);
    let p = problems(&objs);
    assert!(p.is_empty(), "{p:#?}");
    // Every plain manifest is listed in the kustomization (a new file must be added there).
    let mut files = Vec::new();
    for dir in ["crds", "controller", "rbac"] {
        files.extend(
            sluice_core::validate::yaml_files(&root().join("deploy").join(dir)).expect("deploy/"),
        );
    }
    let mut on_disk = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        on_disk.extend(objects(&text, &f.display().to_string()));
    }
    assert_eq!(
        kinds(&objs),
        kinds(&on_disk),
        "kubectl kustomize deploy/ vs the files under deploy/"
    );
    assert!(kinds(&objs).contains(&("Namespace".into(), NAMESPACE.into())));
    assert_namespaced(&objs, NAMESPACE);
}

/// `kubectl apply -k deploy/` and `helm install sluice -n sluice-system` install the same
/// controller: same objects, image, permissions, probes, security settings and resources.
#[test]
fn helm_and_kustomize_install_the_same_controller() {
    let Some(t) = tools() else { return };
    let h = helm_template(&t, &[]);
    let k = kustomize(&t);
    let mut k_kinds = kinds(&k);
    k_kinds.remove(&("Namespace".into(), NAMESPACE.into())); // helm: --create-namespace
    assert_eq!(kinds(&h), k_kinds);
    let crds = |objs: &[Value]| -> Vec<Value> {
        let mut v: Vec<Value> = objs
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .cloned()
            .collect();
        v.sort_by_key(|o| o["metadata"]["name"].to_string());
        v
    };
    let (hc, kc) = (crds(&h), crds(&k));
    assert_eq!(
        hc.len(),
        3,
        "Rollout, AnalysisTemplate, ClusterAnalysisTemplate"
    );
    for (a, b) in hc.iter().zip(&kc) {
        assert!(
            same(a, b),
            "the CRD {} differs between helm and kustomize",
            a["metadata"]["name"]
        );
    }
    assert_eq!(
        the(&h, "ClusterRole")["rules"],
        the(&k, "ClusterRole")["rules"]
    );
    assert_eq!(
        the(&h, "Service")["spec"]["ports"],
        the(&k, "Service")["spec"]["ports"]
    );
    let (hd, kd) = (the(&h, "Deployment"), the(&k, "Deployment"));
    assert_eq!(hd["spec"]["replicas"], kd["spec"]["replicas"]);
    let (hp, kp) = (
        &hd["spec"]["template"]["spec"],
        &kd["spec"]["template"]["spec"],
    );
    assert_eq!(hp["securityContext"], kp["securityContext"]);
    let (hc, kc) = (&hp["containers"][0], &kp["containers"][0]);
    for key in [
        "image",
        "env",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
    ] {
        assert_eq!(hc[key], kc[key], "container {key}: helm vs kustomize");
    }
    // The chart adds the release's lease name and the namespace list to the same command.
    let (ha, ka) = (
        hc["args"].as_array().expect("args"),
        kc["args"].as_array().expect("args"),
    );
    assert_eq!(
        &ha[..ka.len()],
        &ka[..],
        "helm args {ha:?} must start with {ka:?}"
    );
}

#[test]
fn the_chart_refuses_bad_values_naming_the_field() {
    let Some(t) = tools() else { return };
    for (set, want) in [
        ("replicaCount=two", "/replicaCount"),
        ("replicaCount=0", "/replicaCount"),
        ("replicas=2", "'replicas' not allowed"),
        ("namespaces={Bad_NS}", "/namespaces/0"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("image.repository=", "/image/repository"),
    ] {
        let args = ["template", RELEASE, "deploy/helm/sluice", "--set", set];
        match run(&t.helm, &args) {
            Ok(_) => panic!("helm template --set {set} succeeded"),
            Err(e) => assert!(
                e.contains("don't meet the specifications of the schema") && e.contains(want),
                "--set {set}: expected an error naming {want}, got {e}"
            ),
        }
    }
}
