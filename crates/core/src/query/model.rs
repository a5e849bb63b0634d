//! Conversion prediction: how likely a visitor is to pay, and what that is worth, from how
//! visitors like them converted on the same website.
//!
//! The model, in four steps:
//! 1. **Baseline.** From the website's history: `p0` = paying visitors / visitors, and the
//!    average order value `v0` = revenue / paying visitors.
//! 2. **One estimate per dimension.** For each of the visitor's device, OS, browser, country
//!    and referrer that the history has seen, the visitors with that value converted
//!    `c` times out of `n`. That rate is noisy when `n` is small, so it is shrunk toward the
//!    baseline with a Beta prior of mean `p0` and strength [`PRIOR_VISITORS`]:
//!    `r = (c + K·p0) / (n + K)`. This is the posterior mean of the value's rate (empirical
//!    Bayes); with `n = K` the dimension's own rate and the baseline weigh the same. The order
//!    value per dimension is shrunk the same way with [`PRIOR_PAYERS`] payers.
//! 3. **Combination.** Each dimension contributes its log-odds lift `logit(r) − logit(p0)`;
//!    the lifts add (the dimensions are treated as independent evidence, as in naive Bayes):
//!    `logit(p) = logit(p0) + Σ lift`. The expected value is `p × v`, with `v` the mean of the
//!    matched dimensions' shrunk order values (or `v0`).
//! 4. **Score and confidence.** `score = 100 · σ(Σ lift)`: exactly 50 when the visitor's values
//!    convert like the baseline, above 50 when better, and rising with every matched rate.
//!    `confidence` is `(w(N) + Σ w(n_d)) / 6` with `w(n) = n / (n + K)`, over the baseline's
//!    `N` visitors and the matched dimensions (an unmatched one adds 0): 0 with no data, 0.5
//!    when all five dimensions and the baseline rest on `K` visitors each, towards 1 with more.
//!    More visitors, or one more matched dimension, never lower it.
//!
//! [`predict`] is a pure function of [`ModelStats`]; [`ModelStats`] are counted by the engine
//! from its events (each visitor once, with the values of their first event).

use std::collections::HashMap;

/// Strength of the prior on a dimension's conversion rate, in visitors.
pub const PRIOR_VISITORS: f64 = 100.0;
/// Strength of the prior on a dimension's order value, in paying visitors.
pub const PRIOR_PAYERS: f64 = 10.0;
/// Rates are kept inside `[RATE_FLOOR, 1 − RATE_FLOOR]` so that log-odds stay finite.
pub const RATE_FLOOR: f64 = 1e-6;

/// The dimensions a prediction matches on, in the order the API lists them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum PredictDim {
    /// Device type.
    Device,
    /// Operating system.
    Os,
    /// Browser.
    Browser,
    /// Country code.
    Country,
    /// Referrer name.
    Referrer,
}

impl PredictDim {
    /// Every dimension.
    pub const ALL: [PredictDim; 5] = [
        PredictDim::Device,
        PredictDim::Os,
        PredictDim::Browser,
        PredictDim::Country,
        PredictDim::Referrer,
    ];

    /// The name the API shows (`device`, `os`, `browser`, `country`, `referrer`).
    pub fn name(self) -> &'static str {
        match self {
            PredictDim::Device => "device",
            PredictDim::Os => "os",
            PredictDim::Browser => "browser",
            PredictDim::Country => "country",
            PredictDim::Referrer => "referrer",
        }
    }
}

/// Visitors, paying visitors and their revenue, for the whole site or one dimension value.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Visitors.
    pub visitors: u64,
    /// Visitors with a payment that was not refunded.
    pub payers: u64,
    /// Revenue of those payments, in the website currency.
    pub revenue: f64,
}

impl Counts {
    /// Adds one visitor.
    pub fn add(&mut self, paid: bool, revenue: f64) {
        self.visitors += 1;
        if paid {
            self.payers += 1;
            self.revenue += revenue;
        }
    }
}

/// What the model knows of a website's history.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelStats {
    /// The whole website.
    pub baseline: Counts,
    /// Per dimension and value.
    pub by_value: HashMap<(PredictDim, String), Counts>,
}

/// One visitor's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// 0–100; 50 converts like the baseline.
    pub score: f64,
    /// 0–1: the data behind the estimate.
    pub confidence: f64,
    /// Predicted conversion rate, 0–1.
    pub conversion_rate: f64,
    /// Predicted order value, website currency.
    pub average_value: f64,
    /// `conversion_rate × average_value`.
    pub expected_value: f64,
    /// The dimensions whose values the history had seen.
    pub dimension_matches: Vec<PredictDim>,
    /// No dimension matched: the estimate is the baseline.
    pub is_baseline: bool,
}

