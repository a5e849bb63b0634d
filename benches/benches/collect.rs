//! tally-collect: User-Agent parsing with and without the cache, and one whole tracker payload
//! (JSON, domain check, User-Agent, page, campaign) into an event.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tally_collect::agent::AgentParser;
use tally_collect::{Client, Collector, TrackerPayload};
use tally_core::Website;

/// Real User-Agents of the major browsers (desktop, phone, tablet).
const USER_AGENTS: [&str; 8] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:134.0) Gecko/20100101 Firefox/134.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/132.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36",
];

fn agents(c: &mut Criterion) {
    let parser = AgentParser::load().unwrap();
    let mut g = c.benchmark_group("agent");
    g.bench_function("parse_uncached_8_user_agents", |b| {
        b.iter(|| {
            for ua in USER_AGENTS {
                black_box(parser.parse_uncached(black_box(ua)));
            }
        })
    });
    g.bench_function("parse_cached_8_user_agents", |b| {
        b.iter(|| {
            for ua in USER_AGENTS {
                black_box(parser.parse(black_box(ua)));
            }
        })
    });
    g.bench_function("load_rules", |b| b.iter(|| AgentParser::load().unwrap()));
    g.finish();
}

fn payloads(c: &mut Criterion) {
    let collector = Collector::new(None, b"bench").unwrap();
    let website = Website::new("site", "example.com");
    let body = br#"{"websiteId":"site","domain":"example.com","visitorId":"6c1b7e5a-3f7e-4d2b-9a41-0c5d2e8f1a77","sessionId":"s0e5b1c2d-4a3b-4c5d-8e6f-7a8b9c0d1e2f","visitorFirstSeenAt":"2026-03-02T09:59:00.000Z","visitorSessionNumber":1,"href":"https://example.com/blog/post?utm_source=newsletter&utm_medium=email","referrer":"https://www.google.com/","type":"pageview","viewport":{"width":1440,"height":900},"language":"en-US","timezone":"Europe/London","screenWidth":1440,"screenHeight":900}"#;
    let now = chrono::Utc::now();
    c.bench_function("collect/pageview_payload_to_event", |b| {
        b.iter(|| {
            let p = TrackerPayload::from_json(black_box(body)).unwrap();
            let client = Client {
                user_agent: Some(USER_AGENTS[0]),
                addr: None,
            };
            black_box(collector.collect(&p, client, &website, now).unwrap())
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = agents, payloads
}
criterion_main!(benches);
