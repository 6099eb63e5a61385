"""The reproduction recipes: every command of every recipe parses at every scale, and the quick scale
runs end to end (training, attacks, analyses, combined figures, report) and resumes."""

import json

import pandas as pd
import pytest

from landscape.reproduce import SCALES, list_recipes, load_recipe, run_recipe

RECIPES = list_recipes()


def test_every_claim_of_the_issue_has_a_recipe():
    names = {r.name for r in RECIPES}
    assert {"co", "interp", "overlap", "table3", "final"} <= names
    for r in RECIPES:
        assert r.title and r.claim and r.steps
        assert set(r.scales) == set(SCALES), r.name


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
@pytest.mark.parametrize("scale", SCALES)
def test_recipe_commands_parse(recipe, scale, tmp_path):
    """Each step is a landscape command whose options all exist (click parses it without running)."""
    import shlex

    from analysis_cli import cli
    for cmd in recipe.commands(scale, tmp_path / recipe.name, tmp_path):
        argv = shlex.split(cmd)
        assert argv[0] == "landscape"
        ctx = cli.make_context("landscape", argv[1:], resilient_parsing=False)
        name, sub, rest = cli.resolve_command(ctx, argv[1:])
        assert sub is not None, cmd
        sub.make_context(name, rest, parent=ctx)  # raises UsageError on an unknown option
    spec = recipe.figure_spec(scale, tmp_path / recipe.name, tmp_path)
    if spec:
        from landscape.plots import figures
        assert hasattr(figures, spec["builder"])


def test_quick_reproduction_runs_resumes_and_reports(tmp_path, cli_run):
    r = cli_run(["reproduce", "co", "interp", "overlap", "--quick", "--out", tmp_path])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "co" / "co.png").stat().st_size > 1000
    summary = pd.read_csv(tmp_path / "co" / "co_summary.csv")
    assert list(summary["run"]) == ["1-step sAT", "Fast-LS-l0"] and summary["saa"].between(0, 1).all()
    t2 = pd.read_csv(tmp_path / "interp" / "table2.csv")
    assert list(t2["model"]) == ["eps_train=20", "eps_train=40", "eps_train=120"] and "sAA" in t2
    assert (tmp_path / "overlap" / "overlap_sat1.csv").exists()
    md = (tmp_path / "report.md").read_text()
    assert "landscape reproduce co --scale quick" in md and "![co/co.png](co/co.png)" in md
    done = json.loads((tmp_path / ".done.json").read_text())
    # the 1-step sAT model at k=20 is shared by interp and overlap: trained once
    assert sum("--out " + str(tmp_path / "models" / "sat-1step-l0-20 ") in c + " " for c in done) == 1
    before = (tmp_path / "co" / "co_summary.csv").read_text()
    r = cli_run(["reproduce", "co", "--quick", "--out", tmp_path])
    assert r.exit_code == 0 and r.stderr.count("done already") == 4
    assert (tmp_path / "co" / "co_summary.csv").read_text() == before


def test_unknown_recipe_and_bad_recipe_file(tmp_path, cli_run):
    r = cli_run(["reproduce", "nope", "--quick", "--out", tmp_path])
    assert r.exit_code == 2 and "unknown recipe nope" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('title = "x"\nsteps = ["landscape info {missing}"]\n[scale.quick]\n')
    from landscape.errors import LandscapeError
    with pytest.raises(LandscapeError, match="placeholder"):
        load_recipe(bad).commands("quick", tmp_path / "bad", tmp_path)
    with pytest.raises(LandscapeError, match="no scale"):
        load_recipe(bad).commands("paper", tmp_path / "bad", tmp_path)
    assert run_recipe  # API importable


def test_recipes_ship_with_the_package_and_are_found_outside_the_checkout(tmp_path):
    """The recipes are package data (pyproject ships ``landscape/recipes/*.toml``): a copy of the
    package alone, imported from a folder with no checkout around it, lists every recipe."""
    import shutil
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    import landscape
    pkg = Path(landscape.__file__).parent
    repo = pkg.parent
    data = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["landscape"]
    shipped = {p.name for pattern in data for p in pkg.glob(pattern) if p.suffix == ".toml"}
    assert shipped == {r.path.name for r in RECIPES} and len(shipped) >= 5
    site = tmp_path / "site-packages"
    shutil.copytree(pkg, site / "landscape", ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("PYTHONPATH", "LANDSCAPE_FIGURES")}
    env["PYTHONPATH"] = str(site)
    code = ("import landscape.reproduce as r; print(r.recipes_dir()); "
            "print(','.join(sorted(x.name for x in r.list_recipes())))")
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    where, names = out.stdout.strip().splitlines()
    assert Path(where).resolve() == (site / "landscape" / "recipes").resolve()
    assert names.split(",") == sorted(r.name for r in RECIPES)


