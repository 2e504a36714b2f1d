//! Resolution of template references: arguments, defaults, types, missing pieces, paths.

use super::*;
use crate::rollout_plan::RolloutPlan;
use crate::spec::TemplateRef;

fn rollout(templates: &str) -> Rollout {
    let text = format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews, namespace: shop}}
spec:
  upstreams: {{stable: "127.0.0.1:9001", canary: "127.0.0.1:9002"}}
  service: {{port: 8080}}
  strategy: {{canary: {{steps: [20, 50]}}}}
  analysis:
    interval: 30s
    metrics:
      - name: inline
        query: 'sum(up)'
        thresholds: {{min: 1}}
    templates: {templates}
"#
    );
    crate::validate::load_str(&text, "r.yaml")
        .unwrap_or_else(|p| panic!("{p:?}"))
        .remove(0)
}

fn template(yaml: &str) -> AnalysisTemplateSpec {
    serde_yaml::from_str(yaml).unwrap()
}

const ERRORS: &str = r#"
args:
  - {name: service}
  - {name: maxPercent, type: number, default: 1}
  - {name: window, type: duration, default: 1m}
metrics:
  - name: errors
    query: 'sum(rate(errors{svc="{{ args.service }}"}[{{ args.window }}])) / sum(rate(all[{{ interval }}]))'
    thresholds: {max: "{{ args.maxPercent }}"}
"#;

fn set(version: &str) -> Templates {
    let mut t = Templates::default();
    t.insert(TemplateSource {
        scope: Scope::Namespaced,
        namespace: Some("shop".into()),
        name: "errors".into(),
        version: version.into(),
        spec: template(ERRORS),
    });
    t.insert(TemplateSource {
        scope: Scope::Cluster,
        namespace: None,
        name: "latency".into(),
        version: "7".into(),
        spec: template("metrics: [{name: p99, builtin: request-duration, thresholds: {max: 500}}]"),
    });
    t
}

