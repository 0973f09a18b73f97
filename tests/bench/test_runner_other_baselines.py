"""The benchmark measures PixNerd and JiT+REPA (paper Table 1's efficiency columns) side by side: training (the JiT
step on its x-prediction objective) and sampling, on CPU at unit-test size (DeCo and the baseline:
test_runner_cpu.py)."""

from __future__ import annotations

import dataclasses

import torch

from deco_bench.bench.runner import ModelSpec, Recipe, run_benchmark
from deco_bench.config import BenchParams, BenchSize, SampleSetting
from deco_bench.models import build_model, count_parameters, get_preset


def test_pixnerd_and_jit_are_measured():
    torch.set_num_threads(1)
    recipe = Recipe(freqfm_weight=0.0, repa_align_layer=1, repa_encoder="small")
    jit = dataclasses.replace(get_preset("baseline-tiny"), prediction="x")
    specs = [ModelSpec("pixnerd", "PixNerd", "pixnerd-tiny", get_preset("pixnerd-tiny"), recipe),
             ModelSpec("jit", "JiT+REPA", "baseline-tiny", jit, recipe)]
    bp = BenchParams(sizes=(BenchSize(16, 2, 2),), warmup=0, repeats=1, sample_repeats=1,
                     sampling=(SampleSetting("e2", 2),), sample_timed_steps=0)
    result = run_benchmark(specs, bp, torch.device("cpu"))
    (case,) = result["cases"].values()
    assert list(case["models"]) == ["pixnerd", "jit"]
    for name, spec in zip(case["models"], specs):
        m = case["models"][name]
        assert "error" not in m and "error" not in m["train"], m
        assert m["params"] == count_parameters(build_model(spec.cfg))
        assert m["train"]["s_per_iter"]["median"] > 0 and m["sample"]["e2"]["batch_1"]["s_per_image"]["median"] > 0
    # JiT is the baseline network: the same parameters and forward FLOPs
    base = build_model(get_preset("baseline-tiny"))
    assert case["models"]["jit"]["params"] == count_parameters(base)
    assert set(case["ratios"]) == {"pixnerd/jit"}
