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

// ---- Limits (docs/rollout-spec.md#limits): each one just over, with its path and message.

use super::limits::*;

fn typed() -> Rollout {
    load_str(VALID, "f.yaml").expect("valid").remove(0)
}

/// The rules' problems of `r` as (path, message).
fn rule_problems(r: &Rollout) -> Vec<(String, String)> {
    check_rollout(r, "f.yaml")
        .into_iter()
        .map(|p| (p.path, p.message))
        .collect()
}

fn assert_one(r: &Rollout, path: &str, message: &str) {
    let got = rule_problems(r);
    assert!(
        got.iter().any(|(p, m)| p == path && m.contains(message)),
        "no {path:?} containing {message:?} in {got:#?}"
    );
}

#[test]
fn files_over_the_size_limit_are_refused_before_parsing() {
    let text = format!("{VALID}#{}\n", "x".repeat(MAX_FILE_BYTES));
    let got = load_str(&text, "big.yaml").unwrap_err();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].to_string(),
        format!(
            "big.yaml: file is {} bytes; at most 1048576 (1 MiB) are accepted",
            text.len()
        )
    );
    // Just under: the comment does not matter.
    let under = format!("{VALID}#{}\n", "x".repeat(MAX_FILE_BYTES - VALID.len() - 3));
    assert!(load_str(&under, "ok.yaml").is_ok());
}

