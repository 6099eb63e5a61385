"""landscape against the reference implementations, side by side in one process.

    SPGD_REPO=/path/to/CityU-MLO/sPGD python benchmarks/bench_reference.py [--checkpoint CK] [--full]

Every section runs both sides on the same model and the same images (or batches), interleaved
(ours, reference, ours, reference, ...), ``--repeats`` times, and prints the median times, their
ratio (reference / landscape: above 1 means landscape is faster) and an accuracy column beside every
time (robust accuracy after the same validity check for attacks, eigenvalue or product error for the
Hessian, loss and attack success for a training step):

``spgd``     sparse-PGD, unprojected and projected gradient, vs the authors' ``SparsePGD``
             (``autoattack/spgd.py``; each side seeded with the repeat number).
``saa``      the sparse-AutoAttack cascade vs the authors' (``autoattack/saa.py``: projected stage,
             unprojected stage, Sparse-RS with cross-entropy; the same budgets).
``lanczos``  ``lanczos_topk(op, 20)``, and with ``precision="bfloat16"`` (a row of its own), vs PyHessian
             ``hessian(model, CE, dataloader).eigenvalues(top_n=20)`` on the same batches (``hessian(model, CE, data=(x, y))``, its single-batch mode that
             keeps the gradient graph, when the sample is one batch); error = largest relative error
             of the top-20 against a tight float64 Lanczos run (untimed, ``--reference-dtype/-tol``).
``hvp``      one product of ``HessianOperator`` (graphs cached after the first product, the default;
             and ``cache=False``) vs the retained-graph anchor (per-batch gradient graphs built once,
             then one double backward per batch); error = max |difference| / max |anchor|.
``train``    one Fast-LS-l0 step of the trainer's pieces (``nspgd1`` attack, TRADES loss, soft labels)
             vs a plain PyTorch step with the authors' one-step ``SparsePGD`` (``t=1``) and the
             TRADES loss, from the same weights on the same batch.

``--precision bfloat16`` (or ``both``: a row for each, interleaved) runs our sPGD's search, alone and
in sAA, under bf16 autocast (verdicts near the boundary settled in float32; the accuracy column is float32).

The authors' code is imported at run time from ``$SPGD_REPO`` (or ``--spgd-repo``), never copied;
PyHessian is the installed package. Without ``--checkpoint`` a small Fast-LS-l0 model is trained
first (``--train-epochs``, small-cnn on the embedded Fashion-MNIST subset; a few minutes on 2 cores).
Default sizes are small so that the whole run takes minutes on 2 CPU cores; ``--full`` sets the
issue's sizes (1,000 images, 300 sPGD steps, 1,000 Sparse-RS queries, 1,000 Hessian images).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from references import check_l0, load_spgd_reference, reference_saa  # noqa: E402

FULL = {"n_images": 1000, "steps": 300, "queries": 1000, "hessian_images": 1000, "repeats": 3}


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev):
    _sync(dev)
    t0 = time.perf_counter()
    out = fn()
    _sync(dev)
    return time.perf_counter() - t0, out


def interleave(sides: dict, repeats: int, dev, log, warmup: bool = False) -> dict:
    """Run every side once per repeat, in turn; ``sides[name] = fn(repeat) -> accuracy dict``.
    ``warmup``: one untimed call of each side first (for short measurements)."""
    res = {nm: {"seconds": [], "acc": []} for nm in sides}
    if warmup:
        for fn in sides.values():
            fn(repeats)
    for r in range(repeats):
        for nm, fn in sides.items():
            sec, acc = timed(lambda: fn(r), dev)
            res[nm]["seconds"].append(sec)
            res[nm]["acc"].append(acc)
            log(f"    repeat {r + 1}/{repeats} {nm}: {sec:.2f}s {acc}")
    return res


def robust(model, x, y, x_adv, k) -> float:
    check_l0(x, x_adv, k)
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


# ------------------------------------------------------------------------------------ sections
def _precisions(a) -> list[str]:
    """Our sides' sPGD search precisions: ``--precision`` float32, bfloat16, or both (interleaved)."""
    return ["float32", "bfloat16"] if a.precision == "both" else [a.precision]


