//! Storage: the hot buffer, Parquet segments, the catalog, and the table provider that reads
//! them together (DESIGN §2, §3).
//!
//! Layout of a data directory:
//! ```text
//! catalog.json                         websites, settings, live segments (atomic replace)
//! segments/<website_id>/<id>.parquet   immutable, sorted by ts, one website each
//! ```
//! `wal/` is reserved for the write-ahead log.

pub mod buffer;
pub mod catalog;
pub mod segment;
pub mod table;
