//! `sluice wait`: poll a rollout until it reaches a state, with exit codes CI can branch on.
//!
//! The decision ([`judge`]) is pure; the loop around it only polls, prints progress and keeps
//! time. See [`super::exit`] for the codes.

use std::time::Duration;

use tokio::time::Instant;

use super::client::{ClientError, RolloutClient};
use super::exit;
use sluice_core::spec::{Phase, Reason, RolloutStatus};

/// What to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitFor {
    /// The new revision is stable and takes all traffic.
    Succeeded,
    /// The rollout is paused for any reason (the manual promotion gate, `pause`, inconclusive
    /// analysis, a webhook gate): the moment CI runs its own checks.
    Paused,
    /// Promotion has started (Promoting) or finished (Succeeded).
    Promoted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Reached: exit 0.
    Reached,
    /// Not yet.
    Waiting,
    /// Stop with this exit code and message.
    Stop(u8, String),
}

/// Where the rollout stands with respect to `target`. With `revision`, only a status about
/// that revision counts (CI passes the version it just deployed, so an earlier rollout's
/// outcome is never mistaken for this one's).
pub fn judge(s: &RolloutStatus, target: WaitFor, revision: Option<&str>) -> Judgement {
    let about_rev = |r: &Option<String>| revision.is_none_or(|want| r.as_deref() == Some(want));
    // The revision already serves all traffic: done, for a rollout or without one.
    let stable_is_target = matches!(s.phase, Phase::Succeeded | Phase::Idle)
        && revision.is_some()
        && about_rev(&s.stable_revision);
    if stable_is_target || (s.phase == Phase::Succeeded && revision.is_none()) {
        return match target {
            WaitFor::Succeeded | WaitFor::Promoted => Judgement::Reached,
            WaitFor::Paused => Judgement::Stop(
                exit::UNREACHABLE_STATE,
                "the rollout succeeded without pausing".into(),
            ),
        };
    }
    if !about_rev(&s.canary_revision) {
        return Judgement::Waiting;
    }
    match s.phase {
        Phase::Failed => {
            let why = s.message.clone().unwrap_or_else(|| "rolled back".into());
            if s.reason == Some(Reason::Aborted) {
                Judgement::Stop(exit::ABORTED, format!("aborted: {why}"))
            } else {
                Judgement::Stop(exit::ROLLED_BACK, format!("failed: {why}"))
            }
        }
        Phase::Paused if target == WaitFor::Paused => Judgement::Reached,
        Phase::Promoting if target == WaitFor::Promoted => Judgement::Reached,
        _ => Judgement::Waiting,
    }
}

/// Consecutive connection failures tolerated (a restarting server) before giving up.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(30);

pub async fn run(
    client: &dyn RolloutClient,
    ns: &str,
    name: &str,
    target: WaitFor,
    revision: Option<&str>,
    timeout: Duration,
    interval: Duration,
) -> u8 {
    let key = format!("{ns}/{name}");
    let deadline = Instant::now() + timeout;
    let mut unreachable_since: Option<Instant> = None;
    let mut last_line = String::new();
    loop {
        match client.get(ns, name).await {
            Ok(view) => {
                unreachable_since = None;
                let line = super::render::one_line(&view);
                if line != last_line {
                    eprintln!("{line}");
                    last_line = line;
                }
                match judge(&view.status, target, revision) {
                    Judgement::Reached => {
                        println!("{key}: {} ({:?} reached)", view.status.phase, target);
                        return exit::OK;
                    }
                    Judgement::Stop(code, msg) => {
                        eprintln!("{key}: {msg}");
                        return code;
                    }
                    Judgement::Waiting => {}
                }
            }
            Err(ClientError::Unreachable { server, detail }) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= UNREACHABLE_GRACE {
                    eprintln!("error: cannot reach {server} for {UNREACHABLE_GRACE:?}: {detail}");
                    return exit::UNREACHABLE;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::for_error(&e);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            eprintln!(
                "{key}: timed out after {timeout:?} waiting for {}",
                format!("{target:?}").to_lowercase()
            );
            return exit::TIMEOUT;
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(
        phase: Phase,
        reason: Option<Reason>,
        stable: &str,
        canary: Option<&str>,
    ) -> RolloutStatus {
        RolloutStatus {
            phase,
            reason,
            stable_revision: Some(stable.into()),
            canary_revision: canary.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn table() {
        use Judgement::*;
        use WaitFor::*;
        let gate = st(
            Phase::Paused,
            Some(Reason::AwaitingPromotion),
            "v1",
            Some("v2"),
        );
        let progressing = st(Phase::Progressing, None, "v1", Some("v2"));
        let done = st(Phase::Succeeded, None, "v2", None);
        let failed = st(
            Phase::Failed,
            Some(Reason::AnalysisFailed),
            "v1",
            Some("v2"),
        );
        let aborted = st(Phase::Failed, Some(Reason::Aborted), "v1", Some("v2"));
        let undone = st(Phase::Failed, Some(Reason::Undone), "v1", Some("v2"));
        let promoting = st(Phase::Promoting, None, "v1", Some("v2"));
        let cases: Vec<(&RolloutStatus, WaitFor, Option<&str>, Judgement)> = vec![
            (&gate, Paused, None, Reached),
            (&gate, Paused, Some("v2"), Reached),
            (&gate, Paused, Some("v3"), Waiting),
            (&gate, Succeeded, None, Waiting),
            (&progressing, Paused, None, Waiting),
            (&progressing, Succeeded, Some("v2"), Waiting),
            (&promoting, Promoted, None, Reached),
            (&promoting, Succeeded, None, Waiting),
            (&done, Succeeded, None, Reached),
            (&done, Succeeded, Some("v2"), Reached),
            (&done, Promoted, Some("v2"), Reached),
            // An earlier rollout's success is not this revision's.
            (&done, Succeeded, Some("v3"), Waiting),
            (
                &done,
                Paused,
                None,
                Stop(exit::UNREACHABLE_STATE, String::new()),
            ),
            (
                &failed,
                Succeeded,
                None,
                Stop(exit::ROLLED_BACK, String::new()),
            ),
            (
                &failed,
                Paused,
                Some("v2"),
                Stop(exit::ROLLED_BACK, String::new()),
            ),
            (&failed, Succeeded, Some("v3"), Waiting),
            (
                &undone,
                Succeeded,
                None,
                Stop(exit::ROLLED_BACK, String::new()),
            ),
            (&aborted, Promoted, None, Stop(exit::ABORTED, String::new())),
        ];
        for (s, target, rev, want) in cases {
            let got = judge(s, target, rev);
            let same = match (&got, &want) {
                (Stop(a, _), Stop(b, _)) => a == b,
                _ => got == want,
            };
            assert!(
                same,
                "{:?}/{:?} for {target:?} rev {rev:?}: got {got:?}, want {want:?}",
                s.phase, s.reason
            );
        }
    }
}
