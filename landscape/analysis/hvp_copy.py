r"""The Hessian operator's own copy of a model, rewritten so that a Hessian-vector product is cheaper on
the CPU, computing the same function and the same derivatives (:func:`prepare`, called by
:class:`landscape.analysis.hessian.HessianOperator`; never applied to the caller's model).

A product :math:`Hv` with a cached gradient graph is a double backward through that graph. For a
convolution, PyTorch's double backward (``_convolution_double_backward``) computes its weight term as
a convolution of transposed (batch <-> channel) tensors, copied to be contiguous, and its other terms
in the NCHW layout, where oneDNN's kernels for the full-width small-cnn's layers run 1.1-1.3x slower
than in channels_last on this project's CPU (159-203 against 197-229 GFLOP/s,
``benchmarks/bench_hvp_copy.py``). And the double backward of a ReLU or a max-pool materialises a zero
tensor, the derivative of its backward with respect to its saved input, which the pass then adds.

The copy shares the caller's ``nn.Parameter`` and buffer objects (so a product always sees the
current weights, and the operator's version counters see every change) and has its own module
objects, in which:

``conv``
    every ``nn.Conv2d`` with zero padding given as numbers (any stride, dilation, groups) becomes a
    :class:`HessianConv2d`. Its input is made channels_last, and its derivatives are written out by
    hand in the three primitives of a convolution (``forward``, ``dgrad``: the input gradient,
    ``wgrad``: the weight gradient), each of which is differentiable in terms of the other two:

    .. math::

        \mathrm{dgrad}(g, W) = \partial_a \langle g, W * a\rangle, \qquad
        \mathrm{wgrad}(g, a) = \partial_W \langle g, W * a\rangle,

    so :math:`\partial_g \langle h, \mathrm{dgrad}(g, W)\rangle = W * h`,
    :math:`\partial_W \langle h, \mathrm{dgrad}(g, W)\rangle = \mathrm{wgrad}(g, h)`,
    :math:`\partial_g \langle U, \mathrm{wgrad}(g, a)\rangle = U * a` and
    :math:`\partial_a \langle U, \mathrm{wgrad}(g, a)\rangle = \mathrm{dgrad}(g, U)`. Every term of a
    double backward is then one of oneDNN's three channels_last kernels. A convolution with at most
    :data:`landscape.attacks.cpu_copy.MAX_IN_CHANNELS` input channels (stride 1, no dilation or groups)
    gets its forward and weight gradient as matrix products over unfolded input patches: oneDNN is
    slow for so few channels, and leaves a one-channel input's output in NCHW. When the input needs
    no gradient (the images, at the first layer) it is unfolded once, in the forward, and the cached
    graph keeps the patches (27 MiB of the full-width small-cnn's 516 MiB for 1,000 images) instead
    of unfolding them twice per product.
``relu``
    every ``nn.ReLU`` becomes a :class:`HessianReLU`, whose backward multiplies by the mask of its
    output as a constant: :math:`\mathrm{relu}'' = 0` wherever it is defined, and PyTorch's own
    double backward gives zero there too, so nothing changes but the zero tensor.
``maxpool``
    every ``nn.MaxPool2d`` becomes a :class:`HessianMaxPool2d`, whose backward routes gradients by
    its saved indices as constants (the same argument: the pool is piecewise linear).
``pool_before_relu``
    ``maxpool(relu(z)) == relu(maxpool(z))`` with the same derivatives (see
    :mod:`landscape.attacks.cpu_copy`), so the ReLU and its backward run on a quarter of the values.

Measured on the full-width small-cnn (734,602 parameters, 1,000 images) on 2 threads: one product
is about 1.2x faster and its cached graphs 28% smaller, the products equal to float rounding
(``benchmarks/bench_hvp_copy.py``; benchmarks/RESULTS.md, "The Hessian operator's copy of the
model"). :func:`auto_rewrites` says when the operator uses it by itself (float32 on the CPU)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import cpu_copy
from ..attacks.cpu_copy import MAX_IN_CHANNELS, pool_before_relu, swap_class
from ..errors import LandscapeError

_aten = torch.ops.aten


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


class _Geometry:
    """A convolution's stride, padding, dilation and groups, and whether its weight gradient is the
    unfolded-patches matrix product (few input channels, stride 1, no dilation, one group)."""

    def __init__(self, conv: nn.Conv2d):
        self.stride = list(conv.stride)
        self.padding = list(conv.padding)
        self.dilation = list(conv.dilation)
        self.groups = conv.groups
        self.kernel = tuple(conv.kernel_size)
        self.few_channels = (conv.in_channels <= MAX_IN_CHANNELS and conv.groups == 1
                             and self.stride == [1, 1] and self.dilation == [1, 1])

    def backward(self, g, a, w, mask):
        return _aten.convolution_backward(g, a, w, None, self.stride, self.padding, self.dilation, False,
                                          [0, 0], self.groups, mask)


def _placeholder(shape, like: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` in ``like``'s dtype and device (the native backward reads
    only its shape and layout)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


def input_rows(a: torch.Tensor, geo: _Geometry) -> torch.Tensor:
    """The (N*Ho*Wo, C*kh*kw) unfolded patches of ``a`` for a few-channel convolution, contiguous: the
    left factor of its forward and (transposed) of its weight gradient."""
    patches = F.unfold(a, geo.kernel, padding=tuple(geo.padding))          # (N, C*kh*kw, Ho*Wo)
    return patches.transpose(1, 2).reshape(-1, patches.shape[1])


def _wgrad_few_channels(g: torch.Tensor, a: torch.Tensor, geo: _Geometry, w_shape, rows=None) -> torch.Tensor:
    """``wgrad`` for few input channels: the (C*kh*kw, N*Ho*Wo) unfolded patches of ``a`` (``rows``
    transposed; unfolded here when the caller has none) times the (N*Ho*Wo, O) output gradient (a
    view of a channels_last ``g``)."""
    n, cout, ho, wo = g.shape
    if rows is None:
        rows = input_rows(a, geo)
    gm = g.permute(0, 2, 3, 1).reshape(n * ho * wo, cout)
    return (rows.t() @ gm).t().reshape(w_shape)


def _forward_few_channels(a: torch.Tensor, w: torch.Tensor, geo: _Geometry, rows=None) -> torch.Tensor:
    """The convolution for few input channels as (N*Ho*Wo, C*kh*kw) patches (``rows``, or unfolded
    from ``a``) times the (C*kh*kw, O) weight, returned channels_last (oneDNN leaves a one-channel
    input's output in NCHW)."""
    n, _, h, wd = a.shape
    cout = w.shape[0]
    ho = h + 2 * geo.padding[0] - geo.kernel[0] + 1
    wo = wd + 2 * geo.padding[1] - geo.kernel[1] + 1
    if rows is None:
        rows = input_rows(a, geo)
    out = rows @ w.reshape(cout, -1).t()                                   # (N*Ho*Wo, O)
    return out.view(n, ho, wo, cout).permute(0, 3, 1, 2)


# The three primitives take their 4-d tensors channels_last. The layout is changed outside the
# autograd Functions (a differentiable copy when it is needed at all), so that every tensor a
# Function saves is one of its inputs and stays connected to the graph for the next order. ``rows``
# (few-channel convolutions of an input that needs no gradient, such as the images at the first
# layer) are the input's unfolded patches, computed once per forward and kept by the graph: a cached
# graph then unfolds its images once, not twice per product.
def _forward(a, w, geo, rows=None):
    return _Fwd.apply(_channels_last(a), w, geo, rows)


def _dgrad(g, w, a_shape, geo):
    return _Dgrad.apply(_channels_last(g), w, a_shape, geo)


def _wgrad(g, a, w_shape, geo, rows=None):
    return _Wgrad.apply(_channels_last(g), _channels_last(a), w_shape, geo, rows)


class _Fwd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, w, geo, rows):
        ctx.geo = geo
        # rows saved as a tensor, so that the operator's estimate of its cached graphs counts them
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, w if ctx.needs_input_grad[0] else None,
                              rows if ctx.needs_input_grad[1] else None)
        ctx.a_shape, ctx.w_shape = a.shape, w.shape
        if geo.few_channels:
            return _forward_few_channels(a, w, geo, rows)
        return _channels_last(F.conv2d(a, w, None, geo.stride, geo.padding, geo.dilation, geo.groups))

    @staticmethod
    def backward(ctx, g):
        a, w, rows = ctx.saved_tensors
        ga = _dgrad(g, w, ctx.a_shape, ctx.geo) if ctx.needs_input_grad[0] else None
        gw = _wgrad(g, a, ctx.w_shape, ctx.geo, rows) if ctx.needs_input_grad[1] else None
        return ga, gw, None, None


