"""Options checked in the library, where a notebook user meets them too, and the progress of
attacks (issue 14). The same cases through the CLI are in tests/cli/test_bad_input.py."""

from __future__ import annotations

import pytest
import torch

from landscape.errors import LandscapeError


def test_ranges_are_counted_before_they_are_built():
    from landscape.validate import MAX_POINTS, parse_range
    assert parse_range("0:1:0.25", "alpha") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert parse_range("1e-3,1e-2", "radii", positive=True) == [1e-3, 1e-2]
    assert len(parse_range(f"1:{MAX_POINTS}:1", "alpha")) == MAX_POINTS
    for text, pattern in [("0:1e9:1e-9", "at most 10,000"), ("0:inf:1", "finite"), ("nan,1", "finite"),
                          ("1,inf", "finite"), ("0:1:0", "positive"), ("1:0:0.1", "below"), ("a:b", "cannot read"),
                          ("", "cannot read")]:
        with pytest.raises(LandscapeError, match=pattern) as e:
            parse_range(text, "alpha")
        assert "`alpha`" in str(e.value)  # the argument in backquotes: the CLI prints --alpha
    with pytest.raises(LandscapeError, match="positive"):
        parse_range("0,1", "radii", positive=True)


def test_library_functions_check_their_values():
    from landscape.analysis.interp import interpolate_perturbations
    from landscape.analysis.lipschitz import lipschitz_estimates
    from landscape.validate import solver_options
    x, y = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    never = lambda *a, **k: (_ for _ in ()).throw(AssertionError("work started"))  # noqa: E731
    with pytest.raises(LandscapeError, match="alpha"):
        interpolate_perturbations(torch.nn.Identity(), x, y, never, [0.0, float("nan")])
    with pytest.raises(LandscapeError, match="radii"):
        lipschitz_estimates(torch.nn.Identity(), x, y, never, [float("nan")])
    for kw, pattern in [({"maxiter": 0}, "maxiter"), ({"tol": -1}, "tol"), ({"tol": float("inf")}, "tol"),
                        ({"trace_samples": 0}, "trace_samples"), ({"topk": 0}, "topk")]:
        with pytest.raises(LandscapeError, match=pattern):
            solver_options(**kw)


def test_recipe_fields_are_typed():
    from landscape.training.presets import get_preset
    from landscape.training.recipe import Recipe
    r = get_preset("fast-ls-l0")
    good = r.with_settings(["trades_beta=6", "noise=off", "milestones=[0.3, 0.6]", "eps=8", "train_eps=null",
                            'attack_kwargs={"alpha": 0.5}', "sat_start=none", "steps=2"])
    assert (good.trades_beta, good.noise, good.milestones, good.eps, good.train_eps) == (6.0, False, (0.3, 0.6), 8.0, None)
    assert good.attack_kwargs == {"alpha": 0.5} and good.steps == 2 and good.sat_start is None
    for item, pattern in [("trades_beta=abc", "trades_beta"), ("noise=maybe", "noise"), ("attack_kwargs={bad", "attack_kwargs"),
                          ("milestones=[2,-1]", "milestones"), ("steps=2.5", "steps"), ("lr=inf", "lr"),
                          ("epochs=", "epochs"), ("no_such=1", "unknown recipe field")]:
        with pytest.raises(LandscapeError, match=pattern):
            r.with_settings([item])
    for bad in [{"noise": "maybe"}, {"trades_beta": "abc"}, {"attack_kwargs": "{bad"}, {"milestones": [2, -1]},
                {"epochs": "ten"}, {"lr": float("nan")}]:
        with pytest.raises(LandscapeError):
            Recipe.from_dict({**r.to_dict(), **bad})


def test_sample_sizes_and_models():
    from landscape.data import load_dataset
    from landscape.models import build_model
    test = load_dataset("fashion-mnist-mini", "test")
    assert len(test.subset(1000)) == 1000 and len(test.subset(0)) == 1000
    with pytest.raises(LandscapeError, match="more than the 1,000 images") as e:
        test.subset(1001)
    assert "`n_examples`" in str(e.value)
    with pytest.raises(LandscapeError, match="does not exist"):
        load_dataset("fashion-mnist-mini", "test", data_dir="/nonexistent/folder")
    for kw in ({"width": -2}, {"hidden": 0}, {"width": float("nan")}, {"width": "wide"}):
        with pytest.raises(LandscapeError, match="positive"):
            build_model("small-cnn", **kw)


