#!/usr/bin/env python3
"""Where a restore's time goes on the server: runs a command while sampling
pg_stat_activity of one database every 0.25 s, then prints each statement's
first and last sighting (seconds from the start) and how many backends were
busy over time.

    timeline.py --db lethe_bench_restore [--out samples.tsv] -- 'shell command'

Uses psql with the PG* environment (scripts/bench/env.sh sets it). Sampling
costs one short psql call per tick; statements shorter than a tick may be
missed, which is fine for finding the long ones.
"""
import argparse, subprocess, sys, time

SQL = (
    "select pid, regexp_replace(left(query, 90), '\\s+', ' ', 'g') "
    "from pg_stat_activity where datname = '{db}' and state = 'active' "
    "and pid <> pg_backend_pid()"
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--out")
    ap.add_argument("--tick", type=float, default=0.25)
    ap.add_argument("cmd", nargs="+")
    a = ap.parse_args()
    sql = SQL.format(db=a.db)
    t0 = time.monotonic()
    proc = subprocess.Popen(" ".join(a.cmd), shell=True)
    samples = []  # (t, pid, query)
    while proc.poll() is None:
        t = time.monotonic() - t0
        r = subprocess.run(["psql", "-d", "postgres", "-AtF", "\t", "-c", sql],
                           capture_output=True, text=True)
        for line in r.stdout.splitlines():
            pid, _, q = line.partition("\t")
            samples.append((t, pid, q))
        time.sleep(a.tick)
    wall = time.monotonic() - t0
    if a.out:
        with open(a.out, "w") as f:
            for t, pid, q in samples:
                f.write(f"{t:.2f}\t{pid}\t{q}\n")
    spans = {}
    for t, _, q in samples:
        first, last = spans.get(q, (t, t))
        spans[q] = (min(first, t), max(last, t))
    for q, (first, last) in sorted(spans.items(), key=lambda kv: kv[1][0]):
        print(f"{first:7.2f} {last:7.2f} {last - first:6.2f}  {q}")
    ticks = {}
    for t, _, _ in samples:
        ticks[t] = ticks.get(t, 0) + 1
    # Busy backends per second of the run.
    print(f"wall {wall:.2f} s; busy backends per second:")
    row = []
    for s in range(int(wall) + 1):
        ts = [n for t, n in ticks.items() if s <= t < s + 1]
        row.append(f"{max(ts) if ts else 0}")
    print(" ".join(row))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
