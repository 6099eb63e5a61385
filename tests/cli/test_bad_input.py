"""Bad input through the CLI, as a careless or hostile user gives it (issue 14).

Every case runs the real ``landscape`` command in its own process (forked from a server that has
imported everything once, see ``forkserver.py``) in a folder holding a tiny trained run, and must

* exit non-zero, with exactly one line on stderr and no traceback anywhere, and
* leave the bytes and the mode of every file that was there before unchanged, and create nothing.

Then the positive side of the same rules: a command's own earlier result is replaced (mode kept),
``--overwrite`` replaces a file the command did not write but never its input, two trainings
started at once into one folder end with one clear refusal and one complete run, and a stale lock
left by a killed process does not block the next run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.cli.forkserver import ROOT, ForkServer

TRAIN = ["train", "--epochs", "1", "--max-train-examples", "64", "--batch-size", "32", "--eval-examples", "8",
         "--set", "monitor_examples=0", "--set", 'eval_attack_kwargs={"steps": 1, "n_queries": 1}']
CHEAP = ["--n-examples", "8", "--batch-size", "8"]
SAA_SMALL = ["--attack-steps", "1", "--attack-queries", "1"]


@pytest.fixture(scope="module")
def server():
    s = ForkServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def world(server, tmp_path_factory):
    """A folder with a trained run ``run/``, a copy ``other/``, a foreign state dict ``sd.pt``, a
    checkpoint whose stored architecture was edited, and an earlier eval result."""
    root = tmp_path_factory.mktemp("world")
    r = server.run(TRAIN + ["--out", "run"], root)
    assert r.returncode == 0, r.stderr
    shutil.copytree(root / "run", root / "other")
    from landscape.models import build_model
    torch.manual_seed(0)
    torch.save(build_model("small-cnn").state_dict(), root / "sd.pt")
    data = torch.load(root / "run" / "checkpoint.pt", weights_only=True)
    data["arch"]["name"] = "preact-resnet18"
    torch.save(data, root / "tampered.pt")
    (root / "notes.txt").write_text("the user's own notes\n")
    (root / "s.png").write_bytes(b"not a landscape figure")
    (root / "mine.csv").write_text("a,b\n1,2\n")
    os.chmod(root / "notes.txt", 0o600)
    return root


def snapshot(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (p.read_bytes(), st.st_mode & 0o7777)
    return out


def assert_clean_refusal(r, before: dict, root: Path, *words):
    text = r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0, f"exit 0 for bad input:\n{text}"
    assert "Traceback" not in text, text
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    assert "error" in lines[0], lines[0]
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
    after = snapshot(root)
    changed = [k for k in before if k not in after or after[k] != before[k]]
    created = [k for k in after if k not in before]
    assert not changed, f"files changed: {changed}"
    assert not created, f"files created: {created}"
    return lines[0]


CK = "run/checkpoint.pt"
CASES = {
    # data destroyed: writing onto a checkpoint, or a file the command did not make
    "eval --save-adv onto its own checkpoint": (
        ["eval", CK, "--attack", "spgd", "--steps", "2", *CHEAP, "--save-adv", CK], ["--save-adv", CK]),
    "eval --save-adv onto another checkpoint": (
        ["eval", CK, "--attack", "spgd", "--steps", "2", *CHEAP, "--save-adv", "other/checkpoint.pt"],
        ["--save-adv", "--overwrite"]),
    "eval --save-adv --overwrite onto its input": (
        ["eval", CK, "--attack", "spgd", "--steps", "2", *CHEAP, "--save-adv", CK, "--overwrite"], ["input"]),
    "eval --out onto the user's file": (
        ["eval", CK, "--attack", "spgd", "--steps", "2", *CHEAP, "--out", "mine"], ["--out", "mine.csv"]),
    "surface --save-directions onto a checkpoint": (
        ["surface", CK, "--grid", "2", "--loss", "clean", *CHEAP, "--out", "s2.png",
         "--save-directions", "other/checkpoint.pt"], ["--save-directions"]),
    "surface --out onto a foreign figure": (
        ["surface", CK, "--grid", "2", "--loss", "clean", *CHEAP, "--out", "s.png"], ["--out", "s.png"]),
    "import over a trained checkpoint": (
        ["import", "sd.pt", "--arch", "small-cnn", "--dataset", "fashion-mnist-mini", "--out", "other/checkpoint.pt"],
        ["--out", "--overwrite"]),
    "import onto its own input": (
        ["import", "sd.pt", "--arch", "small-cnn", "--dataset", "fashion-mnist-mini", "--out", "sd.pt",
         "--overwrite"], ["--out"]),
    "train a different run into a trained folder": (TRAIN + ["--out", "run", "--seed", "5"], ["--resume"]),
    "train on more examples than the split holds": (
        TRAIN[:3] + ["--max-train-examples", "999999"] + TRAIN[5:] + ["--out", "big"], ["--max-train-examples", "holds"]),
    # the machine exhausted
    "interp --alpha with 1e18 values": (["interp", CK, "--alpha", "0:1e9:1e-9", "--out", "i.png", *CHEAP],
                                        ["--alpha", "10,000"]),
    # tracebacks
    "train --set trades_beta=abc": (TRAIN + ["--out", "new", "--set", "trades_beta=abc"], ["trades_beta"]),
    "train --set attack_kwargs={bad": (TRAIN + ["--out", "new", "--set", "attack_kwargs={bad"], ["attack_kwargs"]),
    "interp --alpha 0:inf:1": (["interp", CK, "--alpha", "0:inf:1", "--out", "i.png", *CHEAP], ["--alpha"]),
    "hessian --maxiter 0": (["hessian", CK, "--maxiter", "0", *CHEAP, "--out", "h"], ["--maxiter"]),
    "import --width -2": (["import", "sd.pt", "--arch", "small-cnn", "--width", "-2", "--dataset",
                           "fashion-mnist-mini", "--out", "new.pt"], ["width"]),
    # bad values accepted silently
    "interp --alpha nan,inf": (["interp", CK, "--alpha", "nan,inf", "--out", "i.png", *CHEAP], ["--alpha"]),
    "lipschitz --radii nan": (["lipschitz", CK, "--radii", "nan", "--out", "l.png", *CHEAP], ["--radii"]),
    "train --set noise=maybe": (TRAIN + ["--out", "new", "--set", "noise=maybe"], ["noise"]),
    "train --set milestones=[2,-1]": (TRAIN + ["--out", "new", "--set", "milestones=[2,-1]"], ["milestones"]),
    "train --set steps=2.5": (TRAIN + ["--out", "new", "--set", "steps=2.5"], ["steps"]),
    "train --set no_such_field=1": (TRAIN + ["--out", "new", "--set", "no_such_field=1"], ["no_such_field"]),
    "train --epochs 1 --set epochs=2": (TRAIN + ["--out", "new", "--set", "epochs=2"], ["--epochs", "given twice"]),
    "hessian --tol -1": (["hessian", CK, "--tol", "-1", *CHEAP, "--out", "h"], ["--tol"]),
    "hessian --tol nan": (["hessian", CK, "--tol", "nan", *CHEAP, "--out", "h"], ["--tol"]),
    "info on an edited architecture": (["info", "tampered.pt"], ["architecture"]),
    "eval --n-examples above the split": (["eval", CK, "--attack", "spgd", "--steps", "1", "--n-examples", "999999"],
                                          ["--n-examples", "1,000"]),
    "eval --data-dir missing": (["eval", CK, "--attack", "spgd", "--steps", "1", *CHEAP, "--data-dir",
                                 "/nonexistent"], ["--data-dir"]),
    "train --eval-examples 0": (TRAIN[:-4] + ["--out", "new", "--eval-examples", "0"], ["--eval-examples"]),
    "train --clean-examples 0": (TRAIN[:-4] + ["--out", "new", "--clean-examples", "0"], ["--clean-examples"]),
    "reproduce --jobs 0": (["reproduce", "co", "--quick", "--jobs", "0", "--out", "q"], ["--jobs"]),
    # long work that would fail late
    "hessian --trace-samples 0": (["hessian", CK, "--trace", "--trace-samples", "0", *CHEAP, *SAA_SMALL,
                                   "--out", "h"], ["--trace-samples"]),
    "hessian good.pt nope.pt": (["hessian", CK, "nope.pt", *CHEAP, *SAA_SMALL, "--out", "h"], ["nope.pt"]),
    "surface --n-examples above the split": (["surface", CK, "--grid", "2", "--loss", "clean", "--n-examples",
                                              "6000", "--out", "s3.png"], ["--n-examples", "5,000"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_touches_nothing(server, world, case):
    args, words = CASES[case]
    before = snapshot(world)
    r = server.run(args, world)
    assert_clean_refusal(r, before, world, *words)


#: bad numbers refused before the plan line (the suite runs with progress off, which hides that line;
#: these run with it on) and named by the flag the user typed
BEFORE_THE_PLAN = {
    "hessian --topk 0": (["hessian", CK, "--topk", "0", *CHEAP, "--out", "h"], ["--topk"]),
    "hessian --n-examples 0": (["hessian", CK, "--n-examples", "0", "--out", "h"], ["--n-examples"]),
    "density --n-v 0": (["density", CK, "--n-v", "0", *CHEAP, "--out", "d"], ["--n-v"]),
    "lipschitz --n-examples -5": (["lipschitz", CK, "--n-examples", "-5", "--out", "l.png"], ["--n-examples"]),
    # surface's --steps is the grid: the attack's steps must be named --attack-steps
    "surface --attack-steps 0": (["surface", CK, "--grid", "2", "--loss", "recomputed", "--attack-steps", "0",
                                  *CHEAP, "--out", "s4.png"], ["--attack-steps"]),
    "eval --queries 0": (["eval", CK, "--attack", "saa", "--queries", "0", *CHEAP], ["--queries"]),
    "info on a text file": (["info", "notes.txt"], ["notes.txt", "not a file written by torch.save"]),
    # an output that cannot be written: refused before the work, not after it with an OS error
    "eval --out under a file": (["eval", CK, "--attack", "spgd", "--steps", "1", *CHEAP, "--out", "notes.txt/e"],
                                ["--out", "not a folder"]),
    "eval --out into a folder that takes no files": (
        ["eval", CK, "--attack", "spgd", "--steps", "1", *CHEAP, "--out", "/proc/landscape-e"], ["--out", "/proc"]),
    "surface --range 1:0": (["surface", CK, "--grid", "2", "--loss", "clean", "--range", "1:0", *CHEAP,
                             "--out", "s5.png"], ["--range"]),
    "lipschitz --radii 0": (["lipschitz", CK, "--radii", "0", *CHEAP, "--out", "l.png"], ["--radii"]),
    "lipschitz --smoothing 2": (["lipschitz", CK, "--smoothing", "2", *CHEAP, "--out", "l.png"], ["--smoothing"]),
    "density --grid 1": (["density", CK, "--grid", "1", *CHEAP, "--out", "d"], ["--grid"]),
    # accepted silently before: a negative broadening gave a density integrating to a negative number
    "density --sigma -1": (["density", CK, "--sigma", "-1", *CHEAP, "--out", "d"], ["--sigma"]),
    "lipschitz --compare nope": (["lipschitz", CK, "--compare", "nope", *CHEAP, "--out", "l.png"], ["--compare"]),
    "eval --n-examples above the split, plan on": (
        ["eval", CK, "--attack", "spgd", "--steps", "1", "--n-examples", "999999"], ["--n-examples", "1,000"]),
    "hessian --n-examples above the split": (["hessian", CK, "--n-examples", "999999", "--out", "h"],
                                             ["--n-examples", "5,000"]),
    "surface --directions-from missing": (["surface", CK, "--grid", "2", "--directions-from", "nope.pt", *CHEAP,
                                           "--out", "s6.png"], ["nope.pt", "not found"]),
    "surface --directions-from a checkpoint": (["surface", CK, "--grid", "2", "--directions-from", CK, *CHEAP,
                                                "--out", "s6.png"], ["not a landscape directions file"]),
}


@pytest.mark.parametrize("case", list(BEFORE_THE_PLAN))
def test_bad_numbers_are_refused_before_the_plan_line(server, world, case):
    args, words = BEFORE_THE_PLAN[case]
    before = snapshot(world)
    r = server.run(args, world, env={"LANDSCAPE_NO_PROGRESS": "0"})
    line = assert_clean_refusal(r, before, world, *words)
    assert "estimated" not in line and "budget" not in line


def test_resume_of_a_read_only_checkpoint_is_refused(server, world, tmp_path):
    run = tmp_path / "ro"
    shutil.copytree(world / "run", run)
    os.chmod(run / "checkpoint.pt", 0o444)
    before = snapshot(tmp_path)
    r = server.run(["train", "--out", "ro", "--resume", "--epochs", "2"], tmp_path)
    assert_clean_refusal(r, before, tmp_path, "read-only", "--out")


def test_own_results_are_replaced_and_overwrite_is_explicit(server, world, tmp_path):
    shutil.copy(world / CK, tmp_path / "ck.pt")
    ev = ["eval", "ck.pt", "--attack", "spgd", "--steps", "1", *CHEAP, "--out", "e", "--save-adv", "adv.pt"]
    assert server.run(ev, tmp_path).returncode == 0
    os.chmod(tmp_path / "e.csv", 0o600)
    first = (tmp_path / "e.json").read_text()
    r = server.run(ev + ["--seed", "1"], tmp_path)  # the same command's earlier result: replaced
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "e.json").read_text() != first
    assert (tmp_path / "e.csv").stat().st_mode & 0o777 == 0o600  # mode kept on replace
    assert torch.load(tmp_path / "adv.pt", weights_only=True)["format"] == "landscape-adversarial-examples"
    # another command's result is refused, then replaced when asked for
    sv = ["surface", "ck.pt", "--grid", "2", "--loss", "clean", *CHEAP, "--out", "e.png"]
    r = server.run(sv, tmp_path)
    assert r.returncode == 2 and "written by `landscape eval`" in r.stderr and "--overwrite" in r.stderr
    assert server.run(sv + ["--overwrite"], tmp_path).returncode == 0
    assert json.loads((tmp_path / "e.json").read_text())["meta"]["analysis"] == "surface"
    # re-importing onto an earlier import is the same command's result
    imp = ["import", str(world / "sd.pt"), "--arch", "small-cnn", "--dataset", "fashion-mnist-mini", "--out", "imp.pt"]
    assert server.run(imp, tmp_path).returncode == 0
    assert server.run(imp, tmp_path).returncode == 0


def test_interrupt_message_promises_a_resume_only_where_there_is_one(cli_run, monkeypatch, world):
    import landscape.analysis.estimators as est

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(est, "lanczos_topk", interrupted)
    monkeypatch.chdir(world)
    r = cli_run(["hessian", CK, "--loss", "clean", *CHEAP, "--out", str(world / "hx")])
    assert r.exit_code == 130
    assert "resume" not in r.stderr and "nothing was written" in r.stderr
    assert not (world / "hx.json").exists()


def _train_cmd(out: Path, seed: int) -> list[str]:
    return [sys.executable, "-m", "analysis_cli", *TRAIN, "--max-train-examples", "512", "--batch-size", "16",
            "--out", str(out), "--seed", str(seed)]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "LANDSCAPE_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}


def test_two_trainings_into_one_folder(tmp_path, server):
    """While one process trains into a folder, another seed and the very same command started there
    each stop at once with one line; the run that holds the folder completes, whole."""
    out = tmp_path / "run"
    a = subprocess.Popen(_train_cmd(out, 1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_env(), cwd=tmp_path)
    deadline = time.time() + 120
    while not (out / ".lock").exists() and a.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert (out / ".lock").exists(), "the first training never took the lock"
    other_seed = server.run(_train_cmd(out, 2)[3:], tmp_path)
    same = server.run(_train_cmd(out, 1)[3:], tmp_path)
    a_out, a_err = a.communicate(timeout=300)
    assert a.returncode == 0, a_err
    for b in (other_seed, same):
        lines = b.stderr.strip().splitlines()
        assert b.returncode == 2 and len(lines) == 1 and "Traceback" not in b.stderr + b.stdout, b.stderr
        assert "in use by another training" in lines[0] and f"process {a.pid}" in lines[0] and "--out" in lines[0]
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["extra"]["run"]["seed"] == 1 and ck["epoch"] == 1 and ck["extra"]["final"]
    log = (out / "log.txt").read_text()
    assert log.count("landscape train:") == 1 and log.count("final:") == 1
    assert not (out / ".lock").exists()


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path, server):
    """A process killed with SIGKILL leaves its lock file behind (the flock dies with it)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": time.time(),
                                           "command": "landscape train (killed)"}))
    r = server.run(TRAIN + ["--out", "run"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"stale lock in run (process {dead.pid}" in r.stderr and not (out / ".lock").exists()
    assert (out / "checkpoint.pt").exists()


def test_run_lock_in_the_library(tmp_path):
    from landscape.errors import LandscapeError
    from landscape.training.runlock import RunLock
    with RunLock(tmp_path / "f") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
        with pytest.raises(LandscapeError, match="in use by another training"):
            RunLock(tmp_path / "f").acquire()
    assert not (tmp_path / "f" / ".lock").exists()
    RunLock(tmp_path / "f").acquire().release()
