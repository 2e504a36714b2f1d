//! Bearer-token check for mutating calls.

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use super::{ApiError, TOKEN_ENV};

/// Ok when the request carries the configured token. Without a configured token every
/// mutating call is refused, with a message telling the operator how to set one.
pub(crate) fn check(expected: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::Forbidden(format!(
            "mutating calls are disabled because the server has no API token; start it with \
             {TOKEN_ENV}=<token> or --api-token-file <file>"
        )));
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(
            "missing `Authorization: Bearer <token>` header".into(),
        ));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
        })?;
    if tokens_equal(expected.as_bytes(), presented.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("invalid API token".into()))
    }
}

/// Constant time in the presented token's content; the time depends only on the expected
/// token's length, never on where the first difference is.
fn tokens_equal(expected: &[u8], presented: &[u8]) -> bool {
    let same_len = (expected.len() as u64).ct_eq(&(presented.len() as u64));
    let mut same = subtle::Choice::from(1u8);
    for (i, b) in expected.iter().enumerate() {
        same &= b.ct_eq(presented.get(i).unwrap_or(&0));
    }
    bool::from(same & same_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn token_comparison() {
        assert!(tokens_equal(b"secret", b"secret"));
        assert!(!tokens_equal(b"secret", b"secre"));
        assert!(!tokens_equal(b"secret", b"secret0"));
        assert!(!tokens_equal(b"secret", b"Secret"));
        assert!(!tokens_equal(b"secret", b""));
    }

    #[test]
    fn header_forms() {
        assert!(check(Some("t0k"), &with_auth("Bearer t0k")).is_ok());
        assert!(check(Some("t0k"), &with_auth("bearer t0k")).is_ok());
        assert!(matches!(
            check(Some("t0k"), &with_auth("Basic t0k")),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            check(Some("t0k"), &with_auth("Bearer nope")),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            check(Some("t0k"), &HeaderMap::new()),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            check(None, &with_auth("Bearer t0k")),
            Err(ApiError::Forbidden(m)) if m.contains(TOKEN_ENV)
        ));
    }
}
