//! Leader election with a `coordination.k8s.io/v1` Lease.
//!
//! Every replica runs [`run`]: it reads the Lease, takes it when it is free or expired, renews
//! it while it holds it, and publishes "am I the leader" on a watch channel (metrics, probes).
//! Takeover and renewal are `replace` calls carrying the resourceVersion that was read, so two
//! replicas racing for an expired lease cannot both win: the API server answers 409 to the
//! second. Any failure to renew (error, conflict, timeout) drops leadership immediately.
//!
//! ## Fenced writes
//! Writes are gated by a [`Fence`], not by the flag: each successful renewal extends it to
//! *the instant the renewal was sent* + the lease duration − a safety margin, on the monotonic
//! clock. A leader that is frozen (SIGSTOP, a stalled node, a starved runtime) and wakes up
//! finds its fence expired and sends nothing, even before its election loop has run again and
//! noticed anything: by then another replica may hold the Lease. The margin (a fifth of the
//! lease, at least one second) absorbs clock drift between replicas, which compare the
//! Lease's wall-clock renew time with their own clocks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub identity: String,
    /// How long a lease is valid after its last renewal.
    pub duration: Duration,
    /// How often the leader renews (well below `duration`).
    pub renew_every: Duration,
    /// How often followers look whether the lease became free.
    pub retry_every: Duration,
}

impl LeaseConfig {
    pub fn new(name: &str, identity: &str) -> Self {
        LeaseConfig {
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            retry_every: Duration::from_secs(2),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it over.
    Acquire,
    /// Someone else holds a valid lease.
    Wait,
}

/// Pure: what to do with a lease as read at `now`.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == identity => return Decision::Renew,
        None | Some("") => return Decision::Acquire,
        Some(_) => {}
    }
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let last = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    match last {
        Some(t) if t + SignedDuration::from_secs(secs) > now => Decision::Wait,
        _ => Decision::Acquire,
    }
}

fn lease_spec(cfg: &LeaseConfig, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    let renewing = previous.and_then(|p| p.holder_identity.as_deref()) == Some(&cfg.identity);
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(cfg.duration.as_secs()).unwrap_or(15)),
        acquire_time: if renewing {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if renewing || previous.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..Default::default()
    }
}

/// Until when this replica may write, on the monotonic clock (tokio's, so tests can pause it).
#[derive(Clone, Debug, Default)]
pub struct Fence {
    valid_until: Arc<Mutex<Option<tokio::time::Instant>>>,
}

impl Fence {
    pub fn new() -> Self {
        Fence::default()
    }

    /// Whether a write may go out now.
    pub fn holds(&self) -> bool {
        self.until()
            .is_some_and(|t| tokio::time::Instant::now() < t)
    }

