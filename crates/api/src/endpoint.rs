//! The analytics endpoints: which parameters each takes, and how its answer is computed and
//! shaped. [`answer`] is what an HTTP server calls once it knows the website.

use chrono_tz::Tz;
use tally_core::{Breakdown, CampaignField, Engine, Interval, Paging, Query, Website};

use crate::display::country::{country_name, flag_url};
use crate::display::currency::currency_symbol;
use crate::display::label::{bucket_label, bucket_timestamp};
use crate::display::money::Rounded;
use crate::error::{ApiError, Result, to_json};
use crate::params::Params;
use crate::response::analytics::{
    OverviewRow, RevenueBreakdown, SeriesPoint, SeriesTotals, TimeseriesResponse,
};
use crate::response::breakdown::{
    Campaign, CampaignRow, CountryRow, GoalRow, KeyValue, PageRow, ValueRow,
};
use crate::response::website::Metadata;
use crate::response::{Paged, Pagination, Success};

/// A `GET /api/v1/analytics/{name}` endpoint that reads history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Endpoint {
    Overview,
    Timeseries,
    Metadata,
    Devices,
    Pages,
    Campaigns,
    Goals,
    Referrers,
    Countries,
    Regions,
    Cities,
    Browsers,
    OperatingSystems,
    Hostnames,
}

/// Fields `overview` accepts.
pub const OVERVIEW_FIELDS: [&str; 8] = [
    "visitors",
    "sessions",
    "bounce_rate",
    "avg_session_duration",
    "currency",
    "revenue",
    "revenue_per_visitor",
    "conversion_rate",
];
/// Fields `timeseries` accepts (`name`, the label, is always written).
pub const TIMESERIES_FIELDS: [&str; 5] =
    ["visitors", "name", "sessions", "revenue", "conversion_rate"];
/// Fields written when `timeseries` is asked without `fields`.
pub const TIMESERIES_DEFAULT_FIELDS: [&str; 4] =
    ["visitors", "sessions", "revenue", "conversion_rate"];
/// Fields `goals` accepts.
pub const GOAL_FIELDS: [&str; 3] = ["name", "completions", "visitors"];

const RANGE_PARAMS: [&str; 3] = ["startAt", "endAt", "timezone"];
const PAGE_PARAMS: [&str; 2] = ["limit", "offset"];

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 14] = [
        Endpoint::Overview,
        Endpoint::Timeseries,
        Endpoint::Metadata,
        Endpoint::Devices,
        Endpoint::Pages,
        Endpoint::Campaigns,
        Endpoint::Goals,
        Endpoint::Referrers,
        Endpoint::Countries,
        Endpoint::Regions,
        Endpoint::Cities,
        Endpoint::Browsers,
        Endpoint::OperatingSystems,
        Endpoint::Hostnames,
    ];

    /// The last path segment (`operating-systems`).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Overview => "overview",
            Endpoint::Timeseries => "timeseries",
            Endpoint::Metadata => "metadata",
            Endpoint::Devices => "devices",
            Endpoint::Pages => "pages",
            Endpoint::Campaigns => "campaigns",
            Endpoint::Goals => "goals",
            Endpoint::Referrers => "referrers",
            Endpoint::Countries => "countries",
            Endpoint::Regions => "regions",
            Endpoint::Cities => "cities",
            Endpoint::Browsers => "browsers",
            Endpoint::OperatingSystems => "operating-systems",
            Endpoint::Hostnames => "hostnames",
        }
    }

    /// The endpoint at path segment `path`.
    pub fn from_path(path: &str) -> Option<Self> {
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }

    /// The parameters it takes besides `filter_*`.
    pub fn known_params(self) -> Vec<&'static str> {
        let mut p: Vec<&str> = Vec::new();
        match self {
            Endpoint::Metadata => return vec!["fields"],
            Endpoint::Overview => p.push("fields"),
            Endpoint::Timeseries => p.extend(["fields", "interval"].iter().chain(&PAGE_PARAMS)),
            Endpoint::Campaigns | Endpoint::Goals => {
                p.extend(std::iter::once(&"fields").chain(&PAGE_PARAMS))
            }
            _ => p.extend(PAGE_PARAMS),
        }
        p.extend(RANGE_PARAMS);
        p
    }

    /// The core breakdown behind a breakdown endpoint, and the JSON key of its value.
    fn breakdown(self) -> Option<(Breakdown, &'static str)> {
        Some(match self {
            Endpoint::Devices => (Breakdown::Device, "device"),
            Endpoint::Referrers => (Breakdown::Referrer, "referrer"),
            Endpoint::Regions => (Breakdown::Region, "region"),
            Endpoint::Cities => (Breakdown::City, "city"),
            Endpoint::Browsers => (Breakdown::Browser, "browser"),
            Endpoint::OperatingSystems => (Breakdown::Os, "operating_system"),
            Endpoint::Hostnames => (Breakdown::Hostname, "hostname"),
            _ => return None,
        })
    }
}

/// The common part of an analytics request.
struct Common {
    query: Query,
    tz_name: String,
    paging: Paging,
}

