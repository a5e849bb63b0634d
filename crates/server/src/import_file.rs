//! Reading an NDJSON file for `tally import`: the file is cut into blocks of whole lines, two
//! threads parse and validate alternate blocks, and [`read_file`] hands their results on in the
//! file's order, so that the engine's thread only stores.
//!
//! Parsing is the largest part of an import's work; split over two threads it runs beside the
//! engine's storing on a two-core machine instead of setting the pace. Memory stays bounded
//! whatever the file's size: a few blocks are in flight at a time, and a line past
//! [`MAX_LINE_BYTES`] is rejected without being held.
//!
//! Sessions are assigned in the order events are read, so a file not sorted by time is read
//! with [`read_file_sorted`] (`tally import --sort`): each line's time and place first, then the
//! lines in time order, through the same parsing threads.

use std::fs::File;
use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use tally_core::PackedEvents;
use tally_core::import::LineParser;

/// Bytes of whole lines a parsing thread takes at a time: about 2,000 events of the usual
/// 250 bytes, a batch small enough to stay in cache through the engine's passes over it
/// (2Ki-event batches imported 4M lines in 0.72x the time of 16Ki, benches/README.md).
pub const BLOCK_BYTES: usize = 512 * 1024;

/// Fewer bytes than the shortest valid event line: a type, a timestamp, a visitor id and a
/// page URL take more (`{"type":"goal",…}` needs a name instead of the URL).
const MIN_EVENT_LINE_BYTES: usize = 64;

/// Threads that parse blocks.
const PARSERS: usize = 2;

/// The longest line read. A valid event is a few KiB at most (its fields are bounded, the
/// tracker's bodies are 64 KiB at most); a longer line is rejected unread, so that a file
/// without newlines cannot make the import hold all of it.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What reading the file hands over, in the file's order.
#[derive(Debug)]
pub enum Parsed {
    /// Parsed lines: their numbers, and the valid ones' events, packed (each knows its place
    /// among them).
    Batch(Vec<usize>, PackedEvents),
    /// A bad line, as the message to print (it names the line).
    Rejected(String),
}

/// A block of whole lines and their numbers, or (`overlong`) one line past [`MAX_LINE_BYTES`],
/// skipped.
struct Block {
    numbers: LineNumbers,
    /// Where `bytes` start in the file.
    offset: u64,
    bytes: Vec<u8>,
    overlong: bool,
}

/// The numbers of a block's lines.
enum LineNumbers {
    /// Lines that follow one another in the file, from this one.
    From(usize),
    /// Lines taken from anywhere in the file ([`read_file_sorted`]), one number each.
    Listed(Vec<usize>),
}

impl LineNumbers {
    /// The number of the block's `i`th line.
    fn get(&self, i: usize) -> usize {
        match self {
            LineNumbers::From(first) => first + i,
            LineNumbers::Listed(numbers) => numbers.get(i).copied().unwrap_or_default(),
        }
    }
}

/// Reads `file` in blocks of about `block_bytes` and calls `send` with the batches of events of
/// `website` and each bad line's message, in the file's order; a line that is not UTF-8, or
/// names another website, is one bad line. Stops early, without error, once `send` returns
/// false. Returns after every block has been handed on.
pub fn read_file(
    file: impl Read,
    website: &str,
    block_bytes: usize,
    progress: impl Fn(u64),
    send: impl FnMut(Parsed) -> bool + Send,
) -> std::io::Result<()> {
    parse_blocks_in_turn(website, send, |give| {
        cut_blocks(file, block_bytes, &progress, give)
    })
}

/// [`read_file`] of a file whose lines need not be in time order: a first pass reads each
/// line's time (and keeps its place: 32 bytes a line, [`MAX_SORTED_LINES`] lines at most), then
/// the lines are read again in time order (a line's number stays its place in the file).
/// Sessions are assigned in the order events are read, so a file that is not sorted by time
/// must be read this way for them to be right. A line whose time cannot be read comes first,
/// to be rejected with its reason.
pub fn read_file_sorted(
    file: &File,
    website: &str,
    block_bytes: usize,
    progress: impl Fn(u64),
    send: impl FnMut(Parsed) -> bool + Send,
) -> std::io::Result<()> {
    let mut lines = line_times(file, block_bytes, &progress)?;
    lines.sort_unstable_by_key(|l| (l.ts_us, l.number));
    parse_blocks_in_turn(website, send, |give| {
        sorted_blocks(file, &lines, block_bytes, &progress, give)
    })
}

