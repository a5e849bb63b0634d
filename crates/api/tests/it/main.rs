//! Integration tests of `tally-api`: golden JSON for the fixture, error statuses, and
//! property tests of the parameter parser.

mod errors;
mod golden;
mod metadata;
mod props;
mod routes;
mod series;
mod support;
