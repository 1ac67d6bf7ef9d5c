//! Durable Raft storage: the log in segment files (a write-ahead log with a CRC32C per record),
//! the HardState and the snapshot metadata in the same records, the snapshot data in its own
//! file. Implements [`raftcore::Storage`] from an in-memory copy of the live log.
//!
//! Record: `[len: u32 LE][crc32c(type + payload): u32 LE][type: u8][payload]`, `len` counting
//! the type byte and the payload. Every segment starts with the snapshot metadata and HardState
//! current when it was opened, so whole older segments can be deleted once a snapshot covers
//! their entries.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use raftcore::raftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raftcore::{RaftState, Storage, StorageError};

const REC_ENTRY: u8 = 1;
const REC_HARD_STATE: u8 = 2;
/// A snapshot received from the leader was installed: the log is replaced by it.
const REC_SNAP_INSTALL: u8 = 3;
/// A snapshot was taken locally: entries up to its index are compacted, later ones stay.
const REC_SNAP_TAKEN: u8 = 4;
const REC_HEADER: usize = 8;
/// No honest record is larger (a value is at most 1 MiB; entries are written one per record).
const MAX_RECORD: usize = 64 << 20;
const SNAP_MAGIC: &[u8; 8] = b"RKVSNAP1";

/// A problem found while opening the WAL.
#[derive(Debug)]
pub enum WalError {
    /// An IO error.
    Io(io::Error),
    /// A record that is not a torn tail failed its checks: refuse to start.
    Corrupt {
        /// The file holding the bad record.
        file: PathBuf,
        /// The byte offset of the record in that file.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
}

impl std::fmt::Display for WalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalError::Io(e) => write!(f, "wal: {e}"),
            WalError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "wal: corrupt record in {} at offset {offset}: {reason}; refusing to start",
                file.display()
            ),
        }
    }
}

impl std::error::Error for WalError {}

impl From<io::Error> for WalError {
    fn from(e: io::Error) -> Self {
        WalError::Io(e)
    }
}

/// Crash points for tests: a write stops there and returns an error, as if the process died.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fault {
    /// Stop after the snapshot data file is durable, before the WAL records it.
    pub after_snapshot_file: bool,
    /// Write only this many bytes of the Ready's WAL records, then stop (a torn write).
    pub after_bytes: Option<usize>,
    /// Stop after the records are written, before the fsync.
    pub before_sync: bool,
}

/// Options of the WAL.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A segment is closed and a new one opened once it grows past this size.
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 << 20,
        }
    }
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// The highest entry index written to this segment (0 if none).
    max_index: u64,
}

/// The files of the WAL: the part of the storage that does IO. Shared (behind a mutex) between
/// the node thread and, with asynchronous storage writes, the append thread.
pub struct WalFiles {
    wal_dir: PathBuf,
    snap_dir: PathBuf,
    opts: WalOptions,
    segments: Vec<Segment>,
    active: File,
    active_size: u64,
    /// The snapshot metadata and HardState as last written (for new segments' headers).
    snap: SnapshotMetadata,
    hard_state: HardState,
    /// Crash points for tests.
    pub fault: Fault,
}

/// The durable storage of one node: the WAL files and the in-memory copy of the live log that
/// the core reads through [`Storage`].
pub struct DiskStorage {
    files: Arc<Mutex<WalFiles>>,
    snap_dir: PathBuf,
    hard_state: HardState,
    snap: SnapshotMetadata,
    /// Entries `snap.index + 1 ..= last`.
    ents: Vec<Entry>,
    /// The configuration now in force (set by the node after each conf change): a snapshot
    /// that does not name every member cannot catch a new member up.
    latest_conf: ConfState,
    /// Set when the core asked for a snapshot that is missing or too old.
    snapshot_wanted: AtomicBool,
}

fn crash() -> io::Error {
    io::Error::other("injected crash")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn encode_record(buf: &mut Vec<u8>, ty: u8, payload: &[u8]) {
    let len = (payload.len() + 1) as u32;
    let mut crc = crc32c::crc32c(&[ty]);
    crc = crc32c::crc32c_append(crc, payload);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.push(ty);
    buf.extend_from_slice(payload);
}

fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.wal")
}

fn snap_name(index: u64, term: u64) -> String {
    format!("snap-{index:016x}-{term:016x}.bin")
}

/// Writes snapshot data durably (temporary file, fsync, rename, fsync of the folder).
pub fn write_snapshot_file(snap_dir: &Path, index: u64, term: u64, data: &[u8]) -> io::Result<()> {
    fs::create_dir_all(snap_dir)?;
    let name = snap_name(index, term);
    let tmp = snap_dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    let mut head = Vec::with_capacity(20);
    head.extend_from_slice(SNAP_MAGIC);
    head.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
    head.extend_from_slice(&(data.len() as u64).to_le_bytes());
    f.write_all(&head)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, snap_dir.join(name))?;
    sync_dir(snap_dir)
}

