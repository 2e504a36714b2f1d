//! The standalone store: every rollout's state and history in one redb file.
//!
//! ## Layout
//! - `rollouts`: `namespace/name` → [`RolloutRecord`] as JSON (last good spec, status, where
//!   stable points, the traffic plan the data plane serves, history counters).
//! - `events`: (`namespace/name`, sequence) → [`EventRecord`] as JSON.
//! - `checks`: (`namespace/name`, sequence) → [`CheckResult`] as JSON.
//!
//! ## Guarantees
//! [`Store::commit_tick`] writes a tick's record *and* its new history entries in one redb
//! write transaction (durable on commit): after a crash at any point the file holds either the
//! state before the tick or after it, never a status without its events or the reverse.
//! History is append-only with bounded retention ([`Retention`]), pruned in the same
//! transaction that appends new entries:
//! - the current run (one per canary revision) and the [`Retention::full_runs`] − 1 runs
//!   before it are kept in full; an older run is replaced by one `HistorySummarised` event
//!   (its events and checks counted by verdict, how it ended);
//! - a size cap per rollout ([`Retention::max_bytes`], a quarter for events, the rest for
//!   checks) drops the oldest entries beyond it, summaries included: a rollout's history never
//!   exceeds it, however many revisions or checks it goes through;
//! - a count cap per table ([`Retention::events`], [`Retention::checks`]) as before.
//!
//! Freed pages are reused by redb for new entries, so the file stops growing once every
//! rollout's history reached its cap; [`Store::open`] compacts the file (returns the free
//! space to the file system). docs/standalone.md gives the expected size per rollout.
//!
//! JSON values (not a binary encoding) keep the file readable across versions of the types:
//! new optional fields deserialize with their defaults.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use sluice_core::backend::EventRecord;
use sluice_core::spec::{CheckResult, Rollout, RolloutStatus};
use sluice_core::traffic::TrafficPlan;

const ROLLOUTS: TableDefinition<&str, &str> = TableDefinition::new("rollouts");
const EVENTS: TableDefinition<(&str, u64), &str> = TableDefinition::new("events");
const CHECKS: TableDefinition<(&str, u64), &str> = TableDefinition::new("checks");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("store: {0}")]
    Db(#[from] redb::Error),
    #[error("store: record {key} is not valid JSON: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("store: cannot encode {key}: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("store: background task failed: {0}")]
    Join(String),
}

impl StoreError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::Open { .. } => "open",
            StoreError::Db(_) => "db",
            StoreError::Decode { .. } => "decode",
            StoreError::Encode { .. } => "encode",
            StoreError::Join(_) => "join",
        }
    }
}

// redb splits its errors per operation; fold them into one variant.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where the stable and canary sides of a standalone rollout point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamState {
    /// Address the stable cluster points at now (`host:port`).
    pub stable_address: String,
    /// Revision the stable cluster runs (what [`sluice_core::engine::Observations::stable_running`]
    /// reports).
    pub stable_revision: String,
    /// Stable address before the last promotion, for `undo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_stable_address: Option<String>,
    /// `spec.upstreams.stable` as last seen in the file: an edit of it re-points stable.
    pub spec_stable: String,
    /// `spec.upstreams.stableRevision` as last seen in the file: an edit of it relabels stable
    /// (while stable still points at `spec_stable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_stable_revision: Option<String>,
}

/// Everything the store keeps about one rollout besides its history.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    /// The last *valid* version of the rollout file (what runs, even if the file is now bad).
    pub rollout: Rollout,
    /// The file it came from (a rollout whose file is gone is no longer managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Short hash of the spec, to tell versions of the file apart in events and the UI.
    pub spec_hash: String,
    pub status: RolloutStatus,
    pub upstreams: UpstreamState,
    /// The plan the data plane serves (None before the first apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<TrafficPlan>,
    /// Its file was removed: sluice no longer manages it and the API does not show it, but the
    /// record stays so that the data plane keeps serving it all-stable after a restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// Next history sequence numbers.
    #[serde(default)]
    pub next_event: u64,
    #[serde(default)]
    pub next_check: u64,
    /// What the store needs to bound the history (kept up to date by [`Store::commit_tick`]).
    #[serde(default)]
    pub history: HistoryBook,
}

