//! The write-ahead log: every acknowledged write is here, fsynced, until a segment holds it.
//!
//! The log is a series of files `wal/<number>.log`, each a run of records:
//! ```text
//! [body length: u32 LE][CRC-32 of body: u32 LE][body]
//! body = [tag: u8][website id length: u16 LE][website id][payload]
//!   tag 1, rows:   payload = one Arrow IPC stream (schema and one batch of stored events)
//!   tag 2, delete: payload = JSON of the deletion (which goals or payments)
//!   tag 3, events: payload = JSON array of stored events
//! ```
//! Small writes (a tracker event, one goal) are logged as JSON events, a few hundred bytes
//! each; an IPC stream carries its schema and would cost kilobytes per event. Large writes
//! (imports) are logged as the Arrow batch the hot buffer keeps anyway.
//! ```text
//! ```
//! Writers append under a short lock and then wait for [`Wal::sync_through`] their end position;
//! the first waiter fsyncs for everyone written so far (group commit), so concurrent tracker
//! requests share one fsync. A flush [`Wal::rotate`]s to a new file before it takes the hot
//! buffers, so every row it takes lives in files up to the one it sealed; once the segments are
//! in the catalog those files are removed ([`Wal::remove_through`]).
//!
//! Replay reads every file in order and stops reading a file at its first short or corrupt
//! record: a record is acknowledged only after an fsync that covers everything before it, so
//! nothing after a torn record was ever acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::schema::StoredEvent;
use crate::store::delete::Deletion;
use crate::store::segment::sync_dir;

/// Folder of the log inside the data directory.
pub const WAL_DIR: &str = "wal";
/// A length above this is a torn or corrupt header, not a record.
const MAX_RECORD_BYTES: usize = 1 << 30;
const HEADER_BYTES: usize = 8;
const TAG_ROWS: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_EVENTS: u8 = 3;

/// One logged write.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    /// Stored events appended to a website's hot buffer.
    Rows {
        /// The website.
        site: String,
        /// The rows, in the events schema.
        batch: RecordBatch,
    },
    /// A few stored events appended to a website's hot buffer.
    Events {
        /// The website.
        site: String,
        /// The rows.
        rows: Vec<StoredEvent>,
    },
    /// Rows removed from a website's hot buffer by a delete.
    Delete {
        /// The website.
        site: String,
        /// Which rows.
        deletion: Deletion,
    },
}

/// The file being appended to.
#[derive(Debug)]
struct Current {
    file: Arc<File>,
    number: u64,
    /// The log position where this file starts.
    start: u64,
}

/// The write-ahead log of one data directory.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    current: Mutex<Current>,
    /// Bytes appended since open, over every file: a record's position is where it ends.
    written: AtomicU64,
    /// Every byte up to here is durable.
    synced: AtomicU64,
    /// Held by the one waiter that runs an fsync for the others.
    sync_gate: tokio::sync::Mutex<()>,
}

fn file_name(number: u64) -> String {
    format!("{number:020}.log")
}

