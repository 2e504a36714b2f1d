//! API errors: what went wrong, as JSON `{error, message, field?}` with the right status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use sluice_core::backend::BackendError;

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// Machine-readable kind: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `unavailable`, `internal`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
    /// Where, when it applies: a path parameter (`name`) or a body field path (`reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    /// No or unusable credentials (401, with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials given but refused, or mutating calls disabled (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A server-side limit is reached (503, with the message).
    #[error("{0}")]
    Busy(String),
    /// The backend cannot answer now (503). The detail is logged, not sent.
    #[error("backend unavailable")]
    Unavailable(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, field: Option<&str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Busy(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Busy(_) | ApiError::Unavailable(_) => "unavailable",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let message = match self {
            ApiError::Unavailable(_) => {
                "the rollout backend is unavailable; see the server log".to_string()
            }
            other => other.to_string(),
        };
        ErrorBody {
            error: self.kind().to_string(),
            message,
            field: match self {
                ApiError::BadRequest { field, .. } => field.clone(),
                _ => None,
            },
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotFound(what) => ApiError::NotFound(format!("rollout {what} not found")),
            BackendError::Conflict(msg) => ApiError::Conflict(msg),
            BackendError::Unavailable(msg) => ApiError::Unavailable(msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Unavailable(detail) = &self {
            tracing::warn!(%detail, "backend unavailable");
        }
        let status = self.status();
        let mut resp = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
