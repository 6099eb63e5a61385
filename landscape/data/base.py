"""The in-memory dataset and the device-resident batch loader.

A split is a :class:`ImageDataset`: all images as one uint8 tensor (N, C, H, W) and int64 labels,
moved to the training device once (airbench style). :class:`DeviceLoader` cuts it into batches in
[0,1] float32, with batched augmentation (random crop with zero padding, horizontal flip) and an
order fully determined by ``(seed, epoch)`` so that a run can resume at any step and reproduce the
batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageDataset:
    """One split of an image classification dataset, held as uint8 NCHW."""

    name: str
    split: str
    images: torch.Tensor          # uint8, (N, C, H, W)
    labels: torch.Tensor          # int64, (N,)
    classes: list[str]
    source: str = ""              # where the files were found (path or "embedded")
    mean: tuple[float, ...] = ()  # per-channel statistics used by the model's own normalisation
    std: tuple[float, ...] = ()
    natural: bool = False         # natural images get horizontal flips in augmentation
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 NCHW, got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError("images and labels differ in length")
        self.labels = self.labels.long()
        if not self.mean:
            x = self.images.float().div_(255)
            self.mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
            self.std = tuple(float(v) for v in x.std(dim=(0, 2, 3)).clamp_min(1e-3))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device) -> "ImageDataset":
        self.images = self.images.to(device)
        self.labels = self.labels.to(device)
        return self

    def _check_n(self, n) -> None:
        if n is not None and n > len(self):
            from ..errors import LandscapeError
            raise LandscapeError(f"`n_examples` {n} is more than the {len(self):,} images of the {self.name} "
                                 f"{self.split} split; give at most that many")

    def subset_indices(self, n: int | None = None, *, seed: int = 0, balanced: bool = True) -> torch.Tensor:
        """Indices of the first ``n`` examples of a seeded, class-interleaved order (CPU, int64)."""
        self._check_n(n)
        if n is None or n <= 0 or n >= len(self):
            return torch.arange(len(self))
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=g)
        if balanced:
            labels = self.labels.cpu()[perm]
            # stable sort by rank within class, so that classes interleave
            rank = torch.zeros_like(labels)
            for c in labels.unique():
                idx = (labels == c).nonzero().flatten()
                rank[idx] = torch.arange(len(idx))
            perm = perm[torch.argsort(rank * (self.num_classes + 1) + labels, stable=True)]
        return perm[:n]

    def subset(self, n: int | None = None, *, seed: int = 0, balanced: bool = True) -> "ImageDataset":
        """The examples at :meth:`subset_indices` (a fixed held-out sample); ``meta['indices']`` keeps them.

        ``n`` None or 0 means the whole split; more examples than the split holds is an error (never
        a silent change of the sample size)."""
        self._check_n(n)
        if n is None or n <= 0 or n >= len(self):
            return self
        idx = self.subset_indices(n, seed=seed, balanced=balanced)
        dev = idx.to(self.images.device)
        return ImageDataset(self.name, self.split, self.images[dev], self.labels[dev], self.classes,
                            self.source, self.mean, self.std, self.natural,
                            dict(self.meta, subset=n, indices=idx))

    def describe(self) -> dict:
        """Plain metadata stored in checkpoints: enough to load the same data again."""
        c, h, w = self.shape
        return {"name": self.name, "channels": c, "height": h, "width": w,
                "num_classes": self.num_classes, "classes": list(self.classes),
                "mean": list(self.mean), "std": list(self.std), **{k: v for k, v in self.meta.items()
                                                                   if isinstance(v, (str, int, float, bool))}}


def augment(x: torch.Tensor, *, crop: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Batched random crop with zero padding ``crop`` and optional horizontal flip (float NCHW)."""
    n, c, h, w = x.shape
    if crop > 0:
        padded = torch.nn.functional.pad(x, (crop, crop, crop, crop))
        dx = torch.randint(0, 2 * crop + 1, (n,), generator=generator, device=generator.device)
        dy = torch.randint(0, 2 * crop + 1, (n,), generator=generator, device=generator.device)
        rows = (dy.view(n, 1) + torch.arange(h, device=x.device).view(1, h))  # n, h
        cols = (dx.view(n, 1) + torch.arange(w, device=x.device).view(1, w))  # n, w
        padded = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * crop))
        x = padded.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))
    if flip:
        mask = torch.rand(n, generator=generator, device=generator.device) < 0.5
        x = torch.where(mask.view(n, 1, 1, 1), x.flip(3), x)
    return x


class DeviceLoader:
    """Batches of a device-resident :class:`ImageDataset`: ``(x in [0,1], y, index)``.

    The order of epoch ``e`` is a permutation drawn from a generator seeded with ``(seed, e)``, and
    the augmentation of step ``s`` from one seeded with ``(seed, e, s)``; so ``iterate(e, start=s)``
    yields exactly the batches an uninterrupted run would have seen from step ``s`` on.
    """

    def __init__(self, dataset: ImageDataset, batch_size: int, *, shuffle: bool = True,
                 augment: bool = False, crop: int | None = None, seed: int = 0, drop_last: bool = False,
                 shard: tuple[int, int] = (0, 1)):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = augment
        h = dataset.shape[1]
        self.crop = crop if crop is not None else (4 if h >= 32 else 2)
        self.seed = int(seed)
        self.drop_last = drop_last
        self.rank, self.world = shard

    def _order(self, epoch: int) -> torch.Tensor:
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if self.world > 1:  # every rank gets the same number of batches
            per = n // self.world
            order = order[self.rank * per:(self.rank + 1) * per]
        return order

    def __len__(self) -> int:
        n = len(self.dataset) // self.world
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def iterate(self, epoch: int = 0, start: int = 0):
        order = self._order(epoch).to(self.dataset.images.device)
        device = self.dataset.images.device
        for step in range(start, len(self)):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size]
            x = self.dataset.images[idx].float().div_(255)
            y = self.dataset.labels[idx]
            if self.augment:
                g = torch.Generator(device=device).manual_seed(
                    (self.seed * 1_000_003 + epoch) * 100_003 + step + self.rank * 7919)
                x = augment(x, crop=self.crop, flip=self.dataset.natural, generator=g)
            yield x, y, idx

    def __iter__(self):
        return self.iterate(0)
