"""`landscape reproduce --jobs N`: steps run N at a time in worker processes, each after the steps
whose outputs it reads; a failure names its step and log; the ledger and figures are as with one job."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from landscape.errors import LandscapeError
from landscape.reproduce import SCALES
from landscape.scheduler import dependencies, out_path, run_parallel

TINY = ("--epochs 1 --batch-size 16 --max-train-examples 32 --eval-examples 4 --clean-examples 8 --device cpu "
        "--set monitor_examples=4 --set monitor_attack=spgd1 --set eval_attack=spgd1")


def test_a_step_waits_for_the_steps_whose_outputs_it_names():
    cmds = ["landscape train --out /r/models/a --seed 0",                         # 0
            "landscape train --out /r/models/b --seed 0",                         # 1
            "landscape eval /r/models/a/checkpoint.pt --out /r/t/a_saa",          # 2: reads a
            "landscape hessian /r/models/a/checkpoint.pt /r/models/b/checkpoint.pt --out /r/h/x",  # 3: a and b
            "landscape train --out /r/models/ab --seed 0",                        # 4: a prefix is not a path
            "landscape report /r",                                                # 5: no --out: a barrier
            "landscape eval /r/models/b/checkpoint.pt --out /r/t/b_saa",          # 6: after the barrier
            "landscape eval /r/models/b/checkpoint.pt --out /r/t/b_saa"]          # 7: same output as 6
    deps = dependencies(cmds)
    assert deps[:5] == [set(), set(), {0}, {0, 1}, set()]
    assert deps[5] == {0, 1, 2, 3, 4} and deps[6] == {1, 5} and deps[7] == {1, 5, 6}
    assert out_path("landscape surface x.pt --out=/r/s.png") == "/r/s.png" and out_path("landscape report r") is None


def _recipe(folder, name, steps, figure=""):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(f'title = "{name}"\nclaim = "c"\nsteps = {json.dumps(steps)}\n' + figure
                                         + "".join(f"[scale.{s}]\nx = 1\n" for s in SCALES))


def test_jobs_run_independent_steps_together_and_record_them_like_one_job(tmp_path, cli_run, monkeypatch):
    figs = tmp_path / "figs"
    steps = [f"landscape train --norm l0 --eps 5 --seed {s} --out {{root}}/models/m{s} {TINY}" for s in (0, 1)]
    steps += [f"landscape eval {{root}}/models/m{s}/checkpoint.pt --attack spgd --steps 2 --n-examples 4 "
              f"--device cpu --out {{out}}/m{s}_spgd" for s in (0, 1)]
    _recipe(figs, "two", steps)
    monkeypatch.setenv("LANDSCAPE_FIGURES", str(figs))
    out = tmp_path / "runs"
    r = cli_run(["reproduce", "two", "--scale", "fmnist", "--jobs", "2", "--in-process", "--no-report", "--out", out])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("[two ")]

    def at(prefix):
        return next(k for k, ln in enumerate(lines) if ln.startswith(prefix))

    # both trainings start before either ends; each evaluation starts after its own model is done
    assert at("[two 2/4] started") < min(at("[two 1/4] done"), at("[two 2/4] done"))
    assert at("[two 1/4] done") < at("[two 3/4] started") and at("[two 2/4] done") < at("[two 4/4] started")
    assert "of 4 steps" in r.stderr
    done = json.loads((out / ".done.json").read_text())
    assert len(done) == 4 and all(v >= 0 for v in done.values())
    for i in range(1, 5):  # each step's output went to its own log, which starts with its command
        log = (out / "two" / "logs" / f"step-{i:02d}.log").read_text()
        assert log.startswith("$ landscape ") and ("robust accuracy" in log)
    assert (out / "two" / "m1_spgd.json").exists()
    final = json.loads((out / "models" / "m0" / "final.json").read_text())
    assert final["clean_examples"] == 8 and final["robust_examples"] == 4  # --clean-examples
    summary = json.loads((out / "two" / "reproduce.json").read_text())
    assert [s["skipped"] for s in summary["steps"]] == [False] * 4
    # rerun: everything is done already, nothing starts
    r = cli_run(["reproduce", "two", "--scale", "fmnist", "--jobs", "2", "--in-process", "--no-report", "--out", out])
    assert r.exit_code == 0 and r.stderr.count("done already") == 4 and "started" not in r.stderr


def test_a_failing_step_names_its_log_and_its_dependents_never_start(tmp_path, cli_run, monkeypatch):
    figs = tmp_path / "figs"
    steps = [f"landscape train --norm l0 --eps 5 --out {{root}}/models/bad {TINY} --set lr=-1",
             "landscape eval {root}/models/bad/checkpoint.pt --attack spgd --steps 2 --out {out}/bad_spgd"]
    _recipe(figs, "fails", steps)
    monkeypatch.setenv("LANDSCAPE_FIGURES", str(figs))
    out = tmp_path / "runs"
    r = cli_run(["reproduce", "fails", "--scale", "fmnist", "--jobs", "2", "--in-process", "--no-report", "--out", out])
    assert r.exit_code == 2, r.output  # a LandscapeError, as with one job
    err = r.stderr.strip().splitlines()[-1]  # one line: the step, its exit code, its log and why
    assert err.startswith("landscape: error: step [fails 1/2] failed (exit 2): landscape train")
    assert str(out / "fails" / "logs" / "step-01.log") in err and err.endswith("lr must be a non-negative number, got -1.0")
    assert "[fails 2/2] started" not in r.stderr and "Traceback" not in r.stderr
    assert not (out / ".done.json").exists() or json.loads((out / ".done.json").read_text()) == {}


def _print_env(argv):
    """A stand-in for the CLI's entry point, run in a worker: prints its arguments and one variable."""
    print(" ".join(argv), os.environ.get("LANDSCAPE_TEST_ENV"))


