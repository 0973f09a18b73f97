"""DCT energy analysis (paper Algorithm 3, Fig. 4): closed forms on hand-made blocks, and the capture of the DiT
output and velocity from the right place in each model."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
import torch
import torch.nn.functional as F

from deco_bench.studies.spectrum import (HIGH_FREQ_CUT, SpectrumAccumulator, capture_spectra,
                                          high_frequency_share, normalise_log_energy, zigzag_energy)


def cosine_block(u: int, v: int) -> torch.Tensor:
    """x[r, c] = cos(pi (2r+1) u / 16) cos(pi (2c+1) v / 16): one DCT-II basis function, unnormalised."""
    n = torch.arange(8, dtype=torch.float64)
    return torch.outer(torch.cos(math.pi * (2 * n + 1) * u / 16), torch.cos(math.pi * (2 * n + 1) * v / 16))


def test_pure_dc_block_puts_all_energy_at_index_zero():
    x = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)
    energy, n = zigzag_energy(x)
    assert n == 1
    # Orthonormal DCT: DC = sum / 8 = 64 * 0.5 / 8 = 4, energy 16.
    assert energy[0].item() == pytest.approx(16.0, abs=1e-12)
    torch.testing.assert_close(energy[1:], torch.zeros(63, dtype=torch.float64), atol=1e-24, rtol=0)
    curve = normalise_log_energy(energy, n)
    assert curve[0].item() == 1.0 and curve[1:].abs().max().item() < 1e-12
    assert high_frequency_share(energy) == pytest.approx(0.0, abs=1e-20)


# (u = vertical frequency, v = horizontal) -> zig-zag index, from the JPEG standard's order (ITU-T T.81 Fig. A.6):
# first row 0 1 5 6 14 15 27 28, first column 0 2 3 9 10 20 21 35, last entry 63.
@pytest.mark.parametrize("u, v, index", [(0, 1, 1), (1, 0, 2), (2, 0, 3), (1, 1, 4), (0, 2, 5), (0, 7, 28),
                                         (7, 0, 35), (3, 4, 31), (7, 7, 63)])
def test_single_cosine_lands_at_its_zigzag_index(u, v, index):
    energy, n = zigzag_energy(cosine_block(u, v)[None, None])
    # coefficient = 1 / (a_u a_v) with a_0^2 = 1/8, a_k^2 = 2/8
    expected = 1.0 / ((1 / 8 if u == 0 else 2 / 8) * (1 / 8 if v == 0 else 2 / 8))
    assert energy[index].item() == pytest.approx(expected, rel=1e-12)
    others = torch.cat([energy[:index], energy[index + 1:]])
    assert others.abs().max().item() < 1e-20
    curve = normalise_log_energy(energy, n)
    assert curve.argmax().item() == index and curve[index].item() == 1.0
    assert high_frequency_share(energy) == pytest.approx(1.0 if index >= HIGH_FREQ_CUT else 0.0, abs=1e-15)


def test_energy_counts_every_channel_window_and_image_and_keeps_parseval():
    x = torch.randn(2, 3, 16, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    energy, n = zigzag_energy(x)
    assert n == 2 * 3 * 2 * 3
    assert energy.sum().item() == pytest.approx(x.pow(2).sum().item(), rel=1e-12)  # orthonormal transform
    # sums over blocks: the energy of a batch is the sum of the energies of its halves
    e1, n1 = zigzag_energy(x[:1])
    e2, n2 = zigzag_energy(x[1:])
    torch.testing.assert_close(e1 + e2, energy, rtol=1e-12, atol=0)
    assert n1 + n2 == n


def test_normalisation_closed_form_and_dependence_on_block_count():
    e = math.e
    energy = torch.zeros(64, dtype=torch.float64)
    energy[0], energy[9] = 4 * (e ** 2 - 1), 4 * (e - 1)
    curve = normalise_log_energy(energy, 4)  # S = log(1 + E/4) = [2, 1 at 9, 0] -> [1, 0.5, 0]
    assert curve[0].item() == pytest.approx(1.0) and curve[9].item() == pytest.approx(0.5, rel=1e-12)
    assert curve.sum().item() == pytest.approx(1.5, rel=1e-12)
    # E / n, not E: the same energies over 1 block are a different curve (log is not scale-free)
    expected = math.log1p(4 * (e - 1)) / math.log1p(4 * (e ** 2 - 1))
    assert normalise_log_energy(energy, 1)[9].item() == pytest.approx(expected, rel=1e-12)


def test_high_frequency_share_closed_form():
    energy = torch.ones(64, dtype=torch.float64)
    assert high_frequency_share(energy) == pytest.approx(28 / 64)  # indices 36..63 have u + v >= 8
    assert high_frequency_share(energy, cut=60) == pytest.approx(4 / 64)


@pytest.mark.parametrize("call", [
    lambda: normalise_log_energy(torch.zeros(64), 1),
    lambda: normalise_log_energy(torch.ones(64), 0),
    lambda: normalise_log_energy(-torch.ones(64), 1),
    lambda: high_frequency_share(torch.ones(63)),
    lambda: high_frequency_share(torch.ones(64), cut=0),
    lambda: high_frequency_share(torch.ones(64), cut=64),
    lambda: zigzag_energy(torch.ones(3, 8, 8)),
    lambda: zigzag_energy(torch.ones(1, 1, 4, 8)),
    lambda: zigzag_energy(torch.full((1, 1, 8, 8), float("nan"))),
])
def test_bad_inputs_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_accumulator_keeps_steps_apart_and_sums_them():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    acc = SpectrumAccumulator(num_steps=2)
    acc.add("dit_out", 0, a, t=0.0)
    acc.add("dit_out", 1, b, t=0.5)
    total, n = acc.total("dit_out")
    torch.testing.assert_close(total, zigzag_energy(a)[0] + zigzag_energy(b)[0])
    assert n == (2 + 3) * 4 and acc.times == [0.0, 0.5]
    summary = acc.summary()["dit_out"]
    torch.testing.assert_close(torch.tensor(summary["per_step"]["curve"][1], dtype=torch.float64),
                               normalise_log_energy(*zigzag_energy(b)))
    assert summary["num_blocks"] == 20 and summary["shape"] == [4, 8, 8]
    with pytest.raises(ValueError):
        acc.add("dit_out", 2, a)  # no such step
    with pytest.raises(ValueError):
        acc.add("dit_out", 0, torch.randn(2, 5, 8, 8))  # another tensor's shape
    empty = SpectrumAccumulator(num_steps=2)
    empty.add("velocity", 0, a)
    with pytest.raises(ValueError, match="no data for steps"):
        empty.summary()


# ----------------------------------------------------------------------------------------------- capture

class RecordingAccumulator(SpectrumAccumulator):
    def __init__(self, num_steps):
        super().__init__(num_steps)
        self.seen: list[tuple[str, int, torch.Tensor]] = []

    def add(self, name, step, x, t=None):
        self.seen.append((name, step, x.clone()))
        super().add(name, step, x, t)


def _model(preset: str):
    from deco_bench.models import build_model, get_preset

    torch.manual_seed(0)
    model = build_model(get_preset(preset, num_classes=4)).eval()
    with torch.no_grad():  # zero-initialised output layers would make v = 0: give every weight some signal
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0.0, 0.05)
    return model


def _reference_run(model, num_images, num_steps, seed):
    """The trajectory as the sampler sees it: (x_t, t, y, v, features) per step, recorded independently."""
    from deco_bench.diffusion.sampler import class_balanced_labels, euler_sample, sample_noise

    idx = torch.arange(num_images)
    y = class_balanced_labels(idx, 4)
    steps = []
    euler_sample(model, sample_noise(seed, idx, (3, 32, 32)), y, num_steps=num_steps, null_label=4,
                 capture=lambda i, t, x, v, f: steps.append((x.clone(), t, v.clone(), f.clone())),
                 capture_features=True)
    return y, steps


@pytest.mark.parametrize("preset", ["deco-tiny", "baseline-tiny"])
def test_capture_takes_dit_output_and_velocity_from_the_right_place(preset):
    model = _model(preset)
    acc = RecordingAccumulator(num_steps=3)
    # batch 2 of 3 images: capture must not depend on batching, and must see every image at every step
    out = capture_spectra(model, num_images=3, num_steps=3, seed=5, num_classes=4, resolution=32, batch_size=2,
                          accumulator=acc)
    y, steps = _reference_run(model, 3, 3, seed=5)
    hidden, p = model.config.hidden_size, model.config.patch_size
    for name, shape in (("dit_out", (hidden, 32 // p, 32 // p)), ("velocity", (3, 32, 32))):
        got = {s: torch.cat([x for n, st, x in acc.seen if n == name and st == s]) for s in range(3)}
        assert out["tensors"][name]["shape"] == list(shape)
        assert out["tensors"][name]["num_blocks"] == 3 * 3 * shape[0] * (shape[1] // 8) * (shape[2] // 8)
        for s, (x_t, t, v, feats) in enumerate(steps):
            torch.testing.assert_close(got[s], feats if name == "dit_out" else v, rtol=1e-5, atol=1e-6)
    x_t, t, v, feats = steps[1]
    t_rows = torch.full((3,), t)
    with torch.no_grad():
        # the DiT part of forward, observed: the last block's tokens, and t_emb and c as forward builds them
        seen = []
        hook = model.blocks[-1].register_forward_hook(lambda m, i, o: seen.append(o))
        model(x_t, t_rows, y)
        hook.remove()
        tokens = seen[0]  # B L C
        t_emb = model.t_embedder(t_rows)[:, None]  # B 1 C
        c = F.silu(t_emb + model.y_embedder(y)[:, None])  # B 1 C
        if preset.startswith("deco"):
            # DeCo: the decoder's condition s = SiLU(t_emb + tokens) (official forward_sx), and v = decoder(x_t, s)
            s = F.silu(t_emb + tokens)
            torch.testing.assert_close(feats, model.tokens_to_map(s, 32, 32), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(model.decoder(x_t, s), v, rtol=1e-5, atol=1e-6)
        else:
            # Baseline: the last block's hidden state, before the final layer; the final layer maps it to v
            from deco_bench.models.layers import unpatchify

            torch.testing.assert_close(feats, model.tokens_to_map(tokens, 32, 32), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(unpatchify(model.final_layer(tokens, c), p, 3, 32, 32), v, rtol=1e-5,
                                       atol=1e-6)
    # the summary's numbers are those of the recorded tensors
    e_vel = sum(zigzag_energy(v)[0] for _, _, v, _ in steps)
    torch.testing.assert_close(torch.tensor(out["tensors"]["velocity"]["energy_per_block"], dtype=torch.float64),
                               e_vel / out["tensors"]["velocity"]["num_blocks"], rtol=1e-6, atol=0)
    assert out["times"] == pytest.approx([0.0, 1 / 3, 2 / 3])


def test_fig4_svg_draws_one_line_per_curve_in_the_unit_box():
    from deco_bench.stages.spectrum import fig4_svg

    curve = [1.0] + [0.25] * 63
    svg = fig4_svg({("deco", "dit_out"): curve, ("baseline", "velocity"): curve}, title="t", colors={})
    root = ET.fromstring(svg)
    lines = [e for e in root.iter() if e.tag.endswith("polyline")]
    assert len(lines) == 2
    points = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
    assert len(points) == 64 and points[0][1] < points[1][1]  # DC drawn higher than the rest
    assert points[1][1] == points[63][1] and points[0][0] < points[63][0]
    with pytest.raises(ValueError):
        fig4_svg({("deco", "dit_out"): curve[:10]}, title="t", colors={})


def test_spectrum_stage_writes_curves_ratios_and_plot(tmp_path):
    import dataclasses
    import json
    from pathlib import Path

    import yaml

    from deco_bench.io import atomic_torch_save
    from deco_bench.profiles import resolve
    from deco_bench.stages.spectrum import run

    raw = resolve("default", Path(__file__).resolve().parents[2] / "experiments")
    raw["models"] = {"deco": {"preset": "deco-tiny"}, "baseline": {"preset": "baseline-tiny", "freqfm_weight": 0.0}}
    raw["spectrum"] = {**raw["spectrum"], "num_images": 2, "num_steps": 2, "batch_size": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    weights = {}
    for name in ("deco", "baseline"):
        model = _model(f"{name}-tiny")
        weights[name] = tmp_path / f"{name}.pt"
        atomic_torch_save({"step": raw["train"]["steps"], "ema": model.state_dict(),  # the step the stage expects
                           "meta": {"model_config": dataclasses.asdict(model.config)}}, weights[name])
    run(str(tmp_path / "params.yaml"), weights, tmp_path / "out")
    result = json.loads((tmp_path / "out" / "spectrum.json").read_text())
    for tensor in ("dit_out", "velocity"):
        deco, base = result["models"]["deco"][tensor], result["models"]["baseline"][tensor]
        assert max(deco["curve"]) == 1.0 and len(deco["per_step"]["curve"]) == 2
        ratio = result["ratio_deco_over_baseline"][tensor]["high_share"]
        assert ratio == pytest.approx(deco["high_share"] / base["high_share"])
    root = ET.fromstring((tmp_path / "out" / "fig4.svg").read_text())
    assert len([e for e in root.iter() if e.tag.endswith("polyline")]) == 4
