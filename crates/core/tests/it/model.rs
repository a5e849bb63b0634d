//! The reference model: DESIGN §3–§5 in plain Rust, with no DataFusion, for tests only.
//!
//! It replays the same events through its own session rules and answers the same queries by
//! brute force. Property tests hold the engine equal to it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use tally_core::query::time::bucket_starts;
use tally_core::{
    Breakdown, BreakdownRow, DateRange, Dimension, Event, EventKind, Filter, FilterOp, Interval,
    Overview, Query, Revenue, SessionAttrs, Website, referrer,
};

/// An event as the model stores it.
#[derive(Debug, Clone)]
pub struct Row {
    pub website: String,
    pub ts: i64,
    pub kind: &'static str,
    pub visitor: String,
    pub session: String,
    pub hostname: Option<String>,
    pub path: Option<String>,
    pub attrs: SessionAttrs,
    pub goal: Option<String>,
    /// (amount in website currency, renewal, refunded)
    pub payment: Option<(f64, bool, bool)>,
    /// The payment's transaction id.
    pub transaction: Option<String>,
}

/// The interval used, bucket starts, and per-bucket (visitors, sessions, revenue).
pub type Series = (Interval, Vec<DateTime<Utc>>, Vec<(u64, u64, Revenue)>);

pub struct Model {
    pub rows: Vec<Row>,
    pub websites: HashMap<String, Website>,
}

struct Visitor {
    session: String,
    last: i64,
    attrs: SessionAttrs,
    landed: bool,
}

impl Model {
    /// Replays `events` (sorted by time, stably) as ingest would.
    pub fn new(events: &[Event], websites: &[Website]) -> Self {
        let websites: HashMap<String, Website> =
            websites.iter().map(|w| (w.id.clone(), w.clone())).collect();
        let mut sorted: Vec<&Event> = events.iter().collect();
        sorted.sort_by_key(|e| e.ts);
        let mut visitors: HashMap<(String, String), Visitor> = HashMap::new();
        let mut seen_tx: HashSet<(String, String)> = HashSet::new();
        let mut rows = Vec::new();
        for e in sorted {
            let Some(site) = websites.get(&e.website_id) else {
                continue;
            };
            if e.validate().is_err() {
                continue;
            }
            let payment = match &e.kind {
                EventKind::Payment(p) => {
                    let Ok(amount) = site.convert(p.amount, &p.currency, e.ts.date_naive()) else {
                        continue;
                    };
                    if !seen_tx.insert((e.website_id.clone(), p.transaction_id.clone())) {
                        continue;
                    }
                    Some((amount, p.renewal, p.refunded))
                }
                _ => None,
            };
            // referrer classification is the engine's own unit-tested function
            let mut own = e.attrs.clone();
            let mut hosts: Vec<&str> = site.site_hosts();
            if let Some(h) = e.hostname.as_deref() {
                hosts.push(h);
            }
            if own
                .referrer
                .as_deref()
                .is_some_and(|r| referrer::is_same_site(r, &hosts))
            {
                own.referrer = None;
            }
            own.referrer_name = Some(referrer::classify(own.referrer.as_deref(), &hosts).into());

            let ts = e.ts.timestamp_micros();
            let is_pv = matches!(e.kind, EventKind::Pageview);
            let key = (e.website_id.clone(), e.visitor_id.clone());
            let prev = visitors.get(&key);
            let session = match (&e.session_id, prev) {
                (Some(s), _) => s.clone(),
                (None, Some(p)) if !is_pv => p.session.clone(),
                (None, Some(p)) if ts - p.last <= 30 * 60 * 1_000_000 => p.session.clone(),
                (None, _) => format!("auto-{ts}"),
            };
            let next = match prev {
                Some(p) if p.session == session => {
                    if is_pv && !p.landed {
                        Visitor {
                            session: session.clone(),
                            last: ts,
                            attrs: own.clone(),
                            landed: true,
                        }
                    } else {
                        Visitor {
                            session: session.clone(),
                            last: ts.max(p.last),
                            attrs: p.attrs.clone(),
                            landed: p.landed,
                        }
                    }
                }
                Some(p) if !is_pv => Visitor {
                    session: session.clone(),
                    last: ts,
                    attrs: p.attrs.clone(),
                    landed: false,
                },
                _ => Visitor {
                    session: session.clone(),
                    last: ts,
                    attrs: own.clone(),
                    landed: is_pv,
                },
            };
            let attrs = next.attrs.clone();
            visitors.insert(key, next);
            rows.push(Row {
                website: e.website_id.clone(),
                ts,
                kind: e.kind.name(),
                visitor: e.visitor_id.clone(),
                session,
                hostname: if is_pv { e.hostname.clone() } else { None },
                path: if is_pv { e.path.clone() } else { None },
                attrs,
                goal: match &e.kind {
                    EventKind::Goal { name, .. } => Some(name.clone()),
                    _ => None,
                },
                payment,
                transaction: match &e.kind {
                    EventKind::Payment(p) => Some(p.transaction_id.clone()),
                    _ => None,
                },
            });
        }
        Model { rows, websites }
    }

