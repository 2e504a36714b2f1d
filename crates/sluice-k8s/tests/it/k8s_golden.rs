//! Golden files of the objects the controller writes (`tests/golden/k8s/`), so a reviewer sees
//! the exact YAML change. Regenerate with `UPDATE_GOLDEN=1 cargo test --test k8s_golden`.

use k8s_openapi::api::apps::v1::Deployment;
use sluice_core::spec::Rollout;
use sluice_core::traffic::TrafficPlan;
use sluice_k8s::{objects, router};

fn rollout() -> Rollout {
    serde_yaml::from_str(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: reviews, namespace: bookinfo, uid: 6f1c0b1e-0000-4000-8000-000000000001}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: reviews}
  service: {port: 9080, hosts: [reviews], gateways: [mesh]}
  strategy:
    darkLaunch:
      match: [{headers: {x-user: {exact: beta}}}]
      mirrorPercent: 20
      thenCanary: {steps: [10, 50]}
"#,
    )
    .expect("rollout parses")
}

fn target() -> Deployment {
    serde_yaml::from_str(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews, namespace: bookinfo}
spec:
  replicas: 3
  selector: {matchLabels: {app: reviews}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: reviews, version: v2}}
    spec:
      containers:
        - name: reviews
          image: docker.io/istio/examples-bookinfo-reviews-v2:1.20.2
          ports: [{containerPort: 9080}]
          readinessProbe: {httpGet: {path: /health, port: 9080}}
"#,
    )
    .expect("deployment parses")
}

fn check(name: &str, value: &impl serde::Serialize) {
    let yaml = serde_yaml::to_string(value).expect("yaml");
    let path = sluice_testkit::files::root()
        .join("tests/golden/k8s")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &yaml).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    assert_eq!(
        yaml, want,
        "{name} differs from its golden file (UPDATE_GOLDEN=1 to accept)"
    );
}

#[test]
fn virtual_services() {
    let r = rollout();
    let stages = sluice_testkit::plan_of(&r).stages;
    check(
        "virtualservice-dark-launch.yaml",
        &router::virtual_service_object(&r, &stages[0].traffic).expect("vs"),
    );
    check(
        "virtualservice-canary-10.yaml",
        &router::virtual_service_object(&r, &stages[1].traffic).expect("vs"),
    );
    check(
        "virtualservice-stable.yaml",
        &router::virtual_service_object(&r, &TrafficPlan::stable_only()).expect("vs"),
    );
}

#[test]
fn destination_rules() {
    check(
        "destinationrules.yaml",
        &router::destination_rule_objects(&rollout()).expect("drs"),
    );
}

#[test]
fn primary_deployment_and_services() {
    let (r, t) = (rollout(), target());
    let previous = {
        let mut p = objects::template(&t);
        if let Some(spec) = p.spec.as_mut() {
            spec.containers[0].image =
                Some("docker.io/istio/examples-bookinfo-reviews-v1:1.20.2".into());
        }
        p
    };
    check(
        "primary-deployment.yaml",
        &objects::primary_deployment(&r, &t, &objects::template(&t), 3, Some(&previous))
            .expect("primary"),
    );
    check(
        "services.yaml",
        &objects::services(&r, &t).expect("services"),
    );
    check(
        "apex-service.yaml",
        &objects::apex_service(&r, &t).expect("apex"),
    );
}