def _ours(prec: str) -> str:
    return "landscape" if prec == "float32" else f"landscape-{prec}"


def _compare(ctx, ours, theirs, name, setting):
    """Our side in each ``--precision`` (``ours(prec)`` gives its runner) and the reference's,
    interleaved; a row per precision."""
    precs = _precisions(ctx["args"])
    sides = {_ours(p): ours(p) for p in precs}
    sides["reference"] = theirs
    res = interleave(sides, ctx["args"].repeats, ctx["dev"], ctx["log"])
    return [_attack_row(name + ("" if p == "float32" else f", {p} search"), res, len(ctx["y"]), setting,
                        ours=_ours(p)) for p in precs]


def section_spgd(ctx, projected: bool):
    from landscape.attacks import SparsePGD
    model, x, y, k, a = ctx["model"], ctx["x"], ctx["y"], ctx["k"], ctx["args"]
    ref = ctx["ref"]

    def ours(prec):
        def run(r):
            xa = SparsePGD(k, a.steps, projected=projected, seed=r, precision=prec)(model, x, y)
            return {"robust": robust(model, x, y, xa, k)}
        return run

    def theirs(r):
        torch.manual_seed(r)
        xa = ref.SparsePGD(model, epsilon=1.0, k=k, t=a.steps, unprojected_gradient=not projected)(x, y)[0]
        model.zero_grad(set_to_none=True)
        return {"robust": robust(model, x, y, xa.detach(), k)}

    return _compare(ctx, ours, theirs, f"sPGD {'projected' if projected else 'unprojected'}",
                    f"k={k}, {a.steps} steps, {len(y)} images")


def section_saa(ctx):
    from landscape.attacks import SparseAutoAttack
    model, x, y, k, a = ctx["model"], ctx["x"], ctx["y"], ctx["k"], ctx["args"]
    ref = ctx["ref"]

    def ours(prec):
        def run(r):
            res = SparseAutoAttack(k, a.steps, a.queries, seed=r, precision=prec).run(model, x, y)
            acc = robust(model, x, y, res.x_adv, k)
            return {"robust": float(res.survivors[-1].float().mean()), "robust_recheck": acc}
        return run

    def theirs(r):
        torch.manual_seed(r)
        surv, _ = reference_saa(ref, model, x, y, k=k, steps=a.steps, n_queries=a.queries,
                                batch_size=a.batch_size)
        model.zero_grad(set_to_none=True)
        return {"robust": float(surv[-1].float().mean())}

    return _compare(ctx, ours, theirs, "sAA cascade",
                    f"k={k}, {a.steps} steps per sPGD stage, {a.queries} RS queries, {len(y)} images")


def _attack_row(name, res, n, setting, ours="landscape"):
    t_o = statistics.median(res[ours]["seconds"])
    t_r = statistics.median(res["reference"]["seconds"])
    acc_o = [d["robust"] for d in res[ours]["acc"]]
    acc_r = [d["robust"] for d in res["reference"]["acc"]]
    return {"section": name, "setting": setting,
            "landscape_s": t_o, "reference_s": t_r, "ratio": t_r / t_o,
            "landscape_img_per_s": n / t_o, "reference_img_per_s": n / t_r,
            "landscape_acc": acc_o, "reference_acc": acc_r,
            "accuracy": f"robust {100 * np.mean(acc_o):.1f}% vs {100 * np.mean(acc_r):.1f}% "
                        f"(per repeat {[round(100 * v, 1) for v in acc_o]} vs {[round(100 * v, 1) for v in acc_r]})",
            "seconds_all": {k: v["seconds"] for k, v in res.items()}}


def _hessian_data(ctx):
    from landscape.analysis.hessian import make_batches
    a = ctx["args"]
    xh, yh = ctx["xh"], ctx["yh"]
    return make_batches(xh, yh, a.hessian_batch)


