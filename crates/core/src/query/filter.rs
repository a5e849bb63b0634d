//! Filters become DataFusion [`Expr`]s over the events table (DESIGN §6).
//!
//! The expressions use only column comparisons, `IN` lists, `IS NULL` and string functions, so
//! the table provider can accept them as pushed down and the Parquet scan can prune row groups
//! and pages with them.
//!
//! Null handling, the one place where the choice is ours: an event with no value for a session
//! attribute passes `is_not` (its country is not `US`), but page, hostname and goal filters only
//! ever select the events that carry a page or a goal.

use datafusion::functions::expr_fn::{contains, lower};
use datafusion::prelude::{Expr, col, lit};

use crate::query::spec::{Dimension, Filter, FilterOp};
use crate::schema::col as c;

/// The column a dimension's values are read from.
pub fn dimension_column(d: Dimension) -> &'static str {
    match d {
        Dimension::Country => c::COUNTRY_CODE,
        Dimension::Region => c::REGION,
        Dimension::City => c::CITY,
        Dimension::Device => c::DEVICE,
        Dimension::Browser => c::BROWSER,
        Dimension::Os => c::OS,
        Dimension::Referrer => c::REFERRER_NAME,
        Dimension::UtmSource => c::UTM_SOURCE,
        Dimension::UtmMedium => c::UTM_MEDIUM,
        Dimension::UtmCampaign => c::UTM_CAMPAIGN,
        Dimension::UtmTerm => c::UTM_TERM,
        Dimension::UtmContent => c::UTM_CONTENT,
        Dimension::Ref => c::REF,
        Dimension::Source => c::SOURCE,
        Dimension::Via => c::VIA,
        Dimension::Page => c::PATH,
        Dimension::Hostname => c::HOSTNAME,
        Dimension::Goal => c::GOAL_NAME,
    }
}

/// The values a filter compares with, normalised as the column stores them.
pub fn normalized_values(f: &Filter) -> Vec<String> {
    match f.dimension {
        Dimension::Country => f.values.iter().map(|v| v.to_ascii_uppercase()).collect(),
        _ => f.values.clone(),
    }
}

/// Hosts a referrer value may match in the raw `referrer` column: the value and its `www.` form.
pub fn referrer_host_values(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| {
            let v = v.to_ascii_lowercase();
            let v = v.strip_prefix("www.").unwrap_or(&v).to_owned();
            [format!("www.{v}"), v]
        })
        .collect()
}

/// The predicate of one filter.
pub fn filter_expr(f: &Filter) -> Expr {
    let values = normalized_values(f);
    let column = col(dimension_column(f.dimension));
    // Referrers match the classified name or the raw host.
    let host = (f.dimension == Dimension::Referrer).then(|| col(c::REFERRER));
    match f.op {
        FilterOp::Is => {
            let by_value = in_list(column, &values);
            match host {
                Some(h) => by_value.or(in_list(h, &referrer_host_values(&values))),
                None => by_value,
            }
        }
        FilterOp::Contains => {
            let by_value = any_contains(column, &values);
            match host {
                Some(h) => by_value.or(any_contains(h, &values)),
                None => by_value,
            }
        }
        FilterOp::IsNot => {
            let none_of = |column: Expr, vals: &[String]| {
                if f.dimension.is_event_scoped() {
                    column
                        .clone()
                        .is_not_null()
                        .and(column.in_list(lits(vals), true))
                } else {
                    column
                        .clone()
                        .is_null()
                        .or(column.in_list(lits(vals), true))
                }
            };
            let by_value = none_of(column, &values);
            match host {
                Some(h) => by_value.and(none_of(h, &referrer_host_values(&values))),
                None => by_value,
            }
        }
    }
}

/// All filters ANDed; `None` when there are none.
pub fn filters_expr(filters: &[Filter]) -> Option<Expr> {
    balanced(filters.iter().map(filter_expr).collect(), Expr::and)
}

/// `exprs` joined by `join` as a balanced tree: its depth grows with the log of their number,
/// so a long value list cannot overflow the stack of the recursive passes over expressions.
fn balanced(mut exprs: Vec<Expr>, join: fn(Expr, Expr) -> Expr) -> Option<Expr> {
    match exprs.len() {
        0 => None,
        1 => exprs.pop(),
        n => {
            let right = exprs.split_off(n / 2);
            Some(join(balanced(exprs, join)?, balanced(right, join)?))
        }
    }
}

fn lits(values: &[String]) -> Vec<Expr> {
    values.iter().map(|v| lit(v.clone())).collect()
}

fn in_list(column: Expr, values: &[String]) -> Expr {
    match values {
        [one] => column.eq(lit(one.clone())),
        _ => column.in_list(lits(values), false),
    }
}

fn any_contains(column: Expr, values: &[String]) -> Expr {
    let each = values
        .iter()
        .map(|v| contains(lower(column.clone()), lit(v.to_lowercase())))
        .collect();
    balanced(each, Expr::or).unwrap_or_else(|| lit(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_is_matches_name_or_host() {
        let f = Filter::new(Dimension::Referrer, FilterOp::Is, vec!["google.com".into()]).unwrap();
        let s = filter_expr(&f).to_string();
        assert!(s.contains("referrer_name"), "{s}");
        assert!(s.contains("www.google.com"), "{s}");
    }

    #[test]
    fn long_value_lists_make_shallow_expressions() {
        fn depth(e: &Expr) -> usize {
            match e {
                Expr::BinaryExpr(b) => 1 + depth(&b.left).max(depth(&b.right)),
                _ => 1,
            }
        }
        let values = (0..100).map(|i| format!("/p{i}")).collect();
        let f = Filter::new(Dimension::Page, FilterOp::Contains, values).unwrap();
        let filters = vec![f; 32];
        let e = filters_expr(&filters).unwrap();
        assert!(depth(&e) <= 15, "depth {}", depth(&e));
    }

    #[test]
    fn country_codes_are_upper_cased() {
        let f = Filter::new(Dimension::Country, FilterOp::Is, vec!["us".into()]).unwrap();
        assert!(filter_expr(&f).to_string().contains("Utf8(\"US\")"));
    }
}
