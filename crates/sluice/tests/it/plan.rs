//! `sluice plan`: golden files of every example, and route weights adding up to 100.

use sluice_testkit::files::{assert_golden, example_files, load, root};

fn golden_name(path: &std::path::Path, ext: &str) -> String {
    let rel = path
        .strip_prefix(root().join("rollouts"))
        .expect("example under rollouts/");
    let stem = rel.with_extension("").to_string_lossy().replace('/', "-");
    format!("plan/{stem}.{ext}")
}

#[test]
fn plan_outputs_match_golden_files() {
    let files = example_files();
    assert!(files.len() >= 4, "expected the examples in rollouts/");
    for f in files {
        let rollouts = load(&f);
        let table: Vec<String> = rollouts
            .iter()
            .map(|r| sluice_core::plan::table(r, &sluice_testkit::plan_of(r)))
            .collect();
        assert_golden(&golden_name(&f, "txt"), &table.join("\n"));
        let vs: Vec<String> = rollouts
            .iter()
            .map(|r| sluice_k8s::istio::plan_yaml(r, &sluice_testkit::plan_of(r)).expect("yaml"))
            .collect();
        assert_golden(&golden_name(&f, "virtualservice.yaml"), &vs.concat());
    }
}

/// Every strategy must be covered by an example (and so by a golden file).
#[test]
fn examples_cover_every_strategy() {
    let all: Vec<_> = example_files().iter().flat_map(|f| load(f)).collect();
    let s =
        |pred: fn(&sluice_core::spec::Strategy) -> bool| all.iter().any(|r| pred(&r.spec.strategy));
    assert!(s(|s| s.canary.is_some()));
    assert!(s(|s| s.dark_launch.is_some()));
    assert!(s(|s| s.ab_test.is_some()));
    assert!(all.iter().any(|r| r.spec.upstreams.is_some()));
}

/// Parses the printed YAML stream back and checks every http route of every step.
#[test]
fn every_step_routes_add_up_to_100() {
    for f in example_files() {
        for r in load(&f) {
            let stream =
                sluice_k8s::istio::plan_yaml(&r, &sluice_testkit::plan_of(&r)).expect("yaml");
            let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&stream)
                .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML document"))
                .collect();
            let steps = sluice_core::plan::steps(&sluice_testkit::plan_of(&r));
            assert_eq!(
                docs.len(),
                steps.len(),
                "{}: one document per step",
                f.display()
            );
            for (i, vs) in docs.iter().enumerate() {
                assert_eq!(vs["kind"], "VirtualService");
                let http = vs["spec"]["http"].as_array().expect("http routes");
                assert!(!http.is_empty());
                for (j, route) in http.iter().enumerate() {
                    let sum: u64 = route["route"]
                        .as_array()
                        .expect("route list")
                        .iter()
                        .map(|d| d["weight"].as_u64().expect("integer weight"))
                        .sum();
                    assert_eq!(sum, 100, "{} step {i} http[{j}]", f.display());
                }
                // The default route comes last and matches everything.
                assert!(http.last().and_then(|r| r.get("match")).is_none());
            }
            let last = docs.last().expect("promoted state");
            assert_eq!(last["spec"]["http"][0]["route"][0]["weight"], 100);
            assert_eq!(
                last["spec"]["http"][0]["route"][0]["destination"]["host"],
                format!("{}-primary", r.metadata.name.as_deref().unwrap_or(""))
            );
        }
    }
}

#[test]
fn cli_prints_the_same_stream() {
    let file = root().join("rollouts/reviews-dark-launch.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plan", "-o", "virtualservice"])
        .arg(&file)
        .output()
        .expect("run sluice plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: String = load(&file)
        .iter()
        .map(|r| sluice_k8s::istio::plan_yaml(r, &sluice_testkit::plan_of(r)).expect("yaml"))
        .collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    let json = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plan", "-o", "json"])
        .arg(&file)
        .output()
        .expect("run sluice plan");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json output");
    assert_eq!(v[0]["steps"][0]["label"], "dark launch (mirror 20%)");
    assert_eq!(v[0]["steps"][0]["checks"], 5);
}