/// Lines [`read_file_sorted`] takes at most: a list of 32 bytes a line, 1 GiB.
pub const MAX_SORTED_LINES: usize = 32 << 20;

/// Where a line is and when its event happened.
struct LineTime {
    /// `i64::MIN` when the line's time cannot be read.
    ts_us: i64,
    number: usize,
    offset: u64,
    /// `u32::MAX` for a line past [`MAX_LINE_BYTES`], skipped.
    len: u32,
}

/// The time of each line of `file`, read in blocks.
fn line_times(
    file: &File,
    block_bytes: usize,
    progress: &impl Fn(u64),
) -> std::io::Result<Vec<LineTime>> {
    /// The one field read of a line.
    #[derive(serde::Deserialize)]
    struct Stamp<'a> {
        #[serde(borrow)]
        timestamp: Option<std::borrow::Cow<'a, str>>,
    }
    let time_of = |line: &[u8]| -> Option<i64> {
        let stamp: Stamp<'_> = serde_json::from_slice(line).ok()?;
        let ts = tally_core::import::parse_timestamp(&stamp.timestamp?).ok()?;
        Some(ts.timestamp_micros())
    };
    let mut lines = Vec::new();
    let mut too_many = false;
    cut_blocks(file, block_bytes, progress, |_, block| {
        let first = block.numbers.get(0);
        if block.overlong {
            lines.push(LineTime {
                ts_us: i64::MIN,
                number: first,
                offset: 0,
                len: u32::MAX,
            });
        } else {
            let mut start = 0;
            let ends = memchr::memchr_iter(b'\n', &block.bytes).chain([block.bytes.len()]);
            for (i, end) in ends.enumerate() {
                if start >= block.bytes.len() {
                    break;
                }
                let line = &block.bytes[start..end];
                lines.push(LineTime {
                    ts_us: time_of(line).unwrap_or(i64::MIN),
                    number: first + i,
                    offset: block.offset + start as u64,
                    len: u32::try_from(line.len()).unwrap_or(u32::MAX),
                });
                start = end + 1;
            }
        }
        too_many = lines.len() > MAX_SORTED_LINES;
        !too_many
    })?;
    if too_many {
        let why = format!(
            "more than {MAX_SORTED_LINES} lines to sort: sort the file by timestamp first, or \
             import it in parts"
        );
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
    }
    Ok(lines)
}

/// Gives blocks of the lines of `file` in the order of `lines`, each block about `block_bytes`.
fn sorted_blocks(
    file: &File,
    lines: &[LineTime],
    block_bytes: usize,
    progress: &impl Fn(u64),
    mut give: impl FnMut(usize, Block) -> bool,
) -> std::io::Result<()> {
    let (mut bytes, mut numbers, mut turn) = (Vec::new(), Vec::new(), 0usize);
    let mut give_block = |bytes: &mut Vec<u8>, numbers: &mut Vec<usize>, overlong: bool| {
        let block = Block {
            numbers: LineNumbers::Listed(std::mem::take(numbers)),
            offset: 0,
            bytes: std::mem::take(bytes),
            overlong,
        };
        turn += 1;
        give(turn - 1, block)
    };
    for line in lines {
        if line.len == u32::MAX {
            if !bytes.is_empty() && !give_block(&mut bytes, &mut numbers, false) {
                return Ok(());
            }
            if !give_block(&mut Vec::new(), &mut vec![line.number], true) {
                return Ok(());
            }
            continue;
        }
        let start = bytes.len();
        bytes.resize(start + line.len as usize, 0);
        read_exact_at(file, &mut bytes[start..], line.offset)?;
        bytes.push(b'\n');
        progress(u64::from(line.len) + 1);
        numbers.push(line.number);
        if bytes.len() >= block_bytes && !give_block(&mut bytes, &mut numbers, false) {
            return Ok(());
        }
    }
    if !bytes.is_empty() {
        give_block(&mut bytes, &mut numbers, false);
    }
    Ok(())
}

