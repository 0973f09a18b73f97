"""FLOP counts against hand counts, MFU and documented peaks, timing statistics, per-phase memory peaks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deco_bench.bench import flops
from deco_bench.bench.memory import NOT_CUDA, PeakMemory
from deco_bench.bench.timing import spread, time_fn


def test_flop_counter_matches_hand_count_for_linear_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(3, 8)
    # forward: 2 * B * in * out per layer = 2*3*8*16 + 2*3*16*4
    assert flops.count_flops(lambda: model(x)) == 768 + 384
    # backward: weight grads of both layers (768 + 384) and the input grad of layer 2 only (384): x needs no grad
    assert flops.count_flops(lambda: model(x).sum().backward()) == (768 + 384) + (768 + 384 + 384)


def test_train_flops_of_a_model_include_backward():
    from deco_bench.models import get_preset

    cfg = get_preset("baseline-tiny")
    fwd, train = flops.forward_flops_per_image(cfg, 16), flops.train_flops_per_image(cfg, 16)
    # backward of a matmul-dominated net costs 2x forward, less the input-gradient of the first layer
    assert 2.5 * fwd < train <= 3 * fwd


def test_mfu_and_documented_peaks():
    assert flops.mfu(1e12, 98.9, 989e12) == pytest.approx(0.1)
    assert flops.documented_peak("NVIDIA H200")[0] == 989e12
    assert flops.documented_peak("NVIDIA H100 PCIe")[0] == 756e12  # not the SXM figure
    assert flops.documented_peak("NVIDIA H100 80GB HBM3")[0] == 989e12
    value, reason = flops.documented_peak(None)
    assert value is None and "not a CUDA device" in reason
    assert flops.documented_peak("Some GPU")[0] is None
    with pytest.raises(ValueError):
        flops.mfu(1.0, 1.0, 0.0)


def test_spread_closed_form():
    s = spread([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (s["median"], s["q1"], s["q3"], s["min"], s["max"], s["n"]) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    assert spread([7.0])["q1"] == 7.0
    with pytest.raises(ValueError):
        spread([])


def test_time_fn_warms_up_before_measuring():
    calls = []
    stats = time_fn(lambda: calls.append("run"), warmup=2, repeats=3, device=torch.device("cpu"),
                    before_measure=lambda: calls.append("start"))
    assert calls == ["run", "run", "start", "run", "run", "run"]
    assert stats.repeats == 3 and stats.warmup == 2 and stats.timer == "perf_counter"
    assert all(t >= 0 for t in stats.times_s)
    with pytest.raises(ValueError):
        time_fn(lambda: None, warmup=0, repeats=0, device=torch.device("cpu"))


def test_host_peak_is_reset_per_phase():
    import mmap

    big = 256 * 2**20
    with PeakMemory(torch.device("cpu")) as first:
        # fresh anonymous pages, each touched so it is resident: unlike a tensor, whose memory the allocator may
        # take from pages an earlier test left resident, this always adds `big` to the RSS, whatever ran before
        buf = mmap.mmap(-1, big)
        for offset in range(0, big, mmap.PAGESIZE):
            buf[offset] = 1
        buf.close()
    with PeakMemory(torch.device("cpu")) as second:
        pass
    a, b = first.result["host_rss_peak_bytes"], second.result["host_rss_peak_bytes"]
    assert a - b > 0.8 * big, (a, b, first.result["host_rss_method"])
    assert second.result["cuda_peak_allocated_bytes"] is None and second.result["cuda_reason"] == NOT_CUDA
