//! Who is calling, and may they: bearer credentials, website access, scopes, and the per-key
//! rate limit ([`crate::rate`]).

use axum::http::HeaderMap;

use crate::error::HttpError;
use crate::keys::{Credential, KeyStore, Scope};
use crate::rate::Keyed;

/// Per-key request limiter.
pub type Limiter = Keyed<String>;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// What the key grants.
    pub credential: Credential,
}

/// Reads and checks the bearer credential, and counts the request against its rate.
pub fn authenticate(
    headers: &HeaderMap,
    keys: &KeyStore,
    limiter: &Limiter,
) -> Result<Caller, HttpError> {
    let raw = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| HttpError::new(401, "Missing API key: send Authorization: Bearer <key>"))?;
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let key = raw
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| HttpError::new(401, "Authorization must be `Bearer <key>`"))?;
    let credential = keys
        .verify(key)
        .ok_or_else(|| HttpError::new(401, "Invalid API key"))?;
    limiter.check(&key.to_owned(), "API key")?;
    Ok(Caller { credential })
}

impl Caller {
    /// The website this request acts on: a `df_` key's own (a different `requested` one is a
    /// 403), or for a `dft_` token the `requested` one, which it must hold, with `scope`.
    pub fn website_for(&self, requested: Option<&str>, scope: Scope) -> Result<String, HttpError> {
        match &self.credential {
            Credential::Website { website_id } => match requested {
                Some(r) if r != website_id => Err(HttpError::new(
                    403,
                    "This API key does not have access to that website",
                )),
                _ => Ok(website_id.clone()),
            },
            Credential::Account {
                scopes, websites, ..
            } => {
                let site = requested.ok_or_else(|| {
                    HttpError::new(
                        400,
                        "Invalid parameter `websiteId`: an account token must name the website",
                    )
                })?;
                if !websites.iter().any(|w| w == site) {
                    return Err(HttpError::new(
                        403,
                        "This token does not have access to that website",
                    ));
                }
                if !scopes.contains(&scope) {
                    return Err(HttpError::new(
                        403,
                        format!("This token lacks the `{}` scope", scope.name()),
                    ));
                }
                Ok(site.to_owned())
            }
        }
    }
}
