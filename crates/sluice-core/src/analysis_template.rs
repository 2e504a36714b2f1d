//! Analysis templates: metrics a team writes once and Rollouts reference by name.
//!
//! `AnalysisTemplate` (namespaced) and `ClusterAnalysisTemplate` (cluster-wide) hold typed
//! arguments and metrics written like a Rollout's `analysis.metrics`, where any string may say
//! `{{ args.NAME }}`. A Rollout lists them in `analysis.templates` with argument values.
//!
//! ## Flow
//! The adapters read templates (Kubernetes: the API server at every reconcile; standalone and
//! the CLI: `kind: AnalysisTemplate` files next to the Rollouts) into [`Templates`], then
//! [`resolve`] — pure — turns the Rollout into the one that runs: the templates' metrics with
//! their arguments substituted are appended to `analysis.metrics`, and each reference gets
//! `resolvedVersion` (the template's resourceVersion or content hash). The plan
//! ([`crate::rollout_plan::RolloutPlan::try_from`]) refuses a spec whose references were not
//! resolved, so no path can run a Rollout without its templates' checks; the engine records a
//! changed version in the history at the next step (`AnalysisTemplateChanged`).
//!
//! ## Guarantees
//! - A missing template, a missing or mistyped argument, an unknown argument, a placeholder
//!   naming no declared argument, or a metric the rules refuse is a problem with its field path
//!   in the Rollout (`spec.analysis.templates[0].args.service`), and in the template where the
//!   fault lies there (`metrics[1].thresholds.max`); nothing is half-resolved.
//! - A number argument written alone in a field (`max: "{{ args.maxMs }}"`) becomes a number.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rollout_plan::SpecProblem;
use crate::spec::{ArgValue, Metric, Rollout, RolloutSpec};
use crate::validate::FieldPath;
use crate::validate::rules::{self, Findings};

pub const KIND: &str = "AnalysisTemplate";
pub const CLUSTER_KIND: &str = "ClusterAnalysisTemplate";

// A `//` comment: doc comments become CRD descriptions.
/// Metrics shared by the Rollouts of one namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[cfg_attr(feature = "crd", derive(kube::CustomResource))]
#[cfg_attr(
    feature = "crd",
    kube(
        group = "sluice.dev",
        version = "v1alpha1",
        kind = "AnalysisTemplate",
        namespaced,
        shortname = "sat",
        category = "sluice"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisTemplateSpec {
    /// Arguments a referencing Rollout passes (`analysis.templates[].args`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<TemplateArg>,
    /// Metrics as in a Rollout's `analysis.metrics`; strings may use `{{ args.NAME }}`, and a
    /// numeric field may be `"{{ args.NAME }}"` for a `number` argument.
    pub metrics: Vec<TemplateMetric>,
}

/// Metrics shared by the Rollouts of every namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[cfg_attr(feature = "crd", derive(kube::CustomResource))]
#[cfg_attr(
    feature = "crd",
    kube(
        group = "sluice.dev",
        version = "v1alpha1",
        kind = "ClusterAnalysisTemplate",
        shortname = "scat",
        category = "sluice"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterAnalysisTemplateSpec {
    /// Arguments a referencing Rollout passes (`analysis.templates[].args`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<TemplateArg>,
    /// Metrics as in a Rollout's `analysis.metrics`; strings may use `{{ args.NAME }}`, and a
    /// numeric field may be `"{{ args.NAME }}"` for a `number` argument.
    pub metrics: Vec<TemplateMetric>,
}

impl From<ClusterAnalysisTemplateSpec> for AnalysisTemplateSpec {
    fn from(c: ClusterAnalysisTemplateSpec) -> Self {
        AnalysisTemplateSpec {
            args: c.args,
            metrics: c.metrics,
        }
    }
}

/// One declared argument.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateArg {
    pub name: String,
    /// `string` (default), `number` or `duration` (Go-style, e.g. `30s`).
    #[serde(rename = "type", default, skip_serializing_if = "ArgType::is_string")]
    pub kind: ArgType,
    /// Used when a Rollout does not pass the argument; without one the argument is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ArgValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ArgType {
    #[default]
    String,
    Number,
    Duration,
}

impl ArgType {
    pub fn is_string(&self) -> bool {
        *self == ArgType::String
    }
    fn as_str(self) -> &'static str {
        match self {
            ArgType::String => "string",
            ArgType::Number => "number",
            ArgType::Duration => "duration",
        }
    }
}

/// A metric of a template: a Rollout metric before its arguments are substituted. Kept as
/// JSON because a numeric field may hold `"{{ args.NAME }}"` until then; its CRD schema is the
/// Rollout metric's with such fields relaxed ([`crate::crd`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(transparent)]
pub struct TemplateMetric(pub Map<String, Value>);

