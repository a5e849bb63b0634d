//! Bot visitors remembered across restarts.
//!
//! Bot requests are dropped, not stored as events, so that a visitor was a bot is known only
//! from the tracker. To keep answering "a bot" (rather than "unknown visitor") after a restart,
//! each `(website, visitor)` first seen as a bot is appended to a log file, one
//! `website<TAB>visitor` line each, and the last [`BOT_VISITORS_REMEMBERED`] are read back at
//! open. The file is rewritten with only those once it holds twice as many lines, so it stays
//! bounded. It is a memory of who was a bot, not acknowledged data: it is not fsynced.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::collector::BOT_VISITORS_REMEMBERED;

/// The appended file and the entries it would keep.
#[derive(Debug)]
struct Open {
    file: File,
    recent: VecDeque<(String, String)>,
    lines: usize,
}

/// The bot-visitor log of one data directory.
#[derive(Debug)]
pub struct BotLog {
    path: PathBuf,
    open: Mutex<Open>,
}

/// Whether a website or visitor id can be written as a field of a line.
fn writable(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control)
}

impl BotLog {
    /// Opens (creating) the log at `path`, with the entries it remembers, oldest first.
    pub fn open(path: &Path) -> std::io::Result<(BotLog, Vec<(String, String)>)> {
        let mut recent = VecDeque::new();
        let mut lines = 0;
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line?;
                    lines += 1;
                    if let Some((site, visitor)) = line.split_once('\t') {
                        if recent.len() == BOT_VISITORS_REMEMBERED {
                            recent.pop_front();
                        }
                        recent.push_back((site.to_owned(), visitor.to_owned()));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let log = BotLog {
            path: path.to_owned(),
            open: Mutex::new(Open {
                file,
                recent,
                lines,
            }),
        };
        let entries = {
            let mut open = log.open.lock().map_err(|_| poisoned())?;
            if open.lines > 2 * BOT_VISITORS_REMEMBERED {
                log.rewrite(&mut open)?;
            }
            open.recent.iter().cloned().collect()
        };
        Ok((log, entries))
    }

    /// Remembers that `visitor` of `website` is a bot.
    pub fn record(&self, website: &str, visitor: &str) -> std::io::Result<()> {
        if !writable(website) || !writable(visitor) {
            return Ok(());
        }
        let mut open = self.open.lock().map_err(|_| poisoned())?;
        writeln!(open.file, "{website}\t{visitor}")?;
        open.lines += 1;
        if open.recent.len() == BOT_VISITORS_REMEMBERED {
            open.recent.pop_front();
        }
        open.recent
            .push_back((website.to_owned(), visitor.to_owned()));
        if open.lines > 2 * BOT_VISITORS_REMEMBERED {
            self.rewrite(&mut open)?;
        }
        Ok(())
    }

    /// Replaces the file with the remembered entries only (temporary file, then rename).
    fn rewrite(&self, open: &mut Open) -> std::io::Result<()> {
        let tmp = self.path.with_extension("log.tmp");
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        for (site, visitor) in &open.recent {
            writeln!(out, "{site}\t{visitor}")?;
        }
        out.into_inner().map_err(|e| e.into_error())?;
        fs::rename(&tmp, &self.path)?;
        open.file = OpenOptions::new().append(true).open(&self.path)?;
        open.lines = open.recent.len();
        Ok(())
    }
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("bot log lock poisoned by an earlier panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_and_the_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bots.log");
        let (log, none) = BotLog::open(&path).unwrap();
        assert!(none.is_empty());
        log.record("w", "crawler-1").unwrap();
        log.record("w", "bad\nid").unwrap(); // not writable as a line: skipped
        drop(log);
        let (log, back) = BotLog::open(&path).unwrap();
        assert_eq!(back, vec![("w".to_owned(), "crawler-1".to_owned())]);

        for i in 0..2 * BOT_VISITORS_REMEMBERED + 10 {
            log.record("w", &format!("v{i}")).unwrap();
        }
        let lines = fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 2 * BOT_VISITORS_REMEMBERED, "{lines}");
        drop(log);
        let (_, back) = BotLog::open(&path).unwrap();
        assert_eq!(back.len(), BOT_VISITORS_REMEMBERED);
        let last = format!("v{}", 2 * BOT_VISITORS_REMEMBERED + 9);
        assert_eq!(back.last().unwrap().1, last);
    }
}