def section_lanczos(ctx):
    from pyhessian import hessian as PyHessian

    from landscape.analysis.estimators import lanczos_topk
    from landscape.analysis.hessian import HessianOperator
    a, dev, model = ctx["args"], ctx["dev"], ctx["model"]
    batches = _hessian_data(ctx)
    topn = a.topk

    def errors(vals, exact):
        v = np.sort(np.asarray(vals, dtype=np.float64))[::-1]
        return float(np.max(np.abs(v - exact) / np.abs(exact)))

    def ours(solver, precision, rewrites, tol):
        def run(r):
            op = HessianOperator(model, "clean", batches, dtype="float32", rewrites=rewrites)
            res = lanczos_topk(op, topn, tol=tol, ncv=a.lanczos_ncv, seed=r, check=False, progress=False,
                               solver=solver, precision=precision)
            hvp = op.n_hvp if precision == "float32" else \
                f"{res.meta['n_hvp_bfloat16']} bf16 + {res.meta['n_hvp_float32']} float32"
            return {"eigenvalues": [float(v) for v in res.eigenvalues], "hvp": hvp,
                    "solver": res.meta["solver"] + ("" if precision == "float32" else ", bf16 products")}
        return run

    def theirs(r):
        torch.manual_seed(r)
        m = model.eval()
        count = [0]
        if len(batches) == 1:
            # one batch: PyHessian's own single-batch mode (``data=``), which builds the gradient
            # graph once and pays one double backward per product (the retained-graph anchor)
            ph_mod = sys.modules["pyhessian.hessian"]     # the module (the package's ``hessian`` is the class)
            orig = ph_mod.hessian_vector_product

            def counted(*args):
                count[0] += 1
                return orig(*args)
            ph_mod.hessian_vector_product = counted
            try:
                h = PyHessian(m, torch.nn.CrossEntropyLoss(), data=(batches[0].x, batches[0].y),
                              cuda=dev.type == "cuda")
                vals, _ = h.eigenvalues(top_n=topn)
            finally:
                ph_mod.hessian_vector_product = orig
        else:
            loader = [(b.x, b.y) for b in batches]
            h = PyHessian(m, torch.nn.CrossEntropyLoss(), dataloader=loader, cuda=dev.type == "cuda")
            orig = h.dataloader_hv_product

            def counted(v):
                count[0] += 1
                return orig(v)
            h.dataloader_hv_product = counted
            vals, _ = h.eigenvalues(top_n=topn)
        m.zero_grad(set_to_none=True)
        return {"eigenvalues": [float(v) for v in vals], "hvp": count[0]}

    solvers = [v.strip() for v in a.lanczos_solver.split(",") if v.strip()]
    precisions = [v.strip() for v in a.lanczos_precision.split(",") if v.strip()]
    tols = [None] if a.lanczos_tol is None else [float(t) for t in a.lanczos_tol.split(",") if t.strip()]
    sides = {_lanczos_side(v, p, rw) + ("" if len(tols) == 1 else f"-tol{t:g}"): ours(v, p, _REWRITES[rw], t)
             for rw in _rewrite_options(a) for v in solvers for p in precisions for t in tols}
    res = interleave({**sides, "reference": theirs}, a.lanczos_repeats, dev, ctx["log"])
    # the eigenvalues both sides are judged against: a tight Lanczos run, untimed and after the timed
    # runs (so that their numbers are out first when it is long)
    ctx["log"](f"    reference eigenvalues: {a.reference_dtype} Lanczos, tol {a.reference_tol:g} (untimed)")
    ref_op = HessianOperator(model, "clean", batches, dtype=a.reference_dtype)
    exact = np.sort(lanczos_topk(ref_op, topn, tol=a.reference_tol, check=False, progress=False,
                                 solver="arpack").eigenvalues)[::-1]
    del ref_op
    ctx["log"](f"    reference eigenvalues: {[round(float(v), 4) for v in exact]}")
    for side in res.values():
        for d in side["acc"]:
            d["max_rel_err"] = errors(d["eigenvalues"], exact)
    t_r = statistics.median(res["reference"]["seconds"])
    e_r = max(d["max_rel_err"] for d in res["reference"]["acc"])
    h_r = statistics.median(d["hvp"] for d in res["reference"]["acc"])
    rows = []
    for side in sides:
        t_o = statistics.median(res[side]["seconds"])
        e_o = max(d["max_rel_err"] for d in res[side]["acc"])
        h_o = _median_count([d["hvp"] for d in res[side]["acc"]])
        used = sorted({d["solver"] for d in res[side]["acc"]})
        rows.append({"section": f"Lanczos top-{topn} ({side}: {', '.join(used)}) vs PyHessian", "setting": _hsetting(ctx),
                     "landscape_s": t_o, "reference_s": t_r, "ratio": t_r / t_o,
                     "accuracy": f"max rel. error {e_o:.1e} ({h_o} HVPs) vs {e_r:.1e} ({h_r:.0f} HVPs); "
                                 f"λ1 {exact[0]:.4g}",
                     "seconds_all": {k: res[k]["seconds"] for k in (side, "reference")}})
    return rows


