"""Euler / Heun samplers: trajectory parity with the official samplers, the skipped unconditional half, and
per-sample determinism."""

from __future__ import annotations

import pytest
import torch

from deco_bench.diffusion.sampler import (class_balanced_labels, euler_sample, heun_sample, sample_noise,
                                          sample_seed, sampling_times)

# Must match SAMPLER_CASES in tests/fixtures/diffusion/make_goldens.py
CASES = [
    ("euler_nocfg", "euler", 5, 1.0, (0.0, 1.0), 1.0),
    ("euler_cfg_interval", "euler", 10, 3.0, (0.1, 1.0), 1.0),
    ("euler_cfg_shift", "euler", 6, 2.0, (0.0, 1.0), 3.0),
    ("euler_cfg_narrow", "euler", 8, 4.0, (0.3, 0.7), 1.0),
    ("heun_cfg_interval_shift", "heun", 6, 2.5, (0.1, 1.0), 2.0),
    ("heun_nocfg", "heun", 4, 1.0, (0.0, 1.0), 1.0),
]
SAMPLERS = {"euler": euler_sample, "heun": heun_sample}


def _always_both_halves(model, null_label):
    """The official behaviour: every call evaluates [uncond; cond]; guidance w = 1 reduces to u + (c - u)."""
    class Both(torch.nn.Module):
        def forward(self, x, t, y):
            if x.shape[0] % 2 == 0 and torch.all(y[: x.shape[0] // 2] == null_label):
                return model(x, t, y)  # already a CFG batch
            v = model(torch.cat([x, x]), t.repeat(2), torch.cat([torch.full_like(y, null_label), y]))
            u, c = v.chunk(2)
            return u + 1.0 * (c - u)
    return Both()


@pytest.mark.parametrize("name,kind,steps,cfg,interval,shift", CASES)
def test_trajectory_matches_official(goldens, ref, name, kind, steps, cfg, interval, shift):
    net = ref.TinyVelocityNet()
    states = []
    x = SAMPLERS[kind](net, goldens["noise"], goldens["labels"], num_steps=steps, cfg_scale=cfg,
                       guidance_interval=interval, timeshift=shift, null_label=ref.NULL_LABEL,
                       capture=lambda i, t, x_t, v: states.append(x_t))
    torch.testing.assert_close(torch.stack([*states, x]), goldens[name], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sampling_times(steps, shift), goldens[f"{name}_times"], atol=0, rtol=0)


@pytest.mark.parametrize("name,kind,steps,cfg,interval,shift", CASES)
def test_skipping_unconditional_half_changes_nothing_but_cost(goldens, ref, name, kind, steps, cfg, interval, shift):
    net = ref.TinyVelocityNet()
    kwargs = dict(num_steps=steps, cfg_scale=cfg, guidance_interval=interval, timeshift=shift,
                  null_label=ref.NULL_LABEL)
    fast = SAMPLERS[kind](net, goldens["noise"], goldens["labels"], **kwargs)
    rows_fast = sum(net.calls)
    net.calls.clear()
    full = SAMPLERS[kind](_always_both_halves(net, ref.NULL_LABEL), goldens["noise"], goldens["labels"], **kwargs)
    rows_full = sum(net.calls)
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=0)
    batch = goldens["noise"].shape[0]
    times = sampling_times(steps, shift)
    evals = [1] * steps if kind == "euler" else [2] * (steps - 1) + [1]  # Heun: last step is plain Euler
    guided = [cfg != 1.0 and bool((t > interval[0]) & (t <= interval[1])) for t in times[:-1]]
    assert rows_full == 2 * batch * sum(evals)
    assert rows_fast == batch * sum(e * (2 if g else 1) for e, g in zip(evals, guided))
    assert rows_fast < rows_full


def test_no_cfg_runs_only_conditional_rows(ref):
    net = ref.TinyVelocityNet()
    euler_sample(net, torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2]), num_steps=4, null_label=ref.NULL_LABEL)
    assert net.calls == [3, 3, 3, 3]