/// Fills `buf` from `file` at `offset`.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}

/// Parses the blocks that `produce` gives, on [`PARSERS`] threads, and calls `send` with their
/// results in the blocks' order.
fn parse_blocks_in_turn(
    website: &str,
    mut send: impl FnMut(Parsed) -> bool + Send,
    produce: impl FnOnce(&mut dyn FnMut(usize, Block) -> bool) -> std::io::Result<()>,
) -> std::io::Result<()> {
    std::thread::scope(|scope| {
        let mut to_parsers = Vec::with_capacity(PARSERS);
        let mut from_parsers = Vec::with_capacity(PARSERS);
        for _ in 0..PARSERS {
            let (block_tx, block_rx) = sync_channel::<Block>(1);
            let (parsed_tx, parsed_rx) = sync_channel::<Vec<Parsed>>(1);
            scope.spawn(move || parse_blocks(&block_rx, &parsed_tx, website));
            to_parsers.push(block_tx);
            from_parsers.push(parsed_rx);
        }
        // Blocks go to the parsers in turn, so taking their results in turn keeps the order.
        let forwarder = scope.spawn(move || {
            for turn in (0..PARSERS).cycle() {
                let Ok(results) = from_parsers[turn].recv() else {
                    return;
                };
                for p in results {
                    if !send(p) {
                        return;
                    }
                }
            }
        });
        let read = produce(&mut |turn, block| to_parsers[turn % PARSERS].send(block).is_ok());
        drop(to_parsers);
        let _ = forwarder.join();
        read
    })
}

/// Reads `file` into blocks of whole lines (the last may lack its newline) and gives each to
/// `give` with its turn (0, 1, 2, …); a line past [`MAX_LINE_BYTES`] is given as an overlong
/// block of its own, its bytes skipped. Stops early when `give` returns false. Holds at most a
/// block and a line.
fn cut_blocks(
    mut file: impl Read,
    block_bytes: usize,
    progress: &impl Fn(u64),
    mut give: impl FnMut(usize, Block) -> bool,
) -> std::io::Result<()> {
    let (mut carry, mut first_line, mut turn) = (Vec::new(), 1usize, 0usize);
    // Bytes read from the file so far: where the bytes held end.
    let mut read_total = 0u64;
    // Skipping the rest of a line past `MAX_LINE_BYTES`, up to its newline.
    let mut skipping = false;
    loop {
        let mut bytes = std::mem::take(&mut carry);
        let mut before = bytes.len();
        bytes.reserve(block_bytes);
        let read = (&mut file)
            .take(block_bytes as u64)
            .read_to_end(&mut bytes)?;
        progress((bytes.len() - before) as u64);
        read_total += (bytes.len() - before) as u64;
        if skipping {
            match memchr::memchr(b'\n', &bytes) {
                None if read > 0 => continue,
                None => bytes.clear(),
                Some(i) => bytes.drain(..=i).for_each(drop),
            }
            skipping = false;
            let overlong = Block {
                numbers: LineNumbers::From(first_line),
                offset: 0,
                bytes: Vec::new(),
                overlong: true,
            };
            if !give(turn, overlong) {
                return Ok(());
            }
            (first_line, turn, before) = (first_line + 1, turn + 1, 0);
        }
        if bytes.is_empty() {
            if read == 0 {
                return Ok(());
            }
            continue;
        }
        if read > 0 {
            // A block ends after its last newline; the rest starts the next one. A line longer
            // than a block grows this one until its newline comes, up to `MAX_LINE_BYTES`.
            match memchr::memrchr(b'\n', &bytes[before..]) {
                Some(i) => carry = bytes.split_off(before + i + 1),
                None if bytes.len() > MAX_LINE_BYTES => {
                    skipping = true;
                    continue;
                }
                None => {
                    carry = bytes;
                    continue;
                }
            }
        }
        // Whole lines, and at the end of the file perhaps a last one without its newline.
        let lines =
            memchr::memchr_iter(b'\n', &bytes).count() + usize::from(!bytes.ends_with(b"\n"));
        let block = Block {
            numbers: LineNumbers::From(first_line),
            offset: read_total - (bytes.len() + carry.len()) as u64,
            bytes,
            overlong: false,
        };
        if !give(turn, block) {
            return Ok(());
        }
        first_line += lines;
        turn += 1;
        if read == 0 {
            return Ok(());
        }
    }
}