fn problems(r: &Rollout, t: &Templates) -> Vec<String> {
    resolve(r, t)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn arguments_and_defaults_are_substituted_typed() {
    let r = rollout(
        r#"[{name: errors, args: {service: reviews, maxPercent: "2.5"}}, {name: latency, clusterScope: true}]"#,
    );
    let out = resolve(&r, &set("41")).unwrap();
    let names: Vec<&str> = out
        .spec
        .analysis
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["inline", "errors", "p99"]);
    let errors = &out.spec.analysis.metrics[1];
    assert_eq!(
        errors.query.as_deref(),
        Some(r#"sum(rate(errors{svc="reviews"}[1m])) / sum(rate(all[{{ interval }}]))"#),
        "args substituted, the query's own variables left for the analyzer"
    );
    assert_eq!(
        errors.thresholds.max,
        Some(2.5),
        "a number argument alone becomes a number"
    );
    let versions: Vec<Option<String>> = out
        .spec
        .analysis
        .templates
        .iter()
        .map(TemplateRef::recorded)
        .collect();
    assert_eq!(
        versions,
        [
            Some("AnalysisTemplate errors@41".to_string()),
            Some("ClusterAnalysisTemplate latency@7".to_string())
        ]
    );
    let plan = RolloutPlan::try_from(&out.spec).unwrap();
    assert_eq!(plan.analysis.templates.len(), 2);
    assert!(plan.analysis.has_checks);
}

#[test]
fn the_default_applies_when_an_argument_is_left_out() {
    let r = rollout("[{name: errors, args: {service: a}}]");
    let out = resolve(&r, &set("1")).unwrap();
    assert_eq!(out.spec.analysis.metrics[1].thresholds.max, Some(1.0));
}

#[test]
fn a_missing_template_is_named_at_its_field_path() {
    let r = rollout("[{name: nope}]");
    assert_eq!(
        problems(&r, &set("1")),
        ["spec.analysis.templates[0].name: AnalysisTemplate shop/nope not found"]
    );
    // A cluster template referenced without clusterScope gets a hint.
    let r = rollout("[{name: latency}]");
    let p = problems(&r, &set("1"));
    assert!(p[0].contains("needs `clusterScope: true`"), "{p:?}");
}

#[test]
fn missing_unknown_and_mistyped_arguments_are_problems_with_paths() {
    let r = rollout(r#"[{name: errors, args: {maxPercent: lots, colour: red}}]"#);
    let p = problems(&r, &set("1"));
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(
        p.contains(&"spec.analysis.templates[0].args.colour: AnalysisTemplate shop/errors has no argument `colour` (it declares service, maxPercent, window)".to_string()),
        "{p:?}"
    );
    assert!(
        p.contains(&"spec.analysis.templates[0].args.maxPercent: `lots` is not a number (argument `maxPercent` is a number)".to_string()),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("spec.analysis.templates[0].args: missing argument `service`")),
        "{p:?}"
    );
    let r = rollout(r#"[{name: errors, args: {service: a, window: soon}}]"#);
    let p = problems(&r, &set("1"));
    assert!(
        p[0].starts_with("spec.analysis.templates[0].args.window: argument `window` is a duration"),
        "{p:?}"
    );
}

#[test]
fn a_template_metric_the_rules_refuse_is_named_by_its_template() {
    let r = rollout(
        r#"[{name: errors, args: {service: a, maxPercent: 5}}, {name: errors, args: {service: b}}]"#,
    );
    let p = problems(&r, &set("1"));
    assert!(
        p.iter().any(|m| m.starts_with("spec.analysis.templates[1]: AnalysisTemplate shop/errors: metrics[0].name: duplicate metric name `errors`")),
        "{p:?}"
    );
}

#[test]
fn an_unresolved_reference_never_becomes_a_plan() {
    let r = rollout("[{name: errors, args: {service: a}}]");
    let e = RolloutPlan::try_from(&r.spec).unwrap_err();
    assert_eq!(e.0[0].path, "spec.analysis.templates[0]");
    // Stage labels do not depend on templates.
    assert_eq!(crate::rollout_plan::stage_count(&r.spec), 2);
}

#[test]
fn template_checks_find_bad_placeholders_defaults_and_metrics() {
    let spec = template(
        r#"
args: [{name: n, type: number, default: many}]
metrics:
  - {name: a, query: 'x{a="{{ args.m }}"}', thresholds: {max: 1}}
  - {name: b, query: 'x', thresholds: {min: 5, max: 1}}
  - {name: c, query: 'x', thresholds: {max: "{{ args.n }}"}, colour: red}
"#,
    );
    let p: Vec<String> = check(&spec).iter().map(ToString::to_string).collect();
    assert!(
        p.contains(
            &"spec.args[0].default: `many` is not a number (argument `n` is a number)".to_string()
        ),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m
                .starts_with("spec.metrics[0].query: `{{ args.m }}` names no declared argument")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("spec.metrics[1].thresholds: min 5 is greater than max 1")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("spec.metrics[2]") && m.contains("colour")),
        "{p:?}"
    );
    assert!(
        check(&template(ERRORS)).is_empty(),
        "{:?}",
        check(&template(ERRORS))
    );
}

#[test]
fn template_files_load_next_to_rollouts() {
    let text = r#"apiVersion: sluice.dev/v1alpha1
kind: ClusterAnalysisTemplate
metadata: {name: latency}
spec:
  metrics: [{name: p99, builtin: request-duration, thresholds: {max: 500}}]
---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: broken}
spec:
  metrics: [{name: p99, builtin: request-duration, thresholds: {max: "{{ args.x }}"}}]
"#;
    let e = crate::validate::load_documents(text, "t.yaml").unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].document, Some(2));
    assert!(
        e[0].path.starts_with("spec.metrics[0].thresholds.max"),
        "{e:?}"
    );
    let ok = text.split("---").next().unwrap();
    let d = crate::validate::load_documents(ok, "t.yaml").unwrap();
    assert!(d.rollouts.is_empty());
    assert_eq!(d.templates[0].label(), "ClusterAnalysisTemplate latency");
    assert_eq!(d.templates[0].version, content_hash(&d.templates[0].spec));
}
