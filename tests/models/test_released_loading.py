"""load_released: a released official checkpoint into a preset, strictly, with named errors for every mismatch."""

from pathlib import Path

import pytest
import torch

from deco_bench.io import safe_torch_load
from deco_bench.models.official import (CheckpointMismatchError, config_from_official_yaml,
                                        describe_official_weights, load_official, load_released)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def _ckpt(kind="deco"):
    return safe_torch_load(FIXTURES / f"official_{kind}.ckpt")


def test_load_released_equals_load_official():
    cfg = config_from_official_yaml(FIXTURES / "official_deco.yaml")
    a = load_released(FIXTURES / "official_deco.ckpt", cfg)
    b = load_official(FIXTURES / "official_deco.yaml", FIXTURES / "official_deco.ckpt")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    raw = load_released(FIXTURES / "official_deco.ckpt", cfg, ema=False)
    assert not torch.equal(raw.patch_embed.weight, a.patch_embed.weight)


def test_describe_official_weights_names_the_architecture():
    state = _ckpt("deco")["state_dict"]
    text = describe_official_weights(state, "ema_denoiser.")
    n = sum(v.numel() for k, v in state.items() if k.startswith("ema_denoiser."))
    assert text == ("a DeCo checkpoint (dit_c2i_DeCo.PixNerDiT): hidden size 8, 1 transformer blocks, "
                    f"{n / 1e6:.3f}M parameters")
    assert describe_official_weights(_ckpt("baseline")["state_dict"], "ema_denoiser.").startswith(
        "a baseline DiT checkpoint (dit_c2i_baseline.FlattenDiT): hidden size 8, 2 transformer blocks")
    assert describe_official_weights(state, "nothing.") == "no weights"


def test_extra_key_is_named(tmp_path):
    ckpt = _ckpt("deco")
    ckpt["state_dict"]["ema_denoiser.extra.weight"] = torch.zeros(3)
    torch.save(ckpt, tmp_path / "extra.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \[\]; unexpected keys \[extra.weight\]"):
        load_released(tmp_path / "extra.ckpt", config_from_official_yaml(FIXTURES / "official_deco.yaml"))


def test_pixnerd_file_for_deco_is_refused_saying_what_it_is(tmp_path):
    g = torch.Generator().manual_seed(0)
    shapes = {"s_embedder.proj.weight": (8, 48), "x_embedder.embedder.0.weight": (8, 67),
              "t_embedder.mlp.0.weight": (8, 256), "blocks.0.attn.qkv.weight": (24, 8),
              "blocks.1.param_generator.weight": (16, 8), "final_layer.linear.weight": (3, 8)}
    state = {f"{p}{k}": torch.randn(*s, generator=g) for k, s in shapes.items() for p in ("denoiser.", "ema_denoiser.")}
    torch.save({"state_dict": state}, tmp_path / "pixnerd.ckpt")
    cfg = config_from_official_yaml(FIXTURES / "official_deco.yaml")
    with pytest.raises(CheckpointMismatchError) as err:
        load_released(tmp_path / "pixnerd.ckpt", cfg)
    msg = str(err.value)
    assert "the file holds a PixNerd checkpoint (dit_c2i_pixnerd.PixNerDiT): hidden size 8, 2 transformer blocks" in msg
    assert "missing keys [" in msg and "unexpected keys [" in msg and "blocks.1.param_generator.weight" in msg


def test_wrong_size_preset_is_refused_with_both_counts(tmp_path):
    cfg = config_from_official_yaml(FIXTURES / "official_deco.yaml")
    wider = cfg.__class__(**{**cfg.__dict__, "hidden_size": 16})
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatches \[.*checkpoint \(8,.*the config describes "
                                                      r"0\.\d+M parameters"):
        load_released(FIXTURES / "official_deco.ckpt", wider)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04garbage"])
def test_foreign_bytes_are_named(tmp_path, content):
    from deco_bench.io import DecoBenchError
    (tmp_path / "x.ckpt").write_bytes(content)
    with pytest.raises(DecoBenchError, match="x.ckpt"):
        load_released(tmp_path / "x.ckpt", config_from_official_yaml(FIXTURES / "official_deco.yaml"))


def test_tensor_instead_of_checkpoint_is_named(tmp_path):
    from deco_bench.io import CorruptFileError
    torch.save(torch.zeros(3), tmp_path / "t.ckpt")
    with pytest.raises(CorruptFileError, match="expected a Lightning checkpoint"):
        load_released(tmp_path / "t.ckpt", config_from_official_yaml(FIXTURES / "official_deco.yaml"))
