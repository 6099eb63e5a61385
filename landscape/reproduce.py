"""Run the reproduction recipes: one recipe per claim of the paper.

A recipe is a small TOML file (``landscape/recipes/<name>.toml``, shipped with the package) that names
the commands making one figure or table, with the settings of each scale in tables of their own:

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
(a scale may refer to the ``[vars]`` table shared by all scales). Each step runs as a subprocess (in
process at the quick scale; ``jobs`` at a time in worker processes with :mod:`landscape.scheduler`); the
steps that finished are recorded in ``<root>/.done.json`` so rerunning the same command skips them
and resumes the one that was interrupted (training resumes from its checkpoint). A ``[figure]``
table names a builder in :mod:`landscape.plots.figures` and its arguments.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import atomic_write_text
from .errors import LandscapeError
from .outputs import MARKER, producing
from .scheduler import _argv, _run_child, _run_in_process

#: the scales of a reproduction recipe (which values fill its commands): ``quick`` runs in seconds (the
#: test suite), ``fmnist`` on Fashion-MNIST on 2 CPU cores, ``paper`` the paper's CIFAR-10 settings.
#: Not the training presets' ``small``/``paper`` (:data:`landscape.training.presets.SCALES`), which
#: the trainer picks from the model a ``train`` step builds.
SCALES = ("quick", "fmnist", "paper")


def recipes_dir(folder: str | Path | None = None) -> Path:
    """Where the recipes are read from: ``folder`` (``landscape reproduce --recipes DIR``), else the
    folder in ``LANDSCAPE_FIGURES``, else the recipes shipped inside the package
    (``landscape/recipes/*.toml``, package data: found from a checkout and from an installed package)."""
    if folder:
        return Path(folder)
    env = os.environ.get("LANDSCAPE_FIGURES")
    if env:
        return Path(env)
    from importlib.resources import files
    return Path(str(files("landscape") / "recipes"))


@dataclass
class ReproductionRecipe:
    """One claim of the paper as commands (a ``landscape/recipes/*.toml`` file).

    Not a :class:`landscape.training.recipe.Recipe` (the settings of one training run): a
    reproduction recipe names the ``landscape`` commands of a claim, and its *scales* are
    ``quick`` (the test suite), ``fmnist`` (Fashion-MNIST on 2 CPU cores) and ``paper`` (CIFAR-10,
    GPU), which pick the values its commands are filled with. The training scales ``small`` and
    ``paper`` of the presets are something else: the trainer picks one from the model it builds
    (:func:`landscape.training.presets.scale_for`)."""

    name: str
    title: str
    claim: str
    steps: list[str]
    scales: dict[str, dict]
    variables: dict = field(default_factory=dict)
    figure: dict | None = None
    path: Path | None = None

    def values(self, scale: str, out: Path, root: Path, seed: int | None = None) -> dict:
        if scale not in self.scales:
            raise LandscapeError(f"recipe {self.name} has no scale {scale!r}; it has {', '.join(self.scales)}")
        values = {"seed": 0, **self.variables, **self.scales[scale], "out": str(out), "root": str(root),
                  "scale": scale}
        if seed is not None:
            values["seed"] = int(seed)
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

    def commands(self, scale: str, out: Path, root: Path | None = None, seed: int | None = None) -> list[str]:
        values = self.values(scale, out, root or out.parent, seed)
        return [" ".join(self._fill(step, values, scale).split()) for step in self.steps]

    def figure_spec(self, scale: str, out: Path, root: Path | None = None, seed: int | None = None) -> dict | None:
        if not self.figure:
            return None
        return self._fill(self.figure, self.values(scale, out, root or out.parent, seed), scale)

    def takes_seed(self) -> bool:
        """Whether the recipe's commands change with ``{seed}`` (``--seeds`` needs it)."""
        return any("{seed}" in str(v) for v in [*self.steps, *self.variables.values(),
                                                *(x for sc in self.scales.values() for x in sc.values())])


def load_recipe(path: str | Path) -> ReproductionRecipe:
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
    return ReproductionRecipe(path.stem, data["title"], data.get("claim", ""), list(data["steps"]),
                              dict(data["scale"]), dict(data.get("vars", {})), figure, path)


def list_recipes(folder: str | Path | None = None) -> list[ReproductionRecipe]:
    folder = recipes_dir(folder)
    if not folder.is_dir():
        raise LandscapeError(f"no recipes folder at {folder}; give `recipes` (or LANDSCAPE_FIGURES) a folder of *.toml recipes")
    return [load_recipe(p) for p in sorted(folder.glob("*.toml"))]


@contextmanager
def _locked(path: Path):
    """An exclusive advisory lock on ``path`` (POSIX ``flock``; a no-op where there is none)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_recipe(recipe: ReproductionRecipe, out_root: str | Path, scale: str = "fmnist", *, dry_run: bool = False,
               echo=print, env: dict | None = None, in_process: bool = False, run_command=None,
               seed: int | None = None, jobs: int = 1) -> dict:
    """Run every step of ``recipe`` at ``scale`` under ``out_root/<name>``; return a summary dict.

    Finished steps are recorded in ``out_root/.done.json`` (shared by all recipes, so a model that
    several recipes train under ``{root}/models`` is trained once). ``in_process`` runs the steps
    with ``run_command(argv)`` (e.g. ``analysis_cli.main``) instead of child processes. ``seed`` fills
    the recipes' ``{seed}`` placeholder (default 0); :func:`run_seeds` runs several seeds, each in
    its own root. ``jobs`` > 1 runs that many steps at a time (:func:`run_recipes`).
    """
    return run_recipes([(recipe, out_root, seed)], scale, dry_run=dry_run, echo=echo, env=env,
                       in_process=in_process, run_command=run_command, jobs=jobs)[0]


def run_recipes(units, scale: str = "fmnist", *, dry_run: bool = False, echo=print, env: dict | None = None,
                in_process: bool = False, run_command=None, jobs: int = 1) -> list[dict]:
    """Run several recipes, ``units`` being ``(recipe, out_root, seed)`` triples; one summary each.

    ``jobs`` = 1 runs the steps one after another in this order, printing their output as it comes.
    ``jobs`` > 1 runs the steps of all units ``jobs`` at a time in worker processes
    (:func:`landscape.scheduler.run_parallel`: a step waits for the steps whose outputs it names),
    each step's output in ``<out_root>/<name>/logs/step-<i>.log``; a model several recipes train is
    trained once, and a recipe's figure is drawn when all its steps are done."""
    if in_process and run_command is None:
        raise LandscapeError("running recipe steps in process needs `run_command` (the CLI's main function)")
    if int(jobs) < 1:
        raise LandscapeError(f"`jobs` must be at least 1, got {jobs}")
    if int(jobs) == 1 or dry_run:
        summaries = []
        for recipe, out_root, seed in units:
            if seed is not None and len(units) > 1:
                echo(f"[{recipe.name}] seed {seed}")
            steps = _run_steps(recipe, out_root, seed, scale, dry_run=dry_run, echo=echo, env=env,
                               in_process=in_process, run_command=run_command)
            summaries.append(_finish(recipe, out_root, seed, scale, steps, dry_run))
        return summaries
    from .scheduler import run_parallel

    plans, needs, todo, where = [], [], [], {}  # where: (root, command) -> index in todo
    for recipe, out_root, seed in units:
        root = Path(out_root)
        out = root / recipe.name
        out.mkdir(parents=True, exist_ok=True)
        done = _read_done(root)
        commands = recipe.commands(scale, out, root, seed)
        steps, need = [], set()
        for i, cmd in enumerate(commands, 1):
            label = f"{recipe.name} {i}/{len(commands)}" + (f" seed {seed}" if seed is not None and len(units) > 1 else "")
            if cmd in done:
                echo(f"[{label}] done already: {cmd}")
                steps.append([cmd, True])
            elif (root, cmd) in where:  # a model an earlier recipe trains too
                need.add(where[(root, cmd)])
                steps.append([cmd, True])
            else:
                where[(root, cmd)] = len(todo)
                need.add(len(todo))
                todo.append({"command": cmd, "root": root, "label": label,
                             "log": out / "logs" / f"step-{i:02d}.log"})
                steps.append([cmd, False])
        plans.append(steps)
        needs.append(need)
    summaries: dict[int, dict] = {}
    finished: set[int] = set()

    def finish(u):
        recipe, out_root, seed = units[u]
        done = _read_done(Path(out_root))
        steps = [{"command": cmd, "seconds": done[cmd], "skipped": skipped} for cmd, skipped in plans[u]]
        summaries[u] = _finish(recipe, out_root, seed, scale, steps, dry_run)

    def record(k, seconds):  # the ledger first, then the figure of every recipe now complete
        _record_done(todo[k]["root"], todo[k]["command"], seconds)
        finished.add(k)
        for u in range(len(units)):
            if u not in summaries and needs[u] and needs[u] <= finished:
                finish(u)

    run_parallel([t["command"] for t in todo], int(jobs), logs=[t["log"] for t in todo],
                 run_command=run_command if in_process else None, labels=[t["label"] for t in todo],
                 on_done=record, echo=echo, env=env)
    for u in range(len(units)):
        if u not in summaries:
            finish(u)
    return [summaries[u] for u in range(len(units))]


def _read_done(root: Path) -> dict:
    done_file = Path(root) / ".done.json"
    return json.loads(done_file.read_text()) if done_file.exists() else {}


def _record_done(root: Path, cmd: str, seconds: float) -> float:
    """Record ``cmd`` as finished in ``root``'s ledger; the seconds as recorded."""
    root = Path(root)
    with _locked(root / ".done.lock"):  # recipes sharing a root may run at the same time
        done = _read_done(root)
        done[cmd] = round(seconds, 1)
        atomic_write_text(root / ".done.json", json.dumps(done, indent=1), overwrite=True)
    return done[cmd]


def _run_steps(recipe: ReproductionRecipe, out_root, seed, scale: str, *, dry_run, echo, env, in_process,
               run_command) -> list[dict]:
    """The steps of one recipe, one after another (``jobs`` = 1); their summary rows."""
    root = Path(out_root)
    out = root / recipe.name
    if not dry_run:  # a dry run prints the commands and writes nothing
        out.mkdir(parents=True, exist_ok=True)
    done = _read_done(root)
    commands = recipe.commands(scale, out, root, seed)
    steps = []
    for i, cmd in enumerate(commands, 1):
        if cmd in done:
            echo(f"[{recipe.name} {i}/{len(commands)}] done already: {cmd}")
            steps.append({"command": cmd, "seconds": done[cmd], "skipped": True})
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
        steps.append({"command": cmd, "seconds": _record_done(root, cmd, time.perf_counter() - t0),
                      "skipped": False})
    return steps


def _finish(recipe: ReproductionRecipe, out_root, seed, scale: str, steps: list[dict], dry_run: bool) -> dict:
    """Draw the recipe's figure and write its ``reproduce.json``; the summary dict."""
    root = Path(out_root)
    out = root / recipe.name
    summary = {"recipe": recipe.name, "title": recipe.title, "claim": recipe.claim, "scale": scale, "steps": steps}
    spec = recipe.figure_spec(scale, out, root, seed)
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


def parse_seeds(text: str | None) -> list[int] | None:
    """``"0,1,2"`` -> ``[0, 1, 2]``; ``"3"`` means three seeds ``[0, 1, 2]``; None stays None."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise LandscapeError(f"seeds must be whole numbers separated by commas (0,1,2) or a count (3), got {text!r}") from None
    if len(vals) == 1 and "," not in str(text):
        if not 1 <= vals[0] <= 100:
            raise LandscapeError(f"a number of seeds must be between 1 and 100, got {vals[0]}")
        vals = list(range(vals[0]))
    if not vals or any(v < 0 for v in vals) or len(set(vals)) != len(vals):
        raise LandscapeError(f"seeds must be distinct whole numbers >= 0, got {text!r}")
    return vals


def seed_root(out_root: str | Path, seed: int) -> Path:
    """Where seed ``seed`` of a multi-seed reproduction lives: ``OUT/seed<seed>`` (its own models)."""
    return Path(out_root) / f"seed{int(seed)}"


def run_seeds(recipe: ReproductionRecipe, out_root: str | Path, seeds: list[int], scale: str = "fmnist", *,
              echo=print, **kw) -> dict:
    """Run ``recipe`` once per seed, each seed in its own root ``OUT/seed<s>`` (models included), then
    write the tables of every seed side by side with their mean ± standard deviation into
    ``OUT/<name>/`` (:func:`aggregate_seeds`)."""
    return run_all([recipe], out_root, scale, seeds=seeds, echo=echo, **kw)[0]


def run_all(recipes: list[ReproductionRecipe], out_root: str | Path, scale: str = "fmnist", *,
            seeds: list[int] | None = None, echo=print, **kw) -> list[dict]:
    """Run ``recipes`` under ``out_root`` (``landscape reproduce``): each once, or once per seed of
    ``seeds`` in its own root ``OUT/seed<s>`` with the seeds' tables aggregated (:func:`aggregate_seeds`;
    one seed has no spread and is not aggregated). Keyword arguments go to :func:`run_recipes`
    (``jobs`` > 1 runs the steps of all recipes and seeds that many at a time). One dict per recipe:
    its summary, or with ``seeds`` the summaries per seed and the aggregated tables."""
    if seeds is None:
        return run_recipes([(r, out_root, None) for r in recipes], scale, echo=echo, **kw)
    fixed = [r.name for r in recipes if not r.takes_seed()]
    if fixed:
        raise LandscapeError(f"recipe(s) {', '.join(fixed)} have no {{seed}} placeholder; they cannot run several "
                             "`seeds`")
    seeds = list(seeds)
    summaries = run_recipes([(r, seed_root(out_root, s), s) for r in recipes for s in seeds], scale, echo=echo, **kw)
    results = []
    for k, recipe in enumerate(recipes):
        per_seed = summaries[k * len(seeds):(k + 1) * len(seeds)]
        made = [] if kw.get("dry_run") or len(seeds) < 2 else aggregate_seeds(recipe, out_root, seeds, scale)
        results.append({"recipe": recipe.name, "seeds": seeds, "scale": scale, "per_seed": per_seed,
                        "tables": [str(p) for p in made],
                        "seconds": round(sum(x.get("seconds", 0.0) for x in per_seed), 1)})
    return results


#: numeric columns summarised over seeds, and the row key of each table kind
SEED_COLUMNS = ("clean", "worst-case", "saa", "spgd", "spgd-projected", "rs", "final_train_attack_acc",
                "final_monitor_strong_acc", "train_minutes")


def _seed_tables(recipe: ReproductionRecipe, out_root: Path, seeds: list[int], scale: str) -> dict[str, list]:
    """``{table name: [rows of seed s, ...]}`` for the tables the recipe's figure wrote per seed; a
    recipe without a table builder (the analysis recipes) gets one table per result its steps wrote,
    summarised per model as the report summarises it (:func:`landscape.report.summarize`)."""
    spec = recipe.figure or {}
    names = {"results_table": [spec.get("name", "table")],
             "co_curves": [spec.get("name", "co") + "_summary"],
             "interp_table": [spec.get("name", "table2")]}.get(spec.get("builder"))
    if names is None:
        return _summary_tables(recipe, out_root, seeds)
    return {name: [_seed_result(recipe, out_root, s, name)["rows"] for s in seeds] for name in names}


def _seed_result(recipe: ReproductionRecipe, out_root: Path, seed: int, name: str) -> dict:
    """The result ``name`` (``<name>.json``) of ``recipe`` in seed ``seed``'s root."""
    path = seed_root(out_root, seed) / recipe.name / f"{name}.json"
    if not path.exists():
        raise LandscapeError(f"seed {seed} of {recipe.name} has no result {path}; run it first")
    return json.loads(path.read_text())


def _summary_tables(recipe: ReproductionRecipe, out_root: Path, seeds: list[int]) -> dict[str, list]:
    """Per-model summaries (key ``model``) of every analysis result of the recipe, one list per seed."""
    import pandas as pd

    from .report import summarize

    first = seed_root(out_root, seeds[0]) / recipe.name
    stems = sorted(p.stem for p in first.glob("*.json") if p.name != "reproduce.json" and not p.stem.endswith("_seeds"))
    found = {}
    for stem in stems:
        per_seed = []
        for s in seeds:
            data = _seed_result(recipe, out_root, s, stem)
            if not (isinstance(data, dict) and {"rows", "meta"} <= set(data)):
                break
            table, _ = summarize(data["meta"] or {}, pd.DataFrame(data["rows"]))
            if "model" not in table:
                break
            per_seed.append(table.to_dict("records"))
        else:
            found[stem] = per_seed
    return found


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def aggregate_seeds(recipe: ReproductionRecipe, out_root: str | Path, seeds: list[int], scale: str = "fmnist") -> list[Path]:
    """Mean ± standard deviation over seeds of every numeric column of the recipe's tables.

    Writes ``OUT/<name>/<table>_seeds.csv``/``.json`` (one row per model: ``<col>_mean``,
    ``<col>_sd`` (sample sd, ddof=1), ``<col>_seeds`` (the per-seed values), ``co_seeds``: how many
    seeds were flagged CO), ``<table>_seeds.md`` (the table as a person reads it) and a chart with the
    seeds' spread. The accuracy tables (``results_table``, ``co_curves``) summarise
    :data:`SEED_COLUMNS`; the analysis recipes every column of their per-model summaries (eigenvalues,
    cragginess, gradient distances, overlap rates), a column equal in every seed (a budget) kept as it is."""
    out_root = Path(out_root)
    (out_root / recipe.name).mkdir(parents=True, exist_ok=True)
    made = []
    accuracy = (recipe.figure or {}).get("builder") in ("results_table", "co_curves")
    with producing("reproduce"):  # an earlier summary of `landscape reproduce` may be replaced, nothing else
        for name, per_seed in _seed_tables(recipe, out_root, seeds, scale).items():
            made += _aggregate_table(recipe, out_root, seeds, scale, name, per_seed, accuracy)
    return made


def _aggregate_table(recipe, out_root: Path, seeds: list[int], scale: str, name: str, per_seed: list,
                     accuracy: bool) -> list[Path]:
    """One table of :func:`aggregate_seeds`: rows of every seed in, ``<name>_seeds.*`` out."""
    import statistics

    import pandas as pd

    from .plots.figures import seed_bars, seed_points, write_table

    out = out_root / recipe.name
    key = "label" if "label" in per_seed[0][0] else ("run" if accuracy else "model")
    labels = [r[key] for r in per_seed[0]]
    columns = SEED_COLUMNS if accuracy else [c for c in per_seed[0][0] if c != key]
    rows = []
    for label in labels:
        got = [next((r for r in rows_s if r.get(key) == label), None) for rows_s in per_seed]
        if any(g is None for g in got):
            raise LandscapeError(f"{recipe.name}: row {label!r} is missing in some seed's {name} table")
        row = {key: label, "seeds": len(seeds)}
        for col in columns:
            vals = [g.get(col) for g in got]
            if not accuracy and len({repr(v) for v in vals}) == 1:
                row[col] = vals[0]
            elif all(_number(v) for v in vals):
                row[f"{col}_mean"] = statistics.fmean(vals)
                row[f"{col}_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
                row[f"{col}_seeds"] = [round(v, 6) for v in vals]
        if all("co" in g for g in got):
            row["co_seeds"] = sum(bool(g["co"]) for g in got)
        rows.append(row)
    df = pd.DataFrame(rows)
    command = f"landscape reproduce {recipe.name} --seeds {','.join(map(str, seeds))} --scale {scale} --out {out_root}"
    meta = {"command": command, "recipe": recipe.name, "scale": scale, "seeds": list(seeds), "table": name,
            "per_seed": [str(seed_root(out_root, s) / recipe.name / f"{name}.json") for s in seeds],
            "sd": "sample standard deviation over seeds (ddof=1)"}
    stem = out / f"{name}_seeds"
    write_table(df, meta, stem)
    title = f"{recipe.title} ({len(seeds)} seeds, mean ± sd)"
    if accuracy:
        md = seeds_markdown(df, key, len(seeds))
        figs = seed_bars(df, key, stem.with_suffix(".png"), title=title)
    else:
        md = summary_markdown(df, key, columns)
        figs = seed_points(df, key, stem.with_suffix(".png"), title=f"{name}: {title}")
    atomic_write_text(stem.with_suffix(".md"), md + f"\n<!-- {MARKER} reproduce: {command} -->\n")
    return [stem.with_suffix(".md"), *figs]


def summary_markdown(df, key: str, columns) -> str:
    """An analysis summary over seeds as markdown: ``mean ± sd`` (3 significant digits) where the seeds
    differ, the value itself where they agree."""
    shown = [c for c in columns if f"{c}_mean" in df or c in df]
    lines = ["| " + " | ".join([key, *shown]) + " |", "|" + "---|" * (len(shown) + 1)]
    for _, r in df.iterrows():
        cells = [str(r[key])]
        for c in shown:
            if isinstance(r.get(f"{c}_seeds"), list):
                cells.append(f"{r[f'{c}_mean']:.3g} ± {r[f'{c}_sd']:.2g}")
            else:
                v = r.get(c)
                cells.append(f"{v:.4g}" if _number(v) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def seeds_markdown(df, key: str, n: int) -> str:
    """The seed table as markdown: accuracies in % as mean ± sd, CO as 'k of n seeds'."""
    cols = [("clean", "clean"), ("worst-case", "sAA"), ("saa", "sAA"), ("final_train_attack_acc", "training attack"),
            ("train_minutes", "train min")]
    have = [(c, h) for c, h in cols if f"{c}_mean" in df]
    head = [key] + [h for _, h in have] + (["CO (seeds)"] if "co_seeds" in df else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in df.iterrows():
        cells = [str(r[key])]
        for c, _ in have:
            m, s = r[f"{c}_mean"], r[f"{c}_sd"]
            cells.append(f"{m:.2f} ± {s:.2f}" if c == "train_minutes" else f"{100 * m:.1f} ± {100 * s:.1f}")
        if "co_seeds" in df:
            cells.append(f"{int(r['co_seeds'])} of {n}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
