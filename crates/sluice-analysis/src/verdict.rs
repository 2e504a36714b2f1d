//! Pure verdict rules: from a query's answer to one number, and from a number to a verdict.
//!
//! Anything that is not exactly one finite number is "no data" and therefore Inconclusive:
//! an empty vector, NaN (0/0 when there is no traffic), ±Inf, several series where one is
//! expected, a range vector. The reason says which, so a user can fix the query.

use sluice_core::spec::{Thresholds, Verdict};

use super::builtin::fmt;
use super::source::QueryValue;

/// The one finite value `v` holds, or the reason (in words) why it holds none.
pub fn single_value(v: &QueryValue) -> Result<f64, String> {
    let value = match v {
        QueryValue::Scalar { value, .. } => *value,
        QueryValue::Vector(samples) => match samples.as_slice() {
            [] => return Err("no data: the query returned no series".into()),
            [one] => one.value,
            many => {
                let labels: Vec<String> = many
                    .iter()
                    .take(3)
                    .map(|s| {
                        let inner: Vec<String> =
                            s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                        format!("{{{}}}", inner.join(", "))
                    })
                    .collect();
                let more = if many.len() > 3 { ", ..." } else { "" };
                return Err(format!(
                    "{} series where one is expected ({}{more}); aggregate them, e.g. with sum()",
                    many.len(),
                    labels.join(", ")
                ));
            }
        },
        QueryValue::Matrix(_) => {
            return Err("the query returned a range vector; an instant value is expected".into());
        }
        QueryValue::String { .. } => {
            return Err("the query returned a string; a number is expected".into());
        }
    };
    finite(value)
}

/// `value` if finite, else why it is not data.
pub fn finite(value: f64) -> Result<f64, String> {
    if value.is_nan() {
        Err("no data: the value is NaN (e.g. 0/0 when there is no traffic)".into())
    } else if value.is_infinite() {
        Err(format!(
            "no data: the value is {}Inf (e.g. a division by zero)",
            if value > 0.0 { "+" } else { "-" }
        ))
    } else {
        Ok(value)
    }
}

/// Pass when `value` is within the thresholds, Fail otherwise. `what` describes the value
/// ("success rate 97.2%"). Without any threshold nothing can be judged: Inconclusive.
pub fn against_thresholds(value: f64, t: &Thresholds, what: &str) -> (Verdict, String) {
    if let Some(min) = t.min
        && value < min
    {
        return (Verdict::Fail, format!("{what} < min {}", fmt(min)));
    }
    if let Some(max) = t.max
        && value > max
    {
        return (Verdict::Fail, format!("{what} > max {}", fmt(max)));
    }
    match (t.min, t.max) {
        (None, None) => (
            Verdict::Inconclusive,
            format!("{what}, but the metric has no thresholds (min/max) to judge it against"),
        ),
        (Some(min), None) => (Verdict::Pass, format!("{what} >= min {}", fmt(min))),
        (None, Some(max)) => (Verdict::Pass, format!("{what} <= max {}", fmt(max))),
        (Some(min), Some(max)) => (
            Verdict::Pass,
            format!("{what} within [{}, {}]", fmt(min), fmt(max)),
        ),
    }
}

