"""What the attacks' CPU copy of a model changes, and why: two rewrites that compute the same
function, each faster on the CPU (:func:`prepare`, called by :func:`landscape.attacks.base.attack_model`
on the channels_last copy it makes; never on the caller's model).

**The first layer's input gradient.** An attack differentiates the loss with respect to the image, so
every step pays the input gradient of the model's first convolution (1 input channel for
Fashion-MNIST, 3 for CIFAR). oneDNN computes it slowly on the CPU when the input has few channels:
for small-cnn's first layer (1 -> 16 channels, 28x28) it costs as much as the 16 -> 16 layer behind
it, though it does a sixteenth of the work. The same gradient is one matrix product and
``kh * kw`` shifted additions:

    h[c, i, j, n, y, x] = sum_o  w[o, c, i, j] * g[n, o, y, x]          (one GEMM)
    dx[n, c, y + i - ph, x + j - pw] += h[c, i, j, n, y, x]             (kh * kw slice additions)

which is 5-7x faster on this project's CPU for one input channel and about 2x for three on one
thread (3.3-4.7x and 1.5x on two), and equal to the native gradient to float rounding
(``benchmarks/bench_cpu_copy.py``; benchmarks/RESULTS.md, "First-layer input gradient").
:func:`use_fast_input_grad` switches, in place, every plain ``nn.Conv2d`` that it applies to
(stride 1, dilation 1, one group, zero padding given as numbers, at most :data:`MAX_IN_CHANNELS`
input channels) to :class:`FastInputGradConv2d`, which computes the same forward and returns this
gradient. Weight and bias gradients, when asked for, are ``torch.nn.grad.conv2d_weight``'s and the
sum of the output gradient; the input gradient is
differentiable (``create_graph=True`` works), and under autocast it is computed in the dtype of the
incoming gradient, as the native one is.

**Max-pooling before the ReLU.** ``maxpool(relu(z)) == relu(maxpool(z))`` exactly, because ReLU is
non-decreasing, and the input gradients agree too: the pool routes the gradient to the same element
either way (the first maximum of each window, which ties keep), and the ReLU passes it or not by the
sign of that same value. :func:`pool_before_relu` swaps every ``nn.ReLU`` directly followed by an
``nn.MaxPool2d`` inside an ``nn.Sequential``, so the ReLU and its backward run on a quarter of the
values (small-cnn: forward and input-gradient backward passes on 256 images 1.05-1.10x faster than
with the first rewrite alone, ``bench_cpu_copy.py``; outputs and gradients bit for bit equal, tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: convolutions with at most this many input channels get the GEMM-and-shift input gradient
MAX_IN_CHANNELS = 4


def conv2d_input_grad(grad_out: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int],
                      input_hw: tuple[int, int]) -> torch.Tensor:
    """Gradient of a stride-1, dilation-1, ungrouped ``conv2d(x, weight, padding=padding)`` with
    respect to ``x`` of spatial size ``input_hw``, given the output gradient ``grad_out`` (N,O,Ho,Wo).
    Returns (N,C,H,W) (a permuted view of a (C,N,H,W) tensor)."""
    n, cout, ho, wo = grad_out.shape
    cin, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
    ph, pw = padding
    hh, ww = input_hw
    w = weight.to(grad_out.dtype).reshape(cout, cin * kh * kw)
    # (C*kh*kw, O) @ (O, N*Ho*Wo): for a channels_last grad_out the right factor is a view
    taps = (w.t() @ grad_out.transpose(0, 1).reshape(cout, -1)).view(cin, kh, kw, n, ho, wo)
    out = grad_out.new_zeros(cin, n, hh, ww)
    for i in range(kh):
        si = i - ph                      # output row y feeds input row y + si
        a0, a1 = max(0, si), min(hh, ho + si)
        if a1 <= a0:
            continue
        for j in range(kw):
            sj = j - pw
            b0, b1 = max(0, sj), min(ww, wo + sj)
            if b1 <= b0:
                continue
            out[:, :, a0:a1, b0:b1] += taps[:, i, j, :, a0 - si:a1 - si, b0 - sj:b1 - sj]
    return out.permute(1, 0, 2, 3)


class _ConvFastInputGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.padding = padding
        ctx.input_hw = tuple(x.shape[-2:])
        wants_params = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        ctx.save_for_backward(x if wants_params else None, weight)
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = conv2d_input_grad(g, weight, ctx.padding, ctx.input_hw)
        if ctx.needs_input_grad[1]:
            gw = torch.nn.grad.conv2d_weight(x.to(g.dtype), weight.shape, g, padding=ctx.padding)
        if ctx.needs_input_grad[2]:
            gb = g.sum(dim=(0, 2, 3))
        return gx, gw, gb, None


class FastInputGradConv2d(nn.Conv2d):
    """``nn.Conv2d`` (stride 1, dilation 1, one group, zero padding) whose input gradient is
    :func:`conv2d_input_grad`. Without a gradient to compute, its forward is the plain one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _ConvFastInputGrad.apply(x, self.weight, self.bias, tuple(self.padding))
        return super().forward(x)


def applies(conv: nn.Module) -> bool:
    """Whether :func:`use_fast_input_grad` switches ``conv``."""
    return (type(conv) is nn.Conv2d and conv.in_channels <= MAX_IN_CHANNELS and conv.groups == 1
            and tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1)
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str))


def swap_class(model: nn.Module, test, cls: type) -> int:
    """Give, in place, every module ``m`` of ``model`` with ``test(m)`` the class ``cls`` (a subclass
    of its own with the same state); returns how many were switched."""
    n = 0
    for m in model.modules():
        if test(m):
            m.__class__ = cls
            n += 1
    return n


def use_fast_input_grad(model: nn.Module) -> int:
    """Switch, in place, every convolution of ``model`` that :func:`applies` to
    :class:`FastInputGradConv2d` (same parameters, same forward); returns how many were switched."""
    return swap_class(model, applies, FastInputGradConv2d)


def pool_before_relu(model: nn.Module) -> int:
    """Swap, in place, every ``nn.ReLU`` that an ``nn.MaxPool2d`` directly follows inside an
    ``nn.Sequential`` of ``model`` (the same function and input gradient, bit for bit; see the module
    docstring); returns how many pairs were swapped."""
    n = 0
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        keys = list(seq._modules)
        for a, b in zip(keys, keys[1:]):
            first, second = seq._modules[a], seq._modules[b]
            if type(first) is nn.ReLU and type(second) is nn.MaxPool2d and not second.return_indices:
                seq._modules[a], seq._modules[b] = second, first
                n += 1
    return n


#: the rewrites :func:`prepare` knows, by name
REWRITES = {"input_grad": use_fast_input_grad, "pool_before_relu": pool_before_relu}


def check_rewrites(rewrites, known=REWRITES) -> tuple[str, ...]:
    """``rewrites`` as a tuple of names in ``known`` (a :class:`LandscapeError` naming any other)."""
    rewrites = tuple(rewrites)
    unknown = [r for r in rewrites if r not in known]
    if unknown:
        from ..errors import LandscapeError
        raise LandscapeError(f"`rewrites` names unknown rewrites {', '.join(map(repr, unknown))}; "
                             f"choose from {', '.join(known)}")
    return rewrites


def prepare(model: nn.Module, rewrites=tuple(REWRITES)) -> nn.Module:
    """The named ``rewrites`` (default: all of :data:`REWRITES`), in place, on a model the caller owns
    (the attacks' copy); returns it."""
    for name in check_rewrites(rewrites):
        REWRITES[name](model)
    return model
