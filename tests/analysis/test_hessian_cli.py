"""``landscape hessian`` and ``landscape density`` end to end on tiny checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from landscape.analysis.estimators import trapezoid
from landscape.checkpoint import Checkpoint
from landscape.data import load_dataset
from landscape.models import build_model, model_kwargs_for
from landscape.threat import ThreatModel


def make_ckpt(path, threat=None, recipe=None, seed=0):
    desc = load_dataset("fashion-mnist-mini", "test").describe()
    kw = model_kwargs_for("small-cnn", desc, width=2, hidden=8, batchnorm=True)
    torch.manual_seed(seed)
    model = build_model("small-cnn", **kw)
    return Checkpoint.create(model, arch="small-cnn", model_kwargs=kw, dataset=desc, threat=threat,
                             recipe=recipe).save(path)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    return (make_ckpt(d / "clean.pt"), make_ckpt(d / "linf.pt", ThreatModel("linf", 0.03), seed=1))


COMMON = ["--n-examples", 10, "--batch-size", 4, "--device", "cpu"]


def test_hessian_cli_two_checkpoints_side_by_side(ckpts, tmp_path, cli_run):
    out = tmp_path / "spec"
    r = cli_run(["hessian", *ckpts, "--topk", 3, "--loss", "clean", "--trace",
                 "--trace-samples", 4, "--out", out, *COMMON])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out.with_suffix(".csv"))
    assert len(df) == 6 and df["label"].nunique() == 2 and df["converged"].all()
    assert (np.diff(df[df["label"] == df["label"][0]]["eigenvalue"]) <= 0).all()
    meta = json.loads(out.with_suffix(".json").read_text())["meta"]
    assert meta["topk"] == 3 and len(meta["checkpoints"]) == 2
    m = meta["checkpoints"][0]
    assert m["loss"] == "clean" and m["n_examples"] == 10 and m["n_hvp"] > 0 and "trace" in m
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "eigenvalue" in r.stdout


def test_hessian_cli_adversarial_fixed_default_for_robust_checkpoint(ckpts, tmp_path, cli_run):
    out = tmp_path / "adv"
    r = cli_run(["hessian", ckpts[1], "--topk", 2, "--params", "classifier.*", "--out", out, *COMMON])
    assert r.exit_code == 0, r.output
    m = json.loads(out.with_suffix(".json").read_text())["meta"]["checkpoints"][0]
    assert m["loss"] == "adversarial" and m["perturbation_mode"] == "fixed"
    assert m["threat"] == {"norm": "linf", "eps": 0.03} and all(p.startswith("classifier.") for p in m["params"])


def test_hessian_cli_adversarial_attack_choice_l0(tmp_path, cli_run):
    """--attack/--attack-steps choose the attack that fixes the perturbations (recorded in meta)."""
    ck = make_ckpt(tmp_path / "l0.pt", ThreatModel("l0", 5), seed=2)
    out = tmp_path / "l0h"
    r = cli_run(["hessian", ck, "--topk", 2, "--params", "classifier.5.*", "--attack", "spgd",
                 "--attack-steps", 3, "--out", out, *COMMON])
    assert r.exit_code == 0, r.output
    m = json.loads(out.with_suffix(".json").read_text())["meta"]["checkpoints"][0]
    assert m["attack"]["attack"] == "spgd" and m["attack"]["steps"] == 3 and m["attack"]["eps"] == 5


def test_density_cli(ckpts, tmp_path, cli_run):
    out = tmp_path / "dens.png"
    r = cli_run(["density", ckpts[0], "--loss", "clean", "--n-v", 2, "--n-steps", 8, "--out", out, *COMMON])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "dens.csv")
    assert abs(trapezoid(df["density"], df["eigenvalue"]) - 1) < 1e-2
    assert out.stat().st_size > 1000


@pytest.mark.parametrize("case", ["missing", "corrupt", "topk0", "topk_big", "params"])
def test_hessian_cli_bad_input(ckpts, tmp_path, cli_run, case):
    ck = ckpts[0]
    args = ["--topk", 3]
    if case == "missing":
        ck = tmp_path / "nope.pt"
    elif case == "corrupt":
        ck = tmp_path / "bad.pt"
        ck.write_bytes(b"not a checkpoint at all")
    elif case == "topk0":
        args = ["--topk", 0]
    elif case == "topk_big":
        args = ["--topk", 10**7]
    else:
        args += ["--params", "no_such_layer"]
    out = tmp_path / "res"
    out.with_suffix(".csv").write_text("earlier\n")
    r = cli_run(["hessian", ck, *args, "--loss", "clean", "--out", out, *COMMON])
    assert r.exit_code == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("landscape: error:"), r.stderr
    assert out.with_suffix(".csv").read_text() == "earlier\n"  # earlier results untouched
    assert not out.with_suffix(".png").exists()


def test_hessian_cli_one_budget_for_checkpoints_of_different_norms(tmp_path, cli_run):
    """--attack-steps/--attack-queries apply to each checkpoint's default attack; PGD/APGD ignore
    the query budget instead of failing (the paper's panel puts l0 beside l1/l2/l∞)."""
    l0 = make_ckpt(tmp_path / "l0.pt", ThreatModel("l0", 3), seed=3)
    l1 = make_ckpt(tmp_path / "l1.pt", ThreatModel("l1", 2.0), seed=4)
    out = tmp_path / "mixed"
    r = cli_run(["hessian", l0, l1, "--topk", 2, "--params", "classifier.5.*", "--attack-steps", 2,
                 "--attack-queries", 3, "--out", out, *COMMON])
    assert r.exit_code == 0, r.output
    a, b = json.loads(out.with_suffix(".json").read_text())["meta"]["checkpoints"]
    assert a["attack"]["attack"] == "maxloss" and [s["attack"] for s in a["attack"]["stages"]] == ["spgd", "spgd-projected", "rs"]
    assert a["attack"]["stages"][0]["steps"] == 2 and a["attack"]["stages"][2]["n_queries"] == 3
    assert a["attack"]["stages"][0]["early_stop"] is False and a["attack"]["stages"][0]["loss"] == "ce"
    assert b["attack"]["attack"] == "maxloss" and b["attack"]["stages"][0]["attack"] == "apgd"
    assert b["attack"]["stages"][0]["steps"] == 2
    assert a["split"] == "train" and a["adversarial_ce"] >= a["clean_ce"] - 1e-6


def test_hessian_interrupted_in_the_perturbation_search_reads_back_what_it_found(ckpts, tmp_path, cli_run,
                                                                                 monkeypatch):
    """Ctrl-C in the second batch's attack: the first batch's perturbations are kept (exit 130, saying
    so); the same command attacks only the other two batches and writes the uninterrupted run's
    eigenvalues; the partial folder is gone afterwards. A clean loss keeps nothing and says so."""
    from landscape.analysis import api
    real = api.fixed_perturbations
    cmd = ["hessian", ckpts[1], "--topk", 2, "--loss", "adversarial", "--attack-steps", 2, *COMMON]
    assert cli_run(cmd + ["--out", tmp_path / "whole"]).exit_code == 0
    calls = []

    def stopping(*args, **kwargs):
        calls.append(kwargs["seed"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(api, "fixed_perturbations", stopping)
        r = cli_run(cmd + ["--out", tmp_path / "part"])
    assert r.exit_code == 130 and "partial results were saved" in r.stderr
    assert len(list((tmp_path / ".part.partial").rglob("batch_*.pt"))) == 1
    calls.clear()
    with monkeypatch.context() as m:
        m.setattr(api, "fixed_perturbations", lambda *a, **k: calls.append(k["seed"]) or real(*a, **k))
        assert cli_run(cmd + ["--out", tmp_path / "part"]).exit_code == 0
    assert calls == [4, 8] and not (tmp_path / ".part.partial").exists()      # seed 0 + each batch's start
    whole, part = pd.read_csv(tmp_path / "whole.csv"), pd.read_csv(tmp_path / "part.csv")
    assert part["eigenvalue"].tolist() == whole["eigenvalue"].tolist() and list(part.columns) == list(whole.columns)
    assert json.loads((tmp_path / "part.json").read_text())["meta"]["checkpoints"][0]["perturbation_batches_read_back"] == 1
    with monkeypatch.context() as m:
        m.setattr(api, "hessian_operator_for", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        r = cli_run(["hessian", ckpts[1], "--topk", 2, "--loss", "clean", *COMMON, "--out", tmp_path / "clean"])
    assert r.exit_code == 130 and "nothing was written" in r.stderr
