//! Rollout files in a directory, picked up while sluice runs.
//!
//! ## Flow
//! [`DirLoader::scan`] is called about once a second. It lists `*.yaml`, `*.yml` and `*.json`
//! files (hidden files and editor backups are ignored), re-reads only files whose modification
//! time or size changed, and returns what changed as [`LoadEvent`]s:
//! - `Upsert`: a rollout appeared or its spec changed;
//! - `Remove`: its file (or the document in it) is gone: sluice stops managing it;
//! - `Invalid`: a file could not be loaded; the rollouts it defined before keep running with
//!   their last good spec (a file is applied completely or not at all, never half).
//!
//! Polling (not inotify) keeps this portable and simple; a second of delay is far below any
//! analysis interval. A file may hold several YAML documents, one Rollout each.
//!
//! ## Analysis templates
//! Files may also hold `kind: AnalysisTemplate` / `ClusterAnalysisTemplate` documents. After a
//! scan that changed anything, every Rollout is resolved against the templates of the whole
//! directory ([`sluice_core::analysis_template::resolve`]); the runner gets the resolved
//! Rollout, so an edited template reaches a Rollout as an `Upsert` and applies at its next
//! check (the engine records the template's new content hash). A Rollout whose templates do
//! not resolve (missing, wrong arguments) is `Invalid` and keeps its last good spec.
//!
//! ## Isolation
//! - A changed file is read only once it has not been modified for the settle time
//!   ([`SETTLE`] in `sluice standalone`): an editor or `cp` still writing it is not read
//!   half-way; the next scan picks it up.
//! - Reading is bounded before any parser runs (`sluice_core::validate::limits`: size, then a
//!   linear nesting pre-scan), so one file costs milliseconds, never minutes; scans run on a
//!   blocking thread, off the async runtime that serves HTTP and ticks rollouts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sluice_core::analysis_template::{TemplateSource, Templates};
use sluice_core::backend::FileProblem;
use sluice_core::spec::Rollout;
use sluice_core::validate::{Documents, Problem};

/// What changed in the directory since the last scan.
#[derive(Clone, Debug)]
pub enum LoadEvent {
    Upsert {
        rollout: Box<Rollout>,
        path: PathBuf,
    },
    Remove {
        key: String,
        path: PathBuf,
    },
    Invalid {
        path: PathBuf,
        /// Rollouts this file defined before; they keep their last good spec.
        keeps: Vec<String>,
        error: String,
    },
}

struct FileState {
    stamp: (Option<SystemTime>, u64),
    /// The file's last good rollouts, by key, as written (templates not resolved).
    good: BTreeMap<String, Rollout>,
    /// The file's last good analysis templates.
    templates: Vec<TemplateSource>,
    /// Why the file's current content could not be loaded (empty when it loaded).
    problems: Vec<FileProblem>,
}

pub struct DirLoader {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    settle: Duration,
    /// What each rollout last went out as (resolved): an edit of a file or a template that
    /// does not change it sends nothing.
    emitted: BTreeMap<String, Rollout>,
    /// Rollouts whose templates do not resolve now, with the problems (reported once each).
    unresolved: BTreeMap<String, Vec<FileProblem>>,
    /// Stored rollouts running in place of an unreadable file's ([`DirLoader::adopt`]): already
    /// resolved, not resolved again until their file loads.
    adopted: BTreeSet<String>,
}

/// How long a file must be left alone after its last modification before it is read.
pub const SETTLE: Duration = Duration::from_millis(500);

impl DirLoader {
    /// Reads changed files at once (see [`DirLoader::with_settle`]).
    pub fn new(dir: &Path) -> DirLoader {
        DirLoader {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
            settle: Duration::ZERO,
            emitted: BTreeMap::new(),
            unresolved: BTreeMap::new(),
            adopted: BTreeSet::new(),
        }
    }

    /// Leaves a changed file unread until it was not modified for `settle`.
    pub fn with_settle(mut self, settle: Duration) -> DirLoader {
        self.settle = settle;
        self
    }

