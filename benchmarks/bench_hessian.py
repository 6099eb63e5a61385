"""Top-k Hessian eigenvalues: Lanczos (ARPACK) against PyHessian's power iteration, side by side.

Same checkpoint, same fixed sample, same loss, same operator (HVPs counted inside it). Accuracy is
the largest relative error of the top-k eigenvalues against a tight reference (Lanczos, tol 1e-7,
not timed). Trains a small-cnn briefly on fashion-mnist-mini with plain torch code when no
checkpoint is given.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_hessian.py --n-examples 1000 --topk 20
"""

from __future__ import annotations

import json
import platform
import time

import numpy as np
import torch


def train_small_cnn(width: int, hidden: int, epochs: int, seed: int):
    from common import fit, small_cnn
    model, x, y, kw = small_cnn("train", seed=seed, width=width, hidden=hidden)
    return fit(model, x, y, torch.optim.Adam(model.parameters(), lr=2e-3), epochs), kw


def main():
    from common import options
    a = options(checkpoint=None, n_examples=1000, batch_size=250, topk=20, width=32, hidden=200, epochs=2,
                lanczos_tol=1e-3, power_tol=1e-3, power_maxiter=100, seed=0,
                out=(None, "write the numbers as JSON here"))

    from landscape.analysis.estimators import lanczos_topk, power_iteration_pyhessian
    from landscape.analysis.hessian import hessian_operator
    from landscape.checkpoint import Checkpoint
    from landscape.data import load_dataset

    t0 = time.perf_counter()
    if a.checkpoint:
        ck = Checkpoint.load(a.checkpoint)
        model, test = ck.model(), ck.load_dataset("test")
    else:
        model, _ = train_small_cnn(a.width, a.hidden, a.epochs, a.seed)
        test = load_dataset("fashion-mnist-mini", "test")
    t_train = time.perf_counter() - t0
    sub = test.subset(a.n_examples, seed=a.seed)
    x, y = sub.images.float() / 255, sub.labels
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    op = hessian_operator(model, x, y, loss="clean", batch_size=a.batch_size, dtype="float32")
    print(f"model: {op.n_params} parameters, clean test accuracy on the sample {acc:.3f}, "
          f"training {t_train:.0f} s", flush=True)

    op.reset_counters()
    ref = lanczos_topk(op, a.topk, tol=1e-7, seed=a.seed + 1, check=False, progress=False)
    ref_hvp, ref_time = op.n_hvp, op.hvp_time
    print(f"reference (lanczos tol 1e-7): {ref_hvp} HVPs, {ref_time:.1f} s", flush=True)

    def err(lam):
        lam = np.sort(np.asarray(lam))[::-1]
        return float(np.max(np.abs(lam - ref.eigenvalues) / np.abs(ref.eigenvalues)))

    rows = {}
    for name, fn in (("lanczos", lambda: lanczos_topk(op, a.topk, tol=a.lanczos_tol, seed=a.seed, progress=False)),
                     ("pyhessian", lambda: power_iteration_pyhessian(op, a.topk, tol=a.power_tol,
                                                                     maxiter=a.power_maxiter, seed=a.seed,
                                                                     progress=False))):
        op.reset_counters()
        r = fn()
        rows[name] = {"n_hvp": r.n_hvp, "time_s": r.meta["solve_time_s"], "max_rel_err": err(r.eigenvalues),
                      "converged": int(r.converged.sum()), "lambda_max": float(r.eigenvalues[0]),
                      "lambda_k": float(r.eigenvalues[-1])}
        print(name, rows[name], flush=True)
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
           "torch": torch.__version__, "args": vars(a), "n_params": op.n_params, "accuracy": acc,
           "reference_eigenvalues": ref.eigenvalues.tolist(), "reference_n_hvp": ref_hvp, "results": rows,
           "hvp_ratio": rows["pyhessian"]["n_hvp"] / rows["lanczos"]["n_hvp"],
           "time_ratio": rows["pyhessian"]["time_s"] / rows["lanczos"]["time_s"]}
    print(f"pyhessian / lanczos: {out['hvp_ratio']:.1f}x HVPs, {out['time_ratio']:.1f}x time", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
