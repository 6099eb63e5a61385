"""Surfaces: closed form, centre, cragginess, resume, rank split, CLI (directions reuse, bad input)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from landscape.analysis.cragginess import cragginess, local_minima
from landscape.analysis.directions import random_directions
from landscape.analysis.objective import LossObjective, predict_stats
from landscape.analysis.surface import compute_surface
from landscape.attacks import Attack
from landscape.checkpoint import Checkpoint
from landscape.models import build_model

from .test_objective import closed_form, data, linear_model


class RandomL0(Attack):
    """Stand-in attack that depends on torch's global generator: k random pixels set to random values."""
    name = "random-l0"
    norms = ("l0",)

    def perturb(self, model, x, y):
        n, c, h, w = x.shape
        scores = torch.rand(n, h * w)
        mask = torch.zeros(n, h * w)
        mask.scatter_(1, scores.topk(int(self.eps), dim=1).indices, 1.0)
        vals = torch.rand(n, c, h, w, dtype=x.dtype)
        m = mask.view(n, 1, h, w).to(x.dtype)
        return x * (1 - m) + vals * m


def make_ckpt(path, threat=None, seed=0, width=4):
    """A tiny 28x28 small-cnn checkpoint on fashion-mnist-mini (CLI tests)."""
    from landscape.data import load_dataset
    ds = load_dataset("fashion-mnist-mini", "test")
    kw = dict(in_channels=1, num_classes=10, image_size=28, width=width, hidden=8)
    torch.manual_seed(seed)
    m = build_model("small-cnn", **kw)
    Checkpoint.create(m, arch="small-cnn", model_kwargs=kw, dataset=ds.describe(), threat=threat).save(path)
    return path


def test_surface_equals_closed_form_and_centre():
    m = linear_model()
    x, y = data()
    dirs = random_directions(m, 2, seed=2)
    obj = LossObjective(m, x, y, "clean")
    coeffs = [-1.0, -0.5, 0.0, 0.5, 1.0]
    df, meta = compute_surface(obj, dirs, coeffs, progress=False)
    W0, b0 = m[1].weight.detach().clone(), m[1].bias.detach().clone()
    for a, b, loss in zip(df.a, df.b, df.loss):
        W = W0 + a * dirs[0]["1.weight"] + b * dirs[1]["1.weight"]
        assert loss == pytest.approx(closed_form(W, b0, x, y), rel=1e-10)
    assert meta["center"]["loss"] == pytest.approx(predict_stats(m, x, y)[0], rel=1e-12)
    assert set(meta["cragginess"]) >= {"second_diff", "total_variation", "local_minima"}
    assert set(meta["slice_cragginess"]) == {"d1", "d2"}


def test_cragginess_numbers():
    t = np.linspace(-1, 1, 11)
    assert cragginess(2 * t + 1)["second_diff"] == pytest.approx(0, abs=1e-12)
    c = cragginess(t ** 2)
    assert c["second_diff"] == pytest.approx(8 / 10 ** 2)
    assert c["total_variation"] == pytest.approx(2.0)
    assert c["local_minima"] == 1
    bowl = t[:, None] ** 2 + t[None, :] ** 2
    i = np.arange(11)
    craggy = bowl + 0.2 * (-1.0) ** (i[:, None] + i[None, :])  # a checkerboard of small bumps
    assert cragginess(craggy)["second_diff"] > 5 * cragginess(bowl)["second_diff"]
    assert local_minima(craggy) > 1 == local_minima(bowl)


def test_resume_after_interruption_gives_same_grid(tiny_cnn, tiny_batch, tmp_path):
    x, y = tiny_batch
    dirs = random_directions(tiny_cnn, 2, seed=0)
    coeffs = [-0.5, 0.0, 0.5]
    kwargs = dict(chunk_size=2, seed=7, progress=False)
    full, _ = compute_surface(LossObjective(tiny_cnn, x, y, "recomputed", RandomL0(3, "l0")), dirs, coeffs, **kwargs)
    partial = tmp_path / "p.json"

    def stop(k):
        if k == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compute_surface(LossObjective(tiny_cnn, x, y, "recomputed", RandomL0(3, "l0")), dirs, coeffs,
                        partial=partial, on_chunk=stop, **kwargs)
    assert len(json.loads(partial.read_text())["points"]) == 4
    resumed, meta = compute_surface(LossObjective(tiny_cnn, x, y, "recomputed", RandomL0(3, "l0")), dirs, coeffs,
                                    partial=partial, **kwargs)
    assert meta["complete"] and meta["points_evaluated"] == 5
    assert meta["points_per_second"] == pytest.approx(5 / meta["seconds"])
    pd.testing.assert_frame_equal(full, resumed)
    assert not partial.exists()
    # a partial file of another configuration is not mixed in
    compute_surface(LossObjective(tiny_cnn, x, y, "clean"), dirs, coeffs, partial=partial, max_chunks=1, **kwargs)
    again, meta = compute_surface(LossObjective(tiny_cnn, x, y, "recomputed", RandomL0(3, "l0")), dirs, coeffs,
                                  partial=partial, **kwargs)
    assert meta["points_evaluated"] == 9
    pd.testing.assert_frame_equal(full, again)


