//! HTTP client of the sluice API, for the CLI (people and CI).

use std::time::Duration;

use sluice_api::{CommandAccepted, CommandRequest, ErrorBody};
use sluice_core::backend::RolloutView;
use sluice_core::engine::Command;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server address {0:?}: {1}")]
    BadServer(String, String),
    /// `server` says what it is: "the sluice server at URL", "the Kubernetes API server at URL".
    #[error("cannot reach {server}: {detail}")]
    Unreachable { server: String, detail: String },
    /// 401/403: no token, wrong token, or mutating calls disabled on the server.
    #[error("refused by the server ({status}): {message}")]
    Auth { status: u16, message: String },
    #[error("{0}")]
    NotFound(String),
    /// 409: the command does not apply in the rollout's phase.
    #[error("{0}")]
    Conflict(String),
    #[error("the server answered {status}: {message}")]
    Server { status: u16, message: String },
    /// Kubernetes mode: no usable kubeconfig (or in-cluster configuration).
    #[error("cannot use the kubeconfig: {0}")]
    Kubeconfig(String),
    /// Anything else that is not the rollout's fault (e.g. an object that does not parse).
    #[error("{0}")]
    Other(String),
}

/// Where the CLI's verbs read rollouts and send commands: a sluice server over HTTP
/// ([`Client`]) or the cluster through the user's kubeconfig
/// ([`super::cluster::KubeClient`]). `status`, `wait` and the command verbs exist once, over
/// this trait.
#[async_trait::async_trait]
pub trait RolloutClient: Send + Sync {
    /// Every rollout, or those of `namespace`.
    async fn list(&self, namespace: Option<&str>) -> Result<Vec<RolloutView>, ClientError>;
    async fn get(&self, ns: &str, name: &str) -> Result<RolloutView, ClientError>;
    /// Sends `cmd`; Ok: what to tell the user. Err(Conflict) when it does not apply now.
    async fn command(
        &self,
        ns: &str,
        name: &str,
        cmd: Command,
        reason: Option<String>,
    ) -> Result<String, ClientError>;
    /// The revision `wait --revision` compares with. As given over HTTP; the cluster client
    /// also understands `target` (see [`super::cluster::TARGET_REVISION`]).
    async fn resolve_revision(
        &self,
        _ns: &str,
        _name: &str,
        revision: &str,
    ) -> Result<String, ClientError> {
        Ok(revision.to_string())
    }
    /// The namespace of a NAME given without one (the kubeconfig context's for the cluster).
    fn default_namespace(&self) -> &str;
    /// Whether a listing without `-n` covers every namespace (the HTTP API) or only
    /// [`Self::default_namespace`] (kubectl's habit).
    fn lists_all_by_default(&self) -> bool;
}

#[async_trait::async_trait]
impl RolloutClient for Client {
    async fn list(&self, namespace: Option<&str>) -> Result<Vec<RolloutView>, ClientError> {
        let all = Client::list(self).await?;
        Ok(all
            .into_iter()
            .filter(|v| namespace.is_none_or(|ns| v.namespace == ns))
            .collect())
    }
    async fn get(&self, ns: &str, name: &str) -> Result<RolloutView, ClientError> {
        Client::get(self, ns, name).await
    }
    async fn command(
        &self,
        ns: &str,
        name: &str,
        cmd: Command,
        reason: Option<String>,
    ) -> Result<String, ClientError> {
        Ok(Client::command(self, ns, name, cmd, reason).await?.message)
    }
    fn default_namespace(&self) -> &str {
        "default"
    }
    fn lists_all_by_default(&self) -> bool {
        true
    }
}

pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    token: Option<String>,
}

/// `name` or `namespace/name`; the namespace defaults to `default_ns`.
pub fn parse_name_in(input: &str, default_ns: &str) -> Result<(String, String), String> {
    let (ns, name) = match input.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (default_ns, input),
    };
    if ns.is_empty() || name.is_empty() || name.contains('/') {
        return Err(format!(
            "invalid rollout {input:?}: expected NAME or NAMESPACE/NAME"
        ));
    }
    Ok((ns.to_string(), name.to_string()))
}

impl Client {
    /// `server`: `http://host:port` (a bare `host:port` means http). `token`: for commands.
    pub fn new(server: &str, token: Option<String>) -> Result<Self, ClientError> {
        let with_scheme = if server.contains("://") {
            server.to_string()
        } else {
            format!("http://{server}")
        };
        let base = url::Url::parse(&with_scheme)
            .map_err(|e| ClientError::BadServer(server.to_string(), e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::BadServer(
                server.to_string(),
                "only http and https are supported".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::BadServer(server.to_string(), e.to_string()))?;
        Ok(Client {
            http,
            base,
            token: token
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        })
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut u = self.base.clone();
        if let Ok(mut path) = u.path_segments_mut() {
            // Segments are percent-encoded here, so a name can never change the path shape.
            path.pop_if_empty().extend(segments);
        }
        u
    }

    pub async fn list(&self) -> Result<Vec<RolloutView>, ClientError> {
        self.get_json(&["api", "v1", "rollouts"]).await
    }

    pub async fn get(&self, ns: &str, name: &str) -> Result<RolloutView, ClientError> {
        self.get_json(&["api", "v1", "rollouts", ns, name]).await
    }

    pub async fn command(
        &self,
        ns: &str,
        name: &str,
        cmd: Command,
        reason: Option<String>,
    ) -> Result<CommandAccepted, ClientError> {
        let url = self.url(&["api", "v1", "rollouts", ns, name, cmd.as_str()]);
        let mut req = self.http.post(url).json(&CommandRequest { reason });
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        self.decode(resp).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<T, ClientError> {
        let resp = self
            .http
            .get(self.url(segments))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.decode(resp).await
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        // Without the URL: it is ours, and the error text repeats it.
        ClientError::Unreachable {
            server: format!("the sluice server at {}", self.base),
            detail: error_chain(&e.without_url()),
        }
    }

    async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        resp: reqwest::Response,
    ) -> Result<T, ClientError> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Server {
                status: status.as_u16(),
                message: format!("unexpected response: {e}"),
            });
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_string());
        Err(match status.as_u16() {
            401 | 403 => ClientError::Auth {
                status: status.as_u16(),
                message,
            },
            404 => ClientError::NotFound(message),
            409 => ClientError::Conflict(message),
            s => ClientError::Server { status: s, message },
        })
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        // Some errors (kube's) already print their source: don't say it twice.
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_name_in("web", "default").unwrap(),
            ("default".into(), "web".into())
        );
        assert_eq!(
            parse_name_in("shop/web", "default").unwrap(),
            ("shop".into(), "web".into())
        );
        assert_eq!(
            parse_name_in("web", "bookinfo").unwrap(),
            ("bookinfo".into(), "web".into())
        );
        for bad in ["", "/web", "shop/", "a/b/c"] {
            assert!(parse_name_in(bad, "default").is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_encode_segments() {
        let c = Client::new("127.0.0.1:7474", None).unwrap();
        assert_eq!(
            c.url(&["api", "v1", "rollouts", "default", "a b?"])
                .as_str(),
            "http://127.0.0.1:7474/api/v1/rollouts/default/a%20b%3F"
        );
        let c = Client::new("https://sluice.example/prefix/", None).unwrap();
        assert_eq!(
            c.url(&["api"]).as_str(),
            "https://sluice.example/prefix/api"
        );
        assert!(Client::new("ftp://x", None).is_err());
    }
}
