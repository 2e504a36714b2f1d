//! A small client for Envoy's admin interface (127.0.0.1 only): readiness, the versions of
//! the CDS/RDS config Envoy applied, and update counters.
//!
//! Confirmation uses `/stats?filter=...`: `cluster_manager.cds.version_text` and
//! `http.sluice.rds.sluice.version_text` carry the `version_info` of the last file Envoy
//! *accepted*; `update_rejected` moves when it refused one. That is cheaper than
//! `/config_dump` (a few hundred bytes instead of the whole config), which matters when a
//! benchmark polls every millisecond.

use std::time::{Duration, Instant};

use crate::translate::{ROUTE_CONFIG_NAME, STAT_PREFIX};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("Envoy admin {url}: {reason}")]
    Http { url: String, reason: String },
    // No counters in the text: it is the cause shown in the rollout's condition and compared
    // between retries (one notification per distinct cause). File-based xDS reports no reason
    // through the admin API (not even in /config_dump on Envoy 1.40): Envoy's log has it.
    #[error(
        "Envoy rejected {what} version {version} (its update_rejected counter moved; Envoy's log says why)"
    )]
    Rejected {
        what: &'static str,
        version: String,
        before: u64,
        after: u64,
    },
    #[error(
        "Envoy did not apply {what} version {version} within {}s (it serves {current:?})",
        waited.as_secs()
    )]
    Timeout {
        what: &'static str,
        version: String,
        waited: Duration,
        current: Option<String>,
    },
}

/// Which xDS resource a version refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Clusters,
    Routes,
}

impl Resource {
    fn what(self) -> &'static str {
        match self {
            Resource::Clusters => "clusters (cds)",
            Resource::Routes => "routes (rds)",
        }
    }
    fn stat(self, suffix: &str) -> String {
        match self {
            Resource::Clusters => format!("cluster_manager.cds.{suffix}"),
            Resource::Routes => format!("http.{STAT_PREFIX}.rds.{ROUTE_CONFIG_NAME}.{suffix}"),
        }
    }
}

/// What `/stats` says about one resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceState {
    pub version: Option<String>,
    pub rejected: u64,
    /// CDS only: clusters still warming (STRICT_DNS before its first resolution).
    pub warming: u64,
}

#[derive(Clone, Debug)]
pub struct EnvoyAdmin {
    base: String,
    http: reqwest::Client,
}

impl EnvoyAdmin {
    pub fn new(admin_port: u16) -> Result<Self, AdminError> {
        Self::with_base(format!("http://127.0.0.1:{admin_port}"))
    }

    pub fn with_base(base: String) -> Result<Self, AdminError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| AdminError::Http {
                url: base.clone(),
                reason: format!("building the HTTP client: {e}"),
            })?;
        Ok(EnvoyAdmin {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str) -> Result<(u16, String), AdminError> {
        let url = format!("{}{path}", self.base);
        let err = |e: reqwest::Error| AdminError::Http {
            url: url.clone(),
            reason: e.to_string(),
        };
        let resp = self.http.get(&url).send().await.map_err(err)?;
        let code = resp.status().as_u16();
        let body = resp.text().await.map_err(err)?;
        Ok((code, body))
    }

    /// `/ready` answers 200 `LIVE` once the server is initialized (initial xDS loaded).
    pub async fn ready(&self) -> bool {
        matches!(self.get("/ready").await, Ok((200, body)) if body.trim() == "LIVE")
    }

    /// Every stat whose name matches the regex `filter`, as name → raw value text.
    pub async fn stats(&self, filter: &str) -> Result<Vec<(String, String)>, AdminError> {
        let (code, body) = self
            .get(&format!("/stats?filter={}", urlencode(filter)))
            .await?;
        if code != 200 {
            return Err(AdminError::Http {
                url: format!("{}/stats", self.base),
                reason: format!("HTTP {code}: {}", body.trim()),
            });
        }
        Ok(body
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// Counter or gauge value (None when absent or not a number).
    pub async fn counter(&self, name: &str) -> Result<Option<u64>, AdminError> {
        let stats = self.stats(&format!("^{}$", regex::escape(name))).await?;
        Ok(stats
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok()))
    }

    pub async fn state(&self, resource: Resource) -> Result<ResourceState, AdminError> {
        let version = resource.stat("version_text");
        let rejected = resource.stat("update_rejected");
        let warming = "cluster_manager.warming_clusters";
        let filter = format!(
            "^({}|{}|{})$",
            regex::escape(&version),
            regex::escape(&rejected),
            regex::escape(warming)
        );
        let mut out = ResourceState::default();
        for (k, v) in self.stats(&filter).await? {
            if k == version {
                out.version = Some(v.trim_matches('"').to_string());
            } else if k == rejected {
                out.rejected = v.parse().unwrap_or(0);
            } else if k == warming && resource == Resource::Clusters {
                out.warming = v.parse().unwrap_or(0);
            }
        }
        Ok(out)
    }

    /// Poll until Envoy serves `version` of `resource`; fail fast when its `update_rejected`
    /// counter moves past `rejected_before`. Returns how long it waited.
    pub async fn wait_applied(
        &self,
        resource: Resource,
        version: &str,
        rejected_before: u64,
        timeout: Duration,
        poll: Duration,
    ) -> Result<Duration, AdminError> {
        let start = Instant::now();
        let mut current = None;
        loop {
            match self.state(resource).await {
                Ok(s) => {
                    if s.version.as_deref() == Some(version) && s.warming == 0 {
                        return Ok(start.elapsed());
                    }
                    if s.rejected > rejected_before && s.version.as_deref() != Some(version) {
                        return Err(AdminError::Rejected {
                            what: resource.what(),
                            version: version.to_string(),
                            before: rejected_before,
                            after: s.rejected,
                        });
                    }
                    current = s.version;
                }
                Err(e) if start.elapsed() >= timeout => return Err(e),
                Err(_) => {}
            }
            if start.elapsed() >= timeout {
                return Err(AdminError::Timeout {
                    what: resource.what(),
                    version: version.to_string(),
                    waited: start.elapsed(),
                    current,
                });
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// Percent-encode a query value (the filters are regexes: `^ $ | ( )` and friends).
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencode_escapes_regex_characters() {
        assert_eq!(urlencode("^a.b|c$"), "%5Ea.b%7Cc%24");
    }

    #[test]
    fn stat_names_follow_the_listener_prefix() {
        assert_eq!(
            Resource::Routes.stat("version_text"),
            "http.sluice.rds.sluice.version_text"
        );
        assert_eq!(
            Resource::Clusters.stat("update_rejected"),
            "cluster_manager.cds.update_rejected"
        );
    }
}
