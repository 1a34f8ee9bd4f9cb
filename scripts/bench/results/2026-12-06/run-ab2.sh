#!/bin/bash
# As run for this pass (filter-old = d066e25, filter-head = 950aa27, filter-fix2 = 950aa27 + rowfilter-trial-fix.diff); rounds 1-6, then RUNS="7 8 9 10 11 12"
# d066e25 (old), 950aa27 (head), 950aa27+trial fix (fix2); order rotated each round
orders=("old head fix2" "head fix2 old" "fix2 old head" "old head fix2" "head fix2 old" "fix2 old head")
for r in ${RUNS:-1 2 3 4 5 6}; do
  for b in ${orders[$(( (r-1) % 6 ))]}; do
    out=/tmp/crit-out/filter-synthetic-h-$b-run$r.txt
    echo "# $b round $r, $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)" > $out
    (cd /tmp/crit-$b && /tmp/lethe-bench-bins/filter-$b --bench filter/ >> $out 2>&1)
    echo "# end $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)" >> $out
  done
done
