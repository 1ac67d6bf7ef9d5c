//! `LazyVec`: a vector that costs 8 bytes inline while it has never been used.
//!
//! An idle group pays for every byte of its inline state, a million times over in a process
//! that runs a million groups; a `Vec` header is 24 bytes whether or not it ever holds
//! anything. Buffers that idle groups leave empty (outgoing messages, acknowledgements waiting
//! for a write, released reads, the batched-append list) are `LazyVec`s instead: `None` until
//! the first push, then a box holding the `Vec`, kept (with its capacity) for the next use
//! until [`LazyVec::release`] drops it.

/// See the module documentation.
#[derive(Clone, Debug)]
// The box is the point: `Option<Box<Vec>>` is 8 bytes where a `Vec` is 24.
#[allow(clippy::box_collection)]
pub(crate) struct LazyVec<T>(Option<Box<Vec<T>>>);

impl<T> LazyVec<T> {
    pub(crate) fn push(&mut self, v: T) {
        self.0.get_or_insert_with(Default::default).push(v);
    }
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.len())
    }
    /// Whether the box exists (tests of what a quiet node releases).
    #[cfg(test)]
    pub(crate) fn is_allocated(&self) -> bool {
        self.0.is_some()
    }
    pub(crate) fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.capacity())
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(crate) fn clear(&mut self) {
        if let Some(v) = self.0.as_mut() {
            v.clear();
        }
    }
    pub(crate) fn as_slice(&self) -> &[T] {
        self.0.as_deref().map_or(&[], |v| v.as_slice())
    }
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        self.0.as_deref_mut().map_or(&mut [], |v| v.as_mut_slice())
    }
    /// The vector itself, boxed on first use.
    pub(crate) fn vec_mut(&mut self) -> &mut Vec<T> {
        self.0.get_or_insert_with(Default::default)
    }
    /// Takes the elements out (the box stays, so the next push does not allocate it again).
    pub(crate) fn take(&mut self) -> Vec<T> {
        self.0
            .as_mut()
            .map(|v| std::mem::take(&mut **v))
            .unwrap_or_default()
    }
    /// Takes `buf` (empty) as the buffer if this vector is empty and `buf` holds more: a
    /// buffer handed back after use serves the next pushes.
    pub(crate) fn offer(&mut self, buf: Vec<T>) {
        debug_assert!(buf.is_empty());
        if self.is_empty() && buf.capacity() > self.capacity() {
            *self.vec_mut() = buf;
        }
    }
    /// Drops the box if the vector is empty: back to 8 bytes and no heap (a node going quiet).
    pub(crate) fn release(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }
}

impl<T> Default for LazyVec<T> {
    fn default() -> Self {
        LazyVec(None)
    }
}

impl<T> From<Vec<T>> for LazyVec<T> {
    fn from(v: Vec<T>) -> Self {
        LazyVec((v.capacity() > 0).then(|| Box::new(v)))
    }
}

/// Equal when the elements are: an unused vector equals a used, empty one.
impl<T: PartialEq> PartialEq for LazyVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for LazyVec<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_vec_allocates_on_first_push_and_releases_only_when_empty() {
        assert_eq!(std::mem::size_of::<LazyVec<u64>>(), 8);
        let mut v = LazyVec::default();
        assert!(v.0.is_none() && v.is_empty() && v.as_slice().is_empty());
        v.push(1);
        v.vec_mut().extend([2, 3, 4]);
        assert_eq!(v.as_slice(), &[1, 2, 3, 4]);
        v.release();
        assert_eq!(v.len(), 4, "not released while it holds elements");
        v.vec_mut().clear();
        assert!(
            v.is_empty() && v.capacity() >= 4,
            "clearing keeps the buffer"
        );
        v.vec_mut().extend([2, 5]);
        assert_eq!(v.take(), vec![2, 5]);
        assert!(v.0.is_some() && v.is_empty(), "take keeps the box");
        v.push(7);
        v.clear();
        assert!(v.0.is_some() && v.is_empty());
        assert_eq!(
            v,
            LazyVec::default(),
            "an emptied vector equals an unused one"
        );
        assert_ne!(v, LazyVec::from(vec![1]));
        assert!(
            LazyVec::<u64>::from(Vec::new()).0.is_none(),
            "no box for nothing"
        );
        assert!(LazyVec::<u64>::from(Vec::with_capacity(4)).0.is_some());
        v.release();
        assert!(v.0.is_none());
        v.vec_mut().extend([3, 1]);
        v.as_mut_slice().sort();
        assert_eq!(v.as_slice(), &[1, 3]);
    }
}
