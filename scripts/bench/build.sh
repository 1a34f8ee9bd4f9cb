#!/usr/bin/env bash
# Release build of lethe and the bench binaries, copied to $BENCH_DIR/bin so a
# run measures one fixed build even while the shared target dir moves on.
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$BENCH_DIR/bin"
cd "$REPO_ROOT"
cargo build --release --bin lethe
cp "$CARGO_TARGET_DIR/release/lethe" "$BENCH_DIR/bin/lethe"
cargo bench --no-run --message-format=json --bench filter --bench erasure 2>/dev/null \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bench" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$BENCH_DIR/bin/$name-bench"; done
git rev-parse --short HEAD > "$BENCH_DIR/bin/commit"
git status --porcelain --untracked-files=no | grep -q . && echo "(plus uncommitted changes in the tree)" >> "$BENCH_DIR/bin/commit"
ls -l "$BENCH_DIR/bin"