/// A parsing thread: each block's lines, parsed and validated, as one list of results.
fn parse_blocks(blocks: &Receiver<Block>, results: &SyncSender<Vec<Parsed>>, website: &str) {
    let mut parser = LineParser::default();
    for block in blocks {
        if results
            .send(parse_block(&mut parser, &block, website))
            .is_err()
        {
            return;
        }
    }
}

/// The bad lines of `block` (in order) and then its batch.
fn parse_block(parser: &mut LineParser, block: &Block, website: &str) -> Vec<Parsed> {
    if block.overlong {
        let why = format!(
            "line {}: longer than {MAX_LINE_BYTES} bytes, not read",
            block.numbers.get(0)
        );
        return vec![Parsed::Rejected(why)];
    }
    let mut out = Vec::new();
    let text = block.bytes.strip_suffix(b"\n").unwrap_or(&block.bytes);
    // Sized once: growing the packed events copied them over and over. No more than the
    // block's bytes can hold, so that a block of blank or tiny lines reserves little.
    let lines = memchr::memchr_iter(b'\n', text).count() + 1;
    let events = lines.min(text.len() / MIN_EVENT_LINE_BYTES + 1);
    let (mut numbers, mut packed) = (
        Vec::with_capacity(events),
        PackedEvents::new(website, events),
    );
    // Cut at each newline found by memchr (a byte-at-a-time split was a twentieth of the
    // parsing threads' instructions).
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text).chain([text.len()]);
    for (i, end) in ends.enumerate() {
        let bytes = &text[start..end];
        start = end + 1;
        let number = block.numbers.get(i);
        let rejected = match std::str::from_utf8(bytes) {
            Err(e) => Some(format!("line {number}: not UTF-8 ({e})")),
            Ok(line) if line.trim().is_empty() => None,
            // Packed here, so that the engine's thread neither frees these events' strings
            // nor allocates for them (tally_core::packed).
            Ok(line) => {
                match parser.parse_into(line.trim_end(), website, &mut packed, numbers.len()) {
                    Ok(()) => {
                        numbers.push(number);
                        None
                    }
                    Err(e) => Some(format!("line {number}: {e}")),
                }
            }
        };
        out.extend(rejected.map(Parsed::Rejected));
    }
    out.push(Parsed::Batch(numbers, packed));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What reading `text` in blocks of `block_bytes` hands on: the numbers of the batches'
    /// lines, and the messages of the bad ones, in order.
    fn read(text: &[u8], block_bytes: usize) -> (Vec<usize>, Vec<String>, u64) {
        let (mut numbers, mut bad) = (Vec::new(), Vec::new());
        let progress = std::sync::atomic::AtomicU64::new(0);
        read_file(
            text,
            "w",
            block_bytes,
            |n| {
                progress.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            },
            |p| {
                match p {
                    Parsed::Batch(lines, events) => {
                        assert_eq!(lines.len(), events.len());
                        numbers.extend(lines);
                    }
                    Parsed::Rejected(why) => bad.push(why),
                }
                true
            },
        )
        .unwrap();
        (numbers, bad, progress.into_inner())
    }

    fn pageview(visitor: usize) -> String {
        format!(
            r#"{{"type":"pageview","timestamp":"2025-01-01T00:00:00Z","visitor_id":"v{visitor}","url":"https://a.com/"}}"#
        )
    }

    #[test]
    fn every_line_keeps_its_number_and_order_whatever_the_block_size() {
        let (mut text, mut expected, mut bad_lines) = (Vec::new(), Vec::new(), 0);
        for i in 1..=200 {
            match i % 7 {
                0 => text.extend_from_slice(b"\n"),
                3 => {
                    text.extend_from_slice(b"{\"type\":\"pageview\"}\r\n");
                    bad_lines += 1;
                }
                5 => {
                    text.extend_from_slice(b"\xff\xfe not utf-8\n");
                    bad_lines += 1;
                }
                _ => {
                    text.extend_from_slice(format!("{}\r\n", pageview(i)).as_bytes());
                    expected.push(i);
                }
            }
        }
        // The last line has no newline.
        text.extend_from_slice(pageview(201).as_bytes());
        expected.push(201);
        for block in [1, 7, 64, 100, 333, 1 << 20] {
            let (numbers, bad, read) = read(&text, block);
            assert_eq!(numbers, expected, "block of {block} bytes");
            assert_eq!(bad.len(), bad_lines, "block of {block} bytes");
            assert!(bad[0].starts_with("line 3: "), "{}", bad[0]);
            assert!(bad[1].starts_with("line 5: not UTF-8"), "{}", bad[1]);
            assert_eq!(read, text.len() as u64);
        }
    }

    #[test]
    fn a_line_past_the_limit_is_rejected_unread_and_the_next_ones_go_in() {
        let long = vec![b'x'; MAX_LINE_BYTES + MAX_LINE_BYTES / 2];
        let mut text = format!("{}\n", pageview(1)).into_bytes();
        text.extend_from_slice(&long);
        text.extend_from_slice(format!("\n{}\n", pageview(3)).as_bytes());
        text.extend_from_slice(&long);
        for block in [100_000, BLOCK_BYTES] {
            let (numbers, bad, read) = read(&text, block);
            assert_eq!(numbers, vec![1, 3], "block of {block} bytes");
            assert_eq!(bad.len(), 2, "{bad:?}");
            for (why, line) in bad.iter().zip([2, 4]) {
                let expected = format!("line {line}: longer than {MAX_LINE_BYTES} bytes");
                assert!(why.starts_with(&expected), "{why}");
            }
            assert_eq!(read, text.len() as u64);
        }
    }

    #[test]
    fn a_sorted_read_hands_on_the_lines_in_time_order_each_with_its_number() {
        let at = |visitor: usize, minute: usize| {
            let line = pageview(visitor);
            line.replace(
                "00:00:00Z",
                &format!("{:02}:{:02}:00Z", minute / 60, minute % 60),
            )
        };
        // Line n is at minute 300 - n, newest first, with a blank, a bad, an overlong and a
        // CRLF line among them, and no newline after the last.
        let mut text = Vec::new();
        let mut expected = Vec::new();
        for n in 1..=120 {
            match n {
                10 => text.extend_from_slice(b"\n"),
                20 => text.extend_from_slice(b"not json\n"),
                30 => {
                    text.extend_from_slice(&vec![b'x'; MAX_LINE_BYTES + MAX_LINE_BYTES / 2]);
                    text.push(b'\n');
                }
                40 => text.extend_from_slice(format!("{}\r\n", at(n, 300 - n)).as_bytes()),
                120 => text.extend_from_slice(at(n, 300 - n).as_bytes()),
                _ => text.extend_from_slice(format!("{}\n", at(n, 300 - n)).as_bytes()),
            }
            if ![10, 20, 30].contains(&n) {
                expected.push(n);
            }
        }
        expected.reverse();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.ndjson");
        std::fs::write(&path, &text).unwrap();
        for block in [64, 1000, BLOCK_BYTES] {
            let (mut numbers, mut bad) = (Vec::new(), Vec::new());
            let file = File::open(&path).unwrap();
            read_file_sorted(
                &file,
                "w",
                block,
                |_| {},
                |p| {
                    match p {
                        Parsed::Batch(lines, _) => numbers.extend(lines),
                        Parsed::Rejected(why) => bad.push(why),
                    }
                    true
                },
            )
            .unwrap();
            assert_eq!(numbers, expected, "block of {block} bytes");
            assert_eq!(bad.len(), 2, "{bad:?}");
            assert!(bad.iter().any(|b| b.starts_with("line 20: ")), "{bad:?}");
            assert!(
                bad.iter().any(|b| b.starts_with("line 30: longer than")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_empty_file_hands_on_nothing_and_a_refusing_receiver_stops_the_reading() {
        assert_eq!(read(b"", 64), (vec![], vec![], 0));
        let text: String = (0..1000).map(|i| pageview(i) + "\n").collect();
        let mut batches = 0;
        read_file(
            text.as_bytes(),
            "w",
            256,
            |_| {},
            |_| {
                batches += 1;
                false
            },
        )
        .unwrap();
        assert_eq!(batches, 1);
    }
}
