//! Integration tests of tally-collect: real User-Agents, real referrers, the bot list's own
//! examples, a GeoIP database built for the test, and whole tracker payloads.

mod agents;
mod geo;
mod payloads;
