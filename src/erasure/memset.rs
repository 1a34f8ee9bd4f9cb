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
//! else 16 bytes, plus a bucket index of about 0.5 byte per id (4 bytes per
//! bucket, ~8 ids per bucket, 2^4..2^20 buckets).
//!
//! Speed: a lookup in a large set is two dependent cache misses (index, then
//! keys) and, with 4 KiB pages, TLB misses. `contains_batch` overlaps the
//! misses of a whole batch (mix and prefetch every bucket, then prefetch every
//! key range, then search), and the key vector and index are allocated with
//! `MADV_HUGEPAGE` so that the kernel can back them with 2 MiB pages.

use super::ErasureSet;
use super::store::{ErasureStore, StoreError};
use super::subject::{SubjectKey, key_of};
use crate::config::SubjectType;
use crate::snapshot::manifest::ListState;

/// Average ids per bucket the index aims for.
const TARGET_PER_BUCKET: usize = 8;
const MIN_BITS: u32 = 4;
const MAX_BITS: u32 = 20;
/// Lookups `contains_batch` stages together (the arrays live on the stack).
const GROUP: usize = 256;
/// How far each stage of `contains_batch` runs ahead of the next: about the
/// cache misses one core keeps in flight.
const AHEAD: usize = 12;

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
    /// Mixed 128-bit keys.
    Wide(Vec<u128>),
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
            let bits = bits_for(v.len());
            let shift = 128 - bits;
            let index = build_index(&v, bits, |k| (k >> shift) as usize);
            MemSet {
                keys: Keys::Wide(v),
                index,
                shift,
            }
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
        let (set, state) = if t == SubjectType::Bigint {
            let mut v: Vec<u64> = huge_vec(hint);
            let state = store.scan_ids(|k| {
                v.push(key_of(t, k).ok_or_else(|| bad(k))? as u64);
                Ok(())
            })?;
            (MemSet::from_narrow(v), state)
        } else {
            let mut v: Vec<u128> = huge_vec(hint);
            let state = store.scan_ids(|k| {
                v.push(key_of(t, k).ok_or_else(|| bad(k))?);
                Ok(())
            })?;
            (MemSet::from_keys(v), state)
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

    /// Bytes of heap this set holds.
    pub fn heap_bytes(&self) -> usize {
        let keys = match &self.keys {
            Keys::Narrow(v) => v.capacity() * 8,
            Keys::Wide(v) => v.capacity() * 16,
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

/// Asks the CPU to start loading the cache line holding `p`.
#[inline(always)]
fn prefetch<T>(p: *const T) {
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
fn lookup_batch<T: Copy + Ord + Default>(
    sorted: &[T],
    index: &[u32],
    keys: &[SubjectKey],
    out: &mut [bool],
    mix: impl Fn(SubjectKey) -> Option<T>,
    bucket: impl Fn(T) -> usize,
) {
    const NONE: usize = usize::MAX;
    let mut mixed = [T::default(); GROUP];
    let mut buckets = [NONE; GROUP];
    let mut ranges = [(0usize, 0usize); GROUP];
    for (ks, os) in keys.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        let n = ks.len();
        for step in 0..n + 2 * AHEAD {
            if let Some(&k) = ks.get(step) {
                buckets[step] = match mix(k) {
                    Some(m) => {
                        mixed[step] = m;
                        let b = bucket(m);
                        prefetch(index.as_ptr().wrapping_add(b));
                        b
                    }
                    None => NONE,
                };
            }
            if let Some(i) = step.checked_sub(AHEAD).filter(|&i| i < n) {
                let b = buckets[i];
                if b != NONE {
                    let (lo, hi) = (index[b] as usize, index[b + 1] as usize);
                    ranges[i] = (lo, hi);
                    prefetch(sorted.as_ptr().wrapping_add(lo));
                    prefetch(sorted.as_ptr().wrapping_add(hi).wrapping_sub(1));
                }
            }
            if let Some(i) = step.checked_sub(2 * AHEAD).filter(|&i| i < n) {
                let (lo, hi) = ranges[i];
                if let Some(o) = os.get_mut(i) {
                    *o = buckets[i] != NONE && holds(&sorted[lo..hi], mixed[i]);
                }
            }
        }
    }
}

impl ErasureSet for MemSet {
    fn contains_batch(&self, keys: &[SubjectKey], out: &mut [bool]) {
        let shift = self.shift;
        match &self.keys {
            Keys::Narrow(v) => lookup_batch(
                v,
                &self.index,
                keys,
                out,
                |k| u64::try_from(k).ok().map(mix64),
                |m| (m >> shift) as usize,
            ),
            Keys::Wide(v) => lookup_batch(
                v,
                &self.index,
                keys,
                out,
                |k| Some(mix128(k)),
                |m| (m >> shift) as usize,
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
            Keys::Wide(v) => {
                let m = mix128(key);
                let r = self.range((m >> self.shift) as usize);
                holds(&v[r], m)
            }
        }
    }

    fn len(&self) -> usize {
        match &self.keys {
            Keys::Narrow(v) => v.len(),
            Keys::Wide(v) => v.len(),
        }
    }
}

#[cfg(test)]
#[path = "memset_tests.rs"]
mod tests;
