"""One place decides the scale of a named preset: the trainer, from the model it builds."""

from click.testing import CliRunner

from landscape.training import trainer
from landscape.training.presets import default_run_folder, get_preset
from landscape.training.trainer import resolve_arch, resolve_recipe


def test_the_model_follows_the_image_size():
    assert resolve_arch(None, (1, 28, 28)) == "small-cnn"
    assert resolve_arch(None, (3, 28, 28)) == "small-cnn"  # a 28x28 image folder: the same answer
    assert resolve_arch(None, (3, 32, 32)) == "preact-resnet18"
    assert resolve_arch("PreAct_ResNet18", (1, 28, 28)) == "preact-resnet18"


def test_a_named_preset_takes_the_scale_of_the_model():
    small = resolve_recipe("fast-ls-l0", norm="l0", eps=20, arch="small-cnn", shape=(1, 28, 28))
    paper = resolve_recipe("fast-ls-l0", norm="l0", eps=20, arch="preact-resnet18", shape=(3, 32, 32))
    assert small == get_preset("fast-ls-l0", "l0", 20, scale="small")
    assert paper == get_preset("fast-ls-l0", "l0", 20, scale="paper")
    assert small.epochs != paper.epochs
    changed = resolve_recipe("fast-ls-l0", norm="l0", eps=20, arch="small-cnn", shape=(1, 28, 28),
                             changes={"epochs": 3}, settings=["trades_beta=3"])
    assert (changed.epochs, changed.trades_beta) == (3, 3.0)


def test_the_cli_passes_the_preset_by_name(monkeypatch):
    """The CLI does not pick a scale itself (it used to guess from the dataset's name)."""
    seen = {}

    def fake_train(recipe=None, **kw):
        seen.update(kw, recipe=recipe)
        return {}

    monkeypatch.setattr(trainer, "train", fake_train)
    from analysis_cli import cli
    r = CliRunner().invoke(cli, ["train", "--preset", "sat-1step", "--norm", "l0", "--epochs", "2",
                                 "--set", "noise=true", "--dataset", "cifar10", "--out", "somewhere"])
    assert r.exit_code == 0, r.output
    assert seen["recipe"] == "sat-1step" and seen["changes"] == {"epochs": 2}
    assert list(seen["settings"]) == ["noise=true"] and seen["dataset"] == "cifar10"
    assert default_run_folder("fast-ls-l0", "l0", 20) == "runs/fast-ls-l0-l0-20"


def test_changes_apply_to_a_given_recipe_too():
    """A Recipe passed with changes or settings gets them (they used to be applied only to names)."""
    base = get_preset("fast-ls-l0", "l0", 20, scale="small")
    r = resolve_recipe(base, arch="small-cnn", shape=(1, 28, 28), changes={"epochs": 2}, settings=["trades_beta=3"])
    assert (r.epochs, r.trades_beta) == (2, 3.0) and base.epochs != 2
    assert resolve_recipe(base, arch="small-cnn", shape=(1, 28, 28)) == base
