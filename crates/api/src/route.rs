//! Every DataFast v1 route Tally answers, as one typed list: what each reads, the access it
//! needs, and [`respond`], which answers it over the engine. The server maps HTTP requests onto
//! a [`Route`] and adds authentication and limits; `tally query` maps its arguments onto the
//! same list.

use chrono::{DateTime, Utc};
use tally_core::Engine;

use crate::endpoint::{Endpoint, answer};
use crate::error::{ApiError, Result};
use crate::params::Params;
use crate::{live, settings, writes};

/// One route of the API, with what its path carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/v1/analytics/{endpoint}`.
    Analytics(Endpoint),
    /// `GET /api/v1/analytics/realtime`.
    Realtime,
    /// `GET /api/v1/analytics/realtime/map`.
    RealtimeMap,
    /// `GET /api/v1/visitors/{datafast_visitor_id}`.
    Visitor(String),
    /// `POST /api/v1/goals`.
    CreateGoal,
    /// `DELETE /api/v1/goals`.
    DeleteGoals,
    /// `POST /api/v1/payments`.
    CreatePayment,
    /// `DELETE /api/v1/payments`.
    DeletePayments,
    /// `GET /api/v1/admin/websites/{websiteId}/integrations`.
    Integrations,
}

/// What a credential must allow for a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Analytics, realtime and visitor reads.
    AnalyticsRead,
    /// Goals and payments, created or deleted.
    EventsWrite,
    /// A website's settings.
    SettingsRead,
}

impl Route {
    /// The `GET` route at `path` below `/api/v1/` (`analytics/overview`, `visitors/v1`,
    /// `admin/integrations`), or `None` for a path the API does not have.
    pub fn get(path: &str) -> Option<Route> {
        let path = path.trim_matches('/');
        Some(match path {
            "analytics/realtime" => Route::Realtime,
            "analytics/realtime/map" => Route::RealtimeMap,
            "admin/integrations" => Route::Integrations,
            _ => {
                if let Some(visitor) = path.strip_prefix("visitors/") {
                    (!visitor.is_empty() && !visitor.contains('/'))
                        .then(|| Route::Visitor(visitor.to_owned()))?
                } else {
                    Route::Analytics(Endpoint::from_path(path.strip_prefix("analytics/")?)?)
                }
            }
        })
    }

    /// The access the route needs.
    pub fn access(&self) -> Access {
        match self {
            Route::Analytics(_) | Route::Realtime | Route::RealtimeMap | Route::Visitor(_) => {
                Access::AnalyticsRead
            }
            Route::CreateGoal
            | Route::DeleteGoals
            | Route::CreatePayment
            | Route::DeletePayments => Access::EventsWrite,
            Route::Integrations => Access::SettingsRead,
        }
    }
}

/// What the API needs to know from the process that hosts it, beyond the engine.
pub trait Host: Sync {
    /// Whether the tracker dropped `visitor`'s requests to `website` as a bot's (so that a goal
    /// or a profile for it is a 400 that says so, not a 404).
    fn is_bot_visitor(&self, website: &str, visitor: &str) -> bool;
}

/// A host without a tracker: no visitor is known as a bot.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTracker;

impl Host for NoTracker {
    fn is_bot_visitor(&self, _website: &str, _visitor: &str) -> bool {
        false
    }
}

/// Answers `route` for `website` (already authorised for [`Route::access`]) with the query's
/// `params` (without `websiteId`) and the request `body` (empty for reads), at `now`: the JSON
/// body of a 200, or the error for the documented envelope.
pub async fn respond(
    engine: &Engine,
    host: &dyn Host,
    website: &str,
    route: &Route,
    params: &Params,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<String> {
    match route {
        Route::Analytics(endpoint) => answer(engine, website, *endpoint, params).await,
        Route::Realtime => live::realtime(engine, website, params, now).await,
        Route::RealtimeMap => live::realtime_map(engine, website, params, now).await,
        Route::Visitor(visitor) => {
            match live::visitor(engine, website, visitor, params, now).await? {
                Some(body) => Ok(body),
                None if host.is_bot_visitor(website, visitor) => Err(writes::bot_visitor(visitor)),
                None => Err(ApiError::not_found(format!("Unknown visitor `{visitor}`"))),
            }
        }
        Route::CreateGoal => writes::create_goal(engine, host, website, body, now).await,
        Route::DeleteGoals => writes::delete_goals(engine, website, params).await,
        Route::CreatePayment => writes::create_payment(engine, website, body, now).await,
        Route::DeletePayments => writes::delete_payments(engine, website, params).await,
        Route::Integrations => settings::integrations(engine, website),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_paths_name_their_routes() {
        assert_eq!(
            Route::get("analytics/overview"),
            Some(Route::Analytics(Endpoint::Overview))
        );
        assert_eq!(
            Route::get("/analytics/realtime/map"),
            Some(Route::RealtimeMap)
        );
        assert_eq!(
            Route::get("visitors/v-1"),
            Some(Route::Visitor("v-1".into()))
        );
        assert_eq!(Route::get("admin/integrations"), Some(Route::Integrations));
        for unknown in ["analytics/nope", "visitors/", "visitors/a/b", "goals", ""] {
            assert_eq!(Route::get(unknown), None, "{unknown}");
        }
        assert_eq!(Route::CreateGoal.access(), Access::EventsWrite);
        assert_eq!(Route::Integrations.access(), Access::SettingsRead);
    }
}
