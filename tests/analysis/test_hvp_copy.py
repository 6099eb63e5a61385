"""The Hessian operator's rewritten copy of a model (landscape.analysis.hvp_copy): the same Hessian as
the dense float64 one and as the plain model's products, the caller's model untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.func import hessian as dense_hessian

from landscape.analysis import hvp_copy as H
from landscape.analysis.hessian import hessian_operator
from landscape.errors import LandscapeError
from landscape.models import build_model

ALL = tuple(H.REWRITES)


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def mixed_net():
    """Every convolution geometry the rewrite handles: one input channel (the patches path), stride
    2, dilation with groups, a non-square kernel without bias, a ceil-mode pool before a ReLU."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2), nn.ReLU(),
        nn.Conv2d(4, 6, (3, 5), padding=(0, 2), bias=False), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.Flatten(), nn.Linear(12, 3)).eval()


def tiny_preact():
    torch.manual_seed(0)
    m = build_model("preact-resnet18", in_channels=1, num_classes=3, width=1 / 32)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
    return m.eval()


def tiny_small_cnn():
    torch.manual_seed(0)
    return build_model("small-cnn", in_channels=1, num_classes=3, image_size=8, width=2, hidden=6).eval()


def dense(model, x, y):
    m = copy.deepcopy(model).double()
    named = dict(m.named_parameters())
    names = list(named)
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    flat0 = torch.cat([named[n].detach().reshape(-1) for n in names])

    def f(flat):
        ps = {n: c.view(s) for n, c, s in zip(names, torch.split(flat, sizes), shapes)}
        return F.cross_entropy(functional_call(m, ps, (x.double(),)), y)

    return dense_hessian(f)(flat0).detach().numpy()


@pytest.mark.parametrize("build,side", [(tiny_small_cnn, 8), (mixed_net, 16), (tiny_preact, 8)])
def test_rewritten_products_equal_the_dense_float64_hessian(build, side):
    """small-cnn and the mixed net against the dense Hessian; the PreAct ResNet (stride-2 and 1x1
    shortcut convolutions, BatchNorm, a ReLU module used twice; too many parameters for a dense
    Hessian here) against the plain model's products, which test_hessian.py holds to dense ones."""
    model = build().double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 1, side, side, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (5,), generator=g)
    n_params = sum(p.numel() for p in model.parameters())
    Hd = dense(model, x, y) if n_params < 2000 else None
    assert (Hd is None) == (build is tiny_preact)
    op = hessian_operator(model, x, y, batch_size=5, dtype="float64", rewrites=ALL)
    plain = hessian_operator(model, x, y, batch_size=5, dtype="float64", rewrites=())
    assert op.rewrites == ALL and plain.rewrites == () and plain.graph_model is model
    kinds = {type(m) for m in op.graph_model.modules()}
    assert H.HessianConv2d in kinds and nn.Conv2d not in kinds and nn.ReLU not in kinds
    rng = np.random.RandomState(0)
    for _ in range(3):              # the first product builds the graphs, the others reuse them
        v = rng.standard_normal(op.shape[0])
        if Hd is not None:
            assert rel(op @ v, Hd @ v) < 1e-10
        assert rel(op @ v, plain @ v) < 1e-10
    # the copy shares the caller's parameters, and the caller's modules are untouched
    assert all(a is b for a, b in zip(op.graph_model.parameters(), model.parameters()))
    assert not any(type(m).__module__ == H.__name__ for m in model.modules())


