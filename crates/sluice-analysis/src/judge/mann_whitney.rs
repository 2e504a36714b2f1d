//! Mann-Whitney U (normal approximation with tie and continuity correction, as scipy's
//! `mannwhitneyu(method="asymptotic")`) and the Hodges–Lehmann shift estimate with its
//! distribution-free confidence interval (as Kayenta's judge reports it).

use statrs::distribution::{ContinuousCDF, Normal};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alternative {
    /// `x` tends to be larger than `y`.
    Greater,
    /// `x` tends to be smaller than `y`.
    Less,
    TwoSided,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: pairs (x_i, y_j) with x_i > y_j, ties counted 1/2.
    pub u1: f64,
    /// The standardised statistic used for the p-value (NaN when every value is tied).
    pub z: f64,
    pub p_value: f64,
}

/// Ranks with ties averaged (1-based), and Σ(t³ − t) over tie groups.
fn ranks(values: &[f64]) -> (Vec<f64>, f64) {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && values[idx[j + 1]] == values[idx[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) share the average rank.
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            out[k] = avg;
        }
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    (out, ties)
}

pub(crate) fn std_normal() -> Normal {
    // Mean 0, sd 1 are valid parameters: the constructor cannot fail.
    Normal::standard()
}

/// Mann-Whitney U test of `x` against `y`. Empty samples give p = 1 (no evidence).
pub fn mann_whitney(x: &[f64], y: &[f64], alternative: Alternative) -> MannWhitney {
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    if x.is_empty() || y.is_empty() {
        return MannWhitney {
            u1: 0.0,
            z: f64::NAN,
            p_value: 1.0,
        };
    }
    let all: Vec<f64> = x.iter().chain(y).copied().collect();
    let (r, ties) = ranks(&all);
    let r1: f64 = r[..x.len()].iter().sum();
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let u2 = n1 * n2 - u1;
    let (u, factor) = match alternative {
        Alternative::Greater => (u1, 1.0),
        Alternative::Less => (u2, 1.0),
        Alternative::TwoSided => (u1.max(u2), 2.0),
    };
    let n = n1 + n2;
    let sd = (n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))).sqrt();
    let z = (u - n1 * n2 / 2.0 - 0.5) / sd;
    let p_value = if z.is_nan() || sd == 0.0 {
        // Every value tied: the samples are indistinguishable.
        1.0
    } else {
        (std_normal().sf(z) * factor).clamp(0.0, 1.0)
    };
    MannWhitney { u1, z, p_value }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HodgesLehmann {
    /// Median of all pairwise differences x_i − y_j: the estimated shift of x over y.
    pub estimate: f64,
    /// Two-sided confidence interval of the shift.
    pub lower: f64,
    pub upper: f64,
}

/// Hodges–Lehmann estimate of the shift `x − y` with a two-sided `confidence` interval.
///
/// The interval is `[D(k), D(N+1−k)]` over the sorted pairwise differences (1-based, N = n1·n2),
/// with `k = floor(N/2 − z·sqrt(n1·n2·(n1+n2+1)/12) + 1/2)` clamped to `1..=N` and
/// `z = Φ⁻¹((1+confidence)/2)` (Bauer 1972; Hollander & Wolfe, large-sample form with
/// continuity correction, no tie correction — ties only make it conservative).
/// `None` for an empty sample or a confidence outside (0, 1).
pub fn hodges_lehmann(x: &[f64], y: &[f64], confidence: f64) -> Option<HodgesLehmann> {
    if x.is_empty() || y.is_empty() || !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let mut d: Vec<f64> = Vec::with_capacity(x.len() * y.len());
    for a in x {
        for b in y {
            d.push(a - b);
        }
    }
    d.sort_by(f64::total_cmp);
    let n = d.len();
    let estimate = super::median_sorted(&d);
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let z = std_normal().inverse_cdf((1.0 + confidence) / 2.0);
    let sd = (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt();
    let k = ((n as f64) / 2.0 - z * sd + 0.5)
        .floor()
        .clamp(1.0, n as f64) as usize;
    Some(HodgesLehmann {
        estimate,
        lower: d[k - 1],
        upper: d[n - k],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        let (r, ties) = ranks(&[3.0, 1.0, 3.0, 2.0]);
        assert_eq!(r, vec![3.5, 1.0, 3.5, 2.0]);
        assert_eq!(ties, 6.0);
    }

    #[test]
    fn u_counts_pairs() {
        // Every x above every y: U1 = n1·n2.
        let m = mann_whitney(&[10.0, 11.0, 12.0], &[1.0, 2.0], Alternative::Greater);
        assert_eq!(m.u1, 6.0);
        let m = mann_whitney(&[1.0, 2.0], &[1.0, 2.0], Alternative::TwoSided);
        assert_eq!(m.u1, 2.0);
        assert_eq!(m.p_value, 1.0);
    }

    #[test]
    fn all_tied_and_empty_are_no_evidence() {
        let m = mann_whitney(&[1.0; 5], &[1.0; 5], Alternative::Greater);
        assert_eq!(m.p_value, 1.0);
        assert_eq!(mann_whitney(&[], &[1.0], Alternative::Less).p_value, 1.0);
        assert!(hodges_lehmann(&[], &[1.0], 0.95).is_none());
        assert!(hodges_lehmann(&[1.0], &[1.0], 1.0).is_none());
    }

    #[test]
    fn hl_of_a_pure_shift_is_the_shift() {
        let y: Vec<f64> = (0..20).map(f64::from).collect();
        let x: Vec<f64> = y.iter().map(|v| v + 5.0).collect();
        let hl = hodges_lehmann(&x, &y, 0.95).expect("hl");
        assert_eq!(hl.estimate, 5.0);
        assert!(hl.lower < 5.0 && hl.upper > 5.0, "{hl:?}");
    }
}
