//! The in-memory erasure set a restore filters with: built once from the
//! store, then read-only and lock-free on the hot path.
//!
//! Keys are first mixed by a bijection (so distinct ids stay distinct, and
//! sequential bigints or time-ordered UUIDs spread evenly), then sorted. A
//! bucket index over the top bits of the mixed key gives each lookup the few
//! entries that can match: one index read and one short search, about two
//! cache misses, instead of a ~24-step binary search over millions of ids.
//!
//! Memory: 8 bytes per id when every key fits in 64 bits (always for bigint),
//! else 14 bytes (the mixed 128-bit key without its top 16 bits, which are
//! the top of its bucket number), plus a bucket index of about 0.5 byte per
//! id (4 bytes per bucket, ~8 ids per bucket, 2^4..2^20 buckets; at least
//! 2^16 for 128-bit keys).
//!
//! Speed: a lookup in a large set is two dependent cache misses (index, then
//! keys) and, with 4 KiB pages, TLB misses. `contains_batch` overlaps the
//! misses of a whole batch (mix and prefetch every bucket, then prefetch every
//! key range, then search), and the key vector and index are allocated with
//! `MADV_HUGEPAGE` so that the kernel can back them with 2 MiB pages.

use super::ErasureSet;
use super::store::{ErasureStore, StoreError};
use super::subject::{SubjectKey, entry_key};
use crate::erasure::config::SubjectType;
use crate::prefetch::prefetch;
use crate::repo::manifest::ListState;

/// Average ids per bucket the index aims for.
const TARGET_PER_BUCKET: usize = 8;
const MIN_BITS: u32 = 4;
const MAX_BITS: u32 = 20;
/// Bucket bits at least, for 128-bit keys: the top 16 bits of a key are then
/// those of its bucket number and are not stored.
const WIDE_MIN_BITS: u32 = 16;
/// Bytes stored per 128-bit key: its low 112 bits.
const WIDE_BYTES: usize = 14;
const LOW112: u128 = (1u128 << 112) - 1;
/// How far each stage of `contains_batch` runs ahead of the next: about the
/// cache misses one core keeps in flight.
const AHEAD: usize = 12;
/// Slots of `contains_batch`'s pipeline state: more than the `2 * AHEAD`
/// steps a key spends in it, and a power of two.
const RING: usize = 32;
const _: () = assert!(RING > 2 * AHEAD && RING.is_power_of_two());

/// splitmix64's finaliser: a bijection on u64 with good avalanche.
#[inline]
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A bijection on u128: two Feistel rounds with `mix64` as the round
/// function (a Feistel network is invertible whatever its round function).
#[inline]
fn mix128(k: u128) -> u128 {
    let (hi, lo) = ((k >> 64) as u64, k as u64);
    let hi = hi ^ mix64(lo);
    let lo = lo ^ mix64(hi);
    (u128::from(hi) << 64) | u128::from(lo)
}

#[derive(Debug)]
enum Keys {
    /// Mixed keys of ids that all fit in 64 bits.
    Narrow(Vec<u64>),
    /// Mixed 128-bit keys, packed.
    Wide(Packed),
}

/// Sorted mixed 128-bit keys stored as their low 112 bits, 14 bytes each,
/// back to back (little endian) in a `u128` buffer, with at least 2 spare
/// bytes at the end so every record can be read as one unaligned 16-byte
/// load. Keys of one bucket share their top `bits >= 16` bits, so within a
/// bucket the low 112 bits order and identify them.
#[derive(Debug)]
struct Packed {
    words: Vec<u128>,
    len: usize,
}

impl Packed {
    /// Packs sorted keys in place (record `i` moves to byte `14 * i`, never
    /// past where key `i` was read from) and gives back the freed tail.
    fn from_sorted(mut v: Vec<u128>) -> Packed {
        let len = v.len();
        let bytes = Self::view_mut(&mut v);
        for i in 0..len {
            let mut k = [0u8; 16];
            k.copy_from_slice(&bytes[16 * i..16 * i + 16]);
            bytes[WIDE_BYTES * i..WIDE_BYTES * (i + 1)].copy_from_slice(&k[..WIDE_BYTES]);
        }
        let words = (WIDE_BYTES * len + 2).div_ceil(16);
        v.truncate(words);
        v.shrink_to_fit();
        Packed { words: v, len }
    }

