//! Truth over HTTP: the version in force and its components, secrets always masked (an admin
//! reveals them with `sovereign truth show --reveal` on the machine that holds the files).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use sovereign_engine::truth::TruthSource;

use crate::error::{ApiError, Code, ErrorBody};
use crate::extract::ApiPath;
use crate::wire::ts;

// The Truth routes.
crate::routes! {
    show,
    component,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedOut {
    pub at: String,
    /// Each `FILE: FIELD: problem`.
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TruthOut {
    /// The Truth directory (`null`: none configured).
    pub dir: Option<String>,
    /// `sha256:…` of the version in force (`null`: none).
    pub version: Option<String>,
    pub loaded_at: Option<String>,
    /// The last change refused (the version in force stayed), if any since.
    pub rejected: Option<RejectedOut>,
    #[schema(value_type = Object)]
    pub node: Value,
    /// Component → its document, secrets masked.
    #[schema(value_type = Object)]
    pub components: Value,
    /// Component → SHA-256 of its content (what `sovereign truth diff` compares).
    pub hashes: std::collections::BTreeMap<String, String>,
    /// SHA-256 of the node's content.
    pub node_hash: Option<String>,
}

#[utoipa::path(get, path = "/api/truth", tag = "truth",
    responses((status = 200, description = "the version in force, secrets masked", body = TruthOut)))]
pub async fn show(State(t): State<TruthSource>) -> Json<TruthOut> {
    let state = t.state();
    let view = state.truth.as_ref().map(|t| t.view(false));
    Json(TruthOut {
        dir: state.dir.map(|d| d.display().to_string()),
        version: state.truth.as_ref().map(|t| t.version.clone()),
        loaded_at: state.loaded_at.map(ts),
        rejected: state.rejected.map(|(at, problems)| RejectedOut {
            at: ts(at),
            problems,
        }),
        node: view.as_ref().map_or(Value::Null, |v| v["node"].clone()),
        components: view.map_or(Value::Object(Map::new()), |v| v["components"].clone()),
        hashes: state
            .truth
            .as_ref()
            .map(|t| {
                t.components
                    .iter()
                    .map(|(k, c)| (k.clone(), c.hash.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        node_hash: state.truth.as_ref().map(|t| t.node_hash()),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentOut {
    pub component: String,
    pub version: String,
    pub hash: String,
    #[schema(value_type = Object)]
    pub document: Value,
    /// The environment variables a service of this component receives (names only).
    pub env_keys: Vec<String>,
}

#[utoipa::path(get, path = "/api/truth/{component}", tag = "truth", params(("component" = String, Path)),
    responses((status = 200, body = ComponentOut), (status = 404, body = ErrorBody)))]
pub async fn component(
    State(t): State<TruthSource>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ComponentOut>, ApiError> {
    let state = t.state();
    let truth = state
        .truth
        .ok_or_else(|| ApiError::new(Code::NoTruth, "no Truth version is in force"))?;
    let c = truth.components.get(&name).ok_or_else(|| {
        ApiError::new(
            Code::UnknownComponent,
            format!("no component named {name:?}"),
        )
        .field("component")
    })?;
    Ok(Json(ComponentOut {
        document: truth.redacted_component(&name).unwrap_or(Value::Null),
        env_keys: c.env.keys().cloned().collect(),
        hash: c.hash.clone(),
        version: truth.version.clone(),
        component: name,
    }))
}
