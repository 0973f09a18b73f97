"""The report reads well: this run's own results first (what was run, the headline DeCo vs baseline comparison with
its interval and finding, the sample grids beside the real crops), the paper's tables after them (collapsed when the
run is not at paper scale), and bench quantities no model measured folded into one line that says why."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import yaml

from deco_bench.metrics.api import compare
from deco_bench.report.context import build_context
from deco_bench.report.fmt import fmt_duration
from deco_bench.report.inputs import load_inputs
from deco_bench.report.render import render
from deco_bench.report.sections.bench import bench_section
from deco_bench.report.sections.overview import _short

from .conftest import COMPLETE, set_train_step


def _section(html: str, sid: str) -> str:
    return html[html.index(f'<section id="{sid}">'):].split("</section>", 1)[0]


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _evaluation(m: str) -> dict:
    return json.loads((COMPLETE / f"evaluation/{m}.json").read_text())


def test_this_run_comes_first_and_the_paper_tables_after_it(complete_report: Path):
    html = complete_report.read_text()
    order = [html.index(f'<section id="{sid}">') for sid in ("this-run", "ours", "samples", "convergence",
                                                              "ablation", "bench", "paper-tables", "provenance")]
    assert order == sorted(order)
    assert "<h2" not in html[:order[0]] and "<table" not in html[:order[0]]  # nothing but the title and links first
    # at embedded scale the paper rows are collapsed behind a one-line summary that says what they would show
    paper = _section(html, "paper-tables")
    summary = _text(re.search(r'<details id="paper-tables-rows"><summary>(.*?)</summary>', paper).group(1))
    assert summary == ("12 paper rows (Table 2 at 256 and 512 px, Table 1): every verdict “not comparable: embedded "
                       "scale”: show the paper's numbers")


def test_first_screen_says_what_was_run(complete_report: Path):
    first = _section(complete_report.read_text(), "this-run")
    text = _text(first)
    assert "This run : profile default , embedded scale ." in text
    assert "8 px crops of 4 embedded photographs (one class each), 64 training images" in text
    assert "scored in the embedded feature net (not Inception: FD, not FID)" in text
    assert "Machine: AMD EPYC, 2 CPU cores (torch 2.14.1+cu130, float32), as the bench stage recorded it" in text
    rows = re.findall(r"<tr><td class=\"l\">([^<]+) <code class=\"key\">(\w+)</code></td>(.*?)</tr>",
                      first.split('<table id="run-models"', 1)[1].split("</table>", 1)[0])
    assert [(label, key) for label, key, _ in rows] == [("DeCo", "deco"), ("Baseline", "baseline"),
                                                         ("DeCo w/o FreqFM", "deco_no_freqfm")]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for _, _, r in rows]
    assert cells[1] == ["baseline-s", "1.23M", "300 steps × batch 32", "1 min 40 s", "123.4 images/s"]


def test_first_screen_headline_is_deco_vs_baseline_with_the_interval_of_the_difference(complete_report: Path):
    first = _section(complete_report.read_text(), "this-run")
    deco, base = _evaluation("deco"), _evaluation("baseline")
    expected = compare(base, deco)
    heads = re.findall(r'<tr data-headline="(\w+)">(.*?)</tr>', first)
    assert [k for k, _ in heads] == ["fd_embed", "class_accuracy"]  # the run's own distance, then class accuracy
    for key, row in heads:
        cells = [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        e = expected[key]
        assert cells[1].startswith(_short(base["metrics"][key])) and cells[2].startswith(_short(deco["metrics"][key]))
        assert cells[1].endswith(f"[{_short(base['ci'][key][0])}, {_short(base['ci'][key][1])}]")
        assert cells[3] == ("+" if e["difference"] > 0 else "") + _short(e["difference"])
        if key == "fd_embed":  # bootstrap replicates of both: the interval of the difference
            lo, hi = e["interval"]
            assert e["method"] == "bootstrap-difference" and cells[4] == f"[{_short(lo)}, {_short(hi)}]"
        else:  # class accuracy has no replicates in the fixture: its intervals are compared
            assert e["method"] == "ci-overlap"
            assert cells[4] == f"n/a (the intervals {'are disjoint' if e['exceeds_interval'] else 'overlap'})"
        want = ("no significant difference" if not e["exceeds_interval"] else
                "DeCo better" if (e["difference"] < 0) == e["lower_is_better"] else "DeCo worse")
        assert cells[5] == want
    assert "Finding:" in _text(first) and "Convergence: 1.42× fewer training iterations" in _text(first)
    assert _short(0.6842423899401293) == "0.684" and _short(116.38) == "116.4" and _short(-49.796) == "-49.80"


def test_first_screen_shows_every_grid_beside_the_real_crops(complete_report: Path):
    first = _section(complete_report.read_text(), "this-run")
    figures = re.findall(r'<figure><img class="grid" src="data:image/png;base64,[^"]+" width="(\d+)" height="(\d+)" '
                         r'alt="([^"]+)">\s*<figcaption><b>([^<]+)</b>', first)
    assert [f[3] for f in figures] == ["Real held-out crops", "DeCo", "Baseline", "DeCo w/o FreqFM"]
    # 8 px tiles, 4 classes x 6 per class: a 48 x 32 grid, shown at 4x (whole pixels) in the first screen
    assert {(int(w), int(h)) for w, h, _, _ in figures} == {(192, 128)}
    assert "class accuracy 0.812, FD 0.684" in _text(first)


def test_headline_without_the_baseline_says_so(complete_root: Path):
    (complete_root / "evaluation/baseline.json").unlink()
    ctx = build_context(load_inputs(complete_root, environment=False))
    assert ctx["headline"] == {"ran": False, "message": "The evaluate stage did not run (no evaluation/baseline.json)."}
    assert "The evaluate stage did not run (no evaluation/baseline.json)." in _text(render(ctx))


def test_paper_scale_headline_uses_fid_and_leaves_the_paper_tables_open(complete_root: Path):
    p = yaml.safe_load((complete_root / "params.yaml").read_text())
    p["run"]["scale"] = "paper"
    (complete_root / "params.yaml").write_text(yaml.safe_dump(p))
    for m, fid in (("deco", 2.0), ("baseline", 3.0)):
        doc = _evaluation(m)
        doc.update(scale="paper", feature_space="inception", metrics={"fid": fid, "is": 200.0},
                   ci={"fid": [fid - 0.1, fid + 0.1]}, bootstrap={})
        (complete_root / f"evaluation/{m}.json").write_text(json.dumps(doc))
    set_train_step(complete_root, 300)
    ctx = build_context(load_inputs(complete_root, environment=False))
    assert [r["key"] for r in ctx["headline"]["rows"]] == ["fid", "is"]
    fid = ctx["headline"]["rows"][0]
    assert (fid["difference"], fid["interval"], fid["finding"]) == (
        "-1.000", "n/a (the intervals are disjoint)", "DeCo better")  # no replicates: the intervals are compared
    html = render(ctx)
    assert 'id="paper-tables-rows"' not in html and "Inception features (ADM protocol)" in _text(html)


def test_unmeasured_bench_quantities_fold_into_one_line_with_the_reason():
    results = json.loads((COMPLETE / "bench/results.json").read_text())
    case = next(iter(results["cases"].values()))
    sec = bench_section(results, [])
    c = sec["tables"][0]["cases"][0]
    assert not any("not measured" in cell for r in c["rows"] for cell in r["cells"])
    assert [r["what"] for r in c["rows"] if r["what"].startswith("Train")] == [
        "Train step", "Train throughput", "Train peak memory"]  # MFU, energy, power: no model measured them
    n_sampling = sum(len(b) for b in case["models"]["deco"]["sample"].values())
    assert c["folded"] == (
        f"Not measured ({3 + 2 * n_sampling} quantities, left out of the table): MFU (training and "
        f"{'all %d sampling settings' % n_sampling if n_sampling > 1 else 'sampling euler2, batch 1'}): MFU is "
        f"stated against a bf16 peak and this run is float32; energy (training and all {n_sampling} sampling "
        f"settings), power (training): no CUDA device (CPU run).")
    # a quantity one model measured keeps its row, with the other model's reason in its cell
    case["models"]["deco"]["train"]["mfu"] = 0.25
    c = bench_section(results, [])["tables"][0]["cases"][0]
    mfu = next(r for r in c["rows"] if r["what"] == "Train MFU")
    assert mfu["cells"][0] == "0.2500" and mfu["cells"][1].startswith("not measured (MFU is stated")
    assert "MFU (all" in c["folded"] or "MFU (sampling" in c["folded"]


def test_throughput_charts_one_unit_and_one_phase_each():
    results = json.loads((COMPLETE / "bench/results.json").read_text())
    c = bench_section(results, [])["tables"][0]["cases"][0]
    titles = [re.search(r'aria-label="([^"]+)"', s).group(1) for s in c["svgs"]]
    assert titles == [f"Training throughput, {c['id']} (images/s, higher is better)",
                      f"Sampling throughput, {c['id']} (images/s, higher is better)"]
    train = next(r for r in c["rows"] if r["what"] == "Train throughput")
    assert len(re.findall(r'height="14.0" fill="#', c["svgs"][0])) == len(train["values"])  # one bar per model


def test_ablation_tables_not_run_at_this_profile_are_collapsed(complete_report: Path):
    abl = _section(complete_report.read_text(), "ablation")
    shown, folded = abl.split('<details id="ablation-not-run">')
    assert "(e) Loss weight of FreqFM" in shown and "Table 1: baseline and DeCo variants" in shown
    assert "(a) Hidden size d of the pixel decoder" in folded and "(a) Hidden size" not in shown


def test_fmt_duration():
    assert [fmt_duration(s) for s in (12.34, 87.05, 3600 * 3 + 300, 86400 * 2 + 3600 * 4, None)] == [
        "12.3 s", "1 min 27 s", "3 h 05 min", "2 d 4 h", "n/a"]


def test_first_screen_grids_put_deco_and_the_baseline_first_and_are_capped():
    from deco_bench.report.sections.overview import FIRST_SCREEN_GRIDS, first_screen_grids

    grids = [{"model": m} for m in ("v1", "baseline_l", "v2", "v3", "deco_l", "v4")]
    params = {"convergence": {"deco": "deco_l", "baseline": "baseline_l"}}
    first, more = first_screen_grids(grids, params)
    assert [g["model"] for g in first] == ["deco_l", "baseline_l", "v1", "v2"][:FIRST_SCREEN_GRIDS]
    assert more == len(grids) - FIRST_SCREEN_GRIDS
    assert first_screen_grids(grids[:2], {}) == (grids[:2], 0)


def test_an_unbounded_speedup_interval_end_is_written_no_bound(complete_root: Path):
    path = complete_root / "convergence/summary.json"
    sp = json.loads(path.read_text())
    path.write_text(json.dumps({**sp, "interval": [None, 1.07]}))
    head = build_context(load_inputs(complete_root, environment=False))["headline"]
    assert head["speedup"].endswith(f"({sp['kind']}; 95% interval [no bound, 1.07])")
