//! Unit tests of the in-memory erasure set.

use super::*;
use rand::RngExt;
use std::collections::HashSet;

fn check_against_hashset(keys: Vec<u128>, probes: &[u128]) {
    let reference: HashSet<u128> = keys.iter().copied().collect();
    let set = MemSet::from_keys(keys);
    assert_eq!(set.len(), reference.len());
    for k in &reference {
        assert!(set.contains(*k), "listed key {k:#x} not found");
    }
    for p in probes {
        assert_eq!(set.contains(*p), reference.contains(p), "probe {p:#x}");
    }
}

#[test]
fn mixers_are_bijective_on_samples() {
    let mut seen64 = HashSet::new();
    let mut seen128 = HashSet::new();
    for i in 0..100_000u64 {
        assert!(seen64.insert(mix64(i)));
        assert!(seen128.insert(mix128(u128::from(i))));
        if i > 0 {
            assert!(seen128.insert(mix128(u128::from(i) << 64)));
        }
    }
    assert!(seen64.insert(mix64(u64::MAX)));
}

#[test]
fn empty_and_tiny_sets() {
    let set = MemSet::from_keys(Vec::new());
    assert!(set.is_empty());
    assert!(!set.contains(0));
    assert!(!set.contains(u128::MAX));
    check_against_hashset(vec![0], &[0, 1, u128::MAX]);
    check_against_hashset(vec![u128::MAX], &[0, u128::MAX, u128::MAX - 1]);
    check_against_hashset(vec![5, 5, 5], &[4, 5, 6]);
}

#[test]
fn random_narrow_keys_match_a_hashset() {
    let mut rng = rand::rng();
    for n in [1usize, 7, 100, 5_000, 200_000] {
        let keys: Vec<u128> = (0..n).map(|_| u128::from(rng.random::<u64>())).collect();
        let mut probes: Vec<u128> = (0..20_000)
            .map(|_| u128::from(rng.random::<u64>()))
            .collect();
        probes.extend(keys.iter().take(1000).map(|k| k ^ 1));
        probes.push(u128::from(u64::MAX) + 1);
        check_against_hashset(keys, &probes);
    }
}

#[test]
fn sequential_bigints_including_negatives() {
    let keys: Vec<u128> = (-50_000i64..50_000).map(|v| v as u64 as u128).collect();
    let probes: Vec<u128> = (-60_000i64..60_000)
        .step_by(7)
        .map(|v| v as u64 as u128)
        .collect();
    check_against_hashset(keys, &probes);
    // The mix spreads sequential ids: no bucket holds more than a few times the mean.
    let set = MemSet::from_keys((0..1_000_000u128).collect());
    let widest = set.index.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(widest < 40, "widest bucket {widest}");
    assert!(
        set.heap_bytes() < 1_000_000 * 9,
        "{} bytes",
        set.heap_bytes()
    );
}

#[test]
fn random_wide_keys_match_a_hashset() {
    let mut rng = rand::rng();
    for n in [1usize, 100, 10_000, 150_000] {
        let mut keys: Vec<u128> = (0..n).map(|_| rng.random()).collect();
        // Time-ordered UUIDv7-like keys share their top bits.
        keys.extend((0..n as u128).map(|i| (0x0190_0000_0000_7000u128 << 64) | i));
        let mut probes: Vec<u128> = (0..20_000).map(|_| rng.random()).collect();
        probes.extend(keys.iter().take(500).map(|k| k.wrapping_add(1u128 << 64)));
        probes.extend(0..1000u128);
        check_against_hashset(keys, &probes);
    }
}

#[test]
fn wide_set_holding_small_keys_too() {
    let mut keys: Vec<u128> = (0..1000u128).collect();
    keys.push(u128::MAX);
    check_against_hashset(
        keys,
        &(0..2000u128)
            .chain([u128::MAX, u128::MAX - 1])
            .collect::<Vec<_>>(),
    );
}

#[test]
fn memset_batch_lookups_agree_with_single_lookups() {
    let mut rng = rand::rng();
    for wide in [false, true] {
        let keys: Vec<u128> = (0..50_000)
            .map(|_| {
                if wide {
                    rng.random::<u128>()
                } else {
                    u128::from(rng.random::<u64>())
                }
            })
            .collect();
        let set = MemSet::from_keys(keys.clone());
        let mut probes: Vec<u128> = keys.iter().step_by(3).copied().collect();
        probes.extend((0..20_000).map(|_| rng.random::<u128>()));
        probes.extend((0..20_000).map(|_| u128::from(rng.random::<u64>())));
        for n in [0, 1, 24, 25, 31, 32, 33, 1000, probes.len()] {
            let batch = &probes[..n];
            let mut out = vec![false; n + 3];
            set.contains_batch(batch, &mut out);
            for (k, o) in batch.iter().zip(&out) {
                assert_eq!(*o, set.contains(*k), "key {k:#x}");
            }
        }
    }
}

#[test]
fn wide_sets_take_at_most_16_bytes_per_id() {
    let mut rng = rand::rng();
    let keys: Vec<u128> = (0..1_000_000)
        .map(|_| rng.random::<u128>() | (1 << 100))
        .collect();
    let set = MemSet::from_keys(keys.clone());
    assert_eq!(set.len(), 1_000_000);
    let per_id = set.heap_bytes() as f64 / 1e6;
    assert!(per_id <= 16.0, "{per_id:.2} bytes per id");
    assert!(
        per_id >= 14.0,
        "{per_id:.2} bytes per id: keys must still be whole"
    );
    for k in keys.iter().step_by(997) {
        assert!(set.contains(*k));
    }
}

#[test]
fn packed_keys_equal_in_their_low_112_bits_stay_distinct() {
    // Mixed keys (as stored) that differ only in the 16 bits not stored:
    // they fall in different buckets, so none answers for another.
    let low = 0x1234_5678_9abc_def0_1122_3344_5566u128;
    let mut mixed: Vec<u128> = (0u128..40).map(|top| (top << 120) | low).collect();
    mixed.extend((0u128..40).map(|i| (7u128 << 120) | (i << 3)));
    mixed.sort_unstable();
    let set = MemSet::from_mixed_wide(mixed.clone());
    assert_eq!(set.len(), 80);
    let Keys::Wide(p) = &set.keys else {
        panic!("a 128-bit set")
    };
    let stored: HashSet<u128> = mixed.iter().copied().collect();
    for top in 0u128..256 {
        for m in [
            (top << 120) | low,
            (top << 120) | (low ^ 1),
            (top << 112) | low,
        ] {
            let r = set.range((m >> set.shift) as usize);
            assert_eq!(
                p.holds(r.start, r.end, m),
                stored.contains(&m),
                "mixed key {m:#x}"
            );
        }
    }
    // Every stored record reads back as its key's low 112 bits, in order.
    for (i, m) in mixed.iter().enumerate() {
        assert_eq!(p.at(i), m & LOW112);
    }
}
