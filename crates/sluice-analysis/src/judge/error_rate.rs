//! The error-rate judge: canary 5xx counts against stable's, decided by the sequential test.

use sluice_core::spec::{Comparison, Detect, Verdict};

use super::Judgement;
use super::proportions::z_test_margin;
use super::sequential::{Counts, Sequential, TOLERANCE, msprt};
use super::sprt::{Decision, Design, Sprt};

/// The SPRT's design for `cmp` given stable's counts (a `+pp` detect is relative to stable's
/// rate). `Err` for settings validation refuses.
pub fn design(cmp: &Comparison, stable: Counts) -> Result<Design, String> {
    let r0 = 1.0 + cmp.margin;
    let r1 = match cmp.detect()? {
        Detect::Ratio(r) => r,
        // Stable's rate smoothed so that zero errors still give a finite ratio. A `+pp` that
        // lies within the margin at this rate is raised to 1.1·r0 so the hypotheses stay apart.
        Detect::Points(d) => {
            let p = (stable.errors as f64 + 0.5) / (stable.requests as f64 + 1.0);
            (1.0 + d / p).max(r0 * 1.1)
        }
    };
    Design::new(r0, r1, 1.0 - cmp.confidence, 1.0 - cmp.power()).ok_or_else(|| {
        format!(
            "no test for margin {}, detect {}, confidence {}, power {}",
            cmp.margin,
            cmp.detect.as_deref().unwrap_or("2x"),
            cmp.confidence,
            cmp.power()
        )
    })
}

fn verdict_of(sprt: &Sprt, floor: &Sequential) -> Verdict {
    match sprt.decision {
        Decision::Fail => Verdict::Fail,
        Decision::Pass => Verdict::Pass,
        Decision::Continue if floor.upper < 0.0 => Verdict::Pass,
        Decision::Continue => Verdict::Inconclusive,
    }
}

/// [`judge_error_rate`]'s verdict alone, without the words (the bench asks it millions of
/// times). Counts must already be clamped (errors ≤ requests).
pub fn error_rate_verdict(canary: Counts, stable: Counts, cmp: &Comparison, look: u32) -> Verdict {
    let Ok(design) = design(cmp, stable) else {
        return Verdict::Inconclusive;
    };
    match (
        design.test_at(canary, stable, look),
        msprt(canary, stable, cmp.margin, TOLERANCE, cmp.power()),
    ) {
        (Some(sprt), Some(floor)) => verdict_of(&sprt, &floor),
        _ => Verdict::Inconclusive,
    }
}

/// Judges `canary` against `stable` (errors out of requests, cumulative since the step began).
///
/// - Fail: the SPRT ([`super::sprt`]) finds the canary degraded by `detect` rather than within
///   `margin` — false-Fail rate `1 − confidence`.
/// - Pass: the SPRT finds it within `margin` — false-Pass rate `1 − power` at `detect`; or,
///   with rates too low to give the SPRT errors to count, the mixture confidence sequence
///   ([`super::sequential`], at level `1 − power`) shows the canary below
///   `(1+margin)·stable + 0.1pp`.
/// - Inconclusive: not decided yet; the judgement says roughly how many more canary requests.
///
/// `worse` does not apply: more 5xx responses are always worse.
/// The fixed-horizon z-test p-value is reported in the reason for comparison, not used to decide
/// (looked at every interval, it would not keep its error rate).
/// `look` is the look number within the step (1-based; 0 when unknown: Wald's bounds as they
/// are), for the overshoot correction of [`Design::test_at`].
pub fn judge_error_rate(canary: Counts, stable: Counts, cmp: &Comparison, look: u32) -> Judgement {
    let clamp = |c: Counts| Counts {
        errors: c.errors.min(c.requests),
        requests: c.requests,
    };
    let (c, s) = (clamp(canary), clamp(stable));
    if c.requests == 0 || s.requests == 0 {
        let who = if c.requests == 0 { "canary" } else { "stable" };
        return Judgement::inconclusive(format!("no requests to the {who} in the window"));
    }
    let design = match design(cmp, s) {
        Ok(d) => d,
        Err(e) => return Judgement::inconclusive(e),
    };
    let (Some(sprt), Some(floor)) = (
        design.test_at(c, s, look),
        msprt(c, s, cmp.margin, TOLERANCE, cmp.power()),
    ) else {
        return Judgement::inconclusive("no requests in the window");
    };
    let z = z_test_margin(
        c.errors, c.requests, s.errors, s.requests, cmp.margin, TOLERANCE,
    );
    let pct = |x: f64| super::super::builtin::fmt(x * 100.0);
    let num = |x: f64| super::super::builtin::fmt((x * 1000.0).round() / 1000.0);
    let allowed = cmp.margin * s.rate() + TOLERANCE;
    let facts = format!(
        "canary 5xx {}/{} ({}%) vs stable {}/{} ({}%); SPRT within {}x vs worse by {}x: \
         log-likelihood ratio {} (Fail at {}, Pass at {}); fixed z-test p={:.3}",
        c.errors,
        c.requests,
        pct(c.rate()),
        s.errors,
        s.requests,
        pct(s.rate()),
        num(design.r0),
        num(design.r1),
        num(sprt.llr),
        num(sprt.upper),
        num(sprt.lower),
        z.p_value
    );
    let verdict = verdict_of(&sprt, &floor);
    let what = match (sprt.decision, verdict) {
        (_, Verdict::Fail) => "canary error rate is worse than allowed".to_string(),
        (Decision::Pass, _) => "canary error rate is not worse than allowed".to_string(),
        (_, Verdict::Pass) => format!(
            "canary error rate is below the allowance of +{}pp",
            pct(allowed)
        ),
        _ => match sprt.more_requests {
            Some(n) => format!("not decided yet, needs about {n} more requests to the canary"),
            None => "not decided yet, needs more traffic".to_string(),
        },
    };
    Judgement {
        verdict,
        // Excess of the canary's rate over stable's, in percentage points, against the allowance.
        value: Some((c.rate() - s.rate()) * 100.0),
        max: Some(allowed * 100.0),
        reason: format!("{what}: {facts}"),
        more_requests: if verdict == Verdict::Inconclusive {
            sprt.more_requests
        } else {
            None
        },
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
            detect: None,
            power: None,
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
            let j = judge_error_rate(canary, stable, &h, 1);
            assert_eq!(j.verdict, want, "{canary:?} vs {stable:?}: {}", j.reason);
        }
        // `worse` does not change what an error is.
        let j = judge_error_rate(c(400, 10_000), c(100, 10_000), &cmp(Direction::Lower), 1);
        assert_eq!(j.verdict, Verdict::Fail, "{}", j.reason);
        // More errors reported than requests (counter resets): clamped, still a verdict.
        let j = judge_error_rate(c(20_000, 10_000), c(100, 10_000), &h, 1);
        assert_eq!(j.verdict, Verdict::Fail, "{}", j.reason);
    }

    #[test]
    fn reason_carries_the_numbers() {
        let j = judge_error_rate(c(400, 10_000), c(100, 10_000), &cmp(Direction::Higher), 1);
        assert!(j.reason.contains("400/10000 (4%)"), "{}", j.reason);
        assert!(j.reason.contains("z-test"), "{}", j.reason);
        assert_eq!(j.value, Some(3.0));
    }
}