class _Dgrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, w, a_shape, geo):
        ctx.geo, ctx.w_shape = geo, w.shape
        ctx.save_for_backward(g if ctx.needs_input_grad[1] else None, w if ctx.needs_input_grad[0] else None)
        return geo.backward(g, _placeholder(a_shape, g, True), w, [True, False, False])[0]

    @staticmethod
    def backward(ctx, h):
        g, w = ctx.saved_tensors
        gg = _forward(h, w, ctx.geo) if ctx.needs_input_grad[0] else None
        gw = _wgrad(g, h, ctx.w_shape, ctx.geo) if ctx.needs_input_grad[1] else None
        return gg, gw, None, None


class _Wgrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, a, w_shape, geo, rows):
        ctx.geo, ctx.a_shape = geo, a.shape
        ctx.save_for_backward(g if ctx.needs_input_grad[1] else None, a if ctx.needs_input_grad[0] else None,
                              rows if ctx.needs_input_grad[0] else None)
        if geo.few_channels:
            return _wgrad_few_channels(g, a, geo, w_shape, rows)
        return geo.backward(g, a, _placeholder(w_shape, g, False), [False, True, False])[1]

    @staticmethod
    def backward(ctx, u):
        g, a, rows = ctx.saved_tensors
        gg = _forward(a, u, ctx.geo, rows) if ctx.needs_input_grad[0] else None
        ga = _dgrad(g, u, ctx.a_shape, ctx.geo) if ctx.needs_input_grad[1] else None
        return gg, ga, None, None, None


class HessianConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose derivatives of every order are the channels_last primitives above (see the
    module docstring). Under autocast, without gradients, or on an unbatched input it is the plain
    convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type) or not torch.is_grad_enabled() or x.dim() != 4:
            return super().forward(x)
        geo = self.__dict__.get("_geometry")
        if geo is None:
            geo = self.__dict__["_geometry"] = _Geometry(self)
        # the images (or any input that needs no gradient) are unfolded once, here
        rows = input_rows(x, geo) if geo.few_channels and not x.requires_grad else None
        y = _forward(x, self.weight, geo, rows)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


class _MaskedBackward(torch.autograd.Function):
    # y = relu(z); the backward passes g where y > 0 (as ReluBackward does), the mask a constant
    @staticmethod
    def forward(ctx, z):
        y = torch.relu(z)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return _aten.threshold_backward(g, y.detach(), 0)


class HessianReLU(nn.ReLU):
    """``nn.ReLU`` whose backward treats the mask as a constant (no zero second-derivative tensor)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return torch.relu(x)
        return _MaskedBackward.apply(x)


class _IndexedPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, pool):
        y, idx = F.max_pool2d(x, pool.kernel_size, pool.stride, pool.padding, pool.dilation,
                              ceil_mode=pool.ceil_mode, return_indices=True)
        ctx.pool, ctx.x_shape = pool, x.shape
        ctx.x_fmt = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            else torch.contiguous_format
        ctx.save_for_backward(idx)
        return y

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        p = ctx.pool
        x = torch.empty(ctx.x_shape, dtype=g.dtype, device=g.device, memory_format=ctx.x_fmt)
        k, s, pad, d = (_pair(v) for v in (p.kernel_size, p.stride if p.stride is not None else p.kernel_size,
                                           p.padding, p.dilation))
        return _aten.max_pool2d_with_indices_backward(g, x, k, s, pad, d, p.ceil_mode, idx), None


def _pair(v):
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


class HessianMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` whose backward routes by its saved indices as constants."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or self.return_indices or x.dim() != 4:
            return super().forward(x)
        return _IndexedPool.apply(x, self)


def _conv_applies(m: nn.Module) -> bool:
    return type(m) is nn.Conv2d and m.padding_mode == "zeros" and not isinstance(m.padding, str)


def use_hessian_conv(model: nn.Module) -> int:
    return swap_class(model, _conv_applies, HessianConv2d)


def use_hessian_relu(model: nn.Module) -> int:
    return swap_class(model, lambda m: type(m) is nn.ReLU, HessianReLU)


def use_hessian_maxpool(model: nn.Module) -> int:
    return swap_class(model, lambda m: type(m) is nn.MaxPool2d and not m.return_indices, HessianMaxPool2d)


#: the rewrites :func:`prepare` knows, by name, in the order they are applied
REWRITES = {"pool_before_relu": pool_before_relu, "conv": use_hessian_conv, "relu": use_hessian_relu,
            "maxpool": use_hessian_maxpool}


def structural_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with new module objects that share the original's parameters and buffers."""
    new = copy.copy(model)
    new._parameters = dict(model._parameters)
    new._buffers = dict(model._buffers)
    new._modules = {k: (structural_copy(m) if m is not None else None) for k, m in model._modules.items()}
    return new


