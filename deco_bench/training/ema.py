"""Exponential moving average of the weights, kept in float32 (docs/paper.md §5.1: SimpleEMA, decay 0.9999, every step).

The update is two multi-tensor (foreach) kernels over all parameters, with no host synchronisation, so it adds
a handful of launches per step however many tensors the model has.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).float().eval().requires_grad_(False)
        for m in self.model.modules():  # a weight average, not a training module: no REPA capture hook
            m._forward_hooks.clear()
        self._ema_params = list(self.model.parameters())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = [p.detach().float() for p in model.parameters()]  # float() is a no-op for float32 weights
        torch._foreach_mul_(self._ema_params, self.decay)
        torch._foreach_add_(self._ema_params, params, alpha=1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)  # copies into the same tensors: the cached list stays valid
