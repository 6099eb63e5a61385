"""Time every line of the README's CLI block, as written, at the default budget.

    python benchmarks/time_readme.py CHECKPOINT [--skip-train]

Runs the block (read from README.md, like tests/test_readme_cli.py) line after line in a fresh
folder under bash, with CHECKPOINT copied to the quick-start path (and the ``landscape train`` line
skipped with ``--skip-train``). Prints a markdown table: wall seconds, CPU seconds (user + system of
the line's processes) and the 1-minute load average when the line started. On a shared machine the
CPU seconds are the steadier number: at one thread they approximate the wall time on an idle core.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_lines() -> list[str]:
    block = (ROOT / "README.md").read_text().split("## The CLI at a glance", 1)[1].split("```", 2)[1]
    return [line.rstrip() for line in block.splitlines()[1:] if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=str(ROOT), LANDSCAPE_NO_PROGRESS="1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "runs" / "fast-ls-l0-l0-20"
        run.mkdir(parents=True)
        shutil.copy(args.checkpoint, run / "checkpoint.pt")
        assigned = []
        for line in readme_lines():
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=\S+(\s+#.*)?$", line):
                assigned.append(line)
                continue
            if args.skip_train and line.startswith("landscape train"):
                continue
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            p = subprocess.run(["bash", "-c", "\n".join(assigned + [line])], cwd=tmp, env=env,
                               capture_output=True, text=True)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if p.returncode:
                sys.exit(f"failed: {line}\n{p.stderr[-2000:]}")
            plan = next((ln for ln in p.stderr.splitlines() if " budget (" in ln), "")
            est = re.search(r"estimated at most ([^;]+?)(?: on (\d+) thread)", plan)
            cmd = line.split("#")[0].strip()
            rows.append((cmd, wall, cpu, load, est.group(1) if est else "", est.group(2) if est else ""))
            print(f"{wall:7.1f} s wall {cpu:7.1f} s CPU load {load:5.1f}  {cmd}", file=sys.stderr, flush=True)
    print("| command | wall | CPU (user+sys) | load at start | printed estimate | threads |")
    print("|---|---|---|---|---|---|")
    for cmd, wall, cpu, load, est, thr in rows:
        print(f"| `{cmd}` | {wall:.0f} s | {cpu:.0f} s | {load:.1f} | {est} | {thr} |")


if __name__ == "__main__":
    main()
