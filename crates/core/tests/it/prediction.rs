//! Conversion prediction: the properties the model promises (`query::model`), and the
//! engine's model statistics equal to the reference model's.

use proptest::prelude::*;
use tally_core::query::model::{Counts, ModelStats, PredictDim, predict};

/// Site statistics with the visitor's five values present, and the visitor's values.
fn stats_and_visitor() -> impl Strategy<Value = (ModelStats, Vec<(PredictDim, Option<String>)>)> {
    let counts = (1u64..100_000, 0.0f64..1.0, 1.0f64..500.0).prop_map(|(n, share, aov)| {
        let payers = ((n as f64) * share) as u64;
        Counts {
            visitors: n,
            payers,
            revenue: payers as f64 * aov,
        }
    });
    (
        counts.clone(),
        prop::collection::vec((prop::option::of(counts), any::<bool>()), 5),
    )
        .prop_map(|(mut baseline, dims)| {
            baseline.payers = baseline.payers.max(1);
            baseline.visitors = baseline.visitors.max(baseline.payers);
            let mut stats = ModelStats {
                baseline,
                ..ModelStats::default()
            };
            let mut visitor = Vec::new();
            for (d, (c, known)) in PredictDim::ALL.into_iter().zip(dims) {
                if let Some(c) = c {
                    stats.by_value.insert((d, "seen".into()), c);
                }
                visitor.push((d, Some(if known { "seen" } else { "never" }.to_owned())));
            }
            (stats, visitor)
        })
}

fn values(v: &[(PredictDim, Option<String>)]) -> Vec<(PredictDim, Option<&str>)> {
    v.iter().map(|(d, s)| (*d, s.as_deref())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn values_converting_at_the_baseline_score_fifty(visitors in 1u64..1_000_000, payers in 1u64..1_000, scale in prop::collection::vec(1u64..50, 5)) {
        let visitors = visitors.max(payers);
        let mut stats = ModelStats { baseline: Counts { visitors, payers, revenue: payers as f64 * 30.0 }, ..ModelStats::default() };
        for (d, k) in PredictDim::ALL.into_iter().zip(&scale) {
            // k times the baseline's visitors and payers: exactly the baseline's rate
            stats.by_value.insert((d, "x".into()), Counts { visitors: visitors * k, payers: payers * k, revenue: 0.0 });
        }
        let v: Vec<_> = PredictDim::ALL.iter().map(|d| (*d, Some("x"))).collect();
        let p = predict(&stats, &v).unwrap();
        prop_assert!((p.score - 50.0).abs() < 1e-6, "{}", p.score);
        prop_assert_eq!(p.dimension_matches.len(), 5);
        prop_assert!(!p.is_baseline);
    }

    #[test]
    fn a_higher_rate_on_a_matched_dimension_never_lowers_the_score((stats, visitor) in stats_and_visitor(), which in 0usize..5, more in 1u64..1000) {
        let before = predict(&stats, &values(&visitor)).unwrap();
        let mut better = stats.clone();
        if let Some(c) = better.by_value.get_mut(&(PredictDim::ALL[which], "seen".into())) {
            c.payers = (c.payers + more).min(c.visitors);
        }
        let after = predict(&better, &values(&visitor)).unwrap();
        prop_assert!(after.score >= before.score - 1e-9, "{} -> {}", before.score, after.score);
        prop_assert!(after.conversion_rate >= before.conversion_rate - 1e-12);
    }

    #[test]
    fn more_data_never_lowers_the_confidence((stats, visitor) in stats_and_visitor(), extra in prop::collection::vec((0u64..5000, 0u64..50), 6)) {
        let before = predict(&stats, &values(&visitor)).unwrap();
        let mut more = stats.clone();
        more.baseline.visitors += extra[0].0 + extra[0].1;
        more.baseline.payers += extra[0].1;
        for (d, (n, paid)) in PredictDim::ALL.into_iter().zip(&extra[1..]) {
            // new visitors with the visitor's value, whether or not it was seen before
            let value = visitor.iter().find(|(x, _)| *x == d).and_then(|(_, v)| v.clone()).unwrap();
            let c = more.by_value.entry((d, value)).or_default();
            c.visitors += n + paid;
            c.payers += paid;
        }
        let after = predict(&more, &values(&visitor)).unwrap();
        prop_assert!(after.confidence >= before.confidence - 1e-12, "{} -> {}", before.confidence, after.confidence);
    }

    #[test]
    fn every_output_is_finite_and_in_range((stats, visitor) in stats_and_visitor()) {
        let p = predict(&stats, &values(&visitor)).unwrap();
        prop_assert!(p.score.is_finite() && (0.0..=100.0).contains(&p.score), "{:?}", p);
        prop_assert!(p.confidence.is_finite() && (0.0..=1.0).contains(&p.confidence), "{:?}", p);
        prop_assert!(p.conversion_rate.is_finite() && (0.0..=1.0).contains(&p.conversion_rate), "{:?}", p);
        prop_assert!(p.average_value.is_finite() && p.average_value >= 0.0, "{:?}", p);
        prop_assert!(p.expected_value.is_finite() && p.expected_value >= 0.0, "{:?}", p);
        prop_assert_eq!(p.is_baseline, p.dimension_matches.is_empty());
    }

    #[test]
    fn extreme_sites_stay_in_range(visitors in 1u64..u64::from(u32::MAX), all_pay in any::<bool>()) {
        let payers = if all_pay { visitors } else { 1 };
        let mut stats = ModelStats { baseline: Counts { visitors, payers, revenue: 1e12 }, ..ModelStats::default() };
        stats.by_value.insert((PredictDim::Country, "US".into()), Counts { visitors: 1, payers: 1, revenue: 1e9 });
        let p = predict(&stats, &[(PredictDim::Country, Some("US"))]).unwrap();
        prop_assert!((0.0..=100.0).contains(&p.score) && p.expected_value.is_finite(), "{:?}", p);
    }
}

#[test]
fn a_site_without_payments_predicts_nothing() {
    let stats = ModelStats {
        baseline: Counts {
            visitors: 10,
            payers: 0,
            revenue: 0.0,
        },
        ..ModelStats::default()
    };
    assert_eq!(
        predict(&stats, &[(PredictDim::Device, Some("desktop"))]),
        None
    );
}

/// Past its age, the model is recounted in the background: the request that finds it old gets
/// the last counted statistics at once, and later ones the recount.
#[tokio::test]
async fn an_old_model_is_recounted_in_the_background() {
    use tally_core::{Engine, EngineConfig, Event, Website};
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        conversion_model_ttl: std::time::Duration::ZERO,
        ..EngineConfig::default()
    };
    let engine = Engine::open_with(dir.path(), config).await.unwrap();
    engine
        .create_website(Website::new("w", "example.com"))
        .unwrap();
    let at = "2025-04-11T10:00:00Z".parse().unwrap();
    let view = |v: &str| Event::pageview("w", v, at, "example.com", "/");
    engine.ingest(vec![view("v1")]).await.unwrap();
    let first = engine.conversion_stats("w").await.unwrap();
    assert_eq!(first.baseline.visitors, 1);
    engine.ingest(vec![view("v2")]).await.unwrap();
    // Old at once (no age allowed): answered from the last count while the recount runs.
    let stale = engine.conversion_stats("w").await.unwrap();
    assert_eq!(stale.baseline.visitors, 1);
    assert_eq!(
        recounted_visitors(&engine, 2).await,
        2,
        "the recount never landed"
    );
}

