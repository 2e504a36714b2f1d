//! Loading and checking Rollout files: every document, every problem, each with its field path.
//!
//! ## Flow
//! 0. File-level [`limits`] first: size, then nesting depth by a linear pre-scan
//!    ([`nesting`]) so the YAML parser never walks a pathologically nested input; a leading
//!    UTF-8 byte-order mark is dropped.
//! 1. [`yaml::documents`] splits a YAML stream into documents and converts each to JSON
//!    (syntax errors come back with line and column; YAML-only values with their path).
//! 2. The envelope (`apiVersion`, `kind`, `metadata`) is checked here; `spec` and `status` are
//!    walked against the CRD's own OpenAPI schema ([`schema::check`]), generated from the Rust
//!    types, so unknown fields, wrong types and bad enum values are all found in one pass.
//! 3. Unknown fields are dropped and the document is parsed into [`Rollout`]
//!    (`serde_path_to_error` names the field of anything the schema let through), then the
//!    cross-field [`rules`] run. Typos elsewhere therefore do not hide rule violations.
//!
//! The standalone runner, the controller's admission of specs, `sluice validate` and
//! `sluice plan` all load through [`load_str`] / [`load_file`] / [`load_files`]: one definition
//! of "a valid Rollout". Nothing here panics on any input.

pub mod limits;
pub mod nesting;
pub mod re2;
pub mod rules;
pub mod schema;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::analysis_template::{self, AnalysisTemplateSpec, Scope, TemplateSource, Templates};
use crate::spec::{API_VERSION, KIND, Rollout};

/// One thing wrong with a file. Displays as `<file>: <path>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file (or source name) as given.
    pub file: String,
    /// 1-based document index, set when the file holds more than one document.
    pub document: Option<usize>,
    /// Field path like `spec.strategy.canary.steps[1]`; empty for whole-file problems.
    pub path: String,
    pub message: String,
    /// Position of YAML syntax errors.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// On the last line of a file's problems when there were more than
    /// [`limits::MAX_PROBLEMS`]: how many were left out (the line stands for them).
    pub omitted: usize,
}

/// How many problems `problems` stands for, counting the ones a capped list left out.
pub fn count(problems: &[Problem]) -> usize {
    problems.iter().map(|p| p.omitted.max(1)).sum()
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(d) = self.document {
            write!(f, " (document {d})")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        } else if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ": line {l}, column {c}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Problem {}

/// A field path being built: `spec`, `spec.strategy`, `spec.strategy.canary.steps[1]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn root(name: &str) -> Self {
        FieldPath::default().field(name)
    }

    pub fn field(&self, name: &str) -> Self {
        let simple = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let mut s = self.0.clone();
        if simple {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(name);
        } else {
            // Keys like `app.kubernetes.io/name` cannot be written with dots.
            s.push_str(&format!("[{name:?}]"));
        }
        FieldPath(s)
    }

    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses and checks every document of `text`. `source` names it in problems (a file path).
/// All problems of all documents come back together.
pub fn load_str(text: &str, source: &str) -> Result<Vec<Rollout>, Vec<Problem>> {
    load_documents(text, source).map(|d| d.rollouts)
}

/// What a file holds: Rollouts and analysis templates (`kind: AnalysisTemplate` /
/// `ClusterAnalysisTemplate`, each checked on its own by [`analysis_template::check`]).
#[derive(Clone, Debug, Default)]
pub struct Documents {
    pub rollouts: Vec<Rollout>,
    pub templates: Vec<TemplateSource>,
}

/// [`load_str`] keeping the analysis templates of the file too.
pub fn load_documents(text: &str, source: &str) -> Result<Documents, Vec<Problem>> {
    // Editors on Windows write a byte-order mark; libyaml would keep the column it takes, so a
    // `---` on the first line would not start a document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.len() > limits::MAX_FILE_BYTES {
        return Err(vec![too_large(source, text.len() as u64)]);
    }
    if let Err(at) = nesting::check(text, limits::MAX_NESTING) {
        return Err(vec![Problem {
            line: Some(at.line),
            column: Some(at.column),
            ..problem(
                source,
                None,
                "",
                &format!(
                    "nested deeper than {} levels; a Rollout needs about 10 \
                     (refused before parsing)",
                    limits::MAX_NESTING
                ),
            )
        }]);
    }
    load_checked(text, source).map_err(|problems| capped(problems, source))
}

