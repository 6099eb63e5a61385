"""``landscape import STATE_DICT --arch ... --out CKPT``: wrap weights trained elsewhere."""

from __future__ import annotations

import json

import click


@click.command("import")
@click.argument("state_dict", type=click.Path(dir_okay=False))
@click.option("--arch", required=True, help="architecture the weights fit (small-cnn, preact-resnet18)")
@click.option("--activation", default=None, help="relu or softplus (softplusB for beta B); the arch's default if omitted")
@click.option("--width", type=float, default=None, help="width multiplier (preact-resnet18) or base width (small-cnn, 32)")
@click.option("--hidden", type=int, default=None, help="small-cnn: units of the hidden dense layers (200)")
@click.option("--batchnorm/--no-batchnorm", default=None, help="small-cnn: BatchNorm after every convolution (off)")
@click.option("--model-arg", "model_args", multiple=True, metavar="NAME=VALUE",
              help="any other argument of the architecture (repeatable; `landscape info` lists a checkpoint's)")
@click.option("--dataset", default="cifar10", show_default=True,
              help="dataset the weights were trained on (sets channels, classes, image size, mean/std)")
@click.option("--num-classes", type=int, default=None, help="imagefolder: number of classes")
@click.option("--image-size", type=int, default=None, help="imagefolder: side of the images")
@click.option("--normalize/--no-normalize", default=True, show_default=True,
              help="whether the model standardises its inputs with the dataset's mean/std "
                   "(--no-normalize for weights trained on raw [0,1] inputs)")
@click.option("--norm", default=None, help="threat model the weights were trained for: l0, l1, l2, linf")
@click.option("--eps", default=None, help="its budget (pixels for l0; 8/255 accepted)")
@click.option("--key", default=None, help="key of the state dict inside the file (default: state_dict, model, net, or the top level)")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="checkpoint to write")
def import_cmd(state_dict, arch, activation, width, hidden, batchnorm, model_args, dataset, num_classes, image_size, normalize, norm, eps, key, out):
    """Turn the state dict in STATE_DICT (e.g. a released sparse-PGD PreActResNet18) into a landscape
    checkpoint. A 'module.' prefix is stripped; the weights must fit the architecture exactly."""
    from landscape.errors import LandscapeError
    from landscape.threat import ThreatModel

    from landscape.outputs import check_replace

    check_replace(out, arg="out")  # before anything is read: never over a checkpoint it did not make
    if bool(norm) != bool(eps):
        raise LandscapeError("give both --norm and --eps for the threat model, or neither")
    threat = ThreatModel(norm, eps) if norm else None
    from landscape.importer import import_checkpoint

    extra = {}
    for item in model_args:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise LandscapeError(f"--model-arg {item!r}: use NAME=VALUE, e.g. --model-arg hidden=128")
        try:
            extra[k.strip()] = json.loads(v)
        except ValueError:
            extra[k.strip()] = v
    ck = import_checkpoint(state_dict, out, arch=arch, activation=activation, width=width, dataset=dataset,
                           num_classes=num_classes, image_size=image_size, normalize=normalize, key=key,
                           threat=threat, hidden=hidden, batchnorm=batchnorm, model_args=extra)
    click.echo(f"{ck.summary()} -> {out}")