/// Reads and checks snapshot data written by [`write_snapshot_file`].
pub fn read_snapshot_file(snap_dir: &Path, index: u64, term: u64) -> io::Result<Bytes> {
    let path = snap_dir.join(snap_name(index, term));
    let mut f = File::open(&path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot file {}: {why}", path.display()),
        )
    };
    if buf.len() < 20 || &buf[..8] != SNAP_MAGIC {
        return Err(bad("bad header"));
    }
    let crc = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(buf[12..20].try_into().expect("8 bytes"));
    if len != (buf.len() - 20) as u64 {
        return Err(bad("bad length"));
    }
    if crc32c::crc32c(&buf[20..]) != crc {
        return Err(bad("bad checksum"));
    }
    Ok(Bytes::from(buf).slice(20..))
}

enum Parse {
    Ok {
        ty: u8,
        payload_at: usize,
        end: usize,
    },
    /// The record runs past the end of the file.
    Incomplete,
    /// The record is complete but wrong.
    Bad(String, usize),
}

fn parse_record(data: &[u8], off: usize) -> Parse {
    if data.len() - off < REC_HEADER + 1 {
        return Parse::Incomplete;
    }
    let len = u32::from_le_bytes(data[off..off + 4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(data[off + 4..off + 8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_RECORD {
        return Parse::Bad(format!("record length {len} out of range"), data.len());
    }
    let end = off + REC_HEADER + len;
    if end > data.len() {
        return Parse::Incomplete;
    }
    let body = &data[off + REC_HEADER..end];
    if crc32c::crc32c(body) != crc {
        return Parse::Bad("checksum mismatch".into(), end);
    }
    Parse::Ok {
        ty: body[0],
        payload_at: off + REC_HEADER + 1,
        end,
    }
}

/// The state rebuilt while reading the segments.
struct Replay {
    hard_state: HardState,
    snap: SnapshotMetadata,
    /// First index of `ents` (may be past `snap.index + 1` until a later snapshot record
    /// covers the gap left by deleted segments).
    start: u64,
    ents: Vec<Entry>,
}

impl Replay {
    fn last(&self) -> u64 {
        self.start + self.ents.len() as u64 - 1
    }

    fn entry(&mut self, e: Entry) {
        if e.index <= self.snap.index {
            return;
        }
        if self.ents.is_empty() || e.index > self.last() + 1 || e.index < self.start {
            // Either a fresh start or the continuation of a log whose older segments were
            // deleted; checked against the snapshot at the end.
            self.start = e.index;
            self.ents.clear();
        } else {
            self.ents.truncate((e.index - self.start) as usize);
        }
        self.ents.push(e);
    }

    fn snapshot(&mut self, m: SnapshotMetadata, install: bool) {
        if m.index < self.snap.index || (m.index == self.snap.index && !install) {
            return;
        }
        // A snapshot covers committed entries only. Its HardState may not be durable yet (it
        // follows a received snapshot in the same write; with asynchronous writes a local
        // snapshot may run ahead of the last durable commit): a restart must still find its
        // commit index inside the log.
        self.hard_state.commit = self.hard_state.commit.max(m.index);
        if install {
            self.ents.clear();
        } else if !self.ents.is_empty() && m.index >= self.start {
            let keep_from = (m.index + 1 - self.start) as usize;
            if keep_from >= self.ents.len() {
                self.ents.clear();
            } else {
                self.ents.drain(..keep_from);
                self.start = m.index + 1;
            }
        }
        self.snap = m;
    }
}

impl WalFiles {
    fn open_segment(&mut self, seq: u64) -> io::Result<()> {
        let path = self.wal_dir.join(segment_name(seq));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let mut buf = Vec::new();
        encode_record(&mut buf, REC_SNAP_TAKEN, &self.snap.encode_to_vec());
        encode_record(&mut buf, REC_HARD_STATE, &self.hard_state.encode_to_vec());
        f.write_all(&buf)?;
        f.sync_all()?;
        sync_dir(&self.wal_dir)?;
        self.active = f;
        self.active_size = buf.len() as u64;
        self.segments.push(Segment {
            seq,
            path,
            max_index: 0,
        });
        Ok(())
    }

    fn write_records(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(n) = self.fault.after_bytes {
            if n < buf.len() {
                self.active.write_all(&buf[..n])?;
                return Err(crash());
            }
        }
        self.active.write_all(buf)?;
        self.active_size += buf.len() as u64;
        if self.fault.before_sync {
            return Err(crash());
        }
        Ok(())
    }

    /// Fsyncs the active segment; returns how long it took.
    pub fn sync(&mut self) -> io::Result<Duration> {
        let t = Instant::now();
        self.active.sync_data()?;
        Ok(t.elapsed())
    }

    /// The path of the segment being written.
    pub fn active_path(&self) -> PathBuf {
        self.segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }

    /// Writes a Ready: the snapshot (data file first, then its record), the entries, the
    /// HardState, then an fsync when `must_sync` (or a snapshot came). Returns the fsync's
    /// duration, if one was done. On error the node must stop: the state on disk is whatever
    /// the crash left, which `DiskStorage::open` recovers.
    pub fn write(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        must_sync: bool,
    ) -> io::Result<Option<Duration>> {
        if self.active_size >= self.opts.segment_size {
            let seq = self.segments.last().map_or(0, |s| s.seq + 1);
            self.open_segment(seq)?;
        }
        let mut buf = Vec::new();
        let mut snap_meta = None;
        if let Some(s) = snapshot {
            let meta = s.metadata.clone().unwrap_or_default();
            if meta.index > self.snap.index {
                write_snapshot_file(&self.snap_dir, meta.index, meta.term, &s.data)?;
                if self.fault.after_snapshot_file {
                    return Err(crash());
                }
                encode_record(&mut buf, REC_SNAP_INSTALL, &meta.encode_to_vec());
                snap_meta = Some(meta);
            }
        }
        let floor = snap_meta.as_ref().map_or(self.snap.index, |m| m.index);
        let mut max_index = 0;
        for e in entries.iter().filter(|e| e.index > floor) {
            encode_record(&mut buf, REC_ENTRY, &e.encode_to_vec());
            max_index = e.index;
        }
        if let Some(hs) = hard_state {
            encode_record(&mut buf, REC_HARD_STATE, &hs.encode_to_vec());
        }
        if buf.is_empty() {
            return Ok(None);
        }
        self.write_records(&buf)?;
        let synced = if must_sync || snap_meta.is_some() {
            Some(self.sync()?)
        } else {
            None
        };
        if let Some(meta) = snap_meta {
            self.snap = meta;
        }
        if let Some(hs) = hard_state {
            self.hard_state = *hs;
        }
        if let Some(seg) = self.segments.last_mut() {
            seg.max_index = seg.max_index.max(max_index);
        }
        Ok(synced)
    }

    /// Writes a snapshot-taken record (synced) and deletes the oldest segments whose entries
    /// it covers; never the active one.
    fn snapshot_taken(&mut self, meta: &SnapshotMetadata) -> io::Result<()> {
        let mut buf = Vec::new();
        encode_record(&mut buf, REC_SNAP_TAKEN, &meta.encode_to_vec());
        self.write_records(&buf)?;
        self.sync()?;
        if meta.index > self.snap.index {
            self.snap = meta.clone();
        }
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[0].max_index <= meta.index {
            let seg = self.segments.remove(0);
            fs::remove_file(&seg.path)?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.wal_dir)?;
        }
        Ok(())
    }

    /// The hard state as last written.
    pub fn written_hard_state(&self) -> HardState {
        self.hard_state
    }
}

impl DiskStorage {
    /// Opens (or creates) the storage under `dir` (`dir/wal`, `dir/snap`), replaying the log.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<DiskStorage, WalError> {
        let wal_dir = dir.join("wal");
        let snap_dir = dir.join("snap");
        fs::create_dir_all(&wal_dir)?;
        fs::create_dir_all(&snap_dir)?;
        let mut seqs: Vec<u64> = Vec::new();
        for de in fs::read_dir(&wal_dir)? {
            let name = de?.file_name();
            let name = name.to_string_lossy();
            if let Some(hex) = name.strip_suffix(".wal") {
                if let Ok(seq) = u64::from_str_radix(hex, 16) {
                    seqs.push(seq);
                }
            }
        }
        seqs.sort_unstable();
        let mut rp = Replay {
            hard_state: HardState::default(),
            snap: SnapshotMetadata {
                conf_state: Some(ConfState::default()),
                index: 0,
                term: 0,
            },
            start: 1,
            ents: Vec::new(),
        };
        let mut segments = Vec::new();
        let n = seqs.len();
        for (i, &seq) in seqs.iter().enumerate() {
            let path = wal_dir.join(segment_name(seq));
            let data = fs::read(&path)?;
            let last_segment = i + 1 == n;
            let mut max_index = 0;
            let mut off = 0;
            while off < data.len() {
                let corrupt = |reason: String| WalError::Corrupt {
                    file: path.clone(),
                    offset: off as u64,
                    reason,
                };
                let (ty, payload_at, end) = match parse_record(&data, off) {
                    Parse::Ok {
                        ty,
                        payload_at,
                        end,
                    } => (ty, payload_at, end),
                    bad => {
                        let rest_zero = data[off..].iter().all(|&b| b == 0);
                        let torn = match &bad {
                            Parse::Incomplete => true,
                            Parse::Bad(_, end) => *end >= data.len() || rest_zero,
                            Parse::Ok { .. } => false,
                        };
                        if last_segment && torn {
                            tracing::warn!(
                                file = %path.display(),
                                offset = off,
                                dropped_bytes = data.len() - off,
                                "wal: torn tail truncated"
                            );
                            let f = OpenOptions::new().write(true).open(&path)?;
                            f.set_len(off as u64)?;
                            f.sync_all()?;
                            break;
                        }
                        let reason = match bad {
                            Parse::Incomplete => "record cut short in a closed segment".into(),
                            Parse::Bad(r, _) => r,
                            Parse::Ok { .. } => String::new(),
                        };
                        return Err(corrupt(reason));
                    }
                };
                let payload = &data[payload_at..end];
                match ty {
                    REC_ENTRY => {
                        let e = Entry::decode(payload)
                            .map_err(|e| corrupt(format!("bad entry: {e}")))?;
                        max_index = max_index.max(e.index);
                        rp.entry(e);
                    }
                    REC_HARD_STATE => {
                        rp.hard_state = HardState::decode(payload)
                            .map_err(|e| corrupt(format!("bad hard state: {e}")))?;
                    }
                    REC_SNAP_INSTALL | REC_SNAP_TAKEN => {
                        let m = SnapshotMetadata::decode(payload)
                            .map_err(|e| corrupt(format!("bad snapshot metadata: {e}")))?;
                        rp.snapshot(m, ty == REC_SNAP_INSTALL);
                    }
                    other => return Err(corrupt(format!("unknown record type {other}"))),
                }
                off = end;
            }
            segments.push(Segment {
                seq,
                path,
                max_index,
            });
        }
        if !rp.ents.is_empty() && rp.start > rp.snap.index + 1 {
            let file = segments.first().map(|s| s.path.clone()).unwrap_or_default();
            return Err(WalError::Corrupt {
                file,
                offset: 0,
                reason: format!(
                    "log starts at index {} but the snapshot ends at {}: a segment is missing",
                    rp.start, rp.snap.index
                ),
            });
        }
        if rp.snap.index > 0 {
            read_snapshot_file(&snap_dir, rp.snap.index, rp.snap.term)?;
        }
        // A HardState written after the snapshot record may still carry an older commit.
        rp.hard_state.commit = rp.hard_state.commit.max(rp.snap.index);
        let mut ents = rp.ents;
        if !ents.is_empty() && rp.start <= rp.snap.index {
            let skip = ((rp.snap.index + 1 - rp.start) as usize).min(ents.len());
            ents.drain(..skip);
        }
        let seq = segments.last().map_or(0, |s| s.seq + 1);
        let mut files = WalFiles {
            wal_dir,
            snap_dir: snap_dir.clone(),
            opts,
            segments,
            // Replaced right below by a new segment.
            active: tempfile::tempfile()?,
            active_size: 0,
            snap: rp.snap.clone(),
            hard_state: rp.hard_state,
            fault: Fault::default(),
        };
        // A fresh segment for this run: the old tail is never appended to after a crash.
        files.open_segment(seq)?;
        let latest_conf = rp.snap.conf_state.clone().unwrap_or_default();
        Ok(DiskStorage {
            files: Arc::new(Mutex::new(files)),
            snap_dir,
            hard_state: rp.hard_state,
            snap: rp.snap,
            ents,
            latest_conf,
            snapshot_wanted: AtomicBool::new(false),
        })
    }

    /// The last index of the log.
    pub fn last(&self) -> u64 {
        self.snap.index + self.ents.len() as u64
    }

    /// The persisted HardState.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The metadata of the latest snapshot.
    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snap
    }

    /// The folder holding snapshot data files.
    pub fn snap_dir(&self) -> &Path {
        &self.snap_dir
    }

    /// The number of segment files.
    pub fn segment_count(&self) -> usize {
        self.files.lock().expect("wal lock").segments.len()
    }

    /// Raises the commit index of the HardState in memory (a restart found the state machine
    /// ahead of the last durable commit, which an unsynced commit-only write can cause).
    pub fn raise_commit(&mut self, commit: u64) {
        let c = commit.min(self.last());
        if c > self.hard_state.commit {
            self.hard_state.commit = c;
        }
    }

    /// Records the configuration now in force (after a conf change was applied).
    pub fn set_latest_conf(&mut self, cs: ConfState) {
        self.latest_conf = cs;
    }

    /// Whether the core asked for a snapshot that is missing or too old (cleared by reading).
    pub fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.swap(false, Ordering::Relaxed)
    }

    /// The WAL files (for the append thread).
    pub fn files(&self) -> Arc<Mutex<WalFiles>> {
        self.files.clone()
    }

    /// Sets the crash points of the next writes (tests).
    pub fn set_fault(&self, fault: Fault) {
        self.files.lock().expect("wal lock").fault = fault;
    }

    /// Persists a Ready and updates the in-memory log: [`WalFiles::write`] then
    /// [`DiskStorage::apply_written`]. Returns the fsync's duration, if one was done.
    pub fn persist(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        must_sync: bool,
    ) -> io::Result<Option<Duration>> {
        let synced = self
            .files
            .lock()
            .expect("wal lock")
            .write(snapshot, entries, hard_state, must_sync)?;
        self.apply_written(
            snapshot.and_then(|s| s.metadata.clone()),
            entries,
            hard_state,
        )?;
        Ok(synced)
    }

    /// Updates the in-memory log after a write is durable.
    pub fn apply_written(
        &mut self,
        snapshot: Option<SnapshotMetadata>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> io::Result<()> {
        if let Some(meta) = snapshot.filter(|m| m.index > self.snap.index) {
            let old = (self.snap.index, self.snap.term);
            self.latest_conf = meta.conf_state.clone().unwrap_or_default();
            self.snap = meta;
            self.ents.clear();
            self.remove_old_snapshots(old);
        }
        for e in entries.iter().filter(|e| e.index > self.snap.index) {
            let first = self.snap.index + 1;
            let pos = (e.index - first) as usize;
            if pos > self.ents.len() {
                return Err(io::Error::other(format!(
                    "append of entry {} leaves a gap after {}",
                    e.index,
                    self.last()
                )));
            }
            self.ents.truncate(pos);
            self.ents.push(e.clone());
        }
        if let Some(hs) = hard_state {
            self.hard_state = *hs;
        }
        Ok(())
    }

    fn remove_old_snapshots(&self, old: (u64, u64)) {
        if old.0 > 0 {
            let _ = fs::remove_file(self.snap_dir.join(snap_name(old.0, old.1)));
        }
    }

    /// Records a snapshot taken locally (its data already written with
    /// [`write_snapshot_file`]) and compacts the log up to its index: whole segments whose
    /// entries are all covered are deleted.
    pub fn snapshot_taken(&mut self, meta: SnapshotMetadata) -> io::Result<()> {
        if meta.index <= self.snap.index || meta.index > self.last() {
            let _ = fs::remove_file(self.snap_dir.join(snap_name(meta.index, meta.term)));
            return Ok(());
        }
        self.files.lock().expect("wal lock").snapshot_taken(&meta)?;
        let old = (self.snap.index, self.snap.term);
        let drop_n = (meta.index - self.snap.index) as usize;
        self.ents.drain(..drop_n);
        self.snap = meta;
        self.remove_old_snapshots(old);
        Ok(())
    }

    /// The latest snapshot with its data.
    pub fn load_snapshot(&self) -> io::Result<Snapshot> {
        let data = if self.snap.index == 0 {
            Bytes::new()
        } else {
            read_snapshot_file(&self.snap_dir, self.snap.index, self.snap.term)?
        };
        Ok(Snapshot {
            data,
            metadata: Some(self.snap.clone()),
        })
    }

    /// Entries in `[low, high)` from memory (for tests and tools).
    pub fn entries_in(&self, low: u64, high: u64) -> Vec<Entry> {
        let first = self.snap.index + 1;
        if low < first || high > self.last() + 1 || low >= high {
            return Vec::new();
        }
        self.ents[(low - first) as usize..(high - first) as usize].to_vec()
    }
}

fn store_err(e: StorageError) -> raftcore::Error {
    raftcore::Error::Store(e)
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> raftcore::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state,
            conf_state: self.snap.conf_state.clone().unwrap_or_default(),
        })
    }

    fn entries(&self, low: u64, high: u64, max_size: u64) -> raftcore::Result<Vec<Entry>> {
        let first = self.snap.index + 1;
        if low < first {
            return Err(store_err(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(store_err(StorageError::Unavailable));
        }
        if low >= high {
            return Ok(Vec::new());
        }
        let slice = &self.ents[(low - first) as usize..(high - first) as usize];
        let mut size = 0u64;
        let mut n = 0;
        for e in slice {
            size = size.saturating_add(e.encoded_len() as u64);
            if n > 0 && size > max_size {
                break;
            }
            n += 1;
        }
        Ok(slice[..n].to_vec())
    }

    fn term(&self, idx: u64) -> raftcore::Result<u64> {
        if idx == self.snap.index {
            return Ok(self.snap.term);
        }
        if idx < self.snap.index {
            return Err(store_err(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(store_err(StorageError::Unavailable));
        }
        Ok(self.ents[(idx - self.snap.index - 1) as usize].term)
    }

    fn first_index(&self) -> raftcore::Result<u64> {
        Ok(self.snap.index + 1)
    }

    fn last_index(&self) -> raftcore::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self) -> raftcore::Result<Snapshot> {
        let cs = self.snap.conf_state.clone().unwrap_or_default();
        let names_all = self
            .latest_conf
            .voters
            .iter()
            .chain(&self.latest_conf.learners)
            .all(|id| cs.voters.contains(id) || cs.learners.contains(id));
        if self.snap.index == 0 || !names_all {
            self.snapshot_wanted.store(true, Ordering::Relaxed);
            return Err(store_err(StorageError::SnapshotTemporarilyUnavailable));
        }
        match self.load_snapshot() {
            Ok(s) => Ok(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the snapshot file");
                self.snapshot_wanted.store(true, Ordering::Relaxed);
                Err(store_err(StorageError::SnapshotTemporarilyUnavailable))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::from(format!("value-{index}")),
            ..Default::default()
        }
    }

    fn hs(term: u64, vote: u64, commit: u64) -> HardState {
        HardState { term, vote, commit }
    }

    fn open(dir: &Path) -> DiskStorage {
        DiskStorage::open(dir, WalOptions { segment_size: 512 }).unwrap()
    }

    fn indexes(st: &DiskStorage) -> Vec<(u64, u64)> {
        let first = st.first_index().unwrap();
        st.entries_in(first, st.last() + 1)
            .iter()
            .map(|e| (e.index, e.term))
            .collect()
    }

    fn snapshot(index: u64, term: u64, voters: Vec<u64>) -> Snapshot {
        Snapshot {
            data: Bytes::from(format!("state@{index}")),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState {
                    voters,
                    ..Default::default()
                }),
                index,
                term,
            }),
        }
    }

    #[test]
    fn entries_hard_state_and_overwrite_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = open(dir.path());
        let ents: Vec<Entry> = (1..=5).map(|i| ent(i, 1)).collect();
        st.persist(None, &ents, Some(&hs(1, 1, 3)), true).unwrap();
        // A new leader overwrites the tail from index 4.
        st.persist(None, &[ent(4, 2)], Some(&hs(2, 2, 3)), true)
            .unwrap();
        assert_eq!(indexes(&st), vec![(1, 1), (2, 1), (3, 1), (4, 2)]);
        drop(st);
        let st = open(dir.path());
        assert_eq!(indexes(&st), vec![(1, 1), (2, 1), (3, 1), (4, 2)]);
        assert_eq!(*st.hard_state(), hs(2, 2, 3));
        assert_eq!(st.term(4).unwrap(), 2);
        assert_eq!(
            st.entries(1, 5, 0).unwrap().len(),
            1,
            "max_size 0 still returns one entry"
        );
        assert!(matches!(
            st.entries(1, 6, u64::MAX),
            Err(raftcore::Error::Store(StorageError::Unavailable))
        ));
    }

    #[test]
    fn torn_tail_is_truncated_and_logged() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = open(dir.path());
        st.persist(None, &[ent(1, 1), ent(2, 1)], Some(&hs(1, 1, 2)), true)
            .unwrap();
        let path = st.files().lock().unwrap().active_path();
        drop(st);
        // Half of a third record at the end of the last segment.
        let mut rec = Vec::new();
        encode_record(&mut rec, REC_ENTRY, &ent(3, 1).encode_to_vec());
        let good_len = fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&rec[..rec.len() / 2]).unwrap();
        drop(f);
        let st = open(dir.path());
        assert_eq!(indexes(&st), vec![(1, 1), (2, 1)]);
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len, "tail cut");
        // Each open starts a new segment: that is now the last one.
        let path = st.files().lock().unwrap().active_path();
        drop(st);
        // A complete last record with a bad checksum is torn too.
        let mut bad = rec.clone();
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&bad).unwrap();
        drop(f);
        let mut st = open(dir.path());
        assert_eq!(indexes(&st), vec![(1, 1), (2, 1)]);
        // And the log goes on from there.
        st.persist(None, &[ent(3, 1)], None, true).unwrap();
        drop(st);
        assert_eq!(indexes(&open(dir.path())).len(), 3);
    }

    #[test]
    fn corruption_in_the_middle_is_refused_with_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = open(dir.path());
        let ents: Vec<Entry> = (1..=3).map(|i| ent(i, 1)).collect();
        st.persist(None, &ents, Some(&hs(1, 1, 3)), true).unwrap();
        let path = st.files().lock().unwrap().active_path();
        drop(st);
        let mut data = fs::read(&path).unwrap();
        // Find the second entry record and flip a byte of its payload.
        let mut off = 0;
        let mut entry_no = 0;
        let target = loop {
            let Parse::Ok { ty, end, .. } = parse_record(&data, off) else {
                panic!("unparsable test file")
            };
            if ty == REC_ENTRY {
                entry_no += 1;
                if entry_no == 2 {
                    break off;
                }
            }
            off = end;
        };
        data[target + REC_HEADER + 3] ^= 0x55;
        fs::write(&path, &data).unwrap();
        let err = DiskStorage::open(dir.path(), WalOptions::default())
            .err()
            .expect("must refuse to start");
        match &err {
            WalError::Corrupt { file, offset, .. } => {
                assert_eq!(file, &path);
                assert_eq!(*offset, target as u64);
            }
            other => panic!("unexpected error {other}"),
        }
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(&format!("offset {target}")), "{text}");
        // Nothing was truncated.
        assert_eq!(fs::read(&path).unwrap(), data);
    }

    #[test]
    fn corruption_in_a_closed_segment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = open(dir.path());
        for i in 1..=40 {
            st.persist(None, &[ent(i, 1)], Some(&hs(1, 1, i)), true)
                .unwrap();
        }
        assert!(st.segment_count() > 2);
        let first = st.files().lock().unwrap().segments[0].path.clone();
        drop(st);
        // Cut the first (closed) segment short: not a torn tail, since later segments exist.
        let len = fs::metadata(&first).unwrap().len();
        let f = OpenOptions::new().write(true).open(&first).unwrap();
        f.set_len(len - 3).unwrap();
        drop(f);
        match DiskStorage::open(dir.path(), WalOptions::default()) {
            Err(WalError::Corrupt { file, .. }) => assert_eq!(file, first),
            other => panic!("expected corruption, got {:?}", other.err()),
        }
    }

    #[test]
    fn a_missing_segment_is_refused_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = open(dir.path());
        for i in 1..=40 {
            st.persist(None, &[ent(i, 1)], Some(&hs(1, 1, i)), true)
                .unwrap();
        }
        let second = st.files().lock().unwrap().segments[1].path.clone();
        drop(st);
        fs::remove_file(&second).unwrap();
        match DiskStorage::open(dir.path(), WalOptions { segment_size: 512 }) {
            Err(WalError::Corrupt { reason, .. }) => {
                assert!(reason.contains("missing"), "{reason}")
            }
            other => panic!("expected corruption, got {:?}", other.err()),
        }
    }

    #[test]
    fn snapshots_compact_whole_segments_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = open(dir.path());
        for i in 1..=60 {
            st.persist(None, &[ent(i, 1)], Some(&hs(1, 1, i)), true)
                .unwrap();
        }
        let before = st.segment_count();
        assert!(before > 3);
        let meta = SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            }),
            index: 50,
            term: 1,
        };
        write_snapshot_file(st.snap_dir(), 50, 1, b"state@50").unwrap();
        st.snapshot_taken(meta.clone()).unwrap();
        assert!(st.segment_count() < before, "old segments deleted");
        assert_eq!(st.first_index().unwrap(), 51);
        assert!(matches!(
            st.entries(50, 52, u64::MAX),
            Err(raftcore::Error::Store(StorageError::Compacted))
        ));
        st.set_latest_conf(meta.conf_state.clone().unwrap());
        assert_eq!(&st.snapshot().unwrap().data[..], b"state@50");
        drop(st);
        let mut st = open(dir.path());
        assert_eq!(st.first_index().unwrap(), 51);
        assert_eq!(st.last(), 60);
        assert_eq!(st.term(50).unwrap(), 1);
        assert_eq!(*st.hard_state(), hs(1, 1, 60));
        assert_eq!(st.initial_state().unwrap().conf_state.voters, vec![1, 2, 3]);
        // A member the snapshot does not name: the core is asked to wait for a newer one.
        st.set_latest_conf(ConfState {
            voters: vec![1, 2, 3, 4],
            ..Default::default()
        });
        assert!(matches!(
            st.snapshot(),
            Err(raftcore::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable
            ))
        ));
        assert!(st.take_snapshot_wanted());
    }

    /// With asynchronous writes a local snapshot can be recorded before the HardState that
    /// commits its index is durable, and an older HardState can follow it: the reopened state
    /// must still start.
    #[test]
    fn snapshot_ahead_of_the_durable_commit_still_starts() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = open(dir.path());
        let ents: Vec<Entry> = (1..=10).map(|i| ent(i, 1)).collect();
        st.persist(None, &ents, Some(&hs(1, 1, 4)), true).unwrap();
        write_snapshot_file(st.snap_dir(), 8, 1, b"state@8").unwrap();
        st.snapshot_taken(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1],
                ..Default::default()
            }),
            index: 8,
            term: 1,
        })
        .unwrap();
        st.persist(None, &[], Some(&hs(1, 1, 6)), false).unwrap();
        drop(st);
        let st = open(dir.path());
        assert_eq!(st.hard_state().commit, 8);
        assert_eq!(st.first_index().unwrap(), 9);
        let mut cfg = raftcore::Config::new(1);
        cfg.applied = 8;
        raftcore::RawNode::new(&cfg, st).expect("the core accepts the state");
    }

    /// One Ready with a snapshot, entries and a HardState, written with a crash at every byte
    /// of its records (and at the points around them): the reopened storage holds either the
    /// state before the Ready or the state after it, never a mix that breaks the log.
    #[test]
    fn crash_at_every_write_point_of_a_ready_recovers() {
        let base = tempfile::tempdir().unwrap();
        let prepare = |dir: &Path| {
            let mut st = open(dir);
            let ents: Vec<Entry> = (1..=3).map(|i| ent(i, 1)).collect();
            st.persist(None, &ents, Some(&hs(1, 1, 2)), true).unwrap();
            st
        };
        let snap = snapshot(10, 2, vec![1, 2]);
        let new_ents = [ent(11, 2), ent(12, 2)];
        let new_hs = hs(2, 0, 10);
        // Size of the Ready's WAL records, from a run without faults.
        let total = {
            let dir = base.path().join("measure");
            let mut st = prepare(&dir);
            let before = fs::metadata(st.files().lock().unwrap().active_path())
                .unwrap()
                .len();
            st.persist(Some(&snap), &new_ents, Some(&new_hs), true)
                .unwrap();
            let after = fs::metadata(st.files().lock().unwrap().active_path())
                .unwrap()
                .len();
            (after - before) as usize
        };
        let mut faults = vec![
            Fault {
                after_snapshot_file: true,
                ..Default::default()
            },
            Fault {
                before_sync: true,
                ..Default::default()
            },
        ];
        for n in 0..total {
            faults.push(Fault {
                after_bytes: Some(n),
                ..Default::default()
            });
        }
        let (mut old, mut new) = (0, 0);
        for (k, fault) in faults.into_iter().enumerate() {
            let dir = base.path().join(format!("case{k}"));
            let mut st = prepare(&dir);
            st.set_fault(fault);
            assert!(st
                .persist(Some(&snap), &new_ents, Some(&new_hs), true)
                .is_err());
            drop(st);
            let st = DiskStorage::open(&dir, WalOptions { segment_size: 512 })
                .unwrap_or_else(|e| panic!("case {k} ({fault:?}): {e}"));
            let hs_now = *st.hard_state();
            let snap_now = st.snapshot_metadata().index;
            let ents_now = indexes(&st);
            if snap_now == 0 {
                old += 1;
                assert_eq!(ents_now, vec![(1, 1), (2, 1), (3, 1)], "case {k}");
                assert_eq!(hs_now, hs(1, 1, 2), "case {k}");
            } else {
                new += 1;
                assert_eq!(snap_now, 10, "case {k}");
                assert_eq!(&st.load_snapshot().unwrap().data[..], b"state@10");
                // Entries are a prefix of the Ready's, and the HardState comes last.
                assert!(
                    ents_now.is_empty()
                        || ents_now == vec![(11, 2)]
                        || ents_now == vec![(11, 2), (12, 2)],
                    "case {k}: {ents_now:?}"
                );
                if hs_now == new_hs {
                    assert_eq!(ents_now.len(), 2, "case {k}");
                } else {
                    // The snapshot record raises the commit index to the snapshot's.
                    assert_eq!(hs_now, hs(1, 1, 10), "case {k}");
                }
            }
            // The recovered storage is usable: the core can start from it.
            let cfg = raftcore::Config::new(1);
            let mut cfg2 = cfg.clone();
            cfg2.applied = st.snapshot_metadata().index;
            raftcore::RawNode::new(&cfg2, st)
                .unwrap_or_else(|e| panic!("case {k}: core refused the state: {e}"));
        }
        assert!(old > 0 && new > 0, "both outcomes were exercised");
    }
}