    fn view_mut(v: &mut [u128]) -> &mut [u8] {
        let n = std::mem::size_of_val(v);
        // SAFETY: a `[u128]` is `n` initialised bytes with no padding, and
        // every byte pattern is a valid `u8`; the view borrows `v` mutably,
        // so nothing else reads or writes it meanwhile.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), n) }
    }

    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        let n = std::mem::size_of_val(self.words.as_slice());
        // SAFETY: as in `view_mut`, for a shared borrow.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), n) }
    }

    /// Record `i`'s low 112 bits.
    #[inline(always)]
    fn at(&self, i: usize) -> u128 {
        let mut k = [0u8; 16];
        k.copy_from_slice(&self.bytes()[WIDE_BYTES * i..WIDE_BYTES * i + 16]);
        u128::from_le_bytes(k) & LOW112
    }

    #[inline(always)]
    fn addr(&self, i: usize) -> *const u8 {
        self.words
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(WIDE_BYTES * i)
    }

    /// Whether records `lo..hi` (one bucket) hold mixed key `m`.
    #[inline(always)]
    fn holds(&self, lo: usize, hi: usize, m: u128) -> bool {
        let m = m & LOW112;
        if hi - lo <= 16 {
            (lo..hi).fold(false, |found, i| found | (self.at(i) == m))
        } else {
            let (mut lo, mut hi) = (lo, hi);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match self.at(mid).cmp(&m) {
                    std::cmp::Ordering::Less => lo = mid + 1,
                    std::cmp::Ordering::Greater => hi = mid,
                    std::cmp::Ordering::Equal => return true,
                }
            }
            false
        }
    }
}

/// A sorted, bucket-indexed set of subject keys.
#[derive(Debug)]
pub struct MemSet {
    keys: Keys,
    /// `index[b]..index[b + 1]` is bucket `b`'s range in `keys`.
    index: Vec<u32>,
    shift: u32,
}

fn bits_for(n: usize) -> u32 {
    let want = (n / TARGET_PER_BUCKET).max(1);
    (usize::BITS - (want - 1).leading_zeros()).clamp(MIN_BITS, MAX_BITS)
}

/// Builds the bucket offsets over sorted keys whose bucket is `bucket(key)`.
fn build_index<T: Copy>(sorted: &[T], bits: u32, bucket: impl Fn(T) -> usize) -> Vec<u32> {
    let buckets = 1usize << bits;
    let mut index = huge_vec(buckets + 1);
    index.resize(buckets + 1, 0u32);
    for &k in sorted {
        index[bucket(k) + 1] += 1;
    }
    for b in 0..buckets {
        index[b + 1] += index[b];
    }
    index
}

impl MemSet {
    /// Builds the set from lookup keys (duplicates are removed).
    ///
    /// # Panics
    /// Never for fewer than 2^32 keys; more are refused by `from_store`.
    pub fn from_keys(keys: Vec<SubjectKey>) -> MemSet {
        if keys.iter().all(|&k| k <= u128::from(u64::MAX)) {
            let mut narrow = huge_vec(keys.len());
            narrow.extend(keys.iter().map(|&k| k as u64));
            drop(keys);
            Self::from_narrow(narrow)
        } else {
            // Collected in place: the allocation (and its advice) is reused.
            let mut v: Vec<u128> = keys.into_iter().map(mix128).collect();
            v.sort_unstable();
            v.dedup();
            Self::from_mixed_wide(v)
        }
    }

    /// Builds a 128-bit set from sorted, distinct mixed keys.
    fn from_mixed_wide(v: Vec<u128>) -> MemSet {
        let bits = bits_for(v.len()).max(WIDE_MIN_BITS);
        let shift = 128 - bits;
        let index = build_index(&v, bits, |k| (k >> shift) as usize);
        MemSet {
            keys: Keys::Wide(Packed::from_sorted(v)),
            index,
            shift,
        }
    }

    /// Builds the set from 64-bit keys (bigint ids as `i64 as u64`), sorted
    /// in place. Allocate `v` with [`huge_vec`] for the fastest lookups.
    pub fn from_narrow(mut v: Vec<u64>) -> MemSet {
        for k in v.iter_mut() {
            *k = mix64(*k);
        }
        v.sort_unstable();
        v.dedup();
        let bits = bits_for(v.len());
        let shift = 64 - bits;
        let index = build_index(&v, bits, |k| (k >> shift) as usize);
        MemSet {
            keys: Keys::Narrow(v),
            index,
            shift,
        }
    }

    /// Reads every entry of the store into a set. The count is checked
    /// against the store's state, so a half-read list is never used.
    ///
    /// # Errors
    /// Read failure, an entry that is not a valid id, a count mismatch.
    pub fn from_store(store: &ErasureStore) -> Result<MemSet, StoreError> {
        Self::load(store).map(|(set, _)| set)
    }