/// The numbers of the log files in `dir`, ascending.
fn numbers(dir: &Path) -> Result<Vec<u64>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if let Ok(n) = stem.parse::<u64>() {
            found.push(n);
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn create(dir: &Path, number: u64) -> Result<Arc<File>> {
    let path = dir.join(file_name(number));
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    sync_dir(dir)?;
    Ok(Arc::new(file))
}

impl Wal {
    /// Opens the log of `data_dir` for appending, in a new file after every existing one (which
    /// stay for [`replay`] until a flush removes them).
    pub(crate) fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join(WAL_DIR);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let number = numbers(&dir)?.last().map_or(1, |n| n + 1);
        let file = create(&dir, number)?;
        Ok(Wal {
            dir,
            current: Mutex::new(Current {
                file,
                number,
                start: 0,
            }),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            sync_gate: tokio::sync::Mutex::new(()),
        })
    }

    /// Appends `record` (not yet durable) and returns its end position for
    /// [`Wal::sync_through`].
    pub(crate) fn append(&self, record: &Record) -> Result<u64> {
        let body = encode(record)?;
        if body.len() > MAX_RECORD_BYTES {
            // Replay would take it for a torn record: refuse it before anyone is told "ok".
            return Err(Error::Internal(format!(
                "a write-ahead log record of {} bytes is over the {MAX_RECORD_BYTES}-byte limit",
                body.len()
            )));
        }
        let mut framed = Vec::with_capacity(HEADER_BYTES + body.len());
        framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
        framed.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        framed.extend_from_slice(&body);
        let current = self.current.lock().map_err(|_| lock_error())?;
        let mut file: &File = &current.file;
        file.write_all(&framed)
            .map_err(|e| Error::io(self.dir.join(file_name(current.number)), e))?;
        Ok(self
            .written
            .fetch_add(framed.len() as u64, Ordering::SeqCst)
            + framed.len() as u64)
    }

    /// Returns once every byte up to `position` is durable. One caller fsyncs for all who wait.
    pub(crate) async fn sync_through(&self, position: u64) -> Result<()> {
        if self.synced.load(Ordering::SeqCst) >= position {
            return Ok(());
        }
        let _leader = self.sync_gate.lock().await;
        if self.synced.load(Ordering::SeqCst) >= position {
            return Ok(());
        }
        let (file, number, target) = {
            let current = self.current.lock().map_err(|_| lock_error())?;
            (
                current.file.clone(),
                current.number,
                self.written.load(Ordering::SeqCst),
            )
        };
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| Error::Internal(format!("log sync task failed: {e}")))?
            .map_err(|e| Error::io(self.dir.join(file_name(number)), e))?;
        self.synced.fetch_max(target, Ordering::SeqCst);
        Ok(())
    }

    /// Makes the current file durable and starts a new one; returns the number of the file
    /// sealed. Every record appended before the call is in a file numbered up to it.
    pub(crate) fn rotate(&self) -> Result<u64> {
        let mut current = self.current.lock().map_err(|_| lock_error())?;
        let sealed = current.number;
        current
            .file
            .sync_data()
            .map_err(|e| Error::io(self.dir.join(file_name(sealed)), e))?;
        self.synced
            .fetch_max(self.written.load(Ordering::SeqCst), Ordering::SeqCst);
        current.file = create(&self.dir, sealed + 1)?;
        current.number = sealed + 1;
        current.start = self.written.load(Ordering::SeqCst);
        Ok(sealed)
    }

    /// The log position after the last record appended.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Whether any record is in the log: in the current file, or in an older one that no
    /// flush has removed yet.
    pub(crate) fn holds_records(&self) -> bool {
        let Ok(current) = self.current.lock() else {
            return true;
        };
        self.written() > current.start
            || numbers(&self.dir).map_or(true, |found| found.iter().any(|n| *n < current.number))
    }

    /// Removes the files numbered up to `number` (their rows are in segments). A file that
    /// cannot be removed stays and is skipped by replay through the catalog's marks.
    pub(crate) fn remove_through(&self, number: u64) {
        let Ok(found) = numbers(&self.dir) else {
            return;
        };
        for n in found.into_iter().filter(|n| *n <= number) {
            let _ = fs::remove_file(self.dir.join(file_name(n)));
        }
    }
}

fn lock_error() -> Error {
    Error::Internal("write-ahead log lock poisoned by an earlier panic".into())
}

fn encode(record: &Record) -> Result<Vec<u8>> {
    let (tag, site) = match record {
        Record::Rows { site, .. } => (TAG_ROWS, site),
        Record::Delete { site, .. } => (TAG_DELETE, site),
        Record::Events { site, .. } => (TAG_EVENTS, site),
    };
    let site_len = u16::try_from(site.len())
        .map_err(|_| Error::invalid("website_id", "longer than 65535 bytes"))?;
    let mut body = vec![tag];
    body.extend_from_slice(&site_len.to_le_bytes());
    body.extend_from_slice(site.as_bytes());
    match record {
        Record::Rows { batch, .. } => {
            let mut writer = StreamWriter::try_new(&mut body, &batch.schema())?;
            writer.write(batch)?;
            writer.finish()?;
        }
        Record::Delete { deletion, .. } => {
            serde_json::to_writer(&mut body, deletion)
                .map_err(|e| Error::Internal(format!("cannot encode a deletion: {e}")))?;
        }
        Record::Events { rows, .. } => {
            serde_json::to_writer(&mut body, rows)
                .map_err(|e| Error::Internal(format!("cannot encode events: {e}")))?;
        }
    }
    Ok(body)
}

/// Decodes one record body; `None` when it does not parse (treated as torn).
fn decode(body: &[u8]) -> Option<Record> {
    let (&tag, rest) = body.split_first()?;
    let site_len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let site = std::str::from_utf8(rest.get(2..2 + site_len)?)
        .ok()?
        .to_owned();
    let payload = rest.get(2 + site_len..)?;
    match tag {
        TAG_ROWS => {
            let mut reader = StreamReader::try_new(payload, None).ok()?;
            let batch = reader.next()?.ok()?;
            Some(Record::Rows { site, batch })
        }
        TAG_DELETE => {
            let deletion = serde_json::from_slice(payload).ok()?;
            Some(Record::Delete { site, deletion })
        }
        TAG_EVENTS => {
            let rows = serde_json::from_slice(payload).ok()?;
            Some(Record::Events { site, rows })
        }
        _ => None,
    }
}

/// What [`replay`] found.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// Every whole record, with the number of the file it is in, in log order.
    pub(crate) records: Vec<(u64, Record)>,
    /// Files whose tail was short or corrupt (and ignored from there on).
    pub(crate) torn: Vec<PathBuf>,
}

