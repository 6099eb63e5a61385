import json

import pandas as pd

from landscape.report import build_report, markdown_table


def _result(folder, name, rows, meta):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    (folder / f"{name}.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def test_report_gathers_tables_figures_and_commands(tmp_path, cli_run):
    _result(tmp_path / "hess", "top", [{"k": 1, "eigenvalue": 12.5}, {"k": 2, "eigenvalue": 3.25}],
            {"command": "landscape hessian a.pt --topk 2", "mode": "fixed"})
    run = tmp_path / "train_run"
    run.mkdir()
    pd.DataFrame({"epoch": [1, 2], "train_robust_acc": [0.3, 0.4]}).to_csv(run / "metrics.csv", index=False)
    (run / "final.json").write_text(json.dumps({"clean_acc": 0.8, "robust_acc": 0.2,
                                                "command": "landscape train --norm l0 --eps 20"}))
    r = cli_run(["report", tmp_path])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "report.md").read_text()
    assert "landscape hessian a.pt --topk 2" in md
    assert "12.5" in md and "3.25" in md
    assert "![hess/top.png](hess/top.png)" in md
    assert "landscape train --norm l0 --eps 20" in md and "0.8" in md
    html = (tmp_path / "report.html").read_text()
    assert "<img src='hess/top.png'>" in html and "landscape hessian a.pt" in html


def test_report_empty_or_missing_dir_is_one_clear_error(tmp_path, cli_run):
    r = cli_run(["report", tmp_path / "nope"])
    assert r.exit_code == 2 and "runs directory not found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "afile").write_text("x")
    r = cli_run(["report", tmp_path / "afile"])
    assert r.exit_code == 2 and "is a file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    r = cli_run(["report", tmp_path / "empty"])
    assert r.exit_code == 2 and "no results" in r.stderr


def test_markdown_table_escapes_and_truncates():
    df = pd.DataFrame({"a": range(50), "b": ["x|y"] * 50})
    text = markdown_table(df, max_rows=3)
    assert "x\\|y" in text and "47 more rows" in text
    assert build_report  # API importable
