//! What the HTTP load tests share: the real router on a loopback port, a client that sends a
//! request and checks the answer, and settings from the environment.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tally_server::app::{AppState, router};

/// A numeric setting from the environment, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Serves the router of `state` on a free loopback port, in the background.
pub async fn serve(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Runs `clients` clients for `seconds`, each sending `request(client, n)` for its `n`-th
/// request as soon as the previous answer is in; returns `(client, n, latency)` of every
/// request and the time taken.
pub async fn drive<B>(
    clients: u64,
    seconds: u64,
    request: impl Fn(u64, u64) -> axum::http::Request<B> + Send + Sync + 'static,
) -> (Vec<(u64, u64, Duration)>, Duration)
where
    B: axum::body::HttpBody + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let http = Client::builder(TokioExecutor::new()).build_http::<B>();
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, request) = (http.clone(), Arc::clone(&request));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    latencies.push((c, n, timed(&http, request(c, n)).await));
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    (latencies, started.elapsed())
}

/// Sends `req`, reads the whole answer, asserts a 200 and returns how long it took.
async fn timed<B>(http: &Client<HttpConnector, B>, req: axum::http::Request<B>) -> Duration
where
    B: axum::body::HttpBody + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let t0 = Instant::now();
    let res = http.request(req).await.unwrap();
    let status = res.status();
    let body: Bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    t0.elapsed()
}

/// The `p` quantile (0..=1) of sorted `latencies`, in milliseconds.
pub fn quantile_ms(latencies: &[Duration], p: f64) -> f64 {
    let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
    latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}
