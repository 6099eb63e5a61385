"""The README's CLI block runs as written, line after line in one folder, as a user would type it.

The block is read from README.md, so editing the README changes what runs here; a line whose
command this test does not know fails it (say what the new line promises in ``PROMISED``). The
quick-start checkpoint is made by the README's own ``landscape train`` line with flags that make it
small (the full line trains for minutes; the quick-start test covers it), and every analysis runs at
``LANDSCAPE_BUDGET=smoke`` so that the whole block takes seconds per line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RUN = "runs/fast-ls-l0-l0-20"
SMALL_TRAINING = "--epochs 1 --max-train-examples 256 --eval-examples 16 --set monitor_examples=16"

#: files each command of the block promises (relative to the folder the block runs in)
PROMISED = {
    "train": [f"{RUN}/checkpoint.pt", f"{RUN}/final.json"],
    "recipes": [],
    "info": [],
    "eval": [f"{RUN}/checkpoint_eval_saa.csv", f"{RUN}/checkpoint_eval_saa.json"],
    **{cmd: [f"{RUN}/checkpoint_{cmd}.{ext}" for ext in ("csv", "json", "png")]
       for cmd in ("hessian", "density", "surface", "interp", "lipschitz", "overlap")},
    "gradients": [f"{RUN}/fast-ls-l0-l0-20_gradients.csv", f"{RUN}/fast-ls-l0-l0-20_gradients.json"],
    "python": ["sd.pt"],
    "import": ["runs/imported.pt"],
    "data": [],
    "reproduce": ["runs/reproduce/overlap/overlap_sat1.png", "runs/reproduce/overlap/overlap_sat1.json"],
    "report": ["runs/report.md", "runs/report.html"],
}


def readme_cli_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The CLI at a glance", 1)[1]
    block = section.split("```", 2)[1]
    return [line.rstrip() for line in block.splitlines()[1:] if line.strip()]


def _command(line: str) -> str:
    words = line.split()
    return words[1] if words[0] == "landscape" else words[0]


def _bash(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("readme")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=str(ROOT), LANDSCAPE_BUDGET="smoke", OMP_NUM_THREADS="1")
    env.pop("LANDSCAPE_NO_PROGRESS", None)  # the plan line is printed with the progress bars
    lines = readme_cli_lines()
    train = lines[0].split("#")[0].strip()
    assert train == "landscape train --norm l0 --eps 20", "the block starts with the quick start's training line"
    p = _bash(f"{train} {SMALL_TRAINING}", cwd, env)
    assert p.returncode == 0, p.stderr[-3000:]
    return cwd, env, lines


def test_readme_cli_block_runs_as_written(session):
    cwd, env, lines = session
    assigned: list[str] = []          # NAME=value lines, kept for the lines after them (one shell session)
    ran = []
    for line in lines[1:]:
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=\S+(\s+#.*)?$", line):
            assigned.append(line)
            continue
        cmd = _command(line)
        assert cmd in PROMISED, f"the README runs {cmd!r}, which this test does not know: {line}"
        t0 = time.perf_counter()
        p = _bash("\n".join(assigned + [line]), cwd, env)
        print(f"{time.perf_counter() - t0:6.1f} s  {line}")
        assert p.returncode == 0, f"{line}\n{p.stderr[-3000:]}"
        assert "Traceback" not in p.stderr, p.stderr
        for f in PROMISED[cmd]:
            assert (cwd / f).is_file(), f"{line} did not write {f}"
        ran.append((cmd, p))
    commands = [c for c, _ in ran]
    assert {"eval", "hessian", "surface", "interp", "lipschitz", "overlap", "import", "report"} <= set(commands)
    out = dict(ran)

    # every analysis says what it will run, and how long it should take, before it starts
    for cmd in ("eval", "hessian", "density", "surface", "interp", "lipschitz", "overlap", "gradients"):
        first = out[cmd].stderr.strip().splitlines()[0]
        assert first.startswith(f"landscape {cmd}: smoke budget (LANDSCAPE_BUDGET") and "; estimated " in first, first
        stem = {"eval": "checkpoint_eval_saa", "gradients": "fast-ls-l0-l0-20_gradients"}.get(cmd, f"checkpoint_{cmd}")
        meta = json.loads((cwd / f"{RUN}/{stem}.json").read_text())["meta"]
        assert meta["plan"]["budget"] == "smoke" and meta["plan"]["threads"] == 1
        for role, cfg in meta["plan"]["attacks"].items():
            assert cfg.get("seed") == 0, (cmd, role, cfg)
    assert "final:      clean" in out["info"].stdout

    # import read back the quick-start model's own weights: the same predictions
    from landscape.checkpoint import load_checkpoint
    from landscape.data import load_dataset
    x = load_dataset("fashion-mnist-mini", "test").subset(32, seed=0).images.float() / 255
    with torch.no_grad():
        assert torch.equal(load_checkpoint(cwd / "runs/imported.pt").model()(x),
                           load_checkpoint(cwd / f"{RUN}/checkpoint.pt").model()(x))

    # the report found every analysis written beside the checkpoint
    md = (cwd / "runs/report.md").read_text()
    for stem in ("checkpoint_eval_saa", "checkpoint_hessian", "checkpoint_density", "checkpoint_surface",
                 "checkpoint_interp", "checkpoint_lipschitz", "checkpoint_overlap", "fast-ls-l0-l0-20_gradients"):
        assert stem in md, stem
