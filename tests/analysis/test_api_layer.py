"""The checkpoint-level analysis layer (landscape.analysis.api): threat rule, budgets, examples,
library == CLI, batched surface points, the library never importing the CLI, gradients, overlap rate."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from landscape.analysis import api
from landscape.analysis.batched import evaluate_points
from landscape.analysis.directions import random_directions
from landscape.analysis.objective import LossObjective, plane_offset
from landscape.checkpoint import Checkpoint
from landscape.errors import LandscapeError
from landscape.models import build_model
from landscape.threat import ThreatModel

from .test_surface import make_ckpt


REPO = Path(__file__).resolve().parents[2]


def _imports(root: Path):
    """``(file, line, absolute module)`` of every import in the files under ``root`` (a package folder
    of the repository), relative ones resolved, function-level imports included."""
    for path in root.rglob("*.py"):
        package = list(path.relative_to(REPO).parts[:-1])  # the package the file's imports are relative to
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield path, node.lineno, a.name
            elif isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                yield path, node.lineno, module
                for a in node.names:  # `from . import x` may import the module x
                    yield path, node.lineno, f"{module}.{a.name}"


def _under(module: str, names) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def test_nothing_in_the_library_imports_the_cli():
    offenders = [f"{p.relative_to(REPO)}:{line} {m}" for p, line, m in _imports(REPO / "landscape")
                 if _under(m, ["analysis_cli"])]
    assert not offenders, offenders


def test_plots_import_results_never_commands():
    """The figure code draws results; it imports no command (the CLI, the checkpoint-level analysis
    layer, the trainer, the reproduction runner)."""
    commands = ["analysis_cli", "landscape.analysis.api", "landscape.training.trainer", "landscape.reproduce",
                "landscape.report", "landscape.budgets"]
    seen = list(_imports(REPO / "landscape" / "plots"))
    assert any(m == "landscape.plots.save_figure" for _, _, m in seen)  # relative imports are resolved
    offenders = [f"{p.relative_to(REPO)}:{line} {m}" for p, line, m in seen if _under(m, commands)]
    assert not offenders, offenders


def test_one_threat_rule():
    l0 = ThreatModel("l0", 20)
    assert api.resolve_threat(l0) == l0
    assert api.resolve_threat(l0, eps=5) == ThreatModel("l0", 5)
    assert api.resolve_threat(l0, norm="l0") == l0
    assert api.resolve_threat(l0, norm="l2", eps="0.5") == ThreatModel("l2", 0.5)
    with pytest.raises(LandscapeError, match="give `eps` for l2"):
        api.resolve_threat(l0, norm="l2")           # a budget does not carry across norms
    with pytest.raises(LandscapeError, match="no threat model"):
        api.resolve_threat(None, eps=3)
    assert api.resolve_threat(None) is None


def test_every_command_applies_the_same_threat_rule(cli_run, tmp_path):
    ck = make_ckpt(tmp_path / "l0.pt", ThreatModel("l0", 3))
    for cmd in (["eval", ck, "--n-examples", 4], ["hessian", ck, "--n-examples", 4, "--out", tmp_path / "h"],
                ["surface", ck, "--n-examples", 4, "--out", tmp_path / "s.png"],
                ["overlap", ck, "--n-examples", 4, "--out", tmp_path / "o.png"]):
        r = cli_run([*cmd, "--norm", "l2"])
        assert r.exit_code == 2, (cmd, r.output)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "give --eps for l2" in lines[0], (cmd, r.stderr)


def test_scale_budget_maps_cifar_budgets_to_the_image_size():
    mn = (1, 28, 28)
    assert api.scale_budget(ThreatModel("l1", 24), mn).eps == pytest.approx(24 * 784 / 3072)
    assert api.scale_budget(ThreatModel("l2", 0.5), mn).eps == pytest.approx(0.5 * (784 / 3072) ** 0.5)
    assert api.scale_budget(ThreatModel("linf", 8 / 255), mn).eps == pytest.approx(8 / 255)
    assert api.scale_budget(ThreatModel("l0", 20), mn).eps == 15 and api.scale_budget(ThreatModel("l0", 1), mn).eps == 1
    assert api.scale_budget(ThreatModel("l2", 0.5), (3, 32, 32)).eps == pytest.approx(0.5)


def test_examples_honour_split_and_data_dir(tmp_path):
    from tests.data.cifar_files import make_cifar_files, write_extracted
    from landscape.data import load_dataset
    files = make_cifar_files("cifar10", per_file=6, seed=3)
    write_extracted("cifar10", tmp_path / "data", files)
    ds = load_dataset("cifar10", "train", data_dir=tmp_path / "data")
    kw = dict(in_channels=3, num_classes=10, image_size=32, width=2, hidden=8)
    ck = Checkpoint.create(build_model("small-cnn", **kw), arch="small-cnn", model_kwargs=kw,
                           dataset={**ds.describe(), "data_dir": None}, threat=ThreatModel("l0", 2))
    ck.path = None
    ex = api.load_examples(ck, split="train", n_examples=7, seed=2, data_dir=tmp_path / "data")
    idx = ds.subset_indices(7, seed=2)
    assert ex.split == "train" and torch.equal(ex.index, idx)
    assert torch.equal(ex.x, ds.images[idx].float() / 255) and torch.equal(ex.y, ds.labels[idx])
    test = api.load_examples(ck, split="test", n_examples=None, seed=2, data_dir=tmp_path / "data")
    assert len(test) == 6 and test.split == "test"
    with pytest.raises(LandscapeError, match="`n_examples`"):
        api.load_examples(ck, split="train", n_examples=0, data_dir=tmp_path / "data")
    with pytest.raises(LandscapeError, match="`split`"):
        api.load_examples(ck, split="val", data_dir=tmp_path / "data")


def test_library_entry_point_gives_the_cli_numbers(cli_run, tmp_path):
    ck = make_ckpt(tmp_path / "l0.pt", ThreatModel("l0", 2))
    opts = dict(topk=2, n_examples=8, batch_size=4, params="classifier.5.*", attack_steps=2, attack_queries=3)
    df, meta = api.hessian_spectrum([ck], **opts)
    r = cli_run(["hessian", ck, "--topk", 2, "--n-examples", 8, "--batch-size", 4, "--params", "classifier.5.*",
                 "--attack-steps", 2, "--attack-queries", 3, "--out", tmp_path / "h"])
    assert r.exit_code == 0, r.output
    cli = pd.read_csv(tmp_path / "h.csv")
    np.testing.assert_allclose(cli["eigenvalue"], df["eigenvalue"], rtol=1e-5)
    m = json.loads((tmp_path / "h.json").read_text())["meta"]["checkpoints"][0]
    assert m["split"] == "train" and m["attack"]["attack"] == "maxloss"
    assert m["adversarial_ce"] == pytest.approx(meta["checkpoints"][0]["adversarial_ce"])
    r = cli_run(["hessian", ck, "--topk", 0, "--out", tmp_path / "bad"])
    assert r.exit_code == 2 and "--topk" in r.stderr and "`" not in r.stderr


def test_library_refuses_bad_numbers_by_argument_name(tmp_path):
    ck = make_ckpt(tmp_path / "l0.pt", ThreatModel("l0", 2))
    with pytest.raises(LandscapeError, match="`sigma`"):
        api.hessian_density([ck], sigma=-1.0, n_examples=8, loss="clean")
    with pytest.raises(LandscapeError, match="`smoothing`"):
        api.lipschitz(ck, radii=[0.1], smoothing=1.5, n_examples=8)


def test_scale_budget_is_printed_in_results(cli_run, tmp_path):
    ck = make_ckpt(tmp_path / "l2.pt", ThreatModel("l2", 0.5))
    r = cli_run(["hessian", ck, "--topk", 2, "--n-examples", 4, "--params", "classifier.5.*", "--attack-steps", 2,
                 "--scale-budget", "--out", tmp_path / "h"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "h.json").read_text())["meta"]["checkpoints"][0]
    assert m["eps_reference"] == 0.5 and m["eps_scaled"] == pytest.approx(0.5 * (784 / 3072) ** 0.5)
    assert m["threat"]["eps"] == pytest.approx(m["eps_scaled"]) and "scaled to" in r.stderr


@pytest.mark.parametrize("case", ["clean", "fixed", "recomputed-l0", "recomputed-linf"])
def test_batched_points_equal_unbatched_point_by_point(tiny_cnn, case):
    torch.manual_seed(3)
    x = torch.rand(10, 1, 12, 12)
    y = torch.randint(0, 3, (10,))
    mode = case.split("-")[0]
    threat = ThreatModel("linf", 0.05) if case.endswith("linf") else ThreatModel("l0", 2)
    atk = None if mode == "clean" else api.surface_attack(threat, steps=4, seed=5)
    obj = LossObjective(tiny_cnn, x, y, mode, atk, batch_size=4, seed=5)
    d1, d2 = random_directions(tiny_cnn, 2, seed=1)
    pts = [(a, b) for a in (-0.5, 0.0, 0.5) for b in (-0.5, 0.5)]
    offsets = [plane_offset(d1, d2, a, b) for a, b in pts]
    one = [obj.evaluate(o) for o in offsets]
    many = evaluate_points(obj, offsets)
    for (l1, a1), (l2, a2) in zip(one, many):
        assert l2 == pytest.approx(l1, rel=1e-4, abs=1e-6) and a2 == pytest.approx(a1)
    if mode == "recomputed":  # the points really differ, so the test is not comparing constants
        assert len({round(v[0], 6) for v in one}) > 3


def test_batched_surface_cli_equals_unbatched(cli_run, tmp_path):
    ck = make_ckpt(tmp_path / "l0.pt", ThreatModel("l0", 2))
    base = ["surface", ck, "--grid", 3, "--n-examples", 6, "--attack-steps", 2, "--directions", "random"]
    assert cli_run(base + ["--out", tmp_path / "a.png"]).exit_code == 0
    r = cli_run(base + ["--points-per-batch", 4, "--out", tmp_path / "b.png"])
    assert r.exit_code == 0, r.output
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)


def test_gradients_command(cli_run, tmp_path):
    l0 = make_ckpt(tmp_path / "l0.pt", ThreatModel("l0", 2), seed=1)
    li = make_ckpt(tmp_path / "li.pt", ThreatModel("linf", 0.03), seed=2)
    r = cli_run(["gradients", l0, li, "--n-examples", 8, "--multi-steps", 5, "--out", tmp_path / "g"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "g.csv")
    assert list(df["norm"]) == ["l0", "linf"] and (df["grad_distance"] > 0).all()
    assert (df["grad_distance"] <= df["grad_norm_onestep"] + df["grad_norm_multistep"] + 1e-9).all()
    assert (df["loss_multistep"] >= df["loss_onestep"] - 1e-6).all()   # the multi-step attack is stronger
    # the distance is that of the two gradients of the library's own loss
    ck = Checkpoint.load(l0)
    st = api.setup(ck, n_examples=8)
    from landscape.attacks import SparsePGD
    obj = LossObjective(st.model, st.x, st.y, "clean", None, 256)
    g = []
    for atk in (api.make_attack(st.threat, "train", seed=0), SparsePGD(2, 5, early_stop=False, loss="ce", seed=0)):
        xa = api.fixed_perturbations(st.model, st.x, st.y, atk, seed=0)
        g.append(torch.cat([v.reshape(-1) for v in obj.loss_and_grad(x_adv=xa)[2].values()]).double())
    assert df["grad_distance"][0] == pytest.approx(float((g[0] - g[1]).norm()), rel=1e-5)


def test_overlap_rate():
    from landscape.analysis.overlap import overlap_rate
    a = torch.zeros(3, 2, 2, dtype=torch.bool)
    b = torch.zeros(3, 2, 2, dtype=torch.bool)
    a[0, 0, 0] = a[0, 0, 1] = True
    b[0, 0, 0] = b[0, 1, 1] = True       # half of S_strong is also chosen by the training attack
    a[1, 0, 0] = True                     # S_strong empty: undefined
    b[2] = True
    a[2] = True                           # identical sets
    r = overlap_rate(a, b)
    assert r[0] == 0.5 and torch.isnan(r[1]) and r[2] == 1.0


def test_points_per_batch_falls_back_to_one_for_an_attack_that_cannot_be_batched(tmp_path):
    """APGD (l1) draws a random start per example, so its grid points cannot share a forward pass:
    the surface is computed one point per pass for that checkpoint (said in the metadata) instead of
    failing, and the other checkpoints keep their stacking. The values equal the unbatched ones."""
    l0 = make_ckpt(tmp_path / "l0.pt", ThreatModel("l0", 2), seed=1)
    l1 = make_ckpt(tmp_path / "l1.pt", ThreatModel("l1", 2.0), seed=2)
    opts = dict(grid=3, n_examples=6, attack_steps=2, directions="random", progress=False)
    df, meta = api.loss_surface([l0, l1], points_per_batch=4, **opts)
    assert [m["points_per_batch"] for m in meta["surfaces"]] == [4, 1]
    one, _ = api.loss_surface([l0, l1], points_per_batch=1, **opts)
    np.testing.assert_allclose(df["loss"], one["loss"], rtol=1e-4)


def test_time_estimates_count_the_forwards_of_loss_keeping_attacks():
    """A recomputed surface point costs the attack's steps, the forward that checks its last iterate
    and MaxLoss's clean forward (a 31x31 surface was estimated 5.9 min and took 7.5 before these were
    counted); a stage that leaves its logits (sPGD keeping its best) needs no comparison forward, and
    the loss there none either. A stage without them costs its forward."""
    from landscape import attacks as A
    from landscape.budgets import _FORWARD, attack_passes
    from landscape.threat import ThreatModel
    assert attack_passes(A.SparsePGD(20, 10)) == pytest.approx(10 + _FORWARD)
    surface = api.surface_attack(ThreatModel("l0", 20), steps=5)
    assert attack_passes(surface) == pytest.approx(5 + _FORWARD + _FORWARD)
    assert attack_passes(A.MaxLoss([A.SparsePGD(20, 5, track_best=False)])) == pytest.approx(5 + _FORWARD + 2 * _FORWARD)
    # a surface: the attack at every point (its logits give the loss), or once for the fixed loss
    from types import SimpleNamespace

    from landscape.budgets import _passes
    plan = SimpleNamespace(attacks={"attack": surface}, knobs={"grid": 3})
    per_point = 5 + 2 * _FORWARD
    assert _passes("surface", plan, {"loss": "recomputed"}) == pytest.approx(9 * per_point)
    assert _passes("surface", plan, {"loss": "fixed"}) == pytest.approx(per_point + 9 * _FORWARD)
    pgd = SimpleNamespace(attacks={"attack": A.PGD(0.1, "linf", 5)}, knobs={"grid": 3})
    assert _passes("surface", pgd, {"loss": "recomputed"}) == pytest.approx(9 * (5 + 2 * _FORWARD))
    assert attack_passes(A.SparseRS(20, n_queries=100)) == pytest.approx(100 * _FORWARD)
    assert attack_passes(None) == 0
