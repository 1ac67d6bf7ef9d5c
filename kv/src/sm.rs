//! The key-value state machine in redb. One write transaction per batch of committed entries
//! holds the data, the applied index and the revision together, so a restart neither loses
//! nor re-applies an entry.

// redb's error type is large; these calls run once per batch or request, not in a hot loop.
#![allow(clippy::result_large_err)]

use std::path::Path;

use bytes::Bytes;
use prost::Message as _;
use raftcore::raftpb::ConfState;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("members");

/// Largest key, in bytes.
pub const MAX_KEY: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 1 << 20;

/// A write, as carried in a log entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    /// Chosen by the proposing node, which answers its client when the entry is applied.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// 1 = put, 2 = delete.
    #[prost(uint32, tag = "2")]
    pub op: u32,
    /// The key.
    #[prost(bytes = "bytes", tag = "3")]
    pub key: Bytes,
    /// The value (put).
    #[prost(bytes = "bytes", tag = "4")]
    pub value: Bytes,
    /// Compare-and-set: the version the key must have (0 = absent).
    #[prost(uint64, optional, tag = "5")]
    pub if_version: Option<u64>,
}

/// Put.
pub const OP_PUT: u32 = 1;
/// Delete.
pub const OP_DELETE: u32 = 2;

/// A member's addresses, carried in the context of its conf change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The node id.
    pub id: u64,
    /// Where peers reach it.
    pub peer_addr: String,
    /// Where clients reach it.
    pub client_addr: String,
}

/// The outcome of one applied command, handed to the waiting request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyResult {
    /// A put succeeded.
    Put {
        /// The key's new version.
        version: u64,
        /// The store's revision after the write.
        revision: u64,
    },
    /// A compare-and-set found another version (0 = absent); nothing changed.
    Mismatch {
        /// The key's current version.
        current: u64,
    },
    /// A delete was applied.
    Delete {
        /// Whether the key existed.
        deleted: bool,
        /// The store's revision after the delete.
        revision: u64,
    },
    /// A membership change took effect (or was refused, `ok = false`).
    Conf {
        /// Whether the core accepted the change.
        ok: bool,
    },
}

/// One committed entry, prepared by the node thread for the apply worker.
#[derive(Debug, Clone)]
pub enum ApplyItem {
    /// An empty entry (a new leader's) or one that could not be decoded.
    Noop {
        /// Its index.
        index: u64,
        /// Its term.
        term: u64,
    },
    /// A key-value command.
    Command {
        /// Its index.
        index: u64,
        /// Its term.
        term: u64,
        /// The command.
        cmd: Command,
    },
    /// A conf change, already applied to the core by the node thread.
    Conf {
        /// Its index.
        index: u64,
        /// Its term.
        term: u64,
        /// The request id in the change's context (0 if none).
        request_id: u64,
        /// Members added, with their addresses.
        added: Vec<MemberInfo>,
        /// Ids removed.
        removed: Vec<u64>,
        /// Whether the core accepted it.
        ok: bool,
        /// The configuration after it.
        conf_state: ConfState,
    },
}

impl ApplyItem {
    /// The entry's index.
    pub fn index(&self) -> u64 {
        match self {
            ApplyItem::Noop { index, .. }
            | ApplyItem::Command { index, .. }
            | ApplyItem::Conf { index, .. } => *index,
        }
    }

    /// The entry's term.
    pub fn term(&self) -> u64 {
        match self {
            ApplyItem::Noop { term, .. }
            | ApplyItem::Command { term, .. }
            | ApplyItem::Conf { term, .. } => *term,
        }
    }
}

/// A key's stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The bytes.
    pub value: Bytes,
    /// The key's version.
    pub version: u64,
    /// The index of the entry that last wrote it.
    pub mod_revision: u64,
}

fn encode_value(value: &[u8], version: u64, rev: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + value.len());
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&rev.to_le_bytes());
    v.extend_from_slice(value);
    v
}

fn decode_value(raw: &[u8]) -> Stored {
    if raw.len() < 16 {
        return Stored {
            value: Bytes::new(),
            version: 0,
            mod_revision: 0,
        };
    }
    Stored {
        version: u64::from_le_bytes(raw[..8].try_into().expect("8 bytes")),
        mod_revision: u64::from_le_bytes(raw[8..16].try_into().expect("8 bytes")),
        value: Bytes::copy_from_slice(&raw[16..]),
    }
}

