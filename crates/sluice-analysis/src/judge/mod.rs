//! The statistical judge: canary against stable on the same window.
//!
//! - [`latency`]: time series (latency, or any "lower/higher is worse" gauge): Mann-Whitney U
//!   with a Hodges–Lehmann interval (Kayenta's judge) plus a tail check.
//! - [`error_rate`]: 5xx counts: Wald's SPRT on the conditional binomial ([`sprt`]), designed
//!   for both answers (Pass and Fail at declared error rates), with a mixture confidence sequence
//!   ([`sequential`]) for rates too low to count and the fixed-horizon two-proportion z-test
//!   ([`proportions`]) reported next to it.
//!
//! Every test here is checked against reference values computed with scipy/statsmodels
//! (crates/sluice-analysis/tests/fixtures/judge_reference.py → judge_reference.json).

pub mod error_rate;
pub mod latency;
pub mod mann_whitney;
pub mod proportions;
pub mod sequential;
pub mod sprt;

pub use error_rate::judge_error_rate;
pub use latency::judge_latency;
pub use sequential::Counts;

use sluice_core::spec::Verdict;

/// A judge's answer, in the shape of a check.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// Estimated degradation of the canary (metric units; percentage points for error rates).
    pub value: Option<f64>,
    /// The degradation allowed by the margin.
    pub max: Option<f64>,
    pub reason: String,
    /// While Inconclusive: roughly how many more requests to the canary a decision needs.
    pub more_requests: Option<u64>,
}

impl Judgement {
    pub fn inconclusive(reason: impl Into<String>) -> Self {
        Judgement {
            verdict: Verdict::Inconclusive,
            value: None,
            max: None,
            reason: reason.into(),
            more_requests: None,
        }
    }
}

pub(crate) fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// Quantile of sorted data with linear interpolation (numpy's default, Hyndman–Fan type 7).
/// NaN for empty input.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
        }
    }
}

pub(crate) fn median_sorted(sorted: &[f64]) -> f64 {
    quantile(sorted, 0.5)
}