def test_rank_split_covers_grid(tiny_cnn, tiny_batch):
    x, y = tiny_batch
    dirs = random_directions(tiny_cnn, 1, seed=0)
    coeffs = [-1.0, -0.5, 0.0, 0.5, 1.0]
    full, meta = compute_surface(LossObjective(tiny_cnn, x, y), dirs, coeffs, progress=False)
    assert meta["dims"] == 1 and len(full) == 5
    parts = [compute_surface(LossObjective(tiny_cnn, x, y), dirs, coeffs, rank=r, world=2, progress=False)[0]
             for r in (0, 1)]
    assert list(parts[0].a) == [-1.0, 0.0, 1.0] and list(parts[1].a) == [-0.5, 0.5]
    merged = pd.concat(parts).sort_values("a").reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, full)


# ------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    return (make_ckpt(d / "l0.pt", {"norm": "l0", "eps": 3}, seed=0),
            make_ckpt(d / "other.pt", {"norm": "l0", "eps": 3}, seed=1),
            make_ckpt(d / "wide.pt", None, seed=2, width=6))


def test_cli_surface_resume_and_directions(cli_run, ckpts, tmp_path, monkeypatch):
    ck, other, wide = ckpts
    base = ["surface", ck, "--grid", "3", "--n-examples", "16", "--seed", "1"]
    r = cli_run(base + ["--out", tmp_path / "full.png", "--save-directions", tmp_path / "d.pt"])
    assert r.exit_code == 0, r.output
    full = pd.read_csv(tmp_path / "full.csv")
    meta = json.loads((tmp_path / "full.json").read_text())["meta"]
    assert meta["surfaces"][0]["loss_mode"] == "recomputed"
    assert "second_diff" in meta["cragginess"]["l0"] and "jump_ratio" in meta["cragginess"]["l0"]
    assert meta["surfaces"][0]["directions"]["kind"] == "hessian" and meta["surfaces"][0]["range"] == [-0.05, 0.05]
    assert meta["surfaces"][0]["split"] == "train"
    assert (tmp_path / "full.png").stat().st_size > 0
    assert "9 points evaluated in" in r.output and "points/s" in r.output
    assert meta["surfaces"][0]["points_per_second"] > 0
    # the centre equals the checkpoint's recomputed adversarial loss
    ckpt = Checkpoint.load(ck)
    from landscape.analysis import api
    ex = api.load_examples(ckpt, split="train", n_examples=16, seed=1)
    centre = LossObjective(ckpt.model(), ex.x, ex.y, "recomputed", api.surface_attack(ckpt.threat, seed=1), seed=1)
    c = full[(full.a == 0) & (full.b == 0)]
    assert float(c.loss.iloc[0]) == pytest.approx(centre.evaluate()[0], rel=1e-5)

    # interrupted after one chunk, then resumed: the same grid
    r = cli_run(base + ["--out", tmp_path / "res.png", "--max-chunks", "1"])
    assert r.exit_code == 0 and not (tmp_path / "res.csv").exists()
    assert "rerun" in r.stderr
    r = cli_run(base + ["--out", tmp_path / "res.png"])
    assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "res.csv"), full)

    # the saved directions give the same plane; two checkpoints side by side
    r = cli_run(["surface", ck, other, "--grid", "3", "--n-examples", "16", "--seed", "1", "--directions-from",
                 tmp_path / "d.pt", "--out", tmp_path / "two.png"])
    assert r.exit_code == 0, r.output
    two = pd.read_csv(tmp_path / "two.csv")
    np.testing.assert_allclose(two[two.checkpoint == "l0"].loss.to_numpy(), full.loss.to_numpy(), rtol=1e-5)
    assert set(json.loads((tmp_path / "two.json").read_text())["meta"]["cragginess"]) == {"l0", "other"}

    # a direction file of another architecture, a missing one, a file of another kind: one clear line
    # (before the plan line, which is on here as for a user), exit 2, earlier results untouched
    monkeypatch.setenv("LANDSCAPE_NO_PROGRESS", "0")
    before = (tmp_path / "full.csv").read_bytes()
    for given, said in ((tmp_path / "d.pt", "does not fit"), (tmp_path / "nope.pt", "directions file not found"),
                        (ck, "is not a landscape directions file")):
        r = cli_run(["surface", wide, "--directions-from", given, "--grid", "3", "--out", tmp_path / "full.png"])
        assert r.exit_code == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli_run(["surface", ck, wide, "--directions-from", tmp_path / "d.pt", "--grid", "3", "--out", tmp_path / "x.png"])
    assert r.exit_code == 2 and "does not fit" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli_run(["surface", tmp_path / "missing.pt", "--out", tmp_path / "full.png"])
    assert r.exit_code == 2 and "not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (tmp_path / "full.csv").read_bytes() == before


