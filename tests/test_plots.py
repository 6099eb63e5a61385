"""Figures fit for a paper: colour bars and titles in words, legends off the data, axes scaled to the values."""

import numpy as np
import pandas as pd
import pytest


def test_surface_has_a_colour_bar_and_a_title_in_words(tmp_path):
    from landscape.plots.surface import plot_surfaces
    a = np.linspace(-1, 1, 5)
    z = np.add.outer(a ** 2, a ** 2)
    panel = {"a": a, "b": a, "z": z, "title": "model-x\nadversarial loss under l0(eps=20): 1-step sPGD re-run at every point",
             "cragginess": {"second_diff": 0.0175, "total_variation": 0.397, "local_minima": 1}}
    fig = plot_surfaces([panel, dict(panel, title="model-y\nclean loss")], tmp_path / "s.png")
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 2 and all(b.get_ylabel() == "loss" for b in bars)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert any("mean |second difference| 0.0175" in t and "1 local minimum" in t for t in titles), titles
    assert all(max(len(line) for line in t.split("\n")) <= 58 for t in titles)  # neighbours' titles never collide
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_surfaces_side_by_side_on_one_loss_scale(tmp_path):
    """shared_scale: the same colour bar range and 3-D z-axis for every panel (the lines' y-axes too);
    without it each panel spans its own values."""
    from landscape.plots.surface import plot_surfaces
    a = np.linspace(-1, 1, 5)
    bowl = np.add.outer(a ** 2, a ** 2)
    panels = [{"a": a, "b": a, "z": bowl, "title": "smooth"}, {"a": a, "b": a, "z": 5 * bowl + 1, "title": "steep"}]

    def scales(fig):
        bars = [ax.get_ylim() for ax in fig.axes if ax.get_label() == "<colorbar>"]
        zs = [ax.get_zlim() for ax in fig.axes if hasattr(ax, "get_zlim")]
        return bars, zs
    bars, zs = scales(plot_surfaces(panels, tmp_path / "own.png"))
    assert bars[0] != bars[1] and zs[0] != zs[1]
    bars, zs = scales(plot_surfaces(panels, tmp_path / "shared.png", shared_scale=True))
    assert bars[0] == bars[1] and zs[0] == zs[1]
    assert bars[0][0] <= 0 and bars[0][1] >= 11 and np.allclose(zs[0], (0, 11))
    lines = [dict(p, z=p["z"][:, 2]) for p in panels]
    fig = plot_surfaces(lines, shared_scale=True)
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()
    flat = [dict(p, z=np.full((5, 5), 2.0)) for p in panels]      # a constant surface still gets a scale
    bars, _ = scales(plot_surfaces(flat, shared_scale=True))
    assert bars[0][0] < 2.0 < bars[0][1]


def test_lipschitz_panels_in_rows_with_one_legend_outside(tmp_path):
    from landscape.plots.lipschitz import plot_lipschitz
    rows = [{"variant": v, "direction": 0, "radius": r, "loss_lip": 0.01, "grad_lip": 1.5, "grad_lip_fixed": 1.5,
             "delta_l2": 1e-8 if r < 0.1 else 0.2, "loc_change": 0.0 if r < 0.1 else 0.01}
            for v in ("hard-ce", "soft-ce", "hard-tradeoff") for r in (1e-3, 1e-2, 1e-1)]
    fig = plot_lipschitz(pd.DataFrame(rows), tmp_path / "l.png", title="t")
    w, h = fig.get_size_inches()
    assert w / h < 3  # five panels in two rows, not one 5:1 strip
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)
    # identical lines (every variant has the same values) stay distinguishable: different markers
    markers = {line.get_marker() for line in fig.axes[0].get_lines()}
    assert len(markers) == 3


def test_overlap_axis_spans_the_values_and_names_the_attacks(tmp_path):
    from landscape.plots.interp import plot_overlap
    df = pd.DataFrame({"iou": [0.0, 0.02, 0.05, 0.12], "success_onestep": [True, False, True, True],
                       "success_strong": [True, True, True, False]})
    fig = plot_overlap(df, tmp_path / "o.png", first="1-step sPGD", second="sparse-AutoAttack")
    ax = fig.axes[1]  # the IoU panel (no overlap_rate column: the first panel is hidden)
    assert ax.get_xlim()[1] <= 0.2
    text = fig._suptitle.get_text()
    assert "1-step sPGD" in text and "sparse-AutoAttack" in text
    assert len(fig.legends) == 1 and not any(a.get_legend() for a in fig.axes)


def test_results_table_legend_keeps_the_robust_patch_plain(tmp_path):
    import matplotlib.pyplot as plt

    from landscape.plots import figures
    captured = {}
    real = figures.save_figure

    def keep(fig, path, **kw):
        captured["fig"] = fig
        return real(fig, path, close=False, **kw)

    figures.save_figure = keep
    try:
        figures.results_table(tmp_path, rows=[{"label": "a", "clean": 0.8, "worst-case": 0.1, "co": True},
                                              {"label": "b", "clean": 0.7, "worst-case": 0.3, "co": False}], name="t3")
    finally:
        figures.save_figure = real
    legend = captured["fig"].axes[0].get_legend()
    hatches = {t.get_text(): p.get_hatch() for t, p in zip(legend.get_texts(), legend.get_patches())}
    assert hatches["robust (worst case)"] in (None, "") and hatches["robust, catastrophic overfitting flagged"] == "//"
    plt.close(captured["fig"])


@pytest.mark.parametrize("n_labels", [1, 3])
def test_hessian_ranks_are_whole_numbers(tmp_path, monkeypatch, n_labels):
    import matplotlib.pyplot as plt

    from landscape.plots import hessian
    captured = {}
    monkeypatch.setattr(hessian, "_save", lambda fig, path: captured.setdefault("fig", fig))
    df = pd.DataFrame([{"label": f"m{j}", "rank": k, "eigenvalue": 40.0 / k / (j + 1), "converged": True}
                       for j in range(n_labels) for k in range(1, 4)])
    hessian.plot_spectra(df, tmp_path / "h.png")
    fig = captured["fig"]
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert "log scale" in ax.get_ylabel()
    assert len(fig.axes) == (1 if n_labels == 1 else 2)  # no one-bar λ_max panel for a single model
    plt.close(fig)
