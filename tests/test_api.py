"""`import landscape` gives every library entry point the CLI uses, under the documented names."""

import landscape


def test_every_public_name_resolves():
    for name in landscape.__all__:
        assert getattr(landscape, name) is not None, name


def test_readme_python_example_runs():
    ck_model = landscape.build_model("small-cnn", width=4, hidden=8).eval()
    test = landscape.load_dataset("fashion-mnist-mini", "test").subset(8)
    x, y = test.images.float() / 255, test.labels
    x_adv = landscape.SparsePGD(eps=20, steps=3)(ck_model, x, y)
    assert landscape.ThreatModel("l0", 20).is_valid(x, x_adv).all()
    assert not ck_model.training
