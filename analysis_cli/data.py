"""``landscape data``: which datasets are available here, and a quick look at one."""

from __future__ import annotations

import click

from .common import data_dir_option


@click.group("data")
def data():
    """Datasets: where they are found and what they hold."""


@data.command("list")
@data_dir_option
def list_cmd(data_dir):
    """Show each dataset and where it was found (or how to get it). Never downloads."""
    from landscape.data import DATASETS
    from landscape.data.catalog import locate

    from . import _flags  # the hints name library arguments (`data_dir`): print them as flags

    width = max(len(n) for n in DATASETS)
    for name in DATASETS:
        found, hint = locate(name, data_dir)
        click.echo(f"{name:<{width}}  " + (f"found: {found}" if found else f"not found; {_flags(hint)}"))


@data.command("show")
@click.argument("name")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@data_dir_option
@click.option("--image-size", type=int, default=None, help="imagefolder: side of the stored images")
@click.option("--download/--no-download", default=False, show_default=True,
              help="download the dataset if it is not found")
def show(name, split, data_dir, image_size, download):
    """Load one split of dataset NAME and print its size, shape, classes and source."""
    from landscape.data import load_dataset

    ds = load_dataset(name, split, data_dir=data_dir, image_size=image_size, download=download)
    c, h, w = ds.shape
    counts = ds.labels.bincount(minlength=ds.num_classes).tolist()
    click.echo(f"{ds.name} {split}: {len(ds)} images of {c}x{h}x{w}, {ds.num_classes} classes")
    click.echo(f"source: {ds.source}")
    shown = ", ".join(f"{n} ({k})" for n, k in zip(ds.classes[:20], counts[:20]))
    more = f", ... ({ds.num_classes - 20} more)" if ds.num_classes > 20 else ""
    click.echo(f"classes: {shown}{more}")
    click.echo("mean: " + ", ".join(f"{v:.4f}" for v in ds.mean) + "; std: " + ", ".join(f"{v:.4f}" for v in ds.std))
