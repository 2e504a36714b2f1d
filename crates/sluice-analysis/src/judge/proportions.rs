//! Tests on counts: two-proportion z-tests (fixed horizon) and Fisher's exact test.

use statrs::distribution::{ContinuousCDF, DiscreteCDF, Hypergeometric};

use super::mann_whitney::{Alternative, std_normal};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZTest {
    pub z: f64,
    pub p_value: f64,
}

fn p_from_z(z: f64, alternative: Alternative) -> f64 {
    if z.is_nan() {
        return 1.0;
    }
    let n = std_normal();
    match alternative {
        Alternative::Greater => n.sf(z),
        Alternative::Less => n.cdf(z),
        Alternative::TwoSided => (2.0 * n.sf(z.abs())).min(1.0),
    }
}

/// The classic pooled z-test of `x1/n1` against `x2/n2` (H0: equal proportions).
/// Matches statsmodels' `proportions_ztest([x1, x2], [n1, n2])`.
pub fn z_test_pooled(x1: u64, n1: u64, x2: u64, n2: u64, alternative: Alternative) -> ZTest {
    if n1 == 0 || n2 == 0 {
        return ZTest {
            z: f64::NAN,
            p_value: 1.0,
        };
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (p1, p2) = (x1 as f64 / n1f, x2 as f64 / n2f);
    let p = (x1 + x2) as f64 / (n1f + n2f);
    let se = (p * (1.0 - p) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    let z = if se == 0.0 { f64::NAN } else { (p1 - p2) / se };
    ZTest {
        z,
        p_value: p_from_z(z, alternative),
    }
}

/// One-sided Wald test of H0: `p1 <= (1 + margin)·p2 + tolerance` against "p1 is worse than
/// allowed", with unpooled variance:
/// `z = (p̂1 − (1+m)p̂2 − tol) / sqrt(p̂1q̂1/n1 + (1+m)²p̂2q̂2/n2)`.
/// With `margin = 0` this is statsmodels' `test_proportions_2indep(value=tolerance,
/// method="wald", compare="diff", alternative="larger")`.
pub fn z_test_margin(x1: u64, n1: u64, x2: u64, n2: u64, margin: f64, tolerance: f64) -> ZTest {
    if n1 == 0 || n2 == 0 {
        return ZTest {
            z: f64::NAN,
            p_value: 1.0,
        };
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let k = 1.0 + margin;
    let var = p1 * (1.0 - p1) / n1 as f64 + k * k * p2 * (1.0 - p2) / n2 as f64;
    let z = if var == 0.0 {
        f64::NAN
    } else {
        (p1 - k * p2 - tolerance) / var.sqrt()
    };
    ZTest {
        z,
        p_value: p_from_z(z, Alternative::Greater),
    }
}

/// Requests per version a fixed-horizon test needs: the one-sided Wald test of
/// H0 `p1 ≤ r0·p` ([`z_test_margin`] without tolerance) that fails with probability `alpha` at
/// H0 and passes with probability `beta` at H1 `p1 = r1·p` (stable at `p`). The textbook size
/// for a non-inferiority test of two proportions (Chow, Shao & Wang, *Sample Size Calculations
/// in Clinical Research*, 2nd ed., §4.2), with the relative margin inside the variance:
///
/// ```text
/// n = (z(1−α) + z(1−β))² · (p1(1 − p1) + r0²·p(1 − p)) / ((r1 − r0)·p)²,   p1 = r1·p
/// ```
///
/// `None` when the inputs describe no test.
pub fn fixed_horizon_size(p: f64, r0: f64, r1: f64, alpha: f64, beta: f64) -> Option<u64> {
    let rate = |x: f64| x > 0.0 && x < 1.0;
    if !(rate(p) && rate(alpha) && rate(beta) && r0 > 0.0 && r1 > r0 && rate(r1 * p)) {
        return None;
    }
    let n = std_normal();
    let z = n.inverse_cdf(1.0 - alpha) + n.inverse_cdf(1.0 - beta);
    let p1 = r1 * p;
    let var = p1 * (1.0 - p1) + r0 * r0 * p * (1.0 - p);
    Some((z * z * var / ((r1 - r0) * p).powi(2)).ceil() as u64)
}

/// Fisher's exact test, one-sided: are `a` of `n1` significantly more than `b` of `n2`?
/// `P(X >= a)` for X hypergeometric (population n1+n2, a+b successes, n1 draws); scipy's
/// `fisher_exact([[a, b], [n1-a, n2-b]], alternative="greater")`.
pub fn fisher_greater(a: u64, n1: u64, b: u64, n2: u64) -> f64 {
    if a > n1 || b > n2 {
        return 1.0;
    }
    let Ok(h) = Hypergeometric::new(n1 + n2, a + b, n1) else {
        return 1.0;
    };
    if a == 0 {
        return 1.0;
    }
    h.sf(a - 1).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_inputs_are_no_evidence() {
        assert_eq!(
            z_test_pooled(0, 0, 1, 10, Alternative::Greater).p_value,
            1.0
        );
        assert_eq!(
            z_test_pooled(0, 10, 0, 10, Alternative::Greater).p_value,
            1.0
        );
        assert_eq!(z_test_margin(0, 10, 0, 10, 0.1, 0.0).p_value, 1.0);
        assert_eq!(fisher_greater(0, 10, 3, 10), 1.0);
        assert_eq!(fisher_greater(11, 10, 3, 10), 1.0);
    }

    #[test]
    fn fisher_extreme_table() {
        // 5/5 against 0/5: P = 1 / C(10, 5).
        let p = fisher_greater(5, 5, 0, 5);
        assert!((p - 1.0 / 252.0).abs() < 1e-12, "{p}");
    }
}