def test_attack_progress_reports_stages_iterations_and_survivors(tiny_cnn, tiny_batch):
    from landscape.attacks.saa import SparseAutoAttack
    from landscape.progress import on_attack
    x, y = tiny_batch
    y = tiny_cnn(x).argmax(1)  # every example starts correctly classified
    events = []
    saa = SparseAutoAttack(eps=1, steps=7, n_queries=9, seed=0)
    with on_attack(events.append):
        saa(tiny_cnn, x, y)
    done = [e for e in events if e["done"]]
    assert [(e["stage"], e["index"], e["stages"], e["total"]) for e in done][:1] == [("spgd", 1, 3, 7)]
    for e in done:
        assert 1 <= e["step"] and e["survivors"] is not None and e["survivors"] <= len(y)
        assert e["eta_s"] == 0.0 and e["elapsed_s"] >= 0
    assert done[0]["step"] <= 7 + 2   # one forward per iteration (+ the clean check)
    # nobody watching: no hook at all, and the same result
    assert torch.equal(saa(tiny_cnn, x, y), SparseAutoAttack(eps=1, steps=7, n_queries=9, seed=0)(tiny_cnn, x, y))
    assert not tiny_cnn._forward_hooks


def test_progress_text_and_start_line(tiny_cnn, tiny_batch, monkeypatch, capsys):
    from landscape import progress
    from landscape.attacks.spgd import SparsePGD
    from landscape.evaluation import evaluate
    rep = progress.AttackReport("spgd", 100, 1, 3)
    rep.steps, rep.survivors = 25, 7
    text = rep.text()
    assert text.startswith("spgd 1/3: it 25/100, 7 survivors, ~") and text.endswith("left")
    monkeypatch.setenv("LANDSCAPE_NO_PROGRESS", "0")
    x, y = tiny_batch
    evaluate(tiny_cnn, x, y, SparsePGD(eps=1, steps=3, seed=0), batch_size=3)
    first = capsys.readouterr().err.strip().splitlines()[0]
    assert first.startswith("eval: 6 images, spgd at l0(eps=1), 3 steps")


def test_progress_in_a_log_file_is_redrawn_every_half_minute(monkeypatch, tmp_path):
    """On a pipe or a log file a bar redraws every LANDSCAPE_PROGRESS_INTERVAL seconds (default 30),
    not ten times a second; on a terminal every 0.1 s."""
    import sys

    from landscape import progress

    monkeypatch.delenv("LANDSCAPE_PROGRESS_INTERVAL", raising=False)
    monkeypatch.delenv("LANDSCAPE_NO_PROGRESS", raising=False)
    with open(tmp_path / "log", "w") as log:
        monkeypatch.setattr(sys, "stderr", log)
        assert progress.refresh_seconds() == 30.0
        monkeypatch.setenv("LANDSCAPE_PROGRESS_INTERVAL", "5")
        b = progress.bar(total=1000, desc="work")
        assert b.mininterval == 5.0
        for _ in range(1000):
            b.update(1)
        b.close()
    text = (tmp_path / "log").read_text()
    assert text.count("work") <= 3, text      # drawn at the start (and the end), not 1,000 times
    monkeypatch.setattr(sys, "stderr", type("T", (), {"isatty": lambda self: True, "write": print})())
    assert progress.refresh_seconds() == 0.1


def test_attack_progress_leaves_the_bars_rate_and_time_left_true(monkeypatch, tmp_path):
    """An attack's progress text redraws the bar it runs in; that must not touch what tqdm measures
    its rate from. Before the fix a surface in a log showed 6.25 points/s (and a sixth of the real
    time left) while it ran 1.1 points/s. A fake clock: 120 points of 1 s, each an attack whose hook
    fires every 0.5 s."""
    import sys
    import time as _time

    from landscape import progress

    clock = [1000.0]
    monkeypatch.setattr(_time, "time", lambda: clock[0])
    monkeypatch.setattr(_time, "perf_counter", lambda: clock[0])
    monkeypatch.delenv("LANDSCAPE_NO_PROGRESS", raising=False)
    monkeypatch.setenv("LANDSCAPE_PROGRESS_INTERVAL", "30")
    with open(tmp_path / "log", "w") as log:
        monkeypatch.setattr(sys, "stderr", log)
        b = progress.bar(total=961, desc="surface", unit="pt")
        b._time = lambda: clock[0]
        b.start_t = b.last_print_t = clock[0]
        for _ in range(120):
            rep = progress.attack_reporter("spgd", 5, 1, 1)
            for _ in range(2):
                clock[0] += 0.5
                rep.hook(None, (), None)
            rep.close()
            b.update(1)
        rate = b.format_dict["rate"]
        b.close()
    assert rate is not None and abs(rate - 1.0) < 0.1, rate
    assert (tmp_path / "log").read_text().count("surface") <= 10   # still about one line per 30 s
