//! The DataFast v1 routes: each handler names its [`Route`], and `serve` authenticates the
//! caller, picks the website the credential may use for the route, and hands the rest to
//! `tally-api`, which owns the contract (parameters, bodies, validation, JSON).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tally_api::{Access, Endpoint, Params, Route};

use crate::app::AppState;
use crate::auth::authenticate;
use crate::error::{HttpError, Result, json_response};
use crate::keys::Scope;
use crate::routes::body_bytes;

impl tally_api::Host for AppState {
    fn is_bot_visitor(&self, website: &str, visitor: &str) -> bool {
        self.collector.is_bot_visitor(website, visitor)
    }
}

/// The key scope that grants an access.
fn scope(access: Access) -> Scope {
    match access {
        Access::AnalyticsRead => Scope::AnalyticsRead,
        Access::EventsWrite => Scope::EventsWrite,
        Access::SettingsRead => Scope::SettingsRead,
    }
}

/// Splits `websiteId` (how account tokens choose a website) off the other parameters.
fn take_website_id(params: &Params) -> Result<(Option<String>, Params)> {
    let website = params
        .get("websiteId")
        .map_err(HttpError::from)?
        .map(str::to_owned);
    let rest = Params::from_pairs(
        params
            .pairs()
            .iter()
            .filter(|(k, _)| k != "websiteId")
            .cloned(),
    );
    Ok((website, rest))
}

/// A request body as axum hands it over.
type Body = std::result::Result<Bytes, BytesRejection>;

/// Answers `route` for the caller of `headers`: the website named by the path, else by
/// `websiteId`, else the key's own. The caller is authenticated (and counted by the rate
/// limiter) before its body is judged.
async fn serve(
    st: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    route: Route,
    website_in_path: Option<&str>,
    body: Option<Body>,
) -> Result<Response> {
    let caller = authenticate(headers, &st.keys, &st.limiter)?;
    let (requested, params) = take_website_id(&Params::parse(query.unwrap_or("")))?;
    let requested = website_in_path.map(str::to_owned).or(requested);
    let website = caller.website_for(requested.as_deref(), scope(route.access()))?;
    let body = body.map(body_bytes).transpose()?.unwrap_or_default();
    let body = tally_api::respond(
        &st.engine,
        st,
        &website,
        &route,
        &params,
        &body,
        chrono::Utc::now(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /api/v1/analytics/{endpoint}`.
pub async fn analytics(
    State(st): State<AppState>,
    Path(endpoint): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let Some(known) = Endpoint::from_path(&endpoint) else {
        // Authenticated first, so that the endpoint list tells nothing to a caller without a key.
        authenticate(&headers, &st.keys, &st.limiter)?;
        return Err(HttpError::new(
            404,
            format!("Unknown analytics endpoint `{endpoint}`"),
        ));
    };
    serve(
        &st,
        &headers,
        query.as_deref(),
        Route::Analytics(known),
        None,
        None,
    )
    .await
}

/// A route whose path carries nothing and that takes no body (realtime, the map, deletes).
pub async fn fixed(
    State(st): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    route: Route,
) -> Result<Response> {
    serve(&st, &headers, query.as_deref(), route, None, None).await
}

/// A route whose path carries nothing and that takes a JSON body (goal and payment writes).
pub async fn with_body(
    State(st): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
    route: Route,
) -> Result<Response> {
    serve(&st, &headers, query.as_deref(), route, None, Some(body)).await
}

/// `GET /api/v1/visitors/{datafast_visitor_id}`.
pub async fn visitor(
    State(st): State<AppState>,
    Path(visitor_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let route = Route::Visitor(visitor_id);
    serve(&st, &headers, query.as_deref(), route, None, None).await
}

/// `GET /api/v1/admin/websites/{websiteId}/integrations`.
pub async fn integrations(
    State(st): State<AppState>,
    Path(website_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let route = Route::Integrations;
    serve(
        &st,
        &headers,
        query.as_deref(),
        route,
        Some(&website_id),
        None,
    )
    .await
}
