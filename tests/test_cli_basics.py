import pytest
import torch

from landscape.errors import LandscapeError
from landscape.threat import ThreatModel
from tests.data.cifar_files import write_tarball


def _one_error_line(r, pattern=None):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and " error: " in lines[0] and "Traceback" not in r.output, r.stderr
    if pattern:
        assert pattern in lines[0], lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path / "cache"))


def test_help_lists_commands(cli_run):
    r = cli_run(["--help"])
    assert r.exit_code == 0
    for name in ("data", "import", "info"):
        assert f"  {name}" in r.stdout
    for sub in (["data", "--help"], ["data", "list", "--help"], ["import", "--help"], ["info", "--help"]):
        assert cli_run(sub).exit_code == 0


def test_data_list_never_downloads(tmp_path, cli_run, monkeypatch):
    import urllib.request

    def no_network(*a, **k):
        raise AssertionError("data list must not touch the network")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    write_tarball("cifar10", tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli_run(["data", "list", "--data-dir", tmp_path])
    assert r.exit_code == 0, r.output
    rows = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert set(rows) == {"fashion-mnist-mini", "fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder"}
    assert "found: embedded" in rows["fashion-mnist-mini"]
    assert f"found: {tmp_path / 'cifar-10-python.tar.gz'}" in rows["cifar10"]
    assert "not found;" in rows["cifar100"] and "cifar-100-python.tar.gz" in rows["cifar100"]
    assert "not found;" in rows["imagefolder"] and "--data-dir" in rows["imagefolder"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not (tmp_path / "cache").exists()


def test_data_show(tmp_path, cli_run):
    write_tarball("cifar10", tmp_path)
    r = cli_run(["data", "show", "cifar10", "--split", "test", "--data-dir", tmp_path])
    assert r.exit_code == 0, r.output
    assert "cifar10 test: 4 images of 3x32x32, 10 classes" in r.stdout
    r = cli_run(["data", "show", "fashion-mnist-mini"])
    assert "5000 images of 1x28x28" in r.stdout


def test_unknown_dataset(cli_run, tmp_path):
    _one_error_line(cli_run(["data", "show", "svhn"]), "unknown dataset 'svhn'")
    _one_error_line(cli_run(["data", "show", "cifar100", "--data-dir", tmp_path]), "cifar100 not found")
    from landscape.data import load_dataset
    with pytest.raises(LandscapeError, match="unknown dataset"):
        load_dataset("imagenet-1k")


def test_bad_threat_model_in_library():
    for norm, eps, pattern in [("l3", 1, "unknown norm"), ("l0", 2.5, "whole number"), ("linf", 2, "larger than"),
                               ("l2", -1, "positive"), ("l2", "abc", "cannot read eps"), ("l1", "1/0", "cannot read")]:
        with pytest.raises(LandscapeError, match=pattern):
            ThreatModel(norm, eps)
    assert ThreatModel("Linf", "8/255").eps == pytest.approx(8 / 255)


def _spgd_file(tmp_path, width=0.125, activation="softplus", key="state_dict"):
    torch.manual_seed(0)
    from landscape.models import build_model
    m = build_model("preact-resnet18", activation=activation, width=width).eval()
    sd = {"module." + k: v for k, v in m.state_dict().items()}
    path = tmp_path / "spgd.pth"
    torch.save({key: sd, "epoch": 100} if key else sd, path)
    return m, path


def test_import_cli_round_trip(tmp_path, cli_run):
    src, path = _spgd_file(tmp_path)
    out = tmp_path / "ck.pt"
    r = cli_run(["import", path, "--arch", "preact-resnet18", "--activation", "softplus", "--width", "0.125",
                 "--dataset", "cifar10", "--norm", "l0", "--eps", "20", "--key", "state_dict", "--out", out])
    assert r.exit_code == 0, r.output
    from landscape.checkpoint import load_checkpoint
    ck = load_checkpoint(out)
    assert ck.threat == ThreatModel("l0", 20) and ck.dataset["name"] == "cifar10" and ck.dataset["num_classes"] == 10
    assert ck.model_kwargs["mean"] == pytest.approx([0.4914, 0.4822, 0.4465])
    x = torch.rand(2, 3, 32, 32)
    # same weights; the imported model normalises with CIFAR-10 statistics inside itself
    mean, std = torch.tensor(ck.model_kwargs["mean"]).view(1, 3, 1, 1), torch.tensor(ck.model_kwargs["std"]).view(1, 3, 1, 1)
    assert torch.allclose(ck.model()(x), src((x - mean) / std), atol=1e-5)
    r = cli_run(["info", out])
    assert r.exit_code == 0 and "preact-resnet18" in r.stdout and "l0(eps=20)" in r.stdout and "imported" in r.stdout
    out2 = tmp_path / "raw.pt"
    r = cli_run(["import", path, "--arch", "preact-resnet18", "--activation", "softplus", "--width", "0.125",
                 "--no-normalize", "--out", out2])
    assert r.exit_code == 0, r.output
    assert torch.equal(load_checkpoint(out2).model()(x), src(x)) and load_checkpoint(out2).threat is None


def test_import_bad_input(tmp_path, cli_run):
    _, path = _spgd_file(tmp_path)
    out = tmp_path / "ck.pt"
    base = ["import", path, "--width", "0.125", "--activation", "softplus", "--out", out]
    _one_error_line(cli_run(base + ["--arch", "vgg16"]), "unknown model 'vgg16'")
    _one_error_line(cli_run(base + ["--arch", "preact-resnet18", "--dataset", "svhn"]), "unknown dataset")
    _one_error_line(cli_run(base + ["--arch", "preact-resnet18", "--norm", "l0"]), "both --norm and --eps")
    _one_error_line(cli_run(base + ["--arch", "preact-resnet18", "--norm", "l7", "--eps", "3"]), "unknown norm")
    _one_error_line(cli_run(base + ["--arch", "preact-resnet18", "--norm", "l0", "--eps", "5000"]), "larger than the image")
    _one_error_line(cli_run(base + ["--arch", "preact-resnet18", "--key", "net"]), "no key 'net'")
    _one_error_line(cli_run(base + ["--arch", "preact-resnet18", "--dataset", "mnist"]), "do not fit")
    _one_error_line(cli_run(base + ["--arch", "preact-resnet18", "--activation", "tanh"]), "unknown activation")
    _one_error_line(cli_run(["import", tmp_path / "nope.pth", "--arch", "small-cnn", "--out", out]), "not found")
    _one_error_line(cli_run(base + ["--arch", "preact-resnet18", "--dataset", "imagefolder"]), "number of classes")
    assert not out.exists()
    r = cli_run(["import", path, "--arch", "preact-resnet18"])
    _one_error_line(r, "--out")


def test_import_reads_back_a_landscape_model(tmp_path, cli_run):
    """Export a trained small-cnn's state dict (the quick start's width 16, hidden 128), import it with
    the flags `landscape info` prints, and get the same predictions; wrong flags name the keys."""
    from landscape.checkpoint import Checkpoint, load_checkpoint
    from landscape.data import load_dataset
    from landscape.models import build_model, model_kwargs_for
    ds = load_dataset("fashion-mnist-mini", "train").subset(64, seed=0)
    x, y = ds.images.float() / 255, ds.labels
    kwargs = model_kwargs_for("small-cnn", ds.describe(), width=16, hidden=128)
    torch.manual_seed(0)
    m = build_model("small-cnn", **kwargs)
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    for _ in range(3):  # a few steps, so the weights are not the initialisation
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    ck_path = tmp_path / "trained.pt"
    Checkpoint.create(m, arch="small-cnn", model_kwargs=kwargs, dataset=ds.describe()).save(ck_path)
    r = cli_run(["info", ck_path])
    assert r.exit_code == 0 and "--arch small-cnn --width 16 --hidden 128 --dataset fashion-mnist-mini" in r.stdout
    sd = tmp_path / "sd.pt"
    torch.save(load_checkpoint(ck_path).state_dict, sd)
    out = tmp_path / "imported.pt"
    r = cli_run(["import", sd, "--arch", "small-cnn", "--width", "16", "--hidden", "128",
                 "--dataset", "fashion-mnist-mini", "--out", out])
    assert r.exit_code == 0, r.output
    m.eval()
    with torch.no_grad():
        assert torch.equal(load_checkpoint(out).model()(x), m(x))
    # the same through --model-arg
    out2 = tmp_path / "imported2.pt"
    r = cli_run(["import", sd, "--arch", "small-cnn", "--model-arg", "width=16", "--model-arg", "hidden=128",
                 "--dataset", "fashion-mnist-mini", "--out", out2])
    assert r.exit_code == 0, r.output
    # without --hidden: the whole message, with the key names and shapes that differ
    line = _one_error_line(cli_run(["import", sd, "--arch", "small-cnn", "--width", "16",
                                    "--dataset", "fashion-mnist-mini", "--out", tmp_path / "bad.pt"]), "do not fit")
    assert "classifier.1.weight [128, 1568] in the file, [200, 1568] in the model" in line, line
    line = _one_error_line(cli_run(["import", sd, "--arch", "small-cnn", "--width", "16", "--hidden", "128",
                                    "--batchnorm", "--dataset", "fashion-mnist-mini", "--out", tmp_path / "bad.pt"]))
    assert "missing keys features.1.bias" in line, line
    _one_error_line(cli_run(["import", sd, "--arch", "preact-resnet18", "--hidden", "128", "--dataset",
                             "fashion-mnist-mini", "--out", tmp_path / "bad.pt"]), "preact-resnet18 does not take hidden")
    assert not (tmp_path / "bad.pt").exists()


def test_a_train_refused_before_its_work_leaves_no_folders(tmp_path, cli_run):
    """A run refused by a check made under the run lock (here: a budget larger than the image) must
    remove every folder it made for itself, the run folder's missing parents too, and no other."""
    kept = tmp_path / "kept"
    kept.mkdir()
    out = tmp_path / "runs" / "deep" / "run"
    _one_error_line(cli_run(["train", "--norm", "l0", "--eps", "5000", "--epochs", "1", "--out", out]),
                    "larger than the image")
    assert {p.name for p in tmp_path.iterdir()} - {"cache"} == {"kept"}  # cache: the data cache's
    out = kept / "run"
    _one_error_line(cli_run(["train", "--norm", "l0", "--eps", "5000", "--epochs", "1", "--out", out]),
                    "larger than the image")
    assert kept.is_dir() and list(kept.iterdir()) == []


def test_a_budget_sample_larger_than_the_split_takes_the_whole_split(tmp_path, cli_run, monkeypatch):
    """The budget's default sample (smoke: 32 images) on a split of 4 images: all 4, said in the plan line
    and recorded; asking for more than the split holds with --n-examples is one error line, before the plan."""
    import json
    write_tarball("cifar10", tmp_path)
    _, path = _spgd_file(tmp_path)
    ck = tmp_path / "ck.pt"
    assert cli_run(["import", path, "--arch", "preact-resnet18", "--activation", "softplus", "--width", "0.125",
                    "--dataset", "cifar10", "--norm", "l0", "--eps", "20", "--out", ck]).exit_code == 0
    out = tmp_path / "ev.json"
    monkeypatch.setenv("LANDSCAPE_NO_PROGRESS", "0")  # the plan line on, as for a user
    r = cli_run(["eval", ck, "--attack", "spgd", "--budget", "smoke", "--data-dir", tmp_path, "--out", out])
    assert r.exit_code == 0, r.output
    assert "4 examples (the whole test split; the budget's 32 is more than it holds)" in r.stderr
    plan = json.loads(out.read_text())["meta"]["plan"]
    assert plan["n_examples"] == 4 and plan["budget_n_examples"] == 32
    r = cli_run(["eval", ck, "--attack", "spgd", "--budget", "smoke", "--data-dir", tmp_path, "--n-examples", "5",
                 "--out", tmp_path / "ev2.json"])
    _one_error_line(r, "--n-examples 5 is more than the 4 images of the cifar10 test split")


def test_a_recipe_field_given_twice_with_different_values_is_an_error(tmp_path, cli_run):
    """--epochs 3 with --set epochs=2 is refused (one line, nothing made), not settled silently by --set;
    the same value twice is fine."""
    from landscape.training.trainer import resolve_recipe
    with pytest.raises(LandscapeError, match="`lr` is given twice"):
        resolve_recipe(None, norm="l0", arch="small-cnn", shape=(1, 28, 28), changes={"lr": 0.1}, settings=["lr=0.2"])
    _one_error_line(cli_run(["train", "--epochs", "3", "--set", "epochs=2", "--out", tmp_path / "run"]),
                    "--epochs is given twice: 3, and 2 in --set")
    assert not (tmp_path / "run").exists()
    r = resolve_recipe(None, norm="l0", arch="small-cnn", shape=(1, 28, 28), changes={"lr": 0.1}, settings=["lr=0.1"])
    assert r.lr == 0.1
