//! Finds the row ends and field separators of COPY text, 64 bytes at a time:
//! one pass builds a bitmask of the tabs and newlines of each 64-byte block
//! (SSE2 on x86-64, word-at-a-time elsewhere), and fields are then found by
//! bit arithmetic instead of a `memchr` call per field. The masks of one
//! block are kept, so a row costs a few instructions per field it needs plus
//! the mask pass over its bytes.
//!
//! In COPY text a raw tab only separates fields and a raw newline only ends
//! a row (both are escaped inside values), so no other byte needs looking at.

/// Bytes per mask.
const BLOCK: usize = 64;
/// Blocks whose masks are computed together: a tight loop of independent
/// loads the CPU can overlap, ahead of the row walk's branches.
const WINDOW: usize = 32;
/// `first` before any window is loaded: far from every block number, so
/// `b - first` is never inside the window.
const NONE: usize = usize::MAX / 2;

/// A forward-only cursor over `input` that answers "where is the next
/// separator (tab or newline)" and "where is the next newline".
pub struct Scanner<'a> {
    input: &'a [u8],
    /// First block of the window whose masks are held (`NONE` at first).
    first: usize,
    tabs: [u64; WINDOW],
    newlines: [u64; WINDOW],
}

impl<'a> Scanner<'a> {
    pub fn new(input: &'a [u8]) -> Scanner<'a> {
        Scanner {
            input,
            first: NONE,
            tabs: [0; WINDOW],
            newlines: [0; WINDOW],
        }
    }

    /// Computes the masks of the window starting at block `b`; false if
    /// `b` starts past the end of the input.
    #[inline(never)]
    fn load(&mut self, b: usize) -> bool {
        let start = b * BLOCK;
        if start >= self.input.len() {
            return false;
        }
        let (chunks, tail) = self.input[start..].as_chunks::<BLOCK>();
        let full = chunks.len().min(WINDOW);
        for (j, chunk) in chunks[..full].iter().enumerate() {
            (self.tabs[j], self.newlines[j]) = masks(chunk);
        }
        if full < WINDOW {
            // The last, partial block: zero padding is neither separator.
            let mut chunk = [0u8; BLOCK];
            chunk[..tail.len()].copy_from_slice(tail);
            (self.tabs[full], self.newlines[full]) = masks(&chunk);
            self.tabs[full + 1..].fill(0);
            self.newlines[full + 1..].fill(0);
        }
        self.first = b;
        true
    }

    /// The first tab or newline at or after `pos`, `None` if there is none
    /// before the end of the input. Fastest when `pos` only moves forward.
    #[inline]
    pub fn next_separator(&mut self, pos: usize) -> Option<usize> {
        self.next_where(pos, |s, j| s.tabs[j] | s.newlines[j])
    }

    /// The first newline at or after `pos`.
    #[inline]
    pub fn next_newline(&mut self, pos: usize) -> Option<usize> {
        self.next_where(pos, |s, j| s.newlines[j])
    }

    #[inline(always)]
    fn next_where(&mut self, mut pos: usize, mask: impl Fn(&Self, usize) -> u64) -> Option<usize> {
        loop {
            let b = pos / BLOCK;
            let mut j = b.wrapping_sub(self.first);
            if j >= WINDOW {
                if !self.load(b) {
                    return None;
                }
                j = 0;
            }
            let m = mask(self, j) & (u64::MAX << (pos % BLOCK));
            if m != 0 {
                let p = b * BLOCK + m.trailing_zeros() as usize;
                return (p < self.input.len()).then_some(p);
            }
            pos = (b + 1) * BLOCK;
        }
    }

    /// Whether the byte at `pos` (a separator found by this scanner) is a
    /// newline.
    #[inline]
    pub fn is_newline(&self, pos: usize) -> bool {
        self.input.get(pos) == Some(&b'\n')
    }
}

/// Bit `i` set where `chunk[i]` is a tab, and where it is a newline.
#[cfg(target_arch = "x86_64")]
#[inline]
fn masks(chunk: &[u8; BLOCK]) -> (u64, u64) {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut tabs = 0u64;
    let mut newlines = 0u64;
    for (i, part) in chunk.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of the x86-64 baseline, so these intrinsics
        // are always available; `part` is 16 readable bytes and
        // `_mm_loadu_si128` has no alignment requirement.
        let (t, n) = unsafe {
            let v = _mm_loadu_si128(part.as_ptr().cast::<__m128i>());
            (
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\t' as i8))),
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8))),
            )
        };
        // movemask sets only the low 16 bits.
        tabs |= u64::from(t as u16) << (16 * i);
        newlines |= u64::from(n as u16) << (16 * i);
    }
    (tabs, newlines)
}

/// Bit `i` set where `chunk[i]` is a tab, and where it is a newline.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn masks(chunk: &[u8; BLOCK]) -> (u64, u64) {
    let mut tabs = 0u64;
    let mut newlines = 0u64;
    for (i, &c) in chunk.iter().enumerate() {
        tabs |= u64::from(c == b'\t') << i;
        newlines |= u64::from(c == b'\n') << i;
    }
    (tabs, newlines)
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
