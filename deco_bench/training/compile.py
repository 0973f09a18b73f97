"""How the training step runs: eager, compiled by regions or compiled whole (train.compile), and with or
without activation checkpointing per DiT block (train.activation_checkpointing).

`none`    eager PyTorch.
`blocks`  each DiT block, and DeCo's pixel decoder (or the baseline's final layer), compiled on its own in place
          (`nn.Module.compile`). Blocks of one model share their code and their shapes, so they share one graph:
          compile time does not grow with depth, and the elementwise work between the GEMMs (RMSNorm, RoPE, AdaLN
          modulation, the decoder's LayerNorm over its few channels at every pixel) is fused. The measured cost of
          eager is mostly that elementwise work (bench/recordings/README.md).
`full`    the whole objective of a micro-batch (flow path, network, REPA projector and encoder, FM + FreqFM + REPA
          losses) as one compiled function; backward is compiled with it (AOTAutograd). Slower to compile.

Both compiled modes compute what eager computes (tests/training/test_compile.py: float32 within 1e-5 relative,
no graph break in a compiled region, no recompilation after the first step). Neither changes the weights'
trajectory beyond float rounding, so `compile` and `activation_checkpointing` are not part of the run's
fingerprint (training/resume.py): a run may be resumed in another mode.

Activation checkpointing keeps only each DiT block's input and recomputes its activations in backward, trading
about one extra block forward for the memory of the activations (so that 512 px, or larger per-GPU batches, fit).
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from deco_bench.training.step import step_losses

MODES = ("none", "blocks", "full")
BACKEND = "inductor"


def regions(net: nn.Module) -> list[nn.Module]:
    """The modules `blocks` mode compiles: every DiT block, then DeCo's pixel decoder or the DiT's final layer."""
    heads = [getattr(net, name) for name in ("decoder", "final_layer") if getattr(net, name, None) is not None]
    return [*net.blocks, *heads[:1]]


def compile_regions(net: nn.Module, *, backend: str | Callable | None = None) -> int:
    """Compile each region of `net` in place (its state dict and parameters stay the same); returns how many."""
    parts = regions(net)
    for m in parts:
        m.compile(backend=BACKEND if backend is None else backend)
    return len(parts)


def checkpoint_blocks(net: nn.Module) -> int:
    """Recompute each DiT block's activations in backward instead of keeping them; returns how many blocks.

    Replaces the block's `forward` on the instance (hooks and a compiled region still wrap it); the saved
    state is unchanged. Non-reentrant checkpointing: the recomputation sees the same RNG state and autocast."""
    for block in net.blocks:
        block.forward = functools.partial(_checkpointed, type(block).forward.__get__(block))
    return len(net.blocks)


def _checkpointed(forward: Callable, *args):
    if not torch.is_grad_enabled():  # sampling / evaluation: nothing to save
        return forward(*args)
    return checkpoint(forward, *args, use_reentrant=False)


def prepare(net: nn.Module, train_module: nn.Module, *, mode: str, activation_checkpointing: bool = False,
            input_shape: tuple[int, ...] | None = None, backend: str | Callable | None = None) -> Callable:
    """Set `net` up for `mode` and return the objective, called as `step_losses(train_module, ...)` is called.

    `net` is the denoiser inside `train_module` (a DenoiserWithProjector, possibly DDP-wrapped); call this after
    the EMA copy is taken, so that the EMA stays an eager float32 module. `input_shape` (C, H, W) of one image
    lets a compiled mode fill the model's RoPE and position caches first: a cache filled during the first
    compiled call changes what the guards see and would compile everything a second time. `backend`: the
    torch.compile backend (default BACKEND; tests pass a counting one)."""
    if mode not in MODES:
        raise ValueError(f"train.compile: got {mode!r}; accepted values: {', '.join(MODES)}")
    backend = BACKEND if backend is None else backend
    if activation_checkpointing:
        checkpoint_blocks(net)
    if mode != "none" and input_shape is not None:
        warm_caches(net, input_shape)
    if mode == "blocks":
        compile_regions(net, backend=backend)
    if mode == "full":
        return torch.compile(step_losses, backend=backend)
    return step_losses


@torch.no_grad()
def warm_caches(net: nn.Module, input_shape: tuple[int, ...]) -> None:
    """One eager forward of a single zero image (its output, and what a capture hook kept of it, discarded)."""
    p = next(net.parameters())
    zero = torch.zeros(1, dtype=torch.long, device=p.device)
    net(torch.zeros(1, *input_shape, device=p.device), zero.float(), zero)


__all__ = ["MODES", "BACKEND", "regions", "compile_regions", "checkpoint_blocks", "prepare", "warm_caches"]
