//! [`EnvoyRouter`]: the standalone [`TrafficRouter`], feeding one Envoy over ADS (the default)
//! or file-based xDS.
//!
//! ## Flow
//! Every rollout's current plan is kept in memory with its translation
//! ([`translate::translate_rollout`]: two clusters and one virtual host). A change is queued;
//! whoever finds no flush running waits a few milliseconds ([`COALESCE`]) and then applies
//! every queued change in one batch, so changes arriving together cost one push:
//! - **ADS** ([`EnvoyRouter::serve_ads`]): the batch's clusters and virtual hosts (VHDS, one per
//!   rollout) are published to the in-process [`AdsServer`], which sends each Envoy only what
//!   changed. Phases: clusters added → virtual hosts → clusters dropped, each acknowledged by
//!   Envoy before the next, so routes never name a cluster Envoy lacks.
//! - **Files** ([`EnvoyRouter::open`]): `cds.json` and `rds.json` are rewritten from the kept
//!   translations (no re-translation), each to a temporary file in the same directory, fsynced
//!   and renamed over the old one, in three phases (clusters = old ∪ new, routes, clusters = new).
//!
//! ## Guarantees
//! - A change that cannot be translated, or clashes with another rollout (host, cluster
//!   names), is refused before anything is sent; the rollout's previous plan stays in force and
//!   the other changes of the batch go ahead.
//! - `set` returns once Envoy serves the change: the ADS ACK, or with an admin address
//!   ([`EnvoyRouter::with_admin`]) the files' versions in Envoy's stats. Envoy's rejection
//!   (a NACK, with Envoy's reason; or the rejected-file counter) puts the last good config back
//!   and is the error of every change in that batch (then each is retried alone, so one bad
//!   change does not fail the others).
//! - A timeout (no Envoy connected, Envoy slow) is reported but not undone: the config stays
//!   published and a (re)connecting Envoy gets it.
//!
//! ## Caveats
//! After a restart the router knows no plans: call [`EnvoyRouter::set_many`] (or
//! [`EnvoyRouter::preload`]) with every rollout's current plan first; with files, the first
//! write would otherwise drop the other rollouts' virtual hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{Mutex, oneshot};

use crate::admin::{AdminError, EnvoyAdmin, Resource};
use crate::ads::proto::{CLUSTER_TYPE, ROUTE_CONFIG_TYPE, VIRTUAL_HOST_TYPE};
use crate::ads::{AckError, AdsServer, convert};
use crate::translate::{
    self, CDS_FILE, Claims, RDS_FILE, ROUTE_CONFIG_NAME, RolloutConfig, RouteTarget, XdsConfig,
    content_version, discovery_response,
};
use sluice_core::exec::{BoxError, TrafficRouter};
use sluice_core::spec::Rollout;
use sluice_core::traffic::TrafficPlan;

/// How long the first change of a batch waits for others to join it.
pub const COALESCE: Duration = Duration::from_millis(2);

#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error(transparent)]
    Translate(#[from] translate::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: existing file is not an xDS document: {reason}")]
    Existing { path: PathBuf, reason: String },
    #[error("rendering xDS JSON: {0}")]
    Render(String),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Encode(#[from] convert::EncodeError),
    #[error(transparent)]
    Ack(#[from] AckError),
    #[error("xDS server on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the change was dropped before it was applied (router shutting down)")]
    Dropped,
    /// The error of a whole batch, shared by every change in it.
    #[error(transparent)]
    Shared(Arc<XdsError>),
}

impl XdsError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            XdsError::Translate(_) => "translate",
            XdsError::Io { .. }
            | XdsError::Existing { .. }
            | XdsError::Render(_)
            | XdsError::Encode(_)
            | XdsError::Bind { .. }
            | XdsError::Dropped => "io",
            XdsError::Admin(_) | XdsError::Ack(_) => "envoy",
            XdsError::Shared(e) => e.metric_label(),
        }
    }

    /// Envoy refused the config (as opposed to: did not answer in time).
    fn is_rejection(&self) -> bool {
        match self {
            XdsError::Admin(AdminError::Rejected { .. }) => true,
            XdsError::Ack(AckError::Rejected { .. }) => true,
            XdsError::Shared(e) => e.is_rejection(),
            _ => false,
        }
    }
}

