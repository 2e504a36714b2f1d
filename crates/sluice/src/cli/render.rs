//! Plain-text views of rollouts for the terminal.

use std::fmt::Write;

use sluice_core::backend::RolloutView;
use sluice_core::spec::{Phase, RolloutStatus};
use sluice_core::traffic::Destination;

fn reason(s: &RolloutStatus) -> String {
    s.reason
        .map(|r| {
            let camel = serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            // awaitingPromotion -> awaiting promotion
            let mut out = String::new();
            for ch in camel.chars() {
                if ch.is_ascii_uppercase() {
                    out.push(' ');
                    out.push(ch.to_ascii_lowercase());
                } else {
                    out.push(ch);
                }
            }
            format!(" ({out})")
        })
        .unwrap_or_default()
}

fn step(v: &RolloutView) -> String {
    let s = &v.status;
    let n = v.stages.len();
    if s.phase == Phase::Idle || n == 0 {
        return "-".into();
    }
    let i = (s.step_index as usize).min(n - 1);
    format!("{}/{} {}", i + 1, n, v.stages[i])
}

/// `x-user = "beta" and cookie ~ /…/`, as the UI shows it.
fn match_text(m: &sluice_core::spec::HttpMatch) -> String {
    let parts: Vec<String> = m
        .headers
        .iter()
        .map(|(k, v)| match (&v.exact, &v.prefix, &v.regex) {
            (Some(e), _, _) => format!("{k} = {e:?}"),
            (_, Some(p), _) => format!("{k} starts with {p:?}"),
            (_, _, Some(r)) => format!("{k} ~ /{r}/"),
            _ => k.clone(),
        })
        .collect();
    if parts.is_empty() {
        "every request".into()
    } else {
        parts.join(" and ")
    }
}

/// One line per state, for `wait` progress and `status --watch`.
pub fn one_line(v: &RolloutView) -> String {
    format!(
        "{}/{}: {}{} step {} canary {}%{}",
        v.namespace,
        v.name,
        v.status.phase,
        reason(&v.status),
        step(v),
        v.status.canary_weight,
        v.status
            .message
            .as_deref()
            .map(|m| format!(" - {m}"))
            .unwrap_or_default()
    )
}

/// The `sluice status NAME` block.
pub fn detail(v: &RolloutView) -> String {
    let s = &v.status;
    let mut out = String::new();
    let _ = writeln!(out, "{}/{}  {}{}", v.namespace, v.name, s.phase, reason(s));
    let _ = writeln!(out, "  step       {}", step(v));
    let _ = writeln!(
        out,
        "  traffic    stable {}% / canary {}%",
        100 - s.canary_weight.min(100),
        s.canary_weight
    );
    if let Some(plan) = &v.traffic {
        for r in &plan.routes {
            if !r.matches.is_empty() {
                let canary: u32 = r
                    .destinations
                    .iter()
                    .filter(|d| d.destination == Destination::Canary)
                    .map(|d| d.weight)
                    .sum();
                let rules = r
                    .matches
                    .iter()
                    .map(match_text)
                    .collect::<Vec<_>>()
                    .join(" or ");
                let _ = writeln!(out, "  match      {rules} -> canary {canary}%");
            }
            if let Some(m) = &r.mirror {
                let to = match m.destination {
                    Destination::Stable => "stable",
                    Destination::Canary => "canary",
                };
                let _ = writeln!(out, "  mirror     {}% to {to}", m.percent);
            }
        }
    }
    let _ = writeln!(
        out,
        "  revisions  stable {}{}",
        s.stable_revision.as_deref().unwrap_or("-"),
        s.canary_revision
            .as_deref()
            .filter(|c| Some(*c) != s.stable_revision.as_deref())
            .map(|c| format!(", canary {c}"))
            .unwrap_or_default()
    );
    if let Some(m) = &s.message {
        let _ = writeln!(out, "  message    {m}");
    }
    // What holds the rollout besides its phase (refused plan, pending workload change, a
    // controller that cannot act): the False conditions `kubectl describe` shows.
    for c in s
        .conditions
        .iter()
        .filter(|c| c.status == "False" && c.kind != "Healthy" && c.kind != "Progressing")
    {
        let _ = writeln!(out, "  blocked    {}: {} {}", c.kind, c.reason, c.message);
    }
    for p in &s.pending_effects {
        let _ = writeln!(
            out,
            "  pending    {}{} since {} ({})",
            p.action.as_str(),
            p.revision
                .as_deref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default(),
            p.since.format("%H:%M:%S"),
            p.error
        );
    }
    if let Some(n) = s.more_requests {
        let _ = writeln!(
            out,
            "  evidence   not enough yet: about {n} more requests to the canary"
        );
    }
    for c in &s.last_verdicts {
        let value = c.value.map(|x| format!("{x:.2}")).unwrap_or("-".into());
        let _ = writeln!(
            out,
            "  check      {} {} {} ({})",
            c.metric,
            c.verdict.as_str(),
            value,
            c.reason
        );
    }
    out
}