/// Bookkeeping of a rollout's history: where its last runs start and how large it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryBook {
    /// The runs kept in full, oldest first: one per canary revision the rollout went through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunStart>,
    /// Bytes of the events and checks kept (their JSON).
    #[serde(default)]
    pub event_bytes: u64,
    #[serde(default)]
    pub check_bytes: u64,
    /// False for a record written before the byte counts existed: the next commit measures.
    #[serde(default)]
    pub measured: bool,
}

/// Where one run of a rollout (one canary revision) starts in its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStart {
    pub revision: String,
    pub event: u64,
    pub check: u64,
}

/// How much history is kept per rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub events: u64,
    pub checks: u64,
    /// Runs (canary revisions) kept in full, the current one included; older ones are
    /// summarised. At least 1.
    pub full_runs: usize,
    /// Bytes of history (JSON of events and checks) per rollout: a quarter for events, the
    /// rest for checks.
    pub max_bytes: u64,
}

/// The default size cap of one rollout's history.
pub const MAX_HISTORY_BYTES: u64 = 256 * 1024;

impl Default for Retention {
    fn default() -> Self {
        // 256 KiB holds about 900 checks (≈ 2.5 h of one metric checked every 10 s) and 300
        // events: a whole rollout as a person reviews it, at a bounded cost per rollout.
        Retention {
            events: 2_000,
            checks: 20_000,
            full_runs: 3,
            max_bytes: MAX_HISTORY_BYTES,
        }
    }
}

impl Retention {
    fn event_bytes(&self) -> u64 {
        self.max_bytes / 4
    }
    fn check_bytes(&self) -> u64 {
        self.max_bytes - self.event_bytes()
    }
}