#[test]
fn read_file_refuses_a_huge_file_without_reading_it() {
    let path = std::env::temp_dir().join(format!("sluice-huge-{}.yaml", std::process::id()));
    // Sparse: 10 GiB that take no disk and would take minutes to read.
    let f = std::fs::File::create(&path).expect("create");
    f.set_len(10 << 30).expect("set_len");
    let started = std::time::Instant::now();
    let got = load_file(&path).unwrap_err();
    let _ = std::fs::remove_file(&path);
    assert_eq!(got.len(), 1);
    assert!(
        got[0]
            .message
            .starts_with("file is 10737418240 bytes; at most 1048576"),
        "{}",
        got[0]
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn documents_over_the_limit_are_refused() {
    let just_over = "---\n".repeat(MAX_DOCUMENTS + 1);
    let got = problems(&just_over);
    assert!(
        got.iter().any(|g| g.contains(
            "(document 101): more than 100 YAML documents in one file; split it into several files"
        )),
        "{got:#?}"
    );
    // At the limit: only the usual "empty" problem.
    let at = "---\n".repeat(MAX_DOCUMENTS);
    assert_eq!(
        problems(&at),
        ["f.yaml: no Rollout in this file (it is empty)"]
    );
}

#[test]
fn deep_nesting_is_refused_by_the_prescan_not_the_parser() {
    // 200 KB of `[` took about a minute in the YAML parser; the pre-scan stops at level 65.
    let text = format!("spec: {}", "[".repeat(200_000));
    let got = load_str(&text, "deep.yaml").unwrap_err();
    assert_eq!(got.len(), 1);
    // The parser's own message would be "recursion limit exceeded": this one is the pre-scan's.
    assert_eq!(
        got[0].to_string(),
        "deep.yaml: line 1, column 70: nested deeper than 64 levels; a Rollout needs about 10 \
         (refused before parsing)"
    );
    // Just over and at the limit (the brackets close: only the nesting differs).
    let nested = |n: usize| format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
    assert!(
        problems(&nested(MAX_NESTING))
            .iter()
            .any(|g| g.contains("nested deeper"))
    );
    assert!(
        !problems(&nested(MAX_NESTING - 1))
            .iter()
            .any(|g| g.contains("nested deeper"))
    );
    // Brackets in strings, comments and block scalars are not nesting.
    let quoted = VALID.replace(
        "interval: 30s",
        &format!(
            "interval: 30s # {b}\n    failureLimit: 2 # '{b}'\n",
            b = "[".repeat(100)
        ),
    );
    assert!(load_str(&quoted, "f.yaml").is_ok());
}

#[test]
fn at_most_max_problems_are_listed_then_one_line_for_the_rest() {
    let labels: Vec<String> = (0..150).map(|i| format!("l{i}: {i}")).collect();
    let text = VALID.replace(
        "metadata: {name: reviews, namespace: bookinfo}",
        &format!(
            "metadata: {{name: reviews, labels: {{{}}}}}",
            labels.join(", ")
        ),
    );
    let got = load_str(&text, "f.yaml").unwrap_err();
    assert_eq!(got.len(), MAX_PROBLEMS + 1);
    assert_eq!(
        got[MAX_PROBLEMS].to_string(),
        "f.yaml: … and 50 more problems"
    );
    assert_eq!(count(&got), 150);
}

#[test]
fn strings_over_their_limits_are_refused_with_their_path() {
    let over = |n: usize| "a".repeat(n + 1);
    let mut r = typed();
    r.spec.analysis.metrics[0].builtin = None;
    r.spec.analysis.metrics[0].query = Some(over(MAX_QUERY_LEN));
    assert_one(
        &r,
        "spec.analysis.metrics[0].query",
        "is 4097 bytes long; at most 4096 are allowed",
    );

    let mut r = typed();
    r.spec.analysis.metrics[0].name = over(MAX_ITEM_NAME_LEN);
    assert_one(&r, "spec.analysis.metrics[0].name", "at most 63");

    let mut r = typed();
    r.spec.analysis.interval = over(MAX_STRING_LEN);
    assert_one(&r, "spec.analysis.interval", "at most 4096");

    let mut r = typed();
    if let Some(p) = r.spec.analysis.provider.as_mut() {
        p.prometheus.address = format!("http://{}", over(MAX_URL_LEN));
        p.prometheus
            .headers
            .insert("x-scope-orgid".into(), over(MAX_HEADER_VALUE_LEN));
    }
    assert_one(
        &r,
        "spec.analysis.provider.prometheus.address",
        "at most 2048",
    );
    assert_one(
        &r,
        "spec.analysis.provider.prometheus.headers.x-scope-orgid",
        "at most 1024",
    );

    let mut r = typed();
    r.spec.strategy.canary = None;
    r.spec.strategy.ab_test = Some(crate::spec::AbTestStrategy {
        matches: vec![crate::spec::HttpMatch {
            headers: [
                (
                    "x-a".to_string(),
                    crate::spec::StringMatch {
                        regex: Some(over(MAX_REGEX_LEN)),
                        ..Default::default()
                    },
                ),
                (
                    "x-b".to_string(),
                    crate::spec::StringMatch {
                        exact: Some(over(MAX_HEADER_VALUE_LEN)),
                        ..Default::default()
                    },
                ),
                (
                    over(MAX_HEADER_NAME_LEN),
                    crate::spec::StringMatch {
                        prefix: Some("x".into()),
                        ..Default::default()
                    },
                ),
            ]
            .into(),
        }],
        iterations: 1,
    });
    assert_one(
        &r,
        "spec.strategy.abTest.match[0].headers.x-a.regex",
        "is 1025 bytes long; at most 1024",
    );
    assert_one(
        &r,
        "spec.strategy.abTest.match[0].headers.x-b.exact",
        "at most 1024",
    );
    assert_one(
        &r,
        "spec.strategy.abTest.match[0].headers",
        "a header name is 257 bytes long; at most 256",
    );

    let mut r = typed();
    r.spec.target_ref = None;
    r.spec.upstreams = Some(crate::spec::Upstreams {
        stable: "127.0.0.1:1".into(),
        canary: "127.0.0.1:2".into(),
        stable_revision: Some(over(MAX_REVISION_LEN)),
    });
    r.spec.revision = Some(over(MAX_REVISION_LEN));
    assert_one(&r, "spec.revision", "at most 128");
    assert_one(&r, "spec.upstreams.stableRevision", "at most 128");
}

fn webhook(name: &str) -> crate::spec::Webhook {
    serde_json::from_value(serde_json::json!({
        "name": name, "type": "event", "url": "http://hooks:8080/x"
    }))
    .expect("webhook")
}

#[test]
fn lists_over_their_limits_are_refused_with_their_path() {
    let mut r = typed();
    r.spec.strategy.canary = Some(crate::spec::CanaryStrategy {
        steps: Some((1..=101).collect()),
        ..Default::default()
    });
    // 101 weights cannot all lie in 1..100 and increase: one problem for the list (the
    // 101st weight is not checked on its own).
    assert_eq!(
        rule_problems(&r),
        [(
            "spec.strategy.canary.steps".to_string(),
            "has 101 steps; at most 100 are allowed".to_string()
        )]
    );

    let mut r = typed();
    let m = r.spec.analysis.metrics[0].clone();
    r.spec.analysis.metrics = (0..=MAX_METRICS)
        .map(|i| crate::spec::Metric {
            name: format!("m{i}"),
            ..m.clone()
        })
        .collect();
    assert_one(
        &r,
        "spec.analysis.metrics",
        "has 21 metrics; at most 20 are allowed",
    );

    let mut r = typed();
    r.spec.webhooks = (0..=MAX_WEBHOOKS)
        .map(|i| webhook(&format!("w{i}")))
        .collect();
    assert_one(&r, "spec.webhooks", "has 21 webhooks; at most 20");

    let mut r = typed();
    r.spec.webhooks = vec![webhook("w")];
    r.spec.webhooks[0].metadata = (0..=MAX_ENTRIES)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    assert_one(
        &r,
        "spec.webhooks[0].metadata",
        "has 33 entries; at most 32",
    );

    let mut r = typed();
    let n: crate::spec::Notification =
        serde_json::from_value(serde_json::json!({"type": "slack", "urlFromEnv": "HOOK"}))
            .expect("notification");
    r.spec.notifications = vec![n; MAX_NOTIFICATIONS + 1];
    assert_one(&r, "spec.notifications", "has 11 notifications; at most 10");

    let mut r = typed();
    r.spec.schedule = Some(crate::spec::Schedule {
        windows: vec!["* 9-17 * * Mon-Fri".into(); MAX_WINDOWS + 1],
        time_zone: None,
    });
    assert_one(&r, "spec.schedule.windows", "has 17 windows; at most 16");

    let mut r = typed();
    r.spec.service.hosts = (0..=MAX_ENTRIES).map(|i| format!("h{i}")).collect();
    assert_one(&r, "spec.service.hosts", "has 33 names; at most 32");

    let mut r = typed();
    if let Some(p) = r.spec.analysis.provider.as_mut() {
        p.prometheus.headers = (0..=MAX_ENTRIES)
            .map(|i| (format!("x-h{i}"), "v".to_string()))
            .collect();
    }
    assert_one(
        &r,
        "spec.analysis.provider.prometheus.headers",
        "has 33 headers; at most 32",
    );

    let header = |i: usize| {
        (
            format!("x-h{i}"),
            crate::spec::StringMatch {
                exact: Some("v".into()),
                ..Default::default()
            },
        )
    };
    let mut r = typed();
    r.spec.strategy.canary = None;
    r.spec.strategy.dark_launch = Some(crate::spec::DarkLaunchStrategy {
        matches: (0..=MAX_MATCHES)
            .map(|i| crate::spec::HttpMatch {
                headers: [header(i)].into(),
            })
            .chain(std::iter::once(crate::spec::HttpMatch {
                headers: (0..=MAX_MATCH_HEADERS).map(header).collect(),
            }))
            .collect(),
        iterations: 1,
        ..Default::default()
    });
    assert_one(
        &r,
        "spec.strategy.darkLaunch.match",
        "has 18 matches; at most 16",
    );
    // The 18th match is past the limit and not checked on its own; within it:
    r.spec.strategy.dark_launch.as_mut().expect("set").matches[0].headers =
        (0..=MAX_MATCH_HEADERS).map(header).collect();
    assert_one(
        &r,
        "spec.strategy.darkLaunch.match[0].headers",
        "has 17 headers; at most 16",
    );
}

/// Run with `cargo test -p sluice-core -- --ignored timing`: the pre-scan's speed on the
/// inputs that used to take a minute, and on a full-size file at the nesting limit.
#[test]
#[ignore]
fn timing_of_hostile_files() {
    let cases = [
        ("200 KB of [", "[".repeat(200_000)),
        (
            "spec: + 200 KB of [",
            format!("spec: {}", "[".repeat(200_000)),
        ),
        ("160 KB of {a: ", "{a: ".repeat(40_000)),
        (
            "1 MiB at depth 63",
            format!(
                "a: {}{}{}",
                "[".repeat(62),
                "1, ".repeat((MAX_FILE_BYTES - 200) / 3),
                "]".repeat(62)
            ),
        ),
    ];
    for (name, text) in cases {
        let started = std::time::Instant::now();
        let _ = load_str(&text, "t.yaml");
        let took = started.elapsed();
        eprintln!("{name}: {took:?}");
        assert!(took < std::time::Duration::from_secs(2), "{name}: {took:?}");
    }
}

/// docs/rollout-spec.md#limits states every limit's value (a changed constant fails here until
/// the documentation says so too).
#[test]
fn the_limits_section_of_the_docs_states_every_value() {
    let doc = include_str!("../../../../docs/rollout-spec.md");
    let section = doc.split("\n## Limits\n").nth(1).expect("a Limits section");
    let rows: Vec<&str> = section.lines().filter(|l| l.starts_with('|')).collect();
    let stated = |what: &str, value: usize| {
        assert!(
            rows.iter()
                .any(|r| r.contains(what) && r.contains(&format!(" {value} "))),
            "the Limits table has no row for {what} saying {value}"
        );
    };
    stated("file size", 1);
    assert!(section.contains(&format!("({MAX_FILE_BYTES} bytes)")));
    stated("nesting", MAX_NESTING);
    stated("documents", MAX_DOCUMENTS);
    stated("entries in any list or map", MAX_COLLECTION_ITEMS);
    stated("problems listed", MAX_PROBLEMS);
    stated("`spec.analysis.metrics[i].query`", MAX_QUERY_LEN);
    stated(".regex` (matches)", MAX_REGEX_LEN);
    stated("`.prefix`", MAX_HEADER_VALUE_LEN);
    stated("header names", MAX_HEADER_NAME_LEN);
    stated("`webhooks[i].url`", MAX_URL_LEN);
    stated("`webhooks[i].name`", MAX_ITEM_NAME_LEN);
    stated("`revision`", MAX_REVISION_LEN);
    stated("every other string", MAX_STRING_LEN);
    stated("`strategy.canary.steps`", MAX_STEPS);
    stated("`analysis.metrics`", MAX_METRICS);
    stated("`abTest.match`", MAX_MATCHES);
    stated("headers in one match", MAX_MATCH_HEADERS);
    stated("| `webhooks` |", MAX_WEBHOOKS);
    stated("`notifications`", MAX_NOTIFICATIONS);
    stated("`schedule.windows`", MAX_WINDOWS);
    stated("`service.hosts`", MAX_ENTRIES);
}

// ---- Values that are well-formed but can never work.

#[test]
fn a_byte_order_mark_is_ignored() {
    // With the mark kept, libyaml counts it as a column: `---` would not start a document.
    for text in [
        format!("\u{feff}{VALID}"),
        format!("\u{feff}---\n{VALID}"),
        format!(
            "\u{feff}# a comment\n---\n{VALID}---\n{}",
            VALID.replace("reviews,", "ratings,")
        ),
    ] {
        let got = load_str(&text, "bom.yaml");
        assert!(got.is_ok(), "{:?}: {got:#?}", &text[..20]);
    }
}

#[test]
fn windows_that_never_open_are_refused() {
    let with_windows = |windows: &str, tz: &str| {
        problems(&format!("{VALID}  schedule: {{windows: {windows}{tz}}}\n"))
    };
    // Open some time: a leap day, a future year, the usual business hours in a zone.
    for ok in [
        r#"["* * 29 2 *"]"#,
        r#"["0 0 12 * * * 2099"]"#,
        r#"["* 9-17 * * Mon-Fri"]"#,
    ] {
        assert_eq!(
            with_windows(ok, ", timeZone: Europe/Berlin"),
            Vec::<String>::new(),
            "{ok}"
        );
    }
    assert_eq!(
        with_windows(r#"["* 9-17 * * Mon-Fri", "* * 30 2 *"]"#, ""),
        [
            "f.yaml: spec.schedule.windows[1]: window \"* * 30 2 *\" never opens: no time \
             matches it from now until 2100 (an impossible date such as February 30, or a \
             year that has passed)"
        ]
    );
    for never in [
        r#"["* * 31 4 *"]"#,
        r#"["0 0 0 * * * 2020"]"#,
        r#"["0 0 0 * * * 1999-2021"]"#,
    ] {
        let got = with_windows(never, ", timeZone: Europe/Berlin");
        assert_eq!(got.len(), 1, "{never}: {got:?}");
        assert!(
            got[0].starts_with("f.yaml: spec.schedule.windows[0]: window")
                && got[0].contains("never opens"),
            "{got:?}"
        );
    }
}

#[test]
fn the_next_opening_is_found_or_none() {
    use chrono::TimeZone;
    let now = chrono::Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    let at = |w: &str| {
        crate::schedule::next_opening(
            &crate::schedule::parse_window(w).expect("parses"),
            chrono_tz::Tz::UTC,
            now,
        )
    };
    assert_eq!(at("0 0 0 * * * 2029"), None);
    assert_eq!(at("* * 30 2 *"), None);
    assert_eq!(
        at("0 0 12 1 3 * 2031"),
        Some(chrono::Utc.with_ymd_and_hms(2031, 3, 1, 12, 0, 0).unwrap())
    );
    assert_eq!(
        at("* * 29 2 *"),
        Some(chrono::Utc.with_ymd_and_hms(2032, 2, 29, 0, 0, 0).unwrap())
    );
}

#[test]
fn control_characters_in_headers_are_refused_with_their_path() {
    let ab = |headers: &str| {
        problems(&VALID.replace(
            "canary: {steps: [10, 25, 50]}",
            &format!("abTest: {{match: [{{headers: {headers}}}]}}"),
        ))
    };
    for (headers, path, char) in [
        (r#"{x-user: {exact: "a\r\nb"}}"#, "x-user.exact", "U+000D"),
        (
            r#"{x-user: {prefix: "a\u0000"}}"#,
            "x-user.prefix",
            "U+0000",
        ),
        (r#"{x-user: {regex: "a\nb"}}"#, "x-user.regex", "U+000A"),
        (r#"{x-user: {exact: "a\u001bb"}}"#, "x-user.exact", "U+001B"),
        (r#"{x-user: {exact: "a\u007f"}}"#, "x-user.exact", "U+007F"),
    ] {
        let got = ab(headers);
        assert_eq!(got.len(), 1, "{headers}: {got:?}");
        assert!(
            got[0].starts_with(&format!(
                "f.yaml: spec.strategy.abTest.match[0].headers.{path}: contains the control \
                 character {char}"
            )),
            "{got:?}"
        );
    }
    // A tab is a legal header-value character; an escaped `\n` in a regex is no control
    // character.
    assert_eq!(ab(r#"{x-user: {exact: "a\tb"}}"#), Vec::<String>::new());
    assert_eq!(ab(r#"{x-user: {regex: "a\\nb"}}"#), Vec::<String>::new());
    // Names: only lowercase letters, digits and `-`.
    let got = ab(r#"{"x-user\r": {exact: a}}"#);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("f.yaml: spec.strategy.abTest.match[0].headers[\"x-user\\r\"]: "));
    // Prometheus headers: values checked the same way, names must be HTTP tokens.
    let prom = |headers: &str| {
        problems(&VALID.replace(
            r#"{prometheus: {address: "http://prometheus:9090"}}"#,
            &format!(
                r#"{{prometheus: {{address: "http://prometheus:9090", headers: {headers}}}}}"#
            ),
        ))
    };
    let got = prom(r#"{X-Scope-OrgID: "a\nb"}"#);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("prometheus.headers.X-Scope-OrgID: contains the control character U+000A")
    );
    let got = prom(r#"{"X-Org\r": "a"}"#);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("is not a valid HTTP header name"),
        "{got:?}"
    );
}

/// Issue 15: a regex Rust accepts but Envoy's RE2 refuses (program size over 100) used to pass
/// validation and then make Envoy reject every plan of the rollout.
#[test]
fn header_regexes_envoy_would_refuse_are_refused_with_their_path() {
    let ab = |re: &str| {
        problems(&VALID.replace(
            "canary: {steps: [10, 25, 50]}",
            &format!("abTest: {{match: [{{headers: {{x-user: {{regex: \"{re}\"}}}}}}]}}"),
        ))
    };
    let got = ab("(?:ab|cd){30}");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("f.yaml: spec.strategy.abTest.match[0].headers.x-user.regex: compiles to about 124 RE2 instructions; Envoy refuses regexes over 100"),
        "{got:?}"
    );
    let got = ab("(a{50}){50}");
    assert!(got.len() == 1 && got[0].contains("above 1000"), "{got:?}");
    // The same shape under the limit, and the usual cookie match, pass.
    assert_eq!(ab("(?:ab|cd){24}"), Vec::<String>::new());
    assert_eq!(ab("^(.*?;)?(user=jason)(;.*)?$"), Vec::<String>::new());
}

/// A Rollout touching most rules (header regexes, webhooks, windows, templates), for the
/// value-mutation property below.
const RICH: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: reviews, namespace: bookinfo, labels: {team: shop}}
spec:
  upstreams: {stable: "127.0.0.1:9001", canary: "127.0.0.1:9002"}
  service: {port: 9080, hosts: [reviews.local]}
  strategy:
    darkLaunch:
      match:
        - headers: {x-user: {regex: "^(beta|canary)-[0-9]{3}$"}, cookie: {prefix: "user=t"}}
      mirrorPercent: 10
  analysis:
    interval: 30s
    failureLimit: 2
    provider: {prometheus: {address: "http://prometheus:9090", timeout: 5s}}
    metrics:
      - {name: success-rate, builtin: request-success-rate, thresholds: {min: 99}}
      - {name: p99, query: "histogram_quantile(0.99, sum(rate(x_bucket{ns=\"{{ namespace }}\"}[{{ interval }}])) by (le))", thresholds: {max: 500}}
  webhooks:
    - {name: gate, type: pre-rollout, url: "http://127.0.0.1:9/gate", timeout: 2s}
"#;

proptest::proptest! {
    // Issue 15: a bounded property run in every `cargo test` (and so in CI): any value in any
    // position of a rich Rollout gives problems or a rollout, never a panic, and never an
    // unbounded list of problems.
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 768,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn any_value_anywhere_never_panics(
        slot in 0usize..64,
        value in proptest::prop_oneof![
            "\\PC{0,40}",
            "[\\[\\]{}:,\"'|&*!%@` -]{0,60}",
            proptest::strategy::Strategy::prop_map(proptest::prelude::any::<i64>(), |n| n.to_string()),
            "[(a-z|){}0-9*+?^$.\\\\]{0,40}",
            "\"[a-z\\\\r\\\\n\\\\t\\\\u0000]{0,20}\"",
        ],
    ) {
        // The value replaces the `slot`-th scalar (what follows a `: `, up to `,` `}` or EOL).
        let mut starts: Vec<usize> = RICH.match_indices(": ").map(|(i, _)| i + 2).collect();
        starts.retain(|&i| !RICH[i..].starts_with('{') && !RICH[i..].starts_with('['));
        let at = starts[slot % starts.len()];
        let end = RICH[at..]
            .find([',', '}', '\n'])
            .map_or(RICH.len(), |n| at + n);
        let text = format!("{}{}{}", &RICH[..at], value, &RICH[end..]);
        if let Err(problems) = load_str(&text, "x") {
            proptest::prop_assert!(!problems.is_empty());
            proptest::prop_assert!(problems.len() <= limits::MAX_PROBLEMS + 1);
        }
    }

    #[test]
    fn the_re2_estimate_never_panics(re in "\\PC{0,80}", n in 0u32..5000) {
        let _ = re2::envoy_refusal(&re);
        let _ = re2::envoy_refusal(&format!("({re}){{{n}}}"));
    }
}

#[test]
fn the_rich_rollout_of_the_property_is_valid() {
    assert_eq!(problems(RICH), Vec::<String>::new());
}

#[test]
fn gateway_api_routing_loads_and_bad_values_name_their_field() {
    let ok = VALID.replace(
        "  service: {port: 9080}\n",
        "  service: {port: 9080}\n  routing:\n    gatewayAPI:\n      parentRefs: [{name: public, namespace: infra, sectionName: https}]\n      hostnames: [reviews.example.com, \"*.example.org\"]\n      routeKind: GRPCRoute\n",
    );
    let rs = load_str(&ok, "f.yaml").expect("valid");
    let g = rs[0].spec.routing.gateway_api.as_ref().expect("gatewayAPI");
    assert_eq!(g.parent_refs[0].section_name.as_deref(), Some("https"));
    assert_eq!(g.route_kind, crate::spec::RouteKind::Grpc);

    let bad = VALID.replace(
        "  service: {port: 9080}\n",
        "  service: {port: 9080, hosts: [reviews]}\n  routing:\n    gatewayAPI:\n      parentRefs:\n        - {name: public, namespace: Infra, kind: \"-x\", port: 0}\n        - {name: gw}\n        - {name: gw}\n      hostnames: [10.0.0.1, \"bad_host\"]\n",
    );
    let got = problems(&bad);
    let expected = [
        "f.yaml: spec.routing.gatewayAPI.parentRefs[0].namespace:",
        "f.yaml: spec.routing.gatewayAPI.parentRefs[0].kind:",
        "f.yaml: spec.routing.gatewayAPI.parentRefs[0].port: port must be between 1 and 65535",
        "f.yaml: spec.routing.gatewayAPI.parentRefs[2]: repeats an earlier parentRef",
        "f.yaml: spec.routing.gatewayAPI.hostnames[0]: \"10.0.0.1\" is an IP address",
        "f.yaml: spec.routing.gatewayAPI.hostnames[1]:",
        "f.yaml: spec.service.hosts: configures the Istio VirtualService",
    ];
    for e in expected {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing {e:?} in {got:#?}"
        );
    }
    assert!(!got.iter().any(|g| g.contains("parentRefs[1]")), "{got:#?}");
    let kind = problems(&ok.replace("GRPCRoute", "TCPRoute"));
    assert!(
        kind.iter().any(|g| g
            .starts_with("f.yaml: spec.routing.gatewayAPI.routeKind: unknown value `TCPRoute`")),
        "{kind:#?}"
    );
}

#[test]
fn detect_and_power_are_checked_with_their_paths() {
    let with = |compare: &str| {
        let text = VALID.replace("thresholds: {min: 99}}", &format!("compare: {compare}}}"));
        problems(&text)
    };
    let path = "f.yaml: spec.analysis.metrics[0].compare";
    assert_eq!(
        with("{kind: error-rate, detect: 2x, power: 0.9}"),
        Vec::<String>::new()
    );
    assert_eq!(
        with("{kind: error-rate, detect: '+0.5pp'}"),
        Vec::<String>::new()
    );
    let cases = [
        (
            "{kind: error-rate, detect: double}",
            "detect: `double` is not `<ratio>x`",
        ),
        (
            "{kind: error-rate, detect: 0.5x}",
            "detect: `0.5x`: a ratio must be above 1",
        ),
        (
            "{kind: error-rate, margin: 0.5, detect: 1.5x}",
            "detect: `1.5x` is within the margin (1.5x)",
        ),
        (
            "{kind: error-rate, detect: '+0pp'}",
            "detect: `+0pp`: percentage points must be above 0",
        ),
        (
            "{kind: error-rate, power: 1.0}",
            "power: 1 must be at least 0.5 and below 1",
        ),
        (
            "{kind: latency, detect: 2x}",
            "detect: applies to `kind: error-rate` only",
        ),
        (
            "{kind: latency, power: 0.9}",
            "power: applies to `kind: error-rate` only",
        ),
    ];
    for (compare, want) in cases {
        let got = with(compare);
        let want = format!("{path}.{want}");
        assert!(
            got.iter().any(|g| g.starts_with(&want)),
            "{compare}: no {want:?} in {got:#?}"
        );
    }
}

#[test]
fn detect_parses_ratios_and_points() {
    use crate::spec::Detect;
    assert_eq!(Detect::parse("2x"), Ok(Detect::Ratio(2.0)));
    assert_eq!(Detect::parse(" 1.5x "), Ok(Detect::Ratio(1.5)));
    assert_eq!(Detect::parse("+0.5pp"), Ok(Detect::Points(0.005)));
    assert_eq!(Detect::parse("2pp"), Ok(Detect::Points(0.02)));
    for bad in [
        "", "x", "pp", "2", "NaNx", "infx", "-1pp", "+100pp", "2 x y",
    ] {
        assert!(Detect::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn a_shadow_metric_cannot_be_critical() {
    let text = VALID.replace(
        "thresholds: {min: 99}}",
        "thresholds: {min: 99}, mode: shadow, critical: true}",
    );
    let got = problems(&text);
    assert!(
        got.iter().any(|g| g
            .starts_with("f.yaml: spec.analysis.metrics[0].critical: a shadow metric never acts")),
        "{got:#?}"
    );
    let ok = VALID.replace(
        "thresholds: {min: 99}}",
        "thresholds: {min: 99}, mode: shadow}",
    );
    assert_eq!(problems(&ok), Vec::<String>::new());
    let ok = VALID.replace(
        "thresholds: {min: 99}}",
        "thresholds: {min: 99}, critical: true}",
    );
    assert_eq!(problems(&ok), Vec::<String>::new());
    let bad = VALID.replace(
        "thresholds: {min: 99}}",
        "thresholds: {min: 99}, mode: dry}",
    );
    assert!(
        problems(&bad).iter().any(|g| g.contains("metrics[0].mode")),
        "{:#?}",
        problems(&bad)
    );
}

#[test]
fn gateway_api_routing_is_refused_standalone() {
    let text = r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  upstreams: {stable: "127.0.0.1:1", canary: "127.0.0.1:2"}
  service: {port: 80}
  routing: {gatewayAPI: {}}
  strategy: {canary: {steps: [50]}}
  skipAnalysis: true
"#;
    let got = problems(text);
    assert!(
        got.iter().any(|g| g.starts_with(
            "f.yaml: spec.routing.gatewayAPI: applies to Kubernetes (`targetRef`) only"
        )),
        "{got:#?}"
    );
}

#[test]
fn gather_for_and_low_traffic_are_checked() {
    let with = |extra: &str| {
        problems(&VALID.replace("interval: 30s", &format!("interval: 30s\n    {extra}")))
    };
    assert_eq!(with("gatherFor: 15m"), Vec::<String>::new());
    assert_eq!(with("lowTraffic: wait"), Vec::<String>::new());
    assert!(
        with("gatherFor: soon")
            .iter()
            .any(|g| g.starts_with("f.yaml: spec.analysis.gatherFor: ")),
        "{:#?}",
        with("gatherFor: soon")
    );
    assert!(
        with("lowTraffic: maybe")
            .iter()
            .any(|g| g.starts_with("f.yaml: spec.analysis.lowTraffic")),
        "{:#?}",
        with("lowTraffic: maybe")
    );
}

#[test]
fn owned_routes_load_and_bad_refs_name_their_field() {
    let istio = VALID.replace(
        "  service: {port: 9080}\n",
        "  service: {port: 9080}\n  routing:\n    istio:\n      virtualServiceRef: {name: reviews-vs, ruleName: reviews main}\n",
    );
    assert!(problems(&istio).iter().any(|g| g.starts_with(
        "f.yaml: spec.routing.istio.virtualServiceRef.ruleName: \"reviews main\" is not a route name"
    )));
    let istio = istio.replace("reviews main", "reviews-main");
    let rs = load_str(&istio, "f.yaml").expect("valid");
    let r = rs[0].spec.routing.owned_route().expect("owned route");
    assert_eq!(
        (r.name.as_str(), r.rule_name.as_str()),
        ("reviews-vs", "reviews-main")
    );

    let gw = VALID.replace(
        "  service: {port: 9080}\n",
        "  service: {port: 9080}\n  routing:\n    gatewayAPI:\n      routeRef: {name: web, ruleName: main}\n",
    );
    let rs = load_str(&gw, "f.yaml").expect("valid");
    assert_eq!(rs[0].spec.routing.owned_route().expect("owned").name, "web");

    let bad = VALID.replace(
        "  service: {port: 9080}\n",
        "  service: {port: 9080, gateways: [public]}\n  routing:\n    istio:\n      virtualServiceRef: {name: Bad_Name, ruleName: sluice-0}\n    gatewayAPI:\n      routeRef: {name: web, ruleName: Main}\n      hostnames: [reviews.example.com]\n",
    );
    let got = problems(&bad);
    for e in [
        "f.yaml: spec.routing: set one router: `istio` or `gatewayAPI`, not both",
        "f.yaml: spec.routing.istio.virtualServiceRef.name: \"Bad_Name\"",
        "f.yaml: spec.routing.istio.virtualServiceRef.ruleName: names starting with `sluice-`",
        "f.yaml: spec.service.gateways: configures the VirtualService sluice generates",
        "f.yaml: spec.routing.gatewayAPI.routeRef.ruleName: \"Main\" is not a rule name",
        "f.yaml: spec.routing.gatewayAPI.hostnames: belongs to the route sluice generates",
    ] {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing {e:?} in {got:#?}"
        );
    }
}

#[test]
fn session_affinity_loads_and_bad_values_name_their_field() {
    let ok = VALID.replace(
        "canary: {steps: [10, 25, 50]}",
        "canary: {steps: [10, 25, 50], sessionAffinity: {cookieName: beta-user, maxAge: 2h}}",
    );
    let rs = load_str(&ok, "f.yaml").expect("valid");
    let plan = crate::rollout_plan::RolloutPlan::try_from(&rs[0].spec).expect("plan");
    let cookie = plan.stages[0].traffic.sticky_cookie().expect("sticky");
    assert_eq!(
        (cookie.name.as_str(), cookie.max_age_seconds),
        ("beta-user", 7200)
    );
    assert_eq!(plan.stages[0].label, "canary 10% (sticky)");
    let defaults = load_str(
        &VALID.replace("[10, 25, 50]}", "[10, 25, 50], sessionAffinity: {}}"),
        "f.yaml",
    )
    .expect("valid");
    let a = defaults[0]
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.session_affinity.as_ref());
    assert_eq!(
        a.map(|a| (a.cookie_name.as_str(), a.max_age.as_str())),
        Some(("sluice-canary", "1h"))
    );

    let bad = VALID.replace(
        "canary: {steps: [10, 25, 50]}",
        "canary: {steps: [10, 25, 50], sessionAffinity: {cookieName: \"a b\", maxAge: 0s}}",
    );
    let got = problems(&bad);
    for e in [
        "f.yaml: spec.strategy.canary.sessionAffinity.cookieName: \"a b\" is not a cookie name",
        "f.yaml: spec.strategy.canary.sessionAffinity.maxAge: must be at least 1s",
    ] {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing {e:?} in {got:#?}"
        );
    }
    assert!(
        problems(&bad.replace("0s", "1y"))
            .iter()
            .any(|g| g.contains("sessionAffinity.maxAge"))
    );
}