/// Versions written by one change (and how long Envoy took, when confirmed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub cds_version: String,
    pub rds_version: String,
    /// From the first write/push to Envoy serving the routes; None when nothing confirms.
    pub confirmed_in: Option<Duration>,
}

struct Confirm {
    admin: EnvoyAdmin,
    timeout: Duration,
    poll: Duration,
}

enum Sink {
    Files {
        dir: PathBuf,
        confirm: Option<Confirm>,
    },
    Ads {
        server: AdsServer,
        timeout: Duration,
    },
}

#[derive(Clone)]
struct Entry {
    plan: TrafficPlan,
    cfg: RolloutConfig,
}

#[derive(Clone)]
enum Change {
    Set(RouteTarget, TrafficPlan),
    /// New addresses/hosts, keeping the plan in force (stable-only when none).
    Target(RouteTarget),
    Remove(String),
}

struct Pending {
    changes: Vec<Change>,
    confirm: bool,
    done: oneshot::Sender<Result<Written, XdsError>>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    claims: Claims,
    /// Files: clusters in `cds.json` now, by name.
    clusters_on_disk: BTreeMap<String, Value>,
    /// Files: text of the last routes file Envoy accepted (or that we found on disk).
    last_good_rds: Option<String>,
}

pub struct EnvoyRouter {
    sink: Sink,
    /// Held by the one flush running; the queue fills meanwhile.
    state: Mutex<State>,
    pending: std::sync::Mutex<Vec<Pending>>,
    /// The plans in force, readable while a flush waits for Envoy.
    served: std::sync::Mutex<BTreeMap<String, TrafficPlan>>,
    coalesce: Duration,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// ADS name of a rollout's virtual host: VHDS resources live under the route configuration's
/// name (`sluice/<prefix>`).
pub fn vhds_name(prefix: &str) -> String {
    format!("{ROUTE_CONFIG_NAME}/{prefix}")
}

impl EnvoyRouter {
    fn with_sink(sink: Sink, state: State) -> Self {
        EnvoyRouter {
            sink,
            state: Mutex::new(state),
            pending: std::sync::Mutex::new(Vec::new()),
            served: std::sync::Mutex::new(BTreeMap::new()),
            coalesce: COALESCE,
        }
    }

    /// Serve Envoy over delta ADS on `addr` (`127.0.0.1:0` picks a port: see
    /// [`EnvoyRouter::ads`]); each change waits up to `timeout` for Envoy's ACK.
    pub async fn serve_ads(addr: &str, timeout: Duration) -> Result<Self, XdsError> {
        let server = AdsServer::bind(addr)
            .await
            .map_err(|source| XdsError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        // The one route configuration: its virtual hosts come by VHDS, one per rollout.
        let body = Bytes::from(convert::route_configuration_vhds(ROUTE_CONFIG_NAME));
        server.publish(
            ROUTE_CONFIG_TYPE,
            vec![(ROUTE_CONFIG_NAME.to_string(), "vhds".to_string(), body)],
            &[],
        );
        Ok(Self::with_sink(
            Sink::Ads { server, timeout },
            State::default(),
        ))
    }

    /// Use `dir` as the xDS directory: create it, and write empty `cds.json`/`rds.json` where
    /// missing (Envoy refuses to start on a missing path). Existing files are kept as they are,
    /// so a restarted sluice never blanks a running Envoy.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, XdsError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| XdsError::Io {
            path: dir.clone(),
            source,
        })?;
        let dir = dir.canonicalize().map_err(|source| XdsError::Io {
            path: dir.clone(),
            source,
        })?;
        let empty = translate::translate(&[])?;
        let mut state = State::default();
        let cds = dir.join(CDS_FILE);
        match std::fs::read_to_string(&cds) {
            Ok(text) => {
                let doc: Value = serde_json::from_str(&text).map_err(|e| XdsError::Existing {
                    path: cds.clone(),
                    reason: e.to_string(),
                })?;
                for c in doc["resources"].as_array().into_iter().flatten() {
                    if let Some(name) = c["name"].as_str() {
                        state.clusters_on_disk.insert(name.to_string(), c.clone());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(&cds, &render(&empty.clusters)?)?;
            }
            Err(source) => return Err(XdsError::Io { path: cds, source }),
        }
        let rds = dir.join(RDS_FILE);
        match std::fs::read_to_string(&rds) {
            Ok(text) => state.last_good_rds = Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = render(std::slice::from_ref(&empty.route_config))?;
                write_atomic(&rds, &text)?;
                state.last_good_rds = Some(text);
            }
            Err(source) => return Err(XdsError::Io { path: rds, source }),
        }
        Ok(Self::with_sink(Sink::Files { dir, confirm: None }, state))
    }

