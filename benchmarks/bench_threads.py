"""Wall time of landscape commands at several torch thread counts, interleaved, medians.

    python benchmarks/bench_threads.py CKPT [--repeats 3] [--threads 1,2,auto]

Each round runs every workload once at every thread setting (in a rotated order, so that a change
in the machine's load hits every setting alike); the table gives the median wall time of each and
the 1-minute load average seen when the runs started. ``auto`` leaves the thread count to
``landscape.threads.default_threads`` (free cores); a number sets ``LANDSCAPE_THREADS``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def workloads(ckpt: str, tmp: str) -> dict[str, list[str]]:
    return {
        "train 1 epoch (512 examples)": ["train", "--norm", "l0", "--eps", "20", "--epochs", "1",
                                         "--max-train-examples", "512", "--eval-examples", "8",
                                         "--set", "monitor_examples=0", "--out", f"{tmp}/train"],
        "hessian top-5 (100 examples)": ["hessian", ckpt, "--topk", "5", "--n-examples", "100",
                                         "--attack-steps", "20", "--attack-queries", "50", "--out", f"{tmp}/h"],
        "interp, no strong attack (300 examples)": ["interp", ckpt, "--no-strong", "--n-examples", "300",
                                                    "--out", f"{tmp}/i.png"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2,auto")
    ap.add_argument("--only", default=None, help="substring of the workloads to run")
    args = ap.parse_args()
    settings = args.threads.split(",")
    times: dict = {}
    loads: list = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = workloads(args.checkpoint, tmp)
        if args.only:
            jobs = {k: v for k, v in jobs.items() if args.only in k}
        for r in range(args.repeats):
            order = settings[r % len(settings):] + settings[:r % len(settings)]
            for name, cmd in jobs.items():
                for s in order:
                    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "LANDSCAPE_THREADS")}
                    env["LANDSCAPE_NO_PROGRESS"] = "1"
                    if s != "auto":
                        env["LANDSCAPE_THREADS"] = s
                    subprocess.run(["rm", "-rf", f"{tmp}/train"])
                    loads.append(os.getloadavg()[0])
                    t0 = time.perf_counter()
                    p = subprocess.run([sys.executable, "-m", "analysis_cli", *cmd], env=env,
                                       capture_output=True, text=True)
                    dt = time.perf_counter() - t0
                    if p.returncode:
                        sys.exit(f"{name} at {s} threads failed:\n{p.stderr[-2000:]}")
                    times.setdefault(name, {}).setdefault(s, []).append(dt)
                    print(f"round {r + 1} {name:34s} threads={s:4s} {dt:7.1f} s  load {loads[-1]:.1f}",
                          file=sys.stderr, flush=True)
    head = "| workload | " + " | ".join(f"threads={s}" for s in settings) + " |"
    print(head)
    print("|---" * (len(settings) + 1) + "|")
    for name, by in times.items():
        cells = [f"{statistics.median(by[s]):.1f} s" for s in settings]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n{args.repeats} rounds; medians; 1-minute load average at the starts: "
          f"median {statistics.median(loads):.1f}, range {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
