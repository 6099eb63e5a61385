"""The trainer's GPU code paths (channels_last, bf16 autocast, torch.compile) run on the CPU here,
for correctness only: the same training with and without them, and the attack kept in float32."""

import pytest
import torch

from landscape.checkpoint import Checkpoint
from landscape.training import get_preset
from landscape.training.trainer import train

TINY = {"width": 4, "hidden": 16}
FAST = ['monitor_examples=0', 'eval_attack=spgd', 'eval_attack_kwargs={"steps": 2}']


def _run(out, **kw):
    r = get_preset("fast-ls-l0", eps=10, scale="small").with_settings(FAST).replace(batch_size=32, epochs=1, sat_start=0)
    return train(r, out=out, device="cpu", seed=3, model_kwargs=TINY, max_train_examples=64, eval_examples=8,
                 progress=False, log=lambda m: None, **kw)


def _weights(path):
    return Checkpoint.load(path / "checkpoint.pt").state_dict


def test_channels_last_and_compiled_forward_train_the_same_model(tmp_path):
    _run(tmp_path / "plain", channels_last=False)
    _run(tmp_path / "cl", channels_last=True)
    _run(tmp_path / "compiled", compile="eager")   # dynamo's tracing and the wrapper, without a C compiler
    plain, cl, comp = _weights(tmp_path / "plain"), _weights(tmp_path / "cl"), _weights(tmp_path / "compiled")
    assert plain.keys() == cl.keys() == comp.keys()      # no "_orig_mod." prefixes from the compiled wrapper
    for k in plain:
        assert torch.allclose(plain[k], comp[k], rtol=1e-5, atol=1e-6), k
        assert torch.allclose(plain[k], cl[k], rtol=1e-3, atol=1e-4), k
        assert cl[k].dtype == plain[k].dtype
    assert Checkpoint.load(tmp_path / "cl" / "checkpoint.pt").model()(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_bf16_autocast_for_the_training_forward_only(tmp_path, monkeypatch):
    """The training forward runs in bf16; the attack (and the validity-checked evaluation) in float32."""
    from landscape.attacks import spgd
    seen = {"attack": set(), "train": set()}
    orig = spgd.SparsePGD.perturb

    def perturb(self, model, x, y):
        h = model.register_forward_hook(lambda m, i, o: seen["attack"].add((o.dtype, torch.is_autocast_enabled("cpu"))))
        try:
            return orig(self, model, x, y)
        finally:
            h.remove()
    monkeypatch.setattr(spgd.SparsePGD, "perturb", perturb)
    import landscape.training.losses as losses
    orig_pf = losses.PairForward.forward

    def pf(self, x_adv, x=None):
        out = orig_pf(self, x_adv, x)
        seen["train"].add(out[1].dtype)
        return out
    monkeypatch.setattr(losses.PairForward, "forward", pf)
    res = _run(tmp_path / "bf16", bf16=True)
    assert seen["train"] == {torch.bfloat16}
    assert seen["attack"] and all(dt == torch.float32 and not ac for dt, ac in seen["attack"])
    w = _weights(tmp_path / "bf16")
    assert all(v.dtype in (torch.float32, torch.int64) for v in w.values())   # master weights stay fp32
    row = Checkpoint.load(tmp_path / "bf16" / "checkpoint.pt").metrics[0]
    assert row["train_loss"] == row["train_loss"] and 0 <= res["robust_acc"] <= 1


def _layout_of(path):
    return Checkpoint.load(path / "checkpoint.pt").data["extra"]["run"]["channels_last"]


def test_channels_last_is_the_default_on_the_cpu_and_a_resumed_run_keeps_its_layout(tmp_path, monkeypatch):
    from landscape.errors import LandscapeError
    from landscape.training.trainer import _layout
    _run(tmp_path / "default")
    assert _layout_of(tmp_path / "default") is True
    monkeypatch.setenv("LANDSCAPE_CHANNELS_LAST", "0")       # the layout of the earlier versions
    _run(tmp_path / "off")
    assert _layout_of(tmp_path / "off") is False
    monkeypatch.setenv("LANDSCAPE_CHANNELS_LAST", "maybe")
    with pytest.raises(LandscapeError, match="LANDSCAPE_CHANNELS_LAST"):
        _run(tmp_path / "bad")
    monkeypatch.delenv("LANDSCAPE_CHANNELS_LAST")
    # a run begun in the default layout and resumed where channels_last is the default keeps its layout
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "kept", channels_last=False, halt_after_steps=1)
    _run(tmp_path / "kept", resume=True)
    assert _layout_of(tmp_path / "kept") is False
    assert torch.equal(_weights(tmp_path / "kept")["features.0.weight"], _weights(tmp_path / "off")["features.0.weight"])
    # a checkpoint stored before the layout was recorded trained channels_last on CUDA only
    ck = Checkpoint.load(tmp_path / "off" / "checkpoint.pt")
    del ck.data["extra"]["run"]["channels_last"]
    assert _layout(None, ck, torch.device("cpu")) is False and _layout(None, ck, torch.device("cuda")) is True
    assert _layout(True, ck, torch.device("cpu")) is True and _layout(None, None, torch.device("cpu")) is True
