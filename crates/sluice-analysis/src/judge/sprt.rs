//! Wald's sequential probability ratio test on the conditional binomial: the test that decides
//! an error-rate comparison, designed for both answers.
//!
//! Two hypotheses on the ratio `r = p_canary / p_stable` of the versions' error rates:
//! - H0, "no worse than allowed": `r = r0 = 1 + margin`;
//! - H1, "degraded by at least what must be caught": `r = r1` (`detect`: `2x` is `r1 = 2`;
//!   `+0.5pp` is `r1 = 1 + 0.005 / p_stable`, with stable's rate estimated from its counts).
//!
//! Given the total number of errors `x = x_c + x_s`, the canary's share is binomial with
//! success probability `π(r) = ρ·r / (ρ·r + 1)`, `ρ = n_c / n_s` (errors are rare events,
//! Poisson in the requests; conditioning removes the unknown stable rate — the classic test for
//! comparing two Poisson rates, Lehmann & Romano, *Testing Statistical Hypotheses*, §4.5).
//! Wald's SPRT (Wald 1945, *Sequential tests of statistical hypotheses*, Ann. Math. Statist.
//! 16(2)) on this binomial: the log likelihood ratio
//!
//! ```text
//! llr = x_c · ln(π1/π0) + x_s · ln((1 − π1)/(1 − π0))
//! ```
//!
//! Fail when `llr ≥ ln((1 − β)/α)`, Pass when `llr ≤ ln(β/(1 − α))`, otherwise continue. Wald's
//! bounds keep the false-Fail rate (at r ≤ r0) below about α and the false-Pass rate (at
//! r ≥ r1) below about β, however the looks fall; and among all tests with those error rates it
//! needs the fewest errors on average at r0 and r1 (Wald & Wolfowitz 1948). Looked at only
//! every so many errors, the llr jumps past a bound; [`Design::test_at`] moves the Fail bound in
//! by the expected overshoot ([`OVERSHOOT`]), so a degraded canary is failed with fewer requests
//! while the false-Fail rate comes close to, not far below, the declared one.
//!
//! With cumulative counts and a traffic split that changes between looks, `ρ` of the cumulative
//! requests is used: exact for a constant split, an approximation otherwise.

use super::sequential::Counts;

/// Siegmund's constant: the expected overshoot of a Gaussian random walk over a boundary, in
/// standard deviations of one increment (`−ζ(1/2)/√(2π)`; Siegmund 1985, *Sequential Analysis*,
/// §10.3).
pub const OVERSHOOT: f64 = 0.583;

/// The two hypotheses and the declared error rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Design {
    /// H0's ratio, `1 + margin`.
    pub r0: f64,
    /// H1's ratio.
    pub r1: f64,
    /// Declared false-Fail rate (at H0).
    pub alpha: f64,
    /// Declared false-Pass rate (at H1).
    pub beta: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Fail,
    Pass,
    Continue,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sprt {
    pub llr: f64,
    /// Fail at or above this (Wald's bound, corrected for discrete looks).
    pub upper: f64,
    /// Pass at or below this.
    pub lower: f64,
    pub decision: Decision,
    /// Rough number of further requests to the canary before a decision, at the current
    /// estimate of the ratio (Wald's approximation of the expected sample size); `None` once
    /// decided, or when nothing is known yet to estimate it from.
    pub more_requests: Option<u64>,
}

impl Design {
    /// `None` for error rates outside (0, 1), or hypotheses that do not satisfy
    /// `0 < r0 < r1`.
    pub fn new(r0: f64, r1: f64, alpha: f64, beta: f64) -> Option<Design> {
        let rate = |x: f64| x > 0.0 && x < 1.0;
        (rate(alpha) && rate(beta) && r0 > 0.0 && r1 > r0 && r1.is_finite()).then_some(Design {
            r0,
            r1,
            alpha,
            beta,
        })
    }

    pub fn upper(&self) -> f64 {
        ((1.0 - self.beta) / self.alpha).ln()
    }

    pub fn lower(&self) -> f64 {
        (self.beta / (1.0 - self.alpha)).ln()
    }

    /// The test with Wald's bounds as they are. `None` without requests on either side.
    pub fn test(&self, canary: Counts, stable: Counts) -> Option<Sprt> {
        self.test_at(canary, stable, 0)
    }

