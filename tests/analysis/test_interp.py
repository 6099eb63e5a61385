"""Interpolation: α=0 is clean accuracy, α=1 the 1-step robust accuracy; closed forms; CLI errors."""

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from landscape.analysis.interp import interpolate_perturbations, interpolate_weights, recalibrate_bn
from landscape.analysis.objective import predict_stats, run_attack
from tests.interrupting import interrupting, recording

from .test_objective import SignAttack, data, linear_model
from .test_surface import make_ckpt


def test_perturbation_interpolation_endpoints_and_formula():
    m = linear_model()
    x, y = data(n=20)
    atk = SignAttack(0.1, "linf")
    df, meta = interpolate_perturbations(m, x, y, atk, [0.0, 0.5, 1.0], strong_attack=atk)
    assert df.acc.iloc[0] == pytest.approx(predict_stats(m, x, y)[1])
    assert df.acc.iloc[2] == pytest.approx(meta["onestep_acc"])
    x_adv = run_attack(atk, m, x, y)
    assert meta["onestep_acc"] == pytest.approx(predict_stats(m, x_adv, y)[1])
    W, b = m[1].weight.detach(), m[1].bias.detach()
    xm = (x + 0.5 * (x_adv - x)).flatten(1)
    assert df.loss.iloc[1] == pytest.approx(F.cross_entropy(xm @ W.T + b, y).item(), rel=1e-10)
    assert list(df.kind) == ["interp"] * 3 + ["strong"]


def test_weight_interpolation_endpoints_and_bn(tiny_cnn, tiny_batch):
    x, y = tiny_batch
    torch.manual_seed(3)
    other = copy.deepcopy(tiny_cnn)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.1 * torch.randn_like(p))
    df, meta = interpolate_weights(tiny_cnn, other, x, y, [0.0, 0.5, 1.0])
    assert df.loss.iloc[0] == pytest.approx(predict_stats(tiny_cnn, x, y)[0], rel=1e-6)
    assert df.loss.iloc[2] == pytest.approx(predict_stats(other, x, y)[0], rel=1e-6)
    # linear model: the midpoint is the model with averaged weights
    m1, m2 = linear_model(seed=0), linear_model(seed=1)
    xl, yl = data()
    dfl, _ = interpolate_weights(m1, m2, xl, yl, [0.5])
    W = (m1[1].weight + m2[1].weight).detach() / 2
    b = (m1[1].bias + m2[1].bias).detach() / 2
    assert dfl.loss.iloc[0] == pytest.approx(F.cross_entropy(xl.flatten(1) @ W.T + b, yl).item(), rel=1e-10)
    # recalibration sets the running mean to the data's mean
    n = recalibrate_bn(tiny_cnn, x)
    assert n == 4 and not tiny_cnn.training
    conv = tiny_cnn.features[0]
    with torch.no_grad():
        ref = conv(tiny_cnn.normalize(x)).mean(dim=(0, 2, 3))
    torch.testing.assert_close(tiny_cnn.features[1].running_mean, ref, rtol=1e-4, atol=1e-5)
    df2, meta2 = interpolate_weights(tiny_cnn, other, x, y, [0.5], bn="recalibrate", x_train=x)
    assert meta2["bn"] == "recalibrate"


@pytest.fixture(scope="module")
def l0_ckpt(tmp_path_factory):
    return make_ckpt(tmp_path_factory.mktemp("ck") / "l0.pt", {"norm": "l0", "eps": 3})


