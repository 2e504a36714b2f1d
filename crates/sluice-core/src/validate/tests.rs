use super::*;

const VALID: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: reviews, namespace: bookinfo}
spec:
  targetRef: {name: reviews}
  service: {port: 9080}
  strategy:
    canary: {steps: [10, 25, 50]}
  analysis:
    interval: 30s
    provider: {prometheus: {address: "http://prometheus:9090"}}
    metrics:
      - {name: success-rate, builtin: request-success-rate, thresholds: {min: 99}}
"#;

fn problems(text: &str) -> Vec<String> {
    match load_str(text, "f.yaml") {
        Ok(_) => Vec::new(),
        Err(p) => p.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn valid_rollout_loads_with_defaults() {
    let rs = load_str(VALID, "f.yaml").expect("valid");
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].spec.analysis.failure_limit, 2);
    assert_eq!(
        rs[0].spec.target_ref.as_ref().map(|t| t.kind.as_str()),
        Some("Deployment")
    );
}

#[test]
fn typos_and_rule_violations_are_reported_together() {
    let text = VALID
        .replace("steps: [10, 25, 50]", "steps: [10, 5, 150], maxWieght: 3")
        .replace("interval: 30s", "interval: 30x\n    failureLimt: 1");
    let got = problems(&text);
    let expected = [
        "f.yaml: spec.analysis.failureLimt: unknown field `failureLimt`, did you mean `failureLimit`?",
        "f.yaml: spec.strategy.canary.maxWieght: unknown field `maxWieght`, did you mean `maxWeight`?",
        "f.yaml: spec.strategy.canary.steps[1]: weight 5 must be greater than the previous step (10); steps must strictly increase",
        "f.yaml: spec.strategy.canary.steps[2]: weight 150 is outside 1..100 (percent of traffic to the canary)",
    ];
    for e in expected {
        assert!(got.iter().any(|g| g == e), "missing {e:?} in {got:#?}");
    }
    assert!(
        got.iter()
            .any(|g| g.starts_with("f.yaml: spec.analysis.interval: invalid duration")),
        "{got:#?}"
    );
}

#[test]
fn type_errors_are_all_reported() {
    let text = VALID
        .replace("port: 9080", "port: http")
        .replace("min: 99", "min: high");
    let got = problems(&text);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got[0].contains("spec.analysis.metrics[0].thresholds.min: expected a number"));
    assert!(got[1].contains("spec.service.port: expected a whole number"));
}

#[test]
fn documents_are_numbered_in_streams() {
    let second = VALID.replace("name: reviews,", "name: Reviews,");
    let got = problems(&format!("{VALID}---\n{second}"));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].starts_with("f.yaml (document 2): metadata.name: \"Reviews\" must be"),
        "{got:#?}"
    );
    let dup = problems(&format!("{VALID}---\n{VALID}"));
    assert_eq!(
        dup,
        [
            "f.yaml (document 2): metadata.name: duplicate Rollout bookinfo/reviews (also document 1)"
        ]
    );
}

#[test]
fn envelope_problems() {
    let got = problems("apiVersion: v1\nmetadata: {name: x, lables: {}}\nspec: {}\nextra: 1\n");
    let paths: Vec<&str> = got
        .iter()
        .map(|g| g.split(": ").nth(1).unwrap_or(""))
        .collect();
    for p in [
        "apiVersion",
        "kind", // missing
        "extra",
        "metadata.lables",
        "spec.service",
        "spec.strategy",
    ] {
        assert!(paths.contains(&p), "{p} not in {got:#?}");
    }
    assert!(got.iter().any(|g| g.contains("did you mean `labels`")));
    assert_eq!(
        problems(""),
        ["f.yaml: no Rollout in this file (it is empty)"]
    );
    assert_eq!(
        problems("- 1\n"),
        ["f.yaml: expected a Rollout object, found a list"]
    );
}

