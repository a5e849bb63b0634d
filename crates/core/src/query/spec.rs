//! What a caller asks: [`Query`] (website, range, zone, filters) and the shape of each answer
//! ([`Breakdown`], [`Interval`], [`Paging`]).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};

/// The common part of every analytics question.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The website asked about.
    pub website_id: String,
    /// The half-open range `[start, end)`; `None` is all time.
    pub range: Option<DateRange>,
    /// Zone for buckets and labels; `None` is the website's zone.
    pub timezone: Option<Tz>,
    /// Dimension filters, ANDed together.
    pub filters: Vec<Filter>,
}

impl Query {
    /// All time, website zone, no filters.
    pub fn new(website_id: impl Into<String>) -> Self {
        Query {
            website_id: website_id.into(),
            range: None,
            timezone: None,
            filters: Vec::new(),
        }
    }

    /// The same query over `range`.
    pub fn with_range(mut self, range: DateRange) -> Self {
        self.range = Some(range);
        self
    }

    /// The same query in zone `tz`.
    pub fn with_timezone(mut self, tz: Tz) -> Self {
        self.timezone = Some(tz);
        self
    }

    /// The same query with one more filter.
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filters.push(filter);
        self
    }
}

/// A half-open UTC range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DateRange {
    /// First instant included.
    pub start: DateTime<Utc>,
    /// First instant excluded.
    pub end: DateTime<Utc>,
}

impl DateRange {
    /// `[start, end)`; an error names `endAt` when `end` is not after `start`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if end <= start {
            return Err(Error::invalid("endAt", "must be after startAt"));
        }
        Ok(DateRange { start, end })
    }
}

/// A dimension a filter can select on (DESIGN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Dimension {
    Country,
    Region,
    City,
    Device,
    Browser,
    Os,
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    Ref,
    Source,
    Via,
    Page,
    Hostname,
    Goal,
}

impl Dimension {
    /// Every dimension, in documentation order.
    pub const ALL: [Dimension; 18] = [
        Dimension::Country,
        Dimension::Region,
        Dimension::City,
        Dimension::Device,
        Dimension::Browser,
        Dimension::Os,
        Dimension::Referrer,
        Dimension::UtmSource,
        Dimension::UtmMedium,
        Dimension::UtmCampaign,
        Dimension::UtmTerm,
        Dimension::UtmContent,
        Dimension::Ref,
        Dimension::Source,
        Dimension::Via,
        Dimension::Page,
        Dimension::Hostname,
        Dimension::Goal,
    ];

    /// The name used in `filter_<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Country => "country",
            Dimension::Region => "region",
            Dimension::City => "city",
            Dimension::Device => "device",
            Dimension::Browser => "browser",
            Dimension::Os => "os",
            Dimension::Referrer => "referrer",
            Dimension::UtmSource => "utm_source",
            Dimension::UtmMedium => "utm_medium",
            Dimension::UtmCampaign => "utm_campaign",
            Dimension::UtmTerm => "utm_term",
            Dimension::UtmContent => "utm_content",
            Dimension::Ref => "ref",
            Dimension::Source => "source",
            Dimension::Via => "via",
            Dimension::Page => "page",
            Dimension::Hostname => "hostname",
            Dimension::Goal => "goal",
        }
    }

    /// The dimension called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Dimension::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Page, hostname and goal belong to single events (page views, goal completions); every
    /// other dimension is a session attribute that every event of the session carries.
    pub fn is_event_scoped(self) -> bool {
        matches!(
            self,
            Dimension::Page | Dimension::Hostname | Dimension::Goal
        )
    }
}

/// How a filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterOp {
    /// The value is one of the list.
    Is,
    /// The value is none of the list (an event without a session attribute passes; an event
    /// that carries no page or goal never passes a page, hostname or goal filter).
    IsNot,
    /// The value contains one of the list, ignoring case.
    Contains,
}

impl FilterOp {
    /// The name used in `filter_<dim>=<op>:…`.
    pub fn name(self) -> &'static str {
        match self {
            FilterOp::Is => "is",
            FilterOp::IsNot => "is_not",
            FilterOp::Contains => "contains",
        }
    }

    /// The operator called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [FilterOp::Is, FilterOp::IsNot, FilterOp::Contains]
            .into_iter()
            .find(|o| o.name() == name)
    }
}

/// One dimension filter. Country values are ISO codes (the API layer maps names to codes);
/// referrer values match the classified name or the raw host without `www.`; page values match
/// the path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Filter {
    /// What it selects on.
    pub dimension: Dimension,
    /// How it compares.
    pub op: FilterOp,
    /// The values (at least one).
    pub values: Vec<String>,
}