fn too_large(source: &str, len: u64) -> Problem {
    problem(
        source,
        None,
        "",
        &format!(
            "file is {len} bytes; at most {} (1 MiB) are accepted",
            limits::MAX_FILE_BYTES
        ),
    )
}

/// At most [`limits::MAX_PROBLEMS`], then one line for the rest.
fn capped(mut problems: Vec<Problem>, source: &str) -> Vec<Problem> {
    if problems.len() > limits::MAX_PROBLEMS {
        let more = problems.len() - limits::MAX_PROBLEMS;
        problems.truncate(limits::MAX_PROBLEMS);
        problems.push(Problem {
            omitted: more,
            ..problem(source, None, "", &format!("… and {more} more problems"))
        });
    }
    problems
}

fn load_checked(text: &str, source: &str) -> Result<Documents, Vec<Problem>> {
    let (docs, yaml_problems) = yaml::documents(text);
    let multi = docs.len() + yaml_problems.len() > 1
        || docs.iter().any(|d| d.index > 1)
        || yaml_problems.iter().any(|p| p.document > 1);
    let doc_label = |i: usize| multi.then_some(i);
    let mut problems: Vec<Problem> = yaml_problems
        .into_iter()
        .map(|p| Problem {
            file: source.to_string(),
            document: doc_label(p.document),
            path: p.path,
            message: p.message,
            line: p.line,
            column: p.column,
            omitted: 0,
        })
        .collect();
    if docs.is_empty() && problems.is_empty() {
        problems.push(problem(
            source,
            None,
            "",
            "no Rollout in this file (it is empty)",
        ));
    }
    let mut rollouts = Vec::new();
    let mut templates = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for doc in docs {
        let d = doc_label(doc.index);
        if let Some(scope) = template_kind(&doc.value) {
            match check_template_document(doc.value, scope) {
                Ok(t) => templates.push(t),
                Err(found) => problems.extend(
                    found
                        .into_iter()
                        .map(|(path, message)| problem(source, d, &path, &message)),
                ),
            }
            continue;
        }
        match check_document(doc.value) {
            Ok(r) => {
                let key = r.key();
                if let Some(first) = seen.get(&key) {
                    problems.push(problem(
                        source,
                        d,
                        "metadata.name",
                        &format!("duplicate Rollout {key} (also document {first})"),
                    ));
                } else {
                    seen.insert(key, doc.index);
                }
                rollouts.push(r);
            }
            Err(found) => problems.extend(
                found
                    .into_iter()
                    .map(|(path, message)| problem(source, d, &path, &message)),
            ),
        }
    }
    if problems.is_empty() {
        Ok(Documents {
            rollouts,
            templates,
        })
    } else {
        Err(problems)
    }
}

fn template_kind(doc: &Value) -> Option<Scope> {
    match doc.get("kind").and_then(Value::as_str) {
        Some(analysis_template::KIND) => Some(Scope::Namespaced),
        Some(analysis_template::CLUSTER_KIND) => Some(Scope::Cluster),
        _ => None,
    }
}

/// An analysis template document: envelope, typed parse (the first wrong field with its
/// path), then [`analysis_template::check`]. Its version is the content hash.
fn check_template_document(
    value: Value,
    scope: Scope,
) -> Result<TemplateSource, Vec<(String, String)>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Doc {
        api_version: String,
        #[allow(dead_code)] // matched before parsing
        kind: String,
        metadata: Meta,
        spec: AnalysisTemplateSpec,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        name: Option<String>,
        namespace: Option<String>,
    }
    let doc: Doc = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        vec![(path, one_line(&e.inner().to_string()))]
    })?;
    let mut found = Vec::new();
    if doc.api_version != API_VERSION {
        found.push((
            "apiVersion".into(),
            format!("`{}` is not supported; use {API_VERSION}", doc.api_version),
        ));
    }
    let name = doc.metadata.name.unwrap_or_default();
    if name.is_empty() {
        found.push((
            "metadata.name".into(),
            "required: Rollouts reference the template by name".into(),
        ));
    }
    if scope == Scope::Cluster && doc.metadata.namespace.is_some() {
        found.push((
            "metadata.namespace".into(),
            "a ClusterAnalysisTemplate belongs to no namespace".into(),
        ));
    }
    found.extend(
        analysis_template::check(&doc.spec)
            .into_iter()
            .map(|p| (p.path, p.message)),
    );
    if !found.is_empty() {
        return Err(found);
    }
    Ok(TemplateSource {
        scope,
        namespace: match scope {
            Scope::Namespaced => Some(doc.metadata.namespace.unwrap_or_else(|| "default".into())),
            Scope::Cluster => None,
        },
        name,
        version: analysis_template::content_hash(&doc.spec),
        spec: doc.spec,
    })
}