def test_the_callers_environment_and_each_steps_output_reach_the_steps_log(tmp_path):
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    done = []
    run_parallel(["landscape one --out /r/a", "landscape two --out /r/b"], 2, logs=logs, run_command=_print_env,
                 env={"LANDSCAPE_TEST_ENV": "seen"}, on_done=lambda i, s: done.append(i), echo=lambda m: None)
    assert sorted(done) == [0, 1]
    assert logs[0].read_text() == "$ landscape one --out /r/a\none --out /r/a seen\n"
    assert logs[1].read_text().endswith("two --out /r/b seen\n")


def test_run_parallel_checks_its_arguments(tmp_path):
    with pytest.raises(LandscapeError, match="`jobs`"):
        run_parallel(["landscape recipes"], 0, logs=[tmp_path / "a.log"])
    with pytest.raises(LandscapeError, match="`logs`"):
        run_parallel(["landscape recipes"], 2, logs=[])


@pytest.mark.skipif(not os.path.exists("/proc/self/cmdline"), reason="needs Linux /proc")
def test_sigterm_with_jobs_stops_the_workers_steps_and_leaves_them_to_resume(tmp_path):
    from landscape.checkpoint import Checkpoint
    from tests.test_reproduce import _processes_mentioning
    figs = tmp_path / "figs"
    long = "--epochs 400 --batch-size 16 --max-train-examples 160 --eval-examples 8 --save-every 1 --device cpu " \
           "--set monitor_examples=8 --set monitor_attack=spgd1 --set eval_attack=spgd1"
    _recipe(figs, "long", [f"landscape train --norm l0 --eps 10 --seed {s} --out {{root}}/models/m{s} {long}"
                           for s in (0, 1)])
    out = tmp_path / "runs"
    env = dict(os.environ, LANDSCAPE_FIGURES=str(figs), LANDSCAPE_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "analysis_cli", "reproduce", "long", "--scale", "fmnist", "--jobs", "2",
           "--no-report", "--out", str(out)]
    parent = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cks = [out / "models" / f"m{s}" / "checkpoint.pt" for s in (0, 1)]
    deadline = time.time() + 120
    while not all(c.exists() for c in cks) and time.time() < deadline and parent.poll() is None:
        time.sleep(0.05)
    assert all(c.exists() for c in cks), parent.stderr.read() if parent.poll() is not None else "no checkpoints"
    parent.send_signal(signal.SIGTERM)
    err = parent.communicate(timeout=120)[1]
    assert parent.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert _processes_mentioning(str(out / "models")) == []  # both steps stopped with it
    for c in cks:
        assert Checkpoint.load(c).epoch < 400
    done = out / ".done.json"
    assert not done.exists() or json.loads(done.read_text()) == {}