    /// Files: confirm every write through Envoy's admin interface: wait (up to `timeout`) until
    /// Envoy reports the new versions, and refuse to call a change applied before that. (ADS
    /// confirms by Envoy's ACK; this does nothing there.)
    pub fn with_admin(mut self, admin: EnvoyAdmin, timeout: Duration) -> Self {
        if let Sink::Files { confirm, .. } = &mut self.sink {
            *confirm = Some(Confirm {
                admin,
                timeout,
                poll: Duration::from_millis(1),
            });
        }
        self
    }

    /// How long the first change of a batch waits for others (default [`COALESCE`]; zero
    /// pushes each change alone unless one is already in flight).
    pub fn with_coalesce(mut self, window: Duration) -> Self {
        self.coalesce = window;
        self
    }

    /// The xDS directory (file-based xDS only).
    pub fn dir(&self) -> Option<&Path> {
        match &self.sink {
            Sink::Files { dir, .. } => Some(dir),
            Sink::Ads { .. } => None,
        }
    }

    /// The ADS server (ADS only): its address and what it pushed.
    pub fn ads(&self) -> Option<&AdsServer> {
        match &self.sink {
            Sink::Ads { server, .. } => Some(server),
            Sink::Files { .. } => None,
        }
    }

    /// The plan currently in force for `namespace/name`.
    pub async fn plan(&self, key: &str) -> Option<TrafficPlan> {
        lock(&self.served).get(key).cloned()
    }

    /// Every rollout's plan in force, by `namespace/name` (what the UI shows as live split).
    pub async fn plans(&self) -> BTreeMap<String, TrafficPlan> {
        lock(&self.served).clone()
    }

