//! `sluice validate`: every example is valid; every file in tests/fixtures/invalid/ is rejected
//! with the exact field path of its mistake; the CLI prints `<file>: <path>: <message>`.

use std::path::PathBuf;

use sluice_testkit::files::{example_files, root};

#[test]
fn every_example_in_rollouts_is_valid() {
    let files = example_files();
    assert!(
        files.len() >= 4,
        "expected examples in rollouts/, found {files:?}"
    );
    for f in files {
        let rollouts = sluice_testkit::files::load(&f);
        assert!(!rollouts.is_empty(), "{}", f.display());
    }
}

/// (fixture, [(path, part of the message)]): exactly these problems, in this order.
const CASES: &[(&str, &[(&str, &str)])] = &[
    (
        "bad-cron",
        &[("spec.schedule.windows[0]", "Hours must be less than")],
    ),
    (
        "bad-duration",
        &[("spec.analysis.interval", "unknown unit \"d\"")],
    ),
    (
        "bad-enum",
        &[(
            "spec.analysis.metrics[0].builtin",
            "did you mean `request-success-rate`?",
        )],
    ),
    ("bad-name", &[("metadata.name", "lowercase letters")]),
    (
        "bad-prometheus-url",
        &[(
            "spec.analysis.provider.prometheus.address",
            "must use http or https",
        )],
    ),
    (
        "bad-regex",
        &[(
            "spec.strategy.darkLaunch.match[0].headers.cookie.regex",
            "unclosed group",
        )],
    ),
    (
        "bad-time-zone",
        &[(
            "spec.schedule.timeZone",
            "unknown time zone \"Europe/Berln\"",
        )],
    ),
    (
        "bad-upstream",
        &[("spec.upstreams.canary", "missing :port")],
    ),
    (
        "bad-webhook-timeout",
        &[("spec.webhooks[0].timeout", "missing unit")],
    ),
    (
        "bad-webhook-url",
        &[("spec.webhooks[0].url", "must use http or https, not ftp")],
    ),
    (
        "builtin-and-query",
        &[(
            "spec.analysis.metrics[0]",
            "exactly one of `builtin` or `query`",
        )],
    ),
    (
        "compare-confidence",
        &[("spec.analysis.metrics[0].compare.confidence", "below 1")],
    ),
    (
        "compare-margin",
        &[("spec.analysis.metrics[0].compare.margin", "outside 0..1")],
    ),
    (
        "cron-field-count",
        &[("spec.schedule.windows[0]", "has 3 fields")],
    ),
    (
        "duplicate-metric",
        &[(
            "spec.analysis.metrics[1].name",
            "duplicate metric name `success-rate`",
        )],
    ),
    (
        "duplicate-webhook",
        &[("spec.webhooks[1].name", "duplicate webhook name `smoke`")],
    ),
    (
        "empty-headers",
        &[(
            "spec.strategy.abTest.match[0].headers",
            "selects every request",
        )],
    ),
    (
        "empty-match-ab-test",
        &[("spec.strategy.abTest.match", "at least one match")],
    ),
    (
        "empty-match-dark-launch",
        &[("spec.strategy.darkLaunch.match", "at least one match")],
    ),
    (
        "empty-steps",
        &[("spec.strategy.canary.steps", "at least one weight")],
    ),
    (
        "empty-windows",
        &[("spec.schedule.windows", "at least one window")],
    ),
    (
        "failure-limit-zero",
        &[("spec.analysis.failureLimit", "at least 1")],
    ),
    (
        "header-name-control-char",
        &[(
            "spec.strategy.abTest.match[0].headers[\"end-user\\0\"]",
            "must be lowercase letters, digits and `-`",
        )],
    ),
    (
        "header-value-control-char",
        &[(
            "spec.strategy.abTest.match[0].headers.end-user.exact",
            "contains the control character U+000D; header values cannot hold CR, LF",
        )],
    ),
    (
        "inconclusive-limit-zero",
        &[("spec.analysis.inconclusiveLimit", "at least 1")],
    ),
    (
        "inline-authorization",
        &[(
            "spec.analysis.provider.prometheus.headers.Authorization",
            "must not be inline",
        )],
    ),
    (
        "max-weight-below-step",
        &[("spec.strategy.canary.maxWeight", "below stepWeight 30")],
    ),
    (
        "max-weight-without-step",
        &[("spec.strategy.canary.maxWeight", "needs `stepWeight`")],
    ),
    (
        "min-greater-than-max",
        &[(
            "spec.analysis.metrics[0].thresholds",
            "min 99 is greater than max 90",
        )],
    ),
    (
        "mirror-percent",
        &[(
            "spec.strategy.darkLaunch.mirrorPercent",
            "120 is outside 0..100",
        )],
    ),
    (
        "missing-name",
        &[("metadata.name", "required field is missing")],
    ),
    (
        "multi-document",
        &[(
            "spec.strategy.canary.steps[2]",
            "greater than the previous step (25)",
        )],
    ),
    (
        "negative-weight",
        &[("spec.strategy.canary.steps[0]", "below the minimum 0")],
    ),
    (
        "neither-builtin-nor-query",
        &[(
            "spec.analysis.metrics[0]",
            "exactly one of `builtin` or `query`",
        )],
    ),
    ("no-strategy", &[("spec.strategy", "no strategy")]),
    (
        "no-string-match",
        &[(
            "spec.strategy.abTest.match[0].headers.end-user",
            "none is set",
        )],
    ),
    ("no-target", &[("spec", "no target")]),
    (
        "no-thresholds",
        &[("spec.analysis.metrics[0].thresholds", "cannot fail")],
    ),
    (
        "notification-both-sources",
        &[(
            "spec.notifications[0]",
            "exactly one of `urlFromEnv` or `urlFromFile`",
        )],
    ),
    ("port-zero", &[("spec.service.port", "between 1 and 65535")]),
    (
        "revision-with-target-ref",
        &[("spec.revision", "applies to `upstreams` only")],
    ),
    (
        "prometheus-header-control-char",
        &[(
            "spec.analysis.provider.prometheus.headers.X-Scope-OrgID",
            "contains the control character U+000A",
        )],
    ),
    (
        "query-unknown-variable",
        &[(
            "spec.analysis.metrics[0].query",
            "unknown variable `tagret` (did you mean `target`?)",
        )],
    ),
    (
        "stable-revision-equals-revision",
        &[(
            "spec.upstreams.stableRevision",
            "equals `revision` (v2) but stable and canary are different addresses",
        )],
    ),
    (
        "stable-revision-same-address",
        &[(
            "spec.upstreams.stableRevision",
            "stable runs `revision` (v2); remove stableRevision or make it v2",
        )],
    ),
    (
        "step-weight-out-of-range",
        &[("spec.strategy.canary.stepWeight", "120 is outside 1..100")],
    ),
    (
        "steps-and-step-weight",
        &[("spec.strategy.canary", "not both")],
    ),
    (
        "steps-not-increasing",
        &[(
            "spec.strategy.canary.steps[2]",
            "greater than the previous step (50)",
        )],
    ),
    (
        "success-rate-fraction",
        &[("spec.analysis.metrics[0].thresholds.min", "percentage")],
    ),
    (
        "then-canary-steps",
        &[(
            "spec.strategy.darkLaunch.thenCanary.steps[1]",
            "strictly increase",
        )],
    ),
    (
        "two-strategies",
        &[("spec.strategy", "canary and abTest are set")],
    ),
    (
        "two-string-matches",
        &[(
            "spec.strategy.abTest.match[0].headers.end-user",
            "found exact and prefix",
        )],
    ),
    (
        "two-targets",
        &[("spec", "both `targetRef` and `upstreams`")],
    ),
    (
        "unknown-field",
        &[
            (
                "spec.strategy.canary.stepWieght",
                "unknown field `stepWieght`, did you mean `stepWeight`?",
            ),
            // The typo also leaves the canary without steps: reported too, not hidden.
            ("spec.strategy.canary", "set `steps`"),
        ],
    ),
    (
        "uppercase-header",
        &[(
            "spec.strategy.abTest.match[0].headers.End-User",
            "lowercase",
        )],
    ),
    (
        "weight-out-of-range",
        &[("spec.strategy.canary.steps[2]", "150 is outside 1..100")],
    ),
    (
        "wrong-api-version",
        &[("apiVersion", "use sluice.dev/v1alpha1")],
    ),
    ("wrong-kind", &[("kind", "`Canary` is not a Rollout")]),
    (
        "wrong-type",
        &[(
            "spec.service.port",
            "expected a whole number, found the string \"http\"",
        )],
    ),
    (
        "window-never-opens",
        &[(
            "spec.schedule.windows[0]",
            "window \"* 9-17 30 2 *\" never opens: no time matches it from now until 2100",
        )],
    ),
    (
        "window-past-year",
        &[("spec.schedule.windows[0]", "a year that has passed")],
    ),
    ("yaml-syntax", &[("", "invalid YAML")]),
    (
        "zero-interval",
        &[("spec.analysis.interval", "longer than 0s")],
    ),
    (
        "zero-iterations",
        &[("spec.strategy.abTest.iterations", "at least 1")],
    ),
];

