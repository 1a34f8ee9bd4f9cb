# Summarizes filter-ab2-*.txt: python3 summarize-ab2.py 1 12 (rounds); run from this directory.
import re,statistics as st
T=["users","orders","sessions","order_items","comments"]
import sys
R=range(int(sys.argv[1]),int(sys.argv[2])+1)
orders=["old head fix2","head fix2 old","fix2 old head","old head fix2","head fix2 old","fix2 old head"]
name={"old":"d066e25","head":"950aa27","fix2":"950aa27+fix"}
def parse(p):
    s=open(p).read(); r={}
    for m in re.finditer(r"^filter/(\w+)\s+time:.*?\n\s+thrpt:\s+\[([\d.]+) (GiB|MiB)/s ([\d.]+) (GiB|MiB)/s ([\d.]+) (GiB|MiB)/s\]",s,re.M):
        v=float(m.group(4)); gib=v if m.group(5)=="GiB" else v/1024
        r[m.group(1)]=gib*(1<<30)/1e9
    return r,re.search(r"load: ([\d.]+)",s).group(1)
F={"old":"d066e25","head":"950aa27","fix2":"950aa27-fix"}
D={(b,i):parse(f"filter-ab2-{F[b]}-round{i}.txt") for b in name for i in R}
print("GB/s = 10^9 bytes per second of benchmark-thread CPU time (criterion point estimate, 64 MiB synthetic rows, 10M-id list)")
print("| round | build | "+" | ".join(T)+" | load1 at start |")
for i in R:
    for b in orders[(i-1)%6].split():
        r,l=D[(b,i)]
        print(f"| {i} | {name[b]} | "+" | ".join(f"{r[t]:.3f}" for t in T)+f" | {l} |")
med={b:{t:st.median(D[(b,i)][0][t] for i in R) for t in T} for b in name}
for b in name: print(f"median {name[b]}: "+" ".join(f"{t}={med[b][t]:.3f}" for t in T))
for b in ("head","fix2"):
    print(f"{name[b]}/d066e25 of medians: "+" ".join(f"{t}={med[b][t]/med['old'][t]:.3f}" for t in T))
    for t in T:
        rs=[D[(b,i)][0][t]/D[('old',i)][0][t] for i in R]
        print(f"   {t}: per-round "+" ".join(f"{x:.3f}" for x in rs)+f"  median {st.median(rs):.3f}  slower in {sum(x<1 for x in rs)}/{len(R)}")
for b in name: print(f"min {name[b]}: "+" ".join(f"{t}={min(D[(b,i)][0][t] for i in R):.3f}" for t in T))