    /// Set one rollout's plan (and its addresses/hosts from the spec); returns once Envoy
    /// serves it.
    pub async fn set(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<Written, XdsError> {
        self.set_many(&[(rollout.clone(), plan.clone())]).await
    }

    /// Set several rollouts at once, in one push (e.g. every rollout after a restart). All or
    /// nothing: one that cannot be translated refuses the lot.
    pub async fn set_many(&self, items: &[(Rollout, TrafficPlan)]) -> Result<Written, XdsError> {
        self.change(Self::sets(items)?, true).await
    }

    /// [`set_many`](Self::set_many) without waiting for Envoy (ADS: published for whichever
    /// Envoy connects; files: written, not confirmed). For start-up, before Envoy may be up.
    pub async fn preload(&self, items: &[(Rollout, TrafficPlan)]) -> Result<Written, XdsError> {
        self.change(Self::sets(items)?, false).await
    }

    fn sets(items: &[(Rollout, TrafficPlan)]) -> Result<Vec<Change>, XdsError> {
        items
            .iter()
            .map(|(rollout, plan)| {
                Ok(Change::Set(
                    RouteTarget::from_rollout(rollout)?,
                    plan.clone(),
                ))
            })
            .collect()
    }

    /// Re-read a rollout's addresses and hosts, keeping its plan (stable-only when it has
    /// none yet). Promotion in standalone mode points the stable cluster where the canary was.
    pub async fn set_target(&self, rollout: &Rollout) -> Result<Written, XdsError> {
        let target = RouteTarget::from_rollout(rollout)?;
        self.change(vec![Change::Target(target)], true).await
    }

    /// Forget a rollout (its file was deleted): routes first, then its clusters.
    pub async fn remove(&self, key: &str) -> Result<Written, XdsError> {
        self.change(vec![Change::Remove(key.to_string())], true)
            .await
    }

    async fn change(&self, changes: Vec<Change>, confirm: bool) -> Result<Written, XdsError> {
        let (done, mut rx) = oneshot::channel();
        lock(&self.pending).push(Pending {
            changes,
            confirm,
            done,
        });
        loop {
            tokio::select! {
                biased;
                r = &mut rx => return r.unwrap_or(Err(XdsError::Dropped)),
                mut state = self.state.lock() => {
                    // The flush before may have carried this change already.
                    if let Ok(r) = rx.try_recv() {
                        return r;
                    }
                    if !self.coalesce.is_zero() {
                        tokio::time::sleep(self.coalesce).await;
                    }
                    let batch = std::mem::take(&mut *lock(&self.pending));
                    self.flush(&mut state, batch).await;
                }
            }
        }
    }

    /// Apply `batch`: refuse the changes that cannot be translated, push the rest together,
    /// answer every waiter.
    /// What the data plane now serves for `keys`: their entries in `state` (published or
    /// written, confirmed or not).
    fn mark_served<'a>(&self, state: &State, keys: impl Iterator<Item = &'a String>) {
        let mut served = lock(&self.served);
        for key in keys {
            match state.entries.get(key) {
                Some(e) => served.insert(key.clone(), e.plan.clone()),
                None => served.remove(key),
            };
        }
    }

