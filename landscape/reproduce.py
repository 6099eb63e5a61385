"""Run the reproduction recipes in ``figures/``: one recipe per claim of the paper.

A recipe is a small TOML file (``figures/<name>.toml``) that names the commands making one figure or
table, with the settings of each scale in tables of their own:

.. code-block:: toml

    title = "Catastrophic overfitting of 1-step sAT"
    claim = "..."                   # what the paper says, with its numbers
    [figure]                        # optional: a combined figure from landscape.plots.figures
    builder = "co_curves"
    steps = ["landscape train --preset sat-1step --epochs {epochs} --out {out}/sat1 {common}", ...]

    [scale.quick]                   # the test suite runs this
    epochs = 1
    [scale.fmnist]                  # default: Fashion-MNIST scale on 2 CPU cores
    epochs = 15
    [scale.paper]                   # the paper's CIFAR-10 settings (needs a GPU and the data)
    epochs = 100

Placeholders ``{out}`` (the recipe's output folder), ``{root}`` (the folder of all recipes; models
shared between recipes live in ``{root}/models``) and every key of the chosen scale are substituted
(a scale may refer to the ``[vars]`` table shared by all scales). Each step runs as a subprocess; the
steps that finished are recorded in ``<root>/.done.json`` so rerunning the same command skips them
and resumes the one that was interrupted (training resumes from its checkpoint). A ``[figure]``
table names a builder in :mod:`landscape.plots.figures` and its arguments.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import atomic_write_text
from .errors import LandscapeError

SCALES = ("quick", "fmnist", "paper")


def recipes_dir() -> Path:
    """The ``figures/`` folder of the checkout (overridable with ``LANDSCAPE_FIGURES``)."""
    env = os.environ.get("LANDSCAPE_FIGURES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "figures"


@dataclass
class Recipe:
    name: str
    title: str
    claim: str
    steps: list[str]
    scales: dict[str, dict]
    variables: dict = field(default_factory=dict)
    figure: dict | None = None
    path: Path | None = None

    def values(self, scale: str, out: Path, root: Path) -> dict:
        if scale not in self.scales:
            raise LandscapeError(f"recipe {self.name} has no scale {scale!r}; it has {', '.join(self.scales)}")
        values = {**self.variables, **self.scales[scale], "out": str(out), "root": str(root), "scale": scale}
        # let scale values refer to shared variables and to each other
        for _ in range(3):
            values = {k: (v.format(**values) if isinstance(v, str) else v) for k, v in values.items()}
        return values

    def _fill(self, obj, values: dict, scale: str):
        try:
            if isinstance(obj, str):
                return obj.format(**values)
            if isinstance(obj, list):
                return [self._fill(v, values, scale) for v in obj]
            if isinstance(obj, dict):
                return {self._fill(k, values, scale): self._fill(v, values, scale) for k, v in obj.items()}
            return obj
        except KeyError as e:
            raise LandscapeError(f"recipe {self.name}: placeholder {e} has no value at scale {scale}") from None

    def commands(self, scale: str, out: Path, root: Path | None = None) -> list[str]:
        values = self.values(scale, out, root or out.parent)
        return [" ".join(self._fill(step, values, scale).split()) for step in self.steps]

    def figure_spec(self, scale: str, out: Path, root: Path | None = None) -> dict | None:
        if not self.figure:
            return None
        return self._fill(self.figure, self.values(scale, out, root or out.parent), scale)


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise LandscapeError(f"cannot read recipe {path}: {e}") from None
    missing = [k for k in ("title", "steps", "scale") if k not in data]
    if missing:
        raise LandscapeError(f"recipe {path} lacks {', '.join(missing)}")
    figure = data.get("figure")
    if figure is not None and (not isinstance(figure, dict) or "builder" not in figure):
        raise LandscapeError(f"recipe {path}: [figure] needs a builder name")
    return Recipe(path.stem, data["title"], data.get("claim", ""), list(data["steps"]), dict(data["scale"]),
                  dict(data.get("vars", {})), figure, path)


def list_recipes(folder: str | Path | None = None) -> list[Recipe]:
    folder = Path(folder) if folder else recipes_dir()
    if not folder.is_dir():
        raise LandscapeError(f"no recipes folder at {folder}; run from a checkout or set LANDSCAPE_FIGURES")
    return [load_recipe(p) for p in sorted(folder.glob("*.toml"))]


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv and argv[0] == "landscape":
        return [sys.executable, "-m", "analysis_cli", *argv[1:]]
    raise LandscapeError(f"recipe steps must be landscape commands, got {command!r}")


def _run_child(argv: list[str], env: dict) -> int:
    """Run one step as a child process and return its exit code.

    A SIGTERM to this process (a scheduler's stop, ``kill``) is passed on to the child as SIGINT, which
    makes a training step save at the next step boundary and exit, and then raises KeyboardInterrupt
    here: no step is left running behind a stopped ``reproduce``, and rerunning resumes it.
    """
    proc = subprocess.Popen(argv, env=env)
    stopped = []

    def forward(signum, frame):
        stopped.append(signum)
        proc.send_signal(signal.SIGINT)

    try:
        old = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread
        old = None
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group: the child stops by itself
        proc.wait()
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    if stopped:
        raise KeyboardInterrupt
    return code


def _run_in_process(command: str, run_command) -> int:
    """Run a landscape command in this process with ``run_command(argv)`` (the CLI's entry point, given
    by the caller: the library does not import the CLI); no interpreter start-up (the quick scale)."""
    try:
        run_command(shlex.split(command)[1:])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def run_recipe(recipe: Recipe, out_root: str | Path, scale: str = "fmnist", *, dry_run: bool = False,
               echo=print, env: dict | None = None, in_process: bool = False, run_command=None) -> dict:
    """Run every step of ``recipe`` at ``scale`` under ``out_root/<name>``; return a summary dict.

    Finished steps are recorded in ``out_root/.done.json`` (shared by all recipes, so a model that
    several recipes train under ``{root}/models`` is trained once). ``in_process`` runs the steps
    with ``run_command(argv)`` (e.g. ``analysis_cli.main``) instead of child processes.
    """
    if in_process and run_command is None:
        raise LandscapeError("running recipe steps in process needs `run_command` (the CLI's main function)")
    root = Path(out_root)
    out = root / recipe.name
    out.mkdir(parents=True, exist_ok=True)
    done_file = root / ".done.json"
    done = json.loads(done_file.read_text()) if done_file.exists() else {}
    commands = recipe.commands(scale, out, root)
    summary = {"recipe": recipe.name, "title": recipe.title, "claim": recipe.claim, "scale": scale, "steps": []}
    for i, cmd in enumerate(commands, 1):
        if cmd in done:
            echo(f"[{recipe.name} {i}/{len(commands)}] done already: {cmd}")
            summary["steps"].append({"command": cmd, "seconds": done[cmd], "skipped": True})
            continue
        echo(f"[{recipe.name} {i}/{len(commands)}] {cmd}")
        if dry_run:
            continue
        t0 = time.perf_counter()
        argv = _argv(cmd)
        code = _run_in_process(cmd, run_command) if in_process else _run_child(argv, {**os.environ, **(env or {})})
        if code == 130:
            raise KeyboardInterrupt
        if code != 0:
            raise LandscapeError(f"recipe {recipe.name}: step {i} failed (exit {code}): {cmd}")
        done = json.loads(done_file.read_text()) if done_file.exists() else {}
        done[cmd] = round(time.perf_counter() - t0, 1)
        atomic_write_text(done_file, json.dumps(done, indent=1))
        summary["steps"].append({"command": cmd, "seconds": done[cmd], "skipped": False})
    spec = recipe.figure_spec(scale, out, root)
    if spec and not dry_run:
        from .plots import figures
        figures.COMMAND = f"landscape reproduce {recipe.name} --scale {scale} --out {root}"
        spec = dict(spec)
        builder = getattr(figures, spec.pop("builder"), None)
        if builder is None:
            raise LandscapeError(f"recipe {recipe.name}: no figure builder {recipe.figure['builder']!r}")
        made = builder(out, scale=scale, **spec)
        summary["figure"] = [str(p) for p in made]
    summary["seconds"] = round(sum(s["seconds"] for s in summary["steps"] if not s["skipped"]), 1)
    if not dry_run:
        atomic_write_text(out / "reproduce.json", json.dumps(summary, indent=1))
    return summary