def _lanczos_side(solver: str, precision: str = "float32", rewrites: str = "auto") -> str:
    name = "landscape" if solver == "auto" else f"landscape-{solver}"
    name = name if precision == "float32" else f"{name}-bf16"
    return name if rewrites == "auto" else f"{name}-plain-model"


#: ``--hessian-rewrites`` values: the operator's default rewritten copy, or the plain model
_REWRITES = {"auto": "auto", "none": ()}


def _rewrite_options(a) -> list[str]:
    opts = [v.strip() for v in a.hessian_rewrites.split(",") if v.strip()]
    bad = [v for v in opts if v not in _REWRITES]
    if bad or not opts:
        raise SystemExit(f"--hessian-rewrites takes auto and/or none, not {a.hessian_rewrites!r}")
    return opts


def _median_count(counts: list):
    """The median product count (a number), or the first repeat's split count ("131 bf16 + 20 float32")."""
    return f"{statistics.median(counts):.0f}" if all(isinstance(c, int) for c in counts) else counts[0]


def _hsetting(ctx):
    n_par = sum(p.numel() for p in ctx["model"].parameters())
    return f"clean CE, {len(ctx['yh'])} images in batches of {ctx['args'].hessian_batch}, {n_par:,} parameters"


def section_hvp(ctx):
    a, dev, model = ctx["args"], ctx["dev"], ctx["model"]
    batches = _hessian_data(ctx)
    params = [p for p in model.parameters() if p.requires_grad]
    n_total = sum(b.n for b in batches)
    g = torch.Generator().manual_seed(0)
    vecs = [torch.randn(sum(p.numel() for p in params), generator=g).to(dev) for _ in range(a.hessian_repeats + 1)]

    # the anchor: each batch's gradient graph built once (untimed, as the cached operator's first product)
    anchor_graphs = []
    model.eval()
    for b in batches:
        loss = F.cross_entropy(model(b.x), b.y)
        anchor_graphs.append(torch.autograd.grad(loss, params, create_graph=True))

    def anchor_hvp(v):
        vs = [c.view_as(p) for c, p in zip(torch.split(v, [p.numel() for p in params]), params)]
        out = torch.zeros_like(v)
        for b, gr in zip(batches, anchor_graphs):
            hv = torch.autograd.grad(gr, params, grad_outputs=vs, retain_graph=True)
            out.add_(torch.cat([h.reshape(-1) for h in hv]), alpha=b.n)
        return out / n_total

    results = {}
    rows = []
    for rw in _rewrite_options(a):
        rows.append(_hvp_row(ctx, batches, vecs, anchor_hvp, results, rw))
    anchor_graphs.clear()
    return rows