def test_cli_surface_two_runs_with_the_same_file_name(cli_run, tmp_path):
    """Run folders all hold checkpoint.pt: panels and cragginess are keyed by the run folder's name."""
    import json
    a = make_ckpt((tmp_path / "run_a").mkdir() or tmp_path / "run_a" / "checkpoint.pt", seed=0)
    b = make_ckpt((tmp_path / "run_b").mkdir() or tmp_path / "run_b" / "checkpoint.pt", seed=1)
    r = cli_run(["surface", a, b, "--loss", "clean", "--grid", "3", "--n-examples", "8", "--out", tmp_path / "s.png"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "s.json").read_text())["meta"]
    assert set(meta["cragginess"]) == {"run_a", "run_b"}
    assert set(pd.read_csv(tmp_path / "s.csv")["checkpoint"]) == {"run_a", "run_b"}
    assert meta["figure"] == {"shared_scale": False}
    assert "run_a: centre loss " in r.stdout
    r = cli_run(["surface", a, "--loss", "clean", "--grid", "2", "--n-examples", "8", "--out", tmp_path / "even.png"])
    assert r.exit_code == 0, r.output
    assert "run_a: the centre (0, 0) is not a grid point" in r.stdout and "nan" not in r.stdout.split("jump_ratio")[0]


def test_cli_surface_shared_scale(cli_run, tmp_path, monkeypatch):
    """--shared-scale draws the panels on one loss scale, and the results say so."""
    import json

    import landscape.plots.surface as plots
    a = make_ckpt(tmp_path / "a.pt", seed=0)
    b = make_ckpt(tmp_path / "b.pt", seed=1)
    figures = []
    draw = plots.plot_surfaces
    monkeypatch.setattr(plots, "plot_surfaces", lambda *args, **kw: figures.append(draw(*args, **kw)) or figures[-1])
    r = cli_run(["surface", a, b, "--loss", "clean", "--grid", "3", "--n-examples", "8", "--shared-scale",
                 "--out", tmp_path / "s.png"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s.json").read_text())["meta"]["figure"] == {"shared_scale": True}
    zlims = [ax.get_zlim() for ax in figures[0].axes if hasattr(ax, "get_zlim")]
    assert len(zlims) == 2 and zlims[0] == zlims[1]
    z = pd.read_csv(tmp_path / "s.csv").loss
    assert np.allclose(zlims[0], (z.min(), z.max()))


def test_jump_statistics_see_steps_that_the_range_normalised_mean_misses():
    """A smooth bowl scores low; the same bowl with a few steps scores high on both jump statistics,
    far more than the old range-normalised mean of |second difference| moves."""
    from landscape.analysis.cragginess import jump_fraction, jump_ratio
    a = np.linspace(-1, 1, 31)
    A, B = np.meshgrid(a, a, indexing="ij")
    bowls = {"quadratic": A ** 2 + B ** 2, "log-cosh": np.log(np.cosh(3 * A)) + np.log(np.cosh(3 * B)),
             "quartic": A ** 4 + B ** 2}
    for name, z in bowls.items():
        c = cragginess(z)
        assert c["jump_ratio"] < 8 and c["jump_fraction"] == 0, (name, c)
        steps = z + 0.15 * np.ptp(z) * ((A > 0.3).astype(float) + (B < -0.5))
        s = cragginess(steps)
        assert s["jump_ratio"] > 20 and s["jump_fraction"] > 0.01, (name, s)
        assert s["jump_ratio"] > 4 * c["jump_ratio"]
        # the old number sees much less of it
        assert s["jump_ratio"] / c["jump_ratio"] > 2 * s["second_diff"] / c["second_diff"]
    assert jump_ratio(bowls["quadratic"]) == pytest.approx(1.0)
    # 1-D: a line through a step counts exactly one jump among its 30 steps
    line = a ** 2 + 0.5 * (a > 0.1)
    assert jump_fraction(line) == pytest.approx(1 / 30)
    assert jump_fraction(np.zeros(10)) == 0 and np.isfinite(jump_ratio(np.zeros(10)))
