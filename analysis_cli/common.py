"""Options and helpers shared by the commands."""

from __future__ import annotations

from pathlib import Path

import click

from landscape.errors import LandscapeError

#: the command line that invoked the CLI (set by the group); stored in every result's metadata
INVOCATION = ""
#: set by a command whose work keeps its finished batches in a partial folder (see keeps_partial)
KEEPS_PARTIAL: list = []


def keeps_partial(json_path) -> "Path":
    """The hidden partial folder beside a command's results (``.STEM.partial``), recorded so that
    Ctrl-C says that finished batches were kept and that the same command resumes."""
    p = Path(json_path)
    folder = p.with_name(f".{p.stem}.partial")
    KEEPS_PARTIAL.append(folder)
    return folder

device_option = click.option("--device", default="auto", show_default=True,
                             help="auto, cpu, cuda or cuda:N")
seed_option = click.option("--seed", default=0, show_default=True, type=int, help="random seed")
budget_option = click.option(
    "--budget", type=click.Choice(["full", "reduced", "smoke"]), default=None,
    help="attack and sample budget: full (the authors'), reduced (the small-scale recipes'), smoke (seconds, "
         "for tests) [default: LANDSCAPE_BUDGET, else full on CUDA and reduced on the CPU]; the command prints "
         "what it will run")
data_dir_option = click.option("--data-dir", default=None, type=click.Path(file_okay=False),
                               help="folder holding datasets (searched first)")


def sample_options(split: str = "test", n_examples_help: str = "[default: the budget's]"):
    """The options of a command that attacks a sample of one checkpoint's data: ``--n-examples``,
    ``--budget``, ``--split`` (default ``split``), ``--batch-size``, ``--device``, ``--seed`` and
    ``--data-dir`` (interp, lipschitz, overlap, gradients)."""
    other = "train" if split == "test" else "test"
    options = [click.option("--n-examples", type=int, default=None, help=n_examples_help), budget_option,
               click.option("--split", type=click.Choice([split, other]), default=split, show_default=True),
               click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True),
               device_option, seed_option, data_dir_option]

    def deco(f):
        for option in reversed(options):
            f = option(f)
        return f
    return deco


def strong_attack_options(what: str = "strong attack"):
    """``--strong-attack``, ``--strong-steps`` and ``--strong-queries`` (interp, overlap)."""
    def deco(f):
        f = click.option("--strong-queries", type=int, default=None,
                         help="Sparse-RS queries of the strong attack (saa, rs)")(f)
        f = click.option("--strong-steps", type=int, default=None,
                         help="iterations of the strong attack (per sPGD stage for saa) [default: the attack's]")(f)
        return click.option("--strong-attack", default=None,
                            help=f"{what} [default: sparse-AutoAttack for l0, PGD/APGD otherwise]")(f)
    return deco


def checkpoint_argument(multiple: bool = False):
    return click.argument("checkpoint" + ("s" if multiple else ""), nargs=-1 if multiple else 1,
                          required=True, type=click.Path(dir_okay=False))


from landscape.results import GENERIC_STEMS, checkpoint_label, checkpoint_labels  # noqa: E402,F401


def beside(checkpoint, what: str) -> str:
    """The default output prefix ``<checkpoint dir>/<stem>_<what>``: results sit beside the checkpoint,
    where ``landscape report <runs dir>`` finds them."""
    p = Path(str(checkpoint))
    return str(p.with_name(f"{p.stem}_{what}"))


def out_paths(out: str | Path, default_suffix: str = ".png", check: bool = True) -> tuple[Path, Path, Path]:
    """``(figure, csv, json)`` paths for an ``--out`` given with or without a suffix.

    With ``check`` (the default) the three paths are checked before any work and claimed for this
    run: an existing file that is not this command's own earlier result is refused now, not after
    the work (:mod:`landscape.outputs`)."""
    out = Path(out)
    if out.suffix.lower() in (".png", ".pdf", ".svg"):
        stem = out.with_suffix("")
        fig = out
    elif out.suffix.lower() in (".csv", ".json"):
        stem = out.with_suffix("")
        fig = stem.with_suffix(default_suffix)
    else:
        stem = out
        fig = out.with_suffix(default_suffix) if out.suffix == "" else Path(str(out) + default_suffix)
    paths = fig, stem.with_suffix(".csv"), stem.with_suffix(".json")
    if check:
        claim_outputs(paths, arg="out")
    return paths


def claim_outputs(paths, arg: str | None = None) -> None:
    """Check output paths before any work and claim them (see :func:`landscape.outputs.claim_outputs`)."""
    from landscape.outputs import claim_outputs as _claim
    _claim(paths, arg=arg)


def write_results(df, meta: dict, csv_path: Path, json_path: Path) -> None:
    """:func:`landscape.results.write_results` with the invoking command line in the metadata."""
    from landscape.results import write_results as _write
    _write(df, meta, csv_path, json_path, command=INVOCATION or None)


def parse_range(text: str, name: str = "range", positive: bool = False) -> list[float]:
    """Parse ``start:stop:step`` (inclusive of stop, within rounding) or a comma list of numbers:
    finite, at most :data:`landscape.validate.MAX_POINTS` of them (:func:`landscape.validate.parse_range`)."""
    from landscape.validate import parse_range as _parse
    return _parse(text, name.lstrip("-").replace("-", "_"), positive=positive)


def echo_table(df, floatfmt: str = "{:.4g}") -> None:
    """Print a DataFrame as a plain aligned table on stdout."""
    click.echo(df.to_string(index=False, float_format=lambda v: floatfmt.format(v)))


def fail(msg: str):
    raise LandscapeError(msg)


def note_no_native_bf16(device) -> None:
    """One note on stderr where ``--precision bfloat16`` runs on a device without native bf16."""
    from landscape.device import native_bf16, resolve_device
    dev = resolve_device(device)
    if not native_bf16(dev):
        click.echo(f"landscape: note: {dev.type} here has no native bf16 (avx512_bf16 or AMX on a CPU), so "
                   "--precision bfloat16 is likely slower than float32", err=True)
