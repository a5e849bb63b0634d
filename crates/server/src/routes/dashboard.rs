//! The dashboard at `/`: a static page (`assets/dashboard/`) embedded in the binary, built only
//! on the public HTTP API, with uPlot, topojson-client and the world-atlas outlines vendored
//! beside it (no CDN at run time).
//!
//! Every response carries a strict Content-Security-Policy: scripts, styles and requests from
//! this origin only, no inline code, no framing. The page renders API values as text.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::HttpError;

/// What the dashboard's files may load and do.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The embedded files: name, content type, bytes.
const FILES: [(&str, &str, &[u8]); 10] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/uPlot.min.css"),
    ),
    (
        "LICENSE-uPlot",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/dashboard/LICENSE-uPlot"),
    ),
    (
        "topojson-client.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/topojson-client.min.js"),
    ),
    (
        "iso-numeric.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/iso-numeric.js"),
    ),
    (
        "countries-110m.json",
        "application/json",
        include_bytes!("../../assets/dashboard/countries-110m.json"),
    ),
    (
        "LICENSE-world-atlas",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/dashboard/LICENSE-world-atlas"),
    ),
    (
        "LICENSE-topojson-client",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/dashboard/LICENSE-topojson-client"),
    ),
];

const INDEX: &[u8] = include_bytes!("../../assets/dashboard/index.html");

fn serve(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// `GET /`: the dashboard page.
pub async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard/{file}`: its scripts, styles and the vendored chart library.
pub async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => serve(content_type, body),
        None => HttpError::new(404, "No such file").into_response(),
    }
}