fn invalid_dir() -> PathBuf {
    root().join("tests/fixtures/invalid")
}

#[test]
fn each_invalid_fixture_reports_its_field_path() {
    for (name, expected) in CASES {
        let file = invalid_dir().join(format!("{name}.yaml"));
        let problems = match sluice_core::validate::load_file(&file) {
            Ok(_) => panic!("{name}: accepted, but it is invalid"),
            Err(p) => p,
        };
        let got: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(got.len(), expected.len(), "{name}: {got:#?}");
        for ((path, msg), (want_path, want_msg)) in got.iter().zip(expected.iter()) {
            assert_eq!(path, want_path, "{name}: {got:#?}");
            assert!(msg.contains(want_msg), "{name}: {msg:?} lacks {want_msg:?}");
        }
    }
}

/// Every fixture is in the table (a new fixture without an expectation would test nothing).
#[test]
fn every_invalid_fixture_has_an_expectation() {
    let files = sluice_core::validate::yaml_files(&invalid_dir()).expect("read fixtures");
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_stem()?.to_str().map(String::from))
        .collect();
    let listed: Vec<&str> = CASES.iter().map(|(n, _)| *n).collect();
    for n in &names {
        assert!(listed.contains(&n.as_str()), "{n}.yaml has no row in CASES");
    }
    assert_eq!(names.len(), listed.len(), "a CASES row has no fixture file");
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let problems = sluice_core::validate::load_file(invalid_dir().join("yaml-syntax.yaml"))
        .expect_err("invalid");
    assert_eq!((problems[0].line, problems[0].column), (Some(13), Some(11)));
    assert!(problems[0].to_string().ends_with(
        "yaml-syntax.yaml: line 13, column 11: invalid YAML: did not find expected ',' or ']'"
    ));
}

