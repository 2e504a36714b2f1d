//! PromQL query templates: `{{ variable }}` placeholders, checked at load time.
//!
//! Variables: `namespace`, `name` (the rollout), `target` (the workload under test: the
//! canary), `stable`, `canary` (their names in the data plane: Istio workload names or Envoy
//! cluster names), `interval` (the query window, e.g. `30s`).

use std::collections::BTreeMap;

pub const VARIABLES: [&str; 6] = [
    "namespace",
    "name",
    "target",
    "stable",
    "canary",
    "interval",
];

/// Names of the variables used by `template`, in order of appearance; an error for a
/// placeholder that is not closed, empty, or not a known variable.
pub fn variables(template: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "unclosed placeholder at {:?}",
                truncate(&rest[start..])
            ));
        };
        let name = after[..end].trim();
        if !VARIABLES.contains(&name) {
            let hint = crate::template::closest(name)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "unknown variable `{name}`{hint}; known: {}",
                VARIABLES.join(", ")
            ));
        }
        out.push(name.to_string());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Substitutes every placeholder; fails like [`variables`] or when a value is missing.
pub fn render(template: &str, values: &BTreeMap<&str, String>) -> Result<String, String> {
    variables(template)?;
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").unwrap_or(after.len());
        let name = after[..end].trim();
        let value = values
            .get(name)
            .ok_or_else(|| format!("no value for variable `{name}`"))?;
        out.push_str(value);
        rest = after.get(end + 2..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

fn closest(name: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .map(|v| (strsim::levenshtein(v, name), *v))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, v)| v)
}

fn truncate(s: &str) -> String {
    s.chars().take(30).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_variables() {
        let values: BTreeMap<&str, String> = [
            ("target", "reviews-canary".to_string()),
            ("interval", "30s".to_string()),
        ]
        .into();
        let q = r#"sum(rate(x{app="{{ target }}"}[{{interval}}]))"#;
        assert_eq!(
            render(q, &values).unwrap(),
            r#"sum(rate(x{app="reviews-canary"}[30s]))"#
        );
        assert_eq!(variables(q).unwrap(), vec!["target", "interval"]);
    }

    #[test]
    fn rejects_unknown_and_unclosed() {
        let e = variables("x{a=\"{{ tagret }}\"}").unwrap_err();
        assert!(
            e.contains("tagret") && e.contains("did you mean `target`"),
            "{e}"
        );
        assert!(variables("x{{ name ").unwrap_err().contains("unclosed"));
        assert!(
            render("{{ name }}", &BTreeMap::new())
                .unwrap_err()
                .contains("no value")
        );
    }
}