def check_rewrites(rewrites) -> tuple[str, ...]:
    """``rewrites`` as a tuple of names in :data:`REWRITES` (a :class:`LandscapeError` naming any other)."""
    return cpu_copy.check_rewrites(rewrites, REWRITES)


def copyable(model: nn.Module) -> bool:
    """Whether :func:`structural_copy` can copy ``model``: not a TorchScript or compiled module, nor a
    data-parallel wrapper (their state is more than their modules, parameters and buffers)."""
    wrappers = (torch.jit.ScriptModule, nn.DataParallel, nn.parallel.DistributedDataParallel)
    return not any(isinstance(m, wrappers) or type(m).__name__ == "OptimizedModule" for m in model.modules())


def auto_rewrites(device: torch.device, dtype: torch.dtype, model: nn.Module | None = None) -> tuple[str, ...]:
    """What the operator applies by itself: every rewrite for float32 products on the CPU (where they
    were measured); none elsewhere (float64: oneDNN has no float64 kernels; a GPU: not measured), nor
    for a model that is not :func:`copyable`."""
    if model is not None and not copyable(model):
        return ()
    return tuple(REWRITES) if torch.device(device).type == "cpu" and dtype == torch.float32 else ()


def prepare(model: nn.Module, rewrites=tuple(REWRITES)) -> nn.Module:
    """A :func:`structural_copy` of ``model`` with the named ``rewrites`` applied (``model`` itself
    when there are none)."""
    rewrites = check_rewrites(rewrites)
    if not rewrites:
        return model
    if not copyable(model):
        raise LandscapeError("`rewrites` need a plain nn.Module (not TorchScript, compiled or data-parallel); "
                             "pass rewrites=()")
    new = structural_copy(model)
    for name in REWRITES:
        if name in rewrites:
            REWRITES[name](new)
    return new
