"""The CUDA-graph sampling path (diffusion/graphs.py): without CUDA it falls back to the same step functions run
eagerly, and the result is exactly the sampler's, guided steps and skipped unconditional halves included. The
graph capture itself runs on a GPU (scripts/gpu_bench.sh, and the CUDA test below when one is present)."""

from __future__ import annotations

import pytest
import torch

from deco_bench.diffusion.graphs import StepGraphs, bucket
from deco_bench.diffusion.sampler import euler_sample, heun_sample
from deco_bench.models import build_model, get_preset

SAMPLERS = {"euler": euler_sample, "heun": heun_sample}
# (solver, steps, cfg, interval, timeshift): guided and unguided steps in one run; no guidance at all
CASES = [("euler", 10, 3.0, (0.1, 1.0), 1.0), ("heun", 6, 2.5, (0.1, 1.0), 2.0), ("euler", 5, 1.0, (0.0, 1.0), 1.0)]


@pytest.mark.parametrize("solver,steps,cfg,interval,shift", CASES)
def test_cpu_fallback_equals_the_sampler_exactly(ref, goldens, solver, steps, cfg, interval, shift):
    net = ref.TinyVelocityNet()
    kwargs = dict(num_steps=steps, cfg_scale=cfg, guidance_interval=interval, timeshift=shift,
                  null_label=ref.NULL_LABEL)
    expected = SAMPLERS[solver](net, goldens["noise"], goldens["labels"], **kwargs)
    rows_expected = list(net.calls)
    net.calls.clear()
    graphs = StepGraphs(net)
    got = graphs.sample(solver, goldens["noise"], goldens["labels"], **kwargs)
    assert torch.equal(got, expected)
    assert net.calls == rows_expected  # the same evaluations: unconditional rows only where guidance is active
    assert graphs.captured == 0 and graphs.fallback_reason == "no CUDA graphs on cpu: the steps run eagerly"


def test_fallback_with_a_real_model_under_its_sampler():
    torch.manual_seed(0)
    net = build_model(get_preset("deco-tiny", num_classes=4)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    noise, labels = torch.randn(3, 3, 16, 16), torch.tensor([0, 3, 1])
    kwargs = dict(num_steps=4, cfg_scale=3.2, guidance_interval=(0.1, 1.0), null_label=4)
    assert torch.equal(StepGraphs(net).sample("euler", noise, labels, **kwargs), euler_sample(net, noise, labels, **kwargs))


def test_buckets_and_bad_solver(ref):
    assert [bucket(b) for b in (1, 2, 3, 5, 64, 65, 300)] == [1, 2, 4, 8, 64, 128, 300]
    with pytest.raises(ValueError, match="solver must be 'euler' or 'heun', got 'dpm'"):
        StepGraphs(ref.TinyVelocityNet()).sample("dpm", torch.zeros(1, 3, 4, 4), torch.zeros(1, dtype=torch.long),
                                                num_steps=2, null_label=ref.NULL_LABEL)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graph capture needs a CUDA device")
def test_cuda_graphs_replay_the_eager_steps(ref, goldens):
    net = ref.TinyVelocityNet().cuda()
    noise, labels = goldens["noise"].cuda()[:3], goldens["labels"].cuda()[:3]  # 3 rows: padded to the bucket of 4
    kwargs = dict(num_steps=8, cfg_scale=3.0, guidance_interval=(0.1, 1.0), null_label=ref.NULL_LABEL)
    graphs = StepGraphs(net)
    got = graphs.sample("euler", noise, labels, **kwargs)
    again = graphs.sample("euler", noise, labels, **kwargs)  # replayed, nothing captured again
    assert graphs.fallback_reason is None and graphs.captured == 2  # the guided and the unguided step
    torch.testing.assert_close(got, euler_sample(net, noise, labels, **kwargs), rtol=1e-5, atol=1e-5)
    assert torch.equal(got, again)