def _hvp_row(ctx, batches, vecs, anchor_hvp, results, rw):
    from landscape.analysis.hessian import HessianOperator
    a, dev, model = ctx["args"], ctx["dev"], ctx["model"]
    results.clear()
    cached = HessianOperator(model, "clean", batches, dtype="float32", rewrites=_REWRITES[rw])
    cached.hvp(vecs[-1])                      # builds the graphs (as the anchor's were built above)
    plain = HessianOperator(model, "clean", batches, dtype="float32", cache=False, rewrites=_REWRITES[rw])

    def mk(fn, name):
        def run(r):
            out = fn(vecs[r])
            results.setdefault(name, []).append(out)
            return {}
        return run

    res = interleave({"landscape": mk(cached.hvp, "landscape"), "anchor": mk(anchor_hvp, "anchor"),
                      "landscape-nocache": mk(plain.hvp, "plain")}, a.hessian_repeats, dev, ctx["log"], warmup=True)
    err = max(float((o - r).abs().max() / r.abs().max()) for o, r in zip(results["landscape"], results["anchor"]))
    err_p = max(float((o - r).abs().max() / r.abs().max()) for o, r in zip(results["plain"], results["anchor"]))
    t = {k: statistics.median(v["seconds"]) for k, v in res.items()}
    cached.clear_cache()
    copy_text = "the operator's rewritten copy" if cached.rewrites else "the plain model"
    return {"section": f"one HVP vs retained-graph anchor ({copy_text})", "setting": _hsetting(ctx) + f", graph cache {cached.cache_bytes / 2**20:.0f} MiB",
            "landscape_s": t["landscape"], "reference_s": t["anchor"], "ratio": t["anchor"] / t["landscape"],
            "accuracy": f"rel. difference {err:.1e}; without the cache {t['landscape-nocache']:.3f}s "
                        f"({t['anchor'] / t['landscape-nocache']:.2f}x, rel. difference {err_p:.1e})",
            "seconds_all": {k: v["seconds"] for k, v in res.items()}}


def section_train(ctx):
    from landscape.attacks.base import model_mode
    from landscape.training import SoftLabels, get_preset
    from landscape.training.losses import PairForward, loss_from_logits
    from landscape.training.trainer import make_attack
    a, dev, ref = ctx["args"], ctx["dev"], ctx["ref"]
    recipe = get_preset("fast-ls-l0", eps=ctx["k"], scale="small").replace(sat_start=0)
    k_train = int(recipe.train_threat.eps)
    xb, yb = ctx["xt"], ctx["yt"]
    idx = torch.arange(len(yb), device=dev)
    base = ctx["model"]
    soft = SoftLabels(yb, int(base(xb[:1]).shape[1]), recipe.sat_momentum, 0)
    attack = make_attack(recipe.attack_name, recipe.norm, recipe.train_threat.eps, recipe.attack_options, steps=1)
    beta = recipe.trades_beta

    def fresh():
        m = copy.deepcopy(base).train()
        for p in m.parameters():
            p.requires_grad_(True)
        return m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def fooled(m, x_adv):
        with torch.no_grad(), model_mode(m, "eval"):
            return float((m(x_adv).argmax(1) != yb).float().mean())

    def ours(r):
        m, opt = fresh()
        torch.manual_seed(r)
        pair = PairForward(m)
        x_adv = attack(m, xb, yb)
        lc, la = pair(x_adv, xb if recipe.needs_clean_forward else None)
        loss = loss_from_logits(recipe, lc, la, soft.targets(idx, 0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        soft.update(idx, torch.softmax(lc.detach(), 1), 0)
        return {"loss": round(float(loss.detach()), 4), "attack_success": round(fooled(m, x_adv), 3)}

    def theirs(r):
        m, opt = fresh()
        torch.manual_seed(r)
        att = ref.TrainSparsePGD(m, epsilon=1.0, k=k_train, t=1, alpha=1.0, beta=1.0, unprojected_gradient=True)
        x_adv = att(xb, yb)[0].detach()
        m.train()
        logits = m(xb)
        logits_adv = m(x_adv)
        loss = F.cross_entropy(logits, yb) + beta * F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1),
                                                             reduction="batchmean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": round(float(loss.detach()), 4), "attack_success": round(fooled(m, x_adv), 3)}

    res = interleave({"landscape": ours, "reference": theirs}, a.repeats, dev, ctx["log"], warmup=True)
    t_o = statistics.median(res["landscape"]["seconds"])
    t_r = statistics.median(res["reference"]["seconds"])
    return {"section": "one Fast-LS-l0 training step", "setting": f"batch {len(yb)}, k_train={k_train}, TRADES beta {beta}",
            "landscape_s": t_o, "reference_s": t_r, "ratio": t_r / t_o,
            "accuracy": f"loss {res['landscape']['acc'][0]['loss']} vs {res['reference']['acc'][0]['loss']}; "
                        f"1-step attack success {res['landscape']['acc'][0]['attack_success']} vs "
                        f"{res['reference']['acc'][0]['attack_success']} (first repeat)",
            "seconds_all": {k: v["seconds"] for k, v in res.items()}}


