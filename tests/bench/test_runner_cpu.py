"""The benchmark on CPU at unit-test size: GPU-only fields are null with a reason (never 0), ratios are the
quotients of the entries, the guided-step count matches what the sampler does, and the extrapolated sampling
time agrees with a timed full trajectory."""

from __future__ import annotations

import time
import types

import pytest
import torch

from deco_bench.config import BenchParams, BenchSize, SampleSetting
from deco_bench.bench.runner import ModelSpec, Recipe, bench_sample, guided_step_count, run_benchmark
from deco_bench.bench.runner import Telemetry
from deco_bench.models import get_preset

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def result():
    torch.set_num_threads(1)
    recipe = Recipe(repa_align_layer=1, repa_encoder="small")
    specs = [ModelSpec("deco", "DeCo", "deco-tiny", get_preset("deco-tiny"), recipe),
             ModelSpec("baseline", "Baseline", "baseline-tiny", get_preset("baseline-tiny"),
                       Recipe(freqfm_weight=0.0, repa_align_layer=1))]
    bp = BenchParams(sizes=(BenchSize(16, 2, 2),), warmup=0, repeats=2, sample_repeats=1,
                     sampling=(SampleSetting("e4", 4), SampleSetting("e6cfg", 6, 2.0, (0.1, 1.0))),
                     sample_timed_steps=3)
    return run_benchmark(specs, bp, CPU)


def test_gpu_fields_are_null_with_reasons(result):
    deco = result["cases"]["16px/eager"]["models"]["deco"]
    mem = deco["train"]["memory"]
    assert mem["cuda_peak_allocated_bytes"] is None and mem["cuda_peak_reserved_bytes"] is None
    assert "CPU" in mem["cuda_reason"]
    assert mem["host_rss_peak_bytes"] > 50 * 2**20
    assert deco["train"]["nvml"] is None and "no CUDA device" in deco["train"]["nvml_reason"]
    assert deco["train"]["mfu"] is None and "float32" in deco["train"]["mfu_reason"]
    sample = deco["sample"]["e6cfg"]["batch_2"]
    assert sample["mfu"] is None and sample["nvml"] is None and sample["memory"]["cuda_peak_allocated_bytes"] is None
    assert result["peak"]["flops_per_s"] is None and result["nvml_device"] is None


def test_measured_fields_and_ratios(result):
    case = result["cases"]["16px/eager"]
    deco, base = case["models"]["deco"], case["models"]["baseline"]
    for m in (deco, base):
        tr = m["train"]
        assert tr["repeats"] == 2 and tr["s_per_iter"]["median"] > 0
        assert tr["images_per_s"]["median"] == pytest.approx(2 / tr["s_per_iter"]["median"], rel=1e-9)
        assert m["flops_per_image_train"] > 2 * m["flops_per_image_fwd"] > 0
    r = case["ratios"]["deco/baseline"]
    assert r["train.s_per_iter.median"] == pytest.approx(deco["train"]["s_per_iter"]["median"]
                                                         / base["train"]["s_per_iter"]["median"])
    assert r["params"] == pytest.approx(deco["params"] / base["params"])
    s = deco["sample"]["e6cfg"]["batch_2"]
    assert s["extrapolated"]["timed_steps"] == 3 and s["nfe_per_image"] == 6 + s["guided_steps"]
    assert set(deco["sample"]["e4"]) == {"batch_1", "batch_2"}


class VirtualClock:
    """A clock that only moves when told to: timings measured with it are exact, whatever the machine's load."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class CountingModel:
    """Velocity 0; records the batch of every call; costs a fixed time per call and per row (advancing `clock`
    when given, otherwise sleeping)."""

    def __init__(self, per_call=0.0, per_row=0.0, clock: VirtualClock | None = None):
        self.rows, self.per_call, self.per_row, self.clock = [], per_call, per_row, clock

    def __call__(self, x, t, y):
        self.rows.append(x.shape[0])
        cost = self.per_call + self.per_row * x.shape[0]
        if self.clock is not None:
            self.clock.now += cost
        else:
            time.sleep(cost)
        return torch.zeros_like(x)


@pytest.mark.parametrize("steps,cfg,interval", [(100, 3.2, (0.1, 1.0)), (50, 1.0, (0.0, 1.0)), (10, 2.0, (0.0, 1.0)),
                                                (20, 4.0, (0.3, 0.7))])
def test_guided_step_count_matches_the_sampler(steps, cfg, interval):
    from deco_bench.diffusion.sampler import euler_sample

    model = CountingModel()
    euler_sample(model, torch.zeros(3, 3, 4, 4), torch.zeros(3, dtype=torch.long), num_steps=steps, cfg_scale=cfg,
                 guidance_interval=interval, null_label=9)
    assert guided_step_count(SampleSetting("x", steps, cfg, interval)) == sum(r == 6 for r in model.rows)


def test_extrapolation_agrees_with_full_trajectory(monkeypatch):
    """On a clock that advances only by the model's cost, the timed full trajectory is exactly the sum of its steps'
    costs and the extrapolation from 4-step runs reproduces it (a wall clock on a loaded 2-core machine made the
    same comparison flaky)."""
    from deco_bench.bench import timing

    clock = VirtualClock()
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    cfg = types.SimpleNamespace(in_channels=3, num_classes=4)
    setting = SampleSetting("x", 20, 3.0, (0.25, 1.0))
    size = BenchSize(4, 1, 2)
    tel = Telemetry(CPU, 0.05)

    def run(k: int) -> float:
        bp = BenchParams(warmup=0, sample_repeats=1, sample_timed_steps=k)
        model = CountingModel(per_call=0.004, per_row=0.002, clock=clock)  # unguided step 8 ms, guided 12 ms
        out = bench_sample(model, cfg, setting, 2, size, bp, CPU, None, tel, flops_fwd=1, peak={"reason": "x"})
        return out["s_per_batch"]["median"]

    n_guided = guided_step_count(setting)
    assert 0 < n_guided < 20
    expected = n_guided * 0.012 + (20 - n_guided) * 0.008
    full, extrapolated = run(0), run(4)
    assert full == pytest.approx(expected, rel=1e-9)
    assert extrapolated == pytest.approx(full, rel=1e-9)
