"""Parameter counts, FLOPs, initialisation, ablation variants and bad inputs of the model presets."""

import dataclasses

import pytest
import torch

from deco_bench.models import (ModelConfig, build_model, count_parameters, decoder_parameters, get_preset,
                               matched_decoder_hidden, model_flops_per_image)

# Exact counts of the official classes built from configs_c2i/*.yaml on the meta device (docs/paper.md §3.1:
# 426.938M, 682.283M, 459.172M, 676.360M).
OFFICIAL_PARAMS = {"deco-l": 426_938_019, "deco-xl": 682_282_851, "baseline-l": 459_171_584,
                   "baseline-xl": 676_360_128}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_paper_presets_have_official_parameter_counts(name):
    with torch.device("meta"):
        model = build_model(get_preset(name))
    assert count_parameters(model) == OFFICIAL_PARAMS[name]


def test_decoder_parameter_count_matches_facts():
    # docs/paper.md §2.2: dec_net + x_embedder have 8.416M (L) and 9.465M (XL) parameters ("8.5M" in the paper).
    assert decoder_parameters(get_preset("deco-l")) == 8_416_163
    assert round(decoder_parameters(get_preset("deco-xl")) / 1e6, 3) == 9.465


def test_small_presets_parameter_counts():
    # deco-s matches the official architecture built at this size (2,872,259 parameters, counted by running the
    # official model classes with the same widths).
    assert count_parameters(build_model(get_preset("deco-s"))) == 2_872_259
    assert count_parameters(build_model(get_preset("baseline-s"))) == 4_173_552


def test_flops_match_official_counts():
    # The official code under FlopCounterMode at 256 px, attention products included: DeCo-XL 244.9, Baseline-XL
    # 238.1 GFLOPs (docs/paper.md §3.1).
    assert round(model_flops_per_image(get_preset("deco-xl"), 256) / 1e9, 1) == 244.9
    assert round(model_flops_per_image(get_preset("baseline-xl"), 256) / 1e9, 1) == 238.1


def randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("name", ["deco-s", "baseline-s"])
def test_small_presets_zero_at_init_and_batch_invariant(name):
    torch.manual_seed(0)
    cfg = get_preset(name)
    model = build_model(cfg).eval()
    x, t, y = torch.randn(3, 3, 32, 32), torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0, 4, cfg.num_classes])
    with torch.no_grad():
        v, features = model.forward_features(x, t, y)
    assert torch.count_nonzero(v) == 0  # zero-initialised output layers (parity with official init)
    assert features.abs().sum() > 0
    randomise(model)
    with torch.no_grad():
        batched = model(x, t, y)
        single = torch.cat([model(x[i:i + 1], t[i:i + 1], y[i:i + 1]) for i in range(3)])
    assert batched.abs().max() > 1e-3
    # Images do not interact: batching changes only float rounding (relative to the output scale).
    assert ((batched - single).abs().max() / batched.abs().max()).item() < 1e-5


def ablation_cfg(**kw):
    # 32 px images, one 16x16 DiT patch per quarter: small enough for every decoder patch size in Table 4(c).
    return ModelConfig("deco", hidden_size=32, num_heads=2, depth=1, patch_size=16, num_classes=10, **kw)


