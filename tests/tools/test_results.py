"""`deco-bench results`: tidy tables out of the stage outputs; the CSV gives the report's numbers back exactly."""

import json
import shutil
from pathlib import Path

import pandas as pd

from deco_bench.metrics.api import compare
from deco_bench.tools.cli import main

COMPLETE = Path(__file__).resolve().parents[1] / "fixtures" / "report" / "complete"


def test_results_round_trip_and_formats(tmp_path, capsys):
    root = tmp_path / "repo"
    shutil.copytree(COMPLETE, root)
    assert main(["results", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "table2: skipped (no reports/table2.json with released rows)" in out
    tables = root / "reports" / "tables"
    models = pd.read_csv(tables / "models.csv")
    for m in ("deco", "baseline", "deco_no_freqfm"):
        doc = json.loads((root / "evaluation" / f"{m}.json").read_text())
        flat = json.loads((root / "metrics" / f"{m}.json").read_text())  # the DVC metrics file: the same numbers
        got = models[models.model == m].set_index("metric")
        assert set(got.index) == set(doc["metrics"])
        for key, value in doc["metrics"].items():
            assert got.loc[key, "value"] == value == flat[key]  # exactly: CSV floats round-trip
            assert [got.loc[key, "ci_lo"], got.loc[key, "ci_hi"]] == doc["ci"][key]
            if f"{key}_lo" in flat:
                assert [flat[f"{key}_lo"], flat[f"{key}_hi"]] == doc["ci"][key]
        assert {"fd_embed_lo", "fd_embed_hi"} <= set(flat) and "kid_embed_lo" not in set(flat)  # headline bounds only
    pairs = pd.read_csv(tables / "pairs.csv")
    c = compare(json.loads((root / "evaluation/baseline.json").read_text()),
                json.loads((root / "evaluation/deco.json").read_text()))["fd_embed"]
    row = pairs[(pairs.other == "baseline") & (pairs.metric == "fd_embed")].iloc[0]
    assert row.difference == c["difference"] and [row.diff_lo, row.diff_hi] == c["interval"]
    assert bool(row.exceeds_interval) == c["exceeds_interval"]
    md = (tables / "models.md").read_text()
    assert md.startswith("| model ") and "fd_embed" in md
    tex = (tables / "efficiency.tex").read_text()
    assert tex.startswith("\\begin{tabular}") and "\\bottomrule" in tex


def test_results_table2_and_nothing_to_tabulate(tmp_path, capsys):
    (tmp_path / "reports").mkdir()
    (tmp_path / "params.yaml").write_text("models: {}\n")
    assert main(["results", "--root", str(tmp_path)]) == 2
    assert "no stage output found" in capsys.readouterr().err
    (tmp_path / "reports" / "table2.json").write_text(json.dumps({"rows": [{
        "row": "e800", "label": "DeCo-XL/16, 800 ep", "epochs": 800, "sampler": "euler", "num_steps": 250,
        "nfe_per_image": 475.0, "verdict": "close", "cells": [
            {"key": "fid", "ours": 1.7, "ci": [1.66, 1.74], "paper": 1.62, "difference": 0.08, "verdict": "close"}]}]}))
    assert main(["results", "--root", str(tmp_path)]) == 0
    t2 = pd.read_csv(tmp_path / "reports" / "tables" / "table2.csv")
    assert t2.iloc[0].to_dict() == {"row": "e800", "label": "DeCo-XL/16, 800 ep", "epochs": 800, "sampler": "euler",
                                         "num_steps": 250, "nfe_per_image": 475.0, "metric": "fid", "ours": 1.7,
                                         "ci_lo": 1.66, "ci_hi": 1.74, "paper": 1.62, "difference": 0.08,
                                         "verdict": "close", "row_verdict": "close"}


def test_version(capsys):
    import pytest

    import deco_bench
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"deco-bench {deco_bench.__version__}"
