import torch

from landscape.data import DeviceLoader, ImageDataset, augment


def _ds(n=23, c=3, size=8, natural=True):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)
    return ImageDataset("toy", "train", x, torch.arange(n) % 4, ["a", "b", "c", "d"], natural=natural)


def _collect(loader, epoch=0, start=0):
    return [(x.clone(), y.clone(), i.clone()) for x, y, i in loader.iterate(epoch, start)]


def test_batches_in_unit_range_float32():
    ds = _ds()
    loader = DeviceLoader(ds, 5, shuffle=False)
    batches = _collect(loader)
    assert len(batches) == len(loader) == 5 and len(batches[-1][1]) == 3
    x, y, idx = batches[0]
    assert x.dtype == torch.float32 and x.shape == (5, 3, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, ds.images[:5].float() / 255) and torch.equal(y, ds.labels[:5])
    assert len(DeviceLoader(ds, 5, drop_last=True)) == 4


def test_deterministic_by_seed_and_epoch():
    ds = _ds()
    a = _collect(DeviceLoader(ds, 4, augment=True, seed=3), epoch=1)
    b = _collect(DeviceLoader(ds, 4, augment=True, seed=3), epoch=1)
    c = _collect(DeviceLoader(ds, 4, augment=True, seed=4), epoch=1)
    d = _collect(DeviceLoader(ds, 4, augment=True, seed=3), epoch=2)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[2], q[2]) for p, q in zip(a, b))
    assert not torch.equal(torch.cat([p[2] for p in a]), torch.cat([p[2] for p in c]))
    assert not torch.equal(torch.cat([p[2] for p in a]), torch.cat([p[2] for p in d]))
    # every example once per epoch
    assert sorted(torch.cat([p[2] for p in a]).tolist()) == list(range(len(ds)))


def test_resume_equals_tail_of_full_iteration():
    loader = DeviceLoader(_ds(), 4, augment=True, seed=7)
    full = _collect(loader, epoch=3)
    tail = _collect(loader, epoch=3, start=2)
    assert len(tail) == len(full) - 2
    for p, q in zip(full[2:], tail):
        assert torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) and torch.equal(p[2], q[2])


def test_augment_shapes_and_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8, generator=g)
    y = augment(x, crop=0, flip=True, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    flipped = torch.tensor([torch.equal(a, b.flip(2)) for a, b in zip(y, x)])
    same = torch.tensor([torch.equal(a, b) for a, b in zip(y, x)])
    assert (flipped | same).all() and 10 < int(flipped.sum()) < 54
    z = augment(x, crop=2, flip=False, generator=torch.Generator().manual_seed(1))
    assert z.shape == x.shape and z.min() >= 0 and z.max() <= 1
    # a crop is a shift with zero fill: every nonzero value comes from the same image
    for a, b in zip(z[:8], x[:8]):
        vals = set(b.flatten().tolist())
        assert all(v in vals or v == 0 for v in a.flatten().tolist())
    # greyscale (not natural) datasets are never flipped
    ds = _ds(n=16, c=1, natural=False)
    loader = DeviceLoader(ds, 16, shuffle=False, augment=True, crop=0)
    xb, _, _ = next(loader.iterate(0))
    assert torch.equal(xb, ds.images.float() / 255)
