//! No acknowledged write is lost when the server is killed: tracker clients post page views,
//! each with its own visitor id, while a real `tally serve` is SIGKILLed at random moments and
//! restarted; afterwards every visitor whose event was acknowledged must be there.
//!
//! CI runs a few rounds; `TALLY_CRASH_ROUNDS` and `TALLY_CRASH_CLIENTS` run it longer
//! (`benches/crash.sh`, figures in `benches/README.md`).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::e2e::{Server, create_website, get};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Posts one tracker page view to a website of domain `crash.example` from a browser with
/// User-Agent `ua`; `true` only for a `"status":"success"` answer.
pub fn post_pageview(addr: &str, site: &str, visitor: &str, ua: &str) -> bool {
    let body = json!({
        "websiteId": site,
        "domain": "crash.example",
        "visitorId": visitor,
        "sessionId": format!("s-{visitor}"),
        "href": "https://crash.example/landing",
        "referrer": null,
        "type": "pageview",
        "viewport": {"width": 1280, "height": 800},
        "language": "en-US",
        "timezone": "UTC",
        "screenWidth": 1280,
        "screenHeight": 800
    })
    .to_string();
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "POST /api/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Origin: https://crash.example\r\nUser-Agent: {}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        ua,
        body.len()
    );
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    if s.read_to_string(&mut answer).is_err() {
        return false;
    }
    answer.starts_with("HTTP/1.1 200") && answer.contains(r#""status":"success""#)
}

/// A small deterministic generator, so a failing run can be repeated from its seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn every_acknowledged_event_survives_sigkill() {
    let rounds = env_or("TALLY_CRASH_ROUNDS", 4);
    let clients = env_or("TALLY_CRASH_CLIENTS", 4);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Lcg(seed);

    let dir = tempfile::tempdir().unwrap();
    let (site, key) = create_website(dir.path(), "crash.example");

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut attempted = 0usize;
    for round in 0..rounds {
        // A short flush interval puts some kills in the middle of a flush; the clients all
        // post from loopback, as fast as they can, so the per-address limit is lifted.
        let server = Server::start(
            dir.path(),
            &["--flush-every", "1", "--tracker-rate-limit", "4000000000"],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let (addr, site, acked, stop) = (
                    server.addr.clone(),
                    site.clone(),
                    Arc::clone(&acked),
                    Arc::clone(&stop),
                );
                std::thread::spawn(move || {
                    let mut sent = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let visitor = format!("r{round}-c{c}-{sent}");
                        sent += 1;
                        if post_pageview(&addr, &site, &visitor, crate::tracker::CHROME_MAC) {
                            acked.lock().unwrap().push(visitor);
                        }
                    }
                    sent
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200 + rng.below(800)));
        drop(server); // SIGKILL, while the clients are still posting
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            attempted += w.join().unwrap();
        }
    }

    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "{rounds} kills, {attempted} events sent, {} acknowledged",
        acked.len()
    );
    assert!(!acked.is_empty(), "no event was acknowledged");
    // Read back with the engine itself: every stored visitor id, in one scan.
    let stored = stored_visitors(dir.path(), &site);
    let lost: Vec<&String> = acked.iter().filter(|v| !stored.contains(*v)).collect();
    eprintln!("{} visitors stored after the last kill", stored.len());
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost (seed {seed}), e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(stored.len() <= attempted);

    // And the server answers the same after a last restart.
    let server = Server::start(dir.path(), &[]);
    let (status, overview) = get(&server.addr, "/api/v1/analytics/overview", &key);
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["data"][0]["visitors"], stored.len());
}

fn stored_visitors(dir: &std::path::Path, site: &str) -> HashSet<String> {
    use tally_core::datafusion::arrow::array::{Array, AsArray};
    use tally_core::datafusion::prelude::col;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = tally_core::Engine::open(dir).await.unwrap();
        let batches = engine
            .selected_events(&tally_core::Query::new(site))
            .unwrap()
            .select(vec![col("visitor_id")])
            .unwrap()
            .collect()
            .await
            .unwrap();
        batches
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_string::<i32>();
                (0..ids.len())
                    .map(|i| ids.value(i).to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}