/// The `sluice status` table of every rollout.
pub fn table(views: &[RolloutView]) -> String {
    let mut rows = vec![[
        "ROLLOUT".to_string(),
        "PHASE".into(),
        "STEP".into(),
        "CANARY".into(),
        "REVISION".into(),
    ]];
    for v in views {
        let s = &v.status;
        let rev = match (&s.stable_revision, &s.canary_revision) {
            (Some(a), Some(b)) if a != b => format!("{a} -> {b}"),
            (Some(a), _) => a.clone(),
            (None, Some(b)) => format!("-> {b}"),
            (None, None) => "-".into(),
        };
        rows.push([
            format!("{}/{}", v.namespace, v.name),
            format!("{}{}", s.phase, reason(s)),
            step(v),
            format!("{}%", s.canary_weight),
            rev,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::spec::{HttpMatch, RolloutStatus, StringMatch};
    use sluice_core::traffic::TrafficPlan;

    #[test]
    fn detail_shows_match_rules_and_mirror() {
        let m = HttpMatch {
            headers: [(
                "x-beta".to_string(),
                StringMatch {
                    exact: Some("true".into()),
                    ..Default::default()
                },
            )]
            .into(),
        };
        let view = RolloutView {
            namespace: "shop".into(),
            name: "checkout".into(),
            spec: serde_yaml::from_str(
                "{service: {port: 80}, strategy: {darkLaunch: {match: [], mirrorPercent: 20}}}",
            )
            .unwrap(),
            status: RolloutStatus {
                phase: Phase::Progressing,
                stable_revision: Some("v1".into()),
                canary_revision: Some("v2".into()),
                ..Default::default()
            },
            traffic: Some(TrafficPlan::matched(&[m], Some(20))),
            stages: vec!["dark launch (mirror 20%)".into()],
        };
        let text = detail(&view);
        assert!(text.contains("shop/checkout  Progressing"), "{text}");
        assert!(
            text.contains(r#"match      x-beta = "true" -> canary 100%"#),
            "{text}"
        );
        assert!(text.contains("mirror     20% to canary"), "{text}");
        assert!(text.contains("revisions  stable v1, canary v2"), "{text}");
        assert!(one_line(&view).starts_with("shop/checkout: Progressing step 1/1"));
    }

    #[test]
    fn detail_and_wait_line_say_how_much_more_evidence_is_needed() {
        let view = RolloutView {
            namespace: "shop".into(),
            name: "web".into(),
            spec: serde_yaml::from_str("{service: {port: 80}, strategy: {canary: {steps: [10]}}}")
                .unwrap(),
            status: RolloutStatus {
                phase: Phase::Progressing,
                canary_weight: 10,
                more_requests: Some(1200),
                message: Some(
                    "canary 10%: gathering evidence, about 1200 more requests to the canary needed"
                        .into(),
                ),
                ..Default::default()
            },
            traffic: None,
            stages: vec!["canary 10%".into()],
        };
        let text = detail(&view);
        assert!(
            text.contains("evidence   not enough yet: about 1200 more requests to the canary"),
            "{text}"
        );
        // `sluice wait` prints this line while it waits.
        assert!(one_line(&view).ends_with("about 1200 more requests to the canary needed"));
    }

    #[test]
    fn detail_names_what_blocks_the_rollout() {
        use sluice_core::spec::{Condition, PendingEffect, WorkloadAction};
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-02T10:00:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let view = RolloutView {
            namespace: "shop".into(),
            name: "web".into(),
            spec: serde_yaml::from_str("{service: {port: 80}, strategy: {canary: {steps: [10]}}}")
                .unwrap(),
            status: RolloutStatus {
                phase: Phase::Failed,
                pending_effects: vec![PendingEffect {
                    action: WorkloadAction::ScaleDownCanary,
                    revision: None,
                    error: "forbidden (403)".into(),
                    since: at,
                }],
                conditions: vec![
                    Condition {
                        kind: "Healthy".into(),
                        status: "False".into(),
                        reason: "AnalysisFailed".into(),
                        message: "rolled back".into(),
                        last_transition_time: at,
                    },
                    Condition {
                        kind: "EffectsApplied".into(),
                        status: "False".into(),
                        reason: "EffectPending".into(),
                        message: "scale down canary failed: forbidden (403)".into(),
                        last_transition_time: at,
                    },
                ],
                ..Default::default()
            },
            traffic: None,
            stages: vec!["canary 10%".into()],
        };
        let text = detail(&view);
        assert!(
            text.contains(
                "blocked    EffectsApplied: EffectPending scale down canary failed: forbidden (403)"
            ),
            "{text}"
        );
        assert!(
            text.contains("pending    scale down canary since 10:00:05 (forbidden (403))"),
            "{text}"
        );
        assert!(
            !text.contains("blocked    Healthy"),
            "the phase already says it: {text}"
        );
    }
}
