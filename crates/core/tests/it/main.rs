//! Integration tests of `tally-core`: hand-computed fixtures, the reference model, pushdown,
//! persistence.

mod bounded;
mod deletes;
mod durability;
mod fixture;
mod model;
mod money;
mod persistence;
mod prediction;
mod props;
mod pushdown;
mod support;
