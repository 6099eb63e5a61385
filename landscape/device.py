"""Device selection shared by every command (``--device auto|cpu|cuda``)."""

from __future__ import annotations

import os

import torch

from .errors import LandscapeError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Return the torch device for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` picks CUDA when it is available and the CPU otherwise; asking for CUDA on a machine
    without it is a :class:`LandscapeError`.
    """
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LandscapeError(f"`device` {name} was asked for but CUDA is not available on this machine")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise LandscapeError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")


def channels_last_default(device: torch.device | str | None = None) -> bool:
    """Whether convolutional models run in the ``channels_last`` layout where nobody chose: a new
    training run's model, and the copy an eval-mode attack makes on the CPU
    (:func:`landscape.attacks.base.attack_model`). Yes on CUDA and on the CPU (small-cnn trains
    1.2-1.3x faster on this project's 2-core CPU, attacks run 1.2-1.5x faster; benchmarks/RESULTS.md),
    unless ``LANDSCAPE_CHANNELS_LAST=0`` (the layout of the versions before, bit for bit)."""
    env = os.environ.get("LANDSCAPE_CHANNELS_LAST", "").strip()
    if env:
        if env not in ("0", "1"):
            raise LandscapeError(f"LANDSCAPE_CHANNELS_LAST must be 0 or 1, got {env!r}")
        if env == "0":
            return False
    kind = getattr(device, "type", str(device or "cpu").split(":")[0])
    return kind in ("cpu", "cuda")


#: mallopt parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: what :func:`tune_cpu_allocator` did in this process (None: not called yet)
ALLOCATOR_TUNED: bool | None = None


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 natively (a CUDA GPU with bf16 support; a CPU whose oneDNN
    has bf16 kernels: avx512_bf16 or AMX). Elsewhere bf16 autocast is emulated and slower than float32."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return bool(torch.cuda.is_bf16_supported())
        if device.type == "cpu":
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # an older or stripped build without the query
        return False
    return False


def available_memory(device: torch.device | str) -> int:
    """Bytes free on ``device`` now: the CUDA allocator's free memory, or the kernel's MemAvailable on
    the CPU (4 GiB when neither can be read). What the Hessian operator's graph cache and the
    unrestarted Lanczos basis each allow themselves a quarter of."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 32


def tune_cpu_allocator() -> bool:
    """Keep the CPU's large freed blocks in the process heap instead of returning them to the system.

    torch allocates CPU tensors with ``malloc``. glibc serves a block above its mmap threshold
    (128 KiB at first) with a fresh ``mmap`` and unmaps it when freed, so every activation of a
    batch (12.8 MiB for one small-cnn layer on 256 Fashion-MNIST images) arrives as new pages that
    the kernel must zero on first touch: in an attack or a surface point over a quarter of the time went to
    those page faults. This sets glibc's mmap threshold to its largest value (32 MiB), its trim
    threshold to 1 GiB and its top pad to 64 MiB, so freed blocks are reused; the numbers computed do
    not change, the process keeps its peak heap instead of shrinking after it (benchmarks/RESULTS.md,
    "Allocator"). Called once per ``landscape`` command; Python callers may call it themselves.
    Returns whether it took effect: False off glibc Linux and under ``LANDSCAPE_MALLOC=0``.
    """
    global ALLOCATOR_TUNED
    env = os.environ.get("LANDSCAPE_MALLOC", "").strip()
    if env not in ("", "0", "1"):
        raise LandscapeError(f"LANDSCAPE_MALLOC must be 0 or 1, got {env!r}")
    if ALLOCATOR_TUNED is not None:
        return ALLOCATOR_TUNED
    ok = False
    if env != "0" and os.name == "posix":
        import ctypes
        try:
            libc = ctypes.CDLL(None)
            libc.gnu_get_libc_version          # glibc only (musl's mallopt does nothing)
            mallopt = libc.mallopt
            ok = all([mallopt(param, value) == 1 for param, value in   # every one tried, then all must hold
                      ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))])
        except (OSError, AttributeError):
            ok = False
    ALLOCATOR_TUNED = ok
    return ok
