//! `sluice analyze FILE` and `sluice bench judge`: the command-line faces of this module.
//!
//! `analyze` runs every metric of every Rollout in a YAML file once, now, and prints each
//! rendered query with what it returned, the value, the thresholds and the verdict with its
//! reason: how users debug their queries. Exit status: 0 when every check passed, 1 when any
//! failed or was inconclusive, 2 when the file could not be used.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;

use super::analyzer::PrometheusAnalyzer;
use super::builtin::fmt;
use super::run::RunOptions;
use crate::spec::{Rollout, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: document {doc}: {message}")]
    Parse {
        path: String,
        doc: usize,
        message: String,
    },
    #[error("{path}: no Rollout in the file")]
    Empty { path: String },
    #[error("{0}")]
    Setup(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Rollouts of a multi-document YAML file. Documents of other kinds are skipped.
///
/// A plain strict parse with field paths (serde_path_to_error); the cross-field validation of
/// the validate module is not applied here, only the template check of this module.
pub fn load_rollouts(path: &Path) -> Result<Vec<Rollout>, CliError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| CliError::Parse {
            path: shown.clone(),
            doc: i + 1,
            message: e.to_string(),
        })?;
        if value.is_null() || value.get("kind").and_then(|k| k.as_str()) != Some(crate::spec::KIND)
        {
            continue;
        }
        let rollout: Rollout =
            serde_path_to_error::deserialize(value).map_err(|e| CliError::Parse {
                path: shown.clone(),
                doc: i + 1,
                message: format!("{}: {}", e.path(), e.inner()),
            })?;
        if let Some((field, message)) = super::template_errors(&rollout.spec).into_iter().next() {
            return Err(CliError::Parse {
                path: shown.clone(),
                doc: i + 1,
                message: format!("{field}: {message}"),
            });
        }
        out.push(rollout);
    }
    if out.is_empty() {
        return Err(CliError::Empty { path: shown });
    }
    Ok(out)
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
    let analyzer = PrometheusAnalyzer::new(prometheus)
        .map_err(|e| CliError::Setup(e.to_string()))?
        .with_options(RunOptions { scrape_interval });
    let mut all_pass = true;
    for rollout in &rollouts {
        let plane = match super::names::data_plane(rollout) {
            crate::spec::DataPlane::Istio => "istio",
            crate::spec::DataPlane::Envoy => "envoy",
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

/// `sluice bench judge`: runs the simulation and prints the markdown table.
pub fn bench_judge(
    runs: usize,
    seed: u64,
    margin: f64,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if !(margin >= 0.0 && margin.is_finite()) {
        return Err(CliError::Setup(format!(
            "--margin must be a non-negative number, not {margin}"
        )));
    }
    let cfg = super::bench::BenchConfig {
        runs,
        seed,
        margin,
        ..Default::default()
    };
    write!(out, "{}", super::bench::run(&cfg))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rollouts/analysis");
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
        let head = "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {name: x}\nspec:\n  service: {port: 80}\n  strategy: {canary: {steps: [10]}}\n";
        let e = load_rollouts(&write(
            "a.yaml",
            &format!("{head}  analysis: {{metrics: [{{name: q, query: 'x{{{{ tagret }}}}'}}]}}\n"),
        ))
        .expect_err("unknown variable");
        assert!(
            e.to_string().contains("spec.analysis.metrics[0].query"),
            "{e}"
        );
        assert!(e.to_string().contains("did you mean `target`"), "{e}");
        let e = load_rollouts(&write(
            "b.yaml",
            &format!("{head}  analysis: {{intervall: 1m}}\n"),
        ))
        .expect_err("typo");
        assert!(e.to_string().contains("spec.analysis"), "{e}");
        let e = load_rollouts(&write("c.yaml", "kind: Other\n")).expect_err("empty");
        assert!(matches!(e, CliError::Empty { .. }));
        assert!(matches!(
            load_rollouts(&dir.path().join("missing.yaml")),
            Err(CliError::Read { .. })
        ));
    }
}