def test_float32_on_the_cpu_rewrites_by_default_and_agrees_with_the_plain_products():
    torch.manual_seed(0)
    model = build_model("small-cnn", in_channels=1, num_classes=10, image_size=28, width=8, hidden=16).eval()
    x = torch.rand(24, 1, 28, 28)
    y = torch.randint(0, 10, (24,))
    op = hessian_operator(model, x, y, batch_size=12)
    plain = hessian_operator(model, x, y, batch_size=12, rewrites=())
    assert op.rewrites == ALL and op.describe()["rewrites"] == list(ALL)
    assert hessian_operator(model, x, y, batch_size=12, dtype="float64").rewrites == ()
    v = torch.randn(op.shape[0])
    ref = hessian_operator(model.double(), x, y, batch_size=12, dtype="float64", rewrites=()).hvp(v.double())
    model.float()
    for _ in range(2):
        a, b = op.hvp(v).double(), plain.hvp(v).double()
        assert (a - ref).norm() / ref.norm() < 1e-5 and (b - ref).norm() / ref.norm() < 1e-5
    assert torch.allclose(op.gradient(), plain.gradient(), rtol=1e-5, atol=1e-7)
    assert abs(op.loss_value() - plain.loss_value()) < 1e-6
    # the cached graphs follow an in-place change of the caller's weights
    with torch.no_grad():
        model.features[0].weight.mul_(1.5)
    fresh = hessian_operator(model, x, y, batch_size=12, rewrites=())
    assert (op.hvp(v) - fresh.hvp(v)).norm() / fresh.hvp(v).norm() < 1e-5


def test_train_mode_batchnorm_and_bf16_autocast_through_the_copy():
    model = tiny_preact()
    x = torch.rand(6, 1, 8, 8)
    y = torch.randint(0, 3, (6,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    op = hessian_operator(model, x, y, batch_size=3, mode="train")
    plain = hessian_operator(model, x, y, batch_size=3, mode="train", rewrites=())
    v = torch.randn(op.shape[0])
    for _ in range(2):
        assert (op.hvp(v) - plain.hvp(v)).norm() / plain.hvp(v).norm() < 1e-4
    for k, val in model.state_dict().items():
        assert torch.equal(val, before[k]), k          # running statistics untouched
    assert not model.training
    # under bf16 autocast the rewritten convolutions fall back to the plain ones
    a, b = op.with_autocast("bfloat16").hvp(v), plain.with_autocast("bfloat16").hvp(v)
    assert torch.isfinite(a).all() and (a - b).norm() / b.norm() < 0.1


def test_primitives_pass_gradgradcheck():
    """forward, dgrad and wgrad, each differentiated twice, against finite differences (float64)."""
    for conv in (nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(4, 4, (3, 2), stride=2, padding=(1, 0), groups=2),
                 nn.Conv2d(5, 2, 3, dilation=2, padding=2)):
        geo = H._Geometry(conv)
        cin = conv.in_channels
        a = torch.randn(2, cin, 6, 5, dtype=torch.float64, requires_grad=True)
        w = conv.weight.detach().double().clone().requires_grad_()
        out = F.conv2d(a, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)
        g = torch.randn_like(out, requires_grad=True)
        assert torch.allclose(H._forward(a, w, geo), out)
        assert torch.autograd.gradgradcheck(lambda a, w: H._forward(a, w, geo), (a, w))
        assert torch.autograd.gradgradcheck(lambda g, w: H._dgrad(g, w, a.shape, geo), (g, w))
        assert torch.autograd.gradgradcheck(lambda g, a: H._wgrad(g, a, w.shape, geo), (g, a))
        ref_a, ref_w = torch.autograd.grad(out, (a, w), g)
        assert torch.allclose(H._dgrad(g, w, a.shape, geo), ref_a)
        assert torch.allclose(H._wgrad(g, a, w.shape, geo), ref_w)
        if geo.few_channels:       # with the constant input's patches computed once, as for the images
            rows = H.input_rows(a.detach(), geo)
            c = a.detach()
            assert torch.allclose(H._forward(c, w, geo, rows), out)
            assert torch.autograd.gradgradcheck(lambda w: H._forward(c, w, geo, rows), (w,))
            assert torch.autograd.gradgradcheck(lambda g: H._wgrad(g, c, w.shape, geo, rows), (g,))
            assert torch.allclose(H._wgrad(g, c, w.shape, geo, rows), ref_w)
    assert H._Geometry(nn.Conv2d(2, 3, 3, padding=1)).few_channels
    assert not H._Geometry(nn.Conv2d(4, 4, 3, stride=2)).few_channels


def test_the_images_are_unfolded_once_per_batch_not_per_product(monkeypatch):
    """The first layer's patches of the images are kept by the cached graph: a product after the
    first unfolds nothing (it unfolded twice per batch before)."""
    model = tiny_small_cnn()
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 3, (6,))
    op = hessian_operator(model, x, y, batch_size=3)
    plain = hessian_operator(model, x, y, batch_size=3, rewrites=())
    calls = []
    unfold = F.unfold
    # (the tiny net's other convolutions have few channels too, but inputs that need gradients)
    monkeypatch.setattr(F, "unfold", lambda t, *a, **k: (t.shape[1] == 1 and calls.append(1)) or unfold(t, *a, **k))
    v = torch.randn(op.shape[0])
    first = op.hvp(v)
    assert len(calls) == 2                      # one forward per batch builds the graphs
    second = op.hvp(v)
    assert len(calls) == 2 and torch.equal(first, second)
    assert (second - plain.hvp(v)).norm() / second.norm() < 1e-5
    # the patches are saved tensors of the graph, so the cache's size estimate counts them
    shapes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.append(tuple(t.shape)) or t, lambda t: t):
        loss = F.cross_entropy(op.graph_model(x[:3]), y[:3])
        torch.autograd.grad(loss, list(op.graph_model.parameters()), create_graph=True)
    assert (3 * 8 * 8, 9) in shapes


