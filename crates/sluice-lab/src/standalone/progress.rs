//! Live terminal lines for `sluice demo`: one line per change of a rollout, no extra crate.

use sluice_core::spec::{RolloutStatus, Verdict};

const BAR: usize = 20;

/// `[██████░░░░░░░░░░░░░░]`: the canary's share of the default route.
pub fn weight_bar(canary_weight: u32) -> String {
    let filled = (canary_weight.min(100) as usize * BAR + 50) / 100;
    format!("[{}{}]", "█".repeat(filled), "░".repeat(BAR - filled))
}

/// The latest verdicts, e.g. `success-rate Pass 99.8 (min 95)`.
pub fn verdicts(status: &RolloutStatus) -> String {
    status
        .last_verdicts
        .iter()
        .map(|c| {
            let value = c.value.map(|v| format!(" {v:.1}")).unwrap_or_default();
            let bound = match (c.min, c.max) {
                (Some(m), _) => format!(" (min {m})"),
                (_, Some(m)) => format!(" (max {m})"),
                _ => String::new(),
            };
            let mark = match c.verdict {
                Verdict::Pass => "✓",
                Verdict::Fail => "✗",
                Verdict::Inconclusive => "?",
            };
            format!("{mark} {}{value}{bound}", c.metric)
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// The versions involved: `v1 → v2` during a rollout, `v2` between rollouts.
pub fn revisions(status: &RolloutStatus) -> String {
    let stable = status.stable_revision.as_deref().unwrap_or("-");
    match status.canary_revision.as_deref() {
        Some(c) if c != stable => format!("{stable} → {c}"),
        _ => stable.to_string(),
    }
}

/// One progress line: versions, phase, step, weight bar, verdicts, message.
pub fn line(name: &str, status: &RolloutStatus, stages: usize) -> String {
    let step = if stages == 0 {
        "-".to_string()
    } else {
        format!("{}/{stages}", (status.step_index as usize + 1).min(stages))
    };
    let mut out = format!(
        "{name:<10} {:<7} {:<11} step {step:<5} {} {:>3}% canary",
        revisions(status),
        status.phase.as_str(),
        weight_bar(status.canary_weight),
        status.canary_weight
    );
    if status.canary_traffic && status.canary_weight == 0 {
        // A dark launch or A/B test: the canary gets matched (or mirrored) requests only.
        out.push_str(" + matched requests");
    }
    let v = verdicts(status);
    if !v.is_empty() {
        out.push_str("  ");
        out.push_str(&v);
    }
    if let Some(m) = &status.message {
        out.push_str("  — ");
        out.push_str(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use sluice_core::spec::{CheckResult, Phase};

    #[test]
    fn bar_is_proportional() {
        assert_eq!(weight_bar(0), format!("[{}]", "░".repeat(20)));
        assert_eq!(weight_bar(100), format!("[{}]", "█".repeat(20)));
        assert_eq!(weight_bar(50).matches('█').count(), 10);
        assert_eq!(weight_bar(20).matches('█').count(), 4);
        assert_eq!(weight_bar(250).matches('█').count(), 20);
    }

    #[test]
    fn line_shows_phase_step_weight_and_verdicts() {
        let st = RolloutStatus {
            phase: Phase::Progressing,
            step_index: 1,
            canary_weight: 50,
            message: Some("canary 50%: 0 of 1 checks passed".into()),
            last_verdicts: vec![CheckResult {
                metric: "success-rate".into(),
                verdict: Verdict::Fail,
                value: Some(70.04),
                min: Some(95.0),
                max: None,
                reason: "low".into(),
                at: Utc::now(),
                more_requests: None,
            }],
            stable_revision: Some("v1".into()),
            canary_revision: Some("v2".into()),
            ..Default::default()
        };
        let l = line("reviews", &st, 3);
        assert!(l.starts_with("reviews    v1 → v2 Progressing"), "{l}");
        assert!(l.contains("Progressing"), "{l}");
        assert!(l.contains("step 2/3"), "{l}");
        assert!(l.contains(" 50% canary"), "{l}");
        assert!(l.contains("✗ success-rate 70.0 (min 95)"), "{l}");
        assert!(l.contains("canary 50%: 0 of 1"), "{l}");
    }

    #[test]
    fn a_matched_only_stage_says_so() {
        let mut st = RolloutStatus {
            phase: Phase::Progressing,
            canary_traffic: true,
            ..Default::default()
        };
        assert!(line("reviews", &st, 1).contains("  0% canary + matched requests"));
        st.canary_weight = 20;
        assert!(!line("reviews", &st, 1).contains("matched"));
    }

    #[test]
    fn revisions_show_the_canary_only_while_it_differs() {
        let mut st = RolloutStatus::default();
        assert_eq!(revisions(&st), "-");
        st.stable_revision = Some("v2".into());
        assert_eq!(revisions(&st), "v2");
        st.canary_revision = Some("v2".into());
        assert_eq!(revisions(&st), "v2");
        st.canary_revision = Some("v3".into());
        assert_eq!(revisions(&st), "v2 → v3");
    }
}