    /// Like [`MemSet::from_store`], also returning the list state (count and
    /// digest) of exactly the entries loaded: what a restore report names.
    ///
    /// # Errors
    /// As [`MemSet::from_store`].
    pub fn load(store: &ErasureStore) -> Result<(MemSet, ListState), StoreError> {
        let t = store.subject_type();
        let corrupt = |message: String| StoreError::Corrupt {
            path: store.path().to_path_buf(),
            message,
        };
        let count = store.state().count;
        if count >= u64::from(u32::MAX) {
            return Err(corrupt(format!(
                "{count} entries exceed what one in-memory set holds (2^32)"
            )));
        }
        let hint = usize::try_from(count).unwrap_or(0);
        let bad = |k: &[u8]| {
            corrupt(format!(
                "entry {:?} is not a valid id of its type",
                String::from_utf8_lossy(k)
            ))
        };
        // Bigint ids are 64-bit keys, unless a named subject's entries
        // (128-bit, see `subject_key`) are listed too.
        let mut narrow: Vec<u64> = if t == SubjectType::Bigint {
            huge_vec(hint)
        } else {
            Vec::new()
        };
        let mut wide: Vec<u128> = if t == SubjectType::Bigint {
            Vec::new()
        } else {
            huge_vec(hint)
        };
        let state = store.scan_ids(|k| {
            let key = entry_key(t, k).ok_or_else(|| bad(k))?;
            match u64::try_from(key) {
                Ok(n) if wide.is_empty() && t == SubjectType::Bigint => narrow.push(n),
                _ => {
                    if wide.is_empty() && !narrow.is_empty() {
                        wide = huge_vec(hint);
                        wide.extend(narrow.drain(..).map(u128::from));
                        narrow = Vec::new();
                    }
                    wide.push(key);
                }
            }
            Ok(())
        })?;
        let set = if wide.is_empty() {
            MemSet::from_narrow(narrow)
        } else {
            MemSet::from_keys(wide)
        };
        if set.len() as u64 != state.count {
            return Err(corrupt(format!(
                "read {} distinct entries but the list state says {}",
                set.len(),
                state.count
            )));
        }
        Ok((set, state))
    }

    /// Like [`MemSet::load`], also holding the extra keys `extra` derives
    /// from each entry: its case-folded or trimmed spelling, hashed under a
    /// seed of its own, for roots that compare that way; a tagged key for
    /// erasures that apply to the snapshot being restored, for roots whose
    /// keys can be reused. Returns the set and the number of entries read
    /// (checked against the list state).
    ///
    /// # Errors
    /// As [`MemSet::from_store`].
    pub fn load_entries(
        store: &ErasureStore,
        extra: &dyn Fn(&super::store::EntryInfo, SubjectKey, &mut Vec<SubjectKey>),
    ) -> Result<(MemSet, u64), StoreError> {
        let t = store.subject_type();
        let corrupt = |message: String| StoreError::Corrupt {
            path: store.path().to_path_buf(),
            message,
        };
        let count = store.state().count;
        let mut v: Vec<u128> = huge_vec(usize::try_from(count).unwrap_or(0) * 2);
        let n = store.for_each_entry(|e| {
            let k = entry_key(t, e.subject.as_bytes()).ok_or_else(|| {
                corrupt(format!(
                    "entry {:?} is not a valid id of its type",
                    e.subject
                ))
            })?;
            v.push(k);
            extra(&e, k, &mut v);
            Ok(())
        })?;
        if n != count {
            return Err(corrupt(format!(
                "read {n} entries but the list state says {count}"
            )));
        }
        Ok((MemSet::from_keys(v), n))
    }

    /// Bytes of heap this set holds.
    pub fn heap_bytes(&self) -> usize {
        let keys = match &self.keys {
            Keys::Narrow(v) => v.capacity() * 8,
            Keys::Wide(p) => p.words.capacity() * 16,
        };
        keys + self.index.capacity() * 4
    }

    #[inline]
    fn range(&self, bucket: usize) -> std::ops::Range<usize> {
        // Bucket numbers come from the top `bits` of the key, so they are
        // always < index.len() - 1.
        self.index[bucket] as usize..self.index[bucket + 1] as usize
    }
}

