"""FM, FreqFM and REPA losses: parity with the official trainer and closed forms."""

from __future__ import annotations

import pytest
import torch

from deco_bench.diffusion.losses import (LossWeights, RepaProjector, deco_loss, fm_loss, freq_fm_loss,
                                         jpeg_frequency_weights, repa_loss)


@pytest.mark.parametrize("quality", [10, 50, 85, 100])
@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_freq_weights_match_official(goldens, quality, gamma):
    torch.testing.assert_close(jpeg_frequency_weights(quality, gamma), goldens[f"weights_q{quality}_g{gamma}"],
                               atol=1e-6, rtol=1e-6)


def test_freq_weights_spot_values():
    w = jpeg_frequency_weights(85)
    assert w[0, 0, 0].item() == pytest.approx(2.0130, abs=5e-5)  # docs/paper.md §5.1 [COMP]
    assert w[0].min().item() == pytest.approx(0.2796, abs=5e-5)
    assert w[0].max().item() == pytest.approx(3.3551, abs=5e-5)
    assert w[1].min().item() == pytest.approx(0.6457, abs=5e-5)
    assert w[1].max().item() == pytest.approx(3.8740, abs=5e-5)
    assert torch.equal(w[1], w[2])  # Cb and Cr share the chrominance table
    torch.testing.assert_close(w.mean(dim=(1, 2)), torch.ones(3))
    assert torch.equal(jpeg_frequency_weights(100), torch.ones(3, 8, 8))  # Table 4f: all components equal


def test_freq_weights_are_a_copy():
    jpeg_frequency_weights(85).zero_()
    assert jpeg_frequency_weights(85)[0, 0, 0].item() == pytest.approx(2.0130, abs=5e-5)


@pytest.mark.parametrize("tag", ["2x3x16x16", "2x3x20x12"])
@pytest.mark.parametrize("quality", [50, 85, 100])
def test_freq_fm_loss_matches_official(goldens, tag, quality):
    pred, target = goldens[f"loss_in_{tag}"]
    torch.testing.assert_close(freq_fm_loss(pred, target, quality=quality), goldens[f"loss_{tag}_q{quality}"],
                               atol=0, rtol=2e-5)


def test_freq_fm_at_quality_100_equals_pixel_mse_of_ycbcr():
    # All weights 1 + orthonormal DCT (Parseval) => FreqFM = MSE of the YCbCr difference.
    from deco_bench.spectral.dct import rgb_to_ycbcr
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 3, 16, 16, generator=g), torch.randn(2, 3, 16, 16, generator=g)
    expected = (rgb_to_ycbcr(a) - rgb_to_ycbcr(b)).pow(2).mean()
    torch.testing.assert_close(freq_fm_loss(a, b, quality=100), expected, rtol=1e-5, atol=0)
    assert freq_fm_loss(a, a).item() == 0.0


def test_fm_loss_closed_form():
    assert fm_loss(torch.full((2, 3), 3.0), torch.full((2, 3), 1.0)).item() == 4.0
    with pytest.raises(ValueError):
        fm_loss(torch.zeros(2, 3), torch.zeros(3, 2))


def test_repa_loss_closed_form():
    g = torch.Generator().manual_seed(2)
    tokens = torch.randn(2, 4, 8, generator=g)
    assert repa_loss(tokens, tokens).item() == pytest.approx(0.0, abs=1e-6)
    assert repa_loss(-tokens, tokens).item() == pytest.approx(2.0, abs=1e-6)
    assert repa_loss(3.0 * tokens, tokens).item() == pytest.approx(0.0, abs=1e-6)  # scale invariant
    e0, e1 = torch.eye(8)[0], torch.eye(8)[1]
    half = torch.stack([e0, e0]).expand(2, 2, 8), torch.stack([e0, e1]).expand(2, 2, 8)
    assert repa_loss(*half).item() == pytest.approx(0.5)  # one aligned token (0), one orthogonal (1)


def test_repa_loss_truncates_extra_src_tokens_like_official():
    g = torch.Generator().manual_seed(3)
    dst = torch.randn(2, 4, 8, generator=g)
    src = torch.cat([dst, torch.randn(2, 3, 8, generator=g)], dim=1)  # 3 extra tokens at the end are ignored
    assert repa_loss(src, dst).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        repa_loss(dst[:, :2], dst)
    with pytest.raises(ValueError):
        repa_loss(torch.zeros(2, 4, 7), dst)


def test_repa_projector_layout():
    proj = RepaProjector(16, 32, 8)
    kinds = [type(m).__name__ for m in proj]
    assert kinds == ["Linear", "SiLU", "Linear", "SiLU", "Linear"]
    assert (proj[0].in_features, proj[2].in_features, proj[4].out_features) == (16, 32, 8)


def test_deco_loss_combines_components():
    g = torch.Generator().manual_seed(4)
    pred, target = torch.randn(2, 3, 16, 16, generator=g), torch.randn(2, 3, 16, 16, generator=g)
    src, dst = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    out = deco_loss(pred, target, src, dst, LossWeights(freqfm=1.0, repa=0.5))
    expected = fm_loss(pred, target) + freq_fm_loss(pred, target) + 0.5 * repa_loss(src, dst)
    torch.testing.assert_close(out["loss"], expected)
    assert set(out) == {"fm", "freqfm", "repa", "loss"}
    baseline = deco_loss(pred, target, src, dst, LossWeights(freqfm=0.0))  # official training_repa.py
    assert "freqfm" not in baseline
    torch.testing.assert_close(baseline["loss"], fm_loss(pred, target) + 0.5 * repa_loss(src, dst))
    no_repa = deco_loss(pred, target, weights=LossWeights(freqfm=2.0, freq_quality=50))
    torch.testing.assert_close(no_repa["loss"], fm_loss(pred, target) + 2.0 * freq_fm_loss(pred, target, 50))
    with pytest.raises(ValueError):
        deco_loss(pred, target, src, None)
    with pytest.raises(ValueError):
        LossWeights(freqfm=-1.0)
    with pytest.raises(ValueError):
        LossWeights(freq_quality=0)


def test_deco_loss_gradients_flow_to_prediction():
    pred = torch.randn(1, 3, 8, 8, requires_grad=True)
    deco_loss(pred, torch.zeros(1, 3, 8, 8))["loss"].backward()
    assert pred.grad is not None and pred.grad.abs().sum().item() > 0