    fn in_range<'a>(&'a self, q: &'a Query) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows.iter().filter(move |r| {
            r.website == q.website_id
                && q.range.is_none_or(|rg| {
                    r.ts >= rg.start.timestamp_micros() && r.ts < rg.end.timestamp_micros()
                })
        })
    }

    fn selected<'a>(&'a self, q: &'a Query) -> impl Iterator<Item = &'a Row> + 'a {
        self.in_range(q)
            .filter(move |r| q.filters.iter().all(|f| matches(f, r)))
    }

    pub fn overview(&self, q: &Query) -> Overview {
        let sel: Vec<&Row> = self.selected(q).collect();
        let visitors: BTreeSet<&str> = sel.iter().map(|r| r.visitor.as_str()).collect();
        let sessions: BTreeSet<(&str, &str)> = sel
            .iter()
            .map(|r| (r.visitor.as_str(), r.session.as_str()))
            .collect();
        let mut per_session: HashMap<(&str, &str), (i64, i64, u64, u64)> = HashMap::new();
        for r in self.in_range(q) {
            let k = (r.visitor.as_str(), r.session.as_str());
            if !sessions.contains(&k) {
                continue;
            }
            let e = per_session.entry(k).or_insert((i64::MAX, i64::MIN, 0, 0));
            e.0 = e.0.min(r.ts);
            e.1 = e.1.max(r.ts);
            e.2 += u64::from(r.kind == "pageview");
            e.3 += u64::from(r.kind == "goal");
        }
        let bounced = per_session
            .values()
            .filter(|s| s.2 == 1 && s.3 == 0)
            .count() as u64;
        let total_us: i64 = per_session.values().map(|s| s.1 - s.0).sum();
        let n = per_session.len() as u64;
        let (revenue, paying) = self.revenue_of(self.in_range(q), &visitors);
        let v = visitors.len() as u64;
        Overview {
            visitors: v,
            sessions: n,
            bounced_sessions: bounced,
            bounce_rate: if n == 0 {
                0.0
            } else {
                bounced as f64 * 100.0 / n as f64
            },
            avg_session_duration_ms: if n == 0 {
                0.0
            } else {
                total_us as f64 / n as f64 / 1000.0
            },
            revenue,
            paying_visitors: paying,
            revenue_per_visitor: if v == 0 {
                0.0
            } else {
                revenue.total() / v as f64
            },
            conversion_rate: if v == 0 {
                0.0
            } else {
                paying as f64 * 100.0 / v as f64
            },
        }
    }

    fn revenue_of<'a>(
        &self,
        rows: impl Iterator<Item = &'a Row>,
        visitors: &BTreeSet<&str>,
    ) -> (Revenue, u64) {
        let mut rev = Revenue::default();
        let mut paying = BTreeSet::new();
        for r in rows {
            let Some((amount, renewal, refunded)) = r.payment else {
                continue;
            };
            if !visitors.contains(r.visitor.as_str()) {
                continue;
            }
            if refunded {
                rev.refund += amount;
            } else {
                paying.insert(r.visitor.clone());
                if renewal {
                    rev.renewal += amount;
                } else {
                    rev.new += amount;
                }
            }
        }
        (rev, paying.len() as u64)
    }

    /// Every row of a breakdown, sorted as the engine sorts.
    pub fn breakdown(&self, q: &Query, by: &Breakdown) -> Vec<BreakdownRow> {
        let mut visitor_revenue: HashMap<&str, f64> = HashMap::new();
        for r in self.in_range(q) {
            if let Some((amount, _, false)) = r.payment {
                *visitor_revenue.entry(r.visitor.as_str()).or_default() += amount;
            }
        }
        let mut groups: BTreeMap<Vec<String>, (BTreeSet<&str>, u64)> = BTreeMap::new();
        for r in self.selected(q) {
            let Some(values) = breakdown_values(by, r) else {
                continue;
            };
            let g = groups.entry(values).or_default();
            g.0.insert(r.visitor.as_str());
            g.1 += 1;
        }
        let mut rows: Vec<BreakdownRow> = groups
            .into_iter()
            .map(|(values, (visitors, events))| BreakdownRow {
                values,
                visitors: visitors.len() as u64,
                revenue: visitors
                    .iter()
                    .map(|v| visitor_revenue.get(v).copied().unwrap_or(0.0))
                    .sum(),
                completions: events,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.visitors
                .cmp(&a.visitors)
                .then_with(|| a.values.cmp(&b.values))
        });
        rows
    }

    /// Bucket starts (the engine's, checked here) and per-bucket (visitors, sessions, revenue).
    pub fn timeseries(&self, q: &Query, interval: Interval) -> Series {
        let site = &self.websites[&q.website_id];
        let tz = q.timezone.unwrap_or_else(|| site.tz());
        let range = q.range.or_else(|| {
            let ts: Vec<i64> = self.in_range(q).map(|r| r.ts).collect();
            let lo = *ts.iter().min()?;
            let hi = *ts.iter().max()?;
            DateRange::new(
                Utc.timestamp_micros(lo).single()?,
                Utc.timestamp_micros(hi + 1).single()?,
            )
            .ok()
        });
        let Some(range) = range else {
            return (interval, vec![], vec![]);
        };
        let first = range.start.with_timezone(&tz).date_naive();
        let last = (range.end - Duration::microseconds(1))
            .with_timezone(&tz)
            .date_naive();
        let interval = if first == last {
            Interval::Hour
        } else {
            interval
        };
        let starts = bucket_starts(range, tz, interval).unwrap();
        // Independent check of the buckets: each start is a local boundary, strictly increasing,
        // and every event of the range falls in the bucket whose local key it shares.
        let keys: Vec<Key> = starts.iter().map(|s| key(*s, tz, interval)).collect();
        for w in starts.windows(2) {
            assert!(w[0] < w[1]);
        }
        let mut out = vec![(BTreeSet::new(), BTreeSet::new(), Vec::new()); starts.len()];
        let q_range = Query {
            range: Some(range),
            ..q.clone()
        };
        let bucket_of = |ts: i64| {
            let k = key(Utc.timestamp_micros(ts).unwrap(), tz, interval);
            keys.iter()
                .position(|x| *x == k)
                .unwrap_or_else(|| panic!("no bucket for {ts} ({k:?})"))
        };
        for r in self.selected(&q_range) {
            let b = bucket_of(r.ts);
            out[b].0.insert(r.visitor.clone());
            out[b].1.insert((r.visitor.clone(), r.session.clone()));
        }
        for r in self.in_range(&q_range) {
            if r.payment.is_some() {
                let b = bucket_of(r.ts);
                out[b].2.push(r.clone());
            }
        }
        let buckets = out
            .into_iter()
            .map(|(v, s, pays)| {
                let vs: BTreeSet<&str> = v.iter().map(String::as_str).collect();
                let (rev, _) = self.revenue_of(pays.iter(), &vs);
                (v.len() as u64, s.len() as u64, rev)
            })
            .collect();
        (interval, starts, buckets)
    }
}