def test_recipes_folder_option_and_environment(tmp_path, cli_run, monkeypatch):
    """``--recipes DIR`` reads another folder, as ``LANDSCAPE_FIGURES`` does; a missing folder is one
    line naming the flag."""
    from landscape.reproduce import recipes_dir
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "solo.toml").write_text('title = "solo"\nclaim = "c"\nsteps = ["landscape info {out}"]\n'
                                    + "".join(f"[scale.{s}]\n" for s in SCALES))
    r = cli_run(["reproduce", "--recipes", mine, "--list"])
    assert r.exit_code == 0 and "solo" in r.stdout and "co " not in r.stdout
    monkeypatch.setenv("LANDSCAPE_FIGURES", str(mine))
    assert recipes_dir() == mine and [x.name for x in list_recipes()] == ["solo"]
    r = cli_run(["reproduce", "--recipes", tmp_path / "none", "--list"])
    assert r.exit_code == 2 and "--recipes" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("scale", SCALES)
def test_a_shared_model_is_trained_by_one_identical_command(scale, tmp_path):
    """Recipes share models under {root}/models: every command writing one --out must be the same
    string, or the model would be trained twice with different settings."""
    import shlex
    by_out = {}
    for r in RECIPES:
        for cmd in r.commands(scale, tmp_path / r.name, tmp_path):
            argv = shlex.split(cmd)
            if argv[1] == "train":
                out = argv[argv.index("--out") + 1]
                assert by_out.setdefault(out, cmd) == cmd, f"{out}:\n{by_out[out]}\n{cmd}"
    assert len(by_out) >= 20


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (Linux /proc)."""
    import os
    from pathlib import Path
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and p.name != str(os.getpid()):
            try:
                if text in (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not __import__("pathlib").Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_sigterm_stops_the_running_step_and_leaves_it_to_resume(tmp_path):
    """`kill` (SIGTERM) of `landscape reproduce` reaches the training step it is running: the step saves
    and exits, nothing is left running, and the step is not marked done."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from landscape.checkpoint import Checkpoint
    figs = tmp_path / "figs"
    figs.mkdir()
    import json
    import shlex
    settings = " ".join("--set " + shlex.quote(v) for v in (
        "monitor_examples=8", "monitor_attack=spgd1", "eval_attack=spgd1"))
    step = ("landscape train --norm l0 --eps 10 --epochs {epochs} --batch-size 16 --max-train-examples 160 "
            f"--eval-examples 8 --save-every 1 --device cpu --seed 1 --out {{root}}/models/m {settings}")
    (figs / "long.toml").write_text(f'title = "t"\nclaim = "c"\nsteps = [{json.dumps(step)}]\n'
                                    + "".join(f"[scale.{s}]\nepochs = 400\n" for s in SCALES))
    out = tmp_path / "runs"
    env = dict(os.environ, LANDSCAPE_FIGURES=str(figs), LANDSCAPE_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "analysis_cli", "reproduce", "long", "--scale", "fmnist", "--no-report", "--out", str(out)]
    parent = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ck = out / "models" / "m" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ck.exists() and time.time() < deadline and parent.poll() is None:
        time.sleep(0.05)
    assert ck.exists(), parent.stderr.read() if parent.poll() is not None else "no checkpoint in time"
    parent.send_signal(signal.SIGTERM)
    err = parent.communicate(timeout=120)[1]
    assert parent.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert _processes_mentioning(str(out / "models" / "m")) == []        # the step stopped with it
    stopped = Checkpoint.load(ck)
    assert 0 < stopped.epoch * 10 + stopped.step and stopped.epoch < 400
    done = out / ".done.json"
    assert not done.exists() or json.loads(done.read_text()) == {}
    # a rerun runs the step again (the trainer then resumes from the checkpoint: test_trainer.py)
    r = subprocess.run(cmd[:-2] + ["--dry-run", "--out", str(out)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "done already" not in r.stderr + r.stdout


def test_seeds_are_parsed_and_tables_aggregated_with_mean_and_sd(tmp_path):
    import statistics

    from landscape.errors import LandscapeError
    from pathlib import Path

    from landscape.reproduce import aggregate_seeds, load_recipe, parse_seeds, seed_root

    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("3") == [0, 1, 2] and parse_seeds("5,7") == [5, 7]
    for bad in ("a", "0,0", "-1,2", "0"):
        with pytest.raises(LandscapeError):
            parse_seeds(bad)
    recipe = load_recipe(Path(__file__).resolve().parents[1] / "benchmarks" / "recipes" / "probe12.toml")
    assert recipe.takes_seed()
    assert "--seed 2" in recipe.commands("fmnist", tmp_path / "x", tmp_path, seed=2)[0]
    worst = {0: (0.01, 0.40), 1: (0.0, 0.30), 2: (0.02, 0.38)}
    for s, (sat, fls) in worst.items():
        d = seed_root(tmp_path, s) / "probe12"
        d.mkdir(parents=True)
        rows = [{"label": "1-step sAT", "clean": 0.7, "worst-case": sat, "final_train_attack_acc": 0.8, "co": True},
                {"label": "Fast-LS-l0", "clean": 0.8, "worst-case": fls, "final_train_attack_acc": 0.6, "co": False}]
        (d / "probe12.json").write_text(json.dumps({"meta": {}, "rows": rows}))
    made = aggregate_seeds(recipe, tmp_path, [0, 1, 2], "fmnist")
    data = json.loads((tmp_path / "probe12" / "probe12_seeds.json").read_text())
    fls = next(r for r in data["rows"] if r["label"] == "Fast-LS-l0")
    assert fls["worst-case_mean"] == pytest.approx(statistics.fmean([0.40, 0.30, 0.38]))
    assert fls["worst-case_sd"] == pytest.approx(statistics.stdev([0.40, 0.30, 0.38]))
    assert fls["worst-case_seeds"] == [0.4, 0.3, 0.38] and fls["co_seeds"] == 0
    assert next(r for r in data["rows"] if r["label"] == "1-step sAT")["co_seeds"] == 3
    md = (tmp_path / "probe12" / "probe12_seeds.md").read_text()
    assert "| Fast-LS-l0 | 80.0 ± 0.0 | 36.0 ± 5.3 |" in md and "3 of 3" in md
    assert any(str(p).endswith(".png") for p in made)
    with pytest.raises(LandscapeError, match="seed 3"):
        aggregate_seeds(recipe, tmp_path, [0, 3], "fmnist")


def test_the_done_ledger_is_locked_while_it_is_updated(tmp_path):
    """Two recipes of one seed root may run at once: the ledger's read-modify-write holds a lock."""
    import fcntl
    from landscape.reproduce import _locked
    lock = tmp_path / ".done.lock"
    with _locked(lock):
        with open(lock) as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(lock) as other:  # released afterwards
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_analysis_recipes_are_aggregated_over_seeds_per_model(tmp_path):
    """The analysis recipes (no table builder) get mean ± sd over seeds of their per-model summaries:
    eigenvalues, gradient distances, overlap rates; a column equal in every seed stays as it is."""
    import json
    import statistics

    from landscape.reproduce import aggregate_seeds, load_recipe, recipes_dir, seed_root

    top = {0: (30.0, 1.5), 1: (12.0, 1.3), 2: (60.0, 1.4)}
    for s, (l0, l2) in top.items():
        d = seed_root(tmp_path, s) / "hessian"
        d.mkdir(parents=True)
        rows = [{"label": f"{m} · {n}", "rank": r, "eigenvalue": lam / r, "converged": True}
                for m, n, lam in (("l0-model", "l0(eps=1)", l0), ("l2-model", "l2(eps=0.25)", l2)) for r in (1, 2)]
        (d / "norms.json").write_text(json.dumps({"meta": {"analysis": "hessian"}, "rows": rows}))
        grads = [{"checkpoint": "l0-model", "norm": "l0", "eps": 1.0, "grad_distance": l0 / 10, "relative_distance": 0.5},
                 {"checkpoint": "l2-model", "norm": "l2", "eps": 0.25, "grad_distance": 0.1, "relative_distance": l2}]
        (d / "gradients.json").write_text(json.dumps({"meta": {"analysis": "gradients"}, "rows": grads}))
        (d / "reproduce.json").write_text("{}")
    made = aggregate_seeds(load_recipe(recipes_dir() / "hessian.toml"), tmp_path, [0, 1, 2])
    assert {p.name for p in made} >= {"norms_seeds.md", "norms_seeds.png", "gradients_seeds.md"}
    norms = json.loads((tmp_path / "hessian" / "norms_seeds.json").read_text())["rows"]
    l0 = next(r for r in norms if r["model"].startswith("l0-model"))
    assert l0["λ_max_mean"] == pytest.approx(34.0) and l0["λ_max_sd"] == pytest.approx(statistics.stdev([30, 12, 60]))
    assert l0["λ_max_seeds"] == [30.0, 12.0, 60.0] and l0["eigenvalues"] == 2  # equal in every seed: kept
    grads = json.loads((tmp_path / "hessian" / "gradients_seeds.json").read_text())["rows"]
    assert grads[0]["gradient distance_mean"] == pytest.approx(3.4) and grads[0]["relative distance"] == 0.5
    assert grads[1]["gradient distance"] == 0.1 and grads[1]["relative distance_mean"] == pytest.approx(1.4)
    assert "34 ± 24" in (tmp_path / "hessian" / "norms_seeds.md").read_text()
    # a later `reproduce --seeds` (another process: nothing claimed) may replace its own summaries
    from landscape import outputs
    outputs.forget(*(tmp_path / "hessian").iterdir())
    assert {p.name for p in aggregate_seeds(load_recipe(recipes_dir() / "hessian.toml"), tmp_path, [0, 1, 2])} >= {
        "norms_seeds.md", "norms_seeds.png"}


def test_a_dry_run_writes_nothing(tmp_path):
    from landscape.reproduce import load_recipe, recipes_dir, run_recipe, run_seeds

    lines = []
    recipe = load_recipe(recipes_dir() / "hessian.toml")
    run_recipe(recipe, tmp_path / "out", "fmnist", dry_run=True, echo=lines.append)
    run_seeds(recipe, tmp_path / "out", [0, 1], "fmnist", dry_run=True, echo=lines.append)
    assert not (tmp_path / "out").exists()
    assert any("--seed 1" in line for line in lines) and len(lines) == 9 * 3 + 2


def test_table2_of_the_interp_recipe_is_aggregated_over_seeds(tmp_path):
    import json

    from landscape.reproduce import aggregate_seeds, load_recipe, recipes_dir, seed_root

    for s, acc in ((0, 70.0), (1, 80.0)):
        d = seed_root(tmp_path, s) / "interp"
        d.mkdir(parents=True)
        rows = [{"model": "eps_train 20", "alpha=0": 80.0, "alpha=1": acc, "sAA": 5.0}]
        (d / "table2.json").write_text(json.dumps({"meta": {}, "rows": rows}))
    aggregate_seeds(load_recipe(recipes_dir() / "interp.toml"), tmp_path, [0, 1])
    row = json.loads((tmp_path / "interp" / "table2_seeds.json").read_text())["rows"][0]
    assert row["alpha=1_mean"] == 75.0 and row["alpha=0"] == 80.0 and row["sAA"] == 5.0


def test_a_combined_figure_belongs_to_the_table_that_names_it(tmp_path):
    """`reproduce co` writes co.png beside co_curves.json (meta.figure = co.png): a later reproduce (a new
    process, nothing claimed) may replace it; a figure no landscape table names is still refused."""
    import json

    from landscape import outputs
    from landscape.checkpoint import atomic_write_text
    from landscape.outputs import OverwriteRefused

    (tmp_path / "co_curves.json").write_text(json.dumps(
        {"meta": {"command": "landscape reproduce co --scale fmnist --out x", "figure": "co.png"}, "rows": []}))
    for name in ("co.png", "other.png"):
        (tmp_path / name).write_bytes(b"\x89PNG")
    assert outputs.made_by(tmp_path / "co.png") == {"reproduce"} and outputs.made_by(tmp_path / "other.png") == set()
    with outputs.producing("reproduce"):
        atomic_write_text(tmp_path / "co.png", "new")
        with pytest.raises(OverwriteRefused):
            atomic_write_text(tmp_path / "other.png", "new")
