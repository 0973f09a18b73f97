"""The baseline pixel DiT: patch tokens -> DiT blocks -> AdaLN final layer -> pixels (no decoupling).

Same computation as the official `dit_c2i_baseline.FlattenDiT` (the paper's "Baseline" rows, docs/paper.md §2.1, §5.2).
Compare with deco.py: only the output head differs.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import NORM_EPS, PatchDiTTrunk, modulate, unpatchify


class FinalLayer(nn.Module):
    """LayerNorm (no affine) -> AdaLN shift/scale from c -> Linear to the p*p*3 pixel values of each token."""

    def __init__(self, hidden_size: int, out_features: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=NORM_EPS)
        self.modulation = nn.Linear(hidden_size, 2 * hidden_size)
        self.linear = nn.Linear(hidden_size, out_features)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(c).chunk(2, dim=-1)  # B 1 C each
        return self.linear(modulate(self.norm(x), shift, scale))  # B L 3*p*p


class PixelDiT(PatchDiTTrunk):
    """Baseline: v = unpatchify(FinalLayer(DiT(patchify(x_t)), c))."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.final_layer = FinalLayer(cfg.hidden_size, cfg.in_channels * cfg.patch_size ** 2)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        self._init_trunk()
        if self.final_layer.linear.weight.is_meta:  # meta tensors hold no values
            return
        # Zero final layer: the model predicts v = 0 at initialisation (parity with official).
        for layer in (self.final_layer.modulation, self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor):
        """Returns (v (B, 3, H, W), last block's hidden state (B, C, H/p, W/p)) like official forward_sx."""
        _, _, h, w = x.shape
        tokens, _, c = self.trunk(x, t, y)  # B L C, B 1 C
        out = self.final_layer(tokens, c)  # B L 3*p*p
        v = unpatchify(out, self.patch_size, self.in_channels, h, w)  # B 3 H W
        return v, self.tokens_to_map(tokens, h, w)  # B 3 H W, B C H/p W/p
