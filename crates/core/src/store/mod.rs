//! Storage: the hot buffer, Parquet segments, the catalog, and the table provider that reads
//! them together (DESIGN §2, §3).
//!
//! Layout of a data directory:
//! ```text
//! catalog.json                         websites, settings, live segments (atomic replace)
//! segments/<website_id>/<id>.parquet   immutable, sorted by ts, one website each
//! LOCK                                 held by the one process that has the directory open
//! wal/<number>.log                     the write-ahead log (see [`wal`])
//! ```
//! Deletes rewrite the segments they touch and swap
//! them in the catalog, and so does compaction; replaced files are removed a minute later (or at
//! the next open).

pub mod buffer;
pub mod catalog;
pub mod compact;
pub mod delete;
pub(crate) mod lock;
pub mod segment;
pub mod table;
pub(crate) mod wal;