fn common(website: &Website, params: &Params) -> Result<Common> {
    let (tz, tz_name) = params.timezone(&website.timezone)?;
    let mut query = Query::new(website.id.clone()).with_timezone(tz);
    query.range = params.date_range(tz)?;
    query.filters = params.filters()?;
    Ok(Common {
        query,
        tz_name,
        paging: params.paging()?,
    })
}

/// Answers `endpoint` for `website_id` with the parameters of `params`: the JSON body.
pub async fn answer(
    engine: &Engine,
    website_id: &str,
    endpoint: Endpoint,
    params: &Params,
) -> Result<String> {
    let website = engine.website(website_id)?;
    params.ignore_unknown(&endpoint.known_params());
    if endpoint == Endpoint::Metadata {
        return metadata(&website, params);
    }
    let c = common(&website, params)?;
    match endpoint {
        Endpoint::Overview => overview(engine, &website, &c, params).await,
        Endpoint::Timeseries => timeseries(engine, &website, &c, params).await,
        Endpoint::Pages => {
            let page = engine
                .breakdown(&c.query, &Breakdown::Page, c.paging)
                .await?;
            let rows = page.rows.into_iter().map(|mut r| PageRow {
                path: r.values.pop().unwrap_or_default(),
                hostname: r.values.pop().unwrap_or_default(),
                visitors: r.visitors,
                revenue: Rounded(r.revenue),
            });
            to_json(&paged(rows.collect(), c.paging, page.total))
        }
        Endpoint::Countries => {
            let page = engine
                .breakdown(&c.query, &Breakdown::Country, c.paging)
                .await?;
            let rows = page.rows.into_iter().map(|r| {
                let code = r.values.into_iter().next().unwrap_or_default();
                CountryRow {
                    country: country_name(&code),
                    image: flag_url(&code),
                    visitors: r.visitors,
                    revenue: Rounded(r.revenue),
                }
            });
            to_json(&paged(rows.collect(), c.paging, page.total))
        }
        Endpoint::Campaigns => {
            let fields: Vec<CampaignField> =
                match params.fields(&CampaignField::ALL.map(CampaignField::name))? {
                    Some(f) => f
                        .iter()
                        .filter_map(|n| CampaignField::from_name(n))
                        .collect(),
                    None => CampaignField::ALL.to_vec(),
                };
            let page = engine
                .breakdown(&c.query, &Breakdown::Campaign(fields.clone()), c.paging)
                .await?;
            let rows = page.rows.into_iter().map(|r| {
                let mut campaign = Campaign::default();
                for (f, v) in fields.iter().zip(r.values) {
                    let slot = match f {
                        CampaignField::UtmSource => &mut campaign.utm_source,
                        CampaignField::UtmMedium => &mut campaign.utm_medium,
                        CampaignField::UtmCampaign => &mut campaign.utm_campaign,
                        CampaignField::UtmTerm => &mut campaign.utm_term,
                        CampaignField::UtmContent => &mut campaign.utm_content,
                        CampaignField::Ref => &mut campaign.ref_,
                        CampaignField::Source => &mut campaign.source,
                        CampaignField::Via => &mut campaign.via,
                    };
                    *slot = Some(v);
                }
                CampaignRow {
                    campaign,
                    visitors: r.visitors,
                    revenue: Rounded(r.revenue),
                }
            });
            to_json(&paged(rows.collect(), c.paging, page.total))
        }
        Endpoint::Goals => {
            let fields = params.fields(&GOAL_FIELDS)?;
            let want = |f: &str| fields.as_ref().is_none_or(|l| l.iter().any(|x| x == f));
            let page = engine
                .breakdown(&c.query, &Breakdown::Goal, c.paging)
                .await?;
            let rows = page.rows.into_iter().map(|r| GoalRow {
                goal: want("name").then(|| r.values.into_iter().next().unwrap_or_default()),
                completions: want("completions").then_some(r.completions),
                visitors: want("visitors").then_some(r.visitors),
            });
            to_json(&paged(rows.collect(), c.paging, page.total))
        }
        other => {
            let Some((by, key)) = other.breakdown() else {
                return Err(ApiError::internal());
            };
            let page = engine.breakdown(&c.query, &by, c.paging).await?;
            let rows = page.rows.into_iter().map(|r| ValueRow {
                value: KeyValue {
                    key,
                    value: r.values.into_iter().next().unwrap_or_default(),
                },
                visitors: r.visitors,
                revenue: Rounded(r.revenue),
            });
            to_json(&paged(rows.collect(), c.paging, page.total))
        }
    }
}

fn paged<T>(data: Vec<T>, paging: Paging, total: usize) -> Paged<T> {
    Paged {
        status: "success",
        data,
        pagination: Pagination {
            limit: paging.limit,
            offset: paging.offset,
            total,
        },
    }
}