/// The snapshot format: the whole store.
#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotData {
    #[prost(uint64, tag = "1")]
    revision: u64,
    #[prost(message, repeated, tag = "2")]
    pairs: Vec<SnapshotPair>,
    /// JSON of each member's `MemberInfo`.
    #[prost(bytes = "vec", repeated, tag = "3")]
    members: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotPair {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    /// The stored encoding (version, revision, value).
    #[prost(bytes = "vec", tag = "2")]
    raw: Vec<u8>,
}

/// The members named in snapshot data (empty if it does not decode).
pub fn snapshot_members(data: &[u8]) -> Vec<MemberInfo> {
    SnapshotData::decode(data)
        .map(|s| {
            s.members
                .iter()
                .filter_map(|m| serde_json::from_slice(m).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A read transaction of the whole store, for a snapshot.
pub struct SnapshotReader(redb::ReadTransaction);

impl SnapshotReader {
    /// The applied index the view reflects.
    pub fn applied(&self) -> Result<u64, redb::Error> {
        let meta = self.0.open_table(META)?;
        Ok(meta.get("applied")?.map(|v| v.value()).unwrap_or(0))
    }

    /// The snapshot data.
    pub fn serialize(self) -> Result<Vec<u8>, redb::Error> {
        let r = self.0;
        let meta = r.open_table(META)?;
        let revision = meta.get("revision")?.map(|v| v.value()).unwrap_or(0);
        let mut data = SnapshotData {
            revision,
            ..Default::default()
        };
        for kv in r.open_table(KV)?.iter()? {
            let (k, v) = kv?;
            data.pairs.push(SnapshotPair {
                key: k.value().to_vec(),
                raw: v.value().to_vec(),
            });
        }
        for kv in r.open_table(MEMBERS)?.iter()? {
            let (_, v) = kv?;
            data.members.push(v.value().to_vec());
        }
        Ok(data.encode_to_vec())
    }
}

/// The state machine.
pub struct StateMachine {
    db: Database,
    /// Apply batches since the last one that was handed to the disk.
    batches: std::sync::atomic::AtomicU64,
}

impl StateMachine {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<StateMachine, redb::Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(KV)?;
            txn.open_table(META)?;
            txn.open_table(MEMBERS)?;
        }
        txn.commit()?;
        Ok(StateMachine {
            db,
            batches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn meta(&self, name: &str) -> Result<u64, redb::Error> {
        let r = self.db.begin_read()?;
        let t = r.open_table(META)?;
        Ok(t.get(name)?.map(|v| v.value()).unwrap_or(0))
    }

    /// The index of the last applied entry.
    pub fn applied(&self) -> Result<u64, redb::Error> {
        self.meta("applied")
    }

    /// The store's revision.
    pub fn revision(&self) -> Result<u64, redb::Error> {
        self.meta("revision")
    }

    /// Applies a batch in one transaction. Entries at or below the applied index are skipped
    /// (a restart replays the log from the snapshot). Returns the outcome per request id.
    ///
    /// The commit stays in redb's memory (`Durability::None`) until [`StateMachine::flush`]:
    /// the WAL is the durability point. A crash may roll the store back to an earlier applied index, data
    /// and index together;
    /// the restart replays the log from there, or restores the snapshot file when the log was
    /// compacted past it. Snapshots and restores are fsynced.
    pub fn apply(&self, items: &[ApplyItem]) -> Result<Vec<(u64, ApplyResult)>, redb::Error> {
        let mut out = Vec::new();
        let mut txn = self.db.begin_write()?;
        // Batches stay in redb's memory; `flush` writes them out (and frees pages).
        txn.set_durability(redb::Durability::None);
        self.batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut meta = txn.open_table(META)?;
            let mut kv = txn.open_table(KV)?;
            let mut members = txn.open_table(MEMBERS)?;
            let mut applied = meta.get("applied")?.map(|v| v.value()).unwrap_or(0);
            let mut revision = meta.get("revision")?.map(|v| v.value()).unwrap_or(0);
            for item in items {
                let index = item.index();
                if index <= applied {
                    continue;
                }
                match item {
                    ApplyItem::Noop { .. } => {}
                    ApplyItem::Command { cmd, .. } => {
                        let cur = kv.get(&cmd.key[..])?.map(|v| decode_value(v.value()));
                        let cur_version = cur.as_ref().map_or(0, |s| s.version);
                        let res = match cmd.op {
                            OP_PUT => match cmd.if_version {
                                Some(v) if v != cur_version => ApplyResult::Mismatch {
                                    current: cur_version,
                                },
                                _ => {
                                    let version = cur_version + 1;
                                    kv.insert(
                                        &cmd.key[..],
                                        &encode_value(&cmd.value, version, index)[..],
                                    )?;
                                    revision = index;
                                    ApplyResult::Put { version, revision }
                                }
                            },
                            OP_DELETE => {
                                let deleted = kv.remove(&cmd.key[..])?.is_some();
                                if deleted {
                                    revision = index;
                                }
                                ApplyResult::Delete { deleted, revision }
                            }
                            _ => ApplyResult::Conf { ok: false },
                        };
                        if cmd.request_id != 0 {
                            out.push((cmd.request_id, res));
                        }
                    }
                    ApplyItem::Conf {
                        request_id,
                        added,
                        removed,
                        ok,
                        ..
                    } => {
                        if *ok {
                            for m in added {
                                let json = serde_json::to_vec(m).unwrap_or_default();
                                members.insert(m.id, &json[..])?;
                            }
                            for id in removed {
                                members.remove(*id)?;
                            }
                        }
                        if *request_id != 0 {
                            out.push((*request_id, ApplyResult::Conf { ok: *ok }));
                        }
                    }
                }
                applied = index;
            }
            meta.insert("applied", applied)?;
            meta.insert("revision", revision)?;
        }
        txn.commit()?;
        Ok(out)
    }

    /// Writes the batches applied since the last flush out to the file (without fsync) when
    /// at least `every` have accumulated. The apply worker calls it after answering the
    /// batch's requests, so the write is off their path.
    pub fn flush(&self, every: u64) -> Result<(), redb::Error> {
        if self.batches.load(std::sync::atomic::Ordering::Relaxed) < every {
            return Ok(());
        }
        self.batches.store(0, std::sync::atomic::Ordering::Relaxed);
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Eventual);
        txn.commit()?;
        Ok(())
    }

    /// A key's value.
    pub fn get(&self, key: &[u8]) -> Result<Option<Stored>, redb::Error> {
        let r = self.db.begin_read()?;
        let t = r.open_table(KV)?;
        Ok(t.get(key)?.map(|v| decode_value(v.value())))
    }

    /// Up to `limit` keys starting with `prefix`, in order, and whether more exist.
    pub fn range(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<(Vec<(Bytes, Stored)>, bool), redb::Error> {
        let r = self.db.begin_read()?;
        let t = r.open_table(KV)?;
        let mut items = Vec::new();
        let mut more = false;
        for kv in t.range(prefix..)? {
            let (k, v) = kv?;
            if !k.value().starts_with(prefix) {
                break;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push((Bytes::copy_from_slice(k.value()), decode_value(v.value())));
        }
        Ok((items, more))
    }

    /// The number of keys.
    pub fn len(&self) -> Result<u64, redb::Error> {
        let r = self.db.begin_read()?;
        Ok(r.open_table(KV)?.len()?)
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> Result<bool, redb::Error> {
        Ok(self.len()? == 0)
    }

    /// The members' addresses.
    pub fn members(&self) -> Result<Vec<MemberInfo>, redb::Error> {
        let r = self.db.begin_read()?;
        let t = r.open_table(MEMBERS)?;
        let mut out = Vec::new();
        for kv in t.iter()? {
            let (_, v) = kv?;
            if let Ok(m) = serde_json::from_slice::<MemberInfo>(v.value()) {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Serializes the whole store (as of the applied index, returned with it).
    pub fn snapshot(&self) -> Result<(u64, Vec<u8>), redb::Error> {
        let r = self.begin_snapshot()?;
        let applied = r.applied()?;
        Ok((applied, r.serialize()?))
    }

    /// A consistent view of the store to serialize, on another thread if need be, while
    /// batches go on being applied.
    pub fn begin_snapshot(&self) -> Result<SnapshotReader, redb::Error> {
        Ok(SnapshotReader(self.db.begin_read()?))
    }

    /// Replaces the store with a snapshot taken at `index`. Returns false (and changes
    /// nothing) when the data does not decode.
    pub fn restore(&self, index: u64, data: &[u8]) -> Result<bool, redb::Error> {
        let Ok(snap) = SnapshotData::decode(data) else {
            return Ok(false);
        };
        let txn = self.db.begin_write()?;
        txn.delete_table(KV)?;
        txn.delete_table(MEMBERS)?;
        {
            let mut kv = txn.open_table(KV)?;
            for p in &snap.pairs {
                kv.insert(&p.key[..], &p.raw[..])?;
            }
            let mut members = txn.open_table(MEMBERS)?;
            for m in &snap.members {
                if let Ok(info) = serde_json::from_slice::<MemberInfo>(m) {
                    members.insert(info.id, &m[..])?;
                }
            }
            let mut meta = txn.open_table(META)?;
            meta.insert("applied", index)?;
            meta.insert("revision", snap.revision)?;
        }
        txn.commit()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(index: u64, id: u64, key: &str, value: &str, if_version: Option<u64>) -> ApplyItem {
        ApplyItem::Command {
            index,
            term: 1,
            cmd: Command {
                request_id: id,
                op: OP_PUT,
                key: Bytes::from(key.to_string()),
                value: Bytes::from(value.to_string()),
                if_version,
            },
        }
    }

    fn del(index: u64, id: u64, key: &str) -> ApplyItem {
        ApplyItem::Command {
            index,
            term: 1,
            cmd: Command {
                request_id: id,
                op: OP_DELETE,
                key: Bytes::from(key.to_string()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn versions_revisions_cas_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let sm = StateMachine::open(&dir.path().join("kv.redb")).unwrap();
        let out = sm
            .apply(&[
                put(1, 11, "a", "x", None),
                put(2, 12, "a", "y", None),
                put(3, 13, "a", "z", Some(1)),
                put(4, 14, "b", "w", Some(0)),
                ApplyItem::Noop { index: 5, term: 2 },
            ])
            .unwrap();
        assert_eq!(
            out,
            vec![
                (
                    11,
                    ApplyResult::Put {
                        version: 1,
                        revision: 1
                    }
                ),
                (
                    12,
                    ApplyResult::Put {
                        version: 2,
                        revision: 2
                    }
                ),
                (13, ApplyResult::Mismatch { current: 2 }),
                (
                    14,
                    ApplyResult::Put {
                        version: 1,
                        revision: 4
                    }
                ),
            ]
        );
        assert_eq!(sm.applied().unwrap(), 5);
        let out = sm
            .apply(&[del(6, 15, "a"), del(7, 16, "a"), put(8, 17, "a", "n", None)])
            .unwrap();
        assert_eq!(
            out,
            vec![
                (
                    15,
                    ApplyResult::Delete {
                        deleted: true,
                        revision: 6
                    }
                ),
                (
                    16,
                    ApplyResult::Delete {
                        deleted: false,
                        revision: 6
                    }
                ),
                (
                    17,
                    ApplyResult::Put {
                        version: 1,
                        revision: 8
                    }
                ),
            ]
        );
        // Replayed entries are skipped: nothing applies twice.
        assert!(sm.apply(&[put(8, 17, "a", "n", None)]).unwrap().is_empty());
        assert_eq!(sm.get(b"a").unwrap().unwrap().version, 1);
    }

    #[test]
    fn applied_index_and_data_survive_reopen_and_snapshot_restores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        {
            let sm = StateMachine::open(&path).unwrap();
            sm.apply(&[
                put(1, 0, "p/1", "one", None),
                put(2, 0, "p/2", "two", None),
                put(3, 0, "q", "three", None),
            ])
            .unwrap();
        }
        let sm = StateMachine::open(&path).unwrap();
        assert_eq!(sm.applied().unwrap(), 3);
        let (items, more) = sm.range(b"p/", 1).unwrap();
        assert_eq!(items.len(), 1);
        assert!(more);
        let (items, more) = sm.range(b"p/", 10).unwrap();
        assert_eq!(items.len(), 2);
        assert!(!more);
        let (at, data) = sm.snapshot().unwrap();
        assert_eq!(at, 3);
        let other = StateMachine::open(&dir.path().join("other.redb")).unwrap();
        other.apply(&[put(1, 0, "stale", "x", None)]).unwrap();
        assert!(other.restore(3, &data).unwrap());
        assert_eq!(other.applied().unwrap(), 3);
        assert_eq!(other.len().unwrap(), 3);
        assert!(other.get(b"stale").unwrap().is_none());
        assert_eq!(&other.get(b"q").unwrap().unwrap().value[..], b"three");
        assert!(!other.restore(4, b"\xff\xff garbage").unwrap());
        assert_eq!(other.applied().unwrap(), 3);
    }
}
