//! The router: every route of the DataFast v1 API over one [`Engine`], with authentication,
//! rate limits, a body size limit and the documented envelopes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, get, on};
use tally_api::Route;
use tally_collect::Collector;
use tally_core::Engine;

use crate::auth::Limiter;
use crate::error::HttpError;
use crate::keys::KeyStore;
use crate::rate::Keyed;
use crate::routes;

/// Limits an operator can set.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests a minute per key.
    pub requests_per_minute: u32,
    /// Tracker events a minute per client address (`POST /api/events`).
    pub tracker_per_address: u32,
    /// Tracker events a minute per website.
    pub tracker_per_website: u32,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 503 and its work dropped.
    pub request_timeout: std::time::Duration,
    /// Requests served at once; past it a request is answered 503 at once (load shedding), so
    /// that a flood cannot pile up work and memory behind the ones in progress.
    pub max_in_flight: usize,
    /// Failed authentications (401s) a minute per client address; past it they are 429s.
    pub auth_failures_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_minute: 600,
            tracker_per_address: 1_200,
            tracker_per_website: 120_000,
            max_body_bytes: 64 * 1024,
            request_timeout: std::time::Duration::from_secs(30),
            max_in_flight: 512,
            auth_failures_per_minute: 60,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The keys.
    pub keys: Arc<KeyStore>,
    /// The per-key limiter.
    pub limiter: Arc<Limiter>,
    /// The tracker's limiters, per client address and per website.
    pub tracker_limits: (Arc<Keyed<std::net::IpAddr>>, Arc<Keyed<String>>),
    /// The limits.
    pub limits: Limits,
    /// Turns tracker payloads into events (`POST /api/events`).
    pub collector: Arc<Collector>,
    /// Failed authentications per client address ([`Limits::auth_failures_per_minute`]).
    pub auth_failures: Arc<Keyed<std::net::IpAddr>>,
    /// Permits for requests in flight ([`Limits::max_in_flight`]).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Reverse proxies in front of the server that append the address they saw to
    /// `X-Forwarded-For`: the client address is the entry this many from the right (0: the
    /// peer address, the header ignored).
    pub trusted_proxies: usize,
}

impl AppState {
    /// State over `engine`, `keys` and `collector` with `limits`.
    pub fn new(
        engine: Arc<Engine>,
        keys: Arc<KeyStore>,
        limits: Limits,
        collector: Arc<Collector>,
    ) -> Self {
        AppState {
            engine,
            keys,
            limiter: Keyed::per_minute(limits.requests_per_minute),
            tracker_limits: (
                Keyed::per_minute(limits.tracker_per_address),
                Keyed::per_minute(limits.tracker_per_website),
            ),
            auth_failures: Keyed::per_minute(limits.auth_failures_per_minute),
            in_flight: Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight.max(1))),
            limits,
            collector,
            trusted_proxies: 0,
        }
    }
}

/// `method` routed to [`routes::api::fixed`] for `route`.
fn fixed(method: MethodFilter, route: Route) -> MethodRouter<AppState> {
    on(
        method,
        move |st: State<AppState>, query: RawQuery, headers: HeaderMap| {
            routes::api::fixed(st, query, headers, route.clone())
        },
    )
}

/// `method` routed to [`routes::api::with_body`] for `route`.
fn with_body(method: MethodFilter, route: Route) -> MethodRouter<AppState> {
    on(
        method,
        move |st: State<AppState>,
              query: RawQuery,
              headers: HeaderMap,
              body: Result<Bytes, BytesRejection>| {
            routes::api::with_body(st, query, headers, body, route.clone())
        },
    )
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let max_body = state.limits.max_body_bytes;
    let timeout = tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        state.limits.request_timeout,
    );
    // The routes that take a key: their failed authentications are counted per address.
    let keyed = Router::new()
        .route(
            "/api/v1/analytics/realtime",
            fixed(MethodFilter::GET, Route::Realtime),
        )
        .route(
            "/api/v1/analytics/realtime/map",
            fixed(MethodFilter::GET, Route::RealtimeMap),
        )
        .route("/api/v1/analytics/{endpoint}", get(routes::api::analytics))
        .route("/api/v1/visitors/{visitor_id}", get(routes::api::visitor))
        .route(
            "/api/v1/goals",
            with_body(MethodFilter::POST, Route::CreateGoal)
                .merge(fixed(MethodFilter::DELETE, Route::DeleteGoals)),
        )
        .route(
            "/api/v1/payments",
            with_body(MethodFilter::POST, Route::CreatePayment)
                .merge(fixed(MethodFilter::DELETE, Route::DeletePayments)),
        )
        .route("/api/v1/admin/websites", get(routes::admin::websites))
        .route(
            "/api/v1/admin/websites/{website_id}/integrations",
            get(routes::api::integrations),
        )
        .route(
            "/api/v1/admin/websites/{website_id}/tracker-stats",
            get(routes::admin::tracker_stats),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_auth_failures,
        ));
    Router::new()
        .route("/", get(routes::dashboard::index))
        .route("/dashboard/{file}", get(routes::dashboard::asset))
        .route(
            "/api/events",
            // The CORS layer answers preflights itself; the `options` route lets them reach it.
            axum::routing::post(routes::events::track)
                .options(|| async { StatusCode::NO_CONTENT })
                .layer(routes::events::cors()),
        )
        .merge(keyed)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        // A write cut off here was not acknowledged: its log record, if any, is replayed.
        .layer(timeout)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.in_flight),
            shed_load,
        ))
        .layer(axum::middleware::map_response(envelope_plain_errors))
        .with_state(state)
}

/// Counts each 401 against the client address; once an address has spent its budget of
/// failed authentications, its failures are answered 429 with `Retry-After` instead, so that
/// guessing keys is throttled like any other flood.
async fn limit_auth_failures(
    State(st): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let addr = routes::events::client_addr(request.headers(), peer, st.trusted_proxies);
    let response = next.run(request).await;
    if response.status() != StatusCode::UNAUTHORIZED {
        return response;
    }
    match addr.map(|a| {
        st.auth_failures
            .check(&a, "client address for failed authentications")
    }) {
        Some(Err(limited)) => axum::response::IntoResponse::into_response(limited),
        _ => response,
    }
}

/// Serves the request while a permit is free (held until its answer is ready), else answers
/// 503 with `Retry-After` at once.
async fn shed_load(
    State(in_flight): State<Arc<tokio::sync::Semaphore>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match in_flight.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            let mut e = HttpError::new(503, "The server is busy: too many requests in progress");
            e.retry_after = Some(1);
            axum::response::IntoResponse::into_response(e)
        }
    }
}

/// Puts the documented error envelope on errors that axum's own extractors answer in plain
/// text (a path that is not valid percent-encoded UTF-8, a body over the limit, a JSON body
/// that does not parse), so that every error a client sees has the same shape.
async fn envelope_plain_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match text.chars().count() {
        0 => status.canonical_reason().unwrap_or("Error").to_owned(),
        n if n > 300 => text.chars().take(300).collect(),
        _ => text,
    };
    axum::response::IntoResponse::into_response(HttpError::new(status.as_u16(), message))
}

async fn not_found() -> Response {
    axum::response::IntoResponse::into_response(HttpError::new(
        StatusCode::NOT_FOUND.as_u16(),
        "No such route",
    ))
}

async fn method_not_allowed() -> Response {
    axum::response::IntoResponse::into_response(HttpError::new(
        405,
        "Method not allowed on this route",
    ))
}
