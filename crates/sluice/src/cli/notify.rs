//! The global notification flags: where `main` reads the sinks from (flags, env vars or a
//! YAML file) before handing a [`NotifyConfig`] to the notifier.

use std::path::PathBuf;

use sluice_core::spec::{Notification, NotificationKind};
use sluice_notify::notify::{NotifyConfig, NotifyError};

/// Global flags. URLs themselves are never flag values (they would show in `ps` and
/// `--help`): only file paths, or the env vars `SLUICE_NOTIFY_SLACK_URL` /
/// `SLUICE_NOTIFY_JSON_URL`, which are read directly.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct NotifyArgs {
    /// File holding a Slack incoming-webhook URL for every rollout's notifications.
    #[arg(long, global = true, env = "SLUICE_NOTIFY_SLACK_URL_FILE")]
    pub notify_slack_url_file: Option<PathBuf>,
    /// File holding a URL that receives every notification as JSON.
    #[arg(long, global = true, env = "SLUICE_NOTIFY_JSON_URL_FILE")]
    pub notify_json_url_file: Option<PathBuf>,
    /// YAML file with `sinks` and `uiBaseUrl` (see docs/observability.md).
    #[arg(long, global = true, env = "SLUICE_NOTIFY_CONFIG")]
    pub notify_config: Option<PathBuf>,
    /// Base URL of the web UI, for links in notifications.
    #[arg(long, global = true, env = "SLUICE_UI_BASE_URL")]
    pub ui_base_url: Option<String>,
}

impl NotifyArgs {
    /// The config file (if any), plus the flags and env vars on top.
    pub fn config(&self) -> Result<NotifyConfig, NotifyError> {
        let mut cfg = match &self.notify_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| NotifyError::Config(format!("reading {}: {e}", path.display())))?;
                let de = serde_yaml::Deserializer::from_str(&text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    NotifyError::Config(format!("{}: {}: {}", path.display(), e.path(), e.inner()))
                })?
            }
            None => NotifyConfig::default(),
        };
        let file = |kind, path: &PathBuf| Notification {
            kind,
            url_from_env: None,
            url_from_file: Some(path.display().to_string()),
        };
        if let Some(p) = &self.notify_slack_url_file {
            cfg.sinks.push(file(NotificationKind::Slack, p));
        }
        if let Some(p) = &self.notify_json_url_file {
            cfg.sinks.push(file(NotificationKind::Json, p));
        }
        for (var, kind) in [
            ("SLUICE_NOTIFY_SLACK_URL", NotificationKind::Slack),
            ("SLUICE_NOTIFY_JSON_URL", NotificationKind::Json),
        ] {
            if std::env::var_os(var).is_some() {
                cfg.sinks.push(Notification {
                    kind,
                    url_from_env: Some(var.into()),
                    url_from_file: None,
                });
            }
        }
        if self.ui_base_url.is_some() {
            cfg.ui_base_url.clone_from(&self.ui_base_url);
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_are_strict_and_flags_add_sinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("notify.yaml");
        std::fs::write(
            &cfg,
            "sinks:\n  - {type: slack, urlFromFile: /run/slack}\nuiBaseUrl: https://ui\n",
        )
        .expect("write");
        let args = NotifyArgs {
            notify_config: Some(cfg.clone()),
            notify_json_url_file: Some("/run/json".into()),
            ..Default::default()
        };
        let c = args.config().expect("config");
        assert_eq!(c.sinks.len(), 2);
        assert_eq!(c.sinks[1].kind, NotificationKind::Json);
        assert_eq!(c.ui_base_url.as_deref(), Some("https://ui"));

        std::fs::write(&cfg, "sinks:\n  - {type: slack, url: https://inline}\n").expect("write");
        let err = args.config().expect_err("inline url rejected").to_string();
        assert!(err.contains("sinks[0]") && err.contains("url"), "{err}");
    }
}
