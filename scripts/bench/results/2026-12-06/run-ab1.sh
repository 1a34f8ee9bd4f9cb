#!/bin/bash
# As run for this pass (binaries copied to /tmp/lethe-bench-bins: filter-old = d066e25, filter-new = 3793cde; criterion --bench filter/)
# runs 1-3: default order (old new); runs 4-6: RUNS="4 5 6"; runs 7-12: ORDER="new old" RUNS="7 8 9 10 11 12"
# old, new alternately; thread-CPU GB/s from criterion (filter group only)
for r in ${RUNS:-1 2 3}; do
  for b in ${ORDER:-old new}; do
    out=/tmp/crit-out/filter-synthetic-$b-run$r.txt
    { echo "# $b run $r, $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"; } > $out
    (cd /tmp/crit-$b && /tmp/lethe-bench-bins/filter-$b --bench filter/ >> $out 2>&1)
    echo "# end $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)" >> $out
  done
done
