"""The report from fixture JSON (real formats, tests/fixtures/report/make_fixtures.py): complete, and with stages
missing. Key numbers appear; a missing input gives the stated message; embedded numbers never sit in a paper
column."""

from __future__ import annotations

import json
import re
import shutil
from html import unescape
from pathlib import Path

import jinja2
import numpy as np
import pytest
import yaml

from deco_bench import paper
from deco_bench.report.context import build_context
from deco_bench.report.grid import sample_grid
from deco_bench.report.inputs import load_inputs
from deco_bench.report.render import render

from .conftest import COMPLETE, MODELS, set_train_step

FIXTURES = Path(__file__).parents[1] / "fixtures" / "report"


def _render(root: Path) -> str:
    return render(build_context(load_inputs(root, environment=False), generated_at="now"))


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def _section(html: str, sid: str) -> str:
    return html[html.index(f'<section id="{sid}">'):].split("</section>", 1)[0]


def test_complete_report_shows_every_sections_key_numbers(complete_report: Path):
    html = complete_report.read_text()
    text = _text(html)
    met = {m: json.loads((COMPLETE / f"evaluation/{m}.json").read_text()) for m in MODELS}
    # paper tables: every Table 2 / Table 1 FID as printed
    for row in paper.TABLE2_256 + paper.TABLE2_512 + paper.TABLE1:
        assert f"{row['fid']:.2f}" in _section(html, "paper-tables")
    # our embedded DeCo vs baseline: values, the difference and its bootstrap interval
    ours = _section(html, "ours")
    d, b = met["deco"]["metrics"]["fd_embed"], met["baseline"]["metrics"]["fd_embed"]
    assert f"{d:.3f}" in ours and f"{b:.3f}" in ours and f"{d - b:+.3f}" in ours
    assert "FD (embedded feature net)" in ours
    # ablation: paper Table 4 values and our deco_no_freqfm number
    abl = _section(html, "ablation")
    assert "37.63" in abl and f"{met['deco_no_freqfm']['metrics']['fd_embed']:.3f}" in abl
    # convergence: our speed-up and its interval, the paper's points
    sp = json.loads((COMPLETE / "convergence/summary.json").read_text())
    conv = _section(html, "convergence")
    assert f"{sp['speedup_iters']:.2f}×" in conv and f"{sp['interval'][0]:.2f}" in conv
    assert "Paper Fig. 5" in conv and "2.57 FID in 400K" in conv
    # spectrum: summary numbers from the file
    spec = json.loads((COMPLETE / "spectrum/spectrum.json").read_text())
    s = _section(html, "spectrum")
    assert f"{spec['models']['deco']['dit_out']['high_share']:.4f}" in s
    assert f"{spec['ratio_deco_over_baseline']['dit_out']['mean_log_high']:.3f}" in s
    # bench: measured and recording, labelled
    bench = json.loads((COMPLETE / "bench/results.json").read_text())
    bsec = _text(_section(html, "bench"))
    case = next(iter(bench["cases"].values()))
    assert f"{case['models']['deco']['train']['s_per_iter']['median']:.4f}" in bsec
    assert "Recording (not measured by this run)" in bsec and "2026-11-01" in bsec
    # samples: the real held-out crops first, then one embedded PNG per model, with class accuracy beside the
    # real-vs-real ceiling and FD beside the floor (metrics/evalnet/real.json)
    for sid in ("samples", "this-run"):  # full size, and side by side in the first screen
        assert len(re.findall(r'<img class="grid" src="data:image/png;base64,', _section(html, sid))) == len(MODELS) + 1
    smp = _text(_section(html, "samples"))
    assert smp.index("Real held-out crops") < smp.index("DeCo")
    assert "assigns 0.984 [0.953, 1.000] of them to their class" in smp and "is 0.250 (the floor" in smp
    assert "Class accuracy 0.812 [0.719, 0.906] (real: 0.984 [0.953, 1.000])" in smp
    deco_fd = json.loads((COMPLETE / "evaluation/deco.json").read_text())["metrics"]["fd_embed"]
    assert f"{deco_fd / 0.25:.2f}× the real-vs-real floor" in smp
    # provenance: dvc.lock hashes and params
    prov = _section(html, "provenance")
    assert "9f8e7d6c5b4a39281706f5e4d3c2b1a0" in prov and "eval_ckpt_steps" in prov
    assert "did not run" not in text


def test_embedded_numbers_never_in_paper_columns_nor_called_fid(complete_report: Path):
    html = complete_report.read_text()
    tables = _section(html, "paper-tables")
    for m in MODELS:
        for v in json.loads((COMPLETE / f"evaluation/{m}.json").read_text())["metrics"].values():
            assert f"{v:.3f}" not in tables
    assert tables.count(">not comparable: embedded scale</td>") == len(paper.TABLE2_256 + paper.TABLE2_512 + paper.TABLE1)
    # no embedded metric is labelled FID anywhere: every row naming an embedded value says "embedded feature net"
    for row in re.findall(r'<tr data-metric="(\w+)"><td class="l">([^<]+)</td>', html):
        assert (row[0].endswith("_embed") or row[0] == "class_accuracy") and "embedded feature net" in row[1] \
            and "FID" not in row[1]


