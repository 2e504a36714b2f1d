//! A small OpenAPI v3 / JSON-schema checker that reports *every* mismatch with its field path.
//!
//! It covers what Kubernetes structural schemas (the Rollout CRD, Istio's CRDs) use: `type`,
//! `properties`, `required`, `additionalProperties`, `items`, `enum`, `nullable`, `minimum` /
//! `maximum`, `minItems` / `maxItems`, `minLength` / `maxLength`, `pattern` (the Gateway API
//! CRDs' names and hostnames), `oneOf` / `anyOf` / `not`, and
//! `x-kubernetes-preserve-unknown-fields`. CEL rules (`x-kubernetes-validations`) and string
//! `format`s are not evaluated: sluice checks what it needs of those in [`super::rules`].
//!
//! Objects with `properties` and no `additionalProperties` are closed: an unknown field is an
//! error with the closest known name as a hint. (The API server would silently prune it; for a
//! user that is the same as a typo nobody told them about.)

use serde_json::Value;

use super::FieldPath;

/// One mismatch: where, and what is wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    pub path: String,
    pub message: String,
    /// The field is not in the schema at all (a typo): the loader can drop it and keep checking.
    pub unknown_field: bool,
}

/// Checks `value` against `schema`; every mismatch, in document order.
pub fn check(value: &Value, schema: &Value, path: &FieldPath) -> Vec<Mismatch> {
    let mut out = Vec::new();
    walk(value, schema, path, &mut out);
    out
}

/// Removes the fields [`check`] reports as unknown, so the rest can still be parsed and checked.
pub fn prune_unknown(value: &mut Value, schema: &Value) {
    match value {
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune_unknown(item, item_schema);
                }
            }
        }
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            map.retain(|k, _| {
                props.is_some_and(|p| p.contains_key(k))
                    || additional.is_some()
                    || props.is_none()
                    || preserve
            });
            for (k, v) in map.iter_mut() {
                if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                    prune_unknown(v, s);
                }
            }
        }
        _ => {}
    }
}

fn push(out: &mut Vec<Mismatch>, path: &FieldPath, message: String) {
    out.push(Mismatch {
        path: path.to_string(),
        message,
        unknown_field: false,
    });
}

fn walk(value: &Value, schema: &Value, path: &FieldPath, out: &mut Vec<Mismatch>) {
    let Some(schema) = schema.as_object() else {
        // `true` / missing schema: anything goes; `false`: nothing does.
        if schema == &Value::Bool(false) {
            push(out, path, "no value is allowed here".into());
        }
        return;
    };
    if value.is_null() {
        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true)
            || schema.get("type").and_then(Value::as_str) == Some("null");
        if !nullable && schema.contains_key("type") {
            push(
                out,
                path,
                format!("must not be empty (expected {})", type_name(schema)),
            );
        }
        return;
    }

    // Combinators first: they decide as a whole, with one message.
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = branches
            .iter()
            .filter(|b| check(value, b, path).is_empty())
            .count();
        if matching != 1 {
            push(out, path, one_of_message(branches, matching));
        }
    }
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array)
        && !branches.iter().any(|b| check(value, b, path).is_empty())
    {
        push(out, path, "matches none of the allowed forms".into());
    }
    if let Some(not) = schema.get("not")
        && check(value, not, path).is_empty()
    {
        push(out, path, "matches a form that is not allowed here".into());
    }

    if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_matches(t, value)
    {
        push(
            out,
            path,
            format!("expected {}, found {}", type_name(schema), describe(value)),
        );
        return;
    }

    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        push(out, path, enum_message(value, allowed));
    }

    match value {
        Value::String(s) => {
            // Kubernetes counts characters, not bytes.
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                push(out, path, format!("needs at least {min} character(s)"));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                push(out, path, format!("allows at most {max} character(s)"));
            }
            // A pattern this checker's regex engine cannot compile is skipped, not failed.
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(pattern)
                && !re.is_match(s)
            {
                push(
                    out,
                    path,
                    format!("the string {:?} does not match {pattern}", truncate(s)),
                );
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                push(out, path, format!("{n} is below the minimum {}", num(min)));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                push(out, path, format!("{n} is above the maximum {}", num(max)));
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                push(out, path, format!("needs at least {min} item(s)"));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                push(out, path, format!("allows at most {max} item(s)"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item, item_schema, &path.index(i), out);
                }
            }
        }
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        push(out, &path.field(r), "required field is missing".into());
                    }
                }
            }
            let preserve = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            let additional = schema.get("additionalProperties");
            for (key, v) in map {
                let field_path = path.field(key);
                if let Some(s) = props.and_then(|p| p.get(key)) {
                    walk(v, s, &field_path, out);
                } else if let Some(extra) = additional {
                    walk(v, extra, &field_path, out);
                } else if props.is_some() && !preserve {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    out.push(Mismatch {
                        path: field_path.to_string(),
                        message: unknown_field_message(key, &known),
                        unknown_field: true,
                    });
                }
            }
        }
        _ => {}
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn type_name(schema: &serde_json::Map<String, Value>) -> String {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") if schema.contains_key("additionalProperties") => "a map".into(),
        Some("object") => "an object".into(),
        Some("array") => "a list".into(),
        Some("string") => "a string".into(),
        Some("boolean") => "true or false".into(),
        Some("integer") => "a whole number".into(),
        Some("number") => "a number".into(),
        Some(other) => other.into(),
        None => "a value".into(),
    }
}

