# Summarizes filter-ab3-*.txt (d066e25 vs c534317, six pairs); run from this directory.
import re,statistics as st
T=["users","orders","sessions","order_items","comments"]
R=range(1,7)
def parse(p):
    s=open(p).read(); r={}
    for m in re.finditer(r"^filter/(\w+)\s+time:.*?\n\s+thrpt:\s+\[([\d.]+) (GiB|MiB)/s ([\d.]+) (GiB|MiB)/s ([\d.]+) (GiB|MiB)/s\]",s,re.M):
        v=float(m.group(4)); gib=v if m.group(5)=="GiB" else v/1024
        r[m.group(1)]=gib*(1<<30)/1e9
    return r,re.search(r"load: ([\d.]+)",s).group(1)
D={(b,i):parse(f"filter-ab3-{b}-run{i}.txt") for b in ("d066e25","c534317") for i in R}
print("GB/s = 10^9 bytes per second of benchmark-thread CPU time (criterion point estimate, 64 MiB synthetic rows, 10M-id list)")
print("pairs 1-3: d066e25 first; 4-6: c534317 first")
print("| pair | "+" | ".join(T)+" | load1 at start (old/cur) |")
print("|---|"+"---:|"*5+"---|")
for i in R:
    o,c=D[("d066e25",i)][0],D[("c534317",i)][0]
    print(f"| {i} | "+" | ".join(f"{o[t]:.2f} / {c[t]:.2f} ({c[t]/o[t]:.2f})" for t in T)+f" | {D[('d066e25',i)][1]} / {D[('c534317',i)][1]} |")
print("| **median** | "+" | ".join(f"**{st.median(D[('d066e25',i)][0][t] for i in R):.2f} / {st.median(D[('c534317',i)][0][t] for i in R):.2f}**" for t in T)+" | |")
print("| median of the 6 ratios | "+" | ".join(f"**{st.median(D[('c534317',i)][0][t]/D[('d066e25',i)][0][t] for i in R):.3f}** ({sum(D[('c534317',i)][0][t]<D[('d066e25',i)][0][t] for i in R)}/6 slower)" for t in T)+" | |")
print("| slowest run | "+" | ".join(f"{min(D[('d066e25',i)][0][t] for i in R):.2f} / {min(D[('c534317',i)][0][t] for i in R):.2f}" for t in T)+" | |")
