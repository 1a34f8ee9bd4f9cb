#!/bin/bash
# d066e25 (old) vs c534317 (cur, main's HEAD at the end of the pass); pairs 1-3 old first, 4-6 cur first
for r in 1 2 3 4 5 6; do
  if [ $r -le 3 ]; then order="old cur"; else order="cur old"; fi
  for b in $order; do
    out=/tmp/crit-out/filter-ab3-$b-run$r.txt
    echo "# $b pair $r, $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)" > $out
    (cd /tmp/crit-$b && /tmp/lethe-bench-bins/filter-$b --bench filter/ >> $out 2>&1)
    echo "# end $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)" >> $out
  done
done
