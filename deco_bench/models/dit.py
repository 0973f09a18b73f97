"""The baseline pixel DiT: patch tokens -> DiT blocks -> AdaLN final layer -> pixels (no decoupling).

Same computation as the official `dit_c2i_baseline.FlattenDiT` (the paper's "Baseline" rows, docs/paper.md §2.1, §5.2).
deco.py is laid out line for line like this file: `diff dit.py deco.py` shows only DeCo's pixel decoder, which
replaces the final layer below, and how the DiT output conditions it.

Shape letters: B batch, L patch tokens (= H/p * W/p), C hidden size, D head dim, p patch size.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import (
    NORM_EPS,
    DiTBlock,
    LabelEmbedder,
    PatchTransformer,
    TimestepEmbedder,
    modulate,
    unpatchify,
)

# ---------------------------------------------------------------------------------------------------------------
# Output head
# ---------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------


class PixelDiT(PatchTransformer, nn.Module):
    """Baseline: v = unpatchify(FinalLayer(DiT(patchify(x_t), c), c)), c = SiLU(t_emb + y_emb)."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.prediction = cfg.prediction  # what forward returns: 'v', or 'x' (JiT; diffusion.path converts it)
        self.hidden_size = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.num_classes = cfg.num_classes
        self.patch_size = cfg.patch_size
        self.in_channels = cfg.in_channels
        p, c = cfg.patch_size, cfg.hidden_size
        # Modules are created in this order; with initialize_weights below it fixes the weights under a seed.
        self.patch_embed = nn.Linear(cfg.in_channels * p * p, c)
        self.t_embedder = TimestepEmbedder(c)
        self.y_embedder = LabelEmbedder(cfg.num_classes, c)
        self.blocks = nn.ModuleList(DiTBlock(c, cfg.num_heads) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(c, cfg.in_channels * p * p)
        self._rope_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Parity with the official initialize_weights (same calls in the same order)."""
        if self.patch_embed.weight.is_meta:  # meta tensors hold no values (used to count parameters / FLOPs)
            return
        self.init_trunk_weights()
        # Final layer: zero, so the model predicts v = 0 at initialisation.
        for layer in (self.final_layer.modulation, self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, return_features: bool = False):
        """x (B, 3, H, W) in [-1, 1], t (B,) in [0, 1] with 1 = data, y (B,) long (num_classes = null) -> v
        (or x with prediction 'x', JiT: the samplers and the loss convert it to v, diffusion.path.velocity_from_x).

        With return_features, returns (v, features) like the official forward_sx: features is the last DiT
        block's hidden state as a map (B, C, H/p, W/p).
        """
        h, w, rope, t_emb, c, tokens = self.embed(x, t, y)  # tokens B L C; c, t_emb B 1 C
        p = self.patch_size
        for block in self.blocks:
            tokens = block(tokens, c, rope)  # B L C
        out = self.final_layer(tokens, c)  # B L 3*p*p
        v = unpatchify(out, p, self.in_channels, h, w)  # B 3 H W
        if return_features:
            return v, self.tokens_to_map(tokens, h, w)  # B 3 H W, B C H/p W/p
        return v  # B 3 H W