    /// The instant writes stop unless the lease is renewed.
    pub fn until(&self) -> Option<tokio::time::Instant> {
        *self.valid_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A renewal sent at `sent` succeeded for a lease of `lease`: writes may go out until
    /// `sent + lease − margin`.
    pub fn renewed(&self, sent: tokio::time::Instant, lease: Duration) {
        let until = sent + lease.saturating_sub(safety_margin(lease));
        *self.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(until);
    }

    /// Leadership lost (or never held): no write from now on.
    pub fn revoke(&self) {
        *self.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// How much earlier than the lease itself the fence closes: a fifth of the lease, at least 1 s.
pub fn safety_margin(lease: Duration) -> Duration {
    (lease / 5).max(Duration::from_secs(1))
}

/// One round that also moves the fence: extends it when the lease is held afterwards, closes it
/// otherwise. Returns whether this replica holds the lease.
pub async fn renew_fenced(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    fence: &Fence,
) -> Result<bool, kube::Error> {
    // Taken before the request: the API server's view of the renewal is no earlier than this.
    let sent = tokio::time::Instant::now();
    let held = try_acquire_or_renew(api, cfg).await;
    match held {
        Ok(true) => fence.renewed(sent, cfg.duration),
        _ => fence.revoke(),
    }
    held
}

/// One round: Ok(true) when we hold the lease afterwards.
pub async fn try_acquire_or_renew(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                ..Default::default()
            },
            spec: Some(lease_spec(cfg, None, now)),
        };
        return match api.create(&super::names::post_params(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
            Err(e) => Err(e),
        };
    };
    if decide(lease.spec.as_ref(), &cfg.identity, now) == Decision::Wait {
        return Ok(false);
    }
    lease.spec = Some(lease_spec(cfg, lease.spec.as_ref(), now));
    // `lease.metadata.resourceVersion` is the one we read: a concurrent writer makes this 409.
    match api
        .replace(&cfg.name, &super::names::post_params(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if super::is_conflict(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// On shutdown: give the lease up so another replica takes over at once instead of waiting
/// for it to expire. Only clears it if we still hold it (resourceVersion-guarded).
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        return Ok(());
    };
    let ours = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        == Some(cfg.identity.as_str());
    if !ours {
        return Ok(());
    }
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.renew_time = None;
    }
    match api
        .replace(&cfg.name, &super::names::post_params(), &lease)
        .await
    {
        Ok(_) => Ok(()),
        // Someone else already changed it: nothing of ours to release.
        Err(e) if super::is_conflict(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs forever, moving `fence` and publishing leadership on `tx`.
pub async fn run(api: Api<Lease>, cfg: LeaseConfig, fence: Fence, tx: watch::Sender<bool>) {
    loop {
        // A renewal slower than two thirds of the lease could land after others saw it
        // expire: treat it as lost.
        let deadline = cfg.duration * 2 / 3;
        let leader = match tokio::time::timeout(deadline, renew_fenced(&api, &cfg, &fence)).await {
            Ok(Ok(held)) => held,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lease renewal failed");
                false
            }
            Err(_) => {
                fence.revoke();
                tracing::warn!("lease renewal timed out");
                false
            }
        };
        let was = tx.send_replace(leader);
        if was != leader {
            tracing::info!(leader, identity = %cfg.identity, "leadership changed");
        }
        tokio::time::sleep(if leader {
            cfg.renew_every
        } else {
            cfg.retry_every
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "a", now), Decision::Acquire);
        assert_eq!(decide(Some(&spec("a", 1)), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&spec("b", 1)), "a", now), Decision::Wait);
        assert_eq!(decide(Some(&spec("b", 60)), "a", now), Decision::Acquire);
        assert_eq!(decide(Some(&spec("", 1)), "a", now), Decision::Acquire);
    }

    /// The fence closes by itself when renewals stop: no flag has to be cleared for a frozen
    /// leader to stop writing.
    #[tokio::test(start_paused = true)]
    async fn the_fence_closes_when_renewals_stop() {
        let fence = Fence::new();
        assert!(!fence.holds(), "closed until a renewal succeeds");
        let lease = Duration::from_secs(15);
        fence.renewed(tokio::time::Instant::now(), lease);
        assert!(fence.holds());
        tokio::time::advance(lease - safety_margin(lease) - Duration::from_millis(1)).await;
        assert!(fence.holds(), "just inside the lease minus the margin");
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!fence.holds(), "closed before the lease expires for others");
        fence.renewed(tokio::time::Instant::now(), lease);
        fence.revoke();
        assert!(!fence.holds());
    }

    #[test]
    fn takeover_counts_a_transition_and_renewal_keeps_acquire_time() {
        let cfg = LeaseConfig::new("sluice", "a");
        let now = Timestamp::now();
        let other = spec("b", 60);
        let taken = lease_spec(&cfg, Some(&other), now);
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        let later = now + SignedDuration::from_secs(5);
        let renewed = lease_spec(&cfg, Some(&taken), later);
        assert_eq!(renewed.acquire_time, Some(MicroTime(now)));
        assert_eq!(renewed.renew_time, Some(MicroTime(later)));
        assert_eq!(renewed.lease_transitions, Some(1));
    }
}
