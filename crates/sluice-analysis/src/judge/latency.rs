//! The latency judge: is the canary's series worse than stable's by more than the margin?
//!
//! Two questions, because one is not enough:
//! 1. **Shift** (Kayenta's question): Mann-Whitney U and the Hodges–Lehmann estimate of how
//!    much the canary is shifted, with its confidence interval.
//! 2. **Tail**: a canary whose spread grew while its median did not passes (1). So the judge
//!    also counts, in each version, samples above the pooled 90th percentile and tests with
//!    Fisher's exact test whether the canary has significantly more of them, and requires the
//!    canary's own 90th percentile to exceed stable's by more than the margin (a significant but
//!    negligible tail difference does not fail a rollout).
//!
//! The 90th percentile (not 99th) because a window gives tens of samples: the 99th percentile
//! of 30 samples is the maximum, and a test on it has no power.

use sluice_core::spec::{Comparison, Direction, Verdict};

use super::Judgement;
use super::mann_whitney::{Alternative, hodges_lehmann, mann_whitney};
use super::proportions::fisher_greater;
use super::{quantile, sorted};

use crate::builtin::fmt;

/// Fewer samples than this on either side: Inconclusive.
pub const MIN_SAMPLES: usize = 8;
/// The tail quantile compared by the tail check.
pub const TAIL_QUANTILE: f64 = 0.9;

/// Details of one latency judgement (for the bench and for messages).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyStats {
    pub p_value: f64,
    /// Estimated degradation (canary − stable, sign-adjusted so positive is worse).
    pub shift: f64,
    pub lower: f64,
    pub upper: f64,
    /// Allowed degradation: margin × |stable median|.
    pub allowed: f64,
    pub tail_p_value: f64,
    pub canary_tail: f64,
    pub stable_tail: f64,
    pub shift_fails: bool,
    pub tail_fails: bool,
}

/// Finite samples, sorted, sign-adjusted so that higher is worse; or why there are too few.
fn prepare(
    canary: &[f64],
    stable: &[f64],
    cmp: &Comparison,
) -> Result<(Vec<f64>, Vec<f64>, f64), String> {
    // "Worse" becomes "higher" by negating series where lower is worse.
    let sign = match cmp.worse {
        Direction::Higher => 1.0,
        Direction::Lower => -1.0,
    };
    let clean = |s: &[f64]| -> Vec<f64> {
        sorted(
            &s.iter()
                .filter(|v| v.is_finite())
                .map(|v| v * sign)
                .collect::<Vec<f64>>(),
        )
    };
    let (x, y) = (clean(canary), clean(stable));
    if x.len() < MIN_SAMPLES || y.len() < MIN_SAMPLES {
        return Err(format!(
            "too few samples to compare: canary {}, stable {} (need {MIN_SAMPLES} each)",
            x.len(),
            y.len()
        ));
    }
    Ok((x, y, sign))
}

struct Tail {
    p_value: f64,
    canary: f64,
    stable: f64,
    fails: bool,
}

/// Samples above the pooled tail quantile: Fisher's exact test, plus the margin on the
/// versions' own tail quantiles. `xs`, `ys` sorted.
fn tail(xs: &[f64], ys: &[f64], cmp: &Comparison) -> Tail {
    let mut pooled: Vec<f64> = xs.iter().chain(ys).copied().collect();
    pooled.sort_by(f64::total_cmp);
    let cut = quantile(&pooled, TAIL_QUANTILE);
    let above = |s: &[f64]| s.iter().filter(|v| **v > cut).count() as u64;
    let p_value = fisher_greater(above(xs), xs.len() as u64, above(ys), ys.len() as u64);
    let canary = quantile(xs, TAIL_QUANTILE);
    let stable = quantile(ys, TAIL_QUANTILE);
    Tail {
        p_value,
        canary,
        stable,
        fails: p_value < 1.0 - cmp.confidence && canary - stable > cmp.margin * stable.abs(),
    }
}

/// The statistics, or why they cannot be computed. Non-finite samples are dropped first.
pub fn latency_stats(
    canary: &[f64],
    stable: &[f64],
    cmp: &Comparison,
) -> Result<LatencyStats, String> {
    let (x, y, sign) = prepare(canary, stable, cmp)?;
    let mw = mann_whitney(&x, &y, Alternative::Greater);
    let hl = hodges_lehmann(&x, &y, cmp.confidence)
        .ok_or_else(|| format!("confidence {} must be between 0 and 1", cmp.confidence))?;
    let allowed = cmp.margin * quantile(&y, 0.5).abs();
    let t = tail(&x, &y, cmp);
    Ok(LatencyStats {
        p_value: mw.p_value,
        shift: hl.estimate,
        lower: hl.lower,
        upper: hl.upper,
        allowed,
        tail_p_value: t.p_value,
        canary_tail: t.canary * sign,
        stable_tail: t.stable * sign,
        shift_fails: hl.lower > allowed && mw.p_value < 1.0 - cmp.confidence,
        tail_fails: t.fails,
    })
}

