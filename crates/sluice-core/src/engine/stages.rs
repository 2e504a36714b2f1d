//! A strategy as a list of stages: the traffic of each and how many passing checks it needs.

use crate::spec::RolloutSpec;
use crate::traffic::TrafficPlan;

#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// Short human description: "canary 25%", "dark launch (mirror 20%)", "A/B test".
    pub label: String,
    pub traffic: TrafficPlan,
    /// Passing analysis checks needed before the stage is done.
    pub checks: u32,
}

/// The stages of a rollout, in order. Promotion follows the last one. An invalid spec gives
/// what can be read from it (possibly nothing); it never panics.
///
/// With an enforcing `compare` metric, every stage needs one passing check: the judges gather
/// evidence over the whole step and pass only once it suffices, so a count of `iterations`
/// would only add time, not evidence.
pub fn stages(spec: &RolloutSpec) -> Vec<Stage> {
    let mut out = stages_by_count(spec);
    if paced_by_evidence(spec) {
        for stage in &mut out {
            stage.checks = 1;
        }
    }
    out
}

/// Whether the steps advance when the judges pass (an enforcing `compare` metric) rather than
/// after a count of checks.
pub fn paced_by_evidence(spec: &RolloutSpec) -> bool {
    spec.analysis
        .metrics
        .iter()
        .any(|m| m.compare.is_some() && m.mode.is_enforce())
}

fn stages_by_count(spec: &RolloutSpec) -> Vec<Stage> {
    let s = &spec.strategy;
    let mut out = Vec::new();
    if let Some(c) = &s.canary {
        out.extend(canary_stages(c));
    } else if let Some(d) = &s.dark_launch {
        let label = match d.mirror_percent.filter(|p| *p > 0) {
            Some(p) => format!("dark launch (mirror {p}%)"),
            None => "dark launch".to_string(),
        };
        out.push(Stage {
            label,
            traffic: TrafficPlan::matched(&d.matches, d.mirror_percent),
            checks: d.iterations.max(1),
        });
        if let Some(c) = &d.then_canary {
            out.extend(canary_stages(c));
        }
    } else if let Some(ab) = &s.ab_test {
        out.push(Stage {
            label: "A/B test".to_string(),
            traffic: TrafficPlan::matched(&ab.matches, None),
            checks: ab.iterations.max(1),
        });
    }
    out
}

fn canary_stages(c: &crate::spec::CanaryStrategy) -> Vec<Stage> {
    c.weights()
        .into_iter()
        .map(|w| Stage {
            label: format!("canary {w}%"),
            traffic: TrafficPlan::weighted(w),
            checks: 1,
        })
        .collect()
}
