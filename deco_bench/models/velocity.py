"""A velocity view of an x-predicting network (JiT), for code that expects `forward(x_t, t, y) -> v`.

`load_official` returns this for `Baseline_DiT_JiT.yaml` checkpoints: the official config samples that model with
the plain `EulerSampler`, which would integrate its x-prediction as if it were a velocity; the matching
`EulerSamplerJiT` converts first, and so does this wrapper (diffusion.path.velocity_from_x), so that
`diffusion.euler_sample(load_official(...), ...)` gives the `EulerSamplerJiT` result. Our own samplers and loss
convert an x-network by its `prediction` attribute and do not need it.
"""

from __future__ import annotations

import torch
from torch import nn

from deco_bench.diffusion.path import as_velocity, prediction_of


class VelocityOutput(nn.Module):
    """forward(x_t, t, y) -> v of the wrapped network, converted from its prediction type. Attributes it does not
    define (config, num_classes, blocks, ...) are the wrapped network's."""

    prediction = "v"

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("net"), name)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return as_velocity(self.net(x, t, y), x, t, prediction_of(self.net))  # B 3 H W

    def forward_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor):
        out, features = self.net.forward_features(x, t, y)
        return as_velocity(out, x, t, prediction_of(self.net)), features


def as_velocity_model(net: nn.Module) -> nn.Module:
    """`net` itself when it predicts v; a VelocityOutput around it when it predicts x."""
    return net if prediction_of(net) == "v" else VelocityOutput(net).train(net.training)
