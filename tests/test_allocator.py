"""tune_cpu_allocator: large freed CPU blocks stay in the heap (no mmap per activation), measured with
glibc's own accounting in fresh processes; off under LANDSCAPE_MALLOC=0; the CLI turns it on."""

import ctypes
import json
import os
import subprocess
import sys

import pytest

from landscape.device import tune_cpu_allocator


def _glibc() -> bool:
    try:
        ctypes.CDLL(None).gnu_get_libc_version
        ctypes.CDLL(None).mallinfo2
        return True
    except (OSError, AttributeError):
        return False


pytestmark = pytest.mark.skipif(not _glibc(), reason="glibc (mallinfo2) only; CI runs on Debian")

PROBE = r"""
import ctypes, json, sys, torch
from landscape.device import tune_cpu_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
tuned = tune_cpu_allocator() if sys.argv[1] == "tune" else None
base = libc.mallinfo2().hblkhd          # blocks mapped before (imports)
peak_mmapped = 0
for _ in range(5):                       # activations of a batch: 12.8 MB each, allocated and freed
    t = torch.empty(256 * 16 * 28 * 28)
    t.fill_(1.0)
    peak_mmapped = max(peak_mmapped, libc.mallinfo2().hblkhd - base)
    del t
print(json.dumps({"tuned": tuned, "mmapped": peak_mmapped}))
"""


def _probe(mode: str, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_large_blocks_come_from_the_heap_once_tuned():
    plain = _probe("plain", LANDSCAPE_MALLOC="")
    assert plain["mmapped"] >= 12_000_000          # glibc's default: the block was mmapped
    tuned = _probe("tune", LANDSCAPE_MALLOC="")
    assert tuned["tuned"] is True and tuned["mmapped"] < 1_000_000


def test_off_with_landscape_malloc_0():
    off = _probe("tune", LANDSCAPE_MALLOC="0")
    assert off["tuned"] is False and off["mmapped"] >= 12_000_000


def test_bad_setting_is_one_clear_error(monkeypatch):
    from landscape.errors import LandscapeError
    monkeypatch.setenv("LANDSCAPE_MALLOC", "yes")
    with pytest.raises(LandscapeError, match="LANDSCAPE_MALLOC must be 0 or 1"):
        tune_cpu_allocator()


def test_every_landscape_command_tunes_it():
    code = ("import landscape.device as d, analysis_cli as c\n"
            "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "import json, sys; sys.stderr.write(json.dumps(d.ALLOCATOR_TUNED))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "LANDSCAPE_MALLOC": ""})
    assert out.stderr.strip().splitlines()[-1] == "null", out.stderr  # --help stops before the group runs
    code = code.replace("['--help']", "['recipes', '--help']")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "LANDSCAPE_MALLOC": ""})
    assert out.stderr.strip().splitlines()[-1] == "true", out.stderr
