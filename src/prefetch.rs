//! A cache prefetch hint, for the hot loops that know their next loads
//! before the hardware does (erasure-list lookups, the filter's input).

/// Asks the CPU to start loading the cache line holding `p`.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and changes nothing the
    // program can observe, whatever the address (so a wrapped or dangling
    // pointer is harmless).
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