/// Whether [`judge_latency`] would Fail; computes the Hodges–Lehmann interval (n1·n2
/// differences) only when the rank test is significant, since the bench asks this many times.
pub fn fails(canary: &[f64], stable: &[f64], cmp: &Comparison) -> bool {
    let Ok((x, y, _)) = prepare(canary, stable, cmp) else {
        return false;
    };
    if tail(&x, &y, cmp).fails {
        return true;
    }
    let mw = mann_whitney(&x, &y, Alternative::Greater);
    mw.p_value < 1.0 - cmp.confidence
        && hodges_lehmann(&x, &y, cmp.confidence)
            .is_some_and(|hl| hl.lower > cmp.margin * quantile(&y, 0.5).abs())
}

/// Fail when the shift or the tail is worse than allowed; Pass when the shift's whole interval
/// is within the allowance and the tail is not worse; Inconclusive otherwise.
pub fn judge_latency(canary: &[f64], stable: &[f64], cmp: &Comparison) -> Judgement {
    let s = match latency_stats(canary, stable, cmp) {
        Ok(s) => s,
        Err(reason) => return Judgement::inconclusive(reason),
    };
    let facts = format!(
        "shift {} (interval [{}, {}] at {}%, Mann-Whitney p={:.3}), allowed {}; p{} canary {} vs \
         stable {} (tail test p={:.3})",
        fmt(s.shift),
        fmt(s.lower),
        fmt(s.upper),
        fmt(cmp.confidence * 100.0),
        s.p_value,
        fmt(s.allowed),
        fmt(TAIL_QUANTILE * 100.0),
        fmt(s.canary_tail),
        fmt(s.stable_tail),
        s.tail_p_value
    );
    let (verdict, what) = if s.shift_fails && s.tail_fails {
        (Verdict::Fail, "canary is worse: shifted and heavier tail")
    } else if s.shift_fails {
        (Verdict::Fail, "canary is worse: shifted beyond the margin")
    } else if s.tail_fails {
        (
            Verdict::Fail,
            "canary is worse: its tail grew beyond the margin",
        )
    } else if s.upper <= s.allowed {
        (Verdict::Pass, "canary is not worse than the margin")
    } else {
        (
            Verdict::Inconclusive,
            "not decided: the shift interval reaches past the margin",
        )
    };
    Judgement {
        verdict,
        value: Some(s.shift),
        max: Some(s.allowed),
        reason: format!("{what}: {facts}"),
        more_requests: None,
    }
}

/// The confidence of look `k` (1-based) of a step: look `k` may spend `α·6/(π²k²)` of the
/// false-Fail rate `α = 1 − confidence`. The series sums to α, so however many looks a step
/// takes, the chance that any of them fails a canary within the margin stays below α (a union
/// bound, the simplest alpha-spending rule; Lan & DeMets 1983 describe the family).
pub fn look_confidence(confidence: f64, look: u32) -> f64 {
    let k = f64::from(look.max(1));
    1.0 - (1.0 - confidence) * 6.0 / (std::f64::consts::PI.powi(2) * k * k)
}

