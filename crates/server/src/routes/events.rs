//! `POST /api/events`: the endpoint the DataFast tracker SDK sends to. No key: the website id
//! in the payload and the allowed domains decide. Browsers call it cross-origin, so it answers
//! CORS preflights for any origin (no credentials are involved).

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use tally_collect::{Client, Collected, TrackerPayload};
use tower_http::cors::{Any, CorsLayer};

use crate::app::AppState;
use crate::error::{HttpError, Result, json_response};
use crate::routes::body_bytes;

/// The body of an answered event: `visitorId` at the top level, where the SDK's cookieless
/// mode reads it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracked {
    /// `success` when stored, `ignored` when dropped as a bot.
    pub status: &'static str,
    /// The visitor the event was stored under (absent for bots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitor_id: Option<String>,
}

/// CORS for the tracker: any origin may POST JSON.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(24 * 3600))
}

/// Stores one tracker event. 400 for a malformed payload (naming the field), 404 for an
/// unknown website, 403 for a domain the website does not allow, 413 past the body limit, 429
/// past the per-address or per-website rate.
pub async fn track(State(st): State<AppState>, request: Request) -> Result<Response> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = request.into_parts();
    let addr = client_addr(&parts.headers, peer, st.trusted_proxies);
    // Before any work: the route needs no key, so the address is what is counted.
    if let Some(a) = addr {
        st.tracker_limits.0.check(&a, "client address")?;
    }
    let body: std::result::Result<Bytes, BytesRejection> =
        <Bytes as axum::extract::FromRequest<AppState>>::from_request(
            Request::from_parts(parts.clone(), body),
            &st,
        )
        .await;
    let bytes = body_bytes(body)?;
    let payload =
        TrackerPayload::from_json(&bytes).map_err(|e| HttpError::new(400, e.to_string()))?;
    let website = st
        .engine
        .website(&payload.website_id)
        .map_err(|_| HttpError::new(404, format!("Unknown website `{}`", payload.website_id)))?;
    st.tracker_limits.1.check(&website.id, "website")?;
    let client = Client {
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        addr,
    };
    let collected = st
        .collector
        .collect(&payload, client, &website, chrono::Utc::now())
        .map_err(|e| match e {
            tally_collect::Error::DomainNotAllowed(_) => HttpError::new(403, e.to_string()),
            other => HttpError::new(400, other.to_string()),
        })?;
    let tracked = match collected {
        Collected::Bot => Tracked {
            status: "ignored",
            visitor_id: None,
        },
        Collected::Event(event) => {
            let visitor_id = event.visitor_id.clone();
            let report = st.engine.ingest(vec![*event]).await?;
            if let Some((_, e)) = report.rejected.into_iter().next() {
                return Err(HttpError::new(400, e.to_string()));
            }
            Tracked {
                status: "success",
                visitor_id: Some(visitor_id),
            }
        }
    };
    let body = serde_json::to_string(&tracked)
        .map_err(|e| HttpError::new(500, "Internal server error").with_log(&e))?;
    Ok(json_response(StatusCode::OK, body))
}

/// The peer address, or behind `proxies` trusted reverse proxies the address the outermost of
/// them saw: the `proxies`-th entry of `X-Forwarded-For` from the right. Entries further left
/// come from the client and can say anything.
pub(crate) fn client_addr(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    proxies: usize,
) -> Option<IpAddr> {
    if proxies == 0 {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    entries
        .len()
        .checked_sub(proxies)
        .or((!entries.is_empty()).then_some(0))
        .and_then(|i| entries[i].parse().ok())
        .or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        // The client wrote 1.2.3.4; the proxy appended the address it saw.
        h.insert("x-forwarded-for", "1.2.3.4, 81.2.69.160".parse().unwrap());
        let peer = Some("10.0.0.1".parse().unwrap());
        assert_eq!(client_addr(&h, peer, 0), peer);
        assert_eq!(
            client_addr(&h, peer, 1),
            Some("81.2.69.160".parse().unwrap())
        );
        assert_eq!(client_addr(&h, peer, 2), Some("1.2.3.4".parse().unwrap()));
        // Fewer entries than proxies: the outermost proxy's entry is the first.
        assert_eq!(client_addr(&h, peer, 5), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(client_addr(&HeaderMap::new(), peer, 1), peer);
        let mut bad = HeaderMap::new();
        bad.insert("x-forwarded-for", "not-an-address".parse().unwrap());
        assert_eq!(client_addr(&bad, peer, 1), peer);
    }
}
