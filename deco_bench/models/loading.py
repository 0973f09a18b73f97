"""Strict weight loading: a state dict either fits a model exactly, or the error names every key that does not.

`torch.nn.Module.load_state_dict(strict=False)` (and the official loader, which only warns) can leave part of a
model at its random initialisation without a word; deco-bench never loads that way. Used by the training
checkpoints, the EMA weights files every stage reads, and the official-checkpoint loader (models/official.py).
"""

from __future__ import annotations

import torch
from torch import nn

from deco_bench.io import DecoBenchError


class ArchitectureMismatchError(DecoBenchError):
    """A checkpoint's weights do not fit the model being loaded (keys or shapes differ)."""


def weight_mismatches(module: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing keys, unexpected keys, "key: checkpoint shape vs model shape") of `state` against `module`."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    return missing, unexpected, shapes


def load_weights_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict that names every missing, unexpected and shape-mismatched key."""
    missing, unexpected, shapes = weight_mismatches(module, state)
    if missing or unexpected or shapes:
        def head(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f" (+{len(items) - 8} more)" if len(items) > 8 else "")
        parts = []
        if missing:
            parts.append(f"missing keys: {head(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {head(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches: {head(shapes)}")
        raise ArchitectureMismatchError(f"{what} does not match the model architecture; " + "; ".join(parts))
    module.load_state_dict(state)