async fn overview(
    engine: &Engine,
    website: &Website,
    c: &Common,
    params: &Params,
) -> Result<String> {
    let fields = params.fields(&OVERVIEW_FIELDS)?;
    let want = |f: &str| fields.as_ref().is_none_or(|l| l.iter().any(|x| x == f));
    let o = engine.overview(&c.query).await?;
    let row = OverviewRow {
        visitors: want("visitors").then_some(o.visitors),
        sessions: want("sessions").then_some(o.sessions),
        bounce_rate: want("bounce_rate").then_some(Rounded(o.bounce_rate)),
        avg_session_duration: want("avg_session_duration")
            .then_some(Rounded(o.avg_session_duration_ms)),
        currency: want("currency").then(|| currency_symbol(&website.currency)),
        revenue: want("revenue").then_some(Rounded(o.revenue.total())),
        revenue_per_visitor: want("revenue_per_visitor").then_some(Rounded(o.revenue_per_visitor)),
        conversion_rate: want("conversion_rate").then_some(Rounded(o.conversion_rate)),
    };
    to_json(&Success::new([row]))
}

/// Fields `metadata` accepts: the documented six and `logo`.
const METADATA_FIELDS: [&str; 7] = [
    "domain",
    "timezone",
    "name",
    "kpiColorScheme",
    "kpi",
    "currency",
    "logo",
];

/// The website's settings: the documented six, or the `fields` asked for (`logo` among them).
fn metadata(website: &Website, params: &Params) -> Result<String> {
    let mut row = Metadata::from(website);
    let Some(fields) = params.fields(&METADATA_FIELDS)? else {
        return to_json(&Success::new([row]));
    };
    row.logo = Some(website.logo.clone());
    let serde_json::Value::Object(all) = serde_json::to_value(&row).map_err(|e| ApiError {
        detail: Some(e.to_string()),
        ..ApiError::internal()
    })?
    else {
        return Err(ApiError::internal());
    };
    let picked: serde_json::Map<String, serde_json::Value> = all
        .into_iter()
        .filter(|(k, _)| fields.iter().any(|f| f == k))
        .collect();
    to_json(&Success::new([picked]))
}

async fn timeseries(
    engine: &Engine,
    website: &Website,
    c: &Common,
    params: &Params,
) -> Result<String> {
    let fields = match params.fields(&TIMESERIES_FIELDS)? {
        Some(f) => f,
        None => TIMESERIES_DEFAULT_FIELDS
            .iter()
            .map(|f| (*f).to_owned())
            .collect(),
    };
    let want = |f: &str| fields.iter().any(|x| x == f);
    let interval = match params.get("interval")? {
        None => Interval::Day,
        Some(i) => Interval::from_name(i).ok_or_else(|| {
            ApiError::bad_param(
                "interval",
                format!("`{i}` is not one of hour, day, week, month"),
            )
        })?,
    };
    // Without dates (the docs' "last 30 days" example is `interval=day&limit=30`): every
    // bucket from the first event up to now, paged from the newest, oldest first in a page.
    let mut query = c.query.clone();
    let from_newest = query.range.is_none();
    if from_newest && let Some((first, last)) = engine.time_span(&query).await? {
        let end = last.max(chrono::Utc::now()) + chrono::TimeDelta::microseconds(1);
        query.range = Some(tally_core::DateRange::new(first, end)?);
    }
    let s = engine.timeseries(&query, interval).await?;
    let tz: Tz = s.timezone;
    let revenue = want("revenue");
    let total = s.buckets.len();
    let skip = if from_newest {
        total.saturating_sub(c.paging.offset.saturating_add(c.paging.limit))
    } else {
        c.paging.offset
    };
    let take = if from_newest {
        total.saturating_sub(c.paging.offset).saturating_sub(skip)
    } else {
        c.paging.limit
    };
    let data = s
        .buckets
        .iter()
        .skip(skip)
        .take(take)
        .map(|b| SeriesPoint {
            visitors: want("visitors").then_some(b.visitors),
            name: bucket_label(&b.start.with_timezone(&tz), s.interval),
            sessions: want("sessions").then_some(b.sessions),
            revenue: revenue.then_some(Rounded(b.revenue.total())),
            revenue_breakdown: revenue.then(|| RevenueBreakdown::from(b.revenue)),
            conversion_rate: want("conversion_rate").then_some(Rounded(b.conversion_rate)),
            timestamp: bucket_timestamp(&b.start),
        })
        .collect();
    let totals = SeriesTotals {
        visitors: want("visitors").then_some(s.totals.visitors),
        sessions: want("sessions").then_some(s.totals.sessions),
        revenue: revenue.then_some(Rounded(s.totals.revenue.total())),
        revenue_breakdown: revenue.then(|| RevenueBreakdown::from(s.totals.revenue)),
        conversion_rate: want("conversion_rate").then_some(Rounded(s.totals.conversion_rate)),
    };
    to_json(&TimeseriesResponse {
        status: "success",
        fields,
        interval: s.interval.name(),
        timezone: c.tz_name.clone(),
        currency: revenue.then(|| currency_symbol(&website.currency)),
        totals,
        data,
        pagination: Pagination {
            limit: c.paging.limit,
            offset: c.paging.offset,
            total,
        },
    })
}