VARIANTS = [dict(decoder_hidden=d) for d in (16, 32, 64)] + [dict(decoder_depth=n) for n in (1, 3, 6)] + \
           [dict(decoder_patch_size=q) for q in (1, 4, 16)] + [dict(interaction=i) for i in ("adaln", "add")]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_ablation_variants_parameter_count_and_locality(variant):
    cfg = ablation_cfg(**variant)
    model = build_model(cfg)
    baseline = build_model(dataclasses.replace(cfg, kind="baseline"))
    # Same DiT trunk as the baseline; only the output head differs.
    assert count_parameters(model) - count_parameters(model.decoder) == \
        count_parameters(baseline) - count_parameters(baseline.final_layer)
    assert count_parameters(model.decoder) == decoder_parameters(cfg)
    # The decoder is local: a pixel change moves the output only inside its own q x q decoder token.
    decoder = randomise(model.decoder.eval(), seed=1)
    x, s = torch.randn(1, 3, 32, 32), torch.randn(1, 4, 32)
    x2 = x.clone()
    x2[0, 1, 21, 6] += 1.0
    with torch.no_grad():
        changed = (decoder(x2, s) - decoder(x, s)).abs().amax(dim=1)[0] > 0  # 32 x 32
    q = cfg.decoder_patch_size
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[21 // q * q:(21 // q + 1) * q, 6 // q * q:(6 // q + 1) * q] = True
    assert torch.equal(changed, expected)


def test_interaction_adaln_vs_add_semantics():
    torch.manual_seed(0)
    x, s, s_other = torch.randn(1, 3, 32, 32), torch.randn(1, 4, 32), torch.randn(1, 4, 32)
    for interaction in ("adaln", "add"):
        dec = randomise(build_model(ablation_cfg(interaction=interaction)).decoder.eval(), seed=2)
        with torch.no_grad():
            for block in dec.blocks:  # blocks become the identity
                block.fc2.weight.zero_()
                block.fc2.bias.zero_()
            diff = (dec(x, s) - dec(x, s_other)).abs().max()
        if interaction == "adaln":
            # AdaLN: the condition enters only through the blocks, so it no longer matters.
            assert diff == 0
        else:
            # Add: the upsampled DiT features are added to the hidden state once, before the blocks.
            assert diff > 1e-3
            with torch.no_grad():
                z = dec.input_proj(dec.pixel_embed(torch.cat([
                    x.reshape(1, 3, 2, 16, 2, 16).permute(0, 2, 4, 3, 5, 1).reshape(4, 256, 3),
                    dec.position_features(x.device, x.dtype).expand(4, -1, -1)], -1)))
                z = z + dec.cond_embed(s[0]).reshape(4, 256, -1)
                out = dec.final_linear(dec.final_norm(z))  # 4 patches, 256 pixels, 3
                expected = out.reshape(1, 2, 2, 16, 16, 3).permute(0, 5, 1, 3, 2, 4).reshape(1, 3, 32, 32)
                assert torch.allclose(dec(x, s), expected, atol=1e-6)


def test_add_interaction_drops_adaln_parameters():
    adaln, add = ablation_cfg(), ablation_cfg(interaction="add")
    d, n = adaln.decoder_hidden, adaln.decoder_depth
    assert decoder_parameters(adaln) - decoder_parameters(add) == n * (3 * d * d + 3 * d)


def test_matched_decoder_hidden_keeps_parameter_count():
    # Table 4(c) "similar parameter counts": within 1% of the per-pixel decoder of width 32 at DeCo-L size.
    ref = decoder_parameters(get_preset("deco-l"))
    for q, width in ((4, 373), (16, 647)):
        cfg = get_preset("deco-l", decoder_patch_size=q)
        assert matched_decoder_hidden(cfg) == width
        assert abs(decoder_parameters(dataclasses.replace(cfg, decoder_hidden=width)) - ref) / ref < 0.01
    assert matched_decoder_hidden(get_preset("deco-l")) == 32


def test_get_preset_errors_name_the_problem():
    with pytest.raises(ValueError, match="deco-xxl.*valid presets: .*deco-xl"):
        get_preset("deco-xxl")
    with pytest.raises(ValueError, match="hidden.*valid fields: .*hidden_size"):
        get_preset("deco-s", hidden=3)
    assert get_preset("deco-s", decoder_depth=5).decoder_depth == 5


@pytest.mark.parametrize("kw, field", [
    (dict(kind="unet"), "kind"), (dict(interaction="concat"), "interaction"), (dict(num_heads=5), "num_heads"),
    (dict(hidden_size=24, num_heads=4), "head dim"), (dict(decoder_patch_size=3), "decoder_patch_size"),
    (dict(depth=0), "depth"), (dict(decoder_hidden=2.5), "decoder_hidden")])
def test_invalid_config_is_rejected(kw, field):
    base = dict(kind="deco", hidden_size=64, num_heads=4, depth=2)
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("shape, t_len", [((2, 1, 32, 32), 2), ((2, 3, 30, 32), 2), ((2, 3, 32, 32), 3)])
def test_bad_inputs_are_rejected(shape, t_len):
    model = build_model(get_preset("deco-tiny"))
    with pytest.raises(ValueError, match="x must be|one entry per image"):
        model(torch.zeros(shape), torch.zeros(t_len), torch.zeros(2, dtype=torch.long))
