"""The bf16 searches of sparse-PGD and Sparse-RS: autocast for the search, float32 for every verdict
near the decision boundary, so for every success counted."""

import json

import pytest
import torch
from torch import nn

from landscape.attacks import SparseAutoAttack, SparsePGD, SparseRS
from landscape.errors import LandscapeError
from landscape.threat import ThreatModel

from .helpers import linear_model


class CountsPrecisions(nn.Module):
    """A linear model on 1x4x4 inputs that counts its forwards with and without autocast and lets a
    subclass change its logits in each (``under_autocast``, ``in_float32``)."""

    def __init__(self, weight_scale: float, bias):
        super().__init__()
        self.lin = nn.Linear(16, 3)
        with torch.no_grad():
            self.lin.weight.mul_(weight_scale)
            self.lin.bias.copy_(torch.tensor(bias))
        self.calls = {"autocast": 0, "float32": 0}

    def forward(self, x):
        out = self.lin(x.flatten(1))
        if torch.is_autocast_enabled(x.device.type):
            self.calls["autocast"] += 1
            return self.under_autocast(out)
        self.calls["float32"] += 1
        return self.in_float32(out)


class LiesUnderAutocast(CountsPrecisions):
    """Class 1 by a wide margin in float32, whatever the input; under autocast, class 0 (a bf16
    "success" that float32 never confirms)."""

    def __init__(self):
        super().__init__(1e-3, [0.0, 10.0, 0.0])

    def under_autocast(self, out):
        return out + torch.tensor([100.0, 0.0, 0.0], dtype=out.dtype)

    def in_float32(self, out):
        return out


def test_a_bf16_success_counts_only_once_float32_confirms_it():
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.ones(5, dtype=torch.long)
    model = LiesUnderAutocast().eval()
    steps = 6
    atk = SparsePGD(eps=2, steps=steps, precision="bfloat16", seed=0)
    x_adv = atk(model, x, y)
    # the search ran under autocast, and no example left it on the bf16 verdict: all its steps ran
    # (one forward each, and the last check), each followed by a float32 check of the claimed success
    assert model.calls["autocast"] == steps + 1
    assert model.calls["float32"] == 1 + steps + 1          # the clean forward, then one per claim
    assert ThreatModel("l0", 2).is_valid(x, x_adv).all()
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == y).all()
    assert not atk.keeps_logits and atk.last_logits is None   # bf16 logits are never handed on

    plain = LiesUnderAutocast().eval()
    SparsePGD(eps=2, steps=steps, seed=0)(plain, x, y)
    assert plain.calls["autocast"] == 0                      # float32, the default, never autocasts


class HidesUnderAutocast(CountsPrecisions):
    """Correct on its first float32 call (the attack's clean forward), misclassified by a hair on every
    later float32 call; under autocast, correct by that hair: a success bf16 alone would never see."""

    def __init__(self):
        super().__init__(1e-4, [0.0, 0.0, 0.0])

    def under_autocast(self, out):
        return out + torch.tensor([0.0, 1.0, 0.99], dtype=out.dtype)

    def in_float32(self, out):
        return out + (torch.tensor([0.0, 1.0, 0.0]) if self.calls["float32"] == 1 else torch.tensor([0.0, 0.99, 1.0]))


def test_the_float32_checks_are_not_counted_as_iterations():
    from landscape.progress import on_attack
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.ones(5, dtype=torch.long)
    steps = 6
    done = {}
    for prec in ("float32", "bfloat16"):
        events = []
        with on_attack(events.append):
            SparsePGD(eps=2, steps=steps, precision=prec, seed=0)(LiesUnderAutocast().eval(), x, y)
        done[prec] = [(e["step"], e["survivors"]) for e in events if e["done"]]
    # float32 runs the clean forward and steps + 1 search forwards on all five; bf16 the same, and a
    # float32 check of every one of them after each search forward, which the progress leaves out
    assert done["bfloat16"] == done["float32"] == [(steps + 2, 5)]


def test_a_success_hidden_by_bf16_rounding_is_found_in_float32():
    x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.ones(4, dtype=torch.long)
    model = HidesUnderAutocast().eval()
    x_adv = SparsePGD(eps=2, steps=6, precision="bfloat16", seed=0)(model, x, y)
    assert model.calls["autocast"] == 1                      # all four leave after the first step
    assert ThreatModel("l0", 2).is_valid(x, x_adv).all()