/// A vector with room for `cap` elements whose memory the kernel is asked to
/// back with transparent huge pages (2 MiB): random lookups over tens of
/// megabytes then miss the TLB far less. Only a hint: without THP it is an
/// ordinary vector. Advise before the memory is first touched.
pub fn huge_vec<T>(cap: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(cap);
    #[cfg(target_os = "linux")]
    advise_huge(v.as_ptr().cast(), cap.saturating_mul(size_of::<T>()));
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(p: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = (p as usize).next_multiple_of(HUGE);
    let end = (p as usize).saturating_add(len) & !(HUGE - 1);
    if end > start {
        // SAFETY: MADV_HUGEPAGE changes how the kernel backs these pages, not
        // their contents or mapping; the range lies inside the allocation
        // `p..p + len` owned by the caller's vector. Failure (no THP) only
        // loses the hint, so the result is ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// Whether the short sorted run `keys` holds `m`.
#[inline(always)]
fn holds<T: Copy + Ord>(keys: &[T], m: T) -> bool {
    if keys.len() <= 16 {
        // Branch-free: buckets hold ~8 keys, and a mispredicted early exit
        // costs more than the few extra compares.
        keys.iter().fold(false, |found, &k| found | (k == m))
    } else {
        keys.binary_search(&m).is_ok()
    }
}

/// Looks up `keys` in the sorted, bucket-indexed `sorted` as a pipeline of
/// three stages, each `AHEAD` keys behind the one before: mix a key and
/// prefetch its index entry; read the entry and prefetch the key range;
/// search the range. So about `2 * AHEAD` misses are in flight instead of
/// one. `mix` gives `None` for a key that cannot be in the set.
/// `addr(i)` is where sorted key `i` starts in memory, `holds(lo, hi, m)`
/// searches keys `lo..hi` for `m`.
///
/// A key's state lives in a ring of `RING` slots from its first stage to
/// its last (`2 * AHEAD` steps later), so the pipeline runs over the whole
/// batch in one go and the ring is small enough to set up for every call.
fn lookup_batch<T: Copy + Default>(
    index: &[u32],
    keys: &[SubjectKey],
    out: &mut [bool],
    mix: impl Fn(SubjectKey) -> Option<T>,
    bucket: impl Fn(T) -> usize,
    addr: impl Fn(usize) -> *const u8,
    holds: impl Fn(usize, usize, T) -> bool,
) {
    const NONE: usize = usize::MAX;
    let mut mixed = [T::default(); RING];
    let mut buckets = [NONE; RING];
    let mut ranges = [(0usize, 0usize); RING];
    let n = keys.len().min(out.len());
    for step in 0..n + 2 * AHEAD {
        if let Some(&k) = keys[..n].get(step) {
            let r = step % RING;
            buckets[r] = match mix(k) {
                Some(m) => {
                    mixed[r] = m;
                    let b = bucket(m);
                    prefetch(index.as_ptr().wrapping_add(b));
                    b
                }
                None => NONE,
            };
        }
        if let Some(i) = step.checked_sub(AHEAD).filter(|&i| i < n) {
            let r = i % RING;
            let b = buckets[r];
            if b != NONE {
                let (lo, hi) = (index[b] as usize, index[b + 1] as usize);
                ranges[r] = (lo, hi);
                prefetch(addr(lo));
                prefetch(addr(hi).wrapping_sub(1));
            }
        }
        if let Some(i) = step.checked_sub(2 * AHEAD).filter(|&i| i < n) {
            let r = i % RING;
            let (lo, hi) = ranges[r];
            out[i] = buckets[r] != NONE && holds(lo, hi, mixed[r]);
        }
    }
}

impl ErasureSet for MemSet {
    fn contains_batch(&self, keys: &[SubjectKey], out: &mut [bool]) {
        let shift = self.shift;
        match &self.keys {
            Keys::Narrow(v) => lookup_batch(
                &self.index,
                keys,
                out,
                |k| u64::try_from(k).ok().map(mix64),
                |m| (m >> shift) as usize,
                |i| v.as_ptr().wrapping_add(i).cast::<u8>(),
                |lo, hi, m| holds(&v[lo..hi], m),
            ),
            Keys::Wide(p) => lookup_batch(
                &self.index,
                keys,
                out,
                |k| Some(mix128(k)),
                |m| (m >> shift) as usize,
                |i| p.addr(i),
                |lo, hi, m| p.holds(lo, hi, m),
            ),
        }
    }

    #[inline]
    fn contains(&self, key: SubjectKey) -> bool {
        match &self.keys {
            Keys::Narrow(v) => {
                if key > u128::from(u64::MAX) {
                    return false;
                }
                let m = mix64(key as u64);
                let r = self.range((m >> self.shift) as usize);
                holds(&v[r], m)
            }
            Keys::Wide(p) => {
                let m = mix128(key);
                let r = self.range((m >> self.shift) as usize);
                p.holds(r.start, r.end, m)
            }
        }
    }

    fn len(&self) -> usize {
        match &self.keys {
            Keys::Narrow(v) => v.len(),
            Keys::Wide(p) => p.len,
        }
    }
}

#[cfg(test)]
#[path = "memset_tests.rs"]
mod tests;