impl JsonSchema for TemplateMetric {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TemplateMetric".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Metric::json_schema(generator)
    }
}

/// Namespaced or cluster-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// A template as read by an adapter, with the version its metrics are recorded under.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateSource {
    pub scope: Scope,
    /// `None` for cluster-wide templates.
    pub namespace: Option<String>,
    pub name: String,
    /// resourceVersion (Kubernetes) or [`content_hash`] (files).
    pub version: String,
    pub spec: AnalysisTemplateSpec,
}

impl TemplateSource {
    /// `AnalysisTemplate shop/errors`, `ClusterAnalysisTemplate latency`.
    pub fn label(&self) -> String {
        label(self.scope, self.namespace.as_deref(), &self.name)
    }
}

fn label(scope: Scope, namespace: Option<&str>, name: &str) -> String {
    match scope {
        Scope::Namespaced => format!("{KIND} {}/{name}", namespace.unwrap_or("default")),
        Scope::Cluster => format!("{CLUSTER_KIND} {name}"),
    }
}

/// The templates an adapter could read, by scope, namespace and name.
#[derive(Clone, Debug, Default)]
pub struct Templates {
    items: BTreeMap<(Scope, String, String), TemplateSource>,
}

impl Templates {
    /// Adds (or replaces) a template.
    pub fn insert(&mut self, t: TemplateSource) {
        let ns = match t.scope {
            Scope::Namespaced => t.namespace.clone().unwrap_or_else(|| "default".into()),
            Scope::Cluster => String::new(),
        };
        self.items.insert((t.scope, ns, t.name.clone()), t);
    }

