"""Run the ``landscape`` CLI in real, separate processes without paying the interpreter and torch
start-up for each one: a server process imports the CLI and its libraries once, then forks one child
per request. A child is an ordinary process running ``analysis_cli.main(argv)`` with its own cwd,
environment, stdout and stderr (files), exit status and, for an uncaught exception, the traceback
Python would print; the parent only waits for it. Used by the bad-input tests, which run dozens of
commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SERVER = r"""
import json, os, sys, traceback
os.environ["OMP_NUM_THREADS"] = "1"
import torch
torch.set_num_threads(1)
import click, pandas, matplotlib
import analysis_cli
from analysis_cli import COMMANDS
import importlib
for mod, _ in COMMANDS.values():
    importlib.import_module(mod)
import landscape.attacks, landscape.evaluation, landscape.training.trainer, landscape.analysis.hessian
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    out_path, err_path = req["stdout"], req["stderr"]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(req["cwd"])
            os.environ.update(req.get("env") or {})
            fo = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            fe = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            sys.stdout.flush(); sys.stderr.flush()
            os.dup2(fo, 1); os.dup2(fe, 2)
            sys.stdin = open(os.devnull)
            try:
                analysis_cli.main(req["args"])
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
        finally:
            try:
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    print(json.dumps({"rc": rc}), flush=True)
"""


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class ForkServer:
    def __init__(self, env: dict | None = None):
        self.tmp = Path(tempfile.mkdtemp(prefix="landscape-forkserver-"))
        full_env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    "LANDSCAPE_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=full_env, cwd=str(ROOT))
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            raise RuntimeError(f"fork server did not start: {first!r}")
        self.n = 0

    def run(self, args, cwd, env: dict | None = None) -> Result:
        self.n += 1
        out, err = self.tmp / f"{self.n}.out", self.tmp / f"{self.n}.err"
        req = {"args": [str(a) for a in args], "cwd": str(cwd), "env": env or {}, "stdout": str(out),
               "stderr": str(err)}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        return Result(reply["rc"], out.read_text(), err.read_text())

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
