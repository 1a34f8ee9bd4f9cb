#!/usr/bin/env python3
"""Run one benchmark command several times under /usr/bin/time -v and record
wall time, client CPU (user+sys of the command and its children), the largest
single process's peak RSS, and the PostgreSQL server's CPU over the run.

    measure.py --name pg_dump_fc_s3 --runs 3 --out results.jsonl \
        [--setup 'shell cmd run untimed before each run'] \
        [--pg-pid-file /var/lib/postgresql/15/bench/postmaster.pid] \
        -- 'shell command'

Appends one JSON object per benchmark (all runs + medians) to --out and prints
a one-line summary. Server CPU is the postmaster's own plus reaped children's
CPU plus its live children's CPU (backends that served the run have exited by
the end, so their time is in the postmaster's cutime/cstime).
"""
import argparse, json, os, re, statistics, subprocess, sys, time

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid, children=True):
    """utime+stime (+cutime+cstime) of one process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is state (field 3); utime is field 14 -> index 11
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t / CLK


def server_cpu(pid_file):
    if not pid_file:
        return None
    try:
        with open(pid_file) as f:
            pm = int(f.readline())
    except OSError:
        return None
    total = proc_cpu(pm)
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == pm:
            total += proc_cpu(int(p))
    return total


def parse_time_v(text):
    def grab(label):
        m = re.search(r"^\s*" + re.escape(label) + r":\s*(.+)$", text, re.M)
        return m.group(1).strip() if m else None

    wall = grab("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    parts = [float(x) for x in wall.split(":")]
    secs = 0.0
    for x in parts:
        secs = secs * 60 + x
    return {
        "wall_s": secs,
        "user_s": float(grab("User time (seconds)")),
        "sys_s": float(grab("System time (seconds)")),
        "max_rss_mb": int(grab("Maximum resident set size (kbytes)")) / 1024,
        "exit": int(grab("Exit status") or 0),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--setup", default=None)
    ap.add_argument("--pg-pid-file", default=None)
    ap.add_argument("--note", default="")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = " ".join(a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd)
    runs = []
    for i in range(a.runs):
        if a.setup:
            subprocess.run(["bash", "-c", a.setup], check=True)
        load1 = float(open("/proc/loadavg").read().split()[0])
        s0 = server_cpu(a.pg_pid_file)
        p = subprocess.run(
            ["/usr/bin/time", "-v", "bash", "-o", "pipefail", "-c", cmd],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        s1 = server_cpu(a.pg_pid_file)
        r = parse_time_v(p.stderr)
        r["cpu_s"] = r["user_s"] + r["sys_s"]
        if s0 is not None and s1 is not None:
            r["server_cpu_s"] = round(s1 - s0, 2)
        r["load1_before"] = load1
        r["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        runs.append(r)
        if p.returncode != 0:
            sys.stderr.write(p.stderr[-4000:])
            sys.stderr.write(f"\n{a.name}: run {i + 1} failed (exit {p.returncode})\n")
            sys.exit(1)
        print(f"  {a.name} run {i + 1}: wall {r['wall_s']:.2f}s cpu {r['cpu_s']:.2f}s "
              f"rss {r['max_rss_mb']:.0f}MB server_cpu {r.get('server_cpu_s')} load {load1}", flush=True)
    med = {k: statistics.median(r[k] for r in runs)
           for k in ("wall_s", "cpu_s", "user_s", "sys_s", "max_rss_mb", "server_cpu_s")
           if all(k in r for r in runs)}
    rec = {"name": a.name, "cmd": cmd, "setup": a.setup, "note": a.note, "runs": runs, "median": med}
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"{a.name}: median wall {med['wall_s']:.2f}s cpu {med['cpu_s']:.2f}s "
          f"rss {med['max_rss_mb']:.0f}MB server_cpu {med.get('server_cpu_s')}", flush=True)


if __name__ == "__main__":
    main()
