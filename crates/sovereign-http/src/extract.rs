//! `JsonBody<T>`: a JSON extractor whose failures are `ApiError`s naming the offending field.
//!
//! Bodies are read whole (within the router's size limit → 413 `body_too_large`), then parsed
//! with the field path tracked, so `{"retries":"x"}` answers `field: "retries"`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Code};

pub struct JsonBody<T>(pub T);

/// Path parameters whose failures (a segment that is not valid percent-encoded UTF-8) are
/// `ApiError`s (400 `invalid_path`), like [`JsonBody`].
pub struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| ApiPath(p))
            .map_err(|e| ApiError::new(Code::InvalidPath, e.body_text()))
    }
}

/// Who made the request, for the audit trail: the principal's name (`key:NAME`, `sso:…`,
/// `local`), or `api` when the guard set none.
pub struct Actor(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Actor(
            parts
                .extensions
                .get::<sovereign_core::access::Principal>()
                .map_or_else(|| "api".into(), |p| p.actor()),
        ))
    }
}

/// Query parameters whose failures are `ApiError`s (400 `invalid_query`), like [`JsonBody`].
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))
    }
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_object(&bytes).map(JsonBody)
    }
}

/// Map a failure to read the body (too large, broken connection).
pub fn body_error(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            Code::BodyTooLarge,
            "request body is larger than the configured limit",
        )
    } else {
        ApiError::new(Code::UnreadableBody, rejection.body_text())
    }
}

/// Parse a JSON object into `T`. Anything else at the top level (an array, a string) is refused
/// before serde sees it: serde would otherwise read a struct from an array by position.
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => parse(bytes),
        Some(_) => Err(ApiError::new(
            Code::InvalidType,
            "request body must be a JSON object",
        )),
    }
}

/// Parse JSON bytes into `T`, naming the field on failure.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            Code::InvalidJson,
            "request body is empty; expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            de.end()
                .map_err(|e| ApiError::new(Code::InvalidJson, format!("malformed JSON: {e}")))?;
            Ok(v)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::new(
                    Code::InvalidJson,
                    format!("malformed JSON: {inner}"),
                ));
            }
            let message = inner.to_string();
            // serde reports a missing field at its parent's path; name the field itself.
            let field = match message.strip_prefix("missing field `") {
                Some(rest) => {
                    let name = rest.split('`').next().unwrap_or_default();
                    if path == "." {
                        name.to_string()
                    } else {
                        format!("{path}.{name}")
                    }
                }
                None => path,
            };
            let code = if message.starts_with("missing field") {
                Code::MissingField
            } else if message.starts_with("unknown field") {
                Code::UnknownField
            } else {
                Code::InvalidType
            };
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string();
            let mut e = ApiError::new(code, message);
            if field != "." && !field.is_empty() {
                e = e.field(field);
            }
            Err(e)
        }
    }
}
