//! `ApiError`: the one error type every handler returns; the body is always
//! `{"error":{"code","message","field"}}`.
//!
//! Every code this crate produces is one [`Code`], with its fixed HTTP status (`Code::ALL`
//! lists them; the OpenAPI document names them all). Codes that come from the domain pass
//! through with the status of their kind: validation (`sovereign_core::error::Invalid`,
//! 400), a refused credential (401), a risk denial (422). Each capability's error converts
//! here, so handlers only use `?`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sovereign_core::error::Invalid;
use sovereign_core::trading::oms::OmsError;
use sovereign_engine::access::AccessError;
use sovereign_engine::executor::ExecutorError;
use sovereign_engine::supervisor::SupervisorError;
use sovereign_engine::trading::signals::SignalError;
use sovereign_engine::trading::TradingError;
use sovereign_engine::webhooks::WebhookError;
use sovereign_store::StoreError;
use utoipa::ToSchema;

pub type ApiResult<T> = Result<T, ApiError>;

macro_rules! codes {
    ($($variant:ident = $text:literal, $status:ident;)*) => {
        /// Every error code the HTTP layer produces itself, each with one status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

codes! {
    InvalidJson = "invalid_json", BAD_REQUEST;
    InvalidType = "invalid_type", BAD_REQUEST;
    MissingField = "missing_field", BAD_REQUEST;
    UnknownField = "unknown_field", BAD_REQUEST;
    UnreadableBody = "unreadable_body", BAD_REQUEST;
    InvalidQuery = "invalid_query", BAD_REQUEST;
    InvalidLimit = "invalid_limit", BAD_REQUEST;
    InvalidSince = "invalid_since", BAD_REQUEST;
    InvalidTime = "invalid_time", BAD_REQUEST;
    InvalidStatus = "invalid_status", BAD_REQUEST;
    InvalidHost = "invalid_host", BAD_REQUEST;
    InvalidPath = "invalid_path", BAD_REQUEST;
    Unauthenticated = "unauthenticated", UNAUTHORIZED;
    Forbidden = "forbidden", FORBIDDEN;
    CrossOrigin = "cross_origin", FORBIDDEN;
    AddressNotAllowed = "address_not_allowed", FORBIDDEN;
    TierBlocked = "tier_blocked", FORBIDDEN;
    CsrfFailed = "csrf_failed", FORBIDDEN;
    SsoNotConfigured = "sso_not_configured", NOT_FOUND;
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE;
    NotFound = "not_found", NOT_FOUND;
    UnknownAccount = "unknown_account", NOT_FOUND;
    UnknownService = "unknown_service", NOT_FOUND;
    UnknownChannel = "unknown_channel", NOT_FOUND;
    UnknownComponent = "unknown_component", NOT_FOUND;
    NoTruth = "no_truth", NOT_FOUND;
    UnknownPlan = "unknown_plan", NOT_FOUND;
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED;
    AlreadyExists = "already_exists", CONFLICT;
    TaskDisabled = "task_disabled", CONFLICT;
    OrderNotOpen = "order_not_open", CONFLICT;
    ClientOrderIdConflict = "client_order_id_conflict", CONFLICT;
    DeployInProgress = "deploy_in_progress", CONFLICT;
    NoDeployInProgress = "no_deploy_in_progress", CONFLICT;
    SessionOpen = "session_open", CONFLICT;
    VersionUnresolved = "version_unresolved", BAD_REQUEST;
    RequestTimeout = "request_timeout", REQUEST_TIMEOUT;
    BodyTooLarge = "body_too_large", PAYLOAD_TOO_LARGE;
    UriTooLong = "uri_too_long", URI_TOO_LONG;
    HeadersTooLarge = "headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE;
    RateLimited = "rate_limited", TOO_MANY_REQUESTS;
    ShuttingDown = "shutting_down", SERVICE_UNAVAILABLE;
    StoreUnavailable = "store_unavailable", SERVICE_UNAVAILABLE;
    JournalUnavailable = "journal_unavailable", SERVICE_UNAVAILABLE;
    SsoUnavailable = "sso_unavailable", SERVICE_UNAVAILABLE;
}

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
    /// Stable machine-readable code, e.g. `unknown_handler` (the document's description of
    /// this schema lists every code).
    pub code: String,
    pub message: String,
    /// The offending field, when there is one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            status: code.status(),
            code: code.as_str(),
            message: message.into(),
            field: None,
        }
    }

    /// A code from the domain (validation, credentials, risk) with the status of its kind.
    pub fn domain(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => ApiError::new(Code::ShuttingDown, e.to_string()),
            other => {
                tracing::error!(error = %other, "store error while serving a request");
                ApiError::new(Code::StoreUnavailable, format!("store: {other}"))
            }
        }
    }
}

