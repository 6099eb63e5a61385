"""Eval-mode attacks on the CPU run on a channels_last copy of a convolutional model
(`attacks.base.attack_model`): the same adversarial examples, and the caller's model untouched."""

import torch

from landscape.attacks import SparseAutoAttack, SparsePGD, SparseRS, base

from .helpers import bn_model


def _with_copy(flag, fn):
    saved = base.CHANNELS_LAST_COPY
    base.CHANNELS_LAST_COPY = flag
    try:
        return fn()
    finally:
        base.CHANNELS_LAST_COPY = saved


def test_the_copy_gives_the_same_attack_and_leaves_the_callers_model_alone(tiny_cnn):
    torch.manual_seed(3)
    x, y = torch.rand(12, 1, 12, 12), torch.randint(0, 3, (12,))
    state = {k: v.clone() for k, v in tiny_cnn.state_dict().items()}
    for attack in (SparsePGD(5, 20, seed=0), SparsePGD(5, 20, projected=True, seed=0), SparseRS(5, 30, seed=0),
                   SparseAutoAttack(5, 10, 20, seed=0)):
        a = _with_copy(True, lambda: attack(tiny_cnn, x, y))
        b = _with_copy(False, lambda: attack(tiny_cnn, x, y))
        with torch.no_grad():
            assert torch.equal(tiny_cnn(a).argmax(1) == y, tiny_cnn(b).argmax(1) == y), attack.name
        assert (a - b).abs().max() < 1e-4, attack.name
    conv = next(m for m in tiny_cnn.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous() and not tiny_cnn.training
    assert all(torch.equal(v, state[k]) for k, v in tiny_cnn.state_dict().items())
    assert all(p.requires_grad for p in tiny_cnn.parameters())


def test_the_copy_is_channels_last_only_where_it_applies(tiny_cnn):
    x = torch.rand(2, 1, 12, 12)
    net = base.attack_model(tiny_cnn, x, "eval")
    assert net is not tiny_cnn and next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)).weight \
        .is_contiguous(memory_format=torch.channels_last)
    assert base.attack_model(tiny_cnn, x, "train") is tiny_cnn          # train mode: BN statistics are the caller's
    assert base.attack_model(net, x, "eval") is net                     # already channels_last
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 3))
    assert base.attack_model(flat, x, "eval") is flat                   # nothing convolutional
    assert base.attack_model(tiny_cnn, x.view(2, -1), "eval") is tiny_cnn  # not NCHW


def test_a_train_mode_attack_updates_the_callers_batchnorm_as_before():
    model = bn_model()
    x, y = torch.rand(8, 1, 6, 6), torch.randint(0, 3, (8,))
    before = model[1].running_mean.clone()
    SparsePGD(3, 2, mode="train", seed=0)(model, x, y)
    assert not torch.equal(model[1].running_mean, before)
