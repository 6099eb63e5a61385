import os
import pickle

import pytest
import torch

from landscape import checkpoint as ckpt_mod
from landscape.checkpoint import Checkpoint, atomic_save, import_state_dict, load_checkpoint, read_weights_only
from landscape.errors import LandscapeError
from landscape.models import build_model
from landscape.threat import ThreatModel

DATASET = {"name": "fashion-mnist-mini", "channels": 1, "height": 12, "width": 12, "num_classes": 3,
           "classes": ["a", "b", "c"], "mean": [0.3], "std": [0.3]}
KW = {"in_channels": 1, "num_classes": 3, "image_size": 12, "width": 4, "hidden": 8, "batchnorm": True,
      "mean": [0.3], "std": [0.3]}


def _ckpt(epoch=2):
    torch.manual_seed(0)
    model = build_model("small-cnn", **KW)
    return model, Checkpoint.create(model, arch="small-cnn", model_kwargs=KW, dataset=DATASET,
                                    threat=ThreatModel("l0", 5), recipe={"name": "fast-ls-l0", "lr": 0.1},
                                    epoch=epoch, step=3, metrics=[{"epoch": 1, "loss": 1.5}, {"epoch": 2, "loss": 0.9}],
                                    train_state={"optimizer": {"lr": 0.1}, "rng": torch.get_rng_state()})


def test_round_trip(tmp_path):
    model, ck = _ckpt()
    path = ck.save(tmp_path / "sub" / "a.pt")
    back = load_checkpoint(path)
    assert back.arch == "small-cnn" and back.model_kwargs == KW and back.dataset == DATASET
    assert back.threat == ThreatModel("l0", 5) and back.recipe["name"] == "fast-ls-l0"
    assert back.epoch == 2 and back.step == 3 and back.metrics[-1]["loss"] == 0.9
    assert torch.equal(back.train_state["rng"], ck.data["train_state"]["rng"])
    x = torch.rand(4, 1, 12, 12)
    assert torch.equal(back.model()(x), model.eval()(x))
    assert back.model(eval=False).training and not back.model().training
    assert "small-cnn on fashion-mnist-mini" in back.summary() and "l0(eps=5)" in back.summary()
    raw = torch.load(path, weights_only=True)  # plain tensors and values only
    assert raw["format"] == "landscape-checkpoint" and raw["version"] == 1
    assert not [p for p in path.parent.iterdir() if p.name != "a.pt"]  # no temporary left behind


