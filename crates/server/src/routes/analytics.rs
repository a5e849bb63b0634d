//! `GET /api/v1/analytics/{endpoint}`: the read endpoints, answered by `tally-api`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tally_api::{Endpoint, Params};

use crate::app::AppState;
use crate::auth::authenticate;
use crate::error::{HttpError, Result, json_response};
use crate::keys::Scope;

/// Splits `websiteId` (how account tokens choose a website) off the other parameters.
pub fn take_website_id(params: &Params) -> Result<(Option<String>, Params)> {
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

/// The caller's website for an analytics read, and the parameters other than `websiteId`.
pub(crate) fn reader(
    st: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(String, Params)> {
    let caller = authenticate(headers, &st.keys, &st.limiter)?;
    let (requested, params) = take_website_id(&Params::parse(query.unwrap_or("")))?;
    let website = caller.website_for(requested.as_deref(), Scope::AnalyticsRead)?;
    Ok((website, params))
}

/// Answers one analytics endpoint.
pub async fn get(
    State(st): State<AppState>,
    Path(endpoint): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let (website, params) = reader(&st, &headers, query.as_deref())?;
    let endpoint = Endpoint::from_path(&endpoint)
        .ok_or_else(|| HttpError::new(404, format!("Unknown analytics endpoint `{endpoint}`")))?;
    let body = tally_api::answer(&st.engine, &website, endpoint, &params).await?;
    Ok(json_response(StatusCode::OK, body))
}
