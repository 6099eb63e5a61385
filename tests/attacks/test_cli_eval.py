"""``landscape eval`` end to end on a tiny checkpoint, and bad input."""

import json

import pandas as pd
import pytest
import torch

from landscape.threat import ThreatModel
from tests.interrupting import interrupting, recording


def test_eval_end_to_end_with_saved_adversarial_examples(cli_run, tiny_ckpt, tmp_path):
    adv = tmp_path / "adv.pt"
    r = cli_run(["eval", tiny_ckpt, "--attack", "saa", "--steps", "3", "--queries", "10", "--n-examples", "20",
                 "--batch-size", "8", "--save-adv", adv, "--device", "cpu"])
    assert r.exit_code == 0, r.stderr
    for stage in ("clean", "spgd", "spgd-projected", "rs", "worst-case"):
        assert stage in r.stdout
    prefix = tmp_path / "tiny_eval_saa"                         # default: next to the checkpoint
    df = pd.read_csv(str(prefix) + ".csv")
    assert df["stage"].tolist() == ["clean", "spgd", "spgd-projected", "rs", "worst-case"]
    assert (df["eps"] == 3).all() and (df["norm"] == "l0").all() and (df["n"] == 20).all()
    meta = json.loads((tmp_path / "tiny_eval_saa.json").read_text())["meta"]
    assert meta["threat"] == {"norm": "l0", "eps": 3.0} and meta["n_examples"] == 20
    saved = torch.load(adv, weights_only=True)
    from landscape.data import load_dataset
    test = load_dataset("fashion-mnist-mini", "test")
    x = test.images[saved["indices"]].float() / 255
    assert torch.equal(test.labels[saved["indices"]], saved["y"])
    assert ThreatModel("l0", 3).is_valid(x, saved["x_adv"]).all()


def test_eval_overrides_norm_eps_and_out(cli_run, tiny_ckpt, tmp_path):
    out = tmp_path / "res" / "pgd"
    r = cli_run(["eval", tiny_ckpt, "--attack", "pgd", "--norm", "linf", "--eps", "8/255", "--steps", "2",
                 "--n-examples", "10", "--out", out])
    assert r.exit_code == 0, r.stderr
    df = pd.read_csv(str(out) + ".csv")
    assert df["eps"].iloc[0] == pytest.approx(8 / 255) and df["stage"].tolist() == ["clean", "pgd", "worst-case"]


@pytest.mark.parametrize("args,msg", [
    (["--attack", "pgd"], "l0"),                         # pgd cannot attack the checkpoint's l0 model
    (["--eps", "1000"], "larger than the image"),
    (["--eps", "0"], "positive"),
    (["--eps", "-3"], "positive"),
    (["--norm", "linf", "--attack", "pgd"], "--eps"),    # no linf budget in the checkpoint
])
def test_eval_bad_input(cli_run, tiny_ckpt, tmp_path, args, msg):
    out = tmp_path / "keep"
    (tmp_path / "keep.csv").write_text("earlier result\n")  # an earlier `landscape eval` result
    (tmp_path / "keep.json").write_text('{"meta": {"command": "landscape eval ck.pt --out keep"}, "rows": []}')
    r = cli_run(["eval", tiny_ckpt, "--n-examples", "4", "--steps", "1", "--out", out] + args)
    assert r.exit_code == 2
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (tmp_path / "keep.csv").read_text() == "earlier result\n"


def test_eval_missing_and_corrupt_checkpoint(cli_run, tmp_path):
    r = cli_run(["eval", tmp_path / "nope.pt"])
    assert r.exit_code == 2 and "not found" in r.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    r = cli_run(["eval", bad])
    assert r.exit_code == 2 and r.stderr.startswith("landscape: error:")
    assert len(r.stderr.strip().splitlines()) == 1


def test_eval_interrupted_resumes_with_the_same_results(cli_run, tiny_ckpt, tmp_path, monkeypatch):
    """Ctrl-C after the second of three batches keeps them in .PREFIX.partial/ (exit 130, saying so); the
    same command again attacks only the last batch and writes what an uninterrupted run writes."""
    import landscape.evaluation as ev
    real = ev.attack_batches
    base = ["eval", tiny_ckpt, "--attack", "saa", "--steps", "3", "--queries", "10", "--n-examples", "20",
            "--batch-size", "8", "--device", "cpu"]
    r = cli_run(base + ["--out", tmp_path / "whole", "--save-adv", tmp_path / "whole.pt"])
    assert r.exit_code == 0, r.stderr

    cmd = base + ["--out", tmp_path / "part", "--save-adv", tmp_path / "part.pt"]
    with monkeypatch.context() as m:
        m.setattr(ev, "attack_batches", interrupting(real, batch=2)[0])
        r = cli_run(cmd)
    assert r.exit_code == 130 and "partial results were saved" in r.stderr
    assert not (tmp_path / "part.csv").exists() and len(list((tmp_path / ".part.partial").glob("batch_*.pt"))) == 2
    fake, starts = recording(real)
    with monkeypatch.context() as m:
        m.setattr(ev, "attack_batches", fake)
        r = cli_run(cmd)
    assert r.exit_code == 0, r.stderr
    assert starts == [16] and not (tmp_path / ".part.partial").exists()
    cols = ["attack", "norm", "eps", "stage", "accuracy", "correct", "n"]
    assert pd.read_csv(tmp_path / "part.csv")[cols].equals(pd.read_csv(tmp_path / "whole.csv")[cols])
    assert json.loads((tmp_path / "part.json").read_text())["meta"]["resumed_examples"] == 16
    a, b = torch.load(tmp_path / "part.pt", weights_only=True), torch.load(tmp_path / "whole.pt", weights_only=True)
    assert torch.equal(a["x_adv"], b["x_adv"]) and torch.equal(a["indices"], b["indices"])
