//! `sluice analyze FILE`: the report a user reads to debug their metrics.
//!
//! `analyze` runs every metric of every Rollout in a YAML file once, now, and prints each
//! rendered query with what it returned, the value, the thresholds and the verdict with its
//! reason: how users debug their queries. Exit status: 0 when every check passed, 1 when any
//! failed or was inconclusive, 2 when the file could not be used.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use super::analyzer::{AddressPolicy, PrometheusAnalyzer};
use super::builtin::fmt;
use super::run::RunOptions;
use sluice_core::spec::{Rollout, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Every problem of the file, one per line (`<file>: <field path>: <message>`).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Setup(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Rollouts of a YAML file, checked like `sluice validate` does (every problem at once), with
/// their analysis templates resolved (from the file and its directory).
pub fn load_rollouts(path: &Path) -> Result<Vec<Rollout>, CliError> {
    sluice_core::validate::load_resolved(&[path.to_path_buf()])
        .map(|loaded| loaded.into_iter().map(|(_, r)| r).collect())
        .map_err(|problems| {
            CliError::Invalid(
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })
}

/// Runs every metric of every rollout in `file` once and prints the results to `out`.
/// Returns true when every check passed.
pub async fn analyze(
    file: &Path,
    prometheus: Option<String>,
    scrape_interval: Duration,
    out: &mut dyn Write,
) -> Result<bool, CliError> {
    let rollouts = load_rollouts(file)?;
    // `--prometheus` is an explicit override here: "run my queries against this server".
    let addresses = match prometheus {
        Some(address) => AddressPolicy::Override(address),
        None => AddressPolicy::SpecOrDefault(None),
    };
    let analyzer = PrometheusAnalyzer::new(addresses)
        .map_err(|e| CliError::Setup(e.to_string()))?
        .with_options(RunOptions { scrape_interval });
    let mut all_pass = true;
    for rollout in &rollouts {
        let plane = match super::names::data_plane(rollout) {
            sluice_core::spec::DataPlane::Istio => "istio",
            sluice_core::spec::DataPlane::Envoy => "envoy",
        };
        let address = analyzer
            .source_for(rollout)
            .map(|s| s.address().to_string())
            .unwrap_or_else(|e| format!("none ({e})"));
        writeln!(
            out,
            "rollout {} (data plane {plane}, Prometheus {address})",
            rollout.key()
        )?;
        if rollout.spec.analysis.metrics.is_empty() {
            writeln!(out, "  no metrics")?;
            continue;
        }
        for run in analyzer.run(rollout, Utc::now()).await {
            let c = &run.check;
            all_pass &= c.verdict == Verdict::Pass;
            writeln!(out, "  {}: {}", c.metric, c.verdict.as_str())?;
            writeln!(out, "    reason:    {}", c.reason)?;
            if let Some(v) = c.value {
                writeln!(out, "    value:     {}", fmt(v))?;
            }
            let bounds: Vec<String> = [("min", c.min), ("max", c.max)]
                .iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k} {}", fmt(v))))
                .collect();
            if !bounds.is_empty() {
                writeln!(out, "    threshold: {}", bounds.join(", "))?;
            }
            for q in &run.queries {
                writeln!(out, "    query {} → {}", q.purpose, q.outcome)?;
                writeln!(out, "      {}", q.promql)?;
            }
        }
    }
    Ok(all_pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rollouts/analysis");
        for file in ["standalone-web.yaml", "bookinfo-reviews.yaml"] {
            let rollouts = load_rollouts(&dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(rollouts.len(), 1);
            assert!(rollouts[0].spec.analysis.metrics.len() >= 4, "{file}");
        }
    }

    #[test]
    fn bad_files_say_where() {
        let dir = tempfile::tempdir().expect("tmp");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        let head = "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {name: x}\nspec:\n  upstreams: {stable: '127.0.0.1:1', canary: '127.0.0.1:2'}\n  service: {port: 80}\n  strategy: {canary: {steps: [10]}}\n";
        let bad = write(
            "a.yaml",
            &format!(
                "{head}  analysis: {{metrics: [{{name: q, query: 'x{{{{ tagret }}}}', thresholds: {{max: 1}}}}]}}\n"
            ),
        );
        let e = load_rollouts(&bad)
            .expect_err("unknown variable")
            .to_string();
        assert!(e.contains("spec.analysis.metrics[0].query"), "{e}");
        assert!(e.contains("tagret"), "{e}");
        let e = load_rollouts(&dir.path().join("missing.yaml"))
            .expect_err("missing")
            .to_string();
        assert!(e.contains("missing.yaml"), "{e}");
    }
}
