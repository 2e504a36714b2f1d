//! Every YAML sluice prints reads back the same under YAML 1.1, the version kubectl (go-yaml),
//! PyYAML and Envoy (yaml-cpp) implement: each output is parsed by PyYAML (`python3`, installed
//! by scripts/install-deps.sh) and compared with its JSON form, so a `yes`, `on`, `0777`, `1:30`
//! or `2026-01-02` printed unquoted (read as a boolean, number or date) fails here.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;
use sluice_testkit::files::{example_files, load, root};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// The documents of a YAML stream as PyYAML's `safe_load_all` reads them (YAML 1.1 types), as
/// JSON; a value JSON has no form for (a date, a set) becomes `{"__not_json__": repr}`.
fn read_yaml11(text: &str) -> Vec<Value> {
    read_yaml11_all(&[text.to_string()]).remove(0)
}

/// [`read_yaml11`] of several streams with one `python3` (starting it costs more than reading).
fn read_yaml11_all(texts: &[String]) -> Vec<Vec<Value>> {
    const SCRIPT: &str = "import sys, json, yaml\n\
        texts = json.load(sys.stdin)\n\
        out = [[d for d in yaml.safe_load_all(t) if d is not None] for t in texts]\n\
        json.dump(out, sys.stdout, default=lambda o: {'__not_json__': repr(o)})\n";
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/install-deps.sh installs it with PyYAML)");
    let input = serde_json::to_vec(texts).expect("json");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3 finishes");
    assert!(
        out.status.success(),
        "PyYAML could not read the output (is python3-yaml installed? scripts/install-deps.sh \
         installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python3 printed JSON")
}

/// The same stream as YAML 1.2 (serde_yaml) reads it: the form sluice meant to write.
fn read_yaml12(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn sluice(args: &[&str], file: Option<&std::path::Path>) -> String {
    let mut cmd = Command::new(SLUICE);
    cmd.args(args);
    if let Some(f) = file {
        cmd.arg(f);
    }
    let out = cmd.output().expect("run sluice");
    assert!(
        out.status.success(),
        "sluice {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The routing objects of `sluice plan -o json` under `key`, one per step.
fn json_objects(file: &std::path::Path, key: &str) -> Vec<Value> {
    let all: Value =
        serde_json::from_str(&sluice(&["plan", "-o", "json"], Some(file))).expect("json");
    all.as_array()
        .expect("one entry per rollout")
        .iter()
        .flat_map(|r| r["steps"].as_array().expect("steps").clone())
        .map(|s| s[key].clone())
        .collect()
}

/// A Rollout whose header names and values are all words and numbers YAML 1.1 types.
const TRICKY: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: tricky, namespace: "no"}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: tricky}
  service: {port: 8080, hosts: ["on", "2026-01-02"]}
  strategy:
    darkLaunch:
      match:
        - headers:
            x-beta: {exact: "yes"}
            x-n: {exact: "n"}
            x-null: {exact: "~"}
        - headers:
            x-mode: {exact: "0777"}
            x-time: {prefix: "1:30"}
            x-when: {exact: "2026-01-02"}
            x-float: {exact: "1_000.5"}
            x-off: {exact: "OFF"}
      mirrorPercent: 20
      iterations: 2
      thenCanary: {steps: [50]}
  skipAnalysis: true
"#;

fn plan_outputs_read_the_same(file: &std::path::Path) -> usize {
    let mut checked = 0;
    for (format, key) in [
        ("virtualservice", "virtualService"),
        ("httproute", "httpRoute"),
        ("grpcroute", "grpcRoute"),
    ] {
        let printed = sluice(&["plan", "-o", format], Some(file));
        let meant = json_objects(file, key);
        let read = read_yaml11(&printed);
        assert_eq!(read.len(), meant.len(), "{} -o {format}", file.display());
        for (i, (r, m)) in read.iter().zip(&meant).enumerate() {
            assert_eq!(
                r,
                m,
                "{} -o {format}: document {i} reads differently under YAML 1.1",
                file.display()
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn plan_outputs_read_the_same_under_yaml_1_1() {
    let mut checked = 0;
    for f in example_files() {
        checked += plan_outputs_read_the_same(&f);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tricky = dir.path().join("tricky.yaml");
    std::fs::write(&tricky, TRICKY).expect("write");
    let rollouts = load(&tricky);
    assert_eq!(
        rollouts[0].spec.service.hosts,
        ["on", "2026-01-02"],
        "the fixture itself is read as meant"
    );
    checked += plan_outputs_read_the_same(&tricky);
    let printed = sluice(&["plan", "-o", "virtualservice"], Some(&tricky));
    // The issue's case, spelled out: the header value `yes` stays a string.
    assert!(printed.contains("exact: 'yes'"), "{printed}");
    let printed = sluice(&["plan", "-o", "httproute"], Some(&tricky));
    assert!(printed.contains("value: 'yes'"), "{printed}");
    assert!(checked >= 45, "only {checked} documents checked");
}

#[test]
fn the_crd_reads_the_same_under_yaml_1_1() {
    let printed = sluice(&["crd"], None);
    assert_eq!(read_yaml11(&printed), read_yaml12(&printed));
    assert_eq!(read_yaml11(&printed).len(), 1);
}

/// The Envoy bootstraps sluice prints (Envoy reads them with yaml-cpp); the xDS files are JSON.
#[test]
fn envoy_files_read_the_same_under_yaml_1_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xds = dir.path().join("xds");
    let xds_arg = xds.display().to_string();
    let printed = sluice(
        &[
            "envoy-bootstrap",
            "--listen-port",
            "10000",
            "--admin-port",
            "9901",
            "--xds",
            "files",
            "--xds-dir",
            &xds_arg,
        ],
        None,
    );
    assert_eq!(read_yaml11(&printed), read_yaml12(&printed));
    for f in ["cds.json", "rds.json"] {
        let text = std::fs::read_to_string(xds.join(f)).expect("xds file");
        serde_json::from_str::<serde_json::Value>(&text).expect(f);
    }
    let ads = sluice(
        &[
            "envoy-bootstrap",
            "--listen-port",
            "10000",
            "--admin-port",
            "9901",
        ],
        None,
    );
    assert_eq!(read_yaml11(&ads), read_yaml12(&ads));
    assert!(ads.contains("DELTA_GRPC"), "{ads}");
}

/// Golden files and the generated manifests under deploy/ (the CRDs, the chart's copy).
#[test]
fn checked_in_yaml_reads_the_same_under_yaml_1_1() {
    let mut files = Vec::new();
    for dir in ["tests/golden", "deploy/crds", "deploy/helm/sluice/crds"] {
        collect_yaml(&root().join(dir), &mut files);
    }
    assert!(files.len() >= 20, "only {} files found", files.len());
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect();
    let read = read_yaml11_all(&texts);
    for ((f, text), docs) in files.iter().zip(&texts).zip(read) {
        assert_eq!(
            docs,
            read_yaml12(text),
            "{} reads differently under YAML 1.1",
            f.display()
        );
    }
}

/// The check has teeth: serde_yaml alone writes `yes` plain, and PyYAML reads it as `true`.
#[test]
fn unquoted_yaml_1_1_words_are_caught() {
    let v = serde_json::json!({"exact": "yes", "mode": "0777", "on": "1:30"});
    let plain = serde_yaml::to_string(&v).expect("yaml");
    assert_ne!(read_yaml11(&plain), read_yaml12(&plain), "{plain}");
    let safe = sluice_core::yaml::to_string(&v).expect("yaml");
    assert_eq!(read_yaml11(&safe), vec![v]);
}

fn collect_yaml(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_yaml(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}