/// [`judge_latency`] at look `look` of a step, on everything the step has seen: Pass as soon as
/// the shift's interval lies within the margin, Fail as soon as the shift or the tail is
/// beyond it, each look at [`look_confidence`] so that looking again and again keeps the
/// declared false-Fail rate.
pub fn judge_latency_at_look(
    canary: &[f64],
    stable: &[f64],
    cmp: &Comparison,
    look: u32,
) -> Judgement {
    let at = Comparison {
        confidence: look_confidence(cmp.confidence, look),
        ..cmp.clone()
    };
    let mut j = judge_latency(canary, stable, &at);
    if look > 1 {
        j.reason = format!(
            "{} (look {look} of the step: confidence {} so that all looks together keep {})",
            j.reason,
            fmt(at.confidence * 100.0) + "%",
            fmt(cmp.confidence * 100.0) + "%"
        );
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::spec::ComparisonKind;

    fn cmp(worse: Direction) -> Comparison {
        Comparison {
            kind: ComparisonKind::Latency,
            worse,
            margin: 0.1,
            confidence: 0.95,
            detect: None,
            power: None,
        }
    }

    /// Deterministic "normal-ish" samples: evenly spaced quantiles of N(mean, sd).
    fn spread(mean: f64, sd: f64, n: usize) -> Vec<f64> {
        use statrs::distribution::{ContinuousCDF, Normal};
        let d = Normal::new(mean, sd).expect("normal");
        // Interleave so order carries no information.
        let mut v: Vec<f64> = (0..n)
            .map(|i| d.inverse_cdf((i as f64 + 0.5) / n as f64))
            .collect();
        v.rotate_left(n / 3);
        v
    }

    #[test]
    fn same_distribution_passes() {
        let j = judge_latency(
            &spread(100.0, 5.0, 60),
            &spread(100.0, 5.0, 60),
            &cmp(Direction::Higher),
        );
        assert_eq!(j.verdict, Verdict::Pass, "{}", j.reason);
    }

    #[test]
    fn shifted_canary_fails() {
        let j = judge_latency(
            &spread(130.0, 5.0, 60),
            &spread(100.0, 5.0, 60),
            &cmp(Direction::Higher),
        );
        assert_eq!(j.verdict, Verdict::Fail, "{}", j.reason);
        assert!(j.reason.contains("shifted"), "{}", j.reason);
        // The same series where lower is worse: the canary is better.
        let j = judge_latency(
            &spread(130.0, 5.0, 60),
            &spread(100.0, 5.0, 60),
            &cmp(Direction::Lower),
        );
        assert_eq!(j.verdict, Verdict::Pass, "{}", j.reason);
    }

    #[test]
    fn wider_tail_with_the_same_median_fails() {
        let canary = spread(100.0, 25.0, 60);
        let stable = spread(100.0, 5.0, 60);
        let s = latency_stats(&canary, &stable, &cmp(Direction::Higher)).expect("stats");
        // What Kayenta sees: no shift.
        assert!(!s.shift_fails, "{s:?}");
        let j = judge_latency(&canary, &stable, &cmp(Direction::Higher));
        assert_eq!(j.verdict, Verdict::Fail, "{}", j.reason);
        assert!(j.reason.contains("tail"), "{}", j.reason);
    }

    #[test]
    fn fast_fail_check_agrees_with_the_judge() {
        let h = cmp(Direction::Higher);
        let cases = [
            (spread(100.0, 5.0, 60), spread(100.0, 5.0, 60)),
            (spread(130.0, 5.0, 60), spread(100.0, 5.0, 60)),
            (spread(100.0, 25.0, 60), spread(100.0, 5.0, 60)),
            (spread(104.0, 5.0, 20), spread(100.0, 5.0, 20)),
            (vec![1.0; 3], spread(100.0, 5.0, 20)),
        ];
        for (c, s) in cases {
            let judged = judge_latency(&c, &s, &h).verdict == Verdict::Fail;
            assert_eq!(fails(&c, &s, &h), judged, "{c:?} vs {s:?}");
        }
    }

    #[test]
    fn too_few_or_unclear_is_inconclusive() {
        let j = judge_latency(
            &[1.0, 2.0],
            &spread(100.0, 5.0, 60),
            &cmp(Direction::Higher),
        );
        assert_eq!(j.verdict, Verdict::Inconclusive);
        assert!(j.reason.contains("too few"), "{}", j.reason);
        // NaN samples are dropped, not counted.
        let nan = vec![f64::NAN; 30];
        assert_eq!(
            judge_latency(&nan, &nan, &cmp(Direction::Higher)).verdict,
            Verdict::Inconclusive
        );
        // Very noisy, slightly slower: cannot tell yet.
        let j = judge_latency(
            &spread(108.0, 40.0, 10),
            &spread(100.0, 40.0, 10),
            &cmp(Direction::Higher),
        );
        assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.reason);
    }

    #[test]
    fn looks_spend_no_more_than_alpha() {
        let spent: f64 = (1..100_000).map(|k| 1.0 - look_confidence(0.95, k)).sum();
        assert!(spent < 0.05 && spent > 0.0499, "{spent}");
        assert!(look_confidence(0.95, 1) > 0.95);
        assert!(look_confidence(0.95, 5) > look_confidence(0.95, 2));
        assert_eq!(look_confidence(0.95, 0), look_confidence(0.95, 1));
    }

    #[test]
    fn more_evidence_decides_what_one_window_could_not() {
        let h = cmp(Direction::Higher);
        // Noisy and slightly faster: one window of 10 points cannot tell...
        let few = judge_latency_at_look(&spread(98.0, 15.0, 10), &spread(100.0, 15.0, 10), &h, 1);
        assert_eq!(few.verdict, Verdict::Inconclusive, "{}", few.reason);
        // ...ten windows' worth can, even at look 10's stricter confidence.
        let many =
            judge_latency_at_look(&spread(98.0, 15.0, 300), &spread(100.0, 15.0, 300), &h, 10);
        assert_eq!(many.verdict, Verdict::Pass, "{}", many.reason);
        assert!(many.reason.contains("look 10"), "{}", many.reason);
        // A clear shift still fails at a late look.
        let slow =
            judge_latency_at_look(&spread(130.0, 15.0, 300), &spread(100.0, 15.0, 300), &h, 10);
        assert_eq!(slow.verdict, Verdict::Fail, "{}", slow.reason);
    }
}
