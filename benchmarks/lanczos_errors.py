"""Eigenvalue errors for a `bench_reference.py --sections lanczos` run whose own reference was stopped.

    OMP_NUM_THREADS=2 python benchmarks/lanczos_errors.py --checkpoint CK --hessian-images 1000 \\
        --hessian-batch 200 --log BENCH_STDERR [--solver full] [--tol 1e-9] [--ncv 300] [--json OUT]

``bench_reference.py`` times both sides first and computes the eigenvalues they are judged against
afterwards (float64 products, ARPACK at tol 1e-9). At full small-cnn width on 1,000 images that last
step takes longer than an hour on two CPU cores. This script computes the same top-``--topk`` of the
same operator (the checkpoint's clean cross-entropy on the same seeded 1,000 test images, cut into the
same batches, float64) with ``--solver`` (default ``full``, Lanczos without restart, whose residuals
certify every pair to ``--tol``). It then reads the eigenvalues each timed side printed in the bench's
log (its ``repeat r/R side: ...s {'eigenvalues': [...]}`` lines) and prints each side's largest
relative error. ``--reference-json`` reuses a reference this script saved (``--json``) for another
log of the same setting.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import platform
import re
import time

import numpy as np
import torch

LINE = re.compile(r"repeat (\d+)/\d+ ([\w.-]+): ([\d.]+)s (\{.*\})\s*$")


def logged_eigenvalues(path: str) -> list[tuple[str, int, float, list[float]]]:
    """``(side, repeat, seconds, eigenvalues)`` for every timed Lanczos repeat in a bench log."""
    out = []
    for line in open(path, encoding="utf-8", errors="replace"):
        m = LINE.search(line)
        if not m:
            continue
        d = ast.literal_eval(m.group(4))
        if "eigenvalues" in d:
            out.append((m.group(2), int(m.group(1)), float(m.group(3)), [float(v) for v in d["eigenvalues"]]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--hessian-images", type=int, default=1000)
    ap.add_argument("--hessian-batch", type=int, default=200)
    ap.add_argument("--topk", type=int, default=20)
    ap.add_argument("--log", required=True, help="the stderr of the bench_reference.py run")
    ap.add_argument("--solver", default="full", choices=["full", "arpack"])
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--ncv", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--reference-json", default=None,
                    help="reuse the reference a run of this script saved with --json (same checkpoint, images, "
                         "batches and topk) instead of computing it again")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    runs = logged_eigenvalues(a.log)
    if not runs:
        raise SystemExit(f"no Lanczos repeat with eigenvalues in {a.log}")
    setting = {"checkpoint": a.checkpoint, "hessian_images": a.hessian_images, "hessian_batch": a.hessian_batch,
               "topk": a.topk}
    if a.reference_json:
        saved = json.load(open(a.reference_json))
        if saved.get("setting") != setting:
            raise SystemExit(f"{a.reference_json} holds the reference of {saved.get('setting')}, not {setting}")
        exact, n_hvp, solver, took = np.asarray(saved["reference"]), saved["reference_hvp"], saved["reference_solver"], None
        print(f"reference from {a.reference_json}: {setting}")
    else:
        from landscape.analysis.estimators import lanczos_topk
        from landscape.analysis.hessian import HessianOperator, make_batches
        from landscape.checkpoint import load_checkpoint
        from landscape.device import tune_cpu_allocator
        tune_cpu_allocator()
        ck = load_checkpoint(a.checkpoint)
        model = ck.model(device="cpu").eval()
        test = ck.load_dataset("test")
        hsub = test.subset(min(a.hessian_images, len(test)), seed=1)      # as bench_reference.py draws it
        x, y = hsub.images.float().div(255), hsub.labels
        op = HessianOperator(model, "clean", make_batches(x, y, a.hessian_batch), dtype="float64")
        t0 = time.perf_counter()
        res = lanczos_topk(op, a.topk, tol=a.tol, ncv=a.ncv, solver=a.solver, check=False)
        took = time.perf_counter() - t0
        exact, n_hvp, solver = np.sort(res.eigenvalues)[::-1], res.n_hvp, res.meta["solver"]
        print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, {platform.machine()}, torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads; {a.checkpoint}: clean CE, {len(y)} test "
              f"images in batches of {a.hessian_batch}, {op.n_params:,} parameters, float64")
    print(f"reference: top-{a.topk} by {solver}, {n_hvp} products{'' if took is None else f', {took:.0f} s'}: "
          f"{[round(float(v), 6) for v in exact]}\n")
    print("| side | repeat | seconds | largest relative error of the top "
          f"{a.topk} |\n|---|---|---|---|")
    rows = []
    for side, rep, sec, vals in runs:
        v = np.sort(np.asarray(vals, dtype=np.float64))[::-1]
        err = float(np.max(np.abs(v - exact) / np.abs(exact)))
        rows.append({"side": side, "repeat": rep, "seconds": sec, "max_rel_err": err})
        print(f"| {side} | {rep} | {sec:.1f} | {err:.1e} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"setting": setting, "reference": [float(v) for v in exact], "reference_hvp": n_hvp,
                       "reference_solver": solver, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