    async fn flush(&self, state: &mut State, batch: Vec<Pending>) {
        let mut accepted: Vec<(Pending, Undo)> = Vec::new();
        for p in batch {
            let mut undo = Vec::new();
            let mut failed = None;
            for change in p.changes.clone() {
                match apply(state, change) {
                    Ok(prev) => undo.push(prev),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                Some(e) => {
                    revert(state, undo);
                    let _ = p.done.send(Err(e));
                }
                None => accepted.push((p, undo)),
            }
        }
        if accepted.is_empty() {
            return;
        }
        let confirm = accepted.iter().any(|(p, _)| p.confirm);
        // The entries each touched key had before this batch.
        let mut before: BTreeMap<String, Option<Entry>> = BTreeMap::new();
        for (_, undo) in &accepted {
            for (key, prev) in undo {
                before.entry(key.clone()).or_insert_with(|| prev.clone());
            }
        }
        let result = match &self.sink {
            Sink::Files { dir, confirm: c } => {
                let c = if confirm { c.as_ref() } else { None };
                write_files(dir, c, state).await
            }
            Sink::Ads { server, timeout } => {
                let t = if confirm { Some(*timeout) } else { None };
                push_ads(server, t, state, &before).await
            }
        };
        match result {
            Ok(written) => {
                self.mark_served(state, before.keys());
                for (p, _) in accepted {
                    let _ = p.done.send(Ok(written.clone()));
                }
            }
            Err(e) if e.is_rejection() => {
                // Back to the last good state, in Envoy too: what the batch published is the
                // "before" of the restoring push (so clusters it added are removed again).
                let after: BTreeMap<String, Option<Entry>> = before
                    .keys()
                    .map(|k| (k.clone(), state.entries.get(k).cloned()))
                    .collect();
                let n = accepted.len();
                let mut items = Vec::new();
                for (p, undo) in accepted.into_iter().rev() {
                    revert(state, undo);
                    items.push(p);
                }
                items.reverse();
                // Waited for, so that when `set` reports the rejection Envoy is back on it.
                if let Sink::Ads { server, timeout } = &self.sink
                    && let Err(e) = push_ads(server, Some(*timeout), state, &after).await
                {
                    tracing::warn!(error = %e, "restoring the last good xDS config failed");
                }
                if n == 1 {
                    if let Some(p) = items.pop() {
                        let _ = p.done.send(Err(e));
                    }
                } else {
                    // Which change did Envoy refuse? Each alone finds out.
                    for p in items {
                        Box::pin(self.flush(state, vec![p])).await;
                    }
                }
            }
            Err(e) => {
                // Not confirmed, but published/written: keep it (see the module's Guarantees).
                self.mark_served(state, before.keys());
                let shared = Arc::new(e);
                for (p, _) in accepted {
                    let _ = p.done.send(Err(XdsError::Shared(shared.clone())));
                }
            }
        }
    }
}

/// What undoes a change: each touched key with the entry it had, in order.
type Undo = Vec<(String, Option<Entry>)>;

/// Apply one change to the entries (checked against the other rollouts); returns the key and
/// the entry it had, to undo it.
fn apply(state: &mut State, change: Change) -> Result<(String, Option<Entry>), XdsError> {
    let (key, new) = match change {
        Change::Set(target, plan) => {
            let cfg = translate::translate_rollout(&target, &plan)?;
            (target.key(), Some(Entry { plan, cfg }))
        }
        Change::Target(target) => {
            let key = target.key();
            let plan = state
                .entries
                .get(&key)
                .map(|e| e.plan.clone())
                .unwrap_or_else(TrafficPlan::stable_only);
            let cfg = translate::translate_rollout(&target, &plan)?;
            (key, Some(Entry { plan, cfg }))
        }
        Change::Remove(key) => (key, None),
    };
    let prev = put(state, &key, new)?;
    Ok((key, prev))
}

/// Replace `key`'s entry, keeping the claims in step; on a clash nothing changes.
fn put(state: &mut State, key: &str, new: Option<Entry>) -> Result<Option<Entry>, XdsError> {
    let prev = state.entries.remove(key);
    if let Some(p) = &prev {
        state.claims.release(&p.cfg);
    }
    if let Some(n) = new {
        if let Err(e) = state.claims.claim(&n.cfg) {
            if let Some(p) = prev {
                let _ = state.claims.claim(&p.cfg);
                state.entries.insert(key.to_string(), p);
            }
            return Err(e.into());
        }
        state.entries.insert(key.to_string(), n);
    }
    Ok(prev)
}

/// Undo changes, last first: each step restores a state that was valid, so none can clash.
fn revert(state: &mut State, undo: Undo) {
    for (key, prev) in undo.into_iter().rev() {
        let _ = put(state, &key, prev);
    }
}

type Upsert = (String, String, Bytes);

/// The ADS resources of `entry`: its clusters.
fn cluster_resources(entry: &Entry) -> Result<Vec<Upsert>, XdsError> {
    entry
        .cfg
        .clusters
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            let version = content_version(std::slice::from_ref(c));
            Ok((name, version, Bytes::from(convert::cluster(c)?)))
        })
        .collect()
}

/// The ADS resource of `entry`'s virtual host (with `*` when it is the only rollout).
fn vhost_resource(entry: &Entry, lone: bool) -> Result<Upsert, XdsError> {
    let vh = if lone {
        translate::with_catch_all(&entry.cfg.virtual_host)
    } else {
        entry.cfg.virtual_host.clone()
    };
    let name = vhds_name(&entry.cfg.prefix);
    let version = content_version(std::slice::from_ref(&vh));
    let body = convert::virtual_host(&vh, &name)?;
    Ok((name, version, Bytes::from(body)))
}