/// Rollouts of `paths` (files and directories, as [`load_files`]) with their analysis
/// templates resolved ([`analysis_template::resolve`]) against the templates found in those
/// files and in the directory of each file given: what `sluice validate`, `plan` and
/// `analyze` check and show. A missing template or argument is a problem at its field path.
pub fn load_resolved(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Rollout)>, Vec<Problem>> {
    let mut problems = Vec::new();
    let files = expand(paths, &mut problems);
    let mut neighbours = Vec::new();
    for p in paths.iter().filter(|p| !p.is_dir()) {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        if let Ok(entries) = std::fs::read_dir(dir.unwrap_or(Path::new("."))) {
            neighbours.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.is_file()
                            && f.extension()
                                .and_then(|e| e.to_str())
                                .is_some_and(|e| e == "yaml" || e == "yml")
                    }),
            );
        }
    }
    let mut templates = Templates::default();
    // Templates next to a given file are read, not checked: a broken neighbour is that
    // file's problem (`sluice validate` it), and a template it held is then "not found".
    for f in neighbours.iter().filter(|n| !files.contains(n)) {
        if let Ok(docs) = read_file(f).and_then(|t| load_documents(&t, &f.display().to_string())) {
            docs.templates.into_iter().for_each(|t| templates.insert(t));
        }
    }
    let mut rollouts = Vec::new();
    for f in &files {
        match read_file(f).and_then(|t| load_documents(&t, &f.display().to_string())) {
            Ok(docs) => {
                docs.templates.into_iter().for_each(|t| templates.insert(t));
                rollouts.extend(docs.rollouts.into_iter().map(|r| (f.clone(), r)));
            }
            Err(p) => problems.extend(p),
        }
    }
    let mut out = Vec::new();
    for (f, r) in rollouts {
        match analysis_template::resolve(&r, &templates) {
            Ok(r) => out.push((f, r)),
            Err(found) => problems.extend(
                found
                    .into_iter()
                    .map(|p| problem(&f.display().to_string(), None, &p.path, &p.message)),
            ),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The cross-field rules for a Rollout that is already typed (e.g. read from the Kubernetes
/// API, whose schema checks have run): what the controller must refuse to act on.
pub fn check_rollout(rollout: &Rollout, source: &str) -> Vec<Problem> {
    let mut findings = rules::Findings::default();
    rules::check_rollout(rollout, &mut findings);
    findings
        .0
        .into_iter()
        .map(|(path, message)| problem(source, None, &path, &message))
        .collect()
}

/// What is valid but probably not meant, as `field path: message` (printed by `sluice validate`
/// as warnings; the Rollout still runs).
pub fn warnings(rollout: &Rollout) -> Vec<String> {
    let spec = &rollout.spec;
    let mut out = Vec::new();
    let rollout_hooks = spec
        .webhooks
        .iter()
        .any(|w| w.kind == crate::spec::WebhookKind::Rollout);
    if !spec.skip_analysis
        && spec.analysis.metrics.is_empty()
        && spec.analysis.templates.is_empty()
        && !rollout_hooks
    {
        out.push(
            "spec.analysis.metrics: no metrics and no `rollout` webhooks: every step passes after              one interval without any evidence about the new version; add metrics, or set              `skipAnalysis: true` to say that is intended"
                .to_string(),
        );
    }
    out
}

/// Reads and checks one file.
pub fn load_file(path: impl AsRef<Path>) -> Result<Vec<Rollout>, Vec<Problem>> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let text = read_file(path)?;
    load_str(&text, &name)
}

/// Reads a Rollout file, refusing one larger than [`limits::MAX_FILE_BYTES`] without reading
/// more than that (a 10 GB file is not loaded into memory to be refused). The error is one
/// problem.
pub fn read_file(path: &Path) -> Result<String, Vec<Problem>> {
    use std::io::Read;
    let name = path.display().to_string();
    let cannot = |e: std::io::Error| vec![problem(&name, None, "", &format!("cannot read: {e}"))];
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(limits::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > limits::MAX_FILE_BYTES {
        let len = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(vec![too_large(&name, len)]);
    }
    String::from_utf8(bytes).map_err(|e| {
        vec![problem(
            &name,
            None,
            "",
            &format!(
                "cannot read: not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )]
    })
}

/// The files `paths` name: each file as given, each directory's `*.yaml` / `*.yml` files
/// (recursively). An empty or unreadable directory is a problem.
fn expand(paths: &[PathBuf], problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            match yaml_files(p) {
                Ok(found) if found.is_empty() => problems.push(problem(
                    &p.display().to_string(),
                    None,
                    "",
                    "no .yaml or .yml files in this directory",
                )),
                Ok(found) => files.extend(found),
                Err(e) => problems.push(problem(
                    &p.display().to_string(),
                    None,
                    "",
                    &format!("cannot read directory: {e}"),
                )),
            }
        } else {
            files.push(p.clone());
        }
    }
    files
}

/// Checks files and directories (searched recursively for `*.yaml` / `*.yml`). Returns each
/// rollout with the file it came from. Files are checked on their own: alternative versions of
/// one rollout (like the examples in `rollouts/`) may share a name; a runner that loads them
/// together calls [`duplicates`].
pub fn load_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Rollout)>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut out: Vec<(PathBuf, Rollout)> = Vec::new();
    let files = expand(paths, &mut problems);
    for f in files {
        match load_file(&f) {
            Ok(rs) => out.extend(rs.into_iter().map(|r| (f.clone(), r))),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Rollouts loaded together must have distinct `namespace/name`s: one problem per repeat.
pub fn duplicates(loaded: &[(PathBuf, Rollout)]) -> Vec<Problem> {
    let mut owner: BTreeMap<String, &Path> = BTreeMap::new();
    let mut problems = Vec::new();
    for (file, r) in loaded {
        let key = r.key();
        match owner.get(&key) {
            Some(first) => problems.push(problem(
                &file.display().to_string(),
                None,
                "metadata.name",
                &format!("duplicate Rollout {key} (also in {})", first.display()),
            )),
            None => {
                owner.insert(key, file);
            }
        }
    }
    problems
}

/// `*.yaml` / `*.yml` files under `dir`, recursively, sorted (stable output and test order).
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn problem(file: &str, document: Option<usize>, path: &str, message: &str) -> Problem {
    Problem {
        file: file.to_string(),
        document,
        path: path.to_string(),
        message: message.to_string(),
        line: None,
        column: None,
        omitted: 0,
    }
}

/// The checked-in CRD (`sluice crd`, generated from the Rust types; CI fails when it drifts).
/// Validation walks its schema, so files are checked against exactly what the API server
/// enforces, with or without the `crd` feature.
const CRD_YAML: &str = include_str!("../../../../deploy/crds/rollout.yaml");

/// The CRD's OpenAPI schema, parsed once.
fn crd_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_yaml::from_str::<Value>(CRD_YAML)
            .ok()
            .and_then(|crd| {
                crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
                    .cloned()
            })
            // Without a schema the typed parse still catches unknown fields (one at a time).
            .unwrap_or(Value::Bool(true))
    })
}

/// The schema validation walks (for the test that proves it equals the generated CRD's).
pub fn embedded_crd_schema() -> &'static Value {
    crd_schema()
}

/// ObjectMeta fields a file may carry (the rest of ObjectMeta is server-set, but allowed so
/// `kubectl get -o yaml` output validates).
const METADATA_FIELDS: [&str; 15] = [
    "name",
    "namespace",
    "labels",
    "annotations",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "selfLink",
];

const TOP_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// Every problem of one document as (path, message), or the Rollout.
fn check_document(mut value: Value) -> Result<Rollout, Vec<(String, String)>> {
    let mut found: Vec<(String, String)> = Vec::new();
    let Some(obj) = value.as_object_mut() else {
        return Err(vec![(
            String::new(),
            format!(
                "expected a Rollout object, found {}",
                schema::describe(&value)
            ),
        )]);
    };
    match obj.get("apiVersion") {
        None => found.push((
            "apiVersion".into(),
            format!("required field is missing (use {API_VERSION})"),
        )),
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(v) => found.push((
            "apiVersion".into(),
            format!("{} is not supported; use {API_VERSION}", shown(v)),
        )),
    }
    match obj.get("kind") {
        None => found.push((
            "kind".into(),
            format!("required field is missing (use {KIND})"),
        )),
        Some(Value::String(v)) if v == KIND => {}
        Some(v) => {
            // Another kind of object (a Deployment in the same stream, say): checking its spec
            // against the Rollout schema would only bury this one message under noise.
            found.push(("kind".into(), format!("{} is not a {KIND}", shown(v))));
            return Err(found);
        }
    }
    let mut only_unknown_fields = true;
    let unknown_top: Vec<String> = obj
        .keys()
        .filter(|k| !TOP_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in unknown_top {
        found.push((
            FieldPath::root(&k).to_string(),
            schema::unknown_field_message(&k, &TOP_FIELDS),
        ));
        obj.remove(&k);
    }
    check_metadata(obj.get("metadata"), &mut found, &mut only_unknown_fields);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, _| METADATA_FIELDS.contains(&k.as_str()));
    }

    let root = crd_schema();
    for part in ["spec", "status"] {
        let sub = root
            .get("properties")
            .and_then(|p| p.get(part))
            .cloned()
            .unwrap_or(Value::Bool(true));
        match obj.get_mut(part) {
            None if part == "spec" => {
                found.push(("spec".into(), "required field is missing".into()));
                only_unknown_fields = false;
            }
            None => {}
            Some(v) => {
                for m in schema::check(v, &sub, &FieldPath::root(part)) {
                    only_unknown_fields &= m.unknown_field;
                    found.push((m.path, m.message));
                }
                schema::prune_unknown(v, &sub);
            }
        }
    }
    if !only_unknown_fields {
        // Types are wrong somewhere: a typed parse would only repeat the first of them.
        return Err(found);
    }
    let rollout: Rollout = match serde_path_to_error::deserialize(&value) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            found.push((path, one_line(&e.inner().to_string())));
            return Err(found);
        }
    };
    let mut findings = rules::Findings::default();
    rules::check_rollout(&rollout, &mut findings);
    found.extend(findings.0);
    if found.is_empty() {
        Ok(rollout)
    } else {
        Err(found)
    }
}

