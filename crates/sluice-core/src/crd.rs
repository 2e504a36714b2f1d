//! The Rollout CRD as the API server gets it: kube's schema generated from the Rust types, plus
//! the validation rules CEL can express (`x-kubernetes-validations`), so `kubectl apply`
//! refuses a Rollout the controller would refuse, before anything runs.
//!
//! The rules here mirror [`crate::validate::rules`] (what `sluice validate`, standalone mode and
//! the controller's `RolloutPlan::try_from` check); the rules are the reference and CEL is the
//! early copy. What CEL cannot express (durations, cron windows, regexes, URLs, PromQL
//! templates) stays with the controller, which refuses such a spec with `Ready=False`,
//! reason `InvalidSpec`. `sluice crd` prints [`rollout_crd`]; CI diffs it against
//! `deploy/crds/rollout.yaml`.
//!
//! Lists that carry a rule also carry `maxItems`: the API server estimates a rule's cost from
//! the largest list the schema allows and refuses the CRD when that exceeds its budget.

use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::analysis_template::{AnalysisTemplate, ClusterAnalysisTemplate};
use crate::spec::Rollout;
use crate::validate::limits::MAX_STEPS;

/// One CEL rule at a schema location.
struct Rule {
    /// Field names from `spec` down (each step goes through `properties`).
    at: &'static [&'static str],
    rule: &'static str,
    message: &'static str,
    /// Where the API server says the problem is, relative to `at` (e.g. `.targetRef`).
    field_path: Option<&'static str>,
}

const CANARY_RULES: [(&str, &str, Option<&str>); 5] = [
    (
        "has(self.steps) != has(self.stepWeight)",
        "set either `steps` or `stepWeight` (with `maxWeight`), not both and not neither",
        None,
    ),
    (
        "!has(self.maxWeight) || has(self.stepWeight)",
        "`maxWeight` applies to `stepWeight`; with `steps` the last step is the maximum",
        Some(".maxWeight"),
    ),
    (
        "!has(self.stepWeight) || (self.stepWeight >= 1 && self.stepWeight <= 100)",
        "stepWeight must be within 1..100",
        Some(".stepWeight"),
    ),
    (
        "!has(self.maxWeight) || (self.maxWeight >= 1 && self.maxWeight <= 100)",
        "maxWeight must be within 1..100",
        Some(".maxWeight"),
    ),
    (
        "!has(self.maxWeight) || !has(self.stepWeight) || self.maxWeight >= self.stepWeight",
        "maxWeight must be at least stepWeight",
        Some(".maxWeight"),
    ),
];

const STEPS_RULES: [(&str, &str); 3] = [
    ("self.size() >= 1", "steps needs at least one weight"),
    (
        "self.all(w, w >= 1 && w <= 100)",
        "every step weight must be within 1..100 (percent of traffic to the canary)",
    ),
    (
        "self.isSorted() && self.all(w, self.exists_one(v, v == w))",
        "steps must strictly increase",
    ),
];

fn rules() -> Vec<Rule> {
    let mut out = vec![
        Rule {
            at: &[],
            rule: "has(self.targetRef) && !has(self.upstreams)",
            message: "set `targetRef` (the Deployment to roll out); `upstreams` is for standalone \
                      mode",
            field_path: Some(".targetRef"),
        },
        Rule {
            at: &[],
            rule: "!has(self.routing) || !has(self.routing.gatewayAPI) || \
                   ((!has(self.service.hosts) || size(self.service.hosts) == 0) && \
                   (!has(self.service.gateways) || size(self.service.gateways) == 0))",
            message: "`service.hosts` / `service.gateways` configure the Istio VirtualService, \
                      which is not written with routing.gatewayAPI; use \
                      routing.gatewayAPI.hostnames / parentRefs",
            field_path: Some(".service"),
        },
        Rule {
            at: &[],
            rule: "!has(self.routing) || !has(self.routing.istio) || \
                   !has(self.routing.istio.virtualServiceRef) || \
                   ((!has(self.service.hosts) || size(self.service.hosts) == 0) && \
                   (!has(self.service.gateways) || size(self.service.gateways) == 0))",
            message: "with routing.istio.virtualServiceRef the hosts and gateways are your \
                      VirtualService's own: leave `service.hosts` / `service.gateways` empty",
            field_path: Some(".service"),
        },
        Rule {
            at: &["routing"],
            rule: "!has(self.istio) || !has(self.gatewayAPI)",
            message: "set one router: `istio` or `gatewayAPI`, not both",
            field_path: None,
        },
        Rule {
            at: &["routing", "gatewayAPI"],
            rule: "!has(self.routeRef) || \
                   ((!has(self.parentRefs) || size(self.parentRefs) == 0) && \
                   (!has(self.hostnames) || size(self.hostnames) == 0))",
            message: "with routeRef the parents and hostnames are your route's own: leave \
                      `parentRefs` / `hostnames` empty",
            field_path: Some(".routeRef"),
        },
        Rule {
            at: &["routing", "gatewayAPI", "routeRef"],
            rule: "!self.ruleName.startsWith('sluice-')",
            message: "names starting with `sluice-` are the rules sluice inserts; name your rule \
                      otherwise",
            field_path: Some(".ruleName"),
        },
        Rule {
            at: &["routing", "istio", "virtualServiceRef"],
            rule: "!self.ruleName.startsWith('sluice-')",
            message: "names starting with `sluice-` are the routes sluice inserts; name your \
                      route otherwise",
            field_path: Some(".ruleName"),
        },
        Rule {
            at: &["strategy"],
            rule: "(has(self.canary) ? 1 : 0) + (has(self.darkLaunch) ? 1 : 0) + \
                   (has(self.abTest) ? 1 : 0) == 1",
            message: "set exactly one of `canary`, `darkLaunch`, `abTest`",
            field_path: None,
        },
        Rule {
            at: &["strategy", "darkLaunch"],
            rule: "!has(self.mirrorPercent) || self.mirrorPercent <= 100",
            message: "mirrorPercent must be within 0..100",
            field_path: Some(".mirrorPercent"),
        },
        Rule {
            at: &["strategy", "darkLaunch"],
            rule: "!has(self.iterations) || self.iterations >= 1",
            message: "iterations must be at least 1 (passing checks before the stage ends)",
            field_path: Some(".iterations"),
        },
        Rule {
            at: &["strategy", "abTest"],
            rule: "!has(self.iterations) || self.iterations >= 1",
            message: "iterations must be at least 1 (passing checks before the stage ends)",
            field_path: Some(".iterations"),
        },
        Rule {
            at: &["analysis"],
            rule: "!has(self.failureLimit) || self.failureLimit >= 1",
            message: "failureLimit must be at least 1",
            field_path: Some(".failureLimit"),
        },
        Rule {
            at: &["analysis"],
            rule: "!has(self.inconclusiveLimit) || self.inconclusiveLimit >= 1",
            message: "inconclusiveLimit must be at least 1",
            field_path: Some(".inconclusiveLimit"),
        },
    ];
    for canary in [
        &["strategy", "canary"][..],
        &["strategy", "darkLaunch", "thenCanary"][..],
    ] {
        for (rule, message, field_path) in CANARY_RULES {
            out.push(Rule {
                at: canary,
                rule,
                message,
                field_path,
            });
        }
    }
    for steps in [
        &["strategy", "canary", "steps"][..],
        &["strategy", "darkLaunch", "thenCanary", "steps"][..],
    ] {
        for (rule, message) in STEPS_RULES {
            out.push(Rule {
                at: steps,
                rule,
                message,
                field_path: None,
            });
        }
    }
    out
}

