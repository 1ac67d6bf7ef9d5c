//! A thread-local counting wrapper over the system allocator, like the peer harnesses': it counts
//! the allocation calls of the calling thread (`alloc`, `alloc_zeroed`, `realloc`) and the bytes
//! they asked for (for `realloc`, only the growth). The counters are `const`-initialised
//! thread-locals holding `Cell<u64>`s: no atomics, no lazy initialisation, no destructors.
//!
//! Install it in a bench target with
//! `#[global_allocator] static A: common::alloc::Counting = common::alloc::Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static CALLS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

#[inline]
fn count(size: usize) {
    // Never panic inside the allocator; `try_with` cannot fail for these thread-locals anyway.
    let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + size as u64));
}

/// The counting allocator.
pub struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size.saturating_sub(layout.size()));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Cumulative allocation counters of the calling thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllocSnapshot {
    /// alloc / alloc_zeroed / realloc calls.
    pub calls: u64,
    /// Bytes those calls asked for (realloc: growth only).
    pub bytes: u64,
}

impl AllocSnapshot {
    /// The counters accumulated between `earlier` and `self`.
    pub fn since(self, earlier: AllocSnapshot) -> AllocSnapshot {
        AllocSnapshot {
            calls: self.calls - earlier.calls,
            bytes: self.bytes - earlier.bytes,
        }
    }
}

/// The calling thread's counters now. They only move when [`Counting`] is the global allocator.
pub fn snapshot() -> AllocSnapshot {
    AllocSnapshot {
        calls: CALLS.with(|c| c.get()),
        bytes: BYTES.with(|c| c.get()),
    }
}