/// Cheap to clone; operations are blocking (run them on a blocking thread from async code, or
/// use the `*_async` wrappers).
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    retention: Retention,
    /// Tick commits since open (how often the file is written).
    commits: Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    /// Opens (or creates) the store file. A file left by a killed process is recovered by redb
    /// to its last committed transaction.
    pub fn open(path: &Path, retention: Retention) -> Result<Store> {
        let mut db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // Pruned history leaves free pages that redb reuses; compacting at start gives them
        // back to the file system (nothing else holds the database yet).
        db.compact()
            .map_err(|e| StoreError::Db(redb::Error::from(e)))?;
        // Create the tables so that readers never see "table does not exist".
        let tx = db.begin_write()?;
        tx.open_table(ROLLOUTS)?;
        tx.open_table(EVENTS)?;
        tx.open_table(CHECKS)?;
        tx.commit()?;
        Ok(Store {
            db: Arc::new(db),
            retention,
            commits: Arc::default(),
        })
    }

    pub fn get(&self, key: &str) -> Result<Option<RolloutRecord>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ROLLOUTS)?;
        match table.get(key)? {
            Some(v) => Ok(Some(decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// Every record, ordered by key.
    pub fn list(&self) -> Result<Vec<(String, RolloutRecord)>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ROLLOUTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let key = k.value().to_string();
            let record = decode(&key, v.value())?;
            out.push((key, record));
        }
        Ok(out)
    }

    /// Writes the record and appends `events` and `checks` to its history, bounding it (see
    /// the module docs), all in one transaction. Updates the record's sequence counters and
    /// history bookkeeping.
    pub fn commit_tick(
        &self,
        key: &str,
        record: &mut RolloutRecord,
        events: &[EventRecord],
        checks: &[CheckResult],
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        let mut updated = record.clone();
        {
            let mut ev = tx.open_table(EVENTS)?;
            let mut ch = tx.open_table(CHECKS)?;
            let book = &mut updated.history;
            if !book.measured {
                book.event_bytes = range_bytes(&ev, key, 0, u64::MAX)?;
                book.check_bytes = range_bytes(&ch, key, 0, u64::MAX)?;
                book.measured = true;
            }
            // A new canary revision starts a run (before this tick's entries, which belong
            // to it).
            if let Some(rev) = &updated.status.canary_revision
                && book.runs.last().is_none_or(|r| &r.revision != rev)
            {
                book.runs.push(RunStart {
                    revision: rev.clone(),
                    event: updated.next_event,
                    check: updated.next_check,
                });
            }
            let (next, bytes) = append(&mut ev, key, updated.next_event, events)?;
            updated.next_event = next;
            updated.history.event_bytes += bytes;
            let (next, bytes) = append(&mut ch, key, updated.next_check, checks)?;
            updated.next_check = next;
            updated.history.check_bytes += bytes;
            while updated.history.runs.len() > self.retention.full_runs.max(1) {
                summarise_oldest_run(&mut ev, &mut ch, key, &mut updated)?;
            }
            let book = &mut updated.history;
            let keep = self.retention;
            book.event_bytes -= prune(
                &mut ev,
                key,
                updated.next_event,
                keep.events,
                book.event_bytes,
                keep.event_bytes(),
            )?;
            book.check_bytes -= prune(
                &mut ch,
                key,
                updated.next_check,
                keep.checks,
                book.check_bytes,
                keep.check_bytes(),
            )?;
            let json = encode(key, &updated)?;
            let mut table = tx.open_table(ROLLOUTS)?;
            table.insert(key, json.as_str())?;
        }
        tx.commit()?;
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        record.next_event = updated.next_event;
        record.next_check = updated.next_check;
        record.history = updated.history;
        Ok(())
    }

    /// Bytes of history the store holds for `key` (events and checks, as JSON).
    pub fn history_bytes(&self, key: &str) -> Result<u64> {
        let tx = self.db.begin_read()?;
        let ev = tx.open_table(EVENTS)?;
        let ch = tx.open_table(CHECKS)?;
        Ok(range_bytes(&ev, key, 0, u64::MAX)? + range_bytes(&ch, key, 0, u64::MAX)?)
    }

    /// Tick commits through this handle since the store was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets a rollout completely: its record and its whole history, in one transaction.
    pub fn remove(&self, key: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(ROLLOUTS)?;
            table.remove(key)?;
            let mut table = tx.open_table(EVENTS)?;
            table.retain_in((key, 0u64)..=(key, u64::MAX), |_, _| false)?;
            let mut table = tx.open_table(CHECKS)?;
            table.retain_in((key, 0u64)..=(key, u64::MAX), |_, _| false)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The rollout's events, oldest first.
    pub fn events(&self, key: &str) -> Result<Vec<EventRecord>> {
        self.history(EVENTS, key)
    }

    /// The rollout's analysis checks, oldest first.
    pub fn checks(&self, key: &str) -> Result<Vec<CheckResult>> {
        self.history(CHECKS, key)
    }

    fn history<T: for<'de> Deserialize<'de>>(
        &self,
        def: TableDefinition<(&str, u64), &str>,
        key: &str,
    ) -> Result<Vec<T>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(def)?;
        let mut out = Vec::new();
        for entry in table.range((key, 0u64)..=(key, u64::MAX))? {
            let (_, v) = entry?;
            out.push(decode(key, v.value())?);
        }
        Ok(out)
    }

    /// Runs a blocking store operation off the async runtime's worker threads.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }
}

