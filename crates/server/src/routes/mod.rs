//! Route handlers, one module per part of the API.

pub mod admin;
pub mod analytics;
pub mod writes;
