//! deploy/crds/rollout.yaml is generated from the Rust types; it must not drift.

use kube::CustomResourceExt;

#[test]
fn checked_in_crd_matches_the_types() {
    let generated =
        sluice_core::yaml::to_string(&sluice_core::spec::Rollout::crd()).expect("serialize CRD");
    let path = sluice_testkit::files::root().join("deploy/crds/rollout.yaml");
    let checked_in = std::fs::read_to_string(&path).expect("read deploy/crds/rollout.yaml");
    assert!(
        checked_in == generated,
        "deploy/crds/rollout.yaml is out of date with src/spec.rs; regenerate it with\n\n    \
         cargo run -- crd > deploy/crds/rollout.yaml\n\nand commit the result"
    );
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
    let crd = serde_json::to_value(sluice_core::spec::Rollout::crd()).expect("crd json");
    let generated = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema")
        .expect("generated schema");
    assert_eq!(sluice_core::validate::embedded_crd_schema(), generated);
}
