//! `catalog.json`: the websites with their settings and the list of live segments.
//!
//! The catalog is the one source of truth for what a data directory holds. It is replaced
//! atomically (write a temporary file, fsync, rename, fsync the directory), so a reader after a
//! crash sees the old catalog or the new one, never a mix. Segment files it does not list are
//! leftovers of an interrupted flush and are removed at open.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::segment::sync_dir;
use crate::website::Website;

/// Name of the catalog file inside the data directory.
pub const CATALOG_FILE: &str = "catalog.json";
/// Folder of the Parquet segments inside the data directory.
pub const SEGMENTS_DIR: &str = "segments";
/// Current catalog format.
pub const FORMAT_VERSION: u32 = 1;

/// One live Parquet segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Unique, increasing id.
    pub id: u64,
    /// The website whose events it holds.
    pub website_id: String,
    /// Path relative to the data directory.
    pub file: String,
    /// Number of rows.
    pub rows: usize,
    /// Earliest event, µs since the epoch.
    pub min_ts_us: i64,
    /// Latest event, µs since the epoch.
    pub max_ts_us: i64,
    /// File size in bytes.
    pub bytes: u64,
}

impl SegmentMeta {
    /// The entry of segment `id` of `site`, written to `file` (relative to the data directory).
    pub(crate) fn written(
        id: u64,
        site: &str,
        file: String,
        w: crate::store::segment::WrittenSegment,
    ) -> SegmentMeta {
        SegmentMeta {
            id,
            website_id: site.to_owned(),
            file,
            rows: w.rows,
            min_ts_us: w.min_ts_us,
            max_ts_us: w.max_ts_us,
            bytes: w.bytes,
        }
    }

    /// Whether the segment can hold events in `[start_us, end_us)`.
    pub fn overlaps(&self, start_us: i64, end_us: i64) -> bool {
        self.max_ts_us >= start_us && self.min_ts_us < end_us
    }
}

/// The contents of `catalog.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    /// Format version, for future migrations.
    pub format: u32,
    /// Websites by id.
    pub websites: BTreeMap<String, Website>,
    /// Live segments.
    pub segments: Vec<SegmentMeta>,
    /// Id of the next segment.
    pub next_segment_id: u64,
    /// Per website, the last write-ahead log file whose records for it are all in segments;
    /// replay skips them (a flush saves this with the segment it wrote).
    #[serde(default)]
    pub wal_flushed: BTreeMap<String, u64>,
    /// Segments whose file was missing or of the wrong size at open: left out of answers (so
    /// one lost file does not fail every query) and kept here, so that they come back once the
    /// file is restored.
    #[serde(default)]
    pub unavailable: Vec<SegmentMeta>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            format: FORMAT_VERSION,
            websites: BTreeMap::new(),
            segments: Vec::new(),
            next_segment_id: 1,
            wal_flushed: BTreeMap::new(),
            unavailable: Vec::new(),
        }
    }
}

