//! [`EnvoyRouter`]: the standalone [`TrafficRouter`], writing file-based xDS for one Envoy.
//!
//! ## Flow
//! Every rollout's current plan is kept in memory (one Envoy serves them all); each change
//! re-translates the whole set ([`crate::translate::translate`]) and writes `cds.yaml` and
//! `rds.yaml` in the xDS directory. Each file is written to a temporary file in the same
//! directory, fsynced and renamed over the old one: Envoy's directory watch sees one atomic
//! swap, never a half-written file.
//!
//! ## Guarantees
//! - At every instant the pair of files on disk is consistent (every cluster a route names
//!   exists), so an Envoy (re)starting at any moment loads a valid config. Writes go in three
//!   phases: clusters = old ∪ new, then routes, then clusters = new.
//! - With an admin address ([`EnvoyRouter::with_admin`]), each phase waits until Envoy reports
//!   the new version (`version_text` stats) before the next one, so routes never reach Envoy
//!   before their clusters (`validate_clusters` would reject them), and `apply` returns only
//!   once Envoy serves the plan. A rejected routes file is replaced by the last accepted one.
//! - A plan that cannot be translated is refused before anything is written; the previous
//!   plan stays in force.
//!
//! ## Caveats
//! After a restart the router knows no plans: call [`EnvoyRouter::set_many`] with every
//! rollout's current plan first, otherwise the first `apply` would drop the other rollouts'
//! virtual hosts. Clusters already on disk are kept until routes no longer need them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;

use crate::admin::{AdminError, EnvoyAdmin, Resource};
use crate::translate::{
    self, CDS_FILE, RDS_FILE, RouteTarget, XdsConfig, content_version, discovery_response,
};
use sluice_core::exec::{BoxError, TrafficRouter};
use sluice_core::spec::Rollout;
use sluice_core::traffic::TrafficPlan;

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
    #[error("rendering xDS YAML: {0}")]
    Render(String),
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl XdsError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            XdsError::Translate(_) => "translate",
            XdsError::Io { .. } | XdsError::Existing { .. } | XdsError::Render(_) => "io",
            XdsError::Admin(_) => "envoy",
        }
    }
}

/// Versions written by one change (and how long Envoy took, when confirmed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub cds_version: String,
    pub rds_version: String,
    /// From the first rename to Envoy serving the routes; None without an admin address.
    pub confirmed_in: Option<Duration>,
}

struct Confirm {
    admin: EnvoyAdmin,
    timeout: Duration,
    poll: Duration,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, (RouteTarget, TrafficPlan)>,
    /// Clusters in `cds.yaml` now, by name.
    clusters_on_disk: BTreeMap<String, Value>,
    /// Text of the last routes file Envoy accepted (or that we found on disk).
    last_good_rds: Option<String>,
}

