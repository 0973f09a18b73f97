"""Load official DeCo / baseline checkpoints (github.com/Zehong-Ma/DeCo) into our model classes.

An official run is a Lightning YAML config (`configs_c2i/*.yaml`) plus a `.ckpt` whose `state_dict` holds
`denoiser.*` (raw weights), `ema_denoiser.*` (EMA weights, used for sampling; docs/paper.md §5.1) and
`diffusion_trainer.proj.*` (the REPA projector, not part of the denoiser). The checkpoint is read with
`safe_torch_load` (weights only; nothing in the file is executed).

Our module names differ from the official ones; `OFFICIAL_TO_OURS` is the complete mapping.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from deco_bench.io import CorruptFileError, DecoBenchError, MissingFileError, safe_torch_load
from deco_bench.models.loading import weight_mismatches
from deco_bench.models.presets import ModelConfig, build_model
from deco_bench.models.velocity import as_velocity_model


class OfficialFormatError(DecoBenchError):
    """An official config or checkpoint is readable but not something deco-bench can map to its models."""


class CheckpointMismatchError(DecoBenchError):
    """Checkpoint weights do not fit the architecture the config describes."""


# The official trainer of x-prediction (JiT+REPA, `Baseline_DiT_JiT.yaml`); its networks get prediction 'x'.
JIT_TRAINER = "training_repa_JiT.REPATrainer"

# class_path suffix in the official YAML -> our ModelConfig.kind
OFFICIAL_CLASSES = {
    "dit_c2i_DeCo.PixNerDiT": "deco",
    "dit_c2i_baseline.FlattenDiT": "baseline",
    "dit_c2i_pixnerd.PixNerDiT": "pixnerd",
}

# Defaults of the official constructors, used when a YAML leaves an argument out (as Lightning would).
_OFFICIAL_DEFAULTS = {"in_channels": 4, "num_groups": 12, "hidden_size": 1152, "hidden_size_x": 64,
                      "num_blocks": 18, "num_cond_blocks": 4, "patch_size": 2, "num_classes": 1000,
                      "nerf_mlpratio": 4}
# Constructor arguments that do not change the network (nerf_mlpratio is unused by the DeCo class, docs/paper.md §5.2).
_IGNORED_ARGS = {"nerf_mlpratio", "learn_sigma", "deep_supervision", "weight_path", "load_ema"}
_ARGS = {
    "deco": {"in_channels", "num_groups", "hidden_size", "hidden_size_x", "num_blocks", "num_cond_blocks",
             "patch_size", "num_classes"},
    "baseline": {"in_channels", "num_groups", "hidden_size", "num_blocks", "patch_size", "num_classes"},
    "pixnerd": {"in_channels", "num_groups", "hidden_size", "hidden_size_x", "nerf_mlpratio", "num_blocks",
                "num_cond_blocks", "patch_size", "num_classes"},
}

# Official parameter name (regex, full match) -> our name. Keys not matched keep their name
# (blocks.{i}.norm1/norm2, blocks.{i}.attn.{qkv,q_norm,k_norm,proj}, final_layer.linear).
_COMMON = [
    (r"t_embedder\.mlp\.0\.(.*)", r"t_embedder.fc1.\1"),
    (r"t_embedder\.mlp\.2\.(.*)", r"t_embedder.fc2.\1"),
    (r"y_embedder\.embedding_table\.weight", r"y_embedder.table.weight"),
    (r"blocks\.(\d+)\.adaLN_modulation\.0\.(.*)", r"blocks.\1.modulation.\2"),
    (r"blocks\.(\d+)\.mlp\.w1\.weight", r"blocks.\1.mlp.w_gate.weight"),
    (r"blocks\.(\d+)\.mlp\.w3\.weight", r"blocks.\1.mlp.w_up.weight"),
    (r"blocks\.(\d+)\.mlp\.w2\.weight", r"blocks.\1.mlp.w_down.weight"),
]
OFFICIAL_TO_OURS = {
    "baseline": _COMMON + [
        (r"x_embedder\.proj\.(.*)", r"patch_embed.\1"),
        (r"final_layer\.adaLN_modulation\.0\.(.*)", r"final_layer.modulation.\1"),
    ],
    "deco": _COMMON + [
        (r"s_embedder\.proj\.(.*)", r"patch_embed.\1"),
        (r"x_embedder\.embedder\.0\.(.*)", r"decoder.pixel_embed.\1"),
        (r"dec_net\.input_proj\.(.*)", r"decoder.input_proj.\1"),
        (r"dec_net\.cond_embed\.(.*)", r"decoder.cond_embed.\1"),
        (r"dec_net\.res_blocks\.(\d+)\.in_ln\.(.*)", r"decoder.blocks.\1.norm.\2"),
        (r"dec_net\.res_blocks\.(\d+)\.mlp\.0\.(.*)", r"decoder.blocks.\1.fc1.\2"),
        (r"dec_net\.res_blocks\.(\d+)\.mlp\.2\.(.*)", r"decoder.blocks.\1.fc2.\2"),
        (r"dec_net\.res_blocks\.(\d+)\.adaLN_modulation\.1\.(.*)", r"decoder.blocks.\1.modulation.\2"),
        (r"dec_net\.final_layer\.linear\.(.*)", r"decoder.final_linear.\1"),
    ],
    # PixNerd keeps the official block indices: blocks.{num_cond_blocks..} are its neural-field blocks.
    "pixnerd": _COMMON + [
        (r"s_embedder\.proj\.(.*)", r"patch_embed.\1"),
        (r"x_embedder\.embedder\.0\.(.*)", r"pixel_embed.\1"),
        (r"blocks\.(\d+)\.param_generator1\.0\.(.*)", r"blocks.\1.param_generator.\2"),
        (r"final_layer\.norm\.weight", r"final_norm.weight"),
        (r"final_layer\.linear\.(.*)", r"final_linear.\1"),
    ],
}


def official_key_to_ours(key: str, kind: str) -> str:
    for pattern, repl in OFFICIAL_TO_OURS[kind]:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    return key


def _read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: official config not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CorruptFileError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise CorruptFileError(f"{path}: expected a YAML mapping at the top level")
    return doc


def official_denoiser(path: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """(class_path, init_args) of `model.denoiser` in an official Lightning config: the official constructor call."""
    doc = _read_yaml(path)
    model_section = doc.get("model")
    denoiser = model_section.get("denoiser") if isinstance(model_section, dict) else None
    if not isinstance(denoiser, dict) or "class_path" not in denoiser:
        raise OfficialFormatError(f"{path}: no model.denoiser.class_path; is this an official DeCo config?")
    return str(denoiser["class_path"]), dict(denoiser.get("init_args") or {})


def config_from_official_yaml(path: str | os.PathLike) -> ModelConfig:
    """ModelConfig of the denoiser in an official Lightning config (`model.denoiser.{class_path,init_args}`).

    `Baseline_DiT_JiT.yaml` uses the baseline network but trains it to predict x, not v (docs/paper.md §5.2): a
    config whose `model.diffusion_trainer` is `training_repa_JiT.REPATrainer` gives prediction 'x'.
    """
    class_path, init_args = official_denoiser(path)
    cfg = config_from_official_init_args(class_path, init_args, source=str(path))
    trainer = (_read_yaml(path).get("model") or {}).get("diffusion_trainer")
    if isinstance(trainer, dict) and str(trainer.get("class_path", "")).endswith(JIT_TRAINER):
        return dataclasses.replace(cfg, prediction="x")
    return cfg


def config_from_official_init_args(class_path: str, init_args: dict[str, Any], source: str = "config") -> ModelConfig:
    """ModelConfig for an official denoiser class_path + init_args (missing args take the official defaults)."""
    kind = next((k for suffix, k in OFFICIAL_CLASSES.items() if class_path.endswith(suffix)), None)
    if kind is None:
        raise OfficialFormatError(f"{source}: denoiser class {class_path!r} is not supported; supported: "
                                  f"{', '.join(OFFICIAL_CLASSES)}")
    unknown = sorted(set(init_args) - _ARGS[kind] - _IGNORED_ARGS)
    if unknown:
        raise OfficialFormatError(f"{source}: unknown init_args {unknown} for {class_path}")
    a = {**_OFFICIAL_DEFAULTS, **init_args}
    common = dict(hidden_size=a["hidden_size"], num_heads=a["num_groups"], patch_size=a["patch_size"],
                  in_channels=a["in_channels"], num_classes=a["num_classes"])
    try:
        if kind == "baseline":
            return ModelConfig("baseline", depth=a["num_blocks"], **common)
        if kind == "pixnerd":  # as DeCo: the first num_cond_blocks are DiT blocks, the rest neural-field blocks
            return ModelConfig("pixnerd", depth=a["num_cond_blocks"], decoder_hidden=a["hidden_size_x"],
                               decoder_depth=a["num_blocks"] - a["num_cond_blocks"],
                               field_mlp_ratio=a["nerf_mlpratio"], **common)
        # Official DeCo: num_blocks counts DiT + decoder blocks; the first num_cond_blocks are DiT blocks.
        return ModelConfig("deco", depth=a["num_cond_blocks"], decoder_hidden=a["hidden_size_x"],
                           decoder_depth=a["num_blocks"] - a["num_cond_blocks"], **common)
    except ValueError as e:
        raise OfficialFormatError(f"{source}: init_args {init_args} give an invalid model: {e}") from e


def official_state_dict_to_ours(state: dict[str, torch.Tensor], kind: str, prefix: str) -> dict[str, torch.Tensor]:
    """Keep the entries under `prefix` (e.g. 'ema_denoiser.') and rename them to our module names."""
    return {official_key_to_ours(k[len(prefix):], kind): v for k, v in state.items() if k.startswith(prefix)}


def describe_official_weights(state: dict[str, torch.Tensor], prefix: str) -> str:
    """What the official-format weights under `prefix` look like, read from their names and shapes alone
    (e.g. "a DeCo checkpoint (dit_c2i_DeCo.PixNerDiT): hidden size 1152, 31 blocks, 682.283M parameters")."""
    names = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not names:
        return "no weights"
    has = lambda start: any(k.startswith(start) for k in names)  # noqa: E731
    if has("dec_net."):
        kind = "a DeCo checkpoint (dit_c2i_DeCo.PixNerDiT)"
    elif has("s_embedder.") and has("x_embedder.embedder."):
        kind = "a PixNerd checkpoint (dit_c2i_pixnerd.PixNerDiT)"
    elif has("x_embedder.proj."):
        kind = "a baseline DiT checkpoint (dit_c2i_baseline.FlattenDiT)"
    else:
        kind = "not a DeCo, PixNerd or baseline DiT checkpoint"
    blocks = {int(m.group(1)) for k in names if (m := re.match(r"blocks\.(\d+)\.", k))}
    hidden = names.get("t_embedder.mlp.0.weight")
    detail = [f"hidden size {hidden.shape[0]}"] if isinstance(hidden, torch.Tensor) and hidden.ndim == 2 else []
    if blocks:
        detail.append(f"{max(blocks) + 1} transformer blocks")
    detail.append(f"{sum(v.numel() for v in names.values()) / 1e6:.3f}M parameters")
    return f"{kind}: {', '.join(detail)}"


def _check_fits(model: nn.Module, weights: dict[str, torch.Tensor], source: str, looks_like: str = "") -> None:
    missing, unexpected, shapes = weight_mismatches(model, weights)
    if missing or unexpected or shapes:
        def show(items: list[str]) -> str:
            return ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")
        own = sum(p.numel() for p in model.state_dict().values()) / 1e6
        seen = f"; the file holds {looks_like}, the config describes {own:.3f}M parameters" if looks_like else ""
        raise CheckpointMismatchError(
            f"{source} does not fit the architecture of its config: missing keys [{show(missing)}]; "
            f"unexpected keys [{show(unexpected)}]; shape mismatches [{show(shapes)}] (names as in deco-bench; "
            f"see deco_bench.models.official.OFFICIAL_TO_OURS){seen}")


def load_official(config_path: str | os.PathLike, ckpt_path: str | os.PathLike, ema: bool = True) -> nn.Module:
    """Our model (eval mode, float32, CPU) with the weights of an official checkpoint (EMA weights by default).

    forward(x, t, y) returns the velocity, also for an x-prediction (JiT) config: that model comes wrapped in a
    models.velocity.VelocityOutput, which converts as the official `EulerSamplerJiT` does."""
    return as_velocity_model(load_released(ckpt_path, config_from_official_yaml(config_path), ema=ema))


def _official_state(ckpt_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    ckpt = safe_torch_load(ckpt_path, map_location="cpu")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CorruptFileError(f"{ckpt_path}: expected a Lightning checkpoint with a 'state_dict' of tensors")
    return state


def load_released(ckpt_path: str | os.PathLike, cfg: ModelConfig, ema: bool = True) -> nn.Module:
    """Our model of architecture `cfg` (a preset) with the weights of a released official checkpoint, strictly.

    Every key of the EMA (or raw) weights must map onto `cfg`'s model with its shape, and the parameter counts must
    be equal; otherwise CheckpointMismatchError names the missing, unexpected and wrong-shape keys and says what the
    file looks like (a PixNerd or baseline file given for DeCo is refused, never half loaded).
    """
    state = _official_state(ckpt_path)
    prefix = "ema_denoiser." if ema else "denoiser."
    weights = official_state_dict_to_ours(state, cfg.kind, prefix)
    if not weights:
        groups = sorted({k.split(".", 1)[0] for k in state})
        raise OfficialFormatError(f"{ckpt_path}: no '{prefix}*' weights (ema={ema}); it holds: {groups}")
    model = build_model(cfg)
    looks_like = describe_official_weights(state, prefix)
    _check_fits(model, weights, f"{ckpt_path} ({prefix}*)", looks_like)
    expected = sum(p.numel() for p in model.parameters())
    got = sum(v.numel() for v in weights.values())
    if got != expected:  # unreachable when keys and shapes match; kept as the statement of the contract
        raise CheckpointMismatchError(f"{ckpt_path}: {got} parameters, the preset has {expected} ({looks_like})")
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    return model.eval()
