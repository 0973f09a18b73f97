"""The regression gate: passes against its own baseline, fails on +20% time / +20% memory / -20% images/s,
refuses other hardware unless asked (then gates ratios only), and fails when a metric disappears."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from deco_bench.tools import gate

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "bench" / "baselines" / "cpu-embedded.json"


def make_result(s_per_iter=0.2, s_per_image=0.05, rss=1_000_000_000, cuda=None, hardware=None) -> dict:
    """A minimal result in the stage's layout: two models, one case, their ratios."""
    def model(scale: float) -> dict:
        return {"params": 100, "train": {"s_per_iter": {"median": s_per_iter * scale},
                                         "images_per_s": {"median": 8 / (s_per_iter * scale)},
                                         "memory": {"cuda_peak_allocated_bytes": cuda, "host_rss_peak_bytes": rss}},
                "sample": {"euler50": {"batch_1": {"s_per_image": {"median": s_per_image * scale},
                                                   "images_per_s": {"median": 1 / (s_per_image * scale)},
                                                   "memory": {"host_rss_peak_bytes": rss}}}}}
    deco, base = model(0.9), model(1.0)
    ratios = {"train.s_per_iter.median": 0.9, "train.images_per_s.median": 1 / 0.9,
              "sample.euler50.batch_1.s_per_image.median": 0.9}
    hw = hardware or {"device_type": "cpu", "device_name": "Test CPU", "device_count": 1, "cpu_model": "Test CPU",
                      "cpu_count": 2, "torch_threads": 2}
    return {"env": {"hardware": hw, "torch": "2.x", "dtype": "float32", "compile": [False]},
            "cases": {"32px/eager": {"models": {"deco": deco, "baseline": base},
                                     "ratios": {"deco/baseline": ratios}}}}


def scaled(result: dict, pattern: str, factor: float) -> dict:
    """A copy with every leaf whose dotted path matches `pattern` multiplied by `factor`."""
    out = copy.deepcopy(result)

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            path = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                walk(v, path)
            elif isinstance(v, (int, float)) and gate.fnmatch.fnmatchcase(path, pattern):
                d[k] = v * factor

    walk(out, "")
    return out


def run_gate(tmp_path: Path, result: dict, baseline: dict, *extra: str) -> int:
    r, b = tmp_path / "result.json", tmp_path / "baseline.json"
    r.write_text(json.dumps(result))
    b.write_text(json.dumps(baseline))
    return gate.main([str(r), str(b), *extra])


def test_own_baseline_passes(tmp_path):
    res = make_result()
    assert run_gate(tmp_path, res, res) == 0


def slower(result: dict, factor: float) -> dict:
    """Every absolute time x factor and every absolute rate / factor (the ratios unchanged: both models slowed)."""
    out = scaled(result, "*models.*.s_per_*.median", factor)
    return scaled(out, "*models.*images_per_s.median", 1 / factor)


@pytest.mark.parametrize("factor,expected", [(1.2, 1), (1.1, 0), (0.7, 0)])
def test_time_tolerance(tmp_path, factor, expected):
    res = make_result()
    assert run_gate(tmp_path, slower(res, factor), res) == expected


def test_memory_20_percent_larger_fails(tmp_path, capsys):
    res = make_result(cuda=2_000_000_000)
    bigger = scaled(res, "*cuda_peak_allocated_bytes", 1.2)
    assert run_gate(tmp_path, bigger, res) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "cuda_peak_allocated_bytes" in out
    assert run_gate(tmp_path, scaled(res, "*host_rss_peak_bytes", 1.2), res) == 1
    assert run_gate(tmp_path, scaled(res, "*host_rss_peak_bytes", 1.05), res) == 0


def test_images_per_s_20_percent_lower_fails(tmp_path):
    res = make_result()
    assert run_gate(tmp_path, scaled(res, "*models.deco.train.images_per_s.median", 0.8), res) == 1


def test_worsening_factor_closed_form():
    assert gate.worsening(10.0, 12.0, gate.LOWER) == pytest.approx(1.2)
    assert gate.worsening(10.0, 8.0, gate.HIGHER) == pytest.approx(1.25)
    assert gate.worsening(10.0, 12.5, gate.HIGHER) == pytest.approx(0.8)


def test_rules_direction_per_metric():
    assert gate.rule_for("cases.a.models.deco.train.images_per_s.median") == (gate.HIGHER, "throughput")
    assert gate.rule_for("cases.a.models.deco.train.s_per_iter.median") == (gate.LOWER, "time")
    assert gate.rule_for("cases.a.ratios.deco/baseline.train.s_per_iter.median") == (gate.LOWER, "ratio")
    assert gate.rule_for("cases.a.ratios.deco/baseline.flops_per_image_fwd") is None  # a design ratio, not gated
    assert gate.rule_for("cases.a.models.deco.train.s_per_iter.q3") is None  # only medians are gated


def test_refuses_different_hardware_unless_asked(tmp_path, capsys):
    res = make_result()
    other = make_result(hardware={**res["env"]["hardware"], "device_name": "NVIDIA H200", "device_type": "cuda"})
    assert run_gate(tmp_path, slower(other, 1.5), res) == 2
    assert "different hardware" in capsys.readouterr().err
    # allowed: only the ratios are gated -- absolute slow-down is shown but not failed ...
    assert run_gate(tmp_path, slower(other, 1.5), res, "--allow-different-hardware") == 0
    assert "not gated (different hardware)" in capsys.readouterr().out
    # ... while a ratio regression (DeCo 20% slower relative to the baseline, same run) still fails
    worse_ratio = scaled(other, "*ratios.*s_per_iter.median", 1.2)
    assert run_gate(tmp_path, worse_ratio, res, "--allow-different-hardware") == 1


def test_missing_metric_fails_and_null_in_both_is_skipped(tmp_path):
    res = make_result()
    lost = copy.deepcopy(res)
    lost["cases"]["32px/eager"]["models"]["deco"]["train"] = {"error": "out of memory"}
    assert run_gate(tmp_path, lost, res) == 1
    rows = gate.compare(res, res)
    cuda = [r for r in rows if r.metric.endswith("cuda_peak_allocated_bytes")]
    assert cuda and all(r.status == "not measured" for r in cuda)


def test_tolerance_option_and_bad_inputs(tmp_path, capsys):
    res = make_result()
    assert run_gate(tmp_path, slower(res, 1.2), res, "--tolerance", "time=0.3", "--tolerance", "throughput=0.3") == 0
    assert run_gate(tmp_path, slower(res, 1.2), res, "--tolerance", "speed=0.3") == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert gate.main([str(tmp_path / "bad.json"), str(tmp_path / "bad.json")]) == 2
    assert gate.main([str(tmp_path / "nope.json"), str(tmp_path / "nope.json")]) == 2
    assert "file not found" in capsys.readouterr().err


@pytest.mark.skipif(not COMMITTED.exists(), reason="bench/baselines/cpu-embedded.json not committed yet")
def test_committed_baseline_against_itself_and_degraded(tmp_path):
    base = json.loads(COMMITTED.read_text())
    assert run_gate(tmp_path, base, base) == 0
    assert run_gate(tmp_path, slower(base, 1.2), base) == 1
    assert run_gate(tmp_path, scaled(base, "*host_rss_peak_bytes", 1.2), base) == 1