def test_relu_and_pool_keep_their_masks_constant_and_pool_moves_before_relu():
    model = tiny_small_cnn()
    rewritten = H.prepare(model)
    assert [type(m).__name__ for m in rewritten.features][3:5] == ["HessianMaxPool2d", "HessianReLU"]
    assert [type(m).__name__ for m in model.features][3:5] == ["ReLU", "MaxPool2d"]    # the model's own
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(rewritten(x), model(x), atol=1e-6)
    # a backward through them does not depend on their input (native ReLU and pool backward do, with
    # a zero derivative that the double backward would materialise)
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    w = torch.randn(2, 3, 2, 2)
    for ours, native in ((H.HessianReLU(), nn.ReLU()), (H.HessianMaxPool2d(2), nn.MaxPool2d(2))):
        pool = isinstance(native, nn.MaxPool2d)
        weight = w if pool else torch.randn(2, 3, 4, 4)
        (g_ours,) = torch.autograd.grad((ours(z) * weight).sum(), z, create_graph=True)
        (g_native,) = torch.autograd.grad((native(z) * weight).sum(), z, create_graph=True)
        assert torch.equal(g_ours, g_native)
        assert g_native.requires_grad and not g_ours.requires_grad


def test_bad_rewrites_are_refused_in_words():
    model = tiny_small_cnn()
    x, y = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    with pytest.raises(LandscapeError, match="unknown rewrites 'fast'"):
        hessian_operator(model, x, y, rewrites=("fast",))
    with pytest.raises(LandscapeError, match="'auto' or a tuple"):
        hessian_operator(model, x, y, rewrites="conv")
    scripted = torch.jit.script(tiny_small_cnn())
    assert hessian_operator(scripted, x, y).rewrites == ()
    with pytest.raises(LandscapeError, match="plain nn.Module"):
        hessian_operator(scripted, x, y, rewrites=ALL)


def test_recipe_loss_with_two_forwards_through_the_copy():
    """The recipe loss (trade-off of a clean and an adversarial forward, soft labels) runs the copy
    twice per batch; its products equal the plain model's (float64, every rewrite forced)."""
    from landscape.analysis.hessian import LossSpec
    model = tiny_small_cnn().double()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 1, 8, 8, generator=g, dtype=torch.float64)
    x_adv = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    y = torch.randint(0, 3, (6,), generator=g)
    soft = torch.softmax(torch.randn(6, 3, generator=g), dim=1)
    recipe = {"name": "t", "norm": "l0", "eps": 20, "loss": "tradeoff", "tradeoff_alpha": 0.25, "soft_labels": True}
    kw = dict(x_adv=x_adv, targets=soft, loss=LossSpec("recipe", recipe=recipe), batch_size=3, dtype="float64")
    op = hessian_operator(model, x, y, rewrites=ALL, **kw)
    plain = hessian_operator(model, x, y, rewrites=(), **kw)
    v = np.random.RandomState(3).standard_normal(op.shape[0])
    for _ in range(2):
        assert rel(op @ v, plain @ v) < 1e-10
