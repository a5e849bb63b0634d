//! Queries: what is asked ([`spec`]), how filters become expressions ([`filter`]), time zones
//! and buckets ([`time`]), the DataFusion plans ([`plan`]) and the typed answers ([`result`]).

pub mod filter;
pub mod plan;
pub mod result;
pub mod spec;
pub mod time;
