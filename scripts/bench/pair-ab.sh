#!/usr/bin/env bash
# Two commands in turn (A B A B ...), one warm-up each, then N counted runs,
# each timed as a whole process by /usr/bin/time; prints the median wall,
# user+sys and peak RSS of each and the median of the A/B wall ratios.
#   pair-ab.sh N 'COMMAND A' 'COMMAND B'
set -euo pipefail
n=$1 a=$2 b=$3
out=$(mktemp -d)
run() { /usr/bin/time -f '%e %U %S %M' -o "$out/t" sh -c "$1" >/dev/null 2>&1; cat "$out/t"; }
run "$a" >/dev/null; run "$b" >/dev/null
for _ in $(seq "$n"); do run "$a" >>"$out/a"; run "$b" >>"$out/b"; done
python3 - "$out/a" "$out/b" <<'PY'
import statistics, sys
rows = [[list(map(float, l.split())) for l in open(p)] for p in sys.argv[1:]]
for name, r in zip("AB", rows):
    print(f"{name}: wall {statistics.median(x[0] for x in r):.3f} s, cpu {statistics.median(x[1] + x[2] for x in r):.3f} s, "
          f"peak {statistics.median(x[3] for x in r) / 1024:.1f} MiB")
print(f"A/B wall, median of the pairs: {statistics.median(a[0] / b[0] for a, b in zip(*rows)):.3f}")
PY
rm -rf "$out"
