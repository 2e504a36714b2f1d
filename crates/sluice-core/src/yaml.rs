//! YAML that every reader types the same way: the one YAML writer of everything sluice prints
//! (`sluice plan -o …`, `sluice crd`, golden files, the Envoy files).
//!
//! serde_yaml quotes a string only when a YAML 1.2 reader would take it for something else.
//! kubectl (go-yaml), PyYAML and Envoy (yaml-cpp) read YAML 1.1, where `yes`, `on`, `n`,
//! `0777`, `1_000`, `1:30` and `2026-01-02` are booleans, numbers and timestamps: a header match
//! `exact: yes` would reach the API server as `exact: true` and be rejected. [`to_string`]
//! writes exactly what serde_yaml writes, except that such strings are single-quoted.
//!
//! serde_yaml (libyaml underneath) has no hook to choose a scalar's style, so those strings are
//! swapped for unique placeholder tokens (plain scalars libyaml never quotes or folds) before
//! writing and replaced by their quoted form afterwards.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_yaml::Value;

/// `value` as YAML whose every scalar reads back with the same type under YAML 1.1 and 1.2.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_yaml::Error> {
    let mut doc = serde_yaml::to_value(value)?;
    let mut strings = HashSet::new();
    collect_strings(&doc, &mut strings);
    // A prefix no string of the document contains, so only placeholders are replaced.
    let prefix = (0u32..)
        .map(|n| format!("sluiceyaml11q{n}x"))
        .find(|p| !strings.iter().any(|s| s.contains(p.as_str())))
        .unwrap_or_default();
    let mut quoted = Vec::new();
    swap_ambiguous(&mut doc, &prefix, &mut quoted);
    let mut text = serde_yaml::to_string(&doc)?;
    // Longest index first: `…x12e` must not be taken for `…x1e` (the `e` ends each token).
    for (i, original) in quoted.iter().enumerate().rev() {
        text = text.replace(&format!("{prefix}{i}e"), &single_quoted(original));
    }
    Ok(text)
}

/// Whether a plain (unquoted) `s` would be read as something other than this string by a
/// YAML 1.1 reader (PyYAML's and go-yaml's implicit types) or a YAML 1.2 core-schema reader.
pub fn is_ambiguous(s: &str) -> bool {
    if s.contains(['\n', '\r']) {
        // Written as a block scalar (`|`), which is always a string.
        return false;
    }
    const WORDS: [&str; 13] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "<<", "=", "",
    ];
    if WORDS.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        return true;
    }
    static TYPED: LazyLock<Vec<Regex>> = LazyLock::new(|| {
        [
            // int (YAML 1.1: binary, octal with a leading 0, decimal with `_`, hex, base 60),
            // plus go-yaml's `0o17`
            r"^[-+]?(?:0b[0-1_]+|0o?[0-7_]+|0|[1-9][0-9_]*|0x[0-9a-fA-F_]+|[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
            // float (YAML 1.1: `1.`, `.5`, `1_0.5`, base 60 `1:30.5`, `.inf`, `.nan`), plus the
            // YAML 1.2 forms with an exponent but no dot (`1e5`)
            r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[0-9][0-9_]*[eE][-+]?[0-9]+|\.(?:inf|Inf|INF|nan|NaN|NAN))$",
            // timestamp
            r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?$",
        ]
        .iter()
        .map(|r| Regex::new(r).expect("static regex"))
        .collect()
    });
    TYPED.iter().any(|r| r.is_match(s))
}

fn single_quoted(s: &str) -> String {
    if s.chars().any(char::is_control) {
        // A JSON string is a valid YAML double-quoted scalar, escapes included.
        return serde_json::to_string(s).unwrap_or_default();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn collect_strings(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Sequence(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Mapping(m) => {
            for (k, v) in m {
                collect_strings(k, out);
                collect_strings(v, out);
            }
        }
        Value::Tagged(t) => collect_strings(&t.value, out),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn swap_ambiguous(v: &mut Value, prefix: &str, quoted: &mut Vec<String>) {
    let mut token = |s: &mut String| {
        if is_ambiguous(s) {
            let original = std::mem::replace(s, format!("{prefix}{}e", quoted.len()));
            quoted.push(original);
        }
    };
    match v {
        Value::String(s) => token(s),
        Value::Sequence(items) => items
            .iter_mut()
            .for_each(|i| swap_ambiguous(i, prefix, quoted)),
        Value::Mapping(m) => {
            // Keys are immutable in place: rebuild the mapping in the same order.
            let old = std::mem::take(m);
            for (mut k, mut val) in old {
                swap_ambiguous(&mut k, prefix, quoted);
                swap_ambiguous(&mut val, prefix, quoted);
                m.insert(k, val);
            }
        }
        Value::Tagged(t) => swap_ambiguous(&mut t.value, prefix, quoted),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_1_1_words_and_numbers_are_quoted() {
        for s in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "True",
            "~",
            "null",
            "NULL",
            "<<",
            "=",
            "",
            "0777",
            "0o17",
            "0b101",
            "0x1F",
            "1_000",
            "1:30",
            "190:20:30",
            "1:30.5",
            "1.5",
            ".5",
            "1.",
            "1e5",
            ".inf",
            "-.INF",
            ".NaN",
            "2026-01-02",
            "2001-12-14t21:59:43.10-05:00",
            "+12",
            "-0",
        ] {
            assert!(is_ambiguous(s), "{s:?} should be quoted");
            let yaml = to_string(&json!({ "v": s })).unwrap();
            assert_eq!(yaml, format!("v: {}\n", single_quoted(s)), "{s:?}");
        }
    }

    #[test]
    fn plain_strings_stay_plain() {
        for s in [
            "yess",
            "beta",
            "v1.20.2",
            "1.2.3.4:80",
            "reviews-canary",
            "x-user",
            "09:30-17:00",
            "1:60",
            "^(.*?;)?(user=jason)(;.*)?$",
            "2026-1-2",
            "nope",
            "onion",
            "1.20.2",
        ] {
            assert!(!is_ambiguous(s), "{s:?} should stay plain");
        }
        let v = json!({"a": ["beta", "v1.20.2"], "b": {"c": 1, "d": true}});
        assert_eq!(
            to_string(&v).unwrap(),
            serde_yaml::to_string(&v).unwrap(),
            "nothing ambiguous: serde_yaml's output unchanged"
        );
    }

    #[test]
    fn keys_nested_values_and_quotes_inside() {
        let v = json!({"on": [{"it's": "it's", "no": "o'n"}], "n": {"y": ["off", 1, null]}});
        let yaml = to_string(&v).unwrap();
        assert!(
            yaml.contains("'on':\n- it's: it's\n  'no': o'n\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("'n':\n  'y':\n  - 'off'\n  - 1\n  - null\n"),
            "{yaml}"
        );
        let back: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn a_string_that_looks_like_a_placeholder_is_left_alone() {
        let v = json!({"a": "sluiceyaml11q0x0e", "b": "yes", "c": "sluiceyaml11q0x"});
        let yaml = to_string(&v).unwrap();
        let back: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, v, "{yaml}");
        assert!(yaml.contains("b: 'yes'"), "{yaml}");
    }

    #[test]
    fn many_tokens_do_not_clash() {
        let v: Vec<String> = (0..30)
            .map(|i| {
                if i % 2 == 0 {
                    "on".into()
                } else {
                    format!("{i}")
                }
            })
            .collect();
        let yaml = to_string(&v).unwrap();
        let back: Vec<String> = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, v);
    }
}
