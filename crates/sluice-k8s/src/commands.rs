//! Commands from outside through the Rollout itself: the annotation `sluice.dev/command`.
//!
//! ```sh
//! kubectl annotate rollout reviews sluice.dev/command="promote@$(date +%s)" --overwrite
//! ```
//!
//! Value: a command (`promote`, `pause`, `resume`, `abort`, `retry`, `undo`), optionally
//! followed by `@` and a nonce. The leader reads it, runs it through the engine, writes the
//! status (including a `CommandProcessed` condition whose message is the annotation value),
//! then removes the annotation and sets `sluice.dev/command-ack` to the value.
//!
//! Because the annotation lives on the object, a command survives restarts and failovers and
//! may be written by any replica (the web API) or by `kubectl`. A crash between the status
//! write and the clearing re-reads the same value: with a nonce it is recognised through the
//! condition and only cleared (exactly once); without a nonce it runs again (at least once), so
//! tools should always add one — `sluice`'s own backend does.

use kube::api::{Api, Patch};
use serde_json::json;

use super::{names, retry_on_conflict};
use sluice_core::engine::Command;
use sluice_core::spec::{Condition, Rollout, RolloutStatus};

#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// The annotation value as written.
    pub raw: String,
    /// The parsed command, or why it could not be parsed.
    pub command: Result<Command, String>,
}

/// The command annotation of `rollout`, if any.
pub fn pending(rollout: &Rollout) -> Option<Pending> {
    let raw = rollout
        .metadata
        .annotations
        .as_ref()?
        .get(names::COMMAND_ANNOTATION)?
        .clone();
    let verb = raw.split('@').next().unwrap_or_default().trim();
    let command = verb
        .parse::<Command>()
        .map_err(|e| format!("annotation {}: {e}", names::COMMAND_ANNOTATION));
    Some(Pending { raw, command })
}

/// The status already carries this command's effect (it has a nonce and the last processed
/// command condition names it).
pub fn already_processed(status: &RolloutStatus, raw: &str) -> bool {
    raw.contains('@')
        && status
            .conditions
            .iter()
            .any(|c| c.kind == names::COMMAND_CONDITION && c.message == raw)
}

/// The condition recording that `raw` was processed.
pub fn processed_condition(
    raw: &str,
    outcome: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Condition {
    Condition {
        kind: names::COMMAND_CONDITION.into(),
        status: "True".into(),
        reason: outcome.into(),
        message: raw.into(),
        last_transition_time: now,
    }
}

/// Annotation value for `command` with a fresh nonce.
pub fn annotation_value(command: Command, now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}@{}-{:04x}",
        command.as_str(),
        now.timestamp_millis(),
        rand::random::<u16>()
    )
}

/// The JSON merge patch that requests a command (`value` from [`annotation_value`]). With
/// `resource_version`, the write fails with 409 if the Rollout changed since it was read (so
/// the caller's `command_allowed` check was made against the current status).
pub fn request_patch(value: &str, resource_version: Option<&str>) -> serde_json::Value {
    let mut patch = json!({"metadata": {"annotations": {names::COMMAND_ANNOTATION: value}}});
    if let Some(rv) = resource_version {
        patch["metadata"]["resourceVersion"] = json!(rv);
    }
    patch
}

/// Removes the command annotation if it still says `raw`, and records the acknowledgement.
/// The resourceVersion precondition makes a newer command written meanwhile survive: on 409
/// we re-read, and only clear if the value is still ours.
pub async fn clear(api: &Api<Rollout>, name: &str, raw: &str) -> Result<(), kube::Error> {
    retry_on_conflict("clear command", || async {
        let current = api.get(name).await?;
        let still_ours = current
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::COMMAND_ANNOTATION))
            .is_some_and(|v| v == raw);
        if !still_ours {
            return Ok(());
        }
        let patch = json!({"metadata": {
            "resourceVersion": current.metadata.resource_version,
            "annotations": {
                names::COMMAND_ANNOTATION: null,
                names::COMMAND_ACK_ANNOTATION: raw,
            }
        }});
        api.patch(name, &super::names::patch_params(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout_with(annotation: Option<&str>) -> Rollout {
        let mut r: Rollout = serde_yaml::from_str(
            "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {name: r, namespace: ns}\nspec: {service: {port: 80}, strategy: {canary: {steps: [10]}}}\n",
        )
        .expect("valid rollout");
        if let Some(a) = annotation {
            r.metadata.annotations =
                Some([(names::COMMAND_ANNOTATION.to_string(), a.to_string())].into());
        }
        r
    }

    #[test]
    fn parses_command_with_and_without_nonce() {
        assert_eq!(pending(&rollout_with(None)), None);
        let p = pending(&rollout_with(Some("promote"))).expect("pending");
        assert_eq!(p.command, Ok(Command::Promote));
        let p = pending(&rollout_with(Some("abort@1700000000"))).expect("pending");
        assert_eq!(p.command, Ok(Command::Abort));
        assert_eq!(p.raw, "abort@1700000000");
        let p = pending(&rollout_with(Some("promot"))).expect("pending");
        assert!(p.command.unwrap_err().contains("unknown command"));
    }

    #[test]
    fn only_nonced_commands_are_deduplicated() {
        let now = chrono::Utc::now();
        let mut status = RolloutStatus::default();
        status
            .conditions
            .push(processed_condition("promote@1", "Accepted", now));
        assert!(already_processed(&status, "promote@1"));
        assert!(!already_processed(&status, "promote@2"));
        status
            .conditions
            .push(processed_condition("promote", "Accepted", now));
        assert!(!already_processed(&status, "promote"));
        let v = annotation_value(Command::Pause, now);
        assert!(v.starts_with("pause@"));
    }
}