impl Catalog {
    /// Reads the catalog of `dir`, or an empty one for a new directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CATALOG_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Catalog::default()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let catalog: Catalog = serde_json::from_str(&text).map_err(|e| Error::Catalog {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if catalog.format != FORMAT_VERSION {
            return Err(Error::Catalog {
                path,
                reason: format!(
                    "format {} is not the supported format {FORMAT_VERSION}",
                    catalog.format
                ),
            });
        }
        Ok(catalog)
    }

    /// Replaces the catalog of `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(CATALOG_FILE);
        let tmp = dir.join(format!("{CATALOG_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::Catalog {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&text)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        sync_dir(dir)
    }

    /// The relative path of a new segment of `website_id`.
    pub fn segment_file(website_id: &str, id: u64) -> String {
        format!("{SEGMENTS_DIR}/{website_id}/{id:010}.parquet")
    }

    /// Sets aside the segments whose file is missing or not the size recorded, and takes back
    /// set-aside ones whose file is whole again. Returns whether anything moved, with a line
    /// per segment for the operator.
    pub fn check_files(&mut self, dir: &Path) -> (bool, Vec<String>) {
        let whole = |s: &SegmentMeta| match fs::metadata(dir.join(&s.file)) {
            Ok(m) if m.len() == s.bytes => Ok(()),
            Ok(m) => Err(format!("has {} bytes, {} expected", m.len(), s.bytes)),
            Err(e) => Err(e.to_string()),
        };
        let before: BTreeSet<u64> = self.unavailable.iter().map(|s| s.id).collect();
        let mut report = Vec::new();
        let (mut kept, mut set_aside) = (Vec::new(), Vec::new());
        for s in self.segments.drain(..) {
            match whole(&s) {
                Ok(()) => kept.push(s),
                Err(why) => {
                    report.push(format!(
                        "segment {} of website {} ({} events) is left out of answers until the file is restored: {why}",
                        s.file, s.website_id, s.rows
                    ));
                    set_aside.push(s);
                }
            }
        }
        for s in self.unavailable.drain(..) {
            match whole(&s) {
                Ok(()) => {
                    report.push(format!(
                        "segment {} is whole again and back in answers",
                        s.file
                    ));
                    kept.push(s);
                }
                Err(why) => {
                    report.push(format!("segment {} is still unavailable: {why}", s.file));
                    set_aside.push(s);
                }
            }
        }
        let after: BTreeSet<u64> = set_aside.iter().map(|s| s.id).collect();
        let moved = after != before;
        kept.sort_by_key(|s| s.id);
        self.segments = kept;
        self.unavailable = set_aside;
        (moved, report)
    }

    /// Removes files under `segments/` that the catalog does not list.
    pub fn remove_orphans(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let live: std::collections::HashSet<PathBuf> = self
            .segments
            .iter()
            .chain(&self.unavailable)
            .map(|s| dir.join(&s.file))
            .collect();
        let mut removed = Vec::new();
        let root = dir.join(SEGMENTS_DIR);
        let Ok(sites) = fs::read_dir(&root) else {
            return Ok(removed);
        };
        for site in sites.flatten() {
            let Ok(files) = fs::read_dir(site.path()) else {
                continue;
            };
            for f in files.flatten() {
                let p = f.path();
                if !live.contains(&p) {
                    fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                    removed.push(p);
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::default();
        c.websites
            .insert("w".into(), Website::new("w", "example.com"));
        c.segments.push(SegmentMeta {
            id: 1,
            website_id: "w".into(),
            file: Catalog::segment_file("w", 1),
            rows: 3,
            min_ts_us: 1,
            max_ts_us: 2,
            bytes: 10,
        });
        c.save(dir.path()).unwrap();
        let back = Catalog::load(dir.path()).unwrap();
        assert_eq!(back.websites, c.websites);
        assert_eq!(back.segments, c.segments);
    }

    #[test]
    fn a_missing_segment_file_is_set_aside_and_comes_back_when_restored() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::default();
        let file = Catalog::segment_file("w", 1);
        fs::create_dir_all(dir.path().join("segments/w")).unwrap();
        fs::write(dir.path().join(&file), b"0123456789").unwrap();
        c.segments.push(SegmentMeta {
            id: 1,
            website_id: "w".into(),
            file: file.clone(),
            rows: 3,
            min_ts_us: 1,
            max_ts_us: 2,
            bytes: 10,
        });
        assert_eq!(c.check_files(dir.path()), (false, vec![]));

        fs::rename(dir.path().join(&file), dir.path().join("saved")).unwrap();
        let (moved, report) = c.check_files(dir.path());
        assert!(moved);
        assert!(report[0].contains("left out of answers"), "{report:?}");
        assert!(c.segments.is_empty());
        assert_eq!(c.unavailable.len(), 1);
        assert!(!c.check_files(dir.path()).0);

        fs::rename(dir.path().join("saved"), dir.path().join(&file)).unwrap();
        assert!(c.check_files(dir.path()).0);
        assert_eq!(c.segments.len(), 1);
        assert!(c.unavailable.is_empty());
    }

    #[test]
    fn a_corrupt_catalog_is_an_error_not_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CATALOG_FILE), "{not json").unwrap();
        assert!(matches!(
            Catalog::load(dir.path()),
            Err(Error::Catalog { .. })
        ));
    }
}
