//! API keys over HTTP (admin): list them (never a secret), create one (its key shown once in
//! the answer), revoke one. Handlers take the [`Access`] handle.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sovereign_core::access::{ApiKey, Role};
use sovereign_engine::access::Access;
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Actor, ApiPath, JsonBody};
use crate::wire::ts;

crate::routes! {
    list_keys,
    create_key,
    revoke_key,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl From<&ApiKey> for KeyOut {
    fn from(k: &ApiKey) -> KeyOut {
        KeyOut {
            name: k.name.clone(),
            role: k.role.as_str().into(),
            created_at: ts(k.created_at),
            expires_at: k.expires_at.map(ts),
            revoked_at: k.revoked_at.map(ts),
            last_used_at: k.last_used_at.map(ts),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    pub name: String,
    /// `viewer`, `trader` or `admin`.
    pub role: String,
    /// How long it is valid, e.g. `90d` (default: until revoked).
    pub expires: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyOut,
    /// The key itself, shown this once; the engine keeps only its hash.
    pub api_key: String,
}

#[utoipa::path(get, path = "/api/keys", tag = "access", responses((status = 200, body = KeyList)))]
pub async fn list_keys(State(a): State<Access>) -> Json<KeyList> {
    Json(KeyList {
        keys: a.list().iter().map(KeyOut::from).collect(),
    })
}

#[utoipa::path(post, path = "/api/keys", tag = "access", request_body = KeyIn,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_key(
    State(a): State<Access>,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<KeyIn>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let role = Role::parse(&body.role)?;
    let expires_at = match &body.expires {
        Some(text) => {
            let d = sovereign_core::schedule::parse_duration("expires", text)?;
            let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            Some(
                chrono::Utc::now()
                    .checked_add_signed(d)
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
            )
        }
        None => None,
    };
    let (key, text) = a.create(&body.name, role, expires_at, &actor).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: KeyOut::from(&key),
            api_key: text,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/keys/{name}", tag = "access", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    State(a): State<Access>,
    Actor(actor): Actor,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    a.revoke(&name, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}
