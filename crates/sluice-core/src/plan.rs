//! `sluice plan`: every step a Rollout will go through, before anything runs.
//!
//! Built from the same [`RolloutPlan`] the engine runs (its stages and gates) and, for the objects, the same translation a router
//! applies (passed in as a function, e.g. the Istio VirtualService translation the controller
//! uses), so the preview cannot drift from what happens: a table for people, the exact routing
//! objects for reviewers and tools, and JSON for scripts. Each plan ends with the promoted state.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::rollout_plan::RolloutPlan;
use crate::spec::{HttpMatch, Rollout, StringMatch};
use crate::traffic::{Destination, Route, TrafficPlan};

/// One row of the plan: a stage, or the final promoted state (`step` = None).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    /// 1-based stage number; `None` for the promoted state.
    pub step: Option<usize>,
    pub label: String,
    pub traffic: TrafficPlan,
    /// Passing analysis checks needed before the step is done (0 for the promoted state).
    pub checks: u32,
    /// What must open before this step's traffic applies: webhook gates, `promote` command.
    pub gates: Vec<String>,
}

/// The rows of a rollout's plan, ending with the promoted state.
pub fn steps(plan: &RolloutPlan) -> Vec<PlanStep> {
    let webhook = |k: &crate::spec::WebhookKind| format!("{} webhook", k.as_str());
    let mut out: Vec<PlanStep> = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| PlanStep {
            step: Some(i + 1),
            label: s.label.clone(),
            traffic: s.traffic.clone(),
            checks: s.checks,
            gates: s.gates.iter().map(webhook).collect(),
        })
        .collect();
    let mut gates = Vec::new();
    if plan.promotion.manual {
        gates.push("promote command".to_string());
    }
    gates.extend(plan.promotion.gates.iter().map(webhook));
    out.push(PlanStep {
        step: None,
        label: "promoted".into(),
        traffic: TrafficPlan::stable_only(),
        checks: 0,
        gates,
    });
    out
}

/// The readable table, with a short header about the rollout.
pub fn table(rollout: &Rollout, plan: &RolloutPlan) -> String {
    let spec = &rollout.spec;
    let mut out = String::new();
    let strategy = if spec.strategy.canary.is_some() {
        "canary"
    } else if spec.strategy.dark_launch.is_some() {
        "dark launch"
    } else {
        "A/B test"
    };
    let target = match (&spec.target_ref, &spec.upstreams) {
        (Some(t), _) => format!("{} {}", t.kind, t.name),
        (None, Some(u)) => format!("upstreams stable {} / canary {}", u.stable, u.canary),
        (None, None) => "no target".into(),
    };
    let _ = writeln!(out, "Rollout {} ({strategy}, {target})", rollout.key());
    if let Some(g) = &spec.routing.gateway_api {
        let parents: Vec<String> = g
            .parent_refs
            .iter()
            .map(|p| {
                let ns = p
                    .namespace
                    .as_deref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default();
                let section = p
                    .section_name
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                format!(
                    "{} {ns}{}{section}",
                    p.kind.as_deref().unwrap_or("Gateway"),
                    p.name
                )
            })
            .collect();
        let kind = match g.route_kind {
            crate::spec::RouteKind::Http => "HTTPRoute",
            crate::spec::RouteKind::Grpc => "GRPCRoute",
        };
        let parents = if parents.is_empty() {
            format!(
                "Service {} (mesh)",
                rollout.metadata.name.as_deref().unwrap_or("")
            )
        } else {
            parents.join(", ")
        };
        let _ = writeln!(out, "routing: Gateway API {kind} attached to {parents}");
    }
    let a = &spec.analysis;
    if spec.skip_analysis {
        let _ = writeln!(
            out,
            "analysis skipped: each check passes after {}",
            a.interval
        );
    } else {
        let metrics: Vec<String> = a.metrics.iter().map(describe_metric).collect();
        let _ = writeln!(
            out,
            "analysis every {}: {}",
            a.interval,
            if metrics.is_empty() {
                "no metrics".to_string()
            } else {
                metrics.join(", ")
            }
        );
        let _ = writeln!(
            out,
            "rollback after {} failed checks in a row; pause after {} inconclusive in a row",
            a.failure_limit, a.inconclusive_limit
        );
    }
    if let Some(s) = &spec.schedule {
        let _ = writeln!(
            out,
            "traffic moves only inside: {} ({})",
            s.windows.join(" | "),
            s.time_zone.as_deref().unwrap_or("UTC")
        );
    }
    out.push('\n');

    let mut rows = vec![
        [
            "STEP", "STAGE", "STABLE", "CANARY", "MATCHES", "MIRROR", "CHECKS", "GATES",
        ]
        .map(String::from),
    ];
    let paced = crate::rollout_plan::paced_by_evidence(spec);
    for s in steps(plan) {
        let default = s.traffic.routes.last();
        let weight = |d| default.map_or(0, |r| weight_of(r, d));
        let matched: Vec<String> = s
            .traffic
            .routes
            .iter()
            .filter(|r| !r.matches.is_empty())
            .map(|r| format!("{} -> {}", describe_matches(&r.matches), targets(r)))
            .collect();
        let mirror: Vec<String> = s
            .traffic
            .routes
            .iter()
            .filter_map(|r| r.mirror.as_ref())
            .map(|m| format!("{}% to {}", m.percent, dest_name(m.destination)))
            .collect();
        rows.push([
            s.step.map_or("-".into(), |n| n.to_string()),
            s.label,
            format!("{}%", weight(Destination::Stable)),
            format!("{}%", weight(Destination::Canary)),
            dash(matched.join("; ")),
            dash(mirror.join("; ")),
            if s.step.is_none() {
                "-".into()
            } else if paced {
                // The judges decide when the evidence suffices; a count would mislead.
                format!("until pass, every {}", a.interval)
            } else {
                format!("{} x {}", s.checks, a.interval)
            },
            dash(s.gates.join(", ")),
        ]);
    }
    let has_matches = rows.iter().skip(1).any(|r| r[4] != "-");
    let widths: Vec<usize> = (0..8)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if has_matches {
        out.push_str("STABLE / CANARY: split of the requests no match selects\n");
    }
    out
}

