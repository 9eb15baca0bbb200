//! `ApiError`: the one error type every handler returns. Each failure has a fixed HTTP status and
//! a stable snake_case code; the body is always `{"error":{"code","message","field"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sovereign_core::error::Invalid;
use sovereign_engine::EngineError;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// The wire form of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `unknown_handler`.
    pub code: String,
    pub message: String,
    /// The offending field, when there is one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: e.code,
            message: e.message,
            field: e.field,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::Invalid(i) => i.into(),
            EngineError::NotFound { field, .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message).field(field)
            }
            EngineError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", message).field("task_id")
            }
            EngineError::Disabled(_) => {
                ApiError::new(StatusCode::CONFLICT, "task_disabled", message).field("task_id")
            }
            EngineError::Unauthorized { code, .. } => {
                ApiError::new(StatusCode::UNAUTHORIZED, code, message)
            }
            EngineError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            EngineError::Trading(t) => t.into(),
            EngineError::Store(err) => {
                tracing::error!(error = %err, "store error while serving a request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    message,
                )
            }
        }
    }
}
