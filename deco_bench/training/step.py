"""The one training step: what the training loop and the train-step benchmark both compute.

`DenoiserWithProjector` joins the network and the REPA projector; `step_losses` puts a batch on the flow path and
returns FM + FreqFM + REPA; `drop_labels` is the label dropout that trains the unconditional branch for CFG;
`autocast` / `autocast_dtype` decide the precision (bf16 autocast on CUDA by default, float32 on CPU).
Sharing them is what makes the benchmark measure the training loop's own computation.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from deco_bench.diffusion import losses, path


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for 'bf16', and for 'auto' on CUDA; None (float32, no autocast) otherwise."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast to `dtype` on `device`, or a no-op context for None."""
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else nullcontext()


def drop_labels(y: torch.Tensor, keep: torch.Tensor, null_label: int) -> torch.Tensor:
    """Class labels with the dropped ones (keep False) replaced by the null class (docs/paper.md §5.1)."""
    return torch.where(keep, y, torch.full_like(y, null_label))


class DenoiserWithProjector(nn.Module):
    """The network and the REPA projector as one module (so DDP and the optimiser see both).

    forward returns the predicted velocity and, when REPA is on, the projected tokens of DiT block `align_layer`
    (docs/paper.md §5.1: a forward hook on blocks[align_layer - 1]).

    The hook is registered once, here, and writes into a one-slot list that forward empties again: registering a
    hook inside forward would be a graph break under torch.compile (train.compile: full) and a new hook object
    every step would recompile. EMA copies drop the hook (training/ema.py).
    """

    def __init__(self, net: nn.Module, projector: nn.Module | None, align_layer: int):
        super().__init__()
        self.net = net
        self.projector = projector
        self.align_layer = align_layer
        self.prediction = path.prediction_of(net)  # 'v', or 'x' (JiT): step_losses converts to velocities
        self._slot: list[torch.Tensor | None] = [None]
        if projector is not None:
            slot = self._slot
            net.blocks[align_layer - 1].register_forward_hook(lambda m, i, o: slot.__setitem__(0, o))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor):
        if self.projector is None:
            return self.net(x_t, t, y), None
        v = self.net(x_t, t, y)
        tokens, self._slot[0] = self._slot[0], None  # hold no activation past the step
        return v, self.projector(tokens)


def adamw(params, *, lr: float, betas: tuple[float, float], weight_decay: float,
          device: torch.device) -> torch.optim.AdamW:
    """AdamW as the training loop and the benchmark build it: the fused kernel on CUDA (one launch for all
    parameters instead of several per tensor), the multi-tensor (foreach) path on CPU."""
    impl = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, **impl)


def step_losses(fwd: nn.Module, encoder: nn.Module | None, x: torch.Tensor, y: torch.Tensor, raw: torch.Tensor,
                t: torch.Tensor, eps: torch.Tensor, weights: losses.LossWeights) -> dict[str, torch.Tensor]:
    """The objective of one (micro-)batch: x_t on the flow path, the prediction, and FM + FreqFM + REPA.

    `fwd` is a DenoiserWithProjector (possibly wrapped by DDP or torch.compile); `encoder` the frozen REPA encoder
    or None. Shared by the training loop and the train-step benchmark, so both measure the same computation.
    An x-predicting network (JiT+REPA, paper Table 1) is trained on velocities, prediction and target both through
    path.velocity_from_x: the official `training_repa_JiT.py` objective.
    """
    prediction = _unwrap(fwd).prediction
    x_t = path.interpolate(x, eps, t)
    v = path.target_velocity(x, eps, x_t, t, prediction)
    out, proj = fwd(x_t, t, y)
    pred = path.as_velocity(out.float(), x_t, t, prediction)
    target_tokens = None
    if encoder is not None and proj is not None:
        with torch.no_grad():
            target_tokens = encoder(raw).float()
    return losses.deco_loss(pred, v, None if proj is None else proj.float(), target_tokens, weights=weights)


def _unwrap(fwd: nn.Module) -> DenoiserWithProjector:
    """The DenoiserWithProjector inside torch.compile (`_orig_mod`) and DDP (`module`) wrappers."""
    inner = fwd
    while not isinstance(inner, DenoiserWithProjector):
        nxt = getattr(inner, "_orig_mod", None)
        nxt = getattr(inner, "module", None) if nxt is None else nxt
        if nxt is None:
            raise TypeError(f"step_losses needs a DenoiserWithProjector (optionally in DDP / torch.compile), got "
                            f"{type(fwd).__name__}")
        inner = nxt
    return inner
