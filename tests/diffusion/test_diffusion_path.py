"""The flow-path convention (t = 0 noise, t = 1 data), time sampling and CFG label dropout."""

from __future__ import annotations

import math

import pytest
import torch

from deco_bench.diffusion.path import drop_labels, interpolate, sample_t, time_shift, velocity


def test_path_endpoints_and_velocity():
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    assert torch.equal(interpolate(x, eps, 1.0), x)  # t = 1 is data (official LinearScheduler)
    assert torch.equal(interpolate(x, eps, 0.0), eps)  # t = 0 is noise
    t = torch.tensor([0.0, 0.25, 1.0])
    x_t = interpolate(x, eps, t)
    torch.testing.assert_close(x_t[1], 0.25 * x[1] + 0.75 * eps[1])
    # v = d x_t / dt: a finite difference along the path equals velocity()
    h = 1e-3
    fd = (interpolate(x, eps, 0.5 + h) - interpolate(x, eps, 0.5 - h)) / (2 * h)
    torch.testing.assert_close(fd, velocity(x, eps), atol=1e-3, rtol=1e-3)
    # one Euler step of size (1 - t) with the true velocity lands exactly on the data
    torch.testing.assert_close(x_t + (1 - t).view(-1, 1, 1, 1) * velocity(x, eps), x)
    with pytest.raises(ValueError):
        interpolate(x, eps, torch.zeros(2))
    with pytest.raises(ValueError):
        velocity(x, eps[:2])


def test_time_shift():
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(time_shift(t, 1.0), t)
    torch.testing.assert_close(time_shift(t, 3.0), torch.tensor([0.0, 0.25, 1.0]))  # 0.5 / (0.5 + 1.5)
    assert time_shift(0.5, 3.0) < 0.5  # shift > 1 keeps t nearer the noise end
    with pytest.raises(ValueError):
        time_shift(t, 0.0)


def test_sample_t_logit_normal_statistics():
    t = sample_t(200_000, generator=torch.Generator().manual_seed(0))
    logit = torch.log(t / (1 - t))
    assert t.dtype == torch.float32 and 0 < t.min() and t.max() < 1
    assert abs(logit.mean().item()) < 0.01 and abs(logit.std().item() - 1) < 0.01  # logit(t) ~ N(0, 1)
    assert abs(t.median().item() - 0.5) < 0.005
    # shifted: the median moves to time_shift(0.5, s)
    ts = sample_t(200_000, generator=torch.Generator().manual_seed(0), shift=3.0)
    assert abs(ts.median().item() - 0.25) < 0.005
    u = sample_t(200_000, generator=torch.Generator().manual_seed(0), lognorm=False)
    assert abs(u.mean().item() - 0.5) < 0.005 and abs(u.var().item() - 1 / 12) < 0.001


def test_sample_t_is_seeded():
    a = sample_t(8, generator=torch.Generator().manual_seed(5))
    b = sample_t(8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, sample_t(8, generator=torch.Generator().manual_seed(6)))


def test_drop_labels_rate_and_null_class():
    y = torch.arange(100_000) % 1000
    dropped = drop_labels(y, 0.1, null_label=1000, generator=torch.Generator().manual_seed(0))
    changed = dropped != y
    assert abs(changed.float().mean().item() - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 100_000)
    assert torch.all(dropped[changed] == 1000) and torch.equal(dropped[~changed], y[~changed])
    assert torch.equal(drop_labels(y, 0.0, 1000), y)
    assert torch.all(drop_labels(y, 1.0, 1000) == 1000)
    with pytest.raises(ValueError):
        drop_labels(y, 1.5, 1000)