def test_cli_interp(cli_run, l0_ckpt, tmp_path):
    out = tmp_path / "t2.png"
    r = cli_run(["interp", l0_ckpt, "--alpha", "0:1:0.5", "--n-examples", "16", "--strong-attack", "spgd",
                 "--strong-steps", "3", "--out", out])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "t2.csv")
    assert list(df.alpha[:3]) == [0.0, 0.5, 1.0] and df.kind.iloc[-1] == "strong"
    from landscape.checkpoint import Checkpoint
    from landscape.analysis.api import load_examples
    from landscape.attacks import training_attack
    ck = Checkpoint.load(l0_ckpt)
    ex = load_examples(ck, split="test", n_examples=16, seed=0)
    x, y = ex.x, ex.y
    model = ck.model()
    assert df.acc.iloc[0] == pytest.approx(predict_stats(model, x, y)[1])
    xa = run_attack(training_attack("l0", 3), model, x, y, seed=0)
    assert df.acc.iloc[2] == pytest.approx(predict_stats(model, xa, y)[1])
    before = (tmp_path / "t2.csv").read_bytes()
    for bad in ["1:0:0", "0:1:-0.1", "a:b"]:
        r = cli_run(["interp", l0_ckpt, "--alpha", bad, "--out", out])
        assert r.exit_code == 2, (bad, r.output)
        assert len(r.stderr.strip().splitlines()) == 1 and "alpha" in r.stderr
    r = cli_run(["interp", tmp_path / "nope.pt", "--out", out])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert (tmp_path / "t2.csv").read_bytes() == before
    r = cli_run(["interp", l0_ckpt, "--between", l0_ckpt, "--alpha", "0,1", "--n-examples", "8", "--out",
                 tmp_path / "w.png"])
    assert r.exit_code == 0, r.output
    w = pd.read_csv(tmp_path / "w.csv")
    assert w.loss.iloc[0] == pytest.approx(w.loss.iloc[1])


def test_cli_interp_default_saa_takes_budgets(cli_run, l0_ckpt, tmp_path):
    """--strong-steps/--strong-queries configure the default sparse-AutoAttack instead of replacing it."""
    import json
    out = tmp_path / "t2b.png"
    r = cli_run(["interp", l0_ckpt, "--alpha", "0,1", "--n-examples", "8", "--strong-steps", "2",
                 "--strong-queries", "3", "--out", out])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "t2b.json").read_text())["meta"]
    strong = meta["strong_attack"]
    assert strong["attack"] == "saa"
    assert strong["stages"]["spgd"]["steps"] == 2 and strong["stages"]["spgd-projected"]["steps"] == 2
    assert strong["stages"]["rs"]["n_queries"] == 3


def test_cli_interp_interrupted_in_the_strong_attack_resumes(cli_run, l0_ckpt, tmp_path, monkeypatch):
    """Ctrl-C in the strong attack's second batch keeps its first (exit 130); the same command again
    goes on from there and writes what an uninterrupted run writes. --between keeps nothing (it says so)."""
    import landscape.attacks.base as base
    real = base.attack_batches
    cmd = ["interp", l0_ckpt, "--alpha", "0:1:0.5", "--n-examples", "12", "--batch-size", "5",
           "--strong-attack", "spgd", "--strong-steps", "3"]
    assert cli_run(cmd + ["--out", tmp_path / "whole.png"]).exit_code == 0
    with monkeypatch.context() as m:
        m.setattr(base, "attack_batches", interrupting(real, call=2, batch=1)[0])
        r = cli_run(cmd + ["--out", tmp_path / "part.png"])
    assert r.exit_code == 130 and "partial results were saved" in r.stderr
    fake, calls = recording(real)
    with monkeypatch.context() as m:
        m.setattr(base, "attack_batches", fake)
        assert cli_run(cmd + ["--out", tmp_path / "part.png"]).exit_code == 0
    assert calls == [0, 5] and not (tmp_path / ".part.partial").exists()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "part.csv"), pd.read_csv(tmp_path / "whole.csv"))
    with monkeypatch.context() as m:
        m.setattr(base, "attack_batches", interrupting(real, call=2, batch=1)[0])
        r = cli_run(["interp", l0_ckpt, "--between", l0_ckpt, "--adversarial", "--alpha", "0,1", "--n-examples", "12",
                     "--batch-size", "5", "--out", tmp_path / "between.png"])
    assert r.exit_code == 130 and "nothing was written" in r.stderr