    /// Treats `rollout` as the last good content of `path` (used at start-up when the file is
    /// invalid and the store holds the version that ran): a later fix of the file is compared
    /// against it, and dropping it from the file removes it.
    pub fn adopt(&mut self, path: &Path, rollout: Rollout) {
        if let Some(f) = self.files.get_mut(path) {
            let key = rollout.key();
            // A file that parsed (its templates did not resolve) keeps its own version.
            if !f.good.contains_key(&key) {
                f.good.insert(key.clone(), rollout.clone());
                self.adopted.insert(key.clone());
            }
            self.emitted.insert(key, rollout);
        }
    }

    /// A scan that reads every changed file, settled or not: the first scan at start-up, where
    /// a file left unread would count as gone (its stored rollout retired). A file read
    /// half-way there is only `Invalid`: its stored rollout keeps its last good spec.
    pub fn scan_all(&mut self) -> Vec<LoadEvent> {
        let settle = std::mem::replace(&mut self.settle, Duration::ZERO);
        let out = self.scan();
        self.settle = settle;
        out
    }

    /// One poll of the directory. An unreadable directory is one `Invalid` event for the
    /// directory itself; every rollout keeps running.
    pub fn scan(&mut self) -> Vec<LoadEvent> {
        let mut out = Vec::new();
        let mut changed = false;
        let listed = match list(&self.dir) {
            Ok(l) => l,
            Err(e) => {
                out.push(LoadEvent::Invalid {
                    path: self.dir.clone(),
                    keeps: self
                        .files
                        .values()
                        .flat_map(|f| f.good.keys().cloned())
                        .collect(),
                    error: format!("cannot read directory: {e}"),
                });
                return out;
            }
        };
        // Deleted files first, so a rollout moved to another file is not a duplicate.
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !listed.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(state) = self.files.remove(&path) {
                changed = true;
                for key in state.good.into_keys() {
                    self.forget(&key);
                    out.push(LoadEvent::Remove {
                        key,
                        path: path.clone(),
                    });
                }
            }
        }
        // Which file defines each rollout: one lookup per rollout instead of a search through
        // every file (start-up with N files was O(N²)).
        let mut owners: HashMap<String, PathBuf> = self
            .files
            .iter()
            .flat_map(|(p, f)| f.good.keys().map(move |k| (k.clone(), p.clone())))
            .collect();
        let now = SystemTime::now();
        for (path, stamp) in listed {
            if self.files.get(&path).is_some_and(|f| f.stamp == stamp) {
                continue;
            }
            // Still being written (modified within the settle time): next scan. A clock
            // behind the file's time counts as just modified.
            let fresh = stamp
                .0
                .is_some_and(|m| now.duration_since(m).map_or(true, |age| age < self.settle));
            if fresh && !self.settle.is_zero() {
                continue;
            }
            // Bounded read: a file over the size limit is refused without loading it.
            let shown = path.display().to_string();
            changed = true;
            let parsed = sluice_core::validate::read_file(&path)
                .and_then(|text| parse_documents(&text, &shown))
                .and_then(|docs| {
                    unique(&owners, &path, docs.rollouts)
                        .map(|r| (r, docs.templates))
                        .map_err(|e| vec![whole_file(&shown, "metadata", e)])
                });
            let previous = self.files.remove(&path);
            let (old, old_templates) = previous.map(|f| (f.good, f.templates)).unwrap_or_default();
            match parsed {
                Ok((new, templates)) => {
                    for key in old.keys() {
                        owners.remove(key);
                    }
                    for key in new.keys() {
                        owners.insert(key.clone(), path.clone());
                        self.adopted.remove(key);
                    }
                    for key in old.keys().filter(|k| !new.contains_key(*k)) {
                        self.forget(key);
                        out.push(LoadEvent::Remove {
                            key: key.clone(),
                            path: path.clone(),
                        });
                    }
                    self.files.insert(
                        path,
                        FileState {
                            stamp,
                            good: new,
                            templates,
                            problems: Vec::new(),
                        },
                    );
                }
                Err(problems) => {
                    out.push(LoadEvent::Invalid {
                        path: path.clone(),
                        keeps: old.keys().cloned().collect(),
                        error: joined(&problems),
                    });
                    // Remember the stamp so the same bad content is reported once, but keep
                    // the previous good rollouts.
                    self.files.insert(
                        path,
                        FileState {
                            stamp,
                            good: old,
                            templates: old_templates,
                            problems: problems.iter().map(FileProblem::from).collect(),
                        },
                    );
                }
            }
        }
        if changed {
            self.resolve_all(&mut out);
        }
        out
    }

    fn forget(&mut self, key: &str) {
        self.emitted.remove(key);
        self.unresolved.remove(key);
        self.adopted.remove(key);
    }

    /// Resolves every rollout against the directory's templates: an `Upsert` for each that
    /// goes out differently than before, an `Invalid` (once) for each that does not resolve.
    fn resolve_all(&mut self, out: &mut Vec<LoadEvent>) {
        let mut templates = Templates::default();
        for f in self.files.values() {
            f.templates
                .iter()
                .cloned()
                .for_each(|t| templates.insert(t));
        }
        for (path, f) in &self.files {
            for (key, raw) in &f.good {
                if self.adopted.contains(key) {
                    continue;
                }
                match sluice_core::analysis_template::resolve(raw, &templates) {
                    Ok(resolved) => {
                        self.unresolved.remove(key);
                        let same = self
                            .emitted
                            .get(key)
                            .is_some_and(|o| same_rollout(o, &resolved));
                        if !same {
                            self.emitted.insert(key.clone(), resolved.clone());
                            out.push(LoadEvent::Upsert {
                                rollout: Box::new(resolved),
                                path: path.clone(),
                            });
                        }
                    }
                    Err(found) => {
                        let shown = path.display().to_string();
                        let problems: Vec<Problem> = found
                            .iter()
                            .map(|p| whole_file(&shown, &p.path, p.message.clone()))
                            .collect();
                        let as_files: Vec<FileProblem> =
                            problems.iter().map(FileProblem::from).collect();
                        if self.unresolved.get(key) != Some(&as_files) {
                            self.unresolved.insert(key.clone(), as_files);
                            out.push(LoadEvent::Invalid {
                                path: path.clone(),
                                keeps: vec![key.clone()],
                                error: joined(&problems),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Every problem of every file that could not be loaded as it is now, by file.
    pub fn problems(&self) -> Vec<FileProblem> {
        self.files
            .values()
            .flat_map(|f| f.problems.iter().cloned())
            .chain(self.unresolved.values().flatten().cloned())
            .collect()
    }
}

fn same_rollout(a: &Rollout, b: &Rollout) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

type Stamp = (Option<SystemTime>, u64);

fn list(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, Stamp>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        let wanted = !name.starts_with('.')
            && !name.ends_with('~')
            && [".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| name.ends_with(ext));
        if !wanted {
            continue;
        }
        // A file removed between listing and stat is simply not there this time.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            out.insert(path, (meta.modified().ok(), meta.len()));
        }
    }
    Ok(out)
}

/// Parses and validates one file (every problem of every document, with field paths, from
/// [`sluice_core::validate`]); every Rollout in it must have standalone `upstreams`.
pub fn parse(text: &str, source: &str) -> Result<Vec<Rollout>, String> {
    parse_checked(text, source).map_err(|p| joined(&p))
}

/// [`parse`] with the problems as values (file, document, field path, position).
pub fn parse_checked(text: &str, source: &str) -> Result<Vec<Rollout>, Vec<Problem>> {
    parse_documents(text, source).map(|d| d.rollouts)
}

/// [`parse_checked`] keeping the file's analysis templates too.
pub fn parse_documents(text: &str, source: &str) -> Result<Documents, Vec<Problem>> {
    let docs = sluice_core::validate::load_documents(text, source)?;
    let missing: Vec<Problem> = docs
        .rollouts
        .iter()
        .filter(|r| r.spec.upstreams.is_none())
        .map(|r| {
            whole_file(
                source,
                "spec.upstreams",
                format!(
                    "required in standalone mode (stable and canary addresses) for rollout {}",
                    r.key()
                ),
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(docs)
    } else {
        Err(missing)
    }
}

fn whole_file(file: &str, path: &str, message: String) -> Problem {
    Problem {
        file: file.to_string(),
        document: None,
        path: path.to_string(),
        message,
        line: None,
        column: None,
        omitted: 0,
    }
}

fn joined(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Rejects rollouts another file already defines (the first file keeps it). `owners`: the
/// file defining each loaded rollout.
fn unique(
    owners: &HashMap<String, PathBuf>,
    path: &Path,
    rollouts: Vec<Rollout>,
) -> Result<BTreeMap<String, Rollout>, String> {
    let mut out = BTreeMap::new();
    for r in rollouts {
        let key = r.key();
        if let Some(other) = owners.get(&key).filter(|p| p.as_path() != path) {
            return Err(format!(
                "rollout {key} is already defined in {}",
                other.display()
            ));
        }
        if out.insert(key.clone(), r).is_some() {
            return Err(format!("rollout {key} is defined twice in this file"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Keys of every rollout a set of events leaves defined (for tests and logs).
    fn keys(events: &[LoadEvent]) -> BTreeSet<String> {
        events
            .iter()
            .filter_map(|e| match e {
                LoadEvent::Upsert { rollout, .. } => Some(rollout.key()),
                _ => None,
            })
            .collect()
    }

    fn doc(name: &str, canary: &str) -> String {
        format!(
            r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  upstreams: {{stable: "127.0.0.1:9001", canary: "{canary}"}}
  service: {{port: 8080}}
  strategy: {{canary: {{steps: [20, 50, 80]}}}}
  analysis: {{interval: 1s}}
"#
        )
    }

    /// Writes a file and makes sure its stamp differs from the previous write (the size may be
    /// equal and coarse file systems keep mtimes in whole seconds).
    fn write(path: &Path, text: &str) {
        let before = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        std::fs::write(path, text).unwrap();
        if let Some(before) = before {
            let f = std::fs::File::options().write(true).open(path).unwrap();
            let later = before + std::time::Duration::from_secs(2);
            f.set_modified(later).unwrap();
        }
    }

    #[test]
    fn picks_up_new_changed_and_removed_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = DirLoader::new(dir.path());
        assert!(l.scan().is_empty());

        let a = dir.path().join("a.yaml");
        write(&a, &doc("a", "127.0.0.1:9002"));
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::write(dir.path().join(".a.yaml.swp"), "ignored").unwrap();
        let ev = l.scan();
        assert_eq!(keys(&ev), BTreeSet::from(["default/a".to_string()]));
        assert_eq!(ev.len(), 1);
        assert!(l.scan().is_empty(), "unchanged file: no event");

        write(&a, &doc("a", "127.0.0.1:9003"));
        let ev = l.scan();
        match ev.as_slice() {
            [LoadEvent::Upsert { rollout, .. }] => {
                assert_eq!(
                    rollout.spec.upstreams.as_ref().unwrap().canary,
                    "127.0.0.1:9003"
                )
            }
            other => panic!("expected one upsert, got {other:?}"),
        }

        std::fs::remove_file(&a).unwrap();
        let ev = l.scan();
        assert!(
            matches!(ev.as_slice(), [LoadEvent::Remove { key, .. }] if key == "default/a"),
            "{ev:?}"
        );
    }

    #[test]
    fn bad_edit_keeps_the_previous_version_and_reports_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = DirLoader::new(dir.path());
        let a = dir.path().join("a.yaml");
        write(&a, &doc("a", "127.0.0.1:9002"));
        l.scan();

        write(
            &a,
            &doc("a", "127.0.0.1:9002").replace("steps: [20, 50, 80]", "steps: [20, fifty]"),
        );
        let ev = l.scan();
        match ev.as_slice() {
            [LoadEvent::Invalid { keeps, error, .. }] => {
                assert_eq!(keeps, &vec!["default/a".to_string()]);
                assert!(error.contains("spec.strategy.canary.steps[1]"), "{error}");
            }
            other => panic!("expected invalid, got {other:?}"),
        }
        assert!(l.scan().is_empty(), "the same bad file is reported once");

        // Fixing it with the same spec as before is not a change.
        write(&a, &doc("a", "127.0.0.1:9002"));
        assert!(l.scan().is_empty());
        write(&a, &doc("a", "127.0.0.1:9004"));
        assert_eq!(keys(&l.scan()), BTreeSet::from(["default/a".to_string()]));
    }

    #[test]
    fn one_bad_document_rejects_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = DirLoader::new(dir.path());
        let f = dir.path().join("both.yaml");
        let bad = doc("b", "127.0.0.1:9002").replace("upstreams", "upstream");
        write(&f, &format!("{}---\n{}", doc("a", "127.0.0.1:9002"), bad));
        let ev = l.scan();
        match ev.as_slice() {
            [LoadEvent::Invalid { keeps, error, .. }] => {
                assert!(keeps.is_empty());
                assert!(error.contains("document 2"), "{error}");
                assert!(error.contains("upstream"), "{error}");
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn duplicate_rollouts_across_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = DirLoader::new(dir.path());
        write(&dir.path().join("a.yaml"), &doc("x", "127.0.0.1:9002"));
        l.scan();
        write(&dir.path().join("b.yaml"), &doc("x", "127.0.0.1:9003"));
        let ev = l.scan();
        match ev.as_slice() {
            [LoadEvent::Invalid { error, .. }] => {
                assert!(error.contains("already defined in"), "{error}")
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn parse_requires_standalone_fields() {
        let no_upstreams = doc("a", "127.0.0.1:9002").replace(
            r#"  upstreams: {stable: "127.0.0.1:9001", canary: "127.0.0.1:9002"}"#,
            "",
        );
        let e = parse(&no_upstreams, "a.yaml").unwrap_err();
        assert!(e.contains("upstreams"), "{e}");
        // Valid for Kubernetes, not here.
        let kube_only = doc("a", "127.0.0.1:9002").replace(
            r#"  upstreams: {stable: "127.0.0.1:9001", canary: "127.0.0.1:9002"}"#,
            "  targetRef: {name: reviews}",
        );
        let e = parse(&kube_only, "a.yaml").unwrap_err();
        assert!(
            e.contains("spec.upstreams: required in standalone mode"),
            "{e}"
        );
        let e = parse(&doc("a", "localhost"), "a.yaml").unwrap_err();
        assert!(e.contains("spec.upstreams.canary"), "{e}");
        let e = parse(
            &doc("a", "127.0.0.1:9002").replace("kind: Rollout", "kind: Other"),
            "a.yaml",
        )
        .unwrap_err();
        assert!(e.contains("kind"), "{e}");
        let e = parse(
            &doc("a", "127.0.0.1:9002").replace("interval: 1s", "interval: soon"),
            "a.yaml",
        )
        .unwrap_err();
        assert!(e.contains("spec.analysis.interval"), "{e}");
        assert!(parse("", "a.yaml").is_err());
        let ok = parse(&doc("a", "127.0.0.1:9002"), "a.yaml").unwrap();
        assert_eq!(ok[0].key(), "default/a");
    }

    /// Issue 15: a 200 KB file of nested `[` took 63 s to reject and held up every other
    /// edit meanwhile. Now it is refused in well under a second in the same scan that
    /// applies the other file's edit.
    #[test]
    fn a_nested_bracket_file_is_refused_fast_while_another_edit_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), doc("a", "127.0.0.1:9002")).unwrap();
        let mut l = DirLoader::new(dir.path());
        assert_eq!(keys(&l.scan()), BTreeSet::from(["default/a".to_string()]));
        std::fs::write(dir.path().join("bomb.yaml"), "[".repeat(200 * 1024)).unwrap();
        std::fs::write(dir.path().join("a.yaml"), doc("a", "127.0.0.1:9003")).unwrap();
        let start = std::time::Instant::now();
        let events = l.scan();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(1), "scan took {took:?}");
        assert_eq!(keys(&events), BTreeSet::from(["default/a".to_string()]));
        let refused = events.iter().find_map(|e| match e {
            LoadEvent::Invalid { path, error, .. } if path.ends_with("bomb.yaml") => Some(error),
            _ => None,
        });
        assert!(refused.is_some_and(|e| e.contains("nest")), "{events:?}");
    }

    /// A file modified within the settle time is left for a later scan (it may be half
    /// written); the first scan at start-up reads it anyway.
    #[test]
    fn a_file_still_being_written_is_read_once_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let settle = Duration::from_millis(300);
        let mut l = DirLoader::new(dir.path()).with_settle(settle);
        let text = doc("a", "127.0.0.1:9002");
        // Half a file, just written.
        std::fs::write(dir.path().join("a.yaml"), &text[..text.len() / 2]).unwrap();
        assert!(l.scan().is_empty(), "read while being written");
        std::fs::write(dir.path().join("a.yaml"), &text).unwrap();
        assert!(l.scan().is_empty());
        std::thread::sleep(settle + Duration::from_millis(50));
        let events = l.scan();
        assert_eq!(
            keys(&events),
            BTreeSet::from(["default/a".to_string()]),
            "{events:?}"
        );
        assert_eq!(
            events.len(),
            1,
            "no Invalid for the half-written state: {events:?}"
        );

        let mut first = DirLoader::new(dir.path()).with_settle(Duration::from_secs(3600));
        assert_eq!(
            keys(&first.scan_all()),
            BTreeSet::from(["default/a".to_string()])
        );
    }

    const TEMPLATED: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: a}
spec:
  upstreams: {stable: "127.0.0.1:9001", canary: "127.0.0.1:9002"}
  service: {port: 8080}
  strategy: {canary: {steps: [50]}}
  analysis:
    interval: 1s
    templates: [{name: errors, args: {cluster: "{{ canary }}"}}]
"#;

    fn template(max: &str) -> String {
        format!(
            r#"apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: errors}}
spec:
  args: [{{name: cluster}}, {{name: max, type: number, default: {max}}}]
  metrics:
    - name: errors
      query: 'sum(rate(envoy_cluster_upstream_rq_xx{{envoy_cluster_name="{{{{ args.cluster }}}}",envoy_response_code_class="5"}}[{{{{ interval }}}}]))'
      thresholds: {{max: "{{{{ args.max }}}}"}}
"#
        )
    }

    fn upserted(events: &[LoadEvent]) -> Vec<Rollout> {
        events
            .iter()
            .filter_map(|e| match e {
                LoadEvent::Upsert { rollout, .. } => Some((**rollout).clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn template_files_next_to_rollouts_are_resolved_and_their_edits_reach_the_rollout() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = DirLoader::new(dir.path());
        let r = dir.path().join("a.yaml");
        let t = dir.path().join("errors.yaml");

        // The template is missing: the rollout does not start; the problem names the field.
        write(&r, TEMPLATED);
        let ev = l.scan();
        assert!(upserted(&ev).is_empty(), "{ev:?}");
        match ev.as_slice() {
            [LoadEvent::Invalid { keeps, error, .. }] => {
                assert_eq!(keeps, &["default/a".to_string()]);
                assert!(
                    error.contains(
                        "spec.analysis.templates[0].name: AnalysisTemplate default/errors not found"
                    ),
                    "{error}"
                );
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert_eq!(l.problems().len(), 1);
        assert!(l.scan().is_empty(), "reported once");

        // The template appears: the rollout starts with its metric, arguments substituted.
        write(&t, &template("1"));
        let ev = l.scan();
        let up = upserted(&ev);
        assert_eq!(up.len(), 1, "{ev:?}");
        let m = &up[0].spec.analysis.metrics[0];
        assert!(
            m.query
                .as_deref()
                .unwrap()
                .contains(r#"envoy_cluster_name="{{ canary }}""#),
            "{m:?}"
        );
        assert_eq!(m.thresholds.max, Some(1.0));
        let first = up[0].spec.analysis.templates[0].recorded().unwrap();
        assert!(l.problems().is_empty());

        // An edit of the template alone reaches the rollout, under a new version.
        write(&t, &template("5"));
        let up = upserted(&l.scan());
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].spec.analysis.metrics[0].thresholds.max, Some(5.0));
        let second = up[0].spec.analysis.templates[0].recorded().unwrap();
        assert_ne!(first, second);
        assert!(second.starts_with("AnalysisTemplate errors@"), "{second}");

        // A broken template: the rollout keeps its last good spec, the file's problem shows.
        write(&t, &template("lots"));
        let ev = l.scan();
        assert!(upserted(&ev).is_empty(), "{ev:?}");
        assert!(
            l.problems()
                .iter()
                .any(|p| p.path == "spec.args[1].default"),
            "{:?}",
            l.problems()
        );
    }
}
