"""The ``landscape`` command: a thin click shell over the library.

Every command lives in its own module and is a few lines that parse options, call one library
function and write its results. Commands are imported lazily, so ``landscape --help`` is fast.

Errors a user can cause become one line on stderr (``landscape: error: ...``) and a non-zero exit;
an interrupt (Ctrl-C) exits with 130 after the command has saved what it can.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys

import click

from landscape.errors import LandscapeError

# command name -> (module, attribute)
COMMANDS = {
    "train": ("analysis_cli.train", "train"),
    "recipes": ("analysis_cli.recipes", "recipes"),
    "eval": ("analysis_cli.eval", "eval_cmd"),
    "data": ("analysis_cli.data", "data"),
    "import": ("analysis_cli.import_", "import_cmd"),
    "info": ("analysis_cli.info", "info"),
    "hessian": ("analysis_cli.hessian", "hessian"),
    "density": ("analysis_cli.hessian", "density"),
    "surface": ("analysis_cli.surface", "surface"),
    "interp": ("analysis_cli.interp", "interp"),
    "lipschitz": ("analysis_cli.lipschitz", "lipschitz"),
    "overlap": ("analysis_cli.overlap", "overlap"),
    "gradients": ("analysis_cli.gradients", "gradients"),
    "report": ("analysis_cli.report", "report"),
    "reproduce": ("analysis_cli.reproduce", "reproduce"),
}


#: library argument names whose flag differs from ``--<name with dashes>``, in every command
_FLAG_OF = {"span": "range", "scale_budget": "scale-budget", "settings": "set"}
#: ... and in one command only (``lanczos_topk(op, k)``'s `k` is ``hessian --topk``)
_FLAG_OF_COMMAND = {"hessian": {"k": "topk"}}

#: commands that write files: they take --overwrite (replace existing outputs they did not write)
WRITERS = {"eval", "gradients", "import", "hessian", "density", "surface", "interp", "lipschitz", "overlap", "report"}
#: commands that really resume when rerun after Ctrl-C; eval, interp, overlap, hessian and density
#: too once their partial folder (``common.keeps_partial``) holds a finished batch
RESUMABLE = {"train", "surface", "reproduce"}


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def _flags(msg: str, command: str | None = None) -> str:
    """Library errors name arguments in backquotes (`n_examples`); the CLI says --n-examples (or the
    flag :data:`_FLAG_OF` / :data:`_FLAG_OF_COMMAND` give for ``command``)."""
    import re
    names = {**_FLAG_OF, **_FLAG_OF_COMMAND.get(command or "", {})}
    return re.sub(r"`([A-Za-z_][A-Za-z0-9_]*)`", lambda m: "--" + names.get(m.group(1), m.group(1)).replace("_", "-"),
                  str(msg))

def _instrument(cmd: click.Command, name: str) -> click.Command:
    """Run ``cmd`` as the producer ``name`` (its earlier results may be replaced, nothing else; see
    :mod:`landscape.outputs`) and give the commands that write files an ``--overwrite`` flag."""
    if getattr(cmd, "_landscape_instrumented", False) or cmd.callback is None:
        return cmd
    import functools
    callback = cmd.callback
    writer = name in WRITERS and not any(p.name == "overwrite" for p in cmd.params)
    if writer:
        cmd.params.append(click.Option(["--overwrite"], is_flag=True, default=False,
                                       help="replace existing output files that this command did not write "
                                            "(never its input files)"))

    @functools.wraps(callback)
    def run(*args, **kwargs):
        from landscape import outputs
        global CURRENT
        overwrite = kwargs.pop("overwrite", False) if writer else False
        previous, CURRENT = CURRENT, name
        try:
            with outputs.producing(name), outputs.allow_overwrite(overwrite):
                result = callback(*args, **kwargs)
        except BaseException:
            CURRENT = name  # the interrupt message speaks of the command that was stopped
            raise
        CURRENT = previous
        return result

    cmd.callback = run
    cmd._landscape_instrumented = True
    return cmd


#: the command running now (for the interrupt message)
CURRENT: str | None = None


def _set_threads(ctx, param, value):
    if ctx.resilient_parsing:
        return value
    from landscape.threads import apply
    apply(value)
    return value


THREADS_HELP = ("CPU threads for torch [default: LANDSCAPE_THREADS or OMP_NUM_THREADS if set, else the free "
                "cores: cores minus the 1-minute load, at least 1]")


def _with_threads(cmd):
    """Give every command a ``--threads`` option (applied before the command runs, not passed to it)."""
    if cmd is not None and not any(p.name == "threads" for p in cmd.params):
        cmd.params.append(click.Option(["--threads"], type=click.IntRange(1), default=None, expose_value=False,
                                       is_eager=True, callback=_set_threads, help=THREADS_HELP))
    return cmd


class LandscapeGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name, (mod, _) in COMMANDS.items() if importlib.util.find_spec(mod) is not None]

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        mod, attr = COMMANDS[name]
        if importlib.util.find_spec(mod) is None:
            return None
        return _instrument(_with_threads(getattr(importlib.import_module(mod), attr)), name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from . import common
        argv = list(sys.argv[1:] if args is None else args)
        common.INVOCATION = "landscape " + shlex.join(str(a) for a in argv)
        common.KEEPS_PARTIAL.clear()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name or "landscape", complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except (KeyboardInterrupt, click.exceptions.Abort):
            if CURRENT in RESUMABLE or any(p.exists() for p in common.KEEPS_PARTIAL):
                click.echo("landscape: interrupted (partial results were saved; rerun the same command to resume)",
                           err=True)
            else:
                click.echo("landscape: interrupted; nothing was written (rerunning starts again)", err=True)
            sys.exit(130)
        except click.exceptions.UsageError as e:
            cmd = e.ctx.command_path if e.ctx else "landscape"
            click.echo(f"{cmd}: error: {_one_line(e.format_message())} (see --help)", err=True)
            sys.exit(2)
        except click.ClickException as e:
            click.echo(f"landscape: error: {_one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code or 1)
        except LandscapeError as e:
            click.echo(f"landscape: error: {_one_line(_flags(e.cli_message(), CURRENT))}", err=True)
            sys.exit(e.exit_code)
        except (FileNotFoundError, IsADirectoryError, PermissionError, NotADirectoryError) as e:
            click.echo(f"landscape: error: {_one_line(e)}", err=True)
            sys.exit(2)
        except MemoryError:
            click.echo("landscape: error: out of memory; use a smaller --batch-size or --n-examples", err=True)
            sys.exit(3)
        except Exception as e:  # a bug: keep the traceback unless asked not to
            if os.environ.get("LANDSCAPE_DEBUG"):
                raise
            if type(e).__name__ == "OutOfMemoryError":
                click.echo("landscape: error: the device ran out of memory; use a smaller --batch-size", err=True)
                sys.exit(3)
            raise
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        sys.exit(0)


@click.group(cls=LandscapeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="landscape", prog_name="landscape")
def cli():
    """Train adversarially robust classifiers under l0/l1/l2/l∞ budgets and measure their loss
    landscapes: Hessian spectra, 2-D surfaces, interpolation sweeps and Lipschitz estimates."""
    from landscape.device import tune_cpu_allocator
    tune_cpu_allocator()


def main(argv=None):
    cli.main(args=argv, prog_name="landscape")


__all__ = ["cli", "main"]
