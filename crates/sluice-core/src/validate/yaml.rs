//! YAML streams to JSON values: every document of a file, syntax errors with line and column,
//! and the YAML-only things JSON (and the Kubernetes API) cannot hold reported with their path.

use serde::Deserialize;
use serde_json::{Map, Number, Value};
use serde_yaml::Value as Yaml;

use super::FieldPath;
use super::limits::{MAX_COLLECTION_ITEMS, MAX_DOCUMENTS};

/// A document's position in its stream (1-based) and its content.
pub struct Document {
    pub index: usize,
    pub value: Value,
}

/// A syntax error, or a YAML construct that has no JSON equivalent.
pub struct YamlProblem {
    pub document: usize,
    pub path: String,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// Parses every document. Empty documents (`---` at the end, comments only) are skipped.
/// A syntax error ends the stream: the parser cannot resynchronise after one.
pub fn documents(text: &str) -> (Vec<Document>, Vec<YamlProblem>) {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        if index > MAX_DOCUMENTS {
            problems.push(YamlProblem {
                document: index,
                path: String::new(),
                message: format!(
                    "more than {MAX_DOCUMENTS} YAML documents in one file; split it into several files"
                ),
                line: None,
                column: None,
            });
            break;
        }
        let mut yaml = match Yaml::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                let loc = e.location();
                problems.push(YamlProblem {
                    document: index,
                    path: String::new(),
                    message: format!("invalid YAML: {}", strip_location(&e.to_string())),
                    line: loc.as_ref().map(|l| l.line()),
                    column: loc.as_ref().map(|l| l.column()),
                });
                break;
            }
        };
        if let Err(e) = yaml.apply_merge() {
            problems.push(YamlProblem {
                document: index,
                path: String::new(),
                message: format!("invalid YAML merge key (<<): {e}"),
                line: None,
                column: None,
            });
            continue;
        }
        if yaml.is_null() {
            continue;
        }
        let mut local = Vec::new();
        let value = to_json(&yaml, &FieldPath::default(), &mut local);
        if local.is_empty() {
            docs.push(Document { index, value });
        } else {
            problems.extend(local.into_iter().map(|(path, message)| YamlProblem {
                document: index,
                path,
                message,
                line: None,
                column: None,
            }));
        }
    }
    (docs, problems)
}

/// serde_yaml appends " at line L column C" to its messages; we report the location apart.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn too_many(n: usize) -> String {
    format!("has {n} entries; at most {MAX_COLLECTION_ITEMS} are allowed in any list or map")
}

fn to_json(y: &Yaml, path: &FieldPath, problems: &mut Vec<(String, String)>) -> Value {
    match y {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                match n.as_f64().and_then(Number::from_f64) {
                    Some(f) => Value::Number(f),
                    None => {
                        problems.push((path.to_string(), format!("{n} is not a finite number")));
                        Value::Null
                    }
                }
            }
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) if items.len() > MAX_COLLECTION_ITEMS => {
            problems.push((path.to_string(), too_many(items.len())));
            Value::Null
        }
        Yaml::Mapping(m) if m.len() > MAX_COLLECTION_ITEMS => {
            problems.push((path.to_string(), too_many(m.len())));
            Value::Null
        }
        Yaml::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &path.index(i), problems))
                .collect(),
        ),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    other => {
                        // `1: x` or `true: x`: Kubernetes objects only have string keys.
                        let shown = serde_yaml::to_string(other)
                            .map(|s| s.trim().to_string())
                            .unwrap_or_default();
                        problems.push((
                            path.to_string(),
                            format!("key `{shown}` must be a string (quote it)"),
                        ));
                        continue;
                    }
                };
                let v = to_json(v, &path.field(&key), problems);
                out.insert(key, v);
            }
            Value::Object(out)
        }
        Yaml::Tagged(t) => {
            problems.push((
                path.to_string(),
                format!("YAML tag `{}` is not supported here", t.tag),
            ));
            Value::Null
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_streams_and_syntax_errors() {
        let (docs, problems) = documents("a: 1\n---\n---\nb: [1, 2]\n");
        assert!(problems.is_empty());
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 3);

        let (docs, problems) = documents("a: 1\n---\nb: [1, 2\nc: 3\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].line.is_some() && problems[0].column.is_some());
        assert!(!problems[0].message.contains(" at line "));
    }

    #[test]
    fn non_json_values_are_reported_with_paths() {
        let (_, problems) = documents("spec:\n  x: .nan\n  m:\n    1: a\n  t: !foo bar\n");
        let got: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, "spec.x");
        assert_eq!(got[1].0, "spec.m");
        assert_eq!(got[2].0, "spec.t");
    }

    #[test]
    fn collections_over_the_limit_are_one_problem() {
        let many = |n: usize| format!("spec:\n  list: [{}]\n", "x, ".repeat(n));
        let (docs, problems) = documents(&many(MAX_COLLECTION_ITEMS + 1));
        assert!(docs.is_empty());
        let got: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [(
                "spec.list",
                "has 1001 entries; at most 1000 are allowed in any list or map"
            )]
        );
        assert!(documents(&many(MAX_COLLECTION_ITEMS)).1.is_empty());
        let map: Vec<String> = (0..=MAX_COLLECTION_ITEMS)
            .map(|i| format!("k{i}: 1"))
            .collect();
        let (_, problems) = documents(&format!("metadata: {{labels: {{{}}}}}", map.join(", ")));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "metadata.labels");
    }
}
