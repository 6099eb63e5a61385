"""``landscape reproduce [NAME...]``: run the paper-reproduction recipes (``landscape/recipes/*.toml``,
shipped with the package; ``--recipes DIR`` or ``LANDSCAPE_FIGURES`` reads another folder)."""

from __future__ import annotations

import click


@click.command("reproduce")
@click.argument("names", nargs=-1)
@click.option("--out", default="runs/reproduce", show_default=True, type=click.Path(file_okay=False),
              help="output folder; each recipe writes to OUT/<name>")
@click.option("--scale", type=click.Choice(["quick", "fmnist", "paper"]), default="fmnist", show_default=True,
              help="quick: seconds (tests); fmnist: Fashion-MNIST on 2 CPU cores; paper: CIFAR-10 settings")
@click.option("--quick", is_flag=True, help="same as --scale quick")
@click.option("--list", "list_only", is_flag=True, help="list the recipes and exit")
@click.option("--dry-run", is_flag=True, help="print the commands without running them")
@click.option("--no-report", is_flag=True, help="do not write OUT/report.md at the end")
@click.option("--seeds", default=None, metavar="LIST|N",
              help="train and evaluate every model once per seed (0,1,2 or a count: 3), each seed under "
                   "OUT/seed<s>; the tables get mean ± sd over seeds in OUT/<name>/<table>_seeds.*")
@click.option("--recipes", "recipes_from", default=None, type=click.Path(file_okay=False),
              help="folder of *.toml recipes [default: $LANDSCAPE_FIGURES, else the recipes shipped with landscape]")
@click.option("--in-process", is_flag=True, help="run the steps in this process instead of subprocesses "
              "(faster start-up; the default for --quick)")
@click.option("--jobs", "-j", type=click.IntRange(1), default=None,
              help="steps run at a time, each in a worker process; a step waits for the steps whose models it "
                   "reads, each step's output goes to OUT/<name>/logs/ [default: 1; --quick: the cores, "
                   "at most 4]")
def reproduce(names, out, scale, quick, list_only, dry_run, no_report, seeds, recipes_from, in_process, jobs):
    """Run the reproduction recipes NAMES (default: all), then gather a report.

    Rerunning the same command skips finished steps and resumes an interrupted one."""
    from landscape.reproduce import list_recipes, parse_seeds, run_all
    from landscape.errors import LandscapeError

    recipes = list_recipes(recipes_from)
    if list_only:
        for r in recipes:
            click.echo(f"{r.name:14s} {r.title}")
        return
    by_name = {r.name: r for r in recipes}
    unknown = [n for n in names if n not in by_name and n != "all"]
    if unknown:
        raise LandscapeError(f"unknown recipe {', '.join(unknown)}; choose from {', '.join(by_name)} or all")
    chosen = recipes if not names or "all" in names else [by_name[n] for n in names]
    scale = "quick" if quick else scale
    import os
    saved = os.environ.get("LANDSCAPE_BUDGET")
    if scale == "quick" and not saved:
        # the quick scale checks that every step runs, in seconds: analyses and the training runs'
        # monitor and final evaluation at the smoke budget (landscape/budgets.py)
        os.environ["LANDSCAPE_BUDGET"] = "smoke"
    if jobs is None:
        from landscape.threads import available_cores
        jobs = min(4, available_cores()) if scale == "quick" else 1
    total = 0.0
    try:
        seed_list = parse_seeds(seeds)
        done = run_all(chosen, out, scale, seeds=seed_list, dry_run=dry_run, echo=lambda m: click.echo(m, err=True),
                       in_process=in_process or scale == "quick", run_command=_run_command, jobs=jobs)
        for r, s in zip(chosen, done):
            total += s.get("seconds", 0.0)
            for t in s.get("tables", []):
                if t.endswith(".md"):
                    table = "".join(ln for ln in open(t) if not ln.startswith("<!--")).rstrip()
                    click.echo(f"{r.name}: mean ± sd over seeds {seed_list}\n{table}\n")
    finally:
        if saved is None:
            os.environ.pop("LANDSCAPE_BUDGET", None)
    if not dry_run and not no_report:
        from landscape.report import build_report
        md, _, n = build_report(out, title=f"landscape reproduction ({scale} scale)")
        click.echo(f"{len(chosen)} recipes in {total:.0f} s of steps; report: {md}")


def _run_command(argv):
    """One recipe step in this process: the ``landscape`` entry point with ``argv``."""
    from . import main
    main(argv)
