//! Process exit codes of `status`, `wait` and the command verbs (documented in docs/ci.md;
//! `tests/cli_wait.rs` checks the numbers).

use super::client::ClientError;

/// The awaited state was reached / the command was accepted.
pub const OK: u8 = 0;
/// Anything unexpected (a server error, an invalid answer).
pub const ERROR: u8 = 1;
/// The rollout failed and was rolled back (analysis, webhook, or undone).
pub const ROLLED_BACK: u8 = 2;
/// The rollout was aborted.
pub const ABORTED: u8 = 3;
/// `wait` timed out.
pub const TIMEOUT: u8 = 4;
/// The server (sluice's, or the Kubernetes API server with `--kube`) cannot be used:
/// unreachable (30 s in a row for `wait`), the token or credentials were refused (401/403),
/// or the rollout does not exist (404).
pub const UNREACHABLE: u8 = 5;
/// `wait`: the awaited state can no longer come (e.g. succeeded while waiting for paused).
pub const UNREACHABLE_STATE: u8 = 6;
/// A command does not apply in the rollout's phase (409).
pub const REFUSED: u8 = 7;
/// Bad command-line arguments.
pub const USAGE: u8 = 64;

pub fn for_error(e: &ClientError) -> u8 {
    match e {
        ClientError::BadServer(..) | ClientError::Kubeconfig(_) => USAGE,
        ClientError::Unreachable { .. } | ClientError::Auth { .. } | ClientError::NotFound(_) => {
            UNREACHABLE
        }
        ClientError::Conflict(_) => REFUSED,
        ClientError::Server { .. } | ClientError::Other(_) => ERROR,
    }
}