impl From<ExecutorError> for ApiError {
    fn from(e: ExecutorError) -> Self {
        let message = e.to_string();
        match e {
            ExecutorError::Invalid(i) => i.into(),
            ExecutorError::UnknownTask(_) => {
                ApiError::new(Code::NotFound, message).field("task_id")
            }
            ExecutorError::Exists(_) => {
                ApiError::new(Code::AlreadyExists, message).field("task_id")
            }
            ExecutorError::Disabled(_) => {
                ApiError::new(Code::TaskDisabled, message).field("task_id")
            }
            ExecutorError::ShuttingDown => ApiError::new(Code::ShuttingDown, message),
            ExecutorError::Store(s) => s.into(),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        let message = e.to_string();
        match e {
            AccessError::Invalid(i) => i.into(),
            AccessError::Exists(_) => ApiError::new(Code::AlreadyExists, message).field("name"),
            AccessError::Unknown(_) => ApiError::new(Code::NotFound, message).field("name"),
            AccessError::Random => ApiError::new(Code::StoreUnavailable, message),
            AccessError::Store(s) => s.into(),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        let message = e.to_string();
        match e {
            WebhookError::Unauthorized { code, .. } => {
                ApiError::domain(StatusCode::UNAUTHORIZED, code, message)
            }
            WebhookError::AddressNotAllowed { .. } => {
                ApiError::new(Code::AddressNotAllowed, message)
            }
            WebhookError::ShuttingDown => ApiError::new(Code::ShuttingDown, message),
            WebhookError::Store(s) => s.into(),
        }
    }
}

impl From<SignalError> for ApiError {
    fn from(e: SignalError) -> Self {
        let message = e.to_string();
        match e {
            SignalError::UnknownStrategy(_) => {
                ApiError::new(Code::NotFound, message).field("strategy")
            }
            SignalError::Unauthorized { code, .. } => {
                ApiError::domain(StatusCode::UNAUTHORIZED, code, message)
            }
            SignalError::AddressNotAllowed { .. } => {
                ApiError::new(Code::AddressNotAllowed, message).field("strategy")
            }
            SignalError::Invalid(i) => i.into(),
            SignalError::Trading(t) => t.into(),
        }
    }
}

impl From<TradingError> for ApiError {
    fn from(e: TradingError) -> Self {
        let message = e.to_string();
        match e {
            TradingError::Oms(OmsError::Invalid(i)) => i.into(),
            TradingError::Oms(OmsError::UnknownAccount(_)) => {
                ApiError::new(Code::UnknownAccount, message).field("account")
            }
            TradingError::Oms(OmsError::UnknownOrder(_)) => {
                ApiError::new(Code::NotFound, message).field("id")
            }
            TradingError::Oms(OmsError::NotOpen { .. }) => {
                ApiError::new(Code::OrderNotOpen, message).field("id")
            }
            TradingError::Oms(OmsError::ClientOrderIdConflict { .. }) => {
                ApiError::new(Code::ClientOrderIdConflict, message).field("client_order_id")
            }
            TradingError::Oms(OmsError::Denied(d)) => {
                ApiError::domain(StatusCode::UNPROCESSABLE_ENTITY, d.code.code(), message)
            }
            TradingError::Journal(_) | TradingError::JournalFailed => {
                ApiError::new(Code::JournalUnavailable, message)
            }
            TradingError::Closed => ApiError::new(Code::ShuttingDown, message),
        }
    }
}

impl From<SupervisorError> for ApiError {
    fn from(e: SupervisorError) -> Self {
        let message = e.to_string();
        match e {
            SupervisorError::Unknown(_) => {
                ApiError::new(Code::UnknownService, message).field("name")
            }
            SupervisorError::Stopped => ApiError::new(Code::ShuttingDown, message),
        }
    }
}

/// The description of the `ErrorDetail` schema: every code with its status.
pub(crate) fn codes_description() -> String {
    let list: Vec<String> = Code::ALL
        .iter()
        .map(|c| format!("`{}` ({})", c.as_str(), c.status().as_u16()))
        .collect();
    format!(
        "An error. Codes of the HTTP layer: {}. Validation codes of the domain come with 400, \
         refused credentials with 401, risk denials with 422.",
        list.join(", ")
    )
}
