#!/usr/bin/env bash
# When should soft labels start on an 8-epoch fmnist run? 1-step sTRADES (T) + soft labels + noise
# (the Fast-LS-l0 recipe) with sat_start 0 and 4 (the default since recipe version 2: half the epochs),
# three seeds each, sparse-AutoAttack at the reproduction's budget on 200 test images.
# The numbers in README/RESULTS for sat_start 0 vs 1 were measured with recipe version 1 (commit 3383199).
# Usage: bash benchmarks/sat_start_seeds.sh [OUT=runs/sat_start]   (about 12 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/sat_start}
LS=${LANDSCAPE:-landscape}
export LANDSCAPE_NO_PROGRESS=1
mkdir -p "$OUT"
for seed in 0 1 2; do
  for ss in 0 4; do
    run=$OUT/ss$ss-seed$seed
    [ -f "$run/saa.json" ] && continue
    $LS train --preset strades-t-1step --norm l0 --eps 20 --epochs 8 --out "$run" --eval-examples 300 \
      --seed $seed --set soft_labels=true --set noise=true --set sat_start=$ss > "$run.log" 2>&1
    $LS eval "$run/checkpoint.pt" --attack saa --steps 300 --queries 1000 --n-examples 200 \
      --out "$run/saa" >> "$run.log" 2>&1
  done
done
"${PYTHON:-python}" - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| sat_start | seed 0 | seed 1 | seed 2 | median |")
print("|---|---|---|---|---|")
for ss in (0, 4):
    accs = []
    for seed in (0, 1, 2):
        meta = json.loads((out / f"ss{ss}-seed{seed}" / "saa.json").read_text())["meta"]
        accs.append(100 * meta["robust_accuracy"])
    print(f"| {ss} | " + " | ".join(f"{a:.1f}" for a in accs) + f" | {statistics.median(accs):.1f} |")
PY
