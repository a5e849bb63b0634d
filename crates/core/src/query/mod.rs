//! Queries: what is asked ([`spec`]), how filters become expressions ([`filter`]), time zones
//! and buckets ([`time`]), the DataFusion plans ([`plan`]), the typed answers ([`result`]) and
//! conversion prediction ([`model`]).

pub mod filter;
pub mod model;
pub mod plan;
pub mod result;
pub mod spec;
pub mod time;
