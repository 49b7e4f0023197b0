//! Keeping secret key material out of swap and core dumps.
//!
//! Keys are held in heap boxes whose pages are `mlock`ed; the process is
//! marked not dumpable (`PR_SET_DUMPABLE = 0`, which also blocks
//! `ptrace` attach by other unprivileged processes) as soon as a secret key
//! is loaded. Zeroisation on drop is the job of the key types themselves
//! (`zeroize`); this module only pins and unpins memory.

use std::sync::Once;

/// A heap value whose pages are locked in RAM for as long as it lives.
///
/// Locking is best effort: where `RLIMIT_MEMLOCK` forbids it the value is
/// still usable and [`Locked::is_locked`] says so, so callers can log it.
pub struct Locked<T> {
    value: Box<T>,
    locked: bool,
}

impl<T> Locked<T> {
    /// Moves `value` to the heap and locks its pages.
    pub fn new(value: T) -> Self {
        forbid_core_dumps();
        let value = Box::new(value);
        let locked = lock_region((&*value as *const T).cast::<u8>(), std::mem::size_of::<T>());
        Locked { value, locked }
    }

    /// Whether the pages are actually locked.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// The value, to fill in place (so a secret is never moved out).
    pub(crate) fn value_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

/// Overwrites the stack below the caller's frame: where a function the
/// caller just returned from (a signature) kept secret intermediates.
/// `WORDS` (8-byte words) must cover that function's deepest stack use.
#[inline(never)]
pub(crate) fn scrub_stack<const WORDS: usize>() {
    let mut area = [0u64; WORDS];
    zeroize::Zeroize::zeroize(&mut area[..]);
    std::hint::black_box(&area);
}

impl<T> std::ops::Deref for Locked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Drop for Locked<T> {
    fn drop(&mut self) {
        if self.locked {
            // The value's own Drop (zeroize) runs after this, while the pages
            // are still mapped; unlocking first is harmless.
            unlock_region(
                (&*self.value as *const T).cast::<u8>(),
                std::mem::size_of::<T>(),
            );
        }
    }
}

fn page_span(ptr: *const u8, len: usize) -> Option<(std::ptr::NonNull<std::ffi::c_void>, usize)> {
    if len == 0 {
        return None;
    }
    let page = 4096usize;
    let start = (ptr as usize) & !(page - 1);
    let end = (ptr as usize + len).div_ceil(page) * page;
    std::ptr::NonNull::new(start as *mut std::ffi::c_void).map(|p| (p, end - start))
}

fn lock_region(ptr: *const u8, len: usize) -> bool {
    match page_span(ptr, len) {
        // SAFETY: the span covers pages of a live heap allocation owned by
        // the caller; mlock does not touch the contents.
        Some((p, l)) => unsafe { nix::sys::mman::mlock(p, l).is_ok() },
        None => false,
    }
}

fn unlock_region(ptr: *const u8, len: usize) {
    if let Some((p, l)) = page_span(ptr, len) {
        // SAFETY: as in lock_region; the allocation is still live.
        let _ = unsafe { nix::sys::mman::munlock(p, l) };
    }
}

/// Marks the process not dumpable, once. Called whenever secret key material
/// is loaded.
pub fn forbid_core_dumps() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = nix::sys::prctl::set_dumpable(false);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_value_is_readable_and_process_not_dumpable() {
        let v = Locked::new([7u8; 64]);
        assert_eq!(v[3], 7);
        assert!(!nix::sys::prctl::get_dumpable().unwrap());
    }
}
