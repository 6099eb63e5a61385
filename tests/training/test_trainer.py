"""The trainer end to end on tiny runs: resume exactness, CLI errors, checkpoints, CO monitor."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from landscape.checkpoint import Checkpoint
from landscape.training import get_preset
from landscape.training.monitor import co_detected
from landscape.training.trainer import train

TINY = {"width": 4, "hidden": 16}
FAST_EVAL = ['monitor_examples=8', 'monitor_attack_kwargs={"steps": 2, "n_queries": 4}', 'eval_attack=spgd',
             'eval_attack_kwargs={"steps": 2}']


def _recipe(name="fast-ls-l0", **kw):
    r = get_preset(name, eps=10, scale="small").with_settings(FAST_EVAL)
    return r.replace(batch_size=32, epochs=2, sat_start=0, **kw)


def _run(out, **kw):
    args = dict(out=out, device="cpu", seed=3, model_kwargs=TINY, max_train_examples=96, eval_examples=8,
                progress=False, log=lambda m: None)
    args.update(kw)
    return train(kw.pop("recipe", None) or _recipe(), **{k: v for k, v in args.items() if k != "recipe"})


def test_soft_labels_switched_on_by_a_setting_wait_for_the_sat_start_epoch(tmp_path):
    # sat_start unset: half the epochs, so epoch 1 of 2 trains on the hard labels
    r = get_preset("sat-1step", eps=10, scale="small").with_settings(FAST_EVAL + ["soft_labels=true"])
    r = r.replace(batch_size=32, epochs=2)
    assert r.sat_start is None and r.sat_start_epoch == 1
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "r", recipe=r, halt_after_steps=3)   # 3 steps per epoch: the end of epoch 1
    table = Checkpoint.load(tmp_path / "r" / "checkpoint.pt").train_state["soft_labels"]["table"]
    assert torch.equal(table, torch.nn.functional.one_hot(table.argmax(1), 10).float())
    _run(tmp_path / "r", recipe=r)
    table = Checkpoint.load(tmp_path / "r" / "checkpoint.pt").train_state["soft_labels"]["table"]
    assert (table.max(1).values < 1).all() and torch.allclose(table.sum(1), torch.ones(96))


def _weights(path):
    return Checkpoint.load(path).state_dict


def test_resume_after_interrupt_is_exact(tmp_path):
    full = tmp_path / "full"
    _run(full)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        _run(part, halt_after_steps=4)   # 3 steps per epoch: stops after step 1 of epoch 2
    ck = Checkpoint.load(part / "checkpoint.pt")
    assert (ck.epoch, ck.step) == (1, 1)
    assert ck.train_state["soft_labels"]["table"].shape == (96, 10)
    res = _run(part)                     # the same call again resumes
    a, b = _weights(full / "checkpoint.pt"), _weights(part / "checkpoint.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    metrics = Checkpoint.load(part / "checkpoint.pt").metrics
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all(m["grad_norm"] > 0 for m in metrics)     # ‖∇θ L‖ per epoch (Fig. 4a), resumed exactly below
    assert res["robust_examples"] == 8 and 0 <= res["robust_acc"] <= res["clean_acc"] + 1
    full_rows = (full / "metrics.csv").read_text().splitlines()
    part_rows = (part / "metrics.csv").read_text().splitlines()
    strip = lambda rows: [",".join(r.split(",")[:-2]) for r in rows]  # drop time and examples columns
    assert strip(full_rows) == strip(part_rows)


def test_kill_mid_epoch_then_resume_matches(tmp_path):
    """SIGKILL a CLI run after its first mid-epoch checkpoint; rerunning the command finishes it exactly."""
    args = [sys.executable, "-m", "analysis_cli", "train", "--norm", "l0", "--eps", "10", "--epochs", "1",
            "--batch-size", "16", "--max-train-examples", "160", "--eval-examples", "8", "--save-every", "2",
            "--device", "cpu", "--seed", "1", *sum((["--set", s] for s in FAST_EVAL), [])]
    env = dict(os.environ, LANDSCAPE_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    ref = tmp_path / "ref"
    subprocess.run(args + ["--out", str(ref)], env=env, check=True, capture_output=True, timeout=300)
    run = tmp_path / "run"
    p = subprocess.Popen(args + ["--out", str(run)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = run / "checkpoint.pt"
    deadline = time.time() + 200
    while not ck.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    saved = Checkpoint.load(ck)
    assert saved.epoch == 0 and saved.step > 0      # a mid-epoch checkpoint
    r = subprocess.run(args + ["--out", str(run)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "robust accuracy" in r.stdout
    a, b = _weights(ref / "checkpoint.pt"), _weights(ck)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_quick_start_writes_weights_only_checkpoint(tmp_path, cli_run):
    out = tmp_path / "run"
    r = cli_run(["train", "--norm", "l0", "--eps", "20", "--epochs", "1", "--max-train-examples", "64",
                 "--batch-size", "32", "--eval-examples", "8", "--out", out, "--device", "cpu",
                 *sum((["--set", s] for s in FAST_EVAL), [])])
    assert r.exit_code == 0, r.output
    assert "clean accuracy" in r.stdout and "robust accuracy" in r.stdout
    data = torch.load(out / "checkpoint.pt", weights_only=True)
    assert data["recipe"]["name"] == "fast-ls-l0" and data["recipe"]["eps"] == 20
    assert data["threat"] == {"norm": "l0", "eps": 20.0}
    assert data["epoch"] == 1 and data["step"] == 0
    assert data["extra"]["final"]["robust_examples"] == 8
    final = json.loads((out / "final.json").read_text())
    assert set(final) >= {"clean_acc", "robust_acc", "eval_attack"}
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"monitor_train_attack_acc", "monitor_strong_acc", "co"} <= set(header)
    assert "trades_beta" in (out / "log.txt").read_text()
    Checkpoint.load(out / "checkpoint.pt").model()  # rebuilds for analysis
    from landscape.plots.training import plot_training_curves
    plot_training_curves(out, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--norm", "l7"], "unknown norm"),
    (["--dataset", "imagenet-huge"], "unknown dataset"),
    (["--arch", "resnet9000"], "unknown model"),
    (["--preset", "nope"], "unknown preset"),
    (["--eps", "0"], "positive"),
    (["--eps", "-3"], "positive"),
    (["--eps", "785"], "larger than the image"),
    (["--set", "loss=hinge"], "unknown loss"),
])
def test_cli_bad_input_one_line_and_checkpoint_untouched(tmp_path, args, message):
    out = tmp_path / "run"
    out.mkdir()
    ck = out / "checkpoint.pt"
    ck.write_bytes(b"previous checkpoint")
    before = ck.stat().st_mtime_ns
    env = dict(os.environ, LANDSCAPE_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "analysis_cli", "train", "--out", str(out), "--device", "cpu", *args],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("landscape: error:") and message in lines[0], r.stderr
    assert ck.read_bytes() == b"previous checkpoint" and ck.stat().st_mtime_ns == before


def test_different_recipe_over_existing_run_is_refused(tmp_path):
    out = tmp_path / "run"
    _run(out, recipe=_recipe().replace(epochs=1))
    before = (out / "checkpoint.pt").read_bytes()
    from landscape.errors import LandscapeError
    with pytest.raises(LandscapeError, match="different run"):
        _run(out, recipe=_recipe(trades_beta=3.0).replace(epochs=1))
    assert (out / "checkpoint.pt").read_bytes() == before


def test_co_rule():
    assert co_detected(0.8, 0.05)
    assert not co_detected(0.6, 0.45)
    assert not co_detected(0.725, 0.345)  # a young fast-ls-l0 model: the usual 1-step/20-step gap
    assert not co_detected(0.2, 0.0, gap=0.3)


@pytest.mark.parametrize("name", ["fast-l1", "nfgsm-l2", "nfgsm-linf", "strades-t-1step", "tradeoff-1step", "sat"])
def test_every_norm_and_loss_trains_a_step(tmp_path, name):
    mon = '{"steps": 1, "n_queries": 2}' if get_preset(name).norm == "l0" else '{"steps": 1}'
    r = get_preset(name, scale="small").with_settings(['monitor_examples=4', f'monitor_attack_kwargs={mon}',
                                                      'eval_attack_kwargs={"steps": 1}'])
    r = r.replace(batch_size=16, epochs=1, steps=min(r.steps, 2), sat_start=0)
    res = _run(tmp_path / name, recipe=r, max_train_examples=16, eval_examples=4)
    assert 0 <= res["robust_acc"] <= 1
    row = Checkpoint.load(tmp_path / name / "checkpoint.pt").metrics[0]
    assert row["examples"] == 16 and row["train_loss"] == row["train_loss"]  # not NaN


def test_a_run_stopped_in_its_final_evaluation_resumes_it(tmp_path, monkeypatch):
    """Ctrl-C in the second batch (of 500) of the final robust evaluation: the trained checkpoint and the
    first batch are kept; the same call again trains nothing more, attacks only the rest, and reports
    what an uninterrupted run reports. The partial folder is gone at the end."""
    import landscape.evaluation as ev
    from tests.interrupting import interrupting, recording
    real = ev.attack_batches
    r = _recipe().replace(epochs=1)
    whole = _run(tmp_path / "whole", recipe=r, eval_examples=600)
    part = tmp_path / "part"
    with monkeypatch.context() as m:
        m.setattr(ev, "attack_batches", interrupting(real, batch=1)[0])
        with pytest.raises(KeyboardInterrupt):
            _run(part, recipe=r, eval_examples=600)
    assert len(list((part / ".final_eval.partial").glob("batch_*.pt"))) == 1
    fake, starts = recording(real)
    with monkeypatch.context() as m:
        m.setattr(ev, "attack_batches", fake)
        res = _run(part, recipe=r, eval_examples=600)
    assert starts == [500] and not (part / ".final_eval.partial").exists()
    assert res["robust_acc"] == whole["robust_acc"] and res["clean_acc"] == whole["clean_acc"]
    a, b = _weights(tmp_path / "whole" / "checkpoint.pt"), _weights(part / "checkpoint.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m["epoch"] for m in Checkpoint.load(part / "checkpoint.pt").metrics] == [1]