pub struct EnvoyRouter {
    dir: PathBuf,
    confirm: Option<Confirm>,
    state: Mutex<State>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl EnvoyRouter {
    /// Use `dir` as the xDS directory: create it, and write empty `cds.yaml`/`rds.yaml` where
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
                let doc: Value = serde_yaml::from_str(&text).map_err(|e| XdsError::Existing {
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
        Ok(EnvoyRouter {
            dir,
            confirm: None,
            state: Mutex::new(state),
        })
    }

    /// Confirm every write through Envoy's admin interface: wait (up to `timeout`) until Envoy
    /// reports the new versions, and refuse to call a change applied before that.
    pub fn with_admin(mut self, admin: EnvoyAdmin, timeout: Duration) -> Self {
        self.confirm = Some(Confirm {
            admin,
            timeout,
            poll: Duration::from_millis(1),
        });
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The plan currently in force for `namespace/name`.
    pub async fn plan(&self, key: &str) -> Option<TrafficPlan> {
        self.state
            .lock()
            .await
            .entries
            .get(key)
            .map(|(_, p)| p.clone())
    }

    /// Every rollout's plan in force, by `namespace/name` (what the UI shows as live split).
    pub async fn plans(&self) -> BTreeMap<String, TrafficPlan> {
        self.state
            .lock()
            .await
            .entries
            .iter()
            .map(|(k, (_, p))| (k.clone(), p.clone()))
            .collect()
    }

    /// Set one rollout's plan (and its addresses/hosts from the spec) and write.
    pub async fn set(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<Written, XdsError> {
        self.set_many(&[(rollout.clone(), plan.clone())]).await
    }

    /// Set several rollouts at once, with one write (e.g. every rollout after a restart).
    pub async fn set_many(&self, items: &[(Rollout, TrafficPlan)]) -> Result<Written, XdsError> {
        let mut changes = Vec::new();
        for (rollout, plan) in items {
            let target = RouteTarget::from_rollout(rollout)?;
            changes.push((target.key(), Some((target, plan.clone()))));
        }
        self.change(changes).await
    }

    /// Re-read a rollout's addresses and hosts, keeping its plan (stable-only when it has
    /// none yet). Promotion in standalone mode points the stable cluster where the canary was.
    pub async fn set_target(&self, rollout: &Rollout) -> Result<Written, XdsError> {
        let target = RouteTarget::from_rollout(rollout)?;
        let plan = self
            .plan(&target.key())
            .await
            .unwrap_or_else(TrafficPlan::stable_only);
        self.change(vec![(target.key(), Some((target, plan)))])
            .await
    }

    /// Forget a rollout (its file was deleted): routes first, then its clusters.
    pub async fn remove(&self, key: &str) -> Result<Written, XdsError> {
        self.change(vec![(key.to_string(), None)]).await
    }

    async fn change(
        &self,
        changes: Vec<(String, Option<(RouteTarget, TrafficPlan)>)>,
    ) -> Result<Written, XdsError> {
        let mut state = self.state.lock().await;
        let mut entries = state.entries.clone();
        for (key, entry) in changes {
            match entry {
                Some(e) => entries.insert(key, e),
                None => entries.remove(&key),
            };
        }
        let list: Vec<(RouteTarget, TrafficPlan)> = entries.values().cloned().collect();
        // Translation errors leave state and files untouched.
        let config = translate::translate(&list)?;
        let written = self.write(&mut state, &config).await?;
        state.entries = entries;
        Ok(written)
    }

    async fn write(&self, state: &mut State, config: &XdsConfig) -> Result<Written, XdsError> {
        let cds_path = self.dir.join(CDS_FILE);
        let rds_path = self.dir.join(RDS_FILE);
        let new_clusters: BTreeMap<String, Value> = config
            .clusters
            .iter()
            .filter_map(|c| c["name"].as_str().map(|n| (n.to_string(), c.clone())))
            .collect();
        let mut union = state.clusters_on_disk.clone();
        union.extend(new_clusters.clone());
        let started = std::time::Instant::now();

        // Phase 1: every cluster the new routes name exists (old ones stay for old routes).
        let mut cds_version = content_version(&values(&state.clusters_on_disk));
        if union != state.clusters_on_disk {
            cds_version = self.write_clusters(state, &cds_path, union).await?;
        }

        // Phase 2: the routes.
        let routes = std::slice::from_ref(&config.route_config);
        let rds_version = content_version(routes);
        let rds_text = render(routes)?;
        let before = match &self.confirm {
            Some(c) => c
                .admin
                .state(Resource::Routes)
                .await
                .ok()
                .map(|s| s.rejected),
            None => None,
        };
        write_blocking(&rds_path, &rds_text).await?;
        if let Some(c) = &self.confirm {
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
            cds_version = self.write_clusters(state, &cds_path, new_clusters).await?;
        }
        Ok(Written {
            cds_version,
            rds_version,
            confirmed_in: self.confirm.as_ref().map(|_| started.elapsed()),
        })
    }

    /// Write `clusters` to `cds.yaml` (recorded as what is on disk even if Envoy then does
    /// not confirm it), and wait for Envoy when confirming.
    async fn write_clusters(
        &self,
        state: &mut State,
        path: &Path,
        clusters: BTreeMap<String, Value>,
    ) -> Result<String, XdsError> {
        let list = values(&clusters);
        let version = content_version(&list);
        let before = match &self.confirm {
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
        if let Some(c) = &self.confirm {
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
}

fn values(map: &BTreeMap<String, Value>) -> Vec<Value> {
    map.values().cloned().collect()
}

/// A discovery-response YAML document for `resources`, versioned by content.
fn render(resources: &[Value]) -> Result<String, XdsError> {
    let doc = discovery_response(&content_version(resources), resources);
    sluice_core::yaml::to_string(&doc).map_err(|e| XdsError::Render(e.to_string()))
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
        serde_yaml::from_str(&text).unwrap()
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
        let dir = router.dir().to_path_buf();
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
