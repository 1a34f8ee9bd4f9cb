#!/usr/bin/env python3
"""Markdown tables from results.jsonl (measure.py's output): medians of each
benchmark and lethe's wall-time ratio to every peer of the same kind.

    report.py results.jsonl > tables.md

Rows are grouped by the text before ':' in the name (snapshot, restore, ...);
the row whose name contains 'lethe' is compared with the others.
"""
import json, sys
from collections import OrderedDict


def main():
    recs = OrderedDict()
    for line in open(sys.argv[1]):
        line = line.strip()
        if line:
            r = json.loads(line)
            recs[r["name"]] = r  # the last run of a name wins
    groups = OrderedDict()
    for name, r in recs.items():
        groups.setdefault(name.split(":", 1)[0], []).append(r)
    for g, rows in groups.items():
        lethe = [r for r in rows if "lethe" in r["name"]]
        base = lethe[0]["median"]["wall_s"] if lethe else None
        print(f"### {g}\n")
        print("| what | wall s | client CPU s | server CPU s | peak RSS MB | lethe wall ÷ this | runs (wall s) |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for r in rows:
            m = r["median"]
            ratio = "" if base is None or "lethe" in r["name"] else f"{base / m['wall_s']:.2f}×"
            runs = ", ".join(f"{x['wall_s']:.1f}" for x in r["runs"])
            srv = f"{m['server_cpu_s']:.1f}" if "server_cpu_s" in m else "–"
            label = r["name"].split(":", 1)[-1].strip().replace("|", "\\|")
            print(f"| {label} | {m['wall_s']:.1f} | {m['cpu_s']:.1f} | {srv} "
                  f"| {m['max_rss_mb']:.0f} | {ratio} | {runs} |")
        notes = [f"- {r['name'].split(':', 1)[-1].strip()}: {r['note']}" for r in rows if r.get("note")]
        if notes:
            print()
            print("\n".join(notes))
        print()


if __name__ == "__main__":
    main()