    /// The test on cumulative counts at look `look` (1-based) of a sequence of looks, with the
    /// bounds corrected for the overshoot of discrete looks; `0`: Wald's bounds uncorrected.
    pub fn test_at(&self, canary: Counts, stable: Counts, look: u32) -> Option<Sprt> {
        if canary.requests == 0 || stable.requests == 0 {
            return None;
        }
        let rho = canary.requests as f64 / stable.requests as f64;
        let pi = |r: f64| rho * r / (rho * r + 1.0);
        let (p0, p1) = (pi(self.r0), pi(self.r1));
        let win = (p1 / p0).ln();
        let loss = ((1.0 - p1) / (1.0 - p0)).ln();
        let llr = canary.errors as f64 * win + stable.errors as f64 * loss;
        let (mut upper, lower) = (self.upper(), self.lower());
        if look > 0 {
            // Siegmund's correction for discrete looks: the llr overshoots a bound by about
            // 0.583 × the standard deviation of its increment between two looks, so Wald's
            // bounds, used as they are, keep error rates well below the declared ones and take
            // longer than needed. The Fail bound moves inward by that amount (the increment
            // estimated from the errors per look so far; the deviation taken at most as half
            // the bound's distance to 0, so a few coarse looks stay on the conservative side).
            // The Pass bound stays Wald's: a healthy canary is usually better than the margin it
            // is tested at and passes early anyway, and a false Pass ships a degraded version —
            // that side keeps its slack.
            let x = (canary.errors + stable.errors) as f64;
            let share = (canary.errors as f64 + 0.5) / (x + 1.0);
            let sd =
                (x / f64::from(look) * (share * win * win + (1.0 - share) * loss * loss)).sqrt();
            upper -= OVERSHOOT * sd.min(upper / 2.0);
        }
        let decision = if llr >= upper {
            Decision::Fail
        } else if llr <= lower {
            Decision::Pass
        } else {
            Decision::Continue
        };
        let more_requests = (decision == Decision::Continue)
            .then(|| {
                // The llr's drift per error at the observed share of errors (smoothed so that a
                // handful of errors still gives a direction), then errors → canary requests.
                let x = (canary.errors + stable.errors) as f64;
                let share = (canary.errors as f64 + 0.5) / (x + 1.0);
                let drift = share * win + (1.0 - share) * loss;
                let errors = if drift > 0.0 {
                    (upper - llr) / drift
                } else if drift < 0.0 {
                    (lower - llr) / drift
                } else {
                    return None;
                };
                // Errors per canary request: the canary's own plus stable's over the split.
                let per_request =
                    (canary.errors as f64 + stable.errors as f64) / canary.requests as f64;
                (per_request > 0.0).then(|| (errors / per_request).ceil() as u64)
            })
            .flatten();
        Some(Sprt {
            llr,
            upper,
            lower,
            decision,
            more_requests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(errors: u64, requests: u64) -> Counts {
        Counts { errors, requests }
    }

    #[test]
    fn bounds_are_walds() {
        let d = Design::new(1.1, 2.0, 0.01, 0.05).expect("design");
        assert!((d.upper() - 95f64.ln()).abs() < 1e-12);
        assert!((d.lower() - (0.05f64 / 0.99).ln()).abs() < 1e-12);
    }

    #[test]
    fn decides_both_ways_and_estimates_what_is_left() {
        let d = Design::new(1.1, 2.0, 0.01, 0.05).expect("design");
        // Equal rates, 2% errors each over 5000 requests: clearly healthy.
        assert_eq!(
            d.test(c(50, 5000), c(50, 5000)).map(|t| t.decision),
            Some(Decision::Pass)
        );
        // A doubling over 5000 requests: clearly degraded.
        assert_eq!(
            d.test(c(100, 5000), c(50, 5000)).map(|t| t.decision),
            Some(Decision::Fail)
        );
        // Little data: continue, with an estimate of how many more requests.
        let t = d.test(c(3, 300), c(2, 300)).expect("test");
        assert_eq!(t.decision, Decision::Continue);
        assert!(
            t.more_requests.is_some_and(|n| n > 100 && n < 100_000),
            "{t:?}"
        );
        // No errors at all: no direction, no estimate.
        let t = d.test(c(0, 300), c(0, 300)).expect("test");
        assert_eq!((t.decision, t.more_requests), (Decision::Continue, None));
        assert!(d.test(c(0, 0), c(1, 10)).is_none());
    }

    #[test]
    fn an_uneven_split_is_accounted_for() {
        let d = Design::new(1.1, 2.0, 0.01, 0.05).expect("design");
        // 10% of the traffic to the canary at the same error rate: as many canary errors as
        // expected for its share, so it passes; the same errors on equal traffic would fail.
        let uneven = d.test(c(60, 6000), c(540, 54_000)).expect("uneven");
        assert_eq!(uneven.decision, Decision::Pass, "{uneven:?}");
        let doubled = d.test(c(120, 6000), c(540, 54_000)).expect("doubled");
        assert_eq!(doubled.decision, Decision::Fail, "{doubled:?}");
    }

    #[test]
    fn coarse_looks_move_the_fail_bound_in_but_not_past_half() {
        let d = Design::new(1.1, 2.0, 0.01, 0.05).expect("design");
        let (canary, stable) = (c(30, 2000), c(20, 2000));
        let wald = d.test(canary, stable).expect("wald");
        // 8 looks of 250 requests: about 6 errors per look.
        let eight = d.test_at(canary, stable, 8).expect("8 looks");
        assert!(
            eight.upper < wald.upper && eight.upper > wald.upper * 0.8,
            "{eight:?}"
        );
        assert_eq!((eight.lower, eight.llr), (wald.lower, wald.llr));
        // Finer looks overshoot less: a smaller correction.
        let many = d.test_at(canary, stable, 50).expect("50 looks");
        assert!(
            many.upper > eight.upper && many.upper < wald.upper,
            "{many:?}"
        );
        // One look at a lot of data: the correction is capped.
        let one = d
            .test_at(c(3000, 200_000), c(2000, 200_000), 1)
            .expect("1 look");
        assert!(
            (one.upper - wald.upper * (1.0 - OVERSHOOT / 2.0)).abs() < 1e-12,
            "{one:?}"
        );
    }

    #[test]
    fn bad_designs_are_refused() {
        assert!(Design::new(1.1, 1.1, 0.01, 0.05).is_none());
        assert!(Design::new(1.1, 2.0, 0.0, 0.05).is_none());
        assert!(Design::new(1.1, 2.0, 0.01, 1.0).is_none());
        assert!(Design::new(1.1, f64::INFINITY, 0.01, 0.05).is_none());
    }
}