@pytest.mark.parametrize("remove, message", [
    ("spectrum", "The spectrum stage did not run (no spectrum/spectrum.json)."),
    ("ablation", "The ablation stage did not run (no ablation/tables.json)."),
    ("convergence", "The convergence stage did not run (no convergence/curves.json or convergence/summary.json)."),
    ("bench", "The bench stage did not run (no bench/results.json)."),
])
def test_missing_stage_gives_its_message(complete_root: Path, remove: str, message: str):
    shutil.rmtree(complete_root / remove)
    text = _text(_render(complete_root))
    assert message in text


def test_nothing_ran_renders_every_message(tmp_path: Path):
    shutil.copy(COMPLETE / "params.yaml", tmp_path / "params.yaml")
    html = _render(tmp_path)
    text = _text(html)
    for msg in ("The evaluate stage did not run (no evaluation/deco.json).",
                "The sample stage did not run (no previews/<model>.npz).",
                "The spectrum stage did not run", "The bench stage did not run", "The ablation stage did not run",
                "The convergence stage did not run", "No dvc.lock"):
        assert msg in text
    assert "<td></td>" not in html  # no empty cell


def test_unreadable_and_unrecognised_inputs_are_stated_not_crashed(complete_root: Path):
    (complete_root / "spectrum/spectrum.json").write_text("{truncated")
    (complete_root / "ablation/tables.json").write_text('{"axes": {}}')
    text = _text(_render(complete_root))
    assert "spectrum/spectrum.json could not be read" in text
    assert "The ablation output ablation/tables.json is in an unrecognised format (missing keys: table4" in text


def test_paper_scale_verdict_uses_the_stated_tolerance(complete_root: Path):
    import yaml

    p = yaml.safe_load((complete_root / "params.yaml").read_text())
    p["run"]["scale"] = "paper"
    p["data"]["resolution"] = 256
    p["models"]["deco"]["preset"] = "deco-xl"
    p["train"].update(steps=1_600_000, global_batch=256)  # 320 epochs
    set_train_step(complete_root, 1_600_000)  # the outputs of a 1.6M-step run
    p["sample"].update(num_steps=100, cfg_scale=3.2)
    (complete_root / "params.yaml").write_text(yaml.safe_dump(p))
    met = json.loads((complete_root / "evaluation/deco.json").read_text())
    met.update(scale="paper", feature_space="inception",
               metrics={"fid": 1.95, "sfid": 4.47, "is": 303.0, "precision": 0.80, "recall": 0.70},
               ci={"fid": [1.90, 2.00]})
    (complete_root / "evaluation/deco.json").write_text(json.dumps(met))
    ctx = build_context(load_inputs(complete_root, environment=False))
    g = next(g for g in ctx["paper_tables"]["tables"][0]["groups"] if g["method"] == "DeCo-XL/16")
    assert g["verdict"] == "differs: Recall"  # FID +0.05 <= 0.1 passes; recall +0.09 > 0.01 fails
    assert [c["cls"] for c in g["diff"]] == ["ok", "ok", "ok", "ok", "bad"]
    assert g["diff"][0]["text"] == "+0.05 [+0.00, +0.10]".replace("+0.00", "0.00").replace("+0.10", "0.10")
    other = [x for x in ctx["paper_tables"]["tables"][0]["groups"] if x["model"] == "deco" and x is not g]
    assert all(x["verdict"] == "not comparable: different configuration" for x in other)


def test_strict_undefined_fails_loudly():
    with pytest.raises(jinja2.UndefinedError):
        render({"title": "t"})


def test_sample_grid_rows_are_classes():
    images = np.zeros((6, 4, 4, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(6) * 10
    labels = np.array([0, 1, 2, 0, 1, 2])
    grid, classes = sample_grid(images, labels, per_class=2, max_classes=2)
    assert classes == [0, 1] and grid.shape == (8, 8, 3)
    assert [grid[0, 0, 0], grid[0, 4, 0], grid[4, 0, 0], grid[4, 4, 0]] == [0, 30, 10, 40]
    with pytest.raises(ValueError):
        sample_grid(images.astype(np.float32), labels, per_class=1, max_classes=1)


def test_stage_writes_report_and_where_prints_it(complete_root: Path, monkeypatch, capsys):
    from deco_bench.report import where
    from deco_bench.stages import report as stage

    monkeypatch.chdir(complete_root)
    stage.run("params.yaml", Path("."), Path("reports/index.html"))
    assert "The paper's tables beside ours" in Path("reports/index.html").read_text()
    assert where.main([]) == 0
    assert capsys.readouterr().out.strip().endswith(str((complete_root / "reports/index.html").resolve()))


def test_report_params_are_validated():
    from deco_bench.config import ConfigError, parse_params

    raw = yaml.safe_load((FIXTURES / "complete" / "params.yaml").read_text())

    def report_params(section: dict):
        return parse_params({**raw, "report": {**raw["report"], **section}}).report

    assert report_params({"tolerance": {"fid": 0.2}}).tolerance == {"fid": 0.2}
    with pytest.raises(ConfigError, match="report.tolerance.fd_embed"):
        report_params({"tolerance": {"fd_embed": 0.1}})
    with pytest.raises(ConfigError, match="report.per_class"):
        report_params({"per_class": 0})