# ------------------------------------------------------------------------------------ main
def get_checkpoint(a, log):
    from landscape.checkpoint import Checkpoint
    if a.checkpoint:
        return Checkpoint.load(a.checkpoint)
    from landscape.training.trainer import train
    out = Path(tempfile.mkdtemp(prefix="bench_reference_"))
    log(f"training a Fast-LS-l0 small-cnn for {a.train_epochs} epoch(s) into {out} (pass --checkpoint to skip)")
    from landscape.training import get_preset
    recipe = get_preset("fast-ls-l0", "l0", a.eps, scale="small").replace(epochs=a.train_epochs)
    train(recipe, out=out, device="cpu", eval_examples=20, progress=False, log=lambda m: None)
    return Checkpoint.load(out / "checkpoint.pt")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spgd-repo", default=None, help="checkout of CityU-MLO/sPGD (default: $SPGD_REPO)")
    ap.add_argument("--checkpoint", default=None, help="a landscape checkpoint (l0); default: train a small one")
    ap.add_argument("--train-epochs", type=int, default=2, help="epochs of the model trained without --checkpoint")
    ap.add_argument("--dataset", default=None, help="test images from this dataset (default: the checkpoint's)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--eps", type=int, default=20, help="k, pixels")
    ap.add_argument("--n-images", type=int, default=100)
    ap.add_argument("--steps", type=int, default=50, help="sPGD iterations (per white-box stage of sAA)")
    ap.add_argument("--queries", type=int, default=200, help="Sparse-RS queries in sAA")
    ap.add_argument("--batch-size", type=int, default=500, help="the reference sAA's batch")
    ap.add_argument("--hessian-images", type=int, default=100)
    ap.add_argument("--hessian-batch", type=int, default=250)
    ap.add_argument("--topk", type=int, default=20)
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hessian-repeats", type=int, default=None, help="HVP repeats (default: --repeats)")
    ap.add_argument("--reference-dtype", default="float64", choices=["float32", "float64"],
                    help="dtype of the untimed Lanczos run that gives the exact top-k")
    ap.add_argument("--reference-tol", type=float, default=1e-9, help="its ARPACK tolerance")
    ap.add_argument("--lanczos-tol", default=None,
                    help="our Lanczos's tolerance (default: its own); several, comma-separated, are sides of one run")
    ap.add_argument("--lanczos-ncv", type=int, default=None, help="our Lanczos's basis size (default: its own: 2k+1 for arpack, max(10k, 100) for full)")
    ap.add_argument("--lanczos-solver", default="auto",
                    help="our Lanczos's solver: auto (the default), full or arpack; several, comma-separated, "
                         "are interleaved, a row each")
    ap.add_argument("--lanczos-precision", default="float32,bfloat16",
                    help="our Lanczos's products: float32 (lanczos_topk's default), bfloat16 (bf16 Krylov space, "
                         "float32 Rayleigh-Ritz), or both, comma-separated (the default): interleaved, a row each "
                         "(per solver)")
    ap.add_argument("--hessian-rewrites", default="auto",
                    help="the Hessian operator's model for the lanczos and hvp sections: auto (its default: the "
                         "rewritten copy on a float32 CPU), none (the plain model), or both, comma-separated, "
                         "as sides of one interleaved run")
    ap.add_argument("--lanczos-repeats", type=int, default=1, help="PyHessian's top-20 costs hundreds of HVPs")
    ap.add_argument("--sections", default="spgd,saa,lanczos,hvp,train")
    ap.add_argument("--precision", default="float32", choices=["float32", "bfloat16", "both"],
                    help="our sPGD search's precision (spgd, saa); both: the two interleaved, a row each")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--allocator", default="default", choices=["default", "tuned"],
                    help="glibc's malloc as it is, or as every landscape command sets it "
                         "(landscape.device.tune_cpu_allocator); the same for both sides")
    ap.add_argument("--full", action="store_true", help="the issue's sizes: " + ", ".join(f"{k}={v}" for k, v in FULL.items()))
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)
    if a.full:
        for k, v in FULL.items():
            setattr(a, k, v)
    a.hessian_repeats = a.hessian_repeats or a.repeats
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.allocator == "tuned":
        from landscape.device import tune_cpu_allocator
        if not tune_cpu_allocator():
            raise SystemExit("--allocator tuned needs glibc (and LANDSCAPE_MALLOC unset or 1)")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    ref = load_spgd_reference(a.spgd_repo) if any(s in sections for s in ("spgd", "saa", "train")) else None

    from landscape.data import load_dataset
    from landscape.device import resolve_device
    dev = resolve_device(a.device)
    ck = get_checkpoint(a, log)
    model = ck.model(device=dev).eval()
    if a.dataset:
        test = load_dataset(a.dataset, "test", data_dir=a.data_dir, download=False)
        train = load_dataset(a.dataset, "train", data_dir=a.data_dir, download=False)
    else:
        test, train = ck.load_dataset("test", data_dir=a.data_dir), ck.load_dataset("train", data_dir=a.data_dir)
    sub = test.subset(min(a.n_images, len(test)), seed=0)
    hsub = test.subset(min(a.hessian_images, len(test)), seed=1)
    tsub = train.subset(min(a.train_batch, len(train)), seed=2)
    ctx = {"args": a, "dev": dev, "model": model, "ref": ref, "k": a.eps, "log": log,
           "x": sub.images.float().div(255).to(dev), "y": sub.labels.to(dev),
           "xh": hsub.images.float().div(255).to(dev), "yh": hsub.labels.to(dev),
           "xt": tsub.images.float().div(255).to(dev), "yt": tsub.labels.to(dev)}
    with torch.no_grad():
        clean = float((model(ctx["x"]).argmax(1) == ctx["y"]).float().mean())
    head = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(dev),
            "allocator": a.allocator,
            "command": " ".join(["python", "benchmarks/bench_reference.py", *(argv if argv is not None else sys.argv[1:])]),
            "checkpoint": str(ck.path), "arch": ck.arch, "dataset": ck.dataset.get("name"),
            "clean_accuracy": clean, "n_images": len(ctx["y"])}
    rows = []
    runners = {"spgd": [lambda: section_spgd(ctx, False), lambda: section_spgd(ctx, True)], "saa": [lambda: section_saa(ctx)],
               "lanczos": [lambda: section_lanczos(ctx)], "hvp": [lambda: section_hvp(ctx)], "train": [lambda: section_train(ctx)]}
    for s in sections:
        if s not in runners:
            raise SystemExit(f"unknown section {s!r}; choose from {', '.join(runners)}")
        for fn in runners[s]:
            log(f"[{s}]")
            row = fn()
            rows.extend(row if isinstance(row, list) else [row])
    print(f"# bench_reference  {head['date']}  {head['machine']}  torch {head['torch']}  {head['threads']} threads  {head['device']}  allocator {head['allocator']}")
    print(f"# {head['command']}")
    print(f"# model {head['arch']} ({head['dataset']}), clean accuracy {100 * clean:.1f}% on {len(ctx['y'])} test images")
    print("| measurement | setting | landscape (s) | reference (s) | reference / landscape | accuracy (landscape vs reference) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['section']} | {r['setting']} | {r['landscape_s']:.3f} | {r['reference_s']:.3f} | **{r['ratio']:.2f}x** | {r['accuracy']} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"meta": head, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