    pub fn get(&self, scope: Scope, namespace: &str, name: &str) -> Option<&TemplateSource> {
        let ns = match scope {
            Scope::Namespaced => namespace,
            Scope::Cluster => "",
        };
        self.items.get(&(scope, ns.to_string(), name.to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &TemplateSource> {
        self.items.values()
    }
}

/// A stable 12-hex-digit hash of a template's spec: its version when it comes from a file.
pub fn content_hash(spec: &AnalysisTemplateSpec) -> String {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    // FNV-1a: stable across runs and platforms (std's hasher is seeded per process).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// The Rollout that runs: `rollout` with every template reference resolved against
/// `templates` (metrics appended to `analysis.metrics`, `resolvedVersion` set). Every problem
/// comes back at once, with its field path in the Rollout.
pub fn resolve(rollout: &Rollout, templates: &Templates) -> Result<Rollout, Vec<SpecProblem>> {
    let namespace = rollout.metadata.namespace.as_deref().unwrap_or("default");
    let spec = resolve_spec(&rollout.spec, namespace, templates)?;
    let mut out = rollout.clone();
    out.spec = spec;
    Ok(out)
}

/// [`resolve`] on a spec, for a Rollout in `namespace`.
pub fn resolve_spec(
    spec: &RolloutSpec,
    namespace: &str,
    templates: &Templates,
) -> Result<RolloutSpec, Vec<SpecProblem>> {
    let mut problems = Vec::new();
    let mut out = spec.clone();
    // Where each appended metric came from, to name template metrics in rule problems.
    let mut origin: Vec<(usize, String, usize)> = Vec::new();
    let base = FieldPath::root("spec").field("analysis").field("templates");
    for (i, r) in spec.analysis.templates.iter().enumerate() {
        let rp = base.index(i);
        let scope = if r.cluster_scope {
            Scope::Cluster
        } else {
            Scope::Namespaced
        };
        let Some(t) = templates.get(scope, namespace, &r.name) else {
            let hint = if r.cluster_scope {
                ""
            } else {
                " (a ClusterAnalysisTemplate needs `clusterScope: true`)"
            };
            problems.push(problem(
                &rp.field("name"),
                format!(
                    "{} not found{}",
                    label(scope, Some(namespace), &r.name),
                    if templates.get(flip(scope), namespace, &r.name).is_some() {
                        hint
                    } else {
                        ""
                    }
                ),
            ));
            continue;
        };
        let what = t.label();
        // A template read from the API server was checked by its schema only.
        let invalid = check(&t.spec);
        if let Some(first) = invalid.first() {
            let more = match invalid.len() {
                1 => String::new(),
                n => format!(" (and {} more problems)", n - 1),
            };
            problems.push(problem(
                &rp.field("name"),
                format!("{what} is invalid: {first}{more}"),
            ));
            continue;
        }
        let values = match arguments(&t.spec, &r.args, &rp.field("args"), &what) {
            Ok(v) => v,
            Err(p) => {
                problems.extend(p);
                continue;
            }
        };
        for (j, m) in t.spec.metrics.iter().enumerate() {
            let at = format!("{what}: metrics[{j}]");
            match instantiate(m, &values) {
                Ok(metric) => {
                    origin.push((out.analysis.metrics.len(), at, i));
                    out.analysis.metrics.push(metric);
                }
                Err((path, message)) => {
                    problems.push(problem(&rp, format!("{at}{}: {message}", dotted(&path))))
                }
            }
        }
        out.analysis.templates[i].resolved_version = Some(t.version.clone());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // The rules on what runs: a template metric that clashes with another metric's name, or
    // that the rules refuse once its arguments are in, is named by its template.
    let mut findings = Findings::default();
    rules::check_spec(&out, &mut findings);
    let metrics = "spec.analysis.metrics[";
    for (path, message) in findings.0 {
        let from = path
            .strip_prefix(metrics)
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(k, rest)| Some((k.parse::<usize>().ok()?, rest)))
            .and_then(|(k, rest)| origin.iter().find(|o| o.0 == k).map(|o| (o, rest)));
        match from {
            Some(((_, at, i), rest)) => problems.push(problem(
                &base.index(*i),
                format!("{at}{}: {message}", dotted(rest)),
            )),
            None => problems.push(SpecProblem { path, message }),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn flip(scope: Scope) -> Scope {
    match scope {
        Scope::Namespaced => Scope::Cluster,
        Scope::Cluster => Scope::Namespaced,
    }
}

fn dotted(rest: &str) -> String {
    if rest.is_empty() || rest.starts_with('[') || rest.starts_with('.') {
        rest.to_string()
    } else {
        format!(".{rest}")
    }
}

fn problem(path: &FieldPath, message: String) -> SpecProblem {
    SpecProblem {
        path: path.to_string(),
        message,
    }
}

/// A checked argument value, ready to substitute.
#[derive(Clone, Debug, PartialEq)]
enum Arg {
    Number(f64),
    Text(String),
}

/// Every declared argument's value: passed (type-checked) or its default. Unknown and missing
/// arguments are problems at `args`.
fn arguments(
    t: &AnalysisTemplateSpec,
    passed: &BTreeMap<String, ArgValue>,
    at: &FieldPath,
    what: &str,
) -> Result<BTreeMap<String, Arg>, Vec<SpecProblem>> {
    let mut problems = Vec::new();
    let mut out = BTreeMap::new();
    let declared: Vec<&str> = t.args.iter().map(|a| a.name.as_str()).collect();
    for name in passed.keys() {
        if !declared.contains(&name.as_str()) {
            let known = if declared.is_empty() {
                "it declares none".to_string()
            } else {
                format!("it declares {}", declared.join(", "))
            };
            problems.push(problem(
                &at.field(name),
                format!("{what} has no argument `{name}` ({known})"),
            ));
        }
    }
    for a in &t.args {
        let value = match (passed.get(&a.name), &a.default) {
            (Some(v), _) => typed(a, v).map_err(|m| problem(&at.field(&a.name), m)),
            (None, Some(d)) => typed(a, d).map_err(|m| {
                problem(
                    at,
                    format!("{what}: the default of argument `{}`: {m}", a.name),
                )
            }),
            (None, None) => Err(problem(
                at,
                format!(
                    "missing argument `{}` (a {}; {what} gives it no default)",
                    a.name,
                    a.kind.as_str()
                ),
            )),
        };
        match value {
            Ok(v) => {
                out.insert(a.name.clone(), v);
            }
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn typed(a: &TemplateArg, v: &ArgValue) -> Result<Arg, String> {
    match (a.kind, v) {
        (ArgType::Number, ArgValue::Number(n)) if n.is_finite() => Ok(Arg::Number(*n)),
        (ArgType::Number, ArgValue::Text(t)) => t
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Arg::Number)
            .ok_or_else(|| format!("`{t}` is not a number (argument `{}` is a number)", a.name)),
        (ArgType::Number, ArgValue::Number(n)) => Err(format!("{n} is not a finite number")),
        (ArgType::Duration, v) => {
            let text = v.to_string();
            crate::duration::parse(&text)
                .map(|_| Arg::Text(text.clone()))
                .map_err(|e| format!("argument `{}` is a duration: {e}", a.name))
        }
        (ArgType::String, v) => Ok(Arg::Text(v.to_string())),
    }
}

/// A template metric with `values` substituted, parsed as a Rollout metric; the error is the
/// field path inside the metric and the message.
fn instantiate(
    m: &TemplateMetric,
    values: &BTreeMap<String, Arg>,
) -> Result<Metric, (String, String)> {
    let mut json = Value::Object(m.0.clone());
    substitute(&mut json, values, "")?;
    serde_path_to_error::deserialize::<_, Metric>(json).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.inner().to_string())
    })
}

fn substitute(
    v: &mut Value,
    values: &BTreeMap<String, Arg>,
    path: &str,
) -> Result<(), (String, String)> {
    match v {
        Value::String(s) => {
            if let Some(new) = render(s, values).map_err(|e| (path.to_string(), e))? {
                *v = new;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, values, &format!("{path}[{i}]"))?;
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                substitute(item, values, &p)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `{{ args.NAME }}` in `s` replaced; `None` when `s` has none. A number argument alone in
/// the string becomes a JSON number. Other placeholders (`{{ interval }}`, ...) stay for the
/// query template.
fn render(s: &str, values: &BTreeMap<String, Arg>) -> Result<Option<Value>, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut found = false;
    let mut alone = None;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        let inner = after[..end].trim();
        let Some(name) = inner.strip_prefix("args.") else {
            out.push_str(&rest[..start + 2 + end + 2]);
            rest = &after[end + 2..];
            continue;
        };
        let name = name.trim();
        let value = values.get(name).ok_or_else(|| {
            let known: Vec<&str> = values.keys().map(String::as_str).collect();
            format!(
                "`{{{{ args.{name} }}}}` names no declared argument (declared: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })?;
        if !found && rest[..start].trim().is_empty() && after[end + 2..].trim().is_empty() {
            alone = Some(value.clone());
        }
        found = true;
        out.push_str(&rest[..start]);
        match value {
            Arg::Number(n) => out.push_str(&n.to_string()),
            Arg::Text(t) => out.push_str(t),
        }
        rest = &after[end + 2..];
    }
    if !found {
        return Ok(None);
    }
    out.push_str(rest);
    Ok(Some(match alone {
        Some(Arg::Number(n)) if s.matches("{{").count() == 1 => {
            serde_json::Number::from_f64(n).map_or(Value::String(out), Value::Number)
        }
        _ => Value::String(out),
    }))
}

/// Problems of a template on its own (what `sluice validate` says about a template file):
/// argument names and defaults, placeholders, and each metric with its arguments at their
/// defaults or a stand-in of their type, against the Rollout metric rules. Paths start at
/// `spec`.
pub fn check(spec: &AnalysisTemplateSpec) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    let sp = FieldPath::root("spec");
    let mut values = BTreeMap::new();
    for (i, a) in spec.args.iter().enumerate() {
        let ap = sp.field("args").index(i);
        let ok_name = !a.name.is_empty()
            && a.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_name {
            problems.push(problem(
                &ap.field("name"),
                "must be letters, digits, `_` or `-`".to_string(),
            ));
        }
        if values.contains_key(&a.name) {
            problems.push(problem(
                &ap.field("name"),
                format!("duplicate argument `{}`", a.name),
            ));
        }
        let stand_in = match a.kind {
            ArgType::Number => Arg::Number(1.0),
            ArgType::Duration => Arg::Text("1m".into()),
            ArgType::String => Arg::Text("x".into()),
        };
        // A bad default is reported once; the metrics are still checked with a stand-in.
        let value = match a.default.as_ref().map(|d| typed(a, d)) {
            Some(Ok(v)) => v,
            Some(Err(m)) => {
                problems.push(problem(&ap.field("default"), m));
                stand_in
            }
            None => stand_in,
        };
        values.insert(a.name.clone(), value);
    }
    if spec.metrics.is_empty() {
        problems.push(problem(
            &sp.field("metrics"),
            "a template needs at least one metric".into(),
        ));
    }
    let mut names = BTreeMap::new();
    for (j, m) in spec.metrics.iter().enumerate() {
        let mp = sp.field("metrics").index(j);
        match instantiate(m, &values) {
            Ok(metric) => {
                if let Some(first) = names.insert(metric.name.clone(), j) {
                    problems.push(problem(
                        &mp.field("name"),
                        format!(
                            "duplicate metric name `{}` (also metrics[{first}])",
                            metric.name
                        ),
                    ));
                }
                let Some(mut spec) = carrier() else {
                    continue;
                };
                spec.analysis.metrics = vec![metric];
                let mut f = Findings::default();
                rules::check_spec(&spec, &mut f);
                for (path, message) in f.0 {
                    if let Some(rest) = path.strip_prefix("spec.analysis.metrics[0]") {
                        problems.push(SpecProblem {
                            path: format!("{mp}{rest}"),
                            message,
                        });
                    }
                }
            }
            Err((path, message)) => problems.push(SpecProblem {
                path: format!("{mp}{}", dotted(&path)),
                message,
            }),
        }
    }
    problems
}

/// The smallest valid spec, to run the metric rules on one template metric.
fn carrier() -> Option<RolloutSpec> {
    serde_json::from_value(serde_json::json!({
        "upstreams": {"stable": "127.0.0.1:1", "canary": "127.0.0.1:2"},
        "service": {"port": 8080},
        "strategy": {"canary": {"steps": [50]}}
    }))
    .ok()
}

#[cfg(test)]
mod tests;