def test_same_samples_at_batch_size_1_and_8(ref):
    net = ref.TinyVelocityNet()
    indices = list(range(8))
    noise = sample_noise(seed=42, indices=indices, shape=(3, 8, 8))
    labels = class_balanced_labels(indices, ref.NUM_CLASSES)
    kwargs = dict(num_steps=6, cfg_scale=3.0, guidance_interval=(0.1, 1.0), null_label=ref.NULL_LABEL)
    together = euler_sample(net, noise, labels, **kwargs)
    one_by_one = torch.cat([euler_sample(net, sample_noise(42, [i], (3, 8, 8)), labels[i:i + 1], **kwargs)
                            for i in indices])
    torch.testing.assert_close(together, one_by_one, atol=1e-6, rtol=0)
    # and noise of a sample does not depend on which batch it is drawn in
    assert torch.equal(sample_noise(42, [5, 6], (3, 8, 8))[0], noise[5])


def test_sample_noise_is_keyed_by_seed_and_index():
    a = sample_noise(0, [0, 1], (4,))
    assert torch.equal(a, sample_noise(0, torch.tensor([0, 1]), (4,)))
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, sample_noise(1, [0, 1], (4,)))
    assert sample_seed(0, 1_000_003) != sample_seed(1, 0)  # no linear seed*K + i collisions
    assert sample_noise(0, [3], (4,), dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        sample_noise(0, [], (4,))
    with pytest.raises(ValueError):
        sample_noise(0, [-1], (4,))


def test_class_balanced_labels():
    labels = class_balanced_labels(range(50_000), 1000)
    assert torch.equal(torch.bincount(labels), torch.full((1000,), 50))  # 50 per class (docs/paper.md §6)
    assert labels[1001].item() == 1
    with pytest.raises(ValueError):
        class_balanced_labels([0], 0)


def test_capture_sees_each_step_and_features(ref):
    net = ref.TinyVelocityNet()
    noise, labels = torch.randn(2, 3, 8, 8), torch.tensor([1, 2])
    seen = []
    x = euler_sample(net, noise, labels, num_steps=3, cfg_scale=2.0, null_label=ref.NULL_LABEL,
                     capture=lambda i, t, x_t, v, f: seen.append((i, t, x_t, v, f)), capture_features=True)
    assert [s[0] for s in seen] == [0, 1, 2]
    assert [s[1] for s in seen] == pytest.approx([0.0, 1 / 3, 2 / 3])
    torch.testing.assert_close(seen[0][2], noise)
    # the captured (guided) velocity reproduces the result; features are the conditional rows' DiT features
    recon = noise + sum(s[3] * dt for s, dt in zip(seen, [1 / 3] * 3))
    torch.testing.assert_close(recon, x, atol=1e-5, rtol=0)
    expected_feats = net.forward_features(seen[1][2], torch.full((2,), 1 / 3), labels)[1]
    torch.testing.assert_close(seen[1][4], expected_feats)
    with pytest.raises(ValueError):
        euler_sample(lambda x, t, y: x, noise, labels, num_steps=2, null_label=0, capture=print,
                     capture_features=True)


def test_bad_arguments(ref):
    net = ref.TinyVelocityNet()
    noise = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError):
        euler_sample(net, noise, torch.tensor([0]), num_steps=2, null_label=ref.NULL_LABEL)
    with pytest.raises(ValueError):
        euler_sample(net, noise, torch.tensor([0, 1]), num_steps=0, null_label=ref.NULL_LABEL)
    with pytest.raises(ValueError):
        heun_sample(net, noise, torch.tensor([0, 1]), num_steps=2, guidance_interval=(0.5, 0.2),
                    null_label=ref.NULL_LABEL)


def test_output_dtype_follows_noise(ref):
    net = ref.TinyVelocityNet().double()
    x = euler_sample(net, torch.randn(1, 3, 8, 8, dtype=torch.float64), torch.tensor([1]), num_steps=2,
                     null_label=ref.NULL_LABEL)
    assert x.dtype == torch.float64
