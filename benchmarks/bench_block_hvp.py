"""Could a block eigensolver beat one product at a time? Batched Hessian-vector products on the CPU.

Times, on one checkpoint's clean cross-entropy Hessian (``--n-images`` held-out images in one batch,
the gradient graph kept as ``HessianOperator`` keeps it), B products taken one after another against
the same B products taken at once (``torch.autograd.grad(..., is_grads_batched=True)``, vmap over the
double backward), per vector, interleaved, best of ``--repeats``; and one product of the model as it
is against the same model and images in the ``channels_last`` layout (medians). A block Lanczos or
subspace method needs more products than single-vector Lanczos; it pays only if a batched product
costs much less per vector (benchmarks/RESULTS.md, "Lanczos without restart").

Two more ways one product could be cheaper, each against the same cached double backward (medians of
interleaved repeats): forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad``, JAX's usual HVP,
which cannot keep a graph and pays a forward and a backward under forward-mode AD each time), and the
same images cut into batches of ``--micro-batch`` (each batch's graph kept), whose activations might stay in
cache. ``--allocator tuned`` (the default, as the CLI runs) keeps glibc from unmapping large blocks.

    OMP_NUM_THREADS=2 python benchmarks/bench_block_hvp.py --checkpoint CK --n-images 100
"""

from __future__ import annotations

import copy
import statistics
import time

import torch


def main():
    from common import hessian_setup, options
    a = options(checkpoint=("", "a landscape checkpoint (required)"), n_images=100, blocks=("1,4,8,16", "B values"),
                repeats=3, threads=2, micro_batch=(32, "batch size of the cut-up operator"),
                allocator=("tuned", "tuned (landscape.device.tune_cpu_allocator, as the CLI) or default"))
    model, x, labels = hessian_setup(a)
    from landscape.analysis.hessian import HessianOperator, make_batches
    op = HessianOperator(model, "clean", make_batches(x, labels, a.n_images), rewrites=())   # the plain model
    op.hvp(torch.randn(op.n_params))                    # builds and keeps the gradient graph
    grads = op._graphs[0]

    def batched(V):
        vs = [c.reshape(V.shape[0], *s) for c, s in zip(torch.split(V, op.numels, dim=1), op.shapes)]
        with torch.enable_grad():
            hv = torch.autograd.grad(grads, op.params, grad_outputs=vs, retain_graph=True, is_grads_batched=True)
        return torch.cat([t.reshape(V.shape[0], -1) for t in hv], 1)

    print(f"# {a.checkpoint}: {op.n_params:,} parameters, {a.n_images} images, {torch.get_num_threads()} threads")
    print("| vectors B | one at a time, s per vector | batched, s per vector | batched speed / one at a time | rel. difference |")
    print("|---|---|---|---|---|")
    for b in [int(v) for v in a.blocks.split(",")]:
        V = torch.randn(b, op.n_params)
        t1, t2 = [], []
        for _ in range(a.repeats):
            t = time.perf_counter()
            A = torch.stack([op.hvp(v) for v in V])
            t1.append(time.perf_counter() - t)
            t = time.perf_counter()
            B = batched(V)
            t2.append(time.perf_counter() - t)
        err = float((A - B).norm() / A.norm())
        print(f"| {b} | {min(t1) / b:.3f} | {min(t2) / b:.3f} | {min(t1) / min(t2):.2f}x | {err:.1e} |", flush=True)

    m2 = copy.deepcopy(model).to(memory_format=torch.channels_last)
    op2 = HessianOperator(m2, "clean", make_batches(x.contiguous(memory_format=torch.channels_last), labels, a.n_images),
                          rewrites=())

    from torch.func import functional_call, grad, jvp
    params = {n: p.detach() for n, p in zip(op.names, op.params)}
    buffers = dict(model.named_buffers())
    y = labels

    def loss_of(p):
        return torch.nn.functional.cross_entropy(functional_call(model, (p, buffers), (x,)), y)

    def fwd_over_rev(v):
        tangent = dict(zip(op.names, op.to_list(v)))
        return op.to_flat(list(jvp(grad(loss_of), (params,), (tangent,))[1].values()))

    op3 = HessianOperator(model, "clean", make_batches(x, labels, a.micro_batch))
    rivals = {"channels_last": op2.hvp, "forward-over-reverse (torch.func)": fwd_over_rev,
              f"batches of {a.micro_batch}, graphs kept": op3.hvp}
    v = torch.randn(op.n_params)
    ref = op.hvp(v)
    print()
    for name, fn in rivals.items():
        err = float((fn(v) - ref).norm() / ref.norm())     # (also builds the rival's graphs)
        t1, t2 = [], []
        for _ in range(2 * a.repeats + 1):
            t = time.perf_counter()
            op.hvp(v)
            t1.append(time.perf_counter() - t)
            t = time.perf_counter()
            fn(v)
            t2.append(time.perf_counter() - t)
        print(f"one product, cached double backward {statistics.median(t1):.3f} s, {name} {statistics.median(t2):.3f} s: "
              f"{statistics.median(t1) / statistics.median(t2):.2f}x (rel. difference {err:.1e})")

if __name__ == "__main__":
    main()