def test_atomic_write_keeps_old_file_when_save_fails(tmp_path, monkeypatch):
    _, ck = _ckpt(epoch=1)
    path = ck.save(tmp_path / "a.pt")
    before = path.read_bytes()

    def broken(obj, f, *a, **k):
        f.write(b"partial garbage")
        raise OSError("disk full (test)")
    monkeypatch.setattr(ckpt_mod.torch, "save", broken)
    _, ck2 = _ckpt(epoch=9)
    with pytest.raises(OSError, match="disk full"):
        ck2.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path).epoch == 1
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(ckpt_mod.torch, "save", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        atomic_save({"x": 1}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.pt"]


class Gadget:
    def __init__(self):
        self.x = 1


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _bad_files(tmp_path):
    _, ck = _ckpt()
    good = ck.save(tmp_path / "good.pt")
    blob = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("hello")
    (tmp_path / "notes.md").write_text("# a markdown file\n")   # '#' once read as a pickle opcode
    torch.save(build_model("small-cnn", **KW).state_dict(), tmp_path / "foreign.pt")
    torch.save({"state_dict": build_model("small-cnn", **KW).state_dict(), "epoch": 3}, tmp_path / "foreign2.pt")
    torch.save({"model": Gadget()}, tmp_path / "object.pt")
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump(Evil(), f)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    (tmp_path / "adir.pt").mkdir()
    return {
        "missing.pt": "checkpoint not found",
        "truncated.pt": "corrupt or truncated",
        "empty.pt": "is empty, not a checkpoint",
        "text.pt": "not a file written by torch.save",
        "notes.md": "not a file written by torch.save",
        "foreign.pt": "not a landscape checkpoint.*landscape import",
        "foreign2.pt": "not a landscape checkpoint.*landscape import",
        "object.pt": "arbitrary pickled objects",
        "evil.pt": "arbitrary pickled objects|corrupt",
        "list.pt": "not a landscape checkpoint",
        "adir.pt": "directory",
    }


pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")


def test_bad_checkpoints_give_one_clear_error(tmp_path):
    for name, pattern in _bad_files(tmp_path).items():
        with pytest.raises(LandscapeError, match=pattern):
            load_checkpoint(tmp_path / name)


def test_bad_checkpoints_through_info(tmp_path, cli_run):
    for name, pattern in _bad_files(tmp_path).items():
        r = cli_run(["info", tmp_path / name])
        assert r.exit_code == 2, (name, r.output)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and " error: " in lines[0], (name, r.stderr)
        assert "Traceback" not in r.output and r.stdout == ""


def test_evil_pickle_is_never_executed(tmp_path, monkeypatch):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump(Evil(), f)
    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    with pytest.raises(LandscapeError):
        read_weights_only(tmp_path / "evil.pt")
    assert called == []


def test_info_prints_summary(tmp_path, cli_run):
    _, ck = _ckpt()
    path = ck.save(tmp_path / "a.pt")
    r = cli_run(["info", path])
    assert r.exit_code == 0, r.output
    out = r.stdout
    for text in ("small-cnn", "fashion-mnist-mini (1x12x12, 3 classes)", "l0(eps=5)", "fast-ls-l0",
                 "epoch:      2 (+3 steps)", "loss=0.9"):
        assert text in out, (text, out)
    r = cli_run(["info", path, "--json"])
    assert r.exit_code == 0 and '"fast-ls-l0"' in r.stdout and "state_dict" not in r.stdout


def test_weights_that_do_not_fit(tmp_path):
    _, ck = _ckpt()
    ck.data["arch"]["kwargs"] = dict(KW, num_classes=5)
    ck.save(tmp_path / "a.pt")
    with pytest.raises(LandscapeError, match="do not fit small-cnn"):
        load_checkpoint(tmp_path / "a.pt").model()


def test_import_preact_state_dict_with_module_prefix(tmp_path):
    torch.manual_seed(1)
    src_model = build_model("preact-resnet18", activation="softplus", width=0.125).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for mod in src_model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    sd = {"module." + k: v for k, v in src_model.state_dict().items()}
    torch.save({"state_dict": sd, "epoch": 99, "optimizer": {}}, tmp_path / "spgd.pth")
    meta = dict(DATASET, name="cifar10", channels=3, height=32, width=32, num_classes=10)
    ck = import_state_dict(tmp_path / "spgd.pth", tmp_path / "out.pt", arch="preact-resnet18", dataset=meta,
                           model_kwargs={"activation": "softplus", "width": 0.125}, threat=ThreatModel("l0", 20),
                           key="state_dict")
    back = load_checkpoint(tmp_path / "out.pt")
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(back.model()(x), src_model(x))
    assert back.threat == ThreatModel("l0", 20) and back.recipe is None and ck.arch == "preact-resnet18"
    with pytest.raises(LandscapeError, match="no key 'net'"):
        import_state_dict(tmp_path / "spgd.pth", tmp_path / "o2.pt", arch="preact-resnet18", dataset=meta,
                          model_kwargs={"width": 0.125}, key="net")
    with pytest.raises(LandscapeError, match="do not fit"):
        import_state_dict(tmp_path / "spgd.pth", tmp_path / "o3.pt", arch="preact-resnet18", dataset=meta,
                          model_kwargs={"width": 0.25})
    assert not (tmp_path / "o3.pt").exists()


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    """mkstemp makes 0600 files; results and checkpoints must be readable like any other file."""
    import os
    import stat

    from landscape.checkpoint import atomic_write_text
    old = os.umask(0o022)
    try:
        atomic_save({"a": 1}, tmp_path / "c.pt")
        atomic_write_text(tmp_path / "r.csv", "x\n1\n")
    finally:
        os.umask(old)
    for name in ("c.pt", "r.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
