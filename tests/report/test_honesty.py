"""The report never lies about what it shows: exactly the models of params.yaml (a removed model's stray files are
not read), every model's outputs of the training step params.yaml names (else a one-line error naming the file),
"N training steps" as those files say, and one colour per model in every chart."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from deco_bench.io import DecoBenchError
from deco_bench.report.context import build_context
from deco_bench.report.inputs import load_inputs
from deco_bench.report.render import render
from deco_bench.report.steps import TrainStepMismatchError
from deco_bench.report.svg import PALETTE

from .conftest import set_train_step


def _render(root: Path) -> str:
    return render(build_context(load_inputs(root, environment=False), generated_at="now"))


def _runs_table(html: str) -> str:
    return html[html.index('<h2 id="runs">'):].split("</table>", 1)[0]


def _section(html: str, sid: str) -> str:
    return html[html.index(f'<section id="{sid}">'):].split("</section>", 1)[0]


def _edit_params(root: Path, fn) -> None:
    p = yaml.safe_load((root / "params.yaml").read_text())
    fn(p)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def _edit_json(path: Path, **changes) -> None:
    doc = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            doc.pop(k)
        else:
            doc[k] = v
    path.write_text(json.dumps(doc))


# ------------------------------------------------------------------------------ exactly the models of params.yaml

def test_a_removed_model_is_absent_from_the_report_and_the_ablation_tables(complete_root: Path):
    from deco_bench.stages.ablation import run as ablation_stage

    _edit_params(complete_root, lambda p: p["models"].pop("deco_no_freqfm"))
    stray = json.loads((complete_root / "evaluation/deco_no_freqfm.json").read_text())
    # its outputs stay behind in evaluation/ and previews/, even with another step: they are not read, not checked
    _edit_json(complete_root / "evaluation/deco_no_freqfm.json", train_step=7)
    ablation_stage(str(complete_root / "params.yaml"), complete_root / "evaluation", complete_root / "ablation")
    tables = json.loads((complete_root / "ablation/tables.json").read_text())
    rows = [r for a in tables["table4"] + [tables["table1"]] for r in a["rows"]]
    assert {r["model"] for r in rows} == {"deco", "baseline", None} and tables["unassigned"] == {}
    assert [r["setting"] for r in tables["table1"]["rows"] if r["ours"]] == ["baseline", "deco"]
    assert str(stray["metrics"]["fd_embed"]) not in json.dumps(tables)

    html = _render(complete_root)
    assert f"{stray['metrics']['fd_embed']:.3f}" not in html
    for sid in ("ours", "samples", "provenance", "convergence", "spectrum", "bench"):
        assert "deco_no_freqfm" not in _section(html, sid), sid
    # the paper's Table 1 row of that name stays, with nothing of ours beside it
    t1_row = re.search(r"<tr><td class=\"l\">deco_no_freqfm.*?</tr>", _section(html, "ablation"), re.S).group(0)
    assert "not run at this profile" in t1_row
    assert re.findall(r'<td class="l"><code>(\w+)</code></td>', _runs_table(html)) == ["deco", "baseline"]
    for sid in ("samples", "this-run"):
        assert len(re.findall(r'<img class="grid" src="data:image/png;base64,', _section(html, sid))) == 2 + 1  # + real
    assert "deco_no_freqfm" not in _section(html, "this-run")
    kept = [json.loads((complete_root / f"evaluation/{m}.json").read_text())["metrics"] for m in ("deco", "baseline")]
    assert len(re.findall(r"<tr data-metric=", _section(html, "ours"))) == len(set(kept[0]) & set(kept[1]))  # one pair


def test_ablation_tables_placing_a_removed_model_are_stated_stale(complete_root: Path):
    _edit_params(complete_root, lambda p: p["models"].pop("deco_no_freqfm"))
    ablation = _section(_render(complete_root), "ablation")
    assert ("ablation/tables.json is stale: it places deco_no_freqfm, not among the models of params.yaml; re-run "
            "`dvc repro ablation` (the section is left out).") in ablation
    assert "37.63" not in ablation  # no table of it


def test_no_models_in_params_means_no_model_outputs_read(complete_root: Path):
    _edit_params(complete_root, lambda p: p.pop("models"))
    inputs = load_inputs(complete_root, environment=False)
    assert inputs["models"] == {} and inputs["grids"] == {}


# ------------------------------------------------------------------------------ every model's step is checked

@pytest.mark.parametrize("rel, key, stage", [
    ("evaluation/deco.json", "train_step", "evaluate@deco"),
    ("previews/baseline.json", "train_step", "sample@baseline"),
    ("metrics/train/deco_no_freqfm.json", "steps", "train@deco_no_freqfm"),
])
def test_an_output_of_another_training_step_stops_the_report(complete_root: Path, rel: str, key: str, stage: str):
    _edit_json(complete_root / rel, **{key: 200})
    with pytest.raises(TrainStepMismatchError) as err:
        _render(complete_root)
    assert str(err.value) == (f"{rel} claims training step 200, but params.yaml train.steps is 300; "
                              f"re-run `dvc repro {stage}`")
    assert isinstance(err.value, DecoBenchError)


def test_an_output_without_a_step_predates_the_check(complete_root: Path):
    _edit_json(complete_root / "previews/deco.json", train_step=None)
    with pytest.raises(TrainStepMismatchError) as err:
        _render(complete_root)
    assert str(err.value) == ("previews/deco.json records no training step (no 'train_step'): it predates the "
                              "training-step check; re-run `dvc repro sample@deco`")


def test_every_mismatch_is_named_on_one_line(complete_root: Path):
    _edit_json(complete_root / "evaluation/deco.json", train_step=100)
    tables = json.loads((complete_root / "ablation/tables.json").read_text())
    tables["protocol"]["train_steps"] = 100
    (complete_root / "ablation/tables.json").write_text(json.dumps(tables))
    with pytest.raises(TrainStepMismatchError) as err:
        _render(complete_root)
    assert str(err.value) == ("evaluation/deco.json claims training step 100, but params.yaml train.steps is 300; "
                              "re-run `dvc repro evaluate@deco`; ablation/tables.json claims training step 100, but "
                              "params.yaml train.steps is 300; re-run `dvc repro ablation`")
    assert "\n" not in str(err.value)


def test_the_stage_prints_the_error_and_writes_no_report(complete_root: Path, monkeypatch, capsys):
    from deco_bench.stages import report as stage

    _edit_json(complete_root / "metrics/train/baseline.json", steps=299)
    monkeypatch.chdir(complete_root)
    monkeypatch.setattr(sys, "argv", ["report", "--out", "reports/index.html"])
    with pytest.raises(SystemExit) as exit_:
        stage.main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == ("error: metrics/train/baseline.json claims training step 299, but params.yaml "
                                       "train.steps is 300; re-run `dvc repro train@baseline`\n")
    assert not (complete_root / "reports/index.html").exists()


def test_training_steps_stated_are_the_checked_files(complete_root: Path):
    _edit_params(complete_root, lambda p: p["train"].update(steps=400))
    set_train_step(complete_root, 400)
    (complete_root / "metrics/train/deco.json").unlink()  # absent: not a mismatch; the other files still say 400
    (complete_root / "previews/baseline.json").unlink()
    runs = _runs_table(_render(complete_root))
    rows = dict(re.findall(r'<code>(\w+)</code></td><td class="l">[^<]*</td><td class="l">([^<]*)</td>', runs))
    assert set(rows) == {"deco", "baseline", "deco_no_freqfm"}
    assert all("; 400 training steps;" in text for text in rows.values()), rows
    assert "300" not in runs


# ------------------------------------------------------------------------------ one colour per model

def _model_colours(html: str) -> tuple[dict[str, set[str]], int]:
    """{model: colours its marks use over every SVG}, and how many SVGs show a model. Fails on any series mark
    (a palette colour) that does not say which model it shows."""
    colours: dict[str, set[str]] = {}
    charts = 0
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        marks = re.findall(r"<(?:polyline|circle|line|rect)\b[^>]*>", svg)
        shown = False
        for mark in marks:
            c = re.search(r'(?:stroke|fill)="(#[0-9A-Fa-f]{6})"', mark)
            if not c or c.group(1) not in PALETTE:
                continue
            m = re.search(r'data-model="([^"]+)"', mark)
            assert m, f"a series mark without its model: {mark}"
            colours.setdefault(m.group(1), set()).add(c.group(1))
            shown = True
        charts += shown
    return colours, charts


def test_each_model_has_one_colour_in_every_chart(complete_report: Path):
    colours, charts = _model_colours(complete_report.read_text())
    assert charts == 7  # ours and the paper's convergence, the DCT energy, bench (training and sampling throughput,
    # one chart each): this run and the recording
    assert colours == {"deco": {PALETTE[0]}, "baseline": {PALETTE[1]}}  # by position in params models


def test_a_models_colour_follows_its_position_in_params(complete_root: Path):
    _edit_params(complete_root, lambda p: p.update(models={k: p["models"][k] for k in
                                                           ("baseline", "deco_no_freqfm", "deco")}))
    colours, charts = _model_colours(_render(complete_root))
    assert charts == 7
    assert colours == {"baseline": {PALETTE[0]}, "deco": {PALETTE[2]}}
