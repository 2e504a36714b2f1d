//! The CLI verbs against the cluster itself, with the user's kubeconfig (`--kube`,
//! `--context`, `--kubeconfig`; docs/ci.md): no sluice server in between.
//!
//! Reads are the Rollout and its status subresource. Commands are what `kubectl annotate`
//! would write (see `sluice_k8s::commands`): the annotation `sluice.dev/command:
//! <verb>@<nonce>`, after the same `engine::command_allowed` check the HTTP API makes. The
//! patch carries the resourceVersion that check was made against, so a Rollout that changed
//! meanwhile is re-read and re-checked instead of being sent a stale command. Then, for a
//! short while, the CLI watches for the controller's acknowledgement (the `CommandProcessed`
//! condition naming our nonce); no acknowledgement is reported, not treated as an error: the
//! command stays on the object and runs when a controller gets to it.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use sluice_core::backend::RolloutView;
use sluice_core::engine::{self, Command};
use sluice_core::spec::{Rollout, RolloutStatus};
use sluice_k8s::backend::rollout_view;
use sluice_k8s::{commands, is_conflict, names, objects};

use super::client::{ClientError, RolloutClient, error_chain};

/// `wait --revision target`: the revision of the pod template the target Deployment has now,
/// computed as the controller does (revisions here are pod-template hashes, not versions).
pub const TARGET_REVISION: &str = "target";

/// Attempts when the Rollout changes between our check and our write.
const WRITE_ATTEMPTS: u32 = 4;
/// How often the acknowledgement is looked for.
const ACK_POLL: Duration = Duration::from_millis(250);

pub struct KubeClient {
    client: kube::Client,
    /// "the Kubernetes API server at URL", for error messages.
    server: String,
    namespace: String,
    ack_timeout: Duration,
}

/// How to find the cluster: `kubeconfig` (else `KUBECONFIG` / `~/.kube/config`, or the
/// in-cluster service account), `context` (else the current context).
pub struct KubeTarget<'a> {
    pub kubeconfig: Option<&'a Path>,
    pub context: Option<&'a str>,
}

/// What the controller made of the command we wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Processed: the condition's reason (`Accepted`, `Rejected`, `Invalid`).
    Processed(String),
    /// Not (yet) processed.
    Pending,
}

/// Whether `value` (our annotation, with its nonce) was processed, from the Rollout read back.
pub fn ack_of(
    status: &RolloutStatus,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    value: &str,
) -> Ack {
    if let Some(c) = status
        .conditions
        .iter()
        .find(|c| c.kind == names::COMMAND_CONDITION && c.message == value)
    {
        return Ack::Processed(c.reason.clone());
    }
    // The condition is written first; the ack annotation alone means a newer command's
    // condition replaced ours after it ran.
    let acked = annotations
        .and_then(|a| a.get(names::COMMAND_ACK_ANNOTATION))
        .is_some_and(|v| v == value);
    if acked {
        Ack::Processed("Accepted".into())
    } else {
        Ack::Pending
    }
}

impl KubeClient {
    pub fn new(client: kube::Client, server: String, namespace: String) -> Self {
        KubeClient {
            client,
            server,
            namespace,
            ack_timeout: Duration::from_secs(10),
        }
    }

    /// How long `command` waits for the controller's acknowledgement (zero: not at all).
    pub fn with_ack_timeout(mut self, t: Duration) -> Self {
        self.ack_timeout = t;
        self
    }

    pub async fn connect(target: &KubeTarget<'_>) -> Result<Self, ClientError> {
        let options = KubeConfigOptions {
            context: target.context.map(str::to_string),
            ..Default::default()
        };
        // kube's configuration errors already include their causes in their text.
        let bad = ClientError::Kubeconfig;
        let mut config = match (target.kubeconfig, target.context) {
            (Some(path), _) => {
                let kc = Kubeconfig::read_from(path)
                    .map_err(|e| bad(format!("{}: {e}", path.display())))?;
                Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| bad(format!("{}: {e}", path.display())))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| bad(e.to_string()))?,
            (None, None) => Config::infer().await.map_err(|e| bad(e.to_string()))?,
        };
        // A CLI in a pipeline should fail, not hang, when the API server does not answer.
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(30));
        let server = format!("the Kubernetes API server at {}", config.cluster_url);
        let namespace = config.default_namespace.clone();
        let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        Ok(Self::new(client, server, namespace))
    }

    fn api(&self, ns: &str) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn error(&self, e: kube::Error, ns: &str, name: &str) -> ClientError {
        match e {
            kube::Error::Api(s) => match s.code {
                401 | 403 => ClientError::Auth {
                    status: s.code,
                    message: s.message,
                },
                404 => ClientError::NotFound(format!(
                    "rollout {ns}/{name} not found in the cluster ({})",
                    s.message
                )),
                409 => ClientError::Conflict(s.message),
                // Overloaded or restarting: transient, like a refused connection (`wait`
                // keeps trying for a while).
                429 | 502 | 503 | 504 => ClientError::Unreachable {
                    server: self.server.clone(),
                    detail: format!("{} {}", s.code, s.message),
                },
                code => ClientError::Server {
                    status: code,
                    message: s.message,
                },
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => {
                ClientError::Unreachable {
                    server: self.server.clone(),
                    detail: error_chain(&e),
                }
            }
            other => ClientError::Other(format!("rollout {ns}/{name}: {}", error_chain(&other))),
        }
    }

    async fn fetch(&self, ns: &str, name: &str) -> Result<Rollout, ClientError> {
        self.api(ns)
            .get(name)
            .await
            .map_err(|e| self.error(e, ns, name))
    }

    /// Checks and writes the command annotation; Ok: the value written.
    async fn request(&self, ns: &str, name: &str, cmd: Command) -> Result<String, ClientError> {
        let mut attempt = 1;
        loop {
            let r = self.fetch(ns, name).await?;
            engine::command_allowed(&r.status.clone().unwrap_or_default(), cmd)
                .map_err(|refusal| ClientError::Conflict(refusal.to_string()))?;
            let value = commands::annotation_value(cmd, chrono::Utc::now());
            let patch = commands::request_patch(&value, r.metadata.resource_version.as_deref());
            match self
                .api(ns)
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(value),
                // Changed since we read it (often the controller's own status write): check again.
                Err(e) if is_conflict(&e) && attempt < WRITE_ATTEMPTS => attempt += 1,
                Err(e) => return Err(self.error(e, ns, name)),
            }
        }
    }

    async fn await_ack(&self, ns: &str, name: &str, value: &str) -> Ack {
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        loop {
            // A failed read here says nothing about the command, which is written: keep trying.
            if let Ok(r) = self.fetch(ns, name).await {
                let ack = ack_of(
                    &r.status.clone().unwrap_or_default(),
                    r.metadata.annotations.as_ref(),
                    value,
                );
                if ack != Ack::Pending {
                    return ack;
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ack::Pending;
            }
            tokio::time::sleep(ACK_POLL.min(deadline - now)).await;
        }
    }
}