/// Reads every record of the log in `data_dir`, oldest first.
pub(crate) fn replay(data_dir: &Path) -> Result<Replayed> {
    let dir = data_dir.join(WAL_DIR);
    let mut out = Replayed::default();
    for number in numbers(&dir)? {
        let path = dir.join(file_name(number));
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| Error::io(&path, e))?;
        let mut at = 0;
        while at < bytes.len() {
            match record_at(&bytes[at..]) {
                Some((record, len)) => {
                    out.records.push((number, record));
                    at += len;
                }
                None => {
                    out.torn.push(path.clone());
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The whole record at the start of `bytes`, with its framed length.
fn record_at(bytes: &[u8]) -> Option<(Record, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let body = bytes.get(HEADER_BYTES..HEADER_BYTES + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    Some((decode(body)?, HEADER_BYTES + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::delete::GoalDeletion;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(values.to_vec())),
                Arc::new(StringArray::from(
                    values
                        .iter()
                        .map(|v| Some(v.to_string()))
                        .collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn rows(site: &str, values: &[i64]) -> Record {
        Record::Rows {
            site: site.into(),
            batch: batch(values),
        }
    }

    fn values(record: &Record) -> (String, Vec<i64>) {
        match record {
            Record::Rows { site, batch } => {
                let n = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                (site.clone(), n.values().to_vec())
            }
            Record::Delete { site, .. } => (format!("delete {site}"), Vec::new()),
            Record::Events { site, rows } => (
                format!("events {site}"),
                rows.iter().map(|r| r.ts_us).collect(),
            ),
        }
    }

    #[tokio::test]
    async fn records_come_back_in_order_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        let end = wal.append(&rows("a", &[1, 2])).unwrap();
        wal.sync_through(end).await.unwrap();
        let sealed = wal.rotate().unwrap();
        let deletion = Deletion::Goals(GoalDeletion {
            name: Some("signup".into()),
            ..Default::default()
        });
        wal.append(&Record::Delete {
            site: "b".into(),
            deletion: deletion.clone(),
        })
        .unwrap();
        let end = wal.append(&rows("a", &[3])).unwrap();
        wal.sync_through(end).await.unwrap();

        let replayed = replay(dir.path()).unwrap();
        assert!(replayed.torn.is_empty());
        let got: Vec<(u64, (String, Vec<i64>))> = replayed
            .records
            .iter()
            .map(|(n, r)| (*n, values(r)))
            .collect();
        assert_eq!(
            got,
            vec![
                (sealed, ("a".into(), vec![1, 2])),
                (sealed + 1, ("delete b".into(), vec![])),
                (sealed + 1, ("a".into(), vec![3])),
            ]
        );
        match &replayed.records[1].1 {
            Record::Delete { deletion: d, .. } => assert_eq!(d, &deletion),
            other => panic!("expected a delete, got {other:?}"),
        }

        wal.remove_through(sealed);
        let after: Vec<u64> = replay(dir.path())
            .unwrap()
            .records
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(after, vec![sealed + 1, sealed + 1]);
    }

    #[tokio::test]
    async fn a_torn_tail_is_dropped_and_everything_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        wal.append(&rows("a", &[1])).unwrap();
        let first_end = wal.append(&rows("a", &[2])).unwrap();
        let end = wal.append(&rows("a", &[3])).unwrap();
        wal.sync_through(end).await.unwrap();
        drop(wal);
        let path = dir.path().join(WAL_DIR).join(file_name(1));

        // Cut the last record short, as a crash in the middle of its write would.
        let full = fs::read(&path).unwrap();
        fs::write(&path, &full[..full.len() - 5]).unwrap();
        let got = replay(dir.path()).unwrap();
        assert_eq!(got.torn, vec![path.clone()]);
        let kept: Vec<Vec<i64>> = got.records.iter().map(|(_, r)| values(r).1).collect();
        assert_eq!(kept, vec![vec![1], vec![2]]);

        // A flipped byte in the last record's body fails its checksum.
        let mut flipped = full.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0xff;
        fs::write(&path, &flipped).unwrap();
        let got = replay(dir.path()).unwrap();
        assert_eq!(got.records.len(), 2);
        assert_eq!(full.len() as u64, end);
        assert!(first_end < end);

        // The next process appends to a new file; the torn one still replays its good records.
        let wal = Wal::open(dir.path()).unwrap();
        let end = wal.append(&rows("a", &[4])).unwrap();
        wal.sync_through(end).await.unwrap();
        let kept: Vec<Vec<i64>> = replay(dir.path())
            .unwrap()
            .records
            .iter()
            .map(|(_, r)| values(r).1)
            .collect();
        assert_eq!(kept, vec![vec![1], vec![2], vec![4]]);
    }

    #[tokio::test]
    async fn concurrent_writers_share_fsyncs_and_all_become_durable() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for i in 0..64 {
            let wal = wal.clone();
            tasks.push(tokio::spawn(async move {
                let end = wal.append(&rows("a", &[i])).unwrap();
                wal.sync_through(end).await.unwrap();
                assert!(wal.synced.load(Ordering::SeqCst) >= end);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut got: Vec<i64> = replay(dir.path())
            .unwrap()
            .records
            .iter()
            .flat_map(|(_, r)| values(r).1)
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
    }
}
