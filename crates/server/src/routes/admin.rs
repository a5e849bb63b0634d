//! `GET /api/v1/admin/websites` (Tally's: the websites a key or token reaches) and
//! `…/{websiteId}/tracker-stats`: what only the server knows (its keys and its tracker's
//! counters). The DataFast admin route, `…/integrations`, is in [`super::api`].

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tally_api::response::Success;

use crate::app::AppState;
use crate::auth::authenticate;
use crate::error::{HttpError, Result, json_response};
use crate::keys::{Credential, Scope};

/// One website a credential reaches, as `GET /admin/websites` lists it.
#[derive(serde::Serialize)]
struct Reachable {
    id: String,
    name: String,
    domain: String,
    timezone: String,
    currency: String,
}

/// The websites the caller's `df_` key (its one) or `dft_` token (those it was given) reaches,
/// so that a client such as the dashboard can offer a choice. Needs no scope: it tells the
/// caller only what its credential already names.
pub async fn websites(State(st): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let caller = authenticate(&headers, &st.keys, &st.limiter)?;
    let ids: Vec<String> = match &caller.credential {
        Credential::Website { website_id } => vec![website_id.clone()],
        Credential::Account { websites, .. } => websites.clone(),
    };
    // A website deleted since the token was made is left out.
    let data: Vec<Reachable> = ids
        .iter()
        .filter_map(|id| st.engine.website(id).ok())
        .map(|w| Reachable {
            id: w.id.clone(),
            name: w.name.clone(),
            domain: w.domain.clone(),
            timezone: w.timezone.clone(),
            currency: w.currency.clone(),
        })
        .collect();
    let body = serde_json::to_string(&Success::new(data))
        .map_err(|e| HttpError::new(500, "Internal server error").with_log(&e))?;
    Ok(json_response(StatusCode::OK, body))
}

/// What `POST /api/events` did with this website's tracker traffic since the server started:
/// events accepted, bot requests dropped, payloads refused.
pub async fn tracker_stats(
    State(st): State<AppState>,
    Path(website_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = authenticate(&headers, &st.keys, &st.limiter)?;
    let site = caller.website_for(Some(&website_id), Scope::SettingsRead)?;
    st.engine.website(&site)?;
    let body = serde_json::to_string(&Success::new(st.collector.stats(&site)))
        .map_err(|e| HttpError::new(500, "Internal server error").with_log(&e))?;
    Ok(json_response(StatusCode::OK, body))
}