/// The statistics are saved at every flush; after a crash (rows logged since) the next
/// process answers from them at once and, once they are old, recounts in the background.
#[tokio::test]
async fn a_model_saved_at_a_flush_answers_at_once_after_a_crash_and_is_recounted() {
    use tally_core::{Engine, EngineConfig, Event, Website};
    let dir = tempfile::tempdir().unwrap();
    let at = "2025-04-11T10:00:00Z".parse().unwrap();
    let view = |v: &str| Event::pageview("w", v, at, "example.com", "/");
    {
        let engine = Engine::open(dir.path()).await.unwrap();
        engine
            .create_website(Website::new("w", "example.com"))
            .unwrap();
        engine.ingest(vec![view("v1")]).await.unwrap();
        assert_eq!(
            engine
                .conversion_stats("w")
                .await
                .unwrap()
                .baseline
                .visitors,
            1
        );
        engine.flush().await.unwrap();
        assert!(dir.path().join("saved").join("w.model").exists());
        engine.ingest(vec![view("v2")]).await.unwrap();
    } // no clean stop: v2 is only in the log
    let config = EngineConfig {
        conversion_model_ttl: std::time::Duration::ZERO,
        ..EngineConfig::default()
    };
    let engine = Engine::open_with(dir.path(), config).await.unwrap();
    let first = engine.conversion_stats("w").await.unwrap();
    assert_eq!(first.baseline.visitors, 1, "the saved statistics, at once");
    assert_eq!(
        recounted_visitors(&engine, 2).await,
        2,
        "the recount never landed"
    );
}

/// The model's baseline visitors of website `w` once they reach `want`, or after two seconds.
async fn recounted_visitors(engine: &tally_core::Engine, want: u64) -> u64 {
    let mut seen = 0;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        seen = engine
            .conversion_stats("w")
            .await
            .unwrap()
            .baseline
            .visitors;
        if seen == want {
            break;
        }
    }
    seen
}
