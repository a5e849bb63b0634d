//! # tally-server
//!
//! The `tally` binary's library: the DataFast v1 API over HTTP ([`app::router`]) on a
//! `tally-core` engine, with `df_` website keys and `dft_` account tokens ([`keys`]), scopes,
//! per-key rate limits and body limits ([`auth`], [`app::Limits`]), and the documented error
//! envelope for every failure ([`error`]), and the local [`admin`] channel through which
//! `tally` commands reach a running server; [`import_file`] reads the files of `tally import`.

pub mod admin;
pub mod app;
pub mod auth;
pub mod error;
pub mod import_file;
pub mod keys;
pub mod rate;
pub mod routes;