#[derive(Debug, PartialEq)]
enum Key {
    Hour(chrono::NaiveDateTime, i32),
    Day(chrono::NaiveDate),
    Month(i32, u32),
}

fn key(t: DateTime<Utc>, tz: Tz, interval: Interval) -> Key {
    use chrono::Offset;
    let local = t.with_timezone(&tz);
    let d = local.date_naive();
    match interval {
        Interval::Hour => Key::Hour(
            d.and_hms_opt(local.hour(), 0, 0).unwrap(),
            local.offset().fix().local_minus_utc(),
        ),
        Interval::Day => Key::Day(d),
        Interval::Week => {
            Key::Day(d - Duration::days(i64::from(d.weekday().num_days_from_monday())))
        }
        Interval::Month => Key::Month(d.year(), d.month()),
    }
}

fn attr(d: Dimension, r: &Row) -> Option<&str> {
    let a = &r.attrs;
    match d {
        Dimension::Country => a.country_code.as_deref(),
        Dimension::Region => a.region.as_deref(),
        Dimension::City => a.city.as_deref(),
        Dimension::Device => a.device.as_deref(),
        Dimension::Browser => a.browser.as_deref(),
        Dimension::Os => a.os.as_deref(),
        Dimension::Referrer => a.referrer_name.as_deref(),
        Dimension::UtmSource => a.utm_source.as_deref(),
        Dimension::UtmMedium => a.utm_medium.as_deref(),
        Dimension::UtmCampaign => a.utm_campaign.as_deref(),
        Dimension::UtmTerm => a.utm_term.as_deref(),
        Dimension::UtmContent => a.utm_content.as_deref(),
        Dimension::Ref => a.ref_.as_deref(),
        Dimension::Source => a.source.as_deref(),
        Dimension::Via => a.via.as_deref(),
        Dimension::Page => r.path.as_deref(),
        Dimension::Hostname => r.hostname.as_deref(),
        Dimension::Goal => r.goal.as_deref(),
    }
}

