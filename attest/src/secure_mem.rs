//! Keeping secret key material out of swap and core dumps.
//!
//! Keys are held in heap boxes whose pages are `mlock`ed; the process is
//! marked not dumpable (`PR_SET_DUMPABLE = 0`, which also blocks
//! `ptrace` attach by other unprivileged processes) as soon as a secret key
//! is loaded. Zeroisation on drop is the job of the key types themselves
//! (`zeroize`); this module only pins and unpins memory, and locks and
//! scrubs the stack a signature leaves its intermediates on.

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

/// Locks about `WORDS` 8-byte words of the calling thread's stack below
/// the caller's frame in RAM, once per thread and best effort like
/// [`Locked`], so that secrets a callee computes there are never swapped
/// out. The area is written first, because the main thread's stack is
/// mapped only as it grows. The lock lasts as long as the thread's stack.
pub(crate) fn lock_stack_once<const WORDS: usize>() {
    thread_local!(static LOCKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    LOCKED.with(|done| {
        if !done.replace(true) {
            scrub_stack::<WORDS>();
            let marker = 0u8;
            let top = std::hint::black_box(&marker) as *const u8 as usize;
            // Stay within what `scrub_stack` wrote (its frame starts a little
            // below this one).
            let bytes = (WORDS * 8).saturating_sub(16 * 1024);
            lock_region(top.saturating_sub(bytes) as *const u8, bytes);
        }
    });
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
pub(crate) mod tests {
    use super::*;

    #[test]
    fn locked_value_is_readable_and_process_not_dumpable() {
        let v = Locked::new([7u8; 64]);
        assert_eq!(v[3], 7);
        assert!(!nix::sys::prctl::get_dumpable().unwrap());
    }

    /// KiB locked in the mappings that overlap the 1 MiB below `addr` (an
    /// address on a thread's stack), from /proc/self/smaps: locking part of
    /// a mapping splits it, so the locked part is a mapping of its own.
    fn locked_kib_below(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let (mut inside, mut total) = (false, 0);
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or("");
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a <= addr && b > addr.saturating_sub(1 << 20);
                    continue;
                }
            }
            if let (true, Some(kib)) = (inside, line.strip_prefix("Locked:")) {
                total += kib
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
        }
        total
    }

    /// Runs `work` on a new thread and returns the KiB of that thread's
    /// stack it locked, or `None` where this process may not lock that much.
    /// The stack is 64 MiB, more than glibc caches, so it is freshly mapped
    /// and carries no lock from an earlier thread.
    pub(crate) fn stack_kib_locked_by(work: impl FnOnce() + Send + 'static) -> Option<u64> {
        use nix::sys::resource::{getrlimit, Resource};
        let may_lock = nix::unistd::geteuid().is_root()
            || getrlimit(Resource::RLIMIT_MEMLOCK).is_ok_and(|(soft, _)| soft >= 4 << 20);
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                let here = 0u8;
                let addr = std::hint::black_box(&here) as *const u8 as usize;
                assert_eq!(locked_kib_below(addr), 0, "a fresh stack is not locked");
                work();
                may_lock.then(|| locked_kib_below(addr))
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_threads_stack_is_locked_once() {
        let locked = stack_kib_locked_by(|| {
            lock_stack_once::<{ 256 * 1024 / 8 }>();
            lock_stack_once::<{ 1024 * 1024 / 8 }>();
        });
        if let Some(kib) = locked {
            assert!((240..=248).contains(&kib), "{kib} KiB locked");
        }
    }
}