/// The schema node of `spec` followed by `at`, if the generated schema has it.
fn node<'a>(crd: &'a mut Value, at: &[&str]) -> Option<&'a mut Value> {
    let mut v = crd.pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec")?;
    for field in at {
        v = v.get_mut("properties")?.get_mut(*field)?;
    }
    Some(v)
}

/// The CRD `sluice crd` prints: kube's generated one with the CEL rules and the list bounds
/// they need. Panics only if the generated schema lacks a field a rule is written for, which
/// the tests catch (a renamed field must not silently drop its rule).
pub fn rollout_crd() -> Value {
    let mut crd = serde_json::to_value(Rollout::crd()).expect("a CRD serializes");
    for steps in [
        &["strategy", "canary", "steps"][..],
        &["strategy", "darkLaunch", "thenCanary", "steps"][..],
    ] {
        let n = node(&mut crd, steps)
            .unwrap_or_else(|| panic!("no schema at spec.{}", steps.join(".")));
        n["maxItems"] = json!(MAX_STEPS);
    }
    for r in rules() {
        let n =
            node(&mut crd, r.at).unwrap_or_else(|| panic!("no schema at spec.{}", r.at.join(".")));
        let mut rule = json!({"rule": r.rule, "message": r.message});
        if let Some(p) = r.field_path {
            rule["fieldPath"] = json!(p);
        }
        match n
            .get_mut("x-kubernetes-validations")
            .and_then(Value::as_array_mut)
        {
            Some(list) => list.push(rule),
            None => n["x-kubernetes-validations"] = json!([rule]),
        }
    }
    crd
}

/// The `AnalysisTemplate` CRD (`sluice crd analysis-template`; `deploy/crds/analysistemplate.yaml`).
pub fn analysis_template_crd() -> Value {
    relaxed(serde_json::to_value(AnalysisTemplate::crd()).expect("a CRD serializes"))
}

/// The `ClusterAnalysisTemplate` CRD (`deploy/crds/clusteranalysistemplate.yaml`).
pub fn cluster_analysis_template_crd() -> Value {
    relaxed(serde_json::to_value(ClusterAnalysisTemplate::crd()).expect("a CRD serializes"))
}

/// A template metric is a Rollout metric whose numeric fields may still say
/// `"{{ args.NAME }}"`: those fields accept a number or a string here, and sluice checks the
/// value once the arguments are in (with the field path).
fn relaxed(mut crd: Value) -> Value {
    if let Some(metric) = crd.pointer_mut(
        "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/metrics/items",
    ) {
        relax_numbers(metric);
    }
    crd
}

fn relax_numbers(schema: &mut Value) {
    let numeric = matches!(
        schema.get("type").and_then(Value::as_str),
        Some("number" | "integer")
    );
    if numeric {
        let mut relaxed = json!({"x-kubernetes-preserve-unknown-fields": true});
        for keep in ["description", "nullable"] {
            if let Some(v) = schema.get(keep) {
                relaxed[keep] = v.clone();
            }
        }
        *schema = relaxed;
        return;
    }
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.values_mut().for_each(relax_numbers);
    }
    if let Some(items) = schema.get_mut("items") {
        relax_numbers(items);
    }
}
