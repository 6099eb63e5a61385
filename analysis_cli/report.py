"""``landscape report RUNS_DIR``: one markdown + HTML report of every result under a directory."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("runs_dir", type=click.Path())
@click.option("--title", default=None, help="report title (default: the directory's name)")
def report(runs_dir, title):
    """Gather the CSV/JSON results and figures under RUNS_DIR into RUNS_DIR/report.md and report.html,
    each table and figure captioned with the command that made it."""
    from landscape.report import build_report

    md, page, n = build_report(runs_dir, title)
    click.echo(f"{n} sections -> {md} and {page}")