/// How a value looks, for messages: short, never the whole subtree.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {:?}", truncate(s)),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn enum_message(value: &Value, allowed: &[Value]) -> String {
    let names: Vec<String> = allowed
        .iter()
        .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string))
        .collect();
    let hint = value
        .as_str()
        .and_then(|s| closest(s, names.iter().map(String::as_str)))
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    format!(
        "unknown value {}{hint}; expected one of: {}",
        match value {
            Value::String(s) => format!("`{s}`"),
            other => describe(other),
        },
        names.join(", ")
    )
}

fn one_of_message(branches: &[Value], matching: usize) -> String {
    // Istio's "exactly one of these keys" pattern: oneOf of `required: [k]` branches.
    let keys: Vec<&str> = branches
        .iter()
        .filter_map(|b| b.get("required")?.as_array()?.first()?.as_str())
        .collect();
    if !keys.is_empty() {
        return format!("set at most one of: {}", keys.join(", "));
    }
    if matching == 0 {
        "matches none of the allowed forms".into()
    } else {
        "matches more than one of the allowed forms".into()
    }
}

/// `unknown field `x`` with a hint, or the list of known fields when nothing is close.
pub fn unknown_field_message(key: &str, known: &[&str]) -> String {
    match closest(key, known.iter().copied()) {
        Some(c) => format!("unknown field `{key}`, did you mean `{c}`?"),
        None if known.is_empty() => format!("unknown field `{key}`"),
        None => {
            let mut k = known.to_vec();
            k.sort_unstable();
            format!("unknown field `{key}`; expected one of: {}", k.join(", "))
        }
    }
}

/// The known name closest to `input`, when close enough to be a plausible typo.
pub fn closest<'a>(input: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    candidates
        .map(|c| {
            let d = strsim::osa_distance(&lower, &c.to_ascii_lowercase());
            (d, c)
        })
        // Allow about one edit per three characters: `stepweigth` → `stepWeight`, not `x` → `max`.
        .filter(|(d, c)| *d <= (c.len().max(input.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(v: Value, s: Value) -> Vec<(String, String)> {
        check(&v, &s, &FieldPath::root("spec"))
            .into_iter()
            .map(|m| (m.path, m.message))
            .collect()
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let schema = json!({
            "type": "object",
            "required": ["port"],
            "properties": {
                "steps": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "maxWeight": {"type": "integer"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "port": {"type": "integer"}
            }
        });
        let got = paths(
            json!({"steps": [1, -2, "x"], "mode": "fats", "maxWieght": 3, "labels": {"a": 1}}),
            schema,
        );
        let p: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            p,
            [
                "spec.port",
                "spec.labels.a",
                "spec.maxWieght",
                "spec.mode",
                "spec.steps[1]",
                "spec.steps[2]"
            ]
        );
        assert!(got[2].1.contains("did you mean `maxWeight`"), "{got:?}");
        assert!(got[3].1.contains("did you mean `fast`"), "{got:?}");
        assert!(got[4].1.contains("below the minimum 0"), "{got:?}");
    }

    #[test]
    fn one_of_and_nullable() {
        let sm = json!({
            "type": "object",
            "oneOf": [
                {"not": {"anyOf": [{"required": ["exact"]}, {"required": ["prefix"]}]}},
                {"required": ["exact"]},
                {"required": ["prefix"]}
            ],
            "properties": {"exact": {"type": "string"}, "prefix": {"type": "string", "nullable": true}}
        });
        assert!(paths(json!({"exact": "a"}), sm.clone()).is_empty());
        assert!(paths(json!({"prefix": null}), sm.clone()).is_empty());
        let got = paths(json!({"exact": "a", "prefix": "b"}), sm.clone());
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].1.contains("at most one of: exact, prefix"));
        assert_eq!(paths(json!({"exact": null}), sm).len(), 1);
    }

    #[test]
    fn closest_is_conservative() {
        let known = ["steps", "stepWeight", "maxWeight"];
        assert_eq!(
            closest("stepweigth", known.iter().copied()),
            Some("stepWeight")
        );
        assert_eq!(closest("step", known.iter().copied()), Some("steps"));
        assert_eq!(closest("x", known.iter().copied()), None);
    }
}