fn check_metadata(meta: Option<&Value>, found: &mut Vec<(String, String)>, typed_ok: &mut bool) {
    let p = FieldPath::root("metadata");
    let Some(meta) = meta else {
        found.push((
            "metadata".into(),
            "required field is missing (metadata.name names the rollout)".into(),
        ));
        *typed_ok = false;
        return;
    };
    let Some(m) = meta.as_object() else {
        found.push((
            p.to_string(),
            format!("expected an object, found {}", schema::describe(meta)),
        ));
        *typed_ok = false;
        return;
    };
    for (k, v) in m {
        let fp = p.field(k);
        if !METADATA_FIELDS.contains(&k.as_str()) {
            found.push((
                fp.to_string(),
                schema::unknown_field_message(k, &METADATA_FIELDS),
            ));
            continue;
        }
        let expected = match k.as_str() {
            "name" | "namespace" | "generateName" => serde_json::json!({"type": "string"}),
            "labels" | "annotations" => serde_json::json!({
                "type": "object",
                "nullable": true,
                "additionalProperties": {"type": "string"}
            }),
            // Server-set fields: the typed parse checks them.
            _ => continue,
        };
        for m in schema::check(v, &expected, &fp) {
            found.push((m.path, m.message));
            *typed_ok = false;
        }
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => schema::describe(other),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