/// A router's translation of one step's traffic into the object it applies.
pub type Translate = fn(&Rollout, &TrafficPlan) -> Value;

/// The routing objects (`translate`) of every step and of the promoted state, as one YAML stream.
pub fn objects_yaml(
    rollout: &Rollout,
    plan: &RolloutPlan,
    translate: Translate,
) -> Result<String, serde_yaml::Error> {
    let all = steps(plan);
    let total = all.len() - 1;
    let mut out = String::new();
    for s in &all {
        let vs = translate(rollout, &s.traffic);
        let title = match s.step {
            Some(n) => format!("step {n}/{total}: {}", s.label),
            None => "promoted: the new version is stable".to_string(),
        };
        let _ = writeln!(out, "---\n# {} {title}", rollout.key());
        out.push_str(&crate::yaml::to_string(&vs)?);
    }
    Ok(out)
}

/// Everything as JSON: the steps with their traffic plans and routing objects, each object
/// under its key (e.g. `virtualService`, `httpRoute`) made by its translation.
pub fn json(rollout: &Rollout, plan: &RolloutPlan, objects: &[(&str, Translate)]) -> Value {
    let steps: Vec<Value> = steps(plan)
        .into_iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                for (key, translate) in objects {
                    o.insert((*key).into(), translate(rollout, &s.traffic));
                }
            }
            v
        })
        .collect();
    serde_json::json!({
        "name": rollout.metadata.name,
        "namespace": rollout.metadata.namespace,
        "interval": rollout.spec.analysis.interval,
        "steps": steps,
    })
}

fn describe_metric(m: &crate::spec::Metric) -> String {
    let source = match (&m.builtin, &m.query) {
        (Some(b), _) => serde_json::to_value(b)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        (None, Some(_)) => "query".into(),
        (None, None) => "?".into(),
    };
    let mut limits = Vec::new();
    if let Some(min) = m.thresholds.min {
        limits.push(format!("min {min}"));
    }
    if let Some(max) = m.thresholds.max {
        limits.push(format!("max {max}"));
    }
    if m.compare.is_some() {
        limits.push("compared with stable".into());
    }
    format!("{} ({source}, {})", m.name, limits.join(", "))
}

fn describe_matches(ms: &[HttpMatch]) -> String {
    ms.iter()
        .map(|m| {
            m.headers
                .iter()
                .map(|(k, v)| describe_string_match(k, v))
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

fn describe_string_match(header: &str, m: &StringMatch) -> String {
    match (&m.exact, &m.prefix, &m.regex) {
        (Some(e), _, _) => format!("{header}={e}"),
        (_, Some(p), _) => format!("{header}={p}*"),
        (_, _, Some(r)) => format!("{header}~/{r}/"),
        _ => format!("{header}?"),
    }
}

fn targets(r: &Route) -> String {
    r.destinations
        .iter()
        .filter(|d| d.weight > 0)
        .map(|d| {
            if d.weight == 100 {
                dest_name(d.destination).to_string()
            } else {
                format!("{} {}%", dest_name(d.destination), d.weight)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn dest_name(d: Destination) -> &'static str {
    match d {
        Destination::Stable => "stable",
        Destination::Canary => "canary",
    }
}

fn weight_of(r: &Route, d: Destination) -> u32 {
    r.destinations
        .iter()
        .filter(|x| x.destination == d)
        .map(|x| x.weight)
        .sum()
}

fn dash(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}
