"""The CPU allocator setting (``landscape.device.tune_cpu_allocator``) against glibc's default, side by side.

    python benchmarks/bench_allocator.py [--repeats 3] [--threads 2] [--workloads train,spgd,surface]

glibc's settings hold for a whole process and cannot be put back exactly, so each measurement runs
in a fresh child process (this script with ``--child``), tuned or not (``LANDSCAPE_MALLOC=1``/``0``),
the two alternating (which goes first swaps every repeat); medians of the repeats and their ratio.
Each child warms up once and then times its workload:

``train``    one epoch of Fast-LS-l0 (the trainer itself, the quick-start small-cnn on a seeded subset of
             ``--examples`` fashion-mnist-mini images, no CO monitor): the trainer's ``epoch_time_s``;
``spgd``     sPGD, k=20, 50 steps, no early stop, on 100 test images (untrained quick-start small-cnn);
``surface``  one grid point of a recomputed-attack surface: ``landscape surface``'s attack (5 steps,
             loss-keeping) re-run on 256 training images at weights moved along a random direction,
             then the loss there (the quick-start small-cnn, untrained).

Every child also prints a checksum of its numbers, which must be equal for both settings.
``--profile`` runs each setting once more under cProfile (the ``spgd`` and ``surface`` workloads) and
prints where the time went: the model's convolutions, ReLUs and backward, the same calls either way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _timed(fn, profile: bool) -> float:
    """Seconds of ``fn()``; with ``profile``, the top calls by own time go to stderr."""
    if not profile:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    import cProfile
    import pstats
    pr = cProfile.Profile()
    t0 = time.perf_counter()
    pr.runcall(fn)
    sec = time.perf_counter() - t0
    pstats.Stats(pr, stream=sys.stderr).sort_stats("tottime").print_stats(6)
    return sec


def child(workload: str, threads: int, examples: int, profile: bool = False) -> dict:
    import torch

    from landscape.device import tune_cpu_allocator
    tuned = tune_cpu_allocator()
    torch.set_num_threads(threads)
    sys.path.insert(0, HERE)
    from common import small_cnn
    if workload == "train":
        from landscape.checkpoint import Checkpoint
        from landscape.training.trainer import train
        times, check = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(2):                    # the first epoch is the warm-up
                train("fast-ls-l0", norm="l0", eps=20, out=f"{tmp}/r{r}", device="cpu", seed=0,
                      max_train_examples=examples, eval_examples=1, clean_examples=1, progress=False,
                      log=lambda *x: None, changes={"epochs": 1, "monitor_examples": 0})
                m = Checkpoint.load(f"{tmp}/r{r}/checkpoint.pt").metrics[-1]
                times.append(m["epoch_time_s"])
                check.append(m["train_loss"])
        return {"tuned": tuned, "seconds": times[-1], "check": check[-1]}
    if workload == "spgd":
        from landscape.attacks import SparsePGD
        model, x, y, _ = small_cnn("test", n=100, width=16, hidden=128)
        model.eval()
        att = SparsePGD(20, 50, early_stop=False, seed=0)
        att(model, x, y)
        out = {}
        sec = _timed(lambda: out.update(xa=att(model, x, y)), profile)
        return {"tuned": tuned, "seconds": sec, "check": float(out["xa"].double().sum())}
    if workload == "surface":
        from landscape.analysis import api
        from landscape.analysis.directions import random_directions
        from landscape.analysis.objective import LossObjective
        from landscape.threat import ThreatModel
        model, x, y, _ = small_cnn("train", n=256, width=16, hidden=128)
        model.eval()
        obj = LossObjective(model, x, y, "recomputed", api.surface_attack(ThreatModel("l0", 20), steps=5, seed=0),
                            batch_size=256, seed=0)
        off = {k: 0.3 * v for k, v in random_directions(model, 1, seed=0)[0].items()}
        obj.evaluate(off)
        out = {}
        sec = _timed(lambda: out.update(loss=obj.evaluate(off)[0]), profile)
        return {"tuned": tuned, "seconds": sec, "check": out["loss"]}
    raise SystemExit(f"unknown workload {workload!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--examples", type=int, default=1024, help="training images of the train workload")
    ap.add_argument("--workloads", default="train,spgd,surface")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of each setting once (spgd, surface)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.threads, a.examples, a.profile)))
        return
    if a.profile:
        for w in [w.strip() for w in a.workloads.split(",") if w.strip() in ("spgd", "surface")]:
            for s in ("0", "1"):
                env = {**os.environ, "LANDSCAPE_MALLOC": s, "OMP_NUM_THREADS": str(a.threads),
                       "LANDSCAPE_NO_PROGRESS": "1"}
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", w, "--threads",
                                      str(a.threads), "--profile"], capture_output=True, text=True, env=env)
                print(f"## {w}, LANDSCAPE_MALLOC={s}\n{out.stderr.strip()}\n")
        return
    import torch
    work = [w.strip() for w in a.workloads.split(",") if w.strip()]
    res = {(w, s): [] for w in work for s in ("0", "1")}
    checks = {}
    for r in range(a.repeats):
        for w in work:
            for s in (("0", "1") if r % 2 == 0 else ("1", "0")):
                env = {**os.environ, "LANDSCAPE_MALLOC": s, "OMP_NUM_THREADS": str(a.threads),
                       "LANDSCAPE_NO_PROGRESS": "1"}
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", w, "--threads",
                                      str(a.threads), "--examples", str(a.examples)],
                                     capture_output=True, text=True, env=env)
                if out.returncode:
                    raise SystemExit(f"{w} (LANDSCAPE_MALLOC={s}) failed: {out.stderr.strip().splitlines()[-1:]}")
                d = json.loads(out.stdout.strip().splitlines()[-1])
                res[(w, s)].append(d["seconds"])
                checks.setdefault(w, set()).add(round(d["check"], 10))
                print(f"  repeat {r + 1} {w} LANDSCAPE_MALLOC={s} (tuned: {d['tuned']}): {d['seconds']:.3f} s",
                      file=sys.stderr, flush=True)
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {a.threads} threads, {a.repeats} repeats "
          f"(fresh process each)\n")
    print("| workload | glibc default (s), each repeat | tuned (s), each repeat | median default / median tuned | "
          "same numbers |\n|---|---|---|---|---|")
    for w in work:
        d, t = res[(w, "0")], res[(w, "1")]
        print(f"| {w} | {', '.join(f'{v:.3f}' for v in d)} | {', '.join(f'{v:.3f}' for v in t)} | "
              f"**{statistics.median(d) / statistics.median(t):.2f}x** | {'yes' if len(checks[w]) == 1 else 'NO'} |")


if __name__ == "__main__":
    main()