type History<'t> = redb::Table<'t, (&'static str, u64), &'static str>;

/// Appends `items`; returns the next sequence number and the bytes written.
fn append<T: Serialize>(
    table: &mut History<'_>,
    key: &str,
    mut next: u64,
    items: &[T],
) -> Result<(u64, u64)> {
    let mut bytes = 0;
    for item in items {
        let json = encode(key, item)?;
        table.insert((key, next), json.as_str())?;
        bytes += json.len() as u64;
        next += 1;
    }
    Ok((next, bytes))
}

/// Bytes of the entries of `key` with sequence numbers in `from..to`.
fn range_bytes(
    table: &impl ReadableTable<(&'static str, u64), &'static str>,
    key: &str,
    from: u64,
    to: u64,
) -> Result<u64> {
    let mut bytes = 0;
    for entry in table.range((key, from)..(key, to))? {
        let (_, v) = entry?;
        bytes += v.value().len() as u64;
    }
    Ok(bytes)
}

/// Deletes the oldest entries of `key` until at most `keep` remain and they hold at most
/// `max_bytes` (of `bytes` now). Returns the bytes deleted.
fn prune(
    table: &mut History<'_>,
    key: &str,
    next: u64,
    keep: u64,
    bytes: u64,
    max_bytes: u64,
) -> Result<u64> {
    let cut = next.saturating_sub(keep);
    let mut freed = 0;
    // Walk from the oldest entry: everything below the count cut goes, then more until the
    // rest fits in the byte cap.
    let mut end = None;
    for entry in table.range((key, 0u64)..(key, next))? {
        let (k, v) = entry?;
        let seq = k.value().1;
        if seq >= cut && bytes.saturating_sub(freed) <= max_bytes {
            end = Some(seq);
            break;
        }
        freed += v.value().len() as u64;
    }
    let end = end.unwrap_or(next);
    if freed > 0 {
        table.retain_in((key, 0u64)..(key, end), |_, _| false)?;
    }
    Ok(freed)
}

/// Replaces the oldest run kept in full by one `HistorySummarised` event at its first event's
/// place: how many events and checks it had (checks by verdict) and how it ended.
fn summarise_oldest_run(
    ev: &mut History<'_>,
    ch: &mut History<'_>,
    key: &str,
    record: &mut RolloutRecord,
) -> Result<()> {
    let book = &mut record.history;
    let old = book.runs.remove(0);
    let (ev_end, ch_end) = book
        .runs
        .first()
        .map_or((record.next_event, record.next_check), |r| {
            (r.event, r.check)
        });
    let mut events: Vec<EventRecord> = Vec::new();
    for entry in ev.range((key, old.event)..(key, ev_end))? {
        let (_, v) = entry?;
        events.push(decode(key, v.value())?);
    }
    let (mut pass, mut fail, mut inconclusive, mut n_checks) = (0u64, 0u64, 0u64, 0u64);
    for entry in ch.range((key, old.check)..(key, ch_end))? {
        let (_, v) = entry?;
        let c: CheckResult = decode(key, v.value())?;
        n_checks += 1;
        match c.verdict {
            sluice_core::spec::Verdict::Pass => pass += 1,
            sluice_core::spec::Verdict::Fail => fail += 1,
            sluice_core::spec::Verdict::Inconclusive => inconclusive += 1,
        }
    }
    let freed_ev = range_bytes(ev, key, old.event, ev_end)?;
    let freed_ch = range_bytes(ch, key, old.check, ch_end)?;
    ev.retain_in((key, old.event)..(key, ev_end), |_, _| false)?;
    ch.retain_in((key, old.check)..(key, ch_end), |_, _| false)?;
    book.event_bytes = book.event_bytes.saturating_sub(freed_ev);
    book.check_bytes = book.check_bytes.saturating_sub(freed_ch);
    let Some(last) = events.last() else {
        return Ok(()); // nothing of that run is left to summarise
    };
    let summary = EventRecord {
        at: last.at,
        reason: "HistorySummarised".into(),
        message: format!(
            "revision {}: {} events ({} warnings) and {n_checks} checks \
             ({pass} passed, {fail} failed, {inconclusive} inconclusive) from {} to {}, \
             last: {} ({})",
            old.revision,
            events.len(),
            events.iter().filter(|e| e.warning).count(),
            events[0].at.to_rfc3339(),
            last.at.to_rfc3339(),
            last.reason,
            last.phase,
        ),
        warning: false,
        phase: last.phase,
        step_index: last.step_index,
        canary_weight: last.canary_weight,
    };
    let json = encode(key, &summary)?;
    ev.insert((key, old.event), json.as_str())?;
    book.event_bytes += json.len() as u64;
    Ok(())
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|source| StoreError::Decode {
        key: key.to_string(),
        source,
    })
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode {
        key: key.to_string(),
        source,
    })
}

