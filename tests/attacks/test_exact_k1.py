"""Exact reference for l0 attacks at k=1: exhaustive search over every pixel and colour-cube corner."""

import itertools

import torch

from landscape.attacks import SparsePGD, SparseRS
from landscape.threat import ThreatModel

from .helpers import linear_model


def exhaustive_k1(model, x, y):
    """Bool per example: some single pixel set to some corner of {0,1}^C misclassifies it.

    For a linear model the margin is concave in one pixel's values, so its minimum over the colour
    cube is at a corner: this search is exact for the k=1 threat model.
    """
    n, c, h, w = x.shape
    corners = torch.tensor(list(itertools.product([0.0, 1.0], repeat=c)))      # (2^c, c)
    found = torch.zeros(n, dtype=torch.bool)
    with torch.no_grad():
        for i in range(h):
            for j in range(w):
                for corner in corners:
                    xa = x.clone()
                    xa[:, :, i, j] = corner
                    found |= model(xa).argmax(1) != y
    return found


def test_spgd_plus_rs_find_the_k1_vulnerable_points():
    model = linear_model((3, 5, 5), classes=3, seed=0, scale=3.0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(120, 3, 5, 5, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)                      # clean accuracy 100%
    exact = exhaustive_k1(model, x, y)
    assert 20 <= int(exact.sum()) <= 100, "the test needs a decent number of vulnerable and robust points"

    x1 = SparsePGD(eps=1, steps=100, seed=0)(model, x, y)
    with torch.no_grad():
        fooled = model(x1).argmax(1) != y
    rest = (~fooled).nonzero().squeeze(1)
    x2 = SparseRS(eps=1, n_queries=300, seed=0)(model, x[rest], y[rest])
    with torch.no_grad():
        fooled[rest] |= model(x2).argmax(1) != y[rest]
    tm = ThreatModel("l0", 1)
    assert tm.is_valid(x, x1).all() and tm.is_valid(x[rest], x2).all()
    # soundness: nothing outside the exact set can be fooled with one pixel
    assert not (fooled & ~exact).any()
    recall = float((fooled & exact).sum()) / float(exact.sum())
    assert recall >= 0.95, f"sPGD + Sparse-RS found {recall:.1%} of the k=1 vulnerable points"


def test_sparse_rs_alone_is_exact_on_k1_with_enough_queries():
    """With 1 pixel and 2 corners (grayscale 4x4: 32 candidates), 400 queries cover the space."""
    model = linear_model((1, 4, 4), classes=3, seed=1, scale=4.0)
    x = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)
    exact = exhaustive_k1(model, x, y)
    assert exact.any() and not exact.all()
    xa = SparseRS(eps=1, n_queries=400, seed=0)(model, x, y)
    with torch.no_grad():
        fooled = model(xa).argmax(1) != y
    assert torch.equal(fooled, exact)
