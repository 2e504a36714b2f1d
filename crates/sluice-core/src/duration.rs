//! Go-style durations (`500ms`, `30s`, `1m`, `1h30m`), as Flagger and Argo users write them.

use std::time::Duration;

/// Parses a Go-style duration: one or more `<number><unit>` pairs, units `ms`, `s`, `m`, `h`.
/// Fractions are allowed (`1.5s`). Zero is allowed; negative values and bare numbers are not.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration (use e.g. 30s, 1m, 1h30m)".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "invalid duration {input:?}: expected a number at {rest:?}"
            ));
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| {
            format!(
                "invalid duration {input:?}: bad number {:?}",
                &rest[..num_len]
            )
        })?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "invalid duration {input:?}: missing unit (ms, s, m or h)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {input:?}: unknown unit {other:?} (use ms, s, m or h)"
                ));
            }
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 365.0 * 24.0 * 3600.0 {
        return Err(format!("invalid duration {input:?}: longer than a year"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way `parse` reads it (used in PromQL `[{{ interval }}]`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        for (s, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("1m", 60_000),
            ("1h30m", 5_400_000),
            ("1.5s", 1500),
            ("0s", 0),
        ] {
            assert_eq!(parse(s).unwrap().as_millis(), ms, "{s}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for s in ["", "10", "-1s", "1d", "s", "1m30", "abc"] {
            assert!(parse(s).is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["500ms", "30s", "1m", "2h", "90s"] {
            let d = parse(s).unwrap();
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
        assert_eq!(format(parse("90s").unwrap()), "90s");
    }
}