/// Publish what changed for the keys in `before` (their entries before the batch) and, with a
/// timeout, wait for Envoy in three phases: clusters added, virtual hosts, clusters dropped.
async fn push_ads(
    server: &AdsServer,
    timeout: Option<Duration>,
    state: &State,
    before: &BTreeMap<String, Option<Entry>>,
) -> Result<Written, XdsError> {
    let started = Instant::now();
    let now_len = state.entries.len();
    let added = before
        .iter()
        .filter(|(k, p)| p.is_none() && state.entries.contains_key(*k))
        .count();
    let gone = before
        .iter()
        .filter(|(k, p)| p.is_some() && !state.entries.contains_key(*k))
        .count();
    let before_len = now_len + gone - added;
    // The lone rollout's virtual host answers `*` too: crossing one rollout changes it.
    let mut vhost_keys: BTreeSet<&String> = before.keys().collect();
    if before_len <= 1 || now_len <= 1 {
        vhost_keys.extend(state.entries.keys());
    }
    let lone = now_len == 1;

    let mut cl_up = Vec::new();
    let mut cl_rm = Vec::new();
    let mut vh_rm = Vec::new();
    for (key, prev) in before {
        let now = state.entries.get(key);
        let now_clusters: BTreeSet<String> = now.map(|e| e.cfg.cluster_names()).unwrap_or_default();
        if let Some(e) = now {
            cl_up.extend(cluster_resources(e)?);
        }
        if let Some(p) = prev {
            cl_rm.extend(
                p.cfg
                    .cluster_names()
                    .into_iter()
                    .filter(|n| !now_clusters.contains(n)),
            );
            if now.is_none() {
                vh_rm.push(vhds_name(&p.cfg.prefix));
            }
        }
    }
    let mut vh_up = Vec::new();
    for key in vhost_keys {
        if let Some(e) = state.entries.get(key) {
            vh_up.push(vhost_resource(e, lone)?);
        }
    }
    let wait = |type_url: &'static str, generation: u64| async move {
        match timeout {
            Some(t) => server.wait(type_url, generation, t).await,
            None => Ok(()),
        }
    };
    let g1 = server.publish(CLUSTER_TYPE, cl_up, &[]);
    wait(CLUSTER_TYPE, g1).await?;
    let g2 = server.publish(VIRTUAL_HOST_TYPE, vh_up, &vh_rm);
    wait(VIRTUAL_HOST_TYPE, g2).await?;
    let mut cds = g1;
    if !cl_rm.is_empty() {
        cds = server.publish(CLUSTER_TYPE, Vec::new(), &cl_rm);
        wait(CLUSTER_TYPE, cds).await?;
    }
    Ok(Written {
        cds_version: cds.to_string(),
        rds_version: g2.to_string(),
        confirmed_in: timeout.map(|_| started.elapsed()),
    })
}

async fn write_files(
    dir: &Path,
    confirm: Option<&Confirm>,
    state: &mut State,
) -> Result<Written, XdsError> {
    let config = translate::assemble(state.entries.values().map(|e| &e.cfg));
    write(dir, confirm, state, &config).await
}

