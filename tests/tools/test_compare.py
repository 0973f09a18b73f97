"""Comparison report on output captured from a real dvc run (tests/fixtures/report/make_dvc_fixture.sh: two
experiments, seed1 and seed4, of a stage writing metrics/<m>.json and evaluation/<m>.json in deco-bench's format)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from deco_bench.tools.compare import RevisionNotFound, build_compare_context, find_revision, main
from deco_bench.report.render import render

FIXTURES = Path(__file__).parents[1] / "fixtures" / "report"

EXP = json.loads((FIXTURES / "dvc_exp_show.json").read_text())
FULL = {e: {f"metrics/{m}.json": json.loads((FIXTURES / f"detail_{e}_{m}.json").read_text())
            for m in ("deco", "baseline")} for e in ("seed1", "seed4")}


def test_values_and_differences_match_dvc_metrics_diff():
    ctx = build_compare_context(EXP, ["seed1", "seed4"], FULL)
    diff = json.loads((FIXTURES / "dvc_metrics_diff.json").read_text())
    rows = {(r["file"], r["key"]): r for r in ctx["metric_rows"]}
    assert set(rows) == {(f, k) for f, keys in diff.items() for k in keys if not k.endswith(("_lo", "_hi"))}
    for f, keys in diff.items():
        for k, d in keys.items():
            if k.endswith(("_lo", "_hi")):  # a metric's bounds: shown in its row, not as rows of their own
                continue
            r = rows[(f, k)]
            assert r["cells"][0]["text"] == f"{d['old']:.3f}"
            assert r["cells"][1]["text"].startswith(f"{d['new']:.3f} ({d['diff']:+.3g})")


def test_difference_beyond_bootstrap_interval_is_highlighted_and_within_is_not():
    ctx = build_compare_context(EXP, ["seed1", "seed4"], FULL)
    fd = next(r for r in ctx["metric_rows"] if r["file"] == "metrics/deco.json" and r["key"] == "fd_embed")
    assert fd["cells"][1]["cls"] == "sig" and "exceeds interval" in fd["cells"][1]["note"]
    assert "bootstrap-difference" in fd["cells"][1]["note"]  # the replicates of evaluation/deco.json
    assert fd["name"] == "FD (embedded feature net)"
    flat = EXP[0]["data"]["metrics"]["metrics/deco.json"]["data"]  # workspace = seed4
    assert fd["cells"][1]["note"].startswith(f"CI [{flat['fd_embed_lo']:.3f}, {flat['fd_embed_hi']:.3f}]")
    # same revision twice: no difference, nothing highlighted
    same = build_compare_context(EXP, ["seed1", "seed1"], {"seed1": FULL["seed1"]})
    assert all(c["cls"] == "" for r in same["metric_rows"] for c in r["cells"])
    # without the evaluation files (no replicates): the bounds of the metrics files, compared by overlap (DeCo's
    # overlap: changed, not significant; the baseline's do not); is_embed has no bounds there: no interval
    bare = build_compare_context(EXP, ["seed1", "seed4"])
    fd_bare = {r["file"]: r["cells"][1] for r in bare["metric_rows"] if r["key"] == "fd_embed"}
    assert fd_bare["metrics/deco.json"]["cls"] == "changed" and fd_bare["metrics/baseline.json"]["cls"] == "sig"
    assert all("(ci-overlap)" in c["note"] for c in fd_bare.values())
    assert all(r["cells"][1]["note"] == "no interval"
               for r in bare["metric_rows"] if r["key"] == "is_embed")


def test_params_that_differ_are_listed():
    ctx = build_compare_context(EXP, ["seed1", "seed4"], FULL)
    assert [r["key"] for r in ctx["param_rows"]] == ["params.yaml:run.seed"]
    assert [c["text"] for c in ctx["param_rows"][0]["cells"]] == ["1", "4"]
    html = render(ctx, "compare.html")
    assert "seed1" in html and "seed4" in html and 'class="sig"' in html


def test_revision_lookup():
    assert find_revision(EXP, "workspace")["rev"] == "workspace"
    sha = find_revision(EXP, "seed4")["rev"]
    assert find_revision(EXP, sha[:7])["name"] == "seed4"
    with pytest.raises(RevisionNotFound, match="seed9"):
        find_revision(EXP, "seed9")
    with pytest.raises(ValueError):
        build_compare_context(EXP, ["seed1"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git on PATH")
def test_cli_on_a_real_dvc_repo(tmp_path: Path):
    """End to end: make_dvc_fixture.sh's repo recipe, then the CLI on its two experiments (~15 s)."""
    script = (FIXTURES / "make_dvc_fixture.sh").read_text()
    body = script.split("cd \"$tmp\"\n", 1)[1].split("dvc exp show --json >", 1)[0]
    repo = tmp_path / "repo"
    repo.mkdir()
    import os
    import sys

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=repo, check=True, capture_output=True, env=env)
    out = tmp_path / "compare.html"
    assert main(["--root", str(repo), "--revs", "seed1", "seed4", "--out", str(out)]) == 0
    html = out.read_text()
    assert 'class="sig"' in html and "run.seed" in html
    assert "(bootstrap-difference)" in html  # the replicates, read from the DVC-cached evaluation/<m>.json
    assert main(["--root", str(repo), "--revs", "seed1", "nope", "--out", str(out)]) == 2
