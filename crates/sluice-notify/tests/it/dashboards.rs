//! The Grafana dashboards in dashboards/: valid JSON with the structure Grafana imports, a
//! templated Prometheus datasource, and queries that only use series sluice exports.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::Utc;
use serde_json::Value;
use sluice_core::engine::{AnalysisReport, Event};
use sluice_core::spec::{CheckResult, Rollout, RolloutStatus, Verdict, WebhookKind};
use sluice_telemetry::Metrics;

/// Sample names in the registry's encoded output, after every family got a sample.
fn exported_sample_names() -> BTreeSet<String> {
    let m = Metrics::new();
    let r: Rollout = serde_yaml::from_str(
        "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {name: r, namespace: n}\n\
         spec: {upstreams: {stable: a, canary: b}, service: {port: 1}, strategy: {canary: {steps: [10]}}}",
    )
    .unwrap();
    m.observe_status(&r, &RolloutStatus::default());
    m.observe_analysis(
        &r,
        &AnalysisReport {
            at: Utc::now(),
            checks: vec![CheckResult {
                metric: "m".into(),
                verdict: Verdict::Pass,
                value: Some(1.0),
                min: Some(0.5),
                max: Some(2.0),
                reason: String::new(),
                at: Utc::now(),
                more_requests: None,
            }],
        },
    );
    m.observe_analysis_duration(&r, 0.1);
    m.observe_event(
        &r,
        &Event {
            reason: sluice_core::engine::EventReason::RolledBack,
            message: String::new(),
            warning: true,
        },
    );
    m.observe_webhook(WebhookKind::Rollback, "success", 0.1);
    m.observe_notification("slack", "success");
    m.observe_tick(0.01);
    m.observe_error("observe");
    m.set_leader(true);
    m.encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = &sluice_testkit::files::root().join("dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn variables(d: &Value) -> Vec<&Value> {
    d["templating"]["list"].as_array().unwrap().iter().collect()
}

const PANEL_TYPES: [&str; 5] = ["stat", "table", "timeseries", "state-timeline", "row"];
const BUILTIN_VARS: [&str; 4] = ["__rate_interval", "__interval", "__range", "datasource"];

#[test]
fn dashboards_import_as_they_are_and_query_only_exported_series() {
    let exported = exported_sample_names();
    assert!(
        exported.contains("sluice_tick_duration_seconds_bucket"),
        "{exported:?}"
    );
    let all = dashboards();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["sluice-overview.json", "sluice-rollout.json"]);
    let metric_re = regex::Regex::new(r"\bsluice_[a-z0-9_]+").unwrap();
    let var_re = regex::Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    let mut uids = BTreeSet::new();

    for (file, d) in &all {
        // Top-level fields Grafana's import needs; `id: null` so import creates a new one.
        assert!(d["id"].is_null(), "{file}");
        let uid = d["uid"].as_str().unwrap();
        assert!(!uid.is_empty() && uid.len() <= 40, "{file}: uid");
        assert!(uids.insert(uid.to_string()), "{file}: duplicate uid");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{file}");
        assert!(d["schemaVersion"].as_u64().unwrap() >= 30, "{file}");
        // A templated Prometheus datasource (works for UI import and provisioning alike).
        let vars = variables(d);
        let ds = vars.iter().find(|v| v["name"] == "datasource").unwrap();
        assert_eq!(ds["type"], "datasource", "{file}");
        assert_eq!(ds["query"], "prometheus", "{file}");
        let var_names: BTreeSet<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
        for v in &vars {
            if v["type"] == "query" {
                assert_eq!(
                    v["datasource"]["uid"], "${datasource}",
                    "{file}: {}",
                    v["name"]
                );
            }
        }

        let panels = d["panels"].as_array().unwrap();
        assert!(panels.len() >= 6, "{file}");
        let mut ids = BTreeSet::new();
        let mut used = BTreeSet::new();
        for p in panels {
            let title = p["title"].as_str().unwrap();
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{file}: duplicate id at {title}"
            );
            assert!(
                PANEL_TYPES.contains(&p["type"].as_str().unwrap()),
                "{file}: {title}"
            );
            let g = &p["gridPos"];
            let (x, w, h) = (
                g["x"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(
                g["y"].is_u64() && w > 0 && h > 0 && x + w <= 24,
                "{file}: {title} gridPos"
            );
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{file}: {title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {title} has no queries");
            let mut refs = BTreeSet::new();
            for t in targets {
                assert!(
                    refs.insert(t["refId"].as_str().unwrap()),
                    "{file}: {title} refId"
                );
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{file}: {title}");
                let expr = t["expr"].as_str().unwrap();
                // Balanced brackets: the cheapest PromQL sanity check without a parser.
                for (open, close) in [('(', ')'), ('{', '}'), ('[', ']')] {
                    assert_eq!(
                        expr.matches(open).count(),
                        expr.matches(close).count(),
                        "{file}: {title}: {expr}"
                    );
                }
                for m in metric_re.find_iter(expr) {
                    assert!(
                        exported.contains(m.as_str()),
                        "{file}: {title}: {} is not exported by sluice ({exported:?})",
                        m.as_str()
                    );
                    used.insert(m.as_str().to_string());
                }
                for c in var_re.captures_iter(expr) {
                    let v = c.get(1).unwrap().as_str();
                    assert!(
                        var_names.contains(v) || BUILTIN_VARS.contains(&v),
                        "{file}: {title}: undefined variable ${v}"
                    );
                }
            }
        }
        assert!(used.len() >= 5, "{file}: {used:?}");
        if file == "sluice-rollout.json" {
            assert!(var_names.contains("rollout") && var_names.contains("namespace"));
            // Every per-rollout query is about the selected rollout, except sluice-wide ones.
            for p in panels {
                for t in p["targets"].as_array().unwrap() {
                    let e = t["expr"].as_str().unwrap();
                    assert!(e.contains(r#"name="$rollout""#), "{}: {e}", p["title"]);
                }
            }
            for must in [
                "sluice_analysis_value",
                "sluice_analysis_threshold",
                "sluice_analysis_verdicts_total",
                "sluice_rollout_canary_weight",
            ] {
                assert!(used.contains(must), "{file} lacks {must}");
            }
        } else {
            for must in [
                "sluice_rollout_phase",
                "sluice_rollout_canary_weight",
                "sluice_rollout_events_total",
            ] {
                assert!(used.contains(must), "{file} lacks {must}");
            }
        }
    }
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // promtool parses every expression as a recording rule, with Grafana's variables
    // replaced by what Grafana would send.
    let mut rules = String::from("groups:\n- name: dashboards\n  rules:\n");
    let mut n = 0;
    for (file, d) in dashboards() {
        let mut exprs: Vec<String> = Vec::new();
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                exprs.push(t["expr"].as_str().unwrap().to_string());
            }
        }
        for v in variables(&d) {
            if v["type"] == "query" {
                let q = v["query"]["query"].as_str().unwrap();
                // label_values(<selector>, label): the selector must be valid PromQL.
                let inner = q
                    .strip_prefix("label_values(")
                    .and_then(|r| r.rsplit_once(','))
                    .map(|(sel, _)| sel.to_string())
                    .unwrap_or_else(|| panic!("{file}: unexpected variable query {q}"));
                exprs.push(inner);
            }
        }
        for e in exprs {
            let e = e
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h")
                .replace("$namespace", "bookinfo")
                .replace("$rollout", "reviews");
            n += 1;
            rules.push_str(&format!(
                "  - record: dashboard:{}:{n}\n    expr: {}\n",
                file.trim_end_matches(".json").replace('-', "_"),
                serde_json::to_string(&e).unwrap()
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, &rules).unwrap();
    let (ok, out) =
        sluice_testkit::fakes::promtool(&["check", "rules", path.to_str().unwrap()], "");
    assert!(ok, "{out}\n{rules}");
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}