async fn write(
    dir: &Path,
    confirm: Option<&Confirm>,
    state: &mut State,
    config: &XdsConfig,
) -> Result<Written, XdsError> {
    let cds_path = dir.join(CDS_FILE);
    let rds_path = dir.join(RDS_FILE);
    let new_clusters: BTreeMap<String, Value> = config
        .clusters
        .iter()
        .filter_map(|c| c["name"].as_str().map(|n| (n.to_string(), c.clone())))
        .collect();
    let mut union = state.clusters_on_disk.clone();
    union.extend(new_clusters.clone());
    let started = Instant::now();

    // Phase 1: every cluster the new routes name exists (old ones stay for old routes).
    let mut cds_version = content_version(&values(&state.clusters_on_disk));
    if union != state.clusters_on_disk {
        cds_version = write_clusters(confirm, state, &cds_path, union).await?;
    }

    // Phase 2: the routes.
    let routes = std::slice::from_ref(&config.route_config);
    let rds_version = content_version(routes);
    let rds_text = render(routes)?;
    let before = match confirm {
        Some(c) => c
            .admin
            .state(Resource::Routes)
            .await
            .ok()
            .map(|s| s.rejected),
        None => None,
    };
    write_blocking(&rds_path, &rds_text).await?;
    if let Some(c) = confirm {
        let res = c
            .admin
            .wait_applied(
                Resource::Routes,
                &rds_version,
                before.unwrap_or(u64::MAX),
                c.timeout,
                c.poll,
            )
            .await;
        if let Err(e) = res {
            // Keep on disk what Envoy serves, so a restarted Envoy loads a good config.
            if matches!(e, AdminError::Rejected { .. })
                && let Some(good) = &state.last_good_rds
            {
                write_blocking(&rds_path, good).await?;
            }
            return Err(e.into());
        }
    }
    state.last_good_rds = Some(rds_text);

    // Phase 3: drop clusters no route names any more.
    if new_clusters != state.clusters_on_disk {
        cds_version = write_clusters(confirm, state, &cds_path, new_clusters).await?;
    }
    Ok(Written {
        cds_version,
        rds_version,
        confirmed_in: confirm.map(|_| started.elapsed()),
    })
}

/// Write `clusters` to `cds.json` (recorded as what is on disk even if Envoy then does
/// not confirm it), and wait for Envoy when confirming.
async fn write_clusters(
    confirm: Option<&Confirm>,
    state: &mut State,
    path: &Path,
    clusters: BTreeMap<String, Value>,
) -> Result<String, XdsError> {
    let list = values(&clusters);
    let version = content_version(&list);
    let before = match confirm {
        Some(c) => c
            .admin
            .state(Resource::Clusters)
            .await
            .ok()
            .map(|s| s.rejected),
        None => None,
    };
    write_blocking(path, &render(&list)?).await?;
    state.clusters_on_disk = clusters;
    if let Some(c) = confirm {
        c.admin
            .wait_applied(
                Resource::Clusters,
                &version,
                before.unwrap_or(u64::MAX),
                c.timeout,
                c.poll,
            )
            .await?;
    }
    Ok(version)
}

fn values(map: &BTreeMap<String, Value>) -> Vec<Value> {
    map.values().cloned().collect()
}

/// A discovery-response JSON document for `resources`, versioned by content (JSON: Envoy
/// parses it several times faster than the same YAML).
fn render(resources: &[Value]) -> Result<String, XdsError> {
    let doc = discovery_response(&content_version(resources), resources);
    serde_json::to_string(&doc).map_err(|e| XdsError::Render(e.to_string()))
}

async fn write_blocking(path: &Path, text: &str) -> Result<(), XdsError> {
    let path = path.to_path_buf();
    let text = text.to_string();
    let p = path.clone();
    tokio::task::spawn_blocking(move || write_atomic(&p, &text))
        .await
        .map_err(|e| XdsError::Io {
            path,
            source: std::io::Error::other(e),
        })?
}

