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

    /// Where the masks of block `b` are held: its slot in the window, after
    /// loading the window that starts at `b` if `b` is outside the one held;
    /// `None` if `b` starts past the end of the input.
    #[inline(always)]
    fn slot(&mut self, b: usize) -> Option<usize> {
        let j = b.wrapping_sub(self.first);
        if j < WINDOW {
            return Some(j);
        }
        self.load(b).then_some(0)
    }

    /// Splits the row starting at `start` into its first `spans.len()`
    /// fields (see [`Fields`]). The separator bits of each 64-byte block are
    /// walked in a register, lowest first, so a field costs a few
    /// instructions; the row's newline is then found from the last field.
    #[inline]
    pub fn fields(&mut self, start: usize, spans: &mut [(usize, usize)]) -> Fields {
        let width = spans.len();
        // Start of the field being looked for; it ends at the next separator.
        let mut field = start;
        let mut c = 0;
        let mut b = start / BLOCK;
        let mut m = u64::MAX << (start % BLOCK);
        while c < width {
            let Some(j) = self.slot(b) else {
                return Fields::Incomplete;
            };
            let newlines = self.newlines[j];
            m &= self.tabs[j] | newlines;
            while m != 0 {
                let bit = m.trailing_zeros();
                let p = b * BLOCK + bit as usize;
                spans[c] = (field, p);
                c += 1;
                if newlines >> bit & 1 == 1 {
                    return if c < width {
                        Fields::Short(c)
                    } else {
                        Fields::Row(p)
                    };
                }
                field = p + 1;
                if c == width {
                    break;
                }
                m &= m - 1;
            }
            b += 1;
            m = u64::MAX;
        }
        match self.next_newline(field) {
            Some(p) => Fields::Row(p),
            None => Fields::Incomplete,
        }
    }

    /// The first tab or newline at or after `pos`, `None` if there is none
    /// before the end of the input. Fastest when `pos` only moves forward.
    #[cfg(test)]
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
            let j = self.slot(b)?;
            let m = mask(self, j) & (u64::MAX << (pos % BLOCK));
            if m != 0 {
                let p = b * BLOCK + m.trailing_zeros() as usize;
                return (p < self.input.len()).then_some(p);
            }
            pos = (b + 1) * BLOCK;
        }
    }
}

/// What splitting one row found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fields {
    /// Every field asked for, and the position of the row's newline.
    Row(usize),
    /// The row has only this many fields, fewer than asked for.
    Short(usize),
    /// The input ends inside the row.
    Incomplete,
}

/// [`Scanner::fields`] without precomputed masks: each separator probed for
/// from the last (see [`next_separator_near`]), for rows whose needed
/// fields are all at the front.
#[inline]
pub fn fields_near(input: &[u8], start: usize, spans: &mut [(usize, usize)]) -> Fields {
    let width = spans.len();
    let mut pos = start;
    for (c, span) in spans.iter_mut().enumerate() {
        let Some(sep) = next_separator_near(input, pos) else {
            return Fields::Incomplete;
        };
        *span = (pos, sep);
        if input[sep] == b'\n' {
            return if c + 1 < width {
                Fields::Short(c + 1)
            } else {
                Fields::Row(sep)
            };
        }
        pos = sep + 1;
    }
    match next_newline_near(input, pos) {
        Some(p) => Fields::Row(p),
        None => Fields::Incomplete,
    }
}

/// Bytes looked at inline, 16 at a time, before [`next_separator_near`] and
/// [`next_newline_near`] hand the rest to `memchr`: ids and codes end well
/// inside this, and a call to `memchr` costs more than a few probes.
const NEAR: usize = 48;

/// The first tab or newline at or after `pos` in `input`, found without
/// precomputed masks: fastest when it is near (a short field), as in rows
/// whose needed fields are all at the front.
#[inline]
pub fn next_separator_near(input: &[u8], pos: usize) -> Option<usize> {
    near(input, pos, true).or_else(|| {
        let from = (pos + NEAR).min(input.len());
        memchr::memchr2(b'\t', b'\n', &input[from..]).map(|i| from + i)
    })
}

/// The first newline at or after `pos` in `input`; see [`next_separator_near`].
#[inline]
pub fn next_newline_near(input: &[u8], pos: usize) -> Option<usize> {
    near(input, pos, false).or_else(|| {
        let from = (pos + NEAR).min(input.len());
        memchr::memchr(b'\n', &input[from..]).map(|i| from + i)
    })
}

/// The first newline (and tab, with `tabs`) in `input[pos..pos + NEAR]`,
/// probing 16 bytes at a time; `None` if there is none there.
#[inline(always)]
fn near(input: &[u8], pos: usize, tabs: bool) -> Option<usize> {
    let end = (pos + NEAR).min(input.len());
    let mut p = pos;
    while p + 16 <= input.len() && p < end {
        let chunk: &[u8; 16] = input[p..p + 16].try_into().expect("16 bytes");
        let (t, n) = masks16(chunk);
        let m = if tabs { t | n } else { n };
        if m != 0 {
            let hit = p + m.trailing_zeros() as usize;
            return (hit < end).then_some(hit);
        }
        p += 16;
    }
    // Fewer than 16 bytes left in the input: byte by byte.
    (p..end).find(|&i| input[i] == b'\n' || (tabs && input[i] == b'\t'))
}

/// How far ahead of the rows being split the input is prefetched.
const PREFETCH: usize = 2048;

/// Asks the CPU to load the cache lines of `input` from `done` up to
/// `pos + PREFETCH` (while the rows before them are split and looked up);
/// returns the new `done`. The rows are read front to back, a few hundred
/// instructions per line, and a load that misses the cache stalls the
/// separator search behind it.
#[inline(always)]
pub fn prefetch_ahead(input: &[u8], pos: usize, mut done: usize) -> usize {
    let to = (pos + PREFETCH).min(input.len());
    while done < to {
        crate::prefetch::prefetch(input.as_ptr().wrapping_add(done));
        done += 64;
    }
    done
}

/// Bit `i` set where `chunk[i]` is a tab, and where it is a newline.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn masks16(chunk: &[u8; 16]) -> (u32, u32) {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline; `chunk` is 16 readable
    // bytes and `_mm_loadu_si128` has no alignment requirement.
    let (t, n) = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        (
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\t' as i8))),
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8))),
        )
    };
    // movemask sets only the low 16 bits.
    (t as u32 & 0xffff, n as u32 & 0xffff)
}

/// Bit `i` set where `chunk[i]` is a tab, and where it is a newline.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn masks16(chunk: &[u8; 16]) -> (u32, u32) {
    let mut tabs = 0u32;
    let mut newlines = 0u32;
    for (i, &c) in chunk.iter().enumerate() {
        tabs |= u32::from(c == b'\t') << i;
        newlines |= u32::from(c == b'\n') << i;
    }
    (tabs, newlines)
}

/// Bit `i` set where `chunk[i]` is a tab, and where it is a newline.
#[inline]
fn masks(chunk: &[u8; BLOCK]) -> (u64, u64) {
    let mut tabs = 0u64;
    let mut newlines = 0u64;
    for (i, part) in chunk.as_chunks::<16>().0.iter().enumerate() {
        let (t, n) = masks16(part);
        tabs |= u64::from(t) << (16 * i);
        newlines |= u64::from(n) << (16 * i);
    }
    (tabs, newlines)
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