/// Most values one filter may list.
pub const MAX_FILTER_VALUES: usize = 100;
/// Longest filter value, in bytes.
pub const MAX_FILTER_VALUE_BYTES: usize = 1024;
/// Most filters one query may have.
pub const MAX_FILTERS: usize = 32;

impl Filter {
    /// A filter of distinct values (repeats are dropped). An empty list, more than
    /// [`MAX_FILTER_VALUES`] values or a value over [`MAX_FILTER_VALUE_BYTES`] is an error that
    /// names `filter_<dim>`.
    pub fn new(dimension: Dimension, op: FilterOp, mut values: Vec<String>) -> Result<Self> {
        let field = || format!("filter_{}", dimension.name());
        if values.is_empty() {
            return Err(Error::invalid(field(), "needs at least one value"));
        }
        let mut seen = std::collections::HashSet::new();
        values.retain(|v| seen.insert(v.clone()));
        if values.len() > MAX_FILTER_VALUES {
            return Err(Error::invalid(
                field(),
                format!(
                    "lists {} values; at most {MAX_FILTER_VALUES} are allowed",
                    values.len()
                ),
            ));
        }
        if values.iter().any(|v| v.len() > MAX_FILTER_VALUE_BYTES) {
            return Err(Error::invalid(
                field(),
                format!("has a value longer than {MAX_FILTER_VALUE_BYTES} bytes"),
            ));
        }
        Ok(Filter {
            dimension,
            op,
            values,
        })
    }

    /// A country filter over ISO 3166-1 alpha-2 codes, which a caller's names or `contains`
    /// values expand to: bounded by the number of countries rather than by
    /// [`MAX_FILTER_VALUES`] (one `contains:a` names most of them).
    pub fn country_codes(op: FilterOp, mut codes: Vec<String>) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        codes.retain(|c| seen.insert(c.clone()));
        if codes.is_empty() || codes.len() > MAX_COUNTRY_CODES || codes.iter().any(|c| c.len() > 3)
        {
            return Err(Error::invalid(
                "filter_country",
                format!("must name 1 to {MAX_COUNTRY_CODES} country codes"),
            ));
        }
        Ok(Filter {
            dimension: Dimension::Country,
            op,
            values: codes,
        })
    }
}

/// Most country codes one country filter may stand for (there are 249).
pub const MAX_COUNTRY_CODES: usize = 300;

/// Time series bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    /// One bucket per local hour.
    Hour,
    /// One bucket per local day.
    Day,
    /// One bucket per local week, starting Monday.
    Week,
    /// One bucket per local calendar month.
    Month,
}

impl Interval {
    /// `hour`, `day`, `week` or `month`.
    pub fn name(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    /// The interval called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Interval::Hour,
            Interval::Day,
            Interval::Week,
            Interval::Month,
        ]
        .into_iter()
        .find(|i| i.name() == name)
    }
}

/// One of the eight campaign fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum CampaignField {
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    Ref,
    Source,
    Via,
}

impl CampaignField {
    /// All eight, in the documented order.
    pub const ALL: [CampaignField; 8] = [
        CampaignField::UtmSource,
        CampaignField::UtmMedium,
        CampaignField::UtmCampaign,
        CampaignField::UtmTerm,
        CampaignField::UtmContent,
        CampaignField::Ref,
        CampaignField::Source,
        CampaignField::Via,
    ];

    /// The field's name, which is also its column.
    pub fn name(self) -> &'static str {
        match self {
            CampaignField::UtmSource => "utm_source",
            CampaignField::UtmMedium => "utm_medium",
            CampaignField::UtmCampaign => "utm_campaign",
            CampaignField::UtmTerm => "utm_term",
            CampaignField::UtmContent => "utm_content",
            CampaignField::Ref => "ref",
            CampaignField::Source => "source",
            CampaignField::Via => "via",
        }
    }

    /// The field called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        CampaignField::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What a breakdown groups by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Breakdown {
    Country,
    Region,
    City,
    Device,
    Browser,
    Os,
    /// The classified referrer name.
    Referrer,
    /// The chosen campaign fields (at least one), grouped together; empty is `""`.
    Campaign(Vec<CampaignField>),
    /// Hostname and path of page views.
    Page,
    /// Hostname of page views.
    Hostname,
    /// Goal name, with completions.
    Goal,
}

/// Which rows of a breakdown to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Most rows returned, 1 to [`Paging::MAX_LIMIT`].
    pub limit: usize,
    /// Rows skipped first.
    pub offset: usize,
}

impl Paging {
    /// The documented default limit.
    pub const DEFAULT_LIMIT: usize = 100;
    /// The documented maximum limit.
    pub const MAX_LIMIT: usize = 1000;

    /// Checked paging; errors name `limit`.
    pub fn new(limit: usize, offset: usize) -> Result<Self> {
        if limit == 0 || limit > Self::MAX_LIMIT {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        Ok(Paging { limit, offset })
    }
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}
