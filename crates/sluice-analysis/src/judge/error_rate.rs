//! The error-rate judge: canary 5xx counts against stable's, decided by the sequential test.

use sluice_core::spec::{Comparison, Verdict};

use super::Judgement;
use super::proportions::z_test_margin;
use super::sequential::{Counts, TOLERANCE, msprt};

/// Judges `canary` against `stable` (errors out of requests in the same window).
///
/// - Fail: the confidence sequence lies above "(1+margin)·stable + 0.1pp" — worse than allowed.
/// - Pass: it lies below — not worse than allowed.
/// - Inconclusive: not decided yet (the interval straddles the allowance); more traffic decides.
///
/// `worse` does not apply: more 5xx responses are always worse.
/// The fixed-horizon z-test p-value is reported in the reason for comparison, not used to decide
/// (looked at every interval, it would not keep its error rate).
pub fn judge_error_rate(canary: Counts, stable: Counts, cmp: &Comparison) -> Judgement {
    let clamp = |c: Counts| Counts {
        errors: c.errors.min(c.requests),
        requests: c.requests,
    };
    let (c, s) = (clamp(canary), clamp(stable));
    if c.requests == 0 || s.requests == 0 {
        let who = if c.requests == 0 { "canary" } else { "stable" };
        return Judgement::inconclusive(format!("no requests to the {who} in the window"));
    }
    let Some(seq) = msprt(c, s, cmp.margin, TOLERANCE, cmp.confidence) else {
        return Judgement::inconclusive(format!(
            "confidence {} must be between 0 and 1",
            cmp.confidence
        ));
    };
    let z = z_test_margin(
        c.errors, c.requests, s.errors, s.requests, cmp.margin, TOLERANCE,
    );
    let pct = |x: f64| super::super::builtin::fmt(x * 100.0);
    let allowed = cmp.margin * s.rate() + TOLERANCE;
    let facts = format!(
        "canary 5xx {}/{} ({}%) vs stable {}/{} ({}%), allowed +{}pp; sequential interval \
         of the excess [{}, {}]pp at {}%, fixed z-test p={:.3}",
        c.errors,
        c.requests,
        pct(c.rate()),
        s.errors,
        s.requests,
        pct(s.rate()),
        pct(allowed),
        pct(seq.lower),
        pct(seq.upper),
        pct(cmp.confidence),
        z.p_value
    );
    let (verdict, what) = if seq.lower > 0.0 {
        (Verdict::Fail, "canary error rate is worse than allowed")
    } else if seq.upper < 0.0 {
        (Verdict::Pass, "canary error rate is not worse than allowed")
    } else {
        (Verdict::Inconclusive, "not decided yet, needs more traffic")
    };
    Judgement {
        verdict,
        // Excess of the canary's rate over stable's, in percentage points, against the allowance.
        value: Some((c.rate() - s.rate()) * 100.0),
        max: Some(allowed * 100.0),
        reason: format!("{what}: {facts}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::spec::{ComparisonKind, Direction};

    fn cmp(worse: Direction) -> Comparison {
        Comparison {
            kind: ComparisonKind::ErrorRate,
            worse,
            margin: 0.1,
            confidence: 0.95,
        }
    }
    fn c(errors: u64, requests: u64) -> Counts {
        Counts { errors, requests }
    }

    #[test]
    fn verdict_table() {
        let h = cmp(Direction::Higher);
        let cases = [
            (c(400, 10_000), c(100, 10_000), Verdict::Fail),
            (c(100, 100_000), c(100, 100_000), Verdict::Pass),
            (c(0, 50_000), c(0, 50_000), Verdict::Pass),
            (c(2, 100), c(1, 100), Verdict::Inconclusive),
            (c(0, 0), c(1, 100), Verdict::Inconclusive),
        ];
        for (canary, stable, want) in cases {
            let j = judge_error_rate(canary, stable, &h);
            assert_eq!(j.verdict, want, "{canary:?} vs {stable:?}: {}", j.reason);
        }
        // `worse` does not change what an error is.
        let j = judge_error_rate(c(400, 10_000), c(100, 10_000), &cmp(Direction::Lower));
        assert_eq!(j.verdict, Verdict::Fail, "{}", j.reason);
        // More errors reported than requests (counter resets): clamped, still a verdict.
        let j = judge_error_rate(c(20_000, 10_000), c(100, 10_000), &h);
        assert_eq!(j.verdict, Verdict::Fail, "{}", j.reason);
    }

    #[test]
    fn reason_carries_the_numbers() {
        let j = judge_error_rate(c(400, 10_000), c(100, 10_000), &cmp(Direction::Higher));
        assert!(j.reason.contains("400/10000 (4%)"), "{}", j.reason);
        assert!(j.reason.contains("z-test"), "{}", j.reason);
        assert_eq!(j.value, Some(3.0));
    }
}