#[test]
fn syntax_errors_have_line_and_column() {
    let got = load_str("apiVersion: x\nspec: [1, 2\n", "f.yaml").unwrap_err();
    assert_eq!(got.len(), 1);
    assert!(got[0].line.is_some() && got[0].column.is_some());
    assert!(
        got[0].to_string().starts_with("f.yaml: line "),
        "{}",
        got[0]
    );
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
        let _ = load_str(&s, "x");
    }

    #[test]
    fn never_panics_on_mutated_rollouts(cut in 0usize..400, insert in "[ -~\\n]{0,12}") {
        let mut text = VALID.to_string();
        let at = cut.min(text.len());
        if text.is_char_boundary(at) {
            text.insert_str(at, &insert);
        }
        let _ = load_str(&text, "x");
    }
}

#[test]
fn label_values_must_be_strings() {
    let text = VALID.replace(
        "metadata: {name: reviews, namespace: bookinfo}",
        "metadata: {name: reviews, labels: {app.kubernetes.io/version: 2, ok: x}}",
    );
    assert_eq!(
        problems(&text),
        [
            "f.yaml: metadata.labels[\"app.kubernetes.io/version\"]: expected a string, found the number 2"
        ]
    );
}

#[test]
fn field_paths_quote_unusual_keys() {
    let p = FieldPath::root("spec")
        .field("headers")
        .field("x-user")
        .index(2);
    assert_eq!(p.to_string(), "spec.headers.x-user[2]");
    assert_eq!(
        FieldPath::root("a").field("b.c/d").to_string(),
        "a[\"b.c/d\"]"
    );
}

#[test]
fn other_kinds_get_one_message() {
    let got = problems(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 1}\n",
    );
    assert_eq!(
        got,
        [
            "f.yaml: apiVersion: `apps/v1` is not supported; use sluice.dev/v1alpha1",
            "f.yaml: kind: `Deployment` is not a Rollout"
        ]
    );
}

#[test]
fn typed_rollouts_are_checked_by_the_same_rules() {
    let mut r = load_str(VALID, "f.yaml").expect("valid").remove(0);
    assert!(check_rollout(&r, "bookinfo/reviews").is_empty());
    r.spec.strategy.canary = Some(crate::spec::CanaryStrategy {
        steps: Some(vec![50, 10]),
        ..Default::default()
    });
    let got: Vec<String> = check_rollout(&r, "bookinfo/reviews")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("bookinfo/reviews: spec.strategy.canary.steps[1]: "));
}

#[test]
fn stable_revision_labels_are_checked_against_the_addresses() {
    let standalone = |upstreams: &str, revision: &str| {
        let text = VALID.replace(
            "targetRef: {name: reviews}",
            &format!("upstreams: {upstreams}\n  {revision}"),
        );
        problems(&text)
    };
    // Different addresses, different labels; or one address labelled by `revision` alone or
    // by both: fine.
    for (up, rev) in [
        (
            r#"{stable: "127.0.0.1:1", stableRevision: v1, canary: "127.0.0.1:2"}"#,
            "revision: v2",
        ),
        (
            r#"{stable: "127.0.0.1:1", canary: "127.0.0.1:1"}"#,
            "revision: v1",
        ),
        (
            r#"{stable: "127.0.0.1:1", stableRevision: v1, canary: "127.0.0.1:1"}"#,
            "revision: v1",
        ),
        (
            r#"{stable: "127.0.0.1:1", stableRevision: v1, canary: "127.0.0.1:2"}"#,
            "",
        ),
    ] {
        assert_eq!(standalone(up, rev), Vec::<String>::new(), "{up} {rev}");
    }
    assert_eq!(
        standalone(
            r#"{stable: "127.0.0.1:1", stableRevision: " ", canary: "127.0.0.1:2"}"#,
            ""
        ),
        ["f.yaml: spec.upstreams.stableRevision: must not be empty"]
    );
    let got = standalone(
        r#"{stable: "127.0.0.1:1", stableRevision: v1, canary: "127.0.0.1:1"}"#,
        "",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "f.yaml: spec.upstreams.stableRevision: stable and canary are the same address"
        ) && got[0].contains("set `revision` instead"),
        "{got:?}"
    );
}
