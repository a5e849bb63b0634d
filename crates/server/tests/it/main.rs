//! Integration tests of the server: every route through `Router::oneshot`, and one end-to-end
//! run of the real binary.

mod crash;
mod dashboard;
mod e2e;
mod hostile;
mod live;
mod routes;
mod sdk;
mod seeds;
mod tracker;
