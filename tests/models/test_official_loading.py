"""load_official / config_from_official_yaml on official-format fixtures, and every bad input."""

import os
import shutil
from pathlib import Path

import pytest
import torch

from deco_bench.io import CorruptFileError, MissingFileError, UnsafeCheckpointError, safe_torch_load
from deco_bench.models import ModelConfig, get_preset
from deco_bench.models.official import (CheckpointMismatchError, OfficialFormatError, config_from_official_yaml,
                                 load_official)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def rel_err(a, ref):
    return ((a - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("kind", ["deco", "baseline"])
def test_load_official_ema_and_raw_weights_match_official_outputs(kind):
    golden = safe_torch_load(FIXTURES / "load_official_golden.pt")[kind]
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(golden["x_seed"]))
    outputs = {}
    for ema in (True, False):
        model = load_official(FIXTURES / f"official_{kind}.yaml", FIXTURES / f"official_{kind}.ckpt", ema=ema)
        assert not model.training
        with torch.no_grad():
            outputs[ema] = model(x, golden["t"], golden["y"])
    assert rel_err(outputs[True], golden["out_ema"]) <= 1e-5
    assert rel_err(outputs[False], golden["out_raw"]) <= 1e-5
    assert rel_err(outputs[True], outputs[False]) > 1e-2  # the two weight sets really differ


def test_config_from_fixture_yaml():
    assert config_from_official_yaml(FIXTURES / "official_deco.yaml") == ModelConfig(
        "deco", hidden_size=8, num_heads=2, depth=1, patch_size=4, num_classes=10, decoder_hidden=8,
        decoder_depth=2)
    assert config_from_official_yaml(FIXTURES / "official_baseline.yaml") == ModelConfig(
        "baseline", hidden_size=8, num_heads=2, depth=2, patch_size=4, num_classes=10)


# The denoiser sections of configs_c2i/DeCo_XL.yaml and Baseline_DiT.yaml (docs/paper.md §5.2).
PAPER_DENOISERS = {
    "deco-xl": ("src.models.transformer.dit_c2i_DeCo.PixNerDiT",
                "in_channels: 3\n      patch_size: 16\n      num_groups: 16\n      hidden_size: &hidden_dim 1152\n"
                "      hidden_size_x: 32\n      num_blocks: 31\n      num_cond_blocks: 28\n      nerf_mlpratio: 2\n"
                "      num_classes: &num_classes 1000"),
    "baseline-l": ("src.models.transformer.dit_c2i_baseline.FlattenDiT",
                   "in_channels: 3\n      patch_size: 16\n      num_groups: 16\n      hidden_size: 1024\n"
                   "      num_blocks: 24\n      num_classes: 1000"),
}


def write_yaml(tmp_path, class_path, args):
    path = tmp_path / "config.yaml"
    path.write_text(f"model:\n  denoiser:\n    class_path: {class_path}\n    init_args:\n      {args}\n")
    return path


@pytest.mark.parametrize("preset", sorted(PAPER_DENOISERS))
def test_paper_configs_map_to_presets(tmp_path, preset):
    assert config_from_official_yaml(write_yaml(tmp_path, *PAPER_DENOISERS[preset])) == get_preset(preset)


def test_unsupported_class_and_arguments_are_named(tmp_path):
    with pytest.raises(OfficialFormatError, match="dit_c2i_pixelflow.PixelFlow.*supported: dit_c2i_DeCo"):
        config_from_official_yaml(write_yaml(tmp_path, "src.models.transformer.dit_c2i_pixelflow.PixelFlow",
                                             "hidden_size: 64"))
    with pytest.raises(OfficialFormatError, match="unknown init_args \\['hidden_size_x'\\]"):
        config_from_official_yaml(write_yaml(tmp_path, PAPER_DENOISERS["baseline-l"][0], "hidden_size_x: 8"))
    with pytest.raises(OfficialFormatError, match="num_blocks"):  # 2 blocks, 4 of them DiT: no decoder left
        config_from_official_yaml(write_yaml(tmp_path, PAPER_DENOISERS["deco-xl"][0],
                                             "num_blocks: 2\n      num_cond_blocks: 4"))
    (tmp_path / "nomodel.yaml").write_text("trainer:\n  max_steps: 1\n")
    with pytest.raises(OfficialFormatError, match="model.denoiser.class_path"):
        config_from_official_yaml(tmp_path / "nomodel.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(CorruptFileError, match="YAML"):
        config_from_official_yaml(tmp_path / "bad.yaml")
    with pytest.raises(MissingFileError):
        config_from_official_yaml(tmp_path / "absent.yaml")


class RunsShell:
    """Unpickling this would run a shell command; the loader must refuse without running it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_needing_code_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = safe_torch_load(FIXTURES / "official_deco.ckpt")
    ckpt["hyper_parameters"] = {"payload": RunsShell(marker)}
    torch.save(ckpt, tmp_path / "evil.ckpt")
    with pytest.raises(UnsafeCheckpointError, match="refused to load"):
        load_official(FIXTURES / "official_deco.yaml", tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_truncated_and_missing_checkpoints(tmp_path):
    data = (FIXTURES / "official_deco.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        load_official(FIXTURES / "official_deco.yaml", tmp_path / "cut.ckpt")
    with pytest.raises(MissingFileError):
        load_official(FIXTURES / "official_deco.yaml", tmp_path / "absent.ckpt")


def test_architecture_mismatch_names_keys(tmp_path):
    text = (FIXTURES / "official_deco.yaml").read_text()
    deeper, wider = tmp_path / "deeper.yaml", tmp_path / "wider.yaml"
    deeper.write_text(text.replace("num_blocks: 3", "num_blocks: 4"))
    wider.write_text(text.replace("hidden_size_x: 8", "hidden_size_x: 16"))
    with pytest.raises(CheckpointMismatchError, match="missing keys \\[decoder.blocks.2.fc1.bias, .*"
                                                      "unexpected keys \\[\\]; shape mismatches \\[\\]"):
        load_official(deeper, FIXTURES / "official_deco.ckpt")  # one decoder block more than the checkpoint
    with pytest.raises(CheckpointMismatchError, match="missing keys \\[\\]; .*decoder.blocks.0.fc1.weight: "
                                                      "checkpoint \\(8, 8\\) vs model \\(16, 16\\)"):
        load_official(wider, FIXTURES / "official_deco.ckpt")
    # A baseline config for a DeCo checkpoint: the official decoder weights are unexpected.
    with pytest.raises(CheckpointMismatchError, match="unexpected keys \\[.*dec_net"):
        load_official(FIXTURES / "official_baseline.yaml", FIXTURES / "official_deco.ckpt")


def test_missing_ema_weights_are_an_error(tmp_path):
    ckpt = safe_torch_load(FIXTURES / "official_baseline.ckpt")
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("ema_denoiser.")}
    torch.save(ckpt, tmp_path / "no_ema.ckpt")
    with pytest.raises(OfficialFormatError, match="no 'ema_denoiser.\\*' weights.*denoiser"):
        load_official(FIXTURES / "official_baseline.yaml", tmp_path / "no_ema.ckpt")
    shutil.copy(FIXTURES / "official_baseline.yaml", tmp_path / "b.yaml")
    model = load_official(tmp_path / "b.yaml", tmp_path / "no_ema.ckpt", ema=False)
    raw = ckpt["state_dict"]["denoiser.x_embedder.proj.weight"]
    assert torch.equal(model.patch_embed.weight, raw)
