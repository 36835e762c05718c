//! How the process's allocator (glibc's malloc) keeps freed memory, set once at start.
//!
//! A long upload passes a gigabyte through buffers of 256 KiB (socket reads) and about 1 MiB
//! (sealed pieces). With glibc's defaults the threshold for giving a heap's free top back to
//! the kernel follows the largest block freed so far (about 2 MiB here), and the upload's
//! buffers in flight (the body waiting for its hashing thread, the pieces waiting for the
//! writer) go past it again and again: the heap was trimmed about 150 times per GiB and every
//! byte received went into pages the kernel had to fault in and zero again (55,000–150,000
//! faults per GiB, 96 % of them in the socket reads). Blocks up to 2 MiB come from the heap and
//! a heap keeps up to 4 MiB free: the same upload faults 3,600 times, with the same peak and
//! idle memory (BENCHMARKS.md). The sealed pieces are recycled (`crypt::pieces`), so what a
//! heap keeps is what the next buffers use.

/// Blocks this large and larger are mapped on their own (and unmapped when freed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 2 << 20;
/// A heap gives its free top back to the kernel once that is this large.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 4 << 20;

/// Applies the settings above; call first thing in `main`, before threads start. A no-op where
/// the allocator is not glibc's, and where `GLIBC_TUNABLES` sets malloc parameters itself (the
/// operator's choice wins).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
        // SAFETY: mallopt only changes the allocator's parameters, under the allocator's lock.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