#[test]
fn multi_document_problems_name_the_document() {
    let problems = sluice_core::validate::load_file(invalid_dir().join("multi-document.yaml"))
        .expect_err("invalid");
    assert_eq!(problems[0].document, Some(2));
    assert!(
        problems[0]
            .to_string()
            .contains("multi-document.yaml (document 2): spec.strategy.canary.steps[2]: ")
    );
}

fn sluice(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("run sluice")
}

#[test]
fn cli_reports_every_problem_and_fails() {
    let out = sluice(&[
        "validate",
        "tests/fixtures/invalid/bad-regex.yaml",
        "tests/fixtures/invalid/two-targets.yaml",
        "rollouts/reviews-canary.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with(
        "tests/fixtures/invalid/bad-regex.yaml: spec.strategy.darkLaunch.match[0].headers.cookie.regex: invalid regex"
    ), "{stdout}");
    assert!(
        lines[1].starts_with("tests/fixtures/invalid/two-targets.yaml: spec: both `targetRef`"),
        "{stdout}"
    );
}

#[test]
fn cli_accepts_valid_files_and_directories() {
    let out = sluice(&["validate", "rollouts"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
}

/// Valid but probably not meant: a Rollout without metrics and without `skipAnalysis` runs (each
/// step passes after one interval) and `validate` says so on stderr, exit 0.
#[test]
fn cli_warns_about_a_rollout_without_evidence() {
    let dir = std::env::temp_dir().join(format!("sluice-warn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("no-metrics.yaml");
    let text = std::fs::read_to_string(root().join("rollouts/reviews-canary.yaml")).expect("read");
    let mut r: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    r["spec"]["analysis"]
        .as_mapping_mut()
        .expect("analysis")
        .remove("metrics");
    std::fs::write(&file, serde_yaml::to_string(&r).expect("yaml")).expect("write");
    let out = sluice(&["validate", file.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: ") && stderr.contains("spec.analysis.metrics: no metrics"),
        "{stderr}"
    );
    let out = sluice(&["validate", "rollouts/reviews-canary.yaml"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_plan_refuses_invalid_files() {
    let out = sluice(&["plan", "tests/fixtures/invalid/steps-not-increasing.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.strategy.canary.steps[2]"));
}

/// What sluice writes (a Rollout with status, as `kubectl get -o yaml` shows it) loads again.
#[test]
fn serialized_rollouts_with_status_load_again() {
    use sluice_core::spec::{Phase, RolloutStatus};
    for f in example_files() {
        for mut r in sluice_testkit::files::load(&f) {
            r.status = Some(RolloutStatus {
                phase: Phase::Progressing,
                step_index: 1,
                canary_weight: 25,
                stable_revision: Some("v1".into()),
                canary_revision: Some("v2".into()),
                ..Default::default()
            });
            let yaml = serde_yaml::to_string(&r).expect("serialize");
            let back = sluice_core::validate::load_str(&yaml, "roundtrip").unwrap_or_else(|p| {
                panic!("{}: {p:#?}\n{yaml}", f.display());
            });
            assert_eq!(back.len(), 1);
            assert_eq!(back[0].spec, r.spec);
            assert_eq!(back[0].status, r.status);
            assert_eq!(back[0].metadata, r.metadata);
        }
    }
}

/// Templates next to a Rollout are resolved by `validate` and `plan`; a missing template or
/// argument is a problem with its field path.
#[test]
fn cli_resolves_analysis_templates_and_names_what_is_missing() {
    let out = sluice(&["validate", "docs/examples/templates/reviews.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = sluice(&["plan", "docs/examples/templates/reviews.yaml"]);
    assert_eq!(out.status.code(), Some(0));

    let dir = tempfile::tempdir().expect("tmp dir");
    let text =
        std::fs::read_to_string(root().join("docs/examples/templates/reviews.yaml")).expect("read");
    let alone = dir.path().join("reviews.yaml");
    std::fs::write(&alone, &text).expect("write");
    let out = sluice(&["validate", alone.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "reviews.yaml: spec.analysis.templates[0].name: AnalysisTemplate bookinfo/error-rate not found"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "spec.analysis.templates[1].name: ClusterAnalysisTemplate latency-ceiling not found"
        ),
        "{stdout}"
    );

    // With the templates, but without the required argument.
    std::fs::copy(
        root().join("docs/examples/templates/error-rate.yaml"),
        dir.path().join("error-rate.yaml"),
    )
    .expect("copy");
    std::fs::write(&alone, text.replace("service: ratings, ", "")).expect("write");
    let out = sluice(&["validate", alone.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "spec.analysis.templates[0].args: missing argument `service` (a string; AnalysisTemplate bookinfo/error-rate gives it no default)"
        ),
        "{stdout}"
    );
    let out = sluice(&["plan", alone.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.analysis.templates[0].args"));
}
