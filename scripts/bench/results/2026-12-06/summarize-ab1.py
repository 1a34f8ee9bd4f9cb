# Summarizes filter-ab1-*.txt (d066e25 = old, 3793cde = new); run from this directory.
import re,statistics as st,sys
T=["users","orders","sessions","order_items","comments"]
R=range(1,13)
def parse(p):
    s=open(p).read()
    r={}
    for m in re.finditer(r"^filter/(\w+)\s+time:.*?\n\s+thrpt:\s+\[([\d.]+) (GiB|MiB)/s ([\d.]+) (GiB|MiB)/s ([\d.]+) (GiB|MiB)/s\]",s,re.M):
        v=float(m.group(4)); u=m.group(5)
        gib = v if u=="GiB" else v/1024
        r[m.group(1)]=gib*(1<<30)/1e9  # GB/s
    load=re.search(r"load: ([\d.]+)",s).group(1)
    return r,load
N={"old":"d066e25","new":"3793cde"}
D={(b,i):parse(f"filter-ab1-{N[b]}-run{i}.txt") for b in ("old","new") for i in R}
print("GB/s = 10^9 bytes per second of benchmark-thread CPU time (criterion point estimate, 64 MiB synthetic rows, 10M-id list)")
print("runs 1-6: old then new; runs 7-12: new then old")
print("| pair | build | " + " | ".join(T) + " | load1 at start |")
for i in R:
    for b in (("old","new") if i<=6 else ("new","old")):
        r,l=D[(b,i)]
        print(f"| {i} | {b} | "+" | ".join(f"{r[t]:.3f}" for t in T)+f" | {l} |")
med={b:{t:st.median(D[(b,i)][0][t] for i in R) for t in T} for b in ("old","new")}
for b in ("old","new"):
    print(f"median {b}: "+" ".join(f"{t}={med[b][t]:.3f}" for t in T))
print("new/old of medians: "+" ".join(f"{t}={med['new'][t]/med['old'][t]:.3f}" for t in T))
print("per-pair new/old ratios (pairs 1-12), median, pairs with new slower:")
for t in T:
    rs=[D[('new',i)][0][t]/D[('old',i)][0][t] for i in R]
    print(f"  {t}: "+" ".join(f"{x:.3f}" for x in rs)+f"  median {st.median(rs):.3f}  new<old in {sum(x<1 for x in rs)}/12")
for half,rr in (("1-6",range(1,7)),("7-12",range(7,13))):
    print(f"median per-pair ratio, pairs {half}: "+" ".join(f"{t}={st.median(D[('new',i)][0][t]/D[('old',i)][0][t] for i in rr):.3f}" for t in T))
print("best run per table: old "+" ".join(f"{t}={max(D[('old',i)][0][t] for i in R):.3f}" for t in T))
print("                    new "+" ".join(f"{t}={max(D[('new',i)][0][t] for i in R):.3f}" for t in T))
print("min per table:      old "+" ".join(f"{t}={min(D[('old',i)][0][t] for i in R):.3f}" for t in T))
print("                    new "+" ".join(f"{t}={min(D[('new',i)][0][t] for i in R):.3f}" for t in T))
