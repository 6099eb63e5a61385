"""Wall time of ``landscape reproduce --quick`` (all eight recipes) at one and at N jobs, interleaved.

    python benchmarks/bench_quick.py [--jobs 1,2] [--repeats 2]

Each repeat runs the README's command, ``landscape reproduce --quick --out DIR [--jobs J]``, once per
job count, in a fresh folder, one after another (J=1, J=2, J=1, J=2, ...), and prints the wall times,
their medians and the 1-minute load average at each start. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", default="1,2", help="job counts to compare, comma-separated")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    jobs = [int(j) for j in args.jobs.split(",")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), LANDSCAPE_NO_PROGRESS="1")
    times: dict[int, list[float]] = {j: [] for j in jobs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for j in jobs:
                out = Path(tmp) / f"r{r}-j{j}"
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                p = subprocess.run([sys.executable, "-m", "analysis_cli", "reproduce", "--quick", "--out", str(out),
                                    "--jobs", str(j)], env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if p.returncode:
                    sys.exit(f"--jobs {j} failed (exit {p.returncode}):\n{p.stderr[-2000:]}")
                times[j].append(wall)
                print(f"repeat {r + 1}, --jobs {j}: {wall:.1f} s (load {load:.2f} at the start)", flush=True)
    print("\n| jobs | wall (s), each repeat | median |\n|---|---|---|")
    for j in jobs:
        print(f"| {j} | {', '.join(f'{t:.1f}' for t in times[j])} | **{statistics.median(times[j]):.1f}** |")
    if len(jobs) > 1:
        base = statistics.median(times[jobs[0]])
        for j in jobs[1:]:
            print(f"\n--jobs {j} against --jobs {jobs[0]}: {base / statistics.median(times[j]):.2f}x faster")


if __name__ == "__main__":
    main()
