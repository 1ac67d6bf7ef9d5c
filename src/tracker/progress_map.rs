//! The progress of every peer, kept in id order.

use super::Progress;
use crate::lazy_vec::LazyVec;
use crate::quorum::AckedIndexer;
use std::fmt;

/// The [`Progress`] of each peer, in a small vector sorted by id: iteration is always in id
/// order (as etcd visits peers) and lookups are a binary search. Only a leader has one: a
/// follower's empty map costs 8 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgressMap {
    entries: LazyVec<(u64, Progress)>,
}

impl ProgressMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, id: u64) -> Result<usize, usize> {
        self.entries.as_slice().binary_search_by_key(&id, |e| e.0)
    }

    /// The progress of `id`.
    pub fn get(&self, id: u64) -> Option<&Progress> {
        self.find(id).ok().map(|i| &self.entries.as_slice()[i].1)
    }

    /// The progress of `id`, mutably.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Progress> {
        match self.find(id) {
            Ok(i) => Some(&mut self.entries.as_mut_slice()[i].1),
            Err(_) => None,
        }
    }

    /// Sets the progress of `id`, returning the one it replaces.
    pub fn insert(&mut self, id: u64, pr: Progress) -> Option<Progress> {
        match self.find(id) {
            Ok(i) => Some(std::mem::replace(&mut self.entries.as_mut_slice()[i].1, pr)),
            Err(i) => {
                self.entries.vec_mut().insert(i, (id, pr));
                None
            }
        }
    }

    /// Removes and returns the progress of `id`.
    pub fn remove(&mut self, id: u64) -> Option<Progress> {
        self.find(id)
            .ok()
            .map(|i| self.entries.vec_mut().remove(i).1)
    }

    /// Whether `id` has a progress.
    pub fn contains(&self, id: u64) -> bool {
        self.find(id).is_ok()
    }

    /// The id of the `k`-th peer in id order (a loop that changes progress, but not the set of
    /// peers, can walk the map by position without collecting the ids).
    pub fn id_at(&self, k: usize) -> Option<u64> {
        self.entries.as_slice().get(k).map(|(id, _)| *id)
    }

    /// The number of peers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no peers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every peer.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The peers and their progress, in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u64, &Progress)> + '_ {
        self.entries.as_slice().iter().map(|(id, pr)| (*id, pr))
    }

    /// The peers and their progress, mutably, in id order.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (u64, &mut Progress)> + '_ {
        self.entries
            .as_mut_slice()
            .iter_mut()
            .map(|(id, pr)| (*id, pr))
    }

    /// The peer ids in ascending order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.entries.as_slice().iter().map(|e| e.0)
    }
}

/// A peer's acknowledged index is its `matched` index.
impl AckedIndexer for ProgressMap {
    fn acked_index(&self, voter_id: u64) -> Option<u64> {
        self.get(voter_id).map(|pr| pr.matched)
    }
}

/// One `"<id>: <progress>\n"` line per peer, ids in decimal and ascending.
impl fmt::Display for ProgressMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, pr) in self.entries.as_slice() {
            writeln!(f, "{id}: {pr}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_map() {
        let mut m = ProgressMap::new();
        for id in [12, 3, 7] {
            assert!(m.insert(id, Progress::new(id, 1, 0)).is_none());
        }
        assert!(m.insert(7, Progress::new(70, 1, 0)).is_some());
        assert_eq!(m.ids().collect::<Vec<_>>(), vec![3, 7, 12]);
        assert_eq!(m.get(7).map(|p| p.next_idx), Some(70));
        assert!(m.remove(3).is_some() && m.remove(3).is_none());
        if let Some(p) = m.get_mut(12) {
            p.matched = 4;
        }
        assert_eq!(m.acked_index(12), Some(4));
        assert_eq!(m.acked_index(1), None);
        assert_eq!(
            m.to_string(),
            "7: StateProbe match=0 next=70 inactive\n12: StateProbe match=4 next=12 inactive\n"
        );
    }
}