/// DESIGN §6 evaluated on one row.
pub fn matches(f: &Filter, r: &Row) -> bool {
    let value = attr(f.dimension, r);
    let host = if f.dimension == Dimension::Referrer {
        r.attrs.referrer.as_deref()
    } else {
        None
    };
    let host = host.map(|h| h.strip_prefix("www.").unwrap_or(h));
    let norm = |v: &str| {
        if f.dimension == Dimension::Country {
            v.to_ascii_uppercase()
        } else {
            v.to_owned()
        }
    };
    let is = |v: &String| {
        value == Some(norm(v).as_str())
            || host.is_some_and(|h| {
                let v = v.to_ascii_lowercase();
                h == v.strip_prefix("www.").unwrap_or(&v)
            })
    };
    let contains = |v: &String| {
        let needle = v.to_lowercase();
        value.is_some_and(|x| x.to_lowercase().contains(&needle))
            || r.attrs
                .referrer
                .as_deref()
                .filter(|_| f.dimension == Dimension::Referrer)
                .is_some_and(|x| x.to_lowercase().contains(&needle))
    };
    match f.op {
        FilterOp::Is => f.values.iter().any(is),
        FilterOp::Contains => f.values.iter().any(contains),
        FilterOp::IsNot => {
            if f.dimension.is_event_scoped() && value.is_none() {
                return false;
            }
            !f.values.iter().any(is)
        }
    }
}

fn breakdown_values(by: &Breakdown, r: &Row) -> Option<Vec<String>> {
    let one = |d| attr(d, r).map(|v| vec![v.to_owned()]);
    match by {
        Breakdown::Country => one(Dimension::Country),
        Breakdown::Region => one(Dimension::Region),
        Breakdown::City => one(Dimension::City),
        Breakdown::Device => one(Dimension::Device),
        Breakdown::Browser => one(Dimension::Browser),
        Breakdown::Os => one(Dimension::Os),
        Breakdown::Referrer => one(Dimension::Referrer),
        Breakdown::Hostname => one(Dimension::Hostname),
        Breakdown::Goal => one(Dimension::Goal),
        Breakdown::Page => Some(vec![r.hostname.clone()?, r.path.clone()?]),
        Breakdown::Campaign(fields) => {
            let values: Vec<String> = fields
                .iter()
                .map(|f| {
                    let d = Dimension::from_name(f.name()).unwrap();
                    attr(d, r).unwrap_or("").to_owned()
                })
                .collect();
            values.iter().any(|v| !v.is_empty()).then_some(values)
        }
    }
}

impl Model {
    /// The conversion model's statistics of `site` by brute force: each visitor once, with
    /// the attributes of their first event, paying with a payment that was not refunded.
    pub fn model_stats(&self, site: &str) -> tally_core::query::model::ModelStats {
        use tally_core::query::model::{Counts, ModelStats, PredictDim};
        let mut first: BTreeMap<&str, &Row> = BTreeMap::new();
        let mut paid: HashMap<&str, f64> = HashMap::new();
        for r in self.rows.iter().filter(|r| r.website == site) {
            first.entry(r.visitor.as_str()).or_insert(r);
            if let Some((amount, _, false)) = r.payment {
                *paid.entry(r.visitor.as_str()).or_default() += amount;
            }
        }
        let mut stats = ModelStats::default();
        for (visitor, row) in first {
            let revenue = paid.get(visitor).copied();
            let add = |c: &mut Counts| c.add(revenue.is_some(), revenue.unwrap_or(0.0));
            add(&mut stats.baseline);
            let a = &row.attrs;
            for (d, v) in [
                (PredictDim::Device, &a.device),
                (PredictDim::Os, &a.os),
                (PredictDim::Browser, &a.browser),
                (PredictDim::Country, &a.country_code),
                (PredictDim::Referrer, &a.referrer_name),
            ] {
                if let Some(v) = v {
                    add(stats.by_value.entry((d, v.to_string())).or_default());
                }
            }
        }
        stats
    }

    /// Whether some visitor of `site` has two events at their first instant with different
    /// attributes (then "their first event" is not defined by time alone).
    pub fn first_instant_is_ambiguous(&self, site: &str) -> bool {
        let mut first: HashMap<&str, (i64, &SessionAttrs)> = HashMap::new();
        for r in self.rows.iter().filter(|r| r.website == site) {
            match first.get(r.visitor.as_str()) {
                None => {
                    first.insert(&r.visitor, (r.ts, &r.attrs));
                }
                Some((ts, attrs)) if *ts == r.ts && *attrs != &r.attrs => return true,
                Some(_) => {}
            }
        }
        false
    }
}
