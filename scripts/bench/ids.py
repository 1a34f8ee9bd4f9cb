#!/usr/bin/env python3
"""Erasure lists for the benchmarks, one bigint subject id per line.

    ids.py OUT COUNT HITS USERS [SEED]

HITS ids are drawn without replacement from the existing users 1..USERS (so
each hits rows); the rest are ids no user has (above 10^12), so COUNT ids with
HITS/COUNT = 1% reproduces "an erasure list of 1,000,000 ids of which 1% hit
rows". Output order is shuffled.
"""
import random, sys

out, count, hits, users = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 7)
if hits > min(count, users):
    sys.exit(f"ids.py: HITS ({hits}) must be <= COUNT and <= USERS")
ids = rng.sample(range(1, users + 1), hits)
base = 10**12
ids += rng.sample(range(base, base + 50 * count), count - hits)
rng.shuffle(ids)
with open(out, "w") as f:
    f.write("\n".join(map(str, ids)))
    f.write("\n")
