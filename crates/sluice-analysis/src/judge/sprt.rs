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
//! needs the fewest errors on average at r0 and r1 (Wald & Wolfowitz 1948).
//!
//! With cumulative counts and a traffic split that changes between looks, `ρ` of the cumulative
//! requests is used: exact for a constant split, an approximation otherwise.

use super::sequential::Counts;

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
    /// Fail at or above this.
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

    /// The test at this look. `None` without requests on either side.
    pub fn test(&self, canary: Counts, stable: Counts) -> Option<Sprt> {
        if canary.requests == 0 || stable.requests == 0 {
            return None;
        }
        let rho = canary.requests as f64 / stable.requests as f64;
        let pi = |r: f64| rho * r / (rho * r + 1.0);
        let (p0, p1) = (pi(self.r0), pi(self.r1));
        let win = (p1 / p0).ln();
        let loss = ((1.0 - p1) / (1.0 - p0)).ln();
        let llr = canary.errors as f64 * win + stable.errors as f64 * loss;
        let (upper, lower) = (self.upper(), self.lower());
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
    fn bad_designs_are_refused() {
        assert!(Design::new(1.1, 1.1, 0.01, 0.05).is_none());
        assert!(Design::new(1.1, 2.0, 0.0, 0.05).is_none());
        assert!(Design::new(1.1, 2.0, 0.01, 1.0).is_none());
        assert!(Design::new(1.1, f64::INFINITY, 0.01, 0.05).is_none());
    }
}
