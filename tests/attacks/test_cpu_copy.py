"""The rewrites of the attacks' CPU copy (`attacks.cpu_copy`): the first layer's input gradient by one
GEMM and shifted additions, equal to the native convolution's gradient; max-pooling before the ReLU,
bit for bit the same function and input gradient; both used by the attacks' copy, never on the
caller's model."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.attacks import SparsePGD, base
from landscape.attacks.cpu_copy import (FastInputGradConv2d, applies, conv2d_input_grad, pool_before_relu,
                                        prepare, use_fast_input_grad)
from landscape.errors import LandscapeError
from landscape.models import build_model


@pytest.mark.parametrize("cin,cout,k,pad,hw", [
    (1, 16, 3, 1, (12, 12)), (3, 8, 3, 1, (9, 11)), (2, 5, 5, 2, (8, 8)),
    (1, 4, 3, 0, (7, 9)), (3, 6, (3, 5), (0, 2), (10, 6)), (4, 3, 5, 4, (6, 6)), (1, 2, 7, 1, (5, 5)),
])
def test_the_input_gradient_equals_the_native_one_in_float64(cin, cout, k, pad, hw):
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, padding=pad).double()
    x = torch.rand(3, cin, *hw, dtype=torch.float64, requires_grad=True)
    out = conv(x)
    g = torch.randn_like(out)
    (want,) = torch.autograd.grad(out, x, g)
    got = conv2d_input_grad(g, conv.weight, conv.padding, hw)
    assert got.shape == x.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_the_switched_conv_has_the_same_forward_and_every_gradient():
    torch.manual_seed(1)
    ref = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1), nn.Flatten(),
                        nn.Linear(4 * 36, 3)).double()
    fast = copy.deepcopy(ref)
    assert use_fast_input_grad(fast) == 1                              # the 3-channel layer only
    assert type(fast[0]) is FastInputGradConv2d and type(fast[2]) is nn.Conv2d
    x = torch.rand(5, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 3, (5,))
    grads = []
    for m in (ref, fast):
        loss = F.cross_entropy(m(x), y)
        gx, *gp = torch.autograd.grad(loss, [x, *m.parameters()], create_graph=True)
        (ggx,) = torch.autograd.grad(gx.square().sum(), x)          # double backward through it
        grads.append([gx, ggx, *gp])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), ref(x), rtol=0, atol=0)


def test_the_switched_conv_under_bf16_autocast_is_close_to_the_native_one():
    torch.manual_seed(2)
    conv = nn.Conv2d(1, 16, 3, padding=1)
    fast = copy.deepcopy(conv)
    use_fast_input_grad(fast)
    x = torch.rand(4, 1, 10, 10, requires_grad=True)
    out = []
    for m in (conv, fast):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
        (g,) = torch.autograd.grad(y.float().square().sum(), x)
        assert g.dtype == torch.float32
        out.append(g)
    assert (out[0] - out[1]).abs().max() <= 2e-2 * out[0].abs().max()


def test_only_the_convolutions_it_is_made_for_are_switched():
    assert applies(nn.Conv2d(3, 8, 3, padding=1))
    assert not applies(nn.Conv2d(16, 8, 3, padding=1))            # many input channels: oneDNN is fine
    assert not applies(nn.Conv2d(3, 8, 3, stride=2, padding=1))
    assert not applies(nn.Conv2d(3, 8, 3, padding=1, dilation=2))
    assert not applies(nn.Conv2d(2, 2, 3, padding=1, groups=2))
    assert not applies(nn.Conv2d(3, 8, 3, padding="same"))
    assert not applies(nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"))
    assert not applies(nn.Conv1d(3, 8, 3))


def test_max_pooling_before_the_relu_is_the_same_function_and_gradient_bit_for_bit():
    torch.manual_seed(4)
    model = build_model("small-cnn", in_channels=1, num_classes=10, image_size=12, width=4, hidden=8).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    swapped = copy.deepcopy(model)
    assert pool_before_relu(swapped) == 2                              # both pooling blocks of small-cnn
    kinds = [type(m) for m in swapped.features]
    assert kinds.index(nn.MaxPool2d) + 1 == kinds.index(nn.ReLU, kinds.index(nn.MaxPool2d))
    x = torch.rand(6, 1, 12, 12)
    x[0, :, :6] = 0.5                                                  # flat regions: ties inside pool windows
    outs = []
    for m in (model, swapped):
        xi = x.clone().requires_grad_()
        out = m(xi)
        (g,) = torch.autograd.grad(out.logsumexp(1).sum(), xi)
        outs.append((out, g))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    keep = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True))  # a pool that returns indices: left alone
    assert pool_before_relu(keep) == 0 and type(keep[0]) is nn.ReLU


def test_the_attacks_copy_is_rewritten_and_finds_the_same_examples(tiny_cnn):
    torch.manual_seed(3)
    x, y = torch.rand(12, 1, 12, 12), torch.randint(0, 3, (12,))
    net = base.attack_model(tiny_cnn, x, "eval")
    assert any(type(m) is FastInputGradConv2d for m in net.modules())
    assert not any(type(m) is FastInputGradConv2d for m in tiny_cnn.modules())   # the caller's is untouched
    saved = base.REWRITE_COPY
    try:
        runs = []
        for rewrites in (saved, ()):
            base.REWRITE_COPY = rewrites
            runs.append([SparsePGD(5, 20, projected=p, seed=0)(tiny_cnn, x, y) for p in (False, True)])
    finally:
        base.REWRITE_COPY = saved
    for a, b in zip(*runs):
        with torch.no_grad():
            assert torch.equal(tiny_cnn(a).argmax(1), tiny_cnn(b).argmax(1))
        assert (a - b).abs().max() < 1e-4


def test_the_callers_small_cnn_keeps_its_layers_in_order():
    model = build_model("small-cnn", in_channels=1, num_classes=10, image_size=12, width=4, hidden=8).eval()
    before = [type(m) for m in model.features]
    x, y = torch.rand(4, 1, 12, 12), torch.randint(0, 10, (4,))
    SparsePGD(3, 2, seed=0)(model, x, y)
    net = base.attack_model(model, x, "eval")
    assert [type(m) for m in model.features] == before
    assert [type(m) for m in net.features] != before                    # the copy is rewritten


def test_prepare_applies_the_named_rewrites_and_refuses_an_unknown_one():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    prepare(model, ("pool_before_relu",))
    assert [type(m) for m in model] == [nn.Conv2d, nn.MaxPool2d, nn.ReLU]
    prepare(model)
    assert type(model[0]) is FastInputGradConv2d
    with pytest.raises(LandscapeError, match="unknown rewrites 'no-such'"):
        prepare(model, ("input_grad", "no-such"))
