"""PixNerd (paper Table 1) computes what the official `dit_c2i_pixnerd.PixNerDiT` computes, and loads its
checkpoints (goldens from tests/fixtures/models/make_goldens_pixnerd_jit.py, produced by running the official code)."""

import pytest
import torch

from deco_bench import paper
from deco_bench.io import safe_torch_load
from deco_bench.models import ModelConfig, PixNerd, build_model, count_parameters, get_preset
from deco_bench.models.official import (CheckpointMismatchError, config_from_official_init_args,
                                        config_from_official_yaml, load_official, official_state_dict_to_ours)

from test_model_parity import FIXTURES, REL_TOL, assert_matches, checksums, load_golden, rel_err

# configs_c2i/Baseline_PixNerd.yaml built on the meta device, official class and ours (docs/paper.md §2.1, §3.1).
PIXNERD_L_PARAMS = 452_113_795


@pytest.fixture(scope="module")
def golden():
    return load_golden("pixnerd")


@pytest.mark.parametrize("case_index", [0, 1], ids=["256px-batch2", "512px-batch1"])
def test_forward_matches_official(golden, case_index):
    model, g = golden
    case = g["cases"][case_index]
    x = torch.randn(len(case["t"]), 3, case["resolution"], case["resolution"],
                    generator=torch.Generator().manual_seed(case["seed"]))
    assert torch.allclose(checksums(x), case["input_checksums"], rtol=1e-9), "torch.randn stream changed"
    with torch.no_grad():
        out, features = model.forward_features(x, torch.tensor(case["t"]), torch.tensor(case["y"]))
        plain = model(x, torch.tensor(case["t"]), torch.tensor(case["y"]))
    assert torch.equal(out, plain)
    assert features.shape == (len(case["t"]), 32, case["resolution"] // 16, case["resolution"] // 16)
    assert_matches(out, case["out"], "forward output")


def test_initial_weights_equal_the_official_constructor_under_a_seed(golden):
    _, g = golden
    cfg = config_from_official_init_args(g["class_path"], g["init_args"])
    torch.manual_seed(0)
    ours = build_model(cfg).state_dict()
    official = official_state_dict_to_ours(g["init_checksums"], cfg.kind, "")
    assert sorted(official) == sorted(ours)
    for name, ref in official.items():
        assert torch.allclose(checksums(ours[name]), ref, rtol=1e-6, atol=1e-6), name


def test_pixnerd_l_parameter_count_equals_the_official_config():
    with torch.device("meta"):
        model = build_model(get_preset("pixnerd-l"))
    assert count_parameters(model) == PIXNERD_L_PARAMS  # the paper prints 458M
    assert round(PIXNERD_L_PARAMS / 1e6, 3) == paper.PARAMS_M["pixnerd-l"]
    assert isinstance(model, PixNerd) and len(model.blocks) == 24 and model.depth == 22


def test_baseline_pixnerd_yaml_maps_to_the_preset(tmp_path):
    # The denoiser section of configs_c2i/Baseline_PixNerd.yaml.
    (tmp_path / "c.yaml").write_text(
        "model:\n  denoiser:\n    class_path: src.models.transformer.dit_c2i_pixnerd.PixNerDiT\n    init_args:\n"
        "      in_channels: 3\n      patch_size: 16\n      num_groups: 16\n      hidden_size: &hidden_dim 1024\n"
        "      hidden_size_x: 64\n      num_blocks: 24\n      num_cond_blocks: 22\n      nerf_mlpratio: 2\n"
        "      num_classes: &num_classes 1000\n")
    assert config_from_official_yaml(tmp_path / "c.yaml") == get_preset("pixnerd-l")


def test_load_official_pixnerd_checkpoint_ema_and_raw():
    golden = safe_torch_load(FIXTURES / "jit_golden.pt")["pixnerd"]
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(golden["x_seed"]))
    assert torch.allclose(checksums(x), golden["input_checksums"], rtol=1e-9)
    assert config_from_official_yaml(FIXTURES / "official_pixnerd.yaml") == ModelConfig(
        "pixnerd", hidden_size=8, num_heads=2, depth=1, patch_size=4, num_classes=10, decoder_hidden=4,
        decoder_depth=2, field_mlp_ratio=2)
    for ema, key in ((True, "out_ema"), (False, "out_raw")):
        model = load_official(FIXTURES / "official_pixnerd.yaml", FIXTURES / "official_pixnerd.ckpt", ema=ema)
        assert isinstance(model, PixNerd) and not model.training
        with torch.no_grad():
            assert rel_err(model(x, golden["t"], golden["y"]), golden[key]) <= REL_TOL
    assert rel_err(golden["out_ema"], golden["out_raw"]) > 1e-2  # the two weight sets really differ


def test_pixnerd_checkpoint_is_refused_for_another_architecture(tmp_path):
    # The PixNerd file under a DeCo config: strict loading names what does not fit, nothing is half loaded.
    text = (FIXTURES / "official_pixnerd.yaml").read_text().replace("dit_c2i_pixnerd.PixNerDiT", "dit_c2i_DeCo.PixNerDiT")
    (tmp_path / "deco.yaml").write_text(text)
    with pytest.raises(CheckpointMismatchError, match="a PixNerd checkpoint"):
        load_official(tmp_path / "deco.yaml", FIXTURES / "official_pixnerd.ckpt")