/// A short, stable (across builds and platforms) hash of a spec: FNV-1a over its JSON.
pub fn spec_hash(rollout: &Rollout) -> String {
    let json = serde_json::to_vec(&rollout.spec).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use sluice_core::spec::{Phase, Verdict};

    fn rollout(name: &str) -> Rollout {
        let yaml = format!(
            r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: shop}}
spec:
  upstreams: {{stable: "127.0.0.1:1", canary: "127.0.0.1:2"}}
  service: {{port: 8080}}
  strategy: {{canary: {{steps: [20, 50]}}}}
"#
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    fn record(name: &str) -> RolloutRecord {
        let r = rollout(name);
        RolloutRecord {
            spec_hash: spec_hash(&r),
            rollout: r,
            source: Some("/etc/sluice/reviews.yaml".into()),
            status: RolloutStatus::default(),
            upstreams: UpstreamState {
                stable_address: "127.0.0.1:1".into(),
                stable_revision: "127.0.0.1:1".into(),
                previous_stable_address: None,
                spec_stable: "127.0.0.1:1".into(),
                spec_stable_revision: None,
            },
            applied: None,
            retired: false,
            next_event: 0,
            next_check: 0,
            history: HistoryBook::default(),
        }
    }

    fn event(i: u32) -> EventRecord {
        EventRecord {
            at: Utc.timestamp_opt(1_700_000_000 + i64::from(i), 0).unwrap(),
            reason: format!("E{i}"),
            message: format!("event {i}"),
            warning: false,
            phase: Phase::Progressing,
            step_index: i,
            canary_weight: 20,
        }
    }

    fn check(i: u32) -> CheckResult {
        CheckResult {
            metric: "success-rate".into(),
            verdict: Verdict::Pass,
            value: Some(f64::from(i)),
            min: Some(99.0),
            max: None,
            reason: "ok".into(),
            at: Utc.timestamp_opt(1_700_000_000 + i64::from(i), 0).unwrap(),
            more_requests: None,
        }
    }

    #[test]
    fn tick_commit_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.redb");
        let mut rec = record("reviews");
        rec.status.phase = Phase::Progressing;
        rec.status.step_index = 1;
        rec.applied = Some(TrafficPlan::weighted(50));
        {
            let store = Store::open(&path, Retention::default()).unwrap();
            store
                .commit_tick("shop/reviews", &mut rec, &[event(0), event(1)], &[check(0)])
                .unwrap();
            assert_eq!(rec.next_event, 2);
            assert_eq!(rec.next_check, 1);
        }
        let store = Store::open(&path, Retention::default()).unwrap();
        let got = store.get("shop/reviews").unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::to_value(&rec).unwrap()
        );
        assert_eq!(got.status.step_index, 1);
        assert_eq!(got.applied, Some(TrafficPlan::weighted(50)));
        assert_eq!(
            store.events("shop/reviews").unwrap(),
            vec![event(0), event(1)]
        );
        assert_eq!(store.checks("shop/reviews").unwrap(), vec![check(0)]);
        assert!(store.get("shop/other").unwrap().is_none());
    }

    #[test]
    fn history_is_per_rollout_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb"), Retention::default()).unwrap();
        let mut a = record("a");
        let mut b = record("b");
        // Enough entries that lexical and numeric order of sequence numbers would differ.
        for i in 0..12 {
            store
                .commit_tick("shop/a", &mut a, &[event(i)], &[])
                .unwrap();
            store
                .commit_tick("shop/b", &mut b, &[event(100 + i)], &[])
                .unwrap();
        }
        let ea = store.events("shop/a").unwrap();
        assert_eq!(ea, (0..12).map(event).collect::<Vec<_>>());
        let eb = store.events("shop/b").unwrap();
        assert_eq!(eb, (100..112).map(event).collect::<Vec<_>>());
        let keys: Vec<String> = store.list().unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["shop/a", "shop/b"]);
    }

    #[test]
    fn retention_drops_the_oldest_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("s.redb"),
            Retention {
                events: 3,
                checks: 2,
                ..Retention::default()
            },
        )
        .unwrap();
        let mut rec = record("a");
        let mut other = record("ab");
        store
            .commit_tick("shop/ab", &mut other, &[event(50)], &[check(50)])
            .unwrap();
        for i in 0..5 {
            store
                .commit_tick("shop/a", &mut rec, &[event(i)], &[check(i)])
                .unwrap();
        }
        assert_eq!(
            store.events("shop/a").unwrap(),
            vec![event(2), event(3), event(4)]
        );
        assert_eq!(store.checks("shop/a").unwrap(), vec![check(3), check(4)]);
        // A rollout whose key extends another's is untouched by the other's pruning.
        assert_eq!(store.events("shop/ab").unwrap(), vec![event(50)]);
        assert_eq!(rec.next_event, 5);
    }

    /// Issue 16: history grew without bound (358 MB/h at 100 rollouts). A rollout run through
    /// 40 revisions of 60 checks and 6 events each stays under its cap the whole time, keeps
    /// its last runs in full, and older ones as one summary each while room allows.
    #[test]
    fn a_rollout_through_many_revisions_stays_under_its_history_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let cap = 32 * 1024;
        let keep = Retention {
            max_bytes: cap,
            full_runs: 2,
            ..Retention::default()
        };
        let store = Store::open(&path, keep).unwrap();
        let mut rec = record("a");
        let mut other = record("b");
        store
            .commit_tick("shop/b", &mut other, &[event(9)], &[check(9)])
            .unwrap();
        let mut i = 0;
        for rev in 0..40 {
            rec.status.canary_revision = Some(format!("v{rev}"));
            for tick in 0..60 {
                i += 1;
                let events: Vec<EventRecord> = if tick % 10 == 0 {
                    vec![event(i)]
                } else {
                    vec![]
                };
                let mut c = check(i);
                if tick % 7 == 0 {
                    c.verdict = Verdict::Fail;
                }
                store
                    .commit_tick("shop/a", &mut rec, &events, &[c])
                    .unwrap();
                let held = store.history_bytes("shop/a").unwrap();
                assert!(
                    held <= cap,
                    "revision {rev} tick {tick}: {held} bytes > {cap}"
                );
                assert_eq!(
                    held,
                    rec.history.event_bytes + rec.history.check_bytes,
                    "the bookkeeping follows what is stored"
                );
            }
        }
        // The current run in full (as long as it fits), the one before it too.
        let checks = store.checks("shop/a").unwrap();
        let last: Vec<u32> = checks
            .iter()
            .rev()
            .take(120)
            .map(|c| c.value.unwrap() as u32)
            .collect();
        assert_eq!(last, (i - 119..=i).rev().collect::<Vec<_>>());
        let events = store.events("shop/a").unwrap();
        let summaries: Vec<&EventRecord> = events
            .iter()
            .filter(|e| e.reason == "HistorySummarised")
            .collect();
        assert!(!summaries.is_empty(), "{events:?}");
        // The newest summary is of the run just before the two kept in full.
        let newest = summaries.last().unwrap();
        assert!(
            newest.message.starts_with("revision v37: 6 events (0 warnings) and 60 checks (51 passed, 9 failed, 0 inconclusive)"),
            "{}",
            newest.message
        );
        assert_eq!(rec.history.runs.len(), 2);
        // Another rollout's history is untouched.
        assert_eq!(store.events("shop/b").unwrap(), vec![event(9)]);
        drop(store);
        // Reopening compacts the file; the bookkeeping still matches.
        let store = Store::open(&path, keep).unwrap();
        let got = store.get("shop/a").unwrap().unwrap();
        assert_eq!(
            store.history_bytes("shop/a").unwrap(),
            got.history.event_bytes + got.history.check_bytes
        );
    }

    #[test]
    fn a_record_from_before_the_byte_counts_is_measured_on_its_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb"), Retention::default()).unwrap();
        let mut rec = record("a");
        store
            .commit_tick("shop/a", &mut rec, &[event(1)], &[check(1)])
            .unwrap();
        let mut old = rec.clone();
        old.history = HistoryBook::default();
        store
            .commit_tick("shop/a", &mut old, &[event(2)], &[])
            .unwrap();
        assert!(old.history.measured);
        assert_eq!(
            old.history.event_bytes + old.history.check_bytes,
            store.history_bytes("shop/a").unwrap()
        );
    }

    #[test]
    fn remove_forgets_record_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb"), Retention::default()).unwrap();
        let mut a = record("a");
        let mut b = record("b");
        store
            .commit_tick("shop/a", &mut a, &[event(1)], &[check(1)])
            .unwrap();
        store
            .commit_tick("shop/b", &mut b, &[event(2)], &[check(2)])
            .unwrap();
        store.remove("shop/a").unwrap();
        assert!(store.get("shop/a").unwrap().is_none());
        assert!(store.events("shop/a").unwrap().is_empty());
        assert!(store.checks("shop/a").unwrap().is_empty());
        assert_eq!(store.events("shop/b").unwrap(), vec![event(2)]);
    }

    #[test]
    fn spec_hash_changes_with_the_spec_only() {
        let a = rollout("a");
        let mut b = rollout("b");
        assert_eq!(spec_hash(&a), spec_hash(&b), "metadata is not part of it");
        b.spec.upstreams.as_mut().unwrap().canary = "127.0.0.1:3".into();
        assert_ne!(spec_hash(&a), spec_hash(&b));
        assert_eq!(spec_hash(&a).len(), 12);
    }

    #[test]
    fn open_reports_the_path_on_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory is not a store file.
        let err = match Store::open(dir.path(), Retention::default()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("opening a directory must fail"),
        };
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }
}
