//! `GET /api/v1/analytics/realtime`, `GET /api/v1/analytics/realtime/map` and
//! `GET /api/v1/visitors/{datafast_visitor_id}`, answered by `tally-api`'s live module.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::app::AppState;
use crate::error::{HttpError, Result, json_response};
use crate::routes::analytics::reader;

/// Visitors active in the last 5 minutes.
pub async fn realtime(
    State(st): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let (website, params) = reader(&st, &headers, query.as_deref())?;
    let body = tally_api::live::realtime(&st.engine, &website, &params, chrono::Utc::now()).await?;
    Ok(json_response(StatusCode::OK, body))
}

/// Visitors, events and payments of the last 10 minutes.
pub async fn realtime_map(
    State(st): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let (website, params) = reader(&st, &headers, query.as_deref())?;
    let body =
        tally_api::live::realtime_map(&st.engine, &website, &params, chrono::Utc::now()).await?;
    Ok(json_response(StatusCode::OK, body))
}

/// One visitor's identity, activity and prediction. 404 for a visitor the website has no event
/// of; 400 for a visitor whose tracker requests were dropped as a bot's.
pub async fn visitor(
    State(st): State<AppState>,
    Path(visitor_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let (website, params) = reader(&st, &headers, query.as_deref())?;
    let found = tally_api::live::visitor(
        &st.engine,
        &website,
        &visitor_id,
        &params,
        chrono::Utc::now(),
    )
    .await?;
    match found {
        Some(body) => Ok(json_response(StatusCode::OK, body)),
        None if st.collector.is_bot_visitor(&website, &visitor_id) => Err(HttpError::new(
            400,
            format!("Visitor `{visitor_id}` is a bot: its events are not stored"),
        )),
        None => Err(HttpError::new(
            404,
            format!("Unknown visitor `{visitor_id}`"),
        )),
    }
}
