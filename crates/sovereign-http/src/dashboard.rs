//! The dashboard: one page (`GET /`) and its script and style (`GET /assets/{file}`), embedded
//! at compile time from `dashboard/`. Nothing is fetched from anywhere else — the engine works
//! offline — and the page runs under a strict Content-Security-Policy: no inline script or
//! style, connections to this engine only, never framed. The page itself holds no data; it
//! signs in (`GET /api/auth/me`, an API key or an SSO session) and reads the same API and
//! streams as any other client, so the server enforces every permission whatever the page
//! shows.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Code};
use crate::extract::ApiPath;

crate::routes! {
    page,
    asset,
}

const INDEX: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// What the page may load and where it may connect: this engine, nothing inline.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; \
                       frame-ancestors 'none'";

fn serve(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CSP),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
        // A new binary serves a new page: always ask (the answer is small).
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (StatusCode::OK, headers, body).into_response()
}

#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "the dashboard page", content_type = "text/html")))]
pub async fn page() -> Response {
    serve("text/html; charset=utf-8", INDEX)
}

#[utoipa::path(get, path = "/assets/{file}", tag = "dashboard", params(("file" = String, Path, description = "`app.js` or `app.css`")),
    responses((status = 200, description = "the page's script or style"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn asset(ApiPath(file): ApiPath<String>) -> Response {
    match file.as_str() {
        "app.js" => serve("text/javascript; charset=utf-8", APP_JS),
        "app.css" => serve("text/css; charset=utf-8", APP_CSS),
        _ => ApiError::new(Code::NotFound, format!("no asset {file:?}"))
            .field("file")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_stays_small() {
        for text in [INDEX, APP_JS, APP_CSS] {
            for outside in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(outside), "{outside} in an asset");
            }
        }
        assert!(!INDEX.contains("<style") && !INDEX.contains("style="));
        assert!(!INDEX.contains("<script>") && !INDEX.contains(" on"));
        let weight = INDEX.len() + APP_JS.len() + APP_CSS.len();
        assert!(weight <= 200 * 1024, "{weight} bytes");
    }
}
