//! A hint to the CPU to start loading bytes into its cache, so the next record is on its way
//! while this one is checked. A hint only: it changes no result, on any CPU.

/// Asks the CPU to load every 64-byte cache line of `bytes` into its caches.
#[inline]
pub fn prefetch(bytes: &[u8]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    for line in bytes.chunks(64) {
        // SAFETY: the build enables SSE, which `_mm_prefetch` needs; `line` points into
        // `bytes`, and a prefetch reads nothing the program sees and never faults.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = bytes;
}
