//! The builtin queries, per data plane, as templates (rendered like user queries).
//!
//! Success rate is zero-filled: a version answering only 5xx has no "non-5xx" series at all, and
//! a plain ratio would then be *empty* (Inconclusive) instead of 0% (Fail). `ok or 0 * all`
//! keeps the ratio defined whenever there is traffic; with no traffic it is 0/0 = NaN, which
//! the verdict treats as "no data". docs/analysis.md lists the rendered queries.

use sluice_core::spec::{BuiltinMetric, DataPlane};

/// A builtin query: the two metrics users name, and the counts the analyzer needs itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// Percentage of non-5xx responses over the window.
    SuccessRate,
    /// 99th percentile of request duration in milliseconds over the window.
    DurationP99,
    /// Requests answered in the window (for `minRequests` and the error-rate judge).
    RequestCount,
    /// 5xx responses in the window, zero-filled (for the error-rate judge).
    ErrorCount,
}

impl From<BuiltinMetric> for Builtin {
    fn from(m: BuiltinMetric) -> Self {
        match m {
            BuiltinMetric::RequestSuccessRate => Builtin::SuccessRate,
            BuiltinMetric::RequestDuration => Builtin::DurationP99,
        }
    }
}

const ISTIO_SEL: &str = r#"reporter="destination", destination_workload_namespace="{{ namespace }}", destination_workload="{{ target }}""#;
const ENVOY_SEL: &str = r#"envoy_cluster_name="{{ target }}""#;

/// The template of `b` for `plane`. Variables: `namespace`, `target`, `interval`.
pub fn template(plane: DataPlane, b: Builtin) -> String {
    match plane {
        DataPlane::Istio => {
            let all = format!("istio_requests_total{{{ISTIO_SEL}}}");
            let ok = format!("istio_requests_total{{{ISTIO_SEL}, response_code!~\"5..\"}}");
            let err = format!("istio_requests_total{{{ISTIO_SEL}, response_code=~\"5..\"}}");
            let bucket = format!("istio_request_duration_milliseconds_bucket{{{ISTIO_SEL}}}");
            render(b, &all, &ok, &err, &bucket)
        }
        DataPlane::Envoy => {
            // `_rq_xx` by response code class: one series per class, 2..5.
            let all = format!("envoy_cluster_upstream_rq_xx{{{ENVOY_SEL}}}");
            let ok = format!(
                "envoy_cluster_upstream_rq_xx{{{ENVOY_SEL}, envoy_response_code_class!=\"5\"}}"
            );
            let err = format!(
                "envoy_cluster_upstream_rq_xx{{{ENVOY_SEL}, envoy_response_code_class=\"5\"}}"
            );
            let bucket = format!("envoy_cluster_upstream_rq_time_bucket{{{ENVOY_SEL}}}");
            render(b, &all, &ok, &err, &bucket)
        }
    }
}

fn render(b: Builtin, all: &str, ok: &str, err: &str, bucket: &str) -> String {
    let w = "[{{ interval }}]";
    match b {
        Builtin::SuccessRate => {
            format!("100 * (sum(rate({ok}{w})) or 0 * sum(rate({all}{w}))) / sum(rate({all}{w}))")
        }
        Builtin::DurationP99 => {
            format!("histogram_quantile(0.99, sum by (le) (rate({bucket}{w})))")
        }
        Builtin::RequestCount => format!("sum(increase({all}{w}))"),
        Builtin::ErrorCount => {
            format!("sum(increase({err}{w})) or 0 * sum(increase({all}{w}))")
        }
    }
}

/// What a builtin's value means, for messages: "success rate 97.2%".
pub fn describe(b: Builtin, value: f64) -> String {
    match b {
        Builtin::SuccessRate => format!("success rate {}%", fmt(value)),
        Builtin::DurationP99 => format!("p99 duration {} ms", fmt(value)),
        Builtin::RequestCount => format!("{} requests", fmt(value)),
        Builtin::ErrorCount => format!("{} 5xx responses", fmt(value)),
    }
}

/// A value with at most 3 decimals and no trailing zeros: `99.5`, `120`, `0.333`.
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_only_use_known_variables() {
        for plane in [DataPlane::Istio, DataPlane::Envoy] {
            for b in [
                Builtin::SuccessRate,
                Builtin::DurationP99,
                Builtin::RequestCount,
                Builtin::ErrorCount,
            ] {
                let t = template(plane, b);
                let vars = sluice_core::template::variables(&t).expect("valid template");
                assert!(
                    vars.iter()
                        .all(|v| v == "target" || v == "interval" || v == "namespace"),
                    "{t}"
                );
                assert!(vars.contains(&"interval".to_string()), "{t}");
            }
        }
    }

    #[test]
    fn envoy_success_rate_is_zero_filled() {
        let t = template(DataPlane::Envoy, Builtin::SuccessRate);
        assert_eq!(
            t,
            r#"100 * (sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="{{ target }}", envoy_response_code_class!="5"}[{{ interval }}])) or 0 * sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="{{ target }}"}[{{ interval }}]))) / sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="{{ target }}"}[{{ interval }}]))"#
        );
    }

    #[test]
    fn formats_values() {
        assert_eq!(fmt(99.5), "99.5");
        assert_eq!(fmt(120.0), "120");
        assert_eq!(fmt(1.0 / 3.0), "0.333");
        assert_eq!(fmt(-0.0001), "0");
        assert_eq!(fmt(f64::NAN), "NaN");
    }
}

/// The docs show every builtin rendered for two example rollouts; this keeps them in sync.
#[cfg(test)]
mod docs_tests {
    use super::*;
    use crate::names;
    use sluice_core::spec::Rollout;
    use sluice_core::traffic::Destination;

    fn examples() -> Vec<(DataPlane, Rollout)> {
        let spec = |extra: &str| -> sluice_core::spec::RolloutSpec {
            serde_yaml::from_str(&format!(
                "service: {{port: 80}}\nstrategy: {{canary: {{steps: [10]}}}}\n{extra}"
            ))
            .expect("spec")
        };
        let mut istio = Rollout::new("reviews", spec("targetRef: {name: reviews}"));
        istio.metadata.namespace = Some("bookinfo".into());
        let envoy = Rollout::new(
            "web",
            spec("upstreams: {stable: '127.0.0.1:9081', canary: '127.0.0.1:9082'}"),
        );
        vec![(DataPlane::Istio, istio), (DataPlane::Envoy, envoy)]
    }

    pub(crate) fn rendered() -> Vec<String> {
        let mut out = Vec::new();
        for (plane, r) in examples() {
            let vars = names::variables(
                &r,
                plane,
                Destination::Canary,
                std::time::Duration::from_secs(60),
            );
            for b in [
                Builtin::SuccessRate,
                Builtin::DurationP99,
                Builtin::RequestCount,
                Builtin::ErrorCount,
            ] {
                out.push(
                    sluice_core::template::render(&template(plane, b), &vars).expect("render"),
                );
            }
        }
        out
    }

    #[test]
    fn docs_show_the_exact_queries() {
        let docs = include_str!("../../../docs/analysis.md");
        let missing: Vec<String> = rendered()
            .into_iter()
            .filter(|q| !docs.contains(q))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/analysis.md is missing:\n{}",
            missing.join("\n")
        );
    }
}