impl ModelStats {
    /// Whether predictions can be made: the site has had a paying visitor.
    pub fn has_payments(&self) -> bool {
        self.baseline.payers > 0
    }

    /// The baseline conversion rate (0–1).
    pub fn baseline_rate(&self) -> f64 {
        ratio(self.baseline.payers as f64, self.baseline.visitors as f64)
    }

    /// The baseline average order value.
    pub fn baseline_value(&self) -> f64 {
        ratio(self.baseline.revenue, self.baseline.payers as f64)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn clamp_rate(p: f64) -> f64 {
    if p.is_finite() {
        p.clamp(RATE_FLOOR, 1.0 - RATE_FLOOR)
    } else {
        RATE_FLOOR
    }
}

fn logit(p: f64) -> f64 {
    let p = clamp_rate(p);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Predicts for a visitor with `values` (a dimension may be missing or unknown). `None` when
/// the site has no paying visitor.
pub fn predict(stats: &ModelStats, values: &[(PredictDim, Option<&str>)]) -> Option<Prediction> {
    if !stats.has_payments() {
        return None;
    }
    let p0 = clamp_rate(stats.baseline_rate());
    let v0 = stats.baseline_value();
    let base_logit = logit(p0);
    let mut lift = 0.0;
    let mut values_sum = 0.0;
    let mut confidence_sum = weight(stats.baseline.visitors);
    let mut matches = Vec::new();
    for dim in PredictDim::ALL {
        let Some(value) = values.iter().find(|(d, _)| *d == dim).and_then(|(_, v)| *v) else {
            continue;
        };
        let Some(c) = stats.by_value.get(&(dim, value.to_owned())) else {
            continue;
        };
        if c.visitors == 0 {
            continue;
        }
        let rate = (c.payers as f64 + PRIOR_VISITORS * p0) / (c.visitors as f64 + PRIOR_VISITORS);
        lift += logit(rate) - base_logit;
        values_sum += (c.revenue + PRIOR_PAYERS * v0) / (c.payers as f64 + PRIOR_PAYERS);
        confidence_sum += weight(c.visitors);
        matches.push(dim);
    }
    let n = matches.len();
    let conversion_rate = sigmoid(base_logit + lift);
    let average_value = if n == 0 { v0 } else { values_sum / n as f64 };
    Some(Prediction {
        score: (100.0 * sigmoid(lift)).clamp(0.0, 100.0),
        confidence: (confidence_sum / (PredictDim::ALL.len() + 1) as f64).clamp(0.0, 1.0),
        conversion_rate,
        average_value,
        expected_value: conversion_rate * average_value,
        is_baseline: n == 0,
        dimension_matches: matches,
    })
}

/// How much an estimate on `n` visitors can be trusted, 0–1.
fn weight(n: u64) -> f64 {
    n as f64 / (n as f64 + PRIOR_VISITORS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> ModelStats {
        let mut s = ModelStats {
            baseline: Counts {
                visitors: 1000,
                payers: 10,
                revenue: 500.0,
            },
            ..ModelStats::default()
        };
        s.by_value.insert(
            (PredictDim::Country, "US".into()),
            Counts {
                visitors: 200,
                payers: 8,
                revenue: 400.0,
            },
        );
        s
    }

    #[test]
    fn a_site_without_payments_has_no_prediction() {
        let mut s = stats();
        s.baseline.payers = 0;
        assert_eq!(predict(&s, &[]), None);
    }

    #[test]
    fn unknown_values_give_the_baseline() {
        let p = predict(&stats(), &[(PredictDim::Country, Some("FR"))]).unwrap();
        assert!(p.is_baseline);
        assert_eq!(p.score, 50.0);
        assert!((p.conversion_rate - 0.01).abs() < 1e-12);
        assert_eq!(p.average_value, 50.0);
    }

    #[test]
    fn a_better_converting_country_scores_above_fifty_by_the_worked_numbers() {
        let p = predict(&stats(), &[(PredictDim::Country, Some("US"))]).unwrap();
        // r = (8 + 100·0.01) / (200 + 100) = 0.03
        let lift = logit(0.03) - logit(0.01);
        assert!((p.score - 100.0 * sigmoid(lift)).abs() < 1e-9);
        assert!((p.conversion_rate - 0.03).abs() < 1e-12);
        // v = (400 + 10·50) / (8 + 10) = 50
        assert!((p.average_value - 50.0).abs() < 1e-12);
        assert_eq!(p.dimension_matches, vec![PredictDim::Country]);
        // confidence = (1000/1100 + 200/300) / 6
        assert!((p.confidence - (1000.0 / 1100.0 + 200.0 / 300.0) / 6.0).abs() < 1e-12);
    }
}