/// Write `text` to a temporary file next to `path`, fsync it, rename it over `path`, fsync
/// the directory. Readers see the old or the new content, never a mix; after a crash the
/// rename is durable.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), XdsError> {
    let io = |source| XdsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A dot name: Envoy only reloads on renames *onto* its watched files; creating the
    // temporary file is not such an event.
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[async_trait::async_trait]
impl TrafficRouter for EnvoyRouter {
    async fn apply(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<(), BoxError> {
        self.set(rollout, plan).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::tests::rollout;

    fn read(dir: &Path, file: &str) -> Value {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn cluster_names(dir: &Path) -> Vec<String> {
        read(dir, CDS_FILE)["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn open_creates_empty_files_and_keeps_existing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let router = EnvoyRouter::open(tmp.path().join("xds")).unwrap();
        let dir = router.dir().unwrap().to_path_buf();
        assert_eq!(read(&dir, CDS_FILE)["resources"], serde_json::json!([]));
        assert_eq!(
            read(&dir, RDS_FILE)["resources"][0]["virtual_hosts"],
            serde_json::json!([])
        );
        router
            .set(&rollout(None, "reviews", &[]), &TrafficPlan::weighted(10))
            .await
            .unwrap();
        let before = std::fs::read_to_string(dir.join(RDS_FILE)).unwrap();
        let again = EnvoyRouter::open(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join(RDS_FILE)).unwrap(), before);
        // It learned the clusters on disk: removing nothing keeps them until routes drop them.
        assert_eq!(again.state.lock().await.clusters_on_disk.len(), 2);
        // No temporary files left behind.
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[tokio::test]
    async fn a_plan_that_cannot_be_translated_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let router = EnvoyRouter::open(tmp.path()).unwrap();
        let r = rollout(None, "reviews", &[]);
        router.set(&r, &TrafficPlan::weighted(10)).await.unwrap();
        let before = (
            std::fs::read_to_string(tmp.path().join(CDS_FILE)).unwrap(),
            std::fs::read_to_string(tmp.path().join(RDS_FILE)).unwrap(),
        );
        let mut bad = TrafficPlan::weighted(20);
        bad.routes[0].destinations[0].weight = 0;
        let err = router.set(&r, &bad).await.unwrap_err();
        assert_eq!(err.metric_label(), "translate");
        let mut no_upstreams = r.clone();
        no_upstreams.spec.upstreams = None;
        assert!(
            router
                .set(&no_upstreams, &TrafficPlan::weighted(20))
                .await
                .is_err()
        );
        let after = (
            std::fs::read_to_string(tmp.path().join(CDS_FILE)).unwrap(),
            std::fs::read_to_string(tmp.path().join(RDS_FILE)).unwrap(),
        );
        assert_eq!(before, after);
        assert_eq!(
            router.plan("default/reviews").await,
            Some(TrafficPlan::weighted(10))
        );
    }

    #[tokio::test]
    async fn rollouts_are_added_promoted_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let router = EnvoyRouter::open(tmp.path()).unwrap();
        let a = rollout(None, "reviews", &[]);
        let b = rollout(Some("shop"), "cart", &[]);
        router.set(&a, &TrafficPlan::weighted(10)).await.unwrap();
        router.set(&b, &TrafficPlan::weighted(50)).await.unwrap();
        assert_eq!(
            cluster_names(tmp.path()),
            [
                "reviews-canary",
                "reviews-stable",
                "shop-cart-canary",
                "shop-cart-stable"
            ]
        );
        let mut promoted = a.clone();
        promoted.spec.upstreams.as_mut().unwrap().stable = "127.0.0.1:9999".into();
        router.set_target(&promoted).await.unwrap();
        let cds = std::fs::read_to_string(tmp.path().join(CDS_FILE)).unwrap();
        assert!(cds.contains("9999"), "{cds}");
        assert_eq!(
            router.plan("default/reviews").await,
            Some(TrafficPlan::weighted(10))
        );
        // Through the executor's trait object, as `exec::tick` calls it.
        let dyn_router: &dyn TrafficRouter = &router;
        dyn_router
            .apply(&a, &TrafficPlan::weighted(30))
            .await
            .unwrap();
        assert_eq!(
            router.plan("default/reviews").await,
            Some(TrafficPlan::weighted(30))
        );
        let w = router.remove("shop/cart").await.unwrap();
        assert_eq!(
            cluster_names(tmp.path()),
            ["reviews-canary", "reviews-stable"]
        );
        let rds = read(tmp.path(), RDS_FILE);
        assert_eq!(rds["version_info"], serde_json::json!(w.rds_version));
        assert_eq!(
            rds["resources"][0]["virtual_hosts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(w.confirmed_in, None);
    }
}