def test_sparse_rs_in_bf16_counts_only_float32_successes_and_finds_hidden_ones():
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.ones(5, dtype=torch.long)
    liar = LiesUnderAutocast().eval()
    x_adv = SparseRS(eps=2, n_queries=8, loss="ce", precision="bfloat16", seed=0)(liar, x, y)
    assert liar.calls["autocast"] == 8                       # every query ran: no bf16 "success" counted
    with torch.no_grad():
        assert (liar(x_adv).argmax(1) == y).all()
    assert ThreatModel("l0", 2).is_valid(x, x_adv).all()
    hider = HidesUnderAutocast().eval()
    SparseRS(eps=2, n_queries=8, loss="ce", precision="bfloat16", seed=0)(hider, x, y)
    assert hider.calls["autocast"] == 1                      # the first query's success, seen in float32


def test_bf16_search_breaks_what_the_float32_search_breaks():
    torch.manual_seed(0)
    model = linear_model((1, 8, 8), classes=4, seed=3)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)                               # every example starts correct
    robust = {}
    for prec in ("float32", "bfloat16"):
        xa = SparsePGD(eps=3, steps=30, precision=prec, seed=0)(model, x, y)
        assert ThreatModel("l0", 3).is_valid(x, xa).all()
        with torch.no_grad():
            robust[prec] = float((model(xa).argmax(1) == y).float().mean())
    assert robust["float32"] < 0.9                           # the budget breaks some, not all
    assert robust["bfloat16"] <= robust["float32"] + 3 / 64


def test_precision_reaches_both_spgd_stages_of_saa_and_is_checked():
    saa = SparseAutoAttack(eps=3, steps=2, n_queries=2, precision="bf16")
    assert [a.precision for _, a in saa.stages[:2]] == ["bfloat16", "bfloat16"]
    assert saa.config()["stages"]["spgd"]["precision"] == "bfloat16"
    with pytest.raises(LandscapeError, match="precision"):
        SparsePGD(eps=3, precision="float16")


def test_eval_cli_runs_the_search_in_bf16_and_refuses_it_for_other_attacks(cli_run, tiny_ckpt, tmp_path):
    ck = tiny_ckpt
    r = cli_run(["eval", ck, "--precision", "bfloat16", "--steps", "3", "--queries", "5", "--n-examples", "12",
                 "--out", tmp_path / "bf"])
    assert r.exit_code == 0, r.stderr
    assert "bfloat16" in r.stdout
    meta = json.loads((tmp_path / "bf.json").read_text())["meta"]
    stages = meta["attack"]["stages"]
    assert stages["spgd"]["precision"] == stages["spgd-projected"]["precision"] == "bfloat16"
    assert meta["plan"]["precision"] == "bfloat16" and "--precision bfloat16" in meta["plan"]["overrides"]
    bad = cli_run(["eval", ck, "--attack", "pgd", "--norm", "linf", "--eps", "0.1", "--precision", "bfloat16",
                   "--n-examples", "4", "--out", tmp_path / "pgd"])
    assert bad.exit_code != 0
    assert bad.stderr.strip().splitlines() == ["landscape: error: --precision applies to spgd, spgd-projected "
                                               "and saa, not pgd"]
    rs = cli_run(["eval", ck, "--attack", "rs", "--precision", "bfloat16", "--queries", "3", "--n-examples", "4",
                  "--out", tmp_path / "rs"])                 # its bf16 queries are a library option only
    assert rs.exit_code != 0 and "not rs" in rs.stderr


def test_the_plan_line_says_the_estimate_is_at_float32_speed(tiny_ckpt, monkeypatch, capsys):
    from landscape import budgets
    ck = tiny_ckpt
    monkeypatch.setenv("LANDSCAPE_NO_PROGRESS", "0")
    for prec, said in (("bfloat16", True), (None, False)):
        plan = budgets.prepare("eval", ck, {"precision": prec, "device": "cpu", "n_examples": 8}, budget="smoke")
        line = capsys.readouterr().err
        assert ("at float32 speed (the bfloat16 search runs faster)" in line) is said
        assert ("--precision bfloat16" in line) is said and plan.precision == (prec or "float32")


def test_eval_says_when_bf16_is_not_native_here(cli_run, tiny_ckpt, tmp_path, monkeypatch):
    import landscape.device
    ck = tiny_ckpt
    args = ["eval", ck, "--attack", "spgd", "--precision", "bfloat16", "--steps", "2", "--n-examples", "4",
            "--device", "cpu"]
    monkeypatch.setattr(landscape.device, "native_bf16", lambda device: False)
    r = cli_run(args + ["--out", tmp_path / "a"])
    assert r.exit_code == 0 and "no native bf16" in r.stderr
    monkeypatch.setattr(landscape.device, "native_bf16", lambda device: True)
    r = cli_run(args + ["--out", tmp_path / "b"])
    assert r.exit_code == 0 and "native bf16" not in r.stderr