/// Combines several verdicts of one metric: Fail wins, then Inconclusive; Pass only if all pass.
pub fn worst(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut out = Verdict::Pass;
    for v in verdicts {
        match (out, v) {
            (_, Verdict::Fail) => out = Verdict::Fail,
            (Verdict::Pass, Verdict::Inconclusive) => out = Verdict::Inconclusive,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::source::{Sample, Series};

    fn sample(value: f64, label: &str) -> Sample {
        Sample {
            labels: BTreeMap::from([("c".to_string(), label.to_string())]),
            at: 0.0,
            value,
        }
    }

    #[test]
    fn single_value_table() {
        let cases: Vec<(QueryValue, Result<f64, &str>)> = vec![
            (QueryValue::Vector(vec![sample(99.0, "a")]), Ok(99.0)),
            (
                QueryValue::Scalar {
                    at: 0.0,
                    value: 1.5,
                },
                Ok(1.5),
            ),
            (QueryValue::Vector(vec![]), Err("no series")),
            (QueryValue::Vector(vec![sample(f64::NAN, "a")]), Err("NaN")),
            (
                QueryValue::Vector(vec![sample(f64::INFINITY, "a")]),
                Err("+Inf"),
            ),
            (
                QueryValue::Scalar {
                    at: 0.0,
                    value: f64::NEG_INFINITY,
                },
                Err("-Inf"),
            ),
            (
                QueryValue::Vector(vec![sample(1.0, "a"), sample(2.0, "b")]),
                Err("2 series where one is expected ({c=\"a\"}, {c=\"b\"})"),
            ),
            (
                QueryValue::Matrix(vec![Series {
                    labels: BTreeMap::new(),
                    points: vec![(0.0, 1.0)],
                }]),
                Err("range vector"),
            ),
            (
                QueryValue::String {
                    at: 0.0,
                    value: "x".into(),
                },
                Err("string"),
            ),
        ];
        for (input, want) in cases {
            match (single_value(&input), want) {
                (Ok(v), Ok(w)) => assert_eq!(v, w),
                (Err(e), Err(w)) => assert!(e.contains(w), "{e:?} should mention {w:?}"),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn thresholds_table() {
        let t = |min, max| Thresholds { min, max };
        let cases = [
            (99.5, t(Some(99.0), None), Verdict::Pass, ">= min 99"),
            (98.0, t(Some(99.0), None), Verdict::Fail, "< min 99"),
            (600.0, t(None, Some(500.0)), Verdict::Fail, "> max 500"),
            (500.0, t(None, Some(500.0)), Verdict::Pass, "<= max 500"),
            (
                5.0,
                t(Some(1.0), Some(10.0)),
                Verdict::Pass,
                "within [1, 10]",
            ),
            (0.0, t(Some(1.0), Some(10.0)), Verdict::Fail, "< min 1"),
            (5.0, t(None, None), Verdict::Inconclusive, "no thresholds"),
        ];
        for (value, th, verdict, words) in cases {
            let (v, reason) = against_thresholds(value, &th, "x");
            assert_eq!(v, verdict, "{value} {th:?}");
            assert!(
                reason.contains(words),
                "{reason:?} should contain {words:?}"
            );
        }
    }

    #[test]
    fn worst_never_lets_inconclusive_pass() {
        use Verdict::*;
        assert_eq!(worst([Pass, Pass]), Pass);
        assert_eq!(worst([Pass, Inconclusive]), Inconclusive);
        assert_eq!(worst([Inconclusive, Fail, Pass]), Fail);
        assert_eq!(worst([]), Pass);
    }

    fn any_f64() -> impl proptest::strategy::Strategy<Value = f64> {
        use proptest::prelude::*;
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            -1e6..1e6f64,
        ]
    }

    proptest::proptest! {
        /// Exactly one finite sample is a value (that sample); anything else is "no data". A Pass
        /// is always inside the thresholds, and needs at least one threshold.
        #[test]
        fn pass_only_for_finite_values_within_thresholds(
            values in proptest::collection::vec(any_f64(), 0..4),
            min in proptest::option::of(-1e6..1e6f64),
            max in proptest::option::of(-1e6..1e6f64),
        ) {
            let v = QueryValue::Vector(values.iter().map(|x| sample(*x, "a")).collect());
            let one_finite = values.len() == 1 && values[0].is_finite();
            match single_value(&v) {
                Ok(x) => {
                    proptest::prop_assert!(one_finite, "{values:?} gave the value {x}");
                    proptest::prop_assert_eq!(x, values[0]);
                    let (verdict, _) = against_thresholds(x, &Thresholds { min, max }, "x");
                    if verdict == Verdict::Pass {
                        proptest::prop_assert!(min.is_none_or(|m| x >= m));
                        proptest::prop_assert!(max.is_none_or(|m| x <= m));
                        proptest::prop_assert!(min.is_some() || max.is_some());
                    }
                }
                Err(why) => {
                    proptest::prop_assert!(!one_finite, "{values:?} refused: {why}");
                }
            }
        }
    }
}