#[async_trait::async_trait]
impl RolloutClient for KubeClient {
    async fn list(&self, namespace: Option<&str>) -> Result<Vec<RolloutView>, ClientError> {
        let api: Api<Rollout> = match namespace {
            Some(ns) => self.api(ns),
            None => Api::all(self.client.clone()),
        };
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| self.error(e, namespace.unwrap_or("*"), "*"))?;
        let mut out: Vec<RolloutView> = list.items.into_iter().map(rollout_view).collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(out)
    }

    async fn get(&self, ns: &str, name: &str) -> Result<RolloutView, ClientError> {
        Ok(rollout_view(self.fetch(ns, name).await?))
    }

    /// `reason` has nowhere to go on the object (the controller does not read one); it is
    /// ignored in this mode.
    async fn command(
        &self,
        ns: &str,
        name: &str,
        cmd: Command,
        _reason: Option<String>,
    ) -> Result<String, ClientError> {
        let value = self.request(ns, name, cmd).await?;
        let written = format!(
            "{} requested ({}={value})",
            cmd.as_str(),
            names::COMMAND_ANNOTATION
        );
        if self.ack_timeout.is_zero() {
            return Ok(written);
        }
        match self.await_ack(ns, name, &value).await {
            Ack::Processed(reason) if reason == "Accepted" => {
                Ok(format!("{written}; accepted by the controller"))
            }
            // The rollout moved on between our check and the controller's: same as a 409.
            Ack::Processed(reason) => Err(ClientError::Conflict(format!(
                "{written}, but the controller did not run it ({reason}): the rollout's phase \
                 changed meanwhile; see `sluice status {ns}/{name}`"
            ))),
            Ack::Pending => Ok(format!(
                "{written}; not yet acknowledged by the controller after {:?} (it runs when \
                 the controller processes the Rollout)",
                self.ack_timeout
            )),
        }
    }

    async fn resolve_revision(
        &self,
        ns: &str,
        name: &str,
        revision: &str,
    ) -> Result<String, ClientError> {
        if revision != TARGET_REVISION {
            return Ok(revision.to_string());
        }
        let r = self.fetch(ns, name).await?;
        let Some(target) = r.spec.target_ref else {
            return Err(ClientError::Other(format!(
                "rollout {ns}/{name} has no spec.targetRef: --revision {TARGET_REVISION} needs one"
            )));
        };
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let d = deployments
            .get(&target.name)
            .await
            .map_err(|e| match self.error(e, ns, name) {
                ClientError::NotFound(_) => ClientError::NotFound(format!(
                    "target Deployment {ns}/{} (spec.targetRef of {name}) not found",
                    target.name
                )),
                other => other,
            })?;
        Ok(objects::target_revision(&d))
    }

    fn default_namespace(&self) -> &str {
        &self.namespace
    }

    fn lists_all_by_default(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_k8s::commands::processed_condition;

    #[test]
    fn acknowledgement_is_our_nonce_only() {
        let now = chrono::Utc::now();
        let mut status = RolloutStatus::default();
        assert_eq!(ack_of(&status, None, "promote@1-aaaa"), Ack::Pending);
        status
            .conditions
            .push(processed_condition("promote@0-ffff", "Accepted", now));
        assert_eq!(ack_of(&status, None, "promote@1-aaaa"), Ack::Pending);
        status.conditions[0] = processed_condition("promote@1-aaaa", "Rejected", now);
        assert_eq!(
            ack_of(&status, None, "promote@1-aaaa"),
            Ack::Processed("Rejected".into())
        );
        let acked = [(
            names::COMMAND_ACK_ANNOTATION.to_string(),
            "pause@2-bbbb".to_string(),
        )]
        .into();
        assert_eq!(
            ack_of(&RolloutStatus::default(), Some(&acked), "pause@2-bbbb"),
            Ack::Processed("Accepted".into())
        );
        assert_eq!(
            ack_of(&RolloutStatus::default(), Some(&acked), "pause@3-cccc"),
            Ack::Pending
        );
    }
}
